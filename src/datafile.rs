//! Data files: naming, creation, positional reads, and the active file's
//! append buffer.
//!
//! With the write map off (or where it cannot be used) the active file
//! buffers appended records in memory (`Tail`) and writes them with
//! `pwrite` when the buffer fills, on sync, or when it is sealed.
//! Readers find a record either on disk (below `flushed`) or in the tail, so
//! a get right after a put sees the new value, and a reader never waits for
//! the writer's I/O: the writer holds only a shared lock on the tail while
//! its `pwrite` runs.
//!
//! With the write map (`Mapped::ForWrites`, the default on 64-bit targets
//! where `fallocate` reserves blocks) the active file is instead written
//! through a writable shared map: an append copies its
//! record into the page cache at once (`append_mapped`), so nothing is
//! held in the process and `flushed` is always the end. The file is grown
//! ahead of the writes in `PREALLOCATE` steps with `fallocate` (near a full
//! disk by the record's pages; a disk with no room for those fails the put
//! there, cleanly), and cut back to its records when sealed; a
//! crash before that leaves a tail of zeros, which the next open cuts as a
//! torn tail.

use crate::error::{Error, Result, Status};
use crate::format::{self, FILE_HEADER_LEN};
use crate::mmap::{Map, PAGE};
use parking_lot::{Mutex, RwLock};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// A file id's high 32 bits grow by one for each new active file; merge
/// outputs take the ids right after the newest file they follow, so the
/// numeric order of ids is always the age order of the records inside.
pub(crate) const MAJOR_SHIFT: u32 = 32;

pub fn data_name(id: u64) -> String {
    format!("{id:016x}.data")
}

/// Parses `{16 hex digits}.data`; anything else is not a data file.
pub fn parse_data_name(name: &str) -> Option<u64> {
    parse_id(name, ".data")
}

/// Parses `{16 lowercase hex digits}{suffix}`, the names bitcask writes.
/// Uppercase digits are not one of its names: such a file, and the
/// lowercase file of the same id, would be one id listed twice.
pub(crate) fn parse_id(name: &str, suffix: &str) -> Option<u64> {
    let stem = name.strip_suffix(suffix)?;
    let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if stem.len() != 16 || !stem.bytes().all(lower_hex) {
        return None;
    }
    u64::from_str_radix(stem, 16).ok()
}

/// Makes the directory entry changes (create, rename, unlink) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| Error::io("opening directory", dir, e))?;
    d.sync_all()
        .map_err(|e| Error::fsync("syncing directory", dir, e))
}

struct Tail {
    /// File offset of `pending[0]`.
    base: u64,
    pending: Vec<u8>,
}

/// How a new data file is memory-mapped.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mapped {
    /// Not at all: reads use `pread`.
    No,
    /// Read-only, this many bytes: reads copy from the map.
    ForReads(u64),
    /// Writable, this many bytes: appends copy records into it too (where
    /// the filesystem reserves `fallocate`d blocks). With `dirty_ahead`,
    /// the pages ahead of a fast writer's records are faulted in for
    /// writing (see `Map::populate`): for a handle that does not fsync as
    /// it goes, which would write them out as zeros first.
    ForWrites { len: u64, dirty_ahead: bool },
}

/// The step in which a file written through its map grows: each step is
/// one `fallocate`.
const PREALLOCATE: u64 = 1 << 20;

/// The first step: a file grows to 64 KiB, then doubles up to the full
/// step, so that a database that holds little takes little disk ahead.
const FIRST_STEP: u64 = 64 << 10;

/// The pages faulted in ahead of the records at a time (see
/// `populate_ahead`): one put in about 1,900 of 100 bytes pays for 64
/// pages, 0.3-0.5 ms (the first chunk of a step also reads the step ahead
/// into the page cache: the kernel's readahead, which allocates it in
/// large folios). 32 KiB chunks cost 7% of the puts' throughput and
/// raised p99.9 from 1-2 to 45 us; 256 KiB costs neither. (Readahead off,
/// `MADV_RANDOM`, halved the first chunk's cost but cost 5% of the
/// puts' throughput: pages one at a time.)
const POPULATE_CHUNK: u64 = 256 << 10;

/// Whether `fallocate` on `file`'s filesystem reserves the blocks that
/// stores into the map later fill, so that a full disk fails the
/// `fallocate` (an error for the put) and never a store (SIGBUS): ext4,
/// XFS and tmpfs. Not on copy-on-write filesystems (btrfs, ZFS, bcachefs),
/// which allocate anew at writeback, nor on those not known here (overlay,
/// network and FUSE filesystems pass the call on to what may be either).
fn reserves_blocks(file: &File) -> bool {
    filesystem(file).is_some_and(reserving_filesystem)
}

/// The bytes an unprivileged process may still write on `dir`'s
/// filesystem (`statvfs`: available blocks times their size), if known.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: statvfs reads the NUL-terminated path and fills the struct
    // we own.
    if unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: zeroed, then filled by a successful statvfs.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ by target
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// The magic number of `file`'s filesystem (`statfs.f_type`).
fn filesystem(file: &File) -> Option<u64> {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: fstatfs fills the struct we own from a descriptor we own.
    if unsafe { libc::fstatfs(file.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: zeroed, then filled by a successful fstatfs.
    let f_type = unsafe { st.assume_init() }.f_type;
    // (i32 on 32-bit targets: the magic numbers are 32 bits.)
    #[allow(clippy::unnecessary_cast)]
    Some(f_type as i64 as u64 & 0xffff_ffff)
}

/// The soft file size limit (RLIMIT_FSIZE) in bytes.
#[allow(clippy::unnecessary_cast)] // rlim_t is u32 on some 32-bit targets
fn file_size_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut r) } != 0
        || r.rlim_cur == libc::RLIM_INFINITY
    {
        return u64::MAX;
    }
    r.rlim_cur as u64
}

