//! Model-based property tests: random operation sequences checked step by step
//! against a `HashMap` model, with a tiny `max_file_size` so that rotation and
//! merge happen constantly; plus a multi-threaded consistency test.

mod common;

use bitcask::{Db, MergePolicy, Options, SyncMode};
use common::Rng;
use common::*;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const NKEYS: usize = 40;
const MIN_FILE: u64 = 4096;

/// 40 distinct keys: text, binary with NULs, a lone NUL byte, 0xff bytes, long keys.
fn key_table() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = (0..NKEYS)
        .map(|i| match i % 5 {
            0 => format!("key-{i}").into_bytes(),
            1 => vec![0u8, i as u8, 0u8],
            2 => {
                let mut k = vec![i as u8, 0u8, 0u8];
                k.extend_from_slice(b"\0tail\0");
                k
            }
            3 => vec![0xff, 0xfe, i as u8, 0xff],
            _ => {
                let mut k = format!("long-{i}-").into_bytes();
                k.resize(100 + 3 * i, i as u8);
                k
            }
        })
        .collect();
    keys[0] = vec![0u8]; // a single NUL byte
    keys[5] = b"k".to_vec(); // a one-byte printable key
    for i in 0..keys.len() {
        for j in 0..i {
            assert_ne!(keys[i], keys[j], "key table must be distinct");
        }
    }
    keys
}

#[derive(Clone)]
enum Op {
    Put(usize, Vec<u8>),
    Delete(usize),
    Get(usize),
    Contains(usize),
    Merge,
    /// merge_if_needed(): a partial merge of the files the policy selects.
    MergeIfNeeded,
    Sync,
    /// close() + open(); with `drop_only`, the handle is dropped instead of closed.
    Reopen {
        drop_only: bool,
    },
}

/// Compact, so that a shrunk failing case is readable: values show as their length.
impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Put(k, v) => write!(
                f,
                "Put({k}, {} bytes {:02x?})",
                v.len(),
                &v[..v.len().min(4)]
            ),
            Op::Delete(k) => write!(f, "Delete({k})"),
            Op::Get(k) => write!(f, "Get({k})"),
            Op::Contains(k) => write!(f, "Contains({k})"),
            Op::Merge => write!(f, "Merge"),
            Op::MergeIfNeeded => write!(f, "MergeIfNeeded"),
            Op::Sync => write!(f, "Sync"),
            Op::Reopen { drop_only } => write!(f, "Reopen {{ drop_only: {drop_only} }}"),
        }
    }
}

fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        1 => proptest::collection::vec(Just(0u8), 1..20),
        8 => proptest::collection::vec(any::<u8>(), 0..300),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        40 => (0..NKEYS, value_strategy()).prop_map(|(k, v)| Op::Put(k, v)),
        14 => (0..NKEYS).prop_map(Op::Delete),
        12 => (0..NKEYS).prop_map(Op::Get),
        5 => (0..NKEYS).prop_map(Op::Contains),
        3 => Just(Op::Merge),
        4 => Just(Op::MergeIfNeeded),
        2 => Just(Op::Sync),
        3 => any::<bool>().prop_map(|drop_only| Op::Reopen { drop_only }),
    ]
}

fn check_key(db: &Db, keys: &[Vec<u8>], model: &HashMap<usize, Vec<u8>>, k: usize, ctx: &str) {
    let got = ok(db.get(&keys[k]), ctx);
    assert_eq!(
        got.as_deref(),
        model.get(&k).map(|v| v.as_slice()),
        "{ctx}: get(key #{k} {:?})",
        keys[k]
    );
    let c = ok(db.contains(&keys[k]), ctx);
    assert_eq!(c, model.contains_key(&k), "{ctx}: contains(key #{k})");
}

fn check_all(db: &Db, keys: &[Vec<u8>], model: &HashMap<usize, Vec<u8>>, ctx: &str) {
    for k in 0..NKEYS {
        check_key(db, keys, model, k, ctx);
    }
    assert_eq!(
        db.stats().live_keys,
        model.len() as u64,
        "{ctx}: stats().live_keys"
    );
}

