//! The keydir: every live key and where its newest record lives.
//!
//! Memory is the constraint (all keys live in RAM), so entries are packed:
//! each shard keeps its entries in an arena of byte chunks
//! (`file u32 | offset u32 | value_len u32 | expiry u32 | key_len u16 | key`,
//! 18 bytes plus the key) and an open-addressing index of 8-byte slots
//! (`arena position + 1` in the low 38 bits, 26 hash bits above). Linear
//! probing with backward-shift deletion keeps the index free of graves.
//!
//! Keys are placed by the *high* bits of their hash (shard, then home slot),
//! so a shard's slots are in hash order: a hint file, whose entries are
//! sorted by the same hash, loads as one sequential sweep through the
//! table. For that the hash is SipHash-2-4 under a seed kept in the hint
//! files, so it is the same in every process that opens the database.
//!
//! The keydir is split into shards, each behind its own `RwLock`: gets take a
//! shard's read lock only for the lookup, so readers never wait for each
//! other, and a writer holds one shard for the duration of one insert.
//!
//! Slot tables and full arena chunks live in 2 MiB regions backed by huge
//! pages where the kernel allows (`memory`): fewer TLB misses per lookup,
//! and 512 times fewer page faults while open builds the keydir.

mod memory;

use memory::{Chunk, Pool, Table};
use parking_lot::RwLock;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

pub(crate) const SHARD_BITS: u32 = 6;
pub(crate) const SHARDS: usize = 1 << SHARD_BITS;
const CHUNK: usize = memory::UNIT;
const POS_BITS: u32 = 38;
const POS_MASK: u64 = (1 << POS_BITS) - 1;
/// Hash bits below the shard bits, kept in each slot: they place the key
/// (home slot) and screen out most non-matching keys before a key compare.
const TAG_BITS: u32 = 32 - SHARD_BITS;
const TAG_MASK: u32 = (1 << TAG_BITS) - 1;
const ENTRY_FIXED: usize = 18;
const MIN_SLOTS: usize = 16;

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

/// The key hash: the top 32 bits of SipHash-2-4 keyed with the database's
/// seed. A random seed per database keeps crafted keys from piling into
/// one probe run; storing it keeps hints sorted for every later open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Seed(pub u64, pub u64);

impl Seed {
    pub fn random() -> Seed {
        let s = RandomState::new();
        Seed(s.hash_one(0x5eed_u64), s.hash_one(0xc0ffee_u64))
    }

    pub fn hash(&self, key: &[u8]) -> u32 {
        // SipHasher is deprecated only in favour of RandomState, whose
        // algorithm may change between Rust releases; a hash that is stored
        // on disk needs this one, which is SipHash-2-4 by its definition.
        #[allow(deprecated)]
        let mut h = std::hash::SipHasher::new_with_keys(self.0, self.1);
        h.write(key);
        (h.finish() >> 32) as u32
    }
}

/// A key's hash, from `Keydir::prepare`.
pub struct Hashed(u32);

