/* Baseline: one file per key in a single directory (file name = hex of the
 * key).  put = write a temporary file + rename(2) over the key's file (atomic
 * replace); get = open + read + close; del = unlink.  Sync mode adds
 * fdatasync(file) before the rename and fsync(directory) after it, so the new
 * name is durable too.  The file system is the index. */
#define _GNU_SOURCE
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    int dirfd;
    int sync;
} fpk_t;

static const char *fpk_version(void) { return "builtin"; }

static int fpk_open(void **h, const char *dir, const engine_cfg *cfg)
{
    fpk_t *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->dirfd < 0) {
        fprintf(stderr, "fileperkey: open %s: %s\n", dir, strerror(errno));
        free(f);
        return -1;
    }
    f->sync = cfg->sync;
    *h = f;
    return 0;
}

static int name_of(char *out, size_t cap, const uint8_t *k, size_t kl)
{
    static const char hex[] = "0123456789abcdef";
    if (kl * 2 + 1 > cap || kl == 0)
        return -1;
    for (size_t i = 0; i < kl; i++) {
        out[2 * i] = hex[k[i] >> 4];
        out[2 * i + 1] = hex[k[i] & 15];
    }
    out[kl * 2] = 0;
    return 0;
}

static int fpk_put(void *h, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    fpk_t *f = h;
    char name[256], tmp[300];
    if (name_of(name, sizeof name, k, kl) != 0)
        return -1;
    /* write a private temporary file, then rename it over the key's file, so
     * a concurrent reader sees the old or the new value, never a torn one */
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", name, (long)gettid());
    int fd = openat(f->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        perror("fileperkey: open");
        return -1;
    }
    size_t off = 0;
    while (off < vl) {
        ssize_t w = write(fd, v + off, vl - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            perror("fileperkey: write");
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    int rc = 0;
    if (f->sync && fdatasync(fd) != 0)
        rc = -1;
    if (close(fd) != 0)
        rc = -1;
    if (rc == 0 && renameat(f->dirfd, tmp, f->dirfd, name) != 0) {
        perror("fileperkey: rename");
        rc = -1;
    }
    if (rc == 0 && f->sync && fsync(f->dirfd) != 0)
        rc = -1;
    return rc;
}

static int fpk_get(void *h, const uint8_t *k, size_t kl, uint8_t *buf, size_t cap, size_t *vlen)
{
    fpk_t *f = h;
    char name[256];
    if (name_of(name, sizeof name, k, kl) != 0)
        return -1;
    int fd = openat(f->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    size_t off = 0;
    for (;;) {
        ssize_t r = read(fd, buf + off, cap - off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        off += (size_t)r;
        if (off == cap) {
            char extra;
            ssize_t more = read(fd, &extra, 1);
            if (more != 0) {
                close(fd);
                return -1; /* larger than the caller's buffer */
            }
            break;
        }
    }
    close(fd);
    *vlen = off;
    return 1;
}

static int fpk_del(void *h, const uint8_t *k, size_t kl)
{
    fpk_t *f = h;
    char name[256];
    if (name_of(name, sizeof name, k, kl) != 0)
        return -1;
    if (unlinkat(f->dirfd, name, 0) != 0 && errno != ENOENT)
        return -1;
    if (f->sync && fsync(f->dirfd) != 0)
        return -1;
    return 0;
}

static int fpk_sync(void *h)
{
    fpk_t *f = h;
    syncfs(f->dirfd);
    return 0;
}

static int fpk_close(void *h)
{
    fpk_t *f = h;
    close(f->dirfd);
    free(f);
    return 0;
}

const engine_t engine_fileperkey = {
    .name = "fileperkey",
    .kind = "baseline",
    .durability_nosync = "temp file + rename(2) per put, page cache only, no fsync",
    .durability_sync = "temp file + fdatasync + rename(2) + fsync(directory) per put",
    .caps = CAP_GET | CAP_PERSIST,
    .version = fpk_version,
    .open = fpk_open,
    .put = fpk_put,
    .get = fpk_get,
    .del = fpk_del,
    .sync = fpk_sync,
    .compact = NULL,
    .close = fpk_close,
};
