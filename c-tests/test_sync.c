/* test_sync.c - sync modes: BC_SYNC_ALWAYS writes are durable when put returns
 * (survive SIGKILL of the writer with no bc_sync/bc_close), BC_SYNC_INTERVAL
 * flushes in the background (a killed writer's data is there after a few
 * intervals), BC_SYNC_NONE loses no killed writer's put by default (the
 * write map, on 64-bit targets), with the write map off loses its buffered
 * put, but not with a write buffer of 0 bytes, and with a 4 KiB buffer at
 * most 4 KiB of records, concurrent ALWAYS writers (group commit), bc_sync
 * in every mode. */
#include "check.h"

static bc_options *sync_opts(int32_t mode, uint32_t interval_ms) {
    bc_options *o = make_opts(0, 0, 0);
    CHECK_STATUS(bc_options_set_sync(o, mode, interval_ms), BC_OK);
    return o;
}

/* ---- child mode --------------------------------------------------------------- */

/* Opens with the given sync mode (and, unless it is negative, that write
 * buffer with the write map off: otherwise the default options), puts
 * "k" = "durable-<mode>" WITHOUT bc_sync, prints 'R', then blocks until
 * killed (or stdin EOF). */
static int child_put(const char *dir, int32_t mode, uint32_t interval_ms, long buffer) {
    bc_options *o = sync_opts(mode, interval_ms);
    bc_db *db;
    if (buffer >= 0) {
        CHECK_STATUS(bc_options_set_write_buffer(o, (size_t)buffer), BC_OK);
        CHECK_STATUS(bc_options_set_write_map(o, false), BC_OK);
    }
    db = open_db(dir, o);
    char val[32];
    int vl = snprintf(val, sizeof val, "durable-%d", (int)mode);
    bc_options_free(o);
    CHECK_STATUS(bc_put(db, K("k"), U8(val), (size_t)vl), BC_OK);
    if (write(1, "R", 1) != 1) _exit(3);
    while (read_byte(0) >= 0) {
    }
    close_db(db);
    return 0;
}

/* MANY records of 123 bytes (a 4-byte key, a 100-byte value). */
#define MANY 100
#define MANY_REC 123
#define SMALL_BUFFER 4096

/* Opens with BC_SYNC_NONE and a 4 KiB write buffer (or, with write_map,
 * writing the active file through its map), puts MANY records WITHOUT
 * bc_sync, prints 'R', then blocks until killed. */
static int child_many(const char *dir, bool write_map) {
    bc_options *o = sync_opts(BC_SYNC_NONE, 0);
    bc_db *db;
    char key[8];
    uint8_t val[100];
    int i;
    CHECK_STATUS(bc_options_set_write_buffer(o, SMALL_BUFFER), BC_OK);
    CHECK_STATUS(bc_options_set_write_map(o, write_map), BC_OK);
    db = open_db(dir, o);
    bc_options_free(o);
    memset(val, 'v', sizeof val);
    for (i = 0; i < MANY; i++) {
        CHECK(snprintf(key, sizeof key, "m%03d", i) == 4);
        CHECK_STATUS(bc_put(db, U8(key), 4, val, sizeof val), BC_OK);
    }
    if (write(1, "R", 1) != 1) _exit(3);
    while (read_byte(0) >= 0) {
    }
    close_db(db);
    return 0;
}

/* Runs child_put, waits `wait_ms` after it reported, SIGKILLs it, and checks
 * whether the value is in the directory (it must be when `kept`, must not
 * be otherwise). */
static void put_kill_check(int32_t mode, uint32_t interval_ms, long wait_ms, long buffer,
                           int kept) {
    const char *dir = make_temp_dir();
    char modebuf[16], ivbuf[16], bufbuf[24], val[32];
    const char *args[6];
    int to_child = -1, from_child = -1, c, rc, vl;
    pid_t pid;
    bc_db *db;

    snprintf(modebuf, sizeof modebuf, "%d", (int)mode);
    snprintf(ivbuf, sizeof ivbuf, "%u", (unsigned)interval_ms);
    args[0] = "child-put";
    args[1] = dir;
    args[2] = modebuf;
    args[3] = ivbuf;
    snprintf(bufbuf, sizeof bufbuf, "%ld", buffer);
    args[4] = bufbuf;
    args[5] = NULL;
    pid = spawn_self(args, &to_child, &from_child);
    c = read_byte(from_child);
    close(from_child);
    if (c != 'R') {
        rc = wait_child(pid);
        close(to_child);
        CHECK_MSG(0, "child-put (mode %d) failed before putting (exit %d)", (int)mode, rc);
    }
    if (wait_ms > 0) sleep_ms(wait_ms);
    CHECK(kill(pid, SIGKILL) == 0);
    rc = wait_child(pid);
    close(to_child);
    CHECK_MSG(rc == 128 + SIGKILL, "child-put: expected death by SIGKILL, got %d", rc);

    db = open_db(dir, NULL);
    vl = snprintf(val, sizeof val, "durable-%d", (int)mode);
    if (kept)
        CHECK_GET(db, K("k"), val, (size_t)vl);
    else
        CHECK_ABSENT(db, K("k"));
    close_db(db);
}

