/* test_options.c - bc_options_* setters (valid and invalid values, ranges),
 * options copied by bc_open, defaults, create_if_missing, max_file_size
 * rotation, oversized records, repair flag on a healthy database, opening a
 * path that is a regular file, reads through maps and pread, write buffers
 * of 0 bytes to 1 MiB. */
#include "check.h"

static void test_new_and_free(void) {
    bc_options *o = NULL;
    CHECK_STATUS(bc_options_new(&o), BC_OK);
    CHECK(o != NULL);
    bc_options_free(o);
}

static void test_max_file_size_range(void) {
    bc_options *o = make_opts(0, 0, 0);
    CHECK_STATUS(bc_options_set_max_file_size(o, 0), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_max_file_size(o, 1), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_max_file_size(o, 4095), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_max_file_size(o, 4096), BC_OK);
    CHECK_STATUS(bc_options_set_max_file_size(o, 256u << 20), BC_OK);
    CHECK_STATUS(bc_options_set_max_file_size(o, 4294967295ULL), BC_OK);
    CHECK_STATUS(bc_options_set_max_file_size(o, 4294967296ULL), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_max_file_size(o, UINT64_MAX), BC_INVALID_ARGUMENT);
    bc_options_free(o);
}

static void test_max_key_size_range(void) {
    bc_options *o = make_opts(0, 0, 0);
    CHECK_STATUS(bc_options_set_max_key_size(o, 0), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_max_key_size(o, 1), BC_OK);
    CHECK_STATUS(bc_options_set_max_key_size(o, 4096), BC_OK);
    CHECK_STATUS(bc_options_set_max_key_size(o, 65535), BC_OK);
    CHECK_STATUS(bc_options_set_max_key_size(o, 65536), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_max_key_size(o, UINT32_MAX), BC_INVALID_ARGUMENT);
    bc_options_free(o);
}

static void test_max_value_size_range(void) {
    bc_options *o = make_opts(0, 0, 0);
    CHECK_STATUS(bc_options_set_max_value_size(o, 0), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_max_value_size(o, 1), BC_OK);
    CHECK_STATUS(bc_options_set_max_value_size(o, 64u << 20), BC_OK);
    CHECK_STATUS(bc_options_set_max_value_size(o, 2147483647u), BC_OK);
    CHECK_STATUS(bc_options_set_max_value_size(o, 2147483648u), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_max_value_size(o, UINT32_MAX), BC_INVALID_ARGUMENT);
    bc_options_free(o);
}

static void test_sync_values(void) {
    bc_options *o = make_opts(0, 0, 0);
    CHECK_STATUS(bc_options_set_sync(o, BC_SYNC_NONE, 0), BC_OK);
    CHECK_STATUS(bc_options_set_sync(o, BC_SYNC_ALWAYS, 0), BC_OK);
    CHECK_STATUS(bc_options_set_sync(o, BC_SYNC_INTERVAL, 1), BC_OK);
    CHECK_STATUS(bc_options_set_sync(o, BC_SYNC_INTERVAL, 1000), BC_OK);
    CHECK_STATUS(bc_options_set_sync(o, BC_SYNC_INTERVAL, 0), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_sync(o, 3, 100), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_sync(o, -1, 100), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_sync(o, INT32_MAX, 0), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_sync(o, INT32_MIN, 0), BC_INVALID_ARGUMENT);
    bc_options_free(o);
}

static void test_bool_setters(void) {
    bc_options *o = make_opts(0, 0, 0);
    CHECK_STATUS(bc_options_set_read_only(o, true), BC_OK);
    CHECK_STATUS(bc_options_set_read_only(o, false), BC_OK);
    CHECK_STATUS(bc_options_set_create_if_missing(o, false), BC_OK);
    CHECK_STATUS(bc_options_set_create_if_missing(o, true), BC_OK);
    CHECK_STATUS(bc_options_set_repair(o, true), BC_OK);
    CHECK_STATUS(bc_options_set_repair(o, false), BC_OK);
    bc_options_free(o);
}

