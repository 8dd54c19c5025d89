/* test_limits.c - BC_TOO_LARGE for keys over max_key_size (every call taking a
 * key) and values over max_value_size; exact boundaries; failed puts write
 * nothing; NULL/empty key checks come before size checks; defaults;
 * BC_NO_MEMORY for a value the process has no room for. */
#include "check.h"

#include <sys/resource.h>

static void test_custom_key_limit_every_call(void) {
    uint8_t key[17], buf[8];
    uint8_t *val;
    size_t vlen = 999;
    bc_options *o = make_opts(0, 16, 32);
    bc_db *db = open_db(make_temp_dir(), o);
    bc_options_free(o);
    memset(key, 'k', sizeof key);

    /* exactly max_key_size: fine everywhere */
    CHECK_STATUS(bc_put(db, key, 16, V("v")), BC_OK);
    CHECK_GET(db, key, 16, "v", 1);
    CHECK_STATUS(bc_get_into(db, key, 16, buf, sizeof buf, &vlen), BC_OK);
    CHECK_BYTES(buf, vlen, "v", 1);
    CHECK_STATUS(bc_contains(db, key, 16), BC_OK);
    CHECK_STATUS(bc_delete(db, key, 16), BC_OK);

    /* one byte more: a put gets BC_TOO_LARGE; lookups and deletes are
     * limited only by the longest key a database can hold (65535), so
     * such a key is simply absent */
    vlen = 999;
    CHECK_STATUS(bc_put(db, key, 17, V("v")), BC_TOO_LARGE);
    CHECK_MSG(bc_last_error()[0] != '\0', "expected a message after BC_TOO_LARGE");
    CHECK_STATUS(bc_get(db, key, 17, &val, &vlen), BC_NOT_FOUND);
    CHECK_STATUS(bc_get_into(db, key, 17, buf, sizeof buf, &vlen), BC_NOT_FOUND);
    CHECK_MSG(vlen == 999, "a call that found nothing wrote *vlen (%zu)", vlen);
    CHECK_STATUS(bc_contains(db, key, 17), BC_NOT_FOUND);
    CHECK_STATUS(bc_delete(db, key, 17), BC_NOT_FOUND);

    /* NULL and empty keys are invalid, whatever their length says */
    CHECK_STATUS(bc_put(db, NULL, 17, V("v")), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_get(db, NULL, 1000, &val, &vlen), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_put(db, key, 0, V("v")), BC_INVALID_ARGUMENT);
    close_db(db);
}

/* Keys written under a larger max_key_size stay readable, listable and
 * deletable when the database is opened with a smaller one; only puts of
 * such keys are refused. */
static void test_keys_over_a_lowered_limit(void) {
    const char *dir = make_temp_dir();
    uint8_t key[64], buf[8];
    uint8_t *val;
    const uint8_t *k;
    size_t vlen, klen;
    int seen = 0;
    bc_iter *it;
    bc_options *o = make_opts(0, 64, 0);
    bc_db *db = open_db(dir, o);
    bc_options_free(o);
    memset(key, 'L', sizeof key);
    CHECK_STATUS(bc_put(db, key, sizeof key, V("long")), BC_OK);
    CHECK_STATUS(bc_put(db, key, 40, V("mid")), BC_OK);
    close_db(db);

    o = make_opts(0, 16, 0);
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_GET(db, key, sizeof key, "long", 4);
    CHECK_STATUS(bc_get_into(db, key, 40, buf, sizeof buf, &vlen), BC_OK);
    CHECK_BYTES(buf, vlen, "mid", 3);
    CHECK_STATUS(bc_contains(db, key, sizeof key), BC_OK);
    CHECK_STATUS(bc_iter_new(db, NULL, 0, &it), BC_OK);
    while (bc_iter_next(it, &k, &klen) == BC_OK) {
        CHECK_STATUS(bc_iter_value(it, &val, &vlen), BC_OK);
        CHECK(klen == 40 || klen == sizeof key);
        CHECK_BYTES(val, vlen, klen == 40 ? "mid" : "long", klen == 40 ? 3 : 4);
        bc_free(val, vlen);
        seen++;
    }
    bc_iter_free(it);
    CHECK_MSG(seen == 2, "the iterator listed %d keys, expected 2", seen);
    /* a put of such a key is over this handle's limit */
    CHECK_STATUS(bc_put(db, key, sizeof key, V("new")), BC_TOO_LARGE);
    CHECK_GET(db, key, sizeof key, "long", 4);
    CHECK_STATUS(bc_delete(db, key, sizeof key), BC_OK);
    CHECK_ABSENT(db, key, sizeof key);
    close_db(db);

    /* the delete is durable */
    db = open_db(dir, NULL);
    CHECK_ABSENT(db, key, sizeof key);
    CHECK_GET(db, key, 40, "mid", 3);
    close_db(db);
}

