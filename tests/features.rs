//! Hint files, selective merge, TTL, iteration, stats, descriptor bound.

mod common;

use bitcask::{Db, Options, Status, SyncMode};
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn opts_with_clock(now: &Arc<AtomicU32>) -> Options {
    let o = Options {
        max_file_size: 4096,
        ..Options::default()
    };
    common::with_clock(o, now)
}

fn names(dir: &Path, suffix: &str) -> Vec<String> {
    let files = common::files_ending(dir, suffix);
    files.iter().map(|p| common::file_name(p)).collect()
}

#[test]
fn ttl_expires_on_the_clock_and_never_resurrects_older_values() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicU32::new(1_000));
    let db = Db::open(dir.path(), opts_with_clock(&now)).unwrap();
    db.put(b"k", b"old").unwrap();
    // Fill a few files so "k"'s old value sits in an older file; the last
    // filler starts the file "new" goes to.
    let mut fillers = 0;
    common::fill_until_files(&db, 5, &mut fillers);
    db.put_ttl(b"k", b"new", 10).unwrap();
    // Values that expire with "new", so that its file is worth merging.
    for i in 0..60u32 {
        db.put_ttl(format!("t{i}").as_bytes(), &[0; 40], 10)
            .unwrap();
    }
    db.put_ttl(b"forever", b"x", 0).unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"new"[..]));
    now.store(1_009, Ordering::Relaxed);
    assert!(db.contains(b"k").unwrap());
    now.store(1_010, Ordering::Relaxed);
    assert_eq!(db.get(b"k").unwrap(), None);
    assert!(!db.contains(b"k").unwrap());
    assert!(!db.delete(b"k").unwrap(), "an expired key is absent");
    assert_eq!(db.stats().expired_keys, 61);
    assert_eq!(db.count(), fillers as u64 + 1);
    let mut it = db.iter(b"k").unwrap();
    assert_eq!(it.next_key().unwrap(), None);
    // The iterator outlives close: the lock must still be released.
    db.close().unwrap();
    let db = Db::open(dir.path(), opts_with_clock(&now)).unwrap();
    assert_eq!(db.get(b"k").unwrap(), None);
    drop(db);

    // A partial merge of the files holding the expired records, not the
    // oldest file with "old", must leave a tombstone: "old" must not come
    // back.
    let oldest = names(dir.path(), ".data")[0].clone();
    let db = Db::open(
        dir.path(),
        Options {
            merge: common::merge_when_half_dead(),
            ..opts_with_clock(&now)
        },
    )
    .unwrap();
    assert!(db.merge_if_needed().unwrap(), "no partial merge");
    assert!(
        dir.path().join(&oldest).exists(),
        "the merge was not partial"
    );
    assert_eq!(db.get(b"k").unwrap(), None);
    db.close().unwrap();
    let db = Db::open(dir.path(), opts_with_clock(&now)).unwrap();
    assert_eq!(
        db.get(b"k").unwrap(),
        None,
        "expired key let an older value back"
    );
    db.merge().unwrap();
    assert_eq!(db.stats().expired_keys, 0);
    assert_eq!(db.get(b"k").unwrap(), None);
    assert_eq!(db.get(b"forever").unwrap().as_deref(), Some(&b"x"[..]));
    drop(db);
    let db = Db::open(dir.path(), opts_with_clock(&now)).unwrap();
    assert_eq!(db.get(b"k").unwrap(), None);
}

/// A partial merge that fails after it met an expired record (here: a
/// damaged later input) leaves that key's older value shadowed: the next
/// partial merge, which succeeds, must still write a tombstone for it,
/// because the file holding the older value is not merged. (Merge used to
/// drop the key from the keydir as soon as it met the expired record; the
/// next merge then took the record for an overwritten one, dropped it
/// without a tombstone, and "old" came back at the next open.)
#[test]
fn a_failed_partial_merge_leaves_its_expired_keys_to_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicU32::new(1_000));
    let opts = Options {
        merge: common::merge_when_half_dead(),
        ..opts_with_clock(&now)
    };
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    // Puts until the database has one more data file: the last record
    // put opens it.
    let fill = |prefix: &str, ttl: u32| {
        let files = db.stats().data_files;
        let mut i = 0;
        while db.stats().data_files == files {
            db.put_ttl(format!("{prefix}{i}").as_bytes(), &[1; 200], ttl)
                .unwrap();
            i += 1;
        }
    };
    db.put(b"k", b"old").unwrap();
    fill("live", 0); // file 1: "old" and live values, never merged
    db.put_ttl(b"k", b"new", 10).unwrap();
    fill("a", 10); // file 2: "new" and values that expire
    fill("b", 10); // file 3: values that expire; file 4 is active
                   // Reopened, so that files 1 to 3 are sealed (merge candidates).
    db.close().unwrap();
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    let data = names(dir.path(), ".data");
    assert_eq!(data.len(), 4, "{data:?}");
    now.store(1_010, Ordering::Relaxed);
    assert_eq!(db.get(b"k").unwrap(), None);

    // File 3 damaged: the merge of files 2 and 3 fails in file 3, after
    // it met "new" in file 2.
    let third = dir.path().join(&data[2]);
    let mut bytes = fs::read(&third).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    fs::write(&third, &bytes).unwrap();
    let e = db.merge_if_needed().unwrap_err();
    assert_eq!(e.status(), Status::Corruption, "{}", e.message());
    bytes[at] ^= 0xff;
    fs::write(&third, &bytes).unwrap();

    assert!(db.merge_if_needed().unwrap());
    assert!(dir.path().join(&data[0]).exists(), "file 1 was merged");
    assert!(!dir.path().join(&data[1]).exists(), "file 2 was not merged");
    assert_eq!(db.get(b"k").unwrap(), None);
    db.close().unwrap();
    let db = Db::open(dir.path(), opts).unwrap();
    assert_eq!(db.get(b"k").unwrap(), None, "an older value came back");
    assert_eq!(db.get(b"live0").unwrap().as_deref(), Some(&[1u8; 200][..]));
}

