//! The database handle: open (recovery), the write path, reads, sync and
//! close. Merge lives in `merge.rs`.

use crate::commit::GroupCommit;
use crate::datafile::{self, sync_dir, Bytes, DataFile, Mapped, MAJOR_SHIFT};
use crate::error::{copy_out, Error, Result, Status};
use crate::format::{self, record_len, FILE_HEADER_LEN, FLAG_TOMBSTONE, RECORD_HEADER_LEN};
use crate::hint::{self, Hint, HintWriter};
use crate::keydir::{Keydir, Location, NoRoom, Seed};
use crate::load::{self, Source, Unloaded};
use crate::lock::DirLock;
use crate::options::{Options, SyncMode};
use crate::prefetch::MapAddrs;
use crate::recovery::{self, FileReader, Probe};
use crate::worker::{Queue, Worker};
use parking_lot::{Mutex, RwLock};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// A record written past the write buffer is copied into one write up to
/// this size; a larger one is written from the caller's memory in parts
/// (header, key, value), not copied.
const ONE_WRITE: u64 = 64 << 10;

/// A thread's read buffer (for reads that do not go through a map) is
/// freed after a read larger than this, rather than kept.
const READ_BUFFER_KEPT: usize = 256 << 10;

/// Counters and sizes, as returned by [`Db::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub live_keys: u64,
    pub data_files: u64,
    /// Bytes of all data files, headers included (not the space a file
    /// written through its map has allocated ahead of its records).
    pub total_bytes: u64,
    /// Bytes of the records the keydir points at.
    pub live_bytes: u64,
    /// Bytes of overwritten, deleted and expired records and of tombstones:
    /// what a merge would reclaim.
    pub dead_bytes: u64,
    /// Keys whose time to live has passed (invisible; merge reclaims them).
    pub expired_keys: u64,
    /// Bytes the last open dropped from files a crash left unsynced: torn
    /// tails, torn creations and lost pages.
    pub recovered_bytes_dropped: u64,
    /// Of those, the zero bytes that ended torn tails: space a file
    /// written through its map (`Options::write_map`) had allocated ahead
    /// of its records, or pages a power loss left unwritten (which look
    /// the same).
    pub recovered_zero_bytes: u64,
    /// Damaged regions skipped by the last open with the repair option.
    pub repaired_records_skipped: u64,
    /// Merges completed by this handle.
    pub merges: u64,
    /// Heap bytes held by the keydir.
    pub keydir_bytes: u64,
    /// Whether puts go through the active file's writable map
    /// (`Options::write_map`), so that a crash of the process loses none:
    /// the active file's state, or before this handle's first write,
    /// whether the option, the read maps and the directory's filesystem
    /// allow it. False through the write buffer, and for read-only
    /// handles.
    pub writes_through_map: bool,
}

/// A Bitcask database: a directory of data files and an in-memory keydir.
/// `Db` is `Send + Sync`; share it between threads with an `Arc`.
pub struct Db {
    pub(crate) inner: Arc<Inner>,
    worker: Option<Worker>,
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) keydir: Keydir,
    /// Every open data file by its in-memory handle.
    pub(crate) files: RwLock<FileTable>,
    /// Serialises appends; owns the active file.
    pub(crate) writer: Mutex<Writer>,
    /// BC_SYNC_ALWAYS writers share fsyncs through it.
    commit: GroupCommit,
    pub(crate) merge_lock: Mutex<()>,
    next_fnum: AtomicU32,
    failed: AtomicBool,
    failure: Mutex<Option<Error>>,
    /// The failure was a failed fsync (not a caught bug): what the disk
    /// holds is unknown, so close writes nothing more.
    sync_failed: AtomicBool,
    recovered_bytes_dropped: u64,
    recovered_zero_bytes: u64,
    repaired_records_skipped: u64,
    /// Whether the active file would be written through its map (the
    /// option, the read maps, the directory's filesystem): `Stats` says
    /// so before the first write.
    map_writes: bool,
    /// Set by close: an iterator that outlives its handle reads no more.
    closed: AtomicBool,
    pub(crate) merges: AtomicU64,
    /// Open data file descriptors, and the tick that orders their use.
    open_fds: Arc<AtomicUsize>,
    fd_tick: AtomicU64,
    pub(crate) queue: Queue,
    /// Where data files are mapped, for prefetching records by location.
    map_addrs: MapAddrs,
    /// Released by close, even while an iterator still holds the handle.
    lock: Mutex<Option<DirLock>>,
    /// The largest id named in the directory at open, `*.data.corrupt`
    /// included: new files (merge outputs too) take ids above it.
    pub(crate) newest_at_open: u64,
}

pub(crate) struct Writer {
    pub(crate) active: Option<Arc<DataFile>>,
    /// Major id of the next active file.
    next_major: u64,
    /// Where a record too big for the write buffer (every record, with a
    /// buffer of 0) but not for one write (`ONE_WRITE`) is encoded before
    /// its write: kept, so that such puts do not allocate.
    record: Vec<u8>,
}

