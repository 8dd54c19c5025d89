//! Read-only shared memory maps of data files, for reads without a system
//! call. Used on 64-bit targets only: a 32-bit address space cannot hold
//! the maps of a large database, so there every read is a `pread`.
//!
//! A map may extend past the end of its file (the active file is mapped to
//! its full `max_file_size` when created): the engine reads only bytes it
//! has written, which the shared page cache shows through the map.
//!
//! With the write-map option the active file's map is writable too, and
//! appends copy records into it (`datafile`): each put reaches the page
//! cache, where a crash of the process cannot lose it, without a system
//! call. The file is grown with `fallocate` ahead of the writes, so a full
//! disk fails the allocation (an error) rather than a store into the map
//! (SIGBUS).

use std::fs::File;
use std::os::unix::io::AsRawFd;

/// A page, 4 KiB: the unit the map's advice (`drop_pages`, `populate`)
/// works in and a file written through a map is rounded to (the page size
/// of x86-64; where pages are larger the advice may be refused, which only
/// costs speed), and the unit in which recovery expects unsynced appends
/// to reach the disk, in any order (it divides every page size Linux
/// uses).
pub(crate) const PAGE: u64 = 4096;

/// One `mmap(MAP_SHARED)` of a file, read-only or writable, unmapped on
/// drop.
pub struct Map {
    ptr: *mut u8,
    len: usize,
    writable: bool,
}

// SAFETY: the map is owned, and its memory is only read through `&self`
// but for `get_mut`, whose caller guarantees that no other reference to
// the bytes it writes exists (the writer stores past every published
// record, under the data file's tail lock).
unsafe impl Send for Map {}
// SAFETY: as above.
unsafe impl Sync for Map {}

impl Map {
    /// Maps `len` bytes of `file` from offset 0. None if the system refuses
    /// (the caller then reads with `pread`).
    pub fn new(file: &File, len: u64) -> Option<Map> {
        Map::with_access(file, len, false)
    }

    /// `new`, mapped writable as well (`file` must be open for writing).
    pub fn writable(file: &File, len: u64) -> Option<Map> {
        Map::with_access(file, len, true)
    }

    fn with_access(file: &File, len: u64, writable: bool) -> Option<Map> {
        if !cfg!(target_pointer_width = "64") || len == 0 || len > isize::MAX as u64 {
            return None;
        }
        let prot = match writable {
            true => libc::PROT_READ | libc::PROT_WRITE,
            false => libc::PROT_READ,
        };
        // SAFETY: a fresh shared mapping of a descriptor we own; the kernel
        // picks the address. The mapping outlives the descriptor, which
        // may be closed afterwards.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                prot,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(Map {
            ptr: ptr as *mut u8,
            len: len as usize,
            writable,
        })
    }

    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The address of the file's first byte.
    pub fn addr(&self) -> usize {
        self.ptr as usize
    }

    /// The bytes the map spans (from the file's start).
    pub fn size(&self) -> u64 {
        self.len as u64
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
        // as `self`; the file's bytes there exist (caller contract), and
        // the engine truncates a file only past its records (the
        // preallocation cut at seal, a failed write cut back) or where no
        // handle reads (recovery at open).
        Some(unsafe { std::slice::from_raw_parts(self.ptr.add(offset as usize), len) })
    }

    /// The bytes `[offset, offset + len)` to write, if the map is writable
    /// and covers them.
    ///
    /// # Safety
    /// The bytes must exist in the file (allocated below its end: a store
    /// past the end raises SIGBUS), and no other reference to them may be
    /// alive while the returned one is: the engine writes only past the
    /// records it has published, which no reader asks for yet.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get_mut(&self, offset: u64, len: usize) -> Option<&mut [u8]> {
        let end = offset.checked_add(len as u64)?;
        if !self.writable || end > self.len as u64 {
            return None;
        }
        // SAFETY: inside the mapping, which is writable and lives as long
        // as `self`; existence and exclusivity are the caller's contract.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.add(offset as usize), len) })
    }

    /// Drops this map's page table entries for the whole pages inside
    /// `[offset, offset + len)`, keeping their contents: a dirty page
    /// stays dirty in the page cache, and a later read of it faults it in
    /// again from there (read-only). Written pages left mapped writable
    /// would cost the kernel's write-back a TLB shootdown each (an
    /// interrupt of every CPU running this process); dropped in bulk, they
    /// cost one.
    pub fn drop_pages(&self, offset: u64, len: u64) {
        let start = offset.div_ceil(PAGE) * PAGE;
        let end = ((offset + len).min(self.len as u64)) / PAGE * PAGE;
        if start >= end {
            return;
        }
        // SAFETY: MADV_DONTNEED on a shared file mapping only removes page
        // table entries: the bytes stay in the page cache (dirty ones are
        // marked dirty there), and any slice a reader holds over them
        // reads the same bytes after faulting the page in again.
        unsafe {
            libc::madvise(
                self.ptr.add(start as usize) as *mut libc::c_void,
                (end - start) as usize,
                libc::MADV_DONTNEED,
            );
        }
    }

    /// Asks the kernel to fault in the pages of `[offset, offset + len)`
    /// now, in one call, instead of one fault per page as the stores reach
    /// them: `for_writing`, writable and so dirty at once (6-8% faster
    /// puts here, but an fsync before the records fill them writes them
    /// out as zeros), else mapped read-only (each first store then takes a
    /// lighter fault). Advice only: older kernels refuse it (EINVAL), and
    /// the stores then fault as usual.
    pub fn populate(&self, offset: u64, len: u64, for_writing: bool) {
        let start = offset / PAGE * PAGE;
        let end = (offset + len).min(self.len as u64);
        if !self.writable || start >= end {
            return;
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        // SAFETY: advice about pages inside our own writable mapping; it
        // writes no bytes (pages are faulted in as they are).
        unsafe {
            libc::madvise(
                self.ptr.add(start as usize) as *mut libc::c_void,
                (end - start) as usize,
                match for_writing {
                    true => libc::MADV_POPULATE_WRITE,
                    false => libc::MADV_POPULATE_READ,
                },
            );
        }
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