#[test]
fn default_ttl_applies_to_plain_puts() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicU32::new(50));
    let opts = Options {
        default_ttl_secs: 5,
        ..opts_with_clock(&now)
    };
    let db = Db::open(dir.path(), opts).unwrap();
    db.put(b"a", b"1").unwrap();
    db.put_ttl(b"b", b"2", 0).unwrap();
    now.store(55, Ordering::Relaxed);
    assert_eq!(db.get(b"a").unwrap(), None);
    assert_eq!(db.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
}

/// A `with_value` callback may read the database again (a get, another
/// `with_value`, an iterator's value): the nested read gets a buffer of
/// its own instead of finding the thread's read buffer taken.
#[test]
fn a_value_callback_may_read_the_database_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    db.put(b"a", b"points-at:b").unwrap();
    db.put(b"b", b"target").unwrap();
    db.sync().unwrap(); // read from the file, not the write buffer
    let nested = db
        .with_value(b"a", |a| {
            let next = &a[b"points-at:".len()..];
            let inner = db.with_value(next, |b| [a, b].concat()).unwrap();
            (inner, db.get(next).unwrap())
        })
        .unwrap()
        .unwrap();
    assert_eq!(nested.0.unwrap(), b"points-at:btarget");
    assert_eq!(nested.1.unwrap(), b"target");
    let mut it = db.iter(b"a").unwrap();
    it.next_key().unwrap().unwrap();
    let v = it.with_value(|a| db.get(&a[10..]).unwrap()).unwrap();
    assert_eq!(v.unwrap().unwrap(), b"target");
}

#[test]
fn iteration_is_a_sorted_snapshot_that_skips_later_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    for k in ["b:2", "a:1", "b:1", "b:3", "c:1"] {
        db.put(k.as_bytes(), k.as_bytes()).unwrap();
    }
    let mut it = db.iter(b"b:").unwrap();
    assert_eq!(it.len(), 3);
    assert_eq!(it.next_key().unwrap(), Some(&b"b:1"[..]));
    assert_eq!(
        it.with_value(|v| v.to_vec()).unwrap(),
        Some(b"b:1".to_vec())
    );
    db.delete(b"b:2").unwrap();
    db.put(b"b:25", b"new").unwrap();
    db.put(b"b:3", b"changed").unwrap();
    db.merge().unwrap();
    assert_eq!(
        it.next_key().unwrap(),
        Some(&b"b:3"[..]),
        "deleted b:2 skipped, new b:25 unseen"
    );
    assert_eq!(
        it.with_value(|v| v.to_vec()).unwrap(),
        Some(b"changed".to_vec())
    );
    assert_eq!(it.next_key().unwrap(), None);
    assert_eq!(db.iter(b"").unwrap().len(), 5);
}

#[test]
fn open_uses_hints_and_survives_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let opts = common::opts(4096, SyncMode::None);
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    for i in 0..2000u32 {
        db.put(format!("k{i}").as_bytes(), format!("v{i}").as_bytes())
            .unwrap();
    }
    for i in (0..2000u32).step_by(7) {
        db.delete(format!("k{i}").as_bytes()).unwrap();
    }
    let expected = db.stats();
    db.close().unwrap();
    let data = names(dir.path(), ".data");
    let hints = names(dir.path(), ".hint");
    assert_eq!(
        data.len(),
        hints.len(),
        "every sealed file has a hint: {data:?} {hints:?}"
    );

    let check = || {
        let db = Db::open(dir.path(), opts.clone()).unwrap();
        let s = db.stats();
        assert_eq!(
            (s.live_keys, s.live_bytes, s.dead_bytes),
            (expected.live_keys, expected.live_bytes, expected.dead_bytes)
        );
        for i in 0..2000u32 {
            let got = db.get(format!("k{i}").as_bytes()).unwrap();
            assert_eq!(got.is_none(), i % 7 == 0, "k{i}");
        }
    };
    check();
    // Damage every kind of way: truncate one, corrupt one, delete one,
    // replace one with another file's hint, and change a key byte that only
    // the CRC catches, after the loaders applied the wrong key.
    let h = |i: usize| dir.path().join(&hints[i]);
    let pristine: Vec<Vec<u8>> = (0..6).map(|i| fs::read(h(i)).unwrap()).collect();
    // The first entry (docs/FORMAT.md): hash, offset and flags at 16..25,
    // then key_len, value_len and the timestamp, one byte each here (short
    // keys and values, written within seconds), then the key at 28.
    let first_entry = |bytes: &[u8]| {
        assert!(bytes[25] >= 2 && bytes[25..28].iter().all(|&b| b < 0x80));
    };
    let mut bytes = fs::read(h(5)).unwrap();
    first_entry(&bytes);
    bytes[28 + 1] ^= 0x01; // the first entry's second key byte
    fs::write(h(5), &bytes).unwrap();
    let bytes = fs::read(h(0)).unwrap();
    fs::write(h(0), &bytes[..bytes.len() - 5]).unwrap();
    let mut bytes = fs::read(h(1)).unwrap();
    first_entry(&bytes);
    bytes[24] ^= 0x10; // the first entry's flags: a flag no record has
    fs::write(h(1), &bytes).unwrap();
    fs::remove_file(h(2)).unwrap();
    fs::copy(h(4), h(3)).unwrap();
    check();
    // The bad hints were rewritten by that open: the same bytes as before
    // the damage (same seed, same entries, same order).
    for (i, want) in pristine.iter().enumerate() {
        assert!(
            fs::read(h(i)).unwrap() == *want,
            "hint {} not rewritten",
            hints[i]
        );
    }
    check();
}

