/*
 * quickstart.c - open a bitcask database, put, get, delete, merge, close.
 *
 *   cargo build --release
 *   cc examples/quickstart.c -Iinclude -Ltarget/release -lbitcask \
 *      -Wl,-rpath,$PWD/target/release && ./a.out [DIR]
 *
 * DIR defaults to a new directory under /tmp, left there to look at.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitcask.h"

/* Reports a failed call. Read bc_last_error() right away, on the thread
 * that made the call: the next failing call replaces the message. */
static void report(const char *what, bc_status st) {
    fprintf(stderr, "%s: %s: %s\n", what, bc_status_str(st), bc_last_error());
}

int main(int argc, char **argv) {
    char tmpl[] = "/tmp/bitcask-quickstart-XXXXXX";
    const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
    const uint8_t *key = (const uint8_t *)"greeting";
    const size_t klen = strlen("greeting");
    const char *value = "hello, world";
    bc_options *opts = NULL;
    bc_db *db = NULL;
    uint8_t *val = NULL;
    size_t vlen = 0;
    bc_status st;
    int ok = 0;

    if (dir == NULL) {
        perror("mkdtemp");
        return 1;
    }

    /* Options are optional (NULL = defaults); bc_open copies them. */
    st = bc_options_new(&opts);
    if (st == BC_OK) st = bc_options_set_sync(opts, BC_SYNC_ALWAYS, 0);
    if (st != BC_OK) {
        report("options", st);
        bc_options_free(opts);
        return 1;
    }
    st = bc_open(dir, opts, &db);
    bc_options_free(opts);
    if (st != BC_OK) {
        report("bc_open", st); /* e.g. BC_LOCKED: another process has it open */
        return 1;
    }
    printf("opened %s with bitcask %s\n", dir, bc_version());

    st = bc_put(db, key, klen, (const uint8_t *)value, strlen(value));
    if (st != BC_OK) {
        report("bc_put", st);
        goto out;
    }

    /* bc_get returns a copy that the caller frees with bc_free. */
    st = bc_get(db, key, klen, &val, &vlen);
    if (st != BC_OK) {
        report("bc_get", st);
        goto out;
    }
    printf("greeting = \"%.*s\"\n", (int)vlen, (const char *)val);
    bc_free(val, vlen);

    st = bc_delete(db, key, klen);
    if (st != BC_OK) {
        report("bc_delete", st);
        goto out;
    }

    /* BC_NOT_FOUND is an outcome, not an error. */
    st = bc_contains(db, key, klen);
    if (st != BC_NOT_FOUND) {
        if (st == BC_OK)
            fprintf(stderr, "greeting is still there after bc_delete\n");
        else
            report("bc_contains", st);
        goto out;
    }
    printf("greeting deleted\n");

    /* Reclaim the space of overwritten and deleted records. */
    st = bc_merge(db);
    if (st != BC_OK) {
        report("bc_merge", st);
        goto out;
    }
    ok = 1;

out:
    /* Close on every path: it flushes, releases the lock and frees db. */
    st = bc_close(db);
    if (st != BC_OK) {
        report("bc_close", st);
        ok = 0;
    }
    return ok ? 0 : 1;
}
