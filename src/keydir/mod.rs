//! The keydir: every live key and where its newest record lives.
//!
//! Memory is the constraint (all keys live in RAM), so entries are packed:
//! each shard keeps its entries in an arena of byte chunks
//! (`value_len u32 | key_len u16 | expiry u32 | key`, where only keys with
//! a TTL have the expiry: 6 bytes plus the key for most) and an
//! open-addressing index of 16-byte slots (`arena position + 1` in the low
//! 37 bits, a has-expiry bit, 26 hash bits above; then the record's file
//! and offset). Linear probing with backward-shift deletion keeps the index
//! free of graves.
//!
//! The location sits in the slot rather than in the arena entry so that a
//! get touches memory twice in sequence, not three times: once the slot is
//! found, the record (`Keydir::get_prefetching`) and the arena entry (for
//! the key compare) are fetched from memory at the same time.
//!
//! Keys are placed by the *high* bits of their hash (shard, then home slot,
//! a multiply-shift of the tag), so a shard's slots are in hash order: a
//! hint file, whose entries are sorted by the same hash, loads as one
//! sequential sweep through the table. For that the hash is fixed by the
//! format (`hash`) and keyed with a seed kept in the hint files, so it is
//! the same in every process that opens the database. Tables grow through powers of two and 1.5
//! times them (16, 24, 32, 48, ...), so they are never under 1/2 full
//! after growing: with 16-byte slots, whole doublings would leave some key
//! counts at 7/16 and cost up to 37 bytes a key in slots alone.
//!
//! The keydir is split into shards, each behind its own `RwLock`: gets take a
//! shard's read lock only for the lookup, so readers never wait for each
//! other, and a writer holds one shard for the duration of one insert.
//!
//! Slot tables and full arena chunks live in 2 MiB regions backed by huge
//! pages where the kernel allows (`memory`): fewer TLB misses per lookup,
//! and 512 times fewer page faults while open builds the keydir.

mod hash;
pub(crate) use hash::fold;
mod memory;

use crate::prefetch::prefetch;
use memory::{Chunk, Pool, Slot, Table};
use parking_lot::RwLock;
use std::alloc::{handle_alloc_error, Layout};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

pub(crate) const SHARD_BITS: u32 = 6;
pub(crate) const SHARDS: usize = 1 << SHARD_BITS;
const CHUNK: usize = memory::UNIT;
const POS_BITS: u32 = 37;
const POS_MASK: u64 = (1 << POS_BITS) - 1;
/// Set in a slot whose entry has an expiry time.
const TIMED: u64 = 1 << POS_BITS;
const TAG_SHIFT: u32 = POS_BITS + 1;
/// Hash bits below the shard bits, kept in each slot: they place the key
/// (home slot) and screen out most non-matching keys before a key compare.
const TAG_BITS: u32 = 32 - SHARD_BITS;
const TAG_MASK: u32 = (1 << TAG_BITS) - 1;
/// `value_len u32 | key_len u16`, then `expiry u32` in timed entries.
const ENTRY_FIXED: usize = 6;
const MIN_SLOTS: usize = 16;

/// The system had no memory for the keydir: the bytes it asked for.
#[derive(Debug)]
pub struct NoRoom(pub usize);

/// Where `make_room` made sure no memory is needed: the global
/// allocator's handler, which aborts, as `Vec` does.
fn out_of_memory(NoRoom(bytes): NoRoom) -> ! {
    handle_alloc_error(Layout::from_size_align(bytes.max(1), 8).unwrap_or(Layout::new::<u64>()))
}

/// Where the newest record of a key lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// In-memory handle of the data file (see `files::FileTable`).
    pub file: u32,
    /// Byte offset of the record's first byte.
    pub offset: u32,
    pub value_len: u32,
    /// Unix seconds after which the key is invisible; 0 = never.
    pub expiry: u32,
}

/// The key hash (`hash`) keyed with the database's seed. A random seed
/// per database keeps crafted keys from piling into one probe run; storing
/// it keeps hints sorted for every later open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Seed(pub u64, pub u64);

impl Seed {
    pub fn random() -> Seed {
        let s = RandomState::new();
        Seed(s.hash_one(0x5eed_u64), s.hash_one(0xc0ffee_u64))
    }

    pub fn hash(&self, key: &[u8]) -> u32 {
        hash::hash(self.0, self.1, key)
    }
}

/// A key's hash, from `Keydir::prepare`.
pub struct Hashed(u32);

/// The shard (and hint partition) of a hash.
pub fn shard_of(hash: u32) -> usize {
    (hash >> TAG_BITS) as usize
}

pub struct Keydir {
    /// Declared before `pool`, so the shards drop before the memory under
    /// them is unmapped.
    shards: Box<[RwLock<Shard>]>,
    pool: Pool,
    seed: Seed,
}

