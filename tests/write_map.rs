//! The write map (`Options::write_map`) beside other handles: a read-only
//! handle opened while a writer stores records into the zeros it allocated
//! ahead of them opens, and sees every key acknowledged before its open,
//! as a prefix of what was written. (Found by review: such opens failed
//! with BC_CORRUPTION, "damage with valid records after it", or BC_IO
//! when the writer sealed the file under them, in most runs of 40 opens
//! in a release build. This test catches that about one run in three
//! there, seldom in a debug build; `recovery`'s unit test of
//! `written_since` checks the mechanism every time.)

mod common;
use bitcask::{Db, Options, Status};
use common::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn key(i: u64) -> Vec<u8> {
    format!("k{i:010}").into_bytes()
}

#[test]
fn read_only_opens_beside_a_write_map_writer() {
    if !map_writes_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Files of 8 MiB: several seals (which cut the file under a reader)
    // during the run.
    let o = write_map_opts();
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
        let r = match Db::open(dir.path(), read_only.clone()) {
            Ok(r) => r,
            // Documented: a file cut under the open, now and then.
            Err(e) if e.status() == Status::Io && e.message().contains("open again") => continue,
            Err(e) => panic!("read-only open {opens}: {e:?}"),
        };
        let st = r.stats();
        assert!(
            st.recovered_zero_bytes <= st.recovered_bytes_dropped,
            "open {opens}: {} zero bytes of {} dropped",
            st.recovered_zero_bytes,
            st.recovered_bytes_dropped
        );
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
    // The opens met seals, which cut the file's preallocated zeros.
    let files = db.stats().data_files;
    assert!(files >= 2, "{files} data file: the writer never sealed one");
}
