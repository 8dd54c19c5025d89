/* test_merge_policy.c - merge triggers, thresholds, bc_needs_merge and
 * auto-merge: bc_options_set_merge_triggers / _set_merge_thresholds (NULL,
 * fractions outside 0..1 and NaN; set in either order, a trigger below its
 * threshold fails bc_open naming both; boundaries; a rejected call keeps
 * the previous values), bc_options_set_auto_merge, bc_needs_merge (NULL
 * arguments, outputs untouched, false on a fresh database, only sealed
 * files count (files are sealed after rotation and at close), exact boundaries
 * of the fragmentation and dead-bytes triggers, false after bc_merge, a
 * read-only handle), auto-merge off (0 / default) never merges, auto-merge
 * on merges a fragmented database in the background with the data exact,
 * bc_close during auto-merge returns promptly with nothing lost, and
 * bc_stats.fragmentation (0 empty, exact ratio, 1 when all is dead, 0
 * after a full merge). */
#define _GNU_SOURCE
#include "check.h"

#include <math.h>
#include <stdatomic.h>
#include <sys/syscall.h>

/* A slow disk on demand: this program's fsync and fdatasync come first in
 * symbol lookup, so the library's calls land here. */
static atomic_int slow_syncs_us;
static int slow_sync(long nr, int fd) {
    int us = atomic_load(&slow_syncs_us);
    if (us > 0) usleep((useconds_t)us);
    return (int)syscall(nr, fd);
}
int fsync(int fd) { return slow_sync(SYS_fsync, fd); }
int fdatasync(int fd) { return slow_sync(SYS_fdatasync, fd); }

static int needs_merge(bc_db *db) {
    bool b = false;
    CHECK_STATUS(bc_needs_merge(db, &b), BC_OK);
    return b ? 1 : 0;
}

#define CHECK_NEEDS(db, expected)                                                         \
    do {                                                                                  \
        int cn_got_ = needs_merge(db), cn_exp_ = (expected);                              \
        CHECK_MSG(cn_got_ == cn_exp_, "bc_needs_merge = %s, expected %s",                 \
                  cn_got_ ? "true" : "false", cn_exp_ ? "true" : "false");                \
    } while (0)

/* A read-only handle on dir gives the same bc_needs_merge answer (o is
 * left as it was, read-write). */
static void check_needs_read_only(const char *dir, bc_options *o, int expected) {
    bc_db *db;
    CHECK_STATUS(bc_options_set_read_only(o, true), BC_OK);
    db = open_db(dir, o);
    CHECK_NEEDS(db, expected);
    close_db(db);
    CHECK_STATUS(bc_options_set_read_only(o, false), BC_OK);
}

/* Records of 19 + 8 + 100 = 127 bytes: "key%05d" and a 100-byte value. */
enum { VLEN = 100, REC = 19 + 8 + VLEN };

static void make_value(char *buf, int i, int gen) {
    int n = snprintf(buf, VLEN + 1, "gen%d-key%05d-", gen, i);
    memset(buf + n, 'a' + (i + gen) % 26, (size_t)(VLEN - n));
    buf[VLEN] = '\0';
}

static void put_key(bc_db *db, int i, int gen) {
    char key[16], val[VLEN + 1];
    snprintf(key, sizeof key, "key%05d", i);
    make_value(val, i, gen);
    CHECK_STATUS(bc_put(db, U8(key), 8, U8(val), VLEN), BC_OK);
}

/* Every key in [0, n) holds generation gen[i] (or is absent if gen[i] < 0). */
static void verify_model(bc_db *db, const int *gen, int n) {
    char key[16], val[VLEN + 1];
    int i;
    uint64_t live = 0, count = 0;
    for (i = 0; i < n; i++) {
        snprintf(key, sizeof key, "key%05d", i);
        if (gen[i] < 0) {
            CHECK_ABSENT(db, U8(key), 8);
        } else {
            make_value(val, i, gen[i]);
            CHECK_GET(db, U8(key), 8, val, VLEN);
            live++;
        }
    }
    CHECK_STATUS(bc_count(db, &count), BC_OK);
    CHECK_MSG(count == live, "bc_count = %llu, expected %llu", (unsigned long long)count,
              (unsigned long long)live);
}

