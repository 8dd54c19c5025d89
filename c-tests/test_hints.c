/* test_hints.c - hint files. After bc_close (also after bc_merge, and after
 * a reopen) every *.data file has a *.hint file and no hint is left without
 * its data file; each hint is checked against docs/FORMAT.md byte for byte
 * (header, CRC, trailer data_id and data_len, one entry per record matching
 * the record in the data file). Then hints are damaged in every way we can
 * think of (deleted, truncated to 0 / inside the header / header only / one
 * byte short / half, bytes flipped in the header, an entry and the trailer,
 * garbage appended, replaced by the data file, only some deleted, copied
 * from another data file of the same length, orphan hints with no data
 * file): bc_open never fails, read-only and read-write, and every key reads
 * back exactly (values, deletions, overwrites, TTLs on a fake clock), and a
 * read-write open leaves a valid hint for every data file again. */
#include "check.h"

#define T0 1700000000u

static uint32_t g_clock;

static uint32_t fake_now(void *ctx) {
    return __atomic_load_n((uint32_t *)ctx, __ATOMIC_SEQ_CST);
}

static void set_now(uint32_t t) { __atomic_store_n(&g_clock, t, __ATOMIC_SEQ_CST); }

static bc_options *hint_opts(int read_only) {
    bc_options *o = make_opts(4096, 0, 0);
    CHECK_STATUS(bc_options_set_clock(o, fake_now, &g_clock), BC_OK);
    CHECK_STATUS(bc_options_set_read_only(o, read_only ? true : false), BC_OK);
    return o;
}

/* ---- the data set -------------------------------------------------------- */

/* 120 fixed-size records first (so that several data files have the same
 * length), then 300 keys of varying sizes with overwrites, deletes, re-puts
 * and TTLs (expiring at T0+100), a binary key and an empty value. */
enum { NF = 120, NV = 300 };

struct model {
    int gen;      /* -1 deleted */
    int expiring; /* expires at T0 + 100 */
};
static struct model g_model[NV];

static int f_key(char *buf, int i) { return sprintf(buf, "f%04d", i); }
static int f_val(char *buf, int i) {
    return sprintf(buf, "fixed-%04d-%s", i,
                   "0123456789012345678901234567890123456789012345678901234567890123456789"
                   "0123456789012345678");
}
static int v_key(char *buf, int i) { return sprintf(buf, "h%04d", i); }
/* gen g of key i: 1 to 150 bytes, binary after a text prefix. */
static int v_val(uint8_t *buf, int i, int g) {
    int n = sprintf((char *)buf, "g%d/%d:", g, i), len = 1 + (i * 37 + g * 11) % 150, j;
    if (len < n) return len; /* a cut prefix is fine */
    for (j = n; j < len; j++) buf[j] = (uint8_t)(i + j * g + 3 * j);
    return len;
}

static void v_put(bc_db *db, int i, int g, int ttl) {
    char key[16];
    uint8_t val[160];
    int kl = v_key(key, i), vl = v_val(val, i, g);
    CHECK_STATUS(bc_put_ttl(db, U8(key), (size_t)kl, val, (size_t)vl, ttl ? 100u : 0u), BC_OK);
    g_model[i].gen = g;
    g_model[i].expiring = ttl;
}

static void build(const char *dir) {
    bc_options *o = hint_opts(0);
    bc_db *db;
    char key[16], val[128];
    int i;
    set_now(T0);
    db = open_db(dir, o);
    bc_options_free(o);
    for (i = 0; i < NF; i++) {
        int kl = f_key(key, i), vl = f_val(val, i);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), (size_t)vl), BC_OK);
    }
    for (i = 0; i < NV; i++) v_put(db, i, 0, i % 7 == 0);
    for (i = 0; i < NV; i += 3) v_put(db, i, 1, 0);
    for (i = 0; i < NV; i += 5) {
        int kl = v_key(key, i);
        CHECK_STATUS(bc_delete(db, U8(key), (size_t)kl), BC_OK);
        g_model[i].gen = -1;
        g_model[i].expiring = 0;
    }
    for (i = 5; i < NV; i += 10) v_put(db, i, 2, i % 3 == 2);
    CHECK_STATUS(bc_put(db, U8("\0bin\xff"), 5, NULL, 0), BC_OK);
    CHECK_STATUS(bc_put(db, K("last"), V("the last record")), BC_OK);
    close_db(db);
}