/// Bytes this thread has read through system calls (`rchar`), or None
/// where /proc does not say.
fn thread_read_bytes() -> Option<u64> {
    let io = fs::read_to_string("/proc/thread-self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
}

/// Open reads each data file's header, not its records, when a hint
/// serves its keydir entries: before, the header check read the first
/// megabyte of every data file (18 ms of a cold 10 M-key open, and a
/// gigabyte for a thousand large files).
#[test]
fn open_from_hints_reads_the_data_files_headers_only() {
    let dir = tempfile::tempdir().unwrap();
    let opts = common::opts(256 << 10, SyncMode::None);
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    for i in 0..1000u32 {
        db.put(format!("k{i}").as_bytes(), &[7u8; 2000]).unwrap();
    }
    db.close().unwrap();
    let data: u64 = common::data_files(dir.path())
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert!(data > 1 << 20, "{data} bytes of data files");
    let ro = Options {
        read_only: true,
        ..opts
    };
    // (The loaders read the hints in threads of their own: what this
    // thread reads is the files' headers and the hints' tables.)
    let Some(before) = thread_read_bytes() else {
        eprintln!("no /proc/thread-self/io: skipped");
        return;
    };
    let db = Db::open(dir.path(), ro).unwrap();
    let read = thread_read_bytes().unwrap() - before;
    assert_eq!(db.stats().live_keys, 1000);
    assert!(
        read < data / 50,
        "open read {read} bytes in the opening thread, of {data} bytes of data files"
    );
}

#[test]
fn selective_merge_takes_only_fragmented_files_and_keeps_deletes_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        max_file_size: 4096,
        merge: common::merge_when_half_dead(),
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    // Old values of "gone" in the first files, then a lot of stable data,
    // then the delete: the tombstone's file is fragmented, the files with
    // the old values are not all merged with it.
    for i in 0..20u32 {
        db.put(b"gone", format!("old{i}").as_bytes()).unwrap();
    }
    for i in 0..400u32 {
        db.put(format!("stable{i}").as_bytes(), &[1; 30]).unwrap();
    }
    for _ in 0..5 {
        for i in 0..40u32 {
            db.put(format!("hot{i}").as_bytes(), &[2; 30]).unwrap();
        }
    }
    assert!(db.delete(b"gone").unwrap());
    db.close().unwrap();
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    let before = names(dir.path(), ".data");
    assert!(db.needs_merge());
    assert!(db.merge_if_needed().unwrap());
    let after = names(dir.path(), ".data");
    let untouched = before.iter().filter(|n| after.contains(n)).count();
    assert!(
        untouched > 0,
        "a selective merge left no file alone: {before:?} -> {after:?}"
    );
    assert!(untouched < before.len());
    assert_eq!(db.get(b"gone").unwrap(), None);
    for i in 0..400u32 {
        assert!(db.contains(format!("stable{i}").as_bytes()).unwrap());
    }
    db.close().unwrap();
    let db = Db::open(dir.path(), opts).unwrap();
    assert_eq!(
        db.get(b"gone").unwrap(),
        None,
        "deleted key came back after a partial merge"
    );
    db.merge().unwrap();
    assert_eq!(db.stats().dead_bytes, 0);
    assert_eq!(db.get(b"gone").unwrap(), None);
}

#[test]
fn auto_merge_reclaims_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        max_file_size: 4096,
        auto_merge: Some(Duration::from_millis(10)),
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    for round in 0..20u32 {
        for i in 0..50u32 {
            db.put(format!("k{i}").as_bytes(), format!("{round}").as_bytes())
                .unwrap();
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while db.stats().merges == 0 {
        assert!(std::time::Instant::now() < deadline, "auto-merge never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    for i in 0..50u32 {
        assert_eq!(
            db.get(format!("k{i}").as_bytes()).unwrap(),
            Some(b"19".to_vec())
        );
    }
    db.close().unwrap();
}

/// A few keys overwritten over and over fill only the active file, which
/// no merge took: with the default 256 MiB files a small database on a
/// device grew to 256 MiB of dead records before anything was reclaimed
/// (a new user's review). Once the active file holds the small-file
/// threshold, and 1 MiB at least, and fires a trigger, the merge triggers
/// fire and a merge retires it and takes it.
#[test]
fn a_fragmented_active_file_is_merged() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        merge: bitcask::MergePolicy {
            small_file_threshold: 0,
            ..Default::default()
        },
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    let put_round = |round: u32| {
        for i in 0..100u32 {
            db.put(format!("k{i}").as_bytes(), &[round as u8; 100])
                .unwrap();
        }
    };
    // Three rounds: 67% dead, but 36 KB, under 1 MiB: the active file is
    // left to fill, even with a small-file threshold of 0.
    for round in 0..3 {
        put_round(round);
    }
    assert!(!db.needs_merge(), "{:?}", db.stats());
    // 100 rounds: 99% dead, 1.19 MB.
    for round in 3..100 {
        put_round(round);
    }
    let before = db.stats();
    assert_eq!(before.data_files, 1);
    assert!(db.needs_merge(), "{before:?}");
    assert!(db.merge_if_needed().unwrap(), "a merge ran");
    let after = db.stats();
    assert_eq!(after.dead_bytes, 0, "{after:?}");
    assert!(
        after.total_bytes < before.total_bytes / 50,
        "{} bytes after the merge, {} before",
        after.total_bytes,
        before.total_bytes
    );
    assert!(!db.needs_merge());
    db.close().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    for i in 0..100u32 {
        let got = db.get(format!("k{i}").as_bytes()).unwrap();
        assert_eq!(got, Some(vec![99u8; 100]));
    }
}

#[test]
fn thousands_of_files_under_a_descriptor_limit() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        max_file_size: 4096,
        max_open_files: 16,
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    let value = [7u8; 1000];
    for i in 0..4000u32 {
        db.put(format!("k{i}").as_bytes(), &value).unwrap();
    }
    db.close().unwrap();
    assert!(names(dir.path(), ".data").len() >= 1000);
    // Descriptors of files in this database only: the other tests of this
    // binary run in parallel threads of the same process, with their own.
    let root = dir.path().canonicalize().unwrap();
    let fds = || {
        fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| fs::read_link(e.unwrap().path()).ok())
            .filter(|target| target.starts_with(&root))
            .count()
    };
    assert_eq!(fds(), 0);
    let db = Db::open(dir.path(), opts).unwrap();
    for i in (0..4000u32).rev() {
        assert_eq!(
            db.get(format!("k{i}").as_bytes()).unwrap().as_deref(),
            Some(&value[..])
        );
    }
    // max_open_files, the lock file, and a few in passing (the active
    // file, a hint being written).
    assert!(fds() <= 16 + 4, "{} descriptors open", fds());
    db.merge().unwrap();
    assert!(fds() <= 16 + 4, "{} descriptors open after merge", fds());
    assert_eq!(db.stats().live_keys, 4000);
}

