/*
 * check.h - tiny test harness shared by the C tests in c-tests/.
 *
 * Include this header FIRST in every test (it selects the POSIX feature
 * level before any system header is read).
 *
 *   int main(int argc, char **argv) {
 *       check_init(argc, argv);
 *       RUN(test_something);     // a void (*)(void) function
 *       return check_finish();   // 0 if every check passed
 *   }
 *
 * A failed CHECK* prints "file:line: what was expected / what was got /
 * bc_last_error()" and abandons the current RUN'd function (longjmp), so one
 * run reports every failing sub-test.  Temporary directories made with
 * make_temp_dir() and child processes registered with track_child() are
 * cleaned up by check_finish().  A CHECK that fails in a thread other than
 * the main one marks the run failed and ends that thread (pthread_exit); a
 * CHECK that fails in a forked child process ends the child with _exit(1).
 */
#ifndef BITCASK_C_TESTS_CHECK_H
#define BITCASK_C_TESTS_CHECK_H

#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif
/* 64-bit offsets on 32-bit targets too: stat() of a data file over 2 GiB,
 * and readdir() of a directory whose entry offsets pass 2^31 (ext4 under
 * qemu-user), fail with EOVERFLOW otherwise. */
#ifndef _FILE_OFFSET_BITS
#define _FILE_OFFSET_BITS 64
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bitcask.h"

#define CHECK_MAX_DIRS 128
#define CHECK_MAX_CHILDREN 32

struct check_state {
    const char *argv0;
    const char *test_name;  /* current RUN'd function, or NULL */
    int in_run;
    int in_child;           /* set in a forked child: failures _exit(1) */
    int failed_runs;
    int passed_runs;
    int thread_failures;    /* guarded by mu */
    pthread_t main_thread;
    pthread_mutex_t mu;
    jmp_buf jmp;
    char *dirs[CHECK_MAX_DIRS];
    int ndirs;
    char *strs[CHECK_MAX_DIRS];
    int nstrs;
    pid_t children[CHECK_MAX_CHILDREN];
    int nchildren;
};

static inline struct check_state *check_state(void) {
    static struct check_state s;
    return &s;
}

static inline const char *status_name(bc_status st) {
    switch (st) {
    case BC_OK: return "BC_OK";
    case BC_NOT_FOUND: return "BC_NOT_FOUND";
    case BC_INVALID_ARGUMENT: return "BC_INVALID_ARGUMENT";
    case BC_IO: return "BC_IO";
    case BC_CORRUPTION: return "BC_CORRUPTION";
    case BC_LOCKED: return "BC_LOCKED";
    case BC_TOO_LARGE: return "BC_TOO_LARGE";
    case BC_BUFFER_TOO_SMALL: return "BC_BUFFER_TOO_SMALL";
    case BC_READ_ONLY: return "BC_READ_ONLY";
    case BC_INTERNAL: return "BC_INTERNAL";
    case BC_VERSION_MISMATCH: return "BC_VERSION_MISMATCH";
    case BC_NO_MEMORY: return "BC_NO_MEMORY";
    default: return "(unknown status)";
    }
}

/* Reports a failed check and leaves the current test (see top of file). */
static inline void check_fail(const char *file, int line, const char *fmt, ...) {
    struct check_state *s = check_state();
    const char *err = bc_last_error();
    va_list ap;
    int is_main = pthread_equal(pthread_self(), s->main_thread);

    fprintf(stderr, "%s:%d: FAILED%s%s%s: ", file, line,
            s->test_name ? " [" : "", s->test_name ? s->test_name : "",
            s->test_name ? "]" : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n    bc_last_error(): \"%s\"%s\n", err ? err : "(NULL)",
            is_main ? "" : " (in a worker thread)");
    fflush(stderr);

    if (s->in_child) _exit(1);
    if (!is_main) {
        pthread_mutex_lock(&s->mu);
        s->thread_failures++;
        pthread_mutex_unlock(&s->mu);
        pthread_exit(NULL);
    }
    if (s->in_run) longjmp(s->jmp, 1);
    exit(1);
}

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) check_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);     \
    } while (0)