/* The size of the oldest data file of dir (the one with the smallest id). */
static uint64_t oldest_data_file_size(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char best[256] = "";
    struct stat st;
    if (d == NULL) return 0;
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (nl == 21 && strcmp(e->d_name + 16, ".data") == 0 &&
            (best[0] == '\0' || strcmp(e->d_name, best) < 0))
            snprintf(best, sizeof best, "%s", e->d_name);
    }
    closedir(d);
    if (best[0] == '\0' || stat(path_join(dir, best), &st) != 0) return 0;
    return (uint64_t)st.st_size;
}

/* ------------------------------------------------------------------------ */

/* bc_open of dir with o fails with `want`, its message containing
 * `needle`, and leaves its output alone. */
static void open_fails(const char *dir, const bc_options *o, bc_status want, const char *needle) {
    bc_db *sentinel = (bc_db *)&sentinel, *db = sentinel;
    CHECK_STATUS(bc_open(dir, o, &db), want);
    CHECK(db == sentinel);
    CHECK_STR_CONTAINS(bc_last_error(), needle);
}

static void test_option_values(void) {
    bc_options *o = make_opts(0, 0, 0);
    bc_db *db;
    const char *dir = make_temp_dir();
    double nan = NAN;

    CHECK_STATUS(bc_options_set_merge_triggers(NULL, 0.6, 1000), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_merge_thresholds(NULL, 0.4, 100, 100), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_auto_merge(NULL, 20), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_max_open_files(NULL, 64), BC_INVALID_ARGUMENT);

    /* fractions outside 0..1 */
    CHECK_STATUS(bc_options_set_merge_triggers(o, -0.01, 1ull << 30), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_merge_triggers(o, 1.01, 1ull << 30), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_merge_triggers(o, 2.0, 1ull << 30), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_merge_triggers(o, -INFINITY, 1ull << 30), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_merge_triggers(o, INFINITY, 1ull << 30), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_merge_triggers(o, nan, 1ull << 30), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_merge_thresholds(o, -0.01, 0, 0), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_merge_thresholds(o, 1.01, 0, 0), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_merge_thresholds(o, nan, 0, 0), BC_INVALID_ARGUMENT);

    /* Triggers and thresholds are set in either order; bc_open refuses a
     * trigger below its threshold (defaults: triggers 0.6 / 512 MiB,
     * thresholds 0.4 / 128 MiB / 10 MiB). */
    CHECK_STATUS(bc_options_set_merge_triggers(o, 0.3, 1ull << 20), BC_OK);
    open_fails(dir, o, BC_INVALID_ARGUMENT, "thresholds (fragmentation 0.4");
    CHECK_STATUS(bc_options_set_merge_thresholds(o, 0.3, 1ull << 20, 5), BC_OK); /* equal: fine */
    db = open_db(dir, o);
    close_db(db);
    CHECK_STATUS(bc_options_set_merge_thresholds(o, 0.31, 1ull << 20, 5), BC_OK);
    open_fails(dir, o, BC_INVALID_ARGUMENT, "fragmentation 0.31");
    CHECK_STATUS(bc_options_set_merge_thresholds(o, 0.3, (1ull << 20) + 1, 5), BC_OK);
    open_fails(dir, o, BC_INVALID_ARGUMENT, "dead bytes 1048577");
    CHECK_STATUS(bc_options_set_merge_thresholds(o, 0.0, 0, UINT64_MAX), BC_OK);
    CHECK_STATUS(bc_options_set_merge_triggers(o, 0.0, 0), BC_OK); /* the most eager */
    db = open_db(dir, o);
    close_db(db);
    CHECK_STATUS(bc_options_set_merge_triggers(o, 1.0, UINT64_MAX), BC_OK);
    CHECK_STATUS(bc_options_set_merge_thresholds(o, 1.0, UINT64_MAX, UINT64_MAX), BC_OK);
    db = open_db(dir, o);
    close_db(db);

    /* A rejected call keeps the previous values: had the out-of-range
     * thresholds' dead bytes (2000, above the trigger's 1000) stuck, the
     * open would fail. */
    CHECK_STATUS(bc_options_set_merge_triggers(o, 0.5, 1000), BC_OK);
    CHECK_STATUS(bc_options_set_merge_thresholds(o, 0.3, 10, 0), BC_OK);
    CHECK_STATUS(bc_options_set_merge_thresholds(o, 1.5, 2000, 0), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_merge_triggers(o, -1.0, 5), BC_INVALID_ARGUMENT);
    db = open_db(dir, o);
    close_db(db);

    CHECK_STATUS(bc_options_set_auto_merge(o, 0), BC_OK);
    CHECK_STATUS(bc_options_set_auto_merge(o, 1), BC_OK);
    CHECK_STATUS(bc_options_set_auto_merge(o, UINT32_MAX), BC_OK);
    CHECK_STATUS(bc_options_set_auto_merge(o, 20), BC_OK);

    /* options with all of these open */
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_STATUS(bc_put(db, K("k"), V("v")), BC_OK);
    CHECK_GET(db, K("k"), "v", 1);
    close_db(db);
}

