//! fsyncs that fail or stall. Two fsyncs of one file, one failing: Linux
//! reports a writeback error to one caller only, so the engine runs a
//! file's fsyncs one at a time and keeps the first failure; a put may be
//! acknowledged only by an fsync that ran before the failing one, never
//! beside it. A worker stuck in an fsync: the writer seals newer files
//! itself, and merge must still see the older, unsealed ones. And close after a caught bug, which must
//! still fsync. (Found by review; each failed before its fix.)
//!
//! fdatasync is defined here, so the engine's File::sync_data calls reach it:
//! when armed, the worker's and the writer "P"'s calls are delayed and one of
//! them fails with EIO, or the worker's waits until disarmed.
mod common;
use bitcask::{Error, Status, SyncMode};
use common::*;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// 0: off. 1: worker fails (after 20 ms), P succeeds (after 200 ms).
/// 2: P fails (after 20 ms), worker succeeds (after 200 ms).
/// 3: the worker's calls wait until MODE changes.
/// 4: the worker's fsync calls of files (a hint's; not a directory's, nor
///    a data file's fdatasync) wait until MODE changes, after setting
///    STALLED.
/// 5: every fdatasync call but those of threads named "C" waits until MODE
///    changes.
static MODE: AtomicU8 = AtomicU8::new(0);
/// Calls made by threads named "C".
static BY_C: AtomicUsize = AtomicUsize::new(0);
/// fdatasync calls (of data files) and fsync calls of files (hints) made
/// by threads named "P".
static DATA_BY_P: AtomicUsize = AtomicUsize::new(0);
static HINTS_BY_P: AtomicUsize = AtomicUsize::new(0);
/// Descriptors with a call in progress, and whether a call ever began on a
/// descriptor that had one.
static IN_FLIGHT: std::sync::Mutex<Vec<libc::c_int>> = std::sync::Mutex::new(Vec::new());
static OVERLAPPED: AtomicBool = AtomicBool::new(false);
/// The last call by the thread "P": its descriptor, when it began and
/// when it returned; and the descriptor of the worker's last call.
static P_CALL: std::sync::Mutex<Option<(libc::c_int, Instant, Instant)>> =
    std::sync::Mutex::new(None);
static W_FD: std::sync::Mutex<Option<libc::c_int>> = std::sync::Mutex::new(None);
static STALLED: AtomicBool = AtomicBool::new(false);

#[no_mangle]
pub extern "C" fn fsync(fd: libc::c_int) -> libc::c_int {
    // SAFETY: fstat into a zeroed struct on a descriptor the caller owns.
    let is_dir = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR
    };
    if !is_dir && std::thread::current().name() == Some("P") {
        HINTS_BY_P.fetch_add(1, Ordering::SeqCst);
    }
    if MODE.load(Ordering::SeqCst) == 4
        && !is_dir
        && std::thread::current().name() == Some("bitcask-worker")
    {
        STALLED.store(true, Ordering::SeqCst);
        while MODE.load(Ordering::SeqCst) == 4 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // SAFETY: the real system call on a descriptor the caller owns.
    unsafe { libc::syscall(libc::SYS_fsync, fd) as libc::c_int }
}

#[no_mangle]
pub extern "C" fn fdatasync(fd: libc::c_int) -> libc::c_int {
    let mode = MODE.load(Ordering::SeqCst);
    let name = std::thread::current().name().map(str::to_owned);
    let who = match name.as_deref() {
        Some("bitcask-worker") => 'w',
        Some("P") => {
            DATA_BY_P.fetch_add(1, Ordering::SeqCst);
            'p'
        }
        Some("C") => {
            BY_C.fetch_add(1, Ordering::SeqCst);
            'c'
        }
        _ => '-',
    };
    {
        let mut busy = lock(&IN_FLIGHT);
        if busy.contains(&fd) {
            OVERLAPPED.store(true, Ordering::SeqCst);
        }
        busy.push(fd);
    }
    let began = Instant::now();
    let rc = fdatasync_as(fd, mode, who);
    match who {
        'p' => *lock(&P_CALL) = Some((fd, began, Instant::now())),
        'w' => *lock(&W_FD) = Some(fd),
        _ => {}
    }
    let mut busy = lock(&IN_FLIGHT);
    let at = busy.iter().position(|&f| f == fd).expect("pushed above");
    busy.swap_remove(at);
    rc
}

