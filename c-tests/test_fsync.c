/* test_fsync.c - what the library asks of fsync, seen from fsync itself.
 * This program defines fsync and fdatasync: a definition in the executable
 * comes first in symbol lookup, so libbitcask.so's calls land here. They
 * count the calls and pass through to the kernel, and on demand they wait
 * (a slow disk) or fail with EIO (a dying disk or a full thin volume).
 * Checked:
 * - BC_SYNC_ALWAYS: a put returns only after an fsync that began after its
 *   record was written has succeeded; 8 threads of durable puts share
 *   fsyncs (group commit): far fewer fsyncs than puts when each fsync
 *   takes 2 ms, and still each put waits for one begun after it was
 *   called;
 * - BC_SYNC_NONE: puts call no fsync;
 * - bc_sync returns BC_FAILED naming the data file, and from then on the handle
 *   refuses writes (even once fsync works again: a retried fsync may report
 *   success for pages the kernel dropped), still serves reads, and bc_close
 *   reports BC_FAILED; no file is sealed or hinted after the failure, neither
 *   the active file at close nor retired files the worker had queued;
 * - two fsyncs of one file at once (the worker's seal and bc_sync): when
 *   the first fails, bc_sync returns BC_FAILED even though its own fsync, which
 *   the kernel lets succeed after reporting the error once, passed;
 * - bc_close returns BC_FAILED when its own final sync fails, and still frees
 *   the handle and releases the directory lock (the directory reopens;
 *   valgrind and ASan see no leak);
 * - in BC_SYNC_ALWAYS mode the put whose fsync fails returns BC_FAILED;
 * - in BC_SYNC_INTERVAL mode a failed background sync fails later writes,
 *   and the interval sync runs on while a seal is slow;
 * - a failed fsync of a hint file fails the handle too, or the open that
 *   wrote the hint;
 * - a merge whose fsync fails returns BC_FAILED and fails the handle, and so
 *   does one that cannot delete a file it merged (unlink failing);
 * - after a failure, bc_close writes nothing to the directory;
 * - each time, the directory reopens with every record synced before the
 *   failure, and no damage;
 * - a read-write open syncs each data file it scans (one without a hint)
 *   before it writes the file's hint, and fails with BC_IO naming the file
 *   if that sync fails, writing no hint. */
#define _GNU_SOURCE
#include "check.h"

#include <limits.h>
#include <stdatomic.h>
#include <sys/syscall.h>

static atomic_int fail_syncs;
static atomic_int slow_syncs_us;
static atomic_long sync_calls; /* fsync/fdatasync calls begun */
static atomic_long data_syncs; /* ... of those, on a descriptor of a .data file */
/* The highest number (1, 2, ... in the order they began) of a call that
 * has returned success. */
static atomic_long synced_upto;

/* While `recording`, the order of data file unlinks ('U', with the file's
 * name) and directory syncs ('D'), for the merge deletion tests. */
static atomic_int recording;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char kind;
    char name[40];
} events[256];
static size_t event_count;

static void log_event(char kind, const char *path) {
    const char *base = path != NULL && strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
    pthread_mutex_lock(&log_lock);
    if (event_count < sizeof events / sizeof events[0]) {
        events[event_count].kind = kind;
        snprintf(events[event_count].name, sizeof events[0].name, "%s", base ? base : "");
        event_count++;
    }
    pthread_mutex_unlock(&log_lock);
}

/* The kinds of the events logged, as a string ("DDUDU..."). */
static const char *event_kinds(void) {
    static char kinds[sizeof events / sizeof events[0] + 1];
    size_t i;
    for (i = 0; i < event_count; i++) kinds[i] = events[i].kind;
    kinds[event_count] = '\0';
    return kinds;
}

static int is_dir_fd(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
}

static int ends_with_data(const char *path) {
    size_t n = strlen(path);
    return n > 5 && strcmp(path + n - 5, ".data") == 0;
}

/* Directory syncs left before they start failing with EIO; -1: never. */
static atomic_int dir_syncs_left = -1;

/* fail_syncs: 0 none, FAIL_ALL every sync, FAIL_DATA syncs of .data files,
 * FAIL_FIRST_DATA_LATE the first sync of a .data file only, after 300 ms
 * (as Linux reports a writeback error to one fsync only: a second one
 * beside it succeeds). */
enum { FAIL_ALL = 1, FAIL_DATA = 2, FAIL_FIRST_DATA_LATE = 3, FAIL_HINT = 4 };

/* Microseconds each fsync of a hint file takes (a slow seal), while set. */
static atomic_int slow_hints_us;
/* Microseconds each fsync of a data file by the worker thread takes (the
 * seal of a retired file, writing back a whole file), while set. */
