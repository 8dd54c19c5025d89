/* db_bench: a db_bench-style benchmark of bitcask against peer engines and
 * baselines through one adapter interface (engines/engine.h).
 *
 *   db_bench [--engines=a,b] [--benchmarks=x,y] [-n keys] [-v value_bytes]
 *            [--reads=N] [--sync-ops=N] [--sync-threads=N] [-d dir]
 *            [--csv=file] [--warm-mb=N] [--quick] [--keep] [--list]
 *
 * Keys are 16 ASCII digits; values are random bytes whose first 8 bytes hold
 * the key index and a generation, so every read is checked.  Every op is
 * timed with one clock_gettime(CLOCK_MONOTONIC) (end of one op = start of the
 * next) into a preallocated array; mean and p99 come from those samples. */
#define _GNU_SOURCE
#include "common.h"
#include "engines/engine.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ engines */

extern const engine_t engine_bitcask, engine_bitcask_wb0, engine_bitcask_buf, engine_lmdb, engine_leveldb, engine_rocksdb, engine_sqlite,
    engine_tkrzw, engine_kyotocabinet, engine_append, engine_memhash, engine_fileperkey;

typedef struct {
    const char *name;
    const engine_t *e; /* NULL: not compiled in */
    const char *needs;
} engine_slot;

static const engine_slot g_engines[] = {
#ifdef HAVE_BITCASK
    {"bitcask", &engine_bitcask, NULL},
    {"bitcask-wb0", &engine_bitcask_wb0, NULL},
    {"bitcask-buf", &engine_bitcask_buf, NULL},
#else
    {"bitcask", NULL, "include/bitcask.h + target/release/libbitcask.so (cargo build --release)"},
    {"bitcask-wb0", NULL, "include/bitcask.h + target/release/libbitcask.so (cargo build --release)"},
    {"bitcask-buf", NULL, "include/bitcask.h + target/release/libbitcask.so (cargo build --release)"},
#endif
#ifdef HAVE_LMDB
    {"lmdb", &engine_lmdb, NULL},
#else
    {"lmdb", NULL, "apt package liblmdb-dev"},
#endif
#ifdef HAVE_LEVELDB
    {"leveldb", &engine_leveldb, NULL},
#else
    {"leveldb", NULL, "apt package libleveldb-dev"},
#endif
#ifdef HAVE_ROCKSDB
    {"rocksdb", &engine_rocksdb, NULL},
#else
    {"rocksdb", NULL, "apt package librocksdb-dev"},
#endif
#ifdef HAVE_SQLITE
    {"sqlite", &engine_sqlite, NULL},
#else
    {"sqlite", NULL, "apt package libsqlite3-dev"},
#endif
#ifdef HAVE_TKRZW
    {"tkrzw", &engine_tkrzw, NULL},
#else
    {"tkrzw", NULL, "apt package libtkrzw-dev"},
#endif
#ifdef HAVE_KYOTOCABINET
    {"kyotocabinet", &engine_kyotocabinet, NULL},
#else
    {"kyotocabinet", NULL, "apt package libkyotocabinet-dev"},
#endif
    {"append", &engine_append, NULL},
    {"memhash", &engine_memhash, NULL},
    {"fileperkey", &engine_fileperkey, NULL},
};
#define N_ENGINES (sizeof g_engines / sizeof g_engines[0])

static const char *DEFAULT_BENCHMARKS =
    "fillseq,fillrandom,overwrite,compact,reopen,readrandom,readmissing,readwhilewriting,deleterandom,fillsync";

/* ------------------------------------------------------------------ config */

static struct {
    uint64_t n;
    uint64_t value_size;
    uint64_t reads; /* 0 = n */
    uint64_t sync_ops;
    uint64_t sync_threads;
    uint64_t seed;
    uint64_t warm_mb;
    const char *dir;
    const char *csv;
    const char *engines;
    const char *benchmarks;
    int keep;
} opt = {
    .n = 1000000,
    .value_size = 100,
    .reads = 0,
    .sync_ops = 20000,
    .sync_threads = 8,
    .seed = 42,
    .warm_mb = 256,
    .dir = "/tmp/bitcask-db_bench",
    .csv = NULL,
    .engines = NULL,
    .benchmarks = NULL,
    .keep = 0,
};

