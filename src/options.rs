//! Open options and their limits.

use crate::datafile::Mapped;
use crate::error::{Error, Result, Status};
use crate::format::{MAX_KEY_LEN, MAX_VALUE_LEN};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// When appended records reach stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// The OS decides; a process crash loses nothing acknowledged when the
    /// active file is written through its map (`Options::write_map`, the
    /// default on 64-bit targets), else what is still in the library's
    /// write buffer (`Options::write_buffer`); a power loss loses what is
    /// in the page cache.
    None,
    /// Every put and delete is on stable storage before it returns.
    /// Concurrent writers share one fsync (group commit).
    Always,
    /// A background thread flushes and syncs at this interval.
    Interval(Duration),
}

/// Seconds since the Unix epoch, as the engine sees them. Tests replace it
/// to exercise expiry without sleeping.
pub type Clock = Arc<dyn Fn() -> u32 + Send + Sync>;

/// The system's wall clock, in whole seconds. The coarse clock is enough
/// for second resolution and costs a fraction of the precise one, which
/// matters because every put reads it. Where `time_t` is 32 bits (armv7
/// and other 32-bit glibc targets) that call fails after January 2038, so
/// there the clock comes from std, which asks the kernel for 64-bit time.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        if std::mem::size_of::<libc::time_t>() < 8 {
            return std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs().min(u32::MAX as u64) as u32);
        }
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec into memory we own.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
        if rc != 0 || ts.tv_sec < 0 {
            return 0;
        }
        (ts.tv_sec as u64).min(u32::MAX as u64) as u32
    })
}

/// The write buffer's default size, and merge's (its outputs are synced
/// before anything depends on them, so its buffer is only about speed).
pub(crate) const WRITE_BUFFER: usize = 256 << 10;
pub(crate) const MAX_WRITE_BUFFER: usize = 64 << 20;

pub(crate) const MIN_FILE_SIZE: u64 = 4096;
pub(crate) const MAX_FILE_SIZE: u64 = u32::MAX as u64;

#[derive(Clone)]
pub struct Options {
    /// The active data file is sealed when the next record would pass this.
    pub max_file_size: u64,
    /// The longest key a put accepts. Gets, contains and deletes take any
    /// key up to 65535 bytes (keys written under a larger limit).
    pub max_key_size: u32,
    /// The longest value a put accepts.
    pub max_value_size: u32,
    pub sync: SyncMode,
    pub read_only: bool,
    pub create_if_missing: bool,
    /// Open despite damaged records: rewrite damaged files without them.
    pub repair: bool,
    /// Seconds a plain `put` lives; 0 = forever.
    pub default_ttl_secs: u32,
    /// Data file descriptors kept open at most (the active file and files
    /// being merged are always open on top of this).
    pub max_open_files: u32,
    /// Read through memory maps of the data files (64-bit targets only;
    /// ignored elsewhere). Faster reads without a system call; but an I/O
    /// error on a mapped page raises SIGBUS instead of returning an error.
    pub mmap: bool,
    /// Bytes of records the active file buffers before one `write` hands
    /// them to the OS (0..=64 MiB), when it is not written through its map
    /// (`write_map` off, 32-bit targets, no `mmap`, or a filesystem other
    /// than ext4, XFS and tmpfs). A process crash in `SyncMode::None` loses at most
    /// this; larger buffers write large values faster, 0 writes every
    /// record at once (each with its own system calls).
    pub write_buffer: usize,
    /// Write the active file through a writable shared memory map (default
    /// true; needs `mmap`, ignored where maps are not used, and on
    /// filesystems other than ext4, XFS and tmpfs, where `fallocate` may
    /// not reserve the blocks the map's stores fill): each put's record is
    /// in the page cache when the put returns, so a crash of the process
    /// loses nothing, as with a `write_buffer` of 0, at the cost of a
    /// memory copy instead of a system call. `write_buffer` then goes
    /// unused, except where the buffer takes over.
    pub write_map: bool,
    /// When merge is needed and which files it takes.
    pub merge: MergePolicy,
    /// Check the merge triggers at this interval on a background thread
    /// and merge when they fire; None = only explicit merges.
    pub auto_merge: Option<Duration>,
    pub clock: Clock,
}

