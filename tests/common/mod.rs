//! Shared helpers for the integration tests.
#![allow(dead_code)]

use bitcask::{Db, MergePolicy, Options, Result, SyncMode};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Size of a record header on disk (see API.md "On-disk layout").
pub const RECORD_HEADER: u64 = 19;
/// Size of a data-file header on disk.
pub const FILE_HEADER: u64 = 16;

/// Unwraps a bitcask result, panicking with the status code and message.
/// (Does not require `Error: Debug`.)
#[track_caller]
pub fn ok<T>(r: Result<T>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!(
            "{what}: unexpected error status={} message={:?}",
            e.status() as i32,
            e.message()
        ),
    }
}

/// Expects an error; returns (status as i32, message).
#[track_caller]
pub fn err<T>(r: Result<T>, what: &str) -> (i32, String) {
    match r {
        Ok(_) => panic!("{what}: expected an error, got Ok"),
        Err(e) => (e.status() as i32, e.message().to_string()),
    }
}

pub fn opts(max_file_size: u64, sync: SyncMode) -> Options {
    Options {
        max_file_size,
        sync,
        ..Options::default()
    }
}

/// `o` reading the time from `now` (seconds), which the test moves.
pub fn with_clock(o: Options, now: &Arc<AtomicU32>) -> Options {
    let now = now.clone();
    Options {
        clock: Arc::new(move || now.load(Ordering::Relaxed)),
        ..o
    }
}

/// Rewrites the file at `path` with `damage` done to its bytes; returns
/// what `damage` does.
/// Cuts the file at `path` to `len` bytes (a truncation, a torn write).
pub fn cut_file(path: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

pub fn patch<R>(path: &Path, damage: impl FnOnce(&mut [u8]) -> R) -> R {
    let mut bytes = fs::read(path).unwrap();
    let r = damage(&mut bytes);
    fs::write(path, &bytes).unwrap();
    r
}

/// Every file in `dir` with its bytes.
pub fn dir_bytes(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), fs::read(&p).unwrap()))
        .collect()
}

/// Files of 8 MiB written through their map (`Options::write_map`), no
/// fsync.
pub fn write_map_opts() -> Options {
    Options {
        write_map: true,
        ..opts(8 << 20, SyncMode::None)
    }
}

/// Whether a database in a fresh temporary directory writes through its
/// map (`Stats::writes_through_map`): 64-bit targets, on ext4, XFS or
/// tmpfs. Tests of the map's own behaviour skip elsewhere.
pub fn map_writes_here() -> bool {
    let dir = tempfile::tempdir().unwrap();
    let here = open(dir.path(), &write_map_opts())
        .stats()
        .writes_through_map;
    if !here {
        eprintln!("the write map is not used here (32-bit, or not ext4, XFS or tmpfs): skipped");
    }
    here
}

pub fn open(dir: &Path, o: &Options) -> Db {
    ok(Db::open(dir, o.clone()), &format!("open {}", dir.display()))
}

/// Deterministic splitmix64 PRNG (no rand dependency needed).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next_u64() % n
    }
    pub fn range(&mut self, lo: u64, hi_inclusive: u64) -> u64 {
        lo + self.below(hi_inclusive - lo + 1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Stateless 64-bit mix of two numbers.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut r = Rng::new(a.wrapping_mul(0x1000_0000_01B3) ^ b.rotate_left(29));
    r.next_u64()
}

/// All `*.data` files in `dir`, sorted by name (== age order; last is newest).
pub fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().map(|x| x == "data").unwrap_or(false))
        .collect();
    v.sort();
    v
}

/// Files in `dir` whose name ends in `.tmp`.
pub fn tmp_files(dir: &Path) -> Vec<PathBuf> {
    files_ending(dir, ".tmp")
}

/// Files in `dir` whose name ends in `suffix`, sorted by name.
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| file_name(p).ends_with(suffix))
        .collect();
    v.sort();
    v
}

pub fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Copies every regular file of `src` into a new directory `dst`, except the
/// `LOCK` file (a lock is not data; a copied one could name a live pid).
/// A file gone since the listing is left out: a handle's worker may be
/// renaming a hint into place meanwhile, and a crash then could find it
/// either way.
pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if !e.file_type().unwrap().is_file() || e.file_name() == "LOCK" {
            continue;
        }
        match fs::copy(e.path(), dst.join(e.file_name())) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            r => {
                r.unwrap();
            }
        }
    }
}

/// One record as parsed straight from a data file, per the documented layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    pub offset: u64,
    pub crc: u32,
    pub timestamp: u32,
    pub expiry: u32,
    pub flags: u8,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub crc_ok: bool,
}

