/* test_threads.c - one bc_db* shared by many threads: readers (bc_get,
 * bc_get_into, bc_contains) run while a writer puts/deletes and merges and a
 * merger thread merges; readers must never see a wrong value or a value older
 * than one they already saw. Concurrent writers on disjoint keys. bc_last_error
 * is per thread. */
#include "check.h"

enum { NKEYS = 500, NDEL = 50, READERS = 4 };

static bc_db *db;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int writer_done;   /* guarded by mu */
static int started_gen;   /* guarded by mu: generation the writer is writing */
static int generations;

static int get_started_gen(void) {
    int g;
    pthread_mutex_lock(&mu);
    g = started_gen;
    pthread_mutex_unlock(&mu);
    return g;
}

static int is_done(void) {
    int d;
    pthread_mutex_lock(&mu);
    d = writer_done;
    pthread_mutex_unlock(&mu);
    return d;
}

static void set_done(void *arg) {
    (void)arg;
    pthread_mutex_lock(&mu);
    writer_done = 1;
    pthread_mutex_unlock(&mu);
}

static int key_of(char *buf, int i) { return sprintf(buf, "k%06d", i); }
static int val_of(char *buf, int i, int gen) { return sprintf(buf, "v%06d:%d", i, gen); }
static int dkey_of(char *buf, int i) { return sprintf(buf, "d%06d", i); }
static int dval_of(char *buf, int i) { return sprintf(buf, "dv%06d", i); }

/* Parses "v%06d:<gen>" for key i; returns gen, or -1 if the bytes are wrong. */
static int parse_gen(const uint8_t *v, size_t len, int i) {
    char prefix[16];
    size_t p, plen = (size_t)sprintf(prefix, "v%06d:", i);
    int gen = 0;
    if (len <= plen || len > plen + 9 || memcmp(v, prefix, plen) != 0) return -1;
    for (p = plen; p < len; p++) {
        if (v[p] < '0' || v[p] > '9') return -1;
        gen = gen * 10 + (v[p] - '0');
    }
    return gen;
}

static void *writer(void *arg) {
    char key[16], val[32];
    int g, i;
    (void)arg;
    pthread_cleanup_push(set_done, NULL);
    for (g = 1; g <= generations; g++) {
        pthread_mutex_lock(&mu);
        started_gen = g;
        pthread_mutex_unlock(&mu);
        for (i = 0; i < NKEYS; i++) {
            int kl = key_of(key, i), vl = val_of(val, i, g);
            CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), (size_t)vl), BC_OK);
        }
        for (i = 0; i < NDEL; i++) {
            int kl = dkey_of(key, i);
            if (g % 2) {
                int vl = dval_of(val, i);
                CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), (size_t)vl), BC_OK);
            } else {
                CHECK_STATUS(bc_delete(db, U8(key), (size_t)kl), BC_OK);
            }
        }
        if (g % 4 == 0) CHECK_STATUS(bc_merge(db), BC_OK);
    }
    pthread_cleanup_pop(1);
    return NULL;
}

static void *merger(void *arg) {
    (void)arg;
    while (!is_done()) {
        CHECK_STATUS(bc_merge(db), BC_OK);
        sleep_ms(5);
    }
    return NULL;
}

static long reads_total;