fn fdatasync_as(fd: libc::c_int, mode: u8, who: char) -> libc::c_int {
    // How long the call takes, and whether it fails.
    let (delay_ms, fail) = match (mode, who) {
        (1, 'w') | (2, 'p') => (20, true),
        (1, 'p') | (2, 'w') => (200, false),
        (3, 'w') => {
            while MODE.load(Ordering::SeqCst) == 3 {
                std::thread::sleep(Duration::from_millis(1));
            }
            (0, false)
        }
        (5, w) if w != 'c' => {
            while MODE.load(Ordering::SeqCst) == 5 {
                std::thread::sleep(Duration::from_millis(1));
            }
            (0, false)
        }
        _ => (0, false),
    };
    std::thread::sleep(Duration::from_millis(delay_ms));
    if fail {
        // SAFETY: errno is this thread's.
        unsafe { *libc::__errno_location() = libc::EIO };
        return -1;
    }
    // SAFETY: the real system call on a descriptor the caller owns.
    unsafe { libc::syscall(libc::SYS_fdatasync, fd) as libc::c_int }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// MODE is global: the tests of this file take turns.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    lock(&SERIAL)
}

/// P puts into F1 and leads its group commit; Q's put retires F1, whose seal
/// by the worker fails (EIO) where it would run beside P's fsync. Were the
/// two to run at once, P's fsync could report success and P's put return
/// Ok for a record whose page the failed writeback may have dropped.
fn race(mode: u8) -> Race {
    let _turn = serial();
    OVERLAPPED.store(false, Ordering::SeqCst);
    *lock(&P_CALL) = None;
    *lock(&W_FD) = None;
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
                                                  // Q: a record too large for F1's remainder: F1 is retired to the
                                                  // worker, and F2 made.
    let d3 = db.clone();
    let q = std::thread::spawn(move || d3.put(b"q", &[0u8; 4050]));
    let waiting = Instant::now();
    while data_files(dir.path()).len() < 2 {
        assert!(
            waiting.elapsed() < Duration::from_secs(10),
            "F2 never appeared"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let retired = Instant::now();
    let p = p.join().unwrap();
    let _ = q.join().unwrap();
    let (p_fd, p_began, p_done) = lock(&P_CALL).expect("P synced");
    std::thread::sleep(Duration::from_millis(300));
    MODE.store(0, Ordering::SeqCst);
    let failed = db.put(b"after", b"x").is_err();
    drop(db);
    Race {
        failed,
        p,
        overlapped: OVERLAPPED.load(Ordering::SeqCst),
        competed: p_began < retired && retired < p_done && *lock(&W_FD) == Some(p_fd),
        dir,
    }
}

struct Race {
    /// The handle failed.
    failed: bool,
    /// P's put.
    p: bitcask::Result<()>,
    /// Two calls on one descriptor overlapped.
    overlapped: bool,
    /// F1 was retired to the worker (F2 existed) while P's fsync of it
    /// was in progress, and the worker then synced the descriptor P did:
    /// the worker's fsync had to wait or overlap.
    competed: bool,
    dir: tempfile::TempDir,
}

#[test]
fn no_put_is_acknowledged_once_another_fsync_of_its_file_failed() {
    let Race {
        failed,
        p,
        overlapped,
        competed,
        ..
    } = race(1);
    assert!(
        failed,
        "the handle failed (the worker's fsync of F1 failed)"
    );
    assert!(
        competed,
        "P's fsync and the worker's did not compete for F1's descriptor"
    );
    assert!(!overlapped, "two fsyncs of one file ran at once");
    // P's fsync ran first and succeeded: its record was on disk before
    // the worker's fsync began (and failed, for later pages).
    assert!(p.is_ok(), "{p:?}");
}

#[test]
fn no_hint_vouches_for_a_file_after_a_failed_fsync() {
    let Race { failed, p, dir, .. } = race(2);
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

/// Files of 4 KiB and at most 4 open descriptors (so that retired files
/// reach the back-pressure bound soon), with the worker set to stall in
/// its first fsync until released.
fn stalled_worker_opts() -> bitcask::Options {
    MODE.store(3, Ordering::SeqCst);
    bitcask::Options {
        max_open_files: 4,
        ..opts(4096, SyncMode::None)
    }
}

/// Back-pressure seals a newer retired file on the writer's thread while an
/// older one waits in the queue of a worker stuck in an fsync. merge_selected sees only
/// sealed files, so it thinks every file older than the newer one is an
/// input and drops its tombstone; the older, unsealed file still holds the
/// deleted value, which comes back at the next open. No crash involved.
#[test]
fn merge_keeps_tombstones_while_an_older_file_waits_to_be_sealed() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    // The worker stalls in its first fsync (sealing F1) until released.
    let mut o = stalled_worker_opts();
    o.mmap = true;
    o.merge = merge_when_half_dead();
    let db = open(dir.path(), &o);
    ok(db.put(b"k", b"V1"), "put V1");
    // F1, F2, F3 retired (the worker stuck on F1; fds 2, 3, 4 open).
    fill_until_files(&db, 4, &mut 0);
    // F4 active: delete k, garbage.
    ok(db.delete(b"k"), "delete");
    garbage_until_files(&db, 5);
    // F4 was sealed by the writer (5 fds open > max_open_files 4).
    // The merge chooses its inputs now, with F1 unsealed, and then waits
    // for the worker's fsync of F1 to end before it relies on F1 (fsyncs
    // of one file run one at a time): the stall ends after 300 ms.
    let release = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(300));
        MODE.store(0, Ordering::SeqCst);
    });
    assert!(ok(db.merge_if_needed(), "merge"), "a merge ran");
    assert_eq!(ok(db.get(b"k"), "get"), None);
    release.join().unwrap();
    ok(db.close(), "close");
    let db2 = open(dir.path(), &o);
    let got = ok(db2.get(b"k"), "get after reopen");
    assert_eq!(
        got.map(|v| String::from_utf8_lossy(&v).into_owned()),
        None,
        "deleted key came back"
    );
}