#[test]
fn stats_count_what_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    db.put(b"a", b"12345").unwrap();
    db.put(b"a", b"6789").unwrap();
    assert!(db.delete(b"a").unwrap());
    let s = db.stats();
    // Records: 19+1+5, 19+1+4, tombstone 19+1: all dead now.
    assert_eq!(s.live_keys, 0);
    assert_eq!(s.total_bytes, 16 + 25 + 24 + 20);
    assert_eq!(s.dead_bytes, 25 + 24 + 20);
    assert_eq!(s.live_bytes, 0);
    db.merge().unwrap();
    let s = db.stats();
    // One empty file keeps the newest id, so no name is used twice; it
    // gives later merges nothing to do.
    assert_eq!((s.data_files, s.total_bytes, s.merges), (1, 16, 1));
    assert!(!db.needs_merge());
    assert!(!db.merge_if_needed().unwrap());
    db.merge().unwrap();
    let s = db.stats();
    assert_eq!((s.data_files, s.total_bytes, s.merges), (1, 16, 1));
    assert_eq!(
        db.put(b"", b"x").unwrap_err().status(),
        Status::InvalidArgument
    );
}

/// `count` and `stats().live_keys` while keys are put and expire: the live
/// count was the keydir's size minus expired keys counted a moment later,
/// which went below zero (wrapping to ~2^64, or a panic in a debug build)
/// when keys put in between had already expired.
#[test]
fn live_count_stays_in_range_while_keys_expire() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicU32::new(1_000));
    let db = Arc::new(
        Db::open(
            dir.path(),
            Options {
                max_file_size: 1 << 20,
                ..opts_with_clock(&now)
            },
        )
        .unwrap(),
    );
    const N: u64 = 20_000;
    let checks = Arc::new(AtomicU64::new(0));
    let writer = {
        let (db, now, checks) = (db.clone(), now.clone(), checks.clone());
        std::thread::spawn(move || {
            for i in 0..N {
                // Every 1,000 puts, wait for a check (on a loaded machine
                // the writer could otherwise finish before any ran).
                while i % 1000 == 0 && checks.load(Ordering::Relaxed) <= i / 1000 {
                    std::thread::yield_now();
                }
                db.put_ttl(format!("k{i}").as_bytes(), b"v", 1).unwrap();
                // Every key has expired by the next put.
                now.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while !writer.is_finished() {
        let c = db.count();
        assert!(c <= N, "count {c} out of range");
        let s = db.stats();
        assert!(s.live_keys <= N, "live_keys {} out of range", s.live_keys);
        checks.fetch_add(1, Ordering::Relaxed);
    }
    writer.join().unwrap();
    now.fetch_add(10, Ordering::Relaxed);
    assert_eq!(db.count(), 0);
    let s = db.stats();
    assert_eq!((s.live_keys, s.expired_keys), (0, N));
}

/// stats() beside a writer that starts a new data file every few puts:
/// stats once took the file table and then the writer lock, where the
/// writer takes the file table under the writer lock when it rotates, and
/// the two deadlocked (seen on btrfs, where rotation is slower).
#[test]
fn stats_beside_a_rotating_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), common::opts(4096, SyncMode::None)).unwrap());
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            for i in 0..20_000u32 {
                db.put(format!("k{i}").as_bytes(), &[1u8; 100]).unwrap();
            }
        })
    };
    let reader = {
        let db = db.clone();
        std::thread::spawn(move || {
            let mut calls = 0u64;
            while !writer.is_finished() {
                let _ = db.stats();
                calls += 1;
            }
            writer.join().unwrap();
            done_tx.send(calls).unwrap();
        })
    };
    let calls = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("stats and puts deadlocked");
    reader.join().unwrap();
    assert!(calls > 0);
    assert!(db.stats().data_files > 100);
}

/// A read-only handle beside a writer that merges: files are opened at
/// first read, so a file the merge deleted gives an I/O error that says
/// to reopen (documented); the reopened handle reads the merged files.
#[test]
fn read_only_handle_after_a_writers_merge_says_to_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let small = common::opts(4096, SyncMode::None);
    let writer = Db::open(dir.path(), small.clone()).unwrap();
    for i in 0..200 {
        writer
            .put(format!("k{i}").as_bytes(), &[i as u8; 64])
            .unwrap();
    }
    for i in 0..100 {
        writer.delete(format!("k{i}").as_bytes()).unwrap();
    }
    writer.sync().unwrap();
    let ro = |()| {
        Db::open(
            dir.path(),
            Options {
                read_only: true,
                ..small.clone()
            },
        )
        .unwrap()
    };
    let reader = ro(());
    writer.merge().unwrap();
    let err = reader.get(b"k150").unwrap_err();
    assert_eq!(err.status(), Status::Io, "{}", err.message());
    assert!(
        err.message().contains(".data was deleted") && err.message().contains("reopen"),
        "{}",
        err.message()
    );
    drop(reader);
    let reader = ro(());
    assert_eq!(reader.get(b"k150").unwrap(), Some(vec![150u8; 64]));
    assert_eq!(reader.get(b"k50").unwrap(), None);
}

