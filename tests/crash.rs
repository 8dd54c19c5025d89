//! kill -9 durability test.
//!
//! The test binary re-executes itself: `crash_child` (a no-op unless
//! `BITCASK_CRASH_DIR` is set) opens the database with `SyncMode::Always`,
//! does random puts/deletes/merges and reports on stdout:
//!   `@@I P key seq` / `@@I D key seq`  an operation is about to be issued
//!   `@@P key seq`   / `@@D key seq`    it returned Ok (acknowledged)
//!   `@@M start`     / `@@M end full|partial|none`  merge() or merge_if_needed() starts / returned Ok
//! The parent SIGKILLs it at random moments (some right after `M start`),
//! reopens the directory and checks that every acknowledged operation
//! survived, that only the single in-flight operation may or may not have
//! happened, and that every value read back is well-formed. Rounds run
//! cumulatively against the same directory.
//!
//! `crash_kill9_recovery_write_map` runs the same rounds with the active
//! file written through its map (`Options::write_map`) and no fsync at
//! all (`SyncMode::None`): a put is in the page cache when it returns, so
//! a kill of the process must lose nothing acknowledged there either.

mod common;

use bitcask::{Db, SyncMode};
use common::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ENV_DIR: &str = "BITCASK_CRASH_DIR";
const ENV_SEED: &str = "BITCASK_CRASH_SEED";
const ENV_SEQ: &str = "BITCASK_CRASH_SEQ";
/// Set (to anything) for the write-map rounds.
const ENV_WRITE_MAP: &str = "BITCASK_CRASH_WRITE_MAP";
const NKEYS: u64 = 300;
const MAX_FILE: u64 = 64 * 1024;
const MAX_FILLER: u64 = 1500;

fn key(k: u64) -> Vec<u8> {
    format!("key{k:04}").into_bytes()
}

/// "K0042S000000000123|" followed by deterministic filler of a (key, seq)-dependent length.
fn make_value(k: u64, seq: u64) -> Vec<u8> {
    let h = mix(k, seq);
    let mut v = format!("K{k:04}S{seq:012}|").into_bytes();
    let mut r = Rng::new(h);
    let n = (h % (MAX_FILLER + 1)) as usize;
    v.extend((0..n).map(|_| b'a' + (r.next_u64() % 26) as u8));
    v
}

/// (key, seq) if `v` is exactly `make_value(key, seq)`.
fn decode_value(v: &[u8]) -> Option<(u64, u64)> {
    if v.len() < 19 || v[0] != b'K' || v[5] != b'S' || v[18] != b'|' {
        return None;
    }
    let k: u64 = std::str::from_utf8(&v[1..5]).ok()?.parse().ok()?;
    let s: u64 = std::str::from_utf8(&v[6..18]).ok()?.parse().ok()?;
    if make_value(k, s) == v {
        Some((k, s))
    } else {
        None
    }
}

fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    // A failed write means the parent is gone: stop.
    if out.write_all(format!("@@{line}\n").as_bytes()).is_err() || out.flush().is_err() {
        std::process::exit(3);
    }
}

/// Small files and an eager merge policy, so that both full merges and
/// partial ones (which must keep tombstones that still shadow older files)
/// run all the time.
fn child_opts(write_map: bool) -> bitcask::Options {
    // Written through a map, files of 1.5 MiB: each grows through several
    // steps (64 KiB doubling to 1 MiB, then a last one to 1.5 MiB) before
    // it is sealed.
    let (sync, max_file) = match write_map {
        true => (SyncMode::None, 3 << 19),
        false => (SyncMode::Always, MAX_FILE),
    };
    bitcask::Options {
        write_map,
        merge: bitcask::MergePolicy {
            frag_trigger: 0.3,
            dead_bytes_trigger: 24 << 10,
            frag_threshold: 0.2,
            dead_bytes_threshold: 16 << 10,
            small_file_threshold: 16 << 10,
        },
        ..opts(max_file, sync)
    }
}

