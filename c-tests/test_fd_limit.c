/* test_fd_limit.c - bc_options_set_max_open_files (NULL, below 4 ->
 * BC_INVALID_ARGUMENT, 4 and up accepted, a rejected value keeps the
 * previous one) and the descriptor bound it promises ("a database of any
 * number of files works under a low ulimit -n"): a database of thousands of
 * data files (max_file_size 4096, 4000 keys of 1000-byte values, some
 * overwritten or deleted) is made here; then child processes (this program
 * re-executed) lower RLIMIT_NOFILE to 256, check that the limit bites, and
 * open the database to
 *   - read every key exactly (in order, reversed, strided) and iterate,
 *     with the default bound and with the minimum of 4;
 *   - write hundreds of new files' worth of values, read and delete them;
 *   - bc_merge it and read everything again;
 * each followed by a reopen in the child and a full check in the parent,
 * which also checks every child's exit status. A last child leaves open
 * only 4 free descriptors, fewer than the hints open reads at once: open
 * returns BC_IO naming a hint, and the database stays intact. And with
 * max_open_files 4, 8 free descriptors are enough to open and read: open's
 * loaders stay within the bound.
 *
 * Under valgrind the database is smaller (1800 keys, still over 512 files)
 * to keep the parent's part short; the children run natively (valgrind
 * does not follow the exec). */
#include "check.h"

#include <sys/resource.h>

enum { VLEN = 1000, FD_LIMIT = 256 };

static int nkeys(void) { return under_valgrind() ? 1800 : 4000; }

/* gen: 0 first value, 1 overwritten, -1 deleted. */
static int key_gen(int i) {
    if (i % 10 == 3) return -1;
    if (i % 7 == 2) return 1;
    return 0;
}

static int make_key(char *buf, size_t cap, int i) { return snprintf(buf, cap, "fd%05d", i); }

static void make_value(uint8_t *buf, int i, int gen) {
    int j, n = snprintf((char *)buf, VLEN, "gen%d:key%05d:", gen, i);
    for (j = n; j < VLEN; j++) buf[j] = (uint8_t)((i * 31 + j * 7 + gen * 13) & 0xff);
}

static void verify_key(bc_db *db, int i) {
    char key[16];
    uint8_t exp[VLEN];
    int kl = make_key(key, sizeof key, i), g = key_gen(i);
    if (g < 0) {
        CHECK_ABSENT(db, U8(key), (size_t)kl);
    } else {
        make_value(exp, i, g);
        CHECK_GET(db, U8(key), (size_t)kl, exp, VLEN);
    }
}

static uint64_t expected_count(int n) {
    uint64_t c = 0;
    int i;
    for (i = 0; i < n; i++)
        if (key_gen(i) >= 0) c++;
    return c;
}

/* Every key (in order, or strided so that consecutive reads hit distant
 * files and the descriptor LRU is thrashed), plus the count. */
static void verify_all(bc_db *db, int n, int strided) {
    uint64_t count = 0;
    int i;
    for (i = 0; i < n; i++) verify_key(db, strided ? (int)(((long)i * 1543) % n) : i);
    CHECK_STATUS(bc_count(db, &count), BC_OK);
    CHECK_MSG(count == expected_count(n), "bc_count = %llu, expected %llu",
              (unsigned long long)count, (unsigned long long)expected_count(n));
}

/* Iterates every key with its value. */
static void verify_iter(bc_db *db, int n) {
    bc_iter *it = NULL;
    const uint8_t *k;
    size_t kl;
    char key[16];
    uint8_t exp[VLEN];
    int i;
    CHECK_STATUS(bc_iter_new(db, U8("fd"), 2, &it), BC_OK);
    for (i = 0; i < n; i++) {
        uint8_t *v = NULL;
        size_t vl = 0;
        int ekl, g = key_gen(i);
        if (g < 0) continue;
        ekl = make_key(key, sizeof key, i);
        CHECK_STATUS(bc_iter_next(it, &k, &kl), BC_OK);
        CHECK_BYTES(k, kl, key, (size_t)ekl);
        CHECK_STATUS(bc_iter_value(it, &v, &vl), BC_OK);
        make_value(exp, i, g);
        CHECK_BYTES(v, vl, exp, VLEN);
        bc_free(v, vl);
    }
    CHECK_STATUS(bc_iter_next(it, &k, &kl), BC_NOT_FOUND);
    bc_iter_free(it);
}