/// The value the damage tests below write under key `k{i}`.
fn damage_value(i: usize) -> Vec<u8> {
    format!("value {i} ").repeat(i % 23).into_bytes()
}

/// The database the damage tests start from: keys k0..k299 with
/// `damage_value`s in 4 KiB files; with `churn`, every 7th key has a TTL
/// of a day and every 5th is deleted; without, k0..k59 are written twice.
fn damage_db(churn: bool) -> (tempfile::TempDir, Options) {
    let built = tempfile::tempdir().unwrap();
    let opts = common::opts(4096, SyncMode::None);
    let db = Db::open(built.path(), opts.clone()).unwrap();
    for i in 0..300 {
        let ttl = if churn && i % 7 == 0 { 86_400 } else { 0 };
        db.put_ttl(format!("k{i}").as_bytes(), &damage_value(i), ttl)
            .unwrap();
    }
    if churn {
        for i in (0..300).step_by(5) {
            db.delete(format!("k{i}").as_bytes()).unwrap();
        }
    } else {
        // k0..k59 are written again with the same values: dead records
        // for a merge to drop, and a key lost with its newest record still
        // reads back its value.
        for i in 0..60 {
            db.put(format!("k{i}").as_bytes(), &damage_value(i))
                .unwrap();
        }
    }
    db.close().unwrap();
    (built, opts)
}

/// A copy of the database directory `from`, without its LOCK file.
fn copy_db(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(from, dir.path());
    dir
}

fn damage_config(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..Default::default()
    }
}

/// Hints with bytes changed at random, either left so (bit rot, which the
/// CRC catches once the loaders have read the entries) or with the CRC
/// recomputed (a hint that lies, so that only open's entry checks stand
/// between it and the keydir), never crash open, a get, the iterator or the
/// stats. With bit rot open scans the data file instead, and gets, the
/// iterator and the stats show exactly the keys written and not deleted.
/// A lie may hide keys or revive deleted ones, but a get returns the one
/// value ever written for that key, nothing, or BC_CORRUPTION, never
/// another key's value or bytes never written.
#[test]
fn hints_that_lie_under_a_valid_crc_never_crash_or_return_wrong_values() {
    use proptest::prelude::*;
    let (built, opts) = damage_db(true);
    let hints = names(built.path(), ".hint");
    assert!(hints.len() >= 5, "{hints:?}");

    proptest!(damage_config(200), |(
        file in 0..hints.len(),
        changes in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6),
        fix_crc in any::<bool>(),
    )| {
        let dir = copy_db(built.path());
        let path = dir.path().join(&hints[file]);
        let mut b = fs::read(&path).unwrap();
        let crc_at = b.len() - 4;
        for (at, x) in &changes {
            b[16 + at.index(crc_at - 16)] ^= x; // anything after the header
        }
        if fix_crc {
            let crc = crc32fast::hash(&b[..crc_at]);
            b[crc_at..].copy_from_slice(&crc.to_le_bytes());
        }
        fs::write(&path, &b).unwrap();
        for read_only in [true, false] {
            let db = match Db::open(dir.path(), Options { read_only, ..opts.clone() }) {
                Ok(db) => db,
                // A lie that the data file was longer reads as records lost
                // from its end: refused, never misread.
                Err(e) if fix_crc && e.message().contains("records at its end were lost") => {
                    prop_assert_eq!(e.status(), Status::Corruption);
                    continue;
                }
                Err(e) => panic!("open: {e:?}"),
            };
            if !fix_crc {
                // Bit rot: the CRC rejects the hint, open scans its data
                // file, and the database is exactly as written.
                for i in 0..300 {
                    let want = (i % 5 != 0).then(|| damage_value(i));
                    prop_assert_eq!(db.get(format!("k{i}").as_bytes()).unwrap(), want, "k{}", i);
                }
                let mut keys = Vec::new();
                let mut it = db.iter(b"").unwrap();
                while let Some(k) = it.next_key().unwrap() {
                    keys.push(String::from_utf8(k.to_vec()).unwrap());
                }
                keys.sort();
                let mut live: Vec<String> =
                    (0..300).filter(|i| i % 5 != 0).map(|i| format!("k{i}")).collect();
                live.sort();
                prop_assert_eq!(keys, live);
                let s = db.stats();
                prop_assert_eq!(s.live_keys, 240);
                prop_assert_eq!(s.expired_keys, 0);
                db.close().unwrap();
                continue;
            }
            // A lie under a valid CRC is believed where open's checks let
            // it through: it can hide a key or bring back a deleted one
            // (a tombstone's entry changed), but a get never returns
            // bytes that were not written for that key.
            for i in 0..300 {
                match db.get(format!("k{i}").as_bytes()) {
                    Ok(Some(v)) => prop_assert_eq!(v, damage_value(i), "k{}", i),
                    Ok(None) => {}
                    Err(e) => prop_assert_eq!(e.status(), Status::Corruption, "{}", e.message()),
                }
            }
            let mut it = db.iter(b"").unwrap();
            while let Some(k) = it.next_key().unwrap() {
                prop_assert!(k.starts_with(b"k"));
            }
            let s = db.stats();
            prop_assert!(s.live_keys <= 300, "{} live keys", s.live_keys);
            db.close().unwrap();
        }
    });
}