impl Keydir {
    pub fn new(seed: Seed) -> Keydir {
        Keydir {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::new())).collect(),
            pool: Pool::default(),
            seed,
        }
    }

    pub fn seed(&self) -> Seed {
        self.seed
    }

    fn hash(&self, key: &[u8]) -> u32 {
        self.seed.hash(key)
    }

    fn shard(&self, hash: u32) -> &RwLock<Shard> {
        &self.shards[shard_of(hash)]
    }

    #[cfg(test)]
    pub fn get(&self, key: &[u8]) -> Option<Location> {
        self.get_prefetching(key, |_, _| {})
    }

    /// `get` that calls `fetch(file, offset)` with the location in each slot
    /// whose hash bits match, before it compares that slot's key: the
    /// caller can start loading the record then, while the key's arena
    /// entry is loaded. (Usually one call; `fetch` must be quick and must
    /// not call back into the keydir.)
    pub fn get_prefetching(&self, key: &[u8], fetch: impl Fn(u32, u32)) -> Option<Location> {
        self.get_hashed(key, self.hash(key), fetch)
    }

    /// `get_prefetching` for a caller that has the key's hash (under
    /// `seed()`).
    pub fn get_hashed(&self, key: &[u8], h: u32, fetch: impl Fn(u32, u32)) -> Option<Location> {
        let shard = self.shard(h).read();
        shard
            .find_fetching(key, h, fetch)
            .map(|(i, _)| shard.location(i))
    }

    /// Points `key` at `loc`; returns where it pointed before.
    #[cfg(test)]
    pub fn insert(&self, key: &[u8], loc: Location) -> Option<Location> {
        self.insert_hashed(key, self.prepare(key), loc)
    }

    /// Hashes `key` and asks the CPU to fetch its home slot, so that a put
    /// can encode its record while that cache miss is served.
    pub fn prepare(&self, key: &[u8]) -> Hashed {
        let h = self.hash(key);
        let shard = self.shard(h).read();
        if !shard.slots.is_empty() {
            prefetch(&shard.slots[shard.home_of(h & TAG_MASK)] as *const Slot as usize);
        }
        Hashed(h)
    }

    /// Makes sure that the `insert_hashed` of `key` (with an expiry time
    /// when `timed`) that follows asks for no memory, making room for its
    /// entry if it needs one: a put asks for its memory before it appends
    /// its record, and fails cleanly. (Only puts add entries, one at a time
    /// under the writer lock.)
    pub fn make_room(&self, key: &[u8], h: &Hashed, timed: bool) -> Result<(), NoRoom> {
        self.shard(h.0)
            .write()
            .make_room(&self.pool, key, h.0, timed)
    }

    /// `insert` with the hash from `prepare`, after `make_room`.
    pub fn insert_hashed(&self, key: &[u8], h: Hashed, loc: Location) -> Option<Location> {
        let inserted = self.shard(h.0).write().upsert(&self.pool, key, h.0, loc);
        inserted.unwrap_or_else(|e| out_of_memory(e))
    }

    pub fn remove(&self, key: &[u8]) -> Option<Location> {
        let h = self.hash(key);
        self.shard(h).write().remove(&self.pool, key, h)
    }

    /// Points the key whose record is at `from` (file, offset), if one
    /// still does, at `to`: a merge's copy of that record. The key is found
    /// by its hash and that location alone (a location holds one record,
    /// so one key), so that a merge need not keep the keys it moved.
    pub fn relocate(&self, hash: u32, from: (u32, u32), to: (u32, u32)) -> bool {
        let mut shard = self.shard(hash).write();
        let Some(i) = shard.find_located(hash, from) else {
            return false;
        };
        let s = &mut shard.slots[i];
        (s.file, s.offset) = to;
        true
    }

    /// Removes the key whose record is at `from` (file, offset), if one
    /// still does: a merge's expired record, found as `relocate` finds
    /// one. Returns whether it did. Without the writer lock, so it leaves
    /// the arena as it is (see `make_room`): the shard's next put compacts.
    pub fn remove_located(&self, hash: u32, from: (u32, u32)) -> bool {
        let mut shard = self.shard(hash).write();
        let Some(i) = shard.find_located(hash, from) else {
            return false;
        };
        let e = ent(&shard.slots[i]);
        shard.remove_at(i, e);
        true
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len).sum()
    }

    /// Keys whose expiry time `is_expired` does not reject, counted shard
    /// by shard under one lock each, so that concurrent writes cannot make
    /// the count go below zero (as `len` minus a separate count could).
    pub fn len_unexpired(&self, is_expired: impl Fn(u32) -> bool) -> usize {
        let mut n = 0;
        for shard in self.shards.iter() {
            let shard = shard.read();
            let expired = shard
                .expiring_entries()
                .filter(|(_, loc)| is_expired(loc.expiry))
                .count();
            n += shard.len - expired;
        }
        n
    }

    /// Bytes of memory held by the keydir.
    pub fn memory_bytes(&self) -> usize {
        let heap: usize = self.shards.iter().map(|s| s.read().heap_bytes()).sum();
        heap + self.pool.mapped_bytes()
    }

    /// Calls `f` for every key starting with `prefix`, one shard at a time
    /// (each shard is read-locked while it is visited: `f` must be short and
    /// must not call back into the keydir).
    pub fn for_each_prefix(&self, prefix: &[u8], mut f: impl FnMut(&[u8], Location)) {
        for shard in self.shards.iter() {
            let shard = shard.read();
            for (i, slot) in shard.slots.iter().enumerate() {
                if slot.meta == 0 {
                    continue;
                }
                let key = shard.arena.key(ent(slot));
                if key.starts_with(prefix) {
                    f(key, shard.location(i));
                }
            }
        }
    }
}

impl Keydir {
    /// Calls `f` for every key that has an expiry time; shards without any
    /// are skipped, so this is free for databases that do not use TTLs.
    pub fn for_each_expiring(&self, mut f: impl FnMut(&[u8], Location)) {
        for shard in self.shards.iter() {
            for (key, loc) in shard.read().expiring_entries() {
                f(key, loc);
            }
        }
    }
}

/// A loader's share of the keydir at open: a range of shards it owns
/// outright, so loader threads fill the keydir without locks. Shard `i`
/// holds the keys whose hash has `i` in its top `SHARD_BITS` bits, which is
/// also hint partition `i` (see `hint`).
pub struct ShardRange<'k> {
    first: usize,
    shards: &'k mut [RwLock<Shard>],
    pool: &'k Pool,
}

