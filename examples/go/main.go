// A checked demonstration of the cgo wrapper in ./bitcask:
//
//	cargo build --release
//	cd examples/go
//	CGO_LDFLAGS="-L$PWD/../../target/release -Wl,-rpath,$PWD/../../target/release" go run . [db-dir]
//
// It exits with status 1 when a result is wrong.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"bitcask-example/bitcask"
)

const maxKeySize = 4096 // the default max_key_size (bitcask.h)

var failures []string
var mu sync.Mutex

func expect(what string, ok bool, detail string) {
	if !ok {
		mu.Lock()
		failures = append(failures, what+": "+detail)
		mu.Unlock()
	}
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL", err)
		os.Exit(1)
	}
}

// goroutines writes from many goroutines at once: the handle is shared,
// and each failed call's message must be its own, although goroutines move
// between OS threads and bc_last_error() is per thread. (A wrapper that
// read bc_last_error() in a second cgo call failed this in 5 runs of 5.)
func goroutines(db *bitcask.DB) {
	const workers, each, fails = 8, 500, 5000
	var wg sync.WaitGroup
	for g := 0; g < workers; g++ {
		wg.Add(2)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				must(db.Put([]byte(fmt.Sprintf("g:%d:%04d", g, i)), []byte{byte(g), byte(i)}))
			}
		}(g)
		go func(g int) {
			defer wg.Done()
			big := make([]byte, maxKeySize+1+workers*fails)
			for i := 0; i < fails; i++ {
				n := maxKeySize + 1 + g*fails + i
				err := db.Put(big[:n], []byte("v"))
				var e *bitcask.Error
				want := fmt.Sprintf("key of %d bytes exceeds", n)
				expect("oversized key", errors.As(err, &e) && e.Status == bitcask.StatusTooLarge &&
					strings.Contains(e.Message, want), fmt.Sprintf("got %v, want %q", err, want))
			}
		}(g)
	}
	wg.Wait()
}

func main() {
	dir := ""
	if len(os.Args) > 1 {
		dir = os.Args[1]
	} else {
		d, err := os.MkdirTemp("", "bitcask-go-")
		must(err)
		defer os.RemoveAll(d)
		dir = d + "/db"
	}

	db, err := bitcask.Open(dir)
	must(err)
	for i := 0; i < 1000; i++ {
		must(db.Put([]byte(fmt.Sprintf("sensor:%04d", i)), []byte(fmt.Sprintf("reading %d", i))))
	}
	must(db.Put([]byte("empty"), nil))

	v, err := db.Get([]byte("sensor:0042"))
	expect("get", err == nil && string(v) == "reading 42", fmt.Sprintf("%q %v", v, err))
	v, err = db.Get([]byte("empty"))
	expect("empty value", err == nil && v != nil && len(v) == 0, fmt.Sprintf("%q %v", v, err))
	_, err = db.Get([]byte("nope"))
	expect("absent", errors.Is(err, bitcask.ErrNotFound), fmt.Sprint(err))
	found, err := db.Delete([]byte("sensor:0000"))
	expect("delete", found && err == nil, fmt.Sprint(found, err))
	found, err = db.Delete([]byte("sensor:0000"))
	expect("delete absent", !found && err == nil, fmt.Sprint(found, err))

	var e *bitcask.Error
	err = db.Put(nil, []byte("x"))
	expect("empty key", errors.As(err, &e) && e.Status == bitcask.StatusInvalidArgument &&
		e.Message == "key is empty", fmt.Sprint(err))

	// The slices are kept past the scan: they must be copies.
	var keys, vals [][]byte
	must(db.Scan([]byte("sensor:000"), func(k, v []byte) bool {
		keys, vals = append(keys, k), append(vals, v)
		return true
	}))
	scanned := len(keys) == 9
	for i := 0; scanned && i < 9; i++ {
		scanned = string(keys[i]) == fmt.Sprintf("sensor:%04d", i+1) &&
			string(vals[i]) == fmt.Sprintf("reading %d", i+1)
	}
	expect("prefix scan", scanned, fmt.Sprintf("%q %q", keys, vals))

	// A message longer than any fixed buffer comes back whole: it names
	// the path, here under a regular file, so no directory can be made.
	long := dir + "/LOCK/" + strings.Repeat("deeper/", 100) + "db"
	_, err = bitcask.Open(long)
	expect("a long message", errors.As(err, &e) && e.Status == bitcask.StatusIO &&
		strings.Contains(e.Message, long), fmt.Sprint(err))

	goroutines(db)
	n, err := db.Count()
	expect("count", err == nil && n == 1000+8*500, fmt.Sprint(n, err))
	v, err = db.Get([]byte("g:7:0499"))
	expect("a goroutine's put", err == nil && bytes.Equal(v, []byte{7, 499 % 256}), fmt.Sprint(v, err))

	must(db.Put([]byte("sensor:0001"), []byte("overwritten")))
	must(db.Merge())
	st, err := db.Stats()
	expect("dead bytes after merge", err == nil && st.DeadBytes == 0, fmt.Sprint(st, err))
	must(db.Close())

	db, err = bitcask.Open(dir)
	must(err)
	v, err = db.Get([]byte("sensor:0001"))
	expect("after reopen", err == nil && string(v) == "overwritten", fmt.Sprintf("%q %v", v, err))
	_, err = db.Get([]byte("sensor:0000"))
	expect("deleted stays deleted", errors.Is(err, bitcask.ErrNotFound), fmt.Sprint(err))
	n, err = db.Count()
	must(err)
	st, err = db.Stats()
	must(err)
	must(db.Close())

	for _, f := range failures {
		fmt.Fprintln(os.Stderr, "FAIL", f)
	}
	if len(failures) > 0 {
		os.Exit(1)
	}
	fmt.Printf("from Go: %d keys, %d data files, %d live bytes\n", n, st.DataFiles, st.LiveBytes)
}
