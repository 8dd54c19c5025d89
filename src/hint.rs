//! Hint files: per sealed data file, one entry per record (where it is and
//! what it is, without the value), so open can rebuild the keydir without
//! reading values.
//!
//! Layout (docs/FORMAT.md): the 16-byte file header with magic "BITCASKH",
//! then one entry per record, in file order, `expiry u32 | key_len u16 |
//! value_len u32 | flags u8 | key` (a record's offset is where the previous
//! one ended, so it is not stored), then a 20-byte trailer `data_id u64 |
//! data_len u64 | crc32 u32`: the id and length of the data file the hint
//! describes and a CRC of every byte before the CRC. A hint that is
//! missing, truncated, fails its CRC, or names another data file or length
//! is ignored and the data file scanned.

use crate::datafile::sync_dir;
use crate::error::{Error, Result};
use crate::format::{self, RecordHeader, FILE_HEADER_LEN, HINT_MAGIC, KNOWN_FLAGS};
use crate::recovery::FileReader;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub(crate) const ENTRY_FIXED: usize = 11;
pub(crate) const TRAILER_LEN: u64 = 20;

pub fn hint_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.hint"))
}

/// Parses `{16 hex digits}.hint`.
pub fn parse_hint_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".hint")?;
    if stem.len() != 16 || !stem.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(stem, 16).ok()
}

/// Writes a hint file under a temporary name; `finish` puts it in place.
pub struct HintWriter {
    id: u64,
    /// Where the next entry's record must start.
    next_offset: u64,
    tmp: PathBuf,
    path: PathBuf,
    out: BufWriter<File>,
    crc: crc32fast::Hasher,
}

