/* bitcask (this project) through its C API (include/bitcask.h).  No-sync
 * runs: BC_SYNC_NONE.  Fillsync runs: BC_SYNC_ALWAYS (durable before put
 * returns; concurrent writers are group-committed).  Reads use bc_get_into
 * (copy into the caller's buffer).  compact = bc_merge.  "bitcask" is the
 * default options: on 64-bit targets the active file is written through a
 * writable shared map (bc_options_set_write_map), each put copied into the
 * page cache before it returns, the durability of the peers' no-sync runs
 * (a process crash loses nothing). "bitcask-wb0" turns the map off and has
 * no write buffer: the same durability, with a pwrite a put. "bitcask-buf"
 * turns the map off and keeps records in a 256 KiB write buffer (or
 * BITCASK_WRITE_BUFFER bytes when that environment variable is set),
 * which a process crash loses. */
#include "engine.h"

#include <bitcask.h>
#include <stdio.h>
#include <stdlib.h>

static const char *bc_ver(void) { return bc_version(); }

static int fail(int st, const char *what)
{
    fprintf(stderr, "bitcask: %s: %s (%s)\n", what, bc_status_str(st), bc_last_error());
    return -1;
}

/* write_buffer: -1 for the default (or BITCASK_WRITE_BUFFER when set);
 * write_map: -1 for the default. */
static int open_with(void **out, const char *dir, const engine_cfg *cfg, long long write_buffer,
                     int write_map)
{
    bc_options *o = NULL;
    int st = bc_options_new(&o);
    if (st != BC_OK)
        return fail(st, "options_new");
    st = bc_options_set_sync(o, cfg->sync ? BC_SYNC_ALWAYS : BC_SYNC_NONE, 0);
    if (st != BC_OK) {
        bc_options_free(o);
        return fail(st, "options_set_sync");
    }
    const char *wb = getenv("BITCASK_WRITE_BUFFER");
    if (write_buffer < 0 && write_map == 0 && wb != NULL && *wb != '\0')
        write_buffer = (long long)strtoull(wb, NULL, 10);
    if (write_buffer >= 0) {
        st = bc_options_set_write_buffer(o, (size_t)write_buffer);
        if (st != BC_OK) {
            bc_options_free(o);
            return fail(st, "options_set_write_buffer");
        }
    }
    if (write_map >= 0) {
        st = bc_options_set_write_map(o, write_map == 1);
        if (st != BC_OK) {
            bc_options_free(o);
            return fail(st, "options_set_write_map");
        }
    }
    bc_db *db = NULL;
    st = bc_open(dir, o, &db);
    bc_options_free(o);
    if (st != BC_OK)
        return fail(st, "open");
    *out = db;
    return 0;
}

/* The default options: every put copied into the page cache through a
 * shared map before it returns, the peers' guarantee without a system
 * call a put. */
static int bca_open(void **out, const char *dir, const engine_cfg *cfg)
{
    return open_with(out, dir, cfg, -1, -1);
}

/* Every put handed to the OS (one pwrite) before it returns, as the
 * peers' no-sync writes are: a crash of the process loses nothing. */
static int bca_open_wb0(void **out, const char *dir, const engine_cfg *cfg)
{
    return open_with(out, dir, cfg, 0, 0);
}

/* Puts held in a write buffer, written when it fills: a crash of the
 * process loses what it holds. */
static int bca_open_buf(void **out, const char *dir, const engine_cfg *cfg)
{
    return open_with(out, dir, cfg, -1, 0);
}

static int bca_put(void *h, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    int st = bc_put(h, k, kl, v, vl);
    return st == BC_OK ? 0 : fail(st, "put");
}

static int bca_get(void *h, const uint8_t *k, size_t kl, uint8_t *buf, size_t cap, size_t *vlen)
{
    size_t len = 0;
    int st = bc_get_into(h, k, kl, buf, cap, &len);
    if (st == BC_OK) {
        *vlen = len;
        return 1;
    }
    if (st == BC_NOT_FOUND)
        return 0;
    return fail(st, "get_into");
}

static int bca_del(void *h, const uint8_t *k, size_t kl)
{
    int st = bc_delete(h, k, kl);
    return st == BC_OK || st == BC_NOT_FOUND ? 0 : fail(st, "delete");
}

static int bca_sync(void *h)
{
    int st = bc_sync(h);
    return st == BC_OK ? 0 : fail(st, "sync");
}

static int bca_compact(void *h)
{
    int st = bc_merge(h);
    return st == BC_OK ? 0 : fail(st, "merge");
}

static int bca_close(void *h)
{
    int st = bc_close(h);
    return st == BC_OK ? 0 : fail(st, "close");
}

/* The two configurations differ in their open and in what no-sync runs
 * promise. */
#define BITCASK_ENGINE(var, engine_name, open_fn, nosync)                                          \
    const engine_t var = {                                                                         \
        .name = engine_name,                                                                       \
        .kind = "engine",                                                                          \
        .durability_nosync = nosync,                                                               \
        .durability_sync = "BC_SYNC_ALWAYS: on stable storage before put returns (group commit)", \
        .caps = CAP_GET | CAP_PERSIST,                                                             \
        .version = bc_ver,                                                                         \
        .open = open_fn,                                                                           \
        .put = bca_put,                                                                            \
        .get = bca_get,                                                                            \
        .del = bca_del,                                                                            \
        .sync = bca_sync,                                                                          \
        .compact = bca_compact,                                                                    \
        .close = bca_close,                                                                        \
    }

BITCASK_ENGINE(engine_bitcask, "bitcask", bca_open,
               "BC_SYNC_NONE, default options (write map): each put copied into the page cache "
               "through a shared map before it returns (records of 4 KiB and more: pwrite), as the "
               "peers; no fsync");
BITCASK_ENGINE(engine_bitcask_wb0, "bitcask-wb0", bca_open_wb0,
               "BC_SYNC_NONE, write map off, write buffer 0: each put written to the OS (pwrite) "
               "before it returns, as the peers; no fsync");
BITCASK_ENGINE(engine_bitcask_buf, "bitcask-buf", bca_open_buf,
               "BC_SYNC_NONE, write map off: 256 KiB user-space buffer written when full (a process "
               "crash loses what it holds); no fsync");
