/* test_corruption.c - BC_CORRUPTION for a foreign data file, a bad data-file
 * header CRC and a flipped byte inside a record of an older file (message names
 * the file); BC_VERSION_MISMATCH for a data file of a newer format version,
 * which repair refuses too and leaves untouched; the repair option opens such databases (damaged record skipped
 * and counted, unreadable file renamed to *.data.corrupt, the rest intact;
 * read-only, it skips them in memory and leaves every file untouched);
 * with maps off, a data file truncated behind the library's back gives
 * BC_IO or BC_CORRUPTION, not a crash;
 * a torn (partial) record at the end of the newest file is cut off by a
 * normal open and counted in bc_stats.recovered_bytes_dropped. */
#include "check.h"

/* Name (not path) of the lexicographically first / last "*.data" file. */
static int data_file_name(const char *dir, int last, char *out, size_t cap) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    if (d == NULL) return 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".data") != 0) continue;
        if (!found || (last ? strcmp(e->d_name, out) > 0 : strcmp(e->d_name, out) < 0)) {
            snprintf(out, cap, "%s", e->d_name);
            found = 1;
        }
    }
    closedir(d);
    return found;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Overwrites n bytes at offset in path. */
static void patch_file(const char *path, long offset, const void *bytes, size_t n) {
    FILE *f = fopen(path, "r+b");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    CHECK(fseek(f, offset, SEEK_SET) == 0);
    CHECK(fwrite(bytes, 1, n, f) == n);
    CHECK(fclose(f) == 0);
}

/* Reads n bytes at offset of path into buf. */
static void read_at(const char *path, long offset, void *buf, size_t n) {
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    CHECK(fseek(f, offset, SEEK_SET) == 0 && fread(buf, 1, n, f) == n);
    fclose(f);
}

/* Offset of needle in file, or -1. */
static long find_in_file(const char *path, const char *needle) {
    static unsigned char buf[1 << 16];
    FILE *f = fopen(path, "rb");
    size_t n, i, nl = strlen(needle);
    if (f == NULL) return -1;
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (i = 0; i + nl <= n; i++)
        if (memcmp(buf + i, needle, nl) == 0) return (long)i;
    return -1;
}

/* A database of several 4 KiB files; "victim" is the first record of the oldest. */
static const char *make_rotated_db(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db = open_db(dir, o);
    char key[32];
    int i;
    bc_options_free(o);
    CHECK_STATUS(bc_put(db, K("victim"), V("MARKER-VALUE-0123456789")), BC_OK);
    for (i = 0; i < 300; i++) {
        int kl = snprintf(key, sizeof key, "filler-%d", i);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, V("filler value bytes .............")), BC_OK);
    }
    close_db(db);
    CHECK_MSG(count_files_with_suffix(dir, ".data", NULL, NULL) >= 3, "expected several data files");
    return dir;
}

/* Changes the first byte of "victim"'s value in the oldest data file, whose
 * name is stored in name[0..cap). */
static void damage_victim_value(const char *dir, char *name, size_t cap) {
    const char *path;
    long off;
    CHECK(data_file_name(dir, 0, name, cap));
    path = path_join(dir, name);
    off = find_in_file(path, "MARKER-VALUE");
    CHECK_MSG(off > 0, "value bytes not found in the oldest data file %s", name);
    patch_file(path, off, "N", 1);
}

static void test_foreign_data_file(void) {
    const char *dir = make_temp_dir();
    const char *name = "0000000000000001.data";
    bc_db *sentinel = (bc_db *)(uintptr_t)0x3333;
    bc_db *db = sentinel;
    FILE *f = fopen(path_join(dir, name), "wb");
    int i;
    CHECK(f != NULL);
    for (i = 0; i < 4; i++) fputs("THIS IS NOT A BITCASK DATA FILE\n", f);
    fclose(f);
    CHECK_STATUS(bc_open(dir, NULL, &db), BC_CORRUPTION);
    CHECK_STR_CONTAINS(bc_last_error(), name);
    CHECK_MSG(db == sentinel, "failed bc_open wrote *out");
}

static void test_bad_header_crc(void) {
    const char *dir = make_rotated_db();
    char name[64];
    unsigned char crc[4];
    bc_db *db = NULL;
    const char *path;
    CHECK(data_file_name(dir, 0, name, sizeof name));
    path = path_join(dir, name);
    read_at(path, 12, crc, 4);
    crc[0] ^= 0x55;
    patch_file(path, 12, crc, 4);
    CHECK_STATUS(bc_open(dir, NULL, &db), BC_CORRUPTION);
    CHECK_STR_CONTAINS(bc_last_error(), name);
}

/* A flipped value byte in an older file is reported as BC_CORRUPTION, by
 * bc_open or by the bc_get of that key; it is never returned as data. */
