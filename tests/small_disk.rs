//! A database on a small disk: a tmpfs of a few MiB mounted for the test
//! (skipped where mounting is not allowed). Merge on a disk without room
//! for a copy of all its inputs merges the oldest that fit, and a merge
//! that fits nowhere fails without spending the disk; the dead bytes are
//! reclaimed in steps, and nothing is lost. (Found by review: each full
//! merge ran out of room part way, kept the outputs it had finished, and
//! left the disk fuller than before, attempt after attempt.)
#![cfg(target_os = "linux")]

mod common;

use bitcask::{Db, Options, Status, SyncMode};
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// A tmpfs mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    at: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("disk");
        std::fs::create_dir(&at).unwrap();
        let target = CString::new(at.to_str().unwrap()).unwrap();
        let data = CString::new(format!("size={bytes}")).unwrap();
        // SAFETY: mount(2) with NUL-terminated strings that outlive the call.
        let r = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        (r == 0).then_some(Tmpfs { at, _dir: dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = CString::new(self.at.to_str().unwrap()).unwrap();
        // SAFETY: umount2(2) of the mount made above; MNT_DETACH lets a
        // test that failed with files open still unmount.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

fn used(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn value(i: u32, round: u32) -> Vec<u8> {
    format!("{i:06}-{round}-").into_bytes().repeat(100)
}

#[test]
fn merge_on_a_small_disk_takes_what_fits_and_loses_nothing() {
    for write_map in [false, true] {
        merge_on_a_small_disk(write_map);
    }
}

fn merge_on_a_small_disk(write_map: bool) {
    let Some(disk) = Tmpfs::mount(4 << 20) else {
        eprintln!("cannot mount a tmpfs here (not root?): skipped");
        return;
    };
    let o = Options {
        write_map,
        ..common::opts(256 << 10, SyncMode::None)
    };
    let keys = 1200u32;
    let db = Db::open(&disk.at, o.clone()).unwrap();
    // About 1.1 MB of live values, written three times: 3.3 MB of the 4.
    for round in 0..3 {
        for i in 0..keys {
            db.put(format!("key{i:06}").as_bytes(), &value(i, round))
                .unwrap();
        }
    }
    db.sync().unwrap();
    let before = used(&disk.at);
    assert!(
        before > 3 << 20,
        "{before} bytes: the disk is not nearly full"
    );
    // A full merge of everything needs a copy of 1.1 MB, more than is free.
    let mut merged = 0;
    for _ in 0..10 {
        match db.merge() {
            Ok(()) => merged += 1,
            Err(e) => {
                assert_eq!(e.status(), Status::Io, "{e:?}");
                assert!(e.message().contains("no room to merge"), "{e:?}");
                break;
            }
        }
        if db.stats().dead_bytes == 0 {
            break;
        }
    }
    let after = used(&disk.at);
    assert!(merged > 0, "no merge ran");
    assert!(
        after < before / 2,
        "{after} bytes after {merged} merges, {before} before"
    );
    // The handle is whole: puts go on, and everything reads back.
    db.put(b"after", b"merge").unwrap();
    for i in 0..keys {
        assert_eq!(
            db.get(format!("key{i:06}").as_bytes()).unwrap(),
            Some(value(i, 2)),
            "key {i}"
        );
    }
    db.close().unwrap();
    // No merge output was left behind (looked at once closed: until then
    // the worker may be writing a sealed file's hint under a .tmp name).
    assert_eq!(
        common::files_ending(&disk.at, ".tmp"),
        Vec::<PathBuf>::new()
    );
    let db = Db::open(&disk.at, o).unwrap();
    assert_eq!(db.count(), keys as u64 + 1);
    drop(db);
}

/// bc_merge's header: "when not even the oldest fits, it returns BC_IO
/// ('no room to merge') having written nothing". One file of 1.2 MB of
/// live records on a 2 MiB disk: its copy cannot fit beside it.
#[test]
fn a_merge_that_fits_nowhere_writes_nothing() {
    let Some(disk) = Tmpfs::mount(2 << 20) else {
        eprintln!("cannot mount a tmpfs here (not root?): skipped");
        return;
    };
    let o = Options {
        write_map: false,
        ..common::opts(4 << 20, SyncMode::None)
    };
    let db = Db::open(&disk.at, o.clone()).unwrap();
    for i in 0..1300u32 {
        db.put(format!("key{i:06}").as_bytes(), &value(i, 0))
            .unwrap();
    }
    db.delete(b"key000000").unwrap();
    db.close().unwrap();
    let db = Db::open(&disk.at, o).unwrap();
    let before = common::dir_bytes(&disk.at);
    let e = db.merge().expect_err("a merge with no room");
    assert_eq!(e.status(), Status::Io, "{e:?}");
    assert!(e.message().contains("no room to merge"), "{e:?}");
    assert_eq!(common::dir_bytes(&disk.at), before, "the merge wrote");
    assert_eq!(db.count(), 1299);
}