/* A rejected value leaves the previous setting in force. */
static void test_rejected_value_keeps_previous(void) {
    bc_options *o = make_opts(0, 8, 16);
    bc_db *db;
    CHECK_STATUS(bc_options_set_max_key_size(o, 0), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_max_key_size(o, 70000), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_max_value_size(o, 0), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_sync(o, 7, 0), BC_INVALID_ARGUMENT);
    db = open_db(make_temp_dir(), o);
    bc_options_free(o);
    CHECK_STATUS(bc_put(db, K("12345678"), V("0123456789abcdef")), BC_OK);
    CHECK_STATUS(bc_put(db, K("123456789"), V("v")), BC_TOO_LARGE);
    CHECK_STATUS(bc_put(db, K("k"), V("0123456789abcdefX")), BC_TOO_LARGE);
    close_db(db);
}

/* bc_open copies the options: they may be freed or changed right after. */
static void test_options_copied_by_open(void) {
    bc_options *o = make_opts(0, 4, 0);
    bc_db *db1 = open_db(make_temp_dir(), o);
    bc_db *db2;
    CHECK_STATUS(bc_options_set_max_key_size(o, 100), BC_OK);
    db2 = open_db(make_temp_dir(), o); /* the same options object, reused */
    bc_options_free(o);
    CHECK_STATUS(bc_put(db1, K("abcd"), V("v")), BC_OK);
    CHECK_STATUS(bc_put(db1, K("abcde"), V("v")), BC_TOO_LARGE);
    CHECK_STATUS(bc_put(db2, K("abcde"), V("v")), BC_OK);
    CHECK_GET(db1, K("abcd"), "v", 1);
    CHECK_GET(db2, K("abcde"), "v", 1);
    close_db(db1);
    close_db(db2);
}

/* NULL options and a fresh bc_options_new() both mean the documented defaults
 * (max_key_size 4096). */
static void test_defaults(void) {
    uint8_t key[4097];
    bc_options *o = make_opts(0, 0, 0);
    bc_db *a = open_db(make_temp_dir(), NULL);
    bc_db *b = open_db(make_temp_dir(), o);
    bc_options_free(o);
    memset(key, 'k', sizeof key);
    CHECK_STATUS(bc_put(a, key, 4096, V("v")), BC_OK);
    CHECK_STATUS(bc_put(b, key, 4096, V("v")), BC_OK);
    CHECK_STATUS(bc_put(a, key, 4097, V("v")), BC_TOO_LARGE);
    CHECK_STATUS(bc_put(b, key, 4097, V("v")), BC_TOO_LARGE);
    CHECK_GET(a, key, 4096, "v", 1);
    CHECK_GET(b, key, 4096, "v", 1);
    close_db(a);
    close_db(b);
}

static void test_create_if_missing(void) {
    const char *parent = make_temp_dir();
    const char *missing = path_join(parent, "not-there");
    const char *created = path_join(parent, "created-by-open");
    bc_options *o = make_opts(0, 0, 0);
    bc_db *sentinel = (bc_db *)(uintptr_t)0x5678;
    bc_db *db = sentinel;

    CHECK_STATUS(bc_options_set_create_if_missing(o, false), BC_OK);
    CHECK_STATUS(bc_open(missing, o, &db), BC_IO);
    CHECK_STR_CONTAINS(bc_last_error(), "not-there");
    CHECK_MSG(db == sentinel, "bc_open failed but wrote *out");
    CHECK_MSG(!path_exists(missing), "create_if_missing=false but %s was created", missing);

    /* default: create it */
    db = open_db(created, NULL);
    CHECK_MSG(path_exists(created), "%s was not created", created);
    CHECK_STATUS(bc_put(db, K("k"), V("v")), BC_OK);
    close_db(db);

    /* create_if_missing=false on an existing database opens it */
    db = open_db(created, o);
    CHECK_GET(db, K("k"), "v", 1);
    close_db(db);

    /* Only the last component is created: a mistyped parent fails. */
    db = sentinel;
    CHECK_STATUS(bc_open(path_join(missing, "db"), NULL, &db), BC_IO);
    CHECK_STR_CONTAINS(bc_last_error(), "nor does its parent");
    CHECK_MSG(!path_exists(missing), "bc_open created the parent %s", missing);

    /* A read-only open never creates, and says so. */
    CHECK_STATUS(bc_options_set_create_if_missing(o, true), BC_OK);
    CHECK_STATUS(bc_options_set_read_only(o, true), BC_OK);
    CHECK_STATUS(bc_open(missing, o, &db), BC_IO);
    CHECK_STR_CONTAINS(bc_last_error(), "read-only open never creates");
    CHECK_MSG(db == sentinel, "bc_open failed but wrote *out");
    CHECK_MSG(!path_exists(missing), "a read-only open created %s", missing);
    bc_options_free(o);
}

