/*
 * keydir_floor: how fast can any program build a keydir from hint files on
 * this machine?  The floor under `open_time`'s "open from hints" figure.
 *
 *     make -C benches build/keydir_floor && benches/build/keydir_floor [runs] [dir]
 *
 * Writes 10,000,000 hint-like entries (16-byte keys, 100-byte values) in 6
 * files, each file's entries split into 64 partitions by hash and sorted by
 * hash within one, as bitcask's hints are: `hash u32 | offset u32 | flags u8
 * | key_len | value_len | timestamp` (LEB128) `| key`, 29 bytes an entry.
 * Then, in one process, alternating, `runs` times each:
 *   - reads the files to the end (pread, 1 MiB at a time): the `cat` bound;
 *   - builds a keydir of them on 2 threads with the least work a keydir can
 *     do: each thread owns 32 partitions and, per partition, sizes a table of
 *     16-byte slots once (at most 2/3 full), reads that partition of every
 *     file and places each entry by linear probing, appending
 *     `value_len | key_len | key` to an arena.  No CRC, no checks, no key
 *     compare, no locks: everything bitcask's loader does beyond this is
 *     left out;
 *   - the same with the table and arena memory faulted in before the clock
 *     starts, which leaves the CPU's share of the work.
 * The memory is fresh from the kernel for each build, as it is for an open.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEYS 10000000u
#define FILES 6
#define PARTS 64
#define THREADS 2
#define ENTRY 29
#define HUGE (2u << 20)

typedef struct {
    uint64_t meta; /* arena position + 1, hash bits above */
    uint32_t file, offset;
} slot;

static int fds[FILES];
static uint64_t part_start[FILES][PARTS + 1];
static uint32_t part_count[FILES][PARTS];

typedef struct {
    slot *table[PARTS];
    uint8_t *arena[PARTS];
    size_t table_bytes[PARTS], arena_bytes[PARTS];
} memory;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* Fresh anonymous memory on huge pages where the kernel allows, as
 * bitcask's keydir pool asks for. */
