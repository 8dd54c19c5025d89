//! The C boundary: the only module with `extern "C"`.
//!
//! Conventions every export follows (and the header states):
//! - a panic never crosses the boundary: it is caught, reported as
//!   BC_INTERNAL, and the handle it happened on refuses writes afterwards
//!   (BC_FAILED);
//! - every pointer is checked before use; NULL gets BC_INVALID_ARGUMENT;
//! - output parameters are written only on success;
//! - a failing call stores its message for `bc_last_error` on the calling
//!   thread; BC_NOT_FOUND is an outcome, not a failure, and stores nothing.

#![allow(non_camel_case_types)]
// C callers cannot see Rust's `unsafe`: every export takes raw pointers,
// checks them for NULL and documents what it requires of them instead.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod db;
mod iter;
mod options;

pub use db::*;
pub use iter::*;
pub use options::*;

use crate::error::{Error, Status};
use crate::options::Options;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CStr, CString};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// Result of every fallible call. The numeric values are fixed forever; a
/// retired value is never reused. Compare against the named constants.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum bc_status {
    /// Success.
    BC_OK = 0,
    /// The key is absent (or expired). An outcome, not an error:
    /// `bc_last_error` is left unchanged.
    BC_NOT_FOUND = 1,
    /// A NULL pointer, an empty key, an out-of-range option value.
    BC_INVALID_ARGUMENT = 2,
    /// An operating-system I/O failure, including a full disk; the message
    /// names the file and the OS error.
    BC_IO = 3,
    /// Stored data failed its checksum or is not a bitcask file; the message
    /// names the file and offset.
    BC_CORRUPTION = 4,
    /// Another read-write handle (this process or another) holds the
    /// database; the message names its pid.
    BC_LOCKED = 5,
    /// A put's key is longer than max_key_size or its value longer than
    /// max_value_size; a key to look up or delete is longer than any key
    /// can be (65535 bytes).
    BC_TOO_LARGE = 6,
    /// `bc_get_into`: the buffer cannot hold the value; the needed length
    /// was written to `*vlen`.
    BC_BUFFER_TOO_SMALL = 7,
    /// A write on a handle opened read-only.
    BC_READ_ONLY = 8,
    /// A bug was caught (a panic or a broken invariant). The handle then
    /// refuses writes with BC_FAILED; reads may still work. Close it
    /// (which still writes out and syncs every put acknowledged before)
    /// and reopen it.
    BC_INTERNAL = 9,
    /// A data file is in a format version this library does not read (a
    /// newer release wrote it); the message names the file and both
    /// versions. Nothing was changed: open it with that release. Not
    /// damage: the repair option refuses such a file too, rather than set
    /// it aside and lose its records.
    BC_VERSION_MISMATCH = 10,
    /// The system had no memory for a value (or a record being read): a
    /// value can be up to 2 GiB, more than a 32-bit process or a small
    /// device may hold at once. Or, from a put of a new key, for the
    /// keydir to grow (every key lives in memory). Nothing was changed;
    /// the handle stays usable. bc_get_into needs no copy of the value but
    /// the one in your buffer (with memory maps; otherwise it reads the
    /// record first).
    BC_NO_MEMORY = 11,
    /// The handle has failed for good, and the message says what failed
    /// it: an fsync (the kernel may have dropped pages it could not
    /// write, so what was acknowledged since the last successful sync may
    /// be lost), a merge that could not delete a file it merged, or a bug
    /// caught earlier (that call itself returned BC_INTERNAL). Returned by
    /// the call that failed it and, from then on, by every write,
    /// bc_sync, bc_merge and bc_close of the handle; reads go on. Unlike
    /// BC_IO, trying again does not help: close the handle and open the
    /// database again (the open checks and recovers the files).
    BC_FAILED = 12,
}

impl From<Status> for bc_status {
    fn from(s: Status) -> bc_status {
        match s {
            Status::Ok => bc_status::BC_OK,
            Status::NotFound => bc_status::BC_NOT_FOUND,
            Status::InvalidArgument => bc_status::BC_INVALID_ARGUMENT,
            Status::Io => bc_status::BC_IO,
            Status::Corruption => bc_status::BC_CORRUPTION,
            Status::Locked => bc_status::BC_LOCKED,
            Status::TooLarge => bc_status::BC_TOO_LARGE,
            Status::BufferTooSmall => bc_status::BC_BUFFER_TOO_SMALL,
            Status::ReadOnly => bc_status::BC_READ_ONLY,
            Status::Internal => bc_status::BC_INTERNAL,
            Status::VersionMismatch => bc_status::BC_VERSION_MISMATCH,
            Status::NoMemory => bc_status::BC_NO_MEMORY,
            Status::Failed => bc_status::BC_FAILED,
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    /// Set while this thread runs inside an export: our panic hook stays
    /// silent then (the library never prints).
    static IN_CALL: Cell<bool> = const { Cell::new(false) };
}

fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // A call from a thread-exit destructor (after Rust's thread-locals are
    // gone) keeps its status; only the message is lost.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = c);
}

/// Installs, once, a panic hook that is silent for panics inside exports
/// and on the library's own threads (named `bitcask-*`; they catch their
/// panics too), and defers to the previous hook for everything else in the
/// host.
fn install_quiet_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            // A thread whose thread-locals are gone is in a call from a
            // thread-exit destructor; `current()` is not asked then.
            let quiet = IN_CALL.try_with(|c| c.get()).unwrap_or(true)
                || std::thread::current()
                    .name()
                    .is_some_and(|n| n.starts_with("bitcask-"));
            if !quiet {
                previous(info);
            }
        }));
    });
}

