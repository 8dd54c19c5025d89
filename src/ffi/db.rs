//! `bc_db`: open, close and the key/value calls.

use super::options::{bc_options, options_or_default};
use super::{arg, bc_status, boundary, boundary_free, key_arg, lookup_key_arg, out_arg, value_arg};
use crate::db::{Db, Stats};
use crate::error::{Error, Status};
use std::ffi::{c_char, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;

/// An open database. Opaque; made by bc_open, freed by bc_close.
///
/// One bc_db may be used from many threads at once: gets run in parallel
/// and do not wait for writers; puts and deletes are serialised inside
/// (appends to one file), merges with each other, and a merge pauses
/// writers only for its final swap. bc_close must not run concurrently
/// with any other call on the same handle.
pub struct bc_db {
    pub(crate) db: Db,
}

/// Runs `body` against the handle behind `db`, poisoning it on a panic.
pub(crate) fn with_db(
    db: *mut bc_db,
    body: impl FnOnce(&Db) -> Result<bc_status, Error>,
) -> bc_status {
    // SAFETY: a non-NULL db comes from bc_open and stays alive until
    // bc_close, which the caller does not run concurrently (documented).
    let handle = match unsafe { arg(db as *const bc_db, "db") } {
        Ok(h) => h,
        Err(e) => return boundary_free(|| Err(e)),
    };
    boundary(|e| handle.db.poison(e.clone()), || body(&handle.db))
}

/// Gives a value copy to C through `val`/`vlen` (released with bc_free),
/// or reports BC_NOT_FOUND for None. The caller has checked both pointers.
pub(crate) fn hand_out(
    value: Option<Box<[u8]>>,
    val: *mut *mut u8,
    vlen: *mut usize,
) -> Result<bc_status, Error> {
    let Some(value) = value else {
        return found(false);
    };
    let len = value.len();
    // An empty box's pointer is 1 (dangling), which Go's runtime, finding
    // it on a goroutine's stack, takes for a bad pointer and aborts on: an
    // empty value gets the address of a static byte, which bc_free leaves.
    let ptr = match len {
        0 => EMPTY_VALUE.as_ptr() as *mut u8,
        _ => Box::into_raw(value) as *mut u8,
    };
    // SAFETY: val and vlen are non-NULL (checked by the caller) and
    // writable (caller contract); ownership of the box passes to C.
    unsafe {
        *val = ptr;
        *vlen = len;
    }
    Ok(bc_status::BC_OK)
}

/// Where every empty value points (never read: its length is 0).
static EMPTY_VALUE: [u8; 1] = [0];

pub(crate) fn found(b: bool) -> Result<bc_status, Error> {
    if b {
        Ok(bc_status::BC_OK)
    } else {
        Err(Error::new(Status::NotFound, "not found"))
    }
}

/// Opens the database in directory `path`, creating it if it is missing
/// (the last component of the path only: a missing parent is BC_IO; never
/// for a read-only open, nor when bc_options_set_create_if_missing said
/// otherwise), and rebuilds
/// the keydir from its data files. A record torn by a crash at the end of
/// the newest file (or of a file never sealed, which has no hint) is cut
/// off, and a page of such a file lost while later ones reached the disk
/// (zeros, docs/FORMAT.md) is removed, keeping every other record
/// (bc_stats.recovered_bytes_dropped counts the bytes); any other damage
/// fails the open with BC_CORRUPTION unless the repair option is set.
/// Give it a directory of its own: open uses any directory, reading and
/// writing only the names docs/FORMAT.md lists, beside whatever else is
/// there (a file that merely has such a name is BC_CORRUPTION).
///
/// @param[in]  path a NUL-terminated directory path, read during the call.
/// @param[in]  opts options, or NULL for the defaults; read during the
///             call only (free them whenever you like afterwards).
/// @param[out] out  receives the handle, owned by the caller until
///             bc_close. Written only on BC_OK.
/// @return BC_OK; BC_INVALID_ARGUMENT (NULL path or out, empty path,
///         options that do not fit together: merge thresholds above their
///         triggers);
///         BC_IO (missing directory without create_if_missing, permission,
///         a read-write open of a directory this process may not write to,
///         disk errors, the system refused a thread); BC_LOCKED (another
///         read-write handle holds the directory: the message names its
///         pid, or says it is this process: another handle of it, or a
///         child forked while one was open); BC_CORRUPTION (a damaged or foreign file: the message
///         names the file and offset); BC_VERSION_MISMATCH (a data file of
///         a format version this library does not read, also with the
///         repair option: nothing is changed); BC_NO_MEMORY (no room for
///         the keydir, which holds every key, or for a scan's read
///         window); BC_INTERNAL (a bug, such as a panic in a
///         thread that loads or scans files).
/// Thread-safe (opens of different directories may run in parallel). The
/// directory lock of a read-write handle is an flock(2) lock on the file
/// LOCK, which fork(2) shares with the child: until the child execs (the
/// descriptor is close-on-exec) or exits, a bc_open of that directory
/// after the parent's bc_close still returns BC_LOCKED. Use the handle in
/// one process only; a child must not use its parent's handle.
#[no_mangle]
pub extern "C" fn bc_open(
    path: *const c_char,
    opts: *const bc_options,
    out: *mut *mut bc_db,
) -> bc_status {
    boundary_free(|| {
        out_arg(out, "out")?;
        if path.is_null() {
            return Err(Error::invalid("path is NULL"));
        }
        // SAFETY: path is non-NULL and NUL-terminated (caller contract).
        let path = unsafe { CStr::from_ptr(path) }.to_bytes();
        if path.is_empty() {
            return Err(Error::invalid("path is empty"));
        }
        // SAFETY: opts is NULL or from bc_options_new (caller contract).
        let opts = unsafe { options_or_default(opts) };
        let db = Db::open(OsStr::from_bytes(path), opts)?;
        let handle = Box::into_raw(Box::new(bc_db { db }));
        // SAFETY: out is non-NULL and writable (caller contract).
        unsafe { *out = handle };
        Ok(bc_status::BC_OK)
    })
}

/// Flushes and syncs what is buffered, releases the directory lock and
/// frees the handle. NULL is a no-op returning BC_OK.
///
/// @param[in] db the handle; it is freed whatever the result, and must not
///            be used again nor be in use by another thread. Free its
///            iterators first: one that outlives it fails (see bc_iter).
/// @return BC_OK; BC_IO if the final flush failed (a full disk), or a
///         file could not be sealed (its truncate failed: its records
///         are synced all the same, and the next open scans it);
///         BC_FAILED if its final fsync failed, or the handle failed
///         earlier, and the message says what failed it: a failed fsync
///         (the data written since the last successful sync may be lost,
///         and close neither flushes nor seals anything, so the next open
///         scans the files never sealed); a merge that could not delete a
///         file it merged, or a bug caught on this handle (close then
///         still writes out and syncs every acknowledged put, but seals
///         nothing: the next open scans those files).
/// Not thread-safe: no other call may run on db during or after it.
#[no_mangle]
pub extern "C" fn bc_close(db: *mut bc_db) -> bc_status {
    if db.is_null() {
        return bc_status::BC_OK;
    }
    boundary_free(|| {
        // SAFETY: db came from Box::into_raw in bc_open and is closed once,
        // with no concurrent calls (caller contract).
        let handle = unsafe { Box::from_raw(db) };
        handle.db.close()?;
        Ok(bc_status::BC_OK)
    })
}

/// Stores `val` under `key`, replacing any previous value.
///
/// @param[in] db  the handle.
/// @param[in] key the key bytes (any bytes, NULs included), read during the
///            call; 1 ..= max_key_size bytes.
/// @param[in] val the value bytes, read during the call; NULL with vlen 0
///            stores an empty value (which is found, with length 0).
/// @return BC_OK; BC_INVALID_ARGUMENT (NULL db or key, empty key, NULL val
///         with vlen > 0); BC_TOO_LARGE (key or value over its limit);
///         BC_READ_ONLY; BC_IO (the write failed, e.g. disk full, and the
///         handle goes on: in BC_SYNC_ALWAYS mode the record may have
///         reached the library's buffer and its keydir, so the value may
///         be seen and may become durable with a later flush; in the other
///         modes it was not stored); BC_FAILED (the handle has
///         failed, by this put's fsync in BC_SYNC_ALWAYS mode, after which
///         the value may or may not be durable, or earlier: see bc_sync);
///         BC_NO_MEMORY (nothing was
///         stored: a new key, and no memory for the keydir to grow, which
///         a key already there without a TTL does not need, unless the put
///         gives it one; or no room for the write buffer to grow to the
///         record); BC_INTERNAL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn bc_put(
    db: *mut bc_db,
    key: *const u8,
    klen: usize,
    val: *const u8,
    vlen: usize,
) -> bc_status {
    put(db, key, klen, val, vlen, None)
}

