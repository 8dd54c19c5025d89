//! Memory for the keydir: slot tables and arena chunks, carved from
//! 2 MiB-aligned regions that the kernel is asked to back with transparent
//! huge pages.
//!
//! Why: a large keydir is hundreds of megabytes touched at random. With
//! 4 KiB pages nearly every lookup also misses the TLB (a two-dimensional
//! page walk under virtualisation), and building the keydir at open takes
//! one page fault per 4 KiB. A 2 MiB page cuts both by 512.
//!
//! Blocks of a whole number of `UNIT`s come from the pool; others (small
//! databases, a shard's first chunks, a few small table sizes) from the
//! global allocator, so a small keydir maps no region at all. A pooled
//! block handed back with `Pool::recycle` is cut into `UNIT`-sized arena
//! chunks for reuse; the regions themselves go back to the system when the
//! keydir is dropped.
//! Where huge pages are unavailable (disabled, or another kernel) the
//! regions are ordinary memory, touched page by page as before.

use parking_lot::Mutex;
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// The size of a full arena chunk, and the smallest pooled block.
pub(crate) const UNIT: usize = 64 << 10;
/// The huge page size the regions are aligned to.
const REGION: usize = 2 << 20;

/// A block of keydir memory: pooled (owned by its `Pool`, which must
/// outlive it) or from the global allocator (freed on drop).
pub struct Block {
    ptr: NonNull<u8>,
    len: usize,
    pooled: bool,
}

// SAFETY: a Block is a unique handle to its bytes, like a Box<[u8]>.
unsafe impl Send for Block {}
// SAFETY: shared access only reads through `&self`.
unsafe impl Sync for Block {}

impl Block {
    const EMPTY: Block = Block {
        // Aligned for the slot view of an empty table.
        ptr: NonNull::<Slot>::dangling().cast(),
        len: 0,
        pooled: false,
    };

    /// A zeroed block from the global allocator; None if it has no room.
    fn heap(len: usize) -> Option<Block> {
        if len == 0 {
            return Some(Block::EMPTY);
        }
        let layout = Layout::from_size_align(len, 8).ok()?;
        // SAFETY: the layout has a non-zero size. Zeroed, so every byte a
        // slice of the block covers is initialised.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) })?;
        Some(Block {
            ptr,
            len,
            pooled: false,
        })
    }