/// Runs the body of an export: converts errors into statuses and the last
/// error message, and panics into BC_INTERNAL. `on_bug` poisons the handle
/// the call was made on, if any, after a panic or a BC_INTERNAL error (a
/// broken invariant): either way the handle's state is in doubt.
pub(crate) fn boundary(
    on_bug: impl FnOnce(&Error),
    body: impl FnOnce() -> Result<bc_status, Error>,
) -> bc_status {
    report(catch(body), on_bug)
}

/// Runs `body`, turning a panic into a BC_INTERNAL error.
pub(crate) fn catch(body: impl FnOnce() -> Result<bc_status, Error>) -> Result<bc_status, Error> {
    install_quiet_panic_hook();
    // try_with: C may call in from a thread-exit destructor, after this
    // thread's thread-locals are gone.
    let _ = IN_CALL.try_with(|c| c.set(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(body));
    let _ = IN_CALL.try_with(|c| c.set(false));
    outcome.unwrap_or_else(|payload| {
        Err(Error::internal(format!(
            "internal error (caught panic): {}",
            crate::error::panic_message(payload.as_ref())
        )))
    })
}

/// The status of an export's `outcome`: stores a failure's message for
/// `bc_last_error`, and on BC_INTERNAL lets `on_bug` poison the handle.
pub(crate) fn report(outcome: Result<bc_status, Error>, on_bug: impl FnOnce(&Error)) -> bc_status {
    match outcome {
        Ok(status) => status,
        Err(e) => {
            if e.status() == Status::Internal {
                // The poisoning itself must not unwind out of here.
                let _ = panic::catch_unwind(AssertUnwindSafe(|| on_bug(&e)));
            }
            if e.status() != Status::NotFound {
                set_last_error(e.message());
            }
            e.status().into()
        }
    }
}

/// `boundary` for calls that have no handle to poison.
pub(crate) fn boundary_free(body: impl FnOnce() -> Result<bc_status, Error>) -> bc_status {
    boundary(|_| {}, body)
}

/// Turns a possibly-NULL pointer into a reference or BC_INVALID_ARGUMENT.
///
/// # Safety
/// A non-NULL `p` must point to a live, properly aligned `T` for `'a`.
pub(crate) unsafe fn arg<'a, T>(p: *const T, name: &str) -> Result<&'a T, Error> {
    // SAFETY: the caller guarantees `p` is NULL or valid for 'a.
    unsafe { p.as_ref() }.ok_or_else(|| Error::invalid(format!("{name} is NULL")))
}

/// Checks an output pointer is non-NULL.
pub(crate) fn out_arg<T>(p: *mut T, name: &str) -> Result<(), Error> {
    if p.is_null() {
        Err(Error::invalid(format!("{name} is NULL")))
    } else {
        Ok(())
    }
}

/// A byte slice from a C pointer and length. NULL is allowed only with a
/// zero length (an empty slice). The length must already have been checked
/// against a limit: a slice is never made over more than the caller could
/// have meant.
///
/// # Safety
/// A non-NULL `p` must point to `len` readable bytes for `'a`.
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: usize, name: &str) -> Result<&'a [u8], Error> {
    if p.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(Error::invalid(format!("{name} is NULL with length {len}")));
    }
    // SAFETY: the caller guarantees `p` points to `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A key from C to put, checked (NULL, empty, over max_key_size) before
/// any byte is looked at.
///
/// # Safety
/// A non-NULL `p` must point to `len` readable bytes for `'a`.
pub(crate) unsafe fn key_arg<'a>(
    opts: &Options,
    p: *const u8,
    len: usize,
) -> Result<&'a [u8], Error> {
    // SAFETY: forwarded from the caller.
    unsafe { checked_key(p, len, |n| opts.check_key_len(n)) }
}

/// A key from C to look up or delete, checked (NULL, empty, longer than
/// any key) before any byte is looked at.
///
/// # Safety
/// A non-NULL `p` must point to `len` readable bytes for `'a`.
pub(crate) unsafe fn lookup_key_arg<'a>(p: *const u8, len: usize) -> Result<&'a [u8], Error> {
    // SAFETY: forwarded from the caller.
    unsafe { checked_key(p, len, Options::check_lookup_key_len) }
}