/* key-index orders, allocated once and pre-touched */
static uint32_t *perm_fill, *perm_over, *perm_read, *perm_del;
static FILE *g_csv;
static int g_failed;

/* ------------------------------------------------------------------ output */

static void csv_text(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_row(const char *engine, const char *row, const char *name, double value, uint64_t ops,
                    double secs, double mean_us, double p99_us, const char *text)
{
    if (!g_csv)
        return;
    fprintf(g_csv, "%s,%llu,%llu,%s,%s,%.6g,%llu,%.6f,%.4f,%.4f,", engine, (unsigned long long)opt.value_size,
            (unsigned long long)opt.n, row, name, value, (unsigned long long)ops, secs, mean_us, p99_us);
    csv_text(g_csv, text ? text : "");
    fputc('\n', g_csv);
    fflush(g_csv);
}

static void report_op(const char *engine, const char *workload, uint64_t ops, double secs, lat_stats ls,
                      const char *note)
{
    char rate[32];
    double ops_s = secs > 0 ? (double)ops / secs : 0;
    printf("  %-24s %10llu ops %8.3f s %9s ops/s   mean %9.2f us   p99 %9.2f us%s%s\n", workload,
           (unsigned long long)ops, secs, fmt_rate(ops_s, rate, sizeof rate), ls.mean_us, ls.p99_us,
           note ? "   " : "", note ? note : "");
    fflush(stdout);
    csv_row(engine, "op", workload, ops_s, ops, secs, ls.mean_us, ls.p99_us, note);
}

static void report_metric(const char *engine, const char *name, double value, const char *unit)
{
    printf("  %-24s %14.2f %s\n", name, value, unit);
    fflush(stdout);
    csv_row(engine, "metric", name, value, 0, 0, 0, 0, unit);
}

static void report_skip(const char *engine, const char *workload, const char *why)
{
    printf("  %-24s skipped: %s\n", workload, why);
    fflush(stdout);
    csv_row(engine, "skip", workload, 0, 0, 0, 0, 0, why);
}

/* ------------------------------------------------------------------ jobs */

typedef enum { OP_PUT, OP_GET, OP_GET_MISSING, OP_DEL } op_kind;

typedef struct {
    const engine_t *e;
    void *h;
    op_kind op;
    const uint32_t *idx; /* NULL: sequential 0..count-1 */
    uint64_t count;      /* ops to do (or the index cycle length in loop mode) */
    uint32_t gen;
    uint32_t *lat; /* capacity lat_cap */
    uint64_t lat_cap;
    volatile int *stop; /* loop mode: run until *stop */
    volatile int *done_flag; /* set when this job finishes */
    pthread_barrier_t *barrier;
    /* results */
    uint64_t ops, errors, missing, bad;
    uint64_t t0, t1;
} job_t;

static void *run_job(void *arg)
{
    job_t *j = arg;
    size_t vs = (size_t)opt.value_size;
    uint8_t *val = xmalloc_touched(vs < 8 ? 8 : vs);
    uint8_t *rbuf = xmalloc_touched(vs + 64);
    /* The same bytes in every job, so that a reader can check a whole
     * value: bytes 0..3 the key index, 4..7 the generation, then these. */
    fill_random_bytes(val, vs, opt.seed);
    uint8_t key[KEY_SIZE];
    if (j->barrier)
        pthread_barrier_wait(j->barrier);
    uint64_t t_prev = now_ns();
    j->t0 = t_prev;
    uint64_t i = 0;
    for (;; i++) {
        if (j->stop) {
            if (*j->stop)
                break;
        } else if (i >= j->count) {
            break;
        }
        uint64_t pos = j->count ? i % j->count : i;
        uint32_t idx = j->idx ? j->idx[pos] : (uint32_t)pos;
        make_key(key, idx);
        /* Absent keys between present ones ('x' sorts after the digits),
         * so that ordered engines cannot answer from their key range. */
        if (j->op == OP_GET_MISSING)
            key[KEY_SIZE - 1] = 'x';
        int rc;
        switch (j->op) {
        case OP_PUT:
            memcpy(val, &idx, 4);
            memcpy(val + 4, &j->gen, 4);
            rc = j->e->put(j->h, key, KEY_SIZE, val, vs);
            if (rc != 0)
                j->errors++;
            break;
        case OP_GET: {
            size_t vlen = 0;
            rc = j->e->get(j->h, key, KEY_SIZE, rbuf, vs + 64, &vlen);
            if (rc < 0)
                j->errors++;
            else if (rc == 0)
                j->missing++;
            else if (vlen != vs || memcmp(rbuf, &idx, 4) != 0 ||
                     (vs > 8 && memcmp(rbuf + 8, val + 8, vs - 8) != 0))
                j->bad++;
            break;
        }
        case OP_GET_MISSING: {
            size_t vlen = 0;
            rc = j->e->get(j->h, key, KEY_SIZE, rbuf, vs + 64, &vlen);
            if (rc < 0)
                j->errors++;
            else if (rc > 0)
                j->bad++;
            break;
        }
        case OP_DEL:
            rc = j->e->del(j->h, key, KEY_SIZE);
            if (rc != 0)
                j->errors++;
            break;
        }
        uint64_t t = now_ns();
        j->lat[i % j->lat_cap] = lat_clamp(t - t_prev);
        t_prev = t;
        if (j->errors > 10)
            break;
    }
    j->t1 = t_prev;
    j->ops = i;
    if (j->done_flag)
        *j->done_flag = 1;
    free(val);
    free(rbuf);
    return NULL;
}

/* ------------------------------------------------------------------ per-engine state */

typedef struct {
    const engine_t *e;
    void *h;
    char dir[4096];
    engine_cfg cfg;
    int loaded; /* keys 0..n-1 present (nosync handle) */
    uint32_t *lat_a, *lat_b; /* latency buffers */
    uint64_t lat_cap;
} ctx_t;

static int ctx_close(ctx_t *c)
{
    int rc = 0;
    if (c->h) {
        rc = c->e->close(c->h);
        c->h = NULL;
    }
    /* hand freed heap memory back to the OS, so that the RSS growth measured
     * over the next fill is not hidden by reuse of this engine's old heap */
    malloc_trim(0);
    return rc;
}

static int ctx_open_fresh(ctx_t *c, int sync)
{
    if (ctx_close(c) != 0)
        return -1;
    if (fresh_dir(c->dir) != 0)
        return -1;
    c->cfg.sync = sync;
    c->loaded = 0;
    if (c->e->open(&c->h, c->dir, &c->cfg) != 0) {
        fprintf(stderr, "%s: open failed\n", c->e->name);
        c->h = NULL;
        return -1;
    }
    return 0;
}

static int check_job(ctx_t *c, const char *workload, job_t *j)
{
    if (j->errors || j->bad || (j->op == OP_GET && j->missing)) {
        fprintf(stderr, "%s %s: %llu errors, %llu wrong values, %llu missing keys\n", c->e->name, workload,
                (unsigned long long)j->errors, (unsigned long long)j->bad, (unsigned long long)j->missing);
        g_failed = 1;
        return -1;
    }
    return 0;
}

/* run one job in this thread and report it */
static int timed(ctx_t *c, const char *workload, op_kind op, const uint32_t *idx, uint64_t count,
                 uint32_t gen)
{
    job_t j = {.e = c->e, .h = c->h, .op = op, .idx = idx, .count = count, .gen = gen,
               .lat = c->lat_a, .lat_cap = c->lat_cap};
    run_job(&j);
    double secs = (double)(j.t1 - j.t0) / 1e9;
    uint64_t nlat = j.ops < c->lat_cap ? j.ops : c->lat_cap;
    lat_stats ls = lat_compute(c->lat_a, nlat);
    int bad = check_job(c, workload, &j);
    report_op(c->e->name, workload, j.ops, secs, ls, bad ? "ERRORS" : NULL);
    return bad;
}

static int ensure_loaded(ctx_t *c)
{
    if (c->loaded && c->h && !c->cfg.sync)
        return 0;
    printf("  (loading %llu keys in random order, untimed)\n", (unsigned long long)opt.n);
    if (ctx_open_fresh(c, 0) != 0)
        return -1;
    job_t j = {.e = c->e, .h = c->h, .op = OP_PUT, .idx = perm_fill, .count = opt.n, .lat = c->lat_a,
               .lat_cap = c->lat_cap};
    run_job(&j);
    if (check_job(c, "load", &j) != 0)
        return -1;
    c->loaded = 1;
    return 0;
}

static void disk_metric(ctx_t *c, const char *name)
{
    if (c->e->sync(c->h) != 0)
        fprintf(stderr, "%s: sync failed\n", c->e->name);
    report_metric(c->e->name, name, (double)du_bytes(c->dir), "bytes");
}

static int bench_fill(ctx_t *c, const char *name, const uint32_t *order)
{
    if (ctx_open_fresh(c, 0) != 0)
        return -1;
    uint64_t rss0, anon0, rss1, anon1;
    read_rss(&rss0, &anon0);
    int rc = timed(c, name, OP_PUT, order, opt.n, 0);
    read_rss(&rss1, &anon1);
    if (rc == 0)
        c->loaded = 1;
    if (order) { /* fillrandom: memory and disk */
        double n = (double)opt.n;
        report_metric(c->e->name, "rss_per_key", ((double)rss1 - (double)rss0) / n, "bytes/key");
        report_metric(c->e->name, "anon_rss_per_key", ((double)anon1 - (double)anon0) / n, "bytes/key");
        disk_metric(c, "disk_after_fillrandom");
    }
    return rc;
}

static int bench_rww(ctx_t *c)
{
    if (ensure_loaded(c) != 0)
        return -1;
    uint64_t reads = opt.reads ? opt.reads : opt.n;
    volatile int reader_done = 0;
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    job_t r = {.e = c->e, .h = c->h, .op = OP_GET, .idx = perm_read, .count = reads, .lat = c->lat_a,
               .lat_cap = c->lat_cap, .done_flag = &reader_done, .barrier = &bar};
    job_t w = {.e = c->e, .h = c->h, .op = OP_PUT, .idx = perm_over, .count = opt.n, .gen = 2, .lat = c->lat_b,
               .lat_cap = c->lat_cap, .stop = &reader_done, .barrier = &bar};
    pthread_t tr, tw;
    pthread_create(&tw, NULL, run_job, &w);
    pthread_create(&tr, NULL, run_job, &r);
    pthread_join(tr, NULL);
    pthread_join(tw, NULL);
    pthread_barrier_destroy(&bar);
    int bad = check_job(c, "readwhilewriting:read", &r) | check_job(c, "readwhilewriting:write", &w);
    double rs = (double)(r.t1 - r.t0) / 1e9, ws = (double)(w.t1 - w.t0) / 1e9;
    lat_stats lr = lat_compute(c->lat_a, r.ops < c->lat_cap ? r.ops : c->lat_cap);
    lat_stats lw = lat_compute(c->lat_b, w.ops < c->lat_cap ? w.ops : c->lat_cap);
    report_op(c->e->name, "readwhilewriting:read", r.ops, rs, lr, bad ? "ERRORS" : NULL);
    report_op(c->e->name, "readwhilewriting:write", w.ops, ws, lw, bad ? "ERRORS" : NULL);
    return bad;
}

static int bench_fillsync(ctx_t *c, uint64_t threads)
{
    char name[32];
    snprintf(name, sizeof name, "fillsync%llu", (unsigned long long)threads);
    if (ctx_open_fresh(c, 1) != 0)
        return -1;
    uint64_t total = opt.sync_ops;
    if (total > opt.n)
        total = opt.n;
    uint64_t per = total / threads;
    if (per == 0)
        per = 1;
    job_t *jobs = calloc(threads, sizeof *jobs);
    pthread_t *tids = calloc(threads, sizeof *tids);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads);
    uint64_t lat_per = c->lat_cap / threads;
    for (uint64_t t = 0; t < threads; t++) {
        jobs[t] = (job_t){.e = c->e, .h = c->h, .op = OP_PUT, .idx = perm_fill + t * per, .count = per,
                          .lat = c->lat_a + t * lat_per, .lat_cap = lat_per, .barrier = &bar};
        pthread_create(&tids[t], NULL, run_job, &jobs[t]);
    }
    uint64_t ops = 0, t0 = UINT64_MAX, t1 = 0;
    int bad = 0;
    for (uint64_t t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        ops += jobs[t].ops;
        if (jobs[t].t0 < t0)
            t0 = jobs[t].t0;
        if (jobs[t].t1 > t1)
            t1 = jobs[t].t1;
        bad |= check_job(c, name, &jobs[t]);
    }
    pthread_barrier_destroy(&bar);
    /* compact the per-thread latency slices into one array */
    uint64_t nl = 0;
    for (uint64_t t = 0; t < threads; t++) {
        uint64_t k = jobs[t].ops < lat_per ? jobs[t].ops : lat_per;
        memmove(c->lat_a + nl, jobs[t].lat, k * sizeof(uint32_t));
        nl += k;
    }
    lat_stats ls = lat_compute(c->lat_a, nl);
    report_op(c->e->name, name, ops, (double)(t1 - t0) / 1e9, ls, bad ? "ERRORS" : NULL);
    free(jobs);
    free(tids);
    c->loaded = 0;
    return bad;
}