impl Keydir {
    /// Splits the shards, while the keydir is private to open, into at most
    /// `n` ranges for loader threads.
    pub fn split(&mut self, n: usize) -> Vec<ShardRange<'_>> {
        let per = SHARDS.div_ceil(n.clamp(1, SHARDS));
        let pool = &self.pool;
        self.shards
            .chunks_mut(per)
            .enumerate()
            .map(|(i, shards)| ShardRange {
                first: i * per,
                shards,
                pool,
            })
            .collect()
    }
}

impl ShardRange<'_> {
    /// The shard numbers (= hint partitions) of this range.
    pub fn partitions(&self) -> std::ops::Range<usize> {
        self.first..self.first + self.shards.len()
    }

    fn shard(&mut self, hash: u32) -> (&mut Shard, &Pool) {
        (
            self.shards[shard_of(hash) - self.first].get_mut(),
            self.pool,
        )
    }

    /// Makes room in shard `partition` for `n` more keys, so a large hint
    /// does not grow it step by step; without the memory for that, the
    /// table grows as keys arrive.
    pub fn reserve(&mut self, partition: usize, n: usize) {
        let shard = self.shards[partition - self.first].get_mut();
        // Capped where the table's size in bytes could overflow (32-bit
        // targets): counts that large come from damaged hints, whose CRC
        // fails later; the table then grows as keys arrive.
        let want = slots_for(shard.len.saturating_add(n).min(isize::MAX as usize / 64));
        if want > shard.slots.len() {
            let _ = shard.resize_known(self.pool, want);
        }
    }

    /// Points `key` (whose hash is `hash`) at `loc`; returns the old location.
    /// Or NoRoom, changing nothing, when the system has no memory for a
    /// new key.
    #[inline]
    pub fn upsert(
        &mut self,
        hash: u32,
        key: &[u8],
        loc: Location,
    ) -> Result<Option<Location>, NoRoom> {
        let (shard, pool) = self.shard(hash);
        shard.upsert(pool, key, hash, loc)
    }

    pub fn remove(&mut self, hash: u32, key: &[u8]) -> Option<Location> {
        let (shard, pool) = self.shard(hash);
        shard.remove(pool, key, hash)
    }

    /// Shrinks a partition's shard that `reserve` made too large for the
    /// keys that arrived (hints that repeat keys).
    pub fn shrink_partition(&mut self, partition: usize) {
        let shard = self.shards[partition - self.first].get_mut();
        let fit = slots_for(shard.len + 1);
        if fit < shard.slots.len() {
            // Without the memory for the smaller table, the larger stays.
            let _ = shard.resize_known(self.pool, fit);
        }
    }
}

/// The table size after `len`: 16, 24, 32, 48, 64, ... (a power of two,
/// then 1.5 times it).
fn next_size(len: usize) -> usize {
    if len.is_power_of_two() {
        len / 2 * 3
    } else {
        len / 3 * 4
    }
}

/// The keys at which a table of `len` slots that puts fill grows: at 3/4
/// full a new key probes about 8 slots (2 cache lines) with linear
/// probing; at 7/8 about 32, which measured 6% slower random fills.
fn capacity(len: usize) -> usize {
    len / 4 * 3
}

/// The most keys a table sized for a known count (at open) holds: open
/// inserts in hash order, next to the previous insert, so long probe runs
/// cost it little, and the smaller table measured 20% faster opens at
/// 10 M keys than sizing by `capacity`.
fn capacity_known(len: usize) -> usize {
    len / 8 * 7
}

/// Slots a shard needs for `keys` keys known in advance: the first size
/// that holds them.
fn slots_for(keys: usize) -> usize {
    let mut len = MIN_SLOTS;
    while capacity_known(len) < keys {
        len = next_size(len);
    }
    len
}

/// An arena entry: where it is, and whether it holds an expiry time.
#[derive(Clone, Copy)]
struct Ent {
    pos: usize,
    timed: bool,
}

fn ent(slot: &Slot) -> Ent {
    Ent {
        pos: ((slot.meta & POS_MASK) - 1) as usize,
        timed: slot.meta & TIMED != 0,
    }
}

/// The bits of a slot's `meta` that say where its entry is.
fn ent_bits(e: Ent) -> u64 {
    ((e.timed as u64) << POS_BITS) | (e.pos as u64 + 1)
}

/// Points slot `s` at entry `e`, keeping its hash bits.
fn repoint(s: &mut Slot, e: Ent) {
    s.meta = (s.meta & !(POS_MASK | TIMED)) | ent_bits(e);
}

fn slot_tag(slot: &Slot) -> u32 {
    (slot.meta >> TAG_SHIFT) as u32
}

fn same_tag(slot: &Slot, hash: u32) -> bool {
    slot_tag(slot) == hash & TAG_MASK
}