static void *reader(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1u;
    int last_seen[NKEYS];
    char key[16], dval[16];
    uint8_t buf[64];
    long reads = 0;
    double deadline = now_seconds() + 120.0;
    int i;
    for (i = 0; i < NKEYS; i++) last_seen[i] = 0;

    while ((!is_done() || reads < 200) && now_seconds() < deadline) {
        int kl, gen, op;
        seed = seed * 1103515245u + 12345u;
        i = (int)((seed >> 8) % NKEYS);
        op = (int)((seed >> 20) % 4);
        kl = key_of(key, i);
        if (op == 0) {
            uint8_t *v = NULL;
            size_t vlen = 0;
            CHECK_STATUS(bc_get(db, U8(key), (size_t)kl, &v, &vlen), BC_OK);
            gen = parse_gen(v, vlen, i);
            if (gen < 0) check_dump("value", v, vlen);
            bc_free(v, vlen);
        } else if (op == 1) {
            size_t vlen = 0;
            CHECK_STATUS(bc_get_into(db, U8(key), (size_t)kl, buf, sizeof buf, &vlen), BC_OK);
            gen = parse_gen(buf, vlen, i);
            if (gen < 0) check_dump("value", buf, vlen);
        } else if (op == 2) {
            CHECK_STATUS(bc_contains(db, U8(key), (size_t)kl), BC_OK);
            gen = last_seen[i];
        } else {
            /* keys the writer keeps putting and deleting */
            uint8_t *v = NULL;
            size_t vlen = 0;
            int dl;
            bc_status st;
            kl = dkey_of(key, i % NDEL);
            dl = dval_of(dval, i % NDEL);
            st = bc_get(db, U8(key), (size_t)kl, &v, &vlen);
            CHECK_MSG(st == BC_OK || st == BC_NOT_FOUND, "bc_get(%s) returned %s", key,
                      status_name(st));
            if (st == BC_OK) {
                CHECK_BYTES(v, vlen, dval, (size_t)dl);
                bc_free(v, vlen);
            }
            gen = last_seen[i];
        }
        CHECK_MSG(gen >= 0, "reader saw a wrong value for %s", key);
        CHECK_MSG(gen >= last_seen[i], "reader saw %s at generation %d after generation %d",
                  key, gen, last_seen[i]);
        CHECK_MSG(gen <= get_started_gen(), "reader saw %s at generation %d before it was written",
                  key, gen);
        last_seen[i] = gen;
        reads++;
    }
    pthread_mutex_lock(&mu);
    reads_total += reads;
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void test_readers_beside_writer_and_merger(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(64 * 1024, 0, 0);
    pthread_t w, m, r[READERS];
    char key[16], val[32];
    int i;

    generations = under_valgrind() ? 6 : 24;
    db = open_db(dir, o);
    for (i = 0; i < NKEYS; i++) { /* generation 0 */
        int kl = key_of(key, i), vl = val_of(val, i, 0);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), (size_t)vl), BC_OK);
    }
    writer_done = 0;
    started_gen = 0;
    CHECK(pthread_create(&w, NULL, writer, NULL) == 0);
    CHECK(pthread_create(&m, NULL, merger, NULL) == 0);
    for (i = 0; i < READERS; i++)
        CHECK(pthread_create(&r[i], NULL, reader, (void *)(intptr_t)(i + 1)) == 0);
    CHECK(pthread_join(w, NULL) == 0);
    CHECK(pthread_join(m, NULL) == 0);
    for (i = 0; i < READERS; i++) CHECK(pthread_join(r[i], NULL) == 0);
    CHECK_MSG(thread_failures() == 0, "a worker thread failed (see above)");
    printf("  %ld concurrent reads checked\n", reads_total);

    /* final state, then again after reopen */
    for (i = 0; i < 2; i++) {
        int k;
        for (k = 0; k < NKEYS; k++) {
            int kl = key_of(key, k), vl = val_of(val, k, generations);
            CHECK_GET(db, U8(key), (size_t)kl, val, (size_t)vl);
        }
        for (k = 0; k < NDEL; k++) {
            int kl = dkey_of(key, k);
            if (generations % 2) {
                int vl = dval_of(val, k);
                CHECK_GET(db, U8(key), (size_t)kl, val, (size_t)vl);
            } else {
                CHECK_ABSENT(db, U8(key), (size_t)kl);
            }
        }
        close_db(db);
        if (i == 0) db = open_db(dir, o);
    }
    bc_options_free(o);
    db = NULL;
}

enum { WRITERS = 4, PER_WRITER = 300 };

static void *range_writer(void *arg) {
    int id = (int)(intptr_t)arg, i;
    char key[32], val[32];
    for (i = 0; i < PER_WRITER; i++) {
        int kl = sprintf(key, "w%d-%d", id, i), vl = sprintf(val, "first-%d-%d", id, i);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), (size_t)vl), BC_OK);
    }
    for (i = 0; i < PER_WRITER; i++) {
        int kl = sprintf(key, "w%d-%d", id, i);
        if (i % 3 == 0) {
            CHECK_STATUS(bc_delete(db, U8(key), (size_t)kl), BC_OK);
        } else {
            int vl = sprintf(val, "second-%d-%d", id, i);
            CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), (size_t)vl), BC_OK);
        }
    }
    return NULL;
}

/* Several writers at once on disjoint keys, a merge running beside them. */
static void test_concurrent_writers(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(16 * 1024, 0, 0);
    pthread_t t[WRITERS];
    char key[32], val[32];
    int i, j, pass;
    db = open_db(dir, o);
    for (i = 0; i < WRITERS; i++)
        CHECK(pthread_create(&t[i], NULL, range_writer, (void *)(intptr_t)i) == 0);
    CHECK_STATUS(bc_merge(db), BC_OK);
    for (i = 0; i < WRITERS; i++) CHECK(pthread_join(t[i], NULL) == 0);
    CHECK_MSG(thread_failures() == 0, "a writer thread failed (see above)");
    CHECK_STATUS(bc_merge(db), BC_OK);
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < WRITERS; i++)
            for (j = 0; j < PER_WRITER; j++) {
                int kl = sprintf(key, "w%d-%d", i, j);
                if (j % 3 == 0) {
                    CHECK_ABSENT(db, U8(key), (size_t)kl);
                } else {
                    int vl = sprintf(val, "second-%d-%d", i, j);
                    CHECK_GET(db, U8(key), (size_t)kl, val, (size_t)vl);
                }
            }
        close_db(db);
        db = pass == 0 ? open_db(dir, o) : NULL;
    }
    bc_options_free(o);
}

