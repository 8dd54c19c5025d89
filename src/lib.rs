//! bitcask: a Bitcask storage engine (the log-structured hash table of
//! Riak) with a C ABI.
//!
//! The engine (`Db`) is safe Rust and knows nothing of C; `ffi` is the one
//! thin layer that exports it as the `bc_*` functions of `bitcask.h`.
//!
//! Layout of the engine, in the paper's vocabulary:
//! - `format`: records, file headers, CRCs: the bytes on disk.
//! - `datafile`: one data file: appends, positional reads, sealing.
//! - `keydir`: the in-memory map from key to newest record.
//! - `hint`: hint files, the keydir's entries of one data file.
//! - `load`: filling the keydir from hint files at open.
//! - `recovery`: scanning data files (at open when a hint is missing, and for
//!   merge and repair).
//! - `merge`: rewriting data files without dead records.
//! - `commit`: group commit, BC_SYNC_ALWAYS writers sharing fsyncs.
//! - `db`: the handle tying them together; `lock`: the directory lock;
//!   `worker`: the background thread (sync, hints, auto-merge).

mod commit;
mod crc;
mod datafile;
mod db;
mod error;
mod format;
mod hint;
mod iter;
mod keydir;
mod load;
mod lock;
mod merge;
mod mmap;
mod options;
mod prefetch;
mod recovery;
mod worker;

pub mod ffi;

pub use db::{Db, Stats};
pub use error::{Error, Result, Status};
pub use iter::Iter;
pub use options::{system_clock, Clock, MergePolicy, Options, SyncMode};
