"""bitcask from Python through ctypes: a small wrapper to copy from.

    python3 examples/python/bitcask.py [path/to/libbitcask.so] [db-dir]

runs a demonstration that checks what it does (exit status 1 on a wrong
result): by default on this checkout's target/release/libbitcask.so (built
by `cargo build --release`) and in a temporary directory it removes. As a module: `db = Bitcask.open("dir", lib="path/to/libbitcask.so")`.

What a wrapper must get right, and where this one does it:
- every function gets its argtypes and restype (`_declare`): ctypes
  otherwise passes and returns C ints, which truncates pointers and size_t;
- a value from bc_get is the library's memory: copy it into Python bytes,
  then give it back with bc_free(val, vlen), never with free() (`get`);
- bc_last_error() is per thread: read it right after the failed call, on
  the same thread (`_check`);
- bc_stats starts with struct_size: set it to the size of the struct you
  declared, and the library fills only those fields (`stats`);
- a key pointer from bc_iter_next is valid only until the next call on the
  iterator: copy it before moving on (`keys`);
- free iterators before closing the database: `close` frees those of
  `keys` still open, which then raise "database closed";
- a path goes to C as a NUL-terminated string: one with a NUL byte in it
  would open another directory, so `open` refuses it as os functions do.
"""

import ctypes
import os
import sys
import tempfile

BC_OK, BC_NOT_FOUND, BC_INVALID_ARGUMENT, BC_IO = 0, 1, 2, 3
# The handle failed for good (a failed fsync): close it, open the database again.
BC_FAILED = 12

_u8p = ctypes.POINTER(ctypes.c_uint8)


class BitcaskError(Exception):
    def __init__(self, status, message):
        super().__init__(f"bitcask status {status}: {message}")
        self.status = status


