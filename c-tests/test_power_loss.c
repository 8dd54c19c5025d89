/* test_power_loss.c - what survives a power loss, under a pessimistic
 * model of the disk: a file's durable content is what it held at its last
 * fsync/fdatasync, and a directory's durable entries are those it held at
 * its last fsync. Everything else (unsynced writes, new names, renames and
 * unlinks never followed by a directory fsync) is lost.
 *
 * This program defines fsync and fdatasync itself (a definition in the
 * executable comes first in symbol lookup, so libbitcask.so's calls land
 * here): each call records the durable state of the file or directory
 * before passing through to the kernel, and then takes a snapshot of the
 * whole durable state: the directory a machine would find after losing
 * power just after that fsync. Snapshots are also taken between operations.
 * After the workload, each snapshot is written out as a directory and
 * opened.
 *
 * A power loss may also keep part of what was written since a file's last
 * fsync: each snapshot gives every file that has grown since its last
 * fsync one of six fates, in turn: nothing more (the model above), a
 * prefix of the unsynced bytes (the disk wrote some of the pages), that
 * many zero bytes (the size reached the disk but the data did not, as
 * after a delayed allocation), the whole size with the pages past the
 * first one after the sync point zeros (so open's recovered_zero_bytes
 * is checked: it counts at least those zeros of data files, and no more
 * than it dropped), or all of them but one lost 4 KiB page,
 * which reads as zeros (pages written back out of order): either the rest
 * of the page holding the last sync point (where at least 4 bytes of it
 * remain: open needs a zeroed CRC to tell a lost page from damage), or the
 * whole page after it. Open keeps every record outside a lost page.
 *
 * Snapshots are also taken right after each unlink, and in those each
 * unlink since the directory's last fsync may or may not have reached the
 * disk, independently (a filesystem may write directory changes in any
 * order before an fsync; a rename is atomic and not subject to this).
 * This catches a merge that deletes an input holding a value before the
 * deletion of a newer input holding its tombstone is durable: without the
 * directory sync between them, a deleted key came back here.
 *
 * BC_SYNC_INTERVAL and BC_SYNC_NONE run twice: through the write map (the
 * default) and through the write buffer. A last run adds puts with TTLs on
 * a clock that moves on, and auto-merge every millisecond with thresholds
 * that select some files and not others: partial merges beside the writes, dropping tombstones and
 * expired records only when no older value can survive (a merge allowed to
 * drop them always brought back an expired key's older value here, 3 runs
 * of 3). Each instant is opened at its own time.
 *
 * Checked at every instant (every fsync of puts, deletes, file rotations,
 * hint writes and full merges, whose unsynced unlinks bring merged-away
 * files back): the directory opens without repair; with BC_SYNC_ALWAYS
 * every acknowledged put is there with its value (unless it has expired)
 * and every acknowledged delete stays deleted (the operation in flight may or may not have
 * happened); with BC_SYNC_NONE and BC_SYNC_INTERVAL every key found holds a
 * value once stored under it; and in every mode open drops no more than
 * the disk lost (bc_stats.recovered_bytes_dropped): a file's bytes past
 * its last fsync, and of a file that lost a page, that page and a record
 * on either side, not the records after it. */
#define _GNU_SOURCE
#include "check.h"

#include <stdatomic.h>
#include <sys/syscall.h>

#define MAX_INODES 8192
#define MAX_NAMES 256
#define NAME_CAP 96

/* A file is known by its inode number and birth time: a merge deletes
 * files and creates others, and a new file may get a deleted one's inode
 * number, never its content. */
struct file_id {
    ino_t ino;
    long long birth_sec;
    unsigned birth_nsec;
};

struct durable_file {
    struct file_id id;
    uint8_t *bytes;
    size_t len;
};

struct durable_name {
    char name[NAME_CAP];
    struct file_id id;
};

static pthread_mutex_t disk_mu = PTHREAD_MUTEX_INITIALIZER;
static struct durable_file files[MAX_INODES];
static int nfiles;
static struct durable_name names[MAX_NAMES];
static int nnames;
static char watched[4096]; /* the database directory; "" = record nothing */
static struct stat watched_st;
static int model_overflow;

