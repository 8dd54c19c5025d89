//! Reading data files back: the record scanner used by open (to rebuild the
//! keydir), by merge (to find live records) and by repair.
//!
//! Damage is classified by one rule: it is a *torn tail* when no valid
//! record follows it in the file (a crash cut the last append short), and
//! *corruption* otherwise. A flipped bit in a length field therefore cannot
//! pass for a torn tail and truncate good records away.

use crate::crc;
use crate::datafile::{self, sync_dir};
use crate::error::{reserve, Error, Result, Status};
use crate::format::{self, RecordHeader, FILE_HEADER_LEN, RECORD_HEADER_LEN};
use crate::mmap::PAGE;
use std::cell::Cell;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

const WINDOW: usize = 1 << 20;

/// Positional reader over a file with a sliding read-ahead window.
pub struct FileReader {
    file: File,
    pub path: PathBuf,
    pub len: u64,
    /// The file's device and inode: which file the name stood for.
    pub identity: (u64, u64),
    buf: Vec<u8>,
    start: u64,
    /// Bytes read from the file so far: what a scan cost.
    read: Cell<u64>,
    /// Bytes checksummed so far, for the records claimed in damage too.
    checked: Cell<u64>,
    /// Checksums of the file past the damage being crossed (`claimed_crc`).
    ranges: Option<RangeCrc>,
}

impl FileReader {
    /// Syncs the file's data to the disk (`fdatasync`).
    pub fn sync_data(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("syncing", &self.path, e))
    }

    pub fn open(path: &Path) -> Result<FileReader> {
        let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io("reading metadata of", path, e))?;
        Ok(FileReader {
            file,
            path: path.to_path_buf(),
            len: meta.len(),
            identity: (meta.dev(), meta.ino()),
            buf: Vec::new(),
            start: 0,
            read: Cell::new(0),
            checked: Cell::new(0),
            ranges: None,
        })
    }

    /// Makes the next read go to the file, not to the window read before.
    fn forget_window(&mut self) {
        self.start = u64::MAX;
    }

    /// Whether the file is shorter now than when it was opened: a writer
    /// sealing a file written through its map cut it to its records while
    /// a read-only handle read it. The reader then ends where it ends.
    fn shrank(&mut self) -> Result<bool> {
        let now = self
            .file
            .metadata()
            .map_err(|e| Error::io("reading metadata of", &self.path, e))?
            .len();
        let shorter = now < self.len;
        self.len = self.len.min(now);
        Ok(shorter)
    }

    /// The file's first `FILE_HEADER_LEN` bytes, read alone (not into the
    /// window), or None when the file is shorter.
    fn head(&mut self) -> Result<Option<[u8; FILE_HEADER_LEN as usize]>> {
        let mut h = [0; FILE_HEADER_LEN as usize];
        match self.file.read_exact_at(&mut h, 0) {
            Ok(()) => {
                self.read.set(self.read.get() + FILE_HEADER_LEN);
                Ok(Some(h))
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(Error::io("reading offset 0 of", &self.path, e)),
        }
    }

    /// `n` bytes at `off`, or None when the file ends first (it may end
    /// sooner than it did at open: see `shrank`).
    pub fn bytes(&mut self, off: u64, n: usize) -> Result<Option<&[u8]>> {
        if off + n as u64 > self.len {
            return Ok(None);
        }
        let have = off >= self.start && off - self.start + n as u64 <= self.buf.len() as u64;
        if !have {
            let want = (n.max(WINDOW) as u64).min(self.len - off) as usize;
            // (Beyond the window only for a whole record a merge copies.)
            // The buffer is invalid until the read below succeeds.
            self.forget_window();
            let what = format_args!("offset {off} of {}", self.path.display());
            reserve(&mut self.buf, want, what)?;
            self.buf.resize(want, 0);
            if let Err(e) = self.file.read_exact_at(&mut self.buf, off) {
                if e.kind() == io::ErrorKind::UnexpectedEof && self.shrank()? {
                    return self.bytes(off, n);
                }
                return Err(Error::io(
                    &format!("reading offset {off} of"),
                    &self.path,
                    e,
                ));
            }
            self.read.set(self.read.get() + want as u64);
            self.start = off;
        }
        let from = (off - self.start) as usize;
        Ok(Some(&self.buf[from..from + n]))
    }

    /// Bytes `from..to` if the window read last holds them; no read.
    fn window(&self, from: u64, to: u64) -> Option<&[u8]> {
        let start = self.start;
        let held = from >= start && to - start <= self.buf.len() as u64 && to <= self.len;
        held.then(|| &self.buf[(from - start) as usize..(to - start) as usize])
    }
}

/// The error of a read that found the file shorter than it was a moment
/// before: a writer sealed it under a read-only handle's open.
fn cut_short(r: &FileReader) -> Error {
    Error::new(
        Status::Io,
        format!(
            "{}: cut short while it was read (a writer sealed it): open again",
            r.path.display()
        ),
    )
}

