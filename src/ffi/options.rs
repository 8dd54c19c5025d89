//! `bc_options`: open options built up by setters.

use super::{arg, bc_status, boundary_free, out_arg};
use crate::error::Error;
use crate::options::{self, Options, SyncMode};
use std::time::Duration;

/// Opaque open options. Create with bc_options_new, free with
/// bc_options_free. Not thread-safe: set it up on one thread.
pub struct bc_options {
    pub(crate) opts: Options,
}

/// The OS decides when data reaches the disk. A process crash loses nothing
/// acknowledged while the active file is written through its map
/// (bc_options_set_write_map: the default on 64-bit targets where the
/// directory is on ext4, XFS or tmpfs; bc_stats.writes_through_map says
/// whether it is), else what is still in the library's write buffer
/// (256 KiB unless set with bc_options_set_write_buffer: on btrfs, ZFS,
/// overlayfs, NFS, FUSE and 32-bit targets); a power loss loses what is in
/// the page cache.
pub const BC_SYNC_NONE: i32 = 0;
/// Every put and delete is on stable storage before it returns BC_OK.
/// Concurrent writers share one fsync (group commit). The thread that leads
/// an fsync first waits for the threads that were committing to append
/// their records, for at most half the last fsync's duration (never over
/// 1 ms); a single writer does not wait (only once, right after the others
/// stopped writing).
pub const BC_SYNC_ALWAYS: i32 = 1;
/// A background thread of its own flushes and fsyncs every interval_ms
/// milliseconds: a power loss loses at most that much, and so does a crash
/// of the process where the write buffer is used (the write map off, see
/// bc_options_set_write_map; through the map it loses nothing). A flush
/// or fsync of it
/// that fails (a full disk, a dying one) fails the handle: later writes
/// return BC_FAILED naming it.
pub const BC_SYNC_INTERVAL: i32 = 2;

/// Edits the options behind `opts` with `edit`.
fn with_opts(
    opts: *mut bc_options,
    edit: impl FnOnce(&mut Options) -> Result<(), Error>,
) -> bc_status {
    boundary_free(|| {
        // SAFETY: a non-NULL opts comes from bc_options_new and is not
        // shared with another thread during the call (documented).
        let o = unsafe { opts.as_mut() }.ok_or_else(|| Error::invalid("opts is NULL"))?;
        edit(&mut o.opts)?;
        Ok(bc_status::BC_OK)
    })
}

/// Creates options holding the defaults: max_file_size 256 MiB,
/// max_key_size 4096, max_value_size 64 MiB, BC_SYNC_NONE, read-write,
/// create_if_missing true, repair false, default TTL 0 (none), the
/// system clock, auto-merge off, merge triggers 0.6 and 512 MiB, merge
/// thresholds 0.4, 128 MiB and 10 MiB, max_open_files 64, memory-mapped
/// reads on (64-bit targets only), write map on, write buffer 256 KiB.
///
/// @param[out] out receives the new options; the caller owns them and
///             frees them with bc_options_free (after bc_open if it likes:
///             bc_open copies what it needs).
/// @return BC_OK, or BC_INVALID_ARGUMENT if out is NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn bc_options_new(out: *mut *mut bc_options) -> bc_status {
    boundary_free(|| {
        out_arg(out, "out")?;
        let o = Box::into_raw(Box::new(bc_options {
            opts: Options::default(),
        }));
        // SAFETY: out is non-NULL and points to writable storage (caller).
        unsafe { *out = o };
        Ok(bc_status::BC_OK)
    })
}

/// Frees options made by bc_options_new. NULL is a no-op.
///
/// @param[in] opts the options; must not be used again, nor be in use by
///            another thread. Handles opened with them are not affected
///            (bc_open copied what it needed).
/// Not thread-safe: no other call may use opts during or after it.
#[no_mangle]
pub extern "C" fn bc_options_free(opts: *mut bc_options) {
    if !opts.is_null() {
        // SAFETY: opts came from Box::into_raw in bc_options_new and is
        // freed once (caller contract). Dropping Options cannot panic.
        drop(unsafe { Box::from_raw(opts) });
    }
}

/// Size at which the active data file is sealed and a new one started.
/// A record larger than this gets a file of its own.
///
/// @return BC_OK, or BC_INVALID_ARGUMENT if opts is NULL or bytes is outside
///         4096 ..= 4294967295.
/// Not thread-safe: calls on one bc_options must not overlap (set it
/// up on one thread); different bc_options are independent.
#[no_mangle]
pub extern "C" fn bc_options_set_max_file_size(opts: *mut bc_options, bytes: u64) -> bc_status {
    with_opts(opts, |o| {
        options::check_file_size(bytes)?;
        o.max_file_size = bytes;
        Ok(())
    })
}

