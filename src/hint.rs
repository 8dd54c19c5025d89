//! Hint files: per sealed data file, one entry per record (where it is and
//! what it is, without the value), so open can rebuild the keydir without
//! reading values.
//!
//! Layout (docs/FORMAT.md, hint version 4): the 16-byte file header with
//! magic "BITCASKH", then the entries, then a trailer. An entry is
//! `hash u32 | offset u32 | flags u8 | key_len var | value_len var |
//! timestamp - base var | [expiry u32] | key`, `var` an unsigned LEB128 in
//! its shortest form; the expiry is present only when flag 0x80 is set.
//! Entries are sorted by key hash (the keydir's hash under the seed in the
//! trailer), records of one key in file order, and so fall into
//! `PARTITIONS` runs by the hash's top bits, the keydir's shards. The
//! trailer is a table of `count u32 | end u64` per partition, then
//! `seed 2 x u64 | data_id u64 | data_len u64 | base u32 | crc32 u32`
//! (`base` the smallest record timestamp), the CRC covering every byte
//! before it. A hint that is missing, truncated, fails
//! its CRC, or names another data file, length or seed is ignored and the
//! data file scanned.

use crate::datafile::sync_dir;
use crate::error::{Error, Result, Status};
use crate::format::{self, RecordHeader, FILE_HEADER_LEN, HINT_MAGIC, RECORD_HEADER_LEN};
use crate::keydir::{fold, shard_of, Seed, SHARDS};
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Runs of entries by the top bits of the hash: one per keydir shard.
pub(crate) const PARTITIONS: usize = SHARDS;
/// hash, offset, flags: the bytes before an entry's varints.
const ENTRY_FIXED: usize = 9;
/// The smallest entry: three one-byte varints and a one-byte key.
const ENTRY_MIN: u64 = ENTRY_FIXED as u64 + 4;
/// Hint-only flag: the entry carries the record's expiry.
pub(crate) const FLAG_EXPIRES: u8 = 0x80;
const TABLE_ROW: usize = 12;
const TABLE_LEN: u64 = (PARTITIONS * TABLE_ROW) as u64;
/// Partition table, seed, data_id, data_len, timestamp base, crc.
pub(crate) const TRAILER_LEN: u64 = TABLE_LEN + 40;
/// An entry as the writer holds it until the base is known:
/// `hash u32 | offset u32 | value_len u32 | timestamp u32 | key_len u16 |
/// flags u8 | [expiry u32] | key`, the expiry there when flag 0x80 is.
const RAW_FIXED: usize = 19;

pub fn hint_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.hint"))
}

/// Parses `{16 hex digits}.hint`.
pub fn parse_hint_name(name: &str) -> Option<u64> {
    crate::datafile::parse_id(name, ".hint")
}

/// Entries a writer holds in memory before it moves them to its spill file
/// (when it has one).
const SPILL_AT: usize = 4 << 20;

/// Where a writer keeps the entries it moved out of memory: a `*.tmp` file
/// in the database directory (so that an open after a crash removes it),
/// removed when the writer is done.
struct Spill {
    file: File,
    path: PathBuf,
    len: u64,
    /// Per partition, `(offset, len, crc)` of each of its runs in the file,
    /// in file order. (The file is never synced: if writeback failed and
    /// the pages were dropped, the CRC tells.)
    runs: Vec<Vec<(u64, usize, u32)>>,
}