/// live_keys and live_bytes are exact functions of the model:
/// live_bytes = sum of (19 + klen + vlen) over live keys (src/db.rs: "Bytes of
/// the records the keydir points at").
fn check_stats(db: &Db, keys: &[Vec<u8>], model: &HashMap<usize, Vec<u8>>, ctx: &str) {
    let st = db.stats();
    assert_eq!(st.live_keys, model.len() as u64, "{ctx}: stats().live_keys");
    let live: u64 = model
        .iter()
        .map(|(k, v)| RECORD_HEADER + keys[*k].len() as u64 + v.len() as u64)
        .sum();
    assert_eq!(st.live_bytes, live, "{ctx}: stats().live_bytes");
}

/// After sync/reopen every byte is in the files: total_bytes is the size of
/// all data files (headers included), = 16 * data_files + live + dead. An
/// active file written through its map (`preallocated`) is longer on disk
/// until it is sealed, by less than the 1 MiB step it grows in.
fn check_stats_on_disk(db: &Db, dir: &Path, preallocated: bool, ctx: &str) {
    let st = db.stats();
    let files = data_files(dir);
    let on_disk: u64 = files
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(
        st.data_files,
        files.len() as u64,
        "{ctx}: stats().data_files vs {files:?}"
    );
    if preallocated {
        assert!(
            (st.total_bytes..st.total_bytes + (1 << 20)).contains(&on_disk),
            "{ctx}: stats().total_bytes {} vs the data files' sizes {on_disk}",
            st.total_bytes
        );
    } else {
        assert_eq!(
            st.total_bytes, on_disk,
            "{ctx}: stats().total_bytes vs the data files' sizes"
        );
    }
    assert_eq!(
        st.total_bytes,
        FILE_HEADER * st.data_files + st.live_bytes + st.dead_bytes,
        "{ctx}: total_bytes != 16 * data_files + live_bytes + dead_bytes ({st:?})"
    );
}

fn run_ops(ops: &[Op], sync: SyncMode) {
    run_ops_with(ops, opts(MIN_FILE, sync));
}