static atomic_int slow_worker_data_us;

static int on_worker_thread(void) {
    char name[16] = "";
    return pthread_getname_np(pthread_self(), name, sizeof name) == 0 &&
           strcmp(name, "bitcask-worker") == 0;
}

static int intercepted(long nr, int fd) {
    int slow = atomic_load(&slow_syncs_us);
    int fail = atomic_load(&fail_syncs); /* decided when the call begins */
    long n = atomic_fetch_add(&sync_calls, 1) + 1, done;
    int rc, is_data = 0, is_hint = 0;
    char link[64], target[PATH_MAX];
    ssize_t tl;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    tl = readlink(link, target, sizeof target - 1);
    if (tl > 0) {
        target[tl] = '\0';
        is_data = ends_with_data(target);
        is_hint = strstr(target, ".hint") != NULL;
    }
    if (is_hint && atomic_load(&slow_hints_us) > 0) usleep((useconds_t)atomic_load(&slow_hints_us));
    if (is_data && atomic_load(&slow_worker_data_us) > 0 && on_worker_thread())
        usleep((useconds_t)atomic_load(&slow_worker_data_us));
    if (is_hint && fail == FAIL_HINT) {
        errno = EIO;
        return -1;
    }
    if (is_data) atomic_fetch_add(&data_syncs, 1);
    if (is_dir_fd(fd)) {
        int left = atomic_load(&dir_syncs_left);
        if (atomic_load(&recording)) log_event('D', NULL);
        if (left == 0) fail = FAIL_ALL;
        if (left > 0) atomic_fetch_sub(&dir_syncs_left, 1);
    }
    if (slow > 0) usleep((useconds_t)slow);
    if (fail == FAIL_FIRST_DATA_LATE && is_data) {
        int expected = FAIL_FIRST_DATA_LATE;
        /* The first one claims the failure; later ones pass through. */
        if (atomic_compare_exchange_strong(&fail_syncs, &expected, 0)) {
            usleep(300000);
            errno = EIO;
            return -1;
        }
    }
    if (fail == FAIL_ALL || (fail == FAIL_DATA && is_data)) {
        errno = EIO;
        return -1;
    }
    rc = (int)syscall(nr, fd);
    done = atomic_load(&synced_upto);
    while (rc == 0 && done < n && !atomic_compare_exchange_weak(&synced_upto, &done, n)) {
    }
    return rc;
}

int fsync(int fd) { return intercepted(SYS_fsync, fd); }
int fdatasync(int fd) { return intercepted(SYS_fdatasync, fd); }
/* Set: unlinking a .data file fails with EBUSY. */
static atomic_int fail_unlinks;

/* What unlink and unlinkat do first: log a data file's unlink while
 * recording; -1 (EBUSY) where it must fail, else 0. */
static int intercept_unlink(const char *path) {
    if (!ends_with_data(path)) return 0;
    if (atomic_load(&recording)) log_event('U', path);
    if (!atomic_load(&fail_unlinks)) return 0;
    errno = EBUSY;
    return -1;
}

int unlink(const char *path) {
    if (intercept_unlink(path) != 0) return -1;
    return (int)syscall(SYS_unlinkat, AT_FDCWD, path, 0);
}
int unlinkat(int dirfd, const char *path, int flags) {
    if (intercept_unlink(path) != 0) return -1;
    return (int)syscall(SYS_unlinkat, dirfd, path, flags);
}

/* A healthy disk again: a sub-test that failed midway may have left it
 * slow or failing. */
static void disk_ok(void) {
    atomic_store(&fail_syncs, 0);
    atomic_store(&slow_syncs_us, 0);
}

static bc_db *open_with(const char *dir, int32_t mode, uint32_t interval_ms) {
    bc_options *o = make_opts(0, 0, 0);
    bc_db *db;
    disk_ok();
    CHECK_STATUS(bc_options_set_sync(o, mode, interval_ms), BC_OK);
    db = open_db(dir, o);
    bc_options_free(o);
    return db;
}

/* Puts key "<prefix><i>" with val (vlen bytes), or with the key itself as
 * its value when val is NULL. */