/// The child side. Does nothing in a normal test run.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let seed: u64 = std::env::var(ENV_SEED).unwrap().parse().unwrap();
    let mut seq: u64 = std::env::var(ENV_SEQ).unwrap().parse().unwrap();
    let write_map = std::env::var_os(ENV_WRITE_MAP).is_some();
    let db = ok(Db::open(&dir, child_opts(write_map)), "child open");
    // Rebuild the model from the database itself.
    let mut model: HashMap<u64, u64> = HashMap::new();
    for k in 0..NKEYS {
        if let Some(v) = ok(db.get(&key(k)), "child initial get") {
            let (kk, s) = decode_value(&v).expect("child: corrupt value at open");
            assert_eq!(kk, k, "child: value of another key");
            model.insert(k, s);
        }
    }
    emit("R");
    let mut rng = Rng::new(seed);
    let mut until_merge = rng.range(30, 120);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if until_merge == 0 {
            until_merge = rng.range(30, 120);
            emit("M start");
            if rng.chance(50) {
                ok(db.merge(), "child merge");
                emit("M end full");
            } else if ok(db.merge_if_needed(), "child merge_if_needed") {
                emit("M end partial");
            } else {
                emit("M end none");
            }
            continue;
        }
        until_merge -= 1;
        let k = rng.below(NKEYS);
        let r = rng.below(100);
        if r < 65 {
            seq += 1;
            emit(&format!("I P {k} {seq}"));
            ok(db.put(&key(k), &make_value(k, seq)), "child put");
            emit(&format!("P {k} {seq}"));
            model.insert(k, seq);
        } else if r < 90 {
            seq += 1;
            emit(&format!("I D {k} {seq}"));
            let existed = ok(db.delete(&key(k)), "child delete");
            emit(&format!("D {k} {seq}"));
            assert_eq!(
                existed,
                model.remove(&k).is_some(),
                "child: delete return value"
            );
        } else {
            let got = ok(db.get(&key(k)), "child get");
            let want = model.get(&k).map(|&s| make_value(k, s));
            assert!(
                got == want,
                "child: get({k}) mismatch: got {:?} want seq {:?}",
                got.as_ref().map(|v| decode_value(v)),
                model.get(&k)
            );
        }
    }
    emit("X");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InFlight {
    Put(u64, u64),
    Del(u64, u64),
    Merge,
}

/// Kills the child on drop (if the parent test panics).
struct ChildGuard(Child);
impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

enum KillPlan {
    /// kill right after the n-th acknowledged op is read
    AfterAcks(u64),
    /// kill after the n-th acknowledged op plus a short sleep
    AfterAcksSleep(u64, Duration),
    /// kill `delay` after the n-th "M start" line
    InMerge(u64, Duration),
    /// kill at a fixed time after spawning (may land during open)
    AtTime(Duration),
}

struct RoundResult {
    lines: Vec<String>,
    killed: bool,
    merge_durations: Vec<Duration>,
}

fn run_child(
    dir: &Path,
    seed: u64,
    start_seq: u64,
    plan: &KillPlan,
    stderr_path: &Path,
    write_map: bool,
) -> RoundResult {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    if write_map {
        cmd.env(ENV_WRITE_MAP, "1");
    }
    let child = cmd
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(ENV_DIR, dir)
        .env(ENV_SEED, seed.to_string())
        .env(ENV_SEQ, start_seq.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(stderr_path).unwrap()))
        .spawn()
        .expect("spawn child");
    let mut guard = ChildGuard(child);
    let pid = guard.0.id() as libc::pid_t;
    let stdout = guard.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(i) = line.find("@@") {
                if tx
                    .send((Instant::now(), line[i + 2..].to_string()))
                    .is_err()
                {
                    break;
                }
            }
        }
    });
    let start = Instant::now();
    let mut lines = Vec::new();
    let mut acks = 0u64;
    let mut merge_starts = 0u64;
    let mut merge_start_at = None;
    let mut merge_durations = Vec::new();
    let mut kill_at: Option<Instant> = match plan {
        KillPlan::AtTime(d) => Some(start + *d),
        _ => None,
    };
    let mut killed = false;
    let hard_deadline = start + Duration::from_secs(30);
    loop {
        let now = Instant::now();
        let wait = match kill_at {
            Some(t) => t.saturating_duration_since(now),
            None => hard_deadline.saturating_duration_since(now),
        };
        match rx.recv_timeout(wait) {
            Ok((at, line)) => {
                if line.starts_with("P ") || line.starts_with("D ") {
                    acks += 1;
                    match plan {
                        KillPlan::AfterAcks(n) if acks >= *n => kill_at = Some(Instant::now()),
                        KillPlan::AfterAcksSleep(n, d) if acks == *n => {
                            kill_at = Some(Instant::now() + *d)
                        }
                        _ => {}
                    }
                } else if line == "M start" {
                    merge_starts += 1;
                    merge_start_at = Some(at);
                    if let KillPlan::InMerge(n, d) = plan {
                        if merge_starts == *n {
                            kill_at = Some(at + *d);
                        }
                    }
                } else if line.starts_with("M end") {
                    if let Some(s) = merge_start_at.take() {
                        merge_durations.push(at - s);
                    }
                }
                lines.push(line);
                if kill_at.is_some_and(|t| Instant::now() >= t) {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if kill_at.is_none() {
                    panic!(
                        "child made no progress for 30 s; lines so far: {}",
                        lines.len()
                    );
                }
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break, // child exited by itself
        }
    }
    // SIGKILL (no-op error if it already exited; it stays a zombie until wait()).
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    if rc == 0 {
        killed = true;
    }
    // Drain everything the child managed to write before dying.
    for (_, line) in rx.iter() {
        lines.push(line);
    }
    reader.join().unwrap();
    let status = guard.0.wait().unwrap();
    std::mem::forget(guard);
    use std::os::unix::process::ExitStatusExt;
    if status.signal() != Some(libc::SIGKILL) {
        // The child ended on its own: only acceptable if it finished its run.
        let finished = lines.last().map(|l| l == "X").unwrap_or(false);
        assert!(
            finished && status.success(),
            "child exited by itself with {status:?} (not killed); stderr:\n{}",
            std::fs::read_to_string(stderr_path).unwrap_or_default()
        );
        killed = false;
    }
    RoundResult {
        lines,
        killed,
        merge_durations,
    }
}

fn parse3(rest: &str, line: &str) -> (u64, u64) {
    let mut it = rest.split(' ');
    let k = it
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("bad line {line:?}"));
    let s = it
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("bad line {line:?}"));
    (k, s)
}

