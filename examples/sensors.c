/*
 * sensors.c - sensor readings under "device:timestamp" keys, then one
 * device's history between two times, with a prefix iterator.
 *
 *   cargo build --release
 *   cc examples/sensors.c -Iinclude -Ltarget/release -lbitcask \
 *      -Wl,-rpath,$PWD/target/release && ./a.out [DIR]
 *
 * Timestamps are written as 10 zero-padded digits, so bytewise key order
 * (the iterator's order) is time order within a device. Readings expire
 * a week after they are stored (bc_put_ttl counts from the put, not from
 * the timestamp in the key): old history disappears on its own and merge
 * reclaims its space. DIR defaults to a new directory under /tmp, left
 * there to look at.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitcask.h"

#define WEEK_SECS (7u * 24u * 3600u)

static void report(const char *what, bc_status st) {
    fprintf(stderr, "%s: %s: %s\n", what, bc_status_str(st), bc_last_error());
}

/* Stores one reading: key "device:tttttttttt", value "21.5" as text. */
static bc_status record(bc_db *db, const char *device, uint32_t t, double celsius) {
    char key[64], val[32];
    int klen = snprintf(key, sizeof key, "%s:%010" PRIu32, device, t);
    int vlen = snprintf(val, sizeof val, "%.1f", celsius);
    return bc_put_ttl(db, (const uint8_t *)key, (size_t)klen, (const uint8_t *)val,
                      (size_t)vlen, WEEK_SECS);
}

/* Prints the readings of `device` with from <= t < to. */
static bc_status history(bc_db *db, const char *device, uint32_t from, uint32_t to) {
    char prefix[48], lo[64], hi[64];
    int plen = snprintf(prefix, sizeof prefix, "%s:", device);
    bc_iter *it = NULL;
    const uint8_t *key;
    size_t klen;
    bc_status st;

    snprintf(lo, sizeof lo, "%s%010" PRIu32, prefix, from);
    snprintf(hi, sizeof hi, "%s%010" PRIu32, prefix, to);
    st = bc_iter_new(db, (const uint8_t *)prefix, (size_t)plen, &it);
    if (st != BC_OK) return st;
    printf("%s from %" PRIu32 " to %" PRIu32 ":\n", device, from, to);
    while ((st = bc_iter_next(it, &key, &klen)) == BC_OK) {
        uint8_t *val = NULL;
        size_t vlen = 0;
        /* Keys come sorted: skip to `lo`, stop at `hi`. */
        if (klen != strlen(lo) || memcmp(key, lo, klen) < 0) continue;
        if (memcmp(key, hi, klen) >= 0) break;
        st = bc_iter_value(it, &val, &vlen);
        if (st == BC_NOT_FOUND) continue; /* deleted or expired meanwhile */
        if (st != BC_OK) break;
        printf("  t=%.*s  %.*s C\n", 10, (const char *)key + plen, (int)vlen, (const char *)val);
        bc_free(val, vlen);
    }
    bc_iter_free(it);
    return st == BC_NOT_FOUND || st == BC_OK ? BC_OK : st;
}

int main(int argc, char **argv) {
    char tmpl[] = "/tmp/bitcask-sensors-XXXXXX";
    const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
    const char *devices[] = {"greenhouse", "garage", "cellar"};
    const uint32_t start = 1700000000u;
    bc_db *db = NULL;
    uint64_t count = 0;
    bc_status st, close_st;
    uint32_t t;
    int d;

    if (dir == NULL) {
        perror("mkdtemp");
        return 1;
    }
    st = bc_open(dir, NULL, &db);
    if (st != BC_OK) {
        report("bc_open", st);
        return 1;
    }
    /* One reading per device every 10 minutes for a day. */
    for (t = start; t < start + 24u * 3600u; t += 600u) {
        for (d = 0; d < 3; d++) {
            double celsius = 10.0 + d * 5.0 + (double)((t / 600u) % 12u) * 0.5;
            st = record(db, devices[d], t, celsius);
            if (st != BC_OK) {
                report("bc_put_ttl", st);
                bc_close(db);
                return 1;
            }
        }
    }
    st = bc_count(db, &count);
    if (st == BC_OK) printf("%" PRIu64 " readings stored\n", count);
    /* The garage between 06:00 and 07:00 after the start. */
    if (st == BC_OK) st = history(db, "garage", start + 6u * 3600u, start + 7u * 3600u);
    if (st != BC_OK) report("history", st);
    close_st = bc_close(db);
    if (close_st != BC_OK) {
        report("bc_close", close_st);
        return 1;
    }
    return st == BC_OK ? 0 : 1;
}