/// Reads exactly `n` bytes at `off` into `buf`, bypassing the window:
/// for skipping over large values without reading them.
fn read_exact_at(r: &FileReader, off: u64, n: usize, buf: &mut Vec<u8>) -> Result<bool> {
    if off + n as u64 > r.len {
        return Ok(false);
    }
    buf.resize(n, 0);
    r.file
        .read_exact_at(buf, off)
        .map_err(|e| Error::io(&format!("reading offset {off} of"), &r.path, e))?;
    r.read.set(r.read.get() + n as u64);
    Ok(true)
}

/// Walks the record headers and keys of a file this handle wrote itself
/// (to write its hint): values are neither read nor checked, so the walk
/// costs a read of each header and key, not of the whole file. Stops at the
/// first record that does not fit, returning its offset.
pub fn walk_own(r: &mut FileReader, mut f: impl FnMut(u64, &RecordHeader, &[u8])) -> Result<u64> {
    let mut off = FILE_HEADER_LEN;
    let mut small = Vec::new();
    while off < r.len {
        let Some(h) = r.bytes(off, RECORD_HEADER_LEN)? else {
            break;
        };
        let hdr = RecordHeader::decode(h);
        if off + hdr.record_len() > r.len || hdr.key_len == 0 {
            break;
        }
        let key_at = off + RECORD_HEADER_LEN as u64;
        let key_len = hdr.key_len as usize;
        // Small records are read through the window; past a few KiB a
        // record's value is skipped with an exact read of header and key.
        if hdr.record_len() <= 4096 {
            let Some(key) = r.bytes(key_at, key_len)? else {
                return Err(cut_short(r));
            };
            f(off, &hdr, key);
        } else if read_exact_at(r, key_at, key_len, &mut small)? {
            f(off, &hdr, &small);
        }
        off += hdr.record_len();
    }
    Ok(off)
}

/// What is at an offset of a data file.
pub enum Probe {
    Record(RecordHeader),
    End,
    Damaged(&'static str),
}

/// Reads and checks the record at `off` (header sanity and CRC).
pub fn probe(r: &mut FileReader, off: u64) -> Result<Probe> {
    if off == r.len {
        return Ok(Probe::End);
    }
    let hdr = match sane_header(r, off)? {
        Ok(hdr) => hdr,
        Err(problem) => return Ok(Probe::Damaged(problem)),
    };
    if record_crc(r, off, off + hdr.record_len(), &[])? != hdr.crc {
        return Ok(Probe::Damaged("record checksum mismatch"));
    }
    Ok(Probe::Record(hdr))
}

/// The header at `off` if it is one bitcask writes and its record fits in
/// the file; otherwise what is wrong with it.
fn sane_header(
    r: &mut FileReader,
    off: u64,
) -> Result<std::result::Result<RecordHeader, &'static str>> {
    let Some(h) = r.bytes(off, RECORD_HEADER_LEN)? else {
        return Ok(Err("record header cut short by the end of the file"));
    };
    let hdr = RecordHeader::decode(h);
    if let Some(problem) = hdr.problem() {
        return Ok(Err(problem));
    }
    if off + hdr.record_len() > r.len {
        return Ok(Err("record cut short by the end of the file"));
    }
    Ok(Ok(hdr))
}

/// The checksum of the record `off..end`: of `head`, standing in for the
/// header's first bytes after the CRC field (none: the file's own), then
/// of the file's bytes after them. Window by window: a damaged length must
/// not make the reader hold what may be the rest of the file.
fn record_crc(r: &mut FileReader, off: u64, end: u64, head: &[u8]) -> Result<u32> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(head);
    each_window(r, off + 4 + head.len() as u64, end, |b| crc.update(b))?;
    r.checked.set(r.checked.get() + end - off - 4);
    Ok(crc.finalize())
}

/// Calls `f` with bytes `from..to` of the file (which holds them), a
/// read-ahead window at a time.
fn each_window(r: &mut FileReader, from: u64, to: u64, mut f: impl FnMut(&[u8])) -> Result<()> {
    let mut at = from;
    while at < to {
        let n = (to - at).min(WINDOW as u64) as usize;
        let Some(bytes) = r.bytes(at, n)? else {
            return Err(cut_short(r));
        };
        f(bytes);
        at += n as u64;
    }
    Ok(())
}

/// The first offset after `off` where a valid record starts, if any.
///
/// Every offset is a candidate. In random bytes about one in a few
/// thousand has a sane header whose claimed record fits in the file, most
/// often by claiming much of what follows: see `claimed_crc`.
pub fn next_valid(r: &mut FileReader, off: u64) -> Result<Option<u64>> {
    let mut at = off + 1;
    while at + (RECORD_HEADER_LEN as u64) < r.len {
        if let Ok(hdr) = sane_header(r, at)? {
            if claimed_crc(r, at, at + hdr.record_len(), &[], off)? == hdr.crc {
                return Ok(Some(at));
            }
        }
        at += 1;
    }
    Ok(None)
}