/// The body of bc_put and bc_put_ttl (None: the default TTL).
fn put(
    db: *mut bc_db,
    key: *const u8,
    klen: usize,
    val: *const u8,
    vlen: usize,
    ttl_secs: Option<u32>,
) -> bc_status {
    with_db(db, |db| {
        // SAFETY: key/val point to klen/vlen readable bytes (caller contract).
        let (k, v) = unsafe {
            (
                key_arg(db.options(), key, klen)?,
                value_arg(db.options(), val, vlen)?,
            )
        };
        match ttl_secs {
            Some(ttl) => db.put_ttl(k, v, ttl)?,
            None => db.put(k, v)?,
        }
        Ok(bc_status::BC_OK)
    })
}

/// Stores `val` under `key` with a time to live: after `ttl_secs` seconds
/// (by the handle's clock) the key reads as absent, and merge reclaims it.
/// `ttl_secs` 0 means the value never expires (whatever the default TTL).
///
/// Parameters and statuses as for bc_put.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn bc_put_ttl(
    db: *mut bc_db,
    key: *const u8,
    klen: usize,
    val: *const u8,
    vlen: usize,
    ttl_secs: u32,
) -> bc_status {
    put(db, key, klen, val, vlen, Some(ttl_secs))
}

/// Looks up `key` and returns a copy of its value.
///
/// @param[out] val  receives a buffer owned by the caller, to be released
///             with bc_free(val, vlen) (never with free()). For an empty
///             value *vlen is 0 and *val is a valid, non-NULL address
///             (the same for every empty value) that must not be read;
///             passing it to bc_free is harmless.
/// @param[out] vlen receives the value length.
///             Both are written only on BC_OK.
/// @return BC_OK; BC_NOT_FOUND (absent or expired; not an error);
///         BC_INVALID_ARGUMENT; BC_TOO_LARGE (key over 65535 bytes, the
///         longest any database holds: lookups and deletes ignore
///         max_key_size, which limits puts, so keys written under a larger
///         limit stay readable); BC_CORRUPTION (the stored record fails
///         its checksum: never wrong bytes); BC_IO; BC_NO_MEMORY (no room
///         for the copy, or, reading without memory maps, for the record);
///         BC_INTERNAL.
/// Thread-safe; gets run in parallel with each other and with writers.
#[no_mangle]
pub extern "C" fn bc_get(
    db: *mut bc_db,
    key: *const u8,
    klen: usize,
    val: *mut *mut u8,
    vlen: *mut usize,
) -> bc_status {
    with_db(db, |db| {
        out_arg(val, "val")?;
        out_arg(vlen, "vlen")?;
        // SAFETY: key points to klen readable bytes (caller contract).
        let k = unsafe { lookup_key_arg(key, klen)? };
        hand_out(db.get(k)?.map(Vec::into_boxed_slice), val, vlen)
    })
}

