//! Merge: rewrite immutable data files keeping only the records still
//! needed, then retire the inputs.
//!
//! Ordering is what keeps merge correct. The numeric order of file ids is
//! the age order of the records inside, so outputs take the ids right
//! after the newest sealed file: every live record copied is the newest
//! record of its key (the keydir points at it), so all other records of
//! that key sit in older files, and everything written after the merge
//! began goes to newer files. Writers are not paused while records are
//! copied; each output's keydir entries are moved with compare-and-swap,
//! so a key overwritten during the merge keeps its newer location.
//!
//! Tombstones (and expired records, which shadow older values just the
//! same) are dropped only when every file older than theirs is also being
//! merged: then no older value of the key survives to come back. Otherwise
//! they are carried into the output (an expired record as a tombstone).
//! This is the fix for the deleted-keys-return bug of partial merges.
//!
//! Crash safety: outputs (and their hints) are written under `*.tmp` names
//! and renamed into place only once synced; the records that made input
//! records unneeded (newer values, tombstones) are synced too; inputs are
//! deleted oldest first after every output is in place, and the deletions
//! of older inputs reach the disk (a directory sync) before an input that
//! dropped tombstones or expired records goes. At any crash point the
//! directory holds the inputs, or the inputs and complete outputs (copies
//! of the same records, resolved by id order), or the outputs and the
//! newer inputs, whose tombstones still shadow older values.
//!
//! An expired record's key leaves the keydir only once the outputs are
//! durable: a merge that fails midway leaves it expired (so invisible) and
//! indexed, and the next merge treats it as expired again. Removed early,
//! the next merge would take it for an overwritten record and drop it
//! without a tombstone, letting an older value of the key come back.

use crate::datafile::{self, sync_dir, DataFile};
use crate::db::{expired, Inner};
use crate::error::{reserve, reserve_one, Error, Result, Status};
use crate::format::{self, FILE_HEADER_LEN, FLAG_TOMBSTONE, RECORD_HEADER_LEN};
use crate::hint::{self, HintWriter};
use crate::keydir::Location;
use crate::options::{MergePolicy, WRITE_BUFFER};
use crate::recovery::{self, FileReader, Probe};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A sealed file's bytes, as the merge policy sees them.
struct Usage {
    file: Arc<DataFile>,
    records: u64,
    /// Dead and expired record bytes, tombstones included.
    dead: u64,
    /// What any merge of the file reclaims for sure: `dead` without the
    /// tombstones (which stay while older values may survive elsewhere).
    /// The policy looks at this, so a file of carried tombstones is not
    /// merged over and over.
    reclaimable: u64,
}

impl Usage {
    fn of(file: Arc<DataFile>, expired: &HashMap<u32, (u64, u64)>) -> Usage {
        let records = file.record_bytes.load(Ordering::Relaxed);
        let dead = (file.dead_bytes.load(Ordering::Relaxed)
            + expired.get(&file.fnum).map_or(0, |e| e.1))
        .min(records);
        let tombstones = file.tombstone_bytes.load(Ordering::Relaxed);
        Usage {
            file,
            records,
            dead,
            reclaimable: dead.saturating_sub(tombstones),
        }
    }

    /// Whether the file fires a merge trigger.
    fn fires(&self, p: &MergePolicy) -> bool {
        self.beyond(p.frag_trigger, p.dead_bytes_trigger)
    }

    /// Whether a merge reclaims something of the file, and at least
    /// `frag` of its bytes or `dead_bytes`.
    fn beyond(&self, frag: f64, dead_bytes: u64) -> bool {
        self.reclaimable > 0 && (self.frag() >= frag || self.reclaimable >= dead_bytes)
    }

    fn frag(&self) -> f64 {
        if self.records == 0 {
            1.0
        } else {
            self.reclaimable as f64 / self.records as f64
        }
    }
}

/// A merge output being written.
struct Output {
    file: Arc<DataFile>,
    tmp: PathBuf,
    hint: HintWriter,
    /// Keydir moves to apply once the file is durable.
    moves: Vec<Move>,
}