#[test]
fn crash_kill9_recovery() {
    crash_rounds(false, 100);
}

#[test]
fn crash_kill9_recovery_write_map() {
    if !map_writes_here() {
        return;
    }
    crash_rounds(true, 60);
}

/// The two crash tests take turns: each forks children, and a child forked
/// while the other test holds its database's lock file open shares that
/// lock (flock belongs to the open file, which fork shares) until it
/// execs, so the other test's reopen could find its own directory locked.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn crash_rounds(write_map: bool, default_rounds: u64) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rounds: u64 = std::env::var("BITCASK_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_rounds);
    let seed: u64 = std::env::var("BITCASK_CRASH_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_0001);
    eprintln!(
        "crash test: {rounds} rounds, seed {seed} (BITCASK_CRASH_TEST_SEED / BITCASK_CRASH_ROUNDS)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let stderr_path = tmp.path().join("child.stderr");
    let mut rng = Rng::new(seed);
    // key -> seq of its live value, as the parent knows it
    let mut model: HashMap<u64, u64> = HashMap::new();
    let mut next_seq = 1u64;
    let mut merge_est = Duration::from_millis(3);
    let (mut interrupted_merges, mut inflight_puts_seen, mut inflight_puts_missing) = (0, 0, 0);
    let (mut torn_rounds, mut total_acks, mut completed_merges) = (0u64, 0u64, 0u64);
    let mut forced_tears = 0u64;
    let mut partial_merges = 0u64;
    let mut merges_cut_writing = 0u64;
    let started = Instant::now();

    for round in 0..rounds {
        let plan = match rng.below(10) {
            0..=2 => KillPlan::AfterAcks(rng.range(0, 400)),
            3..=4 => KillPlan::AfterAcksSleep(
                rng.range(1, 300),
                Duration::from_micros(rng.range(0, 2000)),
            ),
            5..=7 => {
                let d = Duration::from_micros(rng.below(merge_est.as_micros() as u64 + 1));
                KillPlan::InMerge(rng.range(1, 2), d)
            }
            _ => KillPlan::AtTime(Duration::from_millis(rng.range(0, 150))),
        };
        let res = run_child(
            &dir,
            rng.next_u64() >> 1,
            next_seq,
            &plan,
            &stderr_path,
            write_map,
        );
        for d in &res.merge_durations {
            merge_est = merge_est.max(*d);
        }

        // Replay the protocol: the acknowledged state and the single op in flight.
        let mut inflight: Option<InFlight> = None;
        let mut ready = false;
        for line in &res.lines {
            let ctx = || format!("round {round}: line {line:?} with in-flight {inflight:?}");
            if line == "R" {
                ready = true;
            } else if line == "X" {
            } else if line == "M start" {
                assert!(inflight.is_none(), "{}", ctx());
                inflight = Some(InFlight::Merge);
            } else if line.starts_with("M end") {
                assert_eq!(inflight, Some(InFlight::Merge), "{}", ctx());
                inflight = None;
                completed_merges += 1;
                partial_merges += (line == "M end partial") as u64;
            } else if let Some(rest) = line.strip_prefix("I P ") {
                assert!(inflight.is_none(), "{}", ctx());
                let (k, s) = parse3(rest, line);
                inflight = Some(InFlight::Put(k, s));
                next_seq = next_seq.max(s + 1);
            } else if let Some(rest) = line.strip_prefix("I D ") {
                assert!(inflight.is_none(), "{}", ctx());
                let (k, s) = parse3(rest, line);
                inflight = Some(InFlight::Del(k, s));
                next_seq = next_seq.max(s + 1);
            } else if let Some(rest) = line.strip_prefix("P ") {
                let (k, s) = parse3(rest, line);
                assert_eq!(inflight, Some(InFlight::Put(k, s)), "{}", ctx());
                model.insert(k, s);
                inflight = None;
                total_acks += 1;
            } else if let Some(rest) = line.strip_prefix("D ") {
                let (k, s) = parse3(rest, line);
                assert_eq!(inflight, Some(InFlight::Del(k, s)), "{}", ctx());
                model.remove(&k);
                inflight = None;
                total_acks += 1;
            } else {
                panic!("round {round}: unknown protocol line {line:?}");
            }
        }
        if !res.killed {
            assert!(inflight.is_none());
        }
        if inflight == Some(InFlight::Merge) {
            interrupted_merges += 1;
            // Evidence the kill hit a merge while it wrote: an output still
            // under its temporary name (`*.data.tmp`: only merge writes
            // those; hints, which the worker also writes, are not counted).
            let tmp = tmp_files(&dir);
            let cut = tmp
                .iter()
                .any(|p| p.to_string_lossy().ends_with(".data.tmp"));
            merges_cut_writing += cut as u64;
        }

        // Sometimes simulate a power cut in the middle of the in-flight write:
        // if its record is complete at the end of the newest file, cut it short.
        let mut torn_left = None;
        if let Some(InFlight::Put(k, _) | InFlight::Del(k, _)) = inflight {
            if rng.chance(40) {
                if let Some(left) = tear_inflight_record(&dir, k, inflight.unwrap(), &mut rng) {
                    torn_left = Some(left);
                    inflight = None; // the write is now known not to have happened
                    forced_tears += 1;
                }
            }
        }

        // Reopen (the kill must not leave the directory locked) and verify.
        let db = ok(
            Db::open(&dir, child_opts(write_map)),
            &format!("round {round}: reopen after kill"),
        );
        let st = db.stats();
        // Written through a map, the newest file ends in zeros allocated
        // ahead of its records, which the reopen cuts and counts apart.
        let dropped = match write_map {
            true => st.recovered_bytes_dropped - st.recovered_zero_bytes,
            false => st.recovered_bytes_dropped,
        };
        assert_eq!(
            st.repaired_records_skipped, 0,
            "round {round}: records skipped without repair"
        );
        if let Some(left) = torn_left {
            assert_eq!(
                st.recovered_bytes_dropped, left,
                "round {round}: recovered_bytes_dropped after tearing the in-flight record"
            );
        }
        // At most the one in-flight record (or a torn 16-byte file header) may be cut off:
        // part of it, or, written through a map, the whole of it but its CRC (which is
        // stored last).
        let whole = |len: u64| match write_map {
            true => len + 1,
            false => len,
        };
        let limit = match inflight {
            Some(InFlight::Put(k, s)) => {
                whole(RECORD_HEADER + 7 + make_value(k, s).len() as u64).max(FILE_HEADER)
            }
            Some(InFlight::Del(..)) => whole(RECORD_HEADER + 7).max(FILE_HEADER),
            Some(InFlight::Merge) => FILE_HEADER,
            None if !ready => FILE_HEADER, // killed inside open()
            None if torn_left.is_some() => u64::MAX, // checked exactly above
            None => 1,                     // killed between operations: nothing is torn
        };
        assert!(
            dropped < limit,
            "round {round}: recovered_bytes_dropped = {dropped}, must be < {limit} (in flight: {inflight:?}, ready: {ready})"
        );
        torn_rounds += (dropped > 0) as u64;
        assert!(
            tmp_files(&dir).is_empty(),
            "round {round}: .tmp files survive open: {:?}",
            tmp_files(&dir)
        );

        for k in 0..NKEYS {
            let got = ok(db.get(&key(k)), &format!("round {round}: get {k}"));
            let got_seq = got.as_ref().map(|v| {
                let (kk, s) = decode_value(v).unwrap_or_else(|| {
                    panic!(
                        "round {round}: key {k}: corrupt value ({} bytes): {:?}",
                        v.len(),
                        String::from_utf8_lossy(&v[..v.len().min(40)])
                    )
                });
                assert_eq!(
                    kk, k,
                    "round {round}: key {k} holds the value of key {kk} (seq {s})"
                );
                s
            });
            let acked = model.get(&k).copied();
            let alt = match inflight {
                Some(InFlight::Put(ik, is)) if ik == k => Some(Some(is)),
                Some(InFlight::Del(ik, _)) if ik == k => Some(None),
                _ => None,
            };
            if let (Some(a), true) = (alt, ik_is_put(inflight)) {
                inflight_puts_seen += 1;
                inflight_puts_missing += (got_seq != a) as u64;
            }
            assert!(
                got_seq == acked || Some(got_seq) == alt,
                "round {round}: key {k}: got seq {got_seq:?}, last acknowledged {acked:?}, in flight {inflight:?}"
            );
            assert_eq!(
                ok(db.contains(&key(k)), "contains"),
                got_seq.is_some(),
                "round {round}: contains({k})"
            );
            // Resolve the in-flight ambiguity with what is actually there.
            match got_seq {
                Some(s) => model.insert(k, s),
                None => model.remove(&k),
            };
        }
        assert_eq!(
            db.stats().live_keys,
            model.len() as u64,
            "round {round}: live_keys"
        );
        ok(db.close(), "parent close");
        // The repair of the tail (if any) is durable: a second open drops nothing.
        if st.recovered_bytes_dropped > 0 {
            let db = ok(Db::open(&dir, child_opts(write_map)), "second reopen");
            assert_eq!(
                db.stats().recovered_bytes_dropped,
                0,
                "round {round}: second open dropped bytes again"
            );
            ok(db.close(), "close");
        }
    }
    eprintln!(
        "crash test: {rounds} rounds in {:?}; {total_acks} acknowledged ops, {completed_merges} merges completed ({partial_merges} partial), \
         {interrupted_merges} merges interrupted ({merges_cut_writing} while writing), {torn_rounds} rounds with a torn tail ({forced_tears} torn on purpose), \
         in-flight puts: {inflight_puts_seen} ({inflight_puts_missing} not applied), live keys {}",
        started.elapsed(),
        model.len()
    );
    assert!(
        total_acks > 1000,
        "too little work was done ({total_acks} acknowledged ops)"
    );
    assert!(completed_merges > 0, "no merge ever completed");
    assert!(partial_merges > 0, "merge_if_needed never merged anything");
    assert!(
        interrupted_merges > 0,
        "no merge was interrupted by the kill"
    );
    assert!(
        merges_cut_writing > 0,
        "no kill landed while a merge was writing its outputs"
    );
    // (Without fsyncs a put takes about a microsecond: kills seldom find
    // one in flight, and then mostly before its record is whole.)
    assert!(
        write_map || forced_tears > 0,
        "no in-flight record was torn on purpose"
    );
}

/// If the newest data file ends with the complete record of the in-flight
/// write, truncates it to a random point inside that record and returns the
/// number of bytes of it left in the file.
fn tear_inflight_record(dir: &Path, k: u64, op: InFlight, rng: &mut Rng) -> Option<u64> {
    let newest = data_files(dir).pop()?;
    let mut buf = std::fs::read(&newest).ok()?;
    // Zeros after the last record are a preallocation (write map): the
    // record ends before them. (Records here never end in a zero byte.)
    buf.truncate(buf.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1));
    let kb = key(k);
    let (value, tomb) = match op {
        InFlight::Put(k, s) => (make_value(k, s), false),
        _ => (Vec::new(), true),
    };
    let rec_len = RECORD_HEADER as usize + kb.len() + value.len();
    if buf.len() < FILE_HEADER as usize + rec_len {
        return None;
    }
    let start = buf.len() - rec_len;
    let rec = &buf[start..];
    let matches = le_u16(&rec[12..14]) as usize == kb.len()
        && le_u32(&rec[14..18]) as usize == value.len()
        && (rec[18] & 1 == 1) == tomb
        && rec[19..19 + kb.len()] == kb[..]
        && rec[19 + kb.len()..] == value[..]
        && le_u32(&rec[0..4]) == crc32fast::hash(&rec[4..]);
    if !matches {
        return None;
    }
    let left = rng.range(1, rec_len as u64 - 1);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap();
    f.set_len(start as u64 + left).unwrap();
    Some(left)
}

fn ik_is_put(f: Option<InFlight>) -> bool {
    matches!(f, Some(InFlight::Put(..)))
}
