/* Shared helpers for core_bench and db_bench: clocks, RNG, key/value
 * formatting, memory warming, RSS and disk-usage probes, latency stats. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* ---- time ---- */
uint64_t now_ns(void); /* CLOCK_MONOTONIC */

/* ---- random numbers (xorshift64*, deterministic per seed) ---- */
typedef struct { uint64_t s; } rng_t;
void rng_seed(rng_t *r, uint64_t seed);
uint64_t rng_next(rng_t *r);
/* uniform in [0, bound) */
uint64_t rng_below(rng_t *r, uint64_t bound);
/* a[i] = i for i < n, then Fisher-Yates shuffle */
void make_permutation(uint32_t *a, size_t n, uint64_t seed);
void fill_random_bytes(uint8_t *buf, size_t len, uint64_t seed);

/* ---- keys: 16 ASCII decimal digits, zero padded, so byte order == numeric order ---- */
#define KEY_SIZE 16
void make_key(uint8_t key[KEY_SIZE], uint64_t idx);

/* ---- memory ---- */
/* Touch `mb` MiB of fresh anonymous memory and unmap it again, so the VM has
 * backed guest pages before the measured phase (first touch of a page is
 * expensive on this kind of VM). */
void warm_memory(size_t mb);
/* Resident set size and its anonymous part (resident - shared) from
 * /proc/self/statm, in bytes.  Either pointer may be NULL. */
void read_rss(uint64_t *rss, uint64_t *anon);
/* Allocate and pre-touch an array (abort on failure). */
void *xmalloc_touched(size_t bytes);
void *xmalloc(size_t bytes);

/* ---- files ---- */
/* Allocated bytes (st_blocks*512, like du) under a path, recursively. */
uint64_t du_bytes(const char *path);
/* Apparent size (st_size sum). */
uint64_t apparent_bytes(const char *path);
int mkdir_p(const char *path);
int rm_rf(const char *path);
/* rm -rf then mkdir -p; returns 0 on success */
int fresh_dir(const char *path);

/* ---- latency statistics over a uint32_t ns sample array ---- */
typedef struct {
    double mean_us;
    double p99_us;
    double max_us;
} lat_stats;
/* Destructive (partially reorders samples). */
lat_stats lat_compute(uint32_t *samples, size_t n);
static inline uint32_t lat_clamp(uint64_t ns) { return ns > 0xffffffffu ? 0xffffffffu : (uint32_t)ns; }

/* ---- misc ---- */
int cmp_double(const void *a, const void *b);
double median(double *v, size_t n); /* sorts v */
/* parse "1000000", "1e6", "100k", "1M" */
int parse_count(const char *s, uint64_t *out);
const char *fmt_rate(double ops, char *buf, size_t len); /* "1.23M" */

/* write(2) all n bytes, retrying short writes and EINTR; 0, or -1 with
 * errno set (and a message on stderr naming `who`). */
int write_all(int fd, const uint8_t *p, size_t n, const char *who);

#endif