#define CHECK_MSG(cond, ...)                                                 \
    do {                                                                     \
        if (!(cond)) check_fail(__FILE__, __LINE__, __VA_ARGS__);            \
    } while (0)

/* Evaluates `call` once and requires the exact status `expected`. */
#define CHECK_STATUS(call, expected)                                         \
    do {                                                                     \
        bc_status check_got_ = (call);                                       \
        bc_status check_exp_ = (expected);                                   \
        if (check_got_ != check_exp_)                                        \
            check_fail(__FILE__, __LINE__, "%s\n    expected %s (%d), got %s (%d)", \
                       #call, status_name(check_exp_), (int)check_exp_,     \
                       status_name(check_got_), (int)check_got_);            \
    } while (0)

static inline void check_dump(const char *label, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    size_t i;
    fprintf(stderr, "    %s (%zu bytes):", label, n);
    for (i = 0; i < n && i < 48; i++) fprintf(stderr, " %02x", b[i]);
    if (n > 48) fprintf(stderr, " ...");
    fprintf(stderr, "\n");
}

static inline int check_bytes_equal(const void *got, size_t got_len, const void *exp,
                                    size_t exp_len) {
    if (got_len != exp_len) return 0;
    if (exp_len == 0) return 1;
    if (got == NULL) return 0;
    return memcmp(got, exp, exp_len) == 0;
}