/// A key: never NULL, and its length passes `check` before a slice is made.
///
/// # Safety
/// A non-NULL `p` must point to `len` readable bytes for `'a`.
unsafe fn checked_key<'a>(
    p: *const u8,
    len: usize,
    check: impl FnOnce(usize) -> Result<(), Error>,
) -> Result<&'a [u8], Error> {
    if p.is_null() {
        return Err(Error::invalid("key is NULL"));
    }
    check(len)?;
    // SAFETY: forwarded from the caller; len passed the limit check.
    unsafe { bytes(p, len, "key") }
}

/// A value from C, checked against max_value_size before it is looked at.
///
/// # Safety
/// A non-NULL `p` must point to `len` readable bytes for `'a`.
pub(crate) unsafe fn value_arg<'a>(
    opts: &Options,
    p: *const u8,
    len: usize,
) -> Result<&'a [u8], Error> {
    if p.is_null() && len > 0 {
        return Err(Error::invalid(format!("val is NULL with length {len}")));
    }
    opts.check_value_len(len)?;
    // SAFETY: forwarded from the caller; len is within max_value_size.
    unsafe { bytes(p, len, "val") }
}

const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => panic!("version contains a NUL"),
    };

const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0u32;
    while i < b.len() {
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

const VERSION_NUMBER: u32 = parse_u32(env!("CARGO_PKG_VERSION_MAJOR")) * 1_000_000
    + parse_u32(env!("CARGO_PKG_VERSION_MINOR")) * 1_000
    + parse_u32(env!("CARGO_PKG_VERSION_PATCH"));

/// The library version as "MAJOR.MINOR.PATCH". Compare with the header's
/// BC_VERSION_* macros to detect a header/library mismatch.
///
/// @return a static string; never NULL, never to be freed.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn bc_version() -> *const c_char {
    VERSION.as_ptr()
}

/// The library version as MAJOR*1000000 + MINOR*1000 + PATCH, the same
/// encoding as BC_VERSION_NUMBER.
///
/// Thread-safe.
#[no_mangle]
pub extern "C" fn bc_version_number() -> u32 {
    VERSION_NUMBER
}

/// A short static description of a status code. Any integer is accepted:
/// values that are not a bc_status give "unknown status".
///
/// @return a static string; never NULL, never to be freed.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn bc_status_str(status: i32) -> *const c_char {
    Status::from_code(status)
        .map_or(c"unknown status", Status::describe_c)
        .as_ptr()
}

/// The message of the last call that failed on the calling thread, naming
/// the file and offset where relevant; "" if none has failed yet.
///
/// Like errno, it is per thread and only a failing call changes it (a call
/// that succeeds or returns BC_NOT_FOUND leaves it alone).
///
/// @return a string owned by the library, valid until the next failing call
/// on this thread; copy it to keep it. Never NULL.
///
/// Bindings whose calls may move between OS threads (Go's cgo) must read it
/// in the same C call as the failing function, e.g. a small C shim that
/// calls bc_put and, on failure, copies bc_last_error() into a caller
/// buffer before returning.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn bc_last_error() -> *const c_char {
    // The pointer stays valid while the thread-local string is unchanged:
    // only a later failing call on this thread replaces it.
    LAST_ERROR
        .try_with(|e| e.borrow().as_ptr())
        .unwrap_or(c"(no message: the thread is exiting)".as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_fixed() {
        for code in -2..20 {
            // SAFETY: bc_status_str returns a static NUL-terminated string.
            let text = unsafe { CStr::from_ptr(bc_status_str(code)) }
                .to_str()
                .unwrap();
            match Status::from_code(code) {
                Some(s) => {
                    assert_eq!(bc_status::from(s) as i32, code);
                    assert_eq!(text, s.describe());
                }
                None => assert_eq!(text, "unknown status"),
            }
        }
        assert_eq!(Status::from_code(9), Some(Status::Internal));
        assert_eq!(Status::from_code(10), Some(Status::VersionMismatch));
        assert_eq!(Status::from_code(11), Some(Status::NoMemory));
    }

    #[test]
    fn panics_become_internal_and_poison() {
        let mut poisoned = false;
        let st = boundary(|_| poisoned = true, || panic!("boom"));
        assert_eq!(st, bc_status::BC_INTERNAL);
        assert!(poisoned);
        // SAFETY: bc_last_error returns a valid NUL-terminated string.
        let msg = unsafe { CStr::from_ptr(bc_last_error()) };
        assert!(msg.to_str().unwrap().contains("boom"));
    }

    #[test]
    fn version_number_matches_cargo() {
        let v: Vec<u32> = env!("CARGO_PKG_VERSION")
            .split('.')
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(bc_version_number(), v[0] * 1_000_000 + v[1] * 1_000 + v[2]);
    }
}