/// Data files with bytes flipped at random (no CRC fixed: bit rot) never
/// crash or hang open, get or merge: open succeeds or refuses with
/// BC_CORRUPTION or BC_VERSION_MISMATCH naming the file; a get returns the
/// key's one value, BC_CORRUPTION, or nothing only for a key with a changed
/// byte in its record (recovery cuts a torn tail only when no valid record
/// follows, and repair skips only damaged records, and rewrites a file
/// whose header alone has a few bits flipped); a repair open always
/// succeeds; and a merge that succeeds, and a reopen after it, lose no more
/// keys.
#[test]
fn data_files_with_random_damage_never_crash_or_return_wrong_values() {
    use proptest::prelude::*;
    let (built, opts) = damage_db(false);
    let data = names(built.path(), ".data");
    assert!(data.len() >= 5, "{data:?}");
    // Each file's records: (key index, byte range), from the pristine bytes.
    let records: Vec<Vec<(usize, std::ops::Range<usize>)>> = data
        .iter()
        .map(|name| {
            common::parse_data_file(&built.path().join(name))
                .iter()
                .map(|r| {
                    let i = std::str::from_utf8(&r.key[1..]).unwrap().parse().unwrap();
                    (i, r.offset as usize..(r.offset + r.len()) as usize)
                })
                .collect()
        })
        .collect();
    assert_eq!(records.iter().map(|r| r.len()).sum::<usize>(), 360);

    proptest!(damage_config(120), |(
        file in 0..data.len(),
        changes in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    )| {
        let dir = copy_db(built.path());
        let path = dir.path().join(&data[file]);
        let pristine = fs::read(&path).unwrap();
        let mut b = pristine.clone();
        let len = b.len();
        for (at, x) in &changes {
            b[at.index(len)] ^= x;
        }
        fs::write(&path, &b).unwrap();
        // Keys that may go missing: a changed byte is in their record; or
        // all the file's, when its header is hit and either more than 4 of
        // its bits changed or its first record is hit too (repair sets such
        // a file aside).
        let hit = |r: &std::ops::Range<usize>| changes.iter().any(|(at, _)| r.contains(&at.index(len)));
        let header_bits: u32 = (0..16).map(|i| (b[i] ^ pristine[i]).count_ones()).sum();
        let whole_file = header_bits > 0 && (header_bits > 4 || hit(&records[file][0].1));
        let may_lose: Vec<usize> = records[file]
            .iter()
            .filter(|(_, r)| whole_file || hit(r))
            .map(|&(i, _)| i)
            .collect();
        let check = |db: &Db, repaired: bool| -> Result<(), TestCaseError> {
            for i in 0..300 {
                match db.get(format!("k{i}").as_bytes()) {
                    Ok(Some(v)) => prop_assert_eq!(v, damage_value(i), "k{}", i),
                    Ok(None) => prop_assert!(may_lose.contains(&i), "k{} lost, its record is whole", i),
                    Err(e) => {
                        prop_assert!(!repaired, "k{} after repair: {}", i, e.message());
                        prop_assert_eq!(e.status(), Status::Corruption, "{}", e.message());
                    }
                }
            }
            Ok(())
        };
        for repair in [false, true] {
            let db = match Db::open(dir.path(), Options { repair, ..opts.clone() }) {
                Ok(db) => db,
                Err(e) => {
                    prop_assert!(!repair, "repair open failed: {}", e.message());
                    prop_assert!(
                        matches!(e.status(), Status::Corruption | Status::VersionMismatch),
                        "{:?}: {}", e.status(), e.message()
                    );
                    prop_assert!(e.message().contains(&data[file]), "{}", e.message());
                    continue;
                }
            };
            check(&db, repair)?;
            match db.merge() {
                Ok(()) => {
                    // Merge read every record it kept: none is damaged.
                    prop_assert!(db.stats().merges == 1, "no merge ran");
                    check(&db, true)?;
                    db.close().unwrap();
                    let db = Db::open(dir.path(), opts.clone()).unwrap();
                    check(&db, true)?;
                    db.close().unwrap();
                }
                Err(e) => {
                    prop_assert_eq!(e.status(), Status::Corruption, "{}", e.message());
                    db.close().unwrap();
                }
            }
        }
    });
}

/// The names of the files created in `dir` while `f` runs (inotify).
fn created_during(dir: &Path, f: impl FnOnce()) -> Vec<String> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: plain system calls on a descriptor this function owns and
    // closes; the path is a NUL-terminated copy.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    assert!(fd >= 0, "inotify_init1");
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: as above.
    assert!(unsafe { libc::inotify_add_watch(fd, path.as_ptr(), libc::IN_CREATE) } >= 0);
    f();
    let mut names = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        // SAFETY: reads at most buf.len() bytes into buf.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        // Events: wd i32, mask u32, cookie u32, len u32, then len bytes of
        // NUL-padded name.
        let mut at = 0;
        while at + 16 <= n as usize {
            let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
            let name = &buf[at + 16..at + 16 + len];
            let end = name.iter().position(|&b| b == 0).unwrap_or(len);
            names.push(String::from_utf8_lossy(&name[..end]).into_owned());
            at += 16 + len;
        }
    }
    // SAFETY: fd is ours and closed once.
    unsafe { libc::close(fd) };
    names
}