/* Requires got[0..got_len) == exp[0..exp_len) exactly. */
#define CHECK_BYTES(got, got_len, exp, exp_len)                              \
    do {                                                                     \
        const void *cb_got_ = (const void *)(got);                           \
        size_t cb_gl_ = (size_t)(got_len);                                   \
        const void *cb_exp_ = (const void *)(exp);                           \
        size_t cb_el_ = (size_t)(exp_len);                                   \
        if (!check_bytes_equal(cb_got_, cb_gl_, cb_exp_, cb_el_)) {          \
            check_dump("expected", cb_exp_, cb_el_);                         \
            if (cb_got_ || cb_gl_ == 0) check_dump("got     ", cb_got_, cb_gl_); \
            check_fail(__FILE__, __LINE__, "bytes differ: %s (len %zu) vs %s (len %zu)", \
                       #got, cb_gl_, #exp, cb_el_);                          \
        }                                                                    \
    } while (0)

#define CHECK_STR_EQ(got, exp)                                               \
    do {                                                                     \
        const char *cs_got_ = (got);                                         \
        const char *cs_exp_ = (exp);                                         \
        if (cs_got_ == NULL || strcmp(cs_got_, cs_exp_) != 0)                \
            check_fail(__FILE__, __LINE__, "%s: expected \"%s\", got %s%s%s", #got, \
                       cs_exp_, cs_got_ ? "\"" : "", cs_got_ ? cs_got_ : "NULL", \
                       cs_got_ ? "\"" : "");                                 \
    } while (0)

#define CHECK_STR_CONTAINS(got, needle)                                      \
    do {                                                                     \
        const char *cc_got_ = (got);                                         \
        const char *cc_needle_ = (needle);                                   \
        if (cc_got_ == NULL || strstr(cc_got_, cc_needle_) == NULL)          \
            check_fail(__FILE__, __LINE__, "%s: expected it to contain \"%s\", got %s%s%s", \
                       #got, cc_needle_, cc_got_ ? "\"" : "",                \
                       cc_got_ ? cc_got_ : "NULL", cc_got_ ? "\"" : "");     \
    } while (0)

/* Key/value helpers for string literals and buffers. */
#define K(s) ((const uint8_t *)(s)), (sizeof(s) - 1)
#define V(s) ((const uint8_t *)(s)), (sizeof(s) - 1)
#define U8(p) ((const uint8_t *)(p))

/* Requires bc_get(db, key, klen) == BC_OK with exactly the expected bytes.
 * (Variadic so that K("..."), which expands to two arguments, can be used.) */
#define CHECK_GET(...) CHECK_GET_(__VA_ARGS__)
#define CHECK_GET_(db, key, klen, exp, exp_len)                              \
    do {                                                                     \
        uint8_t *cg_val_ = NULL;                                             \
        size_t cg_len_ = 0;                                                  \
        CHECK_STATUS(bc_get((db), (key), (klen), &cg_val_, &cg_len_), BC_OK); \
        CHECK_BYTES(cg_val_, cg_len_, (exp), (exp_len));                     \
        bc_free(cg_val_, cg_len_);                                           \
    } while (0)

/* Requires bc_get(db, key) == BC_NOT_FOUND and output parameters untouched. */
#define CHECK_ABSENT(...) CHECK_ABSENT_(__VA_ARGS__)
#define CHECK_ABSENT_(db, key, klen)                                         \
    do {                                                                     \
        uint8_t cg_sentinel_;                                                \
        uint8_t *cg_val_ = &cg_sentinel_;                                    \
        size_t cg_len_ = 777;                                                \
        CHECK_STATUS(bc_get((db), (key), (klen), &cg_val_, &cg_len_), BC_NOT_FOUND); \
        CHECK_MSG(cg_val_ == &cg_sentinel_ && cg_len_ == 777,                \
                  "bc_get returned BC_NOT_FOUND but wrote its output parameters"); \
        CHECK_STATUS(bc_contains((db), (key), (klen)), BC_NOT_FOUND);        \
    } while (0)

/* ---- opening ------------------------------------------------------------ */

static inline bc_db *check_open_db(const char *file, int line, const char *dir,
                                   const bc_options *opts) {
    bc_db *db = NULL;
    bc_status st = bc_open(dir, opts, &db);
    if (st != BC_OK)
        check_fail(file, line, "bc_open(\"%s\") expected BC_OK, got %s (%d)", dir,
                   status_name(st), (int)st);
    if (db == NULL) check_fail(file, line, "bc_open returned BC_OK but *out == NULL");
    return db;
}

/* Opens dir (opts may be NULL) and requires BC_OK. */
#define open_db(dir, opts) check_open_db(__FILE__, __LINE__, (dir), (opts))

/* Closes db and requires BC_OK. */
#define close_db(db) CHECK_STATUS(bc_close(db), BC_OK)

/* A fresh bc_options with the given sizes (0 = leave the default). */
static inline bc_options *check_make_opts(const char *file, int line, uint64_t max_file,
                                          uint32_t max_key, uint32_t max_value) {
    bc_options *o = NULL;
    bc_status st = bc_options_new(&o);
    if (st != BC_OK || o == NULL)
        check_fail(file, line, "bc_options_new: %s", status_name(st));
    if (max_file && (st = bc_options_set_max_file_size(o, max_file)) != BC_OK)
        check_fail(file, line, "set_max_file_size(%llu): %s", (unsigned long long)max_file,
                   status_name(st));
    if (max_key && (st = bc_options_set_max_key_size(o, max_key)) != BC_OK)
        check_fail(file, line, "set_max_key_size(%u): %s", (unsigned)max_key, status_name(st));
    if (max_value && (st = bc_options_set_max_value_size(o, max_value)) != BC_OK)
        check_fail(file, line, "set_max_value_size(%u): %s", (unsigned)max_value,
                   status_name(st));
    return o;
}
#define make_opts(max_file, max_key, max_value) \
    check_make_opts(__FILE__, __LINE__, (max_file), (max_key), (max_value))

/* ---- temporary directories ------------------------------------------- */

static inline int remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        int rc = 0;
        if (d == NULL) return -1;
        while ((e = readdir(d)) != NULL) {
            char *child;
            size_t n;
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            n = strlen(path) + strlen(e->d_name) + 2;
            child = (char *)malloc(n);
            if (child == NULL) { rc = -1; break; }
            snprintf(child, n, "%s/%s", path, e->d_name);
            if (remove_tree(child) != 0) rc = -1;
            free(child);
        }
        closedir(d);
        if (rmdir(path) != 0) rc = -1;
        return rc;
    }
    return unlink(path);
}

/* A fresh empty directory under $TMPDIR (or /tmp), removed by check_finish().
 * The returned string lives until check_finish(). */