/// The worker writes a sealed file's hint while a merge takes the file
/// and deletes it (and its missing hint): the hint, renamed into place
/// after that, must not outlive its data file.
#[test]
fn a_hint_written_while_a_merge_deletes_its_file_does_not_outlive_it() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), &opts(4096, SyncMode::None));
    STALLED.store(false, Ordering::SeqCst);
    MODE.store(4, Ordering::SeqCst);
    // The first file fills and retires; the worker seals it and stalls in
    // the fsync of its hint.
    let mut n = 0;
    fill_until_files(&db, 2, &mut n);
    for _ in 0..5000 {
        if STALLED.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        STALLED.load(Ordering::SeqCst),
        "the worker never wrote a hint"
    );
    // Every record of the sealed file dead: the merge deletes it.
    for i in 0..n {
        ok(db.delete(format!("a{i}").as_bytes()), "delete");
    }
    ok(db.merge(), "merge");
    MODE.store(0, Ordering::SeqCst);
    ok(db.close(), "close");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let orphans: Vec<&String> = names
        .iter()
        .filter(|n| n.ends_with(".hint"))
        .filter(|n| !names.contains(&n.replace(".hint", ".data")))
        .collect();
    assert!(
        orphans.is_empty(),
        "hints without data files: {orphans:?} in {names:?}"
    );
}

/// Closes `db`, which a caught bug failed, on a thread named "C": close
/// reports the bug, and `why` unless it fsynced.
fn close_failed_on_c(db: bitcask::Db, why: &str) {
    BY_C.store(0, Ordering::SeqCst);
    let closed = std::thread::Builder::new()
        .name("C".into())
        .spawn(move || db.close())
        .unwrap()
        .join()
        .unwrap();
    let (status, _) = err(closed, "close of a failed handle");
    assert_eq!(status, Status::Failed as i32);
    assert!(BY_C.load(Ordering::SeqCst) > 0, "{why}");
}