struct Shard {
    slots: Table,
    len: usize,
    /// The `len` at which the table must grow: `capacity`, or
    /// `capacity_known` for a table sized at open.
    grow_at: usize,
    /// Entries with an expiry time.
    expiring: usize,
    arena: Arena,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            slots: Table::empty(),
            len: 0,
            grow_at: 0,
            expiring: 0,
            arena: Arena::default(),
        }
    }

    /// The location of the key in slot `i` (which is not empty).
    fn location(&self, i: usize) -> Location {
        let slot = &self.slots[i];
        let (value_len, expiry) = self.arena.sizes(ent(slot));
        Location {
            file: slot.file,
            offset: slot.offset,
            value_len,
            expiry,
        }
    }

    /// Moves the key in slot `i`; returns where it pointed before.
    /// Or NoRoom, changing nothing, when the key needs a new arena entry
    /// and there is no memory for it.
    fn set_location(&mut self, pool: &Pool, i: usize, loc: Location) -> Result<Location, NoRoom> {
        let old = self.location(i);
        let e = ent(&self.slots[i]);
        if e.timed == (loc.expiry != 0) {
            self.arena.set_sizes(e, loc.value_len, loc.expiry);
        } else {
            // The key gains or loses its expiry field: a new entry. (The
            // shard header shares a cache line with its lock, so the count
            // is written only here, when it changes.)
            let moved = self.arena.push_moved(pool, e, loc.value_len, loc.expiry)?;
            self.arena.free(e);
            self.expiring = self.expiring + moved.timed as usize - e.timed as usize;
            repoint(&mut self.slots[i], moved);
            // Keys that keep gaining and losing a TTL must not grow the
            // arena without bound.
            self.compact_if_needed(pool);
        }
        let slot = &mut self.slots[i];
        (slot.file, slot.offset) = (loc.file, loc.offset);
        Ok(old)
    }

    /// The entries with an expiry time; none at all to visit in a shard
    /// without any (free for databases that do not use TTLs).
    fn expiring_entries(&self) -> impl Iterator<Item = (&[u8], Location)> {
        let slots: &[Slot] = if self.expiring == 0 { &[] } else { &self.slots };
        (0..slots.len())
            .filter(|&i| slots[i].meta & TIMED != 0)
            .map(|i| (self.arena.key(ent(&slots[i])), self.location(i)))
    }

    /// The slot after `i`, wrapping around.
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// Steps from slot `from` forward (wrapping) to slot `to`.
    fn dist(&self, from: usize, to: usize) -> usize {
        if to >= from {
            to - from
        } else {
            to + self.slots.len() - from
        }
    }

    /// The slot a tag wants to live in: the tag scaled to the table, so
    /// slots are in hash order.
    fn home_of(&self, tag: u32) -> usize {
        ((tag as u64 * self.slots.len() as u64) >> TAG_BITS) as usize
    }

    fn home(&self, slot: &Slot) -> usize {
        self.home_of(slot_tag(slot))
    }

    fn find(&self, key: &[u8], hash: u32) -> Option<(usize, Ent)> {
        self.find_fetching(key, hash, |_, _| {})
    }

    /// The slot of the key with `hash` whose record is at `from` (file,
    /// offset): a location holds one record, so one key.
    fn find_located(&self, hash: u32, from: (u32, u32)) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        self.walk(hash, |s| (s.file, s.offset) == from).ok()
    }

    /// `find` that shows `fetch` each candidate's location (see `probe`).
    fn find_fetching(
        &self,
        key: &[u8],
        hash: u32,
        fetch: impl Fn(u32, u32),
    ) -> Option<(usize, Ent)> {
        if self.slots.is_empty() {
            return None;
        }
        self.probe(key, hash, fetch).ok()
    }

    /// One probe sequence for `key`: Ok(its slot and arena entry), or
    /// Err(the empty slot where it belongs). `fetch` sees the location of
    /// each candidate before its key is compared. The table must not be
    /// empty.
    fn probe(
        &self,
        key: &[u8],
        hash: u32,
        fetch: impl Fn(u32, u32),
    ) -> Result<(usize, Ent), usize> {
        let i = self.walk(hash, |s| {
            fetch(s.file, s.offset);
            self.arena.key(ent(s)) == key
        })?;
        Ok((i, ent(&self.slots[i])))
    }

    /// The probe sequence of `hash`: Ok(the first slot with its tag that
    /// `is_it` accepts), or Err(the empty slot that ends it). The table
    /// must not be empty.
    fn walk(&self, hash: u32, mut is_it: impl FnMut(&Slot) -> bool) -> Result<usize, usize> {
        let mut i = self.home_of(hash & TAG_MASK);
        loop {
            let s = &self.slots[i];
            if s.meta == 0 {
                return Err(i);
            }
            if same_tag(s, hash) && is_it(s) {
                return Ok(i);
            }
            i = self.next(i);
        }
    }

    /// Points `key` at `loc` with one probe sequence: it ends at the key
    /// or at the empty slot where the key belongs. Returns the old location.
    /// The table grows only for a new key: an update asks for no memory
    /// (see `make_room`). Or NoRoom, changing no key or location (the
    /// table may have grown before the arena ran out).
    #[inline]
    fn upsert(
        &mut self,
        pool: &Pool,
        key: &[u8],
        hash: u32,
        loc: Location,
    ) -> Result<Option<Location>, NoRoom> {
        let mut empty = None;
        if !self.slots.is_empty() {
            match self.probe(key, hash, |_, _| {}) {
                Ok((i, _)) => return self.set_location(pool, i, loc).map(Some),
                Err(at) => empty = Some(at),
            }
        }
        if self.len >= self.grow_at {
            self.grow_if_full(pool)?;
            empty = None;
        }
        // After a resize: the empty slot that ends the key's probe run.
        let i = empty.unwrap_or_else(|| self.walk(hash, |_| false).unwrap_err());
        let e = self.arena.push(pool, key, loc.value_len, loc.expiry)?;
        self.slots[i] = Slot {
            meta: ((hash & TAG_MASK) as u64) << TAG_SHIFT | ent_bits(e),
            file: loc.file,
            offset: loc.offset,
        };
        self.len += 1;
        self.expiring += (loc.expiry != 0) as usize;
        Ok(None)
    }

    fn place(&mut self, slot: Slot, home: usize) {
        let mut i = home;
        while self.slots[i].meta != 0 {
            i = self.next(i);
        }
        self.slots[i] = slot;
    }

    /// Grows the table if one more key would make it too full.
    fn grow_if_full(&mut self, pool: &Pool) -> Result<(), NoRoom> {
        if self.len < self.grow_at {
            return Ok(());
        }
        let len = self.slots.len();
        self.resize(pool, if len == 0 { MIN_SLOTS } else { next_size(len) })
    }

    /// Room for `key`'s entry, unless it has one already (of the same
    /// shape): the key is looked up only when there is no room. What can
    /// change the shard between this and the insert, without the writer
    /// lock, is a merge: it moves keys and removes expired ones, but never
    /// compacts the arena; so a key with an expiry time, which a merge may
    /// remove, is given room as a new one.
    fn make_room(&mut self, pool: &Pool, key: &[u8], hash: u32, timed: bool) -> Result<(), NoRoom> {
        // Merge removes expired keys without compacting: a shard that only
        // ever loses keys that way compacts here, under the writer lock.
        self.compact_if_needed(pool);
        let need = Arena::entry_len(timed, key.len());
        if self.len < self.grow_at && self.arena.fits(need) {
            return Ok(());
        }
        match self.find(key, hash) {
            Some((_, e)) if !e.timed && !timed => Ok(()), // updated in place
            Some((_, e)) if !e.timed => self.arena.make_room(pool, need), // a new entry, same slot
            _ => {
                self.grow_if_full(pool)?;
                self.arena.make_room(pool, need)
            }
        }
    }

    /// `resize` for the keys open knows are coming: the table grows again
    /// only past `capacity_known`.
    fn resize_known(&mut self, pool: &Pool, new_len: usize) -> Result<(), NoRoom> {
        self.resize(pool, new_len)?;
        self.grow_at = capacity_known(new_len);
        Ok(())
    }

    /// Moves the slots to a table of `new_len`; without the memory for
    /// it, nothing changes.
    fn resize(&mut self, pool: &Pool, new_len: usize) -> Result<(), NoRoom> {
        let bytes = new_len.saturating_mul(std::mem::size_of::<Slot>());
        let table = Table::zeroed(pool, new_len).ok_or(NoRoom(bytes))?;
        let old = std::mem::replace(&mut self.slots, table);
        self.grow_at = capacity(new_len);
        for s in old.iter().filter(|s| s.meta != 0) {
            let home = self.home(s);
            self.place(*s, home);
        }
        pool.recycle(old.into_block());
        Ok(())
    }

    /// Removes `key`; returns where it pointed.
    fn remove(&mut self, pool: &Pool, key: &[u8], hash: u32) -> Option<Location> {
        let (i, e) = self.find(key, hash)?;
        let old = self.location(i);
        self.remove_at(i, e);
        self.compact_if_needed(pool);
        Some(old)
    }

    fn remove_at(&mut self, mut hole: usize, e: Ent) {
        self.expiring -= e.timed as usize;
        self.arena.free(e);
        self.len -= 1;
        // Backward-shift: pull later members of the probe run into the hole.
        let mut i = self.next(hole);
        loop {
            let s = self.slots[i];
            if s.meta == 0 {
                break;
            }
            let home = self.home(&s);
            // Move s if its home is not cyclically within (hole, i].
            if self.dist(home, i) >= self.dist(hole, i) {
                self.slots[hole] = s;
                hole = i;
            }
            i = self.next(i);
        }
        self.slots[hole] = Slot::default();
    }

    /// Compacts the arena once its dead entries (removed keys, keys that
    /// moved to a larger or smaller entry) outweigh its live ones.
    fn compact_if_needed(&mut self, pool: &Pool) {
        if self.arena.should_compact() {
            self.compact(pool);
        }
    }

    /// Rewrites the arena without the holes left by removed entries. It
    /// only saves memory: without the memory to do it, nothing changes.
    fn compact(&mut self, pool: &Pool) {
        let Some((fresh, moved)) = self.compacted(pool) else {
            self.arena.retry_at = self.arena.dead.saturating_mul(2);
            return;
        };
        let live = self.slots.iter_mut().filter(|s| s.meta != 0);
        for (s, m) in live.zip(moved) {
            repoint(s, m);
        }
        let old = std::mem::replace(&mut self.arena, fresh);
        old.recycle(pool);
    }

    /// The live entries copied to a new arena, and where each slot's went
    /// (in slot order); None, giving back what it took, without memory.
    fn compacted(&self, pool: &Pool) -> Option<(Arena, Vec<Ent>)> {
        let mut fresh = Arena::default();
        let mut moved = Vec::new();
        moved.try_reserve_exact(self.len).ok()?;
        for s in self.slots.iter().filter(|s| s.meta != 0) {
            let e = ent(s);
            let (value_len, expiry) = self.arena.sizes(e);
            match fresh.push(pool, self.arena.key(e), value_len, expiry) {
                Ok(m) => moved.push(m),
                Err(_) => {
                    fresh.recycle(pool);
                    return None;
                }
            }
        }
        Some((fresh, moved))
    }

    /// Bytes from the global allocator (the pool counts its own).
    fn heap_bytes(&self) -> usize {
        self.slots.heap_bytes() + self.arena.heap_bytes()
    }
}