static void test_custom_value_limit(void) {
    uint8_t v[33];
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(0, 16, 32);
    bc_db *db = open_db(dir, o);
    memset(v, 'v', sizeof v);

    CHECK_STATUS(bc_put(db, K("exact"), v, 32), BC_OK);
    CHECK_GET(db, K("exact"), v, 32);
    CHECK_STATUS(bc_put(db, K("over"), v, 33), BC_TOO_LARGE);
    CHECK_MSG(bc_last_error()[0] != '\0', "expected a message after BC_TOO_LARGE");
    CHECK_ABSENT(db, K("over"));
    /* A rejected overwrite leaves the old value. */
    CHECK_STATUS(bc_put(db, K("exact"), v, 33), BC_TOO_LARGE);
    CHECK_GET(db, K("exact"), v, 32);
    /* Key checks still come first: NULL key with a too-large value. */
    CHECK_STATUS(bc_put(db, NULL, 1, v, 33), BC_INVALID_ARGUMENT);
    /* A NULL value with a length is invalid, whatever the length. */
    CHECK_STATUS(bc_put(db, K("nullval"), NULL, 33), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_put(db, K("nullval"), NULL, SIZE_MAX), BC_INVALID_ARGUMENT);
    /* Both too large: either way it is BC_TOO_LARGE. */
    CHECK_STATUS(bc_put(db, U8("0123456789abcdefX"), 17, v, 33), BC_TOO_LARGE);
    close_db(db);

    /* Nothing of the rejected writes reached the disk. */
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_ABSENT(db, K("over"));
    CHECK_GET(db, K("exact"), v, 32);
    close_db(db);
}

/* Calls with lengths far beyond any limit (up to SIZE_MAX); each must be
 * rejected with BC_TOO_LARGE before the bytes are looked at. */
#define ABSURD_CASES 9
static const char *const absurd_names[ABSURD_CASES] = {
    "bc_put(db, small, SIZE_MAX, \"v\", 1)",
    "bc_put(db, \"k\", 1, small, SIZE_MAX)",
    "bc_put(db, \"k\", 1, small, 1 << 40)",
    "bc_get(db, small, SIZE_MAX, &val, &vlen)",
    "bc_get_into(db, small, SIZE_MAX, small, 4, &vlen)",
    "bc_delete(db, small, SIZE_MAX)",
    "bc_contains(db, small, SIZE_MAX)",
    "bc_delete(db, small, 1 << 40)",
    "bc_contains(db, small, 65536)",
};

/* 1 TiB where size_t has 64 bits, 2 GiB where it has 32. */
#define HUGE_LEN ((size_t)((uint64_t)SIZE_MAX > ((uint64_t)1 << 40) ? ((uint64_t)1 << 40) : ((uint64_t)1 << 31)))

static bc_status absurd_call(bc_db *db, int which) {
    uint8_t small[4] = {1, 2, 3, 4};
    uint8_t *val;
    size_t vlen = 5;
    switch (which) {
    case 0: return bc_put(db, small, SIZE_MAX, V("v"));
    case 1: return bc_put(db, K("k"), small, SIZE_MAX);
    case 2: return bc_put(db, K("k"), small, HUGE_LEN);
    case 3: return bc_get(db, small, SIZE_MAX, &val, &vlen);
    case 4: return bc_get_into(db, small, SIZE_MAX, small, 4, &vlen);
    case 5: return bc_delete(db, small, SIZE_MAX);
    case 6: return bc_contains(db, small, SIZE_MAX);
    case 7: return bc_delete(db, small, HUGE_LEN);
    default: return bc_contains(db, small, 65536);
    }
}