/// `record_crc` of a record that damage at `damage` (at or before `off`)
/// holds or claims. Crossing damage checks many such records, each
/// perhaps claiming most of the rest of the file: reading each would cost
/// seconds per megabyte of damage in a large file, and crafted bytes can
/// put a sane header claiming 64 KiB at every few offsets. Past `SHORT`
/// bytes the CRC comes from the reader's `RangeCrc` instead, built once
/// from the damage's start: crossing damage costs its own length, about
/// 2 KiB of checksumming per candidate, plus one read of the rest of the
/// file.
fn claimed_crc(r: &mut FileReader, off: u64, end: u64, head: &[u8], damage: u64) -> Result<u32> {
    const SHORT: u64 = 4 << 10;
    let from = off + 4 + head.len() as u64;
    if end - from <= SHORT {
        return record_crc(r, off, end, head);
    }
    let mut ranges = match r.ranges.take() {
        Some(ranges) if ranges.base <= from => ranges,
        _ => RangeCrc::build(r, damage)?,
    };
    let rest = ranges.crc(r, from, end);
    r.ranges = Some(ranges);
    Ok(crc::combine(crc32fast::hash(head), rest?, end - from))
}

/// The CRC of any byte range of a file from `base` on, in time independent
/// of the range's length. With `C(x)` the CRC of bytes `base..x`, `C(b)` is
/// `C(a)` combined with the CRC of `a..b` (see `crc`), so that CRC is
/// `C(b)` xor `C(a)` carried through `b - a` bytes. `C` is kept at every
/// `STRIDE` bytes, and found between them by checksumming at most `STRIDE`
/// bytes.
struct RangeCrc {
    base: u64,
    /// `marks[k]` is `C(base + k * STRIDE)`.
    marks: Vec<u32>,
    /// The bytes after a mark, when the reader's window does not hold them.
    scratch: Vec<u8>,
}

impl RangeCrc {
    /// 4 bytes of marks per KiB of the file past the damage.
    const STRIDE: u64 = 1 << 10;

    /// One read of the file from `base` to its end.
    fn build(r: &mut FileReader, base: u64) -> Result<RangeCrc> {
        let n = ((r.len - base) / Self::STRIDE + 1) as usize;
        let mut marks = Vec::new();
        reserve(
            &mut marks,
            n,
            format_args!("checksums of {}", r.path.display()),
        )?;
        marks.push(0);
        let mut crc = crc32fast::Hasher::new();
        // Windows start at `base` and are whole strides but the last.
        each_window(r, base, r.len, |window| {
            for stride in window.chunks(Self::STRIDE as usize) {
                crc.update(stride);
                if stride.len() as u64 == Self::STRIDE {
                    marks.push(crc.clone().finalize());
                }
            }
        })?;
        r.checked.set(r.checked.get() + r.len - base);
        Ok(RangeCrc {
            base,
            marks,
            scratch: Vec::new(),
        })
    }

    /// `C(x)`, for `base <= x <= r.len`.
    fn crc_to(&mut self, r: &FileReader, x: u64) -> Result<u32> {
        let k = (x - self.base) / Self::STRIDE;
        let from = self.base + k * Self::STRIDE;
        // Crossing damage, the reader's window holds what follows the
        // candidate, and so the ends of most claims: no read. Others (a
        // claim of much of the file) read the bytes after the mark.
        let bytes = match r.window(from, x) {
            Some(bytes) => bytes,
            None => {
                if !read_exact_at(r, from, (x - from) as usize, &mut self.scratch)? {
                    return Err(cut_short(r));
                }
                &self.scratch
            }
        };
        let mut crc = crc32fast::Hasher::new_with_initial(self.marks[k as usize]);
        crc.update(bytes);
        r.checked.set(r.checked.get() + x - from);
        Ok(crc.finalize())
    }

    /// The CRC of bytes `a..b`, for `base <= a <= b <= r.len`.
    fn crc(&mut self, r: &FileReader, a: u64, b: u64) -> Result<u32> {
        let (c_a, c_b) = (self.crc_to(r, a)?, self.crc_to(r, b)?);
        // C(b) = combine(C(a), crc(a..b), b - a): solved for crc(a..b).
        Ok(c_b ^ crc::combine(c_a, 0, b - a))
    }
}

pub struct Damage {
    pub offset: u64,
    pub reason: &'static str,
    /// Where the next valid record starts; None for a torn tail.
    pub next_valid: Option<u64>,
}

/// Scans records from `from` to the end, calling `f(offset, header, key)`
/// for each valid one, and stops at the first damage.
pub fn scan(
    r: &mut FileReader,
    from: u64,
    mut f: impl FnMut(u64, &RecordHeader, &[u8]),
) -> Result<Option<Damage>> {
    let mut off = from;
    loop {
        match probe(r, off)? {
            Probe::End => return Ok(None),
            Probe::Record(hdr) => {
                let at = off + RECORD_HEADER_LEN as u64;
                let Some(key) = r.bytes(at, hdr.key_len as usize)? else {
                    return Err(cut_short(r));
                };
                f(off, &hdr, key);
                off += hdr.record_len();
            }
            Probe::Damaged(reason) => {
                let next_valid = next_valid(r, off)?;
                return Ok(Some(Damage {
                    offset: off,
                    reason,
                    next_valid,
                }));
            }
        }
    }
}

/// Whether a valid record starts at `off` when the file is read again
/// (not from the read-ahead window): a writer appending to the file has
/// written it since the damage there was read.
pub fn written_since(r: &mut FileReader, off: u64) -> Result<bool> {
    r.forget_window();
    Ok(matches!(probe(r, off)?, Probe::Record(_)))
}

