//! A read-only open racing the writer's merge. This program defines
//! `open64` (as fsync_races.rs defines `fdatasync`): the reader thread "R"
//! pauses at its first hint open, after the directory was listed and
//! before each listed data file is looked at, and the writer merges
//! meanwhile: the files the merge deleted are gone, and its output, named
//! after the listing, was not listed.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

mod common;

use bitcask::{Db, Options, SyncMode};
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static ARMED: AtomicBool = AtomicBool::new(false);
static PAUSED: AtomicBool = AtomicBool::new(false);
static RESUME: AtomicBool = AtomicBool::new(false);

/// # Safety
/// libc's `open64`, with the same arguments.
#[no_mangle]
pub unsafe extern "C" fn open64(
    path: *const libc::c_char,
    flags: libc::c_int,
    mode: libc::c_uint,
) -> libc::c_int {
    if ARMED.load(Ordering::SeqCst) && std::thread::current().name() == Some("R") {
        // SAFETY: the caller passes a NUL-terminated path.
        let p = unsafe { CStr::from_ptr(path) }.to_string_lossy();
        if p.ends_with(".hint") && !PAUSED.swap(true, Ordering::SeqCst) {
            while !RESUME.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    // SAFETY: the open64 system call with the caller's arguments.
    unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path, flags, mode) as libc::c_int }
}

/// A key deleted and a key overwritten, their older records in the first
/// file, their newer ones in files the selective merge takes: a reader
/// that loads the first file without the merge's output shows the old
/// values. It must list the directory again.
#[test]
fn a_read_only_open_during_a_merge_sees_no_older_values() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        max_file_size: 4096,
        merge: common::merge_when_half_dead(),
        ..common::opts(4096, SyncMode::None)
    };
    let w = Db::open(dir.path(), opts.clone()).unwrap();
    w.put(b"gone", b"old").unwrap();
    w.put(b"over", b"v1").unwrap();
    for i in 0..200u32 {
        w.put(format!("stable{i}").as_bytes(), &[1; 30]).unwrap();
    }
    let hot = |w: &Db| {
        for _ in 0..3 {
            for i in 0..40u32 {
                w.put(format!("hot{i}").as_bytes(), &[2; 30]).unwrap();
            }
        }
    };
    hot(&w);
    assert!(w.delete(b"gone").unwrap());
    w.put(b"over", b"v2").unwrap();
    hot(&w);
    w.close().unwrap();
    let w = Db::open(dir.path(), opts.clone()).unwrap();
    assert!(w.needs_merge());

    ARMED.store(true, Ordering::SeqCst);
    let ro = Options {
        read_only: true,
        ..opts.clone()
    };
    let path = dir.path().to_path_buf();
    let reader = std::thread::Builder::new()
        .name("R".into())
        .spawn(move || Db::open(&path, ro))
        .unwrap();
    while !PAUSED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let before = common::data_files(dir.path()).len();
    assert!(w.merge_if_needed().unwrap());
    assert!(
        common::data_files(dir.path()).len() < before,
        "the merge deleted no file: the test checks nothing"
    );
    RESUME.store(true, Ordering::SeqCst);
    ARMED.store(false, Ordering::SeqCst);
    let r = reader.join().unwrap().unwrap();
    assert_eq!(r.get(b"gone").unwrap(), None, "a deleted key is back");
    assert_eq!(r.get(b"over").unwrap().as_deref(), Some(&b"v2"[..]));
    assert_eq!(r.get(b"stable7").unwrap().as_deref(), Some(&[1u8; 30][..]));
}
