//! Hints that lie under a valid CRC (a buggy or hostile writer recomputed
//! it): open must not trust what it can check cheaply, and merge must
//! never delete a value because a hint lied about it. Each test rewrites
//! one hint through a parser and encoder written from docs/FORMAT.md
//! (checked to reproduce the real hint byte for byte first).

mod common;

use bitcask::{Db, Options, Status};
use common::{files_ending, le_u32, mentions_offset, parse_data_file, record_image};
use std::fs;
use std::path::Path;

const TRAILER: usize = 808;
const PARTS: usize = 64;

#[derive(Clone, Debug)]
struct Entry {
    hash: u32,
    offset: u32,
    flags: u8,
    value_len: u32,
    ts: u32,
    expiry: Option<u32>,
    key: Vec<u8>,
}

struct HintFile {
    trailer: Vec<u8>, // seed, data_id, data_len, base
    base: u32,
    parts: Vec<Vec<Entry>>,
}

fn varint(b: &[u8], at: &mut usize) -> u32 {
    let (mut v, mut shift) = (0u32, 0);
    loop {
        let x = b[*at];
        *at += 1;
        v |= ((x & 0x7f) as u32) << shift;
        if x < 0x80 {
            return v;
        }
        shift += 7;
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn parse(b: &[u8]) -> HintFile {
    let t = b.len() - TRAILER;
    let base = le_u32(&b[t + 800..]);
    let (mut parts, mut at) = (Vec::new(), 16);
    for p in 0..PARTS {
        let end = u64::from_le_bytes(b[t + 12 * p + 4..t + 12 * p + 12].try_into().unwrap());
        let mut es = Vec::new();
        while at < end as usize {
            let (hash, offset, flags) = (le_u32(&b[at..]), le_u32(&b[at + 4..]), b[at + 8]);
            at += 9;
            let key_len = varint(b, &mut at) as usize;
            let value_len = varint(b, &mut at);
            let ts = base + varint(b, &mut at);
            let expiry = (flags & 0x80 != 0).then(|| {
                at += 4;
                le_u32(&b[at - 4..])
            });
            let key = b[at..at + key_len].to_vec();
            at += key_len;
            es.push(Entry {
                hash,
                offset,
                flags,
                value_len,
                ts,
                expiry,
                key,
            });
        }
        assert_eq!(es.len(), le_u32(&b[t + 12 * p..]) as usize);
        parts.push(es);
    }
    HintFile {
        trailer: b[t + 768..t + 804].to_vec(),
        base,
        parts,
    }
}

/// `counts` overrides the table's counts.
fn encode(h: &HintFile, counts: Option<&[u32]>) -> Vec<u8> {
    let mut b = b"BITCASKH".to_vec();
    b.extend_from_slice(&4u32.to_le_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    let mut table = Vec::new();
    for (p, es) in h.parts.iter().enumerate() {
        for e in es {
            b.extend_from_slice(&e.hash.to_le_bytes());
            b.extend_from_slice(&e.offset.to_le_bytes());
            b.push(e.flags);
            put_varint(&mut b, e.key.len() as u32);
            put_varint(&mut b, e.value_len);
            put_varint(&mut b, e.ts - h.base);
            if let Some(x) = e.expiry {
                b.extend_from_slice(&x.to_le_bytes());
            }
            b.extend_from_slice(&e.key);
        }
        let count = counts.map_or(es.len() as u32, |c| c[p]);
        table.extend_from_slice(&count.to_le_bytes());
        table.extend_from_slice(&(b.len() as u64).to_le_bytes());
    }
    b.extend_from_slice(&table);
    b.extend_from_slice(&h.trailer);
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// The only hint of `dir`, rewritten by `lie` with a valid CRC.
fn rewrite(dir: &Path, lie: impl FnOnce(&mut HintFile)) {
    let hints = files_ending(dir, ".hint");
    assert_eq!(hints.len(), 1, "{hints:?}");
    let bytes = fs::read(&hints[0]).unwrap();
    let mut h = parse(&bytes);
    assert!(
        encode(&h, None) == bytes,
        "the test's encoder reproduces the hint"
    );
    lie(&mut h);
    fs::write(&hints[0], encode(&h, None)).unwrap();
}

fn entry<'a>(h: &'a mut HintFile, key: &[u8]) -> &'a mut Entry {
    h.parts
        .iter_mut()
        .flatten()
        .rfind(|e| e.key == key)
        .unwrap()
}

/// A database of one sealed file (with its hint): `puts`, then a
/// dead record so that a merge has work.
fn db_with(puts: &[(&[u8], &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    for (k, v) in puts {
        db.put(k, v).unwrap();
    }
    db.put(b"other", b"1").unwrap();
    db.put(b"other", b"2").unwrap();
    db.close().unwrap();
    dir
}

/// What a get answers: the value, or the status.
type Got = Result<Option<Vec<u8>>, Status>;

fn get(db: &Db, key: &[u8]) -> Got {
    db.get(key).map_err(|e| e.status())
}

/// The record of `key` in the directory's one data file.
fn record_offset(dir: &Path, key: &[u8]) -> u64 {
    let data = files_ending(dir, ".data");
    let recs = parse_data_file(&data[0]);
    recs.iter().rfind(|r| r.key == key).unwrap().offset
}

/// A merge must refuse (naming the file and offset), not take the record
/// for an overwritten one: that would delete it while the keydir still
/// points at it (BC_INTERNAL at the next get, the value gone at reopen).
fn merge_refuses(dir: &Path, at: u64, want: &[(&[u8], Got)]) {
    let db = Db::open(dir, Options::default()).unwrap();
    for (k, v) in want {
        assert_eq!(&get(&db, k), v, "{k:?} before the merge");
    }
    let e = db.merge().unwrap_err();
    assert_eq!(e.status(), Status::Corruption, "{}", e.message());
    assert!(
        e.message().contains(".data") && mentions_offset(e.message(), at),
        "{}",
        e.message()
    );
    for (k, v) in want {
        assert_eq!(&get(&db, k), v, "{k:?} after the refused merge");
    }
    db.close().unwrap();
    // With the hints gone, the files scan back to what was written.
    for hint in files_ending(dir, ".hint") {
        fs::remove_file(hint).unwrap();
    }
    let db = Db::open(dir, Options::default()).unwrap();
    assert_eq!(get(&db, b"victim"), Ok(Some(b"precious".to_vec())));
}

#[test]
fn merge_refuses_an_entry_whose_expiry_lies() {
    let dir = db_with(&[(b"victim", b"precious")]);
    rewrite(dir.path(), |h| {
        let e = entry(h, b"victim");
        e.flags |= 0x80;
        e.expiry = Some(u32::MAX);
    });
    let at = record_offset(dir.path(), b"victim");
    merge_refuses(
        dir.path(),
        at,
        &[(b"victim", Ok(Some(b"precious".to_vec())))],
    );
}

#[test]
fn merge_refuses_entries_whose_value_lengths_lie() {
    // The records still tile the file: a's one byte longer, the victim's
    // one byte later and shorter.
    let dir = db_with(&[(b"a", b"aaaa"), (b"victim", b"precious")]);
    rewrite(dir.path(), |h| {
        entry(h, b"a").value_len += 1;
        let v = entry(h, b"victim");
        v.offset += 1;
        v.value_len -= 1;
    });
    let at = record_offset(dir.path(), b"a");
    let bad = Err(Status::Corruption);
    merge_refuses(dir.path(), at, &[(b"a", bad.clone()), (b"victim", bad)]);
}

#[test]
fn merge_refuses_a_tombstone_whose_entry_says_value() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    db.put(b"victim", b"precious").unwrap();
    db.put(b"gone", b"old").unwrap();
    db.close().unwrap();
    // The tombstone in a later file, whose hint then lies about it.
    let db = Db::open(dir.path(), Options::default()).unwrap();
    db.delete(b"gone").unwrap();
    db.put(b"other", b"1").unwrap();
    db.put(b"other", b"2").unwrap();
    db.close().unwrap();
    let hints = files_ending(dir.path(), ".hint");
    let moved = dir.path().join("newest.hint.keep");
    fs::rename(&hints[0], &moved).unwrap();
    rewrite(dir.path(), |h| entry(h, b"gone").flags &= !1);
    fs::rename(&moved, &hints[0]).unwrap();
    let data = files_ending(dir.path(), ".data");
    let at = parse_data_file(data.last().unwrap())
        .iter()
        .find(|r| r.key == b"gone")
        .unwrap()
        .offset;
    merge_refuses(
        dir.path(),
        at,
        &[
            (b"victim", Ok(Some(b"precious".to_vec()))),
            (b"gone", Err(Status::Corruption)),
        ],
    );
}

/// An entry moved into the value of another record, which holds a
/// well-formed record of the same key (CRC and key check pass there): the
/// records no longer tile the file, so the hint is not used.
#[test]
fn an_entry_inside_another_record_is_not_used() {
    let forged = record_image(b"victim", b"FORGED!!");
    let dir = db_with(&[(b"victim", b"precious"), (b"carrier", &forged)]);
    let inside = record_offset(dir.path(), b"carrier") + 19 + 7;
    // Only the offset lies: the lengths still add up to the file's.
    rewrite(dir.path(), |h| entry(h, b"victim").offset = inside as u32);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(get(&db, b"victim"), Ok(Some(b"precious".to_vec())));
    assert_eq!(get(&db, b"carrier"), Ok(Some(forged)));
}

/// A key's two entries swapped in their partition: the older value would
/// win. Entries must come in `(hash, offset)` order.
#[test]
fn entries_out_of_order_are_not_used() {
    let dir = db_with(&[(b"victim", b"old"), (b"victim", b"precious")]);
    rewrite(dir.path(), |h| {
        let es = h
            .parts
            .iter_mut()
            .find(|es| es.iter().any(|e| e.key == b"victim"))
            .unwrap();
        let i = es.iter().position(|e| e.key == b"victim").unwrap();
        es.swap(i, i + 1);
    });
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(get(&db, b"victim"), Ok(Some(b"precious".to_vec())));
}

fn peak_rss_kib() -> u64 {
    let s = fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A partition holding far more entries than the hint's data file can
/// have (each sane: a 65,535-byte key, its record inside the data file,
/// in `(hash, offset)` order) is refused before the surplus reaches the
/// keydir: open uses no memory for it, where it took 200 MB for a 200 MB
/// hint. With the table's counts kept, the first entry past its
/// partition's count stops it (as would the next bound); with the counts
/// raised to match, the records' bytes passing the data file's length do.
#[test]
fn entries_past_what_the_data_file_holds_take_no_memory() {
    for raise_counts in [false, true] {
        let big = vec![7u8; 1 << 20];
        let dir = db_with(&[(b"victim", b"precious"), (b"big", &big)]);
        let hint = &files_ending(dir.path(), ".hint")[0];
        let mut h = parse(&fs::read(hint).unwrap());
        let counts: Vec<u32> = h.parts.iter().map(|es| es.len() as u32).collect();
        let p = h
            .parts
            .iter()
            .position(|es| es.iter().any(|e| e.key == b"victim"))
            .unwrap();
        let e = entry(&mut h, b"victim").clone();
        // After every entry of the victim's hash, one byte apart.
        let after = h.parts[p]
            .iter()
            .filter(|x| x.hash == e.hash)
            .map(|x| x.offset)
            .max()
            .unwrap();
        let at = h.parts[p].iter().rposition(|x| x.hash <= e.hash).unwrap() + 1;
        for i in 0..1000u32 {
            let mut key = vec![b'x'; 65535];
            key[..4].copy_from_slice(&i.to_le_bytes());
            let surplus = Entry {
                value_len: 0,
                key,
                offset: after + 1 + i,
                ..e.clone()
            };
            h.parts[p].insert(at + i as usize, surplus);
        }
        fs::write(hint, encode(&h, (!raise_counts).then_some(&counts[..]))).unwrap();
        drop(h);
        // Resets the peak (VmHWM) to the current RSS.
        fs::write("/proc/self/clear_refs", "5").unwrap();
        let before = peak_rss_kib();
        let db = Db::open(dir.path(), Options::default()).unwrap();
        let grew = peak_rss_kib() - before;
        assert_eq!(get(&db, b"victim"), Ok(Some(b"precious".to_vec())));
        assert_eq!(get(&db, b"big"), Ok(Some(big)));
        assert!(
            grew < 24 << 10,
            "counts raised: {raise_counts}: the peak RSS grew by {grew} KiB for a 65 MB hint"
        );
    }
}

/// A hint name that is a symbolic link to nothing is a missing hint: the
/// data file is scanned and a read-write open writes the hint in its place.
#[test]
fn a_dangling_symlink_for_a_hint_is_a_missing_hint() {
    let dir = db_with(&[(b"victim", b"precious")]);
    let hint = &files_ending(dir.path(), ".hint")[0];
    fs::remove_file(hint).unwrap();
    std::os::unix::fs::symlink("/nonexistent/hint", hint).unwrap();
    for read_only in [true, false] {
        let db = Db::open(
            dir.path(),
            Options {
                read_only,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(get(&db, b"victim"), Ok(Some(b"precious".to_vec())));
        db.close().unwrap();
    }
    assert!(
        fs::symlink_metadata(hint).unwrap().is_file(),
        "the hint was rewritten"
    );
    // A data file's name is another matter: its records would be missing.
    let data = &files_ending(dir.path(), ".data")[0];
    fs::remove_file(data).unwrap();
    std::os::unix::fs::symlink("/nonexistent/data", data).unwrap();
    let Err(e) = Db::open(dir.path(), Options::default()) else {
        panic!("opened without a data file");
    };
    assert_eq!(e.status(), Status::Io, "{}", e.message());
    assert!(
        e.message().contains(&data.display().to_string()),
        "{}",
        e.message()
    );
}