/// Riak-style merge triggers (is a merge needed?) and thresholds (which
/// files does it take?). Fractions are dead bytes / record bytes of a file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MergePolicy {
    /// A merge is needed when some file is at least this fragmented...
    pub frag_trigger: f64,
    /// ...or holds at least this many dead bytes.
    pub dead_bytes_trigger: u64,
    /// A merge takes every file at least this fragmented,
    pub frag_threshold: f64,
    /// or with at least this many dead bytes,
    pub dead_bytes_threshold: u64,
    /// or smaller than this (small files are combined).
    pub small_file_threshold: u64,
}

impl Default for MergePolicy {
    fn default() -> MergePolicy {
        MergePolicy {
            frag_trigger: 0.6,
            dead_bytes_trigger: 512 << 20,
            frag_threshold: 0.4,
            dead_bytes_threshold: 128 << 20,
            small_file_threshold: 10 << 20,
        }
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_file_size: 256 << 20,
            max_key_size: 4096,
            max_value_size: 64 << 20,
            sync: SyncMode::None,
            read_only: false,
            create_if_missing: true,
            repair: false,
            default_ttl_secs: 0,
            max_open_files: 64,
            mmap: cfg!(target_pointer_width = "64"),
            write_buffer: WRITE_BUFFER,
            write_map: true,
            merge: MergePolicy::default(),
            auto_merge: None,
            clock: system_clock(),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("max_file_size", &self.max_file_size)
            .field("max_key_size", &self.max_key_size)
            .field("max_value_size", &self.max_value_size)
            .field("sync", &self.sync)
            .field("read_only", &self.read_only)
            .field("create_if_missing", &self.create_if_missing)
            .field("repair", &self.repair)
            .field("default_ttl_secs", &self.default_ttl_secs)
            .field("max_open_files", &self.max_open_files)
            .field("mmap", &self.mmap)
            .field("write_buffer", &self.write_buffer)
            .field("write_map", &self.write_map)
            .field("merge", &self.merge)
            .field("auto_merge", &self.auto_merge)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Whether reads go through memory maps here.
    pub fn maps(&self) -> bool {
        self.mmap && cfg!(target_pointer_width = "64")
    }

    /// How the active file is mapped: as a merge output, and for writes
    /// too with the write map.
    pub fn active_mapping(&self) -> Mapped {
        match self.output_mapping() {
            Mapped::ForReads(len) if self.write_map => Mapped::ForWrites {
                len,
                dirty_ahead: self.sync == SyncMode::None,
            },
            mapped => mapped,
        }
    }

    /// How a merge output is mapped: for reads only (merge writes its
    /// outputs through a buffer, and seals them before any reader uses
    /// them).
    pub fn output_mapping(&self) -> Mapped {
        match self.maps() {
            false => Mapped::No,
            true => Mapped::ForReads(self.max_file_size),
        }
    }

    /// Checks a key a put would write: 1..=max_key_size bytes.
    pub fn check_key_len(&self, len: usize) -> Result<()> {
        if len == 0 {
            return Err(Error::invalid("key is empty"));
        }
        if len > self.max_key_size as usize {
            return Err(Error::new(
                Status::TooLarge,
                format!(
                    "key of {len} bytes exceeds max_key_size {}",
                    self.max_key_size
                ),
            ));
        }
        Ok(())
    }

    /// Checks a key to look up or delete: not empty, and not longer than
    /// any key can be. Unlike a put's, this ignores max_key_size: a
    /// database written under a larger limit holds longer keys, and they
    /// stay readable and deletable.
    pub fn check_lookup_key_len(len: usize) -> Result<()> {
        if len == 0 {
            return Err(Error::invalid("key is empty"));
        }
        if len > MAX_KEY_LEN as usize {
            return Err(Error::new(
                Status::TooLarge,
                format!("key of {len} bytes is longer than any key ({MAX_KEY_LEN} bytes)"),
            ));
        }
        Ok(())
    }

    pub fn check_value_len(&self, len: usize) -> Result<()> {
        if len > self.max_value_size as usize {
            return Err(Error::new(
                Status::TooLarge,
                format!(
                    "value of {len} bytes exceeds max_value_size {}",
                    self.max_value_size
                ),
            ));
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<()> {
        check_file_size(self.max_file_size)?;
        check_key_size(self.max_key_size)?;
        check_value_size(self.max_value_size)?;
        if let SyncMode::Interval(d) = self.sync {
            if d.is_zero() {
                return Err(Error::invalid("sync interval must be greater than zero"));
            }
        }
        if self.auto_merge.is_some_and(|d| d.is_zero()) {
            return Err(Error::invalid(
                "auto-merge interval must be greater than zero",
            ));
        }
        check_open_files(self.max_open_files)?;
        check_write_buffer(self.write_buffer)?;
        self.merge.validate()
    }
}

pub fn check_write_buffer(v: usize) -> Result<()> {
    if v <= MAX_WRITE_BUFFER {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "write_buffer of {v} bytes is above {MAX_WRITE_BUFFER}"
        )))
    }
}

