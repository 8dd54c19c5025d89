//! `bc_iter`: iteration over a snapshot of the keys.

use super::db::{bc_db, found, hand_out, with_db};
use super::{bc_status, boundary_free, bytes, catch, out_arg, report};
use crate::error::Error;
use crate::format::MAX_KEY_LEN;
use crate::iter::Iter;

/// An iterator over the keys of a database. Opaque; made by bc_iter_new,
/// freed by bc_iter_free. It belongs to one thread at a time. Free it
/// before closing its database: after bc_close, bc_iter_next and
/// bc_iter_value fail with BC_INVALID_ARGUMENT (reading nothing, calling
/// no clock), and until bc_iter_free the iterator keeps the closed
/// handle's memory and open files.
pub struct bc_iter {
    iter: Iter,
}

/// Runs `body` on the iterator behind `it`.
fn with_iter(
    it: *mut bc_iter,
    body: impl FnOnce(&mut Iter) -> Result<bc_status, Error>,
) -> bc_status {
    // SAFETY: a non-NULL it comes from bc_iter_new, is not freed, and is
    // used by one thread at a time (documented).
    let Some(it) = (unsafe { it.as_mut() }) else {
        return boundary_free(|| Err(Error::invalid("it is NULL")));
    };
    // A bug poisons the iterator's database, as on the handle itself.
    let outcome = catch(|| body(&mut it.iter));
    report(outcome, |e| it.iter.poison(e.clone()))
}

/// Creates an iterator over the keys that start with `prefix` (all keys
/// for NULL/0), live at this moment, in bytewise order. The keys are copied
/// now (memory grows with their number and size); a key deleted or expired
/// later is skipped when reached; values are read when asked for, so they
/// are current. Puts, deletes and merges may run while it is open.
///
/// @param[in]  prefix bytes read during the call; NULL only with plen 0.
///             A prefix longer than 65535 bytes (the longest key) matches
///             nothing and is not read.
/// @param[out] out    receives the iterator, owned by the caller until
///             bc_iter_free; written only on BC_OK.
/// @return BC_OK; BC_INVALID_ARGUMENT (NULL db or out, NULL prefix with
///         plen > 0); BC_NO_MEMORY (no room for the copy of the keys: the
///         key bytes and 8 bytes a key).
/// Thread-safe with respect to db.
#[no_mangle]
pub extern "C" fn bc_iter_new(
    db: *mut bc_db,
    prefix: *const u8,
    plen: usize,
    out: *mut *mut bc_iter,
) -> bc_status {
    with_db(db, |db| {
        out_arg(out, "out")?;
        if prefix.is_null() && plen > 0 {
            return Err(Error::invalid(format!("prefix is NULL with plen {plen}")));
        }
        let iter = if plen > MAX_KEY_LEN as usize {
            // Longer than any key: nothing matches, and no slice is made
            // over more bytes than the caller could have meant.
            Iter::nothing(db.inner.clone())
        } else {
            // SAFETY: prefix points to plen readable bytes, or is NULL
            // with plen 0 (caller contract, checked above).
            db.iter(unsafe { bytes(prefix, plen, "prefix")? })?
        };
        let it = Box::into_raw(Box::new(bc_iter { iter }));
        // SAFETY: out is non-NULL and writable (caller contract).
        unsafe { *out = it };
        Ok(bc_status::BC_OK)
    })
}

/// Advances to the next key that is still live.
///
/// @param[out] key  receives a pointer to the key bytes, owned by the
///             iterator and valid until the next bc_iter_next or
///             bc_iter_free on it. Written only on BC_OK.
/// @param[out] klen receives the key length. Written only on BC_OK.
/// @return BC_OK; BC_NOT_FOUND at the end; BC_INVALID_ARGUMENT (NULL it,
///         key or klen, or its database was closed).
/// Not thread-safe: one thread per iterator.
#[no_mangle]
pub extern "C" fn bc_iter_next(
    it: *mut bc_iter,
    key: *mut *const u8,
    klen: *mut usize,
) -> bc_status {
    with_iter(it, |it| {
        out_arg(key, "key")?;
        out_arg(klen, "klen")?;
        let Some(k) = it.next_key()? else {
            return found(false);
        };
        // SAFETY: key and klen are non-NULL and writable (caller contract).
        unsafe {
            *key = k.as_ptr();
            *klen = k.len();
        }
        Ok(bc_status::BC_OK)
    })
}

/// Reads the current value of the key bc_iter_next last returned.
///
/// @param[out] val  receives a copy, released with bc_free(val, vlen).
/// @param[out] vlen receives its length. Both written only on BC_OK.
/// @return BC_OK; BC_NOT_FOUND (the key was deleted or expired since, or
///         the iterator is not on a key); BC_INVALID_ARGUMENT (NULL it,
///         val or vlen, or its database was closed); BC_CORRUPTION;
///         BC_IO; BC_NO_MEMORY (no room for the copy, or, where the data
///         file is read rather than mapped, for the record).
/// Not thread-safe: one thread per iterator.
#[no_mangle]
pub extern "C" fn bc_iter_value(
    it: *mut bc_iter,
    val: *mut *mut u8,
    vlen: *mut usize,
) -> bc_status {
    with_iter(it, |it| {
        out_arg(val, "val")?;
        out_arg(vlen, "vlen")?;
        hand_out(it.value()?.map(Vec::into_boxed_slice), val, vlen)
    })
}

/// Frees an iterator. NULL is a no-op.
///
/// @param[in] it the iterator; must not be used again. The key pointer its
///            last bc_iter_next returned becomes invalid. Values it handed
///            out (bc_iter_value) stay valid until bc_free.
/// Not thread-safe: call it on the thread that uses the iterator.
#[no_mangle]
pub extern "C" fn bc_iter_free(it: *mut bc_iter) {
    if !it.is_null() {
        // SAFETY: it came from Box::into_raw in bc_iter_new and is freed
        // once (caller contract).
        drop(unsafe { Box::from_raw(it) });
    }
}