static void test_needs_merge_arguments(void) {
    const char *dir = make_temp_dir();
    bc_db *db = open_db(dir, NULL);
    bc_options *o;
    bool b = true;

    CHECK_STATUS(bc_needs_merge(NULL, &b), BC_INVALID_ARGUMENT);
    CHECK(b == true);
    b = false;
    CHECK_STATUS(bc_needs_merge(NULL, &b), BC_INVALID_ARGUMENT);
    CHECK(b == false);
    CHECK_STATUS(bc_needs_merge(db, NULL), BC_INVALID_ARGUMENT);

    b = true; /* a fresh database needs no merge */
    CHECK_STATUS(bc_needs_merge(db, &b), BC_OK);
    CHECK(b == false);
    CHECK_STATUS(bc_merge(db), BC_OK);
    CHECK_NEEDS(db, 0);
    close_db(db);

    /* nor a reopened empty one, nor a read-only handle on it */
    o = make_opts(0, 0, 0);
    CHECK_STATUS(bc_options_set_merge_thresholds(o, 0.0, 0, 0), BC_OK);
    CHECK_STATUS(bc_options_set_merge_triggers(o, 0.0, 0), BC_OK); /* the most eager triggers */
    db = open_db(dir, o);
    CHECK_NEEDS(db, 0);
    close_db(db);
    check_needs_read_only(dir, o, 0);
    bc_options_free(o);
}

/* Only immutable files count: with a large max_file_size everything is in
 * the active file until close seals it. */
static void test_needs_merge_sealed_files_only(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(0, 0, 0); /* defaults: trigger at 60% dead */
    bc_db *db = open_db(dir, o);
    static int gen[100];
    int i;

    for (i = 0; i < 100; i++) put_key(db, i, gen[i] = 0);
    for (i = 0; i < 100; i++) put_key(db, i, gen[i] = 1);
    for (i = 0; i < 100; i++) put_key(db, i, gen[i] = 2);
    CHECK_NEEDS(db, 0); /* 2/3 dead, but in the active file */
    CHECK_STATUS(bc_sync(db), BC_OK);
    CHECK_NEEDS(db, 0);
    close_db(db);

    db = open_db(dir, o); /* the file was sealed at close */
    CHECK_NEEDS(db, 1);
    verify_model(db, gen, 100);
    close_db(db);

    check_needs_read_only(dir, o, 1);

    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_STATUS(bc_merge(db), BC_OK);
    CHECK_NEEDS(db, 0);
    verify_model(db, gen, 100);
    close_db(db);
}