fn run_ops_with(ops: &[Op], o: Options) {
    let keys = key_table();
    let tmp = tempfile::tempdir().unwrap();
    // The directory does not exist yet: create_if_missing (default true) makes it.
    let dir = tmp.path().join("db");
    let mut db = Some(open(&dir, &o));
    let mut model: HashMap<usize, Vec<u8>> = HashMap::new();
    // Data file names seen and since deleted: none may come back, or a
    // read-only handle that knew the old file would open the new one.
    let mut present: HashSet<PathBuf> = HashSet::new();
    let mut gone: HashSet<PathBuf> = HashSet::new();

    for (step, op) in ops.iter().enumerate() {
        let ctx = format!("step {step} {op:?}");
        let d = db.as_ref().unwrap();
        match op {
            Op::Put(k, v) => {
                ok(d.put(&keys[*k], v), &ctx);
                model.insert(*k, v.clone());
                check_key(d, &keys, &model, *k, &ctx);
            }
            Op::Delete(k) => {
                let existed = ok(d.delete(&keys[*k]), &ctx);
                assert_eq!(
                    existed,
                    model.remove(k).is_some(),
                    "{ctx}: delete() return value"
                );
                check_key(d, &keys, &model, *k, &ctx);
            }
            Op::Get(k) | Op::Contains(k) => check_key(d, &keys, &model, *k, &ctx),
            Op::MergeIfNeeded => {
                ok(d.merge_if_needed(), &ctx);
                check_all(d, &keys, &model, &ctx);
            }
            Op::Merge => {
                ok(d.merge(), &ctx);
                check_all(d, &keys, &model, &ctx);
            }
            Op::Sync => {
                ok(d.sync(), &ctx);
                check_all(d, &keys, &model, &ctx);
            }
            Op::Reopen { drop_only } => {
                let old = db.take().unwrap();
                if *drop_only {
                    drop(old);
                } else {
                    ok(old.close(), &ctx);
                }
                let d = open(&dir, &o);
                let st = d.stats();
                assert_eq!(
                    st.recovered_bytes_dropped, 0,
                    "{ctx}: clean close dropped bytes"
                );
                assert_eq!(
                    st.repaired_records_skipped, 0,
                    "{ctx}: clean close skipped records"
                );
                assert!(
                    tmp_files(&dir).is_empty(),
                    "{ctx}: .tmp files left after open"
                );
                check_all(&d, &keys, &model, &ctx);
                db = Some(d);
            }
        }
        let d = db.as_ref().unwrap();
        // A rotating extra key each step catches damage to keys not touched by this op.
        check_key(d, &keys, &model, step % NKEYS, &ctx);
        check_stats(d, &keys, &model, &ctx);
        match op {
            Op::Sync => check_stats_on_disk(d, &dir, o.write_map, &ctx),
            // Sealed at close: cut to its records.
            Op::Reopen { .. } => check_stats_on_disk(d, &dir, false, &ctx),
            _ => {}
        }
        let now: HashSet<PathBuf> = data_files(&dir).into_iter().collect();
        if let Some(again) = now.intersection(&gone).next() {
            panic!("{ctx}: a new data file took the name of a deleted one: {again:?}");
        }
        gone.extend(present.difference(&now).cloned());
        present = now;
    }
    let d = db.take().unwrap();
    check_all(&d, &keys, &model, "end");
    // Merge at the end, then a final reopen must see exactly the model.
    ok(d.merge(), "final merge");
    check_all(&d, &keys, &model, "after final merge");
    ok(d.close(), "final close");
    let d = open(&dir, &o);
    check_all(&d, &keys, &model, "final reopen");
    assert_eq!(d.stats().recovered_bytes_dropped, 0);
    ok(d.close(), "close");
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn model_sync_none(ops in proptest::collection::vec(op_strategy(), 1..200)) {
        run_ops(&ops, SyncMode::None);
    }

    #[test]
    fn model_sync_always(ops in proptest::collection::vec(op_strategy(), 1..200)) {
        run_ops(&ops, SyncMode::Always);
    }
}

