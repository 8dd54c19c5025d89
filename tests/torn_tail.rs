//! Torn-tail recovery and corruption detection against the documented
//! on-disk layout (API.md): 16-byte file header, 19-byte record header.

mod common;

use bitcask::{Db, Options, Status, SyncMode};
use common::*;
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

const CORRUPTION: i32 = Status::Corruption as i32;

type Model = HashMap<Vec<u8>, Vec<u8>>;

/// A write: Some(value) = put, None = delete.
type W = (Vec<u8>, Option<Vec<u8>>);

fn apply(model: &mut Model, ws: &[W]) {
    for (k, v) in ws {
        match v {
            Some(v) => {
                model.insert(k.clone(), v.clone());
            }
            None => {
                model.remove(k);
            }
        }
    }
}

/// Creates a database in `dir` holding `ws` written in order, then closes it.
fn build(dir: &Path, max_file_size: u64, ws: &[W]) {
    let db = open(dir, &opts(max_file_size, SyncMode::None));
    for (k, v) in ws {
        match v {
            Some(v) => ok(db.put(k, v), "build put"),
            None => assert!(
                ok(db.delete(k), "build delete"),
                "build: delete of an absent key"
            ),
        }
    }
    ok(db.close(), "build close");
}

/// The state `ws`, applied in order, leaves.
fn model_of(ws: &[W]) -> Model {
    let mut model = Model::new();
    apply(&mut model, ws);
    model
}

fn verify(db: &Db, model: &Model, all_keys: &[Vec<u8>], ctx: &str) {
    for k in all_keys {
        let got = ok(db.get(k), ctx);
        assert_eq!(
            got.as_ref(),
            model.get(k),
            "{ctx}: key {:?}",
            String::from_utf8_lossy(k)
        );
    }
    assert_eq!(db.stats().live_keys, model.len() as u64, "{ctx}: live_keys");
}

/// `model` and `keys` (as for `verify`) after one more put of `key`.
fn plus_put(model: &Model, keys: &[Vec<u8>], key: &[u8], value: &[u8]) -> (Model, Vec<Vec<u8>>) {
    let mut model = model.clone();
    model.insert(key.to_vec(), value.to_vec());
    let mut keys = keys.to_vec();
    keys.push(key.to_vec());
    (model, keys)
}

fn all_keys(ws: &[W]) -> Vec<Vec<u8>> {
    let mut ks: Vec<Vec<u8>> = ws.iter().map(|(k, _)| k.clone()).collect();
    ks.sort();
    ks.dedup();
    ks.push(b"never-written".to_vec());
    ks
}

fn val(i: usize, len: usize) -> Vec<u8> {
    let mut r = Rng::new(i as u64 * 7919 + len as u64);
    r.bytes(len)
}

/// Truncates the newest data file at every offset inside its last record
/// (the last write of `ws`) and checks recovery.
fn torn_tail_scenario(name: &str, max_file_size: u64, ws: Vec<W>) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let pristine = tmp.path().join("pristine");
    build(&pristine, max_file_size, &ws);

    let keys = all_keys(&ws);
    let before = model_of(&ws[..ws.len() - 1]);
    let after = model_of(&ws);

    let files = data_files(&pristine);
    assert!(!files.is_empty());
    let newest = files.last().unwrap().clone();
    let newest_name = file_name(&newest);
    let file_len = fs::metadata(&newest).unwrap().len();
    let (lk, lv) = &ws[ws.len() - 1];
    let rec_len = RECORD_HEADER + lk.len() as u64 + lv.as_ref().map_or(0, |v| v.len() as u64);
    let last_start = file_len - rec_len;
    // The layout must match the contract: the last record is our last write.
    let recs = parse_data_file(&newest);
    let last = recs.last().expect("newest data file has no record");
    assert_eq!(last.offset, last_start, "{name}: last record offset");
    assert_eq!(&last.key, lk, "{name}: last record key");
    assert_eq!(
        last.tombstone(),
        lv.is_none(),
        "{name}: last record tombstone flag"
    );
    assert!(last.crc_ok, "{name}: last record CRC");

    for cut in last_start..=file_len {
        let ctx = format!(
            "{name}: {newest_name} truncated to {cut} (last record {last_start}..{file_len})"
        );
        let dir = tmp.path().join(format!("cut{cut}"));
        copy_dir(&pristine, &dir);
        // A crash in the last append leaves the newest file unsealed, with
        // no hint: the build's close wrote one, which vouches for the whole
        // file and would make the cut a loss, not a tear.
        fs::remove_file(dir.join(newest_name.replace(".data", ".hint"))).unwrap();
        cut_file(&dir.join(&newest_name), cut);

        let expect_dropped = if cut == file_len { 0 } else { cut - last_start };
        let model = if cut == file_len { &after } else { &before };
        // A read-only open counts the torn tail and changes nothing.
        let untouched = dir_bytes(&dir);
        let ro = bitcask::Options {
            read_only: true,
            ..opts(max_file_size, SyncMode::None)
        };
        let db = ok(Db::open(&dir, ro), &ctx);
        assert_eq!(
            db.stats().recovered_bytes_dropped,
            expect_dropped,
            "{ctx}: recovered_bytes_dropped, read-only"
        );
        verify(&db, model, &keys, &format!("{ctx} (read-only)"));
        drop(db);
        assert!(
            dir_bytes(&dir) == untouched,
            "{ctx}: a read-only open changed the directory"
        );
        let db = ok(Db::open(&dir, opts(max_file_size, SyncMode::None)), &ctx);
        assert_eq!(
            db.stats().recovered_bytes_dropped,
            expect_dropped,
            "{ctx}: recovered_bytes_dropped"
        );
        assert_eq!(
            db.stats().repaired_records_skipped,
            0,
            "{ctx}: repaired_records_skipped"
        );
        verify(&db, model, &keys, &ctx);
        ok(db.close(), &ctx);

        // The torn bytes are gone for good.
        let whole = if cut == file_len {
            file_len
        } else {
            last_start
        };
        match fs::metadata(dir.join(&newest_name)) {
            Ok(m) => assert_eq!(
                m.len(),
                whole,
                "{ctx}: file length after open+close (torn bytes must be cut off)"
            ),
            // Removing a file left with no record at all is acceptable.
            Err(e) => assert_eq!(
                whole, FILE_HEADER,
                "{ctx}: {newest_name} vanished after open+close: {e}"
            ),
        }
        let db = ok(Db::open(&dir, opts(max_file_size, SyncMode::None)), &ctx);
        assert_eq!(
            db.stats().recovered_bytes_dropped,
            0,
            "{ctx}: second open dropped bytes again"
        );
        verify(&db, model, &keys, &format!("{ctx} (second open)"));
        // And the database is writable again at the end of the log.
        ok(db.put(b"after-recovery", b"ok"), &ctx);
        ok(db.close(), &ctx);
        let db = ok(Db::open(&dir, opts(max_file_size, SyncMode::None)), &ctx);
        assert_eq!(
            ok(db.get(b"after-recovery"), &ctx).as_deref(),
            Some(&b"ok"[..]),
            "{ctx}: write after recovery"
        );
        assert_eq!(
            db.stats().recovered_bytes_dropped,
            0,
            "{ctx}: third open dropped bytes"
        );
        let (m2, keys2) = plus_put(model, &keys, b"after-recovery", b"ok");
        verify(&db, &m2, &keys2, &format!("{ctx} (third open)"));
        drop(db);
        fs::remove_dir_all(&dir).unwrap();
    }
    recs.len()
}

fn many_writes(n: usize) -> Vec<W> {
    (0..n)
        .map(|i| {
            (
                format!("key-{i:03}").into_bytes(),
                Some(val(i, 20 + (i * 13) % 90)),
            )
        })
        .collect()
}

#[test]
fn torn_tail_fresh_key_single_file() {
    let mut ws = many_writes(50);
    ws.push((b"the-last-key".to_vec(), Some(val(999, 40))));
    torn_tail_scenario("fresh key, one file", 256 << 20, ws);
}

#[test]
fn torn_tail_overwrite_many_files() {
    let mut ws = many_writes(120);
    ws.push((b"key-007".to_vec(), Some(val(1000, 33))));
    torn_tail_scenario("overwrite, many files", 4096, ws);
}

#[test]
fn torn_tail_tombstone() {
    let mut ws = many_writes(60);
    ws.push((b"key-011".to_vec(), None));
    ws.push((b"key-012".to_vec(), None));
    torn_tail_scenario("tombstone", 4096, ws);
}

#[test]
fn torn_tail_empty_value_with_binary_key() {
    let mut ws = many_writes(30);
    ws.push((vec![0u8, 1, 0, 2], Some(val(5, 10))));
    ws.push((vec![0u8, 1, 0, 2], Some(Vec::new())));
    torn_tail_scenario("empty value, binary key", 256 << 20, ws);
}