static bc_status put_numbered(bc_db *db, const char *prefix, int i, const uint8_t *val,
                              size_t vlen) {
    char key[48];
    int kl = snprintf(key, sizeof key, "%s%d", prefix, i);
    return bc_put(db, U8(key), (size_t)kl, val != NULL ? val : U8(key),
                  val != NULL ? vlen : (size_t)kl);
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

static void always_mode_put_waits_for_an_fsync(void) {
    const char *dir = make_temp_dir();
    bc_db *db = open_with(dir, BC_SYNC_ALWAYS, 0);
    int i;
    for (i = 0; i < 20; i++) {
        long before = atomic_load(&sync_calls);
        CHECK_STATUS(put_numbered(db, "k", i, NULL, 0), BC_OK);
        /* One thread, no other writer: an fsync begun during bc_put came
         * after its record was appended (a put appends, syncs, returns),
         * and it succeeded before the put returned. */
        CHECK_MSG(atomic_load(&synced_upto) > before,
                  "put %d in BC_SYNC_ALWAYS returned before an fsync after it succeeded", i);
    }
    close_db(db);
}

static void none_mode_puts_do_not_fsync(void) {
    const char *dir = make_temp_dir();
    bc_db *db = open_with(dir, BC_SYNC_NONE, 0);
    long before;
    int i;
    CHECK_STATUS(bc_put(db, K("first"), K("first")), BC_OK); /* file created */
    before = atomic_load(&sync_calls);
    for (i = 0; i < 200; i++) CHECK_STATUS(put_numbered(db, "k", i, NULL, 0), BC_OK);
    CHECK_MSG(atomic_load(&sync_calls) == before,
              "%ld fsyncs during 200 BC_SYNC_NONE puts", atomic_load(&sync_calls) - before);
    close_db(db);
}

static void open_syncs_a_scanned_file_before_hinting_it(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db;
    long before;
    int i, hints;
    disk_ok();
    db = open_db(dir, o);
    for (i = 0; i < 1000; i++) CHECK_STATUS(put_numbered(db, "k", i, NULL, 0), BC_OK);
    close_db(db);
    hints = remove_files_with_suffix(dir, ".hint");
    CHECK_MSG(hints > 3, "%d hints", hints);

    /* Only the data files' syncs fail: a hint written without its data
     * file's sync would still reach the disk and be seen below. */
    atomic_store(&fail_syncs, FAIL_DATA);
    db = NULL;
    CHECK_STATUS(bc_open(dir, o, &db), BC_IO);
    CHECK(db == NULL);
    CHECK_STR_CONTAINS(bc_last_error(), "syncing");
    CHECK_STR_CONTAINS(bc_last_error(), ".data");
    disk_ok();
    CHECK_MSG(remove_files_with_suffix(dir, ".hint") == 0, "a hint was written for a file whose sync failed");

    /* Counting only syncs of data files: the hints and the directory are
     * synced too, and would reach the bound on their own. */
    before = atomic_load(&data_syncs);
    db = open_db(dir, o);
    CHECK_MSG(atomic_load(&data_syncs) - before >= hints, "%ld data file syncs for %d scanned files",
              atomic_load(&data_syncs) - before, hints);
    for (i = 0; i < 1000; i++) {
        char key[32];
        int kl = snprintf(key, sizeof key, "k%d", i);
        CHECK_GET(db, U8(key), (size_t)kl, key, (size_t)kl);
    }
    close_db(db);
    CHECK_MSG(remove_files_with_suffix(dir, ".hint") >= hints, "the scanned files got no hints");
    bc_options_free(o);
}

#define GC_THREADS 8
#define GC_PUTS 25

struct writer {
    bc_db *db;
    char prefix[16]; /* "t<id>-" */
};

static void *group_writer(void *arg) {
    const struct writer *w = (const struct writer *)arg;
    int i;
    for (i = 0; i < GC_PUTS; i++) {
        long before = atomic_load(&sync_calls);
        CHECK_STATUS(put_numbered(w->db, w->prefix, i, NULL, 0), BC_OK);
        /* Whoever led it, an fsync begun after this put was called
         * succeeded before the put returned. (With other writers, such an
         * fsync may have begun before this put appended its record: this
         * catches a put that returns without waiting, not one that waits
         * for too early an fsync.) */
        CHECK_MSG(atomic_load(&synced_upto) > before,
                  "a durable put returned before an fsync begun after it had succeeded");
    }
    return NULL;
}

static void concurrent_durable_puts_share_fsyncs(void) {
    const char *dir = make_temp_dir();
    bc_db *db = open_with(dir, BC_SYNC_ALWAYS, 0);
    struct writer args[GC_THREADS];
    pthread_t th[GC_THREADS];
    long before;
    int t;
    CHECK_STATUS(bc_put(db, K("first"), K("first")), BC_OK);
    /* Each fsync takes 2 ms: while one runs, the other writers append and
     * wait, and the next fsync covers all of them. */
    atomic_store(&slow_syncs_us, 2000);
    before = atomic_load(&sync_calls);
    for (t = 0; t < GC_THREADS; t++) {
        args[t].db = db;
        snprintf(args[t].prefix, sizeof args[t].prefix, "t%d-", t);
        CHECK(pthread_create(&th[t], NULL, group_writer, &args[t]) == 0);
    }
    for (t = 0; t < GC_THREADS; t++) CHECK(pthread_join(th[t], NULL) == 0);
    atomic_store(&slow_syncs_us, 0);
    {
        long syncs = atomic_load(&sync_calls) - before;
        /* Without sharing: one fsync per put (200); with each leader
         * gathering the group: 26 (25 at best), 29-30 under valgrind, 42
         * once with the other core busy with a fuzzer. */
        CHECK_MSG(syncs > 0 && syncs <= GC_THREADS * GC_PUTS / 4,
                  "%ld fsyncs for %d durable puts from %d threads", syncs,
                  GC_THREADS * GC_PUTS, GC_THREADS);
        printf("group commit: %ld fsyncs for %d puts\n", syncs, GC_THREADS * GC_PUTS);
    }
    close_db(db);
}

static void sync_failure_fails_the_handle(void) {
    const char *dir = make_temp_dir();
    static const char *const synced[] = {"a", "b"};
    bc_db *db = open_with(dir, BC_SYNC_NONE, 0);
    long before;
    uint64_t before_close;
    CHECK_STATUS(bc_put(db, K("a"), K("a")), BC_OK);
    CHECK_STATUS(bc_put(db, K("b"), K("b")), BC_OK);
    before = atomic_load(&sync_calls);
    CHECK_STATUS(bc_sync(db), BC_OK);
    CHECK_MSG(atomic_load(&sync_calls) > before,
              "bc_sync did not reach this program's fsync/fdatasync: the test checks nothing");

    CHECK_STATUS(bc_put(db, K("c"), K("c")), BC_OK);
    atomic_store(&fail_syncs, FAIL_ALL);
    CHECK_STATUS(bc_sync(db), BC_FAILED);
    CHECK_STR_CONTAINS(bc_last_error(), ".data");
    atomic_store(&fail_syncs, 0);

    /* fsync works again; the handle still refuses writes. */
    CHECK_STATUS(bc_put(db, K("d"), K("d")), BC_FAILED);
    CHECK_STR_CONTAINS(bc_last_error(), "reopen");
    CHECK_STATUS(bc_delete(db, K("a")), BC_FAILED);
    CHECK_STATUS(bc_sync(db), BC_FAILED);
    /* Reads are still served, from what the handle knows. */
    CHECK_GET(db, K("a"), K("a"));
    CHECK_GET(db, K("c"), K("c"));
    before_close = dir_fingerprint(dir);
    CHECK_STATUS(bc_close(db), BC_FAILED);
    /* Close wrote nothing more: no flush, no seal, no hint. */
    CHECK_MSG(dir_fingerprint(dir) == before_close, "close after a failure wrote to the directory");
    /* Close did not seal the active file: no hint vouches for it. */
    CHECK_MSG(count_files_with_suffix(dir, ".hint", NULL, NULL) == 0,
              "a hint was written after the failure");

    /* "c" was written but its sync failed: it may be there or not (here,
     * the page cache kept it); "d" was refused. */
    check_reopen(dir, synced, 2, "d");
}

/* Files retired before a failure and still queued for the worker to seal
 * are not sealed or hinted after it, even once fsync works again. */
static void queued_files_are_not_sealed_after_a_failure(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0); /* small files: puts retire many */
    bc_db *db;
    bc_status st = BC_OK;
    uint8_t val[512];
    uint64_t before_close;
    int i, files;
    memset(val, 'v', sizeof val);
    disk_ok();
    CHECK_STATUS(bc_options_set_sync(o, BC_SYNC_NONE, 0), BC_OK);
    db = open_db(dir, o);
    bc_options_free(o);
    /* Every fsync begun from now on fails after 20 ms: while the worker's
     * first seal waits, the writer retires more files behind it. */
    atomic_store(&slow_syncs_us, 20000);
    atomic_store(&fail_syncs, FAIL_ALL);
    for (i = 0; i < 100000 && st == BC_OK; i++) st = put_numbered(db, "k", i, val, sizeof val);
    CHECK_STATUS(st, BC_FAILED);
    /* fsync works again: the seals still queued would now succeed. */
    atomic_store(&fail_syncs, 0);
    atomic_store(&slow_syncs_us, 0);
    files = count_files_with_suffix(dir, ".data", NULL, NULL);
    CHECK_MSG(files > 2, "only %d data files: nothing was queued", files);
    before_close = dir_fingerprint(dir);
    CHECK_STATUS(bc_close(db), BC_FAILED);
    CHECK_MSG(dir_fingerprint(dir) == before_close, "close after a failure wrote to the directory");
    CHECK_MSG(count_files_with_suffix(dir, ".hint", NULL, NULL) == 0,
              "hints written after the failure for some of %d data files", files);
    check_reopen(dir, NULL, 0, NULL);
}

