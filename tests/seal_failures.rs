//! A seal that fails other than in its fsync: the truncate that cuts a file
//! written through its map back to its records. The handle stays usable
//! (nothing acknowledged is in doubt), the file stays unsealed, and close
//! must still make its records durable: it seals the file, or, if the
//! truncate fails again, syncs it and says so. Before, close sealed only
//! the active file and such a file was never synced.
//!
//! This test binary defines `ftruncate64` and `fdatasync` itself, which
//! the library's calls then reach instead of libc's: a shrinking truncate
//! fails with EIO while armed (in the worker only, or everywhere), and
//! every fdatasync records which file it synced.
#![cfg(all(target_os = "linux", target_pointer_width = "64"))]

mod common;
use bitcask::{Db, Status, SyncMode};
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// 0: off; 1: shrinking truncates fail in the worker; 2: everywhere.
static ARMED: AtomicU8 = AtomicU8::new(0);
static FAILED: AtomicUsize = AtomicUsize::new(0);
static SYNCED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// The two scenarios share the interposed calls: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn size_of_fd(fd: libc::c_int) -> i64 {
    // SAFETY: fstat fills a zeroed stat for a descriptor the caller holds.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        match libc::fstat(fd, &mut st) {
            0 => st.st_size,
            _ => -1,
        }
    }
}

#[no_mangle]
pub extern "C" fn ftruncate64(fd: libc::c_int, len: libc::off64_t) -> libc::c_int {
    let armed = match ARMED.load(Ordering::SeqCst) {
        1 => std::thread::current().name() == Some("bitcask-worker"),
        2 => true,
        _ => false,
    };
    if armed && len < size_of_fd(fd) {
        FAILED.fetch_add(1, Ordering::SeqCst);
        // SAFETY: writes this thread's errno.
        unsafe { *libc::__errno_location() = libc::EIO };
        return -1;
    }
    // SAFETY: the system call libc's ftruncate64 makes, with its arguments.
    unsafe { libc::syscall(libc::SYS_ftruncate, fd, len) as libc::c_int }
}

#[no_mangle]
pub extern "C" fn fdatasync(fd: libc::c_int) -> libc::c_int {
    if let Ok(path) = fs::read_link(format!("/proc/self/fd/{fd}")) {
        SYNCED.lock().unwrap().push(path);
    }
    // SAFETY: the system call libc's fdatasync makes.
    unsafe { libc::syscall(libc::SYS_fdatasync, fd) as libc::c_int }
}

fn value(i: u32) -> Vec<u8> {
    let mut v = vec![(i % 251) as u8; 1000];
    v[..4].copy_from_slice(&i.to_le_bytes());
    v
}

/// Puts until the first data file is retired and the worker's seal of it
/// has failed; returns that file's path and the keys put.
fn retire_one_file_unsealed(db: &Db, dir: &Path) -> (PathBuf, u32) {
    ok(db.put(b"k00000", &value(0)), "put");
    let first = data_files(dir)[0].clone();
    let mut n = 1;
    let deadline = Instant::now() + Duration::from_secs(20);
    while FAILED.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no seal failed");
        ok(db.put(format!("k{n:05}").as_bytes(), &value(n)), "put");
        n += 1;
        if data_files(dir).len() > 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    (first, n)
}

/// A database whose first data file is retired and unsealed: the
/// worker's truncate failed (armed for the worker only). Holds the lock
/// that keeps the tests one at a time.
fn worker_seal_failed() -> (MutexGuard<'static, ()>, TempDir, Db, PathBuf, u32) {
    let one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let db = ok(Db::open(dir.path(), opts(64 << 10, SyncMode::None)), "open");
    FAILED.store(0, Ordering::SeqCst);
    ARMED.store(1, Ordering::SeqCst);
    let (first, n) = retire_one_file_unsealed(&db, dir.path());
    (one, dir, db, first, n)
}

fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    v.sort();
    v
}

fn check_all(dir: &Path, n: u32) {
    let db = ok(Db::open(dir, opts(64 << 10, SyncMode::None)), "reopen");
    for i in 0..n {
        let got = ok(db.get(format!("k{i:05}").as_bytes()), "get");
        assert_eq!(got, Some(value(i)), "k{i:05}");
    }
    ok(db.close(), "close after reopen");
}

/// The worker's seal failed; close's own seal works: the file is sealed
/// and hinted by close, and close succeeds.
#[test]
fn close_seals_a_file_the_worker_could_not() {
    let (_one, dir, db, first, n) = worker_seal_failed();
    let hint = first.with_extension("hint");
    assert!(!hint.exists(), "the worker's seal failed: no hint yet");
    SYNCED.lock().unwrap().clear();
    let closed = db.close();
    ARMED.store(0, Ordering::SeqCst);
    ok(closed, "close");
    assert!(SYNCED.lock().unwrap().contains(&first), "{first:?} synced");
    assert!(hint.exists(), "close sealed {first:?} and wrote its hint");
    check_all(dir.path(), n);
}

/// The truncate fails at close too: close still syncs the file's records,
/// and says what failed (BC_IO naming the truncate); the next open cuts the
/// zeros after the records and finds every key.
#[test]
fn close_syncs_a_file_it_cannot_seal_and_says_so() {
    let (_one, dir, db, first, n) = worker_seal_failed();
    ARMED.store(2, Ordering::SeqCst);
    SYNCED.lock().unwrap().clear();
    let closed = db.close();
    ARMED.store(0, Ordering::SeqCst);
    let (status, msg) = err(closed, "close");
    assert_eq!(status, Status::Io as i32, "{msg}");
    assert!(msg.contains("truncating"), "{msg}");
    assert!(SYNCED.lock().unwrap().contains(&first), "{first:?} synced");
    check_all(dir.path(), n);
}
