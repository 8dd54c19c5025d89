/* core_bench: bitcask's core speed against the limits of the machine, in one
 * process and one run (issue "engine core", section Speed).
 *
 *   core_bench [-n keys] [-r repetitions] [-d dir] [-v value_bytes] [--warm-mb=N]
 *
 * Per repetition, single thread, 16-byte keys, 100-byte values:
 *   bitcask puts/s   keys inserted in random order, BC_SYNC_NONE, C API
 *   bitcask gets/s   random order over the present keys, every value checked
 *   keydir bytes/key RSS growth (/proc/self/statm) across the load / keys
 *   append limit     the same 19+16+100-byte records appended to a file with a
 *                    256 KiB buffer and write(2) (records/s)
 *   pread limit      pread(2) of one record at a random offset, no index, file
 *                    in the page cache (reads/s)
 *   map limit        the same records copied out of a shared memory map of the
 *                    file (reads/s): the path bitcask's gets take on 64-bit
 *                    targets, where data files are mapped
 * Then medians over the repetitions, the ratios puts/append and gets/pread, and
 * the targets with PASS/MISS. */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_BITCASK
#include <bitcask.h>
#endif

#define HDR 19
#define FILE_HDR 16
#define APPEND_BUF (256u * 1024u)

static uint64_t N = 1000000, R = 3, VS = 100, WARM_MB = 512;
static const char *DIR_BASE = "/tmp/bitcask-core_bench";
static uint32_t *perm_put, *perm_get;
static uint8_t *filler;

static double secs_since(uint64_t t0) { return (double)(now_ns() - t0) / 1e9; }

#ifdef HAVE_BITCASK
static void die_bc(int st, const char *what)
{
    fprintf(stderr, "bitcask %s: %s (%s)\n", what, bc_status_str(st), bc_last_error());
    exit(1);
}

/* fills puts/s, gets/s, RSS bytes per key */
static void run_bitcask(const char *dir, double *puts, double *gets, double *mem)
{
    if (fresh_dir(dir) != 0)
        exit(1);
    bc_options *o;
    int st = bc_options_new(&o);
    if (st != BC_OK)
        die_bc(st, "options_new");
    if ((st = bc_options_set_sync(o, BC_SYNC_NONE, 0)) != BC_OK)
        die_bc(st, "options_set_sync");
    bc_db *db;
    if ((st = bc_open(dir, o, &db)) != BC_OK)
        die_bc(st, "open");
    bc_options_free(o);

    uint8_t key[KEY_SIZE];
    uint8_t *val = xmalloc_touched(VS), *exp = xmalloc_touched(VS), *buf = xmalloc_touched(VS + 64);
    uint64_t rss0, rss1;
    read_rss(&rss0, NULL);
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < N; i++) {
        uint32_t idx = perm_put[i];
        make_key(key, idx);
        memcpy(val, filler, VS);
        memcpy(val, &idx, 4);
        if ((st = bc_put(db, key, KEY_SIZE, val, VS)) != BC_OK)
            die_bc(st, "put");
    }
    *puts = (double)N / secs_since(t0);
    read_rss(&rss1, NULL);
    *mem = ((double)rss1 - (double)rss0) / (double)N;

    memcpy(exp, filler, VS);
    t0 = now_ns();
    for (uint64_t i = 0; i < N; i++) {
        uint32_t idx = perm_get[i];
        make_key(key, idx);
        size_t vlen = 0;
        if ((st = bc_get_into(db, key, KEY_SIZE, buf, VS + 64, &vlen)) != BC_OK)
            die_bc(st, "get_into");
        memcpy(exp, &idx, 4);
        if (vlen != VS || memcmp(buf, exp, VS) != 0) {
            fprintf(stderr, "bitcask get: wrong value for key %u\n", idx);
            exit(1);
        }
    }
    *gets = (double)N / secs_since(t0);
    if ((st = bc_close(db)) != BC_OK)
        die_bc(st, "close");
    free(val);
    free(exp);
    free(buf);
    rm_rf(dir);
    malloc_trim(0);
}
#endif

/* The append baseline must not fail quietly. */
static void append_all(int fd, const uint8_t *p, size_t n)
{
    if (write_all(fd, p, n, "core_bench: append baseline") != 0)
        exit(1);
}

