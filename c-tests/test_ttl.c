/* test_ttl.c - time to live on a fake clock (bc_options_set_clock with a ctx
 * pointing at a uint32_t the test advances; nothing sleeps): bc_put_ttl
 * expiry at exactly put time + ttl, ttl 0 = never (also over a default TTL),
 * huge TTLs, bc_put_ttl's argument statuses, bc_options_set_default_ttl for
 * bc_put (stored, not recomputed at reopen), an expired key is BC_NOT_FOUND
 * for bc_get / bc_get_into / bc_contains / bc_delete (which writes nothing),
 * left out of bc_count, iterators and live_keys, counted in
 * bc_stats.expired_keys and dead_bytes, reclaimed by bc_merge; an expired
 * value never lets an older value of its key back (reopen with and without
 * hints, full merge, partial auto-merge, clock moved back); the clock gets
 * its ctx unchanged; bc_options_set_clock(opts, NULL, NULL) restores the
 * system clock. */
#include "check.h"

#define T0 1600000000u

/* The fake clock. The library may call it from its background thread, so
 * it is read and written atomically. */
static uint32_t g_clock;
static int g_wrong_ctx;

static uint32_t fake_now(void *ctx) {
    if (ctx != (void *)&g_clock) __atomic_store_n(&g_wrong_ctx, 1, __ATOMIC_SEQ_CST);
    return __atomic_load_n(&g_clock, __ATOMIC_SEQ_CST);
}

static void set_now(uint32_t t) { __atomic_store_n(&g_clock, t, __ATOMIC_SEQ_CST); }

#define CHECK_CLOCK_CTX()                                                                 \
    CHECK_MSG(__atomic_load_n(&g_wrong_ctx, __ATOMIC_SEQ_CST) == 0,                       \
              "the clock function was called with a ctx other than the one given to "     \
              "bc_options_set_clock")

/* Options with the fake clock (and max_file_size if non-zero). */
static bc_options *clock_opts(uint64_t max_file) {
    bc_options *o = make_opts(max_file, 0, 0);
    CHECK_STATUS(bc_options_set_clock(o, fake_now, &g_clock), BC_OK);
    return o;
}

#define CHECK_U64(got, expected)                                                          \
    do {                                                                                  \
        uint64_t cu_got_ = (uint64_t)(got), cu_exp_ = (uint64_t)(expected);               \
        CHECK_MSG(cu_got_ == cu_exp_, "%s = %llu, expected %llu", #got,                   \
                  (unsigned long long)cu_got_, (unsigned long long)cu_exp_);              \
    } while (0)

/* key (a C string) holds exactly val: bc_get, bc_get_into and bc_contains agree. */
#define EXPECT_VALUE(db, key, val)                                                        \
    do {                                                                                  \
        const char *ev_k_ = (key), *ev_v_ = (val);                                        \
        uint8_t ev_buf_[256];                                                             \
        size_t ev_n_ = 0;                                                                 \
        CHECK_GET((db), U8(ev_k_), strlen(ev_k_), ev_v_, strlen(ev_v_));                  \
        CHECK_STATUS(bc_contains((db), U8(ev_k_), strlen(ev_k_)), BC_OK);                 \
        CHECK_STATUS(bc_get_into((db), U8(ev_k_), strlen(ev_k_), ev_buf_, sizeof ev_buf_, \
                                 &ev_n_),                                                 \
                     BC_OK);                                                              \
        CHECK_BYTES(ev_buf_, ev_n_, ev_v_, strlen(ev_v_));                                \
    } while (0)

/* key (a C string) is absent for bc_get, bc_get_into and bc_contains, and
 * none of them wrote an output parameter. */
#define EXPECT_GONE(db, key)                                                              \
    do {                                                                                  \
        const char *eg_k_ = (key);                                                        \
        uint8_t eg_buf_[16];                                                              \
        size_t eg_n_ = 4242;                                                              \
        memset(eg_buf_, 0x5A, sizeof eg_buf_);                                            \
        CHECK_ABSENT((db), U8(eg_k_), strlen(eg_k_));                                     \
        CHECK_STATUS(bc_get_into((db), U8(eg_k_), strlen(eg_k_), eg_buf_, sizeof eg_buf_, \
                                 &eg_n_),                                                 \
                     BC_NOT_FOUND);                                                       \
        CHECK_MSG(eg_n_ == 4242 && eg_buf_[0] == 0x5A,                                    \
                  "bc_get_into(\"%s\") returned BC_NOT_FOUND but wrote its outputs", eg_k_); \
    } while (0)

