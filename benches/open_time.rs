//! Open time from hint files against open by scanning data files and
//! against reading the hint files sequentially (the `cat` bound), all in
//! one run. Usage: cargo bench --bench open_time -- [keys] [runs] [dir]
//! (defaults: 10,000,000 keys, 3 runs, /tmp/bitcask-open-time).

mod common;

use bitcask::{Db, Options};
use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn files(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn read_all(paths: &[std::path::PathBuf]) -> u64 {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    for p in paths {
        let mut f = fs::File::open(p).unwrap();
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    total
}

/// Empties the page cache (root only) so reads come from the disk.
fn drop_caches() -> bool {
    std::process::Command::new("sync").status().is_ok()
        && fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn main() {
    let args = common::args();
    let keys: u64 = args.first().map_or(10_000_000, |a| a.parse().unwrap());
    let runs: usize = args.get(1).map_or(3, |a| a.parse().unwrap());
    let dir = Path::new(args.get(2).map_or("/tmp/bitcask-open-time", |s| s.as_str())).to_path_buf();
    let _ = fs::remove_dir_all(&dir);

    let t = Instant::now();
    let db = Db::open(&dir, Options::default()).unwrap();
    let value = [0x5au8; 100];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..keys {
        // 16-byte keys in a scrambled order.
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let k = format!(
            "{:016x}",
            (i.wrapping_mul(0x2545_F491_4F6C_DD1D)) ^ (x >> 40)
        );
        db.put(k.as_bytes(), &value).unwrap();
    }
    db.close().unwrap();
    let hints = files(&dir, ".hint");
    let data = files(&dir, ".data");
    let hint_bytes: u64 = hints.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    let data_bytes: u64 = data.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    println!(
        "loaded {keys} keys in {:.1?}: {} data files ({} MB), {} hint files ({} MB)",
        t.elapsed(),
        data.len(),
        data_bytes >> 20,
        hints.len(),
        hint_bytes >> 20
    );
    let ro = Options {
        read_only: true,
        ..Options::default()
    };
    let aside = dir.join("hints-aside");
    let (mut cat, mut from_hints, mut scan) = (vec![], vec![], vec![]);
    let (mut cold_cat, mut cold_hints) = (vec![], vec![]);
    let can_drop = drop_caches();
    for _ in 0..runs {
        if can_drop {
            drop_caches();
            let t = Instant::now();
            read_all(&hints);
            cold_cat.push(t.elapsed());
            drop_caches();
            let t = Instant::now();
            drop(Db::open(&dir, ro.clone()).unwrap());
            cold_hints.push(t.elapsed());
        }
        let t = Instant::now();
        assert_eq!(read_all(&hints), hint_bytes);
        cat.push(t.elapsed());

        let t = Instant::now();
        let db = Db::open(&dir, ro.clone()).unwrap();
        from_hints.push(t.elapsed());
        assert_eq!(db.stats().live_keys, keys);
        drop(db);

        fs::create_dir_all(&aside).unwrap();
        for h in &hints {
            fs::rename(h, aside.join(h.file_name().unwrap())).unwrap();
        }
        let t = Instant::now();
        let db = Db::open(&dir, ro.clone()).unwrap();
        scan.push(t.elapsed());
        assert_eq!(db.stats().live_keys, keys);
        drop(db);
        for h in &hints {
            fs::rename(aside.join(h.file_name().unwrap()), h).unwrap();
        }
    }
    let (c, h, s) = (median(cat), median(from_hints), median(scan));
    println!("median of {runs}: read hint files {c:.2?}, open from hints {h:.2?}, open by scanning data {s:.2?}");
    println!(
        "open from hints = {:.2}x reading the hints (target <= 2x); scanning = {:.2}x open from hints",
        h.as_secs_f64() / c.as_secs_f64(),
        s.as_secs_f64() / h.as_secs_f64()
    );
    if can_drop {
        let (c, h) = (median(cold_cat), median(cold_hints));
        println!(
            "cold page cache, median of {runs}: read hint files {c:.2?}, open from hints {h:.2?} = {:.2}x",
            h.as_secs_f64() / c.as_secs_f64()
        );
    } else {
        println!("(not root: cold-cache figures skipped)");
    }
    let _ = fs::remove_dir_all(&dir);
}