/// An expired record left out of the outputs (or replaced by a
/// tombstone): its key leaves the keydir once the outputs are durable,
/// found by hash and location as `Move`s are.
struct Expired {
    hash: u32,
    from: (u32, u32),
}

/// A record copied to an output, to point the keydir at once the output
/// is durable: 20 bytes (its key need not be kept: see
/// `Keydir::relocate`), where the key itself would cost 60 and more.
struct Move {
    hash: u32,
    /// File and offset of the input's copy.
    from: (u32, u32),
    to_offset: u32,
    /// The record's length, dead in the input or in the output.
    len: u32,
}

/// The least an active file holds before a merge retires it to take it:
/// with a small-file threshold of 0, any active file a few records dead
/// would otherwise be retired and merged at every check (a review: 40
/// merges and 20 files for 7.6 KB).
const ACTIVE_MERGE_MIN: u64 = 1 << 20;

impl Inner {
    /// Full merge: seals the active file and rewrites every data file.
    pub(crate) fn merge(&self) -> Result<()> {
        self.check_writable()?;
        let _one_merge = self.merge_lock.lock();
        // Every file but a new active one goes in, so the active file is
        // retired now.
        self.retire_active(|a| a.len() > FILE_HEADER_LEN)?;
        let usage = self.usage(&self.expired_by_file());
        if usage.iter().all(|u| u.dead == 0) {
            return Ok(());
        }
        let inputs: Vec<_> = usage.iter().map(|u| u.file.clone()).collect();
        self.merge_files(&inputs, &inputs)
    }

    /// Retires the active file if `take` says so (the next write starts a
    /// new one), and seals it and the files the worker has not sealed yet,
    /// for a merge to take.
    fn retire_active(&self, take: impl FnOnce(&DataFile) -> bool) -> Result<()> {
        let unsealed = {
            let mut w = self.writer.lock();
            if let Some(a) = w.active.take_if(|a| take(a)) {
                if let Err(e) = a.flush() {
                    w.active = Some(a);
                    return Err(e);
                }
            }
            self.unsealed_retired(&w)
        };
        for f in &unsealed {
            self.seal_file(f)?;
        }
        Ok(())
    }

    /// Whether a merge trigger fires: some sealed file is fragmented or
    /// dead enough, or the active file is (see `ripe_active`).
    pub(crate) fn needs_merge(&self) -> bool {
        let p = &self.opts.merge;
        let expired = self.expired_by_file();
        self.usage(&expired).iter().any(|u| u.fires(p)) || self.ripe_active(&expired).is_some()
    }

    /// The active file, if it fires a trigger and is no small file (one
    /// that a merge would take only to combine it with others), nor under
    /// `ACTIVE_MERGE_MIN`: a merge retires it first. Only sealed files are merged, and a database that
    /// overwrites a few keys would otherwise fill its active file up to
    /// `max_file_size` with dead records before a merge could take any.
    fn ripe_active(&self, expired: &HashMap<u32, (u64, u64)>) -> Option<u32> {
        let active = self.writer.lock().active.clone()?;
        let p = &self.opts.merge;
        let u = Usage::of(active, expired);
        let big_enough = p.small_file_threshold.max(ACTIVE_MERGE_MIN);
        (u.records >= big_enough && u.fires(p)).then_some(u.file.fnum)
    }

    /// Merges the files the thresholds select (fragmented, dead, or small
    /// files). Returns whether anything was merged.
    pub(crate) fn merge_selected(&self) -> Result<bool> {
        self.check_writable()?;
        let _one_merge = self.merge_lock.lock();
        let expired = self.expired_by_file();
        if let Some(fnum) = self.ripe_active(&expired) {
            self.retire_active(|a| a.fnum == fnum)?;
        }
        let p = &self.opts.merge;
        let usage = self.usage(&expired);
        let worth = |u: &Usage| u.beyond(p.frag_threshold, p.dead_bytes_threshold);
        let small = |u: &Usage| u.records + FILE_HEADER_LEN < p.small_file_threshold;
        let n_worth = usage.iter().filter(|u| worth(u)).count();
        let n_small = usage.iter().filter(|u| small(u) && !worth(u)).count();
        // Small files alone are worth combining only when there are several.
        if n_worth == 0 && n_small < 2 {
            return Ok(false);
        }
        let inputs: Vec<_> = usage
            .iter()
            .filter(|u| worth(u) || small(u))
            .map(|u| u.file.clone())
            .collect();
        let sealed: Vec<_> = usage.iter().map(|u| u.file.clone()).collect();
        self.merge_files(&inputs, &sealed)?;
        Ok(true)
    }

