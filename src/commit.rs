//! Group commit: the threads that each need their records on stable
//! storage (BC_SYNC_ALWAYS) share fsyncs.
//!
//! One caller at a time leads: it flushes the write buffer and fsyncs,
//! covering every record appended before its flush. The others wait and
//! are all woken when it finishes; those it covered return, and one of the
//! rest leads the next fsync.
//!
//! Left at that, the committers split into two groups that take turns:
//! the new leader starts its fsync a microsecond after the last one ended,
//! before the threads that one released have come back with their next
//! record, so each fsync carries about half of them. So a leader first
//! gathers: it waits until as many callers have joined as were committing
//! when the last fsync ended, or for half that fsync's duration at most.
//! A lone writer does not wait (it is the whole group); a writer that
//! stops costs the others one bounded wait, after which it is not counted.
//! Callers with nothing to wait for (a `bc_sync` with nothing pending) are
//! not counted at all.

use crate::error::{Error, Result};
// std's Condvar, not parking_lot's: its notify_all wakes every waiter at
// once, where parking_lot's wakes them one after another as each releases
// the mutex, and that chain of wake-ups is most of a gathering leader's
// wait (8-thread fillsync: 4.8x one thread against 4.2x, medians of 4).
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The longest a leader waits for the others, whatever fsync costs.
const MAX_GATHER: Duration = Duration::from_millis(1);

#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    /// A fsync ended: waiters check whether it covered them.
    synced: Condvar,
    /// A caller joined: the gathering leader counts it.
    joined: Condvar,
}

#[derive(Default)]
struct State {
    /// A leader is gathering, flushing or fsyncing.
    leading: bool,
    /// Callers that joined since the last flush began: their records may
    /// not be covered by any fsync yet.
    joined: usize,
    /// Counts flushes begun: a caller that joined in the current epoch is
    /// one of `joined`.
    epoch: u64,
    /// Counts leads ended: each sets `group` from `joined`.
    ends: u64,
    /// Callers committing when the last fsync ended (those it covered and
    /// those that joined during it): the group a leader gathers.
    group: usize,
    /// How long the last flush and fsync took.
    last_sync: Duration,
}

impl GroupCommit {
    /// Returns once `covered()` holds, leading a `sync` (flush and fsync)
    /// when no other caller is. `covered` says whether this caller's
    /// record is synced; `failure` is the handle's failure, returned
    /// instead of retrying an fsync that failed (see `Inner::sync`).
    pub fn commit(
        &self,
        covered: impl Fn() -> bool,
        failure: impl Fn() -> Option<Error>,
        sync: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let mut s = self.lock();
        // The failure first: an fsync of the same file by another thread
        // (the worker's seal) may have failed while the one that covered
        // this record succeeded, since Linux reports a writeback error to
        // one caller only.
        if let Some(e) = failure() {
            return Err(e);
        }
        // A caller with nothing to wait for is not a committer.
        if covered() {
            return Ok(());
        }
        s.joined += 1;
        let (epoch, ends) = (s.epoch, s.ends);
        // Wake a gathering leader only when the group is complete: on a
        // small machine each wake-up costs a context switch.
        if s.joined == s.group {
            self.joined.notify_one();
        }
        loop {
            let done = if let Some(e) = failure() {
                Err(e)
            } else if covered() {
                Ok(())
            } else if !s.leading {
                break;
            } else {
                s = self.synced.wait(s).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            // Covered by a flush that began before this caller joined (it
            // appended first): it is not one of the next group, nor of the
            // group that flush's end counted it in.
            if s.epoch == epoch {
                s.joined -= 1;
                if s.ends != ends {
                    s.group = s.group.saturating_sub(1);
                }
            }
            return done;
        }
        s.leading = true;
        s = self.gather(s);
        s.epoch += 1;
        let _lead = Lead {
            gc: self,
            covering: std::mem::take(&mut s.joined),
            start: Instant::now(),
        };
        drop(s);
        sync()?;
        // Another thread's fsync of the file may have failed meanwhile.
        failure().map_or(Ok(()), Err)
    }

    /// The state; a panic elsewhere (caught at the C boundary) leaves it
    /// consistent, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits, as the leader, until the group has joined or half the last
    /// sync's duration has passed.
    fn gather<'a>(&self, mut s: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let deadline = Instant::now() + (s.last_sync / 2).min(MAX_GATHER);
        while s.joined < s.group {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = self
                .joined
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        s
    }
}

/// A leader's flush and fsync in progress. Dropping it ends the lead and
/// wakes the waiters, also when `sync` panics: none waits for a leader
/// that is gone.
struct Lead<'a> {
    gc: &'a GroupCommit,
    /// The callers whose records the flush covers.
    covering: usize,
    start: Instant,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        let mut s = self.gc.lock();
        s.leading = false;
        s.last_sync = self.start.elapsed();
        s.group = self.covering + s.joined;
        s.ends += 1;
        self.gc.synced.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A stand-in for a data file: `appended` records, `synced` of them
    /// on stable storage; a sync takes `fsync` and covers every record
    /// appended before it began.
    #[derive(Default)]
    struct Log {
        appended: AtomicU64,
        synced: AtomicU64,
        syncs: AtomicUsize,
    }