thread_local! {
    /// Per-thread buffer for records read by gets.
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `read` with this thread's read buffer, or with a fresh one during
/// thread exit (a get from a C thread-exit destructor), when it is gone,
/// and in a get made from inside another's `with_value` callback, which
/// holds it.
fn with_read_buf<R>(read: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut read = Some(read);
    let mut run = |buf: &mut Vec<u8>| read.take().expect("runs once")(buf);
    let done = READ_BUF.try_with(|b| b.try_borrow_mut().ok().map(|mut buf| run(&mut buf)));
    match done {
        Ok(Some(r)) => r,
        _ => run(&mut Vec::new()),
    }
}

impl Db {
    /// Opens (or creates) the database in directory `path`, rebuilding the
    /// keydir from its data files.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        opts.validate()?;
        // A read-only open beside a writer may list a data file that the
        // writer's merge deletes before it is read: the listing is taken
        // again (a merge takes seconds; three in a row is no accident).
        let mut attempts = 1;
        let inner = loop {
            match Inner::open(path.as_ref(), opts.clone()) {
                Err(e) if e.is_vanished() && attempts < 3 => attempts += 1,
                // No handle came of it to fail: an fsync that failed while
                // opening fails the open.
                Err(e) if e.status() == Status::Failed => {
                    return Err(Error::new(Status::Io, e.message()))
                }
                r => break Arc::new(r?),
            }
        };
        let worker = if inner.opts.read_only {
            None
        } else {
            Some(Worker::start(inner.clone())?)
        };
        Ok(Db { inner, worker })
    }

    /// Stores `value` under `key`; it expires after the default TTL, if one
    /// is set.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.inner.put(key, value, self.inner.opts.default_ttl_secs)
    }

    /// Stores `value` under `key` for `ttl_secs` seconds (0 = forever).
    pub fn put_ttl(&self, key: &[u8], value: &[u8], ttl_secs: u32) -> Result<()> {
        self.inner.put(key, value, ttl_secs)
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.value(key)
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
        Options::check_lookup_key_len(key.len())?;
        Ok(self.inner.live_location(key).is_some())
    }

    /// Makes every acknowledged write durable.
    pub fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    /// Full merge: rewrites every data file keeping only live records.
    pub fn merge(&self) -> Result<()> {
        self.inner.merge()
    }

    /// Merges the files the merge policy selects, if its triggers fire.
    /// Returns whether a merge ran.
    pub fn merge_if_needed(&self) -> Result<bool> {
        if !self.inner.needs_merge() {
            return Ok(false);
        }
        self.inner.merge_selected()
    }

    /// Whether the merge triggers currently fire.
    pub fn needs_merge(&self) -> bool {
        self.inner.needs_merge()
    }

    /// Live (unexpired) keys.
    pub fn count(&self) -> u64 {
        self.inner.live_keys()
    }

    /// An iterator over a snapshot of the live keys starting with
    /// `prefix`, in bytewise order. `NoMemory` when the keys cannot be
    /// copied.
    pub fn iter(&self, prefix: &[u8]) -> Result<crate::Iter> {
        crate::Iter::new(self.inner.clone(), prefix)
    }

    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    pub fn options(&self) -> &Options {
        &self.inner.opts
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
        if let Some(w) = self.worker.take() {
            w.stop(&self.inner.queue);
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
    /// Creates the database directory, the last component of `dir` only: a
    /// mistyped path fails here rather than opening an empty database
    /// somewhere new.
    fn create_dir(dir: &Path, opts: &Options) -> Result<()> {
        let missing = |why: &str| {
            Error::new(
                Status::Io,
                format!("database directory {} does not exist{why}", dir.display()),
            )
        };
        if opts.read_only {
            return Err(missing(" (a read-only open never creates one)"));
        }
        if !opts.create_if_missing {
            return Err(missing(" (create_if_missing is off)"));
        }
        match fs::create_dir(dir) {
            // Another process made it meanwhile (the lock decides), or it
            // is a symlink to nothing.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return match dir.is_dir() {
                    true => Ok(()),
                    false => Err(Error::new(
                        Status::Io,
                        format!(
                            "{} is not a directory: a symlink to nothing, or a file made meanwhile",
                            dir.display()
                        ),
                    )),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(missing(
                    ", nor does its parent (only the last component of the path is created)",
                ))
            }
            r => r.map_err(|e| Error::io("creating directory", dir, e))?,
        }
        match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => sync_dir(parent),
            None => Ok(()),
        }
    }

    fn open(dir: &Path, opts: Options) -> Result<Inner> {
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::new(
                    Status::Io,
                    format!("{} is not a directory", dir.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Self::create_dir(dir, &opts)?,
            // Not "missing": a directory on the way the caller may not
            // search (EACCES), a loop of symlinks, a disk error.
            Err(e) => return Err(Error::io("looking up", dir, e)),
        }
        let lock = if opts.read_only {
            None
        } else {
            // Before the lock: a refused open leaves LOCK as it was.
            check_dir_writable(dir)?;
            Some(DirLock::acquire(dir)?)
        };

        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))? {
            let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
            if let Ok(name) = entry.file_name().into_string() {
                if datafile::parse_data_name(&name).is_some() {
                    check_regular(&entry, false)?;
                } else if hint::parse_hint_name(&name).is_some() {
                    check_regular(&entry, true)?;
                }
                names.push(name);
            }
        }
        let mut ids: Vec<u64> = names
            .iter()
            .filter_map(|n| datafile::parse_data_name(n))
            .collect();
        ids.sort_unstable();
        // New files take ids above every name in use, those of files the
        // repair option set aside included: a name is never used twice.
        let newest = names
            .iter()
            .filter_map(|n| datafile::parse_id(n, ".data.corrupt"))
            .chain(ids.last().copied())
            .max();
        // Before anything is changed (torn files removed, repairs): a file
        // from a newer release fails the open and leaves the directory as
        // it was.
        recovery::check_versions(dir, &ids)?;
        if !opts.read_only {
            recovery::remove_temporaries(dir, &names)?;
            // Hints whose data file a merge deleted.
            for id in names.iter().filter_map(|n| hint::parse_hint_name(n)) {
                if ids.binary_search(&id).is_err() {
                    datafile::remove_file(&hint::hint_path(dir, id))?;
                }
            }
        }

        let mut inner = Inner {
            dir: dir.to_path_buf(),
            keydir: Keydir::new(Seed::random()),
            files: RwLock::new(FileTable::default()),
            writer: Mutex::new(Writer {
                active: None,
                next_major: newest.map_or(1, |id| (id >> MAJOR_SHIFT) + 1),
                record: Vec::new(),
            }),
            newest_at_open: newest.unwrap_or(0),
            commit: GroupCommit::default(),
            merge_lock: Mutex::new(()),
            next_fnum: AtomicU32::new(1),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            sync_failed: AtomicBool::new(false),
            recovered_bytes_dropped: 0,
            recovered_zero_bytes: 0,
            repaired_records_skipped: 0,
            map_writes: !opts.read_only
                && matches!(opts.active_mapping(), Mapped::ForWrites { .. })
                && datafile::dir_reserves_blocks(dir),
            closed: AtomicBool::new(false),
            merges: AtomicU64::new(0),
            open_fds: Arc::new(AtomicUsize::new(0)),
            fd_tick: AtomicU64::new(0),
            queue: Queue::default(),
            map_addrs: MapAddrs::new(),
            lock: Mutex::new(lock),
            opts,
        };
        if inner.opts.repair && !inner.opts.read_only {
            inner.repair_files(&ids)?;
        }
        inner.load_keydir(&ids)?;
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
                // A torn creation (no header reached the disk, and no hint
                // says the file was synced): check_data_file handles it.
                Ok(false) if self.torn_creation_possible(id) => continue,
                // (A newer release's file never gets here: open refused it
                // in `check_versions` before any repair.) A header a few
                // bits from this version's, before a record that checks
                // out, is bit rot in the header alone: the file is
                // rewritten under a fresh one, keeping its records. (Not
                // any bad header: a newer release's, with its CRC damaged,
                // differs in its version and CRC, and must not be read as
                // this version's.) Anything else is set aside, not deleted.
                // A lost first page (see `check_data_file`) is rewritten
                // too.
                _ => {
                    self.repaired_records_skipped += 1;
                    let bit_rot = recovery::header_bit_rot(&mut r)?
                        && matches!(recovery::probe(&mut r, FILE_HEADER_LEN)?, Probe::Record(_));
                    if bit_rot || self.lost_header_page(id, &mut r)? {
                        self.rewrite_without_damage(id, &path)?;
                    } else {
                        recovery::set_aside(&self.dir, &path)?;
                        // Its hint must not outlive it under its id.
                        datafile::remove_file(&hint::hint_path(&self.dir, id))?;
                    }
                    continue;
                }
            }
            if let Some(d) = recovery::scan(&mut r, FILE_HEADER_LEN, |_, _, _| {})? {
                let torn_tail = self.may_be_torn(id, i + 1 == ids.len()) && d.next_valid.is_none();
                if !torn_tail {
                    self.rewrite_without_damage(id, &path)?;
                }
            }
        }
        Ok(())
    }

    /// Repair: rewrites data file `id` without its damaged regions (its
    /// hint, which no longer fits, goes first) and counts them.
    fn rewrite_without_damage(&mut self, id: u64, path: &Path) -> Result<()> {
        datafile::remove_file(&hint::hint_path(&self.dir, id))?;
        self.repaired_records_skipped +=
            recovery::rewrite_without_damage(&self.dir, path, |_, _, _| Ok(true))?;
        Ok(())
    }

    /// Fills the keydir from every data file (oldest first): from its hint
    /// when that is valid, else by scanning the data file (and then writing
    /// a fresh hint).
    fn load_keydir(&mut self, ids: &[u64]) -> Result<()> {
        let mut found = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            if let Some(f) = self.check_data_file(id, i + 1 == ids.len())? {
                found.push(f);
            }
        }
        // Hints store key hashes: the keydir takes the seed most of them
        // were written with, and files whose hint has another are scanned.
        let mut seeds: HashMap<Seed, usize> = HashMap::new();
        for hint in found.iter().filter_map(|f| f.hint.as_ref()) {
            *seeds.entry(hint.seed).or_default() += 1;
        }
        let seed = seeds
            .into_iter()
            .max_by_key(|&(s, n)| (n, s.0, s.1))
            .map_or_else(Seed::random, |(s, _)| s);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let to_scan: Vec<usize> = (0..found.len())
            .filter(|&i| !matches!(&found[i].hint, Some(h) if h.seed == seed))
            .collect();
        let mut scans = self
            .scan_files(&found, &to_scan, seed, threads)?
            .into_iter();
        let mut sources = Vec::new();
        for (i, f) in found.iter_mut().enumerate() {
            let fnum = self.next_fnum();
            let (hint, len) = match to_scan.binary_search(&i) {
                Ok(_) => {
                    let scan = scans.next().expect("one scan per file to scan");
                    (scan.hint, scan.scanned.len)
                }
                Err(_) => (f.hint.take().expect("a hint that fits"), f.len),
            };
            let path = self.dir.join(datafile::data_name(f.id));
            self.add_sealed(fnum, f.id, path, len, f.identity);
            sources.push(Source { fnum, hint });
        }
        loop {
            let mut keydir = Keydir::new(seed);
            // Hint files open at once stay within max_open_files (a
            // review's board with 1500 files and 16 descriptors failed to
            // open on 2 cores, with 8 hints open a loader).
            let open_files = self.opts.max_open_files as usize;
            let loaders = threads.min(open_files).max(1);
            match load::load(&mut keydir, &sources, loaders, open_files / loaders)? {
                Ok(loaded) => {
                    let files = self.files.get_mut();
                    for (fnum, bytes) in loaded.tombstones {
                        if let Some(f) = files.get(&fnum) {
                            f.add_tombstone(bytes);
                        }
                    }
                    for (fnum, bytes) in loaded.dead {
                        if let Some(f) = files.get(&fnum) {
                            f.dead_bytes.fetch_add(bytes, Ordering::Relaxed);
                        }
                    }
                    self.keydir = keydir;
                    return Ok(());
                }
                // Found wrong while loading: scan those files and start
                // over. A hint built by a scan is not checked again, so one
                // fails only if it cannot be read back: an error, not
                // another round.
                Err(Unloaded::NoRoom(n)) => {
                    drop(keydir);
                    let what = format_args!("the keydir, loading hint files");
                    return Err(Error::no_memory(n, what));
                }
                Err(Unloaded::BadHints(bad)) => {
                    if let Some(&i) = bad.iter().find(|&&i| sources[i].hint.built_here()) {
                        return Err(Error::new(
                            Status::Io,
                            format!(
                                "{}: the hint written for it after a scan cannot be read",
                                self.dir.join(datafile::data_name(found[i].id)).display()
                            ),
                        ));
                    }
                    let scans = self.scan_files(&found, &bad, seed, threads)?;
                    for (i, scan) in bad.into_iter().zip(scans) {
                        if scan.scanned.len != sources[i].hint.data_len {
                            let f = self.file(sources[i].fnum).expect("added above");
                            let id = found[i].identity;
                            self.add_sealed(f.fnum, f.id, f.path.clone(), scan.scanned.len, id);
                        }
                        sources[i].hint = scan.hint;
                    }
                }
            }
        }
    }

    /// Checks a data file's header and looks for its hint. None when the
    /// file holds nothing to load.
    fn check_data_file(&mut self, id: u64, newest: bool) -> Result<Option<Found>> {
        let path = self.dir.join(datafile::data_name(id));
        let gone = |e: Option<Error>| match self.opts.read_only {
            // A read-write handle holds the lock: the repair set it aside.
            false => e.map_or(Ok(None), Err),
            // Deleted by the writer's merge since the listing, and its
            // records may be in a merge output the listing missed.
            true => Err(Error::vanished(&path)),
        };
        if !path.exists() {
            return gone(None);
        }
        let mut r = match FileReader::open(&path) {
            Err(e) if !path.exists() => return gone(Some(e)),
            r => r?,
        };
        // The data file's own header is checked even when a hint vouches
        // for its records: a hint never makes a foreign file acceptable.
        let has_header = match recovery::check_header(&mut r) {
            Ok(h) => h,
            // The page with the header was lost, later ones were not: a
            // file never synced (see `scan_records`). The header is the
            // same in every data file, so the file is rewritten under a
            // fresh one, keeping its records; a read-only handle skips
            // the zeros in memory (a read-write repair did the rewrite).
            Err(_) if self.lost_header_page(id, &mut r)? => {
                if !self.opts.read_only {
                    let (rewritten, dropped) = recovery::rewrite_lost_pages(&self.dir, &r)?;
                    r = rewritten;
                    self.recovered_bytes_dropped += dropped;
                }
                true
            }
            // (Not a newer release's file: `check_versions` refused it.)
            Err(_) if self.opts.repair => {
                self.repaired_records_skipped += 1;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if !has_header {
            if self.torn_creation_possible(id) {
                // A crash before the file's creation reached the disk (the
                // newest file, or an older one never sealed, whose name a
                // later directory fsync made durable before its bytes). No
                // record in it was ever synced: the header is written
                // first, so any fsync that covered a record covered it.
                self.recovered_bytes_dropped += r.len;
                if !self.opts.read_only {
                    datafile::remove_file(&path)?;
                    sync_dir(&self.dir)?;
                }
                return Ok(None);
            }
            if self.opts.repair {
                // Read-only repair (read-write repair set it aside).
                self.repaired_records_skipped += 1;
                return Ok(None);
            }
            return Err(Error::corruption(format!(
                "{}: offset 0: no file header (the file is {} bytes, shorter than \
                 a {FILE_HEADER_LEN}-byte header or all zeros) but it has a hint",
                path.display(),
                r.len
            )));
        }
        // Repair verifies every record, so it reads no hints (and rewrites
        // them). A hint that cannot be read is as good as missing.
        let hint = match self.opts.repair {
            false => hint::open(
                &hint::hint_path(&self.dir, id),
                id,
                r.len,
                newest && self.opts.read_only,
            )?,
            true => None,
        };
        Ok(Some(Found {
            id,
            newest,
            len: r.len,
            hint,
            // A read-only handle changes no file, so the one read here is
            // the one it reads later, unless a writer replaces it.
            identity: self.opts.read_only.then_some(r.identity),
        }))
    }

    /// Scans `found[i]` for each `i` of `which`, on up to `threads` threads,
    /// and adds up what recovery dropped and repair skipped.
    fn scan_files(
        &mut self,
        found: &[Found],
        which: &[usize],
        seed: Seed,
        threads: usize,
    ) -> Result<Vec<Scan>> {
        let next = AtomicUsize::new(0);
        let this = &*self;
        let work = || {
            let mut out = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = which.get(k) else { break };
                out.push((k, this.scan_file(found[i].id, found[i].newest, seed)));
            }
            out
        };
        let mut done: Vec<(usize, Result<Scan>)> = std::thread::scope(|scope| {
            // Helpers beside the calling thread, which scans too: a helper
            // the system cannot start (a thread limit) is simply missing.
            let helpers: Vec<_> = (1..threads.min(which.len()))
                .filter_map(|_| {
                    std::thread::Builder::new()
                        .name("bitcask-scan".into())
                        .spawn_scoped(scope, work)
                        .ok()
                })
                .collect();
            let mut done = work();
            for h in helpers {
                done.extend(h.join().unwrap_or_default());
            }
            done
        });
        if done.len() != which.len() {
            return Err(Error::internal("a scanning thread panicked"));
        }
        done.sort_by_key(|(k, _)| *k);
        let scans = done
            .into_iter()
            .map(|(_, scan)| scan)
            .collect::<Result<Vec<Scan>>>()?;
        for scan in &scans {
            self.recovered_bytes_dropped += scan.scanned.dropped;
            self.recovered_zero_bytes += scan.scanned.zeros;
            self.repaired_records_skipped += scan.scanned.skipped;
        }
        Ok(scans)
    }

    /// Scans data file `id` for its records, truncating a torn tail, and
    /// returns its hint and length. A read-write handle writes the hint as
    /// it goes (its writer spills, so a file of any size is scanned in a
    /// few MiB) and then reads it from the file; a read-only one, or a
    /// repair that skipped damage, keeps it in memory.
    fn scan_file(&self, id: u64, newest: bool, seed: Seed) -> Result<Scan> {
        let writable = !self.opts.read_only;
        let mut writer = HintWriter::create(id, seed);
        if writable {
            writer = writer.spill_into(&self.dir);
        }
        // A file with a hint, even one not used, was synced before it was
        // hinted: only a file that may be torn needs the sync.
        let sync = writable && self.may_be_torn(id, newest);
        let scanned = self.scan_records(id, newest, sync, &mut writer)?;
        let hint = if writable && scanned.skipped == 0 {
            let finished = writer.finish_synced(scanned.len, &self.dir, &|r| self.synced(r));
            // A failed fsync fails the open, as the data file's does.
            if let Some(e) = self.failure() {
                return Err(e);
            }
            let built = match finished {
                Ok(()) => hint::open_built(&self.dir, id, scanned.len)?,
                Err(_) => None,
            };
            match built {
                Some(hint) => hint,
                // A hint that cannot be written (a full disk) only costs a
                // scan next time; for now, one in memory, from a second
                // scan (the writer is spent; a torn tail is gone by now).
                None => {
                    let mut writer = HintWriter::create(id, seed);
                    self.scan_records(id, newest, false, &mut writer)?;
                    writer.into_hint(scanned.len)?
                }
            }
        } else {
            writer.into_hint(scanned.len)?
        };
        Ok(Scan { hint, scanned })
    }

    /// Adds the records of data file `id` to `hint`, truncating a torn tail
    /// (a read-write handle) or, with the repair option, skipping damage.
    /// With `sync`, it also syncs the file (truncation syncs it too): a
    /// hint says its data file is on disk (see `may_be_torn`), and a file a
    /// crash left unsynced is about to get one.
    fn scan_records(
        &self,
        id: u64,
        newest: bool,
        sync: bool,
        hint: &mut HintWriter,
    ) -> Result<Scanned> {
        let path = self.dir.join(datafile::data_name(id));
        let mut r = FileReader::open(&path)?;
        let mut add_err = None;
        let (mut dropped, mut zeros, mut skipped) = (0, 0, 0);
        let mut from = FILE_HEADER_LEN;
        let mut len = r.len;
        loop {
            let damage = recovery::scan(&mut r, from, |off, hdr, key| {
                if let Err(e) = hint.add(off, hdr, key) {
                    add_err.get_or_insert(e);
                }
            })?;
            let Some(d) = damage else { break };
            // A read-only handle may read a file that a read-write handle
            // is appending to (into zeros allocated ahead, with the write
            // map): damage with valid records after it may be bytes that
            // were not written yet when they were read. A writer appends
            // in order, so by the time a later record is whole the bytes
            // before it are too: read again, damage that is still there
            // is damage.
            if self.opts.read_only
                && d.next_valid.is_some()
                && recovery::written_since(&mut r, d.offset)?
            {
                from = d.offset;
                continue;
            }
            if self.may_be_torn(id, newest) && d.next_valid.is_none() {
                // Torn tail: the last append was cut short by a crash.
                dropped += r.len.saturating_sub(d.offset);
                zeros += recovery::trailing_zeros(&mut r, d.offset)?;
                len = d.offset;
                if !self.opts.read_only {
                    DataFile::truncate(&path, d.offset)?;
                }
                break;
            }
            // A lost page (see `recovery::lost_page`): in a file without a
            // hint, which a crash may have left unsynced, zeros where
            // records were, with valid records after them: pages of
            // unsynced appends written back out of order, an earlier one
            // lost. Open keeps every record outside the zeros, as repair
            // would.
            let lost = match d.next_valid {
                Some(next) if self.torn_creation_possible(id) => {
                    recovery::lost_page(&mut r, d.offset, next)?
                }
                _ => false,
            };
            if lost && !self.opts.read_only {
                // Records before the damage keep their offsets in the
                // rewritten file, so the scan goes on from it there.
                let (rewritten, n) = recovery::rewrite_lost_pages(&self.dir, &r)?;
                r = rewritten;
                (len, from) = (r.len, d.offset);
                dropped += n;
                continue;
            }
            if !self.opts.repair && !lost {
                return Err(recovery::damage_error(&path, &d));
            }
            // Read-only: skip the damage in memory (and write no hint,
            // which would not cover the file).
            match (lost, d.next_valid) {
                (true, Some(next)) => dropped += next - d.offset,
                _ => skipped += 1,
            }
            match d.next_valid {
                Some(next) => from = next,
                None => {
                    len = d.offset;
                    break;
                }
            }
        }
        if let Some(e) = add_err {
            return Err(e);
        }
        if sync && skipped == 0 && dropped == 0 {
            r.sync_data()?;
        }
        Ok(Scanned {
            len,
            dropped,
            zeros,
            skipped,
        })
    }

    /// Whether a data file without a header may be a torn creation: only
    /// without a hint, which is written after the file's fsync (so a file
    /// with one had its header on disk, newest or not).
    fn torn_creation_possible(&self, id: u64) -> bool {
        !hint::hint_path(&self.dir, id).exists()
    }

    /// Whether data file `id` (read by `r`) lost the page with its header
    /// while later ones reached the disk: only in a file never synced.
    fn lost_header_page(&self, id: u64, r: &mut FileReader) -> Result<bool> {
        Ok(self.torn_creation_possible(id) && recovery::lost_header_page(r)?)
    }

    /// Whether a crash may have cut data file `id` short: the newest file,
    /// or one whose sealing never finished. A hint is written only after the
    /// seal's fsync, so a file without one was never completely sealed.
    fn may_be_torn(&self, id: u64, newest: bool) -> bool {
        newest || self.torn_creation_possible(id)
    }

    fn add_sealed(
        &self,
        fnum: u32,
        id: u64,
        path: PathBuf,
        len: u64,
        identity: Option<(u64, u64)>,
    ) {
        let file = DataFile::sealed(
            fnum,
            id,
            path,
            len,
            self.open_fds(),
            self.opts.maps(),
            identity,
        );
        self.files.write().insert(fnum, Arc::new(file));
    }

    /// Writes the hint file of a data file this handle wrote and sealed.
    /// Its records were checksummed when they were made, so only their
    /// headers and keys are read back, not the values.
    pub(crate) fn write_hint(&self, file: &DataFile) -> Result<()> {
        let mut r = FileReader::open(&file.path)?;
        let mut h = HintWriter::create(file.id, self.keydir.seed()).spill_into(&self.dir);
        let mut err = None;
        let walked = recovery::walk_own(&mut r, |off, hdr, key| {
            if let Err(e) = h.add(off, hdr, key) {
                err.get_or_insert(e);
            }
        });
        match (walked, err) {
            (Ok(end), None) if end == r.len => {
                h.finish_synced(r.len, &self.dir, &|r| self.synced(r))
            }
            (Ok(end), None) => Err(Error::corruption(format!(
                "{}: offset {end}: record runs past the end of the file",
                file.path.display()
            ))),
            (Err(e), _) | (_, Some(e)) => Err(e),
        }
    }

    /// The descriptor of a data file, opened on demand. Past
    /// max_open_files, the least recently used sealed file's is closed.
    pub(crate) fn fd(&self, file: &DataFile) -> Result<Arc<File>> {
        if let Some(fd) = file.fd_if_open() {
            file.last_used
                .store(self.fd_tick.load(Ordering::Relaxed), Ordering::Relaxed);
            return Ok(fd);
        }
        let (fd, opened) = file.open_fd().map_err(|e| {
            if self.opts.read_only && !file.path.exists() {
                // Files are opened at first read; a writer's merge may have
                // deleted this one since the read-only open.
                Error::new(
                    Status::Io,
                    format!(
                        "{} was deleted after this read-only handle opened (a merge by \
                         the read-write handle); reopen the read-only handle",
                        file.path.display()
                    ),
                )
            } else {
                e
            }
        })?;
        let tick = self.fd_tick.fetch_add(1, Ordering::Relaxed) + 1;
        file.last_used.store(tick, Ordering::Relaxed);
        if opened {
            self.evict_fds(file.fnum);
        }
        Ok(fd)
    }

    /// Closes least recently used descriptors of sealed files while more
    /// than max_open_files are open (`keep` is spared).
    pub(crate) fn evict_fds(&self, keep: u32) {
        let limit = self.opts.max_open_files as usize;
        while self.open_fds.load(Ordering::Relaxed) > limit {
            let victim = {
                let files = self.files.read();
                files
                    .values()
                    .filter(|f| f.fnum != keep && f.is_sealed() && f.fd_if_open().is_some())
                    .min_by_key(|f| f.last_used.load(Ordering::Relaxed))
                    .cloned()
            };
            match victim {
                Some(f) => {
                    f.close_fd();
                }
                None => return,
            }
        }
    }

    pub(crate) fn open_fds(&self) -> Arc<AtomicUsize> {
        self.open_fds.clone()
    }

    pub(crate) fn next_fnum(&self) -> u32 {
        self.next_fnum.fetch_add(1, Ordering::Relaxed)
    }

    /// Fails once the handle is closed: for an iterator that outlived it
    /// (it would read a database another handle may be changing, and
    /// call a clock whose owner may have freed it).
    pub(crate) fn check_open(&self) -> Result<()> {
        match self.closed.load(Ordering::Acquire) {
            false => Ok(()),
            true => Err(Error::invalid(
                "the iterator's database was closed: free the iterator",
            )),
        }
    }

    pub(crate) fn now(&self) -> u32 {
        (self.opts.clock)()
    }

    /// A key a put would write: within max_key_size.
    pub(crate) fn check_key(&self, key: &[u8]) -> Result<()> {
        self.opts.check_key_len(key.len())
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.opts.read_only {
            return Err(Error::new(
                Status::ReadOnly,
                format!("{} was opened read-only", self.dir.display()),
            ));
        }
        match self.failure() {
            Some(e) => Err(Error::new(
                e.status(),
                format!(
                    "writes refused after an earlier failure (close the handle and reopen the database): {}",
                    e.message()
                ),
            )),
            None => Ok(()),
        }
    }

    /// Refuses writes from now on: after a failed fsync the state of the
    /// page cache is unknown, after a panic the state of the handle.
    /// Returns `err` as the handle's failure (`Status::Failed`), for the
    /// caller that saw it to report.
    pub(crate) fn fail(&self, err: Error) -> Error {
        let err = err.failing_the_handle();
        let mut f = self.failure.lock();
        if f.is_none() {
            *f = Some(err.clone());
        }
        self.failed.store(true, Ordering::Release);
        err
    }

    /// Maps a failed fsync to a failed handle. Any other error of the
    /// step (a flush that found the disk full, a directory that could not
    /// be opened for want of descriptors) is only the caller's: nothing
    /// written before it is in doubt, and the handle goes on.
    pub(crate) fn synced(&self, r: Result<()>) -> Result<()> {
        match r {
            Err(e) if e.is_fsync_failure() => {
                self.sync_failed.store(true, Ordering::Relaxed);
                Err(self.fail(e))
            }
            r => r,
        }
    }

    /// The keydir entry of `key` if it is visible (not expired).
    pub(crate) fn live_location(&self, key: &[u8]) -> Option<Location> {
        self.live_location_fetching(key, |_, _| {})
    }

    /// `live_location` that shows `fetch` each candidate location first
    /// (see `Keydir::get_prefetching`).
    fn live_location_fetching(&self, key: &[u8], fetch: impl Fn(u32, u32)) -> Option<Location> {
        let loc = self.keydir.get_prefetching(key, fetch)?;
        // The clock is read only for keys that can expire.
        if loc.expiry != 0 && expired(loc.expiry, self.now()) {
            return None;
        }
        Some(loc)
    }

    pub(crate) fn file(&self, fnum: u32) -> Option<Arc<DataFile>> {
        self.files.read().get(&fnum).cloned()
    }

    /// `mark_dead` for the writer: a record in the active file is found
    /// without the file table's lock, which every get takes too.
    fn mark_dead_by_writer(&self, w: &Writer, old: Location, key_len: usize) {
        match &w.active {
            Some(a) if a.fnum == old.file => add_dead(a, old, key_len),
            _ => self.mark_dead(old, key_len),
        }
    }

    /// Adds the record a keydir entry pointed at to its file's dead bytes.
    pub(crate) fn mark_dead(&self, old: Location, key_len: usize) {
        if let Some(f) = self.files.read().get(&old.file) {
            add_dead(f, old, key_len);
        }
    }

    fn put(&self, key: &[u8], value: &[u8], ttl_secs: u32) -> Result<()> {
        self.check_writable()?;
        self.check_key(key)?;
        self.opts.check_value_len(value.len())?;
        let expiry = match ttl_secs {
            0 => 0,
            ttl => self.now().saturating_add(ttl),
        };
        let hashed = self.keydir.prepare(key);
        let a = {
            let mut w = self.writer.lock();
            // The keydir's memory first: a put that cannot be indexed
            // must not be on disk either.
            self.keydir
                .make_room(key, &hashed, expiry != 0)
                .map_err(|NoRoom(n)| Error::no_memory(n, format_args!("the keydir")))?;
            let a = self.append(&mut w, key, value, expiry, 0)?;
            let loc = Location {
                file: a.fnum,
                offset: a.offset as u32,
                value_len: value.len() as u32,
                expiry,
            };
            if let Some(old) = self.keydir.insert_hashed(key, hashed, loc) {
                self.mark_dead_by_writer(&w, old, key.len());
            }
            a
        };
        self.durable(a.to_sync.as_deref(), a.end)
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        self.check_writable()?;
        Options::check_lookup_key_len(key.len())?;
        let a = {
            let mut w = self.writer.lock();
            // Checked under the writer lock: no put of this key can slip in.
            if self.live_location(key).is_none() {
                return Ok(false);
            }
            let a = self.append(&mut w, key, &[], 0, FLAG_TOMBSTONE)?;
            if let Some(old) = self.keydir.remove(key) {
                self.mark_dead_by_writer(&w, old, key.len());
            }
            a
        };
        self.durable(a.to_sync.as_deref(), a.end).map(|_| true)
    }

    /// Appends one record to the active file.
    fn append(
        &self,
        w: &mut Writer,
        key: &[u8],
        value: &[u8],
        expiry: u32,
        flags: u8,
    ) -> Result<Appended> {
        let len = record_len(key.len(), value.len() as u32);
        let now = self.now();
        // Out of `w` while `file` borrows it (an error drops it: the next
        // such record allocates again).
        let mut rec = std::mem::take(&mut w.record);
        let file = self.active_for(w, len)?;
        // Flush before appending, so a failed write (a full disk) rejects
        // this record cleanly instead of leaving it half-acknowledged.
        let encode = |buf: &mut Vec<u8>| format::encode_record(buf, now, expiry, flags, key, value);
        // Appends are buffered up to `write_buffer` bytes before a
        // `pwrite`; a record that does not fit in an empty buffer is
        // written at once.
        // A file written through its map keeps nothing in the buffer:
        // records the map does not take are written at once.
        let cap = match file.writes_through_map() {
            true => 0,
            false => self.opts.write_buffer,
        };
        let into_map =
            |dst: &mut [u8]| format::encode_record_into(dst, now, expiry, flags, key, value);
        let taken = match file.append_mapped(len as usize, into_map)? {
            None => file.append_within(len as usize, cap, encode)?,
            mapped => mapped,
        };
        let offset = match taken {
            Some(offset) => offset,
            None => {
                file.flush()?;
                if len as usize >= cap {
                    // Too big for the buffer (which may be 0 bytes).
                    if len <= ONE_WRITE {
                        rec.clear();
                        let what = format_args!("a record of {len} bytes");
                        crate::error::reserve(&mut rec, len as usize, what)?;
                        encode(&mut rec);
                        file.append_direct(&[&rec])?
                    } else {
                        let header = format::encode_header(now, expiry, flags, key, value);
                        file.append_direct(&[&header, key, value])?
                    }
                } else {
                    file.append(len as usize, encode)?
                }
            }
        };
        if flags & FLAG_TOMBSTONE != 0 {
            file.add_tombstone(len);
        }
        let appended = Appended {
            fnum: file.fnum,
            to_sync: (self.opts.sync == SyncMode::Always).then(|| file.clone()),
            offset,
            end: offset + len,
        };
        w.record = rec;
        Ok(appended)
    }

    /// The active file, starting a new one first when `len` more bytes
    /// would pass max_file_size. The file it replaces is flushed here and
    /// handed to the background worker to be synced and sealed (see
    /// `seal_retired`): no put waits for that fsync.
    fn active_for<'w>(&self, w: &'w mut Writer, len: u64) -> Result<&'w Arc<DataFile>> {
        let mut retired = None;
        if let Some(a) = &w.active {
            if a.len() > FILE_HEADER_LEN && a.len() + len > self.opts.max_file_size {
                a.flush()?;
                // Queued files must not each keep a buffer of up to 64 MiB
                // while the worker catches up.
                a.release_buffer();
                retired = w.active.take();
            }
        }
        if w.active.is_none() {
            if w.next_major > u32::MAX as u64 {
                // Only a file named with the top major (not bitcask's)
                // leads here: its successor's id would wrap to 0.
                return Err(Error::new(
                    Status::Io,
                    format!(
                        "{}: no data file id is left above {:016x}",
                        self.dir.display(),
                        (w.next_major - 1) << MAJOR_SHIFT
                    ),
                ));
            }
            let id = w.next_major << MAJOR_SHIFT;
            let path = self.dir.join(datafile::data_name(id));
            let created = DataFile::create(
                self.next_fnum(),
                id,
                Some(&self.dir),
                &path,
                path.clone(),
                self.open_fds(),
                self.opts.active_mapping(),
            );
            let file = match created {
                Ok(f) => Arc::new(f),
                Err(e) => {
                    // Keep appending to the old file rather than lose it.
                    w.active = retired;
                    return Err(e);
                }
            };
            w.next_major += 1;
            self.files.write().insert(file.fnum, file.clone());
            w.active = Some(file);
            if let Some(old) = retired {
                self.seal_retired(old)?;
            }
        }
        Ok(w.active.as_ref().expect("set above"))
    }

    /// Queues a file the writer moved away from for the worker to sync,
    /// seal and hint.
    fn seal_retired(&self, f: Arc<DataFile>) -> Result<()> {
        // Back-pressure: when the worker lags so far behind that retired
        // files hold more descriptors than allowed, the writer syncs and
        // seals this one itself, so that its descriptor may close, but
        // leaves the hint (a read of the whole file, and an fsync) to the
        // worker: puts wait for one fsync, not for all of a seal.
        if self.open_fds.load(Ordering::Relaxed) > self.opts.max_open_files as usize {
            self.sync_and_seal(&f)?;
            self.evict_fds(u32::MAX);
        }
        self.queue.seal(f);
        Ok(())
    }

    /// Syncs and seals `file` unless the handle has failed. After a failed
    /// fsync nothing tells what reached the disk: a retried fsync may
    /// report success for pages the kernel dropped. So no file is sealed or
    /// hinted any more (not the active file at close, not a retired one the
    /// worker still has queued): the next open scans them and checks every
    /// record. And another thread's fsync of this file may have failed
    /// while this one succeeded (Linux reports a writeback error once), so
    /// the failure is checked again after.
    fn sync_and_seal(&self, file: &DataFile) -> Result<()> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        if !file.is_sealed() {
            self.synced(file.seal())?;
        }
        self.failure().map_or(Ok(()), Err)
    }

    /// Syncs and seals a retired file, then writes its hint (the worker's
    /// job, and merge's for files the worker has not reached yet). A hint
    /// that cannot be written only costs a scan at the next open.
    pub(crate) fn seal_file(&self, file: &DataFile) -> Result<()> {
        // No hint may vouch for a file on a failed handle.
        self.sync_and_seal(file)?;
        if file.take_hint() {
            let _ = self.write_hint(file);
        }
        if self.file(file.fnum).is_none() {
            // A merge took the file while its hint was written: it leaves
            // the file table before the merge deletes its hint and data,
            // so a hint renamed into place after that is removed here.
            let _ = datafile::remove_file(&hint::hint_path(&self.dir, file.id));
        }
        // Its descriptor, open since the file was created, may be closed
        // now like any other.
        self.evict_fds(u32::MAX);
        Ok(())
    }

    /// Waits until `file` (set only in BC_SYNC_ALWAYS mode, see
    /// `Appended::to_sync`) is on stable storage up to `end`.
    fn durable(&self, file: Option<&DataFile>, end: u64) -> Result<()> {
        match file {
            Some(f) => self.sync_upto(f, end),
            None => Ok(()),
        }
    }

    /// Returns once `file` is synced up to `end`, sharing the fsync with
    /// the other writers waiting (see `commit`).
    fn sync_upto(&self, file: &DataFile, end: u64) -> Result<()> {
        self.commit.commit(
            || file.is_synced_to(end),
            // The fsync this caller waited on failed: a retry cannot vouch
            // for the record (see `sync`).
            || self.failure(),
            || {
                {
                    let _w = self.writer.lock();
                    if file.is_sealed() {
                        return Ok(());
                    }
                    file.flush()?;
                }
                self.synced(file.sync_data())
            },
        )
    }

    /// Files the writer has moved away from that are not sealed yet. Taking
    /// the writer lock as `w` makes the list exact: no rotation can slip the
    /// new active file into it.
    pub(crate) fn unsealed_retired(&self, w: &Writer) -> Vec<Arc<DataFile>> {
        let active = w.active.as_ref().map(|a| a.fnum);
        self.files
            .read()
            .values()
            .filter(|f| !f.is_sealed() && Some(f.fnum) != active)
            .cloned()
            .collect()
    }

    /// Makes every write that returned before the call durable: the
    /// active file up to its end, and files the writer has retired but the
    /// worker has not sealed yet (their records were flushed on retirement).
    pub(crate) fn sync(&self) -> Result<()> {
        self.sync_retired_then_active(DataFile::sync_data)
    }

    /// The interval sync (`BC_SYNC_INTERVAL`): as `sync`, but a retired
    /// file whose fsync another thread is running (the worker's seal) is
    /// left to that fsync, so that the next interval's flush of the active
    /// file is not held up behind a whole file's write-back.
    pub(crate) fn sync_interval(&self) -> Result<()> {
        self.sync_retired_then_active(DataFile::sync_data_unless_busy)
    }

    fn sync_retired_then_active(
        &self,
        sync_retired: impl Fn(&DataFile) -> Result<()>,
    ) -> Result<()> {
        if self.opts.read_only {
            return Ok(());
        }
        // Once an fsync has failed, no later one can vouch for the data
        // written before it (the kernel may have dropped those pages and
        // report success on a retry).
        self.check_writable()?;
        let (active, retired) = {
            let w = self.writer.lock();
            // The active file's buffer goes to the OS first: a process
            // crash then loses nothing acknowledged before this sync began,
            // however long the fsyncs of retired files below take (a seal
            // in progress holds one for a whole file's write-back).
            if let Some(a) = &w.active {
                a.flush()?;
            }
            let active = w.active.as_ref().map(|a| (a.clone(), a.len()));
            (active, self.unsealed_retired(&w))
        };
        for f in &retired {
            self.synced(sync_retired(f))?;
        }
        match active {
            Some((file, end)) => self.sync_upto(&file, end),
            // As in `seal_file`: an fsync elsewhere may have failed.
            None => self.failure().map_or(Ok(()), Err),
        }
    }

    fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        if self.opts.read_only {
            return Ok(());
        }
        // Seal the active file (a reopen never appends to an old file) and
        // write its hint now, so the next open need not scan it.
        let active = self.writer.lock().active.take();
        // After a failure, whether or not a file is active: a merge that
        // took the active file to seal it may have failed before its fsync.
        // Taken from the writer, the active file is one more unsealed file.
        let sealed = match self.failure() {
            Some(_) => self.close_after_failure(active.as_deref()),
            None => self.seal_unsealed(),
        };
        self.lock.lock().take();
        // A handle that failed reports it (BC_FAILED), with or without an
        // active file, and what close could not write besides.
        match (self.failure(), sealed) {
            (Some(f), Err(e)) => Err(Error::new(
                Status::Failed,
                format!("{}; closing, then: {}", f.message(), e.message()),
            )),
            (Some(f), Ok(())) => Err(f),
            (None, sealed) => sealed,
        }
    }

    /// Close's sealing: the active file, and retired files the worker
    /// could not seal (a seal that failed other than in its fsync, which
    /// fails the handle: in the truncate that cuts a file written through
    /// its map, say). Sealed now, or at least synced: close makes every
    /// acknowledged put durable and says what it could not do. (A file
    /// left unsealed keeps the zeros after its records; the next open cuts
    /// them as the torn end of a file never sealed.)
    fn seal_unsealed(&self) -> Result<()> {
        let unsealed = self.unsealed_retired(&self.writer.lock());
        let mut result = Ok(());
        for f in unsealed {
            if let Err(e) = self.seal_file(&f) {
                // A failed fsync fails the handle, which close reports.
                if self.failure().is_none() {
                    let _ = self.synced(f.sync_data());
                }
                result = result.and(Err(e));
            }
        }
        result
    }

    /// Close's work on a failed handle. After a failed fsync nothing more
    /// is written. After a caught bug the disk is not in doubt and the
    /// records in the buffer were acknowledged: they are written and every
    /// unsealed file synced, but nothing is sealed or hinted (the handle's
    /// state is unknown), so the next open scans those files and checks
    /// every record; a record a panic cut short is a torn tail there.
    fn close_after_failure(&self, active: Option<&DataFile>) -> Result<()> {
        if self.sync_failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        // A flush that fails (a full disk) does not keep the other files
        // from their fsync: what the OS holds of them still goes to disk.
        let flushed = active.map_or(Ok(()), |a| a.flush());
        // The active file is no longer the writer's: it is one of these.
        let unsealed = self.unsealed_retired(&self.writer.lock());
        let mut synced = Ok(());
        for f in unsealed {
            synced = synced.and(f.sync_data());
        }
        flushed.and(synced)
    }

    /// The error that failed the handle, if one did.
    pub(crate) fn failure(&self) -> Option<Error> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        Some(
            self.failure
                .lock()
                .clone()
                .unwrap_or_else(|| Error::internal("the handle failed").failing_the_handle()),
        )
    }

    pub(crate) fn with_value<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>> {
        self.with_record(key, None, |rec, at| Ok(f(rec.parts(at).1)))
    }

    /// The value of `key`, copied out. A value larger than the read buffer
    /// keeps, read without a memory map, is read into a vector of its own,
    /// which is handed out: held once, not as the record read and a copy.
    pub(crate) fn value(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let at = RECORD_HEADER_LEN + key.len();
        self.with_record(key, Some(at), |rec, at| match rec {
            Bytes::Split(_, value) => Ok(std::mem::take(value)),
            whole => copy_out(whole.parts(at).1),
        })
    }

    /// Runs `f` on the checked record of `key` and where its value starts;
    /// with `split`, a large record is read as `DataFile::with_bytes` says.
    fn with_record<R>(
        &self,
        key: &[u8],
        split: Option<usize>,
        f: impl FnOnce(Bytes<'_>, usize) -> Result<R>,
    ) -> Result<Option<R>> {
        Options::check_lookup_key_len(key.len())?;
        // Called at most once (a read that fails never reaches it), but
        // the loop below may read more than once.
        let mut f = Some(f);
        // A merge may retire the file between the keydir lookup and the
        // file lookup; it moves the keydir first, so looking again finds
        // the new location.
        for _ in 0..16 {
            // The record loads while the keydir compares the key.
            let fetch = |file, offset| self.map_addrs.prefetch(file, offset);
            let Some(loc) = self.live_location_fetching(key, fetch) else {
                return Ok(None);
            };
            let Some(file) = self.file(loc.file) else {
                continue;
            };
            let r = with_read_buf(|buf| {
                let len = record_len(key.len(), loc.value_len) as usize;
                let at = RECORD_HEADER_LEN + key.len();
                let out = file.with_bytes(
                    loc.offset as u64,
                    len,
                    split.filter(|_| len > READ_BUFFER_KEPT),
                    buf,
                    || self.fd(&file),
                    |rec| {
                        check_record(&rec, key, &file, loc.offset)?;
                        let f = f.take().expect("a value is handed out once");
                        f(rec, at)
                    },
                );
                // Given back after a large record, read or failed.
                if buf.capacity() > READ_BUFFER_KEPT {
                    *buf = Vec::new();
                }
                Ok(Some(out?))
            });
            self.map_addrs.note(file.fnum, file.map_addr());
            // The file may have had to be opened, and a merge may have
            // deleted it since it was looked up: then look again, unless
            // the record was read and `f` failed (no memory for a copy).
            if r.is_err() && f.is_some() && self.file(loc.file).is_none() {
                continue;
            }
            return r;
        }
        Err(Error::internal(
            "the keydir kept pointing at retired files".to_string(),
        ))
    }

    /// Keys in the keydir that have not expired.
    pub(crate) fn live_keys(&self) -> u64 {
        let now = self.now();
        self.keydir.len_unexpired(|expiry| expired(expiry, now)) as u64
    }

    /// Per data file: expired keys and their record bytes.
    pub(crate) fn expired_by_file(&self) -> HashMap<u32, (u64, u64)> {
        let now = self.now();
        let mut out: HashMap<u32, (u64, u64)> = HashMap::new();
        self.keydir.for_each_expiring(|key, loc| {
            if expired(loc.expiry, now) {
                let e = out.entry(loc.file).or_default();
                e.0 += 1;
                e.1 += record_len(key.len(), loc.value_len);
            }
        });
        out
    }

    fn stats(&self) -> Stats {
        // Both scan the keydir: before the file table's lock, which a
        // rotation waits for, and every get behind it.
        let expired = self.expired_by_file();
        // Counted apart from `expired` (writes go on meanwhile), in one
        // pass that cannot go below zero.
        let live_keys = self.live_keys();
        let files = self.files.read();
        let mut unsealed = files.values().filter(|f| !f.is_sealed()).peekable();
        let mut s = Stats {
            live_keys,
            data_files: files.len() as u64,
            recovered_bytes_dropped: self.recovered_bytes_dropped,
            recovered_zero_bytes: self.recovered_zero_bytes,
            repaired_records_skipped: self.repaired_records_skipped,
            merges: self.merges.load(Ordering::Relaxed),
            keydir_bytes: self.keydir.memory_bytes() as u64,
            // From the files, not the writer's lock (which a stats call
            // would then wait on, and take in the other order than the
            // writer's rotation takes `files`): only the active file (and
            // a retired one not yet sealed) writes through its map. With
            // none (before the first put, after a merge took it), what
            // the next one will do.
            writes_through_map: match unsealed.peek() {
                Some(_) => unsealed.any(|f| f.writes_through_map()),
                None => self.map_writes,
            },
            ..Stats::default()
        };
        for f in files.values() {
            let records = f.record_bytes.load(Ordering::Relaxed);
            let (n_expired, expired_bytes) = expired.get(&f.fnum).copied().unwrap_or_default();
            s.expired_keys += n_expired;
            let dead = (f.dead_bytes.load(Ordering::Relaxed) + expired_bytes).min(records);
            s.total_bytes += FILE_HEADER_LEN + records;
            s.dead_bytes += dead;
            s.live_bytes += records - dead;
        }
        s
    }
}

