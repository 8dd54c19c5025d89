//! Iteration over a snapshot of the keys.
//!
//! An iterator copies the matching keys when it is created (sorted
//! bytewise), so it sees the keys that were live then; a key deleted or
//! expired since is skipped when reached, and its value is read when asked
//! for, so it is current. Writes and merges run freely meanwhile.

use crate::db::{expired, Inner};
use crate::error::Result;
use std::sync::Arc;

pub struct Iter {
    inner: Arc<Inner>,
    keys: Vec<Box<[u8]>>,
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
            keys: Vec::new(),
            next: 0,
            current: None,
        }
    }

    pub(crate) fn new(inner: Arc<Inner>, prefix: &[u8]) -> Iter {
        let now = inner.now();
        let mut keys = Vec::new();
        inner.keydir.for_each_prefix(prefix, |k, loc| {
            if !expired(loc.expiry, now) {
                keys.push(Box::<[u8]>::from(k));
            }
        });
        keys.sort_unstable();
        Iter {
            inner,
            keys,
            next: 0,
            current: None,
        }
    }

    /// The next key that is still live, or None at the end.
    pub fn next_key(&mut self) -> Option<&[u8]> {
        while self.next < self.keys.len() {
            let i = self.next;
            self.next += 1;
            if self.inner.live_location(&self.keys[i]).is_some() {
                self.current = Some(i);
                return Some(&self.keys[i]);
            }
        }
        self.current = None;
        None
    }

    /// The key last returned by `next_key`.
    pub fn key(&self) -> Option<&[u8]> {
        self.current.map(|i| &*self.keys[i])
    }

    /// Runs `f` on the current value of the current key; None if there is
    /// no current key or it was deleted since.
    pub fn with_value<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        match self.key() {
            Some(k) => self.inner.with_value(k, f),
            None => Ok(None),
        }
    }

    /// Keys in the snapshot (some may have been deleted since).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