/* Child mode: runs one absurd call on its own handle; exit code = status. */
static int child_absurd(const char *dir, int which) {
    bc_db *db = open_db(dir, NULL);
    bc_status st = absurd_call(db, which);
    close_db(db);
    return st >= 0 && st < 100 ? (int)st : 100;
}

/* Each call runs in a separate process (this program re-executed), so that
 * a library abort (e.g. a Rust panic that cannot unwind) is reported as a
 * failure of that call instead of killing the whole test program. */
static void test_absurd_lengths(void) {
    const char *dir = make_temp_dir();
    int which, failures = 0;
    bc_db *db;
    for (which = 0; which < ABSURD_CASES; which++) {
        char buf[8];
        const char *args[4];
        int rc;
        snprintf(buf, sizeof buf, "%d", which);
        args[0] = "child-absurd";
        args[1] = dir;
        args[2] = buf;
        args[3] = NULL;
        rc = wait_child(spawn_self(args, NULL, NULL));
        if (rc != BC_TOO_LARGE) {
            if (rc > 128)
                fprintf(stderr, "%s:%d: FAILED: %s\n    expected BC_TOO_LARGE, but the call "
                        "killed the process with signal %d\n", __FILE__, __LINE__,
                        absurd_names[which], rc - 128);
            else
                fprintf(stderr, "%s:%d: FAILED: %s\n    expected BC_TOO_LARGE (6), got %s (%d)\n",
                        __FILE__, __LINE__, absurd_names[which], status_name(rc), rc);
            failures++;
        }
    }
    CHECK_MSG(failures == 0, "%d call(s) with absurd lengths failed (see above)", failures);
    db = open_db(dir, NULL);
    CHECK_ABSENT(db, K("k"));
    close_db(db);
}

/* Defaults: max_key_size 4096, max_value_size 64 MiB. */
static void test_default_limits(void) {
    size_t max_value = (size_t)64 << 20;
    uint8_t *big = (uint8_t *)calloc(max_value + 1, 1); /* untouched zero pages */
    uint8_t key[4097];
    bc_db *db = open_db(make_temp_dir(), NULL);
    CHECK(big != NULL);
    memset(key, 'q', sizeof key);
    CHECK_STATUS(bc_put(db, key, 4096, V("ok")), BC_OK);
    CHECK_STATUS(bc_put(db, key, 4097, V("no")), BC_TOO_LARGE);
    CHECK_STATUS(bc_put(db, K("huge"), big, max_value + 1), BC_TOO_LARGE);
    CHECK_ABSENT(db, K("huge"));
    CHECK_GET(db, key, 4096, "ok", 2);
    close_db(db);
    free(big);
}

/* The largest allowed key (65535 bytes, the u16 key_len of the format)
 * round-trips, also through a reopen. */
static void test_max_key_size_65535(void) {
    const char *dir = make_temp_dir();
    size_t i;
    uint8_t *key = (uint8_t *)malloc(65536);
    bc_options *o = make_opts(0, 65535, 0);
    bc_db *db = open_db(dir, o);
    CHECK(key != NULL);
    for (i = 0; i < 65536; i++) key[i] = (uint8_t)(i % 251);
    CHECK_STATUS(bc_put(db, key, 65535, V("biggest key")), BC_OK);
    CHECK_STATUS(bc_put(db, key, 65536, V("too big")), BC_TOO_LARGE);
    CHECK_GET(db, key, 65535, "biggest key", 11);
    close_db(db);
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_GET(db, key, 65535, "biggest key", 11);
    CHECK_ABSENT(db, key, 65534);
    close_db(db);
    free(key);
}

static void test_max_value_size_1(void) {
    bc_options *o = make_opts(0, 0, 1);
    bc_db *db = open_db(make_temp_dir(), o);
    bc_options_free(o);
    CHECK_STATUS(bc_put(db, K("a"), V("1")), BC_OK);
    CHECK_STATUS(bc_put(db, K("b"), V("12")), BC_TOO_LARGE);
    CHECK_STATUS(bc_put(db, K("c"), NULL, 0), BC_OK);
    CHECK_GET(db, K("a"), "1", 1);
    CHECK_GET(db, K("c"), "", 0);
    CHECK_ABSENT(db, K("b"));
    close_db(db);
}

/* A value bigger than the memory the process may still take: 160 MiB under
 * an address-space limit of 64 MiB more than it uses. */