/// Longest key a put accepts; longer keys get BC_TOO_LARGE. Every key
/// lives in memory (the keydir), so this bounds memory per key. Gets,
/// contains and deletes accept any key up to 65535 bytes: a database
/// written under a larger limit keeps its longer keys readable and
/// deletable when opened with a smaller one.
///
/// @return BC_OK, or BC_INVALID_ARGUMENT if opts is NULL or bytes is outside
///         1 ..= 65535.
/// Not thread-safe: calls on one bc_options must not overlap (set it
/// up on one thread); different bc_options are independent.
#[no_mangle]
pub extern "C" fn bc_options_set_max_key_size(opts: *mut bc_options, bytes: u32) -> bc_status {
    with_opts(opts, |o| {
        options::check_key_size(bytes)?;
        o.max_key_size = bytes;
        Ok(())
    })
}

/// Longest value accepted; longer values get BC_TOO_LARGE.
///
/// @return BC_OK, or BC_INVALID_ARGUMENT if opts is NULL or bytes is outside
///         1 ..= 2147483647.
/// Not thread-safe: calls on one bc_options must not overlap (set it
/// up on one thread); different bc_options are independent.
#[no_mangle]
pub extern "C" fn bc_options_set_max_value_size(opts: *mut bc_options, bytes: u32) -> bc_status {
    with_opts(opts, |o| {
        options::check_value_size(bytes)?;
        o.max_value_size = bytes;
        Ok(())
    })
}

/// Durability: BC_SYNC_NONE, BC_SYNC_ALWAYS or BC_SYNC_INTERVAL (then
/// interval_ms, which must be > 0; it is ignored for the other modes).
///
/// @return BC_OK, or BC_INVALID_ARGUMENT if opts is NULL, the mode is
///         unknown, or the interval is 0 with BC_SYNC_INTERVAL.
/// Not thread-safe: calls on one bc_options must not overlap (set it
/// up on one thread); different bc_options are independent.
#[no_mangle]
pub extern "C" fn bc_options_set_sync(
    opts: *mut bc_options,
    mode: i32,
    interval_ms: u32,
) -> bc_status {
    with_opts(opts, |o| {
        o.sync = match mode {
            BC_SYNC_NONE => SyncMode::None,
            BC_SYNC_ALWAYS => SyncMode::Always,
            BC_SYNC_INTERVAL if interval_ms > 0 => {
                SyncMode::Interval(Duration::from_millis(interval_ms as u64))
            }
            BC_SYNC_INTERVAL => {
                return Err(Error::invalid("BC_SYNC_INTERVAL needs interval_ms > 0"))
            }
            other => return Err(Error::invalid(format!("unknown sync mode {other}"))),
        };
        Ok(())
    })
}

/// Opens without the write lock: any number of read-only handles can share
/// a database, also beside a read-write handle in another process. A
/// read-only handle sees the data as of its open and refuses writes with
/// BC_READ_ONLY. It opens data files at first read, so after a merge by
/// the read-write handle a get may return BC_IO saying the file it needs
/// was deleted, or replaced (rewritten by a read-write open recovering
/// lost pages after a power loss, or by repair): reopen the read-only
/// handle to see the files as they are now. Opened while a read-write
/// handle writes, it sees a prefix of the records of the file being
/// written: damage it finds there with records after it is read again
/// before it is judged (bytes not yet written when first read,
/// docs/FORMAT.md). Rarely a file is cut under it while it opens (the
/// write map's preallocation, cut at seal): the open then returns BC_IO
/// saying so, and opening again works.
///
/// @return BC_OK, or BC_INVALID_ARGUMENT if opts is NULL.
/// Not thread-safe: calls on one bc_options must not overlap (set it
/// up on one thread); different bc_options are independent.
#[no_mangle]
pub extern "C" fn bc_options_set_read_only(opts: *mut bc_options, read_only: bool) -> bc_status {
    with_opts(opts, |o| {
        o.read_only = read_only;
        Ok(())
    })
}

/// Whether bc_open creates a missing directory (default true): the last
/// component of the path only, and never for a read-only open.
///
/// @return BC_OK, or BC_INVALID_ARGUMENT if opts is NULL.
/// Not thread-safe: calls on one bc_options must not overlap (set it
/// up on one thread); different bc_options are independent.
#[no_mangle]
pub extern "C" fn bc_options_set_create_if_missing(
    opts: *mut bc_options,
    create: bool,
) -> bc_status {
    with_opts(opts, |o| {
        o.create_if_missing = create;
        Ok(())
    })
}