/// The newest file holds a single record: truncating leaves only the file header.
#[test]
fn torn_tail_only_record_in_newest_file() {
    let tmp = tempfile::tempdir().unwrap();
    let probe = tmp.path().join("probe");
    let mut ws = many_writes(40);
    // Find (with SyncMode::Always, looking at the files) the first write
    // that starts a new file. (Through the write buffer: a file written
    // through its map runs on in zeros until it is sealed. Files rotate at
    // the same record either way.)
    let buffered = Options {
        write_map: false,
        ..opts(4096, SyncMode::Always)
    };
    let db = open(&probe, &buffered);
    for (k, v) in &ws {
        ok(db.put(k, v.as_ref().unwrap()), "probe put");
    }
    for i in 0.. {
        assert!(
            i < 100,
            "no rotation after 100 writes of 300 bytes with max_file_size 4096"
        );
        let w: W = (format!("extra-{i}").into_bytes(), Some(val(5000 + i, 300)));
        ok(db.put(&w.0, w.1.as_ref().unwrap()), "probe put");
        ws.push(w);
        let recs = parse_data_file(data_files(&probe).last().unwrap());
        if recs.len() == 1 {
            break;
        }
    }
    drop(db);
    let n = torn_tail_scenario("single record in newest file", 4096, ws);
    assert_eq!(
        n, 1,
        "the rebuilt newest file should hold exactly one record"
    );
}

/// A database of several 4 KiB files, with what a test of a new file needs.
struct Pristine {
    dir: PathBuf,
    model: Model,
    /// The model without the last write (the newest file's last record).
    before_last: Model,
    keys: Vec<Vec<u8>>,
    /// The id a next data file would get.
    next_id: u64,
    /// A valid data-file header.
    header: Vec<u8>,
}

fn pristine(tmp: &Path) -> Pristine {
    let dir = tmp.join("pristine");
    let ws = many_writes(60);
    build(&dir, 4096, &ws);
    let files = data_files(&dir);
    let newest = file_name(files.last().unwrap());
    Pristine {
        model: model_of(&ws),
        before_last: model_of(&ws[..ws.len() - 1]),
        keys: all_keys(&ws),
        next_id: u64::from_str_radix(&newest[..16], 16).unwrap() + 1,
        header: fs::read(files.last().unwrap()).unwrap()[..16].to_vec(),
        dir,
    }
}

impl Pristine {
    /// The data file `next_id` in a copy of the pristine database.
    fn new_file(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{:016x}.data", self.next_id))
    }

    /// Copies the pristine database to `root/label` and adds data file
    /// `next_id` holding `body`; `older`: with a newer file (a header only)
    /// after it; `hint`: with a hint beside it, as if it had been sealed.
    fn copy_with_file(
        &self,
        root: &Path,
        label: &str,
        body: &[u8],
        older: bool,
        hint: bool,
    ) -> PathBuf {
        let dir = root.join(label);
        copy_dir(&self.dir, &dir);
        fs::write(self.new_file(&dir), body).unwrap();
        if older {
            fs::write(
                dir.join(format!("{:016x}.data", self.next_id + 1)),
                &self.header,
            )
            .unwrap();
        }
        if hint {
            give_hint(&dir, self.next_id);
        }
        dir
    }
}

/// Puts a copy of one of the directory's hints beside data file `id`, as
/// if that file had been sealed.
fn give_hint(dir: &Path, id: u64) {
    let some_hint = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "hint"))
        .expect("the pristine database has hints");
    fs::copy(&some_hint, dir.join(format!("{id:016x}.hint"))).unwrap();
}

/// Opens `dir`, which holds the pristine data plus one torn file of
/// `dropped` bytes: the torn bytes are counted and every key is intact.
fn open_dropping(dir: &Path, p: &Pristine, dropped: u64, ctx: &str) -> Db {
    let db = ok(Db::open(dir, opts(4096, SyncMode::None)), ctx);
    assert_eq!(
        db.stats().recovered_bytes_dropped,
        dropped,
        "{ctx}: recovered_bytes_dropped"
    );
    verify(&db, &p.model, &p.keys, ctx);
    db
}

/// A crash while a new data file was being created leaves a newest file
/// shorter than its 16-byte header: open drops it (counting its bytes) and
/// keeps every record of the older files.
#[test]
fn torn_file_creation() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pristine(tmp.path());
    for len in 0..16usize {
        let ctx = format!("partial header of {len} bytes in a new newest file");
        let dir = p.copy_with_file(
            tmp.path(),
            &format!("hdr{len}"),
            &p.header[..len],
            false,
            false,
        );
        let db = open_dropping(&dir, &p, len as u64, &ctx);
        ok(db.put(b"after", b"x"), &ctx);
        ok(db.close(), &ctx);
        let db = ok(Db::open(&dir, opts(4096, SyncMode::None)), &ctx);
        assert_eq!(db.stats().recovered_bytes_dropped, 0, "{ctx}: second open");
        let (m2, k2) = plus_put(&p.model, &p.keys, b"after", b"x");
        verify(&db, &m2, &k2, &format!("{ctx} (second open)"));
        for f in data_files(&dir) {
            parse_data_file(&f); // every data file left is well-formed
        }
    }
}

/// A power loss can also leave an *older* file without its header: a file
/// retired but not yet sealed (BC_SYNC_NONE), whose name a later directory
/// fsync made durable before its bytes. It has no hint (hints follow the
/// seal's fsync), so open drops it like a torn newest file; the same file
/// with a hint beside it was sealed, and its loss is corruption.
#[test]
fn torn_creation_of_a_never_sealed_older_file() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pristine(tmp.path());
    for len in 0..16usize {
        let ctx = format!("an older file without a hint, {len} bytes of its header");
        let dir = p.copy_with_file(
            tmp.path(),
            &format!("unsealed{len}"),
            &p.header[..len],
            true,
            false,
        );
        let db = open_dropping(&dir, &p, len as u64, &ctx);
        ok(db.close(), &ctx);
        assert!(!p.new_file(&dir).exists(), "{ctx}: not removed");
    }

    let dir = p.copy_with_file(tmp.path(), "sealed", &[], true, true);
    corruption_naming(
        Db::open(&dir, opts(4096, SyncMode::None)),
        &file_name(&p.new_file(&dir)),
        "an empty older file with a hint beside it",
    );
}

/// A power loss can keep a new file's size but not its data: a file of
/// zero bytes throughout. Like one shorter than its header, it is a torn
/// creation when no hint says it was synced (newest or older): dropped, its
/// bytes counted. Zero header bytes with records behind them are not what a
/// power loss leaves (nothing of the file was synced, so nothing of it is
/// kept in order): that is corruption, and so is any file without a header
/// that has a hint, newest included (hints are written after the fsync).
#[test]
fn zero_file_is_a_torn_creation() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pristine(tmp.path());
    let make = |label: &str, body: &[u8], older: bool, hint: bool| {
        p.copy_with_file(tmp.path(), label, body, older, hint)
    };
    for len in [16usize, 4096, 70000] {
        for older in [false, true] {
            let ctx = format!(
                "{len} zero bytes, {}",
                if older { "older file" } else { "newest file" }
            );
            let dir = make(&format!("zero-{len}-{older}"), &vec![0; len], older, false);
            let db = open_dropping(&dir, &p, len as u64, &ctx);
            ok(db.close(), &ctx);
            assert!(!p.new_file(&dir).exists(), "{ctx}: not removed");
        }
    }

    let mut zero_header = fs::read(data_files(&p.dir)[0].clone()).unwrap();
    zero_header[..16].fill(0);
    let corrupt = [
        (
            "records behind a zero header, newest",
            make("zh-newest", &zero_header, false, false),
        ),
        (
            "records behind a zero header, older",
            make("zh-older", &zero_header, true, false),
        ),
        (
            "zeros with a hint, newest",
            make("zero-hint-newest", &[0; 4096], false, true),
        ),
        (
            "zeros with a hint, older",
            make("zero-hint-older", &[0; 4096], true, true),
        ),
        (
            "8 bytes with a hint, newest",
            make("short-hint-newest", &p.header[..8], false, true),
        ),
    ];
    for (ctx, dir) in &corrupt {
        corruption_naming(
            Db::open(dir, opts(4096, SyncMode::None)),
            &file_name(&p.new_file(dir)),
            ctx,
        );
        // Read-only repair skips the file and changes nothing.
        let before = dir_bytes(dir);
        let mut o = opts(4096, SyncMode::None);
        o.repair = true;
        o.read_only = true;
        let db = ok(Db::open(dir, o), ctx);
        assert_eq!(
            db.stats().repaired_records_skipped,
            1,
            "{ctx}: read-only repair"
        );
        verify(&db, &p.model, &p.keys, ctx);
        ok(db.close(), ctx);
        assert!(
            dir_bytes(dir) == before,
            "{ctx}: read-only repair changed the directory"
        );
    }
}