#define BIG_VALUE (160u << 20)

static long address_space_bytes(void) {
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld", &pages) != 1) pages = 0;
        fclose(f);
    }
    return pages * sysconf(_SC_PAGESIZE);
}

/* Limits the address space to what is in use plus `more` bytes. 0 when the
 * limit is not enforced here, which a malloc of `probe` bytes then shows
 * (qemu-user ignores RLIMIT_AS). */
static int limit_address_space(size_t more, size_t probe) {
    struct rlimit rl;
    void *p;
    rl.rlim_cur = rl.rlim_max = (rlim_t)address_space_bytes() + more;
    if (setrlimit(RLIMIT_AS, &rl) != 0) return 0;
    p = malloc(probe);
    free(p);
    return p == NULL;
}

/* 64 KiB blocks that take what the limit leaves. */
static void *g_held[1 << 16];
static int g_nheld;

/* Takes every 64 KiB block malloc still gives (the heap's free space, which
 * the limit cannot see, included), then gives `keep` of them back. 0 if
 * malloc never refused. */
static int use_up_memory(int keep) {
    while (g_nheld < (1 << 16) && (g_held[g_nheld] = malloc(64 << 10)) != NULL) g_nheld++;
    if (g_nheld == 1 << 16) return 0;
    while (keep-- > 0 && g_nheld > 0) free(g_held[--g_nheld]);
    return 1;
}

static void give_memory_back(void) {
    while (g_nheld > 0) free(g_held[--g_nheld]);
}

/* Runs this program with `args` (a child mode and a directory) in a child
 * process, which must succeed. 0 if it found the address-space limit not
 * enforced here (its exit status 77). */
static int run_in_child(const char **args) {
    int rc = wait_child(spawn_self(args, NULL, NULL));
    if (rc == 77) {
        printf("  (skipped: RLIMIT_AS is not enforced here)\n");
        return 0;
    }
    CHECK_MSG(rc == 0, "the child reported failure %d (see above)", rc);
    return 1;
}

/* In a child process: 0 when bc_get (and bc_iter_value) of the big value
 * returns BC_NO_MEMORY naming the allocation and the handle goes on working; 77 when the limit
 * is not enforced here (qemu-user ignores RLIMIT_AS). */
static int child_nomem(const char *dir) {
    bc_db *db = open_db(dir, NULL);
    struct rlimit rl;
    uint8_t *val = NULL, *into = (uint8_t *)malloc(BIG_VALUE);
    size_t vlen = 0;
    CHECK(into != NULL);
    /* A read maps the data file while there is room for the map: the
     * gets below then fail for want of the value's copy, not of a read. */
    CHECK_GET(db, K("small"), V("s"));
    if (!limit_address_space(64u << 20, BIG_VALUE)) return 77;
    val = (uint8_t *)&rl; /* sentinels: outputs are written only on success */
    vlen = 12345;
    CHECK_STATUS(bc_get(db, K("big"), &val, &vlen), BC_NO_MEMORY);
    CHECK_STR_CONTAINS(bc_last_error(), "cannot allocate");
    CHECK_STR_CONTAINS(bc_last_error(), "a copy of the value");
    CHECK(val == (uint8_t *)&rl && vlen == 12345);
    val = NULL;
    /* bc_get_into from the map needs only the caller's buffer. */
    CHECK_STATUS(bc_get_into(db, K("big"), into, BIG_VALUE, &vlen), BC_OK);
    CHECK(vlen == BIG_VALUE && into[0] == 'b' && into[BIG_VALUE - 1] == 'b');
    free(into);
    CHECK_GET(db, K("small"), V("s"));
    CHECK_STATUS(bc_put(db, K("after"), V("a")), BC_OK);
    CHECK_GET(db, K("after"), V("a"));
    /* An iterator over every key needs about 10 MiB for its copy of the
     * 100,000 keys of 100 bytes: not with 1 MiB to spare (no address
     * space left, and the heap's free space, which the limit cannot see,
     * taken but for 1 MiB). One over a single key still works. */
    rl.rlim_cur = rl.rlim_max = (rlim_t)address_space_bytes();
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
    {
        bc_iter *it = (bc_iter *)&rl; /* a sentinel, as above */
        const uint8_t *k;
        size_t kl;
        CHECK_MSG(use_up_memory(16), "the address-space limit was not reached");
        CHECK_STATUS(bc_iter_new(db, NULL, 0, &it), BC_NO_MEMORY);
        CHECK(it == (bc_iter *)&rl);
        CHECK_STR_CONTAINS(bc_last_error(), "iterator");
        CHECK_STATUS(bc_iter_new(db, K("small"), &it), BC_OK);
        CHECK_STATUS(bc_iter_next(it, &k, &kl), BC_OK);
        CHECK_STATUS(bc_iter_next(it, &k, &kl), BC_NOT_FOUND);
        bc_iter_free(it);
        /* The big value through an iterator: no room for its copy. */
        CHECK_STATUS(bc_iter_new(db, K("big"), &it), BC_OK);
        CHECK_STATUS(bc_iter_next(it, &k, &kl), BC_OK);
        val = (uint8_t *)&rl;
        vlen = 12345;
        CHECK_STATUS(bc_iter_value(it, &val, &vlen), BC_NO_MEMORY);
        CHECK(val == (uint8_t *)&rl && vlen == 12345);
        bc_iter_free(it);
        give_memory_back();
    }
    close_db(db);
    return check_finish();
}

