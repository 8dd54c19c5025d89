#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void rng_seed(rng_t *r, uint64_t seed)
{
    /* splitmix64 step so that small seeds give good states */
    uint64_t z = seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    r->s = z ? z : 0x2545f4914f6cdd1dull;
}

uint64_t rng_next(rng_t *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dull;
}

uint64_t rng_below(rng_t *r, uint64_t bound)
{
    /* Lemire's multiply-shift; the tiny bias is irrelevant here */
    return (uint64_t)(((unsigned __int128)rng_next(r) * bound) >> 64);
}

void make_permutation(uint32_t *a, size_t n, uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        a[i] = (uint32_t)i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(&r, i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

void fill_random_bytes(uint8_t *buf, size_t len, uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed);
    size_t i = 0;
    while (i + 8 <= len) {
        uint64_t x = rng_next(&r);
        memcpy(buf + i, &x, 8);
        i += 8;
    }
    if (i < len) {
        uint64_t x = rng_next(&r);
        memcpy(buf + i, &x, len - i);
    }
}

void make_key(uint8_t key[KEY_SIZE], uint64_t idx)
{
    for (int i = KEY_SIZE - 1; i >= 0; i--) {
        key[i] = (uint8_t)('0' + idx % 10);
        idx /= 10;
    }
}

void warm_memory(size_t mb)
{
    if (mb == 0)
        return;
    size_t len = mb << 20;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return;
    long pg = sysconf(_SC_PAGESIZE);
    volatile uint8_t *b = p;
    for (size_t off = 0; off < len; off += (size_t)pg)
        b[off] = 1;
    munmap(p, len);
}

void read_rss(uint64_t *rss, uint64_t *anon)
{
    unsigned long size = 0, res = 0, shared = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu %lu %lu", &size, &res, &shared) != 3)
            res = shared = 0;
        fclose(f);
    }
    uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
    if (rss)
        *rss = (uint64_t)res * pg;
    if (anon)
        *anon = (uint64_t)(res >= shared ? res - shared : 0) * pg;
}

void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

void *xmalloc_touched(size_t bytes)
{
    void *p = xmalloc(bytes);
    memset(p, 0, bytes);
    return p;
}

static uint64_t g_du_total;
static int g_du_apparent;

static int du_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)flag;
    (void)ftw;
    if (g_du_apparent) {
        if (S_ISREG(st->st_mode))
            g_du_total += (uint64_t)st->st_size;
    } else {
        g_du_total += (uint64_t)st->st_blocks * 512u;
    }
    return 0;
}

uint64_t du_bytes(const char *path)
{
    g_du_total = 0;
    g_du_apparent = 0;
    nftw(path, du_cb, 32, FTW_PHYS);
    return g_du_total;
}

uint64_t apparent_bytes(const char *path)
{
    g_du_total = 0;
    g_du_apparent = 1;
    nftw(path, du_cb, 32, FTW_PHYS);
    return g_du_total;
}

int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof tmp)
        return -1;
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path) != 0 && errno != ENOENT ? -1 : 0;
    return unlink(path) != 0 && errno != ENOENT ? -1 : 0;
}

int rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(path, rm_cb, 64, FTW_DEPTH | FTW_PHYS);
}

int fresh_dir(const char *path)
{
    if (rm_rf(path) != 0) {
        fprintf(stderr, "cannot remove %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (mkdir_p(path) != 0) {
        fprintf(stderr, "cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Wirth's selection: k-th smallest (0-based), partially reorders a */
static uint32_t select_kth(uint32_t *a, size_t n, size_t k)
{
    ptrdiff_t l = 0, m = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;
    while (l < m) {
        uint32_t x = a[kk];
        ptrdiff_t i = l, j = m;
        do {
            while (a[i] < x)
                i++;
            while (x < a[j])
                j--;
            if (i <= j) {
                uint32_t t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        } while (i <= j);
        if (j < kk)
            l = i;
        if (kk < i)
            m = j;
    }
    return a[kk];
}

lat_stats lat_compute(uint32_t *s, size_t n)
{
    lat_stats st = {0, 0, 0};
    if (n == 0)
        return st;
    uint64_t sum = 0;
    uint32_t mx = 0;
    for (size_t i = 0; i < n; i++) {
        sum += s[i];
        if (s[i] > mx)
            mx = s[i];
    }
    st.mean_us = (double)sum / (double)n / 1000.0;
    st.max_us = mx / 1000.0;
    size_t k = (size_t)((double)n * 0.99);
    if (k >= n)
        k = n - 1;
    st.p99_us = select_kth(s, n, k) / 1000.0;
    return st;
}

int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int parse_count(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (errno || end == s || d < 0)
        return -1;
    if (*end == 'k' || *end == 'K') {
        d *= 1e3;
        end++;
    } else if (*end == 'm' || *end == 'M') {
        d *= 1e6;
        end++;
    }
    if (*end)
        return -1;
    *out = (uint64_t)(d + 0.5);
    return 0;
}

const char *fmt_rate(double ops, char *buf, size_t len)
{
    if (ops >= 1e6)
        snprintf(buf, len, "%.2fM", ops / 1e6);
    else if (ops >= 1e3)
        snprintf(buf, len, "%.1fk", ops / 1e3);
    else
        snprintf(buf, len, "%.0f", ops);
    return buf;
}

int write_all(int fd, const uint8_t *p, size_t n, const char *who)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "%s: write: %s\n", who, strerror(errno));
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}