/// The same for a record cut short at the end of an older file: without
/// its hint (never sealed) it is a torn tail and dropped; with its hint the
/// file was sealed, so the cut is corruption.
#[test]
fn torn_tail_of_a_never_sealed_older_file() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pristine(tmp.path());
    let make = |label: &str, keep_hint: bool| {
        let dir = tmp.path().join(label);
        copy_dir(&p.dir, &dir);
        let files = data_files(&dir);
        let older = files.last().unwrap().clone();
        let last = parse_data_file(&older).pop().expect("records");
        let cut_to = last.offset + last.len() - 3;
        cut_file(&older, cut_to);
        let hint = older.with_extension("hint");
        assert!(hint.exists(), "the pristine database has hints");
        if !keep_hint {
            fs::remove_file(&hint).unwrap();
        }
        fs::write(p.new_file(&dir), &p.header).unwrap();
        (dir, cut_to - last.offset, older)
    };

    // The cut record is the last write: without it, the data is as before it.
    let (dir, dropped, _) = make("unsealed", false);
    let ctx = "cut, no hint";
    let db = ok(Db::open(&dir, opts(4096, SyncMode::None)), ctx);
    assert_eq!(db.stats().recovered_bytes_dropped, dropped, "{ctx}");
    verify(&db, &p.before_last, &p.keys, ctx);
    ok(db.close(), ctx);
    let db = ok(Db::open(&dir, opts(4096, SyncMode::None)), ctx);
    assert_eq!(db.stats().recovered_bytes_dropped, 0, "{ctx}: second open");
    verify(&db, &p.before_last, &p.keys, ctx);
    ok(db.close(), ctx);

    let (dir, _, older) = make("sealed", true);
    corruption_naming(
        Db::open(&dir, opts(4096, SyncMode::None)),
        &file_name(&older),
        "a cut older file with its hint beside it",
    );
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Every data file follows the documented layout byte for byte, and records
/// appear in write order.
#[test]
fn on_disk_layout_matches_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let mut ws = many_writes(200);
    ws.push((b"key-003".to_vec(), None));
    ws.push((vec![0u8], Some(Vec::new())));
    ws.push((b"key-004".to_vec(), Some(val(77, 250))));
    let t0 = unix_now();
    build(&dir, 4096, &ws);
    let t1 = unix_now();
    let files = data_files(&dir);
    assert!(
        files.len() > 3,
        "4096-byte files should have rotated: {files:?}"
    );
    let mut prev_name = String::new();
    let mut recs = Vec::new();
    for f in &files {
        let n = file_name(f);
        assert_eq!(
            n.len(),
            16 + 5,
            "data file name {n:?} is not {{id:016x}}.data"
        );
        assert!(
            n[..16]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{n}"
        );
        assert!(n > prev_name);
        prev_name = n;
        recs.extend(parse_data_file(f));
    }
    // Possibly empty (header-only) active file at the end is fine; records must match writes.
    assert_eq!(recs.len(), ws.len(), "one record per write");
    for (i, (r, (k, v))) in recs.iter().zip(&ws).enumerate() {
        assert!(r.crc_ok, "record {i}: CRC");
        assert_eq!(&r.key, k, "record {i}: key");
        assert_eq!(r.tombstone(), v.is_none(), "record {i}: tombstone flag");
        assert_eq!(r.flags & !1, 0, "record {i}: unknown flag bits");
        assert_eq!(
            &r.value,
            v.as_ref().unwrap_or(&Vec::new()),
            "record {i}: value"
        );
        assert_eq!(r.expiry, 0, "record {i}: expiry");
        assert!(
            (t0 as u32 - 1..=t1 as u32 + 1).contains(&r.timestamp),
            "record {i}: timestamp {}",
            r.timestamp
        );
    }
}

// ---------------------------------------------------------------------------
// Corruption in the middle of the log.

struct Corrupted {
    tmp: tempfile::TempDir,
    pristine: PathBuf,
    ws: Vec<W>,
}

fn corrupted_fixture() -> Corrupted {
    let tmp = tempfile::tempdir().unwrap();
    let pristine = tmp.path().join("pristine");
    // Unique keys, so a skipped record makes exactly its key disappear.
    let ws: Vec<W> = (0..100)
        .map(|i| (format!("uniq-{i:03}").into_bytes(), Some(val(i, 100))))
        .collect();
    build(&pristine, 4096, &ws);
    assert!(data_files(&pristine).len() >= 3);
    Corrupted { tmp, pristine, ws }
}

/// Whether the engine's optional `*.hint` files (one per sealed data file,
/// letting open skip reading values) are kept in the damaged copy.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Hints {
    /// Deleted: open must scan the data files (the documented fallback).
    Removed,
    /// Kept as the engine left them.
    Kept,
}

fn remove_hints(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "hint") {
            fs::remove_file(p).unwrap();
        }
    }
}

/// Copies the fixture into `fx.tmp/<name>` and rewrites the copy's data file
/// `fname` with `damage` applied to its bytes; returns the copy's directory.
fn damaged_copy(
    fx: &Corrupted,
    name: &str,
    fname: &str,
    damage: impl FnOnce(&mut [u8]),
) -> PathBuf {
    let dir = fx.tmp.path().join(name);
    copy_dir(&fx.pristine, &dir);
    patch(&dir.join(fname), damage);
    dir
}

/// `r` is a Corruption error whose message names the file `fname`; returns
/// the message.
#[track_caller]
fn corruption_naming<T>(r: bitcask::Result<T>, fname: &str, ctx: &str) -> String {
    let (status, msg) = err(r, ctx);
    assert_eq!(status, CORRUPTION, "{ctx}: status (message {msg:?})");
    assert!(
        msg.contains(fname),
        "{ctx}: message {msg:?} does not name {fname}"
    );
    msg
}

/// Copies the fixture and flips one byte at `rec.offset + delta` of the
/// chosen file. Returns (dir, file name, the damaged record, context).
fn flip_copy(
    fx: &Corrupted,
    file_idx: usize,
    rec_idx: usize,
    delta: u64,
    tag: &str,
    hints: Hints,
) -> (PathBuf, String, RawRecord, String) {
    let files = data_files(&fx.pristine);
    let fname = file_name(&files[file_idx]);
    let recs = parse_data_file(&files[file_idx]);
    assert!(
        rec_idx + 1 < recs.len(),
        "need a record followed by valid records"
    );
    let rec = recs[rec_idx].clone();
    let dir = damaged_copy(fx, &format!("{tag}-{hints:?}"), &fname, |bytes| {
        bytes[(rec.offset + delta) as usize] ^= 0x5a
    });
    if hints == Hints::Removed {
        remove_hints(&dir);
    }
    let ctx = format!(
        "{tag}: {fname} record #{rec_idx} at offset {} byte +{delta} flipped, hint files {hints:?}",
        rec.offset
    );
    (dir, fname, rec, ctx)
}

/// Flips one byte inside a record followed by valid records: open must fail
/// with Corruption naming the file and the record offset; open with repair
/// succeeds, skips it and keeps every other record.
///
/// With the hint files kept, docs/FORMAT.md ("What a hint does not check:
/// values") lets open succeed; then the damage must surface, exactly, at the
/// get of that key and at merge (which deletes nothing).
fn check_flip(
    fx: &Corrupted,
    file_idx: usize,
    rec_idx: usize,
    delta: u64,
    tag: &str,
    hints: Hints,
) {
    let (dir, fname, rec, ctx) = flip_copy(fx, file_idx, rec_idx, delta, tag, hints);

    let opened = Db::open(&dir, opts(4096, SyncMode::None));
    if hints == Hints::Kept {
        // Open loads the keydir from the valid hints and reads no record.
        let db = ok(opened, &format!("{ctx}: open with the hints kept"));
        damage_found_after_open(fx, db, &dir, &fname, &rec, &ctx);
        check_repair(fx, &dir, &rec, &ctx);
        return;
    }
    let msg = corruption_naming(opened, &fname, &ctx);
    assert!(
        mentions_offset(&msg, rec.offset),
        "{ctx}: message {msg:?} does not give the record offset {}",
        rec.offset
    );
    // Read-only opens must not accept it either.
    let ro = bitcask::Options {
        read_only: true,
        ..opts(4096, SyncMode::None)
    };
    let (status, _) = err(Db::open(&dir, ro), &format!("{ctx} (read-only)"));
    assert_eq!(status, CORRUPTION, "{ctx}: read-only open status");

    check_repair(fx, &dir, &rec, &ctx);
}