/* Rotation seals files: overwriting most keys of a many-file database
 * makes the old files dead; bc_merge clears it. */
static void test_needs_merge_after_overwrites(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0); /* 32 records per file */
    bc_db *db = open_db(dir, o);
    static int gen[300];
    int i;

    /* Rotation retires files, but the background thread seals them a
     * little later; a reopen makes every existing file sealed at once, so
     * each step below starts from a known state. */
    for (i = 0; i < 300; i++) put_key(db, i, gen[i] = 0);
    CHECK_NEEDS(db, 0); /* nothing dead */
    close_db(db);
    db = open_db(dir, o);
    CHECK_NEEDS(db, 0); /* sealed files, nothing dead */
    for (i = 0; i < 300; i += 10) put_key(db, i, gen[i] = 1);
    CHECK_NEEDS(db, 0); /* about 10% dead per file: below the 60% trigger */
    close_db(db);
    db = open_db(dir, o);
    CHECK_NEEDS(db, 0);
    for (i = 0; i < 300; i++)
        if (i % 10 != 0 && i % 10 != 5) put_key(db, i, gen[i] = 2);
    CHECK_NEEDS(db, 1); /* the first files 90% dead */
    verify_model(db, gen, 300);
    close_db(db);

    db = open_db(dir, o); /* reopened: the dead bytes are known again */
    CHECK_NEEDS(db, 1);
    CHECK_STATUS(bc_merge(db), BC_OK);
    CHECK_NEEDS(db, 0);
    verify_model(db, gen, 300);
    close_db(db);
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_NEEDS(db, 0);
    verify_model(db, gen, 300);
    close_db(db);
}

/* Exact trigger boundaries on the oldest file ("at least"). */
static void test_trigger_boundaries(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db;
    static int gen[100];
    uint64_t size;
    int i, n, half;

    /* fragmentation trigger 0.5 (dead-bytes trigger out of reach) */
    CHECK_STATUS(bc_options_set_merge_thresholds(o, 0.5, 0, 0), BC_OK);
    CHECK_STATUS(bc_options_set_merge_triggers(o, 0.5, UINT64_MAX), BC_OK);
    db = open_db(dir, o);
    for (i = 0; i < 100; i++) put_key(db, i, gen[i] = 0);
    close_db(db); /* every file sealed (rotated files are sealed in the background) */
    db = open_db(dir, o);
    size = oldest_data_file_size(dir);
    CHECK_MSG(size > 16 && (size - 16) % REC == 0, "oldest data file is %llu bytes, not a "
              "16-byte header and %d-byte records", (unsigned long long)size, REC);
    n = (int)((size - 16) / REC); /* records in the oldest file: keys 0 .. n-1 */
    CHECK_MSG(n >= 8 && n < 100, "%d records in the oldest file", n);
    half = (n + 1) / 2;           /* the fewest overwrites reaching 50% */
    for (i = 0; i < half - 1; i++) put_key(db, i, gen[i] = 1);
    CHECK_NEEDS(db, 0);           /* (half-1)/n < 0.5 */
    put_key(db, half - 1, gen[half - 1] = 1);
    CHECK_NEEDS(db, 1);           /* half/n >= 0.5 */
    verify_model(db, gen, 100);
    close_db(db);

    /* dead-bytes trigger 3 records (fragmentation trigger out of reach) */
    dir = make_temp_dir();
    CHECK_STATUS(bc_options_set_merge_triggers(o, 1.0, UINT64_MAX), BC_OK);
    CHECK_STATUS(bc_options_set_merge_thresholds(o, 0.5, 0, 0), BC_OK);
    CHECK_STATUS(bc_options_set_merge_triggers(o, 1.0, 3 * REC), BC_OK);
    db = open_db(dir, o);
    for (i = 0; i < 100; i++) put_key(db, i, gen[i] = 0);
    close_db(db);
    db = open_db(dir, o);
    bc_options_free(o);
    put_key(db, 0, gen[0] = 1);
    put_key(db, 1, gen[1] = 1);
    CHECK_NEEDS(db, 0); /* 2 records dead */
    put_key(db, 1, gen[1] = 2); /* dead in the active file: does not count */
    CHECK_NEEDS(db, 0);
    put_key(db, 2, gen[2] = 1);
    CHECK_NEEDS(db, 1); /* 3 records dead in the oldest file */
    verify_model(db, gen, 100);
    CHECK_STATUS(bc_merge(db), BC_OK);
    CHECK_NEEDS(db, 0);
    verify_model(db, gen, 100);
    close_db(db);
}