static void test_flipped_record_byte(void) {
    const char *dir = make_rotated_db();
    char name[64];
    bc_db *db = NULL;
    bc_status st;
    damage_victim_value(dir, name, sizeof name);

    st = bc_open(dir, NULL, &db);
    if (st == BC_CORRUPTION) {
        CHECK_STR_CONTAINS(bc_last_error(), name);
        return;
    }
    CHECK_MSG(st == BC_OK, "bc_open: expected BC_OK or BC_CORRUPTION, got %s", status_name(st));
    {
        uint8_t *v = NULL;
        size_t vlen = 0;
        st = bc_get(db, K("victim"), &v, &vlen);
        if (st == BC_OK) bc_free(v, vlen);
        CHECK_MSG(st == BC_CORRUPTION, "bc_get of a record with a bad CRC: expected "
                  "BC_CORRUPTION, got %s", status_name(st));
        CHECK_STR_CONTAINS(bc_last_error(), name);
    }
    CHECK_GET(db, K("filler-299"), "filler value bytes .............", 32);
    close_db(db);
}

static bc_options *repair_opts(void) {
    bc_options *o = make_opts(0, 0, 0);
    CHECK_STATUS(bc_options_set_repair(o, true), BC_OK);
    return o;
}

/* repair: the damaged record is skipped (and counted), everything else is
 * there, and the rewritten directory then opens normally. */
static void test_repair_flipped_record(void) {
    const char *dir = make_rotated_db();
    char name[64], key[32];
    int i;
    bc_options *o = repair_opts();
    bc_db *db;
    bc_stats s;
    damage_victim_value(dir, name, sizeof name);

    db = open_db(dir, o);
    bc_options_free(o);
    s = get_stats(db);
    CHECK_MSG(s.repaired_records_skipped == 1, "repaired_records_skipped = %llu, expected 1",
              (unsigned long long)s.repaired_records_skipped);
    CHECK_ABSENT(db, K("victim"));
    for (i = 0; i < 300; i++) {
        int kl = snprintf(key, sizeof key, "filler-%d", i);
        CHECK_GET(db, U8(key), (size_t)kl, "filler value bytes .............", 32);
    }
    close_db(db);

    db = open_db(dir, NULL); /* no repair needed any more */
    CHECK_ABSENT(db, K("victim"));
    CHECK_GET(db, K("filler-0"), "filler value bytes .............", 32);
    close_db(db);
}

/* read-only repair: damaged records are skipped in memory only: no file is
 * rewritten, renamed, truncated or given a hint, and a later read-write
 * repair still finds the damage. */
static void test_read_only_repair_touches_nothing(void) {
    const char *dir = make_rotated_db();
    char name[64], last[64];
    unsigned char junk[4] = {0xde, 0xad, 0xbe, 0xef};
    uint64_t before;
    bc_options *o = repair_opts();
    bc_db *db;
    bc_stats s;
    damage_victim_value(dir, name, sizeof name);
    /* Also an unreadable header in the newest file (read-write repair
     * renames that file to *.data.corrupt). */
    CHECK(data_file_name(dir, 1, last, sizeof last));
    patch_file(path_join(dir, last), 12, junk, 4);
    CHECK_STATUS(bc_options_set_read_only(o, true), BC_OK);
    before = dir_fingerprint(dir);

    db = open_db(dir, o);
    s = get_stats(db);
    CHECK_MSG(s.repaired_records_skipped == 2,
              "repaired_records_skipped = %llu, expected 2 (the victim record, the newest file)",
              (unsigned long long)s.repaired_records_skipped);
    CHECK_ABSENT(db, K("victim"));
    CHECK_GET(db, K("filler-0"), "filler value bytes .............", 32);
    close_db(db);
    CHECK_MSG(dir_fingerprint(dir) == before, "a read-only repair changed the directory");

    /* The damage is still there for a read-write repair to find. */
    CHECK_STATUS(bc_options_set_read_only(o, false), BC_OK);
    db = open_db(dir, o);
    bc_options_free(o);
    s = get_stats(db);
    CHECK_MSG(s.repaired_records_skipped == 2,
              "read-write repair after a read-only one: repaired_records_skipped = %llu, "
              "expected 2 (the victim record, the newest file)",
              (unsigned long long)s.repaired_records_skipped);
    CHECK_ABSENT(db, K("victim"));
    close_db(db);
    CHECK_MSG(dir_fingerprint(dir) != before, "a read-write repair changed nothing");
}

/* A data file truncated behind the library's back while the database is
 * open. With maps off, the get of a record past the new end fails with
 * BC_IO or BC_CORRUPTION naming the file: no crash, no wrong bytes, and the
 * handle goes on serving the other files. (With maps on, the default on
 * 64-bit, the same get raises SIGBUS, as the header warns.) */
