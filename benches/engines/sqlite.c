/* SQLite through its C API (sqlite3.h).  journal_mode=WAL; no-sync runs use
 * synchronous=OFF, fillsync runs synchronous=FULL (WAL fsync per commit).
 * Every put/delete is its own autocommit transaction (no batching: the same
 * per-op atomicity the other engines give).  100-byte values: a WITHOUT
 * ROWID table (k BLOB PRIMARY KEY, v BLOB); values > 1000 bytes: an ordinary
 * rowid table with a unique index on k (what the SQLite docs advise for large
 * rows).  Puts are UPSERTs.  One writer connection behind a mutex (SQLite has
 * one writer at a time anyway) and one read connection per reading thread,
 * so readers do not block the writer in WAL mode. */
#include "engine.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct conn_t {
    sqlite3 *db;
    sqlite3_stmt *put, *get, *del;
    struct conn_t *next;
} conn_t;

typedef struct {
    char path[4096];
    int sync;
    size_t value_size;
    uint64_t gen;
    pthread_mutex_t wmu; /* serialises the writer connection */
    conn_t *writer;
    pthread_mutex_t lmu; /* protects readers list */
    conn_t *readers;
} sq_h;

static uint64_t g_sq_gen;
static __thread struct {
    sq_h *h;
    uint64_t gen;
    conn_t *c;
} tl_conn;

static const char *sq_version(void) { return sqlite3_libversion(); }

static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "sqlite: %s: %s\n", sql, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static void conn_free(conn_t *c)
{
    if (!c)
        return;
    sqlite3_finalize(c->put);
    sqlite3_finalize(c->get);
    sqlite3_finalize(c->del);
    sqlite3_close(c->db);
    free(c);
}

static conn_t *conn_open(sq_h *h, int writer, size_t value_size)
{
    conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    int rc = sqlite3_open_v2(h->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "sqlite: open %s: %s\n", h->path, c->db ? sqlite3_errmsg(c->db) : "?");
        conn_free(c);
        return NULL;
    }
    sqlite3_busy_timeout(c->db, 10000);
    if (writer) {
        if (exec(c->db, "PRAGMA journal_mode=WAL") ||
            exec(c->db, h->sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF")) {
            conn_free(c);
            return NULL;
        }
        const char *create = value_size > 1000
            ? "CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB)"
            : "CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID";
        if (exec(c->db, create)) {
            conn_free(c);
            return NULL;
        }
    }
    if (sqlite3_prepare_v2(c->db, "INSERT INTO kv(k,v) VALUES(?1,?2) ON CONFLICT(k) DO UPDATE SET v=excluded.v", -1, &c->put, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "SELECT v FROM kv WHERE k=?1", -1, &c->get, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "DELETE FROM kv WHERE k=?1", -1, &c->del, NULL) != SQLITE_OK) {
        fprintf(stderr, "sqlite: prepare: %s\n", sqlite3_errmsg(c->db));
        conn_free(c);
        return NULL;
    }
    return c;
}

static int sq_open(void **out, const char *dir, const engine_cfg *cfg)
{
    sq_h *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    snprintf(h->path, sizeof h->path, "%s/db.sqlite", dir);
    h->sync = cfg->sync;
    h->value_size = cfg->value_size;
    h->writer = conn_open(h, 1, cfg->value_size);
    if (!h->writer) {
        free(h);
        return -1;
    }
    pthread_mutex_init(&h->wmu, NULL);
    pthread_mutex_init(&h->lmu, NULL);
    h->gen = __atomic_add_fetch(&g_sq_gen, 1, __ATOMIC_RELAXED);
    *out = h;
    return 0;
}