static bc_options *db_opts(uint32_t max_open) {
    bc_options *o = make_opts(4096, 0, 0);
    if (max_open) CHECK_STATUS(bc_options_set_max_open_files(o, max_open), BC_OK);
    return o;
}

/* ---- child --------------------------------------------------------------- */

/* Lowers the RLIMIT_NOFILE soft limit to 256 and checks that it bites. */
static void lower_rlimit(void) {
    struct rlimit rl;
    int fds[FD_LIMIT + 16];
    int nfds = 0;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    rl.rlim_cur = FD_LIMIT; /* the hard limit stays */
    CHECK_MSG(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit(RLIMIT_NOFILE, %d): %s", FD_LIMIT,
              strerror(errno));
    while (nfds < FD_LIMIT + 16) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0) break;
        fds[nfds++] = fd;
    }
    CHECK_MSG(nfds < FD_LIMIT, "opened %d descriptors under a limit of %d", nfds, FD_LIMIT);
    while (nfds > 0) close(fds[--nfds]);
}

/* Lowers RLIMIT_NOFILE to leave `spare` descriptors free: too few for open
 * to hold the hint files its loaders read at once. */
static void starve_rlimit(int spare) {
    struct rlimit rl;
    int lowest = dup(0);
    CHECK(lowest >= 0);
    close(lowest);
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    rl.rlim_cur = (rlim_t)(lowest + spare);
    CHECK_MSG(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
}

/* "starved": descriptors run out while open reads the hints. Open must say
 * so (BC_IO naming the hint), in bounded time and without touching the
 * database: not take the hints for bad ones, rescan and rewrite them, and
 * run out again, round after round. Exit 0 when it does. */
static int child_starved(const char *dir) {
    bc_options *o = db_opts(0);
    bc_db *db = NULL;
    starve_rlimit(4);
    CHECK_STATUS(bc_open(dir, o, &db), BC_IO);
    CHECK(db == NULL);
    CHECK_STR_CONTAINS(bc_last_error(), "opening hint");
    bc_options_free(o);
    return 0;
}

/* "fitted": with max_open_files 4 and 8 descriptors free, open and every
 * read: open's loaders hold no more hints at once than the bound (they
 * held 8 each, on every core, whatever it said). Exit 0 when it works. */
static int child_fitted(const char *dir, int n) {
    bc_options *o = db_opts(4);
    bc_db *db;
    starve_rlimit(8);
    db = open_db(dir, o);
    bc_options_free(o);
    verify_all(db, n, 1);
    close_db(db);
    return 0;
}

/* Under RLIMIT_NOFILE 256, on a database of far more data files:
 * "read":  open, every key (strided), and unless the bound is the minimum
 *          every key and value again through an iterator;
 * "write": write 1000 more 1000-byte values (hundreds of new files), read
 *          them back, delete them, reopen, every key;
 * "merge": bc_merge, every key, reopen, every key.
 * Exit 0 on success. */
static int child_low_rlimit(const char *mode, const char *dir, int n, uint32_t max_open) {
    int files, i;
    bc_options *o;
    bc_db *db;

    lower_rlimit();
    files = count_files_with_suffix(dir, ".data", NULL, NULL);
    CHECK_MSG(files > 2 * FD_LIMIT, "the database has only %d data files", files);

    o = db_opts(max_open);
    db = open_db(dir, o);
    if (strcmp(mode, "read") == 0) {
        verify_all(db, n, 1);
        if (max_open != 4) verify_iter(db, n); /* every value, in key order */
        close_db(db);
        bc_options_free(o);
        return 0;
    } else if (strcmp(mode, "write") == 0) {
        uint8_t val[VLEN];
        char key[16];
        for (i = 0; i < 1000; i++) {
            int kl = snprintf(key, sizeof key, "w%05d", i);
            make_value(val, i, 7);
            CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, val, VLEN), BC_OK);
        }
        for (i = 0; i < 1000; i++) {
            int kl = snprintf(key, sizeof key, "w%05d", i);
            make_value(val, i, 7);
            CHECK_GET(db, U8(key), (size_t)kl, val, VLEN);
        }
        for (i = 0; i < 1000; i++) {
            int kl = snprintf(key, sizeof key, "w%05d", i);
            CHECK_STATUS(bc_delete(db, U8(key), (size_t)kl), BC_OK);
        }
    } else if (strcmp(mode, "merge") == 0) {
        CHECK_STATUS(bc_merge(db), BC_OK);
        CHECK_STATUS(bc_put(db, K("after-merge"), V("yes")), BC_OK);
        CHECK_STATUS(bc_delete(db, K("after-merge")), BC_OK);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    verify_all(db, n, 0);
    close_db(db);

    db = open_db(dir, o);
    bc_options_free(o);
    verify_all(db, n, 1);
    CHECK_ABSENT(db, K("w00000"));
    close_db(db);
    return 0;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_max_open_files_values(void) {
    bc_options *o = make_opts(0, 0, 0);
    bc_db *db;
    CHECK_STATUS(bc_options_set_max_open_files(NULL, 64), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_max_open_files(o, 0), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_max_open_files(o, 1), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_max_open_files(o, 3), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_max_open_files(o, 4), BC_OK);
    CHECK_STATUS(bc_options_set_max_open_files(o, 64), BC_OK);
    CHECK_STATUS(bc_options_set_max_open_files(o, 100000), BC_OK);
    CHECK_STATUS(bc_options_set_max_open_files(o, UINT32_MAX), BC_OK);
    CHECK_STATUS(bc_options_set_max_open_files(o, 4), BC_OK);
    CHECK_STATUS(bc_options_set_max_open_files(o, 2), BC_INVALID_ARGUMENT); /* 4 stays */
    db = open_db(make_temp_dir(), o);
    bc_options_free(o);
    CHECK_STATUS(bc_put(db, K("k"), V("v")), BC_OK);
    CHECK_GET(db, K("k"), "v", 1);
    close_db(db);
}

/* A temp dir (removed by check_finish) on /dev/shm when there is one:
 * thousands of data files are each fsynced when sealed, which on a disk
 * costs seconds and tests nothing here. */
static const char *make_dir_prefer_tmpfs(void) {
    struct stat st;
    const char *old = getenv("TMPDIR");
    char *saved = old ? strdup(old) : NULL;
    const char *dir;
    if (stat("/dev/shm", &st) != 0 || !S_ISDIR(st.st_mode) || access("/dev/shm", W_OK) != 0) {
        free(saved);
        return make_temp_dir();
    }
    setenv("TMPDIR", "/dev/shm", 1);
    dir = make_temp_dir();
    if (saved) {
        setenv("TMPDIR", saved, 1);
        free(saved);
    } else {
        unsetenv("TMPDIR");
    }
    return dir;
}

/* The shared database: made by the first test that needs it. */
static const char *g_dir;

static const char *shared_db(void) {
    const int n = nkeys();
    bc_options *o;
    bc_db *db;
    uint8_t val[VLEN];
    char key[16];
    int i, files;
    const char *dir;
    if (g_dir != NULL) return g_dir;
    dir = make_dir_prefer_tmpfs();
    o = db_opts(0);
    db = open_db(dir, o);
    bc_options_free(o);
    for (i = 0; i < n; i++) {
        int kl = make_key(key, sizeof key, i);
        make_value(val, i, 0);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, val, VLEN), BC_OK);
    }
    for (i = 0; i < n; i++) {
        int kl = make_key(key, sizeof key, i), g = key_gen(i);
        if (g == 1) {
            make_value(val, i, 1);
            CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, val, VLEN), BC_OK);
        } else if (g < 0) {
            CHECK_STATUS(bc_delete(db, U8(key), (size_t)kl), BC_OK);
        }
    }
    close_db(db);
    files = count_files_with_suffix(dir, ".data", NULL, NULL);
    CHECK_MSG(files > 2 * FD_LIMIT, "expected well over %d data files, got %d", 2 * FD_LIMIT,
              files);
    g_dir = dir;
    return dir;
}

