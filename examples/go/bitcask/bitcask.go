// Package bitcask wraps libbitcask with cgo: a small wrapper to copy from.
//
// Build against a libbitcask you built with `cargo build --release`:
//
//	CGO_LDFLAGS="-L/path/to/target/release -Wl,-rpath,/path/to/target/release" go build
//
// What a Go wrapper must get right, and where this one does it:
//   - bc_last_error() is per OS thread, and a goroutine may move to another
//     thread between two cgo calls. So every fallible call goes through a C
//     shim below that copies the message in the same C call (`check`), or the
//     message read could be another goroutine's, or "".
//   - Go memory passed to C must hold no Go pointers and must not be kept by C
//     after the call: keys and values are []byte, which the library reads
//     during the call only (`bytesArg`).
//   - A value from bc_get is the library's memory: copy it into a Go slice,
//     then give it back with bc_free(val, vlen), never with C.free (`Get`).
//   - A key pointer from bc_iter_next is valid only until the next call on the
//     iterator: copy it before moving on (`Scan`). An iterator is used by one
//     goroutine at a time; moving between threads is fine.
//   - bc_stats starts with struct_size: set it to the size of the struct
//     compiled here, and the library fills only that much (`Stats`).
//   - A *DB is safe for many goroutines, but Close must not run while another
//     call on it does; free iterators before Close (`Scan` frees its own).
package bitcask

