//! The directory lock: one read-write handle per database, across processes
//! and within one process. `flock` locks belong to an open file description,
//! so a second open in the same process conflicts too, and the kernel drops
//! the lock when its holder dies: a killed process never leaves a stale lock.

use crate::error::{Error, Result, Status};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

pub const LOCK_NAME: &str = "LOCK";

/// Held for the life of a read-write handle; dropping it releases the lock.
pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(|e| Error::io("opening lock file", &path, e))?;
        // SAFETY: flock on a descriptor we own and keep open; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = match holder {
                    "" => "another handle".to_string(),
                    // Our own pid: a handle of this process, or a child
                    // forked while one was open (it shares the lock).
                    h if h == std::process::id().to_string() => format!(
                        "this process, pid {h} (another handle on it, or a child forked while one was open that has not exec'd or exited)"
                    ),
                    h => format!("pid {h}"),
                };
                return Err(Error::new(
                    Status::Locked,
                    format!(
                        "{} is locked by {who}: only one read-write handle may open a database (open read-only to share it)",
                        dir.display()
                    ),
                ));
            }
            return Err(Error::io("locking", &path, err));
        }
        // Record the holder for the message a second opener gets.
        let pid = std::process::id();
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{pid}"))
            .map_err(|e| Error::io("writing lock file", &path, e))?;
        Ok(DirLock { _file: file })
    }
}