/// Nanoseconds since the first call: a clock for `DataFile::last_step`.
fn elapsed_ns() -> u64 {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

/// `reserves_blocks` for the directory `dir`, where new data files go.
pub fn dir_reserves_blocks(dir: &Path) -> bool {
    File::open(dir).is_ok_and(|d| reserves_blocks(&d))
}

const EXT4: u64 = 0xEF53; // ext2, ext3 and ext4 share it
const XFS: u64 = 0x5846_5342;
const TMPFS: u64 = 0x0102_1994;

/// `reserves_blocks` by the filesystem's magic number (`statfs.f_type`).
fn reserving_filesystem(f_type: u64) -> bool {
    matches!(f_type, EXT4 | XFS | TMPFS)
}

/// Records from this size on are written with `pwrite` even to a file
/// written through its map: a page faulted in through a map costs the
/// kernel several times a page written by `pwrite` (3-4 µs against about
/// 1 here), which records spanning pages do not win back.
const MAPPED_RECORD_MAX: usize = 4096;

/// A zero-sized field that starts a new cache line in a `repr(C)` struct.
#[repr(align(64))]
struct CacheLine;

/// A record's bytes as `DataFile::with_bytes` found them.
pub enum Bytes<'a> {
    /// In one piece: in the file's map, or copied or read into the
    /// caller's buffer.
    Whole(&'a [u8]),
    /// Read in two parts, as the caller asked: the first (in its buffer)
    /// and the rest, in a vector of its own that the callee may keep.
    Split(&'a [u8], &'a mut Vec<u8>),
}

impl Bytes<'_> {
    /// The bytes before `at` and from `at` on (`at`: at most the length,
    /// and for `Split`, where it split).
    pub fn parts(&self, at: usize) -> (&[u8], &[u8]) {
        match self {
            Bytes::Whole(b) => b.split_at(at),
            Bytes::Split(head, rest) => {
                debug_assert_eq!(head.len(), at, "split elsewhere");
                (head, rest)
            }
        }
    }
}

/// `repr(C)` keeps the fields in this order: what every get reads first,
/// then, on lines of their own, what the writer changes on every append.
/// Sharing a line, each put would take it away from the readers' cores.
#[repr(C)]
pub struct DataFile {
    /// In-memory handle stored in the keydir; never reused within a process.
    pub fnum: u32,
    /// On-disk id; the file name is derived from it.
    pub id: u64,
    pub path: PathBuf,
    /// For a read-only handle, the device and inode the name stood for at
    /// open: a read-write open may since have rewritten the file under the
    /// same name (lost pages, repair), and `open_fd` refuses the new one.
    identity: Option<(u64, u64)>,
    /// Opened on demand and closed again when too many are open (see
    /// `Inner::fd`); the active file and merge outputs keep theirs.
    fd: RwLock<Option<Arc<File>>>,
    /// Descriptor-cache tick of the last use, for least-recently-used
    /// eviction.
    pub last_used: AtomicU64,
    /// The handle-wide count of open data file descriptors.
    open_fds: Arc<AtomicUsize>,
    /// Whether reads may use a memory map (64-bit targets, the mmap
    /// option), and the map once made: at creation for a new file, on the
    /// first read for an existing one (None: the system refused).
    use_map: bool,
    map: OnceLock<Option<Map>>,
    /// Bytes written to the file; reads below this go to disk.
    flushed: AtomicU64,
    /// Bytes the file holds on disk, records and preallocated zeros, while
    /// it is written through its map (0: it is not).
    preallocated: AtomicU64,
    /// Where the written pages still mapped in the map start (see
    /// `Map::drop_pages`).
    mapped_from: AtomicU64,
    /// See `Mapped::ForWrites`.
    dirty_ahead: bool,
    /// When the last preallocation step was taken (`elapsed_ns`; MAX:
    /// none yet).
    last_step: AtomicU64,
    /// Where the pages faulted in ahead of the records end, and whether
    /// the current step's are faulted in writable (dirtied ahead).
    populated: AtomicU64,
    populate_writable: AtomicBool,
    /// Bytes known to be on stable storage (active file; group commit).
    synced: AtomicU64,
    /// Set once the file is immutable and fully synced.
    sealed: AtomicBool,
    /// The directory whose entry for this new file is not yet synced;
    /// taken by the first `sync_data`.
    dir: Option<PathBuf>,
    dir_synced: AtomicBool,
    _writer_side: CacheLine,
    tail: RwLock<Tail>,
    /// Record bytes in the file (everything after the header).
    pub record_bytes: AtomicU64,
    /// Record bytes no longer needed: overwritten, deleted, tombstones.
    pub dead_bytes: AtomicU64,
    /// Of those, tombstone bytes: a merge drops them only when no older
    /// value of their key can survive it.
    pub tombstone_bytes: AtomicU64,
    /// Held across each fsync of the file, and the first one's failure.
    /// Linux reports a writeback error to one fsync of an open file only:
    /// a second fsync running beside the failing one (the worker sealing
    /// the file while a put or `bc_sync` syncs it) would succeed and
    /// vouch for pages the kernel dropped.
    sync_failure: Mutex<Option<Error>>,
    /// Taken by whoever writes the file's hint: the worker and a merge
    /// may both seal a file the writer retired, and one hint is enough.
    hint_taken: AtomicBool,
}