/* In a child process: a put whose record (250,000 bytes) the write buffer
 * has to grow for, with 128 KiB of memory left, gets BC_NO_MEMORY naming
 * the write buffer and writes nothing; smaller puts still work; 77 where
 * the limit is not enforced. */
static int child_buffer_full(const char *dir) {
    static uint8_t big[250000];
    bc_db *db = open_db(dir, NULL);
    if (!limit_address_space(16u << 20, 64u << 20) || !use_up_memory(2)) return 77;
    memset(big, 'b', sizeof big);
    CHECK_STATUS(bc_put(db, K("big"), big, sizeof big), BC_NO_MEMORY);
    CHECK_STR_CONTAINS(bc_last_error(), "write buffer");
    CHECK_STATUS(bc_put(db, K("small"), V("s")), BC_OK);
    give_memory_back();
    close_db(db);
    return check_finish();
}

/* A put whose record the write buffer has no memory for fails with
 * BC_NO_MEMORY before anything is written, instead of aborting. */
static void test_a_write_buffer_out_of_memory(void) {
    const char *dir = make_temp_dir();
    const char *args[3] = {"child-buffer", dir, NULL};
    bc_db *db;
    if (under_valgrind()) return; /* valgrind manages the address space itself */
    if (!run_in_child(args)) return;
    CHECK(remove_files_with_suffix(dir, ".hint") >= 0);
    db = open_db(dir, NULL);
    CHECK(count_of(db) == 1);
    CHECK_GET(db, K("small"), V("s"));
    CHECK_ABSENT(db, K("big"));
    close_db(db);
}

#define WARM_KEYS 2000

/* In a child process: with the address space used up, puts of new keys
 * get BC_NO_MEMORY naming the keydir once it cannot grow, with nothing
 * appended (the parent checks that after a reopen: the index of the key
 * that failed is in <dir>.failed), and the handle goes on working once
 * memory is back; 77 where the limit is not enforced. */
