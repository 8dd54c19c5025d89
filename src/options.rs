//! Open options and their limits.

use crate::error::{Error, Result};
use crate::format::{MAX_KEY_LEN, MAX_VALUE_LEN};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// When appended records reach stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// The OS decides; a process crash loses what is still in the library's
    /// write buffer, a power loss what is in the page cache.
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

pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs().min(u32::MAX as u64) as u32)
            .unwrap_or(0)
    })
}

pub(crate) const MIN_FILE_SIZE: u64 = 4096;
pub(crate) const MAX_FILE_SIZE: u64 = u32::MAX as u64;

#[derive(Clone)]
pub struct Options {
    /// The active data file is sealed when the next record would pass this.
    pub max_file_size: u64,
    pub max_key_size: u32,
    pub max_value_size: u32,
    pub sync: SyncMode,
    pub read_only: bool,
    pub create_if_missing: bool,
    /// Open despite damaged records: rewrite damaged files without them.
    pub repair: bool,
    pub clock: Clock,
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
            .finish_non_exhaustive()
    }
}

impl Options {
    pub fn validate(&self) -> Result<()> {
        check_file_size(self.max_file_size)?;
        check_key_size(self.max_key_size)?;
        check_value_size(self.max_value_size)?;
        if let SyncMode::Interval(d) = self.sync {
            if d.is_zero() {
                return Err(Error::invalid("sync interval must be greater than zero"));
            }
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