/* A path that cannot be looked up is not "missing": the open says why
 * (here a symlink to itself; a directory the caller may not search gives
 * EACCES the same way) and creates nothing; nor is a symlink to nothing. */
static void test_open_unresolvable_path_says_why(void) {
    const char *loop = path_join(make_temp_dir(), "loop");
    bc_db *sentinel = (bc_db *)(uintptr_t)0x7531;
    bc_db *db = sentinel;
    const char *dangling = path_join(make_temp_dir(), "dangling");
    CHECK(symlink(loop, loop) == 0);
    CHECK_STATUS(bc_open(loop, NULL, &db), BC_IO);
    CHECK_STR_CONTAINS(bc_last_error(), "looking up");
    CHECK_STR_CONTAINS(bc_last_error(), "symbolic links");
    CHECK_MSG(db == sentinel, "bc_open failed but wrote *out");
    /* A symlink to nothing: not created through, and said so. */
    CHECK(symlink("/nonexistent/bitcask-target", dangling) == 0);
    CHECK_STATUS(bc_open(dangling, NULL, &db), BC_IO);
    CHECK_STR_CONTAINS(bc_last_error(), "symlink to nothing");
    CHECK_MSG(db == sentinel, "bc_open failed but wrote *out");
}

static void test_open_regular_file_fails(void) {
    const char *dir = make_temp_dir();
    const char *file = path_join(dir, "plain-file");
    bc_db *sentinel = (bc_db *)(uintptr_t)0x9abc;
    bc_db *db = sentinel;
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    fputs("not a directory\n", f);
    fclose(f);
    CHECK_STATUS(bc_open(file, NULL, &db), BC_IO);
    CHECK_MSG(db == sentinel, "bc_open failed but wrote *out");
    CHECK_STR_CONTAINS(bc_last_error(), "plain-file");
}

/* max_file_size is honoured: small files rotate, no file grows past the limit
 * when every record fits, and all data stays readable (also after reopen). */
static void test_max_file_size_rotation(void) {
    enum { N = 400 };
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db = open_db(dir, o);
    char key[16], val[64];
    uint64_t total = 0, largest = 0;
    int i, files;

    for (i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof key, "k%05d", i);
        int vl = snprintf(val, sizeof val, "value-%05d-%030d", i, i);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), (size_t)vl), BC_OK);
    }
    CHECK_STATUS(bc_sync(db), BC_OK);
    files = count_files_with_suffix(dir, ".data", &total, &largest);
    /* 400 records of 19 + 6 + 42 bytes = ~27 KB: at least 6 files of <= 4096 bytes */
    CHECK_MSG(files >= 6, "expected >= 6 data files with max_file_size 4096, found %d", files);
    CHECK_MSG(largest <= 4096, "a data file has %llu bytes > max_file_size 4096",
              (unsigned long long)largest);
    close_db(db);

    db = open_db(dir, o);
    bc_options_free(o);
    for (i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof key, "k%05d", i);
        int vl = snprintf(val, sizeof val, "value-%05d-%030d", i, i);
        CHECK_GET(db, U8(key), (size_t)kl, val, (size_t)vl);
    }
    close_db(db);
}

