/*
 * threads.c - one bc_db shared by a writer thread and several reader threads.
 *
 * The writer keeps rewriting every key with "value<i>:<round>" (and merges
 * now and then); the readers check that each value they read belongs to the
 * key they asked for. A bc_db may be used by any number of threads at once;
 * only bc_close must not overlap other calls on it.
 *
 *   cargo build --release
 *   cc examples/threads.c -Iinclude -Ltarget/release -lbitcask -pthread \
 *      -Wl,-rpath,$PWD/target/release && ./a.out [DIR]
 *
 * DIR defaults to a new directory under /tmp.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitcask.h"

enum { KEYS = 200, ROUNDS = 20, READERS = 4 };

static bc_db *db;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int writer_done; /* guarded by mu */

static int is_done(void) {
    int d;
    pthread_mutex_lock(&mu);
    d = writer_done;
    pthread_mutex_unlock(&mu);
    return d;
}

/* Writes every key for rounds 1..ROUNDS; returns the number of failures. */
static void *writer(void *arg) {
    char key[16], val[32];
    intptr_t failures = 0;
    int round, i;
    bc_status st;
    (void)arg;
    for (round = 1; round <= ROUNDS && failures == 0; round++) {
        for (i = 0; i < KEYS; i++) {
            int kl = snprintf(key, sizeof key, "key%d", i);
            int vl = snprintf(val, sizeof val, "value%d:%d", i, round);
            st = bc_put(db, (const uint8_t *)key, (size_t)kl, (const uint8_t *)val, (size_t)vl);
            if (st != BC_OK) {
                /* bc_last_error() is per thread: read it here, not in main. */
                fprintf(stderr, "bc_put: %s: %s\n", bc_status_str(st), bc_last_error());
                failures++;
                break;
            }
        }
        if (round % 5 == 0 && (st = bc_merge(db)) != BC_OK) {
            fprintf(stderr, "bc_merge: %s: %s\n", bc_status_str(st), bc_last_error());
            failures++;
        }
    }
    pthread_mutex_lock(&mu);
    writer_done = 1;
    pthread_mutex_unlock(&mu);
    return (void *)failures;
}

/* Reads random keys until the writer is done; returns the number of bad reads. */
static void *reader(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    char key[16], prefix[16];
    uint8_t buf[32];
    intptr_t bad = 0;
    while (!is_done()) {
        int i, kl, pl;
        size_t vlen = 0;
        bc_status st;
        seed = seed * 1103515245u + 12345u;
        i = (int)((seed >> 16) % KEYS);
        kl = snprintf(key, sizeof key, "key%d", i);
        pl = snprintf(prefix, sizeof prefix, "value%d:", i);
        /* bc_get_into copies into our buffer: no allocation, nothing to free. */
        st = bc_get_into(db, (const uint8_t *)key, (size_t)kl, buf, sizeof buf, &vlen);
        if (st != BC_OK) {
            fprintf(stderr, "bc_get_into(%s): %s: %s\n", key, bc_status_str(st), bc_last_error());
            bad++;
        } else if (vlen <= (size_t)pl || memcmp(buf, prefix, (size_t)pl) != 0) {
            fprintf(stderr, "%s has a wrong value: %.*s\n", key, (int)vlen, (const char *)buf);
            bad++;
        }
    }
    return (void *)bad;
}

int main(int argc, char **argv) {
    char tmpl[] = "/tmp/bitcask-threads-XXXXXX";
    const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
    pthread_t w, r[READERS];
    char key[16], val[32];
    intptr_t problems = 0;
    void *ret;
    bc_status st;
    int i;

    if (dir == NULL) {
        perror("mkdtemp");
        return 1;
    }
    st = bc_open(dir, NULL, &db);
    if (st != BC_OK) {
        fprintf(stderr, "bc_open(%s): %s: %s\n", dir, bc_status_str(st), bc_last_error());
        return 1;
    }

    /* Round 0, so that readers always find a value. */
    for (i = 0; i < KEYS; i++) {
        int kl = snprintf(key, sizeof key, "key%d", i);
        int vl = snprintf(val, sizeof val, "value%d:0", i);
        st = bc_put(db, (const uint8_t *)key, (size_t)kl, (const uint8_t *)val, (size_t)vl);
        if (st != BC_OK) {
            fprintf(stderr, "bc_put: %s: %s\n", bc_status_str(st), bc_last_error());
            bc_close(db);
            return 1;
        }
    }

    if (pthread_create(&w, NULL, writer, NULL) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        bc_close(db);
        return 1;
    }
    for (i = 0; i < READERS; i++) {
        if (pthread_create(&r[i], NULL, reader, (void *)(uintptr_t)(i + 1)) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            problems++;
            break;
        }
    }
    pthread_join(w, &ret);
    problems += (intptr_t)ret;
    while (i-- > 0) {
        pthread_join(r[i], &ret);
        problems += (intptr_t)ret;
    }

    /* Every key now holds the last round's value. */
    for (i = 0; i < KEYS && problems == 0; i++) {
        int kl = snprintf(key, sizeof key, "key%d", i);
        int vl = snprintf(val, sizeof val, "value%d:%d", i, ROUNDS);
        uint8_t buf[32];
        size_t vlen = 0;
        st = bc_get_into(db, (const uint8_t *)key, (size_t)kl, buf, sizeof buf, &vlen);
        if (st != BC_OK || vlen != (size_t)vl || memcmp(buf, val, vlen) != 0) {
            fprintf(stderr, "%s: final value wrong (%s)\n", key, bc_status_str(st));
            problems++;
        }
    }

    st = bc_close(db); /* after every thread is joined */
    if (st != BC_OK) {
        fprintf(stderr, "bc_close: %s: %s\n", bc_status_str(st), bc_last_error());
        problems++;
    }
    printf("%s: %d readers beside 1 writer, %s\n", dir, READERS,
           problems ? "FAILED" : "all values correct");
    return problems ? 1 : 0;
}
