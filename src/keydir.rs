//! The keydir: every live key and where its newest record lives.
//!
//! Memory is the constraint (all keys live in RAM), so entries are packed:
//! each shard keeps its entries in an arena of byte chunks
//! (`file u32 | offset u32 | value_len u32 | expiry u32 | key_len u16 | key`,
//! 18 bytes plus the key) and an open-addressing index of 8-byte slots
//! (`arena position + 1` in the low 40 bits, 24 hash bits above). Linear
//! probing with backward-shift deletion keeps the index free of graves.
//!
//! The keydir is split into shards, each behind its own `RwLock`: gets take a
//! shard's read lock only for the lookup, so readers never wait for each
//! other, and a writer holds one shard for the duration of one insert.

use parking_lot::RwLock;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;
const CHUNK: usize = 1 << 16;
const POS_BITS: u32 = 40;
const POS_MASK: u64 = (1 << POS_BITS) - 1;
const TAG_BITS: u32 = 24;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
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

pub struct Keydir {
    shards: Box<[RwLock<Shard>]>,
    hasher: RandomState,
}

impl Default for Keydir {
    fn default() -> Self {
        Keydir::new()
    }
}

impl Keydir {
    pub fn new() -> Keydir {
        Keydir {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn hash(&self, key: &[u8]) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write(key);
        h.finish()
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard> {
        &self.shards[(hash >> (64 - SHARD_BITS)) as usize]
    }

    pub fn get(&self, key: &[u8]) -> Option<Location> {
        let h = self.hash(key);
        let shard = self.shard(h).read();
        shard.find(key, h).map(|(_, pos)| shard.arena.location(pos))
    }

    /// Points `key` at `loc`; returns where it pointed before.
    pub fn insert(&self, key: &[u8], loc: Location) -> Option<Location> {
        let h = self.hash(key);
        let mut shard = self.shard(h).write();
        if let Some((_, pos)) = shard.find(key, h) {
            return Some(shard.set_location(pos, loc));
        }
        shard.insert_new(key, h, loc, &self.hasher);
        None
    }

    pub fn remove(&self, key: &[u8]) -> Option<Location> {
        let h = self.hash(key);
        let mut shard = self.shard(h).write();
        let (slot, pos) = shard.find(key, h)?;
        let old = shard.arena.location(pos);
        shard.remove_at(slot, pos, &self.hasher);
        Some(old)
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
            None => shard.remove_at(slot, pos, &self.hasher),
        }
        true
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len).sum()
    }

    /// Heap bytes held by the keydir.
    pub fn memory_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.read().memory_bytes()).sum()
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
            let shard = shard.read();
            if shard.expiring == 0 {
                continue;
            }
            for &slot in shard.slots.iter().filter(|&&s| s != 0) {
                let loc = shard.arena.location(slot_pos(slot));
                if loc.expiry != 0 {
                    f(shard.arena.key(slot_pos(slot)), loc);
                }
            }
        }
    }
}

fn slot_pos(slot: u64) -> usize {
    ((slot & POS_MASK) - 1) as usize
}

fn make_slot(hash: u64, pos: usize) -> u64 {
    ((hash & TAG_MASK) << POS_BITS) | (pos as u64 + 1)
}

fn same_tag(slot: u64, hash: u64) -> bool {
    slot >> POS_BITS == hash & TAG_MASK
}

