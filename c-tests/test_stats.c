/* test_stats.c - bc_get_stats: NULL arguments, struct_size versioning (too
 * small rejected, a shorter struct gets only its fields, a longer one keeps
 * its unknown tail), exact live/dead byte accounting from the record format
 * (19-byte header + key + value; tombstones 19 + key), merges, data files,
 * read-only handles. */
#include "check.h"

#include <sys/statfs.h>

#include <stddef.h>

#define PATTERN 0xAB

static int all_pattern(const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    size_t i;
    for (i = 0; i < n; i++)
        if (b[i] != PATTERN) return 0;
    return 1;
}

#define CHECK_U64(field, expected)                                                        \
    CHECK_MSG((field) == (uint64_t)(expected), "%s = %llu, expected %llu", #field,        \
              (unsigned long long)(field), (unsigned long long)(expected))

static void test_null_and_size_checks(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    bc_stats s;
    uint32_t bad_sizes[4] = {0, 1, 4, 7};
    int i;
    memset(&s, 0, sizeof s);
    s.struct_size = (uint32_t)sizeof s;
    CHECK_STATUS(bc_get_stats(NULL, &s), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_get_stats(db, NULL), BC_INVALID_ARGUMENT);
    for (i = 0; i < 4; i++) {
        memset(&s, PATTERN, sizeof s);
        s.struct_size = bad_sizes[i];
        CHECK_STATUS(bc_get_stats(db, &s), BC_INVALID_ARGUMENT);
        CHECK_MSG(s.struct_size == bad_sizes[i] && all_pattern((unsigned char *)&s + 4, sizeof s - 4),
                  "rejected bc_get_stats (struct_size %u) wrote the struct", bad_sizes[i]);
    }
    close_db(db);
}

/* A caller compiled against an older, shorter bc_stats. */
static void test_shorter_struct(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    bc_stats s;
    size_t n = offsetof(bc_stats, data_files); /* struct_size, reserved, live_keys */
    CHECK_STATUS(bc_put(db, K("a"), V("1")), BC_OK);
    CHECK_STATUS(bc_put(db, K("b"), V("2")), BC_OK);
    memset(&s, PATTERN, sizeof s);
    s.struct_size = (uint32_t)n;
    CHECK_STATUS(bc_get_stats(db, &s), BC_OK);
    CHECK_U64(s.live_keys, 2);
    CHECK_MSG(all_pattern((unsigned char *)&s + n, sizeof s - n),
              "bc_get_stats wrote past struct_size %zu", n);

    /* just the two leading fields: valid, nothing else written */
    memset(&s, PATTERN, sizeof s);
    s.struct_size = 8;
    CHECK_STATUS(bc_get_stats(db, &s), BC_OK);
    CHECK_MSG(all_pattern((unsigned char *)&s + 8, sizeof s - 8), "bc_get_stats wrote past struct_size 8");
    CHECK_MSG(s.struct_size == 8, "struct_size %u after a call with 8", (unsigned)s.struct_size);

    /* A size that ends inside a field: that field is left alone, not half
     * written, and struct_size says how much was filled. */
    memset(&s, PATTERN, sizeof s);
    s.struct_size = (uint32_t)(n + 5);
    CHECK_STATUS(bc_get_stats(db, &s), BC_OK);
    CHECK_U64(s.live_keys, 2);
    CHECK_MSG(s.struct_size == n, "struct_size %u after a call with %zu, expected %zu",
              (unsigned)s.struct_size, n + 5, n);
    CHECK_MSG(all_pattern((unsigned char *)&s + n, sizeof s - n),
              "bc_get_stats wrote part of the field that struct_size %zu cuts", n + 5);
    close_db(db);
}

/* A caller compiled against a newer, longer bc_stats. */
static void test_longer_struct(void) {
    struct {
        bc_stats s;
        uint64_t future[4];
    } big;
    bc_db *db = open_db(make_temp_dir(), NULL);
    CHECK_STATUS(bc_put(db, K("a"), V("1")), BC_OK);
    memset(&big, PATTERN, sizeof big);
    big.s.struct_size = (uint32_t)sizeof big;
    CHECK_STATUS(bc_get_stats(db, &big.s), BC_OK);
    CHECK_U64(big.s.live_keys, 1);
    CHECK_MSG(big.s.reserved == 0, "reserved = %lu", (unsigned long)big.s.reserved);
    CHECK_MSG(all_pattern(big.future, sizeof big.future),
              "bc_get_stats wrote fields it does not know");
    CHECK_MSG(big.s.struct_size == sizeof(bc_stats), "struct_size %u, expected the library's %zu",
              (unsigned)big.s.struct_size, sizeof(bc_stats));
    close_db(db);
}