    /// Bytes from the global allocator (pooled bytes are the pool's).
    fn heap_bytes(&self) -> usize {
        if self.pooled {
            0
        } else {
            self.len
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` points at `len` bytes this block owns (or is a
        // dangling pointer with len 0); they were initialised when the
        // block was made (zeroed by the allocator or the kernel, or
        // written before it was recycled).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if !self.pooled && self.len > 0 {
            // SAFETY: a non-pooled block of non-zero length was allocated
            // in `heap` with exactly this layout, and is freed once.
            unsafe {
                dealloc(
                    self.ptr.as_ptr(),
                    Layout::from_size_align_unchecked(self.len, 8),
                )
            }
        }
    }
}

/// One slot of a shard's index. `meta` is 0 for an empty slot, else the
/// arena position of the entry + 1 (low bits), a bit set when the entry
/// has an expiry time, and hash bits (see the keydir); `file` and `offset`
/// locate the key's newest record, so a get can start fetching the record
/// while it compares the key in the arena.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Slot {
    pub meta: u64,
    pub file: u32,
    pub offset: u32,
}

/// A shard's slot table: a zeroed array of slots.
pub struct Table(Block);

impl Table {
    pub fn empty() -> Table {
        Table(Block::EMPTY)
    }

    /// None if the system has no room for it.
    pub fn zeroed(pool: &Pool, slots: usize) -> Option<Table> {
        let mut block = pool.take(slots.checked_mul(std::mem::size_of::<Slot>())?)?;
        // Zeroed by writing, even where the memory is fresh: a page first
        // read by a probe would map the shared zero page, and the write
        // after it would fault again and flush every core's TLB. (Touching
        // one byte per page instead measured no faster.)
        block.bytes_mut().fill(0);
        Some(Table(block))
    }

    pub fn into_block(self) -> Block {
        self.0
    }

    pub fn heap_bytes(&self) -> usize {
        self.0.heap_bytes()
    }
}

impl Deref for Table {
    type Target = [Slot];
    fn deref(&self) -> &[Slot] {
        let b = self.0.bytes();
        // SAFETY: blocks are 8-byte aligned (pool blocks are UNIT-aligned,
        // heap blocks use align 8), as `Slot` needs; its fields are plain
        // integers, so every bit pattern (the zeroed one too) is valid.
        unsafe {
            std::slice::from_raw_parts(
                b.as_ptr() as *const Slot,
                b.len() / std::mem::size_of::<Slot>(),
            )
        }
    }
}

impl DerefMut for Table {
    fn deref_mut(&mut self) -> &mut [Slot] {
        let b = self.0.bytes_mut();
        // SAFETY: as in `deref`; the borrow is unique.
        unsafe {
            std::slice::from_raw_parts_mut(
                b.as_mut_ptr() as *mut Slot,
                b.len() / std::mem::size_of::<Slot>(),
            )
        }
    }
}

/// An arena chunk: a block filled from the front.
pub struct Chunk {
    block: Block,
    len: usize,
}

impl Chunk {
    /// None if the system has no room for it.
    pub fn with_capacity(pool: &Pool, cap: usize) -> Option<Chunk> {
        Some(Chunk {
            block: pool.alloc(cap)?,
            len: 0,
        })
    }

    pub fn capacity(&self) -> usize {
        self.block.len
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends `bytes`; the caller checked that they fit.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        self.block.bytes_mut()[self.len..end].copy_from_slice(bytes);
        self.len = end;
    }

    /// Appends `len` of its own bytes from `from`; the caller checked that
    /// they fit.
    pub fn extend_from_within(&mut self, from: usize, len: usize) {
        let end = self.len + len;
        self.block
            .bytes_mut()
            .copy_within(from..from + len, self.len);
        self.len = end;
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.block.bytes_mut()[..self.len]
    }

    pub fn into_block(self) -> Block {
        self.block
    }

    pub fn heap_bytes(&self) -> usize {
        self.block.heap_bytes()
    }
}

impl Deref for Chunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.block.bytes()[..self.len]
    }
}

/// The regions of one keydir.
#[derive(Default)]
pub struct Pool {
    regions: Mutex<Regions>,
}

#[derive(Default)]
struct Regions {
    /// Every mapping, unmapped when the pool drops.
    maps: Vec<(usize, usize)>,
    /// The unused tail of the newest region.
    bump: usize,
    left: usize,
    /// UNIT-sized blocks to hand out again: recycled ones, and the units
    /// that round a big mapping up to whole regions.
    free: Vec<usize>,
}

impl Pool {
    /// A block of `len` bytes, of unspecified content (callers write before
    /// they read). Pooled when `len` is a whole number of `UNIT`s (full
    /// arena chunks and big slot tables); otherwise, or if the system
    /// refuses a mapping, from the global allocator. None if that has no
    /// room either.
    pub fn alloc(&self, len: usize) -> Option<Block> {
        let mut block = self.take(len)?;
        if cfg!(debug_assertions) && block.pooled {
            // Recycled memory holds old entries; callers must not rely on
            // its content, so tests see garbage.
            block.bytes_mut().fill(0xA5);
        }
        Some(block)
    }

    /// As `alloc`, without the debug fill.
    fn take(&self, len: usize) -> Option<Block> {
        if len < UNIT || len % UNIT != 0 {
            return Block::heap(len);
        }
        let mut r = self.regions.lock();
        let addr = if len == UNIT && !r.free.is_empty() {
            r.free.pop()
        } else if len >= REGION {
            r.map(len)
        } else {
            if r.left < len {
                // Regions and blocks are whole units, so the tail left
                // behind is too: keep it for chunks.
                let (bump, left) = (r.bump, r.left);
                r.keep_free((0..left / UNIT).map(|i| bump + i * UNIT));
                match r.map(REGION) {
                    Some(a) => (r.bump, r.left) = (a, REGION),
                    None => (r.bump, r.left) = (0, 0),
                }
            }
            (r.left >= len).then(|| {
                let a = r.bump;
                r.bump += len;
                r.left -= len;
                a
            })
        };
        match addr.and_then(|a| NonNull::new(a as *mut u8)) {
            Some(ptr) => Some(Block {
                ptr,
                len,
                pooled: true,
            }),
            None => Block::heap(len),
        }
    }

    /// Takes back a block: pooled blocks become chunks for reuse, others
    /// are freed.
    pub fn recycle(&self, block: Block) {
        if !block.pooled {
            return;
        }
        let (start, len) = (block.ptr.as_ptr() as usize, block.len);
        if len > UNIT {
            // An outgrown slot table. Every shard outgrows its table at
            // about the same time, so the arena may never need this much
            // again: give the pages back now (they refault as zero pages
            // if reused). Failure only keeps them resident.
            // SAFETY: the range is this block's, which `block` (consumed
            // here) was the only handle to; its content is dead.
            unsafe {
                libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
            }
        }
        self.regions
            .lock()
            .keep_free((0..len / UNIT).map(|i| start + i * UNIT));
    }

    /// Bytes mapped for this pool (touched or not).
    pub fn mapped_bytes(&self) -> usize {
        self.regions.lock().maps.iter().map(|&(_, len)| len).sum()
    }
}

impl Regions {
    /// Adds units to the free list. Without memory for the list they are
    /// not reused, only unmapped with the rest when the pool drops: this
    /// list's growth must not abort a caller that was promised no
    /// allocation could (see `Keydir::make_room`).
    fn keep_free(&mut self, units: impl ExactSizeIterator<Item = usize>) {
        if self.free.try_reserve(units.len()).is_ok() {
            self.free.extend(units);
        }
    }

    /// Maps `len` bytes (whole units) at a REGION-aligned address and asks
    /// for huge pages there; the units that round the mapping up to whole
    /// regions are kept for chunks. None if the system refuses.
    fn map(&mut self, want: usize) -> Option<usize> {
        // Room to record the mapping first: one made, it must be unmapped.
        self.maps.try_reserve(1).ok()?;
        let len = want.next_multiple_of(REGION);
        let span = len + REGION;
        // SAFETY: a fresh private anonymous mapping at an address the kernel
        // picks; nothing else refers to it yet.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let start = p as usize;
        let aligned = (start + REGION - 1) & !(REGION - 1);
        // SAFETY: both ranges lie inside the mapping just made and outside
        // the aligned `len` bytes kept; nothing points into them.
        unsafe {
            if aligned > start {
                libc::munmap(p, aligned - start);
            }
            let tail = start + span - (aligned + len);
            if tail > 0 {
                libc::munmap((aligned + len) as *mut libc::c_void, tail);
            }
        }
        #[cfg(target_os = "linux")]
        // SAFETY: advice on a range this pool owns; it changes how the
        // kernel backs the memory, never its content. Failure (no THP in
        // this kernel) leaves ordinary pages, which is fine.
        unsafe {
            libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
        self.maps.push((aligned, len));
        self.keep_free((want..len).step_by(UNIT).map(|off| aligned + off));
        Some(aligned)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for &(addr, len) in &self.regions.get_mut().maps {
            // SAFETY: each mapping was made by `map` and is unmapped once;
            // the keydir that owned the pool has dropped every block first
            // (its shards are declared before its pool).
            unsafe {
                libc::munmap(addr as *mut libc::c_void, len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_blocks_come_from_the_heap_and_units_are_reused() {
        let pool = Pool::default();
        let small = pool.alloc(UNIT / 2).unwrap();
        assert!(!small.pooled);
        assert_eq!(pool.mapped_bytes(), 0);
        let a = pool.alloc(UNIT).unwrap();
        assert!(a.pooled);
        assert_eq!(pool.mapped_bytes(), REGION);
        assert_eq!(a.ptr.as_ptr() as usize % REGION, 0);
        let addr = a.ptr.as_ptr() as usize;
        pool.recycle(a);
        assert_eq!(pool.alloc(UNIT).unwrap().ptr.as_ptr() as usize, addr);
    }

    #[test]
    fn a_recycled_table_becomes_chunks_and_big_tables_get_their_own_region() {
        let pool = Pool::default();
        let t = Table::zeroed(&pool, 4 * UNIT / 16).unwrap();
        assert!(t.iter().all(|s| *s == Slot::default()));
        pool.recycle(t.into_block());
        for _ in 0..4 {
            pool.alloc(UNIT).unwrap();
        }
        assert_eq!(pool.mapped_bytes(), REGION);
        let big = Table::zeroed(&pool, 2 * REGION / 16).unwrap();
        assert_eq!(big.len(), 2 * REGION / 16);
        assert_eq!(pool.mapped_bytes(), 3 * REGION);
        // The first region's tail (2 MiB - 4 units) is still there.
        let mut c = Chunk::with_capacity(&pool, UNIT).unwrap();
        c.extend_from_slice(b"abc");
        assert_eq!(&c[..], b"abc");
        assert_eq!(pool.mapped_bytes(), 3 * REGION);
    }

    #[test]
    fn a_table_of_one_and_a_half_regions_leaves_its_rounding_for_chunks() {
        let pool = Pool::default();
        let t = Table::zeroed(&pool, 3 * REGION / 2 / 16).unwrap();
        assert!(t.0.pooled);
        assert_eq!(pool.mapped_bytes(), 2 * REGION);
        // The half region after the table serves chunks before any new
        // region is mapped.
        for _ in 0..REGION / 2 / UNIT {
            let c = pool.alloc(UNIT).unwrap();
            assert!(c.pooled);
            let at = c.ptr.as_ptr() as usize;
            assert!(
                at >= t.0.ptr.as_ptr() as usize + t.0.len,
                "a chunk inside the table"
            );
        }
        assert_eq!(pool.mapped_bytes(), 2 * REGION);
        // Not a whole number of units: from the heap.
        assert!(!pool.alloc(UNIT + 8).unwrap().pooled);
    }
}
