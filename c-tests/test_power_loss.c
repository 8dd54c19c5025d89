/* test_power_loss.c - what survives a power loss, under a pessimistic
 * model of the disk: a file's durable content is what it held at its last
 * fsync/fdatasync, and a directory's durable entries are those it held at
 * its last fsync. Everything else (unsynced writes, new names, renames and
 * unlinks never followed by a directory fsync) is lost.
 *
 * This program defines fsync and fdatasync itself (a definition in the
 * executable comes first in symbol lookup, so libbitcask.so's calls land
 * here): each call records the durable state of the file or directory
 * before passing through to the kernel. At chosen instants the test writes
 * that durable state out as a new directory, as a machine would find it
 * after losing power at that instant, while the database keeps running.
 *
 * Checked at every instant, with BC_SYNC_ALWAYS, through file rotations,
 * hint writes and full merges (whose unsynced unlinks bring merged-away
 * files back): the directory opens without repair, every acknowledged put
 * is there with its value, and every acknowledged delete stays deleted.
 * With BC_SYNC_NONE the directory also opens without repair, and every key
 * found holds a value once stored under it. */
#define _GNU_SOURCE
#include "check.h"

#include <sys/syscall.h>

#define MAX_INODES 1024
#define MAX_NAMES 256
#define NAME_CAP 96

struct durable_file {
    dev_t dev;
    ino_t ino;
    uint8_t *bytes;
    size_t len;
};

struct durable_name {
    char name[NAME_CAP];
    ino_t ino;
};

static pthread_mutex_t disk_mu = PTHREAD_MUTEX_INITIALIZER;
static struct durable_file files[MAX_INODES];
static int nfiles;
static struct durable_name names[MAX_NAMES];
static int nnames;
static char watched[4096]; /* the database directory; "" = record nothing */
static struct stat watched_st;
static int model_overflow;

static void record_dir(void) {
    DIR *d = opendir(watched);
    struct dirent *e;
    nnames = 0;
    if (d == NULL) return;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        size_t n = strlen(e->d_name);
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (nnames == MAX_NAMES || n >= NAME_CAP) {
            model_overflow = 1;
            break;
        }
        memcpy(names[nnames].name, e->d_name, n + 1);
        names[nnames].ino = st.st_ino;
        nnames++;
    }
    closedir(d);
}