/* Two fsyncs of one file at once (the worker sealing a retired file, and
 * bc_sync, which syncs files not sealed yet): when the first fails, the
 * second, which the kernel lets succeed, must not make bc_sync return
 * BC_OK for data the kernel may have dropped. */
static void a_concurrent_fsync_does_not_hide_a_failed_one(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db;
    uint8_t val[512];
    int i;
    memset(val, 'v', sizeof val);
    disk_ok();
    CHECK_STATUS(bc_options_set_sync(o, BC_SYNC_NONE, 0), BC_OK);
    db = open_db(dir, o);
    bc_options_free(o);
    atomic_store(&fail_syncs, FAIL_FIRST_DATA_LATE);
    /* The first file fills and retires: the worker's seal of it begins
     * the failing fsync. */
    for (i = 0; i < 10; i++) CHECK_STATUS(put_numbered(db, "k", i, val, sizeof val), BC_OK);
    /* Until the worker is inside that fsync (its 300 ms). */
    for (i = 0; i < 500 && atomic_load(&fail_syncs) != 0; i++) usleep(10000);
    CHECK_MSG(atomic_load(&fail_syncs) == 0, "the worker did not begin its fsync");
    CHECK_STATUS(bc_sync(db), BC_FAILED);
    CHECK_STR_CONTAINS(bc_last_error(), ".data");
    disk_ok();
    CHECK_STATUS(bc_put(db, K("after"), K("after")), BC_FAILED);
    CHECK_STATUS(bc_close(db), BC_FAILED);
    check_reopen(dir, NULL, 0, NULL);
}