/// Whether bytes `from..to` of the file are all zero.
fn zeros(r: &mut FileReader, from: u64, to: u64) -> Result<bool> {
    Ok(r.bytes(from, (to - from) as usize)?
        .is_some_and(|b| b.iter().all(|&x| x == 0)))
}

/// The zero bytes that end the file after `from`: in a torn tail, space a
/// file written through its map allocated ahead of its records
/// (`datafile::PREALLOCATE`), or pages a crash left unwritten (which look
/// the same), or zeros the cut record held.
pub fn trailing_zeros(r: &mut FileReader, from: u64) -> Result<u64> {
    let mut end = r.len;
    while end > from {
        let at = end.saturating_sub(WINDOW as u64).max(from);
        let Some(bytes) = r.bytes(at, (end - at) as usize)? else {
            // The file was cut meanwhile (see `FileReader::shrank`): from
            // its new end.
            end = r.len;
            continue;
        };
        if let Some(i) = bytes.iter().rposition(|&b| b != 0) {
            end = at + i as u64 + 1;
            break;
        }
        end = at;
    }
    Ok(r.len.saturating_sub(end))
}

/// Whether the damaged record at `off` is the mark of a *lost page*: a
/// page of unsynced appends that never reached the disk while later ones
/// did (write-back in any order, then a power loss), which a filesystem
/// reads as zeros. `next` is where the next valid record starts: the
/// records after the lost page, never inside it. One of four shapes:
/// - the record's bytes are zero from its start to its page end, its
///   4-byte CRC at least (it began in the lost page);
/// - its header runs into the next page, which is zero (it began just
///   before the lost page);
/// - its header checks out, and the page holding its end is zero, past
///   its end too (its last page was lost, with the start of the next
///   record);
/// - its header checks out, it ends where `next` starts, a whole page
///   inside it is zero, and neither a single damaged byte nor one flipped
///   bit of a length explains its checksum (a page in the middle of it
///   was lost).
///
/// Bit rot in a record that reached the disk does not zero a CRC. Where
/// the record's own key or value is zero pages, one damaged field can make
/// the other shapes appear; so a record that fills `off..next` (as it is,
/// or with a length field that makes its CRC match: a damaged length) is
/// a lost page only if one damaged byte cannot account for its CRC. What
/// remains takes two damaged bytes in a record of zero pages.
pub fn lost_page(r: &mut FileReader, off: u64, next: u64) -> Result<bool> {
    let page_end = (off / PAGE + 1) * PAGE;
    if page_end - off >= 4 && page_end <= next && zeros(r, off, page_end)? {
        return Ok(true);
    }
    let Some(h) = r.bytes(off, RECORD_HEADER_LEN)? else {
        return Err(cut_short(r));
    };
    let h: [u8; RECORD_HEADER_LEN] = h.try_into().expect("a header's length");
    let hdr = RecordHeader::decode(&h);
    let sane = hdr.problem().is_none();
    if sane && off + hdr.record_len() == next {
        // The record ends where the next valid one starts: a page of it
        // lost, or a byte of it damaged.
        let mut page = page_end;
        while page + PAGE <= next {
            if zeros(r, page, page + PAGE)? {
                return Ok(
                    !one_damaged_byte(r, &hdr, off, next)? && !one_flipped_length_bit(r, &h, off)?
                );
            }
            page += PAGE;
        }
        return Ok(false);
    }
    // A lost page only zeroes bytes, which never lengthens a length
    // field: a sane header that claims to run past `next` is a record cut
    // or damaged, and `next` a record image inside its value (a value may
    // hold zero pages and record images alike), not the record after it.
    if sane && off + hdr.record_len() > next {
        return Ok(false);
    }
    let zero_page = if off + RECORD_HEADER_LEN as u64 > page_end {
        Some(page_end)
    } else if sane {
        // The page of the record's last byte, with the next record's CRC.
        let end = off + hdr.record_len();
        let last_page = (end - 1) / PAGE * PAGE;
        (last_page >= page_end && end + 4 <= last_page + PAGE).then_some(last_page)
    } else {
        None
    };
    let Some(page) = zero_page else {
        return Ok(false);
    };
    if page + PAGE > next || !zeros(r, page, page + PAGE)? {
        return Ok(false);
    }
    Ok(!one_record_with_damaged_length(r, &h, off, next)?)
}

/// The bytewise table of CRC-32 (IEEE, reflected): the CRC, without its
/// initial and final inversion, of each single byte.
fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    for (v, e) in t.iter_mut().enumerate() {
        let mut c = v as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *e = c;
    }
    t
}

