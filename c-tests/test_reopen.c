/* test_reopen.c - data survives close + reopen (overwrites, deletes, empty and
 * binary values, many rotated files), writes after a reopen, *.tmp files
 * removed on open, data file header magic, no descriptor leaks. */
#include "check.h"

static void fill(bc_db *db) {
    static const uint8_t bkey[4] = {0, 1, 0, 2};
    static const uint8_t bval[5] = {0, 0, 'z', 0, 0xff};
    CHECK_STATUS(bc_put(db, K("alpha"), V("1")), BC_OK);
    CHECK_STATUS(bc_put(db, K("beta"), V("2")), BC_OK);
    CHECK_STATUS(bc_put(db, K("alpha"), V("one")), BC_OK);
    CHECK_STATUS(bc_put(db, K("gamma"), V("3")), BC_OK);
    CHECK_STATUS(bc_delete(db, K("gamma")), BC_OK);
    CHECK_STATUS(bc_put(db, K("empty"), NULL, 0), BC_OK);
    CHECK_STATUS(bc_put(db, bkey, sizeof bkey, bval, sizeof bval), BC_OK);
}

static void verify(bc_db *db) {
    static const uint8_t bkey[4] = {0, 1, 0, 2};
    static const uint8_t bval[5] = {0, 0, 'z', 0, 0xff};
    CHECK_GET(db, K("alpha"), "one", 3);
    CHECK_GET(db, K("beta"), "2", 1);
    CHECK_ABSENT(db, K("gamma"));
    CHECK_GET(db, K("empty"), "", 0);
    CHECK_STATUS(bc_contains(db, K("empty")), BC_OK);
    CHECK_GET(db, bkey, sizeof bkey, bval, sizeof bval);
    CHECK_STATUS(bc_delete(db, K("gamma")), BC_NOT_FOUND);
}

static void test_reopen_keeps_data(void) {
    const char *dir = make_temp_dir();
    bc_db *db = open_db(dir, NULL);
    fill(db);
    verify(db);
    close_db(db);

    db = open_db(dir, NULL);
    verify(db);
    /* write after reopen, then reopen again */
    CHECK_STATUS(bc_put(db, K("delta"), V("4")), BC_OK);
    CHECK_STATUS(bc_put(db, K("beta"), V("two")), BC_OK);
    CHECK_STATUS(bc_delete(db, K("alpha")), BC_OK);
    close_db(db);

    db = open_db(dir, NULL);
    CHECK_ABSENT(db, K("alpha"));
    CHECK_GET(db, K("beta"), "two", 3);
    CHECK_GET(db, K("delta"), "4", 1);
    CHECK_GET(db, K("empty"), "", 0);
    CHECK_ABSENT(db, K("gamma"));
    close_db(db);
}

/* Many small files; deletes whose puts live in older files. */
static void test_reopen_after_rotation(void) {
    enum { N = 500 };
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db = open_db(dir, o);
    char key[16], val[48];
    int i, round;

    for (round = 0; round < 2; round++) {
        for (i = 0; i < N; i++) {
            int kl = snprintf(key, sizeof key, "k%04d", i);
            int vl = snprintf(val, sizeof val, "r%d-v%04d", round, i);
            CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), (size_t)vl), BC_OK);
        }
    }
    for (i = 0; i < N; i += 3) {
        int kl = snprintf(key, sizeof key, "k%04d", i);
        CHECK_STATUS(bc_delete(db, U8(key), (size_t)kl), BC_OK);
    }
    close_db(db);
    CHECK_MSG(count_files_with_suffix(dir, ".data", NULL, NULL) > 1, "expected several data files");

    for (round = 0; round < 2; round++) {
        db = open_db(dir, o);
        for (i = 0; i < N; i++) {
            int kl = snprintf(key, sizeof key, "k%04d", i);
            if (i % 3 == 0) {
                CHECK_ABSENT(db, U8(key), (size_t)kl);
            } else {
                int vl = snprintf(val, sizeof val, "r1-v%04d", i);
                CHECK_GET(db, U8(key), (size_t)kl, val, (size_t)vl);
            }
        }
        close_db(db);
    }
    bc_options_free(o);
}