static void close_reports_its_failed_sync_and_frees(void) {
    const char *dir = make_temp_dir();
    static const char *const synced[] = {"a"};
    bc_db *db = open_with(dir, BC_SYNC_NONE, 0);
    CHECK_STATUS(bc_put(db, K("a"), K("a")), BC_OK);
    CHECK_STATUS(bc_sync(db), BC_OK);
    CHECK_STATUS(bc_put(db, K("b"), K("b")), BC_OK);
    atomic_store(&fail_syncs, FAIL_ALL);
    CHECK_STATUS(bc_close(db), BC_FAILED);
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
    atomic_store(&fail_syncs, FAIL_ALL);
    CHECK_STATUS(bc_put(db, K("b"), K("b")), BC_FAILED);
    CHECK_STR_CONTAINS(bc_last_error(), ".data");
    atomic_store(&fail_syncs, 0);
    CHECK_STATUS(bc_put(db, K("c"), K("c")), BC_FAILED);
    CHECK_STATUS(bc_close(db), BC_FAILED);
    check_reopen(dir, synced, 1, "c");
}

static void background_sync_failure_fails_later_writes(void) {
    const char *dir = make_temp_dir();
    static const char *const synced[] = {"a"};
    bc_db *db = open_with(dir, BC_SYNC_INTERVAL, 5);
    bc_status st = BC_OK;
    int i;
    CHECK_STATUS(bc_put(db, K("a"), K("a")), BC_OK);
    CHECK_STATUS(bc_sync(db), BC_OK);
    atomic_store(&fail_syncs, FAIL_ALL);
    /* The worker syncs every 5 ms: within a few seconds one of its syncs
     * fails, and the handle starts refusing puts. */
    for (i = 0; i < 5000 && st == BC_OK; i++) {
        st = put_numbered(db, "later", i, NULL, 0);
        if (st == BC_OK) usleep(1000);
    }
    atomic_store(&fail_syncs, 0);
    CHECK_STATUS(st, BC_FAILED);
    CHECK_STR_CONTAINS(bc_last_error(), "reopen");
    CHECK_STATUS(bc_close(db), BC_FAILED);
    check_reopen(dir, synced, 1, NULL);
}

/* A merge whose fsync fails returns BC_FAILED and fails the handle like any
 * failed fsync (bc_merge's header): writes and close report it after. */