/// Append-only byte chunks holding entries; positions are
/// `chunk * CHUNK + offset`. An entry never straddles chunks; an entry larger
/// than CHUNK gets a chunk of its own.
#[derive(Default)]
struct Arena {
    chunks: Vec<Chunk>,
    live: usize,
    dead: usize,
    /// After a compaction that found no memory: the dead bytes at which
    /// to try again (not at every removal).
    retry_at: usize,
}

impl Arena {
    /// Whether an entry of `need` bytes fits in the last chunk.
    fn fits(&self, need: usize) -> bool {
        self.chunks
            .last()
            .is_some_and(|c| c.len() + need <= c.capacity())
    }

    /// Room for an entry of `need` bytes in the last chunk.
    #[inline]
    fn make_room(&mut self, pool: &Pool, need: usize) -> Result<(), NoRoom> {
        if self.fits(need) {
            return Ok(());
        }
        self.add_chunk(pool, need)
    }

    #[cold]
    fn add_chunk(&mut self, pool: &Pool, need: usize) -> Result<(), NoRoom> {
        // Small databases stay small: chunks start at 256 bytes and
        // double up to CHUNK.
        let grow = self
            .chunks
            .last()
            .map_or(256, |c| (c.capacity() * 2).min(CHUNK));
        let cap = need.max(grow);
        self.chunks
            .try_reserve(1)
            .map_err(|_| NoRoom(std::mem::size_of::<Chunk>()))?;
        self.chunks
            .push(Chunk::with_capacity(pool, cap).ok_or(NoRoom(cap))?);
        Ok(())
    }