/// Looks up `key` and copies its value into the caller's buffer, without
/// allocating.
///
/// @param[out] buf  the caller's buffer of `cap` bytes; NULL is allowed
///             with cap 0 (a size query).
/// @param[out] vlen on BC_OK the value length; on BC_BUFFER_TOO_SMALL the
///             length needed (buf is then left untouched).
/// @return BC_OK; BC_NOT_FOUND; BC_BUFFER_TOO_SMALL; BC_INVALID_ARGUMENT
///         (also NULL vlen, or NULL buf with cap > 0); BC_TOO_LARGE (key
///         over 65535 bytes, as for bc_get); BC_CORRUPTION; BC_IO;
///         BC_NO_MEMORY (reading without memory maps, no room for the
///         record); BC_INTERNAL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn bc_get_into(
    db: *mut bc_db,
    key: *const u8,
    klen: usize,
    buf: *mut u8,
    cap: usize,
    vlen: *mut usize,
) -> bc_status {
    with_db(db, |db| {
        out_arg(vlen, "vlen")?;
        if buf.is_null() && cap > 0 {
            return Err(Error::invalid(format!("buf is NULL with cap {cap}")));
        }
        // SAFETY: key points to klen readable bytes (caller contract).
        let k = unsafe { lookup_key_arg(key, klen)? };
        let copied = db.with_value(k, |v| {
            if v.len() > cap {
                return Err(v.len());
            }
            if !v.is_empty() {
                // SAFETY: buf is non-NULL here (cap >= v.len() > 0) and has
                // cap writable bytes (caller contract); v is our own buffer,
                // so the two do not overlap.
                unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), buf, v.len()) };
            }
            Ok(v.len())
        })?;
        let (status, len) = match copied {
            None => return found(false),
            Some(Ok(n)) => (bc_status::BC_OK, n),
            Some(Err(needed)) => {
                super::set_last_error(&format!("value is {needed} bytes, the buffer holds {cap}"));
                (bc_status::BC_BUFFER_TOO_SMALL, needed)
            }
        };
        // SAFETY: vlen is non-NULL and writable (caller contract).
        unsafe { *vlen = len };
        Ok(status)
    })
}