static uint64_t disk_bytes(const char *dir, int *files) {
    uint64_t total = 0;
    *files = count_files_with_suffix(dir, ".data", &total, NULL);
    return total;
}

/* total_bytes against the data files on disk: equal, but for the space a
 * file written through its map has allocated ahead of its records, less
 * than 1 MiB, until it is sealed. */
static void check_total_bytes(const bc_stats *s, const char *dir, bool write_map) {
    int files;
    uint64_t disk = disk_bytes(dir, &files);
    CHECK_U64(s->data_files, files);
    if (write_map && sizeof(void *) == 8)
        CHECK_MSG(disk >= s->total_bytes && disk < s->total_bytes + (1u << 20),
                  "total_bytes %llu, %llu bytes on disk", (unsigned long long)s->total_bytes,
                  (unsigned long long)disk);
    else
        CHECK_U64(s->total_bytes, disk);
}

/* Record = 19-byte header + key + value; a tombstone = 19 + key. */
static void byte_accounting(bool write_map) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(0, 0, 0);
    bc_db *db;
    bc_stats s;
    char key[16], val[32];
    uint64_t live = 0, dead = 0;
    int i;

    CHECK_STATUS(bc_options_set_write_map(o, write_map), BC_OK);
    db = open_db(dir, o);
    bc_options_free(o);
    s = get_stats(db);
    CHECK_U64(s.live_keys, 0);
    CHECK_U64(s.live_bytes, 0);
    CHECK_U64(s.dead_bytes, 0);
    CHECK_U64(s.merges, 0);
    CHECK_U64(s.recovered_bytes_dropped, 0);
    CHECK_U64(s.repaired_records_skipped, 0);
    CHECK_MSG(s.fragmentation == 0.0, "fragmentation of an empty db = %g", s.fragmentation);

    for (i = 0; i < 10; i++) { /* 10 records of 19 + 4 + 7 = 30 bytes */
        int kl = sprintf(key, "key%d", i), vl = sprintf(val, "value-%d", i);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), (size_t)vl), BC_OK);
        live += 19 + (uint64_t)kl + (uint64_t)vl;
    }
    s = get_stats(db);
    CHECK_U64(s.live_keys, 10);
    CHECK_U64(s.live_bytes, live);
    CHECK_U64(s.dead_bytes, 0);
    CHECK_MSG(s.keydir_bytes > 0, "keydir_bytes is 0 with 10 keys");

    for (i = 0; i < 5; i++) { /* overwrite: old 30-byte records die, new ones are 34 */
        int kl = sprintf(key, "key%d", i), vl = sprintf(val, "VALUE-%d-new", i);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), (size_t)vl), BC_OK);
        live += 4;
        dead += 30;
    }
    for (i = 8; i < 10; i++) { /* delete: record (30) + tombstone (19 + 4) are dead */
        int kl = sprintf(key, "key%d", i);
        CHECK_STATUS(bc_delete(db, U8(key), (size_t)kl), BC_OK);
        live -= 30;
        dead += 30 + 23;
    }
    CHECK_STATUS(bc_delete(db, K("never")), BC_NOT_FOUND); /* writes nothing */
    s = get_stats(db);
    CHECK_U64(s.live_keys, 8);
    CHECK_U64(s.live_bytes, live);
    CHECK_U64(s.dead_bytes, dead);
    CHECK_MSG(s.fragmentation > (double)dead / (double)(live + dead) - 1e-9 &&
                  s.fragmentation < (double)dead / (double)(live + dead) + 1e-9,
              "fragmentation = %g, expected %g", s.fragmentation,
              (double)dead / (double)(live + dead));
    CHECK_STATUS(bc_sync(db), BC_OK);
    s = get_stats(db);
    check_total_bytes(&s, dir, write_map);
    CHECK_MSG(s.total_bytes >= s.live_bytes + s.dead_bytes, "total_bytes %llu < live + dead",
              (unsigned long long)s.total_bytes);

    CHECK_STATUS(bc_merge(db), BC_OK);
    s = get_stats(db);
    CHECK_U64(s.merges, 1);
    CHECK_U64(s.live_keys, 8);
    CHECK_U64(s.live_bytes, live);
    CHECK_U64(s.dead_bytes, 0);
    CHECK_MSG(s.fragmentation == 0.0, "fragmentation after merge = %g", s.fragmentation);
    CHECK_STATUS(bc_sync(db), BC_OK);
    s = get_stats(db);
    check_total_bytes(&s, dir, write_map);
    close_db(db);

    /* a reopen rebuilds the same numbers; merges counts this handle only */
    db = open_db(dir, NULL);
    s = get_stats(db);
    CHECK_U64(s.live_keys, 8);
    CHECK_U64(s.live_bytes, live);
    CHECK_U64(s.dead_bytes, 0);
    CHECK_U64(s.merges, 0);
    close_db(db);
    /* Sealed at close: the files hold their records and nothing more. */
    check_total_bytes(&s, dir, false);
}