static int child_keydir_full(const char *dir) {
    bc_db *db = open_db(dir, NULL);
    bc_status st = BC_OK;
    char key[32];
    int i, klen = 0;
    long n;
    /* Enough records (300 KB) for the write buffer to grow to its full
     * size (256 KiB): the keydir, not the buffer, is to run out. */
    for (i = 0; i < WARM_KEYS; i++) {
        char warm[150];
        memset(warm, 'w', sizeof warm);
        klen = snprintf(warm, 16, "warm-%d", i);
        warm[klen] = 'w';
        CHECK_STATUS(bc_put(db, U8(warm), sizeof warm, V("v")), BC_OK);
    }
    if (!limit_address_space(16u << 20, 64u << 20) || !use_up_memory(16)) return 77;
    for (n = 0; n < 10000000; n++) {
        klen = snprintf(key, sizeof key, "key-%09ld", n);
        st = bc_put(db, U8(key), (size_t)klen, V("value"));
        if (st != BC_OK) break;
    }
    CHECK_STATUS(st, BC_NO_MEMORY);
    CHECK_STR_CONTAINS(bc_last_error(), "keydir");
    CHECK_ABSENT(db, U8(key), (size_t)klen);
    /* Overwriting a key needs no memory, in the full shard too. */
    for (i = 0; i < n; i++) {
        char old[32];
        int olen = snprintf(old, sizeof old, "key-%09d", i);
        CHECK_STATUS(bc_put(db, U8(old), (size_t)olen, V("again")), BC_OK);
    }
    CHECK_STATUS(bc_put(db, U8(key), (size_t)klen, V("value")), BC_NO_MEMORY);
    /* Giving a key a TTL needs a new entry: stored, or BC_NO_MEMORY with
     * the old value kept. */
    {
        char warm[150];
        int wlen;
        memset(warm, 'w', sizeof warm);
        wlen = snprintf(warm, 16, "warm-%d", 0);
        warm[wlen] = 'w';
        st = bc_put_ttl(db, U8(warm), sizeof warm, V("ttl"), 100000);
        CHECK(st == BC_OK || st == BC_NO_MEMORY);
        if (st == BC_OK) CHECK_GET(db, U8(warm), sizeof warm, V("ttl"));
        else CHECK_GET(db, U8(warm), sizeof warm, V("v"));
    }
    give_memory_back();
    CHECK_STATUS(bc_put(db, K("after"), V("a")), BC_OK);
    close_db(db);
    {
        char path[4096];
        FILE *f;
        snprintf(path, sizeof path, "%s.failed", dir);
        f = fopen(path, "w");
        CHECK(f != NULL && fprintf(f, "%ld\n", n) > 0 && fclose(f) == 0);
    }
    return check_finish();
}

/* A put whose key the keydir has no memory for fails with BC_NO_MEMORY
 * before its record is written, instead of aborting the process. */
static void test_a_keydir_out_of_memory(void) {
    const char *dir = make_temp_dir();
    const char *args[3] = {"child-keydir", dir, NULL};
    char path[4096], key[32];
    bc_db *db;
    uint64_t count = 0, i;
    long failed = -1;
    int klen;
    FILE *f;
    if (under_valgrind()) return; /* valgrind manages the address space itself */
    if (!run_in_child(args)) return;
    snprintf(path, sizeof path, "%s.failed", dir);
    f = fopen(path, "r");
    CHECK(f != NULL && fscanf(f, "%ld", &failed) == 1 && failed > 1000);
    fclose(f);
    CHECK(unlink(path) == 0);
    /* The keys before the one whose put failed, the warm-up keys and
     * "after": that one is not there, in the data file either (the hint
     * holds only what the keydir did). */
    CHECK(remove_files_with_suffix(dir, ".hint") >= 0);
    db = open_db(dir, NULL);
    count = count_of(db);
    CHECK_MSG(count == (uint64_t)failed + WARM_KEYS + 1, "%lu keys, the put of key %ld failed",
              (unsigned long)count, failed);
    for (i = 0; i < (uint64_t)failed; i++) {
        klen = snprintf(key, sizeof key, "key-%09lu", (unsigned long)i);
        CHECK_GET(db, U8(key), (size_t)klen, V("again"));
    }
    klen = snprintf(key, sizeof key, "key-%09ld", failed);
    CHECK_ABSENT(db, U8(key), (size_t)klen);
    CHECK_GET(db, K("after"), V("a"));
    close_db(db);
}

/* In a child process: an open whose keydir does not fit in what the
 * address space has left (12 MiB) returns BC_NO_MEMORY naming the keydir;
 * 77 where the limit is not enforced. */
static int child_open_too_big(const char *dir) {
    bc_db *db = NULL;
    if (!limit_address_space(12u << 20, 64u << 20)) return 77;
    CHECK_STATUS(bc_open(dir, NULL, &db), BC_NO_MEMORY);
    CHECK(db == NULL);
    CHECK_STR_CONTAINS(bc_last_error(), "keydir");
    return check_finish();
}

/* `n` (under 2^24) keys of `klen` bytes (3 to 200) in a new database. */
static const char *database_of(int n, size_t klen) {
    const char *dir = make_temp_dir();
    bc_db *db = open_db(dir, NULL);
    char key[200];
    int i;
    memset(key, 'k', sizeof key);
    for (i = 0; i < n; i++) {
        key[0] = (char)i;
        key[1] = (char)(i >> 8);
        key[2] = (char)(i >> 16);
        CHECK_STATUS(bc_put(db, U8(key), klen, V("v")), BC_OK);
    }
    close_db(db);
    return dir;
}

