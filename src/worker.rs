//! The background thread of a read-write handle: syncs, seals and writes
//! the hint files of data files the writer moved away from, flushes and
//! syncs in BC_SYNC_INTERVAL mode, and runs auto-merge when its triggers
//! fire. Close stops it cleanly: a merge
//! in progress is abandoned at the next record (its outputs are removed or
//! are complete and valid).

use crate::datafile::DataFile;
use crate::db::Inner;
use crate::error::{Error, Result, Status};
use crate::options::SyncMode;
use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Default)]
pub(crate) struct Jobs {
    stop: bool,
    /// Files the writer moved away from, to sync, seal and hint.
    seals: Vec<Arc<DataFile>>,
}

/// Shared between the handle (which queues work) and the thread.
#[derive(Default)]
pub(crate) struct Queue {
    jobs: Mutex<Jobs>,
    wake: Condvar,
}

impl Queue {
    /// Asks for a retired data file to be synced, sealed and hinted.
    pub fn seal(&self, file: Arc<DataFile>) {
        self.jobs.lock().seals.push(file);
        self.wake.notify_one();
    }

    pub fn stopping(&self) -> bool {
        self.jobs.lock().stop
    }
}

pub(crate) struct Worker {
    thread: JoinHandle<()>,
}

impl Worker {
    pub fn start(inner: Arc<Inner>) -> Result<Worker> {
        let thread = std::thread::Builder::new()
            .name("bitcask-worker".into())
            .spawn(move || {
                // A bug here must not leave files unsealed without anyone
                // knowing: the handle then refuses writes (BC_INTERNAL).
                let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&inner)));
                if caught.is_err() {
                    inner.fail(Error::internal("the background thread panicked"));
                }
            })
            .map_err(|e| Error::new(Status::Io, format!("starting the background thread: {e}")))?;
        Ok(Worker { thread })
    }

    pub fn stop(self, queue: &Queue) {
        queue.jobs.lock().stop = true;
        queue.wake.notify_all();
        let _ = self.thread.join();
    }
}

/// Background work yields to the threads that call the library: a nice
/// value of 10 keeps hint writing and auto-merge from taking a core a
/// writer is waiting for (best effort; ignored where not permitted).
fn lower_priority() {
    // SAFETY: gettid and setpriority take plain integers and touch no
    // memory; they change only this thread's scheduling priority.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

fn run(inner: &Inner) {
    lower_priority();
    let sync_every = match inner.opts.sync {
        SyncMode::Interval(d) => Some(d),
        _ => None,
    };
    let merge_every = inner.opts.auto_merge;
    let mut next_sync = sync_every.map(|d| Instant::now() + d);
    let mut next_merge = merge_every.map(|d| Instant::now() + d);
    loop {
        let (seals, stop) = {
            let mut jobs = inner.queue.jobs.lock();
            loop {
                // Queued seals are done even when stopping: every file
                // is synced, sealed and hinted before close returns.
                if jobs.stop || !jobs.seals.is_empty() {
                    break (std::mem::take(&mut jobs.seals), jobs.stop);
                }
                let now = Instant::now();
                let due = [next_sync, next_merge].into_iter().flatten().min();
                match due {
                    Some(t) if t <= now => break (Vec::new(), false),
                    Some(t) => {
                        inner.queue.wake.wait_for(&mut jobs, t - now);
                    }
                    None => inner.queue.wake.wait(&mut jobs),
                }
            }
        };
        for file in seals {
            // A failed fsync fails the handle (see `Inner::synced`).
            let _ = inner.seal_file(&file);
        }
        if stop {
            return;
        }
        let now = Instant::now();
        if let (Some(t), Some(every)) = (next_sync, sync_every) {
            if t <= now {
                // A failure shows at the next write or sync.
                let _ = inner.sync();
                next_sync = Some(now + every);
            }
        }
        if let (Some(t), Some(every)) = (next_merge, merge_every) {
            if t <= now {
                if inner.needs_merge() {
                    let _ = inner.merge_selected();
                }
                next_merge = Some(Instant::now() + every.max(Duration::from_millis(1)));
            }
        }
    }
}
