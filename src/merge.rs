//! Merge: rewrite immutable data files keeping only the records the keydir
//! still points at, then retire the inputs.
//!
//! Ordering is what keeps merge correct. A data file's id orders its records
//! against every other file's, so outputs take the ids right after the
//! newest input: every live record copied is the newest record of its key
//! (the keydir points at it), and every file after the outputs was written
//! later. Writers are not paused while records are copied; each output's
//! keydir entries are moved with compare-and-swap, so a key overwritten
//! during the merge keeps its newer location.
//!
//! Crash safety: outputs are written under `*.tmp` names and renamed into
//! place only once synced, and inputs are deleted oldest first after every
//! output is in place. At any crash point the directory holds either the
//! inputs, or the inputs and complete outputs (duplicates of the same
//! records, resolved by id order), or the outputs and the newer part of the
//! inputs; tombstones in surviving inputs still shadow older values.

use crate::datafile::{self, sync_dir, DataFile};
use crate::db::{Inner, WRITE_BUFFER};
use crate::error::{Error, Result};
use crate::format::{FILE_HEADER_LEN, RECORD_HEADER_LEN};
use crate::keydir::Location;
use crate::recovery::{self, FileReader, Probe};
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A merge output being written.
struct Output {
    file: Arc<DataFile>,
    tmp: PathBuf,
    /// Keydir moves to apply once the file is durable: key, from, to.
    moves: Vec<(Vec<u8>, Location, Location)>,
}

impl Inner {
    /// Full merge: seals the active file and rewrites every data file.
    pub(crate) fn merge(&self) -> Result<()> {
        self.check_writable()?;
        let _one_merge = self.merge_lock.lock();
        {
            let mut w = self.writer.lock();
            if let Some(active) = w.active.take_if(|a| a.len() > FILE_HEADER_LEN) {
                self.synced(active.seal())?;
            }
        }
        let mut inputs: Vec<Arc<DataFile>> = self
            .files
            .read()
            .values()
            .filter(|f| f.is_sealed())
            .cloned()
            .collect();
        inputs.sort_by_key(|f| f.id);
        let reclaimable: u64 = inputs
            .iter()
            .map(|f| f.dead_bytes.load(Ordering::Relaxed))
            .sum();
        if reclaimable == 0 {
            return Ok(());
        }
        self.merge_files(&inputs)?;
        self.merges.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Merges `inputs` (sorted by id; every sealed file, so no older value
    /// of any key survives elsewhere and tombstones can all be dropped).
    fn merge_files(&self, inputs: &[Arc<DataFile>]) -> Result<()> {
        let mut next_id = inputs.last().map_or(0, |f| f.id) + 1;
        let mut out: Option<Output> = None;
        let result = (|| {
            for input in inputs {
                self.copy_live(input, &mut out, &mut next_id)?;
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
        // Retire the inputs: out of the file table first (a reader that
        // misses a file looks in the keydir again), then off the disk,
        // oldest first so surviving tombstones always shadow older values.
        {
            let mut files = self.files.write();
            for f in inputs {
                files.remove(&f.fnum);
            }
        }
        for f in inputs {
            datafile::remove_file(&f.path)?;
        }
        sync_dir(&self.dir)
    }

    fn copy_live(
        &self,
        input: &Arc<DataFile>,
        out: &mut Option<Output>,
        next_id: &mut u64,
    ) -> Result<()> {
        let mut r = FileReader::open(&input.path)?;
        recovery::check_header(&mut r)?;
        let now = self.now();
        let mut off = FILE_HEADER_LEN;
        loop {
            let hdr = match recovery::probe(&mut r, off)? {
                Probe::End => return Ok(()),
                Probe::Damaged(reason) => {
                    return Err(Error::corruption(format!(
                        "{}: offset {off}: {reason} (found by merge)",
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
            if hdr.is_tombstone() {
                continue;
            }
            let rec = r.bytes(here.offset as u64, len as usize)?.expect("probed");
            let key = &rec[RECORD_HEADER_LEN..RECORD_HEADER_LEN + hdr.key_len as usize];
            if self.keydir.get(key) != Some(here) {
                continue; // overwritten or deleted
            }
            if here.expiry != 0 && here.expiry <= now {
                self.keydir.replace_if(key, here, None);
                continue;
            }
            let o = match out {
                Some(o) if o.file.len() + len <= self.opts.max_file_size => o,
                _ => {
                    if let Some(full) = out.take() {
                        self.finish_output(full)?;
                    }
                    *next_id += 1;
                    out.insert(self.new_output(*next_id - 1)?)
                }
            };
            if o.file.pending_len() + len as usize > WRITE_BUFFER {
                o.file.flush()?;
            }
            let at = o.file.append(|buf| buf.extend_from_slice(rec));
            let to = Location {
                file: o.file.fnum,
                offset: at as u32,
                ..here
            };
            o.moves.push((key.to_vec(), here, to));
        }
    }

    fn new_output(&self, id: u64) -> Result<Output> {
        let path = self.dir.join(datafile::data_name(id));
        let tmp = path.with_extension("data.tmp");
        let file = DataFile::create(self.next_fnum(), id, &self.dir, &tmp, path)?;
        Ok(Output {
            file: Arc::new(file),
            tmp,
            moves: Vec::new(),
        })
    }

    /// Makes an output durable under its final name, then points the
    /// keydir at it for every key not overwritten meanwhile.
    fn finish_output(&self, o: Output) -> Result<()> {
        if let Err(e) = self.synced(o.file.seal()) {
            let _ = datafile::remove_file(&o.tmp);
            return Err(e);
        }
        fs::rename(&o.tmp, &o.file.path)
            .map_err(|e| Error::io("renaming merge output to", &o.file.path, e))?;
        sync_dir(&self.dir)?;
        self.files.write().insert(o.file.fnum, o.file.clone());
        for (key, from, to) in &o.moves {
            if !self.keydir.replace_if(key, *from, Some(*to)) {
                self.mark_dead(*to, key.len());
            }
        }
        Ok(())
    }
}