/* The smallest "*.data" name in dir (the oldest file), into out. */
static int oldest_data_file(const char *dir, char *out, size_t cap) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    if (d == NULL) return 0;
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (nl == 21 && strcmp(e->d_name + 16, ".data") == 0 &&
            (!found || strcmp(e->d_name, out) < 0)) {
            snprintf(out, cap, "%s", e->d_name);
            found = 1;
        }
    }
    closedir(d);
    return found;
}

/* ------------------------------------------------------------------------ */

static void test_put_ttl_expires(void) {
    const char *dir = make_temp_dir();
    bc_options *o = clock_opts(0);
    bc_db *db;
    bc_stats s;
    uint64_t bytes_before;

    set_now(T0);
    db = open_db(dir, o);
    bc_options_free(o);

    CHECK_STATUS(bc_put_ttl(db, K("short"), V("lives ten seconds"), 10), BC_OK);
    CHECK_STATUS(bc_put_ttl(db, K("zero"), V("ttl 0 never expires"), 0), BC_OK);
    CHECK_STATUS(bc_put(db, K("plain"), V("no ttl at all")), BC_OK);
    CHECK_STATUS(bc_put_ttl(db, K("empty"), NULL, 0, 10), BC_OK); /* an empty value, ttl 10 */
    CHECK_STATUS(bc_put_ttl(db, K("huge"), V("ttl UINT32_MAX"), UINT32_MAX), BC_OK);

    EXPECT_VALUE(db, "short", "lives ten seconds");
    EXPECT_VALUE(db, "empty", "");
    CHECK_U64(count_of(db), 5);

    set_now(T0 + 9); /* one second before expiry: still there */
    EXPECT_VALUE(db, "short", "lives ten seconds");
    EXPECT_VALUE(db, "empty", "");
    s = get_stats(db);
    CHECK_U64(s.expired_keys, 0);
    CHECK_U64(s.live_keys, 5);

    set_now(T0 + 10); /* ttl seconds after the put: gone */
    EXPECT_GONE(db, "short");
    EXPECT_GONE(db, "empty");
    EXPECT_VALUE(db, "zero", "ttl 0 never expires");
    EXPECT_VALUE(db, "plain", "no ttl at all");
    EXPECT_VALUE(db, "huge", "ttl UINT32_MAX");
    CHECK_U64(count_of(db), 3);
    s = get_stats(db);
    CHECK_U64(s.expired_keys, 2);

    /* Deleting an expired key: BC_NOT_FOUND and nothing is written. */
    CHECK_STATUS(bc_sync(db), BC_OK);
    bytes_before = get_stats(db).total_bytes;
    CHECK_STATUS(bc_delete(db, K("short")), BC_NOT_FOUND);
    CHECK_STATUS(bc_delete(db, K("empty")), BC_NOT_FOUND);
    CHECK_STATUS(bc_sync(db), BC_OK);
    CHECK_U64(get_stats(db).total_bytes, bytes_before);
    EXPECT_GONE(db, "short");

    /* Far in the future: ttl 0 and no ttl still there; so is ttl UINT32_MAX
     * (put time + ttl does not wrap around to the past). */
    set_now(T0 + 2000000000u);
    EXPECT_VALUE(db, "zero", "ttl 0 never expires");
    EXPECT_VALUE(db, "plain", "no ttl at all");
    EXPECT_VALUE(db, "huge", "ttl UINT32_MAX");
    EXPECT_GONE(db, "short");

    /* An expired key can be stored again, and expires again. */
    CHECK_STATUS(bc_put_ttl(db, K("short"), V("second life"), 5), BC_OK);
    EXPECT_VALUE(db, "short", "second life");
    CHECK_U64(count_of(db), 4);
    CHECK_U64(get_stats(db).expired_keys, 1); /* "empty" */
    set_now(T0 + 2000000005u);
    EXPECT_GONE(db, "short");
    CHECK_U64(count_of(db), 3);
    CHECK_U64(get_stats(db).expired_keys, 2);

    /* bc_delete of a key that has not expired yet still works. */
    CHECK_STATUS(bc_put_ttl(db, K("short"), V("third"), 100), BC_OK);
    CHECK_STATUS(bc_delete(db, K("short")), BC_OK);
    EXPECT_GONE(db, "short");
    close_db(db);

    /* The expiry is stored: a reopen (same clock) agrees. */
    o = clock_opts(0);
    db = open_db(dir, o);
    bc_options_free(o);
    EXPECT_GONE(db, "short");
    EXPECT_GONE(db, "empty");
    EXPECT_VALUE(db, "zero", "ttl 0 never expires");
    EXPECT_VALUE(db, "plain", "no ttl at all");
    EXPECT_VALUE(db, "huge", "ttl UINT32_MAX");
    CHECK_U64(count_of(db), 3);
    close_db(db);
    CHECK_CLOCK_CTX();
}

