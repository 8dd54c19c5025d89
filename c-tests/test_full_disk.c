/* test_full_disk.c - a disk that fills up. A child process runs under
 * RLIMIT_FSIZE (writes past the limit fail with EFBIG, as they would with
 * ENOSPC on a full disk) and puts 1000-byte values until a put fails:
 * - the failing put returns BC_IO with a message naming the data file;
 * - every acknowledged key still reads back exactly from the live handle;
 * - a further put fails cleanly too, and bc_close returns (BC_OK or BC_IO);
 * then, without the limit, the database opens with no repair:
 * - BC_SYNC_ALWAYS: every acknowledged key is there, exactly;
 * - BC_SYNC_NONE: every key that is there is exact (the write buffer the
 *   disk refused is lost, as the header says), and the put that failed
 *   stored nothing;
 * - BC_SYNC_NONE with the write map: the disk fills to its last pages (the
 *   preallocation steps stop at the limit), and every acknowledged key is
 *   there, exactly.
 * - the write map with SIGXFSZ at its default action (which kills): the
 *   preallocation steps stop at the limit, so the process dies only at
 *   the put whose own record would pass it, not at the last step before
 *   the limit, and every put acknowledged before is there.
 * - a merge whose output the disk refuses (through the write buffer, as
 *   merge outputs are written) fails with BC_IO and leaves the handle
 *   usable: puts, bc_sync and bc_close succeed, and nothing is lost (a
 *   review found the handle failed, as after a failed fsync, and the
 *   write buffer's acknowledged puts lost at close).
 * And an open that cannot write the hint of a file it scans (the hint is
 * larger than the limit) still opens, from a second scan, and serves every
 * key; the next open without the limit writes the hint. */
#include "check.h"

#include <sys/resource.h>

#define LIMIT (300u << 10)
#define VLEN 1000

static int key_of(char *buf, int i) { return sprintf(buf, "k%06d", i); }

static void value_of(uint8_t *buf, int i) {
    int j;
    for (j = 0; j < VLEN; j++) buf[j] = (uint8_t)(i * 31 + j);
}

/* Puts record i: key_of(i), value_of(i). */
static bc_status put_nth(bc_db *db, int i) {
    char key[16];
    uint8_t val[VLEN];
    int kl = key_of(key, i);
    value_of(val, i);
    return bc_put(db, U8(key), (size_t)kl, val, VLEN);
}

/* Checks that record i reads back exactly. */
static void check_nth(bc_db *db, int i) {
    char key[16];
    uint8_t val[VLEN];
    int kl = key_of(key, i);
    value_of(val, i);
    CHECK_GET(db, U8(key), (size_t)kl, val, VLEN);
}

static bc_options *full_opts(int sync, int map) {
    bc_options *o = make_opts(1u << 20, 0, 0);
    CHECK_STATUS(bc_options_set_sync(o, sync, 0), BC_OK);
    CHECK_STATUS(bc_options_set_write_map(o, map), BC_OK);
    return o;
}

/* ---- child --------------------------------------------------------------- */

/* Limits this process's files to `limit` bytes. SIGXFSZ ignored: a write
 * past the limit fails with EFBIG, as one on a full disk fails with
 * ENOSPC; at its default action (`kill`), it ends the process. */
static void limit_file_size(rlim_t limit, int kill) {
    struct rlimit rl;
    signal(SIGXFSZ, kill ? SIG_DFL : SIG_IGN);
    rl.rlim_cur = rl.rlim_max = limit;
    CHECK_MSG(setrlimit(RLIMIT_FSIZE, &rl) == 0, "setrlimit(RLIMIT_FSIZE): %s", strerror(errno));
}

/* Puts until the disk is "full"; writes the number of acknowledged puts to
 * stdout. Exit 0 if everything held. */
static int child_fill(const char *dir, int sync, int map) {
    bc_options *o = full_opts(sync, map);
    bc_db *db;
    uint8_t val[VLEN];
    bc_status st = BC_OK;
    int n, i;

    limit_file_size(LIMIT, 0);
    db = open_db(dir, o);
    bc_options_free(o);
    for (n = 0; n < 10000; n++) {
        st = put_nth(db, n);
        if (st != BC_OK) break;
    }
    CHECK_MSG(n > 50 && n < 10000, "%d puts before the disk filled", n);
    CHECK_STATUS(st, BC_IO);
    CHECK_STR_CONTAINS(bc_last_error(), ".data");
    printf("%d\n", n);
    fflush(stdout);
    for (i = 0; i < n; i++) {
        check_nth(db, i);
    }
    CHECK_STATUS(bc_put(db, K("extra"), val, VLEN), BC_IO);
    st = bc_close(db);
    CHECK_MSG(st == BC_OK || st == BC_IO, "bc_close: %s", status_name(st));
    return check_finish();
}