/// The database opened despite the damage (hint files): get of the damaged
/// key is Corruption naming the file and offset, every other key is exact,
/// and merge fails with Corruption without deleting or changing any file.
fn damage_found_after_open(
    fx: &Corrupted,
    db: Db,
    dir: &Path,
    fname: &str,
    rec: &RawRecord,
    ctx: &str,
) {
    let model = model_of(&fx.ws);
    for k in all_keys(&fx.ws) {
        let r = db.get(&k);
        if k == rec.key {
            let msg =
                corruption_naming(r, fname, &format!("{ctx}: get of the damaged record's key"));
            assert!(
                mentions_offset(&msg, rec.offset),
                "{ctx}: get message {msg:?} does not give the record offset {}",
                rec.offset
            );
            assert!(
                ok(db.contains(&k), ctx),
                "{ctx}: contains() of the damaged key"
            );
        } else {
            assert_eq!(
                ok(r, ctx).as_ref(),
                model.get(&k),
                "{ctx}: key {:?}",
                String::from_utf8_lossy(&k)
            );
        }
    }
    let snapshot = |d: &Path| -> Vec<(String, Vec<u8>)> {
        data_files(d)
            .iter()
            .map(|p| (file_name(p), fs::read(p).unwrap()))
            .collect()
    };
    // Give the damaged file a dead record (rewrite another of its keys with
    // the same value), so that merge has to read it.
    let other = parse_data_file(&dir.join(fname))
        .into_iter()
        .find(|r| r.crc_ok && r.key != rec.key)
        .expect("another record in the damaged file");
    ok(db.put(&other.key, &other.value), ctx);
    ok(db.sync(), ctx);
    let before = snapshot(dir);
    corruption_naming(db.merge(), fname, &format!("{ctx}: merge over the damage"));
    let after = snapshot(dir);
    // (The merge sealed the active file first: written through its map,
    // the file was cut to its records, which drops preallocated zeros.)
    let sealed = |was: &[u8], now: &[u8]| {
        now.len() <= was.len() && was.starts_with(now) && was[now.len()..].iter().all(|&b| b == 0)
    };
    for (name, bytes) in &before {
        let now = after.iter().find(|(n, _)| n == name);
        assert!(
            now.is_some_and(|(_, b)| sealed(bytes, b)),
            "{ctx}: the failed merge deleted or changed {name}"
        );
    }
    // Nothing was lost by the failed merge.
    for k in all_keys(&fx.ws) {
        if k != rec.key {
            assert_eq!(
                ok(db.get(&k), ctx).as_ref(),
                model.get(&k),
                "{ctx}: after the failed merge"
            );
        }
    }
    drop(db);
}

/// open with repair: succeeds, skips the damaged record, keeps every other
/// one, stays writable, and a plain open afterwards sees the same data.
fn check_repair(fx: &Corrupted, dir: &Path, rec: &RawRecord, ctx: &str) {
    let ctx = ctx.to_string();
    let rep = bitcask::Options {
        repair: true,
        ..opts(4096, SyncMode::None)
    };
    let db = ok(Db::open(dir, rep), &format!("{ctx}: open with repair"));
    let st = db.stats();
    assert!(
        st.repaired_records_skipped >= 1,
        "{ctx}: repaired_records_skipped = {}",
        st.repaired_records_skipped
    );
    let mut model = model_of(&fx.ws);
    model.remove(&rec.key);
    verify(
        &db,
        &model,
        &all_keys(&fx.ws),
        &format!("{ctx} (after repair)"),
    );
    // Still a working database.
    ok(db.put(b"post-repair", b"1"), &ctx);
    assert_eq!(ok(db.get(b"post-repair"), &ctx).as_deref(), Some(&b"1"[..]));
    ok(db.close(), &ctx);
    // The repair is durable: a plain open now succeeds and sees the same data.
    let db = ok(
        Db::open(dir, opts(4096, SyncMode::None)),
        &format!("{ctx}: plain open after repair"),
    );
    let (model, keys) = plus_put(&model, &all_keys(&fx.ws), b"post-repair", b"1");
    verify(
        &db,
        &model,
        &keys,
        &format!("{ctx} (plain open after repair)"),
    );
}

fn older_value_byte(hints: Hints) {
    let fx = corrupted_fixture();
    let recs = parse_data_file(&data_files(&fx.pristine)[0]);
    let mid = recs.len() / 2;
    let delta = RECORD_HEADER + recs[mid].key.len() as u64 + 50;
    check_flip(&fx, 0, mid, delta, "old-value", hints);
}

fn older_header_bytes(hints: Hints) {
    let fx = corrupted_fixture();
    let recs = parse_data_file(&data_files(&fx.pristine)[1]);
    let mid = recs.len() / 2;
    check_flip(&fx, 1, mid, 1, "old-crc", hints); // inside the CRC field
    check_flip(&fx, 1, mid - 1, 5, "old-timestamp", hints); // inside the timestamp
    check_flip(&fx, 1, mid + 1, RECORD_HEADER + 2, "old-key", hints); // inside the key
}

fn newest_file(hints: Hints) {
    let fx = corrupted_fixture();
    let files = data_files(&fx.pristine);
    let last = files.len() - 1;
    let recs = parse_data_file(&files[last]);
    assert!(
        recs.len() >= 3,
        "newest file needs >= 3 records, has {}",
        recs.len()
    );
    let mid = (recs.len() - 1) / 2;
    let delta = RECORD_HEADER + recs[mid].key.len() as u64 + 10;
    check_flip(&fx, last, mid, delta, "newest-value", hints);
    check_flip(&fx, last, 0, 6, "newest-first-record", hints);
}

#[test]
fn corruption_in_older_file_value_byte() {
    older_value_byte(Hints::Removed);
}

#[test]
fn corruption_in_older_file_header_bytes() {
    older_header_bytes(Hints::Removed);
}

#[test]
fn corruption_in_newest_file_followed_by_valid_records() {
    newest_file(Hints::Removed);
}

// The same damage with the engine's hint files left in place (see check_flip).

#[test]
fn corruption_in_older_file_value_byte_with_hint_files() {
    older_value_byte(Hints::Kept);
}

#[test]
fn corruption_in_older_file_header_bytes_with_hint_files() {
    older_header_bytes(Hints::Kept);
}

#[test]
fn corruption_in_newest_file_with_hint_files() {
    newest_file(Hints::Kept);
}

/// A damaged value is never handed out as data: without hints open refuses
/// it; with them open succeeds, get of the damaged record's key is
/// Corruption (naming the file), and every other key reads back exactly.
#[test]
fn damaged_value_is_never_returned() {
    let fx = corrupted_fixture();
    let files = data_files(&fx.pristine);
    let model = model_of(&fx.ws);
    for (file_idx, tag) in [(0, "get-old"), (files.len() - 1, "get-newest")] {
        for hints in [Hints::Kept, Hints::Removed] {
            let recs = parse_data_file(&files[file_idx]);
            let mid = (recs.len() - 1) / 2;
            let delta = RECORD_HEADER + recs[mid].key.len() as u64 + 3;
            let (dir, fname, rec, ctx) = flip_copy(&fx, file_idx, mid, delta, tag, hints);
            // Without hints open scans the file and refuses the damage;
            // with them it reads no record, and the get finds it.
            let db = match (Db::open(&dir, opts(4096, SyncMode::None)), hints) {
                (Ok(db), Hints::Kept) => db,
                (Err(e), Hints::Removed) => {
                    assert_eq!(
                        e.status() as i32,
                        CORRUPTION,
                        "{ctx}: open: {}",
                        e.message()
                    );
                    continue;
                }
                (r, _) => panic!(
                    "{ctx}: open returned {:?}",
                    r.map(|_| ()).map_err(|e| e.message().to_string())
                ),
            };
            for (k, v) in &model {
                let r = db.get(k);
                if *k == rec.key {
                    corruption_naming(
                        r,
                        &fname,
                        &format!("{ctx}: get of the damaged record's key"),
                    );
                } else {
                    assert_eq!(
                        ok(r, &ctx).as_ref(),
                        Some(v),
                        "{ctx}: key {:?}",
                        String::from_utf8_lossy(k)
                    );
                }
            }
        }
    }
}

fn check_bad_magic(oldest: bool, tag: &str) {
    let fx = corrupted_fixture();
    let files = data_files(&fx.pristine);
    let idx = if oldest { 0 } else { files.len() - 1 };
    let fname = file_name(&files[idx]);
    let dir = damaged_copy(&fx, tag, &fname, |bytes| {
        bytes[0..8].copy_from_slice(b"NOTBITCA")
    });
    corruption_naming(
        Db::open(&dir, opts(4096, SyncMode::None)),
        &fname,
        &format!("{tag}: bad magic in {fname}"),
    );
}

