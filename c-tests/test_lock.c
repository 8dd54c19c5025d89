/* test_lock.c - one read-write handle per directory: BC_LOCKED (message names
 * the holder's pid) for a second open in the same process and from another
 * process (this program re-executed as a child), lock kept after a failed
 * second open, LOCK file holds the pid, lock released after bc_close and after
 * the holder is killed with SIGKILL, stale LOCK files ignored. */
#include "check.h"

/* ---- child modes (this program re-executed by spawn_self) ---------------- */

/* Expects BC_LOCKED naming `holder`; exit 0 if so. */
static int child_try_open(const char *dir, long holder) {
    bc_db *sentinel = (bc_db *)(uintptr_t)0x1111;
    bc_db *db = sentinel;
    CHECK_STATUS(bc_open(dir, NULL, &db), BC_LOCKED);
    CHECK_MSG(mentions_pid(bc_last_error(), holder),
              "child: BC_LOCKED message does not contain \"pid %ld\"", holder);
    CHECK_MSG(db == sentinel, "child: failed bc_open wrote *out");
    return 0;
}

/* Opens read-write, writes a key, closes; exit 0 if all worked. */
static int child_open_ok(const char *dir) {
    bc_db *db = open_db(dir, NULL);
    CHECK_STATUS(bc_put(db, K("from-child"), V("yes")), BC_OK);
    close_db(db);
    return 0;
}

/* Holds the lock: opens, writes + syncs "holder", prints 'R' on stdout, then
 * waits for EOF on stdin and closes (or is killed before that). */
static int child_hold(const char *dir) {
    bc_db *db = open_db(dir, NULL);
    CHECK_STATUS(bc_put(db, K("holder"), V("child")), BC_OK);
    CHECK_STATUS(bc_sync(db), BC_OK);
    if (write(1, "R", 1) != 1) _exit(3);
    while (read_byte(0) >= 0) {
    }
    close_db(db);
    return 0;
}

/* ---- tests ----------------------------------------------------------------- */

static pid_t spawn_try_open(const char *dir, long holder) {
    char pidbuf[32];
    const char *args[4];
    snprintf(pidbuf, sizeof pidbuf, "%ld", holder);
    args[0] = "child-try-open";
    args[1] = dir;
    args[2] = pidbuf;
    args[3] = NULL;
    return spawn_self(args, NULL, NULL);
}

static void test_second_open_same_process(void) {
    const char *dir = make_temp_dir();
    bc_db *db1 = open_db(dir, NULL);
    bc_db *sentinel = (bc_db *)(uintptr_t)0x2222;
    bc_db *db2 = sentinel;
    int rc;

    CHECK_STATUS(bc_open(dir, NULL, &db2), BC_LOCKED);
    CHECK_MSG(mentions_pid(bc_last_error(), (long)getpid()),
              "BC_LOCKED message does not contain \"pid %ld\"", (long)getpid());
    CHECK_STR_CONTAINS(bc_last_error(), "this process");
    CHECK_MSG(db2 == sentinel, "failed bc_open wrote *out");
    /* again: still locked */
    CHECK_STATUS(bc_open(dir, NULL, &db2), BC_LOCKED);

    /* The holder is unaffected. */
    CHECK_STATUS(bc_put(db1, K("k"), V("v")), BC_OK);
    CHECK_GET(db1, K("k"), "v", 1);

    /* The failed opens must not have dropped the holder's lock (e.g. by
     * closing a descriptor of the LOCK file, which releases POSIX locks). */
    rc = wait_child(spawn_try_open(dir, (long)getpid()));
    CHECK_MSG(rc == 0, "child open after a failed in-process open: exit %d, expected 0 "
                       "(BC_LOCKED naming the parent)", rc);

    close_db(db1);
    db1 = open_db(dir, NULL); /* released by bc_close */
    CHECK_GET(db1, K("k"), "v", 1);
    close_db(db1);
}

static void test_lock_file_holds_pid(void) {
    const char *dir = make_temp_dir();
    bc_db *db = open_db(dir, NULL);
    char buf[128];
    long n = read_small_file(path_join(dir, "LOCK"), buf, sizeof buf);
    char *end;
    long pid;
    CHECK_MSG(n > 0, "LOCK file missing or empty while a read-write handle is open");
    pid = strtol(buf, &end, 10);
    CHECK_MSG(end != buf && pid == (long)getpid(), "LOCK holds \"%s\", expected pid %ld", buf,
              (long)getpid());
    close_db(db);
}

static void test_child_process_gets_locked(void) {
    const char *dir = make_temp_dir();
    bc_db *db = open_db(dir, NULL);
    int rc = wait_child(spawn_try_open(dir, (long)getpid()));
    CHECK_MSG(rc == 0, "child: expected BC_LOCKED naming pid %ld (child exit %d)",
              (long)getpid(), rc);
    close_db(db);
}

static void test_released_after_close_for_child(void) {
    const char *dir = make_temp_dir();
    const char *args[3];
    bc_db *db = open_db(dir, NULL);
    int rc;
    CHECK_STATUS(bc_put(db, K("k"), V("parent")), BC_OK);
    close_db(db);
    args[0] = "child-open-ok";
    args[1] = dir;
    args[2] = NULL;
    rc = wait_child(spawn_self(args, NULL, NULL));
    CHECK_MSG(rc == 0, "child could not open after the parent closed (exit %d)", rc);
    db = open_db(dir, NULL);
    CHECK_GET(db, K("from-child"), "yes", 3);
    CHECK_GET(db, K("k"), "parent", 6);
    close_db(db);
}