static int run_benchmark(ctx_t *c, const char *b)
{
    const engine_t *e = c->e;
    uint64_t reads = opt.reads ? opt.reads : opt.n;
    if (!strcmp(b, "fillseq"))
        return bench_fill(c, "fillseq", NULL);
    if (!strcmp(b, "fillrandom"))
        return bench_fill(c, "fillrandom", perm_fill);
    if (!strcmp(b, "overwrite")) {
        if (ensure_loaded(c) != 0)
            return -1;
        int rc = timed(c, "overwrite", OP_PUT, perm_over, opt.n, 1);
        disk_metric(c, "disk_after_overwrite");
        return rc;
    }
    if (!strcmp(b, "compact")) {
        if (!e->compact) {
            report_skip(e->name, "compact", "engine has no compaction call");
            return 0;
        }
        if (ensure_loaded(c) != 0)
            return -1;
        uint64_t t0 = now_ns();
        int rc = e->compact(c->h);
        uint64_t t1 = now_ns();
        if (rc != 0) {
            g_failed = 1;
            return -1;
        }
        report_metric(e->name, "compact_seconds", (double)(t1 - t0) / 1e9, "s");
        disk_metric(c, "disk_after_compact");
        return 0;
    }
    if (!strcmp(b, "reopen")) {
        if (!(e->caps & CAP_PERSIST)) {
            report_skip(e->name, "reopen", "engine keeps nothing on disk");
            return 0;
        }
        if (ensure_loaded(c) != 0)
            return -1;
        if (ctx_close(c) != 0) {
            g_failed = 1;
            return -1;
        }
        uint64_t t0 = now_ns();
        int rc = e->open(&c->h, c->dir, &c->cfg);
        uint64_t t1 = now_ns();
        if (rc != 0) {
            c->h = NULL;
            c->loaded = 0;
            g_failed = 1;
            return -1;
        }
        report_metric(e->name, "open_seconds", (double)(t1 - t0) / 1e9, "s");
        if (e->caps & CAP_GET) { /* the data must still be there */
            uint8_t key[KEY_SIZE], buf[64];
            size_t vlen;
            make_key(key, perm_fill[0]);
            size_t cap = sizeof buf;
            uint8_t *big = NULL;
            if (opt.value_size + 64 > cap) {
                big = xmalloc(opt.value_size + 64);
                cap = opt.value_size + 64;
            }
            if (e->get(c->h, key, KEY_SIZE, big ? big : buf, cap, &vlen) != 1) {
                fprintf(stderr, "%s: key missing after reopen\n", e->name);
                g_failed = 1;
            }
            free(big);
        }
        return 0;
    }
    if (!strcmp(b, "readrandom") || !strcmp(b, "readmissing") || !strcmp(b, "readwhilewriting")) {
        if (!(e->caps & CAP_GET)) {
            report_skip(e->name, b, "engine has no index (no reads)");
            return 0;
        }
        if (!strcmp(b, "readwhilewriting"))
            return bench_rww(c);
        if (ensure_loaded(c) != 0)
            return -1;
        if (!strcmp(b, "readrandom"))
            return timed(c, "readrandom", OP_GET, perm_read, reads, 0);
        return timed(c, "readmissing", OP_GET_MISSING, perm_read, reads, 0);
    }
    if (!strcmp(b, "deleterandom")) {
        if (ensure_loaded(c) != 0)
            return -1;
        int rc = timed(c, "deleterandom", OP_DEL, perm_del, opt.n, 0);
        c->loaded = 0;
        return rc;
    }
    if (!strcmp(b, "fillsync")) {
        int rc = bench_fillsync(c, 1);
        if (opt.sync_threads > 1)
            rc |= bench_fillsync(c, opt.sync_threads);
        return rc;
    }
    if (!strcmp(b, "fillsync1"))
        return bench_fillsync(c, 1);
    if (!strncmp(b, "fillsync", 8)) {
        uint64_t t = strtoull(b + 8, NULL, 10);
        return bench_fillsync(c, t ? t : opt.sync_threads);
    }
    fprintf(stderr, "unknown benchmark '%s'\n", b);
    g_failed = 1;
    return -1;
}

