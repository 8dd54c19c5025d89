//! The on-disk format, byte for byte (docs/FORMAT.md is the prose version).
//!
//! Every file starts with a 16-byte header: an 8-byte magic, a u32 format
//! version and a CRC32 of those 12 bytes. A data file then holds records back
//! to back. All integers are little-endian.
//!
//! Record: `crc32 u32 | timestamp u32 | expiry u32 | key_len u16 |
//! value_len u32 | flags u8 | key | value`; the CRC covers every byte after it.

use crate::error::{Error, Result, Status};
use std::path::Path;

/// Version of the data file format.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Version of the hint file format (4: sorted by key hash, varint
/// lengths and timestamps; the folded-multiply key hash).
pub(crate) const HINT_VERSION: u32 = 4;
pub(crate) const FILE_HEADER_LEN: u64 = 16;
pub(crate) const DATA_MAGIC: [u8; 8] = *b"BITCASKD";
pub(crate) const HINT_MAGIC: [u8; 8] = *b"BITCASKH";

pub(crate) const RECORD_HEADER_LEN: usize = 19;
/// The record deletes its key; its value is empty.
pub(crate) const FLAG_TOMBSTONE: u8 = 0x01;
/// Flags this version understands; any other bit means a newer writer.
pub(crate) const KNOWN_FLAGS: u8 = FLAG_TOMBSTONE;

/// Largest key the format can hold (key_len is a u16).
pub(crate) const MAX_KEY_LEN: u32 = u16::MAX as u32;
/// Largest value the library accepts: fits an `isize` on 32-bit targets.
pub(crate) const MAX_VALUE_LEN: u32 = i32::MAX as u32;

fn version_of(magic: &[u8; 8]) -> u32 {
    if magic == &HINT_MAGIC {
        HINT_VERSION
    } else {
        FORMAT_VERSION
    }
}

pub fn file_header(magic: &[u8; 8]) -> [u8; FILE_HEADER_LEN as usize] {
    let mut h = [0u8; FILE_HEADER_LEN as usize];
    h[..8].copy_from_slice(magic);
    h[8..12].copy_from_slice(&version_of(magic).to_le_bytes());
    let crc = crc32fast::hash(&h[..12]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a file header; the error names the file and what is wrong with it.
pub fn check_file_header(buf: &[u8], magic: &[u8; 8], path: &Path) -> Result<()> {
    let what = if magic == &DATA_MAGIC { "data" } else { "hint" };
    if buf.len() < FILE_HEADER_LEN as usize {
        return Err(Error::corruption(format!(
            "{}: file header is {} bytes, expected {FILE_HEADER_LEN}",
            path.display(),
            buf.len()
        )));
    }
    if &buf[..8] != magic {
        return Err(Error::corruption(format!(
            "{}: offset 0: not a bitcask {what} file (bad magic)",
            path.display()
        )));
    }
    let crc = u32_at(buf, 12);
    if crc32fast::hash(&buf[..12]) != crc {
        return Err(Error::corruption(format!(
            "{}: offset 0: file header checksum mismatch",
            path.display()
        )));
    }
    let version = u32_at(buf, 8);
    let supported = version_of(magic);
    if version != supported {
        let message = format!(
            "{}: {what} format version {version} is not supported (this library reads version {supported})",
            path.display()
        );
        return Err(Error::new(Status::VersionMismatch, message));
    }
    Ok(())
}

/// The fixed-size part of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub crc: u32,
    pub timestamp: u32,
    pub expiry: u32,
    pub key_len: u16,
    pub value_len: u32,
    pub flags: u8,
}

impl RecordHeader {
    pub fn decode(b: &[u8]) -> RecordHeader {
        // One bounds check for the header, none per field.
        let b: &[u8; RECORD_HEADER_LEN] = b[..RECORD_HEADER_LEN].try_into().expect("19 bytes");
        RecordHeader {
            crc: u32_at(b, 0),
            timestamp: u32_at(b, 4),
            expiry: u32_at(b, 8),
            key_len: u16::from_le_bytes([b[12], b[13]]),
            value_len: u32_at(b, 14),
            flags: b[18],
        }
    }

    /// Whole record length: header, key and value.
    pub fn record_len(&self) -> u64 {
        record_len(self.key_len as usize, self.value_len)
    }

    pub fn is_tombstone(&self) -> bool {
        self.flags & FLAG_TOMBSTONE != 0
    }

    /// What makes this header one bitcask never writes, if anything: the
    /// checks every reader of records and hint entries applies.
    pub fn problem(&self) -> Option<&'static str> {
        if self.flags & !KNOWN_FLAGS != 0 {
            Some("record has unknown flags")
        } else if self.key_len == 0 {
            Some("record has an empty key")
        } else if self.is_tombstone() && self.value_len != 0 {
            Some("tombstone record carries a value")
        } else if self.value_len > MAX_VALUE_LEN {
            Some("record value_len over 2^31-1")
        } else {
            None
        }
    }
}