/// Releases a value returned by bc_get. NULL is a no-op.
///
/// @param[in] val  exactly the pointer bc_get returned.
/// @param[in] vlen exactly the length bc_get returned with it. Any other
///            pointer or length is undefined behaviour (the allocator is
///            told the wrong size), as is freeing a value twice.
/// Thread-safe (any thread may free).
#[no_mangle]
pub extern "C" fn bc_free(val: *mut u8, vlen: usize) {
    // An empty value owns nothing (it points at `EMPTY_VALUE`).
    if !val.is_null() && vlen > 0 {
        // SAFETY: (val, vlen) came from Box<[u8]>::into_raw in bc_get and
        // are freed once (caller contract).
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(val, vlen)) });
    }
}

/// Deletes `key` by appending a tombstone.
///
/// @return BC_OK; BC_NOT_FOUND (the key was absent: nothing is written);
///         BC_INVALID_ARGUMENT; BC_TOO_LARGE (key over 65535 bytes: a key
///         over max_key_size, written under a larger limit, can be
///         deleted); BC_READ_ONLY; BC_IO; BC_FAILED (see bc_put);
///         BC_NO_MEMORY (no room for the write buffer to grow: nothing was
///         written); BC_INTERNAL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn bc_delete(db: *mut bc_db, key: *const u8, klen: usize) -> bc_status {
    with_db(db, |db| {
        // SAFETY: key points to klen readable bytes (caller contract).
        let k = unsafe { lookup_key_arg(key, klen)? };
        found(db.delete(k)?)
    })
}

/// Whether `key` has a value, without reading it (no disk I/O).
///
/// @return BC_OK (present); BC_NOT_FOUND (absent or expired);
///         BC_INVALID_ARGUMENT; BC_TOO_LARGE (key over 65535 bytes, as for
///         bc_get); BC_INTERNAL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn bc_contains(db: *mut bc_db, key: *const u8, klen: usize) -> bc_status {
    with_db(db, |db| {
        // SAFETY: key points to klen readable bytes (caller contract).
        let k = unsafe { lookup_key_arg(key, klen)? };
        found(db.contains(k)?)
    })
}