/* The identity of the file at dirfd/name (name "" = dirfd itself). */
static int file_id_of(int dirfd, const char *name, struct file_id *out) {
    struct statx sx;
    int flags = AT_SYMLINK_NOFOLLOW | (name[0] == '\0' ? AT_EMPTY_PATH : 0);
    if (statx(dirfd, name, flags, STATX_INO | STATX_BTIME, &sx) != 0) return -1;
    out->ino = (ino_t)sx.stx_ino;
    out->birth_sec = (sx.stx_mask & STATX_BTIME) ? (long long)sx.stx_btime.tv_sec : 0;
    out->birth_nsec = (sx.stx_mask & STATX_BTIME) ? sx.stx_btime.tv_nsec : 0;
    return 0;
}

static int same_file(const struct file_id *a, const struct file_id *b) {
    return a->ino == b->ino && a->birth_sec == b->birth_sec && a->birth_nsec == b->birth_nsec;
}

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
        if (file_id_of(dirfd(d), e->d_name, &names[nnames].id) != 0) continue;
        nnames++;
    }
    closedir(d);
}

static void record_file(int fd, const struct stat *st) {
    char path[64];
    struct file_id id;
    int rfd, i;
    if (file_id_of(fd, "", &id) != 0) return;
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
        if (same_file(&files[i].id, &id)) break;
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
    files[i].id = id;
    files[i].bytes = buf;
    files[i].len = got;
}

/* ---- snapshots of the durable state --------------------------------------- */

#define KEYS 40
#define MAX_SNAPS 6000

/* version[k]: 0 = absent, v > 0 = the value of operation number v;
 * expiry[k]: when that value expires (0: never). */
struct state {
    int version[KEYS];
    uint32_t expiry[KEYS];
};

/* What the workload had acknowledged when a snapshot was taken, and the
 * operation in flight (key -1: none that changes data). */
struct context {
    struct state acked;
    int key, version;
    uint32_t expiry; /* of the put in flight (0: none, or no TTL) */
    int exact; /* every acknowledged write must be there */
    uint32_t clock; /* the handle's clock */
};

struct snap_file {
    char name[NAME_CAP];
    uint8_t *bytes;
    size_t len;
    /* The most open may drop from it: its bytes past the last fsync, or
     * for a lost page, the page and a record on either side. */
    size_t may_drop;
    /* Zeros ending it that were never written (fate 5): open must count
     * them in recovered_zero_bytes. */
    size_t zeros;
    /* Zeros ending its durable bytes: a file written through its map is
     * allocated ahead of its records, and open may drop those too. */
    size_t ahead;
};

/* More than any record of the workload (a 512-byte value at most). */
#define MAX_RECORD 600

struct snapshot {
    struct context ctx;
    int n;
    struct snap_file *files;
};

static struct context current;
static struct snapshot snaps[MAX_SNAPS];
static int nsnaps;
static uint32_t tear_seed = 777;
static int torn_files; /* files given unsynced bytes, over all snapshots */
static int lost_pages; /* ... of those, with a page lost before later ones */
static int zero_tails; /* instants whose data files ended in unwritten zeros */

/* The next draw of the model's pseudo-random sequence. */
static uint32_t next_rand(void) {
    tear_seed = tear_seed * 1103515245u + 12345u;
    return tear_seed;
}

/* A descriptor open on the file `id` in the watched directory, under any
 * name; -1 if it has none (it was unlinked). */
static int open_watched(const struct file_id *id) {
    DIR *d = opendir(watched);
    struct dirent *e;
    int fd = -1;
    if (d == NULL) return -1;
    while ((e = readdir(d)) != NULL) {
        struct file_id fid;
        if (file_id_of(dirfd(d), e->d_name, &fid) != 0 || !same_file(&fid, id)) continue;
        fd = openat(dirfd(d), e->d_name, O_RDONLY);
        break;
    }
    closedir(d);
    return fd;
}

/* Gives sf (the durable bytes of file id) the fate described at the top,
 * if the file still exists and has been appended to since its last fsync:
 * after its records, which end where its durable bytes end, or where the
 * zeros begin that end them (`ahead`: a file written through its map is
 * allocated ahead of its records, and its records then fill that space).
 * A durable size stays: what was lost of the bytes before it reads as
 * zeros. */