impl DataFile {
    /// Creates a new data file with its header written.
    /// `create_at` is where the file is made (a temporary name for merge
    /// outputs, renamed to `path` when complete).
    /// `map` says whether reads (and appends) go through a memory map.
    /// With `dir`, the first `sync_data` also syncs that directory, making
    /// the new file's entry durable (merge, which renames its outputs,
    /// syncs the directory itself).
    pub fn create(
        fnum: u32,
        id: u64,
        dir: Option<&Path>,
        create_at: &Path,
        path: PathBuf,
        open_fds: Arc<AtomicUsize>,
        map: Mapped,
    ) -> Result<DataFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(create_at)
            .map_err(|e| Error::io("creating data file", create_at, e))?;
        // No fsync here, under the writer lock: the first `sync_data`
        // makes the header and the directory entry durable with the data.
        if let Err(e) = file.write_all_at(&format::file_header(&format::DATA_MAGIC), 0) {
            // Leave no file behind under this name: the next attempt (the
            // disk may have room again by then) creates it anew.
            let _ = fs::remove_file(create_at);
            return Err(Error::io("writing header of", create_at, e));
        }
        open_fds.fetch_add(1, Ordering::Relaxed);
        let made = match map {
            Mapped::No => None,
            Mapped::ForReads(n) => Map::new(&file, n),
            // Without a writable map, the buffer serves: also where
            // `fallocate` may not reserve the blocks the map's stores fill.
            Mapped::ForWrites { len, .. } if reserves_blocks(&file) => {
                Map::writable(&file, len).or_else(|| Map::new(&file, len))
            }
            Mapped::ForWrites { len, .. } => Map::new(&file, len),
        };
        let mut f =
            DataFile::from_parts(fnum, id, path, Some(file), FILE_HEADER_LEN, false, open_fds);
        f.dir = dir.map(Path::to_path_buf);
        f.use_map = map != Mapped::No;
        if let Mapped::ForWrites { dirty_ahead, .. } = map {
            if made.as_ref().is_some_and(Map::is_writable) {
                f.preallocated = AtomicU64::new(FILE_HEADER_LEN);
                f.dirty_ahead = dirty_ahead;
            }
        }
        f.map = OnceLock::from(made);
        Ok(f)
    }

    /// An existing, already validated file of `len` bytes, immutable; its
    /// descriptor is opened on first read.
    pub fn sealed(
        fnum: u32,
        id: u64,
        path: PathBuf,
        len: u64,
        open_fds: Arc<AtomicUsize>,
        use_map: bool,
        identity: Option<(u64, u64)>,
    ) -> Self {
        let mut f = DataFile::from_parts(fnum, id, path, None, len, true, open_fds);
        f.use_map = use_map;
        f.identity = identity;
        f
    }

    fn from_parts(
        fnum: u32,
        id: u64,
        path: PathBuf,
        file: Option<File>,
        len: u64,
        sealed: bool,
        open_fds: Arc<AtomicUsize>,
    ) -> Self {
        DataFile {
            fnum,
            id,
            path,
            identity: None,
            fd: RwLock::new(file.map(Arc::new)),
            last_used: AtomicU64::new(0),
            open_fds,
            use_map: false,
            map: OnceLock::new(),
            flushed: AtomicU64::new(len),
            preallocated: AtomicU64::new(0),
            mapped_from: AtomicU64::new(0),
            dirty_ahead: false,
            last_step: AtomicU64::new(u64::MAX),
            populated: AtomicU64::new(0),
            populate_writable: AtomicBool::new(false),
            synced: AtomicU64::new(len),
            sealed: AtomicBool::new(sealed),
            dir: None,
            dir_synced: AtomicBool::new(false),
            _writer_side: CacheLine,
            tail: RwLock::new(Tail {
                base: len,
                pending: Vec::new(),
            }),
            record_bytes: AtomicU64::new(len.saturating_sub(FILE_HEADER_LEN)),
            dead_bytes: AtomicU64::new(0),
            tombstone_bytes: AtomicU64::new(0),
            sync_failure: Mutex::new(None),
            hint_taken: AtomicBool::new(false),
        }
    }

    /// File length including buffered records.
    pub fn len(&self) -> u64 {
        FILE_HEADER_LEN + self.record_bytes.load(Ordering::Relaxed)
    }

    /// True for the first caller only: it writes the file's hint.
    pub fn take_hint(&self) -> bool {
        !self.hint_taken.swap(true, Ordering::AcqRel)
    }

    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    pub fn is_synced_to(&self, end: u64) -> bool {
        self.is_sealed() || self.synced.load(Ordering::Acquire) >= end
    }

    /// The open descriptor, if any.
    pub fn fd_if_open(&self) -> Option<Arc<File>> {
        self.fd.read().clone()
    }

    /// Opens the descriptor if needed; `true` when this call opened it.
    pub fn open_fd(&self) -> Result<(Arc<File>, bool)> {
        let mut fd = self.fd.write();
        if let Some(f) = fd.as_ref() {
            return Ok((f.clone(), false));
        }
        let f = Arc::new(
            File::open(&self.path).map_err(|e| Error::io("opening data file", &self.path, e))?,
        );
        if let Some(known) = self.identity {
            let meta = f
                .metadata()
                .map_err(|e| Error::io("reading metadata of", &self.path, e))?;
            if (meta.dev(), meta.ino()) != known {
                return Err(Error::new(
                    Status::Io,
                    format!(
                        "{} was replaced after this read-only handle opened (rewritten \
                         by a read-write open recovering lost pages, or by repair); \
                         reopen the read-only handle",
                        self.path.display()
                    ),
                ));
            }
        }
        *fd = Some(f.clone());
        self.open_fds.fetch_add(1, Ordering::Relaxed);
        Ok((f, true))
    }

    /// Closes the descriptor of a sealed file (readers holding it finish
    /// first). Returns whether one was closed.
    pub fn close_fd(&self) -> bool {
        if !self.is_sealed() {
            return false;
        }
        let closed = self.fd.write().take().is_some();
        if closed {
            self.open_fds.fetch_sub(1, Ordering::Relaxed);
        }
        closed
    }

    /// Where the file's memory map starts; 0 while it has none.
    pub fn map_addr(&self) -> usize {
        self.map.get().and_then(Option::as_ref).map_or(0, Map::addr)
    }

    /// Runs `f` on the `len` bytes at `offset`: straight from the memory
    /// map when there is one, else read into `buf` (from the append buffer
    /// or with `pread`). With `split`, bytes read with `pread` come in two
    /// parts, the first `split` in `buf` and the rest in a vector of their
    /// own, which `f` may keep. `fd` supplies the descriptor when one is
    /// needed.
    pub fn with_bytes<R>(
        &self,
        offset: u64,
        len: usize,
        split: Option<usize>,
        buf: &mut Vec<u8>,
        fd: impl Fn() -> Result<Arc<File>>,
        f: impl FnOnce(Bytes<'_>) -> Result<R>,
    ) -> Result<R> {
        let end = offset + len as u64;
        if end > self.flushed.load(Ordering::Acquire) {
            let tail = self.tail.read();
            if offset >= tail.base {
                let from = (offset - tail.base) as usize;
                let bytes = tail.pending.get(from..from + len).ok_or_else(|| {
                    Error::internal(format!(
                        "{}: offset {offset}: record of {len} bytes beyond the end of the file",
                        self.path.display()
                    ))
                })?;
                buf.clear();
                buf.extend_from_slice(bytes);
                drop(tail);
                return f(Bytes::Whole(buf));
            }
            // The writer flushed it meanwhile: it is on disk now.
        }
        if self.use_map {
            let map = match self.map.get() {
                Some(m) => m.as_ref(),
                None => {
                    let file = fd()?;
                    // Never past the file's end on disk: a file shortened
                    // behind this handle's back (a read-only handle's file,
                    // merged away by the writer, whose id a new one took)
                    // would raise SIGBUS there; reads past the map go to
                    // `pread`, which reports it.
                    let on_disk = file.metadata().map_or(0, |m| m.len());
                    self.map
                        .get_or_init(|| Map::new(&file, self.len().min(on_disk)))
                        .as_ref()
                }
            };
            if let Some(bytes) = map.and_then(|m| m.get(offset, len)) {
                return f(Bytes::Whole(bytes));
            }
        }
        let file = fd()?;
        let read = |buf: &mut Vec<u8>, at: usize, len: usize| {
            buf.clear();
            let what = format_args!("the record at offset {offset} of {}", self.path.display());
            crate::error::reserve(buf, len, what)?;
            buf.resize(len, 0);
            file.read_exact_at(buf, offset + at as u64).map_err(|e| {
                let what = if e.kind() == io::ErrorKind::UnexpectedEof {
                    format!("reading record at offset {offset} (file too short) in")
                } else {
                    format!("reading offset {offset} of")
                };
                Error::io(&what, &self.path, e)
            })
        };
        match split {
            Some(at) if at <= len => {
                let mut rest = Vec::new();
                read(buf, 0, at)?;
                read(&mut rest, at, len - at)?;
                f(Bytes::Split(buf, &mut rest))
            }
            _ => {
                read(buf, 0, len)?;
                f(Bytes::Whole(buf))
            }
        }
    }

    // ---- Writer side: the methods below are called only by the one thread
    // that holds the engine's writer lock (or by merge for its own outputs).

    /// The descriptor of a file being written: never evicted.
    fn write_fd(&self) -> Result<Arc<File>> {
        self.fd_if_open().ok_or_else(|| {
            Error::internal(format!("{}: written after sealing", self.path.display()))
        })
    }

    /// Whether appends go through the file's writable map.
    pub fn writes_through_map(&self) -> bool {
        self.preallocated.load(Ordering::Relaxed) != 0
    }

    /// Appends one record of `len` bytes, encoded by `encode` straight into
    /// the file's writable map, and returns its offset; None, having
    /// appended nothing, when the file is not written through a map or the
    /// map ends before the record does, or the record is large (see
    /// `MAPPED_RECORD_MAX`): the caller then writes it with `pwrite`.
    pub fn append_mapped(&self, len: usize, encode: impl FnOnce(&mut [u8])) -> Result<Option<u64>> {
        if !self.writes_through_map() || len >= MAPPED_RECORD_MAX {
            return Ok(None);
        }
        let Some(map) = self.map.get().and_then(Option::as_ref) else {
            return Ok(None);
        };
        let mut tail = self.tail.write();
        let at = tail.base;
        let end = at + len as u64;
        if !map.covers(end) {
            return Ok(None);
        }
        debug_assert!(tail.pending.is_empty());
        if !self.preallocate(map, end)? {
            return Ok(None);
        }
        self.populate_ahead(map, at, end);
        // SAFETY: `preallocate` made the file reach `end`; the bytes from
        // `at` on are past every published record (`flushed`), so no
        // reader holds a reference to them, and this writer (under the
        // tail's lock) is the only one writing.
        let record = unsafe { map.get_mut(at, len) }.expect("covered and writable");
        encode(record);
        tail.base = end;
        self.flushed.store(end, Ordering::Release);
        self.record_bytes.fetch_add(len as u64, Ordering::Relaxed);
        Ok(Some(at))
    }

    /// Grows the file so that it reaches `end`, a step at a time (it
    /// doubles from `FIRST_STEP` up to `PREALLOCATE`; to the page `end` is
    /// in when a step finds no room). A filesystem without `fallocate`
    /// stops the file's writes through the map (false: the buffer takes
    /// over); any other failure (a full disk) is the put's error, with
    /// nothing written.
    fn preallocate(&self, map: &Map, end: u64) -> Result<bool> {
        let have = self.preallocated.load(Ordering::Relaxed);
        if end <= have {
            return Ok(true);
        }
        // Steps end on a page, and the last may be cut short by the map's
        // end, rounded to a page (docs/FORMAT.md).
        let upto = |step: u64| {
            let map_end = map.size().div_ceil(PAGE) * PAGE;
            end.div_ceil(step)
                .saturating_mul(step)
                .min(map_end)
                .max(end)
        };
        let fd = self.write_fd()?;
        let allocate = |want: u64| {
            let (Ok(at), Ok(n)) = (
                libc::off_t::try_from(have),
                libc::off_t::try_from(want - have),
            ) else {
                return Err(io::Error::from_raw_os_error(libc::EFBIG));
            };
            // SAFETY: allocates file space on a descriptor we own; no
            // memory of ours is touched.
            match unsafe { libc::fallocate(fd.as_raw_fd(), 0, at, n) } {
                0 => Ok(want),
                _ => Err(io::Error::last_os_error()),
            }
        };
        // Near a full disk, a whole step may not fit where the record's
        // own pages (`fit`, within the file size limit where the record
        // is) still do: the disk fills to its last page, as it does
        // without the map. (A step past the file size limit would raise
        // SIGXFSZ, which kills by default, before any fallback: it stops at
        // the limit.)
        let limit = file_size_limit();
        let fit = upto(PAGE).min(limit.max(end));
        let grow = have.clamp(FIRST_STEP, PREALLOCATE) / PAGE * PAGE;
        let step = upto(grow).min((limit / PAGE * PAGE).max(fit));
        let unsupported =
            |e: &io::Error| matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOSYS));
        let got = allocate(step).or_else(|e| match fit < step && !unsupported(&e) {
            true => allocate(fit),
            false => Err(e),
        });
        let want = match got {
            Ok(want) => want,
            Err(e) if unsupported(&e) => {
                self.preallocated.store(0, Ordering::Relaxed);
                return Ok(false);
            }
            Err(e) => {
                let what = format!("preallocating offsets {have}..{fit} of");
                return Err(Error::io(&what, &self.path, e));
            }
        };
        // Dirtied ahead only for a writer that filled the last step within
        // a second: its records replace the zeros long before writeback
        // (5 to 30 s later) could write them out, where a slow writer's
        // pages would go to the disk twice, zeros first.
        let now = elapsed_ns();
        let last = self.last_step.swap(now, Ordering::Relaxed);
        let fast = last != u64::MAX && now.saturating_sub(last) < 1_000_000_000;
        self.populate_writable
            .store(self.dirty_ahead && fast, Ordering::Relaxed);
        self.preallocated.store(want, Ordering::Relaxed);
        Ok(true)
    }

    /// Faults in the pages ahead of a record that ends at `end`, a
    /// `POPULATE_CHUNK` at a time, and drops the written pages before
    /// `at` from the map. In chunks, not a step at once: a 1 MiB step's
    /// pages took the put that crossed into it about a millisecond.
    fn populate_ahead(&self, map: &Map, at: u64, end: u64) {
        let from = self.populated.load(Ordering::Relaxed);
        if end <= from {
            return;
        }
        self.drop_written_pages(map, at);
        let from = from.max(at / PAGE * PAGE);
        let to = (end.div_ceil(POPULATE_CHUNK) * POPULATE_CHUNK)
            .min(self.preallocated.load(Ordering::Relaxed))
            .max(end);
        map.populate(
            from,
            to - from,
            self.populate_writable.load(Ordering::Relaxed),
        );
        self.populated.store(to, Ordering::Relaxed);
    }

    /// Appends one record of `len` bytes to the buffer and returns its
    /// offset; None, having appended nothing, when the buffer has no room
    /// for it (flush first, or write it directly if the buffer is empty).
    pub fn append_within(
        &self,
        len: usize,
        cap: usize,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Option<u64>> {
        let mut tail = self.tail.write();
        if tail.pending.len() + len > cap {
            return Ok(None);
        }
        self.grow_buffer(&mut tail.pending, len)?;
        let before = tail.pending.len();
        encode(&mut tail.pending);
        self.record_bytes.fetch_add(len as u64, Ordering::Relaxed);
        Ok(Some(tail.base + before as u64))
    }

    /// Appends one record of `len` bytes to the buffer; returns its offset.
    pub fn append(&self, len: usize, encode: impl FnOnce(&mut Vec<u8>)) -> Result<u64> {
        let mut tail = self.tail.write();
        self.grow_buffer(&mut tail.pending, len)?;
        let before = tail.pending.len();
        encode(&mut tail.pending);
        self.record_bytes.fetch_add(len as u64, Ordering::Relaxed);
        Ok(tail.base + before as u64)
    }

    /// Room in the buffer for `len` more bytes. The buffer grows as it
    /// fills (a handle that writes little keeps a small one), so an append
    /// may need memory: without it, the record is refused, not the
    /// process aborted.
    #[inline]
    fn grow_buffer(&self, pending: &mut Vec<u8>, len: usize) -> Result<()> {
        if pending.capacity() - pending.len() >= len {
            return Ok(());
        }
        pending.try_reserve(len).map_err(|_| {
            let what = format_args!("the write buffer of {}", self.path.display());
            Error::no_memory(pending.len().saturating_add(len), what)
        })
    }

    /// Writes a record straight to the file, bypassing the buffer (which
    /// must be empty): large values are not copied into memory twice.
    pub fn append_direct(&self, parts: &[&[u8]]) -> Result<u64> {
        let tail = self.tail.read();
        debug_assert!(tail.pending.is_empty());
        let start = tail.base;
        let mut at = start;
        let fd = self.write_fd()?;
        for part in parts {
            if let Err(e) = fd.write_all_at(part, at) {
                // Cut what part of the record reached the file: a later
                // record written at `start` must not leave its tail behind.
                // (That cuts a preallocation too: the map must not be
                // written past the new end.)
                let _ = fd.set_len(start);
                if self.writes_through_map() {
                    self.preallocated.fetch_min(start, Ordering::Relaxed);
                }
                return Err(Error::io(&format!("writing offset {at} of"), &self.path, e));
            }
            at += part.len() as u64;
        }
        drop(tail);
        if self.writes_through_map() {
            // The file reaches `at` now: the next step starts there, not
            // where the last one ended (its pages faulted in again would
            // be the whole record's).
            self.preallocated.fetch_max(at, Ordering::Relaxed);
        }
        self.tail.write().base = at;
        self.flushed.store(at, Ordering::Release);
        self.record_bytes.fetch_add(at - start, Ordering::Relaxed);
        Ok(start)
    }

    /// Writes the buffer to the file. On failure the buffer is kept, so the
    /// records it holds are written by a later flush.
    pub fn flush(&self) -> Result<()> {
        let tail = self.tail.read();
        if tail.pending.is_empty() {
            return Ok(());
        }
        let (base, n) = (tail.base, tail.pending.len() as u64);
        let fd = self.write_fd()?;
        if let Err(e) = fd.write_all_at(&tail.pending, base) {
            // The file ends where its last whole flush did (the buffer
            // is kept and written there again).
            let _ = fd.set_len(base);
            return Err(Error::io(
                &format!("writing offset {base} of"),
                &self.path,
                e,
            ));
        }
        drop(tail);
        let mut tail = self.tail.write();
        tail.pending.clear();
        tail.base = base + n;
        self.flushed.store(base + n, Ordering::Release);
        Ok(())
    }

    /// fdatasync of everything flushed so far (and, the first time, of the
    /// directory entry of a new file).
    pub fn sync_data(&self) -> Result<()> {
        self.sync_data_waiting(true)
    }

    /// `sync_data` of a retired file, which no one writes any more: while
    /// another thread's fsync of it is under way (a seal writing back the
    /// whole file), that one covers every byte, and this returns at once
    /// instead of waiting for it.
    pub fn sync_data_unless_busy(&self) -> Result<()> {
        self.sync_data_waiting(false)
    }

    fn sync_data_waiting(&self, wait: bool) -> Result<()> {
        let upto = self.flushed.load(Ordering::Acquire);
        // Sealing syncs first, then may close the descriptor: holding it
        // keeps it open, and a file without one was sealed, so is synced.
        let fd = match self.fd_if_open() {
            Some(fd) => fd,
            None if self.is_sealed() => return Ok(()),
            None => return self.write_fd().map(|_| ()),
        };
        let locked = if wait {
            Some(self.sync_failure.lock())
        } else {
            self.sync_failure.try_lock()
        };
        let Some(mut failure) = locked else {
            return Ok(());
        };
        if let Some(e) = &*failure {
            return Err(e.clone());
        }
        if let Err(e) = fd.sync_data() {
            let e = Error::fsync("syncing", &self.path, e);
            *failure = Some(e.clone());
            return Err(e);
        }
        if let Some(dir) = &self.dir {
            if !self.dir_synced.load(Ordering::Acquire) {
                sync_dir(dir)?;
                self.dir_synced.store(true, Ordering::Release);
            }
        }
        self.synced.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    /// Flushes and syncs; the file is immutable from now on. A file written
    /// through its map is first cut to its records (the preallocated zeros
    /// after them go).
    pub fn seal(&self) -> Result<()> {
        self.flush()?;
        self.cut_preallocation()?;
        self.sync_data()?;
        self.sealed.store(true, Ordering::Release);
        // The buffer's capacity is not needed any more, nor, when reads go
        // through a map that covers the file, the descriptor.
        self.release_buffer();
        if self
            .map
            .get()
            .is_some_and(|m| m.as_ref().is_some_and(|m| m.covers(self.len())))
        {
            self.close_fd();
        }
        Ok(())
    }

    /// Drops the map's entries for the written pages before `upto`.
    fn drop_written_pages(&self, map: &Map, upto: u64) {
        let from = self.mapped_from.load(Ordering::Relaxed);
        if upto > from {
            map.drop_pages(from, upto - from);
            self.mapped_from
                .store(upto / PAGE * PAGE, Ordering::Relaxed);
        }
    }

    /// Cuts a file written through its map back to its records, and ends
    /// its writes through the map.
    pub fn cut_preallocation(&self) -> Result<()> {
        let map = self.map.get().and_then(Option::as_ref);
        let Some(map) = map.filter(|m| m.is_writable()) else {
            return Ok(());
        };
        let len = self.len();
        // Before the fsync, which would otherwise write-protect them one
        // by one.
        self.drop_written_pages(map, len.div_ceil(PAGE) * PAGE);
        self.preallocated.store(0, Ordering::Relaxed);
        // By the file's own length, not `preallocated`: an fallocate that
        // failed part way (ENOSPC), or a filesystem that stopped taking
        // them, may have left it longer. Without a descriptor another
        // thread's seal (the worker's and a merge's may overlap) cut it
        // already, and closed it.
        let Some(fd) = self.fd_if_open() else {
            return Ok(());
        };
        let on_disk = fd
            .metadata()
            .map_err(|e| Error::io("reading metadata of", &self.path, e))?
            .len();
        if on_disk > len {
            fd.set_len(len)
                .map_err(|e| Error::io(&format!("truncating to {len} bytes"), &self.path, e))?;
        }
        Ok(())
    }

    /// Frees the write buffer's memory once the file takes no more appends
    /// (it must have been flushed).
    pub fn release_buffer(&self) {
        let mut tail = self.tail.write();
        debug_assert!(tail.pending.is_empty());
        if tail.pending.is_empty() {
            tail.pending = Vec::new();
        }
    }

    /// Counts a tombstone record of `len` bytes (dead from the start).
    pub fn add_tombstone(&self, len: u64) {
        self.dead_bytes.fetch_add(len, Ordering::Relaxed);
        self.tombstone_bytes.fetch_add(len, Ordering::Relaxed);
    }

    /// Truncates the file to `len` bytes (recovery of a torn tail).
    pub fn truncate(path: &Path, len: u64) -> Result<()> {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io("opening for truncation", path, e))?;
        f.set_len(len)
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io(&format!("truncating to {len} bytes"), path, e))
    }
}