static void test_tmp_files_removed_on_open(void) {
    const char *dir = make_temp_dir();
    const char *tmp = path_join(dir, "000000000000fffe.data.tmp");
    bc_db *db = open_db(dir, NULL);
    FILE *f;
    CHECK_STATUS(bc_put(db, K("k"), V("v")), BC_OK);
    close_db(db);
    f = fopen(tmp, "wb");
    CHECK(f != NULL);
    fputs("half-written merge output", f);
    fclose(f);
    db = open_db(dir, NULL);
    CHECK_MSG(!path_exists(tmp), "%s still exists after a read-write bc_open", tmp);
    CHECK_GET(db, K("k"), "v", 1);
    close_db(db);
}

/* Every data file starts with "BITCASKD" + u32 LE format version 1. */
static void test_data_file_header(void) {
    const char *dir = make_temp_dir();
    bc_db *db = open_db(dir, NULL);
    DIR *d;
    struct dirent *e;
    int seen = 0;
    CHECK_STATUS(bc_put(db, K("k"), V("v")), BC_OK);
    close_db(db);
    d = opendir(dir);
    CHECK(d != NULL);
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        unsigned char hdr[16];
        char full[4096];
        FILE *f;
        size_t got;
        if (n < 5 || strcmp(e->d_name + n - 5, ".data") != 0) continue;
        CHECK_MSG(n == 21, "data file name \"%s\" is not {id:016x}.data", e->d_name);
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        f = fopen(full, "rb");
        CHECK(f != NULL);
        got = fread(hdr, 1, sizeof hdr, f);
        fclose(f);
        if (got == 0) continue; /* an empty, not-yet-written active file is acceptable */
        CHECK_MSG(got == 16, "%s: header is %zu bytes, expected 16", e->d_name, got);
        CHECK_BYTES(hdr, 8, "BITCASKD", 8);
        CHECK_MSG(hdr[8] == 1 && hdr[9] == 0 && hdr[10] == 0 && hdr[11] == 0,
                  "%s: format version is not u32 LE 1", e->d_name);
        seen++;
    }
    closedir(d);
    CHECK_MSG(seen >= 1, "no non-empty data file found in %s", dir);
}

static int count_open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    if (d == NULL) return -1;
    while ((e = readdir(d)) != NULL) n++;
    closedir(d);
    return n;
}

/* Open/put/merge/close cycles leave no file descriptor behind. */
static void test_no_fd_leak(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0);
    int before, after, i, j;
    char key[16];
    bc_db *db = open_db(dir, o); /* warm up: lazily opened library state */
    close_db(db);
    before = count_open_fds();
    if (before < 0) {
        printf("  (no /proc/self/fd: descriptor check skipped)\n");
        bc_options_free(o);
        return;
    }
    for (i = 0; i < 10; i++) {
        db = open_db(dir, o);
        for (j = 0; j < 100; j++) {
            int kl = snprintf(key, sizeof key, "k%03d", j);
            CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, V("0123456789012345678901234567890123456789")),
                         BC_OK);
        }
        CHECK_STATUS(bc_merge(db), BC_OK);
        CHECK_GET(db, K("k099"), "0123456789012345678901234567890123456789", 40);
        close_db(db);
    }
    after = count_open_fds();
    bc_options_free(o);
    CHECK_MSG(after == before, "open descriptors: %d before, %d after 10 open/close cycles",
              before, after);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(test_reopen_keeps_data);
    RUN(test_reopen_after_rotation);
    RUN(test_tmp_files_removed_on_open);
    RUN(test_data_file_header);
    RUN(test_no_fd_leak);
    return check_finish();
}