static conn_t *reader(sq_h *h)
{
    if (tl_conn.h == h && tl_conn.gen == h->gen)
        return tl_conn.c;
    conn_t *c = conn_open(h, 0, h->value_size);
    if (!c)
        return NULL;
    pthread_mutex_lock(&h->lmu);
    c->next = h->readers;
    h->readers = c;
    pthread_mutex_unlock(&h->lmu);
    tl_conn.h = h;
    tl_conn.gen = h->gen;
    tl_conn.c = c;
    return c;
}

static int sq_put(void *hp, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    sq_h *h = hp;
    pthread_mutex_lock(&h->wmu);
    sqlite3_stmt *s = h->writer->put;
    sqlite3_bind_blob(s, 1, k, (int)kl, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, v, (int)vl, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        fprintf(stderr, "sqlite: put: %s\n", sqlite3_errmsg(h->writer->db));
    pthread_mutex_unlock(&h->wmu);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int sq_del(void *hp, const uint8_t *k, size_t kl)
{
    sq_h *h = hp;
    pthread_mutex_lock(&h->wmu);
    sqlite3_stmt *s = h->writer->del;
    sqlite3_bind_blob(s, 1, k, (int)kl, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        fprintf(stderr, "sqlite: delete: %s\n", sqlite3_errmsg(h->writer->db));
    pthread_mutex_unlock(&h->wmu);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int sq_get(void *hp, const uint8_t *k, size_t kl, uint8_t *buf, size_t cap, size_t *vlen)
{
    sq_h *h = hp;
    conn_t *c = reader(h);
    if (!c)
        return -1;
    sqlite3_stmt *s = c->get;
    sqlite3_bind_blob(s, 1, k, (int)kl, SQLITE_STATIC);
    int rc = sqlite3_step(s), res;
    if (rc == SQLITE_ROW) {
        const void *v = sqlite3_column_blob(s, 0);
        size_t len = (size_t)sqlite3_column_bytes(s, 0);
        if (len > cap) {
            res = -1;
        } else {
            if (len)
                memcpy(buf, v, len);
            *vlen = len;
            res = 1;
        }
    } else if (rc == SQLITE_DONE) {
        res = 0;
    } else {
        fprintf(stderr, "sqlite: get: %s\n", sqlite3_errmsg(c->db));
        res = -1;
    }
    sqlite3_reset(s);
    return res;
}

static int sq_sync(void *hp)
{
    sq_h *h = hp;
    pthread_mutex_lock(&h->wmu);
    int rc = exec(h->writer->db, "PRAGMA wal_checkpoint(PASSIVE)");
    pthread_mutex_unlock(&h->wmu);
    return rc;
}

static int sq_compact(void *hp)
{
    sq_h *h = hp;
    pthread_mutex_lock(&h->wmu);
    int rc = exec(h->writer->db, "VACUUM");
    if (rc == 0)
        rc = exec(h->writer->db, "PRAGMA wal_checkpoint(TRUNCATE)");
    pthread_mutex_unlock(&h->wmu);
    return rc;
}

static int sq_close(void *hp)
{
    sq_h *h = hp;
    for (conn_t *c = h->readers; c;) {
        conn_t *next = c->next;
        conn_free(c);
        c = next;
    }
    conn_free(h->writer);
    if (tl_conn.h == h) {
        tl_conn.h = NULL;
        tl_conn.c = NULL;
    }
    pthread_mutex_destroy(&h->wmu);
    pthread_mutex_destroy(&h->lmu);
    free(h);
    return 0;
}

const engine_t engine_sqlite = {
    .name = "sqlite",
    .kind = "engine",
    .durability_nosync = "WAL, synchronous=OFF, autocommit txn per op: WAL frames written to the OS, no fsync",
    .durability_sync = "WAL, synchronous=FULL, autocommit txn per op: WAL fsync per commit; one writer at a time",
    .caps = CAP_GET | CAP_PERSIST,
    .version = sq_version,
    .open = sq_open,
    .put = sq_put,
    .get = sq_get,
    .del = sq_del,
    .sync = sq_sync,
    .compact = sq_compact,
    .close = sq_close,
};