/* Every key exactly, at T0+50 (TTL keys there) and T0+100 (gone). */
static void verify(bc_db *db) {
    char key[16], val[128];
    uint8_t vval[160];
    uint64_t live = NF + 2, expiring = 0, n = 0;
    int i, pass;
    for (i = 0; i < NV; i++) {
        if (g_model[i].gen >= 0) live++;
        if (g_model[i].gen >= 0 && g_model[i].expiring) expiring++;
    }
    CHECK_MSG(expiring > 5 && live > NF + 100, "model: %llu live, %llu expiring",
              (unsigned long long)live, (unsigned long long)expiring);
    for (pass = 0; pass < 2; pass++) {
        set_now(pass == 0 ? T0 + 50 : T0 + 100);
        for (i = 0; i < NF; i++) {
            int kl = f_key(key, i), vl = f_val(val, i);
            CHECK_GET(db, U8(key), (size_t)kl, val, (size_t)vl);
        }
        for (i = 0; i < NV; i++) {
            int kl = v_key(key, i);
            if (g_model[i].gen < 0 || (pass == 1 && g_model[i].expiring)) {
                CHECK_ABSENT(db, U8(key), (size_t)kl);
            } else {
                int vl = v_val(vval, i, g_model[i].gen);
                CHECK_GET(db, U8(key), (size_t)kl, vval, (size_t)vl);
            }
        }
        CHECK_GET(db, U8("\0bin\xff"), 5, "", 0);
        CHECK_GET(db, K("last"), "the last record", 15);
        CHECK_STATUS(bc_count(db, &n), BC_OK);
        CHECK_MSG(n == (pass == 0 ? live : live - expiring), "bc_count = %llu, expected %llu",
                  (unsigned long long)n, (unsigned long long)(pass == 0 ? live : live - expiring));
    }
    set_now(T0 + 50);
}

static const char *fresh_db(void);

/* ---- files --------------------------------------------------------------- */

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;
    if (f == NULL) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (uint8_t *)malloc(n > 0 ? (size_t)n : 1);
    if (buf != NULL && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n > 0 ? (size_t)n : 0;
    return buf;
}