/* A fragmented database made with auto-merge off; returns its stats as
 * seen by a read-only handle. */
static bc_stats make_fragmented(const char *dir, int *gen, int n) {
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db = open_db(dir, o);
    bc_stats s;
    int i;
    for (i = 0; i < n; i++) put_key(db, i, gen[i] = 0);
    for (i = 0; i < n; i++) put_key(db, i, gen[i] = 1);
    for (i = 0; i < n; i += 3) put_key(db, i, gen[i] = 2);
    for (i = 1; i < n; i += 7) {
        char key[16];
        snprintf(key, sizeof key, "key%05d", i);
        CHECK_STATUS(bc_delete(db, U8(key), 8), BC_OK);
        gen[i] = -1;
    }
    close_db(db);
    CHECK_STATUS(bc_options_set_read_only(o, true), BC_OK);
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_NEEDS(db, 1);
    s = get_stats(db);
    close_db(db);
    return s;
}

static void test_auto_merge_off(void) {
    static int gen[300];
    int round;
    for (round = 0; round < 2; round++) {
        const char *dir = make_temp_dir();
        bc_stats before = make_fragmented(dir, gen, 300), after;
        bc_options *o = make_opts(4096, 0, 0);
        bc_db *db;
        if (round == 1) {
            CHECK_STATUS(bc_options_set_auto_merge(o, 20), BC_OK);
            CHECK_STATUS(bc_options_set_auto_merge(o, 0), BC_OK); /* 0 turns it off again */
        } /* round 0: the default */
        db = open_db(dir, o);
        bc_options_free(o);
        sleep_ms(150); /* auto-merge on would have had 7 turns */
        after = get_stats(db);
        CHECK_MSG(after.merges == 0, "round %d: %llu merges with auto-merge off", round,
                  (unsigned long long)after.merges);
        CHECK_NEEDS(db, 1);
        CHECK_MSG(after.total_bytes == before.total_bytes && after.dead_bytes == before.dead_bytes,
                  "round %d: files changed with auto-merge off", round);
        verify_model(db, gen, 300);
        close_db(db);
    }
}