/* A record larger than max_file_size gets a file of its own. */
static void test_record_larger_than_max_file_size(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db = open_db(dir, o);
    size_t n = 10000, i;
    uint8_t *big = (uint8_t *)malloc(n);
    CHECK(big != NULL);
    for (i = 0; i < n; i++) big[i] = (uint8_t)(i * 13);
    CHECK_STATUS(bc_put(db, K("small-1"), V("s1")), BC_OK);
    CHECK_STATUS(bc_put(db, K("big"), big, n), BC_OK);
    CHECK_STATUS(bc_put(db, K("small-2"), V("s2")), BC_OK);
    CHECK_GET(db, K("big"), big, n);
    close_db(db);
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_GET(db, K("big"), big, n);
    CHECK_GET(db, K("small-1"), "s1", 2);
    CHECK_GET(db, K("small-2"), "s2", 2);
    close_db(db);
    free(big);
}

static void test_repair_flag_on_healthy_db(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(0, 0, 0);
    bc_db *db = open_db(dir, NULL);
    CHECK_STATUS(bc_put(db, K("a"), V("1")), BC_OK);
    CHECK_STATUS(bc_put(db, K("b"), V("2")), BC_OK);
    close_db(db);
    CHECK_STATUS(bc_options_set_repair(o, true), BC_OK);
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_GET(db, K("a"), "1", 1);
    CHECK_GET(db, K("b"), "2", 1);
    close_db(db);
}

/* The value of key i in `round` of three_rounds (at most 600 bytes, into
 * buf); returns its length. */
typedef size_t (*value_fn)(int round, int i, uint8_t *buf);

/* With options o (freed here): n keys put in three rounds, each read back
 * at once (from the write buffer), a merge after the second round, a
 * reopen; then every key holds its third-round value. */
static void three_rounds(bc_options *o, int n, value_fn value) {
    const char *dir = make_temp_dir();
    bc_db *db = open_db(dir, o);
    char key[16];
    uint8_t val[600];
    int i, round;
    for (round = 0; round < 3; round++) {
        for (i = 0; i < n; i++) {
            int kl = snprintf(key, sizeof key, "k%05d", i);
            size_t vl = value(round, i, val);
            CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, val, vl), BC_OK);
            CHECK_GET(db, U8(key), (size_t)kl, val, vl); /* read-your-writes */
        }
        if (round == 1) CHECK_STATUS(bc_merge(db), BC_OK);
    }
    close_db(db);
    db = open_db(dir, o);
    bc_options_free(o);
    for (i = 0; i < n; i++) {
        int kl = snprintf(key, sizeof key, "k%05d", i);
        size_t vl = value(2, i, val);
        CHECK_GET(db, U8(key), (size_t)kl, val, vl);
    }
    close_db(db);
}

static size_t numbered_value(int round, int i, uint8_t *buf) {
    return (size_t)snprintf((char *)buf, 64, "v%d-%05d-%020d", round, i, i);
}

/* three_rounds of 300 keys in files of max_file bytes, reading with pread
 * and through maps, with the write map or not. */
static void mmap_off_and_on(uint64_t max_file, bool write_map, value_fn value) {
    int mode;
    for (mode = 0; mode < 2; mode++) {
        bc_options *o = make_opts(max_file, 0, 0);
        CHECK_STATUS(bc_options_set_mmap(o, mode == 1), BC_OK);
        CHECK_STATUS(bc_options_set_write_map(o, write_map), BC_OK);
        three_rounds(o, 300, value);
    }
}

/* Reads through memory maps (the 64-bit default) and through pread give the
 * same bytes: across rotation, the write buffer, merge and reopen. */
static void test_mmap_on_and_off(void) {
    CHECK_STATUS(bc_options_set_mmap(NULL, true), BC_INVALID_ARGUMENT);
    mmap_off_and_on(4096, false, numbered_value);
}

