//! The background threads of a read-write handle. `bitcask-worker` syncs,
//! seals and writes the hint files of data files the writer moved away
//! from. `bitcask-sync` (in BC_SYNC_INTERVAL mode) flushes and syncs every
//! interval, and `bitcask-merge` (with auto-merge on) runs a merge when its
//! triggers fire: each on a thread of its own, so that neither a long
//! merge nor a slow seal holds up the interval sync (what a crash may
//! lose). Close stops them all cleanly: a merge in progress is abandoned
//! within a few thousand records (its outputs are removed or are complete
//! and valid).

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
    /// Wakes the worker (a seal queued, or stop).
    wake: Condvar,
    /// Wakes the merge and sync threads (stop).
    wake_timed: Condvar,
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
    threads: Vec<JoinHandle<()>>,
}

impl Worker {
    pub fn start(inner: Arc<Inner>) -> Result<Worker> {
        let mut worker = Worker {
            threads: Vec::new(),
        };
        let mut started = worker.spawn(&inner, "bitcask-worker", run);
        if started.is_ok() && matches!(inner.opts.sync, SyncMode::Interval(_)) {
            started = worker.spawn(&inner, "bitcask-sync", run_syncs);
        }
        if started.is_ok() && inner.opts.auto_merge.is_some() {
            started = worker.spawn(&inner, "bitcask-merge", run_merges);
        }
        if let Err(e) = started {
            worker.stop(&inner.queue);
            return Err(e);
        }
        Ok(worker)
    }

    fn spawn(&mut self, inner: &Arc<Inner>, name: &str, job: fn(&Inner)) -> Result<()> {
        let inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // A bug here must not leave files unsealed without anyone
                // knowing: the handle then refuses writes (BC_INTERNAL),
                // naming the thread and the panic.
                let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&inner)));
                if let Err(payload) = caught {
                    inner.fail(Error::internal(format!(
                        "background thread {} panicked: {}",
                        std::thread::current().name().unwrap_or("?"),
                        crate::error::panic_message(payload.as_ref())
                    )));
                }
            })
            .map_err(|e| Error::new(Status::Io, format!("starting a background thread: {e}")))?;
        self.threads.push(thread);
        Ok(())
    }

    pub fn stop(self, queue: &Queue) {
        queue.jobs.lock().stop = true;
        queue.wake.notify_all();
        queue.wake_timed.notify_all();
        for t in self.threads {
            let _ = t.join();
        }
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
    loop {
        let (seals, stop) = {
            let mut jobs = inner.queue.jobs.lock();
            // Queued seals are done even when stopping: every file is
            // synced, sealed and hinted before close returns.
            while !jobs.stop && jobs.seals.is_empty() {
                inner.queue.wake.wait(&mut jobs);
            }
            (std::mem::take(&mut jobs.seals), jobs.stop)
        };
        for file in seals {
            // A failed fsync fails the handle (see `Inner::synced`).
            let _ = inner.seal_file(&file);
        }
        if stop {
            return;
        }
    }
}

/// Waits `every` on the timed threads' condvar; false once stopping.
fn wait_or_stop(inner: &Inner, every: Duration) -> bool {
    let mut jobs = inner.queue.jobs.lock();
    let until = Instant::now() + every;
    while !jobs.stop && Instant::now() < until {
        inner.queue.wake_timed.wait_until(&mut jobs, until);
    }
    !jobs.stop
}

/// BC_SYNC_INTERVAL: flushes the write buffer and fsyncs every interval.
/// At its normal priority: it bounds what a crash may lose.
fn run_syncs(inner: &Inner) {
    let SyncMode::Interval(every) = inner.opts.sync else {
        return;
    };
    while wait_or_stop(inner, every) {
        if let Err(e) = inner.sync_interval() {
            // A failed fsync has failed the handle already. A failed write
            // (a full disk) does too: the puts since were acknowledged on
            // the promise of this flush, and later ones must not be.
            inner.fail(e);
        }
    }
}

/// Auto-merge: every interval, a merge of what the thresholds select if a
/// trigger fires.
fn run_merges(inner: &Inner) {
    lower_priority();
    let Some(every) = inner.opts.auto_merge else {
        return;
    };
    let every = every.max(Duration::from_millis(1));
    while wait_or_stop(inner, every) {
        if inner.needs_merge() {
            // A failure shows in the stats and at the next merge.
            let _ = inner.merge_selected();
        }
    }
}