/* ---- tests ---------------------------------------------------------------------- */

/* A BC_SYNC_ALWAYS put survives SIGKILL right after it returns: it left the
 * write buffer. (SIGKILL keeps the page cache, so this does not show the
 * fsync; test_fsync.c and test_power_loss.c do.) */
static void test_always_survives_sigkill(void) { put_kill_check(BC_SYNC_ALWAYS, 0, 0, -1, 1); }

static void test_interval_flushes_in_background(void) {
    /* interval 20 ms; the writer is killed 500 ms after its put returned */
    put_kill_check(BC_SYNC_INTERVAL, 20, 500, -1, 1);
}

/* Runs child-many (with the write map or not), SIGKILLs it once it has
 * put, and returns how many of its MANY records the directory holds (a
 * prefix of them). `*len` receives the length of its data file before the
 * reopen, `*st` the reopen's stats. */
static int many_kill_count(const char *mode, long long *len, bc_stats *st) {
    const char *dir = make_temp_dir();
    const char *args[] = {"child-many", dir, mode, NULL};
    int to_child = -1, from_child = -1, c, i, present = 0;
    char key[8];
    struct stat sb;
    pid_t pid = spawn_self(args, &to_child, &from_child);
    bc_db *db;
    c = read_byte(from_child);
    close(from_child);
    CHECK(kill(pid, SIGKILL) == 0);
    CHECK_MSG(wait_child(pid) == 128 + SIGKILL && c == 'R', "child-many failed before putting");
    close(to_child);
    CHECK(stat(path_join(dir, "0000000100000000.data"), &sb) == 0);
    *len = (long long)sb.st_size;
    db = open_db(dir, NULL);
    *st = get_stats(db);
    for (i = 0; i < MANY; i++) {
        snprintf(key, sizeof key, "m%03d", i);
        if (bc_contains(db, U8(key), 4) == BC_OK) {
            CHECK_MSG(present == i, "m%03d is there but not every key before it", i);
            present++;
        }
    }
    close_db(db);
    return present;
}

/* A SIGKILLed BC_SYNC_NONE writer with a 4 KiB buffer loses at most one
 * buffer of records, the newest (with the default 256 KiB it would lose
 * all MANY). */
static void test_none_loses_at_most_its_buffer(void) {
    long long len;
    bc_stats st;
    int present = many_kill_count("buffer", &len, &st);
    CHECK_MSG(MANY - present <= SMALL_BUFFER / MANY_REC,
              "%d of %d records lost with a %d-byte buffer", MANY - present, MANY, SMALL_BUFFER);
}

/* Written through its map, every put is in the page cache when it returns:
 * a SIGKILLed writer loses none, without a system call a put. Its data
 * file, preallocated to 64 KiB (its first step), ends in zeros, which the
 * reopen cuts and counts as zeros: every byte it dropped. */
static void test_write_map_loses_nothing_to_sigkill(void) {
    long long len;
    bc_stats st;
    int present;
    if (skip_without_write_map()) return;
    present = many_kill_count("map", &len, &st);
    CHECK_MSG(present == MANY, "%d of %d records lost writing through the map", MANY - present,
              MANY);
    CHECK_MSG(len == 64 << 10, "data file of %lld bytes, not preallocated to 64 KiB", len);
    CHECK_MSG(st.recovered_bytes_dropped == st.recovered_zero_bytes &&
                  st.recovered_zero_bytes == (uint64_t)len - 16 - MANY * MANY_REC,
              "the reopen dropped %llu bytes, %llu of them zeros",
              (unsigned long long)st.recovered_bytes_dropped,
              (unsigned long long)st.recovered_zero_bytes);
}

/* BC_SYNC_NONE: by default (the write map, on 64-bit targets) the put was
 * in the page cache before bc_put returned, so SIGKILL does not lose it.
 * Through the write buffer it waits there, so SIGKILL loses it (as
 * documented), even 300 ms later; with a write buffer of 0 bytes it was
 * handed to the OS before bc_put returned, so only a power loss could
 * lose it. */