/// Open data files by handle. Handles are small sequential integers chosen
/// by this process, so they are their own hash: every get looks one up.
pub(crate) type FileTable = HashMap<u32, Arc<DataFile>, BuildHasherDefault<HandleHasher>>;

#[derive(Default)]
pub(crate) struct HandleHasher(u64);

impl Hasher for HandleHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }

    fn write_u32(&mut self, n: u32) {
        // Spread sequential handles over the table's buckets.
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Where `append` put a record.
struct Appended {
    /// Handle of the file the record went to.
    fnum: u32,
    /// The file itself, kept only when the caller must wait for its fsync
    /// (BC_SYNC_ALWAYS): a reference count is not touched on every put.
    to_sync: Option<Arc<DataFile>>,
    offset: u64,
    /// Offset just past the record.
    end: u64,
}

/// A read-write open makes files in the directory (data files, hints):
/// one the process may not write to is refused now, rather than open
/// succeeding and every put failing. (A LOCK file others may write lets
/// the lock be taken in a directory that is not writable.) Tried, not
/// asked: an unnamed file (`O_TMPFILE`) is made and dropped, which leaves
/// nothing behind even after a crash; permission bits, ACLs, read-only
/// mounts and immutable directories all answer as a real file would.
/// (`faccessat` was tried first: a seccomp filter that answers its newer
/// form with EPERM made every directory look unwritable.)
fn check_dir_writable(dir: &Path) -> Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let probe = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .mode(0o600)
            .open(dir);
        if let Err(e) = probe {
            if let Some(libc::EACCES | libc::EPERM | libc::EROFS) = e.raw_os_error() {
                return Err(Error::new(
                    Status::Io,
                    format!(
                        "{}: a read-write open needs to create files in this directory, and this process may not ({e}): open it read-only, or let it write there",
                        dir.display()
                    ),
                ));
            }
            // Unnamed files unsupported here (EOPNOTSUPP; EISDIR before
            // Linux 3.11), or a failure the first file made will report.
        }
    }
    let _ = dir;
    Ok(())
}