static void test_put_ttl_arguments(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(0, 8, 16);
    bc_db *db;
    CHECK_STATUS(bc_options_set_clock(o, fake_now, &g_clock), BC_OK);
    set_now(T0);
    db = open_db(dir, o);

    CHECK_STATUS(bc_put_ttl(NULL, K("k"), V("v"), 10), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_put_ttl(db, NULL, 1, V("v"), 10), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_put_ttl(db, U8("k"), 0, V("v"), 10), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_put_ttl(db, K("k"), NULL, 3, 10), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_put_ttl(db, K("123456789"), V("v"), 10), BC_TOO_LARGE);  /* key 9 > 8 */
    CHECK_STATUS(bc_put_ttl(db, K("k"), V("0123456789abcdefX"), 10), BC_TOO_LARGE); /* 17 > 16 */
    CHECK_STATUS(bc_put_ttl(db, K("12345678"), V("0123456789abcdef"), 10), BC_OK); /* limits */
    CHECK_U64(count_of(db), 1);
    EXPECT_GONE(db, "k");
    close_db(db);

    CHECK_STATUS(bc_options_set_read_only(o, true), BC_OK);
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_STATUS(bc_put_ttl(db, K("k"), V("v"), 10), BC_READ_ONLY);
    CHECK_STATUS(bc_put_ttl(db, K("k"), V("v"), 0), BC_READ_ONLY);
    EXPECT_VALUE(db, "12345678", "0123456789abcdef");
    EXPECT_GONE(db, "k");
    close_db(db);

    CHECK_STATUS(bc_options_set_default_ttl(NULL, 5), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_clock(NULL, fake_now, &g_clock), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_clock(NULL, NULL, NULL), BC_INVALID_ARGUMENT);
    CHECK_CLOCK_CTX();
}

