//! Open time from hint files against open by scanning data files and
//! against reading the hint files sequentially (the `cat` bound), all in
//! one run. Usage: cargo bench --bench open_time -- [keys] [runs] [dir]
//! (defaults: 10,000,000 keys, 3 runs, /tmp/bitcask-open-time).
//! With `OPEN_TIME_KEEP=1` a database already in `dir` is reused and left
//! in place (for profiling open without writing 1.3 GB each time), and
//! with `OPEN_TIME_NO_SCAN=1` the scans are left out.

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

fn create(dir: &Path, keys: u64) {
    let t = Instant::now();
    let db = Db::open(dir, Options::default()).unwrap();
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
    let hints = files(dir, ".hint");
    let data = files(dir, ".data");
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
}

/// The first open in a process of its own, as a program that opens once
/// gets it: the keydir's memory is fresh from the kernel, never memory an
/// earlier open in the process gave back. Prints the microseconds.
fn open_once(dir: &Path) {
    let ro = Options {
        read_only: true,
        ..Options::default()
    };
    let t = Instant::now();
    let db = Db::open(dir, ro).unwrap();
    let took = t.elapsed();
    drop(db);
    println!("{}", took.as_micros());
}

/// `open_once` in a child process.
fn fresh_open(dir: &Path) -> Duration {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--open-once")
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let us: u64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    Duration::from_micros(us)
}

fn main() {
    let args = common::args();
    if args.first().map(String::as_str) == Some("--open-once") {
        return open_once(Path::new(&args[1]));
    }
    let keys: u64 = args.first().map_or(10_000_000, |a| a.parse().unwrap());
    let runs: usize = args.get(1).map_or(3, |a| a.parse().unwrap());
    let dir = Path::new(args.get(2).map_or("/tmp/bitcask-open-time", |s| s.as_str())).to_path_buf();
    let keep = std::env::var_os("OPEN_TIME_KEEP").is_some();
    let no_scan = std::env::var_os("OPEN_TIME_NO_SCAN").is_some();
    if !keep || !dir.exists() {
        let _ = fs::remove_dir_all(&dir);
        create(&dir, keys);
    }
    let hints = files(&dir, ".hint");
    let hint_bytes: u64 = hints.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
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

        if no_scan {
            continue;
        }
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
    // Each in a process of its own, alternating with reads of the hints.
    let (mut fresh_cat, mut fresh) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        read_all(&hints);
        fresh_cat.push(t.elapsed());
        fresh.push(fresh_open(&dir));
    }
    fresh.sort();
    if no_scan {
        scan.push(Duration::ZERO);
    }
    let (c, h, s) = (median(cat), median(from_hints), median(scan));
    println!("median of {runs}: read hint files {c:.2?}, open from hints {h:.2?}, open by scanning data {s:.2?}");
    println!(
        "open from hints = {:.2}x reading the hints (target <= 2x); scanning = {:.2}x open from hints",
        h.as_secs_f64() / c.as_secs_f64(),
        s.as_secs_f64() / h.as_secs_f64()
    );
    let fc = median(fresh_cat);
    println!(
        "first open in a fresh process, {runs} processes: median {:.2?} = {:.2}x reading the hints ({fc:.2?}); fastest {:.2?}, slowest {:.2?}",
        median(fresh.clone()),
        median(fresh.clone()).as_secs_f64() / fc.as_secs_f64(),
        fresh[0],
        fresh[runs - 1]
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
    if !keep {
        let _ = fs::remove_dir_all(&dir);
    }
}