/// Aggressive merge policy (partial merges of a few files, tombstones kept
/// while an older file may still hold the value) and the smallest file-handle
/// cache, so sealed files are closed and reopened all the time.
fn partial_merge_opts() -> Options {
    Options {
        max_open_files: 4,
        merge: MergePolicy {
            frag_trigger: 0.3,
            dead_bytes_trigger: 1500,
            frag_threshold: 0.2,
            dead_bytes_threshold: 1024,
            small_file_threshold: 2048,
        },
        ..opts(MIN_FILE, SyncMode::None)
    }
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn model_partial_merges_small_fd_cache(ops in proptest::collection::vec(op_strategy(), 1..200)) {
        run_ops_with(&ops, partial_merge_opts());
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// The write map off and no write buffer: every record is encoded in
    /// the writer's reused record buffer and written at once.
    #[test]
    fn model_unbuffered(ops in proptest::collection::vec(op_strategy(), 1..200)) {
        let o = Options { write_map: false, write_buffer: 0, ..opts(MIN_FILE, SyncMode::None) };
        run_ops_with(&ops, o);
    }

    /// The write map off: records go through the write buffer (the other
    /// tests write through the map, the default).
    #[test]
    fn model_write_buffer(ops in proptest::collection::vec(op_strategy(), 1..200)) {
        run_ops_with(&ops, Options { write_map: false, ..opts(MIN_FILE, SyncMode::None) });
    }
}

proptest! {
    #![proptest_config(config(12))]

    #[test]
    fn model_sync_interval(ops in proptest::collection::vec(op_strategy(), 1..200)) {
        run_ops(&ops, SyncMode::Interval(Duration::from_millis(5)));
    }
}

/// A fixed sequence that exercises the tricky spots deterministically (runs
/// even if the random cases happen to miss them).
#[test]
fn model_fixed_sequence() {
    let mut ops = Vec::new();
    for round in 0..6u8 {
        for k in 0..NKEYS {
            let len = (k * 37 + round as usize * 11) % 300;
            ops.push(Op::Put(k, vec![round ^ (k as u8); len]));
        }
        for k in (0..NKEYS).step_by(3) {
            ops.push(Op::Delete(k));
            ops.push(Op::Delete(k)); // second delete: Ok(false)
        }
        ops.push(Op::Put(1, Vec::new())); // empty value is not absence
        ops.push(Op::Merge);
        ops.push(Op::Reopen {
            drop_only: round % 2 == 0,
        });
        ops.push(Op::Merge);
        ops.push(Op::Merge); // merge with nothing (or little) to do
    }
    run_ops(&ops, SyncMode::None);
}

/// Every key deleted and merged away, then a reopen and a put: the new
/// active file must not take the name of a merged one (run_ops checks).
#[test]
fn deleted_file_names_are_not_reused() {
    let ops = [
        Op::Put(0, vec![1; 10]),
        Op::Put(1, vec![2; 10]),
        Op::Reopen { drop_only: false },
        Op::Delete(0),
        Op::Delete(1),
        Op::Merge,
        Op::Reopen { drop_only: false },
        Op::Put(0, vec![3; 10]),
        Op::Merge,
        Op::Put(1, vec![4; 10]),
        Op::Delete(1),
        Op::Delete(0),
        Op::MergeIfNeeded,
        Op::Merge,
        Op::Reopen { drop_only: true },
        Op::Put(1, vec![5; 10]),
    ];
    run_ops(&ops, SyncMode::None);
}

/// A partial merge that has to keep a tombstone (an older file is not an
/// input) keeps it, so the deleted key stays deleted after a reopen, and
/// counts it as dead, not live: live_bytes is the bytes of the records the
/// keydir points at, before and after reopen alike.
#[test]
fn partial_merge_keeps_stats_exact() {
    let keys = key_table();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let o = partial_merge_opts();
    let db = open(&dir, &o);
    let mut model: HashMap<usize, Vec<u8>> = HashMap::new();
    // 2048 bytes in the first file: not "small", so not a merge input.
    for (k, n) in [
        (34, 240),
        (0, 118),
        (12, 214),
        (2, 149),
        (16, 183),
        (4, 0),
        (39, 2),
        (18, 120),
        (7, 269),
    ] {
        ok(db.put(&keys[k], &vec![1u8; n]), "put");
        model.insert(k, vec![1u8; n]);
    }
    drop(db);
    let db = open(&dir, &o);
    ok(db.put(&keys[30], &[2u8; 277]), "put");
    assert!(ok(db.delete(&keys[30]), "delete"));
    // A tombstone whose value is in the first file, which the merge does
    // not take: it must survive the merge, or the value comes back.
    assert!(ok(db.delete(&keys[39]), "delete"));
    model.remove(&39);
    ok(db.close(), "close");
    let db = open(&dir, &o);
    check_all(&db, &keys, &model, "before merge_if_needed");
    check_stats(&db, &keys, &model, "before merge_if_needed");
    assert!(
        ok(db.merge_if_needed(), "merge_if_needed"),
        "the all-dead second file should be merged"
    );
    check_all(&db, &keys, &model, "after merge_if_needed");
    check_stats(&db, &keys, &model, "after merge_if_needed");
    check_stats_on_disk(&db, &dir, false, "after merge_if_needed");
    ok(db.close(), "close");
    let db = open(&dir, &o);
    check_all(&db, &keys, &model, "after reopen");
    check_stats(&db, &keys, &model, "after reopen");
    check_stats_on_disk(&db, &dir, false, "after reopen");
}

/// delete() of an absent key returns Ok(false) and writes nothing.
#[test]
fn delete_absent_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = open(dir, &opts(MIN_FILE, SyncMode::Always));
    ok(db.put(b"a", b"1"), "put");
    assert!(!ok(db.delete(b"never-written"), "delete absent"));
    // The bytes records reached: the write map's preallocated zeros aside
    // (each record here ends in a key or value byte that is not zero).
    let size = |d: &Path| -> u64 {
        data_files(d)
            .iter()
            .map(|p| {
                let bytes = std::fs::read(p).unwrap();
                bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1) as u64
            })
            .sum()
    };
    let before = size(dir);
    let tb = db.stats().total_bytes;
    assert!(!ok(db.delete(b"never-written"), "delete absent"));
    assert!(!ok(db.delete(b"b"), "delete absent"));
    assert!(ok(db.delete(b"a"), "delete present"));
    let after_one = size(dir);
    assert_eq!(
        after_one,
        before + 19 + 1,
        "exactly one tombstone (19 + klen bytes) written"
    );
    assert!(!ok(db.delete(b"a"), "delete again"));
    assert_eq!(
        size(dir),
        after_one,
        "second delete of the same key wrote something"
    );
    assert_eq!(
        db.stats().total_bytes,
        tb + 20,
        "stats().total_bytes after one tombstone"
    );
    assert_eq!(db.stats().live_keys, 0);
    ok(db.close(), "close");
}

