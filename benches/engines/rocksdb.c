/* RocksDB through its C API (rocksdb/c.h).  Defaults except: compression
 * off, a 10 bits/key bloom filter in the block-based table, and
 * increase_parallelism(nproc).  One Put/Delete per op, no batching; reads use
 * rocksdb_get_pinned (no malloc of the value). */
#include "engine.h"

#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef ROCKSDB_VERSION_STR
#define ROCKSDB_VERSION_STR "unknown"
#endif

typedef struct {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_writeoptions_t *wopts;
    rocksdb_readoptions_t *ropts;
} rdb_h;

static const char *rdb_version(void) { return ROCKSDB_VERSION_STR; }

static int report(char *err, const char *what)
{
    if (err) {
        fprintf(stderr, "rocksdb: %s: %s\n", what, err);
        rocksdb_free(err);
        return -1;
    }
    return 0;
}

/* Frees what rdb_open created, except the database itself. */
static void rdb_free(rdb_h *h)
{
    rocksdb_readoptions_destroy(h->ropts);
    rocksdb_writeoptions_destroy(h->wopts);
    rocksdb_options_destroy(h->opts);
    free(h);
}

static int rdb_open(void **out, const char *dir, const engine_cfg *cfg)
{
    rdb_h *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    h->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(h->opts, 1);
    rocksdb_options_set_compression(h->opts, rocksdb_no_compression);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    rocksdb_options_increase_parallelism(h->opts, ncpu > 0 ? (int)ncpu : 2);
    rocksdb_block_based_table_options_t *bbo = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_filter_policy(bbo, rocksdb_filterpolicy_create_bloom(10));
    rocksdb_options_set_block_based_table_factory(h->opts, bbo);
    rocksdb_block_based_options_destroy(bbo);
    h->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(h->wopts, cfg->sync ? 1 : 0);
    h->ropts = rocksdb_readoptions_create();
    char *err = NULL;
    h->db = rocksdb_open(h->opts, dir, &err);
    if (report(err, "open")) {
        rdb_free(h);
        return -1;
    }
    *out = h;
    return 0;
}

static int rdb_put(void *hp, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    rdb_h *h = hp;
    char *err = NULL;
    rocksdb_put(h->db, h->wopts, (const char *)k, kl, (const char *)v, vl, &err);
    return report(err, "put");
}

static int rdb_get(void *hp, const uint8_t *k, size_t kl, uint8_t *buf, size_t cap, size_t *vlen)
{
    rdb_h *h = hp;
    char *err = NULL;
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned(h->db, h->ropts, (const char *)k, kl, &err);
    if (report(err, "get"))
        return -1;
    if (!ps)
        return 0;
    size_t len = 0;
    const char *v = rocksdb_pinnableslice_value(ps, &len);
    int rc;
    if (!v) {
        rc = 0;
    } else if (len > cap) {
        rc = -1;
    } else {
        memcpy(buf, v, len);
        *vlen = len;
        rc = 1;
    }
    rocksdb_pinnableslice_destroy(ps);
    return rc;
}

static int rdb_del(void *hp, const uint8_t *k, size_t kl)
{
    rdb_h *h = hp;
    char *err = NULL;
    rocksdb_delete(h->db, h->wopts, (const char *)k, kl, &err);
    return report(err, "delete");
}

static int rdb_sync(void *hp)
{
    rdb_h *h = hp;
    char *err = NULL;
    rocksdb_flush_wal(h->db, 1, &err);
    return report(err, "flush_wal");
}

static int rdb_compact(void *hp)
{
    rdb_h *h = hp;
    rocksdb_compact_range(h->db, NULL, 0, NULL, 0);
    return 0;
}

static int rdb_close(void *hp)
{
    rdb_h *h = hp;
    rocksdb_close(h->db);
    rdb_free(h);
    return 0;
}

const engine_t engine_rocksdb = {
    .name = "rocksdb",
    .kind = "engine",
    .durability_nosync = "WriteOptions.sync=false (WAL on): WAL record written to the OS per op, no fsync",
    .durability_sync = "WriteOptions.sync=true: WAL fsync per write (concurrent writers are group-committed)",
    .caps = CAP_GET | CAP_PERSIST,
    .version = rdb_version,
    .open = rdb_open,
    .put = rdb_put,
    .get = rdb_get,
    .del = rdb_del,
    .sync = rdb_sync,
    .compact = rdb_compact,
    .close = rdb_close,
};