static void test_none_loses_the_buffer_but_not_without_one(void) {
    put_kill_check(BC_SYNC_NONE, 0, 300, -1, write_map_here());
    put_kill_check(BC_SYNC_NONE, 0, 300, 256 << 10, 0);
    put_kill_check(BC_SYNC_NONE, 0, 0, 0, 1);
}

static void test_modes_round_trip(void) {
    static const int32_t modes[3] = {BC_SYNC_NONE, BC_SYNC_ALWAYS, BC_SYNC_INTERVAL};
    int m, i;
    for (m = 0; m < 3; m++) {
        const char *dir = make_temp_dir();
        bc_options *o = sync_opts(modes[m], modes[m] == BC_SYNC_INTERVAL ? 10 : 0);
        bc_db *db = open_db(dir, o);
        char key[16];
        for (i = 0; i < 30; i++) {
            int kl = snprintf(key, sizeof key, "k%d", i);
            CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(key), (size_t)kl), BC_OK);
        }
        CHECK_STATUS(bc_delete(db, K("k0")), BC_OK);
        CHECK_STATUS(bc_sync(db), BC_OK);
        close_db(db);
        db = open_db(dir, o);
        bc_options_free(o);
        CHECK_ABSENT(db, K("k0"));
        for (i = 1; i < 30; i++) {
            int kl = snprintf(key, sizeof key, "k%d", i);
            CHECK_GET(db, U8(key), (size_t)kl, key, (size_t)kl);
        }
        close_db(db);
    }
}

enum { WRITERS = 4, PUTS_EACH = 25 };
static bc_db *shared_db;

static void *always_writer(void *arg) {
    int id = (int)(intptr_t)arg, i;
    char key[32];
    for (i = 0; i < PUTS_EACH; i++) {
        int kl = snprintf(key, sizeof key, "w%d-%d", id, i);
        CHECK_STATUS(bc_put(shared_db, U8(key), (size_t)kl, U8(key), (size_t)kl), BC_OK);
    }
    return NULL;
}

/* Several threads putting at once with BC_SYNC_ALWAYS (group commit). */
static void test_always_concurrent_writers(void) {
    const char *dir = make_temp_dir();
    bc_options *o = sync_opts(BC_SYNC_ALWAYS, 0);
    pthread_t t[WRITERS];
    char key[32];
    int i, j;
    shared_db = open_db(dir, o);
    bc_options_free(o);
    for (i = 0; i < WRITERS; i++)
        CHECK(pthread_create(&t[i], NULL, always_writer, (void *)(intptr_t)i) == 0);
    for (i = 0; i < WRITERS; i++) CHECK(pthread_join(t[i], NULL) == 0);
    CHECK_MSG(thread_failures() == 0, "a writer thread failed");
    close_db(shared_db);
    shared_db = open_db(dir, NULL);
    for (i = 0; i < WRITERS; i++)
        for (j = 0; j < PUTS_EACH; j++) {
            int kl = snprintf(key, sizeof key, "w%d-%d", i, j);
            CHECK_GET(shared_db, U8(key), (size_t)kl, key, (size_t)kl);
        }
    close_db(shared_db);
    shared_db = NULL;
}

/* Closing an INTERVAL handle should not wait for a long interval to elapse.
 * Not part of the contract, so only reported. */
static void test_interval_close_is_prompt(void) {
    bc_options *o = sync_opts(BC_SYNC_INTERVAL, 3000);
    bc_db *db = open_db(make_temp_dir(), o);
    double t0;
    bc_options_free(o);
    CHECK_STATUS(bc_put(db, K("k"), V("v")), BC_OK);
    t0 = now_seconds();
    close_db(db);
    if (now_seconds() - t0 > 1.0)
        printf("  NOTE: bc_close of a BC_SYNC_INTERVAL(3000 ms) handle took %.2fs\n",
               now_seconds() - t0);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    if (argc == 4 && strcmp(argv[1], "child-many") == 0) {
        check_in_child();
        return child_many(argv[2], strcmp(argv[3], "map") == 0);
    }
    if (argc == 6 && strcmp(argv[1], "child-put") == 0) {
        check_in_child();
        return child_put(argv[2], (int32_t)strtol(argv[3], NULL, 10),
                         (uint32_t)strtoul(argv[4], NULL, 10), strtol(argv[5], NULL, 10));
    }
    RUN(test_modes_round_trip);
    RUN(test_always_survives_sigkill);
    RUN(test_interval_flushes_in_background);
    RUN(test_none_loses_the_buffer_but_not_without_one);
    RUN(test_none_loses_at_most_its_buffer);
    RUN(test_write_map_loses_nothing_to_sigkill);
    RUN(test_always_concurrent_writers);
    RUN(test_interval_close_is_prompt);
    return check_finish();
}