#[test]
fn bad_magic_in_oldest_file() {
    check_bad_magic(true, "magic-oldest");
}

#[test]
fn bad_magic_in_newest_file() {
    check_bad_magic(false, "magic-newest");
}

#[test]
fn bad_header_crc_and_version() {
    let fx = corrupted_fixture();
    let files = data_files(&fx.pristine);
    let fname = file_name(&files[1]);
    for (tag, pos) in [("version", 8usize), ("header-crc", 13usize)] {
        let dir = damaged_copy(&fx, tag, &fname, |bytes| bytes[pos] ^= 0x40);
        corruption_naming(
            Db::open(&dir, opts(4096, SyncMode::None)),
            &fname,
            &format!("{tag}: {fname}"),
        );
    }
}

/// Something named like a data or hint file that is not a regular file (a
/// FIFO blocked the open forever; a directory failed it with an I/O
/// error) is reported as corruption naming it, in every mode, at once.
#[test]
fn a_non_regular_file_is_refused_not_opened() {
    use std::os::unix::ffi::OsStrExt;
    for (name, fifo) in [
        ("00000000ffffffff.data", true),
        ("00000000ffffffff.hint", true),
        ("00000000ffffffff.data", false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Default::default()).unwrap();
        db.put(b"k", b"v").unwrap();
        db.close().unwrap();
        let path = dir.path().join(name);
        if fifo {
            let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        } else {
            fs::create_dir(&path).unwrap();
        }
        for read_only in [false, true] {
            let ctx = format!("{name} (fifo {fifo}, read-only {read_only})");
            let (tx, rx) = std::sync::mpsc::channel();
            let d = dir.path().to_path_buf();
            std::thread::spawn(move || {
                let opts = bitcask::Options {
                    read_only,
                    ..Default::default()
                };
                let _ = tx.send(Db::open(&d, opts).map(|_| ()));
            });
            let r = rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("{ctx}: open hung"));
            corruption_naming(r, name, &ctx);
        }
    }
}

/// A data file that is a symlink to a regular file counts as one (a
/// database may keep files on another disk); a symlink to a directory is
/// refused as the directory is.
#[test]
fn a_symlink_to_a_data_file_counts_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Default::default()).unwrap();
    db.put(b"k", b"v").unwrap();
    db.close().unwrap();
    let path = data_files(dir.path()).pop().unwrap();
    let moved = elsewhere.path().join(file_name(&path));
    fs::rename(&path, &moved).unwrap();
    fs::remove_file(path.with_extension("hint")).unwrap();
    std::os::unix::fs::symlink(&moved, &path).unwrap();
    let db = Db::open(dir.path(), Default::default()).unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    db.close().unwrap();
    let name = "00000000ffffffff.data";
    std::os::unix::fs::symlink(elsewhere.path(), dir.path().join(name)).unwrap();
    corruption_naming(
        Db::open(dir.path(), Default::default()).map(|_| ()),
        name,
        "symlink",
    );
}

/// A database of one file, without hints, of 400 records of about 120
/// bytes (the first 100 keys written twice), where `damage` was done to
/// the data file's bytes: the directory, the file, its records before the
/// damage, the writes, and the writes that survive when every record with
/// a byte in `lost` is gone.
struct LostPage {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    path: PathBuf,
    recs: Vec<RawRecord>,
    ws: Vec<W>,
    kept: Vec<W>,
    /// The bytes of the records the zeros touch.
    gone_bytes: u64,
}

fn lost_page(lost: impl Fn(&[RawRecord]) -> (usize, usize)) -> LostPage {
    lost_page_with(97, lost)
}

/// `lost_page` with the first value `first_len` bytes long (the others
/// are 97), which moves every later record by as much.
fn lost_page_with(first_len: usize, lost: impl Fn(&[RawRecord]) -> (usize, usize)) -> LostPage {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let mut ws: Vec<W> = (0..300)
        .map(|i| {
            (
                format!("key{i:04}").into_bytes(),
                Some(val(i, if i == 0 { first_len } else { 97 })),
            )
        })
        .collect();
    ws.extend((0..100).map(|i| (format!("key{i:04}").into_bytes(), Some(val(i + 1000, 97)))));
    build(&dir, 1 << 20, &ws);
    remove_hints(&dir);
    let path = data_files(&dir).pop().unwrap();
    let recs = parse_data_file(&path);
    assert_eq!(recs.len(), ws.len());
    let (from, to) = lost(&recs);
    patch(&path, |b| b[from..to].fill(0));
    let gone = |r: &RawRecord| r.offset < to as u64 && r.offset + r.len() > from as u64;
    let kept: Vec<W> = ws
        .iter()
        .zip(&recs)
        .filter(|(_, r)| !gone(r))
        .map(|(w, _)| w.clone())
        .collect();
    assert!(kept.len() < ws.len() && kept.len() > ws.len() - 40);
    let gone_bytes = recs.iter().filter(|r| gone(r)).map(|r| r.len()).sum();
    LostPage {
        _tmp: tmp,
        dir,
        path,
        recs,
        ws,
        kept,
        gone_bytes,
    }
}

/// Zeros from the start of the first record in page 5 to that page's end:
/// the page holding a sync point, whose later bytes never reached the
/// disk.
fn from_a_record_to_the_page_end(recs: &[RawRecord]) -> (usize, usize) {
    let r = recs.iter().find(|r| r.offset >= 5 * 4096).unwrap();
    (r.offset as usize, 6 * 4096)
}

/// Page 5 whole: a record crossing into it keeps its header.
fn a_whole_page(recs: &[RawRecord]) -> (usize, usize) {
    assert!(recs.iter().all(|r| r.offset != 5 * 4096));
    (5 * 4096, 6 * 4096)
}

/// A page of unsynced appends that never reached the disk while a later
/// one did (writeback in any order, then a power loss) reads as zeros:
/// from a record's start to the page end, or a whole page inside a record,
/// with valid records after it. In a file without a hint, open rewrites
/// the file without the zeroed pages, keeping every other record (as
/// repair would), counts the bytes in `recovered_bytes_dropped`, and a
/// later open finds a clean file with a hint.
#[test]
fn a_lost_page_of_unsynced_appends_is_recovered_keeping_the_rest() {
    // A record whose header runs 10 bytes into page 5, which is lost:
    // the first value is made long enough to put one there.
    let (p, len) = (5 * 4096, 19 + 7 + 97);
    let shift = (p - 10 - 16 - (p - 16) / len * len) % len;
    let straddling = lost_page_with(97 + shift, |recs| {
        assert!(recs.iter().any(|r| r.offset as usize == p - 10));
        (p, p + 4096)
    });
    for (what, lp) in [
        (
            "from a record start",
            lost_page(from_a_record_to_the_page_end),
        ),
        ("a whole page", lost_page(a_whole_page)),
        ("a header across the page start", straddling),
    ] {
        let before = fs::metadata(&lp.path).unwrap().len();
        let model = model_of(&lp.kept);
        let keys = all_keys(&lp.ws);
        let db = open(&lp.dir, &opts(1 << 20, SyncMode::None));
        let after = fs::metadata(&lp.path).unwrap().len();
        assert!(after < before, "{what}: the file was not rewritten");
        assert_eq!(db.stats().recovered_bytes_dropped, before - after, "{what}");
        assert_eq!(before - after, lp.gone_bytes, "{what}: bytes dropped");
        assert_eq!(db.stats().repaired_records_skipped, 0, "{what}");
        verify(&db, &model, &keys, what);
        // The rewritten file holds the kept records, in order, and
        // nothing else.
        let recs = parse_data_file(&lp.path);
        assert!(recs.iter().all(|r| r.crc_ok), "{what}");
        let kept_keys: Vec<&[u8]> = lp.kept.iter().map(|(k, _)| &k[..]).collect();
        let file_keys: Vec<&[u8]> = recs.iter().map(|r| &r.key[..]).collect();
        assert_eq!(file_keys, kept_keys, "{what}");
        ok(db.close(), what);
        let db = open(&lp.dir, &opts(1 << 20, SyncMode::None));
        assert_eq!(db.stats().recovered_bytes_dropped, 0, "{what}: reopen");
        verify(&db, &model, &keys, &format!("{what}: reopen"));
    }
}

/// A page lost in the middle of a large record (its header and end
/// intact, so it fills the span to the next record): open drops that
/// record alone, as the checksum is not one damaged byte away. Records of
/// 10 KB, and of 200 KB, whose checksums for that test are taken from
/// checksums of the rest of the file.
#[test]
fn a_lost_page_inside_a_large_record_is_recovered() {
    for value_len in [10_000, 200_000] {
        lost_page_inside_a_record(value_len);
    }
}