    /// Or NoRoom, changing nothing.
    fn push(
        &mut self,
        pool: &Pool,
        key: &[u8],
        value_len: u32,
        expiry: u32,
    ) -> Result<Ent, NoRoom> {
        self.make_room(pool, Arena::entry_len(expiry != 0, key.len()))?;
        let e = self.push_head(key.len(), value_len, expiry);
        self.chunks
            .last_mut()
            .expect("made room")
            .extend_from_slice(key);
        Ok(e)
    }

    /// A new entry for the key of `e` (which stays), copied within the
    /// arena: a key gaining or losing an expiry time needs no memory but
    /// the arena's (see `make_room`). Or NoRoom, changing nothing.
    fn push_moved(
        &mut self,
        pool: &Pool,
        e: Ent,
        value_len: u32,
        expiry: u32,
    ) -> Result<Ent, NoRoom> {
        let key_len = self.key(e).len();
        self.make_room(pool, Arena::entry_len(expiry != 0, key_len))?;
        let (from, last) = (e.pos / CHUNK, self.chunks.len() - 1);
        let at = e.pos % CHUNK + ENTRY_FIXED + 4 * e.timed as usize;
        let moved = self.push_head(key_len, value_len, expiry);
        if from == last {
            self.chunks[last].extend_from_within(at, key_len);
        } else {
            let (before, rest) = self.chunks.split_at_mut(last);
            rest[0].extend_from_slice(&before[from][at..at + key_len]);
        }
        Ok(moved)
    }

    /// Appends an entry's fixed part to the last chunk, which has room for
    /// the whole entry; its key follows.
    #[inline]
    fn push_head(&mut self, key_len: usize, value_len: u32, expiry: u32) -> Ent {
        let timed = expiry != 0;
        let idx = self.chunks.len() - 1;
        let chunk = &mut self.chunks[idx];
        let pos = idx * CHUNK + chunk.len();
        let mut fixed = [0u8; ENTRY_FIXED];
        fixed[0..4].copy_from_slice(&value_len.to_le_bytes());
        fixed[4..6].copy_from_slice(&(key_len as u16).to_le_bytes());
        // Fixed-size copies: a copy of a computed length is a memmove call.
        chunk.extend_from_slice(&fixed);
        if timed {
            chunk.extend_from_slice(&expiry.to_le_bytes());
        }
        self.live += Arena::entry_len(timed, key_len);
        Ent { pos, timed }
    }

    fn entry_len(timed: bool, key_len: usize) -> usize {
        ENTRY_FIXED + 4 * timed as usize + key_len
    }

    fn entry(&self, e: Ent) -> &[u8] {
        &self.chunks[e.pos / CHUNK][e.pos % CHUNK..]
    }

    fn key(&self, e: Ent) -> &[u8] {
        let b = self.entry(e);
        let len = u16::from_le_bytes([b[4], b[5]]) as usize;
        let at = ENTRY_FIXED + 4 * e.timed as usize;
        &b[at..at + len]
    }

    /// The entry's value length and expiry time (0 = none).
    fn sizes(&self, e: Ent) -> (u32, u32) {
        let b = self.entry(e);
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        (word(0), if e.timed { word(6) } else { 0 })
    }

    /// Updates sizes in place: `e` must be timed exactly when `expiry` is set.
    fn set_sizes(&mut self, e: Ent, value_len: u32, expiry: u32) {
        debug_assert_eq!(e.timed, expiry != 0);
        let b = &mut self.chunks[e.pos / CHUNK].as_mut_slice()[e.pos % CHUNK..];
        b[0..4].copy_from_slice(&value_len.to_le_bytes());
        if e.timed {
            b[6..10].copy_from_slice(&expiry.to_le_bytes());
        }
    }

    fn free(&mut self, e: Ent) {
        let n = Arena::entry_len(e.timed, self.key(e).len());
        self.live -= n;
        self.dead += n;
    }

    /// Gives the chunks back to the pool.
    fn recycle(self, pool: &Pool) {
        for chunk in self.chunks {
            pool.recycle(chunk.into_block());
        }
    }

    fn should_compact(&self) -> bool {
        self.dead > 4 * CHUNK && self.dead > self.live && self.dead >= self.retry_at
    }

