/* test_no_fallocate.c - the write map on a filesystem without fallocate
 * (some FUSE, network and older filesystems answer EOPNOTSUPP). This
 * program defines fallocate: a definition in the executable comes first in
 * symbol lookup, so libbitcask.so's calls land here, and are refused.
 * Checked, with bc_options_set_write_map on:
 * - every put still succeeds: the data file falls back to the write buffer;
 * - fallocate is asked once for the file, not once a put;
 * - once synced, the data file holds exactly its records (no preallocated
 *   zeros), and every record reads back, before and after a reopen that
 *   drops nothing. */
#include "check.h"

#include <stdatomic.h>
#include <sys/stat.h>

/* (Declared here: check.h asks for no GNU extensions, where fcntl.h would
 * declare it.) */
int fallocate(int fd, int mode, off_t offset, off_t len);

static atomic_int fallocate_calls;

int fallocate(int fd, int mode, off_t offset, off_t len) {
    (void)fd, (void)mode, (void)offset, (void)len;
    atomic_fetch_add(&fallocate_calls, 1);
    errno = EOPNOTSUPP;
    return -1;
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
    if (!write_map_here()) {
        printf("  NOTE: the write map is not used here (32-bit target, or a filesystem other than "
               "ext4, XFS and tmpfs): skipped\n");
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

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(test_write_map_falls_back_to_the_buffer);
    return check_finish();
}