static void test_write_buffer_range(void) {
    bc_options *o = make_opts(0, 0, 0);
    CHECK_STATUS(bc_options_set_write_buffer(NULL, 4096), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_write_buffer(o, 0), BC_OK);
    CHECK_STATUS(bc_options_set_write_buffer(o, 1), BC_OK);
    CHECK_STATUS(bc_options_set_write_buffer(o, 64u << 20), BC_OK);
    CHECK_STATUS(bc_options_set_write_buffer(o, (64u << 20) + 1), BC_INVALID_ARGUMENT);
    CHECK_STR_CONTAINS(bc_last_error(), "write_buffer");
    CHECK_STATUS(bc_options_set_write_buffer(o, SIZE_MAX), BC_INVALID_ARGUMENT);
    bc_options_free(o);
}

/* 0 to 599 bytes of one letter per round: values larger and smaller than
 * small buffers. */
static size_t sized_value(int round, int i, uint8_t *buf) {
    size_t vl = (size_t)(i * 3 + round) % 600;
    memset(buf, 'a' + round, vl);
    return vl;
}

/* Every buffer size keeps every record, through rotation, merge, values
 * larger and smaller than the buffer, read-your-writes, and a reopen
 * (with the write map off: it is on by default, and then no buffer is
 * used). */
static void test_write_buffer_sizes(void) {
    static const size_t sizes[] = {0, 1, 100, 4096, 1u << 20};
    size_t s;
    for (s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        bc_options *o = make_opts(8192, 0, 0);
        CHECK_STATUS(bc_options_set_write_map(o, false), BC_OK);
        CHECK_STATUS(bc_options_set_write_buffer(o, sizes[s]), BC_OK);
        three_rounds(o, 200, sized_value);
    }
}

/* Written through its map, or (without the read maps, where the option has
 * no effect) through the buffer: every record kept, as above. */
static void test_write_map(void) {
    CHECK_STATUS(bc_options_set_write_map(NULL, true), BC_INVALID_ARGUMENT);
    mmap_off_and_on(8192, true, sized_value);
}

/* The length of a fresh database's first data file after one put and a
 * bc_sync, with the read maps (mmap) or not and the write map. */
static long long first_file_after_one_put(bool mmap) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(0, 0, 0);
    struct stat sb;
    bc_db *db;
    CHECK_STATUS(bc_options_set_mmap(o, mmap), BC_OK);
    CHECK_STATUS(bc_options_set_write_map(o, true), BC_OK);
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_STATUS(bc_put(db, K("k"), V("v")), BC_OK);
    CHECK_STATUS(bc_sync(db), BC_OK);
    CHECK(stat(path_join(dir, "0000000100000000.data"), &sb) == 0);
    close_db(db);
    return (long long)sb.st_size;
}

/* The write map needs the read maps: without them the option has no
 * effect (the file holds its records, written through the buffer), with
 * them (on 64-bit targets) the file is preallocated, 64 KiB first. */
static void test_write_map_needs_the_read_maps(void) {
    long long records = 16 + 19 + 1 + 1;
    long long off = first_file_after_one_put(false), on;
    CHECK_MSG(off == records, "without read maps: %lld bytes, expected %lld", off, records);
    if (!write_map_here()) return; /* 32-bit (no maps at all), or not this filesystem */
    on = first_file_after_one_put(true);
    CHECK_MSG(on == 64 << 10, "with read maps: %lld bytes, expected the first step, 64 KiB", on);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(test_new_and_free);
    RUN(test_max_file_size_range);
    RUN(test_max_key_size_range);
    RUN(test_max_value_size_range);
    RUN(test_sync_values);
    RUN(test_bool_setters);
    RUN(test_rejected_value_keeps_previous);
    RUN(test_options_copied_by_open);
    RUN(test_defaults);
    RUN(test_create_if_missing);
    RUN(test_open_regular_file_fails);
    RUN(test_open_unresolvable_path_says_why);
    RUN(test_max_file_size_rotation);
    RUN(test_record_larger_than_max_file_size);
    RUN(test_repair_flag_on_healthy_db);
    RUN(test_mmap_on_and_off);
    RUN(test_write_buffer_range);
    RUN(test_write_buffer_sizes);
    RUN(test_write_map);
    RUN(test_write_map_needs_the_read_maps);
    return check_finish();
}
