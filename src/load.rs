//! Loading the keydir from hint files at open.
//!
//! Each loader thread owns a range of keydir shards and fills them one at a
//! time, from that shard's partition of every hint, oldest file first (with
//! more than eight files, eight at a time, to bound the descriptors: each
//! group fills all the loader's shards before the next one): no
//! locks, no hand-offs, and since a hint's entries are sorted by the
//! keydir's hash, each partition is a sequential sweep through the shard's
//! table. A key lives in one shard, so its records apply in the order they
//! were written.
//!
//! The loaders check the entries and CRC as they go; a hint found wrong
//! only at the end has already touched the keydir, so the caller scans
//! that file instead and loads again (once: a hint it built by scanning
//! that still cannot be read is an error).

use crate::error::{Error, Result, Status};
use crate::format::record_len;
use crate::hint::{Hint, RangeSeen, READ_WINDOW};
use crate::keydir::{Keydir, Location, NoRoom, ShardRange};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A data file (by in-memory handle) and the hint to load it from.
pub struct Source {
    pub fnum: u32,
    pub hint: Hint,
}

/// Bytes per data file handle that are dead from the start.
#[derive(Default)]
pub struct Loaded {
    /// Records replaced or deleted by newer ones.
    pub dead: HashMap<u32, u64>,
    /// Tombstones.
    pub tombstones: HashMap<u32, u64>,
}

/// Why `load` did not load the keydir.
pub enum Unloaded {
    /// The indexes of the sources whose hints turned out wrong.
    BadHints(Vec<usize>),
    /// No memory for the keydir (the bytes asked for). The caller drops
    /// the keydir before it says so: until then there may be no memory
    /// even for the message.
    NoRoom(usize),
}

/// Loads `sources` (oldest first) into `keydir` on `threads` threads, each
/// holding up to `group` hint files open at once (at most `GROUP`).
/// Returns what became dead.
pub fn load(
    keydir: &mut Keydir,
    sources: &[Source],
    threads: usize,
    group: usize,
) -> Result<std::result::Result<Loaded, Unloaded>> {
    let group = group.clamp(1, GROUP);
    // Entries carry their hash: the caller passes only hints under the
    // keydir's seed (it scans the others).
    debug_assert!(sources.iter().all(|s| s.hint.seed == keydir.seed()));
    let ranges = keydir.split(threads);
    // Set by the first loader without memory: the others stop too.
    let no_room = AtomicUsize::new(0);
    let results: Vec<(Loaded, Vec<RangeSeen>)> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for range in ranges {
            let no_room = &no_room;
            let h = std::thread::Builder::new()
                .name("bitcask-load".into())
                .spawn_scoped(scope, move || load_range(range, sources, group, no_room))
                .map_err(|e| Error::new(Status::Io, format!("starting a loader thread: {e}")))?;
            handles.push(h);
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| Error::internal("a keydir loader thread panicked"))?
            })
            .collect::<Result<Vec<_>>>()
    })?;
    match no_room.into_inner() {
        0 => {}
        n => return Ok(Err(Unloaded::NoRoom(n))),
    }
    let mut bad = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let seen: Vec<&RangeSeen> = results.iter().map(|(_, s)| &s[i]).collect();
        if !source.hint.check(&seen) {
            bad.push(i);
        }
    }
    if !bad.is_empty() {
        return Ok(Err(Unloaded::BadHints(bad)));
    }
    let mut all = Loaded::default();
    for (part, _) in results {
        for (f, n) in part.dead {
            *all.dead.entry(f).or_default() += n;
        }
        for (f, n) in part.tombstones {
            *all.tombstones.entry(f).or_default() += n;
        }
    }
    Ok(Ok(all))
}

/// Hint files a loader holds open at once, at most.
const GROUP: usize = 8;

/// One loader thread: its partitions of every source, oldest first.
/// Partition by partition, for a group of files at a time: a shard's table
/// stays in cache while the group's files fill it. (One sweep of the whole
/// range per file instead measured 15-30% slower at 10 M keys in 6 files:
/// every file streamed the tables through memory again.)
fn load_range(
    mut range: ShardRange<'_>,
    sources: &[Source],
    group_len: usize,
    no_room: &AtomicUsize,
) -> Result<(Loaded, Vec<RangeSeen>)> {
    let mut acc = Loaded::default();
    let mut seen: Vec<RangeSeen> = sources.iter().map(|_| RangeSeen::new()).collect();
    // The read buffer's whole size now: growing it later could find no
    // memory where the keydir took it all.
    let mut buf = Vec::new();
    if buf.try_reserve_exact(READ_WINDOW).is_err() {
        no_room.store(READ_WINDOW, Ordering::Relaxed);
        return Ok((acc, seen));
    }
    for (g, group) in sources.chunks(group_len).enumerate() {
        let files = group
            .iter()
            .map(|s| s.hint.open())
            .collect::<Result<Vec<_>>>()?;
        let will_need = |p: usize| {
            for (s, file) in group.iter().zip(&files) {
                if let Some(file) = file {
                    s.hint.will_need(file, p);
                }
            }
        };
        let seen = &mut seen[g * group_len..];
        let parts = range.partitions();
        will_need(parts.start);
        for p in parts.clone() {
            // The disk reads the next partition while this one loads.
            if p + 1 < parts.end {
                will_need(p + 1);
            }
            // Room for the group's entries at once, made just before
            // their use: growing a shard step by step would copy it each
            // time. Keys that repeat (overwrites) make this too much,
            // which the shrink after the group's pass gives back: beyond
            // its keys, the keydir holds one partition's room for a
            // group's entries at most, not the room for every record in
            // every hint (1000 keys written 2000 times took 52 MB).
            let n = group.iter().map(|s| s.hint.count(p));
            range.reserve(p, n.fold(0, usize::saturating_add));
            for ((s, seen), file) in group.iter().zip(seen.iter_mut()).zip(&files) {
                if no_room.load(Ordering::Relaxed) != 0 {
                    return Ok((acc, Vec::new()));
                }
                s.hint.read_part(p, file.as_ref(), &mut buf, seen, |e| {
                    if no_room.load(Ordering::Relaxed) != 0 {
                        return;
                    }
                    let old = if e.hdr.is_tombstone() {
                        *acc.tombstones.entry(s.fnum).or_default() += e.hdr.record_len();
                        range.remove(e.hash, e.key)
                    } else {
                        let loc = Location {
                            file: s.fnum,
                            offset: e.offset as u32,
                            value_len: e.hdr.value_len,
                            expiry: e.hdr.expiry,
                        };
                        match range.upsert(e.hash, e.key, loc) {
                            Ok(old) => old,
                            Err(NoRoom(n)) => {
                                no_room.store(n.max(1), Ordering::Relaxed);
                                return;
                            }
                        }
                    };
                    if let Some(old) = old {
                        *acc.dead.entry(old.file).or_default() +=
                            record_len(e.key.len(), old.value_len);
                    }
                });
            }
            range.shrink_partition(p);
        }
    }
    Ok((acc, seen))
}