impl Spill {
    fn create(dir: &Path, id: u64) -> std::io::Result<Spill> {
        let path = tmp_path(dir, id, "hint.spill");
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(Spill {
            file,
            path,
            len: 0,
            runs: vec![Vec::new(); PARTITIONS],
        })
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// `{id:016x}.{what}.{pid}-{n}.tmp` in `dir`: unique among the temporary
/// files of this process and of any other that may have left some behind
/// (a read-write open removes every `*.tmp`).
fn tmp_path(dir: &Path, id: u64, what: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    dir.join(format!("{id:016x}.{what}.{}-{n}.tmp", std::process::id()))
}

/// Builds the hint of one data file from its records, given in file order,
/// and writes it sorted. Entries wait per partition, in file order, in a
/// fixed layout (`RAW_FIXED`): in memory, about key + 19 bytes per record
/// (4 more with an expiry); with `spill_into`, in memory up to `SPILL_AT`
/// bytes and beyond that in a spill file, from which `finish` reads one
/// partition at a time, so that sealing, merging or scanning a large file
/// on a small device needs a few MiB rather than a third of its size.
pub struct HintWriter {
    id: u64,
    seed: Seed,
    /// Where the previous entry's record ended (offsets must increase).
    next_offset: u64,
    /// The smallest record timestamp so far: entries store theirs as the
    /// difference, mostly one or two bytes.
    base: u32,
    /// Per partition, the entries not in the spill file.
    parts: Vec<Vec<u8>>,
    /// Bytes in `parts`.
    held: usize,
    /// `SPILL_AT`, but for tests.
    spill_at: usize,
    spill_dir: Option<PathBuf>,
    spill: Option<Spill>,
}

impl HintWriter {
    pub fn create(id: u64, seed: Seed) -> HintWriter {
        HintWriter {
            id,
            seed,
            next_offset: FILE_HEADER_LEN,
            base: u32::MAX,
            parts: vec![Vec::new(); PARTITIONS],
            held: 0,
            spill_at: SPILL_AT,
            spill_dir: None,
            spill: None,
        }
    }

    /// Lets the writer move entries to a temporary file in `dir` once it
    /// holds `SPILL_AT` bytes of them.
    pub fn spill_into(mut self, dir: &Path) -> HintWriter {
        self.spill_dir = Some(dir.to_path_buf());
        self
    }

    #[cfg(test)]
    fn spills(&self) -> bool {
        self.spill.as_ref().is_some_and(|s| s.len > 0)
    }

    /// Moves every partition's entries to the spill file. If the file
    /// cannot be made or written, entries stay in memory from then on: a
    /// hint that costs memory beats none.
    fn spill_parts(&mut self) {
        let Some(dir) = &self.spill_dir else { return };
        if self.spill.is_none() {
            match Spill::create(dir, self.id) {
                Ok(s) => self.spill = Some(s),
                Err(_) => return self.spill_dir = None,
            }
        }
        let spill = self.spill.as_mut().expect("made above");
        for (p, part) in self.parts.iter_mut().enumerate() {
            if part.is_empty() {
                continue;
            }
            if spill.file.write_all_at(part, spill.len).is_err() {
                return self.spill_dir = None;
            }
            spill.runs[p].push((spill.len, part.len(), crc32fast::hash(part)));
            spill.len += part.len() as u64;
            self.held -= part.len();
            part.clear();
        }
    }

    /// Partition `p`'s entries, in file order: those in the spill file,
    /// then those in memory.
    fn take_part(&mut self, p: usize) -> std::io::Result<Vec<u8>> {
        let part = std::mem::take(&mut self.parts[p]);
        let Some(spill) = self.spill.as_ref().filter(|s| !s.runs[p].is_empty()) else {
            return Ok(part);
        };
        let spilled: usize = spill.runs[p].iter().map(|&(_, len, _)| len).sum();
        let mut bytes = Vec::new();
        try_reserve(&mut bytes, spilled.saturating_add(part.len()))?;
        bytes.resize(spilled, 0);
        let mut at = 0;
        for &(offset, len, crc) in &spill.runs[p] {
            let run = &mut bytes[at..at + len];
            spill.file.read_exact_at(run, offset)?;
            if crc32fast::hash(run) != crc {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{}: offset {offset}: the entries read back are not those written",
                        spill.path.display()
                    ),
                ));
            }
            at += len;
        }
        bytes.extend_from_slice(&part);
        Ok(bytes)
    }

    /// Adds the entry of the next record, which starts at `offset`;
    /// returns the key's hash (the keydir's, under the writer's seed).
    pub fn add(&mut self, offset: u64, hdr: &RecordHeader, key: &[u8]) -> Result<u32> {
        let hash = self.seed.hash(key);
        self.add_hashed(offset, hdr, key, hash)?;
        Ok(hash)
    }

    /// `add` for a caller that has the key's hash under this writer's seed.
    pub fn add_hashed(
        &mut self,
        offset: u64,
        hdr: &RecordHeader,
        key: &[u8],
        hash: u32,
    ) -> Result<()> {
        debug_assert_eq!(hash, self.seed.hash(key));
        if offset > u32::MAX as u64 {
            return Err(Error::corruption(format!(
                "data file {:016x}: a record at offset {offset}, past 4 GiB, where bitcask \
                 never writes one",
                self.id
            )));
        }
        if offset < self.next_offset {
            return Err(Error::internal(format!(
                "hint of data file {:016x}: entry for offset {offset} after {}",
                self.id, self.next_offset
            )));
        }
        if let Some(problem) = hdr.problem() {
            // (Unknown flag bit 0x80 would also frame the entry wrongly.)
            return Err(Error::corruption(format!(
                "data file {:016x}: offset {offset}: {problem} (flags {:#04x})",
                self.id, hdr.flags
            )));
        }
        let b = &mut self.parts[shard_of(hash)];
        if b.try_reserve(RAW_FIXED + 4 + key.len()).is_err() {
            let what = format_args!("the hint of data file {:016x}", self.id);
            return Err(Error::no_memory(b.len() + RAW_FIXED + 4 + key.len(), what));
        }
        self.next_offset = offset + hdr.record_len();
        self.base = self.base.min(hdr.timestamp);
        let before = b.len();
        for field in [hash, offset as u32, hdr.value_len, hdr.timestamp] {
            b.extend_from_slice(&field.to_le_bytes());
        }
        b.extend_from_slice(&hdr.key_len.to_le_bytes());
        if hdr.expiry != 0 {
            b.push(hdr.flags | FLAG_EXPIRES);
            b.extend_from_slice(&hdr.expiry.to_le_bytes());
        } else {
            b.push(hdr.flags);
        }
        b.extend_from_slice(key);
        self.held += b.len() - before;
        if self.held >= self.spill_at {
            self.spill_parts();
        }
        Ok(())
    }

    /// The length of the raw entry at the start of `e`.
    fn raw_len(e: &[u8]) -> usize {
        let key_len = u16::from_le_bytes([e[16], e[17]]) as usize;
        RAW_FIXED + if e[18] & FLAG_EXPIRES != 0 { 4 } else { 0 } + key_len
    }

    /// Appends the hint entry of the raw entry `e` (see `RAW_FIXED`) to
    /// `out`.
    fn encode(&self, e: &[u8], out: &mut Vec<u8>) {
        let key_len = u16::from_le_bytes([e[16], e[17]]);
        out.extend_from_slice(&e[..8]);
        out.push(e[18]);
        put_varint(out, key_len as u32);
        put_varint(out, format::u32_at(e, 8));
        put_varint(out, format::u32_at(e, 12) - self.base);
        out.extend_from_slice(&e[RAW_FIXED..Self::raw_len(e)]);
    }

    /// The whole hint file for a data file of `data_len` bytes.
    fn write_to(mut self, out: &mut impl Write, data_len: u64) -> std::io::Result<()> {
        let mut crc = crc32fast::Hasher::new();
        let mut put = |out: &mut dyn Write, bytes: &[u8]| {
            crc.update(bytes);
            out.write_all(bytes)
        };
        put(out, &format::file_header(&HINT_MAGIC))?;
        if self.next_offset == FILE_HEADER_LEN {
            self.base = 0; // no entries
        }
        let mut table = Vec::with_capacity(TABLE_LEN as usize);
        let mut end = FILE_HEADER_LEN;
        let (mut entries, mut index) = (Vec::new(), Vec::new());
        for p in 0..PARTITIONS {
            let part = self.take_part(p)?;
            // `(hash, position)` of each entry: positions grow in file
            // order, so sorting keeps a key's records in the order they
            // were written.
            index.clear();
            entries.clear();
            // Room first (entries take RAW_FIXED bytes at least, and
            // encode to at most 3 more than their raw bytes).
            try_reserve(&mut index, part.len() / RAW_FIXED)?;
            try_reserve(&mut entries, part.len() + part.len() / RAW_FIXED * 3)?;
            let mut at = 0;
            while at < part.len() {
                index.push((format::u32_at(&part, at), at));
                at += Self::raw_len(&part[at..]);
            }
            index.sort_unstable();
            for &(_, at) in &index {
                self.encode(&part[at..], &mut entries);
            }
            put(out, &entries)?;
            end += entries.len() as u64;
            table.extend_from_slice(&(index.len() as u32).to_le_bytes());
            table.extend_from_slice(&end.to_le_bytes());
        }
        put(out, &table)?;
        let mut tail = [0u8; 36];
        tail[0..8].copy_from_slice(&self.seed.0.to_le_bytes());
        tail[8..16].copy_from_slice(&self.seed.1.to_le_bytes());
        tail[16..24].copy_from_slice(&self.id.to_le_bytes());
        tail[24..32].copy_from_slice(&data_len.to_le_bytes());
        tail[32..36].copy_from_slice(&self.base.to_le_bytes());
        put(out, &tail)?;
        out.write_all(&crc.finalize().to_le_bytes())
    }

    /// Writes the hint for a data file of `data_len` bytes under a
    /// temporary name, syncs it and renames it into place.
    #[cfg(test)]
    pub fn finish(self, data_len: u64, dir: &Path) -> Result<()> {
        self.finish_synced(data_len, dir, &|r| r)
    }

    /// `finish`, passing the result of each fsync (the hint's, and the
    /// directory's after the rename) through `synced` first: a handle
    /// fails on a failed fsync, where a hint that cannot be written only
    /// costs a scan at the next open.
    pub fn finish_synced(
        self,
        data_len: u64,
        dir: &Path,
        synced: &dyn Fn(Result<()>) -> Result<()>,
    ) -> Result<()> {
        let id = self.id;
        write_atomically(dir, id, |out| self.write_to(out, data_len), synced)
    }

    /// The hint as a source for loading without a file (open's scans
    /// that cannot write it). Fails if a spilled run cannot be read back,
    /// or with `NoMemory`.
    pub fn into_hint(self, data_len: u64) -> Result<Hint> {
        let mut bytes = Vec::new();
        let (id, seed) = (self.id, self.seed);
        // (Saturating: a size that does not fit a 32-bit usize fails to
        // reserve rather than wraps.)
        let spilled = self.spill.as_ref().map_or(0, |s| s.len);
        let raw = usize::try_from(spilled)
            .unwrap_or(usize::MAX)
            .saturating_add(self.held);
        let whole = (raw / RAW_FIXED * 3)
            .saturating_add(raw)
            .saturating_add((FILE_HEADER_LEN + TRAILER_LEN) as usize);
        let what = format_args!("the hint of data file {id:016x}");
        crate::error::reserve(&mut bytes, whole, what)?;
        let spill = self.spill.as_ref().map(|s| s.path.clone());
        if let Err(e) = self.write_to(&mut bytes, data_len) {
            if e.kind() == std::io::ErrorKind::OutOfMemory {
                return Err(Error::no_memory(whole, what));
            }
            let path = spill.unwrap_or_default();
            return Err(Error::io(
                "reading back the hint entries spilled to",
                &path,
                e,
            ));
        }
        let trailer = &bytes[bytes.len() - TRAILER_LEN as usize..];
        let (table, base) = (read_table(trailer), read_base(trailer));
        Ok(Hint {
            // An Arc of the Vec, not of its bytes: that would copy them.
            src: Src::Mem(Arc::new(bytes)),
            path: PathBuf::from(format!("(hint of {id:016x} in memory)")),
            data_len,
            seed,
            base,
            table,
            crc: None,
        })
    }
}