/* bc_stats.writes_through_map says how puts are written, before the first
 * and after it: through the map the first data file is preallocated past
 * its record, through the buffer it holds the record alone. Off with the
 * option off, and for a read-only handle. */
static void test_writes_through_map(void) {
    int on;
    for (on = 0; on < 2; on++) {
        const char *dir = make_temp_dir();
        bc_options *o = make_opts(0, 0, 0);
        uint64_t before, after, disk;
        int files;
        bc_db *db;
        CHECK_STATUS(bc_options_set_write_map(o, on), BC_OK);
        db = open_db(dir, o);
        before = get_stats(db).writes_through_map;
        CHECK_STATUS(bc_put(db, K("k"), V("v")), BC_OK);
        CHECK_STATUS(bc_sync(db), BC_OK);
        after = get_stats(db).writes_through_map;
        disk = disk_bytes(dir, &files);
        CHECK_MSG(before == after && after <= 1, "writes_through_map %llu before a put, %llu after",
                  (unsigned long long)before, (unsigned long long)after);
        CHECK_MSG(on || after == 0, "writes_through_map with the option off");
        CHECK_MSG(after == (disk > 16 + 19 + 2),
                  "writes_through_map %llu, but the data file is %llu bytes for one record",
                  (unsigned long long)after, (unsigned long long)disk);
        close_db(db);
        CHECK_STATUS(bc_options_set_read_only(o, true), BC_OK);
        db = open_db(dir, o);
        bc_options_free(o);
        CHECK_MSG(get_stats(db).writes_through_map == 0, "a read-only handle writes through a map");
        close_db(db);
    }
    printf("  writes through the map here: %s\n", write_map_here() ? "yes" : "no");
    /* The default, where it applies: 64-bit, on ext4, XFS or tmpfs (so
     * that the tests which skip elsewhere do not skip here unseen). */
    {
        struct statfs fs;
        long t = statfs(make_temp_dir(), &fs) == 0 ? (long)fs.f_type : 0;
        if (sizeof(void *) == 8 && (t == 0xEF53 || t == 0x58465342 || t == 0x01021994))
            CHECK_MSG(write_map_here(), "the default writes through the buffer on ext4/XFS/tmpfs");
    }
}

static void test_byte_accounting(void) { byte_accounting(false); }

static void test_byte_accounting_write_map(void) { byte_accounting(true); }

static void test_many_files_and_read_only(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db = open_db(dir, o);
    bc_stats s;
    char key[16];
    int i, files;
    for (i = 0; i < 300; i++) {
        int kl = sprintf(key, "k%d", i);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, V("some value bytes here")), BC_OK);
    }
    CHECK_STATUS(bc_sync(db), BC_OK);
    s = get_stats(db);
    CHECK_U64(s.live_keys, 300);
    CHECK_U64(s.data_files, count_files_with_suffix(dir, ".data", NULL, NULL));
    CHECK_MSG(s.data_files > 1, "expected several data files, stats say %llu",
              (unsigned long long)s.data_files);
    close_db(db);

    CHECK_STATUS(bc_options_set_read_only(o, true), BC_OK);
    db = open_db(dir, o);
    bc_options_free(o);
    s = get_stats(db);
    CHECK_U64(s.live_keys, 300);
    CHECK_U64(s.total_bytes, disk_bytes(dir, &files));
    CHECK_U64(s.data_files, files);
    close_db(db);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(test_null_and_size_checks);
    RUN(test_shorter_struct);
    RUN(test_longer_struct);
    RUN(test_byte_accounting);
    RUN(test_byte_accounting_write_map);
    RUN(test_writes_through_map);
    RUN(test_many_files_and_read_only);
    return check_finish();
}