/// Whether one damaged byte of the record `off..end` (in the part its CRC
/// covers, or in the stored CRC) accounts for its checksum mismatch.
///
/// The CRC is linear: the computed CRC xor the stored one (the syndrome)
/// is the CRC, without inversions, of the damage alone. Damage `v` in the
/// byte `k` bytes before the end gives `table[v]` carried through `k` zero
/// bytes; carrying the syndrome back one zero byte at a time (the step is
/// invertible: each table entry has its own top byte) and finding a table
/// entry finds such a byte.
fn one_damaged_byte(r: &mut FileReader, hdr: &RecordHeader, off: u64, end: u64) -> Result<bool> {
    let syndrome = claimed_crc(r, off, end, &[], off)? ^ hdr.crc;
    if (0..4).any(|i| syndrome & !(0xff << (8 * i)) == 0) {
        return Ok(true); // the stored CRC's own byte
    }
    let table = crc_table();
    let mut by_top = [0u8; 256];
    for (v, e) in table.iter().enumerate() {
        by_top[(e >> 24) as usize] = v as u8;
    }
    let mut s = syndrome;
    for _ in off + 4..end {
        let v = by_top[(s >> 24) as usize];
        if table[v as usize] == s {
            return Ok(true);
        }
        // Undo one zero byte: s = table[c & 0xff] ^ (c >> 8).
        s = ((s ^ table[v as usize]) << 8) | v as u32;
    }
    Ok(false)
}

/// Whether one flipped bit of the record's key or value length makes its
/// CRC match over the length that results (within the file): a damaged
/// length can make a record end early, where a record stored inside its
/// value happens to start, and so look like one that fills the span to
/// the next valid record.
fn one_flipped_length_bit(
    r: &mut FileReader,
    h: &[u8; RECORD_HEADER_LEN],
    off: u64,
) -> Result<bool> {
    let hdr = RecordHeader::decode(h);
    let keys = (0..16).map(|bit| mended(h, hdr.key_len ^ 1 << bit, hdr.value_len));
    let values = (0..31).map(|bit| mended(h, hdr.key_len, hdr.value_len ^ 1 << bit));
    let fixed: Vec<_> = keys.chain(values).collect();
    let len = r.len;
    let within = fixed.into_iter().filter_map(|h| {
        let d = RecordHeader::decode(&h);
        let end = off + d.record_len();
        (d.key_len != 0 && end <= len).then_some((h, end))
    });
    any_matches(r, off, hdr.crc, within)
}