static pid_t spawn_holder(const char *dir, int *to_child) {
    const char *args[3];
    int from_child = -1;
    pid_t pid;
    int c;
    args[0] = "child-hold";
    args[1] = dir;
    args[2] = NULL;
    pid = spawn_self(args, to_child, &from_child);
    c = read_byte(from_child);
    close(from_child);
    CHECK_MSG(c == 'R', "holder child did not get ready (exit %d)", c < 0 ? wait_child(pid) : -1);
    return pid;
}

static void test_child_holds_lock_then_closes(void) {
    const char *dir = make_temp_dir();
    int to_child = -1, rc;
    pid_t pid = spawn_holder(dir, &to_child);
    bc_db *db = NULL;

    CHECK_STATUS(bc_open(dir, NULL, &db), BC_LOCKED);
    CHECK_MSG(mentions_pid(bc_last_error(), (long)pid),
              "BC_LOCKED message does not contain the holder's \"pid %ld\"", (long)pid);

    close(to_child); /* EOF: the child closes its handle and exits */
    rc = wait_child(pid);
    CHECK_MSG(rc == 0, "holder child exit %d, expected 0", rc);

    db = open_db(dir, NULL);
    CHECK_GET(db, K("holder"), "child", 5);
    close_db(db);
}

static void test_released_after_sigkill(void) {
    const char *dir = make_temp_dir();
    int to_child = -1, rc;
    pid_t pid = spawn_holder(dir, &to_child);
    bc_db *db = NULL;
    char buf[128];

    CHECK_STATUS(bc_open(dir, NULL, &db), BC_LOCKED);
    CHECK_MSG(mentions_pid(bc_last_error(), (long)pid),
              "BC_LOCKED message does not contain the holder's \"pid %ld\"", (long)pid);

    CHECK(kill(pid, SIGKILL) == 0);
    rc = wait_child(pid);
    close(to_child);
    CHECK_MSG(rc == 128 + SIGKILL, "holder child: expected death by SIGKILL, got %d", rc);

    /* The dead holder's lock is gone; its synced write survived. */
    db = open_db(dir, NULL);
    CHECK_GET(db, K("holder"), "child", 5);
    CHECK_STATUS(bc_put(db, K("after"), V("kill")), BC_OK);
    {
        long n = read_small_file(path_join(dir, "LOCK"), buf, sizeof buf);
        CHECK_MSG(n > 0 && strtol(buf, NULL, 10) == (long)getpid(),
                  "LOCK holds \"%s\", expected the new holder's pid %ld", n > 0 ? buf : "",
                  (long)getpid());
    }
    close_db(db);
    db = open_db(dir, NULL);
    CHECK_GET(db, K("after"), "kill", 4);
    close_db(db);
}

/* A LOCK file nobody holds (empty, garbage, or a pid that is not running)
 * does not block a read-write open. */
static void test_stale_lock_files(void) {
    static const char *contents[] = {"", "garbage\n", "2147483646\n"};
    size_t i;
    for (i = 0; i < sizeof contents / sizeof contents[0]; i++) {
        const char *dir = make_temp_dir();
        bc_db *db = open_db(dir, NULL);
        FILE *f;
        CHECK_STATUS(bc_put(db, K("k"), V("v")), BC_OK);
        close_db(db);
        f = fopen(path_join(dir, "LOCK"), "w");
        CHECK(f != NULL);
        fputs(contents[i], f);
        fclose(f);
        db = NULL;
        CHECK_MSG(bc_open(dir, NULL, &db) == BC_OK,
                  "stale LOCK file containing \"%s\" blocked bc_open", contents[i]);
        CHECK_GET(db, K("k"), "v", 1);
        close_db(db);
    }
}

/* As bc_open's header says: fork(2) shares the lock with the child (flock
 * belongs to the open file), so after the parent's bc_close the directory
 * stays locked until the child exits (or execs). */
static void test_fork_shares_the_lock_until_the_child_exits(void) {
    const char *dir = make_temp_dir();
    int go[2];
    pid_t pid;
    bc_db *db = open_db(dir, NULL);
    bc_db *again = NULL;
    char c = 0;
    CHECK(pipe(go) == 0);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* The child never touches the handle: it waits, then exits. */
        close(go[1]);
        if (read(go[0], &c, 1) < 0) _exit(1);
        _exit(0);
    }
    track_child(pid);
    close(go[0]);
    close_db(db);
    CHECK_STATUS(bc_open(dir, NULL, &again), BC_LOCKED);
    CHECK(again == NULL);
    close(go[1]);
    /* (Its exit status is not checked: under valgrind a forked child
     * reports the parent's memory it inherited as leaked.) */
    (void)wait_child(pid);
    again = open_db(dir, NULL);
    close_db(again);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    if (argc >= 2 && strncmp(argv[1], "child-", 6) == 0) {
        check_in_child();
        if (strcmp(argv[1], "child-try-open") == 0 && argc == 4)
            return child_try_open(argv[2], strtol(argv[3], NULL, 10));
        if (strcmp(argv[1], "child-open-ok") == 0 && argc == 3) return child_open_ok(argv[2]);
        if (strcmp(argv[1], "child-hold") == 0 && argc == 3) return child_hold(argv[2]);
        fprintf(stderr, "unknown child mode %s\n", argv[1]);
        return 2;
    }
    RUN(test_second_open_same_process);
    RUN(test_lock_file_holds_pid);
    RUN(test_child_process_gets_locked);
    RUN(test_released_after_close_for_child);
    RUN(test_child_holds_lock_then_closes);
    RUN(test_released_after_sigkill);
    RUN(test_stale_lock_files);
    RUN(test_fork_shares_the_lock_until_the_child_exits);
    return check_finish();
}