pub fn record_len(key_len: usize, value_len: u32) -> u64 {
    RECORD_HEADER_LEN as u64 + key_len as u64 + value_len as u64
}

/// The 19-byte header of a record of `key` and `value`, CRC left 0.
fn encode_fields(
    timestamp: u32,
    expiry: u32,
    flags: u8,
    key: &[u8],
    value: &[u8],
) -> [u8; RECORD_HEADER_LEN] {
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[4..8].copy_from_slice(&timestamp.to_le_bytes());
    h[8..12].copy_from_slice(&expiry.to_le_bytes());
    h[12..14].copy_from_slice(&(key.len() as u16).to_le_bytes());
    h[14..18].copy_from_slice(&(value.len() as u32).to_le_bytes());
    h[18] = flags;
    h
}

/// The 19-byte header of a record of `key` and `value`, CRC included.
pub fn encode_header(
    timestamp: u32,
    expiry: u32,
    flags: u8,
    key: &[u8],
    value: &[u8],
) -> [u8; RECORD_HEADER_LEN] {
    let mut h = encode_fields(timestamp, expiry, flags, key, value);
    let mut crc = crc_hasher();
    crc.update(&h[4..]);
    crc.update(key);
    crc.update(value);
    h[..4].copy_from_slice(&crc.finalize().to_le_bytes());
    h
}

/// Appends one encoded record to `buf`.
pub fn encode_record(
    buf: &mut Vec<u8>,
    timestamp: u32,
    expiry: u32,
    flags: u8,
    key: &[u8],
    value: &[u8],
) {
    let start = buf.len();
    buf.extend_from_slice(&encode_fields(timestamp, expiry, flags, key, value));
    buf.extend_from_slice(key);
    buf.extend_from_slice(value);
    seal_crc(&mut buf[start..]);
}

/// Encodes one record into `dst`, which is exactly its length (a record's
/// place in a writable map).
pub fn encode_record_into(
    dst: &mut [u8],
    timestamp: u32,
    expiry: u32,
    flags: u8,
    key: &[u8],
    value: &[u8],
) {
    let (header, rest) = dst.split_at_mut(RECORD_HEADER_LEN);
    header.copy_from_slice(&encode_fields(timestamp, expiry, flags, key, value));
    let (k, v) = rest.split_at_mut(key.len());
    k.copy_from_slice(key);
    v.copy_from_slice(value);
    seal_crc(dst);
}

/// Writes the CRC of an encoded record into its first 4 bytes: one CRC
/// call over the contiguous record, since crc32fast folds 128 bytes at a
/// time only within one call (three short ones cost twice this).
fn seal_crc(record: &mut [u8]) {
    let crc = crc32(&record[4..]);
    record[..4].copy_from_slice(&crc.to_le_bytes());
}

/// True when a record read in two parts, `head` (at least its header)
/// and `rest`, carries a matching CRC.
pub fn crc_ok(head: &[u8], rest: &[u8]) -> bool {
    if head.len() < RECORD_HEADER_LEN {
        return false;
    }
    let crc = if rest.is_empty() {
        crc32(&head[4..])
    } else {
        let mut h = crc_hasher();
        h.update(&head[4..]);
        h.update(rest);
        h.finalize()
    };
    crc == u32_at(head, 0)
}

