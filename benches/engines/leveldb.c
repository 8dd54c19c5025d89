/* LevelDB through its C API (leveldb/c.h).  Defaults except: compression off
 * (bitcask does not compress and the values are random bytes anyway), a
 * 10 bits/key bloom filter (the configuration LevelDB recommends for point
 * reads) and a 64 MiB write buffer (RocksDB's default).  One Put/Delete per
 * op, no batching. */
#include "engine.h"

#include <leveldb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_filterpolicy_t *filter;
    leveldb_writeoptions_t *wopts;
    leveldb_writeoptions_t *sync_wopts;
    leveldb_readoptions_t *ropts;
} ldb_h;

static char g_ldb_version[32];

static const char *ldb_version(void)
{
    snprintf(g_ldb_version, sizeof g_ldb_version, "%d.%d", leveldb_major_version(), leveldb_minor_version());
    return g_ldb_version;
}

static int report(char *err, const char *what)
{
    if (err) {
        fprintf(stderr, "leveldb: %s: %s\n", what, err);
        leveldb_free(err);
        return -1;
    }
    return 0;
}

/* Frees what ldb_open created, except the database itself. */
static void ldb_free(ldb_h *h)
{
    leveldb_readoptions_destroy(h->ropts);
    leveldb_writeoptions_destroy(h->wopts);
    leveldb_writeoptions_destroy(h->sync_wopts);
    leveldb_options_destroy(h->opts);
    leveldb_filterpolicy_destroy(h->filter);
    free(h);
}

static int ldb_open(void **out, const char *dir, const engine_cfg *cfg)
{
    ldb_h *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    h->opts = leveldb_options_create();
    leveldb_options_set_create_if_missing(h->opts, 1);
    leveldb_options_set_compression(h->opts, leveldb_no_compression);
    /* RocksDB's default memtable size: LevelDB's 4 MiB stalls every write
     * for 1 ms at level-0 slowdown with 10 KB values. */
    leveldb_options_set_write_buffer_size(h->opts, 64 << 20);
    h->filter = leveldb_filterpolicy_create_bloom(10);
    leveldb_options_set_filter_policy(h->opts, h->filter);
    h->wopts = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(h->wopts, cfg->sync ? 1 : 0);
    h->sync_wopts = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(h->sync_wopts, 1);
    h->ropts = leveldb_readoptions_create();
    char *err = NULL;
    h->db = leveldb_open(h->opts, dir, &err);
    if (report(err, "open")) {
        ldb_free(h);
        return -1;
    }
    *out = h;
    return 0;
}

static int ldb_put(void *hp, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    ldb_h *h = hp;
    char *err = NULL;
    leveldb_put(h->db, h->wopts, (const char *)k, kl, (const char *)v, vl, &err);
    return report(err, "put");
}

static int ldb_get(void *hp, const uint8_t *k, size_t kl, uint8_t *buf, size_t cap, size_t *vlen)
{
    ldb_h *h = hp;
    char *err = NULL;
    size_t len = 0;
    char *v = leveldb_get(h->db, h->ropts, (const char *)k, kl, &len, &err);
    if (report(err, "get"))
        return -1;
    if (!v)
        return 0;
    int rc = 1;
    if (len > cap) {
        rc = -1;
    } else {
        memcpy(buf, v, len);
        *vlen = len;
    }
    leveldb_free(v);
    return rc;
}

static int ldb_del(void *hp, const uint8_t *k, size_t kl)
{
    ldb_h *h = hp;
    char *err = NULL;
    leveldb_delete(h->db, h->wopts, (const char *)k, kl, &err);
    return report(err, "delete");
}

static int ldb_sync(void *hp)
{
    /* an empty batch written with sync=true fsyncs the log */
    ldb_h *h = hp;
    char *err = NULL;
    leveldb_writebatch_t *b = leveldb_writebatch_create();
    leveldb_write(h->db, h->sync_wopts, b, &err);
    leveldb_writebatch_destroy(b);
    return report(err, "sync");
}

static int ldb_compact(void *hp)
{
    ldb_h *h = hp;
    leveldb_compact_range(h->db, NULL, 0, NULL, 0);
    return 0;
}

static int ldb_close(void *hp)
{
    ldb_h *h = hp;
    leveldb_close(h->db);
    ldb_free(h);
    return 0;
}

const engine_t engine_leveldb = {
    .name = "leveldb",
    .kind = "engine",
    .durability_nosync = "WriteOptions.sync=false: log record written to the OS per op, no fsync",
    .durability_sync = "WriteOptions.sync=true: log fsync per write (concurrent writers are group-committed)",
    .caps = CAP_GET | CAP_PERSIST,
    .version = ldb_version,
    .open = ldb_open,
    .put = ldb_put,
    .get = ldb_get,
    .del = ldb_del,
    .sync = ldb_sync,
    .compact = ldb_compact,
    .close = ldb_close,
};