/// Repair mode: bc_open opens a damaged database anyway. Damaged records
/// are skipped and, on a read-write handle, the files holding them are
/// rewritten without them; a file whose header is unreadable is rewritten
/// under a fresh header if the header is at most 4 bits off and its first
/// record checks out, and otherwise renamed to `*.data.corrupt` (never
/// over an existing one: bc_open then fails with BC_IO naming it). The
/// count (a bad header counts one) is in bc_stats.repaired_records_skipped.
/// Data in damaged records is lost: copy the directory first if it matters.
/// That includes deletes: a key whose tombstone was damaged (or was in a
/// file set aside) shows its older value again, since repair reads no
/// hints.
///
/// @return BC_OK, or BC_INVALID_ARGUMENT if opts is NULL.
/// Not thread-safe: calls on one bc_options must not overlap (set it
/// up on one thread); different bc_options are independent.
#[no_mangle]
pub extern "C" fn bc_options_set_repair(opts: *mut bc_options, repair: bool) -> bc_status {
    with_opts(opts, |o| {
        o.repair = repair;
        Ok(())
    })
}

/// The options behind a possibly-NULL pointer; NULL means defaults.
///
/// # Safety
/// A non-NULL `opts` must come from bc_options_new and be alive.
pub(crate) unsafe fn options_or_default(opts: *const bc_options) -> Options {
    if opts.is_null() {
        Options::default()
    } else {
        // SAFETY: forwarded from the caller.
        unsafe { arg(opts, "opts") }
            .map(|o| o.opts.clone())
            .unwrap_or_default()
    }
}

/// Time to live, in seconds, of every value stored by bc_put (bc_put_ttl
/// sets its own). 0, the default, means values never expire.
///
/// @return BC_OK, or BC_INVALID_ARGUMENT if opts is NULL.
/// Not thread-safe: calls on one bc_options must not overlap (set it
/// up on one thread); different bc_options are independent.
#[no_mangle]
pub extern "C" fn bc_options_set_default_ttl(opts: *mut bc_options, ttl_secs: u32) -> bc_status {
    with_opts(opts, |o| {
        o.default_ttl_secs = ttl_secs;
        Ok(())
    })
}

/// A clock: returns the current time in seconds since the Unix epoch.
/// `ctx` is the pointer given to bc_options_set_clock.
pub type bc_clock_fn = Option<extern "C" fn(ctx: *mut std::ffi::c_void) -> u32>;

/// A caller-supplied clock and its context, callable from any thread.
struct ForeignClock {
    now: extern "C" fn(*mut std::ffi::c_void) -> u32,
    ctx: *mut std::ffi::c_void,
}

impl ForeignClock {
    fn now(&self) -> u32 {
        (self.now)(self.ctx)
    }
}

// SAFETY: bc_options_set_clock documents that the function may be called
// from any thread at any time with ctx, until the last handle opened with
// these options is closed; the library only passes ctx back.
unsafe impl Send for ForeignClock {}
// SAFETY: as above; the library never dereferences ctx.
unsafe impl Sync for ForeignClock {}

/// Replaces the clock the database reads for TTL expiry (tests use this to
/// expire keys without sleeping). NULL `now` restores the system clock.
///
/// Expiry is judged against the clock at each read. A clock that goes
/// back (a device without a real-time clock, before NTP) can make an
/// expired key visible again, even one whose delete returned BC_NOT_FOUND
/// because it had expired, until a merge has removed it. An older value
/// of the key does not reappear.
///
/// @param[in] now a function returning seconds since the Unix epoch. It may
///            be called from any thread (the caller's and the library's
///            background threads) until the handles opened with these options
///            are closed; it must not call back into the library.
/// @param[in] ctx passed to `now` unchanged; owned by the caller and kept
///            alive as long as `now` may be called.
/// @return BC_OK, or BC_INVALID_ARGUMENT if opts is NULL.
/// Not thread-safe: calls on one bc_options must not overlap (set it
/// up on one thread); different bc_options are independent.
#[no_mangle]
pub extern "C" fn bc_options_set_clock(
    opts: *mut bc_options,
    now: bc_clock_fn,
    ctx: *mut std::ffi::c_void,
) -> bc_status {
    with_opts(opts, |o| {
        o.clock = match now {
            None => options::system_clock(),
            Some(now) => {
                let c = ForeignClock { now, ctx };
                std::sync::Arc::new(move || c.now())
            }
        };
        Ok(())
    })
}