/// `crc32fast::hash` for the records of every put and get, without its
/// check of the CPU's features per call (about 37 instructions, a quarter
/// of a 135-byte record's CRC): the hasher is made once and copied.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut h = crc_hasher();
    h.update(bytes);
    h.finalize()
}

/// A fresh `crc32fast::Hasher`, copied from one made once.
fn crc_hasher() -> crc32fast::Hasher {
    static FRESH: std::sync::OnceLock<crc32fast::Hasher> = std::sync::OnceLock::new();
    FRESH.get_or_init(crc32fast::Hasher::new).clone()
}

pub fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example in docs/FORMAT.md ("For example, ...").
    #[test]
    fn the_documented_example_bytes() {
        let hex = |b: &[u8]| {
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            hex(&file_header(&DATA_MAGIC)),
            "42 49 54 43 41 53 4b 44 01 00 00 00 80 83 32 da"
        );
        let mut rec = Vec::new();
        encode_record(&mut rec, 1_700_000_000, 0, 0, b"k", b"v");
        assert_eq!(
            hex(&rec),
            "5c 28 e5 fd 00 f1 53 65 00 00 00 00 01 00 01 00 00 00 00 6b 76"
        );
    }

    #[test]
    fn record_roundtrip_and_crc() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, 9, 0, b"k\0y", b"value");
        assert_eq!(buf.len() as u64, record_len(3, 5));
        let h = RecordHeader::decode(&buf);
        assert_eq!(
            (h.timestamp, h.expiry, h.key_len, h.value_len, h.flags),
            (7, 9, 3, 5, 0)
        );
        assert!(crc_ok(&buf, &[]));
        let (head, rest) = buf.split_at(RECORD_HEADER_LEN + 1);
        assert!(crc_ok(head, rest), "in two parts");
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(!crc_ok(&bad, &[]), "flip at byte {i} not detected");
        }
    }

    /// The header checks every reader applies: what bitcask writes passes,
    /// each thing it never writes is named (a record with a value_len over
    /// 2^31-1 included, which a u32 field could hold).
    #[test]
    fn header_problems_are_what_bitcask_never_writes() {
        let hdr = |key_len, value_len, flags| RecordHeader {
            crc: 0,
            timestamp: 1,
            expiry: 0,
            key_len,
            value_len,
            flags,
        };
        assert_eq!(hdr(1, MAX_VALUE_LEN, 0).problem(), None);
        assert_eq!(hdr(1, 0, FLAG_TOMBSTONE).problem(), None);
        for (h, want) in [
            (hdr(1, 0, 0x02), "unknown flags"),
            (hdr(1, 0, 0x80), "unknown flags"),
            (hdr(0, 5, 0), "empty key"),
            (hdr(1, 5, FLAG_TOMBSTONE), "tombstone"),
            (hdr(1, MAX_VALUE_LEN + 1, 0), "2^31-1"),
            (hdr(1, u32::MAX, 0), "2^31-1"),
        ] {
            let got = h.problem().unwrap_or("none");
            assert!(got.contains(want), "{h:?}: {got}");
        }
    }

    #[test]
    fn file_header_checks() {
        let p = Path::new("x.data");
        let h = file_header(&DATA_MAGIC);
        check_file_header(&h, &DATA_MAGIC, p).unwrap();
        assert!(check_file_header(&h, &HINT_MAGIC, p).is_err());
        assert!(check_file_header(&h[..10], &DATA_MAGIC, p).is_err());
        let mut v2 = h;
        v2[8] = 2;
        let crc = crc32fast::hash(&v2[..12]);
        v2[12..16].copy_from_slice(&crc.to_le_bytes());
        let e = check_file_header(&v2, &DATA_MAGIC, p).unwrap_err();
        assert_eq!(e.status(), Status::VersionMismatch);
        assert!(e.message().contains("version 2"), "{e:?}");
    }
}