/// Writes out the library's buffer and fsyncs the active data file: every
/// put and delete that returned before this call is then durable. A no-op
/// on a read-only handle.
///
/// @return BC_OK; BC_INVALID_ARGUMENT (NULL db); BC_IO (the flush before
///         the fsync failed, e.g. a full disk: the handle goes on, and a
///         later bc_sync tries again); BC_FAILED (this fsync failed, or
///         the handle failed earlier: an fsync, a merge that could not
///         delete a file it merged, or a bug caught on this handle. From
///         the first failure on, bc_sync, bc_merge, bc_close and every
///         write return BC_FAILED naming it: a retried fsync may report
///         success for data the kernel has dropped, and an undeleted file
///         is outside what this handle's merges account for. Close the
///         handle and open the database again, which checks what reached
///         the disk and merges that file again).
/// Thread-safe.
#[no_mangle]
pub extern "C" fn bc_sync(db: *mut bc_db) -> bc_status {
    with_db(db, |db| {
        db.sync()?;
        Ok(bc_status::BC_OK)
    })
}

/// Merge: seals the active data file and rewrites all data files keeping
/// only live records (newest value of each key, not deleted, not expired),
/// then deletes the old files. Readers are never paused and never see a
/// stale or missing value; writers keep writing to a new active file while
/// the merge copies. A crash at any point leaves a directory that opens
/// with the same data. With nothing to reclaim it returns BC_OK at once.
/// It writes its copies before it deletes anything: it needs free space
/// for the live records of what it merges and a quarter more (hints). On
/// a disk without room for all of it, it merges the oldest files that fit
/// (call it again to go on); when not even the oldest fits, it returns
/// BC_IO ("no room to merge") having written nothing.
///
/// @return BC_OK; BC_INVALID_ARGUMENT; BC_READ_ONLY; BC_IO (no room to
///         merge, or a write of its output failed: the database stays
///         consistent, and a later merge retries); BC_FAILED (a failed
///         fsync, or a merged file that could not be deleted, failed the
///         handle, now or earlier: see bc_sync);
///         BC_CORRUPTION (a record
///         that fails its checksum: nothing was deleted); BC_NO_MEMORY (no
///         room to read a record whole, as merge copies it, or for its
///         write buffer, its hints, its lists of moved or expired records: nothing
///         was deleted); BC_INTERNAL.
/// Thread-safe; one merge runs at a time (a second waits for the first).
#[no_mangle]
pub extern "C" fn bc_merge(db: *mut bc_db) -> bc_status {
    with_db(db, |db| {
        db.merge()?;
        Ok(bc_status::BC_OK)
    })
}

/// Whether the merge triggers (bc_options_set_merge_triggers) currently
/// fire: for some immutable data file, or for the active file once it
/// holds at least the small-file threshold's bytes, and 1 MiB at least
/// (bc_options_set_merge_thresholds; a merge then retires it first).
///
/// @param[out] out receives the answer; written only on BC_OK.
/// @return BC_OK; BC_INVALID_ARGUMENT (NULL db or out).
/// Thread-safe.
#[no_mangle]
pub extern "C" fn bc_needs_merge(db: *mut bc_db, out: *mut bool) -> bc_status {
    with_db(db, |db| {
        out_arg(out, "out")?;
        let needed = db.needs_merge();
        // SAFETY: out is non-NULL and writable (caller contract).
        unsafe { *out = needed };
        Ok(bc_status::BC_OK)
    })
}

/// The number of live keys (expired keys excluded).
///
/// @param[out] out receives the count; written only on BC_OK.
/// @return BC_OK; BC_INVALID_ARGUMENT (NULL db or out).
/// Thread-safe.
#[no_mangle]
pub extern "C" fn bc_count(db: *mut bc_db, out: *mut u64) -> bc_status {
    with_db(db, |db| {
        out_arg(out, "out")?;
        let n = db.count();
        // SAFETY: out is non-NULL and writable (caller contract).
        unsafe { *out = n };
        Ok(bc_status::BC_OK)
    })
}