static void test_auto_merge_runs(void) {
    const char *dir = make_temp_dir();
    static int gen[400];
    bc_stats before = make_fragmented(dir, gen, 400), s;
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db;
    double deadline;
    int i, merged = 0, settled = 0;

    CHECK_STATUS(bc_options_set_auto_merge(o, 20), BC_OK);
    db = open_db(dir, o);
    deadline = now_seconds() + 20.0;
    while (now_seconds() < deadline) {
        s = get_stats(db);
        if (s.merges > 0) {
            merged = 1;
            break;
        }
        sleep_ms(10);
    }
    CHECK_MSG(merged, "no background merge within 20 s of opening a fragmented database with "
                      "auto-merge every 20 ms");
    verify_model(db, gen, 400);

    /* keep writing while it may merge again */
    for (i = 0; i < 400; i++)
        if (i % 2 == 0) put_key(db, i, gen[i] = 3);
    for (i = 5; i < 400; i += 50) {
        char key[16];
        snprintf(key, sizeof key, "key%05d", i);
        if (gen[i] >= 0) {
            CHECK_STATUS(bc_delete(db, U8(key), 8), BC_OK);
            gen[i] = -1;
        }
    }
    verify_model(db, gen, 400);

    /* it settles: nothing left to trigger */
    deadline = now_seconds() + 20.0;
    while (now_seconds() < deadline) {
        if (!needs_merge(db)) {
            settled = 1;
            break;
        }
        sleep_ms(10);
    }
    CHECK_MSG(settled, "bc_needs_merge still true 20 s after the writes with auto-merge on");
    s = get_stats(db);
    CHECK_MSG(s.dead_bytes < before.dead_bytes,
              "dead bytes did not drop: %llu before auto-merge, %llu after",
              (unsigned long long)before.dead_bytes, (unsigned long long)s.dead_bytes);
    CHECK_MSG(s.fragmentation < before.fragmentation,
              "fragmentation did not drop: %g before auto-merge, %g after", before.fragmentation,
              s.fragmentation);
    verify_model(db, gen, 400);
    close_db(db);

    CHECK_STATUS(bc_options_set_auto_merge(o, 0), BC_OK);
    db = open_db(dir, o);
    bc_options_free(o);
    verify_model(db, gen, 400);
    close_db(db);
}

/* bc_close with auto-merge running (every 1 ms, on a database with lots to
 * merge) returns promptly and BC_OK; nothing is lost, no *.tmp is left. */
static void test_close_during_auto_merge(void) {
    const char *dir = make_temp_dir();
    const int n = under_valgrind() ? 500 : 1000;
    static int gen[1000];
    const long waits_ms[4] = {0, 2, 10, 40};
    double limit = under_valgrind() ? 60.0 : 5.0;
    int round;

    make_fragmented(dir, gen, n);
    for (round = 0; round < 4; round++) {
        bc_options *o = make_opts(4096, 0, 0);
        bc_db *db;
        double t;
        int i;
        CHECK_STATUS(bc_options_set_auto_merge(o, 1), BC_OK);
        db = open_db(dir, o);
        bc_options_free(o);
        verify_model(db, gen, n); /* reads while the merge runs */
        for (i = round; i < n; i += 4) /* more to merge next time */
            if (gen[i] >= 0) put_key(db, i, ++gen[i]);
        sleep_ms(waits_ms[round]);
        t = now_seconds();
        close_db(db);
        t = now_seconds() - t;
        CHECK_MSG(t < limit, "round %d: bc_close with auto-merge on took %.2f s", round, t);
    }
    {
        bc_db *db = open_db(dir, NULL); /* no auto-merge: no new *.tmp */
        CHECK_MSG(count_files_with_suffix(dir, ".tmp", NULL, NULL) == 0,
                  "*.tmp files left after a read-write open");
        verify_model(db, gen, n);
        close_db(db);
    }
}

/* On a slow disk (each fsync 20 ms) a merge of the fragmented database
 * takes seconds: about 30 outputs of 4 KiB, each synced, renamed and
 * hinted. bc_close while it writes (a *.tmp is there) stops it at the next
 * input file and returns in well under a second, BC_OK, with nothing lost
 * and no merge counted. */