static void test_truncated_behind_our_back_without_maps(void) {
    const char *dir = make_temp_dir();
    char name[64], key[32];
    uint8_t val[200];
    bc_options *o = make_opts(1u << 20, 0, 0);
    bc_db *db;
    uint8_t *v = (uint8_t *)(uintptr_t)0x1;
    size_t vlen = 777;
    bc_status st;
    int i, kl = 0;
    memset(val, 'v', sizeof val);
    CHECK_STATUS(bc_options_set_mmap(o, false), BC_OK);
    /* One sealed file of ~220 KiB: the last key's record is ~50 pages in. */
    db = open_db(dir, o);
    for (i = 0; i < 1000; i++) {
        kl = snprintf(key, sizeof key, "k%04d", i);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, val, sizeof val), BC_OK);
    }
    close_db(db);
    CHECK(data_file_name(dir, 0, name, sizeof name));
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_STATUS(bc_put(db, K("fresh"), V("in the newer file")), BC_OK);
    CHECK_GET(db, U8(key), (size_t)kl, val, sizeof val);
    CHECK_MSG(truncate(path_join(dir, name), 20) == 0, "truncate: %s", strerror(errno));

    st = bc_get(db, U8(key), (size_t)kl, &v, &vlen);
    CHECK_MSG(st == BC_IO || st == BC_CORRUPTION,
              "get of a record cut off behind the library's back: %s", status_name(st));
    CHECK_STR_CONTAINS(bc_last_error(), name);
    CHECK_MSG(v == (uint8_t *)(uintptr_t)0x1 && vlen == 777, "a failed bc_get wrote its outputs");
    CHECK_GET(db, K("fresh"), V("in the newer file"));
    close_db(db);
}

/* repair and a bad header:
 * 0. one bit flipped in the header (bit rot), its first record intact: the
 *    file is rewritten under a fresh header, keeping every record; so with
 *    4 bits flipped (case 3), the most the rule allows, and not with 5
 *    (case 4: set aside);
 * 1. the same with its first record damaged too: set aside as
 *    *.data.corrupt, not deleted;
 * 2. a header far from this version's (its CRC overwritten: it could be a
 *    newer release's), first record intact: set aside too, not read as
 *    this version's. */
static void test_repair_bad_header(void) {
    int c;
    for (c = 0; c < 5; c++) {
        const char *dir = make_rotated_db();
        char name[64], corrupt[80];
        unsigned char junk[4] = {0xde, 0xad, 0xbe, 0xef}, crc[1];
        bc_options *o = repair_opts();
        bc_db *db;
        bc_stats s;
        int rewritten = c == 0 || c == 3;
        static const unsigned char flips[5] = {0x10, 0x10, 0, 0x0f, 0x1f};
        CHECK(data_file_name(dir, 0, name, sizeof name));
        if (c == 2) {
            patch_file(path_join(dir, name), 12, junk, 4);
        } else {
            read_at(path_join(dir, name), 12, crc, 1);
            crc[0] ^= flips[c];
            patch_file(path_join(dir, name), 12, crc, 1);
        }
        if (c == 1) patch_file(path_join(dir, name), 16, junk, 4);
        db = open_db(dir, o);
        bc_options_free(o);
        snprintf(corrupt, sizeof corrupt, "%s.corrupt", name);
        s = get_stats(db);
        CHECK_MSG(s.repaired_records_skipped == 1, "case %d: repaired_records_skipped = %llu", c,
                  (unsigned long long)s.repaired_records_skipped);
        if (rewritten) {
            CHECK_MSG(!path_exists(path_join(dir, corrupt)), "%s was set aside", name);
            CHECK_GET(db, K("victim"), V("MARKER-VALUE-0123456789")); /* its first record */
            CHECK_GET(db, K("filler-0"), "filler value bytes .............", 32);
        } else {
            CHECK_MSG(path_exists(path_join(dir, corrupt)), "case %d: %s was not renamed to %s",
                      c, name, corrupt);
            CHECK_MSG(!path_exists(path_join(dir, name)), "%s still exists after repair", name);
            CHECK_ABSENT(db, K("victim"));
        }
        CHECK_GET(db, K("filler-299"), "filler value bytes .............", 32); /* newest file */
        close_db(db);
        db = open_db(dir, NULL); /* no repair needed any more */
        CHECK_GET(db, K("filler-299"), "filler value bytes .............", 32);
        if (rewritten) CHECK_GET(db, K("victim"), V("MARKER-VALUE-0123456789"));
        close_db(db);
    }
}

/* Sets the format version in the header of data file path, with the header
 * CRC recomputed so that the version is all that differs. */