static void run_baselines(const char *dir, double *append_rate, double *pread_rate, double *map_rate)
{
    if (fresh_dir(dir) != 0)
        exit(1);
    char path[4400];
    snprintf(path, sizeof path, "%s/append.data", dir);
    size_t rec = HDR + KEY_SIZE + VS;
    uint8_t *bufp = xmalloc_touched(APPEND_BUF);
    uint8_t *val = xmalloc_touched(VS);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "open %s: %s\n", path, strerror(errno));
        exit(1);
    }
    static const uint8_t file_hdr[FILE_HDR] = {'B', 'I', 'T', 'C', 'A', 'S', 'K', 'D', 1};
    append_all(fd, file_hdr, FILE_HDR);

    /* (1) buffered append of N records, keys in the same random order as the puts */
    uint64_t t0 = now_ns();
    size_t used = 0;
    uint32_t ts = (uint32_t)time(NULL), zero = 0, vlen32 = (uint32_t)VS;
    uint16_t klen16 = KEY_SIZE;
    for (uint64_t i = 0; i < N; i++) {
        if (used + rec > APPEND_BUF) {
            append_all(fd, bufp, used);
            used = 0;
        }
        uint8_t *p = bufp + used;
        uint32_t idx = perm_put[i];
        memcpy(p, &zero, 4); /* crc (not computed: plain append) */
        memcpy(p + 4, &ts, 4);
        memcpy(p + 8, &zero, 4);
        memcpy(p + 12, &klen16, 2);
        memcpy(p + 14, &vlen32, 4);
        p[18] = 0;
        make_key(p + HDR, idx);
        memcpy(val, filler, VS);
        memcpy(val, &idx, 4);
        memcpy(p + HDR + KEY_SIZE, val, VS);
        used += rec;
    }
    append_all(fd, bufp, used);
    *append_rate = (double)N / secs_since(t0);

    /* make sure the whole file is in the page cache: read it once */
    for (off_t off = 0;;) {
        ssize_t r = pread(fd, bufp, APPEND_BUF, off);
        if (r <= 0)
            break;
        off += r;
    }

    /* (2) positional reads of whole records at random offsets, no index.
     * Record i of the file holds key perm_put[i]; read records in a random
     * order and check the key and value like the bitcask gets do. */
    uint8_t *exp = xmalloc_touched(VS);
    memcpy(exp, filler, VS);
    uint8_t key[KEY_SIZE];
    t0 = now_ns();
    for (uint64_t i = 0; i < N; i++) {
        uint32_t slot = perm_get[i];
        off_t off = (off_t)(FILE_HDR + (uint64_t)slot * rec);
        ssize_t r = pread(fd, bufp, rec, off);
        if (r != (ssize_t)rec) {
            fprintf(stderr, "pread: short read at %lld\n", (long long)off);
            exit(1);
        }
        uint32_t idx = perm_put[slot];
        make_key(key, idx);
        memcpy(exp, &idx, 4);
        if (memcmp(bufp + HDR, key, KEY_SIZE) != 0 || memcmp(bufp + HDR + KEY_SIZE, exp, VS) != 0) {
            fprintf(stderr, "pread: wrong record at %lld\n", (long long)off);
            exit(1);
        }
    }
    *pread_rate = (double)N / secs_since(t0);

    /* (3) the same reads copied out of a shared map of the file */
    size_t flen = FILE_HDR + (size_t)N * rec;
    const uint8_t *map = mmap(NULL, flen, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        fprintf(stderr, "mmap: %s\n", strerror(errno));
        exit(1);
    }
    t0 = now_ns();
    for (uint64_t i = 0; i < N; i++) {
        uint32_t slot = perm_get[i];
        memcpy(bufp, map + FILE_HDR + (uint64_t)slot * rec, rec);
        uint32_t idx = perm_put[slot];
        make_key(key, idx);
        memcpy(exp, &idx, 4);
        if (memcmp(bufp + HDR, key, KEY_SIZE) != 0 || memcmp(bufp + HDR + KEY_SIZE, exp, VS) != 0) {
            fprintf(stderr, "map: wrong record %u\n", slot);
            exit(1);
        }
    }
    *map_rate = (double)N / secs_since(t0);
    munmap((void *)map, flen);
    close(fd);
    free(bufp);
    free(val);
    free(exp);
    rm_rf(dir);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: core_bench [-n keys (1000000)] [-r repetitions (3)] [-d dir (%s)]\n"
               "                  [-v value_bytes (100)] [--warm-mb=N (512)]\n",
            DIR_BASE);
}

#ifdef HAVE_BITCASK
static const char *verdict(int ok) { return ok ? "PASS" : "MISS"; }
#endif