/// `v.try_reserve(n)`, failing as an I/O error of kind `OutOfMemory` (what
/// `write_to` returns).
fn try_reserve<T>(v: &mut Vec<T>, n: usize) -> std::io::Result<()> {
    v.try_reserve(n)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::OutOfMemory))
}

/// Writes hint `id` under a temporary name, syncs it and renames it into
/// place (each fsync's result passed through `synced`).
fn write_atomically(
    dir: &Path,
    id: u64,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
    synced: &dyn Fn(Result<()>) -> Result<()>,
) -> Result<()> {
    // Two writers of one hint (merge and the worker sealing the same file)
    // must not share a temporary file; the last rename wins and both write
    // the same bytes.
    let path = hint_path(dir, id);
    let tmp = tmp_path(dir, id, "hint");
    let written = (|| -> std::io::Result<File> {
        // Unbuffered: `write_to` writes a partition at a time.
        let mut out = File::create(&tmp)?;
        write(&mut out)?;
        Ok(out)
    })();
    let out = match written {
        Ok(out) => out,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            if e.kind() == std::io::ErrorKind::OutOfMemory {
                let message = format!("{}: no memory to build the hint", tmp.display());
                return Err(Error::new(Status::NoMemory, message));
            }
            return Err(Error::io("writing hint file", &tmp, e));
        }
    };
    let hint_synced = out
        .sync_all()
        .map_err(|e| Error::fsync("syncing hint file", &tmp, e));
    if let Err(e) = synced(hint_synced) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &path).map_err(|e| Error::io("renaming hint file to", &path, e))?;
    synced(sync_dir(dir))
}

enum Src {
    File,
    Mem(Arc<Vec<u8>>),
}