static void test_default_ttl(void) {
    const char *dir = make_temp_dir();
    bc_options *o = clock_opts(0);
    bc_db *db;

    CHECK_STATUS(bc_options_set_default_ttl(o, 0), BC_OK);
    CHECK_STATUS(bc_options_set_default_ttl(o, 100), BC_OK);
    set_now(T0);
    db = open_db(dir, o);
    CHECK_STATUS(bc_put(db, K("default"), V("expires at T0+100")), BC_OK);
    CHECK_STATUS(bc_put_ttl(db, K("never"), V("ttl 0 beats the default"), 0), BC_OK);
    CHECK_STATUS(bc_put_ttl(db, K("long"), V("own ttl 1000"), 1000), BC_OK);
    CHECK_STATUS(bc_put_ttl(db, K("short"), V("own ttl 5"), 5), BC_OK);

    set_now(T0 + 5);
    EXPECT_GONE(db, "short");
    set_now(T0 + 99);
    EXPECT_VALUE(db, "default", "expires at T0+100");
    EXPECT_VALUE(db, "long", "own ttl 1000");
    set_now(T0 + 100);
    EXPECT_GONE(db, "default");
    EXPECT_VALUE(db, "never", "ttl 0 beats the default");
    EXPECT_VALUE(db, "long", "own ttl 1000");
    CHECK_U64(count_of(db), 2);

    /* bc_put at T0+100 with the default: until T0+200. */
    CHECK_STATUS(bc_put(db, K("default2"), V("until T0+200")), BC_OK);
    close_db(db);

    /* Reopened with no default TTL: the stored expiries still hold, and a
     * new bc_put does not expire. */
    CHECK_STATUS(bc_options_set_default_ttl(o, 0), BC_OK);
    db = open_db(dir, o);
    bc_options_free(o);
    set_now(T0 + 199);
    EXPECT_VALUE(db, "default2", "until T0+200");
    CHECK_STATUS(bc_put(db, K("plain"), V("no default now")), BC_OK);
    set_now(T0 + 200);
    EXPECT_GONE(db, "default2");
    EXPECT_GONE(db, "default");
    set_now(T0 + 1000);
    EXPECT_GONE(db, "long");
    set_now(T0 + 4000000u);
    EXPECT_VALUE(db, "never", "ttl 0 beats the default");
    EXPECT_VALUE(db, "plain", "no default now");
    CHECK_U64(count_of(db), 2);
    close_db(db);
    CHECK_CLOCK_CTX();
}

/* 20 keys of 32-byte records (19 + "key00" + "value-00"); the odd ones
 * expire at T0+10. */
static void put_twenty(bc_db *db) {
    char key[16], val[16];
    int i;
    for (i = 0; i < 20; i++) {
        int kl = snprintf(key, sizeof key, "key%02d", i);
        int vl = snprintf(val, sizeof val, "value-%02d", i);
        CHECK_STATUS(bc_put_ttl(db, U8(key), (size_t)kl, U8(val), (size_t)vl, i % 2 ? 10u : 0u),
                     BC_OK);
    }
}

/* The iterator yields exactly the even keys from `from` (inclusive) to
 * `to` (exclusive) with their values. */
static void expect_even_keys(bc_iter *it, int from, int to) {
    char key[16], val[32];
    const uint8_t *k = NULL;
    size_t kl = 0;
    int i;
    for (i = from; i < to; i++) {
        uint8_t *v = NULL;
        size_t vl = 0;
        if (i % 2) continue;
        snprintf(key, sizeof key, "key%02d", i);
        snprintf(val, sizeof val, "value-%02d", i);
        CHECK_STATUS(bc_iter_next(it, &k, &kl), BC_OK);
        CHECK_BYTES(k, kl, key, strlen(key));
        CHECK_STATUS(bc_iter_value(it, &v, &vl), BC_OK);
        CHECK_BYTES(v, vl, val, strlen(val));
        bc_free(v, vl);
    }
    CHECK_STATUS(bc_iter_next(it, &k, &kl), BC_NOT_FOUND);
}