int main(int argc, char **argv)
{
    static const struct option lo[] = {{"warm-mb", required_argument, 0, 'w'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "n:r:d:v:h", lo, NULL)) != -1) {
        uint64_t *dst = NULL;
        switch (c) {
        case 'n': dst = &N; break;
        case 'r': dst = &R; break;
        case 'v': dst = &VS; break;
        case 'w': dst = &WARM_MB; break;
        case 'd': DIR_BASE = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (dst && parse_count(optarg, dst) != 0) {
            fprintf(stderr, "bad number: %s\n", optarg);
            return 2;
        }
    }
    if (optind < argc || N == 0 || N > 0xffffffffu || R == 0 || VS < 8 || VS > (1u << 20)) {
        usage(stderr);
        return 2;
    }

    perm_put = xmalloc_touched(N * sizeof(uint32_t));
    perm_get = xmalloc_touched(N * sizeof(uint32_t));
    make_permutation(perm_put, N, 1);
    make_permutation(perm_get, N, 2);
    filler = xmalloc(VS);
    fill_random_bytes(filler, VS, 3);
    warm_memory(WARM_MB);

    char db_dir[4200], base_dir[4200];
    snprintf(db_dir, sizeof db_dir, "%s/db", DIR_BASE);
    snprintf(base_dir, sizeof base_dir, "%s/baseline", DIR_BASE);
    if (mkdir_p(DIR_BASE) != 0) {
        fprintf(stderr, "cannot create %s\n", DIR_BASE);
        return 1;
    }

    double *puts = calloc(R, sizeof(double)), *gets = calloc(R, sizeof(double)), *mem = calloc(R, sizeof(double));
    double *app = calloc(R, sizeof(double)), *prd = calloc(R, sizeof(double)), *mpd = calloc(R, sizeof(double));
    size_t rec = HDR + KEY_SIZE + VS;
    char a[32], b[32], d[32], e[32], f[32];
#ifdef HAVE_BITCASK
    printf("core_bench: bitcask %s, N=%llu keys, 16-byte keys, %llu-byte values (%zu-byte records), "
           "BC_SYNC_NONE, %llu repetitions, dir %s\n",
           bc_version(), (unsigned long long)N, (unsigned long long)VS, rec, (unsigned long long)R, DIR_BASE);
#else
    printf("core_bench: bitcask NOT compiled in (build it, then rebuild benches); baselines only. "
           "N=%llu, %zu-byte records, %llu repetitions\n",
           (unsigned long long)N, rec, (unsigned long long)R);
#endif
    printf("%-4s %12s %12s %14s %12s %12s %12s\n", "rep", "puts/s", "gets/s", "keydir B/key", "append/s", "pread/s",
           "map/s");
    for (uint64_t r = 0; r < R; r++) {
#ifdef HAVE_BITCASK
        sync(); /* untimed: no writeback of an earlier phase during this one */
        run_bitcask(db_dir, &puts[r], &gets[r], &mem[r]);
#endif
        sync();
        run_baselines(base_dir, &app[r], &prd[r], &mpd[r]);
        printf("%-4llu %12s %12s %14.1f %12s %12s %12s\n", (unsigned long long)r + 1, fmt_rate(puts[r], a, sizeof a),
               fmt_rate(gets[r], b, sizeof b), mem[r], fmt_rate(app[r], d, sizeof d), fmt_rate(prd[r], e, sizeof e),
               fmt_rate(mpd[r], f, sizeof f));
        fflush(stdout);
    }
    double mem_first = mem[0];
    double mp = median(puts, R), mg = median(gets, R), mm = median(mem, R), ma = median(app, R), mr = median(prd, R),
           mmap_r = median(mpd, R);
    printf("\nmedians over %llu runs\n", (unsigned long long)R);
    printf("  append limit (write, 256 KiB buffer)  %12.0f records/s\n", ma);
    printf("  pread limit (random, page cache)      %12.0f reads/s\n", mr);
    printf("  map limit (random, memcpy from a map) %12.0f reads/s\n", mmap_r);
#ifdef HAVE_BITCASK
    double rp = mp / ma, rg = mg / mr, beyond = mm - KEY_SIZE;
    printf("  bitcask random puts                   %12.0f puts/s   = %5.1f%% of append\n", mp, rp * 100);
    printf("  bitcask random gets                   %12.0f gets/s   = %5.1f%% of pread, %5.1f%% of the map "
           "limit (bitcask reads through maps)\n",
           mg, rg * 100, mg / mmap_r * 100);
    printf("  keydir memory (RSS growth / keys)     %12.1f bytes/key (first run %.1f), beyond key bytes %.1f\n",
           mm, mem_first, beyond);
    printf("\ntargets (issue \"engine core\", Speed)\n");
    printf("  puts >= 25%% of append      %6.1f%%   %s\n", rp * 100, verdict(rp >= 0.25));
    printf("  gets >= 70%% of pread       %6.1f%%   %s\n", rg * 100, verdict(rg >= 0.70));
    printf("  gets >= 70%% of map limit   %6.1f%%   %s   (the same target on the path bitcask reads by)\n",
           mg / mmap_r * 100, verdict(mg / mmap_r >= 0.70));
    printf("  <= 40 bytes/key beyond key %6.1f    %s\n", beyond, verdict(beyond <= 40.0));
    printf("RESULT puts_per_s=%.0f gets_per_s=%.0f append_per_s=%.0f pread_per_s=%.0f map_per_s=%.0f puts_ratio=%.3f "
           "gets_ratio=%.3f gets_map_ratio=%.3f bytes_per_key=%.1f beyond_key=%.1f\n",
           mp, mg, ma, mr, mmap_r, rp, rg, mg / mmap_r, mm, beyond);
#else
    (void)mp;
    (void)mg;
    (void)mm;
    (void)mem_first;
    printf("  bitcask: not compiled in, no ratios\n");
#endif
    rmdir(DIR_BASE);
    free(puts);
    free(gets);
    free(mem);
    free(app);
    free(prd);
    free(mpd);
    free(perm_put);
    free(perm_get);
    free(filler);
    return 0;
}