static void run_engine(const engine_t *e)
{
    ctx_t c;
    memset(&c, 0, sizeof c);
    c.e = e;
    snprintf(c.dir, sizeof c.dir, "%s/%s", opt.dir, e->name);
    c.cfg.n = opt.n;
    c.cfg.key_size = KEY_SIZE;
    c.cfg.value_size = opt.value_size;
    uint64_t reads = opt.reads ? opt.reads : opt.n;
    c.lat_cap = opt.n > reads ? opt.n : reads;
    if (c.lat_cap < opt.sync_ops)
        c.lat_cap = opt.sync_ops;
    c.lat_a = xmalloc_touched(c.lat_cap * sizeof(uint32_t));
    c.lat_b = xmalloc_touched(c.lat_cap * sizeof(uint32_t));

    printf("== %s %s (%s)  n=%llu key=%d value=%llu\n", e->name, e->version(), e->kind, (unsigned long long)opt.n,
           KEY_SIZE, (unsigned long long)opt.value_size);
    printf("   durability (no-sync runs): %s\n", e->durability_nosync);
    printf("   durability (fillsync runs): %s\n", e->durability_sync);
    csv_row(e->name, "info", "version", 0, 0, 0, 0, 0, e->version());
    csv_row(e->name, "info", "kind", 0, 0, 0, 0, 0, e->kind);
    csv_row(e->name, "info", "durability_nosync", 0, 0, 0, 0, 0, e->durability_nosync);
    csv_row(e->name, "info", "durability_sync", 0, 0, 0, 0, 0, e->durability_sync);

    char *list = strdup(opt.benchmarks ? opt.benchmarks : DEFAULT_BENCHMARKS);
    char *save = NULL;
    for (char *b = strtok_r(list, ",", &save); b; b = strtok_r(NULL, ",", &save)) {
        if (!*b)
            continue;
        /* untimed: write back what earlier workloads left dirty in the page
         * cache, so it does not compete with this one (fsyncs above all) */
        sync();
        if (run_benchmark(&c, b) != 0 && !c.h && strcmp(b, "reopen") != 0) {
            /* could not even open: the rest would fail the same way */
            fprintf(stderr, "%s: giving up on this engine\n", e->name);
            g_failed = 1;
            break;
        }
    }
    free(list);
    if (ctx_close(&c) != 0) {
        fprintf(stderr, "%s: close failed\n", e->name);
        g_failed = 1;
    }
    if (!opt.keep)
        rm_rf(c.dir);
    free(c.lat_a);
    free(c.lat_b);
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: db_bench [options]\n"
            "  --engines=LIST      comma-separated engines (default: all compiled in; --list shows them)\n"
            "  --benchmarks=LIST   default: %s\n"
            "                      also: fillsync1, fillsyncN (N threads)\n"
            "  -n, --num=N         keys (default 1000000; --quick: 100000)\n"
            "  -v, --value-size=N  value bytes (default 100)\n"
            "      --reads=N       ops for readrandom/readmissing/readwhilewriting (default: n)\n"
            "      --sync-ops=N    puts in each fillsync run (default 20000; --quick: 2000)\n"
            "      --sync-threads=N threads of the second fillsync run (default 8)\n"
            "  -d, --dir=DIR       scratch directory (default /tmp/bitcask-db_bench)\n"
            "      --csv=FILE      append result rows to FILE (header written when new)\n"
            "      --warm-mb=N     touch and free N MiB before starting (default 256)\n"
            "      --seed=N        key-order seed (default 42)\n"
            "      --quick         small sizes for a smoke run\n"
            "      --keep          keep the database directories\n"
            "      --list          list engines (compiled in or not) and exit\n",
            DEFAULT_BENCHMARKS);
}