/* A database whose keys do not fit in memory fails to open with
 * BC_NO_MEMORY instead of aborting the process, and opens where they fit:
 * where the keys' entries run out of memory (70,000 keys of 200 bytes,
 * 14 MB of them), and where the slot tables do (700,000 keys of 3 bytes:
 * 16 to 32 bytes of slot and 9 of entry a key). */
static void test_opening_a_keydir_too_big_for_memory(void) {
    const struct { int n; size_t klen; } dbs[] = {{70000, 200}, {700000, 3}};
    const char *probe[3] = {"child-probe", ".", NULL};
    size_t i;
    if (under_valgrind()) return; /* valgrind manages the address space itself */
    if (!run_in_child(probe)) return; /* before the slow part */
    for (i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        const char *dir = database_of(dbs[i].n, dbs[i].klen);
        const char *args[3] = {"child-open", dir, NULL};
        bc_db *db;
        if (!run_in_child(args)) return;
        db = open_db(dir, NULL);
        CHECK(count_of(db) == (uint64_t)dbs[i].n);
        close_db(db);
    }
}

/* A value can be up to 2 GiB: a process that cannot hold a copy of it (a
 * 32-bit one, a small device) gets BC_NO_MEMORY, not an abort; so does an
 * iterator whose copy of the keys does not fit. */
static void test_a_value_too_big_for_memory(void) {
    const char *dir;
    const char *args[3] = {"child-nomem", NULL, NULL};
    bc_options *o;
    bc_db *db;
    uint8_t *big;
    int i;
    if (under_valgrind()) return; /* valgrind manages the address space itself */
    dir = make_temp_dir();
    o = make_opts(0, 0, BIG_VALUE);
    db = open_db(dir, o);
    big = (uint8_t *)malloc(BIG_VALUE);
    CHECK(big != NULL);
    memset(big, 'b', BIG_VALUE);
    CHECK_STATUS(bc_put(db, K("big"), big, BIG_VALUE), BC_OK);
    free(big);
    CHECK_STATUS(bc_put(db, K("small"), V("s")), BC_OK);
    for (i = 0; i < 100000; i++) {
        char key[100];
        memset(key, 'k', sizeof key);
        snprintf(key, sizeof key, "many-%d", i);
        key[strlen(key)] = 'k'; /* 100 bytes, NUL replaced */
        CHECK_STATUS(bc_put(db, U8(key), sizeof key, V("v")), BC_OK);
    }
    bc_options_free(o);
    close_db(db);
    args[1] = dir;
    run_in_child(args);
}

/* In a child process: 0 where RLIMIT_AS is enforced, 77 where not. */
static int child_probe(const char *dir) {
    (void)dir;
    return limit_address_space(16u << 20, 64u << 20) ? 0 : 77;
}

/* The child modes taking a directory, for run_in_child. */
static const struct {
    const char *mode;
    int (*run)(const char *dir);
} children[] = {
    {"child-nomem", child_nomem},   {"child-buffer", child_buffer_full},
    {"child-probe", child_probe},   {"child-open", child_open_too_big},
    {"child-keydir", child_keydir_full},
};

int main(int argc, char **argv) {
    size_t i;
    check_init(argc, argv);
    for (i = 0; argc == 3 && i < sizeof children / sizeof children[0]; i++) {
        if (strcmp(argv[1], children[i].mode) == 0) {
            check_in_child();
            return children[i].run(argv[2]);
        }
    }
    if (argc == 4 && strcmp(argv[1], "child-absurd") == 0) {
        check_in_child();
        return child_absurd(argv[2], atoi(argv[3]));
    }
    RUN(test_custom_key_limit_every_call);
    RUN(test_keys_over_a_lowered_limit);
    RUN(test_custom_value_limit);
    RUN(test_absurd_lengths);
    RUN(test_default_limits);
    RUN(test_max_key_size_65535);
    RUN(test_max_value_size_1);
    RUN(test_a_value_too_big_for_memory);
    RUN(test_a_keydir_out_of_memory);
    RUN(test_a_write_buffer_out_of_memory);
    RUN(test_opening_a_keydir_too_big_for_memory);
    return check_finish();
}