static void tear(struct snap_file *sf, const struct file_id *id) {
    uint8_t *cur = NULL;
    size_t cur_len = 0, base = sf->len - sf->ahead;
    struct stat st;
    uint32_t fate = (next_rand() >> 16) % 6;
    int fd;
    if (fate == 0 || (fd = open_watched(id)) < 0) return;
    if (fstat(fd, &st) == 0 && (size_t)st.st_size > base && (size_t)st.st_size >= sf->len) {
        cur_len = (size_t)st.st_size;
        cur = (uint8_t *)malloc(cur_len);
        if (cur != NULL && pread(fd, cur, cur_len, 0) != (ssize_t)cur_len) {
            free(cur);
            cur = NULL;
        }
    }
    close(fd);
    /* Only appends: a file rewritten since its fsync is left as it was, and
     * so is one that has not changed. */
    if (cur != NULL && memcmp(cur, sf->bytes, base) == 0 &&
        (cur_len > sf->len || memcmp(cur + base, sf->bytes + base, sf->len - base) != 0)) {
        size_t keep = base + 1 + (size_t)(tear_seed >> 4) % (cur_len - base);
        size_t page_end = (base / 4096 + 1) * 4096;
        if (fate == 2) memset(cur + base, 0, keep - base);
        if (fate < 3 && keep < sf->len) {
            memset(cur + keep, 0, sf->len - keep);
            keep = sf->len;
        }
        if (fate < 3) sf->may_drop = keep - base;
        if (fate == 5) {
            /* The size reached the disk, and the pages up to the first
             * boundary past the sync point; the rest read as zeros (as
             * a file written through a map and preallocated ends). */
            if (page_end >= cur_len) {
                free(cur);
                return;
            }
            keep = cur_len;
            memset(cur + page_end, 0, cur_len - page_end);
            sf->may_drop = cur_len - base;
            sf->zeros = cur_len - page_end;
        } else if (fate >= 3) {
            /* Out of order: one page never got its new bytes, later
             * pages did. */
            size_t from = fate == 3 ? base : page_end;
            size_t to = fate == 3 ? page_end : page_end + 4096;
            size_t tail = cur_len;
            if (to >= cur_len || to - from < 4) {
                free(cur);
                return;
            }
            keep = cur_len;
            memset(cur + from, 0, to - from);
            /* (Written bytes after the page that are zeros, allocated
             * ahead of the records by the write map, may go too.) */
            while (tail > to && cur[tail - 1] == 0) tail--;
            sf->may_drop = to - from + 2 * MAX_RECORD + (cur_len - tail);
            lost_pages++;
        }
        free(sf->bytes);
        sf->bytes = cur;
        sf->len = keep;
        sf->ahead = 0; /* counted from base, in may_drop */
        torn_files++;
        return;
    }
    free(cur);
}

/* In snapshots taken right after an unlink: whether the durable name dn,
 * whose file has been unlinked since the directory's last fsync (it is
 * gone from the directory under every name: not renamed), has its unlink
 * on disk too. Each such unlink persists or not, independently: a
 * filesystem may write directory changes in any order before an fsync. */
static int after_unlink;
static int unlinks_persisted; /* names dropped so, over all snapshots */
static int unlink_may_persist(const struct durable_name *dn) {
    int fd;
    if (!after_unlink) return 0;
    if ((fd = open_watched(&dn->id)) >= 0) {
        close(fd);
        return 0;
    }
    if ((next_rand() >> 16) % 2 == 0) return 0;
    unlinks_persisted++;
    return 1;
}

static void take_snapshot_locked(void) {
    struct snapshot *sn;
    int i, j;
    if (nsnaps == MAX_SNAPS) {
        model_overflow = 1; /* unwatch() fails the test */
        return;
    }
    sn = &snaps[nsnaps++];
    sn->ctx = current;
    sn->n = nnames;
    sn->files = (struct snap_file *)calloc((size_t)(nnames ? nnames : 1), sizeof *sn->files);
    if (sn->files == NULL) {
        model_overflow = 1;
        sn->n = 0;
        return;
    }
    for (i = 0; i < nnames; i++) {
        memcpy(sn->files[i].name, names[i].name, NAME_CAP);
        if (unlink_may_persist(&names[i])) {
            /* Its unlink reached the disk: no name, no bytes. */
            sn->files[i].bytes = NULL;
            sn->files[i].len = 0;
            sn->files[i].name[0] = '\0';
            continue;
        }
        for (j = 0; j < nfiles; j++) {
            if (!same_file(&files[j].id, &names[i].id)) continue;
            sn->files[i].bytes = (uint8_t *)malloc(files[j].len ? files[j].len : 1);
            if (sn->files[i].bytes == NULL) {
                model_overflow = 1;
                break;
            }
            memcpy(sn->files[i].bytes, files[j].bytes, files[j].len);
            sn->files[i].len = files[j].len;
            break;
        }
        /* A name whose file was never synced has no durable bytes. */
        if (sn->files[i].bytes == NULL) sn->files[i].bytes = (uint8_t *)calloc(1, 1);
        if (sn->files[i].bytes != NULL) {
            size_t n = sn->files[i].len;
            while (n > 0 && sn->files[i].bytes[n - 1] == 0) n--;
            sn->files[i].ahead = sn->files[i].len - n;
            tear(&sn->files[i], &names[i].id);
        }
    }
}