/// Refuses a file named like a data or hint file that is not a regular
/// file (opening a FIFO would block the open forever). The directory entry
/// tells its type without a system call; only a symbolic link is followed.
/// A symbolic link to nothing is a missing hint (scanned for, like any bad
/// hint), but fails the open as a data file.
fn check_regular(entry: &fs::DirEntry, hint: bool) -> Result<()> {
    let path = entry.path();
    let io = |e| Error::io("checking", &path, e);
    let mut kind = entry.file_type().map_err(io)?;
    if kind.is_symlink() {
        kind = match fs::metadata(&path) {
            Ok(m) => m.file_type(),
            Err(e) if hint && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
    }
    if kind.is_file() {
        return Ok(());
    }
    Err(Error::corruption(format!(
        "{} is not a regular file (bitcask's data and hint files are); move it away",
        path.display()
    )))
}

/// Whether an expiry time (0 = never) has passed at `now`.
pub(crate) fn expired(expiry: u32, now: u32) -> bool {
    expiry != 0 && expiry <= now
}

/// Verifies a record read for `key`: CRC, and that it is the record the
/// keydir meant (same key, not a tombstone).
fn check_record(rec: &Bytes<'_>, key: &[u8], file: &DataFile, offset: u32) -> Result<()> {
    let bad =
        |what: &str| Error::corruption(format!("{}: offset {offset}: {what}", file.path.display()));
    // A whole record's CRC in one call: crc32fast folds with SIMD only
    // over calls of 128 bytes or more (a 100-byte value's record is 135).
    let (head, rest): (&[u8], &[u8]) = match rec {
        Bytes::Whole(record) => (record, &[]),
        Bytes::Split(head, value) => (head, value),
    };
    if !format::crc_ok(head, rest) {
        return Err(bad("record checksum mismatch"));
    }
    let hdr = format::RecordHeader::decode(head);
    if hdr.is_tombstone()
        || hdr.key_len as usize != key.len()
        || &head[RECORD_HEADER_LEN..RECORD_HEADER_LEN + key.len()] != key
    {
        return Err(bad("record does not hold the key the keydir points at"));
    }
    Ok(())
}

/// What `scan_records` found: the file's length after any torn tail, what
/// recovery dropped and repair skipped (a read-only repair that skipped
/// damage writes no hint).
struct Scanned {
    len: u64,
    dropped: u64,
    /// Of `dropped`, the zeros that ended torn tails.
    zeros: u64,
    skipped: u64,
}

/// A data file scanned at open: its hint, built from the scan, and what
/// the scan found.
struct Scan {
    hint: Hint,
    scanned: Scanned,
}

/// A data file found at open, with its hint if one fits it.
struct Found {
    id: u64,
    newest: bool,
    len: u64,
    hint: Option<Hint>,
    /// Device and inode, kept by a read-only handle (`DataFile::identity`).
    identity: Option<(u64, u64)>,
}

/// Counts the record `old` as dead in its file `f`.
fn add_dead(f: &DataFile, old: Location, key_len: usize) {
    f.dead_bytes
        .fetch_add(record_len(key_len, old.value_len), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread gives back its read buffer after a large record, also when
    /// the read failed (a damaged record of 1.5 GiB on a 32-bit device
    /// would otherwise stay held, and later gets run out of memory).
    #[test]
    fn the_read_buffer_is_given_back_after_a_failed_large_read() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            mmap: false,
            ..Options::default()
        };
        let db = Db::open(dir.path(), opts.clone()).unwrap();
        db.put(b"big", &vec![7u8; 4 * READ_BUFFER_KEPT]).unwrap();
        db.close().unwrap();
        let data = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "data"))
            .unwrap();
        let mut bytes = fs::read(&data).unwrap();
        let at = bytes.len() - 10;
        bytes[at] ^= 1;
        fs::write(&data, &bytes).unwrap();
        let db = Db::open(dir.path(), opts).unwrap();
        let held = || READ_BUF.with(|b| b.borrow().capacity());
        // `with_value` reads the record whole into the thread's buffer
        // (a get reads a large value into a vector of its own).
        let read = db.with_value(b"big", |v| v.len());
        assert_eq!(read.unwrap_err().status(), Status::Corruption);
        assert!(held() <= READ_BUFFER_KEPT, "{} bytes held", held());
        assert_eq!(db.get(b"big").unwrap_err().status(), Status::Corruption);
    }
}