/// Whether one of the mended headers `fixed` (each with the end of its
/// record) gives the record at `off` the checksum `crc`.
fn any_matches(
    r: &mut FileReader,
    off: u64,
    crc: u32,
    fixed: impl Iterator<Item = ([u8; RECORD_HEADER_LEN], u64)>,
) -> Result<bool> {
    for (h, end) in fixed {
        if claimed_crc(r, off, end, &h[4..], off)? == crc {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `off..next` holds one record whose key or value length alone
/// was damaged: its CRC matches with that length set to fill the span.
fn one_record_with_damaged_length(
    r: &mut FileReader,
    h: &[u8; RECORD_HEADER_LEN],
    off: u64,
    next: u64,
) -> Result<bool> {
    let hdr = RecordHeader::decode(h);
    let Some(body) = (next - off).checked_sub(RECORD_HEADER_LEN as u64) else {
        return Ok(false);
    };
    let mut fixed = Vec::new();
    if let Some(value_len) = body.checked_sub(hdr.key_len as u64) {
        if let Ok(v) = u32::try_from(value_len) {
            fixed.push(mended(h, hdr.key_len, v));
        }
    }
    if let Some(key_len) = body.checked_sub(hdr.value_len as u64) {
        if let Ok(k @ 1..) = u16::try_from(key_len) {
            fixed.push(mended(h, k, hdr.value_len));
        }
    }
    any_matches(r, off, hdr.crc, fixed.into_iter().map(|h| (h, next)))
}

/// Header `h` with its key and value lengths set (the fields `decode`
/// reads at 12..14 and 14..18).
fn mended(h: &[u8; RECORD_HEADER_LEN], key_len: u16, value_len: u32) -> [u8; RECORD_HEADER_LEN] {
    let mut h = *h;
    h[12..14].copy_from_slice(&key_len.to_le_bytes());
    h[14..18].copy_from_slice(&value_len.to_le_bytes());
    h
}

/// Whether a data file's first page is zero while later bytes exist: the
/// page with its header was lost (see `lost_page`), not the whole file.
pub fn lost_header_page(r: &mut FileReader) -> Result<bool> {
    Ok(r.len > PAGE && zeros(r, 0, PAGE)?)
}

/// Open's recovery of lost pages: when every damage in the file `r` reads
/// is a lost page or a torn tail, rewrites the file without them (as
/// repair would: records before the first damage keep their offsets) and
/// returns a reader of the new file and the bytes dropped. Otherwise it
/// fails with the first other damage and changes nothing.
pub fn rewrite_lost_pages(dir: &Path, r: &FileReader) -> Result<(FileReader, u64)> {
    rewrite_without_damage(dir, &r.path, |r, off, next| match next {
        Some(next) => lost_page(r, off, next),
        None => Ok(true),
    })?;
    let new = FileReader::open(&r.path)?;
    let dropped = r.len - new.len;
    Ok((new, dropped))
}

pub fn damage_error(path: &Path, d: &Damage) -> Error {
    Error::corruption(format!(
        "{}: offset {}: {}{} (open with the repair option to skip damaged records)",
        path.display(),
        d.offset,
        d.reason,
        if d.next_valid.is_some() {
            ", with valid records after it"
        } else {
            ""
        }
    ))
}

/// Whether a data file's header differs from this version's in at most 4
/// bits: damage to this version's header, not another version's.
pub fn header_bit_rot(r: &mut FileReader) -> Result<bool> {
    let want = format::file_header(&format::DATA_MAGIC);
    Ok(r.bytes(0, FILE_HEADER_LEN as usize)?.is_some_and(|h| {
        h.iter()
            .zip(want)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum::<u32>()
            <= 4
    }))
}

/// Checks a data file's header. `Ok(false)` means no header reached the
/// disk: the file is too short to hold one, or it is zero bytes throughout
/// (a power loss can keep a file's size but not its data). Either way it
/// holds no record.
pub fn check_header(r: &mut FileReader) -> Result<bool> {
    // The header alone (a window here would read a megabyte of every data
    // file at open, even those whose hint then serves the keydir); the
    // rest of the file only when the header is zeros.
    match r.head()? {
        None => Ok(false),
        Some(h) if h == [0; FILE_HEADER_LEN as usize] && all_zero(r)? => Ok(false),
        Some(h) => format::check_file_header(&h, &format::DATA_MAGIC, &r.path).map(|_| true),
    }
}

/// Whether every byte is zero; stops at the first one that is not (at once
/// for any file with a header, whose magic is not zero).
fn all_zero(r: &mut FileReader) -> Result<bool> {
    let mut off = 0;
    while off < r.len {
        let n = (r.len - off).min(WINDOW as u64) as usize;
        let Some(bytes) = r.bytes(off, n)? else {
            return Err(cut_short(r));
        };
        if bytes.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        off += n as u64;
    }
    Ok(true)
}

/// Refuses, before open changes anything, a directory holding a data file
/// of a format version this library does not read (`VersionMismatch`).
/// Every other header problem is left to the checks that follow.
/// Reads only the 16 header bytes of each file (not a read-ahead window).
pub fn check_versions(dir: &Path, ids: &[u64]) -> Result<()> {
    for &id in ids {
        let path = dir.join(datafile::data_name(id));
        let file = match File::open(&path) {
            Ok(f) => f,
            // Deleted since the listing (a read-only handle beside a
            // merge): `check_data_file` judges it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("opening", &path, e)),
        };
        let mut h = [0u8; FILE_HEADER_LEN as usize];
        match file.read_exact_at(&mut h, 0) {
            Ok(()) => {}
            // Too short for a header: the checks that follow judge it.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => continue,
            Err(e) => return Err(Error::io("reading offset 0 of", &path, e)),
        }
        match format::check_file_header(&h, &format::DATA_MAGIC, &path) {
            Err(e) if e.status() == Status::VersionMismatch => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Rewrites a damaged data file keeping only its valid records, in order
/// (records before the first damage keep their offsets). `leave_out(r,
/// offset, next)` judges each damaged region, from `offset` to the next
/// valid record (`next`; None: to the end): repair leaves out any, open
/// only lost pages. When it refuses one, the file stays as it was and the
/// error names that damage. Returns how many regions were left out.
pub fn rewrite_without_damage(
    dir: &Path,
    path: &Path,
    mut leave_out: impl FnMut(&mut FileReader, u64, Option<u64>) -> Result<bool>,
) -> Result<u64> {
    let mut r = FileReader::open(path)?;
    let tmp = path.with_extension("data.tmp");
    let mut out =
        io::BufWriter::new(File::create(&tmp).map_err(|e| Error::io("creating", &tmp, e))?);
    let werr = |e: io::Error| Error::io("writing", &tmp, e);
    out.write_all(&format::file_header(&format::DATA_MAGIC))
        .map_err(werr)?;
    let mut skipped = 0;
    let mut off = FILE_HEADER_LEN;
    loop {
        match probe(&mut r, off)? {
            Probe::End => break,
            Probe::Record(hdr) => {
                let end = off + hdr.record_len();
                let mut written = Ok(());
                each_window(&mut r, off, end, |bytes| {
                    if written.is_ok() {
                        written = out.write_all(bytes);
                    }
                })?;
                written.map_err(werr)?;
                off = end;
            }
            Probe::Damaged(reason) => {
                let next = next_valid(&mut r, off)?;
                if !leave_out(&mut r, off, next)? {
                    drop(out);
                    let _ = fs::remove_file(&tmp);
                    let d = Damage {
                        offset: off,
                        reason,
                        next_valid: next,
                    };
                    return Err(damage_error(path, &d));
                }
                skipped += 1;
                match next {
                    Some(next) => off = next,
                    None => break,
                }
            }
        }
    }
    let file = out.into_inner().map_err(|e| werr(e.into_error()))?;
    file.sync_all().map_err(werr)?;
    fs::rename(&tmp, path).map_err(|e| Error::io("renaming repaired file to", path, e))?;
    sync_dir(dir)?;
    Ok(skipped)
}

/// Repair: moves a file whose header is unreadable out of the way.
pub fn set_aside(dir: &Path, path: &Path) -> Result<()> {
    let aside = path.with_extension("data.corrupt");
    // (Ids are not reused, so only a file put there by hand is in the way;
    // the write lock keeps any other handle from racing this check.)
    if aside.exists() {
        return Err(Error::new(
            Status::Io,
            format!(
                "cannot set aside {}: {} exists; move it away",
                path.display(),
                aside.display()
            ),
        ));
    }
    fs::rename(path, &aside).map_err(|e| Error::io("setting aside", path, e))?;
    sync_dir(dir)
}

/// Removes leftovers of interrupted writes (`*.tmp`).
pub fn remove_temporaries(dir: &Path, names: &[String]) -> Result<()> {
    let mut removed = false;
    for n in names.iter().filter(|n| n.ends_with(".tmp")) {
        datafile::remove_file(&dir.join(n))?;
        removed = true;
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut rec = Vec::new();
        format::encode_record(&mut rec, 5, 0, 0, key, value);
        rec
    }

    /// Damage that a writer fills after it was read (bytes not written yet
    /// when a read-only open read them, with a record written after them
    /// by the time it looked further) reads as a record when read again:
    /// the read goes to the file, not to the window read before.
    #[test]
    fn damage_written_since_it_was_read_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0000000000000001.data");
        let (a, b, c) = (record(b"a", b"1"), record(b"b", b"2"), record(b"c", b"3"));
        let mut file = format::file_header(&format::DATA_MAGIC).to_vec();
        file.extend_from_slice(&a);
        file.extend(std::iter::repeat_n(0u8, b.len()));
        file.extend_from_slice(&c);
        fs::write(&path, &file).unwrap();
        let mut r = FileReader::open(&path).unwrap();
        let d = scan(&mut r, FILE_HEADER_LEN, |_, _, _| {})
            .unwrap()
            .unwrap();
        let at = FILE_HEADER_LEN + a.len() as u64;
        assert_eq!((d.offset, d.next_valid), (at, Some(at + b.len() as u64)));
        assert!(!written_since(&mut r, at).unwrap());
        let w = fs::OpenOptions::new().write(true).open(&path).unwrap();
        w.write_all_at(&b, at).unwrap();
        assert!(written_since(&mut r, at).unwrap());
        assert!(scan(&mut r, at, |_, _, _| {}).unwrap().is_none());
    }

    /// The inverse step `one_damaged_byte` takes needs each table entry to
    /// have its own top byte; and the syndrome of one damaged byte is found
    /// wherever the byte is, while two damaged bytes are not taken for one.
    #[test]
    fn one_damaged_byte_is_found_by_its_syndrome() {
        let table = crc_table();
        let mut tops: Vec<u32> = table.iter().map(|e| e >> 24).collect();
        tops.sort_unstable();
        tops.dedup();
        assert_eq!(tops.len(), 256);
        assert_eq!(table[1], 0x7707_3096);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0000000000000001.data");
        let value: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut rec = format::encode_header(5, 0, 0, b"key", &value).to_vec();
        rec.extend_from_slice(b"key");
        rec.extend_from_slice(&value);
        let mut file = format::file_header(&format::DATA_MAGIC).to_vec();
        file.extend_from_slice(&rec);
        let (off, end) = (FILE_HEADER_LEN, file.len() as u64);
        let check = |bytes: &[u8]| {
            fs::write(&path, bytes).unwrap();
            let mut r = FileReader::open(&path).unwrap();
            let h = RecordHeader::decode(r.bytes(off, RECORD_HEADER_LEN).unwrap().unwrap());
            one_damaged_byte(&mut r, &h, off, end).unwrap()
        };
        for at in [16, 18, 19, 20, 24, 30, 37, 38, 500, 2999, file.len() - 1] {
            for v in [0x01, 0x80, 0xff, 0x5a] {
                let mut b = file.clone();
                b[at] ^= v;
                assert!(check(&b), "byte {at} ^ {v:#x}");
            }
        }
        let mut misses = 0;
        for (a, z) in [(20, 21), (30, 900), (100, 3000), (17, 40)] {
            let mut b = file.clone();
            b[a] ^= 0x11;
            b[z] ^= 0x22;
            misses += !check(&b) as u32;
        }
        assert_eq!(misses, 4, "two damaged bytes taken for one");
    }

    /// A deterministic stream of bytes that are no record.
    fn noise(n: usize, mut seed: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn range_crc_is_the_crc_of_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0000000000000001.data");
        let stride = RangeCrc::STRIDE as usize;
        let bytes = noise(3 * WINDOW + 5 * stride + 123, 7);
        fs::write(&path, &bytes).unwrap();
        let mut r = FileReader::open(&path).unwrap();
        let base = 1001;
        let mut ranges = RangeCrc::build(&mut r, base as u64).unwrap();
        let len = bytes.len();
        for (a, b) in [
            (base, base),
            (base, base + 1),
            (base, base + stride),
            (base + 1, base + stride + 1),
            (base + stride, base + 2 * stride),
            (base + 5, len),
            (len - 1, len),
            (len, len),
            (base + 3 * stride - 1, base + WINDOW + 17),
            (base + 12345, base + 2 * WINDOW + 678),
        ] {
            let got = ranges.crc(&r, a as u64, b as u64).unwrap();
            assert_eq!(got, crc32fast::hash(&bytes[a..b]), "{a}..{b}");
        }
        // Ends moving forward a few bytes at a time, as through crafted
        // damage, then jumping about (from the window or read).
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as usize
        };
        let forward = (0..3000).map(|i| (base + 7 * i, base + 7 * i + 65_299));
        let jumping = (0..300).map(|_| {
            let (a, b) = (base + next() % (len - base), base + next() % (len - base));
            (a.min(b), a.max(b))
        });
        for (a, b) in forward.chain(jumping).collect::<Vec<_>>() {
            let got = ranges.crc(&r, a as u64, b as u64).unwrap();
            assert_eq!(got, crc32fast::hash(&bytes[a..b]), "{a}..{b}");
        }
    }

    /// Damage crafted to hold a sane header at every 6th offset, each
    /// claiming 65,299 bytes (`00 ff 00 00 00 00` repeated: key length
    /// 0xff00, no value) with a CRC that does not match, or, at every 12th,
    /// claims of 65,299 and 5,139 bytes in turn: each candidate costs a few
    /// KiB of checksumming, not its claim, and the file is read about
    /// once. (Checksumming each claim took 0.21-0.25 s per MiB of the
    /// first; reading ahead from where a claim ended, tried first, read
    /// 5.8 GB per MiB of the second.)
    #[test]
    fn crafted_damage_is_crossed_without_checksumming_each_claim() {
        let one: &[u8] = &[0, 0xff, 0, 0, 0, 0];
        let two: &[u8] = &[0, 0xff, 0, 0, 0, 0, 0, 0x14, 0, 0, 0, 0];
        for pattern in [one, two] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("0000000000000001.data");
            let mut bytes = format::file_header(&format::DATA_MAGIC).to_vec();
            let damage = bytes.len();
            bytes.extend(pattern.iter().copied().cycle().take(256 << 10));
            let record_at = bytes.len();
            bytes.extend_from_slice(&record(b"key", &noise(200 << 10, 5)));
            fs::write(&path, &bytes).unwrap();
            let mut r = FileReader::open(&path).unwrap();
            let found = next_valid(&mut r, damage as u64).unwrap();
            assert_eq!(found, Some(record_at as u64));
            let (checked, candidates) = (r.checked.get(), (256u64 << 10) / 6);
            assert!(
                checked < bytes.len() as u64 + candidates * 4096,
                "{checked} bytes checksummed for {candidates} candidates"
            );
            let read = r.read.get();
            assert!(read < 3 * bytes.len() as u64, "read {read} bytes");
        }
    }

    /// Damage where many offsets hold sane headers claiming long records
    /// (what random bytes hold about once in a few thousand): finding the
    /// record after it reads each claimed record's CRC off a `RangeCrc`,
    /// not the record, so the scan reads about the file once, not once per
    /// candidate.
    #[test]
    fn crossing_damage_reads_the_file_about_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0000000000000001.data");
        let mut bytes = format::file_header(&format::DATA_MAGIC).to_vec();
        let damage = bytes.len();
        let mut garbage = noise(64 << 10, 3);
        // 64 candidates, each a sane header claiming 4 MiB with a CRC
        // that does not match.
        for at in (0..garbage.len()).step_by(1024) {
            let claim = format::encode_header(9, 0, 0, b"k", &vec![0; 4 << 20]);
            garbage[at..at + RECORD_HEADER_LEN].copy_from_slice(&claim);
        }
        bytes.extend_from_slice(&garbage);
        let record_at = bytes.len();
        let value = noise(5 << 20, 5);
        bytes.extend_from_slice(&format::encode_header(1, 0, 0, b"key", &value));
        bytes.extend_from_slice(b"key");
        bytes.extend_from_slice(&value);
        fs::write(&path, &bytes).unwrap();
        let mut r = FileReader::open(&path).unwrap();
        let found = next_valid(&mut r, damage as u64).unwrap();
        assert_eq!(found, Some(record_at as u64));
        let read = r.read.get();
        assert!(
            read < 3 * bytes.len() as u64,
            "read {read} bytes of a {}-byte file",
            bytes.len()
        );
    }

    /// A record header whose value length was damaged to claim most of the
    /// file is checked a window at a time: the reader never holds more
    /// than its window, and a record that does check out is found as
    /// before.
    #[test]
    fn probing_a_huge_claimed_record_reads_it_window_by_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0000000000000001.data");
        let value = vec![7u8; 3 * WINDOW + 5];
        let mut rec = format::encode_header(1, 0, 0, b"k", &value).to_vec();
        rec.extend_from_slice(b"k");
        rec.extend_from_slice(&value);
        let mut bytes = format::file_header(&format::DATA_MAGIC).to_vec();
        bytes.extend_from_slice(&rec);
        fs::write(&path, &bytes).unwrap();
        let mut r = FileReader::open(&path).unwrap();
        assert!(matches!(
            probe(&mut r, FILE_HEADER_LEN).unwrap(),
            Probe::Record(_)
        ));
        assert!(r.buf.capacity() <= WINDOW, "{}", r.buf.capacity());

        let at = FILE_HEADER_LEN as usize + WINDOW;
        bytes[at] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let mut r = FileReader::open(&path).unwrap();
        assert!(matches!(
            probe(&mut r, FILE_HEADER_LEN).unwrap(),
            Probe::Damaged("record checksum mismatch")
        ));
        assert!(r.buf.capacity() <= WINDOW, "{}", r.buf.capacity());
    }
}