class Stats(ctypes.Structure):
    """The first fields of bc_stats, in header order. Declaring fewer fields
    than the header is fine: struct_size tells the library how many to fill."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("live_keys", ctypes.c_uint64),
        ("data_files", ctypes.c_uint64),
        ("total_bytes", ctypes.c_uint64),
        ("live_bytes", ctypes.c_uint64),
        ("dead_bytes", ctypes.c_uint64),
        ("fragmentation", ctypes.c_double),
    ]


def _declare(lib):
    c = ctypes
    sigs = {
        "bc_version": ([], c.c_char_p),
        "bc_last_error": ([], c.c_char_p),
        "bc_open": ([c.c_char_p, c.c_void_p, c.POINTER(c.c_void_p)], c.c_int32),
        "bc_close": ([c.c_void_p], c.c_int32),
        "bc_put": ([c.c_void_p, c.c_char_p, c.c_size_t, c.c_char_p, c.c_size_t], c.c_int32),
        "bc_get": ([c.c_void_p, c.c_char_p, c.c_size_t, c.POINTER(_u8p), c.POINTER(c.c_size_t)],
                   c.c_int32),
        "bc_free": ([_u8p, c.c_size_t], None),
        "bc_delete": ([c.c_void_p, c.c_char_p, c.c_size_t], c.c_int32),
        "bc_count": ([c.c_void_p, c.POINTER(c.c_uint64)], c.c_int32),
        "bc_get_stats": ([c.c_void_p, c.POINTER(Stats)], c.c_int32),
        "bc_merge": ([c.c_void_p], c.c_int32),
        "bc_iter_new": ([c.c_void_p, c.c_char_p, c.c_size_t, c.POINTER(c.c_void_p)], c.c_int32),
        "bc_iter_next": ([c.c_void_p, c.POINTER(_u8p), c.POINTER(c.c_size_t)], c.c_int32),
        "bc_iter_free": ([c.c_void_p], None),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    return lib


class Bitcask:
    """One open database. Safe to share between Python threads (the handle
    is thread-safe), but close it only when no other thread uses it."""

    def __init__(self, lib, handle):
        self._lib, self._db = lib, handle
        self._iters = {}  # id -> C iterator, of the unfinished `keys` generators

    @classmethod
    def open(cls, path, lib="libbitcask.so"):
        cpath = os.fsencode(path)
        if b"\0" in cpath:  # C would see the path cut at the NUL
            raise ValueError("embedded null byte")
        lib = _declare(ctypes.CDLL(lib))
        handle = ctypes.c_void_p()
        _check(lib, lib.bc_open(cpath, None, ctypes.byref(handle)))
        return cls(lib, handle)

    def close(self):
        """Closes the database, first freeing the iterators of unfinished
        `keys` generators, which raise BitcaskError if used after."""
        if self._db:
            db, self._db = self._db, None
            while self._iters:
                self._free_iter(self._iters.popitem()[1])
            _check(self._lib, self._lib.bc_close(db))

    def _free_iter(self, it):
        if it:  # NULL once freed
            self._lib.bc_iter_free(it)
            it.value = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def put(self, key: bytes, value: bytes):
        _check(self._lib, self._lib.bc_put(self._db, key, len(key), value, len(value)))

    def get(self, key: bytes):
        """The value, or None when the key is absent."""
        val, vlen = _u8p(), ctypes.c_size_t()
        st = self._lib.bc_get(self._db, key, len(key), ctypes.byref(val), ctypes.byref(vlen))
        if st == BC_NOT_FOUND:
            return None
        _check(self._lib, st)
        try:
            return ctypes.string_at(val, vlen.value)
        finally:
            self._lib.bc_free(val, vlen)

    def delete(self, key: bytes):
        """True if the key was there."""
        st = self._lib.bc_delete(self._db, key, len(key))
        if st == BC_NOT_FOUND:
            return False
        _check(self._lib, st)
        return True

    def count(self):
        n = ctypes.c_uint64()
        _check(self._lib, self._lib.bc_count(self._db, ctypes.byref(n)))
        return n.value

    def stats(self):
        s = Stats(struct_size=ctypes.sizeof(Stats))
        _check(self._lib, self._lib.bc_get_stats(self._db, ctypes.byref(s)))
        return {name: getattr(s, name) for name, _ in Stats._fields_[2:]}

    def merge(self):
        _check(self._lib, self._lib.bc_merge(self._db))

    def keys(self, prefix: bytes = b""):
        """The live keys starting with `prefix`, in bytewise order. Raises
        BitcaskError ("database closed") if iterated after `close`."""
        self._check_open()
        it = ctypes.c_void_p()
        _check(self._lib, self._lib.bc_iter_new(self._db, prefix, len(prefix), ctypes.byref(it)))
        self._iters[id(it)] = it
        try:
            key, klen = _u8p(), ctypes.c_size_t()
            while True:
                self._check_open()  # close() freed `it`: it must not be used
                st = self._lib.bc_iter_next(it, ctypes.byref(key), ctypes.byref(klen))
                if st == BC_NOT_FOUND:
                    return
                _check(self._lib, st)
                yield ctypes.string_at(key, klen.value)
        finally:
            self._iters.pop(id(it), None)
            self._free_iter(it)

    def _check_open(self):
        if not self._db:
            raise BitcaskError(BC_INVALID_ARGUMENT, "database closed")


def _check(lib, status):
    if status != BC_OK:
        raise BitcaskError(status, lib.bc_last_error().decode(errors="replace"))


def main():
    built = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "..", "..", "target", "release", "libbitcask.so")
    lib = sys.argv[1] if len(sys.argv) > 1 else built
    if len(sys.argv) > 2:
        path = sys.argv[2]
    else:
        scratch = tempfile.TemporaryDirectory(prefix="bitcask-py-")
        path = os.path.join(scratch.name, "db")
    failures = []

    def expect(what, got, want):
        if got != want:
            failures.append(f"{what}: got {got!r}, want {want!r}")

    with Bitcask.open(path, lib) as db:
        for i in range(1000):
            db.put(b"sensor:%04d" % i, b"reading %d" % i)
        db.put(b"empty", b"")
        expect("get", db.get(b"sensor:0042"), b"reading 42")
        expect("empty value", db.get(b"empty"), b"")
        expect("absent", db.get(b"nope"), None)
        expect("delete", db.delete(b"sensor:0000"), True)
        expect("delete absent", db.delete(b"sensor:0000"), False)
        expect("count", db.count(), 1000)
        expect("prefix scan", list(db.keys(b"sensor:000")),
               [b"sensor:%04d" % i for i in range(1, 10)])
        try:
            db.put(b"", b"x")
            failures.append("empty key accepted")
        except BitcaskError as e:
            expect("empty key status", e.status, BC_INVALID_ARGUMENT)
        db.merge()
        expect("dead bytes after merge", db.stats()["dead_bytes"], 0)
        unfinished = db.keys(b"sensor:")
        expect("first key", next(unfinished), b"sensor:0001")
    # close() freed the iterator: the generator refuses to go on.
    try:
        next(unfinished)
        failures.append("an iterator used after close")
    except BitcaskError as e:
        expect("iterator after close", str(e).endswith("database closed"), True)
    try:
        Bitcask.open(path + "\0other", lib)
        failures.append("a path with a NUL byte accepted")
    except ValueError as e:
        expect("NUL in path", str(e), "embedded null byte")
    with Bitcask.open(path, lib) as db:
        expect("after reopen", db.get(b"sensor:0999"), b"reading 999")
        expect("deleted stays deleted", db.get(b"sensor:0000"), None)
        print(f"bitcask {db._lib.bc_version().decode()} from Python: {db.count()} keys, "
              f"stats {db.stats()}")
    for f in failures:
        print("FAIL", f, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