static int want_engine(const char *list, const char *name)
{
    if (!list)
        return 1;
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l == len && !strncmp(p, name, len))
            return 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

static int parse_num(const char *s, uint64_t *out, const char *flag)
{
    if (parse_count(s, out) != 0) {
        fprintf(stderr, "bad value for %s: %s\n", flag, s);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    enum { O_ENGINES = 256, O_BENCH, O_READS, O_SYNCOPS, O_SYNCTH, O_CSV, O_WARM, O_SEED, O_QUICK, O_KEEP, O_LIST };
    static const struct option lo[] = {
        {"engines", required_argument, 0, O_ENGINES},   {"benchmarks", required_argument, 0, O_BENCH},
        {"num", required_argument, 0, 'n'},             {"value-size", required_argument, 0, 'v'},
        {"reads", required_argument, 0, O_READS},       {"sync-ops", required_argument, 0, O_SYNCOPS},
        {"sync-threads", required_argument, 0, O_SYNCTH}, {"dir", required_argument, 0, 'd'},
        {"csv", required_argument, 0, O_CSV},           {"warm-mb", required_argument, 0, O_WARM},
        {"seed", required_argument, 0, O_SEED},         {"quick", no_argument, 0, O_QUICK},
        {"keep", no_argument, 0, O_KEEP},               {"list", no_argument, 0, O_LIST},
        {"help", no_argument, 0, 'h'},                  {0, 0, 0, 0},
    };
    int n_set = 0, sync_set = 0, quick = 0, list = 0, c;
    while ((c = getopt_long(argc, argv, "n:v:d:h", lo, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_num(optarg, &opt.n, "-n"))
                return 2;
            n_set = 1;
            break;
        case 'v':
            if (parse_num(optarg, &opt.value_size, "-v"))
                return 2;
            break;
        case 'd':
            opt.dir = optarg;
            break;
        case O_ENGINES:
            opt.engines = optarg;
            break;
        case O_BENCH:
            opt.benchmarks = optarg;
            break;
        case O_READS:
            if (parse_num(optarg, &opt.reads, "--reads"))
                return 2;
            break;
        case O_SYNCOPS:
            if (parse_num(optarg, &opt.sync_ops, "--sync-ops"))
                return 2;
            sync_set = 1;
            break;
        case O_SYNCTH:
            if (parse_num(optarg, &opt.sync_threads, "--sync-threads"))
                return 2;
            break;
        case O_CSV:
            opt.csv = optarg;
            break;
        case O_WARM:
            if (parse_num(optarg, &opt.warm_mb, "--warm-mb"))
                return 2;
            break;
        case O_SEED:
            if (parse_num(optarg, &opt.seed, "--seed"))
                return 2;
            break;
        case O_QUICK:
            quick = 1;
            break;
        case O_KEEP:
            opt.keep = 1;
            break;
        case O_LIST:
            list = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (list) {
        for (size_t i = 0; i < N_ENGINES; i++)
            printf("%-14s %s\n", g_engines[i].name,
                   g_engines[i].e ? g_engines[i].e->kind : "(not compiled in)");
        return 0;
    }
    if (quick) {
        if (!n_set)
            opt.n = 100000;
        if (!sync_set)
            opt.sync_ops = 2000;
    }
    if (opt.n == 0 || opt.n > 0xffffffffu || opt.value_size < 8 || opt.sync_threads == 0 ||
        opt.sync_threads > 1024) {
        fprintf(stderr, "need 1 <= n < 2^32, value size >= 8, 1 <= sync-threads <= 1024\n");
        return 2;
    }
    if (opt.engines) { /* names must exist */
        char *l = strdup(opt.engines), *save = NULL;
        for (char *t = strtok_r(l, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            int ok = 0;
            for (size_t i = 0; i < N_ENGINES; i++)
                ok |= !strcmp(t, g_engines[i].name);
            if (!ok) {
                fprintf(stderr, "unknown engine '%s' (--list shows them)\n", t);
                free(l);
                return 2;
            }
        }
        free(l);
    }

    if (opt.csv) {
        struct stat st;
        int fresh = stat(opt.csv, &st) != 0 || st.st_size == 0;
        g_csv = fopen(opt.csv, "a");
        if (!g_csv) {
            fprintf(stderr, "cannot open %s: %s\n", opt.csv, strerror(errno));
            return 2;
        }
        if (fresh)
            fprintf(g_csv, "engine,value_size,n,row,name,value,ops,seconds,mean_us,p99_us,text\n");
    }

    /* everything the harness needs is allocated and touched before any
     * measurement, then memory is warmed */
    uint64_t reads = opt.reads ? opt.reads : opt.n;
    size_t n = (size_t)opt.n;
    perm_fill = xmalloc_touched(n * sizeof(uint32_t));
    perm_over = xmalloc_touched(n * sizeof(uint32_t));
    perm_del = xmalloc_touched(n * sizeof(uint32_t));
    perm_read = xmalloc_touched((size_t)(reads > opt.n ? reads : opt.n) * sizeof(uint32_t));
    make_permutation(perm_fill, n, opt.seed * 4 + 1);
    make_permutation(perm_over, n, opt.seed * 4 + 2);
    make_permutation(perm_del, n, opt.seed * 4 + 3);
    make_permutation(perm_read, n, opt.seed * 4 + 4);
    for (uint64_t i = n; i < reads; i++) /* more reads than keys: repeat the order */
        perm_read[i] = perm_read[i % n];
    warm_memory((size_t)opt.warm_mb);

    if (mkdir_p(opt.dir) != 0) {
        fprintf(stderr, "cannot create %s: %s\n", opt.dir, strerror(errno));
        return 2;
    }
    int ran = 0;
    for (size_t i = 0; i < N_ENGINES; i++) {
        const engine_slot *s = &g_engines[i];
        if (!want_engine(opt.engines, s->name))
            continue;
        if (!s->e) {
            printf("== %s: skipped, not compiled in (needs %s)\n", s->name, s->needs);
            csv_row(s->name, "skip", "all", 0, 0, 0, 0, 0, "not compiled in");
            continue;
        }
        run_engine(s->e);
        ran++;
    }
    if (g_csv)
        fclose(g_csv);
    if (!opt.keep)
        rmdir(opt.dir); /* only if empty */
    free(perm_fill);
    free(perm_over);
    free(perm_del);
    free(perm_read);
    if (!ran)
        printf("no engine ran\n");
    return g_failed ? 1 : 0;
}