static void merge_fsync_failure_fails_the_handle(void) {
    const char *dir = make_temp_dir();
    static const char *const synced[] = {"a", "b"};
    bc_db *db = open_with(dir, BC_SYNC_NONE, 0);
    CHECK_STATUS(bc_put(db, K("a"), K("old")), BC_OK);
    CHECK_STATUS(bc_put(db, K("a"), K("a")), BC_OK);
    CHECK_STATUS(bc_put(db, K("b"), K("b")), BC_OK);
    CHECK_STATUS(bc_sync(db), BC_OK);
    atomic_store(&fail_syncs, FAIL_ALL);
    CHECK_STATUS(bc_merge(db), BC_FAILED);
    atomic_store(&fail_syncs, 0);
    CHECK_STATUS(bc_put(db, K("c"), K("c")), BC_FAILED);
    CHECK_STR_CONTAINS(bc_last_error(), "reopen");
    CHECK_GET(db, K("a"), K("a"));
    CHECK_STATUS(bc_close(db), BC_FAILED);
    check_reopen(dir, synced, 2, "c");
}

/* Puts filler values until the database has one more data file. */
static void fill_to_next_file(bc_db *db, const char *prefix) {
    static const uint8_t val[100];
    uint64_t files = get_stats(db).data_files;
    int i = 0;
    while (get_stats(db).data_files == files)
        CHECK_STATUS(put_numbered(db, prefix, i++, val, sizeof val), BC_OK);
}

/* The index of the first event of `kind` (for 'U': unlinking `name`) at
 * or after `from`; event_count if none. */
static size_t find_event(size_t from, char kind, const char *name) {
    size_t i;
    for (i = from; i < event_count; i++)
        if (events[i].kind == kind && (name == NULL || strcmp(events[i].name, name) == 0)) break;
    return i;
}

/* The first data files a database makes: ids 1 << 32, 2 << 32, ... */
static const char *data_name(int n, char *buf, size_t cap) {
    snprintf(buf, cap, "%016llx.data", (unsigned long long)n << 32);
    return buf;
}

/* Builds, in a new directory, "victim" put in data file 1, deleted (its
 * tombstone) in data file 2, and file 3 begun; closed. */
static const char *victim_db(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db;
    disk_ok();
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_STATUS(bc_put(db, K("victim"), K("old")), BC_OK);
    fill_to_next_file(db, "a"); /* file 1: the value */
    CHECK_STATUS(bc_delete(db, K("victim")), BC_OK);
    fill_to_next_file(db, "b"); /* file 2: its tombstone */
    close_db(db);
    return dir;
}

/* A full merge drops the tombstone in the second file, which shadowed the
 * value in the first: the first file's deletion must be on disk (a
 * directory sync) before the second's, or a power loss could keep only
 * the second deletion and bring the value back. */
static void merge_deletes_shadowed_values_first(void) {
    const char *dir = victim_db();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db = open_db(dir, o);
    char first[40], second[40];
    size_t u1, d, u2;
    bc_options_free(o);
    event_count = 0;
    atomic_store(&recording, 1);
    CHECK_STATUS(bc_merge(db), BC_OK);
    atomic_store(&recording, 0);
    u1 = find_event(0, 'U', data_name(1, first, sizeof first));
    u2 = find_event(0, 'U', data_name(2, second, sizeof second));
    d = find_event(u1, 'D', NULL);
    CHECK_MSG(u1 < event_count && u2 < event_count,
              "merge did not delete %s and %s: events %s", first, second, event_kinds());
    CHECK_MSG(u1 < d && d < u2,
              "%s (the value) was not deleted, and the directory synced, before %s (its "
              "tombstone): events %s (U: a data file unlinked, D: a directory synced)",
              first, second, event_kinds());
    CHECK_ABSENT(db, K("victim"));
    close_db(db);
    check_reopen(dir, NULL, 0, "victim");
}

/* A full merge whose directory sync fails, at each of its directory syncs
 * in turn (placing an output, between input deletions, at the end):
 * bc_merge returns BC_FAILED, the handle refuses writes from then on (files
 * may be on disk outside its file table), and the directory reopens with
 * the data exact: the deleted key stays deleted. The merge that finally
 * succeeds made exactly as many directory syncs as the countdown allowed:
 * a failed sync it had ignored would have let it go on syncing. */