// ---------------------------------------------------------------------------
// Concurrency: 4 threads on one Arc<Db>.

const THREADS: usize = 4;
const KEYS_PER_THREAD: u64 = 16;

fn ckey(t: usize, i: u64) -> Vec<u8> {
    format!("t{t}/k{i:03}").into_bytes()
}

/// value = key bytes | 0x00 | counter (8 bytes LE) | filler derived from (key, counter)
fn cvalue(key: &[u8], counter: u64) -> Vec<u8> {
    let h = mix(
        counter,
        key.iter()
            .fold(7u64, |a, &b| a.wrapping_mul(31).wrapping_add(b as u64)),
    );
    let filler = (h % 400) as usize;
    let mut v = Vec::with_capacity(key.len() + 9 + filler);
    v.extend_from_slice(key);
    v.push(0);
    v.extend_from_slice(&counter.to_le_bytes());
    let mut r = Rng::new(h);
    v.extend((0..filler).map(|_| r.next_u64() as u8));
    v
}

/// Returns the counter if `v` is exactly `cvalue(key, counter)`; None = garbage.
fn cdecode(key: &[u8], v: &[u8]) -> Option<u64> {
    if v.len() < key.len() + 9 || &v[..key.len()] != key || v[key.len()] != 0 {
        return None;
    }
    let c = u64::from_le_bytes(v[key.len() + 1..key.len() + 9].try_into().unwrap());
    if cvalue(key, c) == v {
        Some(c)
    } else {
        None
    }
}

