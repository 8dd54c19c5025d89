//! The database handle: open (recovery), the write path, reads, sync and
//! close. Merge lives in `merge.rs`.

use crate::datafile::{self, sync_dir, DataFile, MAJOR_SHIFT};
use crate::error::{Error, Result, Status};
use crate::format::{self, record_len, FILE_HEADER_LEN, FLAG_TOMBSTONE, RECORD_HEADER_LEN};
use crate::keydir::{Keydir, Location};
use crate::lock::DirLock;
use crate::options::{Options, SyncMode};
use crate::recovery::{self, FileReader};
use parking_lot::{Condvar, Mutex, RwLock};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Appends are buffered up to this many bytes before a `pwrite`; a record
/// at least this large is written straight from the caller's memory.
pub(crate) const WRITE_BUFFER: usize = 256 << 10;

/// Counters and sizes, as returned by [`Db::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub live_keys: u64,
    pub data_files: u64,
    /// Bytes of all data files, headers included.
    pub total_bytes: u64,
    /// Bytes of the records the keydir points at.
    pub live_bytes: u64,
    /// Bytes of overwritten and deleted records and of tombstones: what a
    /// merge would reclaim.
    pub dead_bytes: u64,
    /// Bytes cut from a torn tail by the last open.
    pub recovered_bytes_dropped: u64,
    /// Damaged regions skipped by the last open with the repair option.
    pub repaired_records_skipped: u64,
    /// Merges completed by this handle.
    pub merges: u64,
    /// Heap bytes held by the keydir.
    pub keydir_bytes: u64,
}

/// A Bitcask database: a directory of data files and an in-memory keydir.
/// `Db` is `Send + Sync`; share it between threads with an `Arc`.
pub struct Db {
    pub(crate) inner: Arc<Inner>,
    syncer: Option<Syncer>,
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) keydir: Keydir,
    /// Every open data file by its in-memory handle.
    pub(crate) files: RwLock<HashMap<u32, Arc<DataFile>>>,
    /// Serialises appends; owns the active file.
    pub(crate) writer: Mutex<Writer>,
    /// One fsync at a time; writers that queue here share the next one.
    sync_lock: Mutex<()>,
    pub(crate) merge_lock: Mutex<()>,
    next_fnum: AtomicU32,
    failed: AtomicBool,
    failure: Mutex<Option<Error>>,
    recovered_bytes_dropped: u64,
    repaired_records_skipped: u64,
    pub(crate) merges: AtomicU64,
    _lock: Option<DirLock>,
}

pub(crate) struct Writer {
    pub(crate) active: Option<Arc<DataFile>>,
    /// Major id of the next active file.
    next_major: u64,
}