static void set_data_version(const char *path, uint32_t version) {
    uint8_t h[16];
    read_at(path, 0, h, sizeof h);
    put32(h + 8, version);
    put32(h + 12, crc32_ieee(h, 12));
    patch_file(path, 0, h, sizeof h);
}

/* A data file of a format version this library does not read (a newer
 * release wrote it) is refused with BC_VERSION_MISMATCH naming the file and
 * the version, by a normal open and by repair, read-only or not, and nothing
 * in the directory changes, not even the damage repair would fix in an
 * older file: open checks every version before it changes anything, and
 * setting the newer file aside would lose its records. With the version
 * put back, repair does its work and the newest file's data is there. */
static void test_newer_data_version_refused(void) {
    const char *dir = make_rotated_db();
    char name[64], damaged[64];
    const char *path;
    bc_options *o = repair_opts();
    bc_db *sentinel = (bc_db *)(uintptr_t)0x3333;
    bc_db *db = sentinel;
    uint64_t before;
    int read_only;
    damage_victim_value(dir, damaged, sizeof damaged);
    CHECK(data_file_name(dir, 1, name, sizeof name));
    path = path_join(dir, name);
    set_data_version(path, 2);
    before = dir_fingerprint(dir);

    CHECK_STATUS(bc_open(dir, NULL, &db), BC_VERSION_MISMATCH);
    CHECK_STR_CONTAINS(bc_last_error(), name);
    CHECK_STR_CONTAINS(bc_last_error(), "version 2");
    CHECK_STR_CONTAINS(bc_last_error(), "reads version 1");
    CHECK_MSG(db == sentinel, "failed bc_open wrote *out");
    for (read_only = 1; read_only >= 0; read_only--) {
        CHECK_STATUS(bc_options_set_read_only(o, read_only), BC_OK);
        CHECK_STATUS(bc_open(dir, o, &db), BC_VERSION_MISMATCH);
        CHECK_STR_CONTAINS(bc_last_error(), name);
        CHECK_MSG(db == sentinel, "failed bc_open wrote *out");
    }
    CHECK_MSG(dir_fingerprint(dir) == before, "a refused open changed the directory");

    set_data_version(path, 1);
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_ABSENT(db, K("victim"));
    CHECK_GET(db, K("filler-299"), "filler value bytes .............", 32);
    close_db(db);
    CHECK_MSG(dir_fingerprint(dir) != before, "the repair found nothing to do");
}

/* A crash in the middle of an append leaves a partial record at the end of the
 * newest file; a normal open drops it and keeps every complete record. */
static void test_torn_tail_recovered(void) {
    const char *dir = make_temp_dir();
    char name[64];
    const char *path;
    static const unsigned char partial[7] = {0x12, 0x34, 0x56, 0x78, 0x01, 0x00, 0x00};
    bc_db *db = open_db(dir, NULL);
    bc_stats s;
    long size_before;
    CHECK_STATUS(bc_put(db, K("a"), V("1")), BC_OK);
    CHECK_STATUS(bc_put(db, K("b"), V("2")), BC_OK);
    close_db(db);
    CHECK(data_file_name(dir, 1, name, sizeof name));
    path = path_join(dir, name);
    size_before = file_size(path);
    patch_file(path, size_before, partial, sizeof partial);

    db = NULL;
    CHECK_STATUS(bc_open(dir, NULL, &db), BC_OK);
    s = get_stats(db);
    CHECK_MSG(s.recovered_bytes_dropped == sizeof partial,
              "recovered_bytes_dropped = %llu, expected %zu",
              (unsigned long long)s.recovered_bytes_dropped, sizeof partial);
    CHECK_GET(db, K("a"), "1", 1);
    CHECK_GET(db, K("b"), "2", 1);
    CHECK_STATUS(bc_put(db, K("c"), V("3")), BC_OK);
    close_db(db);
    db = open_db(dir, NULL);
    s = get_stats(db);
    CHECK_MSG(s.recovered_bytes_dropped == 0, "second open: recovered_bytes_dropped = %llu",
              (unsigned long long)s.recovered_bytes_dropped);
    CHECK_GET(db, K("a"), "1", 1);
    CHECK_GET(db, K("b"), "2", 1);
    CHECK_GET(db, K("c"), "3", 1);
    close_db(db);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(test_foreign_data_file);
    RUN(test_bad_header_crc);
    RUN(test_flipped_record_byte);
    RUN(test_repair_flipped_record);
    RUN(test_read_only_repair_touches_nothing);
    RUN(test_truncated_behind_our_back_without_maps);
    RUN(test_repair_bad_header);
    RUN(test_newer_data_version_refused);
    RUN(test_torn_tail_recovered);
    return check_finish();
}