/* Puts under the limit with SIGXFSZ at its default action until the
 * signal kills the process; writes a byte to stdout after each
 * acknowledged put. */
static int child_sigxfsz(const char *dir) {
    bc_options *o = full_opts(BC_SYNC_NONE, 1);
    bc_db *db;
    int n;

    limit_file_size(LIMIT, 1);
    db = open_db(dir, o);
    bc_options_free(o);
    for (n = 0; n < 10000; n++) {
        CHECK_STATUS(put_nth(db, n), BC_OK);
        CHECK_MSG(write(1, "+", 1) == 1, "write: %s", strerror(errno));
    }
    return 1; /* never reached the limit */
}

/* Three files of MERGE_KEYS live records each (one an open), about
 * 615 KB to merge; the merge's output is refused at MERGE_LIMIT, past its
 * second 256 KiB flush, in the flush of its seal. */
#define MERGE_KEYS 200
#define MERGE_LIMIT (560u << 10)

static int child_merge(const char *dir) {
    bc_options *o = full_opts(BC_SYNC_NONE, 0);
    bc_db *db;
    bc_status st;
    int i;

    limit_file_size(MERGE_LIMIT, 0);
    db = open_db(dir, o);
    bc_options_free(o);
    st = bc_merge(db);
    CHECK_MSG(st == BC_IO, "bc_merge: %s (%s)", status_name(st), bc_last_error());
    CHECK_MSG(count_files_with_suffix(dir, ".tmp", NULL, NULL) == 0, "the merge left its output");
    for (i = 3 * MERGE_KEYS; i < 4 * MERGE_KEYS; i++) {
        CHECK_STATUS(put_nth(db, i), BC_OK);
    }
    CHECK_STATUS(bc_sync(db), BC_OK);
    close_db(db);
    return check_finish();
}

static void test_a_merge_the_disk_refuses_leaves_the_handle_usable(void) {
    const char *dir = make_temp_dir();
    const char *args[] = {"child-merge", dir, NULL};
    bc_options *o = full_opts(BC_SYNC_NONE, 0);
    bc_db *db;
    int f, i;
    for (f = 0; f < 3; f++) {
        db = open_db(dir, o);
        for (i = f * MERGE_KEYS; i < (f + 1) * MERGE_KEYS; i++) {
            CHECK_STATUS(put_nth(db, i), BC_OK);
        }
        close_db(db);
    }
    /* Something to reclaim, or the merge has nothing to do. */
    db = open_db(dir, o);
    CHECK_STATUS(bc_put(db, K("dead"), V("1")), BC_OK);
    CHECK_STATUS(bc_delete(db, K("dead")), BC_OK);
    close_db(db);
    CHECK_MSG(wait_child(spawn_self(args, NULL, NULL)) == 0, "the child under RLIMIT_FSIZE failed");
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_MSG(count_of(db) == 4 * MERGE_KEYS, "%llu keys after the failed merge, %d put",
              (unsigned long long)count_of(db), 4 * MERGE_KEYS);
    for (i = 0; i < 4 * MERGE_KEYS; i++) {
        check_nth(db, i);
    }
    close_db(db);
}

/* 30,000 records of 8-byte keys and values: one data file of about 1 MB,
 * whose hint (about 600 KB) is larger than LIMIT. */
#define HINT_KEYS 30000
#define BIG_HINT "0000000100000000.hint"

static int hint_key(char *buf, int i) { return sprintf(buf, "h%07d", i); }

/* Opens dir read-write under the limit, with its large file's hint gone:
 * open must scan the file, fail to write its hint, and serve every key. */
static int child_open(const char *dir) {
    bc_db *db;
    char key[16];
    int i;
    limit_file_size(LIMIT, 0);
    db = open_db(dir, NULL);
    CHECK_MSG(access(path_join(dir, BIG_HINT), F_OK) != 0, "the hint was written");
    for (i = 0; i < HINT_KEYS; i++) {
        int kl = hint_key(key, i);
        CHECK_GET(db, U8(key), (size_t)kl, key, (size_t)kl);
    }
    close_db(db);
    return check_finish();
}

/* ---- tests --------------------------------------------------------------- */

static void test_open_cannot_write_a_hint(void) {
    const char *dir = make_temp_dir();
    const char *args[] = {"child-open", dir, NULL};
    bc_options *o = make_opts(4u << 20, 0, 0);
    bc_db *db;
    char key[16];
    int i;
    db = open_db(dir, o);
    for (i = 0; i < HINT_KEYS; i++) {
        int kl = hint_key(key, i);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(key), (size_t)kl), BC_OK);
    }
    close_db(db);
    CHECK(unlink(path_join(dir, BIG_HINT)) == 0);
    CHECK_MSG(wait_child(spawn_self(args, NULL, NULL)) == 0,
              "the child opening under RLIMIT_FSIZE failed");
    db = open_db(dir, o);
    bc_options_free(o);
    for (i = 0; i < HINT_KEYS; i += 7) {
        int kl = hint_key(key, i);
        CHECK_GET(db, U8(key), (size_t)kl, key, (size_t)kl);
    }
    close_db(db);
    CHECK_MSG(access(path_join(dir, BIG_HINT), F_OK) == 0, "no hint after an open without the limit");
}