/// After a caught bug (not a failed fsync) close still makes the puts
/// acknowledged before it durable: it writes out the buffer and fsyncs,
/// as bc_close's header comment says, and seals nothing (no hint).
#[test]
fn close_after_a_caught_bug_syncs_what_was_acknowledged() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), &opts(1 << 20, SyncMode::None));
    ok(db.put(b"k", b"acknowledged"), "put");
    db.poison(Error::new(Status::Internal, "injected bug"));
    close_failed_on_c(db, "close did not fsync");
    // Sealed means hinted: the next open must scan (and check) the file.
    let hints = files_ending(dir.path(), ".hint");
    assert!(
        hints.is_empty(),
        "close of a failed handle sealed: {hints:?}"
    );
    let db = open(dir.path(), &opts(1 << 20, SyncMode::None));
    assert_eq!(ok(db.get(b"k"), "get"), Some(b"acknowledged".to_vec()));
}

/// The same when a merge had taken the active file to seal it and the bug
/// was caught before the merge synced it (the merge stopped at its next
/// seal): close syncs that file too, though no file is active any more.
/// It synced nothing before (found by review).
#[test]
fn close_after_a_caught_bug_syncs_the_file_a_merge_took() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(open(dir.path(), &opts(4096, SyncMode::None)));
    ok(db.put(b"dead", b"1"), "put");
    // Every fsync but close's waits: the worker's seal of the first file,
    // then the merge's.
    MODE.store(5, Ordering::SeqCst);
    fill_until_files(&db, 2, &mut 0);
    ok(db.put(b"dead", b"2"), "put");
    ok(db.put(b"last", b"acknowledged"), "put");
    let merging = db.clone();
    let merge = std::thread::Builder::new()
        .name("M".into())
        .spawn(move || merging.merge())
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    db.poison(Error::new(Status::Internal, "injected bug"));
    MODE.store(0, Ordering::SeqCst);
    assert!(
        merge.join().unwrap().is_err(),
        "the merge went on after the bug"
    );
    let db = std::sync::Arc::try_unwrap(db).unwrap_or_else(|_| panic!("still shared"));
    close_failed_on_c(db, "close did not fsync the file the merge took");
    let db = open(dir.path(), &opts(4096, SyncMode::None));
    assert_eq!(ok(db.get(b"last"), "get"), Some(b"acknowledged".to_vec()));
}

/// Back-pressure: with the worker stuck and more retired files open than
/// max_open_files, the writer syncs and seals the files it retires itself
/// (so that their descriptors may close), but leaves their hints, a read of
/// the whole file and an fsync, to the worker: puts wait for one fsync,
/// not for a whole seal (a review measured 600 ms gaps in the interval
/// sync behind slow hint fsyncs). Nothing is lost, and every file ends up
/// with a hint.
#[test]
fn a_writer_under_back_pressure_leaves_hints_to_the_worker() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let o = stalled_worker_opts();
    let db = std::sync::Arc::new(open(dir.path(), &o));
    let (data_before, hints_before) = (
        DATA_BY_P.load(Ordering::SeqCst),
        HINTS_BY_P.load(Ordering::SeqCst),
    );
    let writer = db.clone();
    std::thread::Builder::new()
        .name("P".into())
        .spawn(move || fill_until_files(&writer, 8, &mut 0))
        .unwrap()
        .join()
        .unwrap();
    let (data_by_p, hints_by_p) = (
        DATA_BY_P.load(Ordering::SeqCst),
        HINTS_BY_P.load(Ordering::SeqCst),
    );
    // Released before any assertion: a failing one would drop the handle,
    // whose close waits for the worker.
    MODE.store(0, Ordering::SeqCst);
    assert!(
        data_by_p > data_before,
        "the writer never sealed a file itself"
    );
    assert_eq!(
        hints_by_p, hints_before,
        "the writer wrote hints under back-pressure"
    );
    let db = std::sync::Arc::try_unwrap(db).unwrap_or_else(|_| panic!("still shared"));
    ok(db.close(), "close");
    let data = files_ending(dir.path(), ".data");
    assert_eq!(
        files_ending(dir.path(), ".hint").len(),
        data.len(),
        "a file without a hint"
    );
    let db = open(dir.path(), &o);
    assert_eq!(db.stats().recovered_bytes_dropped, 0);
    for i in 0..100 {
        assert_eq!(
            ok(db.get(format!("a{i}").as_bytes()), "get"),
            Some(vec![1u8; 100])
        );
    }
}