thread_local! {
    /// Per-thread buffer for records read by gets.
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Db {
    /// Opens (or creates) the database in directory `path`, rebuilding the
    /// keydir from its data files.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        opts.validate()?;
        let inner = Arc::new(Inner::open(path.as_ref(), opts)?);
        let syncer = match inner.opts.sync {
            SyncMode::Interval(every) if !inner.opts.read_only => {
                Some(Syncer::start(inner.clone(), every)?)
            }
            _ => None,
        };
        Ok(Db { inner, syncer })
    }

    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.inner.put(key, value, 0)
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with_value(key, |v| v.to_vec())
    }

    /// Runs `f` on the value of `key` without copying it out first.
    pub fn with_value<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        self.inner.with_value(key, f)
    }

    /// Deletes `key`. `Ok(false)`: it was absent and nothing was written.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.inner.delete(key)
    }

    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        self.inner.check_key(key)?;
        Ok(self.inner.live_location(key).is_some())
    }

    /// Makes every acknowledged write durable.
    pub fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    /// Rewrites the data files keeping only live records; see `merge.rs`.
    pub fn merge(&self) -> Result<()> {
        self.inner.merge()
    }

    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// Refuses writes from now on (used after a caught panic).
    pub fn poison(&self, err: Error) {
        self.inner.fail(err);
    }

    /// Flushes, syncs and releases the directory lock.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if let Some(s) = self.syncer.take() {
            s.stop();
        }
        self.inner.close()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl Inner {
    fn open(dir: &Path, opts: Options) -> Result<Inner> {
        if !dir.exists() {
            if opts.read_only || !opts.create_if_missing {
                return Err(Error::new(
                    Status::Io,
                    format!("database directory {} does not exist", dir.display()),
                ));
            }
            fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        } else if !dir.is_dir() {
            return Err(Error::new(
                Status::Io,
                format!("{} is not a directory", dir.display()),
            ));
        }
        let lock = if opts.read_only {
            None
        } else {
            Some(DirLock::acquire(dir)?)
        };

        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))? {
            let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        if !opts.read_only {
            recovery::remove_temporaries(dir, &names)?;
        }
        let mut ids: Vec<u64> = names
            .iter()
            .filter_map(|n| datafile::parse_data_name(n))
            .collect();
        ids.sort_unstable();

        let mut inner = Inner {
            dir: dir.to_path_buf(),
            keydir: Keydir::new(),
            files: RwLock::new(HashMap::new()),
            writer: Mutex::new(Writer {
                active: None,
                next_major: ids.last().map_or(1, |id| (id >> MAJOR_SHIFT) + 1),
            }),
            sync_lock: Mutex::new(()),
            merge_lock: Mutex::new(()),
            next_fnum: AtomicU32::new(1),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            recovered_bytes_dropped: 0,
            repaired_records_skipped: 0,
            merges: AtomicU64::new(0),
            _lock: lock,
            opts,
        };
        if inner.opts.repair && !inner.opts.read_only {
            inner.repair_files(&ids)?;
        }
        let mut loader = Loader::default();
        for (i, &id) in ids.iter().enumerate() {
            inner.load_file(id, i + 1 == ids.len(), &mut loader)?;
        }
        inner.recovered_bytes_dropped = loader.dropped;
        inner.repaired_records_skipped += loader.skipped;
        let files = inner.files.get_mut();
        for (fnum, dead) in loader.dead {
            if let Some(f) = files.get(&fnum) {
                f.dead_bytes.store(dead, Ordering::Relaxed);
            }
        }
        Ok(inner)
    }

    /// Repair, before loading: rewrites damaged files without their damaged
    /// records and sets aside files whose header is unreadable.
    fn repair_files(&mut self, ids: &[u64]) -> Result<()> {
        for (i, &id) in ids.iter().enumerate() {
            let path = self.dir.join(datafile::data_name(id));
            let mut r = FileReader::open(&path)?;
            match recovery::check_header(&mut r) {
                Ok(true) => {}
                // A newest file too short for a header is a torn creation:
                // load_file handles it.
                Ok(false) if i + 1 == ids.len() => continue,
                _ => {
                    recovery::set_aside(&self.dir, &path)?;
                    self.repaired_records_skipped += 1;
                    continue;
                }
            }
            if let Some(d) = recovery::scan(&mut r, FILE_HEADER_LEN, |_, _, _| {})? {
                let torn_tail = i + 1 == ids.len() && !d.followed_by_valid;
                if !torn_tail {
                    self.repaired_records_skipped +=
                        recovery::rewrite_without_damage(&self.dir, &path)?;
                }
            }
        }
        Ok(())
    }

    /// Reads one data file into the keydir (oldest files first).
    fn load_file(&self, id: u64, newest: bool, loader: &mut Loader) -> Result<()> {
        let path = self.dir.join(datafile::data_name(id));
        if !path.exists() {
            return Ok(()); // set aside by repair
        }
        let writable = !self.opts.read_only;
        let mut r = FileReader::open(&path)?;
        let has_header = match recovery::check_header(&mut r) {
            Ok(h) => h,
            Err(e) if self.opts.repair => {
                let _ = e;
                loader.skipped += 1;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if !has_header {
            if newest {
                // Crash while the file was being created: it holds no record.
                loader.dropped += r.len;
                if writable {
                    datafile::remove_file(&path)?;
                    sync_dir(&self.dir)?;
                }
                return Ok(());
            }
            return Err(Error::corruption(format!(
                "{}: file is {} bytes, shorter than its {FILE_HEADER_LEN}-byte header",
                path.display(),
                r.len
            )));
        }
        let fnum = self.next_fnum.fetch_add(1, Ordering::Relaxed);
        let mut from = FILE_HEADER_LEN;
        let mut len = r.len;
        loop {
            let damage = recovery::scan(&mut r, from, |off, hdr, key| {
                loader.apply(&self.keydir, fnum, off, hdr, key)
            })?;
            let Some(d) = damage else { break };
            if newest && !d.followed_by_valid {
                // Torn tail: the last append was cut short by a crash.
                loader.dropped += r.len - d.offset;
                len = d.offset;
                if writable {
                    DataFile::truncate(&path, d.offset)?;
                }
                break;
            }
            if !self.opts.repair {
                return Err(recovery::damage_error(&path, &d));
            }
            // Read-only repair: skip the damage in memory.
            loader.skipped += 1;
            match recovery::next_valid(&mut r, d.offset)? {
                Some(next) => from = next,
                None => {
                    len = d.offset;
                    break;
                }
            }
        }
        let file = DataFile::open_sealed(fnum, id, path, len)?;
        self.files.write().insert(fnum, Arc::new(file));
        Ok(())
    }

    pub(crate) fn next_fnum(&self) -> u32 {
        self.next_fnum.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn now(&self) -> u32 {
        (self.opts.clock)()
    }

    pub(crate) fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.is_empty() {
            return Err(Error::invalid("key is empty"));
        }
        if key.len() > self.opts.max_key_size as usize {
            return Err(Error::new(
                Status::TooLarge,
                format!(
                    "key of {} bytes exceeds max_key_size {}",
                    key.len(),
                    self.opts.max_key_size
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.opts.read_only {
            return Err(Error::new(
                Status::ReadOnly,
                format!("{} was opened read-only", self.dir.display()),
            ));
        }
        if self.failed.load(Ordering::Acquire) {
            let cause = self.failure.lock().clone();
            let (status, msg) = match cause {
                Some(e) => (e.status(), e.message().to_string()),
                None => (Status::Internal, "unknown".to_string()),
            };
            return Err(Error::new(
                status,
                format!("writes refused after an earlier failure (reopen the database): {msg}"),
            ));
        }
        Ok(())
    }

    /// Refuses writes from now on: after a failed fsync the state of the
    /// page cache is unknown, after a panic the state of the handle.
    pub(crate) fn fail(&self, err: Error) {
        let mut f = self.failure.lock();
        if f.is_none() {
            *f = Some(err);
        }
        self.failed.store(true, Ordering::Release);
    }

    /// Maps a failed fsync to a failed handle.
    pub(crate) fn synced(&self, r: Result<()>) -> Result<()> {
        if let Err(e) = &r {
            self.fail(e.clone());
        }
        r
    }

    /// The keydir entry of `key` if it is visible (not expired).
    pub(crate) fn live_location(&self, key: &[u8]) -> Option<Location> {
        let loc = self.keydir.get(key)?;
        if loc.expiry != 0 && loc.expiry <= self.now() {
            return None;
        }
        Some(loc)
    }

    pub(crate) fn file(&self, fnum: u32) -> Option<Arc<DataFile>> {
        self.files.read().get(&fnum).cloned()
    }

    /// Adds the record a keydir entry pointed at to its file's dead bytes.
    pub(crate) fn mark_dead(&self, old: Location, key_len: usize) {
        if let Some(f) = self.files.read().get(&old.file) {
            f.dead_bytes
                .fetch_add(record_len(key_len, old.value_len), Ordering::Relaxed);
        }
    }

    fn put(&self, key: &[u8], value: &[u8], expiry: u32) -> Result<()> {
        self.check_writable()?;
        self.check_key(key)?;
        if value.len() > self.opts.max_value_size as usize {
            return Err(Error::new(
                Status::TooLarge,
                format!(
                    "value of {} bytes exceeds max_value_size {}",
                    value.len(),
                    self.opts.max_value_size
                ),
            ));
        }
        let (file, end) = {
            let mut w = self.writer.lock();
            let (file, offset, end) = self.append(&mut w, key, value, expiry, 0)?;
            let loc = Location {
                file: file.fnum,
                offset: offset as u32,
                value_len: value.len() as u32,
                expiry,
            };
            if let Some(old) = self.keydir.insert(key, loc) {
                self.mark_dead(old, key.len());
            }
            (file, end)
        };
        self.durable(&file, end)
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        self.check_writable()?;
        self.check_key(key)?;
        let (file, end) = {
            let mut w = self.writer.lock();
            // Checked under the writer lock: no put of this key can slip in.
            if self.live_location(key).is_none() {
                return Ok(false);
            }
            let (file, _, end) = self.append(&mut w, key, &[], 0, FLAG_TOMBSTONE)?;
            file.dead_bytes
                .fetch_add(record_len(key.len(), 0), Ordering::Relaxed);
            if let Some(old) = self.keydir.remove(key) {
                self.mark_dead(old, key.len());
            }
            (file, end)
        };
        self.durable(&file, end).map(|_| true)
    }

    /// Appends one record to the active file; returns the file, the
    /// record's offset and the offset just past it.
    fn append(
        &self,
        w: &mut Writer,
        key: &[u8],
        value: &[u8],
        expiry: u32,
        flags: u8,
    ) -> Result<(Arc<DataFile>, u64, u64)> {
        let len = record_len(key.len(), value.len() as u32);
        let now = self.now();
        let file = self.active_for(w, len)?;
        // Flush before appending, so a failed write (a full disk) rejects
        // this record cleanly instead of leaving it half-acknowledged.
        if file.pending_len() + len as usize > WRITE_BUFFER {
            file.flush()?;
        }
        let offset = if len as usize >= WRITE_BUFFER {
            let header = format::encode_header(now, expiry, flags, key, value);
            file.append_direct(&[&header, key, value])?
        } else {
            file.append(|buf| format::encode_record(buf, now, expiry, flags, key, value))
        };
        Ok((file.clone(), offset, offset + len))
    }

    /// The active file, sealing the current one first when `len` more
    /// bytes would pass max_file_size.
    fn active_for<'w>(&self, w: &'w mut Writer, len: u64) -> Result<&'w Arc<DataFile>> {
        if let Some(a) = &w.active {
            if a.len() > FILE_HEADER_LEN && a.len() + len > self.opts.max_file_size {
                self.synced(a.seal())?;
                w.active = None;
            }
        }
        if w.active.is_none() {
            let id = w.next_major << MAJOR_SHIFT;
            let path = self.dir.join(datafile::data_name(id));
            let file = Arc::new(DataFile::create(
                self.next_fnum(),
                id,
                &self.dir,
                &path,
                path.clone(),
            )?);
            w.next_major += 1;
            self.files.write().insert(file.fnum, file.clone());
            w.active = Some(file);
        }
        Ok(w.active.as_ref().expect("set above"))
    }

    /// In BC_SYNC_ALWAYS mode, waits until `file` is on stable storage up
    /// to `end`. The first waiter flushes and fsyncs for every writer
    /// queued behind it (group commit).
    fn durable(&self, file: &Arc<DataFile>, end: u64) -> Result<()> {
        if self.opts.sync != SyncMode::Always || file.is_synced_to(end) {
            return Ok(());
        }
        let _one_fsync = self.sync_lock.lock();
        if file.is_synced_to(end) {
            return Ok(());
        }
        {
            let _w = self.writer.lock();
            if file.is_sealed() {
                return Ok(());
            }
            file.flush()?;
        }
        self.synced(file.sync_data())
    }

    fn sync(&self) -> Result<()> {
        if self.opts.read_only {
            return Ok(());
        }
        let file = {
            let w = self.writer.lock();
            match &w.active {
                Some(a) => {
                    a.flush()?;
                    a.clone()
                }
                None => return Ok(()),
            }
        };
        let _one_fsync = self.sync_lock.lock();
        self.synced(file.sync_data())
    }

    fn close(&self) -> Result<()> {
        if self.opts.read_only {
            return Ok(());
        }
        // Seal the active file: a reopen never appends to an old file.
        let active = self.writer.lock().active.take();
        match active {
            Some(a) => self.synced(a.seal()),
            None => Ok(()),
        }
    }

    fn with_value<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        self.check_key(key)?;
        // A merge may retire the file between the keydir lookup and the
        // file lookup; it moves the keydir first, so looking again finds
        // the new location.
        for _ in 0..16 {
            let Some(loc) = self.live_location(key) else {
                return Ok(None);
            };
            let Some(file) = self.file(loc.file) else {
                continue;
            };
            return READ_BUF.with(|buf| {
                let mut buf = buf.borrow_mut();
                let len = record_len(key.len(), loc.value_len) as usize;
                file.read_at(loc.offset as u64, len, &mut buf)?;
                check_record(&buf, key, &file, loc.offset)?;
                let out = f(&buf[RECORD_HEADER_LEN + key.len()..]);
                if buf.capacity() > WRITE_BUFFER {
                    *buf = Vec::new();
                }
                Ok(Some(out))
            });
        }
        Err(Error::internal(
            "the keydir kept pointing at retired files".to_string(),
        ))
    }

    fn stats(&self) -> Stats {
        let files = self.files.read();
        let mut s = Stats {
            live_keys: self.keydir.len() as u64,
            data_files: files.len() as u64,
            recovered_bytes_dropped: self.recovered_bytes_dropped,
            repaired_records_skipped: self.repaired_records_skipped,
            merges: self.merges.load(Ordering::Relaxed),
            keydir_bytes: self.keydir.memory_bytes() as u64,
            ..Stats::default()
        };
        for f in files.values() {
            let records = f.record_bytes.load(Ordering::Relaxed);
            let dead = f.dead_bytes.load(Ordering::Relaxed).min(records);
            s.total_bytes += FILE_HEADER_LEN + records;
            s.dead_bytes += dead;
            s.live_bytes += records - dead;
        }
        s
    }
}

/// Verifies a record read for `key`: CRC, and that it is the record the
/// keydir meant (same key, not a tombstone).
fn check_record(rec: &[u8], key: &[u8], file: &DataFile, offset: u32) -> Result<()> {
    let bad =
        |what: &str| Error::corruption(format!("{}: offset {offset}: {what}", file.path.display()));
    if !format::crc_ok(rec) {
        return Err(bad("record checksum mismatch"));
    }
    let hdr = format::RecordHeader::decode(rec);
    if hdr.is_tombstone()
        || hdr.key_len as usize != key.len()
        || &rec[RECORD_HEADER_LEN..RECORD_HEADER_LEN + key.len()] != key
    {
        return Err(bad("record does not hold the key the keydir points at"));
    }
    Ok(())
}

/// Keydir rebuilding state across the files of one open.
#[derive(Default)]
struct Loader {
    /// Dead record bytes per file handle.
    dead: HashMap<u32, u64>,
    dropped: u64,
    skipped: u64,
}

impl Loader {
    fn apply(
        &mut self,
        keydir: &Keydir,
        fnum: u32,
        off: u64,
        hdr: &format::RecordHeader,
        key: &[u8],
    ) {
        let old = if hdr.is_tombstone() {
            *self.dead.entry(fnum).or_default() += hdr.record_len();
            keydir.remove(key)
        } else {
            keydir.insert(
                key,
                Location {
                    file: fnum,
                    offset: off as u32,
                    value_len: hdr.value_len,
                    expiry: hdr.expiry,
                },
            )
        };
        if let Some(old) = old {
            *self.dead.entry(old.file).or_default() += record_len(key.len(), old.value_len);
        }
    }
}

/// The BC_SYNC_INTERVAL background thread.
struct Syncer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: JoinHandle<()>,
}

impl Syncer {
    fn start(inner: Arc<Inner>, every: std::time::Duration) -> Result<Syncer> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bitcask-sync".into())
            .spawn(move || {
                let (lock, cv) = &*flag;
                let mut stopped = lock.lock();
                while !*stopped {
                    if cv.wait_for(&mut stopped, every).timed_out() {
                        drop(stopped);
                        // A failure here shows at the next write or sync.
                        let _ = inner.sync();
                        stopped = lock.lock();
                    }
                }
            })
            .map_err(|e| Error::new(Status::Io, format!("starting the sync thread: {e}")))?;
        Ok(Syncer { stop, thread })
    }

    fn stop(self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        let _ = self.thread.join();
    }
}