static void fill_and_reopen(int sync, int map) {
    const char *dir = make_temp_dir();
    char mode[4], line[32] = {0}, key[16];
    const char *args[] = {"child-fill", dir, mode, map ? "map" : "buffer", NULL};
    int exact = sync == BC_SYNC_ALWAYS || map;
    uint8_t val[VLEN];
    int from_child = -1, n = 0, i, present = 0;
    size_t got = 0;
    bc_options *o;
    bc_db *db;
    pid_t pid;

    snprintf(mode, sizeof mode, "%d", sync);
    pid = spawn_self(args, NULL, &from_child);
    while (got + 1 < sizeof line) {
        int c = read_byte(from_child);
        if (c < 0 || c == '\n') break;
        line[got++] = (char)c;
    }
    close(from_child);
    CHECK_MSG(wait_child(pid) == 0, "the child under RLIMIT_FSIZE failed");
    n = atoi(line);
    CHECK_MSG(n > 50, "child reported %d acknowledged puts", n);

    o = full_opts(sync, map);
    db = open_db(dir, o);
    bc_options_free(o);
    for (i = 0; i < n; i++) {
        int kl = key_of(key, i);
        bc_status st = bc_contains(db, U8(key), (size_t)kl);
        CHECK_MSG(st == BC_OK || st == BC_NOT_FOUND, "bc_contains: %s", status_name(st));
        if (exact || st == BC_OK) {
            value_of(val, i);
            CHECK_GET(db, U8(key), (size_t)kl, val, VLEN);
            present++;
        }
    }
    if (!exact) {
        int kl = key_of(key, n);
        CHECK_ABSENT(db, U8(key), (size_t)kl);
        CHECK_ABSENT(db, K("extra"));
    }
    CHECK_MSG(present > 0, "no acknowledged key survived");
    close_db(db);
}

static void test_full_disk_sync_always(void) { fill_and_reopen(BC_SYNC_ALWAYS, 0); }

static void test_full_disk_sync_none(void) { fill_and_reopen(BC_SYNC_NONE, 0); }

static void test_full_disk_write_map(void) {
    if (skip_without_write_map()) return;
    fill_and_reopen(BC_SYNC_NONE, 1);
}

static void test_sigxfsz_kills_at_the_limit_not_before(void) {
    enum { REC = 19 + 7 + VLEN };
    const char *dir = make_temp_dir();
    const char *args[] = {"child-sigxfsz", dir, NULL};
    int from_child = -1, n = 0, i, status;
    bc_db *db;
    pid_t pid;
    if (skip_without_write_map()) return;
    pid = spawn_self(args, NULL, &from_child);
    while (read_byte(from_child) == '+') n++;
    close(from_child);
    status = wait_child(pid);
    CHECK_MSG(status == 128 + SIGXFSZ, "the child ended with %d after %d puts, not by SIGXFSZ",
              status, n);
    /* Steps of 64, 128 and 256 KiB: a step past the limit would have
     * killed it with 255 puts (16 + 255 * 1026 <= 256 KiB). */
    CHECK_MSG(16 + (n + 1) * REC > (int)LIMIT, "killed after %d puts, %d bytes: the next fit under %u",
              n, 16 + n * REC, LIMIT);

    db = open_db(dir, NULL);
    CHECK_MSG(count_of(db) == (uint64_t)n, "%llu keys after the reopen, %d acknowledged",
              (unsigned long long)count_of(db), n);
    for (i = 0; i < n; i++) {
        check_nth(db, i);
    }
    close_db(db);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    if (argc == 5 && strcmp(argv[1], "child-fill") == 0) {
        check_in_child();
        return child_fill(argv[2], atoi(argv[3]), strcmp(argv[4], "map") == 0);
    }
    if (argc == 3 && strcmp(argv[1], "child-merge") == 0) {
        check_in_child();
        return child_merge(argv[2]);
    }
    if (argc == 3 && strcmp(argv[1], "child-sigxfsz") == 0) {
        check_in_child();
        return child_sigxfsz(argv[2]);
    }
    if (argc == 3 && strcmp(argv[1], "child-open") == 0) {
        check_in_child();
        return child_open(argv[2]);
    }
    RUN(test_full_disk_sync_always);
    RUN(test_full_disk_sync_none);
    RUN(test_full_disk_write_map);
    RUN(test_sigxfsz_kills_at_the_limit_not_before);
    RUN(test_a_merge_the_disk_refuses_leaves_the_handle_usable);
    RUN(test_open_cannot_write_a_hint);
    return check_finish();
}