static void test_close_stops_a_slow_auto_merge(void) {
    const char *dir = make_temp_dir();
    static int gen[1000];
    const int n = under_valgrind() ? 500 : 1000;
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db;
    double t, deadline;
    make_fragmented(dir, gen, n);
    CHECK_STATUS(bc_options_set_auto_merge(o, 1), BC_OK);
    atomic_store(&slow_syncs_us, 20000);
    db = open_db(dir, o);
    bc_options_free(o);
    deadline = now_seconds() + 10.0;
    while (count_files_with_suffix(dir, ".tmp", NULL, NULL) == 0 && now_seconds() < deadline)
        sleep_ms(1);
    CHECK_MSG(count_files_with_suffix(dir, ".tmp", NULL, NULL) > 0,
              "no merge output appeared within 10 s");
    CHECK_MSG(get_stats(db).merges == 0, "the merge finished before close was called");
    t = now_seconds();
    close_db(db);
    t = now_seconds() - t;
    atomic_store(&slow_syncs_us, 0);
    CHECK_MSG(t < (under_valgrind() ? 5.0 : 1.0),
              "bc_close took %.2f s to stop a merge on a slow disk", t);
    db = open_db(dir, NULL);
    CHECK_MSG(count_files_with_suffix(dir, ".tmp", NULL, NULL) == 0,
              "*.tmp files left after a read-write open");
    verify_model(db, gen, n);
    close_db(db);
}

#define CHECK_FRAG(got, expected)                                                         \
    CHECK_MSG((got) - (expected) < 1e-9 && (expected) - (got) < 1e-9, "fragmentation = %.12g, expected %.12g",   \
              (double)(got), (double)(expected))

static void test_fragmentation_stat(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db = open_db(dir, o);
    bc_stats s;
    int i;

    s = get_stats(db);
    CHECK_FRAG(s.fragmentation, 0.0); /* empty */
    CHECK(s.expired_keys == 0);

    for (i = 0; i < 40; i++) put_key(db, i, 0);
    s = get_stats(db);
    CHECK_FRAG(s.fragmentation, 0.0); /* nothing dead */
    for (i = 0; i < 10; i++) put_key(db, i, 1);
    s = get_stats(db);
    CHECK(s.dead_bytes == 10 * REC && s.live_bytes == 40 * REC);
    CHECK_FRAG(s.fragmentation, 10.0 / 50.0);
    for (i = 10; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof key, "key%05d", i);
        CHECK_STATUS(bc_delete(db, U8(key), 8), BC_OK);
    }
    s = get_stats(db); /* 10 more dead records and 10 tombstones of 19 + 8 */
    CHECK(s.live_bytes == 30 * REC && s.dead_bytes == 20 * REC + 10 * 27);
    CHECK_FRAG(s.fragmentation, (20.0 * REC + 270.0) / (50.0 * REC + 270.0));
    CHECK(s.fragmentation > 0.0 && s.fragmentation < 1.0);

    CHECK_STATUS(bc_merge(db), BC_OK);
    s = get_stats(db);
    CHECK(s.dead_bytes == 0 && s.live_bytes == 30 * REC);
    CHECK_FRAG(s.fragmentation, 0.0);

    for (i = 0; i < 40; i++) { /* everything deleted: all dead */
        char key[16];
        snprintf(key, sizeof key, "key%05d", i);
        if (i < 10 || i >= 20) CHECK_STATUS(bc_delete(db, U8(key), 8), BC_OK);
    }
    s = get_stats(db);
    CHECK(s.live_bytes == 0 && s.live_keys == 0);
    CHECK_FRAG(s.fragmentation, 1.0);
    CHECK_STATUS(bc_merge(db), BC_OK);
    s = get_stats(db); /* empty again */
    CHECK(s.live_bytes == 0 && s.dead_bytes == 0);
    CHECK_FRAG(s.fragmentation, 0.0);
    close_db(db);

    db = open_db(dir, o);
    bc_options_free(o);
    s = get_stats(db);
    CHECK_FRAG(s.fragmentation, 0.0);
    CHECK(s.live_keys == 0);
    close_db(db);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(test_option_values);
    RUN(test_needs_merge_arguments);
    RUN(test_needs_merge_sealed_files_only);
    RUN(test_needs_merge_after_overwrites);
    RUN(test_trigger_boundaries);
    RUN(test_auto_merge_off);
    RUN(test_auto_merge_runs);
    RUN(test_close_during_auto_merge);
    RUN(test_close_stops_a_slow_auto_merge);
    RUN(test_fragmentation_stat);
    return check_finish();
}
