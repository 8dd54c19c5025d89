//! Put latency of a writer while a merge of a large database runs, beside
//! the same writer with no merge. Usage:
//! cargo bench --bench merge_pause -- [keys] [seconds] [dir]
//! (defaults: 1,000,000 keys of 16 bytes with 100-byte values, 3 s).

mod common;

use bitcask::{Db, Options};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k.copy_from_slice(format!("{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).as_bytes());
    k
}

/// Puts random keys until `stop`; returns every put's latency.
fn writer(db: &Db, keys: u64, stop: &AtomicBool) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(4_000_000);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let value = [0xa5u8; 100];
    while !stop.load(Ordering::Relaxed) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let t = Instant::now();
        db.put(&key(x % keys), &value).unwrap();
        lat.push(t.elapsed());
    }
    lat
}

fn summary(name: &str, mut lat: Vec<Duration>) -> Duration {
    lat.sort();
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
    let max = *lat.last().unwrap();
    let over = |ms: u64| {
        lat.iter()
            .filter(|d| **d > Duration::from_millis(ms))
            .count()
    };
    println!(
        "{name:<22} {:>9} puts  p50 {:>8.2?}  p99 {:>8.2?}  p99.9 {:>8.2?}  max {:>8.2?}  >1ms {}  >5ms {}",
        lat.len(),
        p(0.5),
        p(0.99),
        p(0.999),
        max,
        over(1),
        over(5)
    );
    max
}

fn main() {
    let args = common::args();
    let keys: u64 = args.first().map_or(1_000_000, |a| a.parse().unwrap());
    let secs: u64 = args.get(1).map_or(3, |a| a.parse().unwrap());
    let dir = Path::new(
        args.get(2)
            .map_or("/tmp/bitcask-merge-pause", |s| s.as_str()),
    )
    .to_path_buf();
    let _ = std::fs::remove_dir_all(&dir);
    let opts = Options {
        max_file_size: 16 << 20,
        ..Options::default()
    };
    let db = Arc::new(Db::open(&dir, opts).unwrap());
    let value = [0x5au8; 100];
    for i in 0..keys {
        db.put(&key(i), &value).unwrap();
    }
    // Overwrite half the keys so the merge has dead data to drop.
    for i in (0..keys).step_by(2) {
        db.put(&key(i), &value).unwrap();
    }
    db.sync().unwrap();
    let s = db.stats();
    println!(
        "{keys} keys, {} data files, {} MB, {:.0}% dead",
        s.data_files,
        s.total_bytes >> 20,
        100.0 * s.dead_bytes as f64 / (s.live_bytes + s.dead_bytes) as f64
    );

    let stop = AtomicBool::new(false);
    let quiet = std::thread::scope(|sc| {
        let w = sc.spawn(|| writer(&db, keys, &stop));
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
        w.join().unwrap()
    });
    stop.store(false, Ordering::Relaxed);
    let (during, merge_time) = std::thread::scope(|sc| {
        let w = sc.spawn(|| writer(&db, keys, &stop));
        let t = Instant::now();
        db.merge().unwrap();
        let merge_time = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        (w.join().unwrap(), merge_time)
    });
    println!(
        "merge took {merge_time:.2?}; after it: {} data files, {} MB",
        db.stats().data_files,
        db.stats().total_bytes >> 20
    );
    summary("writer, no merge", quiet);
    let max = summary("writer during merge", during);
    println!(
        "longest put pause during merge: {max:.2?} (target < 10 ms): {}",
        if max < Duration::from_millis(10) {
            "PASS"
        } else {
            "MISS"
        }
    );
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