static void test_expired_not_counted_nor_iterated(void) {
    const char *dir = make_temp_dir();
    bc_options *o = clock_opts(0);
    bc_db *db;
    bc_iter *early = NULL, *on_key = NULL, *it = NULL;
    const uint8_t *k = NULL;
    size_t kl = 0;
    uint8_t sentinel = 0, *v = &sentinel;
    size_t vl = 777;
    bc_stats s;

    set_now(T0);
    db = open_db(dir, o);
    bc_options_free(o);
    put_twenty(db);
    s = get_stats(db);
    CHECK_U64(s.live_keys, 20);
    CHECK_U64(s.live_bytes, 20 * 32);
    CHECK_U64(s.dead_bytes, 0);
    CHECK_U64(s.expired_keys, 0);

    /* Iterators made before the expiry. */
    CHECK_STATUS(bc_iter_new(db, NULL, 0, &early), BC_OK);
    CHECK_STATUS(bc_iter_new(db, NULL, 0, &on_key), BC_OK);
    CHECK_STATUS(bc_iter_next(on_key, &k, &kl), BC_OK);
    CHECK_BYTES(k, kl, "key00", 5);
    CHECK_STATUS(bc_iter_next(on_key, &k, &kl), BC_OK);
    CHECK_BYTES(k, kl, "key01", 5);

    set_now(T0 + 10);
    CHECK_U64(count_of(db), 10);
    s = get_stats(db);
    CHECK_U64(s.expired_keys, 10);
    /* Expired records are bytes a merge would reclaim. */
    CHECK_U64(s.live_bytes, 10 * 32);
    CHECK_U64(s.dead_bytes, 10 * 32);
    CHECK_MSG(s.fragmentation > 0.5 - 1e-9 && s.fragmentation < 0.5 + 1e-9,
              "fragmentation = %g, expected 0.5", s.fragmentation);

    /* key01 expired while on_key was on it: no value, outputs untouched;
     * the iteration goes on with the live keys. */
    CHECK_STATUS(bc_iter_value(on_key, &v, &vl), BC_NOT_FOUND);
    CHECK_MSG(v == &sentinel && vl == 777, "bc_iter_value returned BC_NOT_FOUND but wrote outputs");
    expect_even_keys(on_key, 2, 20);
    bc_iter_free(on_key);

    /* Keys that expired after the iterator was made are skipped. */
    expect_even_keys(early, 0, 20);
    bc_iter_free(early);

    /* A new iterator, whole and by prefix. */
    CHECK_STATUS(bc_iter_new(db, NULL, 0, &it), BC_OK);
    expect_even_keys(it, 0, 20);
    bc_iter_free(it);
    CHECK_STATUS(bc_iter_new(db, U8("key1"), 4, &it), BC_OK);
    expect_even_keys(it, 10, 20);
    bc_iter_free(it);
    /* "key01" alone: expired, so nothing. */
    CHECK_STATUS(bc_iter_new(db, U8("key01"), 5, &it), BC_OK);
    CHECK_STATUS(bc_iter_next(it, &k, &kl), BC_NOT_FOUND);
    bc_iter_free(it);
    close_db(db);
    CHECK_CLOCK_CTX();
}

/* bc_stats.live_keys is "keys with a value": an expired key has none (it
 * reads as absent and bc_count, "the number of live keys", leaves it out),
 * so live_keys must agree with bc_count. */
static void test_stats_live_keys_excludes_expired(void) {
    const char *dir = make_temp_dir();
    bc_options *o = clock_opts(0);
    bc_db *db;
    bc_stats s;
    set_now(T0);
    db = open_db(dir, o);
    bc_options_free(o);
    put_twenty(db); /* 10 of them expire at T0+10 */
    CHECK_U64(get_stats(db).live_keys, 20);
    set_now(T0 + 10);
    CHECK_U64(count_of(db), 10);
    s = get_stats(db);
    close_db(db); /* before the checks: a failure leaks nothing under valgrind */
    CHECK_U64(s.expired_keys, 10);
    CHECK_U64(s.live_bytes, 10 * 32);
    CHECK_MSG(s.live_keys == 10,
              "bc_stats.live_keys = %llu, but bc_count = 10 and 10 of the 20 keys have expired "
              "(expired_keys = %llu): live_keys counts expired keys",
              (unsigned long long)s.live_keys, (unsigned long long)s.expired_keys);
    CHECK_CLOCK_CTX();
}

/* bc_merge drops expired records: expired_keys and dead bytes go to 0, the
 * files shrink, and the keys do not return even with the clock moved back. */