static inline const char *make_temp_dir(void) {
    struct check_state *s = check_state();
    const char *base = getenv("TMPDIR");
    char *p;
    size_t n;
    if (base == NULL || base[0] == '\0') base = "/tmp";
    n = strlen(base) + sizeof("/bitcask-ctest-XXXXXX");
    p = (char *)malloc(n);
    if (p == NULL) check_fail(__FILE__, __LINE__, "out of memory");
    snprintf(p, n, "%s/bitcask-ctest-XXXXXX", base);
    if (mkdtemp(p) == NULL) {
        free(p);
        check_fail(__FILE__, __LINE__, "mkdtemp under %s: %s", base, strerror(errno));
    }
    if (s->ndirs < CHECK_MAX_DIRS) {
        s->dirs[s->ndirs++] = p;
    } else {
        check_fail(__FILE__, __LINE__, "too many temp dirs");
    }
    return p;
}

/* "dir/name" in a string freed by check_finish(). */
static inline const char *path_join(const char *dir, const char *name) {
    struct check_state *s = check_state();
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p;
    if (s->nstrs >= CHECK_MAX_DIRS) check_fail(__FILE__, __LINE__, "too many paths");
    p = (char *)malloc(n);
    if (p == NULL) check_fail(__FILE__, __LINE__, "out of memory");
    snprintf(p, n, "%s/%s", dir, name);
    s->strs[s->nstrs++] = p;
    return p;
}

static inline int path_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Removes the files of dir whose names end in suffix; returns how many
 * (-1 if dir cannot be read). */
static inline int remove_files_with_suffix(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t sl = strlen(suffix);
    int n = 0;
    if (d == NULL) return -1;
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (nl >= sl && strcmp(e->d_name + nl - sl, suffix) == 0) {
            char full[4096];
            snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
            if (unlink(full) == 0) n++;
        }
    }
    closedir(d);
    return n;
}

/* Counts directory entries whose name ends with `suffix`; adds their sizes to
 * *total_bytes and the largest one to *max_bytes when those are non-NULL. */
static inline int count_files_with_suffix(const char *dir, const char *suffix,
                                          uint64_t *total_bytes, uint64_t *max_bytes) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int count = 0;
    size_t sl = strlen(suffix);
    if (total_bytes) *total_bytes = 0;
    if (max_bytes) *max_bytes = 0;
    if (d == NULL) return -1;
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (nl >= sl && strcmp(e->d_name + nl - sl, suffix) == 0) {
            char full[4096];
            struct stat st;
            count++;
            snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
            if (stat(full, &st) == 0) {
                if (total_bytes) *total_bytes += (uint64_t)st.st_size;
                if (max_bytes && (uint64_t)st.st_size > *max_bytes)
                    *max_bytes = (uint64_t)st.st_size;
            }
        }
    }
    closedir(d);
    return count;
}

/* Stores v little-endian, as every integer in the files is. */
static inline void put32(uint8_t *p, uint32_t v) {
    int k;
    for (k = 0; k < 4; k++) p[k] = (uint8_t)(v >> (8 * k));
}

/* CRC-32 (IEEE, the one the files use), bit by bit: for tests that change
 * a field and recompute its checksum, so that only the field is wrong. */