impl HintWriter {
    pub fn create(dir: &Path, id: u64) -> Result<HintWriter> {
        // Two writers of one hint (merge and the worker sealing the same
        // file) must not share a temporary file; the last rename wins and
        // both write the same bytes.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = hint_path(dir, id);
        let tmp = path.with_extension(format!("hint.{}-{n}.tmp", std::process::id()));
        let file = File::create(&tmp).map_err(|e| Error::io("creating hint file", &tmp, e))?;
        let mut w = HintWriter {
            id,
            next_offset: FILE_HEADER_LEN,
            tmp,
            path,
            out: BufWriter::with_capacity(256 << 10, file),
            crc: crc32fast::Hasher::new(),
        };
        w.write(&format::file_header(&HINT_MAGIC))?;
        Ok(w)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.crc.update(bytes);
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io("writing hint file", &self.tmp, e))
    }

    /// Adds the entry of the next record, which starts at `offset`.
    pub fn add(&mut self, offset: u64, hdr: &RecordHeader, key: &[u8]) -> Result<()> {
        if offset != self.next_offset {
            return Err(Error::internal(format!(
                "{}: hint entry for offset {offset}, expected {}",
                self.tmp.display(),
                self.next_offset
            )));
        }
        self.next_offset = offset + hdr.record_len();
        let mut e = [0u8; ENTRY_FIXED];
        e[0..4].copy_from_slice(&hdr.expiry.to_le_bytes());
        e[4..6].copy_from_slice(&hdr.key_len.to_le_bytes());
        e[6..10].copy_from_slice(&hdr.value_len.to_le_bytes());
        e[10] = hdr.flags;
        self.write(&e)?;
        self.write(key)
    }

    /// Writes the trailer for a data file of `data_len` bytes, syncs, and
    /// renames the hint into place.
    pub fn finish(mut self, data_len: u64, dir: &Path) -> Result<()> {
        self.write(&self.id.to_le_bytes())?;
        self.write(&data_len.to_le_bytes())?;
        let crc = self.crc.clone().finalize();
        let tmp = self.tmp.clone();
        let werr = |e: std::io::Error| Error::io("writing hint file", &tmp, e);
        self.out.write_all(&crc.to_le_bytes()).map_err(werr)?;
        let file = self.out.into_inner().map_err(|e| werr(e.into_error()))?;
        file.sync_all().map_err(werr)?;
        fs::rename(&tmp, &self.path)
            .map_err(|e| Error::io("renaming hint file to", &self.path, e))?;
        sync_dir(dir)
    }

    /// Drops an unfinished hint.
    pub fn abandon(self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// A hint file checked end to end (header, every entry, CRC, data file id
/// and length), ready to be replayed.
pub struct Verified {
    r: FileReader,
    data_len: u64,
    /// Number of entries.
    pub entries: u64,
}

/// Checks the hint of data file `data_id` of `data_len` bytes. None when
/// it is missing or not valid for that file.
pub fn verify(path: &Path, data_id: u64, data_len: u64) -> Result<Option<Verified>> {
    let mut r = match FileReader::open(path) {
        Ok(r) => r,
        Err(_) => return Ok(None),
    };
    if r.len < FILE_HEADER_LEN + TRAILER_LEN {
        return Ok(None);
    }
    let mut crc = crc32fast::Hasher::new();
    let mut entries = 0;
    if !walk(&mut r, data_len, Some(&mut crc), &mut |_, _, _| {
        entries += 1
    })? {
        return Ok(None);
    }
    let end = r.len - TRAILER_LEN;
    let trailer = match r.bytes(end, TRAILER_LEN as usize)? {
        Some(t) => t,
        None => return Ok(None),
    };
    crc.update(&trailer[..16]);
    if format::u64_at(trailer, 0) != data_id
        || format::u64_at(trailer, 8) != data_len
        || crc.finalize() != format::u32_at(trailer, 16)
    {
        return Ok(None);
    }
    Ok(Some(Verified {
        r,
        data_len,
        entries,
    }))
}

impl Verified {
    /// Calls `f(offset, header, key)` per entry, in file order.
    pub fn replay(mut self, mut f: impl FnMut(u64, &RecordHeader, &[u8])) -> Result<()> {
        walk(&mut self.r, self.data_len, None, &mut f).map(|_| ())
    }
}

/// Visits the header and entries; false at the first thing out of place.
fn walk(
    r: &mut FileReader,
    data_len: u64,
    mut crc: Option<&mut crc32fast::Hasher>,
    f: &mut dyn FnMut(u64, &RecordHeader, &[u8]),
) -> Result<bool> {
    let path = r.path.clone();
    match r.bytes(0, FILE_HEADER_LEN as usize)? {
        Some(h) if format::check_file_header(h, &HINT_MAGIC, &path).is_ok() => {
            if let Some(c) = crc.as_deref_mut() {
                c.update(h);
            }
        }
        _ => return Ok(false),
    }
    let end = r.len - TRAILER_LEN;
    let mut at = FILE_HEADER_LEN;
    let mut next_offset = FILE_HEADER_LEN;
    while at < end {
        let Some(e) = r.bytes(at, ENTRY_FIXED)? else {
            return Ok(false);
        };
        let hdr = RecordHeader {
            crc: 0,
            timestamp: 0,
            expiry: format::u32_at(e, 0),
            key_len: u16::from_le_bytes([e[4], e[5]]),
            value_len: format::u32_at(e, 6),
            flags: e[10],
        };
        let offset = next_offset;
        let entry_len = ENTRY_FIXED + hdr.key_len as usize;
        let sane = hdr.key_len > 0
            && hdr.flags & !KNOWN_FLAGS == 0
            && (!hdr.is_tombstone() || hdr.value_len == 0)
            && offset + hdr.record_len() <= data_len
            && at + entry_len as u64 <= end;
        if !sane {
            return Ok(false);
        }
        let entry = r.bytes(at, entry_len)?.expect("checked against the end");
        if let Some(c) = crc.as_deref_mut() {
            c.update(entry);
        }
        f(offset, &hdr, &entry[ENTRY_FIXED..]);
        next_offset = offset + hdr.record_len();
        at += entry_len as u64;
    }
    // Every byte of the data file is accounted for by an entry.
    Ok(next_offset == data_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(key_len: u16, value_len: u32, flags: u8) -> RecordHeader {
        RecordHeader {
            crc: 0,
            timestamp: 5,
            expiry: 9,
            key_len,
            value_len,
            flags,
        }
    }

    #[test]
    fn roundtrip_and_every_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = HintWriter::create(dir.path(), 7).unwrap();
        w.add(16, &hdr(3, 10, 0), b"abc").unwrap();
        w.add(16 + 32, &hdr(2, 0, 1), b"de").unwrap();
        let data_len = 16 + 32 + 21;
        w.finish(data_len, dir.path()).unwrap();
        let path = hint_path(dir.path(), 7);
        let mut seen = Vec::new();
        let v = verify(&path, 7, data_len).unwrap().unwrap();
        assert_eq!(v.entries, 2);
        v.replay(|o, h, k| seen.push((o, h.value_len, k.to_vec())))
            .unwrap();
        assert_eq!(
            seen,
            vec![(16, 10, b"abc".to_vec()), (48, 0, b"de".to_vec())]
        );

        assert!(
            verify(&path, 7, data_len + 1).unwrap().is_none(),
            "length mismatch"
        );
        assert!(
            verify(&path, 8, data_len).unwrap().is_none(),
            "another file's hint"
        );
        let good = fs::read(&path).unwrap();
        for cut in 0..good.len() {
            fs::write(&path, &good[..cut]).unwrap();
            assert!(
                verify(&path, 7, data_len).unwrap().is_none(),
                "cut at {cut}"
            );
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 1;
            fs::write(&path, &bad).unwrap();
            assert!(verify(&path, 7, data_len).unwrap().is_none(), "flip at {i}");
        }
    }
}
