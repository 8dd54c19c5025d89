/* LMDB through its C API (lmdb.h).  One write transaction per put/delete
 * (the same per-operation atomicity the other engines give).  Reads: each
 * thread keeps one read-only transaction that it resets/renews around every
 * get (the documented cheap way to do many short reads). */
#include "engine.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lmdb_h lmdb_h;

typedef struct rtxn_node {
    MDB_txn *txn;
    struct rtxn_node *next;
} rtxn_node;

struct lmdb_h {
    MDB_env *env;
    MDB_dbi dbi;
    uint64_t gen;
    pthread_mutex_t mu; /* protects rtxns */
    rtxn_node *rtxns;
};

static uint64_t g_lmdb_gen;
static __thread struct {
    lmdb_h *h;
    uint64_t gen;
    MDB_txn *txn;
} tl_read;

static char g_lmdb_version[64];

static const char *lm_version(void)
{
    int maj, min, pat;
    mdb_version(&maj, &min, &pat);
    snprintf(g_lmdb_version, sizeof g_lmdb_version, "%d.%d.%d", maj, min, pat);
    return g_lmdb_version;
}

static int check(int rc, const char *what)
{
    if (rc != MDB_SUCCESS) {
        fprintf(stderr, "lmdb: %s: %s\n", what, mdb_strerror(rc));
        return -1;
    }
    return 0;
}

static int lm_open(void **out, const char *dir, const engine_cfg *cfg)
{
    lmdb_h *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    int rc = mdb_env_create(&h->env);
    if (check(rc, "env_create")) {
        free(h);
        return -1;
    }
    /* map size: virtual; with MDB_WRITEMAP the file is that size but
     * sparse, so `du` counts only the pages written */
    size_t want = cfg->n * (cfg->key_size + cfg->value_size + 64) * 4;
    size_t mapsize = (size_t)64 << 30;
    if (want > mapsize)
        mapsize = want;
    mdb_env_set_mapsize(h->env, mapsize);
    mdb_env_set_maxreaders(h->env, 256);
    /* No-sync runs write through the shared map (MDB_WRITEMAP): the
     * fastest way LMDB's users write without fsync, and still nothing lost
     * to a crash of the process; without it each commit pwrite()s copies
     * of its pages, 5-8x slower here. */
    unsigned flags = cfg->sync ? 0 : (MDB_NOSYNC | MDB_NOMETASYNC | MDB_WRITEMAP);
    rc = mdb_env_open(h->env, dir, flags, 0644);
    if (check(rc, "env_open")) {
        mdb_env_close(h->env);
        free(h);
        return -1;
    }
    MDB_txn *txn;
    rc = mdb_txn_begin(h->env, NULL, 0, &txn);
    if (rc == MDB_SUCCESS)
        rc = mdb_dbi_open(txn, NULL, 0, &h->dbi);
    if (rc == MDB_SUCCESS)
        rc = mdb_txn_commit(txn);
    if (check(rc, "dbi_open")) {
        mdb_env_close(h->env);
        free(h);
        return -1;
    }
    pthread_mutex_init(&h->mu, NULL);
    h->gen = __atomic_add_fetch(&g_lmdb_gen, 1, __ATOMIC_RELAXED);
    *out = h;
    return 0;
}

static int lm_write(lmdb_h *h, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, int del)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(h->env, NULL, 0, &txn);
    if (check(rc, "txn_begin"))
        return -1;
    MDB_val key = {kl, (void *)k};
    if (del) {
        rc = mdb_del(txn, h->dbi, &key, NULL);
        if (rc == MDB_NOTFOUND)
            rc = MDB_SUCCESS;
    } else {
        MDB_val val = {vl, (void *)v};
        rc = mdb_put(txn, h->dbi, &key, &val, 0);
    }
    if (rc != MDB_SUCCESS) {
        mdb_txn_abort(txn);
        return check(rc, del ? "del" : "put");
    }
    return check(mdb_txn_commit(txn), "commit");
}

static int lm_put(void *h, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    return lm_write(h, k, kl, v, vl, 0);
}

static int lm_del(void *h, const uint8_t *k, size_t kl)
{
    return lm_write(h, k, kl, NULL, 0, 1);
}

static MDB_txn *read_txn(lmdb_h *h)
{
    if (tl_read.h == h && tl_read.gen == h->gen && tl_read.txn) {
        if (mdb_txn_renew(tl_read.txn) == MDB_SUCCESS)
            return tl_read.txn;
        return NULL;
    }
    MDB_txn *txn;
    if (check(mdb_txn_begin(h->env, NULL, MDB_RDONLY, &txn), "read txn_begin"))
        return NULL;
    rtxn_node *n = malloc(sizeof *n);
    if (!n) {
        mdb_txn_abort(txn);
        return NULL;
    }
    n->txn = txn;
    pthread_mutex_lock(&h->mu);
    n->next = h->rtxns;
    h->rtxns = n;
    pthread_mutex_unlock(&h->mu);
    tl_read.h = h;
    tl_read.gen = h->gen;
    tl_read.txn = txn;
    return txn;
}

static int lm_get(void *hp, const uint8_t *k, size_t kl, uint8_t *buf, size_t cap, size_t *vlen)
{
    lmdb_h *h = hp;
    MDB_txn *txn = read_txn(h);
    if (!txn)
        return -1;
    MDB_val key = {kl, (void *)k}, val;
    int rc = mdb_get(txn, h->dbi, &key, &val);
    int res;
    if (rc == MDB_NOTFOUND) {
        res = 0;
    } else if (rc != MDB_SUCCESS) {
        check(rc, "get");
        res = -1;
    } else if (val.mv_size > cap) {
        res = -1;
    } else {
        memcpy(buf, val.mv_data, val.mv_size);
        *vlen = val.mv_size;
        res = 1;
    }
    mdb_txn_reset(txn);
    return res;
}

static int lm_sync(void *hp)
{
    lmdb_h *h = hp;
    return check(mdb_env_sync(h->env, 1), "env_sync");
}

static int lm_close(void *hp)
{
    lmdb_h *h = hp;
    /* read txns are all in the reset state (threads that used them are done) */
    for (rtxn_node *n = h->rtxns; n;) {
        rtxn_node *next = n->next;
        mdb_txn_abort(n->txn);
        free(n);
        n = next;
    }
    if (tl_read.h == h) {
        tl_read.h = NULL;
        tl_read.txn = NULL;
    }
    mdb_env_close(h->env);
    pthread_mutex_destroy(&h->mu);
    free(h);
    return 0;
}

const engine_t engine_lmdb = {
    .name = "lmdb",
    .kind = "engine",
    .durability_nosync = "MDB_NOSYNC|MDB_NOMETASYNC|MDB_WRITEMAP, one write txn per op: written into the shared map, no fsync",
    .durability_sync = "default flags: fsync (fdatasync) at every txn commit, one txn per op; writers serialise",
    .caps = CAP_GET | CAP_PERSIST,
    .version = lm_version,
    .open = lm_open,
    .put = lm_put,
    .get = lm_get,
    .del = lm_del,
    .sync = lm_sync,
    .compact = NULL,
    .close = lm_close,
};