static inline uint32_t crc32_ieee(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    size_t i;
    int k;
    for (i = 0; i < n; i++) {
        c ^= p[i];
        for (k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

/* A fingerprint of a directory's entries: names, sizes and contents (FNV-1a
 * per file, summed, so readdir order does not matter). Equal fingerprints
 * mean no file was added, removed, renamed, truncated or rewritten. */
static inline uint64_t dir_fingerprint(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    uint64_t sum = 0;
    /* A fingerprint of nothing would make every comparison pass. */
    CHECK_MSG(d != NULL, "cannot list %s: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        char full[4096];
        uint64_t h = 1469598103934665603ULL;
        const char *c;
        FILE *f;
        int ch;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        for (c = e->d_name; *c; c++) h = (h ^ (uint8_t)*c) * 1099511628211ULL;
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        f = fopen(full, "rb");
        CHECK_MSG(f != NULL, "cannot read %s: %s", full, strerror(errno));
        while ((ch = fgetc(f)) != EOF) h = (h ^ (uint8_t)ch) * 1099511628211ULL;
        fclose(f);
        sum += h;
    }
    closedir(d);
    return sum;
}

/* Reads a whole small file into buf (NUL-terminated); returns length or -1. */
static inline long read_small_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    size_t n;
    if (f == NULL) return -1;
    n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return (long)n;
}

/* ---- misc -------------------------------------------------------------- */

static inline void sleep_ms(long ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static inline double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* True when the test runs under valgrind (set by tests/c_api.rs): loops shrink. */
static inline int under_valgrind(void) {
    const char *v = getenv("BITCASK_VALGRIND");
    return v != NULL && strcmp(v, "1") == 0;
}

/* Copies bc_last_error() (whose pointer may not outlive the next call). */
static inline void copy_last_error(char *buf, size_t cap) {
    const char *e = bc_last_error();
    snprintf(buf, cap, "%s", e ? e : "(NULL)");
}

/* True if `msg` contains "pid <pid>" with no further digit after the number. */
static inline int mentions_pid(const char *msg, long pid) {
    char needle[48];
    const char *p;
    size_t n;
    if (msg == NULL) return 0;
    n = (size_t)snprintf(needle, sizeof needle, "pid %ld", pid);
    for (p = strstr(msg, needle); p != NULL; p = strstr(p + 1, needle)) {
        if (p[n] < '0' || p[n] > '9') return 1;
    }
    return 0;
}

/* ---- child processes ----------------------------------------------------- */

/* Registers a child pid so check_finish() (or a failed RUN) SIGKILLs and reaps it. */
static inline void track_child(pid_t pid) {
    struct check_state *s = check_state();
    if (s->nchildren < CHECK_MAX_CHILDREN) s->children[s->nchildren++] = pid;
}

/* Forgets a child that was reaped by the test itself. */
static inline void untrack_child(pid_t pid) {
    struct check_state *s = check_state();
    int i;
    for (i = 0; i < s->nchildren; i++) {
        if (s->children[i] == pid) {
            s->children[i] = s->children[--s->nchildren];
            return;
        }
    }
}

static inline void kill_tracked_children(void) {
    struct check_state *s = check_state();
    while (s->nchildren > 0) {
        pid_t pid = s->children[--s->nchildren];
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

/*
 * Runs this same test program again (fork + exec of argv[0]) with the given
 * extra arguments (NULL-terminated). If to_child is non-NULL the child's stdin
 * is a pipe whose write end is stored there (closing it tells the child to
 * finish); if from_child is non-NULL the child's stdout is a pipe whose read
 * end is stored there. stderr is shared. The child is tracked.
 */
static inline pid_t spawn_self(const char *const *args, int *to_child, int *from_child) {
    struct check_state *s = check_state();
    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
    const char *argv[16];
    int n = 0, i;
    pid_t pid;

    argv[n++] = s->argv0;
    for (i = 0; args[i] != NULL && n < 15; i++) argv[n++] = args[i];
    argv[n] = NULL;

    if (to_child && pipe(in_pipe) != 0) check_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
    if (from_child && pipe(out_pipe) != 0) check_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) check_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (to_child) {
            dup2(in_pipe[0], 0);
            close(in_pipe[0]);
            close(in_pipe[1]);
        }
        if (from_child) {
            dup2(out_pipe[1], 1);
            close(out_pipe[0]);
            close(out_pipe[1]);
        }
        execv(s->argv0, (char *const *)argv);
        fprintf(stderr, "execv(%s): %s\n", s->argv0, strerror(errno));
        _exit(127);
    }
    track_child(pid);
    if (to_child) {
        close(in_pipe[0]);
        fcntl(in_pipe[1], F_SETFD, FD_CLOEXEC);
        *to_child = in_pipe[1];
    }
    if (from_child) {
        close(out_pipe[1]);
        fcntl(out_pipe[0], F_SETFD, FD_CLOEXEC);
        *from_child = out_pipe[0];
    }
    return pid;
}

/* Waits for a tracked child and returns its exit code (or 128+signal). */
static inline int wait_child(pid_t pid) {
    int st = 0;
    pid_t r;
    do {
        r = waitpid(pid, &st, 0);
    } while (r < 0 && errno == EINTR);
    untrack_child(pid);
    if (r < 0) return -1;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

/* Reads one byte from fd (e.g. the child's "ready" signal); -1 on EOF/error. */
static inline int read_byte(int fd) {
    unsigned char c;
    ssize_t r;
    do {
        r = read(fd, &c, 1);
    } while (r < 0 && errno == EINTR);
    return r == 1 ? (int)c : -1;
}

/* ---- running ------------------------------------------------------------- */

static inline void check_init(int argc, char **argv) {
    struct check_state *s = check_state();
    (void)argc;
    s->argv0 = argv[0];
    s->main_thread = pthread_self();
    pthread_mutex_init(&s->mu, NULL);
    /* A child that exits early must not kill us with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IONBF, 0);
}

/* Marks this process as a forked child: failed checks _exit(1). */
static inline void check_in_child(void) { check_state()->in_child = 1; }

/* Number of CHECK failures in worker threads so far. */
static inline int thread_failures(void) {
    struct check_state *s = check_state();
    int n;
    pthread_mutex_lock(&s->mu);
    n = s->thread_failures;
    pthread_mutex_unlock(&s->mu);
    return n;
}

#define RUN(fn) check_run(#fn, fn)

static inline void check_run(const char *volatile name, void (*volatile fn)(void)) {
    struct check_state *volatile s = check_state();
    volatile int before = thread_failures();
    volatile double t0 = now_seconds();
    s->test_name = name;
    s->in_run = 1;
    if (setjmp(s->jmp) == 0) {
        fn();
        s->in_run = 0;
        if (thread_failures() != before) {
            fprintf(stderr, "FAIL %s (a worker thread failed)\n", name);
            s->failed_runs++;
        } else {
            printf("ok   %s (%.2fs)\n", name, now_seconds() - t0);
            s->passed_runs++;
        }
    } else {
        s->in_run = 0;
        fprintf(stderr, "FAIL %s\n", name);
        s->failed_runs++;
        kill_tracked_children();
    }
    s->test_name = NULL;
}

/* Removes temp dirs, reaps children, prints a summary; returns main's exit code. */
static inline int check_finish(void) {
    struct check_state *s = check_state();
    int i;
    kill_tracked_children();
    for (i = s->ndirs - 1; i >= 0; i--) {
        remove_tree(s->dirs[i]);
        free(s->dirs[i]);
    }
    s->ndirs = 0;
    for (i = 0; i < s->nstrs; i++) free(s->strs[i]);
    s->nstrs = 0;
    if (s->failed_runs > 0) {
        fprintf(stderr, "%d of %d sub-tests FAILED\n", s->failed_runs,
                s->failed_runs + s->passed_runs);
        return 1;
    }
    printf("all %d sub-tests passed\n", s->passed_runs);
    return 0;
}

/* The stats of db (struct_size set as callers must); fails the sub-test on
 * error. */
static inline bc_stats get_stats(bc_db *db) {
    bc_stats s;
    memset(&s, 0xA5, sizeof s); /* so that an unwritten reserved shows */
    s.struct_size = (uint32_t)sizeof s;
    CHECK_STATUS(bc_get_stats(db, &s), BC_OK);
    CHECK_MSG(s.reserved == 0, "bc_stats.reserved = %lu, expected 0", (unsigned long)s.reserved);
    return s;
}

/* Whether a database in a fresh temporary directory writes through its
 * map by default (bc_stats.writes_through_map): 64-bit targets, on ext4,
 * XFS or tmpfs. Tests of the map's own behaviour skip elsewhere. */
static inline int write_map_here(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    bc_stats s = get_stats(db);
    close_db(db);
    return s.writes_through_map == 1;
}

/* For tests of the write map's own behaviour: true (having said so) where
 * it is not used, and the test should return. */
static inline int skip_without_write_map(void) {
    if (write_map_here()) return 0;
    printf("  NOTE: the write map is not used here (32-bit target, or a filesystem other than "
           "ext4, XFS and tmpfs): skipped\n");
    return 1;
}

/* bc_count of db; fails the sub-test on error. */
static inline uint64_t count_of(bc_db *db) {
    uint64_t n = 0xDEADBEEF;
    CHECK_STATUS(bc_count(db, &n), BC_OK);
    return n;
}

#endif /* BITCASK_C_TESTS_CHECK_H */