/// Auto-merge: a background thread of its own checks the merge triggers
/// every interval_ms milliseconds and merges the files the thresholds
/// select when they fire. 0, the default, turns it off (merge only with
/// bc_merge). bc_close stops the thread, abandoning a merge in progress
/// safely within a few thousand records. The thread's merge failures reach
/// no caller, except those that fail the handle (see bc_sync): later
/// writes return BC_FAILED naming them.
///
/// @return BC_OK, or BC_INVALID_ARGUMENT if opts is NULL.
/// Not thread-safe: calls on one bc_options must not overlap (set it
/// up on one thread); different bc_options are independent.
#[no_mangle]
pub extern "C" fn bc_options_set_auto_merge(opts: *mut bc_options, interval_ms: u32) -> bc_status {
    with_opts(opts, |o| {
        o.auto_merge = match interval_ms {
            0 => None,
            ms => Some(Duration::from_millis(ms as u64)),
        };
        Ok(())
    })
}

/// When a merge is needed (bc_needs_merge, auto-merge): when some immutable
/// data file has at least `frag` of its bytes dead (0..1, default 0.6) or
/// at least `dead_bytes` dead bytes (default 512 MiB), counting only what
/// a merge surely reclaims (not tombstones), so 0 fires for any file with
/// such bytes and none without. The active file counts too once it holds
/// at least the small-file threshold (bc_options_set_merge_thresholds,
/// default 10 MiB), and 1 MiB at least: a merge then retires it and takes it, so a database
/// that overwrites a few keys stays near that size rather than filling
/// its active file (max_file_size, default 256 MiB) with dead records.
///
/// Triggers and thresholds may be set in either order: bc_open checks that
/// no trigger is below its threshold.
///
/// @return BC_OK, or BC_INVALID_ARGUMENT if opts is NULL or frag is outside
///         0..1 (the previous values are kept).
/// Not thread-safe: calls on one bc_options must not overlap (set it
/// up on one thread); different bc_options are independent.
#[no_mangle]
pub extern "C" fn bc_options_set_merge_triggers(
    opts: *mut bc_options,
    frag: f64,
    dead_bytes: u64,
) -> bc_status {
    with_opts(opts, |o| {
        let mut p = o.merge;
        p.frag_trigger = frag;
        p.dead_bytes_trigger = dead_bytes;
        p.check_ranges()?;
        o.merge = p;
        Ok(())
    })
}

/// Which files a triggered merge takes: those with at least `frag` of
/// their bytes dead (default 0.4), or at least `dead_bytes` dead bytes
/// (default 128 MiB), or smaller than `small_file` bytes (default 10 MiB;
/// small files are combined). bc_merge always takes every file.
///
/// Set in either order with the triggers: bc_open checks that no threshold
/// is above its trigger.
///
/// @return BC_OK, or BC_INVALID_ARGUMENT if opts is NULL or frag is outside
///         0..1 (the previous values are kept).
/// Not thread-safe: calls on one bc_options must not overlap (set it
/// up on one thread); different bc_options are independent.
#[no_mangle]
pub extern "C" fn bc_options_set_merge_thresholds(
    opts: *mut bc_options,
    frag: f64,
    dead_bytes: u64,
    small_file: u64,
) -> bc_status {
    with_opts(opts, |o| {
        let mut p = o.merge;
        p.frag_threshold = frag;
        p.dead_bytes_threshold = dead_bytes;
        p.small_file_threshold = small_file;
        p.check_ranges()?;
        o.merge = p;
        Ok(())
    })
}

/// How many data file descriptors a handle keeps open (default 64, at
/// least 4). Files beyond it are opened on demand and the least recently
/// used closed, so a database of any number of files works under a low
/// `ulimit -n`. The active file and files being merged come on top.
///
/// @return BC_OK, or BC_INVALID_ARGUMENT if opts is NULL or n < 4.
/// Not thread-safe: calls on one bc_options must not overlap (set it
/// up on one thread); different bc_options are independent.
#[no_mangle]
pub extern "C" fn bc_options_set_max_open_files(opts: *mut bc_options, n: u32) -> bc_status {
    with_opts(opts, |o| {
        options::check_open_files(n)?;
        o.max_open_files = n;
        Ok(())
    })
}

