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

use crate::error::{Error, Result, Status};
use parking_lot::RwLock;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

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
        self.shard(h).write().upsert(key, h, loc, &self.hasher)
    }

    pub fn remove(&self, key: &[u8]) -> Option<Location> {
        let h = self.hash(key);
        self.shard(h).write().remove(key, h, &self.hasher)
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

/// Keys sent to a loader thread at a time.
const BATCH: usize = 512;
/// Slots touched ahead of the inserts that use them.
const PREFETCH: usize = 32;

/// Record bytes per data file, of entries that were replaced or removed.
pub type DeadBytes = HashMap<u32, u64>;

/// A batch of keydir updates for one loader thread: hash, key start in
/// `keys`, key length, new location (None: remove).
#[derive(Default)]
struct Batch {
    items: Vec<(u64, usize, usize, Option<Location>)>,
    keys: Vec<u8>,
}

enum Load {
    Batch(Batch),
    Reserve(u64),
}

/// Bulk loading at open, when the keydir is not shared yet. The calling
/// thread hashes keys and hands them, in order, to loader threads that each
/// own a range of shards outright: no locks, every core busy, and each
/// thread reads the home slots of a group of keys before inserting them so
/// the cache misses overlap. A key always goes to the same thread, so
/// updates to it apply in the order they were made.
pub struct Bulk<'k> {
    hasher: &'k RandomState,
    senders: Vec<SyncSender<Load>>,
    shards_per_thread: usize,
    pending: Vec<Batch>,
}

impl Keydir {
    /// Runs `body`, which feeds a `Bulk`, with `threads` loader threads.
    /// Returns its result and the bytes that became dead (see
    /// `DeadBytes`); `record_len(key_len, value_len)` sizes a record.
    pub fn load<R>(
        &mut self,
        threads: usize,
        record_len: fn(usize, u32) -> u64,
        body: impl FnOnce(&mut Bulk<'_>) -> Result<R>,
    ) -> Result<(R, DeadBytes)> {
        let per = SHARDS.div_ceil(threads.clamp(1, SHARDS));
        let hasher = &self.hasher;
        let shards = &mut self.shards;
        std::thread::scope(|scope| {
            let mut senders = Vec::new();
            let mut workers = Vec::new();
            for (i, range) in shards.chunks_mut(per).enumerate() {
                let (tx, rx) = sync_channel(4);
                let worker = std::thread::Builder::new()
                    .name("bitcask-load".into())
                    .spawn_scoped(scope, move || {
                        load_shards(range, i * per, hasher, rx, record_len)
                    })
                    .map_err(|e| {
                        Error::new(Status::Io, format!("starting a loader thread: {e}"))
                    })?;
                senders.push(tx);
                workers.push(worker);
            }
            let mut bulk = Bulk {
                hasher,
                pending: senders.iter().map(|_| Batch::default()).collect(),
                senders,
                shards_per_thread: per,
            };
            let result = body(&mut bulk);
            bulk.flush_all();
            drop(bulk);
            let mut dead = DeadBytes::new();
            for w in workers {
                let part = w
                    .join()
                    .map_err(|_| Error::internal("a keydir loader thread panicked"))?;
                for (file, bytes) in part {
                    *dead.entry(file).or_default() += bytes;
                }
            }
            Ok((result?, dead))
        })
    }
}

impl Bulk<'_> {
    /// Makes room for about `n` more keys, so loading a large hint file
    /// does not rehash each shard many times over.
    pub fn reserve(&mut self, n: u64) {
        self.flush_all();
        for tx in &self.senders {
            let _ = tx.send(Load::Reserve(n));
        }
    }

    /// Points `key` at `loc`, or removes it for None, in call order.
    pub fn apply(&mut self, key: &[u8], loc: Option<Location>) {
        let mut h = self.hasher.build_hasher();
        h.write(key);
        let hash = h.finish();
        let t = (hash >> (64 - SHARD_BITS)) as usize / self.shards_per_thread;
        let batch = &mut self.pending[t];
        batch.items.push((hash, batch.keys.len(), key.len(), loc));
        batch.keys.extend_from_slice(key);
        if batch.items.len() == BATCH {
            let full = std::mem::take(batch);
            // A send fails only if the thread died; its join reports that.
            let _ = self.senders[t].send(Load::Batch(full));
        }
    }