static void merge_directory_sync_failure_fails_the_handle(void) {
    static const uint8_t zeros[100];
    int k, merged = 0;
    for (k = 0; k < 64 && !merged; k++) {
        const char *dir = victim_db();
        bc_options *o = make_opts(4096, 0, 0);
        bc_db *db = open_db(dir, o);
        bc_status st;
        bc_options_free(o);
        event_count = 0;
        atomic_store(&recording, 1);
        atomic_store(&dir_syncs_left, k);
        st = bc_merge(db);
        atomic_store(&dir_syncs_left, -1);
        atomic_store(&recording, 0);
        if (st == BC_OK) {
            merged = 1;
        } else {
            CHECK_MSG(st == BC_FAILED, "directory sync %d failing: bc_merge returned %s", k,
                      status_name(st));
            CHECK_STATUS(bc_put(db, K("after"), K("after")), BC_FAILED);
        }
        CHECK_ABSENT(db, K("victim"));
        CHECK_GET(db, K("a0"), zeros, sizeof zeros);
        (void)bc_close(db);
        check_reopen(dir, NULL, 0, "victim");
        if (!merged) check_reopen(dir, NULL, 0, "after");
        if (merged) {
            size_t i;
            int syncs = 0;
            for (i = 0; i < event_count; i++) syncs += events[i].kind == 'D';
            CHECK_MSG(syncs == k, "the merge that succeeded with %d directory syncs allowed "
                      "made %d", k, syncs);
        }
    }
    CHECK_MSG(merged && k > 3, "bc_merge succeeded after %d directory syncs", k - 1);
}

/* A merge that cannot delete a file it merged (an unlink failing) returns
 * BC_FAILED naming the file and fails the handle, as a failed fsync does: the
 * file stays on disk outside the file table, where a later merge of this
 * handle could drop a tombstone that shadows it. bc_sync, bc_merge and
 * writes return BC_FAILED from then on, naming the first failure; bc_close
 * too, after it has written out what was acknowledged. The directory
 * reopens with the data exact, the undeleted file merged again. */
static void merge_unlink_failure_fails_the_handle(void) {
    static const uint8_t zeros[100];
    static const char *const synced[] = {"acked"};
    const char *dir = victim_db();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db = open_db(dir, o);
    bc_options_free(o);
    CHECK_STATUS(bc_put(db, K("acked"), K("acked")), BC_OK);
    atomic_store(&fail_unlinks, 1);
    CHECK_STATUS(bc_merge(db), BC_FAILED);
    atomic_store(&fail_unlinks, 0);
    CHECK_STR_CONTAINS(bc_last_error(), ".data");
    CHECK_STATUS(bc_put(db, K("after"), K("after")), BC_FAILED);
    CHECK_STR_CONTAINS(bc_last_error(), "reopen");
    CHECK_STR_CONTAINS(bc_last_error(), ".data");
    CHECK_STATUS(bc_sync(db), BC_FAILED);
    CHECK_STATUS(bc_merge(db), BC_FAILED);
    CHECK_ABSENT(db, K("victim"));
    CHECK_GET(db, K("a0"), zeros, sizeof zeros);
    CHECK_STATUS(bc_close(db), BC_FAILED);
    check_reopen(dir, synced, 1, "victim");
    check_reopen(dir, NULL, 0, "after");
    db = open_db(dir, NULL);
    CHECK_STATUS(bc_merge(db), BC_OK);
    CHECK_GET(db, K("a0"), zeros, sizeof zeros);
    close_db(db);
    check_reopen(dir, synced, 1, "victim");
}

/* The worker's fsync of a hint it wrote fails: the handle fails as for any
 * failed fsync (the error was reported once; a later fsync may pass over
 * lost pages). Later puts, bc_sync and bc_close return BC_FAILED naming it;
 * the sealed file's records stay. */
static void hint_fsync_failure_fails_the_handle(void) {
    static const uint8_t zeros[100];
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db = open_db(dir, o);
    int i;
    bc_options_free(o);
    disk_ok();
    atomic_store(&fail_syncs, FAIL_HINT);
    CHECK_STATUS(bc_put(db, K("first"), K("file")), BC_OK);
    fill_to_next_file(db, "a"); /* the worker seals and hints the first file */
    for (i = 0; i < 5000 && put_numbered(db, "b", i, NULL, 0) == BC_OK; i++) usleep(1000);
    atomic_store(&fail_syncs, 0);
    CHECK_MSG(i < 5000, "puts still acknowledged 5 s after the hint's fsync failed");
    CHECK_STR_CONTAINS(bc_last_error(), "hint");
    CHECK_STATUS(bc_sync(db), BC_FAILED);
    CHECK_STATUS(bc_close(db), BC_FAILED);
    db = open_db(dir, NULL);
    CHECK_GET(db, K("first"), K("file"));
    CHECK_GET(db, K("a0"), zeros, sizeof zeros);
    close_db(db);
}

/* An open that scans a file without a hint writes its hint: a failed
 * fsync of that hint fails the open with BC_IO naming it, as a failed
 * fsync of the data file does (open_syncs_a_scanned_file_before_hinting_it);
 * with a healthy disk the directory opens. */
