/* Kyoto Cabinet through its C API (kclangc.h): HashDB (file db.kch) with
 * bnum = 2 x keys and the memory map (msiz) sized to hold the whole file, like
 * tkrzw's.  Fillsync runs open with KCOAUTOSYNC (every update is followed by a
 * physical sync).  No compaction call is exposed by the C API. */
#include "engine.h"

#include <kclangc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    KCDB *db;
} kc_h;

static const char *kc_version(void) { return KCVERSION; }

static int fail(KCDB *db, const char *what)
{
    fprintf(stderr, "kyotocabinet: %s: %s\n", what, kcdbemsg(db));
    return -1;
}

static int kc_open(void **out, const char *dir, const engine_cfg *cfg)
{
    kc_h *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    h->db = kcdbnew();
    char path[4200];
    size_t bnum = cfg->n * 2 < 1024 ? 1024 : cfg->n * 2;
    size_t msiz = cfg->n * (cfg->key_size + cfg->value_size + 64) * 2 + ((size_t)64 << 20);
    snprintf(path, sizeof path, "%s/db.kch#bnum=%zu#msiz=%zu", dir, bnum, msiz);
    uint32_t mode = KCOWRITER | KCOCREATE | (cfg->sync ? KCOAUTOSYNC : 0);
    if (!kcdbopen(h->db, path, mode)) {
        fail(h->db, "open");
        kcdbdel(h->db);
        free(h);
        return -1;
    }
    *out = h;
    return 0;
}

static int kc_put(void *hp, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    kc_h *h = hp;
    return kcdbset(h->db, (const char *)k, kl, (const char *)v, vl) ? 0 : fail(h->db, "set");
}

static int kc_get(void *hp, const uint8_t *k, size_t kl, uint8_t *buf, size_t cap, size_t *vlen)
{
    kc_h *h = hp;
    int32_t n = kcdbgetbuf(h->db, (const char *)k, kl, (char *)buf, cap);
    if (n < 0)
        return kcdbecode(h->db) == KCENOREC ? 0 : fail(h->db, "get");
    if ((size_t)n > cap)
        return -1;
    *vlen = (size_t)n;
    return 1;
}

static int kc_del(void *hp, const uint8_t *k, size_t kl)
{
    kc_h *h = hp;
    if (!kcdbremove(h->db, (const char *)k, kl) && kcdbecode(h->db) != KCENOREC)
        return fail(h->db, "remove");
    return 0;
}

static int kc_sync(void *hp)
{
    kc_h *h = hp;
    return kcdbsync(h->db, 1, NULL, NULL) ? 0 : fail(h->db, "sync");
}

static int kc_close(void *hp)
{
    kc_h *h = hp;
    int rc = kcdbclose(h->db) ? 0 : fail(h->db, "close");
    kcdbdel(h->db);
    free(h);
    return rc;
}

const engine_t engine_kyotocabinet = {
    .name = "kyotocabinet",
    .kind = "engine",
    .durability_nosync = "HashDB, memory-mapped region + pwrite, no sync (the OS writes back)",
    .durability_sync = "KCOAUTOSYNC: physical sync of the file after every update (no group commit)",
    .caps = CAP_GET | CAP_PERSIST,
    .version = kc_version,
    .open = kc_open,
    .put = kc_put,
    .get = kc_get,
    .del = kc_del,
    .sync = kc_sync,
    .compact = NULL,
    .close = kc_close,
};