static void record(int fd) {
    struct stat st;
    pthread_mutex_lock(&disk_mu);
    if (watched[0] != '\0' && fstat(fd, &st) == 0 && st.st_dev == watched_st.st_dev) {
        if (S_ISDIR(st.st_mode) && st.st_ino == watched_st.st_ino) record_dir();
        if (S_ISREG(st.st_mode)) record_file(fd, &st);
        take_snapshot_locked();
    }
    pthread_mutex_unlock(&disk_mu);
}

/* A power loss right after an unlink: a snapshot in which each unlink
 * since the directory's last fsync may or may not have reached the disk. */
static void after_unlink_snapshot(void) {
    pthread_mutex_lock(&disk_mu);
    if (watched[0] != '\0') {
        after_unlink = 1;
        take_snapshot_locked();
        after_unlink = 0;
    }
    pthread_mutex_unlock(&disk_mu);
}

int unlink(const char *path) {
    int rc = (int)syscall(SYS_unlinkat, AT_FDCWD, path, 0);
    if (rc == 0) after_unlink_snapshot();
    return rc;
}

int unlinkat(int dirfd, const char *path, int flags) {
    int rc = (int)syscall(SYS_unlinkat, dirfd, path, flags);
    if (rc == 0) after_unlink_snapshot();
    return rc;
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
    /* Counts of the sub-test now starting (one that failed left its own). */
    torn_files = 0;
    zero_tails = 0;
    lost_pages = 0;
    unlinks_persisted = 0;
    model_overflow = 0;
    pthread_mutex_unlock(&disk_mu);
}

/* Stops recording and forgets the disk (the snapshots stay). */
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

/* The handles' clock: the workload moves it on (under disk_mu, so that
 * every snapshot carries the time of its instant); auto-merge reads it. */
static atomic_uint fake_now = 1000000;
static uint32_t clock_fn(void *ctx) {
    (void)ctx;
    return (uint32_t)atomic_load(&fake_now);
}

static void advance_clock(uint32_t secs) {
    pthread_mutex_lock(&disk_mu);
    atomic_fetch_add(&fake_now, secs);
    current.clock = (uint32_t)atomic_load(&fake_now);
    pthread_mutex_unlock(&disk_mu);
}

/* Sets what is acknowledged and what is in flight; snapshots taken from now
 * on carry it. With snap, also takes a snapshot now (between operations). */
static void set_context(const struct state *acked, int key, int version, uint32_t expiry,
                        int exact, int snap) {
    pthread_mutex_lock(&disk_mu);
    current.acked = *acked;
    current.clock = (uint32_t)atomic_load(&fake_now);
    current.key = key;
    current.version = version;
    current.expiry = expiry;
    current.exact = exact;
    if (snap) take_snapshot_locked();
    pthread_mutex_unlock(&disk_mu);
}

static void free_snapshots(void) {
    int i, j;
    for (i = 0; i < nsnaps; i++) {
        for (j = 0; j < snaps[i].n; j++) free(snaps[i].files[j].bytes);
        free(snaps[i].files);
    }
    nsnaps = 0;
}

/* ---- the workload and its model ------------------------------------------ */

#define MAX_OPS 600

static int key_of(char *buf, int k) { return snprintf(buf, 32, "key-%02d", k); }