/// Starts loading the cache line of `slot` (a hint: no effect on results).
fn prefetch(slot: &u64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and changes no memory; the pointer
    // comes from a reference. (Safe to call in newer Rust: hence the allow.)
    #[allow(unused_unsafe)]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(slot as *const u64 as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slot;
}

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

    pub fn get(&self, key: &[u8]) -> Option<Location> {
        let h = self.hash(key);
        let shard = self.shard(h).read();
        shard.find(key, h).map(|(_, pos)| shard.arena.location(pos))
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
            prefetch(&shard.slots[shard.home_of(h & TAG_MASK)]);
        }
        Hashed(h)
    }

    /// `insert` with the hash from `prepare`.
    pub fn insert_hashed(&self, key: &[u8], h: Hashed, loc: Location) -> Option<Location> {
        self.shard(h.0).write().upsert(&self.pool, key, h.0, loc)
    }

    pub fn remove(&self, key: &[u8]) -> Option<Location> {
        let h = self.hash(key);
        self.shard(h).write().remove(&self.pool, key, h)
    }

    /// Compare-and-swap used by merge: only if `key` still points at
    /// `expected` is it moved to `new` (or removed when `new` is None).
    /// A writer that overwrote the key meanwhile wins.
    pub fn replace_if(&self, key: &[u8], expected: Location, new: Option<Location>) -> bool {
        let h = self.hash(key);
        let mut shard = self.shard(h).write();
        let Some((slot, pos)) = shard.find(key, h) else {
            return false;
        };
        if shard.arena.location(pos) != expected {
            return false;
        }
        match new {
            Some(loc) => {
                shard.set_location(pos, loc);
            }
            None => shard.remove_at(&self.pool, slot, pos),
        }
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
            for &slot in shard.slots.iter().filter(|&&s| s != 0) {
                let pos = slot_pos(slot);
                let key = shard.arena.key(pos);
                if key.starts_with(prefix) {
                    f(key, shard.arena.location(pos));
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
    /// does not grow it step by step.
    pub fn reserve(&mut self, partition: usize, n: usize) {
        let shard = self.shards[partition - self.first].get_mut();
        let want = slots_for(shard.len + n);
        if want > shard.slots.len() {
            shard.resize(self.pool, want);
        }
    }

    /// Points `key` (whose hash is `hash`) at `loc`; returns the old location.
    pub fn upsert(&mut self, hash: u32, key: &[u8], loc: Location) -> Option<Location> {
        let (shard, pool) = self.shard(hash);
        shard.upsert(pool, key, hash, loc)
    }

    pub fn remove(&mut self, hash: u32, key: &[u8]) -> Option<Location> {
        let (shard, pool) = self.shard(hash);
        shard.remove(pool, key, hash)
    }

    /// Shrinks shards that `reserve` made too large for the keys that
    /// arrived (hints that repeat keys).
    pub fn shrink(&mut self) {
        for shard in self.shards.iter_mut() {
            let shard = shard.get_mut();
            let fit = slots_for(shard.len + 1);
            if fit < shard.slots.len() {
                shard.resize(self.pool, fit);
            }
        }
    }
}

/// Slots a shard needs for `keys` keys: at most 7/8 full (probe sequences
/// stay short with linear probing, and the table costs at most ~18 bytes a
/// key), a power of two.
fn slots_for(keys: usize) -> usize {
    (keys * 8).div_ceil(7).next_power_of_two().max(MIN_SLOTS)
}

fn slot_pos(slot: u64) -> usize {
    ((slot & POS_MASK) - 1) as usize
}

fn make_slot(hash: u32, pos: usize) -> u64 {
    (((hash & TAG_MASK) as u64) << POS_BITS) | (pos as u64 + 1)
}

fn same_tag(slot: u64, hash: u32) -> bool {
    (slot >> POS_BITS) as u32 == hash & TAG_MASK
}

struct Shard {
    slots: Table,
    len: usize,
    /// The `len` at which the slots are 7/8 full and must grow.
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

    /// Moves an entry; returns where it pointed before.
    fn set_location(&mut self, pos: usize, loc: Location) -> Location {
        let old = self.arena.location(pos);
        // The shard header shares a cache line with its lock: write it only
        // when the count changes, so readers of the shard keep their copy.
        if (loc.expiry != 0) != (old.expiry != 0) {
            self.expiring = self.expiring + (loc.expiry != 0) as usize - (old.expiry != 0) as usize;
        }
        self.arena.set_location(pos, loc);
        old
    }

    /// The entries with an expiry time; none at all to visit in a shard
    /// without any (free for databases that do not use TTLs).
    fn expiring_entries(&self) -> impl Iterator<Item = (&[u8], Location)> {
        let slots: &[u64] = if self.expiring == 0 { &[] } else { &self.slots };
        slots.iter().filter(|&&s| s != 0).filter_map(|&s| {
            let loc = self.arena.location(slot_pos(s));
            (loc.expiry != 0).then(|| (self.arena.key(slot_pos(s)), loc))
        })
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The slot a tag wants to live in: its top bits, so slots are in hash
    /// order. (A shard of more than 2^26 slots spreads tags evenly apart.)
    fn home_of(&self, tag: u32) -> usize {
        let bits = self.slots.len().trailing_zeros();
        if bits <= TAG_BITS {
            (tag >> (TAG_BITS - bits)) as usize
        } else {
            (tag as usize) << (bits - TAG_BITS)
        }
    }

    fn home(&self, slot: u64) -> usize {
        self.home_of((slot >> POS_BITS) as u32)
    }

    fn find(&self, key: &[u8], hash: u32) -> Option<(usize, usize)> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = self.home_of(hash & TAG_MASK);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if same_tag(s, hash) && self.arena.key(slot_pos(s)) == key {
                return Some((i, slot_pos(s)));
            }
            i = (i + 1) & mask;
        }
    }

    /// Points `key` at `loc` with one probe sequence: it ends at the key
    /// or at the empty slot where the key belongs. Returns the old location.
    fn upsert(&mut self, pool: &Pool, key: &[u8], hash: u32, loc: Location) -> Option<Location> {
        if self.len >= self.grow_at {
            self.resize(pool, (self.slots.len() * 2).max(MIN_SLOTS));
        }
        let mask = self.mask();
        let mut i = self.home_of(hash & TAG_MASK);
        loop {
            let s = self.slots[i];
            if s == 0 {
                break;
            }
            if same_tag(s, hash) && self.arena.key(slot_pos(s)) == key {
                return Some(self.set_location(slot_pos(s), loc));
            }
            i = (i + 1) & mask;
        }
        let pos = self.arena.push(pool, key, loc);
        self.slots[i] = make_slot(hash, pos);
        self.len += 1;
        self.expiring += (loc.expiry != 0) as usize;
        None
    }

    fn place(&mut self, slot: u64, home: usize) {
        let mask = self.mask();
        let mut i = home & mask;
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    fn resize(&mut self, pool: &Pool, new_len: usize) {
        let old = std::mem::replace(&mut self.slots, Table::zeroed(pool, new_len));
        self.grow_at = new_len / 8 * 7;
        for &s in old.iter().filter(|&&s| s != 0) {
            let home = self.home(s);
            self.place(s, home);
        }
        pool.recycle(old.into_block());
    }

    /// Removes `key`; returns where it pointed.
    fn remove(&mut self, pool: &Pool, key: &[u8], hash: u32) -> Option<Location> {
        let (slot, pos) = self.find(key, hash)?;
        let old = self.arena.location(pos);
        self.remove_at(pool, slot, pos);
        Some(old)
    }

    fn remove_at(&mut self, pool: &Pool, mut hole: usize, pos: usize) {
        self.expiring -= (self.arena.location(pos).expiry != 0) as usize;
        self.arena.free(pos);
        self.len -= 1;
        // Backward-shift: pull later members of the probe run into the hole.
        let mask = self.mask();
        let mut i = (hole + 1) & mask;
        loop {
            let s = self.slots[i];
            if s == 0 {
                break;
            }
            let home = self.home(s);
            // Move s if its home is not cyclically within (hole, i].
            if (i.wrapping_sub(home) & mask) >= (i.wrapping_sub(hole) & mask) {
                self.slots[hole] = s;
                hole = i;
            }
            i = (i + 1) & mask;
        }
        self.slots[hole] = 0;
        if self.arena.should_compact() {
            self.compact(pool);
        }
    }

    /// Rewrites the arena without the holes left by removed entries.
    fn compact(&mut self, pool: &Pool) {
        let mut fresh = Arena::default();
        for s in self.slots.iter_mut().filter(|s| **s != 0) {
            let pos = slot_pos(*s);
            let new_pos = fresh.push(pool, self.arena.key(pos), self.arena.location(pos));
            *s = (*s & !POS_MASK) | (new_pos as u64 + 1);
        }
        let old = std::mem::replace(&mut self.arena, fresh);
        for chunk in old.chunks {
            pool.recycle(chunk.into_block());
        }
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
}

impl Arena {
    fn push(&mut self, pool: &Pool, key: &[u8], loc: Location) -> usize {
        let need = ENTRY_FIXED + key.len();
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.len() + need <= c.capacity());
        if !fits {
            // Small databases stay small: chunks start at 256 bytes and
            // double up to CHUNK.
            let grow = self
                .chunks
                .last()
                .map_or(256, |c| (c.capacity() * 2).min(CHUNK));
            self.chunks.push(Chunk::with_capacity(pool, need.max(grow)));
        }
        let idx = self.chunks.len() - 1;
        let chunk = &mut self.chunks[idx];
        let pos = idx * CHUNK + chunk.len();
        let mut fixed = [0u8; ENTRY_FIXED];
        fixed[0..4].copy_from_slice(&loc.file.to_le_bytes());
        fixed[4..8].copy_from_slice(&loc.offset.to_le_bytes());
        fixed[8..12].copy_from_slice(&loc.value_len.to_le_bytes());
        fixed[12..16].copy_from_slice(&loc.expiry.to_le_bytes());
        fixed[16..18].copy_from_slice(&(key.len() as u16).to_le_bytes());
        chunk.extend_from_slice(&fixed);
        chunk.extend_from_slice(key);
        self.live += need;
        pos
    }

    fn entry(&self, pos: usize) -> &[u8] {
        &self.chunks[pos / CHUNK][pos % CHUNK..]
    }

    fn key(&self, pos: usize) -> &[u8] {
        let e = self.entry(pos);
        let len = u16::from_le_bytes([e[16], e[17]]) as usize;
        &e[ENTRY_FIXED..ENTRY_FIXED + len]
    }

    fn location(&self, pos: usize) -> Location {
        let e = self.entry(pos);
        let word = |i: usize| u32::from_le_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
        Location {
            file: word(0),
            offset: word(4),
            value_len: word(8),
            expiry: word(12),
        }
    }

    fn set_location(&mut self, pos: usize, loc: Location) {
        let e = &mut self.chunks[pos / CHUNK].as_mut_slice()[pos % CHUNK..];
        e[0..4].copy_from_slice(&loc.file.to_le_bytes());
        e[4..8].copy_from_slice(&loc.offset.to_le_bytes());
        e[8..12].copy_from_slice(&loc.value_len.to_le_bytes());
        e[12..16].copy_from_slice(&loc.expiry.to_le_bytes());
    }

    fn free(&mut self, pos: usize) {
        let n = ENTRY_FIXED + self.key(pos).len();
        self.live -= n;
        self.dead += n;
    }

    fn should_compact(&self) -> bool {
        self.dead > 4 * CHUNK && self.dead > self.live
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

    fn loc(n: u32) -> Location {
        Location {
            file: n,
            offset: n.wrapping_mul(3),
            value_len: n % 7,
            expiry: 0,
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

    #[test]
    fn replace_if_only_when_unchanged() {
        let kd = Keydir::new(Seed::random());
        kd.insert(b"a", loc(1));
        assert!(!kd.replace_if(b"a", loc(2), Some(loc(3))));
        assert!(kd.replace_if(b"a", loc(1), Some(loc(3))));
        assert_eq!(kd.get(b"a"), Some(loc(3)));
        assert!(kd.replace_if(b"a", loc(3), None));
        assert_eq!(kd.get(b"a"), None);
        assert!(!kd.replace_if(b"missing", loc(3), None));
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