impl RawRecord {
    pub fn len(&self) -> u64 {
        RECORD_HEADER + self.key.len() as u64 + self.value.len() as u64
    }
    pub fn tombstone(&self) -> bool {
        self.flags & 1 == 1
    }
}

pub fn le_u16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}
pub fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Checks the 16-byte file header (magic, version 1, CRC) and parses every
/// complete record. Panics if the header is wrong or the records do not end
/// exactly at the end of the file.
pub fn parse_data_file(path: &Path) -> Vec<RawRecord> {
    let buf = fs::read(path).unwrap();
    let name = path.display();
    assert!(buf.len() >= 16, "{name}: shorter than the 16-byte header");
    assert_eq!(&buf[0..8], b"BITCASKD", "{name}: magic");
    assert_eq!(le_u32(&buf[8..12]), 1, "{name}: format version");
    assert_eq!(
        le_u32(&buf[12..16]),
        crc32fast::hash(&buf[0..12]),
        "{name}: header CRC (CRC32 of the first 12 bytes)"
    );
    let mut out = Vec::new();
    let mut off = 16usize;
    while off < buf.len() {
        assert!(
            off + 19 <= buf.len(),
            "{name}: partial record header at {off} (file length {})",
            buf.len()
        );
        let h = &buf[off..off + 19];
        let klen = le_u16(&h[12..14]) as usize;
        let vlen = le_u32(&h[14..18]) as usize;
        let end = off + 19 + klen + vlen;
        assert!(
            end <= buf.len(),
            "{name}: record at {off} (klen {klen} vlen {vlen}) runs past the end ({})",
            buf.len()
        );
        let crc = le_u32(&h[0..4]);
        out.push(RawRecord {
            offset: off as u64,
            crc,
            timestamp: le_u32(&h[4..8]),
            expiry: le_u32(&h[8..12]),
            flags: h[18],
            key: buf[off + 19..off + 19 + klen].to_vec(),
            value: buf[off + 19 + klen..end].to_vec(),
            crc_ok: crc32fast::hash(&buf[off + 4..end]) == crc,
        });
        off = end;
    }
    out
}

/// True if `msg` mentions `off` as a whole decimal number or as `0x<hex>`.
pub fn mentions_offset(msg: &str, off: u64) -> bool {
    let dec = off.to_string();
    let bytes = msg.as_bytes();
    let mut start = 0;
    while let Some(i) = msg[start..].find(&dec) {
        let a = start + i;
        let b = a + dec.len();
        let before_ok = a == 0 || !bytes[a - 1].is_ascii_alphanumeric();
        let after_ok = b == bytes.len() || !bytes[b].is_ascii_alphanumeric();
        if before_ok && after_ok {
            return true;
        }
        start = a + 1;
    }
    let lower = msg.to_ascii_lowercase();
    lower.contains(&format!("0x{off:x}"))
        || lower.contains(&format!("0x{off:08x}"))
        || lower.contains(&format!("0x{off:016x}"))
}

/// A merge policy that takes a file once half of it is dead, and only then.
pub fn merge_when_half_dead() -> MergePolicy {
    MergePolicy {
        frag_trigger: 0.5,
        dead_bytes_trigger: u64::MAX,
        frag_threshold: 0.5,
        dead_bytes_threshold: u64::MAX,
        small_file_threshold: 0,
    }
}

/// Puts live filler keys `a{i}` (from `*i` on) until the database has at
/// least `files` data files.
pub fn fill_until_files(db: &Db, files: u64, i: &mut usize) {
    while db.stats().data_files < files {
        ok(db.put(format!("a{i}").as_bytes(), &[1u8; 100]), "filler");
        *i += 1;
    }
}

/// Overwrites one key (`b`) until the database has at least `files` data
/// files: the file being written fills with dead records.
pub fn garbage_until_files(db: &Db, files: u64) {
    while db.stats().data_files < files {
        ok(db.put(b"b", &[2u8; 100]), "garbage");
    }
}

/// A record of `key` and `value` (timestamp 12345, no expiry), as bitcask
/// writes one: for tests that store record images inside values.
pub fn record_image(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut r = vec![0u8; 4];
    r.extend_from_slice(&12345u32.to_le_bytes()); // timestamp
    r.extend_from_slice(&0u32.to_le_bytes()); // expiry
    r.extend_from_slice(&(key.len() as u16).to_le_bytes());
    r.extend_from_slice(&(value.len() as u32).to_le_bytes());
    r.push(0);
    r.extend_from_slice(key);
    r.extend_from_slice(value);
    let crc = crc32fast::hash(&r[4..]);
    r[..4].copy_from_slice(&crc.to_le_bytes());
    r
}