/// A hint whose header and trailer fit its data file. Its entries and CRC
/// are checked while they are loaded (see `load`), unless it was built by
/// this process (`crc` is None).
pub struct Hint {
    src: Src,
    pub path: PathBuf,
    pub data_len: u64,
    pub seed: Seed,
    /// What entries' timestamps count from.
    base: u32,
    /// Per partition: entry count and the offset where its entries end.
    table: Vec<(u32, u64)>,
    /// For a hint read from disk: the CRC of the trailer's bytes before
    /// its CRC field, and that field, so that `check` needs no more I/O.
    crc: Option<(crc32fast::Hasher, u32)>,
}

fn read_table(trailer: &[u8]) -> Vec<(u32, u64)> {
    trailer[..TABLE_LEN as usize]
        .chunks(TABLE_ROW)
        .map(|r| (format::u32_at(r, 0), format::u64_at(r, 4)))
        .collect()
}

fn read_base(trailer: &[u8]) -> u32 {
    format::u32_at(trailer, TRAILER_LEN as usize - 8)
}

/// Opens the hint of data file `data_id` of `data_len` bytes and checks
/// its header and trailer. None when it is missing or not for that file.
/// Errors reading it count as a missing hint, but for running out of
/// descriptors (see `open_file`). Unless `torn_ok` (the newest file, to
/// a read-only open: a writer beside it may still be closing it), a whole
/// hint (its CRC checks out) of a longer file is `BC_CORRUPTION`: a hint is written only once its data
/// file is synced and sealed, and a sealed file never shrinks, so records
/// at its end were lost since (a truncation, a copy cut short). Scanned
/// as if it had no hint, the file would show their keys' older values,
/// and deleted keys, with no error.
pub fn open(path: &Path, data_id: u64, data_len: u64, torn_ok: bool) -> Result<Option<Hint>> {
    let Some(file) = open_file(path)? else {
        return Ok(None);
    };
    match checked(&file, path, data_id, data_len) {
        Ok(hint) => Ok(Some(hint)),
        Err(Some(held)) if !torn_ok && whole(&file) => Err(Error::corruption(format!(
            "{}: offset {data_len}: the file ends here, but its hint {} says it held {held} \
             bytes when it was synced and sealed: records at its end were lost since (a \
             truncation, a copy cut short); the repair option opens it with what is left",
            path.with_extension("data").display(),
            path.display(),
        ))),
        Err(_) => Ok(None),
    }
}

/// Whether the hint's CRC, over every byte before it, matches.
fn whole(file: &File) -> bool {
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return false;
    };
    let Some(body) = len.checked_sub(4) else {
        return false;
    };
    let mut crc = crc32fast::Hasher::new();
    // Without memory for the window the hint is not vouched for: scanned.
    let mut buf = Vec::new();
    if buf
        .try_reserve_exact(READ_WINDOW.min(body as usize))
        .is_err()
    {
        return false;
    }
    buf.resize(buf.capacity(), 0);
    let mut at = 0;
    while at < body {
        let n = buf.len().min((body - at) as usize);
        if file.read_exact_at(&mut buf[..n], at).is_err() {
            return false;
        }
        crc.update(&buf[..n]);
        at += n as u64;
    }
    let mut stored = [0u8; 4];
    file.read_exact_at(&mut stored, body).is_ok() && crc.finalize() == u32::from_le_bytes(stored)
}

/// Opens a hint file for reading. Running out of descriptors is an error,
/// not a missing or bad hint: the scan that would replace it needs them
/// too. Any other failure is None.
fn open_file(path: &Path) -> Result<Option<File>> {
    match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
            Err(Error::io("opening hint", path, e))
        }
        Err(_) => Ok(None),
    }
}

/// The hint in `file`, if its header, trailer and table fit the data
/// file; else the data file's length it claims, if longer than `data_len`.
fn checked(
    file: &File,
    path: &Path,
    data_id: u64,
    data_len: u64,
) -> std::result::Result<Hint, Option<u64>> {
    let len = file.metadata().map_err(|_| None)?.len();
    if len < FILE_HEADER_LEN + TRAILER_LEN {
        return Err(None);
    }
    let mut h = [0u8; FILE_HEADER_LEN as usize];
    file.read_exact_at(&mut h, 0).map_err(|_| None)?;
    format::check_file_header(&h, &HINT_MAGIC, path).map_err(|_| None)?;
    let mut t = vec![0u8; TRAILER_LEN as usize];
    file.read_exact_at(&mut t, len - TRAILER_LEN)
        .map_err(|_| None)?;
    let table = read_table(&t);
    let tail = &t[TABLE_LEN as usize..];
    let seed = Seed(format::u64_at(tail, 0), format::u64_at(tail, 8));
    let held = format::u64_at(tail, 24);
    if format::u64_at(tail, 16) != data_id || held != data_len {
        return Err((format::u64_at(tail, 16) == data_id && held > data_len).then_some(held));
    }
    // Partitions must tile the body, so loaders can split it between them,
    // and hold room for their counts: open sizes the keydir by the counts
    // before the entries are read (and the CRC checked), so a damaged count
    // must not ask for more memory than the hint's size justifies.
    let mut start = FILE_HEADER_LEN;
    for &(count, end) in &table {
        if end < start || (end - start) / ENTRY_MIN < count as u64 {
            return Err(None);
        }
        start = end;
    }
    if start != len - TRAILER_LEN {
        return Err(None);
    }
    // Nor more than the data file's size justifies: each entry is one of
    // its records, a header and a key of a byte at least. (A hint that is
    // mostly a hole passes the bound above with any count.)
    let entries: u64 = table.iter().map(|&(count, _)| count as u64).sum();
    if entries > data_len.saturating_sub(FILE_HEADER_LEN) / (RECORD_HEADER_LEN as u64 + 1) {
        return Err(None);
    }
    let crc_at = TRAILER_LEN as usize - 4;
    let mut tail_crc = crc32fast::Hasher::new();
    tail_crc.update(&t[..crc_at]);
    Ok(Hint {
        src: Src::File,
        path: path.to_path_buf(),
        data_len,
        seed,
        base: read_base(&t),
        table,
        crc: Some((tail_crc, format::u32_at(&t, crc_at))),
    })
}