/// Counters describing a database, filled by bc_get_stats.
///
/// Fields are only ever added at the end, and each after the first two is
/// 8 bytes. Set `struct_size` to sizeof(bc_stats) before the call: a
/// library newer than your header fills only the fields your struct has,
/// and an older library fills the ones it knows and leaves the rest as you
/// set them (zero them first). On return `struct_size` holds the bytes
/// filled: the smaller of the two sizes, in whole fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct bc_stats {
    /// Set by the caller to sizeof(bc_stats); on return, the bytes filled.
    pub struct_size: u32,
    /// Always 0.
    pub reserved: u32,
    /// Keys with a value.
    pub live_keys: u64,
    /// Data files, the active one included.
    pub data_files: u64,
    /// Bytes of all data files: their headers and records (a file written
    /// through its map, bc_options_set_write_map, holds up to 1 MiB more
    /// on disk, allocated ahead of its records, until it is sealed).
    pub total_bytes: u64,
    /// Bytes of records holding live values.
    pub live_bytes: u64,
    /// Bytes a merge would reclaim: overwritten or deleted records and
    /// tombstones.
    pub dead_bytes: u64,
    /// dead_bytes / (live_bytes + dead_bytes), 0 for an empty database.
    pub fragmentation: f64,
    /// Keys whose time to live has passed (invisible; merge reclaims them).
    pub expired_keys: u64,
    /// Bytes open dropped from files a crash left unsynced: torn tails, torn
    /// creations and lost pages (docs/FORMAT.md).
    pub recovered_bytes_dropped: u64,
    /// Damaged records or files skipped by an open with the repair option.
    pub repaired_records_skipped: u64,
    /// Merges completed by this handle.
    pub merges: u64,
    /// Memory held by the keydir, in bytes: its heap blocks plus its 2 MiB
    /// regions counted whole (the region being filled, and memory freed by
    /// deletes and kept for later keys, included).
    pub keydir_bytes: u64,
    /// Of recovered_bytes_dropped, the zero bytes that ended torn tails:
    /// space a file written through its map (bc_options_set_write_map)
    /// had allocated ahead of its records, which after a crash ends the
    /// newest file (or one not yet sealed), or pages a power loss left
    /// unwritten, which look the same. After a crash of a process writing
    /// through its map, recovered_bytes_dropped minus this is what was
    /// lost: at most a record it was writing. (A read-only handle opened
    /// beside a live writer counts the space that writer allocated ahead
    /// in both fields: it drops it from its own view, not from the disk.)
    pub recovered_zero_bytes: u64,
    /// 1 when puts go through the active file's writable map
    /// (bc_options_set_write_map), so that with BC_SYNC_NONE a crash of
    /// the process loses none; 0 when they go through the write buffer:
    /// the write map off, 32-bit targets, no read maps, or a filesystem
    /// other than ext4, XFS and tmpfs (or one without fallocate), and for
    /// read-only handles. Before the handle's first write, what the first
    /// data file it creates will use, as far as the options and the
    /// directory's filesystem tell.
    pub writes_through_map: u64,
}

impl From<&Stats> for bc_stats {
    fn from(s: &Stats) -> bc_stats {
        let records = s.live_bytes + s.dead_bytes;
        bc_stats {
            struct_size: std::mem::size_of::<bc_stats>() as u32,
            reserved: 0,
            live_keys: s.live_keys,
            data_files: s.data_files,
            total_bytes: s.total_bytes,
            live_bytes: s.live_bytes,
            dead_bytes: s.dead_bytes,
            fragmentation: if records == 0 {
                0.0
            } else {
                s.dead_bytes as f64 / records as f64
            },
            expired_keys: s.expired_keys,
            recovered_bytes_dropped: s.recovered_bytes_dropped,
            repaired_records_skipped: s.repaired_records_skipped,
            merges: s.merges,
            keydir_bytes: s.keydir_bytes,
            recovered_zero_bytes: s.recovered_zero_bytes,
            writes_through_map: s.writes_through_map as u64,
        }
    }
}