impl Drop for DataFile {
    fn drop(&mut self) {
        if self.fd.get_mut().is_some() {
            self.open_fds.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Removes a file, ignoring "already gone".
pub fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io("removing", path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_is_written_only_where_fallocate_reserves_blocks() {
        assert!(reserving_filesystem(0xEF53)); // ext4
        assert!(reserving_filesystem(0x5846_5342)); // XFS
        assert!(reserving_filesystem(0x0102_1994)); // tmpfs
        assert!(!reserving_filesystem(0x9123_683E)); // btrfs
        assert!(!reserving_filesystem(0x2FC1_2FC1)); // ZFS
        assert!(!reserving_filesystem(0x794C_7630)); // overlayfs
        assert!(!reserving_filesystem(0x6969)); // NFS
        let proc_file = File::open("/proc/self/status").unwrap();
        assert!(!reserves_blocks(&proc_file), "procfs");
        if let Ok(shm) = tempfile::tempfile_in("/dev/shm") {
            assert!(reserves_blocks(&shm), "tmpfs");
        }
    }

    /// A data file written through its map, in `dir`; None where the
    /// filesystem does not allow one.
    #[cfg(target_pointer_width = "64")]
    fn mapped_file(dir: &Path) -> Option<DataFile> {
        let path = dir.join(data_name(1 << 32));
        let map = Mapped::ForWrites {
            len: 8 << 20,
            dirty_ahead: true,
        };
        let open_fds = Arc::new(AtomicUsize::new(0));
        let f = DataFile::create(1, 1 << 32, None, &path, path.clone(), open_fds, map).unwrap();
        f.writes_through_map().then_some(f)
    }

    /// The sum of the `fields` (in kB) of `f`'s map in /proc/self/smaps,
    /// in bytes.
    #[cfg(target_pointer_width = "64")]
    fn smaps_bytes(f: &DataFile, fields: &[&str]) -> u64 {
        let addr = f.map.get().unwrap().as_ref().unwrap().addr();
        let smaps = fs::read_to_string("/proc/self/smaps").unwrap();
        let start = format!("{addr:x}-");
        let kb: u64 = smaps
            .split('\n')
            .skip_while(|l| !l.starts_with(&start))
            .skip(1)
            .take_while(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|w| w.ends_with(':'))
            })
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let name = w.next()?.trim_end_matches(':');
                if fields.contains(&name) {
                    w.next()?.parse::<u64>().ok()
                } else {
                    None
                }
            })
            .sum();
        kb << 10
    }

    /// Bytes of the pages of `f`'s map that are dirty.
    #[cfg(target_pointer_width = "64")]
    fn dirty_bytes(f: &DataFile) -> u64 {
        smaps_bytes(f, &["Shared_Dirty", "Private_Dirty"])
    }

    /// Whether the map's advice works as the dirty-page tests assume: 4 KiB
    /// pages, `MADV_POPULATE_WRITE` known (Linux 5.14), and `dir` not on
    /// tmpfs, whose `fallocate` dirties the pages it adds.
    #[cfg(target_pointer_width = "64")]
    fn dirty_pages_observable(dir: &Path) -> bool {
        // SAFETY: sysconf reads a constant.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let probe = tempfile::tempfile_in(dir).unwrap();
        probe.set_len(PAGE).unwrap();
        let Some(map) = Map::writable(&probe, PAGE) else {
            return false;
        };
        // SAFETY: advice about the one page of our own mapping.
        let known = unsafe {
            libc::madvise(
                map.addr() as *mut libc::c_void,
                PAGE as usize,
                libc::MADV_POPULATE_WRITE,
            )
        } == 0;
        let tmpfs = filesystem(&probe) == Some(TMPFS);
        let ok = page == 4096 && known && !tmpfs;
        if !ok {
            eprintln!("dirty pages not observable (page {page}, populate {known}, tmpfs {tmpfs}): skipped");
        }
        ok
    }

    /// A record written with `pwrite` moves the preallocation on: the next
    /// step starts after it, and faults in only its own pages, not the
    /// record's again (one 100-byte put after 20 MB of large values took
    /// 101 ms and 196 MB of page cache).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_large_record_moves_the_preallocation_on() {
        let dir = tempfile::tempdir().unwrap();
        let Some(f) = mapped_file(dir.path()) else {
            return;
        };
        let big = vec![7u8; 3 << 20];
        let at = f.append_direct(&[&big]).unwrap();
        assert_eq!(at, FILE_HEADER_LEN);
        let end = at + big.len() as u64;
        assert!(
            f.preallocated.load(Ordering::Relaxed) >= end,
            "preallocated {} after a record ending at {end}",
            f.preallocated.load(Ordering::Relaxed)
        );
        assert_eq!(f.append_mapped(10, |r| r.fill(1)).unwrap(), Some(end));
        // The step from the record's end faulted in its own pages (and a
        // few around them), not the record's 3 MiB again.
        let resident = smaps_bytes(&f, &["Rss"]);
        assert!(
            resident < 2 * PREALLOCATE,
            "{resident} bytes of the map resident after one small record"
        );
    }

    /// A file grows 64 KiB first, then doubles up to 1 MiB steps
    /// (FORMAT.md), so that a small database takes little disk ahead.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn preallocation_steps_double_from_64_kib_to_1_mib() {
        let dir = tempfile::tempdir().unwrap();
        let Some(f) = mapped_file(dir.path()) else {
            return;
        };
        let mut lens: Vec<u64> = Vec::new();
        while f.len() < 3 << 20 {
            f.append_mapped(1000, |r| r.fill(3)).unwrap().unwrap();
            let on_disk = fs::metadata(&f.path).unwrap().len();
            if lens.last() != Some(&on_disk) {
                lens.push(on_disk);
            }
        }
        let k = 1u64 << 10;
        let m = 1u64 << 20;
        assert_eq!(
            lens,
            [64 * k, 128 * k, 256 * k, 512 * k, m, 2 * m, 3 * m, 4 * m]
        );
    }

    /// A writer that fills its steps slowly gets the pages ahead of its
    /// records faulted in clean: a page dirtied ahead is written out as
    /// zeros by writeback before its records reach it. One that fills a
    /// step within a second gets them dirtied ahead in the next one
    /// (faster puts). The decision is read from the file; the dirty bytes
    /// show that a chunk was dirtied ahead, but not that pages faulted in
    /// clean stay clean (the kernel counts whole folios, written pages
    /// and pages ahead alike).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn only_a_fast_writer_dirties_pages_ahead() {
        let dir = tempfile::tempdir().unwrap();
        if !dirty_pages_observable(dir.path()) {
            return;
        }
        let Some(f) = mapped_file(dir.path()) else {
            return;
        };
        let fill_to = |n: u64| {
            while f.len() < n {
                f.append_mapped(1000, |r| r.fill(2)).unwrap().unwrap();
            }
        };
        let dirtied_ahead = || f.populate_writable.load(Ordering::Relaxed);
        // The first step: no writer speed known yet.
        f.append_mapped(100, |r| r.fill(1)).unwrap().unwrap();
        let first = dirty_bytes(&f);
        assert!(
            !dirtied_ahead() && first < 64 << 10,
            "{first} bytes dirty after one record"
        );
        // Fill the step at once: the next one is dirtied ahead, a chunk at
        // a time.
        fill_to(PREALLOCATE + 1000);
        let second = dirty_bytes(&f);
        assert!(
            dirtied_ahead(),
            "not dirtied ahead after a step filled at once"
        );
        assert!(
            second >= POPULATE_CHUNK + PAGE,
            "{second} bytes dirty in a step after one filled at once"
        );
        // Fill that one slowly: the third is faulted in clean.
        fill_to(2 * PREALLOCATE - 1000);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        fill_to(2 * PREALLOCATE + 1000);
        assert!(!dirtied_ahead(), "dirtied ahead after a slow step");
    }

    /// The written pages leave the map as the writer moves on, fast or
    /// slow: the map holds about a chunk ahead and a page behind, not
    /// the file (RSS that `top` charges to the program).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn the_map_keeps_few_pages_behind_a_writer() {
        for slow in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let Some(f) = mapped_file(dir.path()) else {
                return;
            };
            while f.len() < 6 * PREALLOCATE {
                f.append_mapped(100, |r| r.fill(2)).unwrap().unwrap();
                if slow {
                    // As if every step came more than a second after the last.
                    f.last_step.store(u64::MAX, Ordering::Relaxed);
                }
            }
            let resident = smaps_bytes(&f, &["Rss"]);
            assert!(
                resident <= 2 * POPULATE_CHUNK,
                "{resident} bytes of the map resident after 6 MiB, slow {slow}"
            );
        }
    }

    #[test]
    fn only_the_names_bitcask_writes_are_data_and_hint_files() {
        let id = 0x0000_0001_0000_00ab;
        assert_eq!(parse_data_name(&data_name(id)), Some(id));
        assert_eq!(parse_data_name("00000001000000ab.data"), Some(id));
        assert_eq!(
            crate::hint::parse_hint_name("00000001000000ab.hint"),
            Some(id)
        );
        for name in [
            "00000001000000AB.data", // uppercase: another name for the same id
            "00000001000000aB.hint",
            "1000000ab.data",
            "00000001000000ab0.data",
            "00000001000000ag.data",
            "00000001000000ab.data.tmp",
            "+0000001000000ab.data",
        ] {
            assert_eq!(
                parse_data_name(name).or(crate::hint::parse_hint_name(name)),
                None,
                "{name}"
            );
        }
    }
}