fn lost_page_inside_a_record(value_len: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let ws: Vec<W> = (0..20)
        .map(|i| (format!("key{i:02}").into_bytes(), Some(val(i, value_len))))
        .collect();
    build(&dir, 1 << 23, &ws);
    remove_hints(&dir);
    let path = data_files(&dir).pop().unwrap();
    let recs = parse_data_file(&path);
    let victim = &recs[5];
    let page = (victim.offset / 4096 + 1) * 4096;
    assert!(page + 4096 < victim.offset + victim.len());
    patch(&path, |b| b[page as usize..page as usize + 4096].fill(0));
    let kept: Vec<W> = ws
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != 5)
        .map(|(_, w)| w.clone())
        .collect();
    let db = open(&dir, &opts(1 << 20, SyncMode::None));
    assert_eq!(db.stats().recovered_bytes_dropped, victim.len());
    verify(&db, &model_of(&kept), &all_keys(&ws), "after open");
    ok(db.close(), "close");
    assert_eq!(parse_data_file(&path).len(), ws.len() - 1);
}

/// A read-only open recovers a lost page in memory and changes nothing.
#[test]
fn a_read_only_open_skips_a_lost_page_in_memory() {
    let lp = lost_page(from_a_record_to_the_page_end);
    let before = dir_bytes(&lp.dir);
    let ro = bitcask::Options {
        read_only: true,
        ..opts(1 << 20, SyncMode::None)
    };
    let db = open(&lp.dir, &ro);
    assert_eq!(db.stats().recovered_bytes_dropped, lp.gone_bytes);
    verify(&db, &model_of(&lp.kept), &all_keys(&lp.ws), "read-only");
    drop(db);
    assert!(
        dir_bytes(&lp.dir) == before,
        "a read-only open changed files"
    );
}

/// Open of `dir` fails with BC_CORRUPTION naming data file `path` and
/// offset `at`, and changes no file.
fn refused(dir: &Path, path: &Path, at: u64, ctx: &str) {
    let before = dir_bytes(dir);
    let fname = file_name(path);
    let msg = corruption_naming(Db::open(dir, opts(1 << 20, SyncMode::None)), &fname, ctx);
    assert!(mentions_offset(&msg, at), "{ctx}: {msg}");
    assert!(dir_bytes(dir) == before, "{ctx}: open changed files");
}

/// What open cannot take for a lost page it refuses, naming the file and
/// offset, and changes nothing: zeros that stop short of the page end (bit
/// rot can zero a few bytes); a lost page in a file whose hint says it was
/// synced; and a lost page in a file that also has other damage, which
/// is named.
#[test]
fn open_refuses_what_is_not_only_lost_pages() {
    // Zeros from a record's start that end 1 byte before the page end.
    let lp = lost_page(|recs| {
        let (from, to) = from_a_record_to_the_page_end(recs);
        (from, to - 1)
    });
    let first = lp.recs.iter().find(|r| r.offset >= 5 * 4096).unwrap();
    refused(&lp.dir, &lp.path, first.offset, "short of the page end");

    // A file with a hint (a damaged one: open scans the file) was synced.
    let lp = lost_page(a_whole_page);
    let hint = lp.path.with_extension("hint");
    fs::write(&hint, b"not a hint").unwrap();
    let crossing = lp
        .recs
        .iter()
        .find(|r| r.offset + r.len() > 5 * 4096)
        .unwrap();
    refused(&lp.dir, &lp.path, crossing.offset, "with a hint");

    // A lost page, then a flipped byte in a later record's value.
    let lp = lost_page(a_whole_page);
    let victim = lp.recs.iter().find(|r| r.offset > 8 * 4096).unwrap();
    patch(&lp.path, |b| b[victim.offset as usize + 40] ^= 0x10);
    refused(&lp.dir, &lp.path, victim.offset, "with bit rot after it");
}

/// Bit rot in a record of a synced file without a hint is not a lost
/// page, even where the record's own key or value is zero pages: a flipped
/// bit in a zero-valued record, a damaged byte before a value's zero
/// pages, or in the CRC (the checksum is one damaged byte away); a length
/// damaged up into a later record's zeros (valid records start before
/// them), or down into the record's own zeros (the record fills the span
/// to the next one once the length is mended); a zero key and value
/// behind a header that crosses a page boundary (one damaged byte). All
/// refused, as before the lost-page rule.
#[test]
fn bit_rot_beside_zero_pages_is_not_a_lost_page() {
    let zeros = |n: usize| Some(vec![0u8; n]);
    let around = |middle: W| -> Vec<W> {
        vec![
            (b"a".to_vec(), Some(val(1, 100))),
            (b"b".to_vec(), Some(val(2, 100))),
            middle,
            (b"c".to_vec(), Some(val(3, 100))),
            (b"d".to_vec(), Some(val(4, 100))),
        ]
    };
    let zero_value = around((b"zeros".to_vec(), zeros(5 * 4096)));
    // Records 0 and 1 take 16..4078: the third starts 18 bytes before the
    // page boundary, its flags byte the first of the next page.
    let mut across = around((vec![0u8; 8], zeros(2 * 4096)));
    across[1].1 = Some(val(2, 4078 - 16 - 120 - 20));
    // (name, the writes, the damage: returns the offset to be named)
    type Damage = fn(&mut [u8], &[RawRecord]) -> u64;
    // A value with `pages` zero pages between other bytes.
    let framed = |pages: usize| {
        let mut v = vec![1u8; 100];
        v.extend_from_slice(&vec![0; pages * 4096]);
        v.extend_from_slice(&[2u8; 100]);
        around((b"framed".to_vec(), Some(v)))
    };
    // A value of `len` zero bytes with a record's image 2/3 into it.
    let ghost = {
        let (k, v) = (b"ghost", b"boo");
        let mut h = vec![0u8; 19];
        h[4..8].copy_from_slice(&1u32.to_le_bytes());
        h[12..14].copy_from_slice(&(k.len() as u16).to_le_bytes());
        h[14..18].copy_from_slice(&(v.len() as u32).to_le_bytes());
        h.extend_from_slice(k);
        h.extend_from_slice(v);
        let crc = crc32fast::hash(&h[4..]);
        h[0..4].copy_from_slice(&crc.to_le_bytes());
        h
    };
    let nested = |len: usize| {
        let mut v = vec![0u8; len / 3 * 2];
        v.extend_from_slice(&ghost);
        v.resize(len, 0);
        around((b"victim".to_vec(), Some(v)))
    };
    // One bit of the value length (0x3000 -> 0x2000), so that the record
    // ends at the image inside its value.
    let to_the_image: Damage = |b, recs| {
        let len = recs[2].value.len() as u32;
        assert_eq!((len ^ (len / 3 * 2)).count_ones(), 1);
        let at = recs[2].offset as usize + 14;
        b[at..at + 4].copy_from_slice(&(len / 3 * 2).to_le_bytes());
        recs[2].offset
    };
    let byte_50: Damage = |b, recs| {
        b[recs[2].offset as usize + 19 + 6 + 50] = 0x77; // value byte 50
        recs[2].offset
    };
    // Past 64 KiB, the one-damaged-byte and flipped-length-bit tests take
    // their checksums from checksums of the rest of the file.
    let cases: [(&str, Vec<W>, Damage); 10] = [
        (
            "a length bit flipped to end at a record inside a large value",
            nested(0x30000),
            to_the_image,
        ),
        (
            "a damaged byte before zero pages, in a large record",
            framed(40),
            byte_50,
        ),
        (
            "a length bit flipped to end at a record inside the value",
            nested(0x3000),
            to_the_image,
        ),
        ("a damaged byte before zero pages", framed(3), byte_50),
        ("a damaged byte of the CRC", framed(3), |b, recs| {
            b[recs[2].offset as usize + 2] ^= 0x90;
            recs[2].offset
        }),
        ("a flipped bit", zero_value.clone(), |b, recs| {
            b[recs[2].offset as usize + 4] ^= 0x01; // timestamp
            recs[2].offset
        }),
        ("a length damaged up", zero_value.clone(), |b, recs| {
            // b's value_len, so that b ends 100 bytes into page 3 of the
            // zeros' value.
            let page = (recs[2].offset / 4096 + 3) * 4096;
            let value_len = (page + 100 - recs[1].offset - 19 - 1) as u32;
            let at = recs[1].offset as usize + 14;
            b[at..at + 4].copy_from_slice(&value_len.to_le_bytes());
            recs[1].offset
        }),
        ("a value length damaged down", zero_value, |b, recs| {
            assert_eq!(recs[2].value.len(), 0x5000);
            b[recs[2].offset as usize + 15] ^= 0x40; // 0x5000 -> 0x1000
            recs[2].offset
        }),
        (
            "a key length damaged down",
            around((vec![0u8; 3000], zeros(10013))),
            |b, recs| {
                // Ending 1000 bytes into a page, so that the shortened
                // record ends 2048 bytes before that, in a whole page of
                // its zeros.
                assert_eq!(recs[2].key.len(), 0x0BB8);
                assert_eq!((recs[2].offset + recs[2].len()) % 4096, 1000);
                b[recs[2].offset as usize + 13] ^= 0x08; // 0x0BB8 -> 0x03B8
                recs[2].offset
            },
        ),
        ("a zero record across a page boundary", across, |b, recs| {
            assert_eq!(recs[2].offset, 4096 - 18);
            b[recs[2].offset as usize + 4] ^= 0x01; // timestamp
            recs[2].offset
        }),
    ];
    for (what, ws, damage) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db");
        build(&dir, 1 << 20, &ws);
        remove_hints(&dir);
        let path = data_files(&dir).pop().unwrap();
        let recs = parse_data_file(&path);
        let at = patch(&path, |b| damage(b, &recs));
        refused(&dir, &path, at, what);
    }
}

