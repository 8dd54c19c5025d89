//! Prefetching: asking the CPU to start loading memory a moment before it
//! is read, so that two cache misses overlap instead of following each
//! other. A prefetch is a hint: any address will do, mapped or not, and
//! none changes a result.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Starts loading the cache line at `addr` (a hint: no effect on results;
/// any address will do, mapped or not).
pub fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address, and changes
    // no memory. (Safe to call in newer Rust: hence the allow.)
    #[allow(unused_unsafe)]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(addr as *const i8);
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: PRFM is a hint, like x86's prefetch: it never faults, for any
    // address, and writes no memory or flags.
    unsafe {
        std::arch::asm!(
            "prfm pldl1keep, [{0}]",
            in(reg) addr,
            options(nostack, readonly, preserves_flags)
        );
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = addr;
}

/// Where data files are mapped, by file handle, for prefetching a record
/// from its location alone (`Keydir::get_prefetching` offers the location
/// before the key's entry is in cache). Read without locks and possibly
/// stale or missing: a wrong address costs a wasted cache line, never a
/// fault or a wrong result.
pub struct MapAddrs {
    /// By handle modulo the table size; the low 12 bits (a map starts on a
    /// page) hold the handle's low bits, so a colliding file's map is not
    /// used.
    slots: Box<[AtomicUsize]>,
}

/// Entries: more than the data files of most databases, in 8 KiB.
const SLOTS: usize = 1024;
/// The offset bits of a 4 KiB page.
const PAGE_BITS: usize = 0xfff;

impl MapAddrs {
    pub fn new() -> MapAddrs {
        MapAddrs {
            slots: (0..SLOTS).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Notes that file `fnum` is mapped at `addr` (0: not mapped).
    pub fn note(&self, fnum: u32, addr: usize) {
        let noted = addr | (fnum as usize & PAGE_BITS);
        let slot = &self.slots[fnum as usize % SLOTS];
        // Written only when it changes: every get reads the table.
        if addr != 0 && slot.load(Ordering::Relaxed) != noted {
            slot.store(noted, Ordering::Relaxed);
        }
    }

    /// Starts loading the record at `offset` of file `fnum`: its header and
    /// key, and the line after them.
    pub fn prefetch(&self, fnum: u32, offset: u32) {
        if let Some(base) = self.base(fnum) {
            let at = base.wrapping_add(offset as usize);
            prefetch(at);
            prefetch(at.wrapping_add(64));
        }
    }

    /// Where file `fnum` was last noted mapped, unless its entry holds
    /// another file's map.
    fn base(&self, fnum: u32) -> Option<usize> {
        let noted = self.slots[fnum as usize % SLOTS].load(Ordering::Relaxed);
        let base = noted & !PAGE_BITS;
        (base != 0 && noted & PAGE_BITS == fnum as usize & PAGE_BITS).then_some(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_colliding_files_map_is_not_used() {
        let maps = MapAddrs::new();
        maps.note(5, 0x4000_0000);
        assert_eq!(maps.base(5), Some(0x4000_0000));
        // Same entry, another file: not its map.
        assert_eq!(maps.base(5 + SLOTS as u32), None);
        maps.note(5 + SLOTS as u32, 0x5000_0000);
        assert_eq!(maps.base(5), None);
        assert_eq!(maps.base(5 + SLOTS as u32), Some(0x5000_0000));
        // An unmapped file notes nothing.
        maps.note(6, 0);
        assert_eq!(maps.base(6), None);
    }
}