struct Shard {
    slots: Vec<u64>,
    len: usize,
    /// Entries with an expiry time.
    expiring: usize,
    arena: Arena,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            slots: Vec::new(),
            len: 0,
            expiring: 0,
            arena: Arena::default(),
        }
    }

    /// Moves an entry; returns where it pointed before.
    fn set_location(&mut self, pos: usize, loc: Location) -> Location {
        let old = self.arena.location(pos);
        self.expiring = self.expiring + (loc.expiry != 0) as usize - (old.expiry != 0) as usize;
        self.arena.set_location(pos, loc);
        old
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The slot a hash wants to live in.
    fn home(&self, slot: u64, hasher: &RandomState) -> usize {
        if self.slots.len() <= 1 << TAG_BITS {
            (slot >> POS_BITS) as usize & self.mask()
        } else {
            // Tables beyond 16M slots need more hash bits than the slot keeps.
            let mut h = hasher.build_hasher();
            h.write(self.arena.key(slot_pos(slot)));
            h.finish() as usize & self.mask()
        }
    }

    fn find(&self, key: &[u8], hash: u64) -> Option<(usize, usize)> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
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

    fn insert_new(&mut self, key: &[u8], hash: u64, loc: Location, hasher: &RandomState) {
        // Grow at 7/8 full: probe sequences stay short with linear probing
        // and the table costs at most ~18 bytes per key.
        if (self.len + 1) * 8 > self.slots.len() * 7 {
            self.resize((self.slots.len() * 2).max(MIN_SLOTS), hasher);
        }
        let pos = self.arena.push(key, loc);
        self.place(make_slot(hash, pos), hash as usize);
        self.len += 1;
        self.expiring += (loc.expiry != 0) as usize;
    }

    fn place(&mut self, slot: u64, home: usize) {
        let mask = self.mask();
        let mut i = home & mask;
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    fn resize(&mut self, new_len: usize, hasher: &RandomState) {
        let old = std::mem::replace(&mut self.slots, vec![0; new_len]);
        for s in old.into_iter().filter(|&s| s != 0) {
            let home = self.home(s, hasher);
            self.place(s, home);
        }
    }

    fn remove_at(&mut self, mut hole: usize, pos: usize, hasher: &RandomState) {
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
            let home = self.home(s, hasher);
            // Move s if its home is not cyclically within (hole, i].
            if (i.wrapping_sub(home) & mask) >= (i.wrapping_sub(hole) & mask) {
                self.slots[hole] = s;
                hole = i;
            }
            i = (i + 1) & mask;
        }
        self.slots[hole] = 0;
        if self.arena.should_compact() {
            self.compact();
        }
    }

    /// Rewrites the arena without the holes left by removed entries.
    fn compact(&mut self) {
        let mut fresh = Arena::default();
        for s in self.slots.iter_mut().filter(|s| **s != 0) {
            let pos = slot_pos(*s);
            let new_pos = fresh.push(self.arena.key(pos), self.arena.location(pos));
            *s = (*s & !POS_MASK) | (new_pos as u64 + 1);
        }
        self.arena = fresh;
    }

    fn memory_bytes(&self) -> usize {
        self.slots.capacity() * 8 + self.arena.memory_bytes()
    }
}

/// Append-only byte chunks holding entries; positions are
/// `chunk * CHUNK + offset`. An entry never straddles chunks; an entry larger
/// than CHUNK gets a chunk of its own.
#[derive(Default)]
struct Arena {
    chunks: Vec<Vec<u8>>,
    live: usize,
    dead: usize,
}

impl Arena {
    fn push(&mut self, key: &[u8], loc: Location) -> usize {
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
            self.chunks.push(Vec::with_capacity(need.max(grow)));
        }
        let idx = self.chunks.len() - 1;
        let chunk = &mut self.chunks[idx];
        let pos = idx * CHUNK + chunk.len();
        chunk.extend_from_slice(&loc.file.to_le_bytes());
        chunk.extend_from_slice(&loc.offset.to_le_bytes());
        chunk.extend_from_slice(&loc.value_len.to_le_bytes());
        chunk.extend_from_slice(&loc.expiry.to_le_bytes());
        chunk.extend_from_slice(&(key.len() as u16).to_le_bytes());
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
        let e = &mut self.chunks[pos / CHUNK][pos % CHUNK..];
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

    fn memory_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity()).sum::<usize>() + self.chunks.capacity() * 24
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
        let kd = Keydir::new();
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
    fn replace_if_only_when_unchanged() {
        let kd = Keydir::new();
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
        let kd = Keydir::new();
        let big = vec![7u8; 65535];
        kd.insert(&big, loc(1));
        kd.insert(b"small", loc(2));
        assert_eq!(kd.get(&big), Some(loc(1)));
        assert_eq!(kd.get(b"small"), Some(loc(2)));
    }
}
