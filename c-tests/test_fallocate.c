/* test_fallocate.c - the write map when fallocate says no. This program
 * defines fallocate: a definition in the executable comes first in symbol
 * lookup, so libbitcask.so's calls land here, and each test picks the answer.
 *
 * A filesystem without fallocate (some FUSE, network and older filesystems
 * answer EOPNOTSUPP), with bc_options_set_write_map on:
 * - every put still succeeds: the data file falls back to the write buffer;
 * - fallocate is asked once for the file, not once a put;
 * - once synced, the data file holds exactly its records (no preallocated
 *   zeros), and every record reads back, before and after a reopen that
 *   drops nothing.
 *
 * A disk that fills (ENOSPC past DISK bytes of the file, a few pages past
 * a preallocation step), with the default options:
 * - puts go on until the next record would pass DISK: the file grows by
 *   the record's own pages once a whole step no longer fits;
 * - the put that finds no room returns BC_IO naming the data file, and
 *   every acknowledged key reads back, then and after a reopen that drops
 *   nothing. */
#include "check.h"

#include <stdatomic.h>
#include <sys/stat.h>

/* (Declared here: check.h asks for no GNU extensions, where fcntl.h would
 * declare it.) */
int fallocate(int fd, int mode, off_t offset, off_t len);

/* Where the disk ends (a data file's offset), or 0: no fallocate at all. */
static off_t disk_end;
static atomic_int fallocate_calls;

int fallocate(int fd, int mode, off_t offset, off_t len) {
    struct stat sb;
    atomic_fetch_add(&fallocate_calls, 1);
    if (disk_end == 0 || mode != 0) {
        errno = EOPNOTSUPP;
        return -1;
    }
    if (offset + len > disk_end) {
        errno = ENOSPC;
        return -1;
    }
    /* Room: the file grows as fallocate would grow it (sparse, which
     * the test's own filesystem fills on the first store). */
    if (fstat(fd, &sb) != 0) return -1;
    return sb.st_size < offset + len ? ftruncate(fd, offset + len) : 0;
}

enum { N = 2000, VLEN = 100, REC = 19 + 6 + VLEN };

static int key_of(char *buf, int i) { return sprintf(buf, "k%05d", i); }

static void check_all(bc_db *db) {
    char key[16];
    uint8_t val[VLEN];
    int i;
    for (i = 0; i < N; i++) {
        int kl = key_of(key, i);
        memset(val, i & 0xff, VLEN);
        CHECK_GET(db, U8(key), (size_t)kl, val, VLEN);
    }
}

static void test_write_map_falls_back_to_the_buffer(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4u << 20, 0, 0);
    const char *data = path_join(dir, "0000000100000000.data");
    struct stat sb;
    char key[16];
    uint8_t val[VLEN];
    bc_stats st;
    bc_db *db;
    int i;
    if (skip_without_write_map()) {
        bc_options_free(o);
        return;
    }
    CHECK_STATUS(bc_options_set_write_map(o, true), BC_OK);
    db = open_db(dir, o);
    for (i = 0; i < N; i++) {
        int kl = key_of(key, i);
        memset(val, i & 0xff, VLEN);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, val, VLEN), BC_OK);
    }
    CHECK_MSG(atomic_load(&fallocate_calls) >= 1,
              "the library did not reach this program's fallocate: the test checks nothing");
    CHECK_MSG(atomic_load(&fallocate_calls) == 1,
              "fallocate asked %d times for one data file: the fallback did not stay",
              atomic_load(&fallocate_calls));
    CHECK_MSG(get_stats(db).writes_through_map == 0,
              "bc_stats.writes_through_map says the map after the fallback");
    CHECK_STATUS(bc_sync(db), BC_OK);
    CHECK_MSG(count_files_with_suffix(dir, ".data", NULL, NULL) == 1, "expected one data file");
    CHECK_MSG(stat(data, &sb) == 0, "stat %s: %s", data, strerror(errno));
    CHECK_MSG(sb.st_size == 16 + N * REC, "the data file is %lld bytes, its records %d",
              (long long)sb.st_size, 16 + N * REC);
    check_all(db);
    close_db(db);

    db = open_db(dir, o);
    bc_options_free(o);
    st = get_stats(db);
    CHECK_MSG(st.recovered_bytes_dropped == 0, "the reopen dropped %llu bytes",
              (unsigned long long)st.recovered_bytes_dropped);
    check_all(db);
    close_db(db);
}

/* Past the second preallocation step (64 KiB, then 128 KiB), three pages
 * short of the third. */
#define DISK ((128 << 10) + 3 * 4096)

static void test_a_full_disk_fills_to_its_last_page(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4u << 20, 0, 0);
    char key[16];
    uint8_t val[VLEN];
    bc_status st = BC_OK;
    bc_stats stats;
    bc_db *db;
    int n, i;
    if (skip_without_write_map()) {
        bc_options_free(o);
        return;
    }
    disk_end = DISK;
    atomic_store(&fallocate_calls, 0);
    db = open_db(dir, o);
    for (n = 0; n < N; n++) {
        int kl = key_of(key, n);
        memset(val, n & 0xff, VLEN);
        st = bc_put(db, U8(key), (size_t)kl, val, VLEN);
        if (st != BC_OK) break;
    }
    CHECK_STATUS(st, BC_IO);
    CHECK_STR_CONTAINS(bc_last_error(), "0000000100000000.data");
    CHECK_MSG(atomic_load(&fallocate_calls) >= 3,
              "fallocate asked %d times: the library did not reach this program's fallocate",
              atomic_load(&fallocate_calls));
    CHECK_MSG(get_stats(db).writes_through_map == 1, "the puts did not go through the map");
    /* The put that failed is the first whose record would pass DISK. */
    CHECK_MSG(16 + (n + 1) * REC > DISK, "%d puts, and the next record fit: %d of %d bytes", n,
              16 + (n + 1) * REC, DISK);
    CHECK_MSG(16 + n * REC <= DISK, "%d puts: %d bytes of records on a disk of %d", n,
              16 + n * REC, DISK);
    for (i = 0; i < n; i++) {
        int kl = key_of(key, i);
        memset(val, i & 0xff, VLEN);
        CHECK_GET(db, U8(key), (size_t)kl, val, VLEN);
    }
    CHECK_ABSENT(db, U8(key), (size_t)key_of(key, n));
    close_db(db);

    disk_end = 0;
    CHECK_STATUS(bc_options_set_write_map(o, false), BC_OK);
    db = open_db(dir, o);
    bc_options_free(o);
    stats = get_stats(db);
    CHECK_MSG(stats.recovered_bytes_dropped == 0, "the reopen dropped %llu bytes",
              (unsigned long long)stats.recovered_bytes_dropped);
    CHECK_MSG(stats.live_keys == (uint64_t)n, "%llu keys after the reopen, %d acknowledged",
              (unsigned long long)stats.live_keys, n);
    for (i = 0; i < n; i++) {
        int kl = key_of(key, i);
        memset(val, i & 0xff, VLEN);
        CHECK_GET(db, U8(key), (size_t)kl, val, VLEN);
    }
    close_db(db);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(test_write_map_falls_back_to_the_buffer);
    RUN(test_a_full_disk_fills_to_its_last_page);
    return check_finish();
}
