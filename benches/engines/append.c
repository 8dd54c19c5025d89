/* Baseline: append bitcask-format records (19-byte header + key + value) to a
 * single file with no index.  No-sync mode: a 256 KiB user-space buffer
 * flushed with write(2) when full (the write limit).  Sync mode: one write(2)
 * + fdatasync(2) per record, serialised by a mutex (no group commit): the
 * limit for "one fsync per record".  No CRC is computed (plain append).
 * Reads are not supported: there is no index. */
#define _GNU_SOURCE
#include "engine.h"
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define APPEND_BUF (256u * 1024u)
#define HDR 19

typedef struct {
    pthread_mutex_t mu;
    int fd;
    int sync;
    uint8_t *buf;
    size_t used;
    uint8_t *rec; /* sync mode: one record */
    size_t rec_cap;
} append_t;

static const char *ap_version(void) { return "builtin"; }

static int ap_open(void **h, const char *dir, const engine_cfg *cfg)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/append.log", dir);
    append_t *a = calloc(1, sizeof *a);
    if (!a)
        return -1;
    a->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (a->fd < 0) {
        fprintf(stderr, "append: open %s: %s\n", path, strerror(errno));
        free(a);
        return -1;
    }
    a->sync = cfg->sync;
    a->buf = malloc(APPEND_BUF);
    a->rec_cap = HDR + cfg->key_size + cfg->value_size;
    a->rec = malloc(a->rec_cap);
    if (!a->buf || !a->rec) {
        close(a->fd);
        free(a->buf);
        free(a->rec);
        free(a);
        return -1;
    }
    pthread_mutex_init(&a->mu, NULL);
    if (lseek(a->fd, 0, SEEK_END) == 0) {
        static const uint8_t file_hdr[16] = {'B', 'I', 'T', 'C', 'A', 'S', 'K', 'D', 1, 0, 0, 0, 0, 0, 0, 0};
        if (write_all(a->fd, file_hdr, sizeof file_hdr, "append") != 0) {
            close(a->fd);
            free(a->buf);
            free(a->rec);
            free(a);
            return -1;
        }
    }
    *h = a;
    return 0;
}

static void put_header(uint8_t *p, size_t kl, size_t vl, int tombstone)
{
    uint32_t crc = 0, ts = (uint32_t)time(NULL), exp = 0, v32 = (uint32_t)vl;
    uint16_t k16 = (uint16_t)kl;
    memcpy(p, &crc, 4);
    memcpy(p + 4, &ts, 4);
    memcpy(p + 8, &exp, 4);
    memcpy(p + 12, &k16, 2);
    memcpy(p + 14, &v32, 4);
    p[18] = tombstone ? 1 : 0;
}

static int flush_locked(append_t *a)
{
    if (a->used == 0)
        return 0;
    int rc = write_all(a->fd, a->buf, a->used, "append");
    a->used = 0;
    return rc;
}

static int append_record(append_t *a, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, int tomb)
{
    size_t len = HDR + kl + vl;
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    if (a->sync) {
        if (len > a->rec_cap) {
            uint8_t *n = realloc(a->rec, len);
            if (!n) {
                pthread_mutex_unlock(&a->mu);
                return -1;
            }
            a->rec = n;
            a->rec_cap = len;
        }
        put_header(a->rec, kl, vl, tomb);
        memcpy(a->rec + HDR, k, kl);
        memcpy(a->rec + HDR + kl, v, vl);
        rc = write_all(a->fd, a->rec, len, "append");
        if (rc == 0 && fdatasync(a->fd) != 0) {
            perror("append: fdatasync");
            rc = -1;
        }
    } else {
        if (a->used + len > APPEND_BUF)
            rc = flush_locked(a);
        if (rc == 0 && len > APPEND_BUF) {
            /* larger than the buffer: write it straight through */
            uint8_t hdr[HDR];
            put_header(hdr, kl, vl, tomb);
            rc = write_all(a->fd, hdr, HDR, "append");
            if (rc == 0)
                rc = write_all(a->fd, k, kl, "append");
            if (rc == 0)
                rc = write_all(a->fd, v, vl, "append");
        } else if (rc == 0) {
            uint8_t *p = a->buf + a->used;
            put_header(p, kl, vl, tomb);
            memcpy(p + HDR, k, kl);
            memcpy(p + HDR + kl, v, vl);
            a->used += len;
        }
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

static int ap_put(void *h, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    return append_record(h, k, kl, v, vl, 0);
}

static int ap_get(void *h, const uint8_t *k, size_t kl, uint8_t *buf, size_t cap, size_t *vlen)
{
    (void)h;
    (void)k;
    (void)kl;
    (void)buf;
    (void)cap;
    (void)vlen;
    return -1; /* no index */
}

static int ap_del(void *h, const uint8_t *k, size_t kl)
{
    return append_record(h, k, kl, NULL, 0, 1);
}

static int ap_sync(void *h)
{
    append_t *a = h;
    pthread_mutex_lock(&a->mu);
    int rc = flush_locked(a);
    if (rc == 0 && fdatasync(a->fd) != 0)
        rc = -1;
    pthread_mutex_unlock(&a->mu);
    return rc;
}

static int ap_close(void *h)
{
    append_t *a = h;
    pthread_mutex_lock(&a->mu);
    int rc = flush_locked(a);
    pthread_mutex_unlock(&a->mu);
    if (close(a->fd) != 0)
        rc = -1;
    pthread_mutex_destroy(&a->mu);
    free(a->buf);
    free(a->rec);
    free(a);
    return rc;
}

const engine_t engine_append = {
    .name = "append",
    .kind = "baseline",
    .durability_nosync = "256 KiB user-space buffer, write(2) when full, no fsync (a crash loses up to 256 KiB)",
    .durability_sync = "write(2) + fdatasync(2) per record under a mutex (no group commit)",
    .caps = CAP_PERSIST,
    .version = ap_version,
    .open = ap_open,
    .put = ap_put,
    .get = ap_get,
    .del = ap_del,
    .sync = ap_sync,
    .compact = NULL,
    .close = ap_close,
};