    fn flush_all(&mut self) {
        for (batch, tx) in self.pending.iter_mut().zip(&self.senders) {
            if !batch.items.is_empty() {
                let _ = tx.send(Load::Batch(std::mem::take(batch)));
            }
        }
    }
}

/// A loader thread: applies batches to the shards it owns, then shrinks
/// any shard `reserve` made too large for the keys that arrived (hint files
/// that repeat keys).
fn load_shards(
    shards: &mut [RwLock<Shard>],
    first: usize,
    hasher: &RandomState,
    rx: Receiver<Load>,
    record_len: fn(usize, u32) -> u64,
) -> DeadBytes {
    let mut dead = DeadBytes::new();
    for msg in rx {
        match msg {
            Load::Reserve(n) => {
                let per_shard = n as usize / SHARDS + n as usize / SHARDS / 16 + 8;
                for shard in shards.iter_mut() {
                    let shard = shard.get_mut();
                    let want = slots_for(shard.len + per_shard);
                    if want > shard.slots.len() {
                        shard.resize(want, hasher);
                    }
                }
            }
            Load::Batch(batch) => {
                for group in batch.items.chunks(PREFETCH) {
                    let mut touched = 0u64;
                    for &(hash, ..) in group {
                        let shard = shards[(hash >> (64 - SHARD_BITS)) as usize - first].get_mut();
                        if !shard.slots.is_empty() {
                            touched ^= shard.slots[hash as usize & shard.mask()];
                        }
                    }
                    std::hint::black_box(touched);
                    for &(hash, start, len, loc) in group {
                        let key = &batch.keys[start..start + len];
                        let shard = shards[(hash >> (64 - SHARD_BITS)) as usize - first].get_mut();
                        let old = match loc {
                            Some(loc) => shard.upsert(key, hash, loc, hasher),
                            None => shard.remove(key, hash, hasher),
                        };
                        if let Some(old) = old {
                            *dead.entry(old.file).or_default() += record_len(len, old.value_len);
                        }
                    }
                }
            }
        }
    }
    for shard in shards.iter_mut() {
        let shard = shard.get_mut();
        let fit = slots_for(shard.len + 1);
        if fit < shard.slots.len() {
            shard.resize(fit, hasher);
        }
    }
    dead
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
        // The shard header shares a cache line with its lock: write it only
        // when the count changes, so readers of the shard keep their copy.
        if (loc.expiry != 0) != (old.expiry != 0) {
            self.expiring = self.expiring + (loc.expiry != 0) as usize - (old.expiry != 0) as usize;
        }
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

    /// Points `key` at `loc` with one probe sequence: it ends at the key
    /// or at the empty slot where the key belongs. Returns the old location.
    fn upsert(
        &mut self,
        key: &[u8],
        hash: u64,
        loc: Location,
        hasher: &RandomState,
    ) -> Option<Location> {
        if slots_for(self.len + 1) > self.slots.len() {
            self.resize((self.slots.len() * 2).max(MIN_SLOTS), hasher);
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
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
        let pos = self.arena.push(key, loc);
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

    fn resize(&mut self, new_len: usize, hasher: &RandomState) {
        let old = std::mem::replace(&mut self.slots, vec![0; new_len]);
        for s in old.into_iter().filter(|&s| s != 0) {
            let home = self.home(s, hasher);
            self.place(s, home);
        }
    }

    /// Removes `key`; returns where it pointed.
    fn remove(&mut self, key: &[u8], hash: u64, hasher: &RandomState) -> Option<Location> {
        let (slot, pos) = self.find(key, hash)?;
        let old = self.arena.location(pos);
        self.remove_at(slot, pos, hasher);
        Some(old)
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