/// A read-write open that scans a file with more hint entries than a
/// writer keeps in memory (4 MiB; here about 138,000 entries of 34 bytes in
/// the first 5 MiB file) spills them (a spill file appears: inotify), and
/// writes the same hint bytes as sealing wrote; the keys read back, and no
/// spill file is left.
#[test]
fn an_open_that_scans_a_large_file_spills_and_writes_the_same_hint() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        max_file_size: 5 << 20,
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    let key = |i: u32| format!("key-{i:011}");
    for i in 0..160_000u32 {
        db.put(key(i).as_bytes(), &i.to_le_bytes()).unwrap();
    }
    db.close().unwrap();
    let hints = names(dir.path(), ".hint");
    assert_eq!(hints.len(), 2, "{hints:?}"); // one large file, one small
    let first = dir.path().join(&hints[0]);
    let sealed = fs::read(&first).unwrap();
    assert!(sealed.len() > 3 << 20, "{} bytes", sealed.len());
    fs::remove_file(&first).unwrap();

    // The small file's hint keeps the seed, so the rewritten hint must be
    // the same bytes.
    let mut opened = None;
    let created = created_during(dir.path(), || {
        opened = Some(Db::open(dir.path(), opts).unwrap());
    });
    let db = opened.unwrap();
    assert!(
        created.iter().any(|n| n.contains(".hint.spill.")),
        "the scan made no spill file: {created:?}"
    );
    assert!(
        fs::read(&first).unwrap() == sealed,
        "hint written by the scan differs"
    );
    for i in (0..160_000u32).step_by(997) {
        assert_eq!(
            db.get(key(i).as_bytes()).unwrap(),
            Some(i.to_le_bytes().to_vec())
        );
    }
    db.close().unwrap();
    assert_eq!(
        common::tmp_files(dir.path()),
        Vec::<std::path::PathBuf>::new()
    );
}

/// Only the names bitcask writes (16 lowercase hex digits) are its files:
/// an uppercase copy of a data file, or an uppercase hint without a data
/// file, is another program's file. Open neither loads it (the keys would
/// count twice, or a stale copy could shadow newer records) nor deletes
/// it as an orphan.
#[test]
fn files_named_in_uppercase_hex_are_not_the_databases() {
    let dir = tempfile::tempdir().unwrap();
    let opts = common::opts(4096, SyncMode::None);
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    for i in 0..100 {
        db.put(format!("k{i}").as_bytes(), b"old").unwrap();
    }
    db.close().unwrap();
    let data = names(dir.path(), ".data");
    assert!(data.len() < 10, "{data:?}");
    // A copy of the first file under id 0xa << 32 in uppercase digits.
    let upper = "0000000A00000000.data";
    fs::copy(dir.path().join(&data[0]), dir.path().join(upper)).unwrap();
    let stray_hint = "00000000000000FF.hint";
    fs::write(dir.path().join(stray_hint), b"not ours").unwrap();

    let db = Db::open(dir.path(), opts.clone()).unwrap();
    for i in 0..100 {
        db.put(format!("k{i}").as_bytes(), b"new").unwrap();
    }
    assert_eq!(db.count(), 100);
    assert_eq!(
        db.stats().data_files as usize,
        names(dir.path(), ".data").len() - 1
    );
    db.close().unwrap();
    let db = Db::open(dir.path(), opts).unwrap();
    assert_eq!(db.count(), 100);
    for i in 0..100 {
        assert_eq!(
            db.get(format!("k{i}").as_bytes()).unwrap().as_deref(),
            Some(&b"new"[..])
        );
    }
    db.merge().unwrap();
    db.close().unwrap();
    assert!(
        dir.path().join(upper).exists(),
        "the uppercase copy was removed"
    );
    assert!(
        dir.path().join(stray_hint).exists(),
        "the uppercase hint was removed"
    );
}

/// Past 2106 the clock, a u32 of seconds, saturates, and so do expiry
/// times (README, Limits: time): a TTL that would end past the largest u32
/// ends there, the key stays visible until the clock reaches it, and then
/// it is gone, after a reopen too; keys without a TTL are untouched.
#[test]
fn expiry_times_saturate_at_the_end_of_the_u32_clock() {
    let now = Arc::new(AtomicU32::new(u32::MAX - 100));
    let opts = opts_with_clock(&now);
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    db.put_ttl(b"ttl", b"v", 1000).unwrap();
    db.put(b"plain", b"p").unwrap();
    now.store(u32::MAX - 1, Ordering::Relaxed);
    assert_eq!(db.get(b"ttl").unwrap().as_deref(), Some(&b"v"[..]));
    now.store(u32::MAX, Ordering::Relaxed);
    assert_eq!(db.get(b"ttl").unwrap(), None);
    assert_eq!(db.get(b"plain").unwrap().as_deref(), Some(&b"p"[..]));
    db.close().unwrap();
    let db = Db::open(dir.path(), opts).unwrap();
    assert_eq!(db.get(b"ttl").unwrap(), None);
    assert_eq!(db.count(), 1);
}

/// A hint that says a tombstone is a value (its entry's tombstone flag
/// cleared, the hint's CRC made to match, as a writer bug would leave it):
/// the key loads as live with an empty value, but a get finds a tombstone
/// where the keydir points and answers BC_CORRUPTION, never an empty value
/// for a deleted key.
#[test]
fn a_hint_that_calls_a_tombstone_a_value_is_caught_by_the_get() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    db.put(b"k", b"v").unwrap();
    assert!(db.delete(b"k").unwrap());
    db.close().unwrap();
    let hint = common::files_ending(dir.path(), ".hint").pop().unwrap();
    common::patch(&hint, |b| {
        // Two entries of 13 bytes after the 16-byte header (hash, offset,
        // flags, three one-byte varints, the key): the value at 16, then
        // its tombstone at 16 + 19 + 1 + 1 = 37.
        let flags = (16..b.len() - 808)
            .step_by(13)
            .find(|&e| common::le_u32(&b[e + 4..]) == 37)
            .unwrap()
            + 8;
        assert_eq!(b[flags], 1, "the tombstone's flags");
        b[flags] = 0;
        let crc_at = b.len() - 4;
        let crc = crc32fast::hash(&b[..crc_at]);
        b[crc_at..].copy_from_slice(&crc.to_le_bytes());
    });
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let e = db.get(b"k").unwrap_err();
    assert_eq!(e.status(), Status::Corruption, "{e:?}");
    assert!(e.message().contains("does not hold the key"), "{e:?}");
}

