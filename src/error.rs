//! Error type shared by the engine and the C boundary.

use std::ffi::CStr;
use std::fmt;
use std::io;
use std::path::Path;

/// Outcome classes. The numeric values are part of the C ABI (`bc_status`):
/// they are fixed forever and a retired value is never reused.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    InvalidArgument = 2,
    Io = 3,
    Corruption = 4,
    Locked = 5,
    TooLarge = 6,
    BufferTooSmall = 7,
    ReadOnly = 8,
    Internal = 9,
    VersionMismatch = 10,
    NoMemory = 11,
    Failed = 12,
}

impl Status {
    const ALL: [Status; 13] = [
        Status::Ok,
        Status::NotFound,
        Status::InvalidArgument,
        Status::Io,
        Status::Corruption,
        Status::Locked,
        Status::TooLarge,
        Status::BufferTooSmall,
        Status::ReadOnly,
        Status::Internal,
        Status::VersionMismatch,
        Status::NoMemory,
        Status::Failed,
    ];

    /// The status with this numeric value, if any.
    pub fn from_code(code: i32) -> Option<Status> {
        Status::ALL.into_iter().find(|s| *s as i32 == code)
    }

    /// A short static description (also what `bc_status_str` returns).
    pub fn describe_c(self) -> &'static CStr {
        match self {
            Status::Ok => c"ok",
            Status::NotFound => c"not found",
            Status::InvalidArgument => c"invalid argument",
            Status::Io => c"I/O error",
            Status::Corruption => c"data corruption",
            Status::Locked => c"database locked by another handle",
            Status::TooLarge => c"key or value too large",
            Status::BufferTooSmall => c"buffer too small",
            Status::ReadOnly => c"database is read-only",
            Status::Internal => c"internal error",
            Status::VersionMismatch => c"data file format version not supported",
            Status::NoMemory => c"out of memory",
            Status::Failed => c"the handle has failed: close it and open the database again",
        }
    }

    pub fn describe(self) -> &'static str {
        self.describe_c().to_str().unwrap_or("?")
    }
}

/// An error with the status class and a message that names the file and
/// offset where that is relevant.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    status: Status,
    message: String,
    /// What the engine does about it, beyond reporting it.
    cause: Cause,
}

/// The errors the engine itself acts on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cause {
    Other,
    /// A failed fsync: the kernel may have dropped the pages it could not
    /// write, so the handle fails (`Inner::synced`). Not a failed write,
    /// open or flush, after which nothing written is in doubt.
    Fsync,
    /// A data file deleted while a read-only handle was opening (the
    /// writer's merge): `Db::open` lists the directory again.
    Vanished,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
            cause: Cause::Other,
        }
    }

    /// An fsync (or fdatasync) of `path` that failed (`Cause::Fsync`).
    pub(crate) fn fsync(what: &str, path: &Path, err: io::Error) -> Error {
        Error {
            cause: Cause::Fsync,
            ..Error::io(what, path, err)
        }
    }

    pub(crate) fn is_fsync_failure(&self) -> bool {
        self.cause == Cause::Fsync
    }

    /// This error, as what failed the handle (`Status::Failed`): it and
    /// every later write, sync, merge and close report it.
    pub(crate) fn failing_the_handle(self) -> Error {
        Error {
            status: Status::Failed,
            ..self
        }
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(Status::InvalidArgument, message)
    }

    pub(crate) fn corruption(message: impl Into<String>) -> Error {
        Error::new(Status::Corruption, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Error {
        Error::new(Status::Internal, message)
    }

    /// A value (or record) of `len` bytes for which no memory could be had.
    pub(crate) fn no_memory(len: usize, what: fmt::Arguments<'_>) -> Error {
        Error::new(
            Status::NoMemory,
            format!("cannot allocate {len} bytes for {what}"),
        )
    }

    /// Data file `path`, deleted while a read-only handle was opening
    /// (`Cause::Vanished`).
    pub(crate) fn vanished(path: &Path) -> Error {
        let message = format!(
            "{}: deleted while the database was being opened read-only (a merge by the \
             process that writes it); open again",
            path.display()
        );
        Error {
            cause: Cause::Vanished,
            ..Error::new(Status::Io, message)
        }
    }

    pub(crate) fn is_vanished(&self) -> bool {
        self.cause == Cause::Vanished
    }

    /// An I/O error while doing `what` on `path`; ENOSPC and friends keep
    /// their OS wording ("No space left on device").
    pub(crate) fn io(what: &str, path: &Path, err: io::Error) -> Error {
        Error::new(Status::Io, format!("{what} {}: {err}", path.display()))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.status, self.message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status.describe(), self.message)
    }
}

impl std::error::Error for Error {}

/// Makes room in `v` for `len` items in all, or fails with `NoMemory`
/// naming `what`: a value or record can be up to 2 GiB, which a 32-bit
/// process or a small device may not be able to hold, and must not abort
/// it.
pub(crate) fn reserve<T>(v: &mut Vec<T>, len: usize, what: fmt::Arguments<'_>) -> Result<()> {
    v.try_reserve_exact(len.saturating_sub(v.len()))
        .map_err(|_| Error::no_memory(len.saturating_mul(std::mem::size_of::<T>()), what))
}

/// Makes room in `v` for one more item (growing as `push` does), or fails
/// with `NoMemory` naming `what`: for lists that grow an item at a time
/// where running out of memory must not abort.
pub(crate) fn reserve_one<T>(v: &mut Vec<T>, what: fmt::Arguments<'_>) -> Result<()> {
    v.try_reserve(1).map_err(|_| {
        let bytes = v
            .len()
            .saturating_add(1)
            .saturating_mul(std::mem::size_of::<T>());
        Error::no_memory(bytes, what)
    })
}

/// A copy of `bytes` (a value handed out), or `NoMemory` (see `reserve`).
pub(crate) fn copy_out(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    reserve(&mut v, bytes.len(), format_args!("a copy of the value"))?;
    v.extend_from_slice(bytes);
    Ok(v)
}

/// The message a panic was raised with (`panic!("...")` gives a `&str` or a
/// `String`), for the error that reports it.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}