    /// The sealed files, oldest first, with their reclaimable bytes.
    fn usage(&self, expired: &HashMap<u32, (u64, u64)>) -> Vec<Usage> {
        let mut usage: Vec<Usage> = self
            .files
            .read()
            .values()
            .filter(|f| f.is_sealed())
            .map(|f| Usage::of(f.clone(), expired))
            .collect();
        usage.sort_by_key(|u| u.file.id);
        usage
    }

    /// Merges `inputs` (a subset of `sealed`; both sorted by id), or the
    /// oldest of them whose live records the disk has room for.
    fn merge_files(&self, inputs: &[Arc<DataFile>], sealed: &[Arc<DataFile>]) -> Result<()> {
        let inputs = &inputs[..self.inputs_with_room(inputs)?];
        // An input may drop tombstones when every older file is an input:
        // every file of the table counts, also retired files the worker
        // has not sealed yet (the writer seals a newer one itself when the
        // worker lags, so sealed files need not be the oldest).
        let input_ids: HashSet<u64> = inputs.iter().map(|f| f.id).collect();
        let mut all: Vec<u64> = self.files.read().values().map(|f| f.id).collect();
        all.sort_unstable();
        let mut prefix = true;
        let mut may_drop = HashMap::new();
        for id in all {
            prefix &= input_ids.contains(&id);
            may_drop.insert(id, prefix);
        }
        // Above the newest sealed file, and above every id open saw (a
        // file repair set aside is in no table but keeps its name).
        let newest_sealed = sealed.last().map_or(0, |f| f.id);
        let newest = newest_sealed.max(self.newest_at_open);
        let mut next_id = newest + 1;
        let mut out: Option<Output> = None;
        let mut expired = Vec::new();
        // Per input: whether it dropped tombstones or expired records,
        // which shadowed older values of their keys, in older inputs.
        let mut shadowing = Vec::with_capacity(inputs.len());
        let result = (|| {
            for input in inputs {
                let may_drop = may_drop[&input.id];
                shadowing.push(self.copy_needed(
                    input,
                    may_drop,
                    &mut out,
                    &mut next_id,
                    &mut expired,
                )?);
            }
            // A file name is never used twice (docs/FORMAT.md): new ids
            // start above the newest sealed file, so a merge that deletes it
            // and writes nothing above it leaves an empty output instead
            // (above every id open saw: a torn creation it removed, newer
            // than the newest sealed file, is on disk no more).
            // Else a later file would take the name of a deleted one, and a
            // read-only handle, which opens files by name when it first
            // reads them, would read the wrong file.
            if next_id == newest + 1 && inputs.last().map(|f| f.id) == Some(newest_sealed) {
                out = Some(self.new_output(next_id)?);
            }
            if let Some(o) = out.take() {
                self.finish_output(o)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            if let Some(o) = out {
                let _ = datafile::remove_file(&o.tmp);
            }
            return Err(e);
        }
        // Records were left out because a newer record of their key (or a
        // newer tombstone) exists; it may still be in the write buffer or
        // not yet synced. Make it durable before the inputs go, or a crash
        // would bring back an older value, or lose the key.
        self.sync()?;
        // The expired keys leave the keydir, before their files leave the
        // table (a reader that misses a file looks in the keydir again).
        // (Their bytes are not counted as dead: the inputs go now.)
        for x in &expired {
            self.keydir.remove_located(x.hash, x.from);
        }
        // Retire the inputs: out of the file table first, then off the
        // disk, oldest first so surviving tombstones always shadow older
        // values; each hint before its data file.
        {
            let mut files = self.files.write();
            for f in inputs {
                files.remove(&f.fnum);
            }
        }
        let removed = (|| {
            for (i, (f, shadows)) in inputs.iter().zip(&shadowing).enumerate() {
                if i > 0 && *shadows {
                    // The older inputs' values this one shadowed must be
                    // gone from the disk before it is.
                    sync_dir(&self.dir)?;
                }
                datafile::remove_file(&hint::hint_path(&self.dir, f.id))?;
                datafile::remove_file(&f.path)?;
            }
            sync_dir(&self.dir)
        })();
        if let Err(e) = removed {
            // Inputs out of the table may remain on disk, where a later
            // merge of this handle, which looks only at the table, could
            // drop a tombstone that shadows them. Reopening sees them.
            return Err(self.fail(e));
        }
        self.merges.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// How many of `inputs`, oldest first, the free space of the disk can
    /// take a copy of: a merge writes its outputs before it deletes any
    /// input, and one that ran out of room part way would have spent the
    /// room left, on every attempt, for nothing. An input takes its live
    /// record bytes and a quarter more for its hint (16-byte keys, 100-byte
    /// values: a fifth), beside `MERGE_HEADROOM` for the writers. An
    /// error when not even the oldest input fits.
    fn inputs_with_room(&self, inputs: &[Arc<DataFile>]) -> Result<usize> {
        let Some(free) = datafile::free_bytes(&self.dir) else {
            return Ok(inputs.len());
        };
        let need = inputs.iter().map(|f| {
            let live = (f.record_bytes.load(Ordering::Relaxed))
                .saturating_sub(f.dead_bytes.load(Ordering::Relaxed));
            live + live / 4 + 2 * FILE_HEADER_LEN
        });
        let n = fitting_prefix(need, free.saturating_sub(MERGE_HEADROOM));
        if n == 0 && !inputs.is_empty() {
            return Err(Error::new(
                Status::Io,
                format!(
                    "{}: no room to merge: {free} bytes free, and the live records of its oldest \
                     input ({}) need more",
                    self.dir.display(),
                    inputs[0].path.display()
                ),
            ));
        }
        Ok(n)
    }

    /// Copies the records of `input` that must survive into the outputs,
    /// noting in `expired` the expired records it leaves out. Returns
    /// whether it dropped a tombstone or an expired record (`may_drop`).
    fn copy_needed(
        &self,
        input: &Arc<DataFile>,
        may_drop: bool,
        out: &mut Option<Output>,
        next_id: &mut u64,
        expired_out: &mut Vec<Expired>,
    ) -> Result<bool> {
        let mut r = FileReader::open(&input.path)?;
        if !recovery::check_header(&mut r)? {
            return Err(Error::corruption(format!(
                "{}: offset 0: no file header",
                input.path.display()
            )));
        }
        let now = self.now();
        let mut off = FILE_HEADER_LEN;
        let mut tombstone = Vec::new();
        let mut copied = 0u32;
        let mut dropped_shadow = false;
        loop {
            // Close waits for an auto-merge: not for a whole file. (Checked
            // at each file's first record, then every 2048.)
            if copied % 2048 == 0 && self.queue.stopping() {
                return Err(Error::new(
                    Status::Io,
                    "merge interrupted: the database is closing",
                ));
            }
            // Copying is CPU-bound and long: give a waiting writer the
            // core now and then, so its puts are not held up for a whole
            // scheduler time slice.
            copied = copied.wrapping_add(1);
            if copied % 2048 == 0 {
                std::thread::yield_now();
            }
            let hdr = match recovery::probe(&mut r, off)? {
                Probe::End => return Ok(dropped_shadow),
                Probe::Damaged(reason) => {
                    return Err(Error::corruption(format!(
                        "{}: offset {off}: {reason} (found by merge; nothing was deleted)",
                        input.path.display()
                    )))
                }
                Probe::Record(hdr) => hdr,
            };
            let len = hdr.record_len();
            let here = Location {
                file: input.fnum,
                offset: off as u32,
                value_len: hdr.value_len,
                expiry: hdr.expiry,
            };
            off += len;
            let rec = r.bytes(here.offset as u64, len as usize)?.expect("probed");
            let key = &rec[RECORD_HEADER_LEN..RECORD_HEADER_LEN + hdr.key_len as usize];
            // One hash per record, for the keydir and the output's hint
            // alike (both under the keydir's seed).
            let hash = self.keydir.seed().hash(key);
            let current = self.keydir.get_hashed(key, hash, |_, _| {});
            // An entry at this record that disagrees with it came from a
            // hint that lied under a valid CRC. Dropping the record as
            // overwritten would leave the entry pointing into a deleted
            // file, so refuse, as for damage.
            if let Some(c) = current.filter(|c| (c.file, c.offset) == (here.file, here.offset)) {
                if c != here || hdr.is_tombstone() {
                    return Err(Error::corruption(format!(
                        "{}: offset {}: the keydir's entry for this record (from its hint) \
                         disagrees with it (found by merge; nothing was deleted)",
                        input.path.display(),
                        here.offset
                    )));
                }
            }
            // What survives: the record itself, a tombstone standing in
            // for it, or nothing.
            let keep: &[u8] = if hdr.is_tombstone() {
                // Needed only while the key stays deleted and older values
                // may survive outside this merge.
                if current.is_some() || may_drop {
                    dropped_shadow |= current.is_none();
                    continue;
                }
                rec
            } else if current != Some(here) {
                continue; // overwritten or deleted
            } else if expired(here.expiry, now) {
                reserve_one(
                    expired_out,
                    format_args!("a merge's list of expired records"),
                )?;
                expired_out.push(Expired {
                    hash,
                    from: (here.file, here.offset),
                });
                if may_drop {
                    dropped_shadow = true;
                    continue;
                }
                tombstone.clear();
                let len = RECORD_HEADER_LEN + key.len();
                reserve(&mut tombstone, len, format_args!("a merge's tombstone"))?;
                format::encode_record(&mut tombstone, hdr.timestamp, 0, FLAG_TOMBSTONE, key, &[]);
                &tombstone
            } else {
                rec
            };
            let o = match out {
                Some(o) if o.file.len() + keep.len() as u64 <= self.opts.max_file_size => o,
                _ => {
                    if let Some(full) = out.take() {
                        self.finish_output(full)?;
                    }
                    *next_id += 1;
                    out.insert(self.new_output(*next_id - 1)?)
                }
            };
            reserve_one(
                &mut o.moves,
                format_args!("a merge's list of moved records"),
            )?;
            let copy = |buf: &mut Vec<u8>| buf.extend_from_slice(keep);
            let at = match o.file.append_within(keep.len(), WRITE_BUFFER, copy)? {
                Some(at) => at,
                None => {
                    o.file.flush()?;
                    // A record larger than the buffer goes to the file as
                    // it is: copied into a buffer of its size, it would be
                    // in memory twice (a 2 GiB value needed 4 GiB).
                    match keep.len() > WRITE_BUFFER {
                        true => o.file.append_direct(&[keep])?,
                        false => o.file.append(keep.len(), copy)?,
                    }
                }
            };
            let kept = format::RecordHeader::decode(keep);
            o.hint.add_hashed(at, &kept, key, hash)?;
            if kept.is_tombstone() {
                o.file.add_tombstone(kept.record_len());
            } else {
                o.moves.push(Move {
                    hash,
                    from: (here.file, here.offset),
                    to_offset: at as u32,
                    len: len as u32,
                });
            }
        }
    }

    fn new_output(&self, id: u64) -> Result<Output> {
        let path = self.dir.join(datafile::data_name(id));
        let tmp = path.with_extension("data.tmp");
        let file = DataFile::create(
            self.next_fnum(),
            id,
            // Merge syncs the directory after renaming the output.
            None,
            &tmp,
            path,
            self.open_fds(),
            self.opts.output_mapping(),
        )?;
        Ok(Output {
            file: Arc::new(file),
            tmp,
            hint: HintWriter::create(id, self.keydir.seed()).spill_into(&self.dir),
            moves: Vec::new(),
        })
    }

    /// Makes an output durable under its final name with its hint, then
    /// points the keydir at it for every key not overwritten meanwhile.
    fn finish_output(&self, o: Output) -> Result<()> {
        // The rename is made durable before any input is deleted. A
        // failure (a flush that found the disk full; a failed fsync also
        // fails the handle) leaves no output behind: one renamed into
        // place but outside the file table could hold values whose
        // tombstones a later merge of this handle drops. Where it cannot
        // be removed, the handle fails.
        let mut renamed = false;
        let placed = self.synced(o.file.seal()).and_then(|_| {
            fs::rename(&o.tmp, &o.file.path)
                .map_err(|e| Error::io("renaming merge output to", &o.file.path, e))?;
            renamed = true;
            self.synced(sync_dir(&self.dir))
        });
        if let Err(e) = placed {
            // (The removal's directory entry goes to the disk with the
            // next directory sync, before any later merge deletes a file.)
            let path = if renamed { &o.file.path } else { &o.tmp };
            return Err(match datafile::remove_file(path) {
                Err(left) if renamed => self.fail(Error::new(
                    left.status(),
                    format!("{}; then {}", e.message(), left.message()),
                )),
                _ => e,
            });
        }
        // The data file is in place; a missing hint only costs a scan,
        // but a failed fsync fails the handle, and the merge stops here.
        let _ = o
            .hint
            .finish_synced(o.file.len(), &self.dir, &|r| self.synced(r));
        if let Some(e) = self.failure() {
            return Err(e);
        }
        self.files.write().insert(o.file.fnum, o.file.clone());
        self.evict_fds(u32::MAX);
        // Each move leaves a dead record behind: the input's copy if the
        // move is made, the output's if a writer overwrote the key first.
        // (The inputs' counts matter if this merge fails later: they stay.)
        let mut input_dead: HashMap<u32, u64> = HashMap::new();
        let to_file = o.file.fnum;
        for m in &o.moves {
            if self.keydir.relocate(m.hash, m.from, (to_file, m.to_offset)) {
                *input_dead.entry(m.from.0).or_default() += m.len as u64;
            } else {
                o.file.dead_bytes.fetch_add(m.len as u64, Ordering::Relaxed);
            }
        }
        let files = self.files.read();
        for (fnum, bytes) in input_dead {
            if let Some(f) = files.get(&fnum) {
                f.dead_bytes.fetch_add(bytes, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// Free space a merge leaves to the writers (a preallocation step of the
/// active file, and its hint at the next seal).
const MERGE_HEADROOM: u64 = 64 << 10;

/// How many of the first `needs` fit in `room` together.
fn fitting_prefix(needs: impl Iterator<Item = u64>, room: u64) -> usize {
    needs
        .scan(0u64, |sum, n| {
            *sum = sum.checked_add(n)?;
            Some(*sum)
        })
        .take_while(|&sum| sum <= room)
        .count()
}

#[cfg(test)]
mod tests {
    use super::fitting_prefix;

    #[test]
    fn the_inputs_that_fit_are_a_prefix() {
        let fit = |needs: &[u64], room| fitting_prefix(needs.iter().copied(), room);
        assert_eq!(fit(&[10, 20, 30], 60), 3);
        assert_eq!(fit(&[10, 20, 30], 59), 2);
        assert_eq!(fit(&[10, 20, 30], 30), 2);
        assert_eq!(fit(&[10, 20, 30], 9), 0);
        // A later input that would fit alone does not jump the queue.
        assert_eq!(fit(&[10, 50, 1], 15), 1);
        assert_eq!(fit(&[u64::MAX, 1], u64::MAX), 1);
        assert_eq!(fit(&[], 0), 0);
    }
}
