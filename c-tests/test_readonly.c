/* test_readonly.c - read-only handles: reads work, put/delete/merge refused
 * with BC_READ_ONLY (nothing changes), sync is a no-op BC_OK, two read-only
 * handles coexist, read-only beside a read-write handle (either order, same
 * process and another process), data as of open time, no files modified; a
 * read-write open of a directory the process may not write to is refused at
 * open (BC_IO), where a read-only open works. */
#include "check.h"

static bc_options *ro_opts(void) {
    bc_options *o = make_opts(0, 0, 0);
    CHECK_STATUS(bc_options_set_read_only(o, true), BC_OK);
    return o;
}

static const char *make_db(void) {
    const char *dir = make_temp_dir();
    bc_db *db = open_db(dir, NULL);
    CHECK_STATUS(bc_put(db, K("a"), V("apple")), BC_OK);
    CHECK_STATUS(bc_put(db, K("b"), V("banana")), BC_OK);
    CHECK_STATUS(bc_put(db, K("gone"), V("x")), BC_OK);
    CHECK_STATUS(bc_delete(db, K("gone")), BC_OK);
    CHECK_STATUS(bc_put(db, K("empty"), NULL, 0), BC_OK);
    close_db(db);
    return dir;
}

/* ---- child mode ------------------------------------------------------------ */

/* Read-only open in another process while the parent holds the write lock. */
static int child_ro_read(const char *dir) {
    bc_options *o = ro_opts();
    bc_db *db = open_db(dir, o);
    bc_options_free(o);
    CHECK_GET(db, K("a"), "apple", 5);
    CHECK_STATUS(bc_put(db, K("c"), V("cherry")), BC_READ_ONLY);
    close_db(db);
    return 0;
}

/* As the unprivileged user nobody: a read-write open of the parent's
 * database, whose directory only root may write to, is refused; a read-only
 * open reads it. */