/// How many bytes of records the active file collects before one write(2)
/// hands them to the OS (default 256 KiB, at most 64 MiB), when it is not
/// written through its map: with bc_options_set_write_map(opts, false),
/// on 32-bit targets, without the read maps, or on a filesystem other than
/// ext4, XFS and tmpfs (by default, on 64-bit targets and those
/// filesystems, the map is used and this buffer is not). With BC_SYNC_NONE a process crash loses at most this
/// much of what puts and deletes acknowledged (bc_sync and bc_close write
/// it out, and BC_SYNC_INTERVAL at its interval). 0 writes every record
/// before its put returns, so that only a power loss can lose
/// acknowledged records; it costs a system call a put (here 0.77 M puts/s
/// of 100-byte values against 3.4 M/s buffered; the write map gives the
/// same guarantee at 2.6 M/s). Larger buffers write large values faster
/// (1 MiB: 10% more puts of 10,000-byte values than 256 KiB, medians of 6
/// runs). The buffer is memory the handle holds; merge always buffers
/// 256 KiB.
///
/// @return BC_OK, or BC_INVALID_ARGUMENT if opts is NULL or bytes is above
///         64 MiB.
/// Not thread-safe: calls on one bc_options must not overlap (set it
/// up on one thread); different bc_options are independent.
#[no_mangle]
pub extern "C" fn bc_options_set_write_buffer(opts: *mut bc_options, bytes: usize) -> bc_status {
    with_opts(opts, |o| {
        options::check_write_buffer(bytes)?;
        o.write_buffer = bytes;
        Ok(())
    })
}

/// Whether reads go through read-only memory maps of the data files
/// (default true on 64-bit targets; 32-bit targets always use pread, so the
/// address space is never filled with maps). Maps make a get a memory copy
/// instead of a system call. The cost: an I/O error on a mapped page (a
/// failing disk, or a data file truncated behind the library's back) raises
/// SIGBUS in the process instead of returning BC_IO. Set false to read with
/// pread everywhere.
///
/// @return BC_OK, or BC_INVALID_ARGUMENT if opts is NULL.
/// Not thread-safe: calls on one bc_options must not overlap (set it
/// up on one thread); different bc_options are independent.
#[no_mangle]
pub extern "C" fn bc_options_set_mmap(opts: *mut bc_options, mmap: bool) -> bc_status {
    with_opts(opts, |o| {
        o.mmap = mmap;
        Ok(())
    })
}

/// Whether the active data file is written through a writable shared
/// memory map (default true). Each put then copies its record into the
/// page cache before it returns, as bc_options_set_write_buffer(opts, 0)
/// does with a write(2) a put: a crash of the process loses nothing
/// acknowledged, only a power loss can (use BC_SYNC_ALWAYS or bc_sync
/// against that). Set false to write through the write buffer instead:
/// faster puts of small values (3.4 M/s of 100-byte values against
/// 2.6 M/s here), at the cost of losing what the buffer holds to a crash
/// of the process. The file grows ahead of the writes in steps (64 KiB
/// first, doubling to 1 MiB) with fallocate(2) (near a full disk, by the
/// pages a record needs), so a full disk fails the put whose record finds
/// no room with BC_IO (nothing of it written) rather than raising SIGBUS,
/// and is cut back to its records when it is sealed (rotation,
/// bc_close); until then it holds up to a step more on disk than
/// bc_stats.total_bytes counts. After a crash the newest file (and a file
/// not yet sealed) ends in up to a step of zeros, which the next open cuts off with any torn record (bc_stats:
/// recovered_bytes_dropped counts them, and recovered_zero_bytes tells
/// them apart).
///
/// Used only where fallocate reserves the blocks that later stores into
/// the map fill, so that a full disk can never raise SIGBUS: ext4, XFS and
/// tmpfs. Elsewhere (btrfs, ZFS and other copy-on-write filesystems,
/// overlayfs, NFS, FUSE), on 32-bit targets, and without the read maps
/// (bc_options_set_mmap, on by default on 64-bit targets) the active file
/// is written through the write buffer as if this were false: a process
/// crash may then lose what the buffer holds (set the buffer to 0 with
/// bc_options_set_write_buffer to lose nothing). The write buffer is not
/// used while the map is.
///
/// @return BC_OK, or BC_INVALID_ARGUMENT if opts is NULL.
/// Not thread-safe: calls on one bc_options must not overlap (set it
/// up on one thread); different bc_options are independent.
#[no_mangle]
pub extern "C" fn bc_options_set_write_map(opts: *mut bc_options, on: bool) -> bc_status {
    with_opts(opts, |o| {
        o.write_map = on;
        Ok(())
    })
}
