//! How long open takes to cross damage in a data file without a hint:
//! random bytes written over part of a 256 MiB file, then an open, which
//! must look at every offset of the damage for the next valid record and
//! then refuses the file (BC_CORRUPTION). Beside it, in the same run, the
//! time to read the file once (the `cat` bound). Then the same with crafted
//! damage: the 6 bytes `00 ff 00 00 00 00` repeated, which put a sane
//! header claiming a record of 65,299 bytes at every 6th offset, and a
//! 12-byte pattern whose claims alternate between two lengths. Usage:
//! cargo bench --bench damage_scan -- [runs] [dir]
//! (defaults: 3 runs, /tmp/bitcask-damage-scan).

mod common;

use bitcask::{Db, Options, Status};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn data_file(dir: &Path) -> PathBuf {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    assert_eq!(v.len(), 1, "one data file");
    v.pop().unwrap()
}

fn read_all(path: &Path) -> Duration {
    let t = Instant::now();
    let mut f = fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf).unwrap() > 0 {}
    t.elapsed()
}

/// Pseudo-random bytes (xorshift), the same in every run.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn main() {
    let args = common::args();
    let runs: usize = args.first().map_or(3, |a| a.parse().unwrap());
    let dir = PathBuf::from(args.get(1).map_or("/tmp/bitcask-damage-scan", |a| a));
    let _ = fs::remove_dir_all(&dir);
    let opts = Options {
        max_file_size: 1 << 30,
        ..Options::default()
    };
    let db = Db::open(&dir, opts.clone()).unwrap();
    let value = vec![0x5au8; 1000];
    for i in 0..256u32 * 1024 {
        db.put(format!("key{i:08}").as_bytes(), &value).unwrap();
    }
    db.close().unwrap();
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|e| e == "hint") {
            fs::remove_file(p).unwrap();
        }
    }
    let path = data_file(&dir);
    let size = fs::metadata(&path).unwrap().len();
    let pristine = fs::read(&path).unwrap();
    println!(
        "one data file of {} MB without a hint; random bytes written at 1 MiB; median of {runs}",
        size / 1_000_000
    );
    let read = median((0..runs).map(|_| read_all(&path)).collect());
    println!(
        "  reading the file once: {:.1} ms",
        read.as_secs_f64() * 1e3
    );
    // The pattern repeated: `00 ff 00 00 00 00` puts a sane header claiming
    // 65,299 bytes at every 6th offset; the 12-byte one claims of 65,299
    // and 5,139 bytes in turn, at every 12th.
    let crafted =
        |pattern: &[u8], n: usize| -> Vec<u8> { pattern.iter().copied().cycle().take(n).collect() };
    let one: &[u8] = &[0, 0xff, 0, 0, 0, 0];
    let two: &[u8] = &[0, 0xff, 0, 0, 0, 0, 0, 0x14, 0, 0, 0, 0];
    let cases = [64usize, 1024, 16 * 1024]
        .map(|kib| (kib, "random", noise(kib << 10)))
        .into_iter()
        .chain([1024usize, 4096].map(|kib| (kib, "crafted", crafted(one, kib << 10))))
        .chain([1024usize, 4096].map(|kib| (kib, "crafted-2", crafted(two, kib << 10))));
    for (kib, kind, damage) in cases {
        let mut f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(&damage).unwrap();
        drop(f);
        let open = median(
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    let e = Db::open(&dir, opts.clone()).err().expect("refused");
                    let took = t.elapsed();
                    assert_eq!(e.status(), Status::Corruption, "{}", e.message());
                    took
                })
                .collect(),
        );
        println!(
            "  {kib:>6} KiB of {kind} bytes: open refuses the file in {:.1} ms = {:.1}x reading it",
            open.as_secs_f64() * 1e3,
            open.as_secs_f64() / read.as_secs_f64()
        );
        fs::write(&path, &pristine).unwrap();
    }
    let _ = fs::remove_dir_all(&dir);
}