/// The most of a hint file `Hint::read_part` reads at once.
pub(crate) const READ_WINDOW: usize = 1 << 20;

/// One entry of a hint.
pub struct Entry<'a> {
    pub hash: u32,
    pub offset: u64,
    pub hdr: RecordHeader,
    pub key: &'a [u8],
}

/// A random map of data file offsets, fixed per process. The records of
/// a hint's entries tile the data file exactly when the sum over entries
/// of `mark(offset + len) - mark(offset)` telescopes to `mark(data_len) -
/// mark(16)` (wrapping): a gap, an overlap or a duplicate among the
/// entries breaks the sum, except with odds of about 2^-64, in any order
/// of entries. Random, so that no hint can be crafted to pass it.
fn tile_mark(key: (u64, u64), offset: u64) -> u64 {
    fold(offset ^ key.0, key.1)
}

fn tile_key() -> (u64, u64) {
    static KEY: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    *KEY.get_or_init(|| {
        let Seed(a, b) = Seed::random();
        (a, b | 1)
    })
}

/// What a loader saw of a range of partitions: enough for `Hint::check`.
pub struct RangeSeen {
    crc: crc32fast::Hasher,
    /// Sum of the lengths of the records the entries describe.
    record_bytes: u64,
    /// Sum of the entries' `tile_mark` differences.
    tiling: u64,
    /// False when an entry was out of place.
    sane: bool,
}

impl Default for RangeSeen {
    fn default() -> Self {
        RangeSeen::new()
    }
}

impl RangeSeen {
    pub fn new() -> RangeSeen {
        RangeSeen {
            crc: crc32fast::Hasher::new(),
            record_bytes: 0,
            tiling: 0,
            sane: true,
        }
    }
}

/// The hint of data file `id` (`data_len` bytes) that this process has
/// just written from a scan of it (`HintWriter::finish`), read from its
/// file but trusted like one built in memory: not checked again as it
/// loads. None if it cannot be read back; running out of descriptors is an
/// error (see `open_file`).
pub fn open_built(dir: &Path, id: u64, data_len: u64) -> Result<Option<Hint>> {
    let path = hint_path(dir, id);
    let Some(file) = open_file(&path)? else {
        return Ok(None);
    };
    Ok(checked(&file, &path, id, data_len).ok().map(|mut hint| {
        hint.crc = None;
        hint
    }))
}

impl Hint {
    /// Whether this process built the hint (by scanning its data file):
    /// such a hint is trusted, not checked again as it loads.
    pub fn built_here(&self) -> bool {
        self.crc.is_none()
    }

    /// The hint's file, opened for `read_part` and `will_need`; None for
    /// a hint held in memory, or one that cannot be opened (`read_part`
    /// then finds it unreadable, and open scans its data file). Running
    /// out of descriptors is an error, not a bad hint: a scan needs them
    /// too.
    pub fn open(&self) -> Result<Option<File>> {
        match self.src {
            Src::Mem(_) => Ok(None),
            Src::File => open_file(&self.path),
        }
    }

    /// Asks the kernel to start reading partition `p` of the hint from
    /// `file` (its `open`) into the page cache, without waiting for it.
    /// Open asks for each partition while it loads the one before: with a
    /// cold cache the disk reads while the keydir fills, in the order the
    /// loaders take the bytes. (Threads that read the hints ahead of the
    /// loaders measured no faster from a cold cache, and copied every byte
    /// once more from a warm one.)
    pub fn will_need(&self, file: &File, p: usize) {
        let (at, end) = (self.start(p), self.table[p].1);
        // (A range past a 32-bit off_t gets no advice.)
        if let (Ok(at), Ok(len)) = (libc::off_t::try_from(at), libc::off_t::try_from(end - at)) {
            // SAFETY: advice about a range of a descriptor we own; it
            // changes no memory of ours. Failure only loses the head start.
            unsafe {
                libc::posix_fadvise(file.as_raw_fd(), at, len, libc::POSIX_FADV_WILLNEED);
            }
        }
    }

    /// Entries in partition `p`.
    pub fn count(&self, p: usize) -> usize {
        self.table[p].0 as usize
    }

    fn start(&self, p: usize) -> u64 {
        if p == 0 {
            FILE_HEADER_LEN
        } else {
            self.table[p - 1].1
        }
    }