static char thread_msg_initial[256], thread_msg_after_nf[256], thread_msg_own[256];

static void *error_thread(void *arg) {
    uint8_t *v;
    size_t vlen;
    (void)arg;
    copy_last_error(thread_msg_initial, sizeof thread_msg_initial);
    CHECK_STATUS(bc_get(db, K("absent"), &v, &vlen), BC_NOT_FOUND);
    copy_last_error(thread_msg_after_nf, sizeof thread_msg_after_nf);
    CHECK_STATUS(bc_options_set_max_key_size(NULL, 5), BC_INVALID_ARGUMENT);
    copy_last_error(thread_msg_own, sizeof thread_msg_own);
    return NULL;
}

/* bc_last_error() is per thread. */
static void test_last_error_is_per_thread(void) {
    char mine[256];
    pthread_t t;
    db = open_db(make_temp_dir(), NULL);
    CHECK_STATUS(bc_put(db, NULL, 1, V("v")), BC_INVALID_ARGUMENT);
    copy_last_error(mine, sizeof mine);
    CHECK(mine[0] != '\0');
    CHECK(pthread_create(&t, NULL, error_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_MSG(thread_failures() == 0, "the error thread failed (see above)");
    CHECK_MSG(thread_msg_initial[0] == '\0',
              "a new thread's bc_last_error() is \"%s\", expected \"\"", thread_msg_initial);
    CHECK_MSG(thread_msg_after_nf[0] == '\0',
              "after BC_NOT_FOUND a new thread's bc_last_error() is \"%s\", expected \"\"",
              thread_msg_after_nf);
    CHECK_MSG(thread_msg_own[0] != '\0', "no message after a failure in the thread");
    CHECK_STR_EQ(bc_last_error(), mine);
    close_db(db);
    db = NULL;
}

static pthread_key_t exit_key;
static int exit_get_status = -1, exit_null_status = -1, exit_msg_ok;

/* A thread-exit destructor that uses the database (e.g. to flush a
 * per-thread batch) runs after the library's own thread-locals are gone. */
static void at_thread_exit(void *arg) {
    uint8_t buf[16];
    size_t len;
    (void)arg;
    exit_get_status = bc_get_into(db, K("k"), buf, sizeof buf, &len);
    exit_null_status = bc_get_into(db, NULL, 1, buf, sizeof buf, &len);
    exit_msg_ok = bc_last_error() != NULL;
}

static void *exiting_thread(void *arg) {
    uint8_t buf[16];
    size_t len;
    (void)arg;
    pthread_setspecific(exit_key, (void *)1);
    /* Uses the thread-locals first: a failing call, then a get. */
    CHECK_STATUS(bc_get_into(db, NULL, 1, buf, sizeof buf, &len), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_get_into(db, K("k"), buf, sizeof buf, &len), BC_OK);
    return NULL;
}

/* Calls from a pthread-key destructor neither abort the process nor fail
 * the handle (they used to: the panic of a destroyed thread-local). */
static void test_calls_during_thread_exit(void) {
    pthread_t t;
    db = open_db(make_temp_dir(), NULL);
    CHECK_STATUS(bc_put(db, K("k"), V("v")), BC_OK);
    CHECK(pthread_key_create(&exit_key, at_thread_exit) == 0);
    CHECK(pthread_create(&t, NULL, exiting_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_MSG(thread_failures() == 0, "the exiting thread failed (see above)");
    CHECK_MSG(exit_get_status == BC_OK, "get during thread exit: %d", exit_get_status);
    CHECK_MSG(exit_null_status == BC_INVALID_ARGUMENT, "NULL key during thread exit: %d",
              exit_null_status);
    CHECK(exit_msg_ok);
    CHECK_STATUS(bc_put(db, K("k2"), V("v")), BC_OK);
    CHECK_GET(db, K("k"), V("v"));
    pthread_key_delete(exit_key);
    close_db(db);
    db = NULL;
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(test_readers_beside_writer_and_merger);
    RUN(test_concurrent_writers);
    RUN(test_last_error_is_per_thread);
    RUN(test_calls_during_thread_exit);
    return check_finish();
}