/// A lost first page (the file's header with it) in a file without a
/// hint: open, and repair, rewrite the file under a fresh header with
/// every record after the zeros; a read-only open, with repair or not,
/// reads them in memory and changes nothing.
#[test]
fn a_lost_first_page_keeps_the_records_after_it() {
    for how in ["open", "read-only", "repair", "read-only repair"] {
        let lp = lost_page(|_| (0, 4096));
        let read_only = how.starts_with("read-only");
        let o = bitcask::Options {
            read_only,
            repair: how.ends_with("repair"),
            ..opts(1 << 20, SyncMode::None)
        };
        let before = dir_bytes(&lp.dir);
        let db = open(&lp.dir, &o);
        verify(&db, &model_of(&lp.kept), &all_keys(&lp.ws), how);
        drop(db);
        if read_only {
            assert!(dir_bytes(&lp.dir) == before, "{how}: files changed");
        } else {
            let recs = parse_data_file(&lp.path);
            assert_eq!(recs.len(), lp.kept.len(), "{how}");
            assert!(tmp_files(&lp.dir).is_empty());
            assert!(!lp.path.with_extension("data.corrupt").exists(), "{how}");
        }
    }
}

/// A closed database in `dir` of one file: `key0000`..`key0399`, each
/// with 97 bytes of its number. Returns its options.
fn four_hundred_keys(dir: &Path) -> bitcask::Options {
    let o = opts(1 << 20, SyncMode::None);
    let db = open(dir, &o);
    for i in 0..400u32 {
        ok(
            db.put(format!("key{i:04}").as_bytes(), &[i as u8; 97]),
            "put",
        );
    }
    ok(db.close(), "close");
    o
}

/// A read-only handle opened on a file with a lost page (it leaves files
/// as they are), then a read-write open that rewrites the file without the
/// page under the same name (a new inode): the read-only handle, which
/// opens the file at its first get, sees that the name now stands for
/// another file, and every get of it returns BC_IO saying to reopen; none
/// reads the moved records (before the check, 166 gets returned
/// BC_CORRUPTION, "does not hold the key").
#[test]
fn a_read_only_handle_refuses_a_file_rewritten_under_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("db");
    let o = four_hundred_keys(&src);
    for p in files_ending(&src, ".hint") {
        fs::remove_file(p).unwrap();
    }
    let path = data_files(&src).pop().unwrap();
    patch(&path, |b| b[5 * 4096..6 * 4096].fill(0));
    for mmap in [true, false] {
        let dir = tmp.path().join(format!("mmap-{mmap}"));
        copy_dir(&src, &dir);
        let ro_opts = bitcask::Options {
            read_only: true,
            mmap,
            ..o.clone()
        };
        let ro = ok(Db::open(&dir, ro_opts), "read-only open");
        let rw = open(&dir, &o);
        assert!(rw.stats().recovered_bytes_dropped >= 4096);
        ok(rw.close(), "close");
        let (mut absent, mut replaced) = (0, 0);
        for i in 0..400u32 {
            match ro.get(format!("key{i:04}").as_bytes()) {
                Ok(None) => absent += 1, // in the lost page
                Ok(Some(_)) => panic!("mmap {mmap}: key{i:04} read from the rewritten file"),
                Err(e) => {
                    assert_eq!(e.status(), Status::Io, "{e:?}");
                    assert!(e.message().contains("was replaced"), "{e:?}");
                    replaced += 1;
                }
            }
        }
        assert!(absent <= 40 && absent + replaced == 400, "mmap {mmap}");
    }
}

/// Records moved within the same file (bytes rewritten in place, which
/// bitcask never does, so no identity check can see it): every get checks
/// the record's key as well as its CRC, so a keydir entry that now points
/// at another key's intact record returns BC_CORRUPTION, never that key's
/// value (with the key check off, key0200 read key0201's value).
#[test]
fn a_get_never_returns_another_keys_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let o = four_hundred_keys(&dir);
    let value = |i: u32| vec![i as u8; 97];
    let path = data_files(&dir).pop().unwrap();
    let recs = parse_data_file(&path);
    for mmap in [true, false] {
        let ro_opts = bitcask::Options {
            read_only: true,
            mmap,
            ..o.clone()
        };
        let ro = ok(Db::open(&dir, ro_opts), "read-only open");
        // Record 200 cut out in place: each later record moves up by one
        // record's length, onto the offset of the key before it.
        let bytes = fs::read(&path).unwrap();
        let (from, to) = (
            recs[200].offset as usize,
            (recs[200].offset + recs[200].len()) as usize,
        );
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&bytes[to..], from as u64).unwrap();
        f.set_len((bytes.len() - (to - from)) as u64).unwrap();
        let (mut same, mut wrong_key) = (0, 0);
        for i in 0..400u32 {
            match ro.get(format!("key{i:04}").as_bytes()) {
                Ok(Some(v)) => {
                    assert_eq!(v, value(i), "mmap {mmap}: key{i:04} read another value");
                    same += 1;
                }
                Ok(None) => panic!("mmap {mmap}: key{i:04} absent"),
                Err(e) if e.status() == Status::Corruption => {
                    assert!(e.message().contains("does not hold the key"), "{e:?}");
                    wrong_key += 1;
                }
                Err(e) => assert_eq!(e.status(), Status::Io, "{e:?}"), // past the new end
            }
        }
        assert_eq!((same, wrong_key), (200, 199), "mmap {mmap}");
        drop(ro);
        f.write_all_at(&bytes, 0).unwrap(); // as it was, for the next round
    }
}

/// The 4-byte bounds of the lost-page shapes, exact on both sides (bit rot
/// can zero a few bytes; a lost page zeroes at least a CRC):
/// - shape 1: a record starting 4 bytes before a page end, those 4 bytes
///   zero, is a lost page; starting 3 bytes before, refused;
/// - shape 3: a record (the first, long) whose last page is zero and which
///   ends 4 bytes before that page's end is a lost page (the next record's
///   CRC is in it); ending 3 bytes before (or 2), refused.
#[test]
fn lost_page_shapes_need_four_zero_bytes() {
    let (p, len) = (5 * 4096, 19 + 7 + 97);
    // Open recovers the lost page, or refuses the damage at `at`.
    let judged = |lp: LostPage, at: u64, what: &str, recovered: bool| {
        if recovered {
            let db = open(&lp.dir, &opts(1 << 20, SyncMode::None));
            assert_eq!(db.stats().recovered_bytes_dropped, lp.gone_bytes, "{what}");
            verify(&db, &model_of(&lp.kept), &all_keys(&lp.ws), what);
        } else {
            refused(&lp.dir, &lp.path, at, what);
        }
    };
    // The first value's length that puts some record `before` bytes short
    // of page 5's end (offset 16, 26 + first_len, then records of `len`).
    let start_short_by = |before: usize| {
        let at = p - before;
        97 + (at - 16 - 26 - 97) % len
    };
    for (before, recovered) in [(4, true), (3, false)] {
        let lp = lost_page_with(start_short_by(before), |recs| {
            let r = recs
                .iter()
                .find(|r| r.offset as usize == p - before)
                .unwrap();
            (r.offset as usize, p)
        });
        let what = format!("shape 1, a record {before} bytes before the page end");
        judged(lp, (p - before) as u64, &what, recovered);
    }
    // The first record runs from 16 to 42 + first_len; page 2 (8192..12288)
    // is its last, zeroed.
    for (left, recovered) in [(4, true), (3, false), (2, false)] {
        let end = 3 * 4096 - left;
        let lp = lost_page_with(end - 42, |_| (2 * 4096, 3 * 4096));
        assert_eq!(lp.recs[0].offset + lp.recs[0].len(), end as u64);
        let what = format!("shape 3, a record ending {left} bytes before the page end");
        judged(lp, 16, &what, recovered);
    }
}