    /// Calls `f` for each entry of partition `p`, in order, noting in
    /// `seen` what a check needs. Stops at the first entry out of place
    /// or unreadable (`seen` then says so) unless the hint was built here.
    /// `file` is the hint's `open`; `buf` is a read buffer the caller
    /// reuses (with room for `READ_WINDOW` bytes, it is not grown).
    pub fn read_part(
        &self,
        p: usize,
        file: Option<&File>,
        buf: &mut Vec<u8>,
        seen: &mut RangeSeen,
        mut f: impl FnMut(&Entry<'_>),
    ) {
        if !seen.sane {
            return;
        }
        if matches!(self.src, Src::File) && file.is_none() {
            return seen.sane = false;
        }
        const WINDOW: u64 = READ_WINDOW as u64;
        let (count, end) = self.table[p];
        let mut at = self.start(p);
        let mut n = 0u32;
        // What each entry must come after: `(hash, offset)` increase.
        let mut last = None;
        let key = tile_key();
        while at < end {
            let want = (end - at).min(WINDOW) as usize;
            let chunk: &[u8] = match (&self.src, &file) {
                (Src::Mem(m), _) => &m[at as usize..at as usize + want],
                (_, Some(file)) => {
                    buf.resize(want, 0);
                    if file.read_exact_at(buf, at).is_err() {
                        return seen.sane = false;
                    }
                    buf
                }
                _ => unreachable!("a file hint has a file"),
            };
            let mut i = 0;
            while i < chunk.len() {
                let Some((e, len)) = parse(&chunk[i..], self.base) else {
                    // Cut by the window: read on from here; cut by the
                    // partition's end, or malformed: out of place.
                    if i == 0 || want as u64 == end - at {
                        seen.sane = false;
                    }
                    break;
                };
                let rec_end = e.offset + e.hdr.record_len();
                if self.crc.is_some() {
                    // Checked before the entry touches the keydir, so that
                    // a hint cannot make open use memory beyond what its
                    // counts and its data file's length allow.
                    let ok = shard_of(e.hash) == p
                        && e.hdr.problem().is_none()
                        && e.offset >= FILE_HEADER_LEN
                        && rec_end <= self.data_len
                        && n < count
                        && seen.record_bytes + e.hdr.record_len()
                            <= self.data_len.saturating_sub(FILE_HEADER_LEN)
                        && last < Some((e.hash, e.offset));
                    if !ok {
                        seen.sane = false;
                        break;
                    }
                    last = Some((e.hash, e.offset));
                    seen.tiling = seen
                        .tiling
                        .wrapping_add(tile_mark(key, rec_end))
                        .wrapping_sub(tile_mark(key, e.offset));
                }
                seen.record_bytes += e.hdr.record_len();
                n += 1;
                f(&e);
                i += len;
            }
            if self.crc.is_some() {
                seen.crc.update(&chunk[..i]);
            }
            if !seen.sane {
                return;
            }
            at += i as u64;
        }
        if n != count {
            seen.sane = false;
        }
    }

    /// Whether the ranges seen by the loaders (in partition order, together
    /// covering every partition) add up to this hint: entries in place, the
    /// CRC over the whole file, and records covering the whole data file.
    pub fn check(&self, ranges: &[&RangeSeen]) -> bool {
        if ranges.iter().any(|r| !r.sane) {
            return false;
        }
        let Some((tail_crc, expected)) = &self.crc else {
            return true;
        };
        let records: u64 = ranges.iter().map(|r| r.record_bytes).sum();
        if records != self.data_len - FILE_HEADER_LEN {
            return false;
        }
        let key = tile_key();
        let tiling = ranges.iter().fold(0u64, |t, r| t.wrapping_add(r.tiling));
        let whole = tile_mark(key, self.data_len).wrapping_sub(tile_mark(key, FILE_HEADER_LEN));
        if tiling != whole {
            return false;
        }
        // The header passed `check_file_header`, so its bytes are known.
        let mut crc = crc32fast::Hasher::new();
        crc.update(&format::file_header(&HINT_MAGIC));
        for range in ranges {
            crc.combine(&range.crc);
        }
        crc.combine(tail_crc);
        crc.finalize() == *expected
    }
}

/// Appends `v` as an unsigned LEB128: 7 bits a byte, low bits first, the
/// top bit set on every byte but the last.
fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The LEB128 at `b[*at..]`, moving `at` past it. None if `b` ends first,
/// or the number is not in its shortest form or does not fit a u32.
#[inline]
fn varint(b: &[u8], at: &mut usize) -> Option<u32> {
    let first = *b.get(*at)?;
    *at += 1;
    if first < 0x80 {
        return Some(first as u32);
    }
    let mut v = (first & 0x7f) as u32;
    for shift in [7, 14, 21, 28] {
        let byte = *b.get(*at)?;
        *at += 1;
        if shift == 28 && byte > 0x0f {
            return None;
        }
        v |= ((byte & 0x7f) as u32) << shift;
        if byte < 0x80 {
            return (byte != 0).then_some(v);
        }
    }
    None
}

/// The entry at the start of `b` and its length, given the hint's
/// timestamp base; None if `b` ends first or the entry is malformed.
#[inline]
fn parse(b: &[u8], base: u32) -> Option<(Entry<'_>, usize)> {
    let fixed = b.get(..ENTRY_FIXED)?;
    let flags = fixed[8];
    let mut at = ENTRY_FIXED;
    let key_len = u16::try_from(varint(b, &mut at)?).ok()?;
    let value_len = varint(b, &mut at).filter(|&v| v <= format::MAX_VALUE_LEN)?;
    let timestamp = base.checked_add(varint(b, &mut at)?)?;
    let expiry = if flags & FLAG_EXPIRES != 0 {
        at += 4;
        // The flag says the record expires: at 0 it would not.
        Some(format::u32_at(b.get(..at)?, at - 4)).filter(|&e| e != 0)?
    } else {
        0
    };
    let len = at + key_len as usize;
    let key = b.get(at..len)?;
    let hdr = RecordHeader {
        crc: 0,
        timestamp,
        expiry,
        key_len,
        value_len,
        flags: flags & !FLAG_EXPIRES,
    };
    Some((
        Entry {
            hash: format::u32_at(fixed, 0),
            offset: format::u32_at(fixed, 4) as u64,
            hdr,
            key,
        },
        len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(key_len: u16, value_len: u32, flags: u8, expiry: u32) -> RecordHeader {
        RecordHeader {
            crc: 0,
            timestamp: 1_700_000_000 + value_len * 1000,
            expiry,
            key_len,
            value_len,
            flags,
        }
    }

    /// Offset, value length, expiry, timestamp and key of each entry.
    type Seen = Vec<(u64, u32, u32, u32, Vec<u8>)>;

    fn read_all(h: &Hint) -> (Seen, bool) {
        let mut seen = Vec::new();
        // Two loaders, as at open.
        let ranges: Vec<_> = [0..PARTITIONS / 2, PARTITIONS / 2..PARTITIONS]
            .into_iter()
            .map(|r| {
                let mut range = RangeSeen::new();
                let file = h.open().unwrap();
                for p in r {
                    h.read_part(p, file.as_ref(), &mut Vec::new(), &mut range, |e| {
                        seen.push((
                            e.offset,
                            e.hdr.value_len,
                            e.hdr.expiry,
                            e.hdr.timestamp,
                            e.key.to_vec(),
                        ))
                    });
                }
                range
            })
            .collect();
        let ok = h.check(&ranges.iter().collect::<Vec<_>>());
        seen.sort();
        (seen, ok)
    }

    /// Keydir locations hold 32-bit offsets, and a scan builds its hint
    /// through `add`: this is the one check that refuses a record past
    /// 4 GiB (in a file bitcask did not write) before an offset wraps.
    #[test]
    fn a_record_past_4_gib_is_refused() {
        let mut w = HintWriter::create(7, Seed(1, 2));
        w.add(u32::MAX as u64 - 30, &hdr(1, 10, 0, 0), b"a")
            .unwrap();
        let e = w.add(1 << 32, &hdr(1, 10, 0, 0), b"b").unwrap_err();
        assert_eq!(e.status(), crate::Status::Corruption);
        assert!(
            e.message().contains("offset 4294967296, past 4 GiB"),
            "{e:?}"
        );
    }

    #[test]
    fn roundtrip_and_every_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let seed = Seed(1, 2);
        let mut w = HintWriter::create(7, seed);
        w.add(16, &hdr(3, 10, 0, 0), b"abc").unwrap();
        w.add(16 + 32, &hdr(2, 0, 1, 0), b"de").unwrap();
        w.add(16 + 32 + 21, &hdr(1, 1, 0, 99), b"f").unwrap();
        let data_len = 16 + 32 + 21 + 21;
        w.finish(data_len, dir.path()).unwrap();
        let path = hint_path(dir.path(), 7);
        let h = open(&path, 7, data_len, false).unwrap().unwrap();
        assert_eq!(h.seed, seed);
        let ts = |value_len| hdr(1, value_len, 0, 0).timestamp;
        let want = vec![
            (16, 10, 0, ts(10), b"abc".to_vec()),
            (48, 0, 0, ts(0), b"de".to_vec()),
            (69, 1, 99, ts(1), b"f".to_vec()),
        ];
        assert_eq!(read_all(&h), (want.clone(), true));

        assert!(
            open(&path, 7, data_len + 1, false).unwrap().is_none(),
            "longer file"
        );
        // A shorter one: records lost since the hint was written, unless
        // the file may be torn.
        let lost = open(&path, 7, data_len - 1, false).map(|_| ()).unwrap_err();
        assert_eq!(lost.status(), Status::Corruption, "{lost:?}");
        assert!(
            open(&path, 7, data_len - 1, true).unwrap().is_none(),
            "may be torn"
        );
        assert!(
            open(&path, 8, data_len, false).unwrap().is_none(),
            "another file"
        );
        let good = fs::read(&path).unwrap();
        for cut in 0..good.len() {
            fs::write(&path, &good[..cut]).unwrap();
            assert!(
                open(&path, 7, data_len, false).unwrap().is_none(),
                "cut at {cut}"
            );
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 1;
            fs::write(&path, &bad).unwrap();
            let refused = match open(&path, 7, data_len, false).unwrap() {
                None => true,
                Some(h) => !read_all(&h).1,
            };
            assert!(refused, "flip at {i}");
        }

        let mut w = HintWriter::create(7, seed);
        w.add(16, &hdr(3, 10, 0, 0), b"abc").unwrap();
        assert!(w.add(16, &hdr(3, 10, 0, 0), b"abc").is_err(), "same offset");
        for flags in [0x80, 0x02] {
            let e = w.add(48, &hdr(3, 10, flags, 0), b"abc").unwrap_err();
            assert_eq!(e.status(), crate::error::Status::Corruption, "{flags:#x}");
        }
    }

    /// Open sizes the keydir by a hint's counts before it reads the entries
    /// and checks the CRC, so counts the data file cannot hold (a hint that
    /// is a hole, whose size passes any count) refuse the hint at once.
    #[test]
    fn counts_beyond_the_data_file_refuse_the_hint() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = HintWriter::create(7, Seed(1, 2));
        w.add(16, &hdr(1, 0, 0, 0), b"a").unwrap();
        w.add(36, &hdr(1, 0, 0, 0), b"b").unwrap();
        let data_len = 56;
        w.finish(data_len, dir.path()).unwrap();
        let path = hint_path(dir.path(), 7);
        assert!(open(&path, 7, data_len, false).unwrap().is_some());
        let good = fs::read(&path).unwrap();
        let trailer = good.len() - TRAILER_LEN as usize;
        // The same hint with a hole of 1 MiB added to partition 0's
        // entries, whose count claims what the hole could hold.
        let hole = 1 << 20;
        let rebuilt = |extra: u32| {
            let mut bytes = good[..FILE_HEADER_LEN as usize].to_vec();
            bytes.resize(FILE_HEADER_LEN as usize + hole, 0);
            bytes.extend_from_slice(&good[FILE_HEADER_LEN as usize..trailer]);
            let mut t = good[trailer..].to_vec();
            for row in t[..TABLE_LEN as usize].chunks_mut(TABLE_ROW) {
                let end = format::u64_at(row, 4) + hole as u64;
                row[4..12].copy_from_slice(&end.to_le_bytes());
            }
            let count = format::u32_at(&t, 0) + extra;
            t[0..4].copy_from_slice(&count.to_le_bytes());
            bytes.extend_from_slice(&t);
            fs::write(&path, &bytes).unwrap();
            assert_eq!(bytes.len(), good.len() + hole);
        };
        // Entries the data file can hold: 2 records of 20 bytes at most.
        rebuilt(0);
        assert!(
            open(&path, 7, data_len, false).unwrap().is_some(),
            "no extra"
        );
        rebuilt(1);
        assert!(
            open(&path, 7, data_len, false).unwrap().is_none(),
            "one more"
        );
        rebuilt(hole as u32 / ENTRY_MIN as u32);
        assert!(
            open(&path, 7, data_len, false).unwrap().is_none(),
            "a hole's worth"
        );
    }

    /// A writer's hint is the same bytes whether its entries stayed in
    /// memory or went through its spill file (many times, or never because
    /// the file cannot be made), and the spill file is gone afterwards.
    #[test]
    fn spilled_hints_are_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let write = |spill: Option<&Path>, spill_at: usize, name: &str| {
            let mut w = HintWriter::create(9, Seed(5, 6));
            if let Some(d) = spill {
                w = w.spill_into(d);
            }
            w.spill_at = spill_at;
            let mut off = 16;
            for i in 0..5000u32 {
                let key = format!("key-{}", i % 3000);
                let expiry = if i % 7 == 0 { 1_800_000_000 + i } else { 0 };
                let h = hdr(key.len() as u16, i % 300, (i % 11 == 0) as u8, expiry);
                let h = RecordHeader {
                    value_len: if h.is_tombstone() { 0 } else { h.value_len },
                    ..h
                };
                w.add(off, &h, key.as_bytes()).unwrap();
                off += h.record_len();
            }
            let spilled = w.spills();
            let out = dir.path().join(name);
            fs::create_dir(&out).unwrap();
            w.finish(off, &out).unwrap();
            (fs::read(hint_path(&out, 9)).unwrap(), spilled)
        };
        let (memory, spilled) = write(None, 1000, "memory");
        assert!(!spilled);
        let (many, spilled) = write(Some(dir.path()), 1000, "many");
        assert!(spilled);
        assert!(many == memory, "spilled 1000 bytes at a time");
        let (once, spilled) = write(Some(dir.path()), 100_000, "once");
        assert!(spilled);
        assert!(once == memory, "spilled once");
        let (nowhere, spilled) = write(Some(&dir.path().join("missing")), 1000, "nowhere");
        assert!(!spilled);
        assert!(nowhere == memory, "spill file could not be made");
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// Entries that come back from the spill file other than they went in
    /// (pages lost after a failed writeback) fail the hint, never make a
    /// wrong one; the spill file is removed all the same.
    #[test]
    fn a_spill_read_back_wrong_fails_the_hint() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = HintWriter::create(3, Seed(1, 1)).spill_into(dir.path());
        w.spill_at = 500;
        let mut off = 16;
        for i in 0..200u32 {
            let key = format!("key-{i}");
            let h = hdr(key.len() as u16, 10, 0, 0);
            w.add(off, &h, key.as_bytes()).unwrap();
            off += h.record_len();
        }
        let spill = w.spill.as_ref().unwrap();
        assert!(spill.len > 0);
        let mut bytes = fs::read(&spill.path).unwrap();
        bytes[spill.len as usize / 2] ^= 0x40;
        fs::write(&spill.path, &bytes).unwrap();
        let e = w.finish(off, dir.path()).unwrap_err();
        assert_eq!(e.status(), crate::error::Status::Io, "{}", e.message());
        assert!(e.message().contains("read back"), "{}", e.message());
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn varints_take_the_shortest_form_and_refuse_others() {
        for v in [0, 1, 0x7f, 0x80, 0x3fff, 0x4000, 1 << 28, u32::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let want_len = 1 + (32 - v.leading_zeros()).saturating_sub(1) as usize / 7;
            assert_eq!(b.len(), want_len, "{v:#x}");
            let mut at = 0;
            assert_eq!(varint(&b, &mut at), Some(v));
            assert_eq!(at, b.len());
            let mut at = 0;
            assert_eq!(varint(&b[..b.len() - 1], &mut at), None, "cut {v:#x}");
        }
        for bad in [
            &[0x80, 0x00][..],
            &[0xff, 0x80, 0x00],
            &[0xff, 0xff, 0xff, 0xff, 0x10],
        ] {
            assert_eq!(varint(bad, &mut 0), None, "{bad:x?}");
        }
        assert_eq!(
            varint(&[0xff, 0xff, 0xff, 0xff, 0x0f], &mut 0),
            Some(u32::MAX)
        );
    }

    /// An entry's value_len is a record's: at most 2^31-1, which a u32
    /// varint could pass.
    #[test]
    fn an_entry_with_a_value_over_the_limit_is_malformed() {
        let entry = |value_len: u32| {
            let mut b = vec![0u8; ENTRY_FIXED];
            put_varint(&mut b, 1); // key_len
            put_varint(&mut b, value_len);
            put_varint(&mut b, 0); // timestamp - base
            b.push(b'k');
            b
        };
        let max = format::MAX_VALUE_LEN;
        let ok = entry(max);
        let (e, len) = parse(&ok, 7).unwrap();
        assert_eq!((e.hdr.value_len, e.hdr.timestamp, len), (max, 7, ok.len()));
        assert!(parse(&entry(max + 1), 7).is_none());
        assert!(parse(&entry(u32::MAX), 7).is_none());
    }

    #[test]
    fn entries_are_sorted_by_hash_and_a_keys_records_stay_in_order() {
        let seed = Seed(3, 4);
        let mut w = HintWriter::create(1, seed);
        let mut off = 16;
        for i in 0..1000u32 {
            let key = format!("k{}", i % 300);
            let h = hdr(key.len() as u16, i, 0, 0);
            w.add(off, &h, key.as_bytes()).unwrap();
            off += h.record_len();
        }
        let h = w.into_hint(off).unwrap();
        let mut order = Vec::new();
        for p in 0..PARTITIONS {
            let mut seen = RangeSeen::new();
            let file = h.open().unwrap();
            h.read_part(p, file.as_ref(), &mut Vec::new(), &mut seen, |e| {
                assert_eq!(e.hash, seed.hash(e.key));
                order.push((e.hash, e.offset));
            });
            assert!(seen.sane);
        }
        assert_eq!(order.len(), 1000);
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "sorted by (hash, offset)"
        );
    }
}