static void test_merge_reclaims_expired(void) {
    const char *dir = make_temp_dir();
    bc_options *o = clock_opts(4096);
    bc_db *db;
    bc_stats before, after;
    char key[16], val[80];
    int i, round;
    uint64_t expect_live = 0;

    set_now(T0);
    db = open_db(dir, o);
    for (i = 0; i < 200; i++) {
        int kl = snprintf(key, sizeof key, "k%04d", i);
        int vl = snprintf(val, sizeof val, "value-%04d-..........................................", i);
        CHECK_STATUS(bc_put_ttl(db, U8(key), (size_t)kl, U8(val), (size_t)vl, i % 3 == 0 ? 10u : 0u),
                     BC_OK);
    }
    for (i = 1; i < 200; i += 5) { /* overwrites of keys without a TTL (i % 5 == 1) */
        int kl, vl;
        if (i % 3 == 0) continue;
        kl = snprintf(key, sizeof key, "k%04d", i);
        vl = snprintf(val, sizeof val, "second-%04d", i);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), (size_t)vl), BC_OK);
    }
    set_now(T0 + 10);
    for (i = 0; i < 200; i++)
        if (i % 3 != 0) expect_live++;
    CHECK_U64(count_of(db), expect_live);
    CHECK_STATUS(bc_sync(db), BC_OK);
    before = get_stats(db);
    CHECK_U64(before.expired_keys, 67);
    CHECK_MSG(before.dead_bytes > 0, "dead_bytes is 0 with expired and overwritten records");

    CHECK_STATUS(bc_merge(db), BC_OK);
    CHECK_STATUS(bc_sync(db), BC_OK);
    after = get_stats(db);
    CHECK_U64(after.expired_keys, 0);
    CHECK_U64(after.dead_bytes, 0);
    CHECK_MSG(after.fragmentation == 0.0, "fragmentation after a full merge = %g",
              after.fragmentation);
    CHECK_U64(after.live_keys, expect_live);
    CHECK_U64(after.live_bytes, before.live_bytes);
    CHECK_MSG(after.total_bytes < before.total_bytes,
              "merge did not shrink the files: %llu bytes before, %llu after",
              (unsigned long long)before.total_bytes, (unsigned long long)after.total_bytes);
    CHECK_U64(count_of(db), expect_live);

    for (round = 0; round < 3; round++) {
        /* round 0: this handle; 1: reopened; 2: reopened, clock moved back
         * to the put time (a kept expired record would be visible again) */
        if (round > 0) {
            close_db(db);
            set_now(round == 2 ? T0 : T0 + 10);
            db = open_db(dir, o);
            CHECK_U64(get_stats(db).expired_keys, 0);
        }
        for (i = 0; i < 200; i++) {
            int kl = snprintf(key, sizeof key, "k%04d", i);
            if (i % 3 == 0) {
                EXPECT_GONE(db, key);
            } else if (i % 5 == 1) {
                snprintf(val, sizeof val, "second-%04d", i);
                EXPECT_VALUE(db, key, val);
            } else {
                snprintf(val, sizeof val, "value-%04d-..........................................", i);
                EXPECT_VALUE(db, key, val);
            }
            (void)kl;
        }
        CHECK_U64(count_of(db), expect_live);
    }
    bc_options_free(o);
    close_db(db);
    CHECK_CLOCK_CTX();
}

/* Filler i of `prefix` written with `tag`: its key and value (C strings). */
static void filler(char key[16], char val[128], const char *prefix, int i, const char *tag) {
    snprintf(key, 16, "%s%03d", prefix, i);
    snprintf(val, 128, "%s-%s%03d-........................................................................", tag, prefix, i);
}

static void put_fillers(bc_db *db, const char *prefix, int n, const char *tag) {
    char key[16], val[128];
    int i;
    for (i = 0; i < n; i++) {
        filler(key, val, prefix, i, tag);
        CHECK_STATUS(bc_put(db, U8(key), strlen(key), U8(val), strlen(val)), BC_OK);
    }
}

static void check_fillers(bc_db *db, const char *prefix, int n, const char *tag) {
    char key[16], val[128];
    int i;
    for (i = 0; i < n; i++) {
        filler(key, val, prefix, i, tag);
        EXPECT_VALUE(db, key, val);
    }
}

/* "X" is "old-value" (no TTL) in the oldest file, then "new-value" with a
 * TTL in a newer one. Once the TTL passes, X is absent, and "old-value"
 * must never come back: not at reopen from hints, nor from a scan, nor
 * after a merge, nor with the clock moved back after the merge. */