/// The newest file (no hint) of a database holding "victim" = "real", then
/// a record whose value holds images of records ("victim" = "INJECTED",
/// "ghost"), cut 50 bytes short as by a crash (or, without `cut`, with its
/// 10th-last byte changed). With `cross_page` that record's header
/// crosses a page end into a page of its value's zeros. Returns the
/// directory, the file and that record's offset.
fn torn_write_holding_images(root: &Path, cross_page: bool, cut: bool) -> (PathBuf, PathBuf, u64) {
    let dir = root.join(format!("images-{cross_page}-{cut}"));
    let db = open(&dir, &opts(1 << 20, SyncMode::None));
    ok(db.put(b"victim", b"real"), "put");
    let mut value = if cross_page {
        // Pad so that the next record starts 18 bytes before a page end;
        // its header's last byte, its key (one zero byte) and its value's
        // zeros fill the next page.
        let pad = 4096 - 18 - (16 + 19 + 6 + 4) - 19 - 3;
        ok(db.put(b"pad", &vec![1u8; pad]), "put");
        vec![0u8; 4096 + 100]
    } else {
        vec![7u8; 100]
    };
    value.extend(record_image(b"victim", b"INJECTED"));
    value.extend(record_image(b"ghost", b"never written"));
    value.extend(vec![9u8; 300]);
    ok(db.put(b"\0", &value), "put");
    ok(db.close(), "close");
    remove_hints(&dir);
    let path = data_files(&dir).pop().unwrap();
    let recs = parse_data_file(&path);
    let at = recs.last().unwrap().offset;
    assert_eq!(cross_page, at == 4096 - 18);
    let len = fs::metadata(&path).unwrap().len();
    if cut {
        cut_file(&path, len - 50);
    } else {
        patch(&path, |b| b[len as usize - 10] ^= 1);
    }
    (dir, path, at)
}

/// A write cut short by a crash whose value holds record images (a value
/// may hold any bytes, a backup of another database say) cannot be told
/// from a damaged length with the file's records after it, so open refuses
/// it, naming its offset, whether or not its header crosses a page end
/// into zeros: it never reads the images as records. Before, that crossing
/// read as a lost page with the images after it (an older key's value
/// replaced, a key never written appearing) on a plain open. (Repair
/// keeps what follows a damaged record: here, the images.)
#[test]
fn a_torn_write_holding_record_images_is_refused_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    for cross_page in [true, false] {
        let (dir, path, cut) = torn_write_holding_images(tmp.path(), cross_page, true);
        refused(&dir, &path, cut, &format!("cross_page {cross_page}"));
        let ro = Options {
            read_only: true,
            ..opts(1 << 20, SyncMode::None)
        };
        let fname = file_name(&path);
        let msg = corruption_naming(Db::open(&dir, ro), &fname, "read-only");
        assert!(mentions_offset(&msg, cut), "{msg}");
    }
}

/// A length damaged so that its record claims to run past the end of the
/// newest file, with records after it, is damage, not a torn write: the
/// record's CRC matches with the length mended to end where the next
/// record starts. Open refuses it, naming its offset (value_len with high
/// bits set, or a high bit of key_len), where a torn write would silently
/// drop every record after it.
#[test]
fn a_length_damaged_past_the_end_is_not_a_torn_write() {
    for (field, at, x) in [("value_len", 17, 0x7f), ("key_len", 13, 0x80)] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db");
        let ws: Vec<W> = (0..50)
            .map(|i| (format!("key{i:02}").into_bytes(), Some(val(i, 97))))
            .collect();
        build(&dir, 1 << 20, &ws);
        remove_hints(&dir);
        let path = data_files(&dir).pop().unwrap();
        let victim = &parse_data_file(&path)[20];
        patch(&path, |b| b[victim.offset as usize + at] ^= x);
        refused(&dir, &path, victim.offset, field);
        let db = ok(
            Db::open(
                &dir,
                Options {
                    repair: true,
                    ..opts(1 << 20, SyncMode::None)
                },
            ),
            field,
        );
        assert_eq!(db.stats().repaired_records_skipped, 1, "{field}");
        assert_eq!(ok(db.get(b"key49"), field), Some(val(49, 97)), "{field}");
    }
}

/// The same record, whole but with a byte of its value changed (bit rot in
/// a file without a hint): its header crosses into a page of zeros, and
/// record images follow, but its header claims to run past them, which a
/// lost page (zeros only shorten a length) cannot make it do. Open refuses
/// it, naming its offset, instead of reading the images as the records
/// after a lost page.
#[test]
fn bit_rot_in_a_record_holding_images_is_not_a_lost_page() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, path, at) = torn_write_holding_images(tmp.path(), true, false);
    refused(&dir, &path, at, "a changed byte");
}

/// A sealed data file cut back to a record boundary under its hint: a
/// truncation, or a copy cut short, after the file was synced and sealed
/// (its hint, written then, says how long it was). Scanned as if it had no
/// hint, it showed older values and deleted keys again with no error (a
/// fuzzer found it: the scan finds no damage in a clean cut), and a
/// read-write open then wrote a fresh hint over the evidence. Open refuses
/// it, read-only and read-write, changing nothing; repair opens it.
#[test]
fn a_sealed_file_cut_under_its_hint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(4096, SyncMode::None);
    let db = open(dir.path(), &o);
    ok(db.put(b"over", b"old"), "put");
    ok(db.put(b"gone", b"old"), "put");
    ok(db.close(), "close");
    // A new file: the newer value and the tombstone, then fillers until
    // it is sealed and another is the newest.
    let db = open(dir.path(), &o);
    ok(db.put(b"over", b"new"), "put");
    assert!(ok(db.delete(b"gone"), "delete"));
    let mut i = 0;
    fill_until_files(&db, 3, &mut i);
    ok(db.close(), "close");
    let files = data_files(dir.path());
    let (cut, at) = files[..files.len() - 1]
        .iter()
        .find_map(|f| {
            let r = parse_data_file(f);
            let new = r.iter().find(|r| r.key == b"over" && r.value == b"new")?;
            Some((f.clone(), new.offset))
        })
        .expect("a sealed file holding over=new");
    cut_file(&cut, at);
    let before = dir_bytes(dir.path());
    let name = file_name(&cut);
    for read_only in [true, false] {
        let ctx = format!("read_only {read_only}");
        let opened = Db::open(
            dir.path(),
            Options {
                read_only,
                ..o.clone()
            },
        );
        let msg = corruption_naming(opened, &name, &ctx);
        assert!(
            msg.contains("lost") && mentions_offset(&msg, at),
            "{ctx}: {msg}"
        );
        assert!(
            dir_bytes(dir.path()) == before,
            "{ctx}: the open changed the directory"
        );
    }
    let repaired = Db::open(
        dir.path(),
        Options {
            repair: true,
            ..o.clone()
        },
    );
    ok(repaired, "open with repair");
}

/// The newest file, sealed and hinted by a close, cut under its hint: a
/// read-write open (which holds the lock: no writer is appending) refuses
/// it as it refuses an older file; a read-only open, which may be opening
/// beside a writer that is closing (its last flush lands after the reader
/// measured the file, its hint before the reader looks), takes the cut for
/// a torn tail.
#[test]
fn the_newest_file_cut_under_its_hint_is_refused_read_write() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(4096, SyncMode::None);
    let db = open(dir.path(), &o);
    ok(db.put(b"over", b"old"), "put");
    ok(db.close(), "close");
    let db = open(dir.path(), &o);
    ok(db.put(b"over", b"new"), "put");
    ok(db.close(), "close");
    let newest = data_files(dir.path()).pop().unwrap();
    let at = parse_data_file(&newest)
        .iter()
        .find(|r| r.key == b"over" && r.value == b"new")
        .expect("over=new in the newest file")
        .offset;
    cut_file(&newest, at);
    let before = dir_bytes(dir.path());
    let ro = Db::open(
        dir.path(),
        Options {
            read_only: true,
            ..o.clone()
        },
    );
    let ro = ok(ro, "read-only open");
    assert_eq!(ok(ro.get(b"over"), "get").as_deref(), Some(&b"old"[..]));
    drop(ro);
    assert!(
        dir_bytes(dir.path()) == before,
        "the read-only open changed the directory"
    );
    let msg = corruption_naming(
        Db::open(dir.path(), o.clone()),
        &file_name(&newest),
        "read-write",
    );
    assert!(msg.contains("lost") && mentions_offset(&msg, at), "{msg}");
    assert!(
        dir_bytes(dir.path()) == before,
        "the refused open changed the directory"
    );
}