fn concurrent(sync: SyncMode, write_map: bool, ops_per_thread: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let o = Options {
        write_map,
        ..opts(MIN_FILE, sync)
    };
    let db = Arc::new(open(&dir, &o));
    let failed = Arc::new(AtomicBool::new(false));

    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let db = Arc::clone(&db);
            let failed = Arc::clone(&failed);
            std::thread::spawn(move || {
                let guard = FailFlag(&failed);
                let mut rng = Rng::new(1000 + t as u64);
                // what this thread last wrote to each of its keys (None = deleted/never)
                let mut mine: Vec<Option<u64>> = vec![None; KEYS_PER_THREAD as usize];
                // highest counter seen for every key of every thread (monotonic reads)
                let mut seen: HashMap<Vec<u8>, u64> = HashMap::new();
                let mut counter = 0u64;
                for n in 0..ops_per_thread {
                    if failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = rng.below(100);
                    if r < 45 {
                        let i = rng.below(KEYS_PER_THREAD);
                        counter += 1;
                        let k = ckey(t, i);
                        ok(db.put(&k, &cvalue(&k, counter)), "put");
                        mine[i as usize] = Some(counter);
                    } else if r < 52 {
                        let i = rng.below(KEYS_PER_THREAD);
                        let existed = ok(db.delete(&ckey(t, i)), "delete");
                        assert_eq!(
                            existed,
                            mine[i as usize].is_some(),
                            "thread {t}: delete({i}) return"
                        );
                        mine[i as usize] = None;
                    } else if r < 75 {
                        // read-your-writes on an own key: exact value
                        let i = rng.below(KEYS_PER_THREAD);
                        let k = ckey(t, i);
                        let got = ok(db.get(&k), "get own");
                        let want = mine[i as usize].map(|c| cvalue(&k, c));
                        assert!(
                            got == want,
                            "thread {t} op {n}: get own key {i}: got {:?} want counter {:?}",
                            got.as_ref().map(|v| cdecode(&k, v)),
                            mine[i as usize]
                        );
                    } else if r < 99 {
                        // read another thread's key: None or a well-formed, not-older value
                        let ot = rng.below(THREADS as u64) as usize;
                        let k = ckey(ot, rng.below(KEYS_PER_THREAD));
                        if let Some(v) = ok(db.get(&k), "get other") {
                            let c = cdecode(&k, &v).unwrap_or_else(|| {
                                panic!(
                                    "thread {t}: get({:?}) returned wrong bytes ({} bytes)",
                                    String::from_utf8_lossy(&k),
                                    v.len()
                                )
                            });
                            let prev = seen.entry(k.clone()).or_insert(0);
                            assert!(
                                c >= *prev,
                                "thread {t}: {:?} went back in time: counter {c} after {prev}",
                                String::from_utf8_lossy(&k)
                            );
                            *prev = c;
                        }
                    } else {
                        ok(db.merge(), "merge");
                    }
                }
                std::mem::forget(guard);
                mine
            })
        })
        .collect();
    // A dedicated merger thread keeps merging while the writers run.
    let merger = {
        let db = Arc::clone(&db);
        let failed = Arc::clone(&failed);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let h = std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop2.load(Ordering::Relaxed) && !failed.load(Ordering::Relaxed) {
                ok(db.merge(), "merger thread merge");
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        });
        (h, stop)
    };
    let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    merger.1.store(true, Ordering::Relaxed);
    let merges = merger.0.join().expect("merger thread panicked");
    let finals: Vec<Vec<Option<u64>>> = results
        .into_iter()
        .enumerate()
        .map(|(t, r)| r.unwrap_or_else(|_| panic!("worker thread {t} panicked")))
        .collect();
    assert!(merges > 0);

    let verify = |db: &Db, ctx: &str| {
        let mut live = 0u64;
        for (t, mine) in finals.iter().enumerate() {
            for (i, c) in mine.iter().enumerate() {
                let k = ckey(t, i as u64);
                let got = ok(db.get(&k), ctx);
                let want = c.map(|c| cvalue(&k, c));
                assert!(
                    got == want,
                    "{ctx}: thread {t} key {i}: got counter {:?} want {:?}",
                    got.as_ref().map(|v| cdecode(&k, v)),
                    c
                );
                live += c.is_some() as u64;
            }
        }
        assert_eq!(db.stats().live_keys, live, "{ctx}: live_keys");
    };
    verify(&db, "after join");
    let db = Arc::try_unwrap(db).ok().expect("all clones dropped");
    ok(db.close(), "close");
    let db = open(&dir, &o);
    verify(&db, "after reopen");
    ok(db.merge(), "merge after reopen");
    verify(&db, "after reopen+merge");
    ok(db.close(), "close");
}

struct FailFlag<'a>(&'a AtomicBool);
impl Drop for FailFlag<'_> {
    fn drop(&mut self) {
        // Only reached when the thread panics (forgotten on success).
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Through the write buffer (the write map off).
#[test]
fn concurrent_readers_writers_merges() {
    concurrent(SyncMode::None, false, 3000);
}

/// Readers copy records out of the map the writer is storing into.
#[test]
fn concurrent_readers_writers_merges_write_map() {
    concurrent(SyncMode::None, true, 3000);
}

/// Group commit of records written through the map (the default).
#[test]
fn concurrent_sync_always() {
    concurrent(SyncMode::Always, true, 800);
}

/// Group commit of records written through the write buffer.
#[test]
fn concurrent_sync_always_write_buffer() {
    concurrent(SyncMode::Always, false, 800);
}
