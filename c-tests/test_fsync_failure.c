/* test_fsync_failure.c - a failing fsync, as a dying disk or a full thin
 * volume reports it (EIO). This program defines fsync and fdatasync itself:
 * a definition in the executable comes first in symbol lookup, so
 * libbitcask.so's calls land here. They pass through to the kernel until a
 * test arms them, then fail with EIO. Checked:
 * - bc_sync returns BC_IO naming the data file, and from then on the handle
 *   refuses writes (even once fsync works again: a retried fsync may report
 *   success for pages the kernel dropped), still serves reads, and bc_close
 *   reports BC_IO;
 * - bc_close returns BC_IO when its own final sync fails, and still frees
 *   the handle and releases the directory lock (the directory reopens;
 *   valgrind and ASan see no leak);
 * - in BC_SYNC_ALWAYS mode the put whose fsync fails returns BC_IO;
 * - in BC_SYNC_INTERVAL mode a failed background sync fails later writes;
 * - each time, the directory reopens with every record synced before the
 *   failure, and no damage. */
#define _GNU_SOURCE
#include "check.h"

#include <stdatomic.h>
#include <sys/syscall.h>

static atomic_int fail_syncs;
static atomic_long sync_calls;

static int intercepted(long nr, int fd) {
    atomic_fetch_add(&sync_calls, 1);
    if (atomic_load(&fail_syncs)) {
        errno = EIO;
        return -1;
    }
    return (int)syscall(nr, fd);
}

int fsync(int fd) { return intercepted(SYS_fsync, fd); }
int fdatasync(int fd) { return intercepted(SYS_fdatasync, fd); }

static bc_options *opts_with(int32_t mode, uint32_t interval_ms) {
    bc_options *o = make_opts(0, 0, 0);
    CHECK_STATUS(bc_options_set_sync(o, mode, interval_ms), BC_OK);
    return o;
}

static bc_db *open_with(const char *dir, int32_t mode, uint32_t interval_ms) {
    bc_options *o = opts_with(mode, interval_ms);
    bc_db *db = open_db(dir, o);
    bc_options_free(o);
    return db;
}

/* Reopens dir with default options: it must open (no repair), hold every
 * key in `synced` exactly, and hold `absent` nowhere. */
static void check_reopen(const char *dir, const char *const *synced, int n, const char *absent) {
    bc_db *db = open_db(dir, NULL);
    int i;
    for (i = 0; i < n; i++) {
        size_t len = strlen(synced[i]);
        CHECK_GET(db, U8(synced[i]), len, U8(synced[i]), len);
    }
    if (absent != NULL) CHECK_ABSENT(db, U8(absent), strlen(absent));
    close_db(db);
}

static void sync_failure_fails_the_handle(void) {
    const char *dir = make_temp_dir();
    static const char *const synced[] = {"a", "b"};
    bc_db *db = open_with(dir, BC_SYNC_NONE, 0);
    long before;
    CHECK_STATUS(bc_put(db, K("a"), K("a")), BC_OK);
    CHECK_STATUS(bc_put(db, K("b"), K("b")), BC_OK);
    before = atomic_load(&sync_calls);
    CHECK_STATUS(bc_sync(db), BC_OK);
    CHECK_MSG(atomic_load(&sync_calls) > before,
              "bc_sync did not reach this program's fsync/fdatasync: the test checks nothing");

    CHECK_STATUS(bc_put(db, K("c"), K("c")), BC_OK);
    atomic_store(&fail_syncs, 1);
    CHECK_STATUS(bc_sync(db), BC_IO);
    CHECK_STR_CONTAINS(bc_last_error(), ".data");
    atomic_store(&fail_syncs, 0);

    /* fsync works again; the handle still refuses writes. */
    CHECK_STATUS(bc_put(db, K("d"), K("d")), BC_IO);
    CHECK_STR_CONTAINS(bc_last_error(), "reopen");
    CHECK_STATUS(bc_delete(db, K("a")), BC_IO);
    CHECK_STATUS(bc_sync(db), BC_IO);
    /* Reads are still served, from what the handle knows. */
    CHECK_GET(db, K("a"), K("a"));
    CHECK_GET(db, K("c"), K("c"));
    CHECK_STATUS(bc_close(db), BC_IO);

    /* "c" was written but its sync failed: it may be there or not (here,
     * the page cache kept it); "d" was refused. */
    check_reopen(dir, synced, 2, "d");
}

static void close_reports_its_failed_sync_and_frees(void) {
    const char *dir = make_temp_dir();
    static const char *const synced[] = {"a"};
    bc_db *db = open_with(dir, BC_SYNC_NONE, 0);
    CHECK_STATUS(bc_put(db, K("a"), K("a")), BC_OK);
    CHECK_STATUS(bc_sync(db), BC_OK);
    CHECK_STATUS(bc_put(db, K("b"), K("b")), BC_OK);
    atomic_store(&fail_syncs, 1);
    CHECK_STATUS(bc_close(db), BC_IO);
    CHECK_STR_CONTAINS(bc_last_error(), ".data");
    atomic_store(&fail_syncs, 0);
    /* The lock was released (another open would get BC_LOCKED), and the
     * handle freed (valgrind/ASan). */
    check_reopen(dir, synced, 1, NULL);
}

static void always_mode_put_fails_with_its_fsync(void) {
    const char *dir = make_temp_dir();
    static const char *const synced[] = {"a"};
    bc_db *db = open_with(dir, BC_SYNC_ALWAYS, 0);
    CHECK_STATUS(bc_put(db, K("a"), K("a")), BC_OK);
    atomic_store(&fail_syncs, 1);
    CHECK_STATUS(bc_put(db, K("b"), K("b")), BC_IO);
    CHECK_STR_CONTAINS(bc_last_error(), ".data");
    atomic_store(&fail_syncs, 0);
    CHECK_STATUS(bc_put(db, K("c"), K("c")), BC_IO);
    CHECK_STATUS(bc_close(db), BC_IO);
    check_reopen(dir, synced, 1, "c");
}

static void background_sync_failure_fails_later_writes(void) {
    const char *dir = make_temp_dir();
    static const char *const synced[] = {"a"};
    bc_db *db = open_with(dir, BC_SYNC_INTERVAL, 5);
    bc_status st = BC_OK;
    int i;
    char key[32];
    CHECK_STATUS(bc_put(db, K("a"), K("a")), BC_OK);
    CHECK_STATUS(bc_sync(db), BC_OK);
    atomic_store(&fail_syncs, 1);
    /* The worker syncs every 5 ms: within a few seconds one of its syncs
     * fails, and the handle starts refusing puts. */
    for (i = 0; i < 5000 && st == BC_OK; i++) {
        int kl = snprintf(key, sizeof key, "later%d", i);
        st = bc_put(db, U8(key), (size_t)kl, U8(key), (size_t)kl);
        if (st == BC_OK) usleep(1000);
    }
    atomic_store(&fail_syncs, 0);
    CHECK_STATUS(st, BC_IO);
    CHECK_STR_CONTAINS(bc_last_error(), "reopen");
    CHECK_STATUS(bc_close(db), BC_IO);
    check_reopen(dir, synced, 1, NULL);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(sync_failure_fails_the_handle);
    RUN(close_reports_its_failed_sync_and_frees);
    RUN(always_mode_put_fails_with_its_fsync);
    RUN(background_sync_failure_fails_later_writes);
    return check_finish();
}
