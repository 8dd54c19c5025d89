/* Baseline: an in-memory hash table (separate chaining, one malloc'd node per
 * key holding key + value, 256 lock stripes so a reader and a writer rarely
 * meet).  Nothing reaches disk: it is the ceiling for an index lookup + value
 * copy, and its RSS per key shows what a naive "key + value in RAM" store
 * costs. */
#include "engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STRIPES 256

typedef struct node {
    struct node *next;
    uint64_t hash;
    uint32_t klen, vlen;
    uint8_t kv[]; /* key bytes then value bytes */
} node_t;

typedef struct {
    pthread_mutex_t stripe[STRIPES];
    pthread_rwlock_t resize; /* shared by every op, exclusive while growing */
    node_t **buckets;
    size_t cap; /* power of two, >= STRIPES */
    size_t count;
} memhash_t;

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    while (n >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        h = (h ^ x) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t x = 0;
    memcpy(&x, p, n);
    h = (h ^ x) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    return h;
}

static const char *mh_version(void) { return "builtin"; }

static int mh_open(void **h, const char *dir, const engine_cfg *cfg)
{
    (void)dir;
    memhash_t *m = calloc(1, sizeof *m);
    if (!m)
        return -1;
    size_t cap = STRIPES;
    while (cap < cfg->n)
        cap <<= 1;
    m->buckets = calloc(cap, sizeof(node_t *));
    if (!m->buckets) {
        free(m);
        return -1;
    }
    m->cap = cap;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&m->stripe[i], NULL);
    pthread_rwlock_init(&m->resize, NULL);
    *h = m;
    return 0;
}

/* called with no lock held */
static void maybe_grow(memhash_t *m)
{
    if (__atomic_load_n(&m->count, __ATOMIC_RELAXED) <= m->cap)
        return;
    pthread_rwlock_wrlock(&m->resize);
    if (m->count > m->cap) {
        size_t ncap = m->cap * 2;
        node_t **nb = calloc(ncap, sizeof(node_t *));
        if (nb) {
            for (size_t i = 0; i < m->cap; i++) {
                for (node_t *n = m->buckets[i], *next; n; n = next) {
                    next = n->next;
                    size_t b = n->hash & (ncap - 1);
                    n->next = nb[b];
                    nb[b] = n;
                }
            }
            free(m->buckets);
            m->buckets = nb;
            m->cap = ncap;
        }
    }
    pthread_rwlock_unlock(&m->resize);
}

static int mh_put(void *h, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    memhash_t *m = h;
    uint64_t hash = hash_bytes(k, kl);
    node_t *nn = malloc(sizeof(node_t) + kl + vl);
    if (!nn)
        return -1;
    nn->hash = hash;
    nn->klen = (uint32_t)kl;
    nn->vlen = (uint32_t)vl;
    memcpy(nn->kv, k, kl);
    memcpy(nn->kv + kl, v, vl);
    node_t *old = NULL;
    pthread_rwlock_rdlock(&m->resize);
    size_t b = hash & (m->cap - 1);
    pthread_mutex_t *mu = &m->stripe[b % STRIPES];
    pthread_mutex_lock(mu);
    node_t **pp = &m->buckets[b];
    for (; *pp; pp = &(*pp)->next) {
        node_t *n = *pp;
        if (n->hash == hash && n->klen == kl && memcmp(n->kv, k, kl) == 0) {
            old = n;
            nn->next = n->next;
            *pp = nn;
            break;
        }
    }
    if (!old) {
        nn->next = m->buckets[b];
        m->buckets[b] = nn;
        __atomic_add_fetch(&m->count, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(mu);
    pthread_rwlock_unlock(&m->resize);
    free(old);
    if (!old)
        maybe_grow(m);
    return 0;
}

static int mh_get(void *h, const uint8_t *k, size_t kl, uint8_t *buf, size_t cap, size_t *vlen)
{
    memhash_t *m = h;
    uint64_t hash = hash_bytes(k, kl);
    int rc = 0;
    pthread_rwlock_rdlock(&m->resize);
    size_t b = hash & (m->cap - 1);
    pthread_mutex_t *mu = &m->stripe[b % STRIPES];
    pthread_mutex_lock(mu);
    for (node_t *n = m->buckets[b]; n; n = n->next) {
        if (n->hash == hash && n->klen == kl && memcmp(n->kv, k, kl) == 0) {
            if (n->vlen > cap) {
                rc = -1;
            } else {
                memcpy(buf, n->kv + n->klen, n->vlen);
                *vlen = n->vlen;
                rc = 1;
            }
            break;
        }
    }
    pthread_mutex_unlock(mu);
    pthread_rwlock_unlock(&m->resize);
    return rc;
}

static int mh_del(void *h, const uint8_t *k, size_t kl)
{
    memhash_t *m = h;
    uint64_t hash = hash_bytes(k, kl);
    node_t *old = NULL;
    pthread_rwlock_rdlock(&m->resize);
    size_t b = hash & (m->cap - 1);
    pthread_mutex_t *mu = &m->stripe[b % STRIPES];
    pthread_mutex_lock(mu);
    for (node_t **pp = &m->buckets[b]; *pp; pp = &(*pp)->next) {
        node_t *n = *pp;
        if (n->hash == hash && n->klen == kl && memcmp(n->kv, k, kl) == 0) {
            *pp = n->next;
            old = n;
            __atomic_sub_fetch(&m->count, 1, __ATOMIC_RELAXED);
            break;
        }
    }
    pthread_mutex_unlock(mu);
    pthread_rwlock_unlock(&m->resize);
    free(old);
    return 0;
}

static int mh_sync(void *h)
{
    (void)h;
    return 0;
}

static int mh_close(void *h)
{
    memhash_t *m = h;
    for (size_t i = 0; i < m->cap; i++) {
        for (node_t *n = m->buckets[i], *next; n; n = next) {
            next = n->next;
            free(n);
        }
    }
    free(m->buckets);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&m->stripe[i]);
    pthread_rwlock_destroy(&m->resize);
    free(m);
    return 0;
}

const engine_t engine_memhash = {
    .name = "memhash",
    .kind = "baseline",
    .durability_nosync = "none: RAM only, nothing is written to disk",
    .durability_sync = "none: RAM only (fillsync measures the in-memory ceiling)",
    .caps = CAP_GET,
    .version = mh_version,
    .open = mh_open,
    .put = mh_put,
    .get = mh_get,
    .del = mh_del,
    .sync = mh_sync,
    .compact = NULL,
    .close = mh_close,
};