    fn put(gc: &GroupCommit, log: &Log, fsync: Duration) -> Result<()> {
        let mine = log.appended.fetch_add(1, Ordering::SeqCst) + 1;
        gc.commit(
            || log.synced.load(Ordering::SeqCst) >= mine,
            || None,
            || {
                let upto = log.appended.load(Ordering::SeqCst);
                std::thread::sleep(fsync);
                log.syncs.fetch_add(1, Ordering::SeqCst);
                log.synced.fetch_max(upto, Ordering::SeqCst);
                Ok(())
            },
        )
    }

    /// The group a leader would gather next.
    fn group(gc: &GroupCommit) -> usize {
        gc.state.lock().unwrap().group
    }

    #[test]
    fn a_lone_writer_is_its_whole_group() {
        let (gc, log) = (GroupCommit::default(), Log::default());
        for _ in 0..5 {
            put(&gc, &log, Duration::ZERO).unwrap();
            // So its next put leads at once: it has joined the group.
            assert_eq!(group(&gc), 1);
        }
        assert_eq!(log.syncs.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn writers_gather_into_one_fsync() {
        let (gc, log) = (Arc::new(GroupCommit::default()), Arc::new(Log::default()));
        const THREADS: usize = 8;
        const PUTS: usize = 40;
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (gc, log) = (gc.clone(), log.clone());
                std::thread::spawn(move || {
                    for _ in 0..PUTS {
                        put(&gc, &log, Duration::from_millis(2)).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(log.synced.load(Ordering::SeqCst), (THREADS * PUTS) as u64);
        // Without gathering the writers split into groups taking turns:
        // 69-71 syncs in 3 runs; gathered, 41-43 (40 is the least).
        let syncs = log.syncs.load(Ordering::SeqCst);
        assert!(syncs <= 60, "{syncs} syncs for {} puts", THREADS * PUTS);

        // The others stopped: the group shrinks after one bounded wait.
        put(&gc, &log, Duration::from_millis(2)).unwrap();
        put(&gc, &log, Duration::from_millis(2)).unwrap();
        assert_eq!(group(&gc), 1);
    }

    /// The leader's fsync fails while the others wait: each gets the
    /// failure, and none leads an fsync of its own (a retried fsync may
    /// report success for pages the kernel dropped). Only the first sync
    /// fails here, so a waiter that retried would get Ok.
    #[test]
    fn a_failure_is_returned_to_every_waiter() {
        const THREADS: usize = 4;
        let gc = Arc::new(GroupCommit::default());
        let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let syncs = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(std::sync::Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (gc, failed, syncs, start) =
                    (gc.clone(), failed.clone(), syncs.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    gc.commit(
                        || false,
                        || {
                            failed
                                .load(Ordering::SeqCst)
                                .then(|| Error::internal("failed"))
                        },
                        || {
                            if syncs.fetch_add(1, Ordering::SeqCst) > 0 {
                                return Ok(()); // a retry would succeed
                            }
                            // The first leader fails while the others wait.
                            std::thread::sleep(Duration::from_millis(20));
                            failed.store(true, Ordering::SeqCst);
                            Err(Error::internal("fsync failed"))
                        },
                    )
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap().is_err());
        }
        assert_eq!(syncs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn callers_already_covered_do_not_count() {
        let (gc, log) = (GroupCommit::default(), Log::default());
        put(&gc, &log, Duration::ZERO).unwrap();
        for _ in 0..10 {
            // A bc_sync with nothing pending: covered at once.
            gc.commit(|| true, || None, || unreachable!()).unwrap();
        }
        assert_eq!(gc.lock().joined, 0);
        assert_eq!(group(&gc), 1);
    }

    #[test]
    fn a_leader_that_panics_hands_over() {
        let gc = GroupCommit::default();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            gc.commit(|| false, || None, || panic!("a bug in sync"))
        }));
        assert!(caught.is_err());
        // Without the lead ended, this would wait for it forever.
        let synced = AtomicUsize::new(0);
        let led = gc.commit(
            || synced.load(Ordering::SeqCst) > 0,
            || None,
            || {
                synced.store(1, Ordering::SeqCst);
                Ok(())
            },
        );
        assert!(led.is_ok());
        assert_eq!(synced.load(Ordering::SeqCst), 1);
    }
}