static int child_unwritable(const char *dir) {
    bc_db *db = (bc_db *)0x1;
    bc_options *o;
    if (setgid(65534) != 0 || setuid(65534) != 0) {
        fprintf(stderr, "setuid(nobody): %s\n", strerror(errno));
        return 77; /* a user namespace that maps only root: skip */
    }
    if (access(dir, X_OK) != 0) return 77; /* $TMPDIR closed to nobody */
    CHECK_STATUS(bc_open(dir, NULL, &db), BC_IO);
    CHECK_MSG(db == (bc_db *)0x1, "bc_open wrote *out on failure");
    CHECK_STR_CONTAINS(bc_last_error(), dir);
    CHECK_STR_CONTAINS(bc_last_error(), "read-write open needs to create files");
    CHECK_STR_CONTAINS(bc_last_error(), "Permission denied");
    o = ro_opts();
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_GET(db, K("a"), "apple", 5);
    close_db(db);
    return 0;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_reads(void) {
    const char *dir = make_db();
    bc_options *o = ro_opts();
    bc_db *db = open_db(dir, o);
    uint8_t buf[16];
    size_t vlen = 0;
    bc_options_free(o);
    CHECK_GET(db, K("a"), "apple", 5);
    CHECK_GET(db, K("b"), "banana", 6);
    CHECK_GET(db, K("empty"), "", 0);
    CHECK_ABSENT(db, K("gone"));
    CHECK_STATUS(bc_contains(db, K("a")), BC_OK);
    CHECK_STATUS(bc_get_into(db, K("b"), buf, sizeof buf, &vlen), BC_OK);
    CHECK_BYTES(buf, vlen, "banana", 6);
    close_db(db);
}

static void test_writes_refused(void) {
    const char *dir = make_db();
    bc_options *o = ro_opts();
    bc_db *db = open_db(dir, o);
    uint64_t bytes_before = 0, bytes_after = 0;
    int files_before = count_files_with_suffix(dir, ".data", &bytes_before, NULL);
    int files_after;

    bc_options_free(o);
    CHECK_STATUS(bc_put(db, K("a"), V("avocado")), BC_READ_ONLY);
    CHECK_MSG(bc_last_error()[0] != '\0', "expected a message after BC_READ_ONLY");
    CHECK_STATUS(bc_put(db, K("new"), V("n")), BC_READ_ONLY);
    CHECK_STATUS(bc_put(db, K("new"), NULL, 0), BC_READ_ONLY);
    CHECK_STATUS(bc_delete(db, K("a")), BC_READ_ONLY);
    CHECK_STATUS(bc_merge(db), BC_READ_ONLY);
    CHECK_STATUS(bc_sync(db), BC_OK);

    CHECK_GET(db, K("a"), "apple", 5);
    CHECK_ABSENT(db, K("new"));
    close_db(db);

    files_after = count_files_with_suffix(dir, ".data", &bytes_after, NULL);
    CHECK_MSG(files_before == files_after && bytes_before == bytes_after,
              "a read-only handle changed the data files: %d files/%llu bytes -> %d/%llu",
              files_before, (unsigned long long)bytes_before, files_after,
              (unsigned long long)bytes_after);

    /* and nothing was written: a read-write open sees the original data */
    db = open_db(dir, NULL);
    CHECK_GET(db, K("a"), "apple", 5);
    CHECK_ABSENT(db, K("new"));
    close_db(db);
}

static void test_two_read_only_handles(void) {
    const char *dir = make_db();
    bc_options *o = ro_opts();
    bc_db *r1 = open_db(dir, o);
    bc_db *r2 = open_db(dir, o);
    bc_options_free(o);
    CHECK_GET(r1, K("a"), "apple", 5);
    CHECK_GET(r2, K("b"), "banana", 6);
    close_db(r1);
    CHECK_GET(r2, K("a"), "apple", 5);
    close_db(r2);
}

/* Read-only handles take no write lock; they see the data as of open time. */
static void test_beside_read_write(void) {
    const char *dir = make_db();
    bc_options *o = ro_opts();
    bc_db *ro1 = open_db(dir, o);      /* read-only first ... */
    bc_db *rw = open_db(dir, NULL);    /* ... then read-write: not locked */
    bc_db *ro2 = open_db(dir, o);      /* read-only while a writer holds the lock */
    bc_options_free(o);

    CHECK_STATUS(bc_put(rw, K("c"), V("cherry")), BC_OK);
    CHECK_STATUS(bc_put(rw, K("a"), V("apricot")), BC_OK);
    CHECK_STATUS(bc_sync(rw), BC_OK);

    /* as of open time */
    CHECK_GET(ro1, K("a"), "apple", 5);
    CHECK_GET(ro2, K("a"), "apple", 5);
    CHECK_ABSENT(ro1, K("c"));
    CHECK_ABSENT(ro2, K("c"));
    CHECK_GET(rw, K("a"), "apricot", 7);

    close_db(ro1);
    close_db(ro2);
    close_db(rw);
}

static void test_read_only_in_other_process(void) {
    const char *dir = make_db();
    const char *args[3];
    bc_db *rw = open_db(dir, NULL);
    int rc;
    args[0] = "child-ro-read";
    args[1] = dir;
    args[2] = NULL;
    rc = wait_child(spawn_self(args, NULL, NULL));
    CHECK_MSG(rc == 0, "read-only open in a child while the parent writes: exit %d", rc);
    CHECK_STATUS(bc_put(rw, K("still"), V("mine")), BC_OK);
    close_db(rw);
}

/* Before the check, such an open succeeded and every put then failed
 * ("creating data file ...: Permission denied"). The LOCK file is left
 * writable by all, so that the lock itself can be taken. Needs root (to
 * become nobody); CI runs as root. */
static void test_unwritable_directory(void) {
    const char *dir = make_db();
    const char *args[3] = {"child-unwritable", dir, NULL};
    int rc, data_files;
    char lock_before[64], lock_after[64];
    if (geteuid() != 0) {
        printf("  (skipped: needs root to run a child as nobody)\n");
        return;
    }
    CHECK(chmod(dir, 0755) == 0);
    CHECK(chmod(path_join(dir, "LOCK"), 0666) == 0);
    data_files = count_files_with_suffix(dir, ".data", NULL, NULL);
    CHECK(data_files >= 1);
    CHECK(read_small_file(path_join(dir, "LOCK"), lock_before, sizeof lock_before) > 0);
    rc = wait_child(spawn_self(args, NULL, NULL));
    if (rc == 77) {
        printf("  (skipped: cannot run a child as nobody that reaches %s)\n", dir);
        return;
    }
    CHECK_MSG(rc == 0, "the child as nobody: exit %d", rc);
    /* The refused open made no file and left LOCK as it was (the lock's
     * holder writes its pid there): the database is as it was. */
    CHECK(read_small_file(path_join(dir, "LOCK"), lock_after, sizeof lock_after) > 0);
    CHECK_STR_EQ(lock_after, lock_before);
    CHECK(count_files_with_suffix(dir, ".data", NULL, NULL) == data_files);
    CHECK(count_files_with_suffix(dir, ".tmp", NULL, NULL) == 0);
    {
        bc_db *db = open_db(dir, NULL);
        CHECK_GET(db, K("b"), "banana", 6);
        close_db(db);
    }
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    if (argc == 3 && strcmp(argv[1], "child-ro-read") == 0) {
        check_in_child();
        return child_ro_read(argv[2]);
    }
    if (argc == 3 && strcmp(argv[1], "child-unwritable") == 0) {
        check_in_child();
        return child_unwritable(argv[2]);
    }
    RUN(test_reads);
    RUN(test_writes_refused);
    RUN(test_two_read_only_handles);
    RUN(test_beside_read_write);
    RUN(test_read_only_in_other_process);
    RUN(test_unwritable_directory);
    return check_finish();
}