static void open_fails_when_the_hint_it_writes_fails_to_sync(void) {
    const char *dir = make_temp_dir();
    bc_db *db = open_db(dir, NULL), *failed = NULL;
    CHECK_STATUS(bc_put(db, K("k"), K("v")), BC_OK);
    close_db(db);
    CHECK(remove_files_with_suffix(dir, ".hint") == 1);
    disk_ok();
    atomic_store(&fail_syncs, FAIL_HINT);
    CHECK_STATUS(bc_open(dir, NULL, &failed), BC_IO);
    atomic_store(&fail_syncs, 0);
    CHECK(failed == NULL);
    CHECK_STR_CONTAINS(bc_last_error(), "hint");
    db = open_db(dir, NULL);
    CHECK_GET(db, K("k"), K("v"));
    close_db(db);
}

/* A database in `dir` with 4 KiB files and a 10 ms BC_SYNC_INTERVAL
 * (written through the write buffer unless `write_map`), whose first file
 * is retired, after `slow` (a knob above) was set to 600 ms and `settle_us`
 * passed: the worker is in its slow fsync. */
static bc_db *retire_under_slow_fsync(const char *dir, atomic_int *slow, useconds_t settle_us,
                                      bool write_map) {
    bc_db *db;
    bc_options *o = make_opts(4096, 0, 0);
    disk_ok();
    CHECK_STATUS(bc_options_set_sync(o, BC_SYNC_INTERVAL, 10), BC_OK);
    CHECK_STATUS(bc_options_set_write_map(o, write_map), BC_OK);
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_STATUS(bc_put(db, K("first"), K("file")), BC_OK);
    atomic_store(slow, 600000);
    fill_to_next_file(db, "a"); /* the first file is retired */
    usleep(settle_us);
    return db;
}

/* BC_SYNC_INTERVAL: the interval flush and fsync go on while the worker
 * is held up sealing a file (its hint's fsync takes 600 ms here): they
 * ran on the worker, after its seals. */
static void interval_sync_does_not_wait_for_a_slow_seal(void) {
    long before;
    bc_db *db = retire_under_slow_fsync(make_temp_dir(), &slow_hints_us, 50000, true);
    before = atomic_load(&data_syncs);
    CHECK_STATUS(bc_put(db, K("during"), K("the seal")), BC_OK);
    usleep(200000);
    CHECK_MSG(atomic_load(&data_syncs) > before,
              "the put was not synced in 200 ms of 10 ms intervals during a slow seal");
    atomic_store(&slow_hints_us, 0);
    close_db(db);
}

/* BC_SYNC_INTERVAL: the interval flush writes the active file's buffer to
 * the OS while the worker is held up in the fsync of the file it seals
 * (600 ms here), so a process crash loses nothing older than an interval.
 * It waited for that fsync before (the sync fsynced retired files first).
 * (With the write map there is no buffer: a put is in the OS at once.) */
static void interval_flush_does_not_wait_for_a_slow_data_fsync(void) {
    uint64_t before = 0, after = 0;
    const char *dir = make_temp_dir();
    bc_db *db = retire_under_slow_fsync(dir, &slow_worker_data_us, 100000, false);
    count_files_with_suffix(dir, ".data", &before, NULL);
    CHECK_STATUS(bc_put(db, K("during"), K("the fsync")), BC_OK);
    usleep(200000);
    count_files_with_suffix(dir, ".data", &after, NULL);
    CHECK_MSG(after > before,
              "the put was not written out in 200 ms of 10 ms intervals during a slow fsync "
              "(%llu data bytes before, %llu after)",
              (unsigned long long)before, (unsigned long long)after);
    atomic_store(&slow_worker_data_us, 0);
    close_db(db);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(always_mode_put_waits_for_an_fsync);
    RUN(none_mode_puts_do_not_fsync);
    RUN(concurrent_durable_puts_share_fsyncs);
    RUN(sync_failure_fails_the_handle);
    RUN(queued_files_are_not_sealed_after_a_failure);
    RUN(a_concurrent_fsync_does_not_hide_a_failed_one);
    RUN(close_reports_its_failed_sync_and_frees);
    RUN(always_mode_put_fails_with_its_fsync);
    RUN(background_sync_failure_fails_later_writes);
    RUN(merge_fsync_failure_fails_the_handle);
    RUN(open_syncs_a_scanned_file_before_hinting_it);
    RUN(merge_deletes_shadowed_values_first);
    RUN(merge_directory_sync_failure_fails_the_handle);
    RUN(merge_unlink_failure_fails_the_handle);
    RUN(hint_fsync_failure_fails_the_handle);
    RUN(open_fails_when_the_hint_it_writes_fails_to_sync);
    RUN(interval_sync_does_not_wait_for_a_slow_seal);
    RUN(interval_flush_does_not_wait_for_a_slow_data_fsync);
    return check_finish();
}