/* Runs the child in `mode` with the given bound (0 = default). */
static void run_child(const char *mode, uint32_t max_open) {
    const char *dir = shared_db();
    char nbuf[16], mbuf[16];
    const char *args[6];
    int rc;
    snprintf(nbuf, sizeof nbuf, "%d", nkeys());
    snprintf(mbuf, sizeof mbuf, "%u", (unsigned)max_open);
    args[0] = "child-low-rlimit";
    args[1] = mode;
    args[2] = dir;
    args[3] = nbuf;
    args[4] = mbuf;
    args[5] = NULL;
    rc = wait_child(spawn_self(args, NULL, NULL));
    CHECK_MSG(rc == 0,
              "child \"%s\" (RLIMIT_NOFILE %d, max_open_files %u) exit status %d, expected 0 "
              "(its FAILED line is above)",
              mode, FD_LIMIT, (unsigned)max_open, rc);
}

/* The parent (normal limit) sees exactly the same data. */
static void verify_in_parent(void) {
    bc_options *o = db_opts(0);
    bc_db *db = open_db(shared_db(), o);
    bc_options_free(o);
    verify_all(db, nkeys(), 0);
    CHECK_ABSENT(db, K("w00000"));
    CHECK_ABSENT(db, K("after-merge"));
    close_db(db);
}