static void test_expired_never_resurrects(void) {
    const char *dir = make_temp_dir();
    bc_options *o = clock_opts(4096);
    bc_db *db;
    int n;

    set_now(T0);
    db = open_db(dir, o);
    CHECK_STATUS(bc_put(db, K("X"), V("old-value")), BC_OK);
    put_fillers(db, "a", 100, "g1");
    CHECK_STATUS(bc_put_ttl(db, K("X"), V("new-value"), 10), BC_OK);
    put_fillers(db, "b", 100, "g1");
    close_db(db);

    set_now(T0 + 5);
    db = open_db(dir, o);
    EXPECT_VALUE(db, "X", "new-value");
    set_now(T0 + 10);
    EXPECT_GONE(db, "X");
    CHECK_U64(count_of(db), 200);
    close_db(db);

    /* reopen: keydir from the hint files */
    db = open_db(dir, o);
    EXPECT_GONE(db, "X");
    CHECK_U64(count_of(db), 200);
    close_db(db);

    /* reopen: keydir from scanning the data files */
    n = remove_files_with_suffix(dir, ".hint");
    CHECK_MSG(n > 1, "expected several hint files to remove, removed %d", n);
    db = open_db(dir, o);
    EXPECT_GONE(db, "X");
    CHECK_U64(count_of(db), 200);

    CHECK_STATUS(bc_merge(db), BC_OK);
    EXPECT_GONE(db, "X");
    CHECK_U64(count_of(db), 200);
    check_fillers(db, "a", 100, "g1");
    check_fillers(db, "b", 100, "g1");
    close_db(db);

    db = open_db(dir, o);
    EXPECT_GONE(db, "X");
    close_db(db);
    set_now(T0); /* neither value may survive a full merge */
    db = open_db(dir, o);
    EXPECT_GONE(db, "X");
    CHECK_U64(count_of(db), 200);
    check_fillers(db, "a", 100, "g1");
    close_db(db);
    bc_options_free(o);
    CHECK_CLOCK_CTX();
}

/* X is not "old-value": absent, or (with the clock moved back) its
 * expired newer value. */
static void check_not_old(bc_db *db) {
    uint8_t *v = NULL;
    size_t vl = 0;
    bc_status st = bc_get(db, K("X"), &v, &vl);
    if (st == BC_OK) {
        CHECK_MSG(!check_bytes_equal(v, vl, "old-value", 9),
                  "the overwritten value of X came back after its newer value expired");
        CHECK_BYTES(v, vl, "new-value", 9);
        bc_free(v, vl);
    } else {
        CHECK_STATUS(st, BC_NOT_FOUND);
    }
}

/* The same through a partial merge: auto-merge rewrites only the fragmented
 * files (the one holding the expired "new-value" among them) and leaves the
 * oldest file, which still holds "old-value", alone. */
