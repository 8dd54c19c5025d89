//! Read-only shared memory maps of data files, for reads without a system
//! call. Used on 64-bit targets only: a 32-bit address space cannot hold
//! the maps of a large database, so there every read is a `pread`.
//!
//! A map may extend past the end of its file (the active file is mapped to
//! its full `max_file_size` when created): the engine reads only bytes it
//! has written, which the shared page cache shows through the map.

use std::fs::File;
use std::os::unix::io::AsRawFd;

/// One `mmap(PROT_READ, MAP_SHARED)` of a file, unmapped on drop.
pub struct Map {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the map is read-only and owned; reading it from several threads
// is as safe as reading any shared immutable memory.
unsafe impl Send for Map {}
// SAFETY: as above: no method mutates it.
unsafe impl Sync for Map {}

impl Map {
    /// Maps `len` bytes of `file` from offset 0. None if the system refuses
    /// (the caller then reads with `pread`).
    pub fn new(file: &File, len: u64) -> Option<Map> {
        if !cfg!(target_pointer_width = "64") || len == 0 || len > isize::MAX as u64 {
            return None;
        }
        // SAFETY: a fresh read-only shared mapping of a descriptor we own;
        // the kernel picks the address. The mapping outlives the
        // descriptor, which may be closed afterwards.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(Map {
            ptr: ptr as *const u8,
            len: len as usize,
        })
    }

    /// The address of the file's first byte.
    pub fn addr(&self) -> usize {
        self.ptr as usize
    }

    /// Whether the map reaches `len` bytes into its file.
    pub fn covers(&self, len: u64) -> bool {
        len <= self.len as u64
    }

    /// The bytes `[offset, offset + len)`, if the map covers them. The
    /// caller must only ask for bytes that exist in the file (the engine
    /// asks only for records it wrote): a page past the end of the file
    /// cannot be read.
    pub fn get(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len as u64)?;
        if end > self.len as u64 {
            return None;
        }
        // SAFETY: the range lies inside the mapping, which lives as long
        // as `self`; the file's bytes there exist (caller contract) and are
        // never truncated while the database is open.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.add(offset as usize), len) })
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, once; no slice
        // borrowed from it outlives `self`.
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.len);
        }
    }
}
