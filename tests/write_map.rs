//! The write map (`Options::write_map`) beside other handles: a read-only
//! handle opened while a writer stores records into the zeros it allocated
//! ahead of them opens, and sees every key acknowledged before its open,
//! as a prefix of what was written. (Found by review: such opens failed
//! with BC_CORRUPTION, "damage with valid records after it", or BC_IO
//! when the writer sealed the file under them, about one in ten.)

mod common;
use bitcask::{Db, Options, SyncMode};
use common::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn key(i: u64) -> Vec<u8> {
    format!("k{i:010}").into_bytes()
}

#[test]
fn read_only_opens_beside_a_write_map_writer() {
    if !cfg!(target_pointer_width = "64") {
        return; // no maps: the option has no effect
    }
    let dir = tempfile::tempdir().unwrap();
    // Files of 8 MiB: several seals (which cut the file under a reader)
    // during the run.
    let o = Options {
        write_map: true,
        ..opts(8 << 20, SyncMode::None)
    };
    let db = Arc::new(open(dir.path(), &o));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (db, stop, acked) = (db.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                db.put(&key(i), &[b'v'; 3000]).unwrap();
                i += 1;
                acked.store(i, Ordering::Release);
            }
        })
    };
    let read_only = Options {
        read_only: true,
        ..o.clone()
    };
    let start = Instant::now();
    let mut opens = 0;
    while opens < 30 && start.elapsed() < Duration::from_secs(3) {
        let before = acked.load(Ordering::Acquire);
        let r = ok(Db::open(dir.path(), read_only.clone()), "read-only open");
        let n = r.count();
        assert!(
            n >= before,
            "open {opens}: {n} keys, {before} acknowledged before it"
        );
        // Keys 0..n exactly: a prefix (a probe every 97 keys, and the ends).
        for i in (0..n).step_by(97).chain(n.checked_sub(1)) {
            assert!(
                ok(r.get(&key(i)), "get").is_some(),
                "open {opens}: key {i} of {n} missing"
            );
        }
        assert_eq!(
            ok(r.get(&key(n)), "get"),
            None,
            "open {opens}: key {n} of {n}"
        );
        opens += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(opens >= 5, "{opens} opens");
}

/// The rule behind the test above, without its timing: while a writer
/// holds the directory, a read-only open reads the newest file up to the
/// zeros after its records and no further, even where a record already
/// stands past them (as one the writer appended after the open read those
/// zeros would). Where no writer holds the files, the zeros are a page a
/// power loss lost, and the record after them is read.
#[test]
fn a_read_only_open_beside_a_writer_stops_at_the_zeros() {
    if !cfg!(target_pointer_width = "64") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        write_map: true,
        ..opts(64 << 20, SyncMode::None)
    };
    let db = open(dir.path(), &o);
    for i in 0..10 {
        ok(db.put(&key(i), b"value"), "put");
    }
    let file = data_files(dir.path()).pop().unwrap();
    let records = 10 * (19 + 11 + 5);
    // A record 8 KiB past the last one, in the zeros allocated ahead.
    let image = record_image(&key(99), b"later");
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &image, 16 + records + 8192).unwrap();
    let read_only = Options {
        read_only: true,
        ..o.clone()
    };
    let r = ok(Db::open(dir.path(), read_only.clone()), "read-only open");
    assert_eq!(r.count(), 10);
    assert_eq!(ok(r.get(&key(99)), "get"), None);
    assert!(r.stats().recovered_bytes_dropped > 0);
    drop(r);
    // A copy of the directory, which no writer holds, is the same files.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    let r = ok(
        Db::open(copy.path(), read_only),
        "read-only open, no writer",
    );
    assert_eq!(r.count(), 11);
    assert_eq!(ok(r.get(&key(99)), "get"), Some(b"later".to_vec()));
    ok(db.close(), "close");
}
