/* Tkrzw through its C API (tkrzw_langc.h): HashDBM (file db.tkh, memory-
 * mapped file, in-place updates) with num_buckets = 2 x keys.  Tkrzw has no
 * per-write durability flag, so fillsync runs call tkrzw_dbm_synchronize(hard)
 * after every put (physical sync of the file).  Reads copy the value out in a
 * record-processor callback (no malloc).  compact = tkrzw_dbm_rebuild. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tkrzw_langc.h>

typedef struct {
    TkrzwDBM *dbm;
    int sync;
} tk_h;

static const char *tk_version(void) { return TKRZW_PACKAGE_VERSION; }

static int fail(const char *what)
{
    fprintf(stderr, "tkrzw: %s: %s\n", what, tkrzw_get_last_status_message());
    return -1;
}

static int tk_open(void **out, const char *dir, const engine_cfg *cfg)
{
    tk_h *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    char path[4096], params[256];
    snprintf(path, sizeof path, "%s/db.tkh", dir);
    size_t buckets = cfg->n * 2 < 1024 ? 1024 : cfg->n * 2;
    snprintf(params, sizeof params, "dbm=HashDBM,num_buckets=%zu", buckets);
    h->dbm = tkrzw_dbm_open(path, true, params);
    if (!h->dbm) {
        free(h);
        return fail("open");
    }
    h->sync = cfg->sync;
    *out = h;
    return 0;
}

static int tk_put(void *hp, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    tk_h *h = hp;
    if (!tkrzw_dbm_set(h->dbm, (const char *)k, (int32_t)kl, (const char *)v, (int32_t)vl, true))
        return fail("set");
    if (h->sync && !tkrzw_dbm_synchronize(h->dbm, true, NULL, NULL, ""))
        return fail("synchronize");
    return 0;
}

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int res;
} get_ctx;

static const char *copy_proc(void *arg, const char *k, int32_t kl, const char *v, int32_t vl, int32_t *nvl)
{
    (void)k;
    (void)kl;
    (void)nvl;
    get_ctx *c = arg;
    if (!v) {
        c->res = 0;
    } else if ((size_t)vl > c->cap) {
        c->res = -1;
    } else {
        memcpy(c->buf, v, (size_t)vl);
        c->len = (size_t)vl;
        c->res = 1;
    }
    return TKRZW_REC_PROC_NOOP;
}

static int tk_get(void *hp, const uint8_t *k, size_t kl, uint8_t *buf, size_t cap, size_t *vlen)
{
    tk_h *h = hp;
    get_ctx c = {buf, cap, 0, -1};
    if (!tkrzw_dbm_process(h->dbm, (const char *)k, (int32_t)kl, copy_proc, &c, false))
        return fail("process");
    if (c.res == 1)
        *vlen = c.len;
    return c.res;
}

static int tk_del(void *hp, const uint8_t *k, size_t kl)
{
    tk_h *h = hp;
    if (!tkrzw_dbm_remove(h->dbm, (const char *)k, (int32_t)kl) &&
        tkrzw_get_last_status_code() != TKRZW_STATUS_NOT_FOUND_ERROR)
        return fail("remove");
    if (h->sync && !tkrzw_dbm_synchronize(h->dbm, true, NULL, NULL, ""))
        return fail("synchronize");
    return 0;
}

static int tk_sync(void *hp)
{
    tk_h *h = hp;
    return tkrzw_dbm_synchronize(h->dbm, true, NULL, NULL, "") ? 0 : fail("synchronize");
}

static int tk_compact(void *hp)
{
    tk_h *h = hp;
    return tkrzw_dbm_rebuild(h->dbm, "") ? 0 : fail("rebuild");
}

static int tk_close(void *hp)
{
    tk_h *h = hp;
    int rc = tkrzw_dbm_close(h->dbm) ? 0 : fail("close");
    free(h);
    return rc;
}

const engine_t engine_tkrzw = {
    .name = "tkrzw",
    .kind = "engine",
    .durability_nosync = "HashDBM on a memory-mapped file, in-place updates, no sync (the OS writes back)",
    .durability_sync = "tkrzw_dbm_synchronize(hard=true) after every put (no per-write flag; no group commit)",
    .caps = CAP_GET | CAP_PERSIST,
    .version = tk_version,
    .open = tk_open,
    .put = tk_put,
    .get = tk_get,
    .del = tk_del,
    .sync = tk_sync,
    .compact = tk_compact,
    .close = tk_close,
};
