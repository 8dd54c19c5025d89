/* test_merge.c - bc_merge: empty database, keeps every live value (overwrites,
 * empty values, re-put after delete), deleted keys stay deleted after merge and
 * across reopen (tombstones whose puts live in older files), reclaims space,
 * writes after a merge, merging again after reopen, everything deleted. */
#include "check.h"

enum { N = 300 };

static int make_key(char *buf, size_t cap, int i) { return snprintf(buf, cap, "key%05d", i); }

/* Expected state after populate(): i%4==0 deleted, i%4==1 deleted then put
 * again ("re-%d"), i%4==2 empty value, else generation 2 value. */
static int expected_value(char *buf, size_t cap, int i) {
    switch (i % 4) {
    case 0: return -1;
    case 1: return snprintf(buf, cap, "re-%d", i);
    case 2: buf[0] = '\0'; return 0;
    default: return snprintf(buf, cap, "gen2-value-for-%05d-padding-padding", i);
    }
}

static void populate(bc_db *db) {
    char key[32], val[64];
    int i, g;
    for (g = 0; g < 3; g++) {
        for (i = 0; i < N; i++) {
            int kl = make_key(key, sizeof key, i);
            int vl = snprintf(val, sizeof val, "gen%d-value-for-%05d-padding-padding", g, i);
            CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), (size_t)vl), BC_OK);
        }
    }
    for (i = 0; i < N; i++) {
        int kl = make_key(key, sizeof key, i);
        if (i % 4 == 0 || i % 4 == 1) CHECK_STATUS(bc_delete(db, U8(key), (size_t)kl), BC_OK);
        if (i % 4 == 1) {
            int vl = snprintf(val, sizeof val, "re-%d", i);
            CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), (size_t)vl), BC_OK);
        }
        if (i % 4 == 2) CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, NULL, 0), BC_OK);
    }
}

static void verify(bc_db *db) {
    char key[32], val[64];
    int i;
    for (i = 0; i < N; i++) {
        int kl = make_key(key, sizeof key, i);
        int vl = expected_value(val, sizeof val, i);
        if (vl < 0) {
            CHECK_ABSENT(db, U8(key), (size_t)kl);
        } else {
            CHECK_GET(db, U8(key), (size_t)kl, val, (size_t)vl);
        }
    }
}

static void test_merge_empty_db(void) {
    const char *dir = make_temp_dir();
    bc_db *db = open_db(dir, NULL);
    CHECK_STATUS(bc_merge(db), BC_OK);
    CHECK_STATUS(bc_merge(db), BC_OK);
    CHECK_STATUS(bc_put(db, K("k"), V("v")), BC_OK);
    CHECK_GET(db, K("k"), "v", 1);
    close_db(db);
    db = open_db(dir, NULL);
    CHECK_GET(db, K("k"), "v", 1);
    close_db(db);
}

static void test_merge_keeps_data(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db = open_db(dir, o);
    uint64_t before = 0, after = 0;

    populate(db);
    verify(db);
    CHECK_STATUS(bc_sync(db), BC_OK);
    count_files_with_suffix(dir, ".data", &before, NULL);

    CHECK_STATUS(bc_merge(db), BC_OK);
    verify(db);
    count_files_with_suffix(dir, ".data", &after, NULL);
    CHECK_MSG(after < before, "merge did not reclaim space: %llu data bytes before, %llu after",
              (unsigned long long)before, (unsigned long long)after);

    /* writes after a merge */
    CHECK_STATUS(bc_put(db, K("post-merge"), V("yes")), BC_OK);
    CHECK_GET(db, K("post-merge"), "yes", 3);
    close_db(db);

    db = open_db(dir, o);
    verify(db);
    CHECK_GET(db, K("post-merge"), "yes", 3);
    CHECK_STATUS(bc_merge(db), BC_OK); /* merge again after reopen */
    verify(db);
    close_db(db);

    db = open_db(dir, o);
    bc_options_free(o);
    verify(db);
    CHECK_GET(db, K("post-merge"), "yes", 3);
    close_db(db);
}

/* The put of "victim" lives in an old file, its tombstone in a newer one:
 * after merge the key must not come back (Riak #82, rosedb #258). */
static void test_deleted_stays_deleted(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db = open_db(dir, o);
    char key[32];
    int i, round;

    CHECK_STATUS(bc_put(db, K("victim"), V("should-stay-deleted")), BC_OK);
    for (i = 0; i < 200; i++) {
        int kl = snprintf(key, sizeof key, "filler-a-%d", i);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, V("0123456789abcdef0123456789abcdef")), BC_OK);
    }
    CHECK_STATUS(bc_delete(db, K("victim")), BC_OK);
    for (i = 0; i < 200; i++) {
        int kl = snprintf(key, sizeof key, "filler-b-%d", i);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, V("0123456789abcdef0123456789abcdef")), BC_OK);
    }
    CHECK_STATUS(bc_merge(db), BC_OK);
    CHECK_ABSENT(db, K("victim"));
    close_db(db);

    for (round = 0; round < 3; round++) {
        db = open_db(dir, o);
        CHECK_ABSENT(db, K("victim"));
        CHECK_GET(db, K("filler-a-7"), "0123456789abcdef0123456789abcdef", 32);
        CHECK_GET(db, K("filler-b-199"), "0123456789abcdef0123456789abcdef", 32);
        if (round == 0) {
            /* more churn so a second merge has old files to rewrite */
            for (i = 0; i < 200; i++) {
                int kl = snprintf(key, sizeof key, "filler-a-%d", i);
                CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, V("0123456789abcdef0123456789abcdef")),
                             BC_OK);
            }
        }
        CHECK_STATUS(bc_merge(db), BC_OK);
        CHECK_ABSENT(db, K("victim"));
        close_db(db);
    }
    bc_options_free(o);
}

static void test_everything_deleted(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db = open_db(dir, o);
    char key[32];
    int i;
    for (i = 0; i < 100; i++) {
        int kl = snprintf(key, sizeof key, "k%d", i);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, V("some value bytes")), BC_OK);
    }
    for (i = 0; i < 100; i++) {
        int kl = snprintf(key, sizeof key, "k%d", i);
        CHECK_STATUS(bc_delete(db, U8(key), (size_t)kl), BC_OK);
    }
    CHECK_STATUS(bc_merge(db), BC_OK);
    close_db(db);
    db = open_db(dir, o);
    bc_options_free(o);
    for (i = 0; i < 100; i++) {
        int kl = snprintf(key, sizeof key, "k%d", i);
        CHECK_ABSENT(db, U8(key), (size_t)kl);
        CHECK_STATUS(bc_delete(db, U8(key), (size_t)kl), BC_NOT_FOUND);
    }
    CHECK_STATUS(bc_merge(db), BC_OK);
    close_db(db);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(test_merge_empty_db);
    RUN(test_merge_keeps_data);
    RUN(test_deleted_stays_deleted);
    RUN(test_everything_deleted);
    return check_finish();
}