/// Fills `*out` with the current counters.
///
/// @param[in,out] out caller-owned; out->struct_size must be set (see
///                bc_stats). Only the first struct_size bytes are written,
///                and only on BC_OK.
/// @return BC_OK; BC_INVALID_ARGUMENT (NULL db or out, or struct_size
///         smaller than the struct_size and reserved fields).
/// Thread-safe.
#[no_mangle]
pub extern "C" fn bc_get_stats(db: *mut bc_db, out: *mut bc_stats) -> bc_status {
    with_db(db, |db| {
        out_arg(out, "out")?;
        // SAFETY: out is non-NULL and its first 4 bytes are the caller's
        // struct_size (caller contract); read unaligned to be lenient.
        let size = unsafe { std::ptr::read_unaligned(out as *const u32) } as usize;
        if size < 8 {
            return Err(Error::invalid(format!(
                "out->struct_size is {size}; set it to sizeof(bc_stats)"
            )));
        }
        let mut full = bc_stats::from(&db.stats());
        // Whole fields only: a size that ends inside one leaves it as the
        // caller set it rather than half written.
        let n = 8 + (size.min(std::mem::size_of::<bc_stats>()) - 8) / 8 * 8;
        full.struct_size = n as u32;
        // SAFETY: the caller's struct has `size` writable bytes (it said so
        // in struct_size) and n <= size; the source is our local struct.
        unsafe {
            std::ptr::copy_nonoverlapping(&full as *const bc_stats as *const u8, out as *mut u8, n)
        };
        Ok(bc_status::BC_OK)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn put(db: *mut bc_db, k: &[u8], v: &[u8]) -> bc_status {
        bc_put(db, k.as_ptr(), k.len(), v.as_ptr(), v.len())
    }

    /// A panic inside a call on a handle (a bug) is reported as BC_INTERNAL
    /// and leaves the handle refusing writes with BC_FAILED, while reads go
    /// on, and close
    /// still frees it: the handle's state after a bug is unknown, so
    /// nothing more is written with it.
    #[test]
    fn a_caught_panic_fails_the_handle_for_writes_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = CString::new(dir.path().join("db").to_str().unwrap()).unwrap();
        let mut db = std::ptr::null_mut();
        assert_eq!(
            bc_open(path.as_ptr(), std::ptr::null(), &mut db),
            bc_status::BC_OK
        );
        assert_eq!(put(db, b"k", b"before"), bc_status::BC_OK);

        let st = with_db(db, |_| panic!("injected bug"));
        assert_eq!(st, bc_status::BC_INTERNAL);

        assert_eq!(put(db, b"k", b"after"), bc_status::BC_FAILED);
        // SAFETY: bc_last_error returns a valid NUL-terminated string.
        let msg = unsafe { CStr::from_ptr(super::super::bc_last_error()) };
        let msg = msg.to_str().unwrap();
        assert!(
            msg.contains("writes refused") && msg.contains("injected bug"),
            "{msg}"
        );
        assert_eq!(bc_delete(db, b"k".as_ptr(), 1), bc_status::BC_FAILED);
        let mut buf = [0u8; 16];
        let mut len = 0usize;
        assert_eq!(
            bc_get_into(db, b"k".as_ptr(), 1, buf.as_mut_ptr(), buf.len(), &mut len),
            bc_status::BC_OK
        );
        assert_eq!(&buf[..len], b"before");
        assert_eq!(bc_close(db), bc_status::BC_FAILED);

        // The records written before the bug are intact on reopen.
        assert_eq!(
            bc_open(path.as_ptr(), std::ptr::null(), &mut db),
            bc_status::BC_OK
        );
        assert_eq!(
            bc_get_into(db, b"k".as_ptr(), 1, buf.as_mut_ptr(), buf.len(), &mut len),
            bc_status::BC_OK
        );
        assert_eq!(&buf[..len], b"before");
        assert_eq!(put(db, b"k", b"again"), bc_status::BC_OK);
        assert_eq!(bc_close(db), bc_status::BC_OK);
    }
}