static void record_file(int fd, const struct stat *st) {
    char path[64];
    int rfd, i;
    uint8_t *buf;
    size_t len = (size_t)st->st_size, got = 0;
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    rfd = open(path, O_RDONLY);
    if (rfd < 0) return;
    buf = (uint8_t *)malloc(len ? len : 1);
    while (buf != NULL && got < len) {
        ssize_t n = pread(rfd, buf + got, len - got, (off_t)got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(rfd);
    for (i = 0; i < nfiles; i++)
        if (files[i].dev == st->st_dev && files[i].ino == st->st_ino) break;
    if (i == nfiles) {
        if (nfiles == MAX_INODES) {
            model_overflow = 1;
            free(buf);
            return;
        }
        nfiles++;
    } else {
        free(files[i].bytes);
    }
    files[i].dev = st->st_dev;
    files[i].ino = st->st_ino;
    files[i].bytes = buf;
    files[i].len = got;
}

static void record(int fd) {
    struct stat st;
    pthread_mutex_lock(&disk_mu);
    if (watched[0] != '\0' && fstat(fd, &st) == 0 && st.st_dev == watched_st.st_dev) {
        if (S_ISDIR(st.st_mode) && st.st_ino == watched_st.st_ino) record_dir();
        if (S_ISREG(st.st_mode)) record_file(fd, &st);
    }
    pthread_mutex_unlock(&disk_mu);
}

/* The file's state is recorded before the real call: a sync that the
 * library sees succeed made at least that much durable. */
int fsync(int fd) {
    record(fd);
    return (int)syscall(SYS_fsync, fd);
}

int fdatasync(int fd) {
    record(fd);
    return (int)syscall(SYS_fdatasync, fd);
}

static void watch(const char *dir) {
    pthread_mutex_lock(&disk_mu);
    CHECK(stat(dir, &watched_st) == 0);
    snprintf(watched, sizeof watched, "%s", dir);
    nnames = 0;
    pthread_mutex_unlock(&disk_mu);
}

static void unwatch(void) {
    int i;
    pthread_mutex_lock(&disk_mu);
    watched[0] = '\0';
    for (i = 0; i < nfiles; i++) free(files[i].bytes);
    nfiles = 0;
    nnames = 0;
    pthread_mutex_unlock(&disk_mu);
    CHECK_MSG(!model_overflow, "the disk model ran out of room");
}

/* Writes the durable state, as of now, into a fresh directory. */
static const char *power_loss_now(void) {
    const char *out = make_temp_dir();
    int i, j;
    pthread_mutex_lock(&disk_mu);
    for (i = 0; i < nnames; i++) {
        FILE *f = fopen(path_join(out, names[i].name), "wb");
        CHECK(f != NULL);
        for (j = 0; j < nfiles; j++) {
            if (files[j].ino == names[i].ino) {
                CHECK(fwrite(files[j].bytes, 1, files[j].len, f) == files[j].len);
                break;
            }
        }
        CHECK(fclose(f) == 0);
    }
    pthread_mutex_unlock(&disk_mu);
    return out;
}

/* ---- the workload and its model ------------------------------------------ */

#define KEYS 40
#define OPS 360
#define CRASH_EVERY 30
#define MAX_CRASHES 24

/* version[k]: 0 = absent, v > 0 = the value of put number v. */
struct state {
    int version[KEYS];
};

struct crash {
    const char *dir;
    struct state acked;
    int exact; /* every acknowledged write must be there */
};

static int key_of(char *buf, int k) { return snprintf(buf, 32, "key-%02d", k); }

/* The value of the put with version v (of key k): 20..400 bytes. */
static size_t value_of(uint8_t *buf, int k, int v) {
    size_t n = 20 + (size_t)((k * 131 + v * 977) % 381), i;
    for (i = 0; i < n; i++) buf[i] = (uint8_t)('a' + (k + v + (int)i) % 26);
    snprintf((char *)buf, n, "k%d v%d", k, v);
    return n;
}

/* The value found for key k, if it is one ever put (versions 1..max_v). */
static int version_found(const uint8_t *val, size_t len, int k, int max_v) {
    uint8_t want[512];
    int v;
    for (v = 1; v <= max_v; v++) {
        size_t n = value_of(want, k, v);
        if (n == len && memcmp(want, val, n) == 0) return v;
    }
    return -1;
}

static void check_crash_dir(const struct crash *c, int max_v) {
    bc_db *db = open_db(c->dir, NULL); /* no repair option */
    bc_stats s;
    char key[32];
    int k;
    memset(&s, 0, sizeof s);
    s.struct_size = (uint32_t)sizeof s;
    CHECK_STATUS(bc_get_stats(db, &s), BC_OK);
    for (k = 0; k < KEYS; k++) {
        int kl = key_of(key, k), v;
        uint8_t *val = NULL;
        size_t vlen = 0;
        bc_status st = bc_get(db, U8(key), (size_t)kl, &val, &vlen);
        CHECK_MSG(st == BC_OK || st == BC_NOT_FOUND, "get %s after power loss: %s", key,
                  status_name(st));
        v = st == BC_OK ? version_found(val, vlen, k, max_v) : 0;
        if (st == BC_OK) bc_free(val, vlen);
        CHECK_MSG(v >= 0, "%s holds a value never stored under it", key);
        if (c->exact)
            CHECK_MSG(v == c->acked.version[k],
                      "%s after power loss: version %d, acknowledged %d (%s)", key, v,
                      c->acked.version[k], c->dir);
    }
    close_db(db);
}

static void run_workload(int32_t mode) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(8192, 0, 0);
    struct crash crashes[MAX_CRASHES];
    struct state now;
    int ncrashes = 0, op, i;
    uint8_t val[512];
    char key[32];
    uint32_t x = 12345;
    bc_db *db;
    memset(&now, 0, sizeof now);
    CHECK_STATUS(bc_options_set_sync(o, mode, 0), BC_OK);
    watch(dir);
    db = open_db(dir, o);
    bc_options_free(o);
    for (op = 1; op <= OPS; op++) {
        int k, kl;
        x = x * 1103515245u + 12345u;
        k = (int)((x >> 8) % KEYS);
        kl = key_of(key, k);
        if ((x >> 20) % 5 == 0) {
            bc_status st = bc_delete(db, U8(key), (size_t)kl);
            CHECK_MSG(st == BC_OK || st == BC_NOT_FOUND, "delete: %s", status_name(st));
            now.version[k] = 0;
        } else {
            size_t n = value_of(val, k, op);
            CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, val, n), BC_OK);
            now.version[k] = op;
        }
        if (op % 120 == 0) CHECK_STATUS(bc_merge(db), BC_OK);
        if ((op % CRASH_EVERY == 0 || op % 120 == 1) && ncrashes < MAX_CRASHES - 1) {
            crashes[ncrashes].dir = power_loss_now();
            crashes[ncrashes].exact = mode == BC_SYNC_ALWAYS;
            crashes[ncrashes++].acked = now;
        }
    }
    close_db(db);
    /* After a clean close everything is durable, whatever the mode. */
    crashes[ncrashes].dir = power_loss_now();
    crashes[ncrashes].exact = 1;
    crashes[ncrashes++].acked = now;
    unwatch();
    for (i = 0; i < ncrashes; i++) check_crash_dir(&crashes[i], OPS);
}

static void sync_always_keeps_every_acknowledged_write(void) { run_workload(BC_SYNC_ALWAYS); }

static void sync_none_opens_without_repair(void) { run_workload(BC_SYNC_NONE); }

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(sync_always_keeps_every_acknowledged_write);
    RUN(sync_none_opens_without_repair);
    return check_finish();
}
