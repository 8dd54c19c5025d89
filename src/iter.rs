//! Iteration over a snapshot of the keys.
//!
//! An iterator copies the matching keys when it is created (sorted
//! bytewise), so it sees the keys that were live then; a key deleted or
//! expired since is skipped when reached, and its value is read when asked
//! for, so it is current. Writes and merges run freely meanwhile. Once its
//! database is closed, it fails.
//!
//! The copies sit end to end in one buffer, with a table of where each
//! starts and how long it is, which is what gets sorted: a key costs its
//! bytes and 8 more (a boxed copy each cost about 48 for a 16-byte key),
//! in two allocations that may fail (`NoMemory`) rather than abort the
//! process, as a snapshot of every key of a large keydir on a small
//! device could.

use crate::db::{expired, Inner};
use crate::error::{Error, Result, Status};
use std::collections::TryReserveError;
use std::sync::Arc;

/// The copied keys.
#[derive(Default)]
struct Keys {
    bytes: Vec<u8>,
    /// Per key, `start << 16 | len` in `bytes` (keys are at most 65535
    /// bytes).
    refs: Vec<u64>,
}

fn key_at(bytes: &[u8], r: u64) -> &[u8] {
    let start = (r >> 16) as usize;
    &bytes[start..start + (r & 0xffff) as usize]
}

impl Keys {
    fn get(&self, i: usize) -> &[u8] {
        key_at(&self.bytes, self.refs[i])
    }

    fn len(&self) -> usize {
        self.refs.len()
    }

    fn push(&mut self, key: &[u8]) -> std::result::Result<(), TryReserveError> {
        self.bytes.try_reserve(key.len())?;
        self.refs.try_reserve(1)?;
        self.refs
            .push((self.bytes.len() as u64) << 16 | key.len() as u64);
        self.bytes.extend_from_slice(key);
        Ok(())
    }

    /// Sorts the keys bytewise (their table, not their bytes).
    fn sort(&mut self) {
        let bytes = &self.bytes;
        self.refs
            .sort_unstable_by(|&a, &b| key_at(bytes, a).cmp(key_at(bytes, b)));
    }
}

pub struct Iter {
    inner: Arc<Inner>,
    keys: Keys,
    /// Index of the next key to consider.
    next: usize,
    /// Index of the key last returned by `next_key`.
    current: Option<usize>,
}

impl Iter {
    /// Refuses writes on the iterator's database (a bug was caught).
    pub(crate) fn poison(&self, err: crate::error::Error) {
        self.inner.fail(err);
    }

    /// An iterator that yields no key (a prefix longer than any key).
    pub(crate) fn nothing(inner: Arc<Inner>) -> Iter {
        Iter {
            inner,
            keys: Keys::default(),
            next: 0,
            current: None,
        }
    }

    /// Fails with `NoMemory` when the keys cannot be copied.
    pub(crate) fn new(inner: Arc<Inner>, prefix: &[u8]) -> Result<Iter> {
        let now = inner.now();
        let mut keys = Keys::default();
        let mut short = false;
        inner.keydir.for_each_prefix(prefix, |k, loc| {
            if !short && !expired(loc.expiry, now) {
                short = keys.push(k).is_err();
            }
        });
        if short {
            let (n, held) = (keys.len(), keys.bytes.len());
            return Err(Error::new(
                Status::NoMemory,
                format!(
                    "no memory for an iterator's copy of the keys ({n} keys, {held} bytes copied)"
                ),
            ));
        }
        keys.sort();
        Ok(Iter {
            inner,
            keys,
            next: 0,
            current: None,
        })
    }

    /// The next key that is still live, or None at the end; an error
    /// once the database is closed.
    pub fn next_key(&mut self) -> Result<Option<&[u8]>> {
        self.inner.check_open()?;
        while self.next < self.keys.len() {
            let i = self.next;
            self.next += 1;
            if self.inner.live_location(self.keys.get(i)).is_some() {
                self.current = Some(i);
                return Ok(Some(self.keys.get(i)));
            }
        }
        self.current = None;
        Ok(None)
    }

    /// The key last returned by `next_key`.
    pub fn key(&self) -> Option<&[u8]> {
        self.current.map(|i| self.keys.get(i))
    }

    /// Runs `f` on the current value of the current key; None if there is
    /// no current key or it was deleted since.
    pub fn with_value<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        self.open_key()?
            .map_or(Ok(None), |k| self.inner.with_value(k, f))
    }

    /// The current value of the current key, as `Db::get` hands it out;
    /// None if there is no current key or it was deleted since.
    pub fn value(&self) -> Result<Option<Vec<u8>>> {
        self.open_key()?.map_or(Ok(None), |k| self.inner.value(k))
    }

    /// The current key, unless the iterator's database was closed.
    fn open_key(&self) -> Result<Option<&[u8]>> {
        self.inner.check_open()?;
        Ok(self.key())
    }

    /// Keys in the snapshot (some may have been deleted since).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.len() == 0
    }
}