static void *fresh(size_t len, int populate) {
    size_t span = len + HUGE;
    uint8_t *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    uint8_t *aligned = (uint8_t *)(((uintptr_t)p + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    if (aligned > p)
        munmap(p, (size_t)(aligned - p));
    munmap(aligned + len, (size_t)(p + span - (aligned + len)));
    madvise(aligned, len, MADV_HUGEPAGE);
    if (populate)
        for (size_t i = 0; i < len; i += 4096)
            aligned[i] = 0;
    return aligned;
}

static size_t part_keys(int p) {
    size_t n = 0;
    for (int f = 0; f < FILES; f++)
        n += part_count[f][p];
    return n;
}

static size_t table_slots(size_t n) {
    size_t slots = 16;
    while (slots * 2 < n * 3)
        slots *= 2;
    return slots;
}

static void get_memory(memory *m, int populate) {
    for (int p = 0; p < PARTS; p++) {
        size_t n = part_keys(p);
        m->table_bytes[p] = table_slots(n) * sizeof(slot);
        m->arena_bytes[p] = n * (6 + 16) + 64;
        m->table[p] = populate ? fresh(m->table_bytes[p], 1) : NULL;
        m->arena[p] = populate ? fresh(m->arena_bytes[p], 1) : NULL;
    }
}

static void put_memory(memory *m) {
    for (int p = 0; p < PARTS; p++) {
        munmap(m->table[p], m->table_bytes[p]);
        munmap(m->arena[p], m->arena_bytes[p]);
    }
}

static uint32_t varint(const uint8_t *b, size_t *at) {
    uint32_t v = 0;
    for (int shift = 0;; shift += 7) {
        uint8_t c = b[(*at)++];
        v |= (uint32_t)(c & 0x7f) << shift;
        if (c < 0x80)
            return v;
    }
}

typedef struct {
    int first;
    memory *m;
} job;

static void *build(void *arg) {
    job *j = arg;
    size_t cap = 4u << 20;
    uint8_t *buf = malloc(cap);
    for (int p = j->first; p < j->first + PARTS / THREADS; p++) {
        size_t slots = table_slots(part_keys(p));
        if (!j->m->table[p]) {
            j->m->table[p] = fresh(j->m->table_bytes[p], 0);
            j->m->arena[p] = fresh(j->m->arena_bytes[p], 0);
        }
        slot *table = j->m->table[p];
        uint8_t *arena = j->m->arena[p];
        size_t used = 0;
        for (int f = 0; f < FILES; f++) {
            size_t len = part_start[f][p + 1] - part_start[f][p];
            if (len > cap || pread(fds[f], buf, len, (off_t)part_start[f][p]) != (ssize_t)len) {
                fprintf(stderr, "reading partition %d of file %d failed\n", p, f);
                exit(1);
            }
            for (size_t at = 0; at < len;) {
                uint32_t hash, offset;
                memcpy(&hash, buf + at, 4);
                memcpy(&offset, buf + at + 4, 4);
                at += 9;
                uint32_t key_len = varint(buf, &at), value_len = varint(buf, &at);
                (void)varint(buf, &at);
                uint32_t tag = hash & 0x3ffffff;
                size_t i = ((uint64_t)tag * slots) >> 26;
                while (table[i].meta)
                    i = (i + 1) & (slots - 1);
                table[i].meta = (uint64_t)tag << 38 | (used + 1);
                table[i].file = (uint32_t)f;
                table[i].offset = offset;
                memcpy(arena + used, &value_len, 4);
                memcpy(arena + used + 4, &key_len, 2);
                memcpy(arena + used + 6, buf + at, 16);
                used += 6 + key_len;
                at += key_len;
            }
        }
    }
    free(buf);
    return NULL;
}

static double build_all(int populate) {
    memory m;
    get_memory(&m, populate);
    pthread_t th[THREADS];
    job jobs[THREADS];
    double t = now();
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (job){i * PARTS / THREADS, &m};
        pthread_create(&th[i], NULL, build, &jobs[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    t = now() - t;
    put_memory(&m);
    return t;
}

static double read_all(uint64_t *total) {
    static uint8_t buf[1 << 20];
    double t = now();
    *total = 0;
    for (int f = 0; f < FILES; f++) {
        ssize_t n;
        for (off_t at = 0; (n = pread(fds[f], buf, sizeof buf, at)) > 0; at += n)
            *total += (uint64_t)n;
    }
    return now() - t;
}

static int by_hash(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void write_hints(const char *dir) {
    uint32_t per = KEYS / FILES;
    uint32_t *hashes = malloc(per * sizeof *hashes);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int f = 0; f < FILES; f++) {
        for (uint32_t i = 0; i < per; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            hashes[i] = (uint32_t)x;
        }
        qsort(hashes, per, sizeof *hashes, by_hash);
        char path[4096];
        snprintf(path, sizeof path, "%s/%d.hint", dir, f);
        FILE *out = fopen(path, "w");
        if (!out) {
            perror(path);
            exit(1);
        }
        for (uint32_t i = 0; i < per; i++) {
            uint8_t e[ENTRY];
            uint32_t offset = 16 + i * 135;
            memcpy(e, &hashes[i], 4);
            memcpy(e + 4, &offset, 4);
            e[8] = 0;                          /* flags */
            e[9] = 16;                         /* key_len */
            e[10] = 100;                       /* value_len */
            e[11] = 0x81, e[12] = 0x01;        /* timestamp - base */
            for (int k = 0; k < 16; k++)
                e[13 + k] = "0123456789abcdef"[(x >> (k * 4)) & 15];
            fwrite(e, 1, ENTRY, out);
        }
        fclose(out);
    }
    free(hashes);
}

static void open_hints(const char *dir) {
    for (int f = 0; f < FILES; f++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%d.hint", dir, f);
        fds[f] = open(path, O_RDONLY);
        struct stat st;
        if (fds[f] < 0 || fstat(fds[f], &st) != 0) {
            perror(path);
            exit(1);
        }
        /* The partition table (a real hint keeps it in its trailer). */
        uint8_t *map = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fds[f], 0);
        int p = 0;
        for (uint64_t at = 0; at < (uint64_t)st.st_size; at += ENTRY) {
            uint32_t hash;
            memcpy(&hash, map + at, 4);
            for (; p <= (int)(hash >> 26); p++)
                part_start[f][p] = at;
            part_count[f][hash >> 26]++;
        }
        for (; p <= PARTS; p++)
            part_start[f][p] = st.st_size;
        munmap(map, st.st_size);
    }
}

static int by_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, by_double);
    return v[n / 2];
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    const char *dir = argc > 2 ? argv[2] : "/tmp/bitcask-keydir-floor";
    if (runs < 1 || runs > 100) {
        fprintf(stderr, "usage: keydir_floor [runs (1-100)] [dir]\n");
        return 2;
    }
    mkdir(dir, 0755);
    write_hints(dir);
    open_hints(dir);
    double rd[100], cold[100], warm[100];
    uint64_t total = 0;
    read_all(&total); /* into the page cache */
    for (int r = 0; r < runs; r++) {
        rd[r] = read_all(&total);
        cold[r] = build_all(0);
        warm[r] = build_all(1);
        printf("run %d: read %.1f ms, build %.1f ms, build on faulted memory %.1f ms\n", r + 1,
               rd[r] * 1e3, cold[r] * 1e3, warm[r] * 1e3);
    }
    double r = median(rd, runs), b = median(cold, runs), w = median(warm, runs);
    printf("%u keys, %d hint files, %.0f MB; medians of %d: read %.1f ms; build %.1f ms = %.2fx; "
           "on faulted memory %.1f ms = %.2fx\n",
           KEYS, FILES, total / 1e6, runs, r * 1e3, b * 1e3, b / r, w * 1e3, w / r);
    return 0;
}