/* The value of operation v (a put of key k): 20..400 bytes. */
static size_t value_of(uint8_t *buf, int k, int v) {
    size_t n = 20 + (size_t)((k * 131 + v * 977) % 381), i;
    for (i = 0; i < n; i++) buf[i] = (uint8_t)('a' + (k + v + (int)i) % 26);
    snprintf((char *)buf, n, "k%d v%d", k, v);
    return n;
}

/* The operation whose value is found for key k (1..MAX_OPS), or -1. A value
 * names its key and operation in its first bytes ("k<k> v<v>"): only that
 * operation's value is compared. */
static int version_found(const uint8_t *val, size_t len, int k) {
    uint8_t want[512];
    char head[32];
    int vk, v;
    size_t n = len < sizeof head - 1 ? len : sizeof head - 1;
    memcpy(head, val, n);
    head[n] = '\0';
    if (sscanf(head, "k%d v%d", &vk, &v) != 2 || vk != k || v < 1 || v > MAX_OPS) return -1;
    n = value_of(want, k, v);
    return n == len && memcmp(want, val, n) == 0 ? v : -1;
}

/* Version `version` as a get reads it at `clock`: 0 once it has expired. */
static int visible(int version, uint32_t expiry, uint32_t clock) {
    return expiry != 0 && expiry <= clock ? 0 : version;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Whether some data file of sn ends in zeros never written (fate 5). */
static int zeros_end_data(const struct snapshot *sn) {
    int i;
    for (i = 0; i < sn->n; i++)
        if (sn->files[i].zeros > 0 && ends_with(sn->files[i].name, ".data")) return 1;
    return 0;
}

/* Writes snapshot `sn` out as directory `dir`, opens it (no repair) and
 * checks every key against what was acknowledged. */
static void check_snapshot(const struct snapshot *sn, const char *dir) {
    bc_db *db;
    bc_stats stats;
    char key[32];
    int k, i;
    size_t may_drop = 0, zeros = 0;
    CHECK_MSG(mkdir(dir, 0700) == 0, "mkdir %s: %s", dir, strerror(errno));
    for (i = 0; i < sn->n; i++) {
        char path[4096 + NAME_CAP + 2];
        FILE *f;
        if (sn->files[i].name[0] == '\0') continue; /* its unlink persisted */
        snprintf(path, sizeof path, "%s/%s", dir, sn->files[i].name);
        f = fopen(path, "wb");
        CHECK(f != NULL);
        CHECK(fwrite(sn->files[i].bytes ? (const void *)sn->files[i].bytes : "", 1,
                     sn->files[i].len, f) == sn->files[i].len);
        CHECK(fclose(f) == 0);
        may_drop += sn->files[i].may_drop;
        if (ends_with(sn->files[i].name, ".data")) {
            zeros += sn->files[i].zeros;
            may_drop += sn->files[i].ahead;
        }
    }
    {
        bc_options *o = make_opts(0, 0, 0); /* no repair option */
        atomic_store(&fake_now, sn->ctx.clock);
        CHECK_STATUS(bc_options_set_clock(o, clock_fn, NULL), BC_OK);
        db = open_db(dir, o);
        bc_options_free(o);
    }
    /* Open dropped only what the disk lost: never a synced byte, and of a
     * file that lost a page, not the records after it. */
    stats = get_stats(db);
    CHECK_MSG(stats.recovered_bytes_dropped <= may_drop,
              "open dropped %llu bytes, at most %llu were lost",
              (unsigned long long)stats.recovered_bytes_dropped, (unsigned long long)may_drop);
    /* The zeros the disk left at the ends of data files are reported as
     * such, and are part of what was dropped. */
    CHECK_MSG(stats.recovered_zero_bytes >= zeros &&
                  stats.recovered_zero_bytes <= stats.recovered_bytes_dropped,
              "open reported %llu zero bytes of %llu dropped; %llu zeros ended data files",
              (unsigned long long)stats.recovered_zero_bytes,
              (unsigned long long)stats.recovered_bytes_dropped, (unsigned long long)zeros);
    zero_tails += zeros > 0;
    for (k = 0; k < KEYS; k++) {
        int kl = key_of(key, k), v;
        uint8_t *val = NULL;
        size_t vlen = 0;
        bc_status st = bc_get(db, U8(key), (size_t)kl, &val, &vlen);
        CHECK_MSG(st == BC_OK || st == BC_NOT_FOUND, "get %s after power loss: %s", key,
                  status_name(st));
        v = st == BC_OK ? version_found(val, vlen, k) : 0;
        if (st == BC_OK) bc_free(val, vlen);
        CHECK_MSG(v >= 0, "%s holds a value never stored under it", key);
        if (sn->ctx.exact) {
            /* What the acknowledged state and the operation in flight
             * (which may have happened or not) read as at the snapshot's
             * time: nothing for a value that has expired. */
            int want = visible(sn->ctx.acked.version[k], sn->ctx.acked.expiry[k], sn->ctx.clock);
            int inflight = visible(sn->ctx.version, sn->ctx.expiry, sn->ctx.clock);
            CHECK_MSG(v == want || (k == sn->ctx.key && v == inflight),
                      "%s after power loss: version %d, acknowledged %d (expiry %u, clock %u)",
                      key, v, want, sn->ctx.acked.expiry[k], sn->ctx.clock);
        }
    }
    close_db(db);
    CHECK_MSG(remove_tree(dir) == 0, "cleaning %s", dir);
}

/* The workload: puts and deletes of KEYS keys, full merges every 120
 * operations. With `partial`, also puts with TTLs on a clock that moves
 * on, and auto-merge every millisecond with low thresholds and 4 open
 * files at most: partial merges running beside the writes, dropping
 * tombstones and expired records. */
static void run_workload(int32_t mode, uint32_t interval_ms, int partial, bool write_map) {
    const char *dir = make_temp_dir();
    const char *out = make_temp_dir();
    bc_options *o = make_opts(8192, 0, 0);
    struct state now;
    int op, i, exact = mode == BC_SYNC_ALWAYS, merges = 0, ops = partial ? MAX_OPS : 360;
    uint64_t completed;
    uint8_t val[512];
    char key[32];
    uint32_t x = 12345;
    bc_db *db;
    memset(&now, 0, sizeof now);
    free_snapshots(); /* left by a sub-test that failed */
    CHECK_STATUS(bc_options_set_sync(o, mode, interval_ms), BC_OK);
    CHECK_STATUS(bc_options_set_clock(o, clock_fn, NULL), BC_OK);
    CHECK_STATUS(bc_options_set_write_map(o, write_map), BC_OK);
    if (partial) {
        CHECK_STATUS(bc_options_set_auto_merge(o, 1), BC_OK);
        CHECK_STATUS(bc_options_set_merge_thresholds(o, 0.5, 4096, 1024), BC_OK);
        CHECK_STATUS(bc_options_set_merge_triggers(o, 0.6, 6000), BC_OK);
        CHECK_STATUS(bc_options_set_max_open_files(o, 4), BC_OK);
    }
    watch(dir);
    set_context(&now, -1, 0, 0, exact, 0);
    db = open_db(dir, o);
    bc_options_free(o);
    for (op = 1; op <= ops; op++) {
        int k, kl;
        x = x * 1103515245u + 12345u;
        k = (int)((x >> 8) % KEYS);
        kl = key_of(key, k);
        if ((x >> 20) % 5 == 0) {
            bc_status st;
            set_context(&now, k, 0, 0, exact, 0);
            st = bc_delete(db, U8(key), (size_t)kl);
            CHECK_MSG(st == BC_OK || st == BC_NOT_FOUND, "delete: %s", status_name(st));
            now.version[k] = 0;
            now.expiry[k] = 0;
        } else {
            size_t n = value_of(val, k, op);
            uint32_t ttl = partial && (x >> 24) % 3 == 0 ? 1 + (x >> 4) % 20 : 0;
            uint32_t expiry = ttl ? (uint32_t)atomic_load(&fake_now) + ttl : 0;
            set_context(&now, k, op, expiry, exact, 0);
            CHECK_STATUS(bc_put_ttl(db, U8(key), (size_t)kl, val, n, ttl), BC_OK);
            now.version[k] = op;
            now.expiry[k] = expiry;
        }
        set_context(&now, -1, 0, 0, exact, op % 10 == 0);
        if (partial && op % 7 == 0) advance_clock(3);
        if (partial && op % 3 == 0) usleep(2000); /* auto-merge runs */
        if (op % 120 == 0) {
            CHECK_STATUS(bc_merge(db), BC_OK);
            merges++;
        }
    }
    completed = get_stats(db).merges;
    close_db(db);
    /* After a clean close everything is durable, whatever the mode. */
    set_context(&now, -1, 0, 0, 1, 1);
    unwatch();
    CHECK_MSG(nsnaps > ops / 10 + merges, "only %d snapshots", nsnaps);
    if (partial)
        CHECK_MSG(completed > (uint64_t)merges, "auto-merge never ran (%llu merges, %d by hand)",
                  (unsigned long long)completed, merges);
    CHECK_MSG(torn_files > nsnaps / 10, "only %d files were given unsynced bytes", torn_files);
    CHECK_MSG(unlinks_persisted > 0, "no unlink reached the disk before a directory fsync");
    printf("mode %d%s%s: %d power-loss instants checked, %d files with unsynced bytes (%d with a "
           "page lost before later ones), %d names dropped by unlinks that reached the disk "
           "before a directory fsync, %llu merges\n",
           (int)mode, partial ? " (partial merges, TTLs)" : "", write_map ? "" : " (write buffer)",
           nsnaps, torn_files, lost_pages, unlinks_persisted, (unsigned long long)completed);
    for (i = 0; i < nsnaps; i++) {
        char sub[4096 + 16];
        /* Under valgrind, every fourth instant (and the last, and those
         * with zeros ending a data file). */
        if (under_valgrind() && i % 4 != 0 && i != nsnaps - 1 && !zeros_end_data(&snaps[i]))
            continue;
        snprintf(sub, sizeof sub, "%s/%d", out, i);
        check_snapshot(&snaps[i], sub);
    }
    printf("  %d instants with unwritten zeros ending a data file\n", zero_tails);
    free_snapshots();
}

/* run_workload, and a check that some instant lost a page of a file
 * before later ones and some ended a data file in unwritten zeros, so
 * that open was tested on both. Whether any does depends on where the
 * syncs fall among the appends, which valgrind's turn-taking threads
 * move: with the write map and 50 ms interval syncs, runs of about 128
 * instants saw 3-7 lost pages and 6-8 zero endings, and one CI run saw no
 * zero ending. Up to three runs before the check fails. (BC_SYNC_ALWAYS
 * leaves hardly any unsynced bytes behind; nor does the write buffer
 * under valgrind, whose interval flushes then seldom cross a page.) */
static void run_workload_seeing_zeros(int32_t mode, uint32_t interval_ms, bool write_map) {
    int tries;
    for (tries = 1; tries <= 3; tries++) {
        run_workload(mode, interval_ms, 0, write_map);
        if ((lost_pages > 0 && zero_tails > 0) || !(write_map || !under_valgrind())) return;
        printf("  run %d: %d lost pages, %d zero endings; again\n", tries, lost_pages, zero_tails);
    }
    CHECK_MSG(lost_pages > 0, "no file lost a page before later ones in 3 runs");
    CHECK_MSG(zero_tails > 0, "no data file ended in unwritten zeros in 3 runs: the zero count went unchecked");
}

static void sync_always_keeps_every_acknowledged_write(void) {
    run_workload(BC_SYNC_ALWAYS, 0, 0, true);
}

/* 50 ms: long enough for appends to cross pages between interval syncs,
 * so that some power losses drop a page before later ones (with 2 ms a
 * run could see none since the sync writes the buffer out first). */
static void sync_interval_opens_without_repair(void) {
    run_workload_seeing_zeros(BC_SYNC_INTERVAL, 50, true);
}

static void sync_none_opens_without_repair(void) { run_workload_seeing_zeros(BC_SYNC_NONE, 0, true); }

/* The same two through the write buffer (the write map off), which the
 * default does not use where the map can be. */
static void write_buffer_opens_without_repair(void) {
    run_workload_seeing_zeros(BC_SYNC_INTERVAL, 50, false);
    run_workload_seeing_zeros(BC_SYNC_NONE, 0, false);
}

static void partial_merges_and_ttls_keep_every_acknowledged_write(void) {
    run_workload(BC_SYNC_ALWAYS, 0, 1, true);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(sync_always_keeps_every_acknowledged_write);
    RUN(sync_interval_opens_without_repair);
    RUN(sync_none_opens_without_repair);
    RUN(write_buffer_opens_without_repair);
    RUN(partial_merges_and_ttls_keep_every_acknowledged_write);
    return check_finish();
}