static void test_read_under_low_rlimit(void) {
    run_child("read", 0); /* the default bound (64) */
    run_child("read", 4); /* the smallest bound */
}

static void test_write_under_low_rlimit(void) {
    run_child("write", 0); /* it checks every key after a reopen */
}

static void test_merge_under_low_rlimit(void) {
    run_child("merge", 0);
    verify_in_parent();
}

/* Out of descriptors while the hints load: BC_IO, and the data intact. */
static void test_open_out_of_descriptors(void) {
    const char *args[3];
    int rc;
    args[0] = "child-starved";
    args[1] = shared_db();
    args[2] = NULL;
    rc = wait_child(spawn_self(args, NULL, NULL));
    CHECK_MSG(rc == 0, "child \"starved\" exit status %d, expected 0 (its FAILED line is above)",
              rc);
    verify_in_parent();
}

/* max_open_files bounds open too: 8 free descriptors are enough for a
 * bound of 4. */
static void test_open_within_max_open_files(void) {
    char nbuf[16];
    const char *args[4];
    int rc;
    snprintf(nbuf, sizeof nbuf, "%d", nkeys());
    args[0] = "child-fitted";
    args[1] = shared_db();
    args[2] = nbuf;
    args[3] = NULL;
    rc = wait_child(spawn_self(args, NULL, NULL));
    CHECK_MSG(rc == 0, "child \"fitted\" exit status %d, expected 0 (its FAILED line is above)",
              rc);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    if (argc >= 2 && strncmp(argv[1], "child-", 6) == 0) {
        check_in_child();
        if (strcmp(argv[1], "child-starved") == 0 && argc == 3) return child_starved(argv[2]);
        if (strcmp(argv[1], "child-fitted") == 0 && argc == 4)
            return child_fitted(argv[2], atoi(argv[3]));
        if (strcmp(argv[1], "child-low-rlimit") == 0 && argc == 6)
            return child_low_rlimit(argv[2], argv[3], atoi(argv[4]),
                                    (uint32_t)strtoul(argv[5], NULL, 10));
        fprintf(stderr, "unknown child mode %s\n", argv[1]);
        return 2;
    }
    RUN(test_max_open_files_values);
    RUN(test_read_under_low_rlimit);
    RUN(test_write_under_low_rlimit);
    RUN(test_merge_under_low_rlimit);
    RUN(test_open_out_of_descriptors);
    RUN(test_open_within_max_open_files);
    return check_finish();
}
