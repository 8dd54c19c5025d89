// Package bitcask wraps libbitcask with cgo: a small wrapper to copy from.
//
// Build against a libbitcask you built with `cargo build --release`:
//
//	CGO_LDFLAGS="-L/path/to/target/release -Wl,-rpath,/path/to/target/release" go build
//
// What a Go wrapper must get right, and where this one does it:
//   - bc_last_error() is per OS thread, and a goroutine may move to another
//     thread between two cgo calls. So every fallible call goes through a C
//     shim below that copies the message in the same C call (`keep_error`),
//     or the message read could be another goroutine's, or "".
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
//   - A NUL byte ends a C string: a path holding one would open another
//     directory, so Open refuses it before calling C (`Open`).
//   - The shims' status is read into a variable before check reads msg: Go
//     does not order a call's evaluation against a plain variable's in one
//     expression, so check(C.go_x(..., &msg), msg) could pass msg as nil.
//   - A *DB is safe for many goroutines, except Close, which must not run
//     while another call on the same DB does (unlike database/sql, nothing
//     here waits for them: use a sync.RWMutex or a WaitGroup if your program
//     may close while others still use it). Free iterators before Close
//     (`Scan` frees its own).
package bitcask

/*
#cgo CFLAGS: -I${SRCDIR}/../../../include
#cgo LDFLAGS: -lbitcask
#include <stdlib.h>
#include <string.h>
#include "bitcask.h"

// On failure, a malloc'd copy of this thread's message in *msg, for Go to
// free (left NULL if there is no memory for it).
static int32_t keep_error(int32_t st, char **msg) {
    if (st != BC_OK && st != BC_NOT_FOUND) *msg = strdup(bc_last_error());
    return st;
}

static int32_t go_open(const char *path, bc_db **db, char **msg) {
    return keep_error(bc_open(path, NULL, db), msg);
}

static int32_t go_close(bc_db *db, char **msg) {
    return keep_error(bc_close(db), msg);
}

static int32_t go_put_ttl(bc_db *db, const uint8_t *k, size_t kl, const uint8_t *v,
                          size_t vl, uint32_t ttl, char **msg) {
    return keep_error(bc_put_ttl(db, k, kl, v, vl, ttl), msg);
}

static int32_t go_get(bc_db *db, const uint8_t *k, size_t kl, uint8_t **v, size_t *vl,
                      char **msg) {
    return keep_error(bc_get(db, k, kl, v, vl), msg);
}

static int32_t go_delete(bc_db *db, const uint8_t *k, size_t kl, char **msg) {
    return keep_error(bc_delete(db, k, kl), msg);
}

static int32_t go_count(bc_db *db, uint64_t *n, char **msg) {
    return keep_error(bc_count(db, n), msg);
}

static int32_t go_merge(bc_db *db, char **msg) {
    return keep_error(bc_merge(db), msg);
}

static int32_t go_stats(bc_db *db, bc_stats *s, char **msg) {
    s->struct_size = sizeof *s;
    return keep_error(bc_get_stats(db, s), msg);
}

static int32_t go_iter_new(bc_db *db, const uint8_t *p, size_t pl, bc_iter **it,
                           char **msg) {
    return keep_error(bc_iter_new(db, p, pl, it), msg);
}

static int32_t go_iter_next(bc_iter *it, const uint8_t **k, size_t *kl, char **msg) {
    return keep_error(bc_iter_next(it, k, kl), msg);
}

static int32_t go_iter_value(bc_iter *it, uint8_t **v, size_t *vl, char **msg) {
    return keep_error(bc_iter_value(it, v, vl), msg);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// Status codes, from bitcask.h: the values never change.
const (
	StatusOK              = int32(C.BC_OK)
	StatusNotFound        = int32(C.BC_NOT_FOUND)
	StatusInvalidArgument = int32(C.BC_INVALID_ARGUMENT)
	StatusIO              = int32(C.BC_IO)
	StatusCorruption      = int32(C.BC_CORRUPTION)
	StatusLocked          = int32(C.BC_LOCKED)
	StatusTooLarge        = int32(C.BC_TOO_LARGE)
	StatusBufferTooSmall  = int32(C.BC_BUFFER_TOO_SMALL)
	StatusReadOnly        = int32(C.BC_READ_ONLY)
	StatusInternal        = int32(C.BC_INTERNAL)
	StatusVersionMismatch = int32(C.BC_VERSION_MISMATCH)
	StatusNoMemory        = int32(C.BC_NO_MEMORY)
	StatusFailed          = int32(C.BC_FAILED) // the handle failed for good: close it, open again
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

// check turns a shim's status and message into an error, freeing the
// message.
func check(st C.int32_t, msg *C.char) error {
	switch int32(st) {
	case StatusOK:
		return nil
	case StatusNotFound:
		return ErrNotFound
	}
	e := &Error{Status: int32(st), Message: "(no memory for the message)"}
	if msg != nil {
		e.Message = C.GoString(msg)
		C.free(unsafe.Pointer(msg))
	}
	return e
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

// goBytes copies n bytes the library owns into a new Go slice, empty but
// not nil for n = 0. (Values are under 2 GiB: max_value_size.)
func goBytes(p *C.uint8_t, n C.size_t) []byte {
	out := make([]byte, int(n))
	copy(out, unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)))
	return out
}

// DB is one open database.
type DB struct{ db *C.bc_db }

// errClosed is what a Scan returns when its DB was closed during it.
func errClosed() error { return &Error{Status: StatusInvalidArgument, Message: "database closed"} }

// Open opens (creating if missing) the database in directory path. A path
// with a NUL byte is refused (StatusInvalidArgument): C would read it only
// up to the NUL, another directory.
func Open(path string) (*DB, error) {
	if strings.IndexByte(path, 0) >= 0 {
		return nil, &Error{Status: StatusInvalidArgument, Message: "path contains a NUL byte"}
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var msg *C.char
	var db *C.bc_db
	st := C.go_open(cpath, &db, &msg)
	if err := check(st, msg); err != nil {
		return nil, err
	}
	return &DB{db}, nil
}

// Close writes out buffered puts, syncs and closes. The DB is unusable after
// (calls then return StatusInvalidArgument). No other call on it may run
// during Close.
func (d *DB) Close() error {
	if d.db == nil {
		return nil
	}
	var msg *C.char
	st := C.go_close(d.db, &msg)
	d.db = nil // bc_close frees the handle even when it fails
	return check(st, msg)
}

// Put stores value under key.
func (d *DB) Put(key, value []byte) error { return d.PutTTL(key, value, 0) }

// PutTTL stores value under key for ttl seconds (0: no expiry).
func (d *DB) PutTTL(key, value []byte, ttl uint32) error {
	k, kl := bytesArg(key)
	v, vl := bytesArg(value)
	var msg *C.char
	st := C.go_put_ttl(d.db, k, kl, v, vl, C.uint32_t(ttl), &msg)
	return check(st, msg)
}

// Get returns a copy of key's value, or ErrNotFound.
func (d *DB) Get(key []byte) ([]byte, error) {
	k, kl := bytesArg(key)
	var msg *C.char
	var val *C.uint8_t
	var vlen C.size_t
	st := C.go_get(d.db, k, kl, &val, &vlen, &msg)
	if err := check(st, msg); err != nil {
		return nil, err
	}
	defer C.bc_free(val, vlen)
	return goBytes(val, vlen), nil
}

// Delete removes key; it reports whether the key was there.
func (d *DB) Delete(key []byte) (bool, error) {
	k, kl := bytesArg(key)
	var msg *C.char
	st := C.go_delete(d.db, k, kl, &msg)
	err := check(st, msg)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Count returns the number of live keys.
func (d *DB) Count() (uint64, error) {
	var msg *C.char
	var c C.uint64_t
	st := C.go_count(d.db, &c, &msg)
	if err := check(st, msg); err != nil {
		return 0, err
	}
	return uint64(c), nil
}

// Merge rewrites the data files without dead records.
func (d *DB) Merge() error {
	var msg *C.char
	st := C.go_merge(d.db, &msg)
	return check(st, msg)
}

// Stats is a few of bc_stats's fields.
type Stats struct {
	LiveKeys, DataFiles, LiveBytes, DeadBytes uint64
	Fragmentation                             float64
}

// Stats reads the database's statistics.
func (d *DB) Stats() (Stats, error) {
	var msg *C.char
	var s C.bc_stats
	st := C.go_stats(d.db, &s, &msg)
	if err := check(st, msg); err != nil {
		return Stats{}, err
	}
	return Stats{uint64(s.live_keys), uint64(s.data_files), uint64(s.live_bytes),
		uint64(s.dead_bytes), float64(s.fragmentation)}, nil
}

// Scan calls fn with each key starting with prefix and its value, in bytewise
// key order, until fn returns false. The keys are those live when Scan
// starts; one deleted or expired before fn reaches it is skipped, and values
// are read as fn reaches them. Both slices are copies fn may keep. fn may
// use the DB, but not Close it (if it does, Scan stops with a "database
// closed" error instead of using the iterator again).
func (d *DB) Scan(prefix []byte, fn func(key, value []byte) bool) error {
	p, pl := bytesArg(prefix)
	var msg *C.char
	var it *C.bc_iter
	st := C.go_iter_new(d.db, p, pl, &it, &msg)
	if err := check(st, msg); err != nil {
		return err
	}
	defer C.bc_iter_free(it)
	for {
		var key *C.uint8_t
		var klen C.size_t
		if d.db == nil { // closed (by fn): the iterator must not go on
			return errClosed()
		}
		st = C.go_iter_next(it, &key, &klen, &msg)
		err := check(st, msg)
		if errors.Is(err, ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		k := goBytes(key, klen) // the library's copy is valid until the next call
		var val *C.uint8_t
		var vlen C.size_t
		st = C.go_iter_value(it, &val, &vlen, &msg)
		err = check(st, msg)
		if errors.Is(err, ErrNotFound) {
			continue // deleted or expired since bc_iter_next
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