static int spit(const char *path, const uint8_t *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (f == NULL) return -1;
    ok = len == 0 || fwrite(buf, 1, len, f) == len;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static uint32_t crc32_ieee(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    size_t i;
    int k;
    for (i = 0; i < n; i++) {
        c ^= p[i];
        for (k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

/* Sorted names of the files in dir ending with suffix, whose stem is 16
 * hex digits. Returns the count (at most cap). */
static int list_files(const char *dir, const char *suffix, char names[][32], int cap) {
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t sl = strlen(suffix);
    int n = 0, i, j;
    if (d == NULL) return -1;
    while ((e = readdir(d)) != NULL && n < cap) {
        size_t nl = strlen(e->d_name);
        if (nl == 16 + sl && strcmp(e->d_name + 16, suffix) == 0)
            snprintf(names[n++], 32, "%s", e->d_name);
    }
    closedir(d);
    for (i = 1; i < n; i++) /* insertion sort */
        for (j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char t[32];
            memcpy(t, names[j], 32);
            memcpy(names[j], names[j - 1], 32);
            memcpy(names[j - 1], t, 32);
        }
    return n;
}

/* "dir/name" in one of 8 rotating buffers (path_join's supply is limited). */
static const char *pjoin(const char *dir, const char *name) {
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

enum { MAXF = 512 };
static char g_names[MAXF][32];
static char g_names2[MAXF][32];

static const char *hint_of(const char *dir, const char *data_name) {
    char name[32];
    snprintf(name, sizeof name, "%.16s.hint", data_name);
    return pjoin(dir, name);
}

/* NULL if the hint of data file `data_name` is valid per docs/FORMAT.md and
 * describes exactly the records of the data file; else why not. */
static const char *hint_problem(const char *dir, const char *data_name) {
    static char why[256];
    size_t hl = 0, dl = 0, pos, end;
    uint8_t *h = slurp(hint_of(dir, data_name), &hl);
    uint8_t *d = slurp(pjoin(dir, data_name), &dl);
    uint64_t id = strtoull(data_name, NULL, 16), off = 16;
    const char *r = NULL;
#define BAD(...) do { snprintf(why, sizeof why, __VA_ARGS__); r = why; goto out; } while (0)
    if (d == NULL) BAD("cannot read %s", data_name);
    if (h == NULL) BAD("no hint file for %s", data_name);
    if (hl < 36) BAD("hint of %s is %zu bytes", data_name, hl); /* header + trailer */
    if (memcmp(h, "BITCASKH", 8) != 0 || le32(h + 8) != 1 || le32(h + 12) != crc32_ieee(h, 12))
        BAD("hint of %s: bad header", data_name);
    end = hl - 20;
    if (le64(h + end) != id)
        BAD("hint of %s: data_id %llx", data_name, (unsigned long long)le64(h + end));
    if (le64(h + end + 8) != dl)
        BAD("hint of %s: data_len %llu, the file has %zu bytes", data_name,
            (unsigned long long)le64(h + end + 8), dl);
    if (le32(h + hl - 4) != crc32_ieee(h, hl - 4)) BAD("hint of %s: CRC mismatch", data_name);
    for (pos = 16; pos < end;) {
        uint32_t kl, vl;
        const uint8_t *rec;
        /* entry: expiry u32 | key_len u16 | value_len u32 | flags u8 | key;
         * its record starts where the previous one ended (off). */
        if (end - pos < 11) BAD("hint of %s: entry cut at %zu", data_name, pos);
        kl = le16(h + pos + 4);
        vl = le32(h + pos + 6);
        if (end - pos < 11 + kl || off + 19 + kl + vl > dl)
            BAD("hint of %s: entry at %zu runs past the end", data_name, pos);
        rec = d + off;
        if (le32(rec + 8) != le32(h + pos) || le16(rec + 12) != kl || le32(rec + 14) != vl ||
            rec[18] != h[pos + 10] || memcmp(rec + 19, h + pos + 11, kl) != 0)
            BAD("hint of %s: entry at %zu does not match the record at %llu", data_name, pos,
                (unsigned long long)off);
        off += 19 + (uint64_t)kl + vl;
        pos += 11 + kl;
    }
    if (off != dl) BAD("hint of %s: records end at %llu, the file at %zu", data_name,
                       (unsigned long long)off, dl);
#undef BAD
out:
    free(h);
    free(d);
    return r;
}

/* Every data file has a valid hint; no hint without its data file. */
static void check_hints(const char *dir) {
    int nd = list_files(dir, ".data", g_names, MAXF);
    int nh = list_files(dir, ".hint", g_names2, MAXF);
    int i;
    CHECK_MSG(nd > 3 && nd < MAXF, "%d data files", nd);
    for (i = 0; i < nd; i++) {
        const char *why = hint_problem(dir, g_names[i]);
        CHECK_MSG(why == NULL, "%s", why);
    }
    for (i = 0; i < nh; i++) {
        char data[32];
        snprintf(data, sizeof data, "%.16s.data", g_names2[i]);
        CHECK_MSG(path_exists(pjoin(dir, data)), "hint %s has no data file", g_names2[i]);
    }
    CHECK_MSG(nh == nd, "%d hint files for %d data files", nh, nd);
}

/* ---- tests --------------------------------------------------------------- */

static void test_every_data_file_has_a_hint(void) {
    const char *dir = make_temp_dir();
    bc_options *o;
    bc_db *db;
    build(dir);
    check_hints(dir);

    o = hint_opts(0);
    db = open_db(dir, o); /* a reopen without writes */
    verify(db);
    close_db(db);
    check_hints(dir);

    db = open_db(dir, o); /* a few writes, then a merge */
    v_put(db, 1, 5, 0);
    CHECK_STATUS(bc_merge(db), BC_OK);
    v_put(db, 2, 5, 0);
    close_db(db);
    check_hints(dir);

    db = open_db(dir, o);
    bc_options_free(o);
    verify(db);
    close_db(db);
    check_hints(dir);
}

/* The copy the damage tests start from has valid hints and all the data. */
static void test_pristine_copy_is_intact(void) {
    const char *dir = fresh_db();
    bc_options *o = hint_opts(0);
    bc_db *db;
    check_hints(dir);
    db = open_db(dir, o);
    bc_options_free(o);
    verify(db);
    close_db(db);
    check_hints(dir);
}

/* Damage applied to one hint file (path) of data file number i. */
typedef void (*damage_fn)(const char *dir, const char *hint, int i, int n);

static void truncate_to(const char *hint, long len) {
    CHECK_MSG(truncate(hint, len) == 0, "truncate %s: %s", hint, strerror(errno));
}

static void flip_at(const char *hint, long at_from_start, long at_from_end) {
    size_t len = 0;
    uint8_t *b = slurp(hint, &len);
    size_t at;
    CHECK(b != NULL && len > 40);
    at = at_from_end >= 0 ? len - 1 - (size_t)at_from_end : (size_t)at_from_start;
    b[at] ^= 0x10;
    CHECK(spit(hint, b, len) == 0);
    free(b);
}

static void d_delete(const char *dir, const char *hint, int i, int n) {
    (void)dir, (void)i, (void)n;
    CHECK(unlink(hint) == 0);
}
static void d_delete_some(const char *dir, const char *hint, int i, int n) {
    (void)dir, (void)n;
    if (i % 2) CHECK(unlink(hint) == 0);
}
static void d_empty(const char *dir, const char *hint, int i, int n) {
    (void)dir, (void)i, (void)n;
    truncate_to(hint, 0);
}
static void d_in_header(const char *dir, const char *hint, int i, int n) {
    (void)dir, (void)i, (void)n;
    truncate_to(hint, 10);
}
static void d_header_only(const char *dir, const char *hint, int i, int n) {
    (void)dir, (void)i, (void)n;
    truncate_to(hint, 16);
}
static void d_one_short(const char *dir, const char *hint, int i, int n) {
    struct stat st;
    (void)dir, (void)i, (void)n;
    CHECK(stat(hint, &st) == 0);
    truncate_to(hint, (long)st.st_size - 1);
}
static void d_half(const char *dir, const char *hint, int i, int n) {
    struct stat st;
    (void)dir, (void)i, (void)n;
    CHECK(stat(hint, &st) == 0);
    truncate_to(hint, (long)st.st_size / 2);
}
static void d_flip_magic(const char *dir, const char *hint, int i, int n) {
    (void)dir, (void)i, (void)n;
    flip_at(hint, 3, -1);
}
static void d_flip_version(const char *dir, const char *hint, int i, int n) {
    (void)dir, (void)i, (void)n;
    flip_at(hint, 8, -1);
}
static void d_flip_entry(const char *dir, const char *hint, int i, int n) {
    (void)dir, (void)n;
    flip_at(hint, 16 + 6 + (i % 4), -1); /* the first entry's value_len */
}
static void d_flip_middle(const char *dir, const char *hint, int i, int n) {
    struct stat st;
    (void)dir, (void)i, (void)n;
    CHECK(stat(hint, &st) == 0);
    flip_at(hint, (long)st.st_size / 2, -1);
}
static void d_flip_data_len(const char *dir, const char *hint, int i, int n) {
    (void)dir, (void)i, (void)n;
    flip_at(hint, 0, 4 + 7); /* lowest byte of data_len */
}
static void d_flip_crc(const char *dir, const char *hint, int i, int n) {
    (void)dir, (void)i, (void)n;
    flip_at(hint, 0, 0);
}
static void d_append(const char *dir, const char *hint, int i, int n) {
    FILE *f = fopen(hint, "ab");
    (void)dir, (void)i, (void)n;
    CHECK(f != NULL);
    fputs("garbage", f);
    fclose(f);
}
static void d_data_copy(const char *dir, const char *hint, int i, int n) {
    size_t len = 0;
    uint8_t *b = slurp(pjoin(dir, g_names[i]), &len);
    (void)n;
    CHECK(b != NULL);
    CHECK(spit(hint, b, len) == 0);
    free(b);
}

/* Each hint replaced by the (valid) hint of another data file, one of the
 * same length when there is one: only data_id tells them apart. */
static uint8_t *g_hints[MAXF];
static size_t g_hint_len[MAXF];
static off_t g_data_len[MAXF];

static void d_swap(const char *dir, const char *hint, int i, int n) {
    int j, pick = -1;
    if (i == 0) { /* load every hint first */
        for (j = 0; j < n; j++) {
            struct stat st;
            g_hints[j] = slurp(hint_of(dir, g_names[j]), &g_hint_len[j]);
            CHECK(g_hints[j] != NULL);
            CHECK(stat(pjoin(dir, g_names[j]), &st) == 0);
            g_data_len[j] = st.st_size;
        }
    }
    for (j = 1; j < n && pick < 0; j++) /* the next file of the same length */
        if (g_data_len[(i + j) % n] == g_data_len[i]) pick = (i + j) % n;
    if (pick < 0) pick = (i + 1) % n;
    CHECK(spit(hint, g_hints[pick], g_hint_len[pick]) == 0);
    if (i == n - 1)
        for (j = 0; j < n; j++) {
            free(g_hints[j]);
            g_hints[j] = NULL;
        }
}

/* The database every damage test starts from: built once, then copied
 * (building it costs an fsync per data file). */
static const char *g_pristine;
static struct model g_pristine_model[NV];

static void copy_dir(const char *from, const char *to) {
    DIR *d = opendir(from);
    struct dirent *e;
    CHECK(d != NULL);
    while ((e = readdir(d)) != NULL) {
        char src[4096], dst[4096];
        struct stat st;
        size_t len = 0;
        uint8_t *b;
        snprintf(src, sizeof src, "%s/%s", from, e->d_name);
        if (stat(src, &st) != 0 || !S_ISREG(st.st_mode) || strcmp(e->d_name, "LOCK") == 0)
            continue;
        snprintf(dst, sizeof dst, "%s/%s", to, e->d_name);
        b = slurp(src, &len);
        CHECK(b != NULL || len == 0);
        CHECK(spit(dst, b, len) == 0);
        free(b);
    }
    closedir(d);
}

/* A fresh copy of the pristine database, with g_model set to match. */
static const char *fresh_db(void) {
    const char *dir = make_temp_dir();
    if (g_pristine == NULL) {
        const char *p = make_temp_dir();
        build(p);
        memcpy(g_pristine_model, g_model, sizeof g_model);
        g_pristine = p;
    }
    copy_dir(g_pristine, dir);
    memcpy(g_model, g_pristine_model, sizeof g_model);
    return dir;
}

static void run_damage(damage_fn damage, const char *what) {
    const char *dir = fresh_db();
    bc_options *o;
    bc_db *db = NULL;
    bc_status st;
    int n, i;
    n = list_files(dir, ".data", g_names, MAXF);
    CHECK_MSG(n > 3 && n < MAXF, "%d data files", n);
    for (i = 0; i < n; i++) {
        char hint[4096]; /* a copy: the damage functions make paths too */
        snprintf(hint, sizeof hint, "%s", hint_of(dir, g_names[i]));
        damage(dir, hint, i, n);
    }

    o = hint_opts(1); /* read-only first: it cannot rewrite the hints */
    st = bc_open(dir, o, &db);
    CHECK_MSG(st == BC_OK, "hints %s: read-only bc_open returned %s (%d), expected BC_OK", what,
              status_name(st), (int)st);
    bc_options_free(o);
    verify(db);
    close_db(db);

    o = hint_opts(0);
    db = NULL;
    st = bc_open(dir, o, &db);
    CHECK_MSG(st == BC_OK, "hints %s: bc_open returned %s (%d), expected BC_OK", what,
              status_name(st), (int)st);
    verify(db);
    close_db(db);
    check_hints(dir); /* rewritten */

    if (!under_valgrind()) { /* and used (skipped under valgrind: time) */
        db = open_db(dir, o);
        verify(db);
        close_db(db);
    }
    bc_options_free(o);
}

static void test_hints_deleted(void) { run_damage(d_delete, "deleted"); }
static void test_some_hints_deleted(void) { run_damage(d_delete_some, "half deleted"); }
static void test_hints_empty(void) { run_damage(d_empty, "truncated to 0 bytes"); }
static void test_hints_cut_in_header(void) { run_damage(d_in_header, "truncated to 10 bytes"); }
static void test_hints_header_only(void) { run_damage(d_header_only, "truncated to 16 bytes"); }
static void test_hints_one_byte_short(void) { run_damage(d_one_short, "one byte short"); }
static void test_hints_half(void) { run_damage(d_half, "cut in half"); }
static void test_hints_bad_magic(void) { run_damage(d_flip_magic, "with a flipped magic byte"); }
static void test_hints_bad_version(void) { run_damage(d_flip_version, "with a flipped version"); }
static void test_hints_bad_entry(void) { run_damage(d_flip_entry, "with a flipped entry length"); }
static void test_hints_bad_middle(void) { run_damage(d_flip_middle, "with a flipped middle byte"); }
static void test_hints_bad_data_len(void) { run_damage(d_flip_data_len, "with a wrong data_len"); }
static void test_hints_bad_crc(void) { run_damage(d_flip_crc, "with a flipped CRC"); }
static void test_hints_appended(void) { run_damage(d_append, "with garbage appended"); }
static void test_hints_are_data(void) { run_damage(d_data_copy, "replaced by the data files"); }
static void test_hints_swapped(void) { run_damage(d_swap, "copied from other data files"); }

/* The swap test is only meaningful if files of equal length exist. */
static void test_equal_length_files_exist(void) {
    const char *dir = fresh_db();
    int n, i, j, pairs = 0;
    n = list_files(dir, ".data", g_names, MAXF);
    for (i = 0; i < n; i++) {
        struct stat a, b;
        CHECK(stat(pjoin(dir, g_names[i]), &a) == 0);
        for (j = i + 1; j < n; j++) {
            CHECK(stat(pjoin(dir, g_names[j]), &b) == 0);
            if (a.st_size == b.st_size) pairs++;
        }
    }
    CHECK_MSG(pairs > 0, "no two data files of the same length among %d", n);
}

/* Hints with no data file (a copy under an unused id, larger and smaller
 * than every real one) are not data. */
static void test_orphan_hints(void) {
    const char *dir = fresh_db();
    bc_options *o;
    bc_db *db;
    size_t len = 0;
    uint8_t *b;
    int n;
    n = list_files(dir, ".data", g_names, MAXF);
    CHECK(n > 3);
    b = slurp(hint_of(dir, g_names[1]), &len);
    CHECK(b != NULL);
    CHECK(spit(pjoin(dir, "7fffffff00000000.hint"), b, len) == 0);
    CHECK(spit(pjoin(dir, "0000000000000001.hint"), b, len) == 0);
    free(b);
    o = hint_opts(1);
    db = open_db(dir, o);
    verify(db);
    close_db(db);
    bc_options_free(o);
    o = hint_opts(0);
    db = open_db(dir, o);
    verify(db);
    v_put(db, 3, 9, 0);
    close_db(db);
    db = open_db(dir, o);
    bc_options_free(o);
    verify(db);
    close_db(db);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(test_every_data_file_has_a_hint);
    RUN(test_pristine_copy_is_intact);
    RUN(test_hints_deleted);
    RUN(test_some_hints_deleted);
    RUN(test_hints_empty);
    RUN(test_hints_cut_in_header);
    RUN(test_hints_header_only);
    RUN(test_hints_one_byte_short);
    RUN(test_hints_half);
    RUN(test_hints_bad_magic);
    RUN(test_hints_bad_version);
    RUN(test_hints_bad_entry);
    RUN(test_hints_bad_middle);
    RUN(test_hints_bad_data_len);
    RUN(test_hints_bad_crc);
    RUN(test_hints_appended);
    RUN(test_hints_are_data);
    RUN(test_equal_length_files_exist);
    RUN(test_hints_swapped);
    RUN(test_orphan_hints);
    return check_finish();
}