/*
#cgo CFLAGS: -I${SRCDIR}/../../../include
#cgo LDFLAGS: -lbitcask
#include <stdio.h>
#include <stdlib.h>
#include "bitcask.h"

// Copies this thread's message for a failed call into msg (cap bytes).
static int32_t keep_error(int32_t st, char *msg, size_t cap) {
    if (st != BC_OK && st != BC_NOT_FOUND) {
        snprintf(msg, cap, "%s", bc_last_error());
    }
    return st;
}

static int32_t go_open(const char *path, bc_db **db, char *msg, size_t cap) {
    return keep_error(bc_open(path, NULL, db), msg, cap);
}

static int32_t go_close(bc_db *db, char *msg, size_t cap) {
    return keep_error(bc_close(db), msg, cap);
}

static int32_t go_put_ttl(bc_db *db, const uint8_t *k, size_t kl, const uint8_t *v,
                          size_t vl, uint32_t ttl, char *msg, size_t cap) {
    return keep_error(bc_put_ttl(db, k, kl, v, vl, ttl), msg, cap);
}

static int32_t go_get(bc_db *db, const uint8_t *k, size_t kl, uint8_t **v, size_t *vl,
                      char *msg, size_t cap) {
    return keep_error(bc_get(db, k, kl, v, vl), msg, cap);
}

static int32_t go_delete(bc_db *db, const uint8_t *k, size_t kl, char *msg, size_t cap) {
    return keep_error(bc_delete(db, k, kl), msg, cap);
}

static int32_t go_count(bc_db *db, uint64_t *n, char *msg, size_t cap) {
    return keep_error(bc_count(db, n), msg, cap);
}

static int32_t go_merge(bc_db *db, char *msg, size_t cap) {
    return keep_error(bc_merge(db), msg, cap);
}

static int32_t go_stats(bc_db *db, bc_stats *s, char *msg, size_t cap) {
    s->struct_size = sizeof *s;
    return keep_error(bc_get_stats(db, s), msg, cap);
}

static int32_t go_iter_new(bc_db *db, const uint8_t *p, size_t pl, bc_iter **it,
                           char *msg, size_t cap) {
    return keep_error(bc_iter_new(db, p, pl, it), msg, cap);
}

static int32_t go_iter_next(bc_iter *it, const uint8_t **k, size_t *kl, char *msg,
                            size_t cap) {
    return keep_error(bc_iter_next(it, k, kl), msg, cap);
}

static int32_t go_iter_value(bc_iter *it, uint8_t **v, size_t *vl, char *msg, size_t cap) {
    return keep_error(bc_iter_value(it, v, vl), msg, cap);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// Status codes, from bitcask.h (the values never change).
const (
	StatusOK              = int32(C.BC_OK)
	StatusNotFound        = int32(C.BC_NOT_FOUND)
	StatusInvalidArgument = int32(C.BC_INVALID_ARGUMENT)
	StatusTooLarge        = int32(C.BC_TOO_LARGE)
)

// ErrNotFound: the key is absent or expired (Get; errors.Is works).
var ErrNotFound = errors.New("bitcask: not found")

// Error is a failed call: its bc_status and bc_last_error()'s message.
type Error struct {
	Status  int32
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("bitcask: %s (status %d): %s",
		C.GoString(C.bc_status_str(C.int32_t(e.Status))), e.Status, e.Message)
}

// msgBuf receives a failed call's message from the C shims. A fresh one per
// call keeps concurrent calls apart.
type msgBuf [512]C.char

func (m *msgBuf) ptr() (*C.char, C.size_t) { return &m[0], C.size_t(len(m)) }

func check(st C.int32_t, m *msgBuf) error {
	switch int32(st) {
	case StatusOK:
		return nil
	case StatusNotFound:
		return ErrNotFound
	}
	return &Error{Status: int32(st), Message: C.GoString(&m[0])}
}

// A byte for empty slices to point at: an empty key is then reported as
// "key is empty" rather than "key is NULL".
var zero byte

// bytesArg passes a []byte to C for the duration of one call.
func bytesArg(b []byte) (*C.uint8_t, C.size_t) {
	if len(b) == 0 {
		return (*C.uint8_t)(unsafe.Pointer(&zero)), 0
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0])), C.size_t(len(b))
}

// goBytes copies n bytes the library owns into a Go slice (C.GoBytes
// takes an int32 length; values may be longer).
func goBytes(p *C.uint8_t, n C.size_t) []byte {
	out := make([]byte, int(n))
	if n > 0 {
		copy(out, unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)))
	}
	return out
}

// DB is one open database.
type DB struct{ db *C.bc_db }

// Open opens (creating if missing) the database in directory path.
func Open(path string) (*DB, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var m msgBuf
	msg, n := m.ptr()
	var db *C.bc_db
	if err := check(C.go_open(cpath, &db, msg, n), &m); err != nil {
		return nil, err
	}
	return &DB{db}, nil
}

// Close writes out buffered puts, syncs and closes. The DB is unusable after.
func (d *DB) Close() error {
	if d.db == nil {
		return nil
	}
	var m msgBuf
	msg, n := m.ptr()
	err := check(C.go_close(d.db, msg, n), &m)
	d.db = nil // bc_close frees the handle even when it fails
	return err
}

// Put stores value under key.
func (d *DB) Put(key, value []byte) error { return d.PutTTL(key, value, 0) }

// PutTTL stores value under key for ttl seconds (0: no expiry).
func (d *DB) PutTTL(key, value []byte, ttl uint32) error {
	k, kl := bytesArg(key)
	v, vl := bytesArg(value)
	var m msgBuf
	msg, n := m.ptr()
	return check(C.go_put_ttl(d.db, k, kl, v, vl, C.uint32_t(ttl), msg, n), &m)
}

// Get returns a copy of key's value, or ErrNotFound.
func (d *DB) Get(key []byte) ([]byte, error) {
	k, kl := bytesArg(key)
	var m msgBuf
	msg, n := m.ptr()
	var val *C.uint8_t
	var vlen C.size_t
	if err := check(C.go_get(d.db, k, kl, &val, &vlen, msg, n), &m); err != nil {
		return nil, err
	}
	defer C.bc_free(val, vlen)
	return goBytes(val, vlen), nil
}

// Delete removes key; it reports whether the key was there.
func (d *DB) Delete(key []byte) (bool, error) {
	k, kl := bytesArg(key)
	var m msgBuf
	msg, n := m.ptr()
	err := check(C.go_delete(d.db, k, kl, msg, n), &m)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Count returns the number of live keys.
func (d *DB) Count() (uint64, error) {
	var m msgBuf
	msg, n := m.ptr()
	var c C.uint64_t
	if err := check(C.go_count(d.db, &c, msg, n), &m); err != nil {
		return 0, err
	}
	return uint64(c), nil
}

// Merge rewrites the data files without dead records.
func (d *DB) Merge() error {
	var m msgBuf
	msg, n := m.ptr()
	return check(C.go_merge(d.db, msg, n), &m)
}

// Stats is a few of bc_stats's fields.
type Stats struct {
	LiveKeys, DataFiles, LiveBytes, DeadBytes uint64
	Fragmentation                             float64
}

// Stats reads the database's statistics.
func (d *DB) Stats() (Stats, error) {
	var m msgBuf
	msg, n := m.ptr()
	var s C.bc_stats
	if err := check(C.go_stats(d.db, &s, msg, n), &m); err != nil {
		return Stats{}, err
	}
	return Stats{uint64(s.live_keys), uint64(s.data_files), uint64(s.live_bytes),
		uint64(s.dead_bytes), float64(s.fragmentation)}, nil
}

// Scan calls fn with each live key starting with prefix and its value, in
// bytewise key order, until fn returns false. Both slices are copies fn may
// keep.
func (d *DB) Scan(prefix []byte, fn func(key, value []byte) bool) error {
	p, pl := bytesArg(prefix)
	var m msgBuf
	msg, n := m.ptr()
	var it *C.bc_iter
	if err := check(C.go_iter_new(d.db, p, pl, &it, msg, n), &m); err != nil {
		return err
	}
	defer C.bc_iter_free(it)
	for {
		var key *C.uint8_t
		var klen C.size_t
		err := check(C.go_iter_next(it, &key, &klen, msg, n), &m)
		if errors.Is(err, ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		k := goBytes(key, klen) // valid until the next call
		var val *C.uint8_t
		var vlen C.size_t
		err = check(C.go_iter_value(it, &val, &vlen, msg, n), &m)
		if errors.Is(err, ErrNotFound) {
			continue // deleted or expired since the iterator was made
		} else if err != nil {
			return err
		}
		v := goBytes(val, vlen)
		C.bc_free(val, vlen)
		if !fn(k, v) {
			return nil
		}
	}
}