pub(crate) const MIN_OPEN_FILES: u32 = 4;

pub fn check_open_files(v: u32) -> Result<()> {
    if v >= MIN_OPEN_FILES {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "max_open_files {v} is below {MIN_OPEN_FILES}"
        )))
    }
}

impl MergePolicy {
    /// Each value in its range; what the option setters check, so that
    /// triggers and thresholds can be set in either order.
    pub fn check_ranges(&self) -> Result<()> {
        let fraction = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::invalid(format!("{name} {v} is outside 0..=1")))
            }
        };
        fraction("frag_trigger", self.frag_trigger)?;
        fraction("frag_threshold", self.frag_threshold)
    }

    /// The ranges, and no threshold above its trigger (checked at open).
    pub fn validate(&self) -> Result<()> {
        self.check_ranges()?;
        if self.frag_threshold > self.frag_trigger
            || self.dead_bytes_threshold > self.dead_bytes_trigger
        {
            return Err(Error::invalid(format!(
                "merge thresholds (fragmentation {}, dead bytes {}) must not exceed their \
                 triggers ({}, {}): a triggered merge would select nothing",
                self.frag_threshold,
                self.dead_bytes_threshold,
                self.frag_trigger,
                self.dead_bytes_trigger
            )));
        }
        Ok(())
    }
}

pub fn check_file_size(v: u64) -> Result<()> {
    if (MIN_FILE_SIZE..=MAX_FILE_SIZE).contains(&v) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "max_file_size {v} is outside {MIN_FILE_SIZE}..={MAX_FILE_SIZE}"
        )))
    }
}

pub fn check_key_size(v: u32) -> Result<()> {
    if (1..=MAX_KEY_LEN).contains(&v) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "max_key_size {v} is outside 1..={MAX_KEY_LEN}"
        )))
    }
}

pub fn check_value_size(v: u32) -> Result<()> {
    if (1..=MAX_VALUE_LEN).contains(&v) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "max_value_size {v} is outside 1..={MAX_VALUE_LEN}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults bc_options_new's header comment lists (bc_options_new
    /// starts from `Options::default()`).
    #[test]
    fn the_defaults_are_the_documented_ones() {
        let o = Options::default();
        assert_eq!(
            (o.max_file_size, o.max_key_size, o.max_value_size),
            (256 << 20, 4096, 64 << 20)
        );
        assert!(matches!(o.sync, SyncMode::None));
        assert!(!o.read_only && o.create_if_missing && !o.repair);
        assert_eq!(o.default_ttl_secs, 0);
        assert!(o.auto_merge.is_none());
        let m = o.merge;
        assert_eq!((m.frag_trigger, m.dead_bytes_trigger), (0.6, 512 << 20));
        assert_eq!(
            (
                m.frag_threshold,
                m.dead_bytes_threshold,
                m.small_file_threshold
            ),
            (0.4, 128 << 20, 10 << 20)
        );
        assert_eq!(o.max_open_files, 64);
        assert_eq!(o.mmap, cfg!(target_pointer_width = "64"));
        assert!(o.write_map);
        assert_eq!(o.write_buffer, 256 << 10);
    }

    #[test]
    fn the_system_clock_reads_unix_seconds() {
        let std_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let ours = super::system_clock()() as u64;
        // The coarse clock may lag by a tick; 0 would mean the call failed.
        assert!(ours.abs_diff(std_now) <= 2, "{ours} vs {std_now}");
    }
}
