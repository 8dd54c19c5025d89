//! Model-based property test of expiry and iteration: random puts (some
//! with a TTL), deletes, clock advances, prefix iterations, counts, merges
//! with thresholds, full merges and reopens, checked against a HashMap of
//! (value, expiry) after every step. The clock is a fake one; nothing
//! sleeps.

use bitcask::{Db, MergePolicy, Options};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

const PREFIXES: [&[u8]; 4] = [b"a", b"ab", b"b\0", b"\xff"];

fn keys() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for p in PREFIXES {
        for i in 0..6u8 {
            let mut k = p.to_vec();
            k.push(b'0' + i);
            v.push(k);
        }
    }
    v
}

#[derive(Clone, Debug)]
enum Op {
    Put(usize, u8),
    PutTtl(usize, u8, u32),
    Delete(usize),
    Get(usize),
    Advance(u32),
    Iter(usize),
    Count,
    MergeIfNeeded,
    Merge,
    Reopen,
    /// About a file's worth of new keys never written again: old files
    /// stay unfragmented, so partial merges leave them out.
    Fill,
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0..PREFIXES.len() * 6;
    prop_oneof![
        6 => (k.clone(), any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        6 => (k.clone(), any::<u8>(), 1..5u32).prop_map(|(k, v, t)| Op::PutTtl(k, v, t)),
        3 => k.clone().prop_map(Op::Delete),
        3 => k.prop_map(Op::Get),
        3 => (0..4u32).prop_map(Op::Advance),
        2 => (0..PREFIXES.len() + 1).prop_map(Op::Iter),
        1 => Just(Op::Count),
        2 => Just(Op::MergeIfNeeded),
        1 => Just(Op::Merge),
        2 => Just(Op::Reopen),
        2 => Just(Op::Fill),
    ]
}

/// A value of 30..60 bytes derived from `v`, so files fill and rotate.
fn value(v: u8) -> Vec<u8> {
    vec![v; 30 + v as usize % 30]
}

fn opts(clock: &Arc<AtomicU32>) -> Options {
    let c = clock.clone();
    Options {
        max_file_size: 4096,
        max_open_files: 4,
        merge: MergePolicy {
            frag_trigger: 0.3,
            frag_threshold: 0.2,
            dead_bytes_trigger: 2048,
            dead_bytes_threshold: 1024,
            small_file_threshold: 2048,
        },
        clock: Arc::new(move || c.load(Ordering::Relaxed)),
        ..Options::default()
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicU32::new(1_000_000));
    let keys = keys();
    let mut db = Db::open(dir.path(), opts(&clock)).unwrap();
    // key index -> (value, expiry; 0 = never)
    let mut model: HashMap<usize, (Vec<u8>, u32)> = HashMap::new();
    let mut filled = 0u32;
    for (step, op) in ops.iter().enumerate() {
        let now = clock.load(Ordering::Relaxed);
        let visible = |e: &(Vec<u8>, u32)| e.1 == 0 || e.1 > now;
        let ctx = format!("step {step} {op:?}");
        match op {
            Op::Put(k, v) => {
                db.put(&keys[*k], &value(*v)).unwrap();
                model.insert(*k, (value(*v), 0));
            }
            Op::PutTtl(k, v, t) => {
                db.put_ttl(&keys[*k], &value(*v), *t).unwrap();
                model.insert(*k, (value(*v), now + t));
            }
            Op::Delete(k) => {
                let was = model.get(k).is_some_and(visible);
                assert_eq!(db.delete(&keys[*k]).unwrap(), was, "{ctx}");
                if was {
                    model.remove(k);
                }
            }
            Op::Get(k) => {
                let want = model.get(k).filter(|e| visible(e)).map(|e| e.0.clone());
                assert_eq!(db.get(&keys[*k]).unwrap(), want, "{ctx}");
                assert_eq!(db.contains(&keys[*k]).unwrap(), want.is_some(), "{ctx}");
            }
            Op::Advance(s) => {
                clock.fetch_add(*s, Ordering::Relaxed);
            }
            Op::Iter(p) => {
                let prefix: &[u8] = PREFIXES.get(*p).copied().unwrap_or(b"");
                let mut want: Vec<(Vec<u8>, Vec<u8>)> = model
                    .iter()
                    .filter(|(k, e)| visible(e) && keys[**k].starts_with(prefix))
                    .map(|(k, e)| (keys[*k].clone(), e.0.clone()))
                    .collect();
                want.sort();
                let mut it = db.iter(prefix).unwrap();
                let mut got = Vec::new();
                while let Some(k) = it.next_key().unwrap() {
                    if k.starts_with(b"fill") {
                        continue;
                    }
                    let k = k.to_vec();
                    let v = it.with_value(|v| v.to_vec()).unwrap().unwrap();
                    got.push((k, v));
                }
                assert_eq!(got, want, "{ctx}");
            }
            Op::Count => {
                let n = model.values().filter(|e| visible(e)).count() as u64 + filled as u64;
                assert_eq!(db.count(), n, "{ctx}");
                assert_eq!(db.stats().live_keys, n, "{ctx}");
            }
            Op::MergeIfNeeded => {
                db.merge_if_needed().unwrap();
            }
            Op::Merge => {
                db.merge().unwrap();
                assert_eq!(
                    db.stats().expired_keys,
                    0,
                    "{ctx}: merge reclaims expired keys"
                );
                assert_eq!(db.stats().dead_bytes, 0, "{ctx}");
            }
            Op::Reopen => {
                db.close().unwrap();
                db = Db::open(dir.path(), opts(&clock)).unwrap();
            }
            Op::Fill => {
                for _ in 0..60 {
                    db.put(format!("fill{filled:05}").as_bytes(), &[7; 50])
                        .unwrap();
                    filled += 1;
                }
            }
        }
        if matches!(op, Op::Merge | Op::MergeIfNeeded | Op::Reopen) {
            for (k, key) in keys.iter().enumerate() {
                let want = model.get(&k).filter(|e| visible(e)).map(|e| e.0.clone());
                assert_eq!(db.get(key).unwrap(), want, "{ctx}: key #{k} afterwards");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
    #[test]
    fn ttl_iteration_and_merges_match_the_model(ops in proptest::collection::vec(op(), 1..200)) {
        run(ops);
    }
}