    fn heap_bytes(&self) -> usize {
        let chunks: usize = self.chunks.iter().map(Chunk::heap_bytes).sum();
        chunks + self.chunks.capacity() * std::mem::size_of::<Chunk>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Every fifth location has an expiry time, so overwrites move keys
    /// between plain and timed arena entries.
    fn loc(n: u32) -> Location {
        Location {
            file: n,
            offset: n.wrapping_mul(3),
            value_len: n % 7,
            expiry: if n % 5 == 0 { n | 1 } else { 0 },
        }
    }

    #[test]
    fn matches_a_hashmap_through_growth_removal_and_compaction() {
        let kd = Keydir::new(Seed::random());
        let mut model = HashMap::new();
        let mut x: u64 = 0x9E3779B97F4A7C15;
        for i in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("key{}", x % 20_000).into_bytes();
            if x % 3 == 0 {
                assert_eq!(kd.remove(&key), model.remove(&key));
            } else {
                assert_eq!(kd.insert(&key, loc(i)), model.insert(key.clone(), loc(i)));
            }
        }
        assert_eq!(kd.len(), model.len());
        for (k, v) in &model {
            assert_eq!(kd.get(k), Some(*v));
        }
        let mut seen = 0;
        kd.for_each_prefix(b"", |k, l| {
            assert_eq!(model.get(k), Some(&l));
            seen += 1;
        });
        assert_eq!(seen, model.len());
        let mut timed = 0;
        kd.for_each_expiring(|k, l| {
            assert_eq!(model.get(k), Some(&l));
            assert_ne!(l.expiry, 0);
            timed += 1;
        });
        assert_eq!(timed, model.values().filter(|l| l.expiry != 0).count());
        assert_eq!(
            kd.len_unexpired(|e| e % 4 == 1),
            model.values().filter(|l| l.expiry % 4 != 1).count()
        );
    }

    #[test]
    fn pooled_tables_and_chunks_survive_growth_compaction_and_reuse() {
        // Enough keys that shards outgrow 64 KiB tables and fill whole
        // chunks (pool memory), then lose most of them (arena compaction
        // recycles chunks), then grow again into the recycled memory.
        let kd = Keydir::new(Seed::random());
        let mut model = HashMap::new();
        // 100-byte keys: removing 90% leaves each shard's arena mostly
        // dead, which triggers its compaction.
        let key = |i: u32| format!("{i:0100}").into_bytes();
        for i in 0..300_000u32 {
            kd.insert(&key(i), loc(i));
            model.insert(key(i), loc(i));
        }
        assert!(kd.pool.mapped_bytes() > 0, "the pool was not used");
        let mapped = kd.pool.mapped_bytes();
        for i in (0..300_000u32).filter(|i| i % 10 != 0) {
            assert_eq!(kd.remove(&key(i)), model.remove(&key(i)));
        }
        for i in 300_000..450_000u32 {
            kd.insert(&key(i), loc(i));
            model.insert(key(i), loc(i));
        }
        // The 150,000 new entries need ~18 MB; recycled chunks hold them,
        // so the pool grows at most by compaction's transient (a shard's
        // fresh arena exists beside its old one for a moment).
        assert!(
            kd.pool.mapped_bytes() <= mapped + (4 << 20),
            "recycled memory was not reused: {} > {mapped} + 4 MiB",
            kd.pool.mapped_bytes()
        );
        assert_eq!(kd.len(), model.len());
        for (k, v) in &model {
            assert_eq!(kd.get(k), Some(*v));
        }
        for i in (0..300_000u32).filter(|i| i % 10 != 0) {
            assert_eq!(kd.get(&key(i)), None);
        }
    }

    /// `relocate` moves exactly the key whose record is at `from`: not
    /// one whose record is elsewhere (overwritten, or a colliding key), and
    /// nothing for a key that is gone; the value length and expiry stay.
    #[test]
    fn relocate_finds_a_key_by_its_location_alone() {
        let kd = Keydir::new(Seed::random());
        let key = |i: u32| format!("key-{i}").into_bytes();
        let at = |i: u32| Location {
            file: 1,
            offset: i * 100,
            value_len: i,
            expiry: i % 3,
        };
        for i in 0..3000 {
            kd.insert(&key(i), at(i));
        }
        for i in (0..3000).step_by(3) {
            kd.insert(&key(i), Location { file: 5, ..at(i) }); // overwritten
        }
        for i in (1..3000).step_by(3) {
            kd.remove(&key(i));
        }
        for i in 0..3000 {
            let h = kd.seed().hash(&key(i));
            assert!(
                !kd.relocate(h, (1, i * 100 + 1), (2, i)),
                "wrong offset {i}"
            );
            let moved = kd.relocate(h, (1, i * 100), (2, i));
            assert_eq!(moved, i % 3 == 2, "key {i}");
        }
        for i in 0..3000 {
            let want = match i % 3 {
                0 => Some(Location { file: 5, ..at(i) }),
                1 => None,
                _ => Some(Location {
                    file: 2,
                    offset: i,
                    ..at(i)
                }),
            };
            assert_eq!(kd.get(&key(i)), want, "key {i}");
        }
        assert!(
            !Keydir::new(Seed::random()).relocate(7, (1, 0), (2, 0)),
            "empty"
        );
    }

    #[test]
    fn a_get_offers_the_location_before_it_compares_the_key() {
        let kd = Keydir::new(Seed::random());
        for i in 0..1000u32 {
            kd.insert(format!("k{i}").as_bytes(), loc(i));
        }
        let offered = std::cell::RefCell::new(Vec::new());
        let got = kd.get_prefetching(b"k77", |file, offset| {
            offered.borrow_mut().push((file, offset))
        });
        assert_eq!(got, Some(loc(77)));
        // Every candidate with matching hash bits, the key's own included.
        assert!(
            offered.borrow().contains(&(77, 77 * 3)),
            "{:?}",
            offered.borrow()
        );
        offered.borrow_mut().clear();
        assert_eq!(
            kd.get_prefetching(b"absent", |f, o| offered.borrow_mut().push((f, o))),
            None
        );
        assert!(offered.borrow().len() <= 1, "a miss rarely matches any tag");
    }