static void test_expired_partial_merge(void) {
    const char *dir = make_temp_dir();
    bc_options *o = clock_opts(4096);
    bc_db *db;
    bc_stats s;
    char oldest[64], oldest_after[64];
    double deadline;
    int done = 0;

    /* merge a file when half of it is dead; never for size or dead bytes alone */
    CHECK_STATUS(bc_options_set_merge_triggers(o, 0.5, UINT64_MAX), BC_OK);
    CHECK_STATUS(bc_options_set_merge_thresholds(o, 0.5, UINT64_MAX, 0), BC_OK);
    set_now(T0);
    db = open_db(dir, o);
    CHECK_STATUS(bc_put(db, K("X"), V("old-value")), BC_OK);
    put_fillers(db, "a", 100, "g1"); /* never overwritten: the oldest file stays unfragmented */
    put_fillers(db, "p", 60, "g1");  /* more than a file: X's TTL record shares no file with "a" */
    CHECK_STATUS(bc_put_ttl(db, K("X"), V("new-value"), 10), BC_OK);
    put_fillers(db, "b", 100, "g1");
    put_fillers(db, "p", 60, "g2"); /* the files around X's TTL record become dead */
    put_fillers(db, "b", 100, "g2");
    close_db(db);
    CHECK(oldest_data_file(dir, oldest, sizeof oldest));

    set_now(T0 + 10);
    CHECK_STATUS(bc_options_set_auto_merge(o, 20), BC_OK);
    db = open_db(dir, o);
    EXPECT_GONE(db, "X");
    deadline = now_seconds() + 20.0;
    while (now_seconds() < deadline) {
        bool needs = true;
        s = get_stats(db);
        CHECK_STATUS(bc_needs_merge(db, &needs), BC_OK);
        if (s.merges > 0 && s.expired_keys == 0 && !needs) {
            done = 1;
            break;
        }
        sleep_ms(10);
    }
    CHECK_MSG(done, "auto-merge did not reclaim the expired record within 20 s (merges %llu, "
                    "expired_keys %llu)",
              (unsigned long long)s.merges, (unsigned long long)s.expired_keys);
    EXPECT_GONE(db, "X");
    CHECK_U64(count_of(db), 260);
    check_fillers(db, "a", 100, "g1");
    check_fillers(db, "p", 60, "g2");
    check_fillers(db, "b", 100, "g2");
    close_db(db);

    /* The merge was partial: the oldest file, holding "old-value", is still there. */
    CHECK(oldest_data_file(dir, oldest_after, sizeof oldest_after));
    CHECK_MSG(strcmp(oldest, oldest_after) == 0,
              "the oldest data file %s was merged (oldest now %s): this test needs a partial merge",
              oldest, oldest_after);

    CHECK_STATUS(bc_options_set_auto_merge(o, 0), BC_OK);
    db = open_db(dir, o);
    EXPECT_GONE(db, "X");
    CHECK_U64(count_of(db), 260);
    close_db(db);

    set_now(T0); /* clock moved back: "new-value" at most, never "old-value" */
    db = open_db(dir, o);
    check_not_old(db);
    close_db(db);

    set_now(T0 + 10);
    db = open_db(dir, o);
    CHECK_STATUS(bc_merge(db), BC_OK);
    EXPECT_GONE(db, "X");
    close_db(db);
    set_now(T0);
    db = open_db(dir, o);
    check_not_old(db);
    CHECK_U64(count_of(db), 260);
    check_fillers(db, "a", 100, "g1");
    check_fillers(db, "p", 60, "g2");
    check_fillers(db, "b", 100, "g2");
    close_db(db);
    bc_options_free(o);
    CHECK_CLOCK_CTX();
}

/* bc_options_set_clock(opts, NULL, NULL) puts the system clock back. */
static void test_null_clock_restores_system_clock(void) {
    const char *dir = make_temp_dir();
    bc_options *o;
    bc_db *db = open_db(dir, NULL); /* the system clock */
    CHECK_STATUS(bc_put_ttl(db, K("hour"), V("expires in an hour"), 3600), BC_OK);
    EXPECT_VALUE(db, "hour", "expires in an hour");
    close_db(db);

    o = make_opts(0, 0, 0);
    CHECK_STATUS(bc_options_set_read_only(o, true), BC_OK);
    CHECK_STATUS(bc_options_set_clock(o, fake_now, &g_clock), BC_OK);
    set_now(4000000000u); /* the year 2096 */
    db = open_db(dir, o);
    EXPECT_GONE(db, "hour");
    CHECK_U64(count_of(db), 0);
    close_db(db);

    CHECK_STATUS(bc_options_set_clock(o, NULL, NULL), BC_OK);
    db = open_db(dir, o);
    EXPECT_VALUE(db, "hour", "expires in an hour");
    CHECK_U64(count_of(db), 1);
    close_db(db);

    /* set again, then restored again: the last call wins */
    CHECK_STATUS(bc_options_set_clock(o, fake_now, &g_clock), BC_OK);
    CHECK_STATUS(bc_options_set_clock(o, NULL, NULL), BC_OK);
    db = open_db(dir, o);
    bc_options_free(o);
    EXPECT_VALUE(db, "hour", "expires in an hour");
    close_db(db);
    CHECK_CLOCK_CTX();
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(test_put_ttl_expires);
    RUN(test_put_ttl_arguments);
    RUN(test_default_ttl);
    RUN(test_expired_not_counted_nor_iterated);
    RUN(test_stats_live_keys_excludes_expired);
    RUN(test_merge_reclaims_expired);
    RUN(test_expired_never_resurrects);
    RUN(test_expired_partial_merge);
    RUN(test_null_clock_restores_system_clock);
    return check_finish();
}
