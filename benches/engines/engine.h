/* Common adapter interface for db_bench.  One file per engine in this
 * directory defines one `const engine_t engine_<name>`; db_bench.c lists the
 * ones that were compiled in (HAVE_<NAME>). */
#ifndef BENCH_ENGINE_H
#define BENCH_ENGINE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t n;          /* number of keys the run will load (for sizing) */
    size_t key_size;   /* 16 */
    size_t value_size; /* 100 or 10000 */
    int sync;          /* 0: no fsync per write; 1: every put durable on return */
} engine_cfg;

enum {
    CAP_GET = 1 << 0,     /* get() works (the append baseline has no index) */
    CAP_PERSIST = 1 << 1, /* data survives close/reopen (memhash does not) */
};

typedef struct engine {
    const char *name;
    const char *kind;             /* "engine" (a peer or bitcask) or "baseline" */
    const char *durability_nosync; /* what the no-sync runs guarantee */
    const char *durability_sync;   /* what the fillsync runs guarantee */
    unsigned caps;
    const char *(*version)(void);
    /* returns 0 and sets *h, or -1 (after printing a message) */
    int (*open)(void **h, const char *dir, const engine_cfg *cfg);
    /* all of these are safe to call from several threads at once */
    int (*put)(void *h, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl); /* 0 / -1 */
    /* copies into buf: 1 found (*vlen set), 0 absent, -1 error (incl. value larger than cap) */
    int (*get)(void *h, const uint8_t *k, size_t kl, uint8_t *buf, size_t cap, size_t *vlen);
    int (*del)(void *h, const uint8_t *k, size_t kl); /* 0 (deleted or absent) / -1 */
    int (*sync)(void *h);                             /* flush everything to stable storage */
    int (*compact)(void *h);                          /* NULL: not supported */
    int (*close)(void *h);
} engine_t;

#endif
