//! A new data file whose header cannot be written (a full disk; here the
//! file size limit) must not be left behind: its id is the one the next
//! rotation takes, which then failed with EEXIST for as long as the handle
//! lived, though the disk had room again. (Found by review; failed before.)
//! Its own test binary: RLIMIT_FSIZE is process-wide.

mod common;
use bitcask::SyncMode;
use common::*;

fn set_file_size_limit(n: libc::rlim_t) {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the structs we pass.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut cur), 0);
        let r = libc::rlimit {
            rlim_cur: n,
            rlim_max: cur.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &r), 0);
    }
}

#[test]
fn rotation_works_again_once_the_disk_has_room() {
    // SAFETY: ignoring SIGXFSZ makes an over-limit write fail with EFBIG
    // instead of killing the process.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), &opts(1 << 20, SyncMode::None));
    ok(
        db.put(b"a", &vec![1u8; 300 << 10]),
        "big put (written directly)",
    );
    set_file_size_limit(8);
    // Needs a new file, whose 16-byte header does not fit under the limit.
    let r = db.put(b"b", &vec![2u8; 800 << 10]);
    set_file_size_limit(libc::RLIM_INFINITY);
    let (status, msg) = err(r, "put needing a new file while the disk is full");
    assert!(msg.contains("writing header of"), "{status}: {msg}");
    ok(
        db.put(b"c", &vec![3u8; 800 << 10]),
        "put once the disk has room",
    );
    assert_eq!(ok(db.get(b"c"), "get c"), Some(vec![3u8; 800 << 10]));
    assert_eq!(ok(db.get(b"b"), "get b"), None);
    ok(db.close(), "close");
    let db = open(dir.path(), &opts(1 << 20, SyncMode::None));
    assert_eq!(ok(db.get(b"a"), "get a"), Some(vec![1u8; 300 << 10]));
    assert_eq!(ok(db.get(b"c"), "get c"), Some(vec![3u8; 800 << 10]));
}
