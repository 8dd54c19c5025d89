//! Two fsyncs of one file, one failing: Linux reports a writeback error to
//! one caller only, so the other's success must not be trusted once the
//! handle has failed. (Found by review; both tests failed before the fix.)
//!
//! fdatasync is defined here, so the engine's File::sync_data calls reach it:
//! when armed, the worker's and the writer "P"'s calls are delayed and one of
//! them fails with EIO.
mod common;
use bitcask::SyncMode;
use common::*;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// 0: off. 1: worker fails (after 20 ms), P succeeds (after 200 ms).
/// 2: P fails (after 20 ms), worker succeeds (after 200 ms).
static MODE: AtomicU8 = AtomicU8::new(0);

#[no_mangle]
pub extern "C" fn fdatasync(fd: libc::c_int) -> libc::c_int {
    let mode = MODE.load(Ordering::SeqCst);
    let name = std::thread::current().name().map(str::to_owned);
    let who = match name.as_deref() {
        Some("bitcask-worker") => 'w',
        Some("P") => 'p',
        _ => '-',
    };
    let fail = match (mode, who) {
        (1, 'w') => {
            std::thread::sleep(Duration::from_millis(20));
            true
        }
        (1, 'p') => {
            std::thread::sleep(Duration::from_millis(200));
            false
        }
        (2, 'p') => {
            std::thread::sleep(Duration::from_millis(20));
            true
        }
        (2, 'w') => {
            std::thread::sleep(Duration::from_millis(200));
            false
        }
        _ => false,
    };
    if fail {
        // SAFETY: errno is this thread's.
        unsafe { *libc::__errno_location() = libc::EIO };
        return -1;
    }
    // SAFETY: the real system call on a descriptor the caller owns.
    unsafe { libc::syscall(libc::SYS_fdatasync, fd) as libc::c_int }
}

/// P puts into F1 and leads its group commit; Q's put retires F1, whose seal
/// by the worker fails (EIO) while P's fsync is running. P's fsync then
/// reports success and P's put returns Ok on a handle that has failed, for
/// a record whose page the failed writeback may have dropped.
fn race(mode: u8) -> (bool, bitcask::Result<()>, tempfile::TempDir) {
    // MODE is global: the tests of this file take turns.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(open(dir.path(), &opts(4096, SyncMode::Always)));
    ok(db.put(b"warm", b"x"), "warm up (first fsync of the file)");
    MODE.store(mode, Ordering::SeqCst);
    let d2 = db.clone();
    let p = std::thread::Builder::new()
        .name("P".into())
        .spawn(move || d2.put(b"p", b"value of P"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(5)); // P is in its fsync
                                                  // Q: a record too large for F1's remainder: F1 is retired to the worker.
    let q = db.put(b"q", &[0u8; 4050]);
    let p = p.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    MODE.store(0, Ordering::SeqCst);
    let failed = db.put(b"after", b"x").is_err();
    let _ = q;
    drop(db);
    (failed, p, dir)
}

#[test]
fn no_put_is_acknowledged_once_another_fsync_of_its_file_failed() {
    let (failed, p, _dir) = race(1);
    assert!(
        failed,
        "the handle failed (the worker's fsync of F1 failed)"
    );
    assert!(
        p.is_err(),
        "P's put returned Ok in BC_SYNC_ALWAYS although an fsync of its file failed meanwhile"
    );
}

#[test]
fn no_hint_vouches_for_a_file_after_a_failed_fsync() {
    let (failed, p, dir) = race(2);
    assert!(
        failed && p.is_err(),
        "P's fsync failed and failed the handle"
    );
    let hints: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".hint"))
        .collect();
    assert!(
        hints.is_empty(),
        "hints written after the failed fsync: {hints:?}"
    );
}