/// What bc_options_set_clock promises of a clock that goes back: expiry is
/// judged at each read, so an expired key shows again (even one whose
/// delete returned "absent" because it had expired) until a merge removes
/// it; and no older value of the key reappears, before or after the merge
/// and a reopen.
#[test]
fn a_clock_going_back_shows_an_expired_key_again_until_a_merge() {
    let now = Arc::new(AtomicU32::new(1_000));
    let o = opts_with_clock(&now);
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), o.clone()).unwrap();
    db.put(b"k", b"old").unwrap();
    db.close().unwrap();
    let db = Db::open(dir.path(), o.clone()).unwrap();
    db.put_ttl(b"k", b"new", 10).unwrap();
    db.put_ttl(b"d", b"x", 10).unwrap();
    now.fetch_add(10, Ordering::Relaxed);
    assert_eq!(db.get(b"k").unwrap(), None);
    assert!(!db.delete(b"d").unwrap(), "an expired key is absent");
    now.fetch_sub(5, Ordering::Relaxed);
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(db.get(b"d").unwrap().as_deref(), Some(&b"x"[..]));
    now.fetch_add(5, Ordering::Relaxed);
    db.merge().unwrap();
    now.fetch_sub(5, Ordering::Relaxed);
    assert_eq!(db.get(b"k").unwrap(), None, "after the merge");
    assert_eq!(db.get(b"d").unwrap(), None, "after the merge");
    db.close().unwrap();
    let db = Db::open(dir.path(), o).unwrap();
    assert_eq!(db.get(b"k").unwrap(), None, "after a reopen");
    assert_eq!(db.get(b"d").unwrap(), None, "after a reopen");
}

/// A panic on a background thread (here a clock that fails on the
/// auto-merge thread) fails the handle: later writes return BC_FAILED
/// naming the thread and the panic's message, and nothing is lost.
#[test]
fn a_background_panic_is_reported_with_its_thread_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        auto_merge: Some(Duration::from_millis(1)),
        clock: Arc::new(|| {
            if std::thread::current().name() == Some("bitcask-merge") {
                panic!("the clock broke");
            }
            1_700_000_000
        }),
        ..Options::default()
    };
    let db = Db::open(dir.path(), o).unwrap();
    db.put(b"k", b"v").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let e = loop {
        match db.put(b"k", b"v2") {
            Err(e) => break e,
            Ok(()) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the panic never failed the handle"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    assert_eq!(e.status(), Status::Failed, "{}", e.message());
    assert!(
        e.message().contains("bitcask-merge") && e.message().contains("the clock broke"),
        "{}",
        e.message()
    );
    let _ = db.close();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert!(matches!(
        db.get(b"k").unwrap().as_deref(),
        Some(b"v") | Some(b"v2")
    ));
}

/// `stats` scans the keydir (live and expired keys, reading the clock)
/// before it takes the file table's lock: under it, a rotation waiting for
/// the table's write lock, and every get queued behind the rotation
/// (parking_lot's lock is fair), waited for the whole scan (a review: a get
/// waited 200 ms beside a stats call of 300,000 keys with a TTL). Here the
/// clock, when stats reads it, makes a put rotate the active file on
/// another thread and waits for it: under the lock that put could never
/// finish.
#[test]
fn stats_scans_the_keydir_before_it_locks_the_file_table() {
    static DB: std::sync::OnceLock<Arc<Db>> = std::sync::OnceLock::new();
    static STUCK: AtomicU32 = AtomicU32::new(0);
    static ROTATIONS: AtomicU32 = AtomicU32::new(0);
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        clock: Arc::new(|| {
            if std::thread::current().name() == Some("stats") {
                let db = DB.get().unwrap().clone();
                let (done, wait) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    db.put(b"rotate", &[1; 3000]).unwrap();
                    let _ = done.send(());
                });
                match wait.recv_timeout(Duration::from_secs(10)) {
                    Ok(()) => ROTATIONS.fetch_add(1, Ordering::SeqCst),
                    Err(_) => STUCK.fetch_add(1, Ordering::SeqCst),
                };
            }
            1_700_000_000
        }),
        ..common::opts(4096, SyncMode::None)
    };
    let db = DB.get_or_init(|| Arc::new(Db::open(dir.path(), o).unwrap()));
    db.put_ttl(b"k", b"v", 60).unwrap();
    db.put(b"fill", &[0; 3000]).unwrap();
    let d = db.clone();
    let stats = std::thread::Builder::new()
        .name("stats".into())
        .spawn(move || d.stats())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(
        STUCK.load(Ordering::SeqCst),
        0,
        "a rotation waited for stats"
    );
    assert!(
        ROTATIONS.load(Ordering::SeqCst) > 0,
        "stats read no clock: the test checks nothing"
    );
    assert!(stats.live_keys >= 2, "{stats:?}");
    assert_eq!(db.count(), 3);
}

/// `writes_through_map` says what the next put does when no file is
/// active: after a merge took the active file, it read 0 where the next
/// put wrote through the map (found by review).
#[test]
fn writes_through_map_holds_across_a_merge() {
    if !common::map_writes_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path(), &common::write_map_opts());
    db.put(b"k", b"v1").unwrap();
    db.put(b"k", b"v2").unwrap();
    assert!(db.stats().writes_through_map, "before the merge");
    db.merge().unwrap();
    assert!(
        db.stats().writes_through_map,
        "after the merge, no file active"
    );
    db.put(b"k", b"v3").unwrap();
    assert!(db.stats().writes_through_map, "after the next put");
}