    #[test]
    fn table_sizes_alternate_between_powers_of_two_and_one_and_a_half_times() {
        let mut sizes = vec![MIN_SLOTS];
        while sizes.len() < 8 {
            sizes.push(next_size(*sizes.last().unwrap()));
        }
        assert_eq!(sizes, [16, 24, 32, 48, 64, 96, 128, 192]);
        // Known counts fill a table to 7/8; puts grow it at 3/4.
        assert_eq!(slots_for(0), 16);
        assert_eq!(slots_for(14), 16);
        assert_eq!(slots_for(15), 24);
        assert_eq!(capacity(16), 12);
        // 1 M keys in 64 shards: 15,625 a shard fit 24,576 slots (64%
        // full) rather than 32,768 (48%).
        assert_eq!(slots_for(15_625), 24_576);
    }

    #[test]
    fn keys_that_switch_between_ttl_and_none_do_not_grow_the_arena() {
        let kd = Keydir::new(Seed::random());
        let key = |i: u32| format!("{i:032}").into_bytes();
        let at = |i: u32, ttl: bool| Location {
            expiry: ttl as u32 * 1000,
            ..loc(i * 5 + 1)
        };
        for i in 0..20_000 {
            kd.insert(&key(i), at(i, false));
        }
        // Each round leaves every key's old entry behind (~14 KiB a
        // shard): without compaction the dead bytes pass the threshold
        // after about 18 rounds and keep growing.
        for round in 0..40 {
            for i in 0..20_000 {
                kd.insert(&key(i), at(i, round % 2 == 0));
            }
            for shard in kd.shards.iter() {
                let a = &shard.read().arena;
                assert!(
                    !a.should_compact(),
                    "round {round}: {} dead, {} live",
                    a.dead,
                    a.live
                );
            }
        }
        for i in 0..20_000 {
            assert_eq!(kd.get(&key(i)), Some(at(i, false)));
        }
    }

    /// Keys that only ever leave by expiring (merge removes them, without
    /// compacting) do not hold the arena: the shard's next put compacts.
    #[test]
    fn keys_that_expire_away_do_not_hold_the_arena() {
        let kd = Keydir::new(Seed::random());
        let key = |i: u32| format!("{i:0200}").into_bytes(); // 210-byte entries
        let at = |i: u32| Location {
            expiry: 1000,
            ..loc(i * 5 + 1)
        };
        for i in 0..100_000 {
            kd.insert(&key(i), at(i));
        }
        for i in 0..100_000 {
            let l = at(i);
            assert!(kd.remove_located(kd.hash(&key(i)), (l.file, l.offset)));
        }
        let compactable = |kd: &Keydir| {
            let shards = kd.shards.iter();
            shards.filter(|s| s.read().arena.should_compact()).count()
        };
        assert_eq!(compactable(&kd), SHARDS, "the removals left dead entries");
        for i in 100_000..110_000 {
            let h = kd.prepare(&key(i));
            kd.make_room(&key(i), &h, false).unwrap();
            kd.insert_hashed(&key(i), h, loc(i * 5 + 1));
        }
        assert_eq!(compactable(&kd), 0);
    }

    /// Two keys with the same 32-bit hash (found by trying keys: a birthday
    /// collision takes about 80,000), at different locations: relocating
    /// or removing by hash and location touches only the key at that
    /// location.
    #[test]
    fn relocate_and_remove_located_tell_colliding_keys_apart() {
        let kd = Keydir::new(Seed::random());
        let mut seen = std::collections::HashMap::new();
        let (a, b) = (0u32..)
            .find_map(|i| {
                let k = format!("collide-{i}").into_bytes();
                let h = kd.seed().hash(&k);
                seen.insert(h, k.clone()).map(|other| (other, k))
            })
            .unwrap();
        let h = kd.seed().hash(&a);
        assert_eq!(h, kd.seed().hash(&b));
        kd.insert(&a, loc(1));
        kd.insert(&b, loc(2));
        // b's location: only b moves, whichever of the two the probe
        // meets first.
        assert!(kd.relocate(h, (loc(2).file, loc(2).offset), (9, 90)));
        assert_eq!(kd.get(&a), Some(loc(1)));
        let moved = Location {
            file: 9,
            offset: 90,
            ..loc(2)
        };
        assert_eq!(kd.get(&b), Some(moved));
        assert!(
            !kd.remove_located(h, (loc(2).file, loc(2).offset)),
            "moved away"
        );
        assert!(kd.remove_located(h, (loc(1).file, loc(1).offset)));
        assert_eq!(kd.get(&a), None);
        assert_eq!(kd.get(&b), Some(moved));
        assert!(kd.remove_located(h, (9, 90)));
        assert_eq!(kd.get(&b), None);
        assert!(
            !Keydir::new(Seed::random()).remove_located(h, (9, 90)),
            "empty"
        );
    }

    #[test]
    fn huge_keys_get_their_own_chunk() {
        let kd = Keydir::new(Seed::random());
        let big = vec![7u8; 65535];
        kd.insert(&big, loc(1));
        kd.insert(b"small", loc(2));
        assert_eq!(kd.get(&big), Some(loc(1)));
        assert_eq!(kd.get(b"small"), Some(loc(2)));
    }
}
