/* test_hints.c - hint files (docs/FORMAT.md, hint version 4). After
 * bc_close (also after bc_merge, and after a reopen) every *.data file has a
 * *.hint file and no hint is left without its data file; each hint is
 * checked against docs/FORMAT.md byte for byte (header, trailer data_id and
 * data_len, CRC, the partition table tiling the body with the right counts,
 * every entry in its partition, sorted by (hash, offset), its hash the top
 * folded-multiply hash of its key under the trailer's seed, its lengths
 * and timestamp varints in their shortest form, the 0x80 flag exactly when
 * it carries an expiry, matching the record at its offset, timestamp
 * included, the records tiling the data file), and all hints of a database carry one seed,
 * which reopens and merges keep. Then hints are damaged in every way we can
 * think of (deleted, truncated to 0 / inside the header / header only / one
 * byte short / half, bytes flipped in the header, the version (CRCs fixed),
 * an entry, the middle of the entries, the partition table (CRC fixed) and
 * the trailer, garbage appended, replaced by the data file, only some
 * deleted, copied from another data file of the same length, written in the
 * version 1 and version 2 layouts of older releases, labelled version 3 (whose
 * keys were placed by another hash), a third under another
 * seed (CRC fixed, so valid but for the seed), orphan hints with no data
 * file): bc_open never
 * fails, read-only and read-write, every key reads back exactly (values,
 * deletions, overwrites, TTLs on a fake clock), and a read-write open leaves
 * a valid hint for every data file again, all under one seed. */
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

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }
static void put64(uint8_t *p, uint64_t v) {
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

/* The 128-bit product of a and b, its 64-bit halves xored; from 32-bit
 * halves, so that it needs no __int128 (armv7 has none). */
static uint64_t fold(uint64_t a, uint64_t b) {
    uint64_t al = (uint32_t)a, ah = a >> 32, bl = (uint32_t)b, bh = b >> 32;
    uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    uint64_t mid = (ll >> 32) + (uint32_t)lh + (uint32_t)hl;
    uint64_t lo = (mid << 32) | (uint32_t)ll;
    uint64_t hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    return lo ^ hi;
}

/* The hint's key hash (docs/FORMAT.md, "The seed and the key hash"),
 * written from that text. */
static uint32_t key_hash(uint64_t k0, uint64_t k1, const uint8_t *key, size_t n) {
    const uint64_t P0 = UINT64_C(0xa0761d6478bd642f), P1 = UINT64_C(0xe7037ed1a0b428db),
                   P2 = UINT64_C(0x8ebc6af09c88c6e3);
    uint64_t acc = k0 ^ P0, a = 0, b = 0, h;
    if (n > 16) {
        size_t i = 0;
        for (; n - i > 16; i += 16) acc = fold(le64(key + i) ^ k1 ^ P1, le64(key + i + 8) ^ acc);
        a = le64(key + n - 16), b = le64(key + n - 8);
    } else if (n >= 8) {
        a = le64(key), b = le64(key + n - 8);
    } else if (n >= 4) {
        a = le32(key), b = le32(key + n - 4);
    } else if (n >= 1) {
        a = (uint64_t)key[0] << 16 | (uint64_t)key[n / 2] << 8 | key[n - 1];
    }
    h = fold(a ^ k1 ^ P1, b ^ acc);
    return (uint32_t)(fold(h ^ P2, k1 ^ (uint64_t)n ^ P0) >> 32);
}

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
        if (nl == 16 + sl && nl < 32 && strcmp(e->d_name + 16, suffix) == 0)
            memcpy(names[n++], e->d_name, nl + 1);
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

/* The layout of docs/FORMAT.md. */
enum {
    FILE_HDR = 16,                   /* magic | version | crc, every file */
    PARTS = 64,                      /* hint partitions: top 6 bits of the hash */
    ROW = 12,                        /* table row: count u32 | end u64 */
    TABLE = PARTS * ROW,             /* 768 */
    TRAILER = TABLE + 40,            /* table, seed 2 x u64, data_id, data_len, base, crc */
    ENTRY = 9,                       /* hash | offset | flags, then the varints */
    EXPIRES = 0x80,                  /* entry flag: an expiry u32 follows */
    REC_HDR = 19                     /* data file record header */
};

/* One hint entry: hash u32 | offset u32 | flags u8 | key_len var |
 * value_len var | timestamp - base var | [expiry u32 if flags & 0x80] |
 * key, each var an unsigned LEB128 in its shortest form. */
struct entry {
    uint32_t hash, off, flags, kl, vl, ts, ex;
    size_t ts_bytes;    /* the length of its timestamp varint */
    size_t key_at, end; /* where its key starts; where the entry ends */
};

/* The LEB128 at b[*pos..end), if it is in its shortest form and at most
 * max: 0, else -1. */
static int get_varint(const uint8_t *b, size_t *pos, size_t end, uint64_t max, uint32_t *out) {
    uint64_t v = 0;
    int shift;
    for (shift = 0; shift <= 28; shift += 7) {
        uint8_t c;
        if (*pos >= end) return -1;
        c = b[(*pos)++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if ((c & 0x80) == 0) {
            if ((c == 0 && shift > 0) || v > max) return -1;
            *out = (uint32_t)v;
            return 0;
        }
    }
    return -1;
}

/* The entry at h[pos..end), end its partition's end, base the trailer's
 * timestamp base: NULL, or what is wrong with it. */
static const char *parse_entry(const uint8_t *h, size_t pos, size_t end, uint32_t base,
                               struct entry *e) {
    uint32_t dt;
    if (end - pos < ENTRY) return "is cut by its partition's end";
    e->hash = le32(h + pos);
    e->off = le32(h + pos + 4);
    e->flags = h[pos + 8];
    pos += ENTRY;
    if (get_varint(h, &pos, end, 0xffff, &e->kl) != 0 ||
        get_varint(h, &pos, end, 0x7fffffffu, &e->vl) != 0)
        return "has a length varint that is cut, too long or too large";
    e->ts_bytes = pos;
    if (get_varint(h, &pos, end, 0xffffffffu - base, &dt) != 0)
        return "has a timestamp varint that is cut, too long or too large";
    e->ts_bytes = pos - e->ts_bytes;
    e->ts = base + dt;
    e->ex = 0;
    if (e->flags & EXPIRES) {
        if (end - pos < 4) return "is cut by its partition's end";
        e->ex = le32(h + pos);
        pos += 4;
    }
    if (end - pos < e->kl) return "runs past its partition's end";
    e->key_at = pos;
    e->end = pos + e->kl;
    return NULL;
}

/* A record of the data file, as an entry places it. */
struct span {
    uint64_t off, len;
};

/* Entries with an expiry and tombstone entries hint_problem() has passed:
 * the data set must exercise both; and entries by the length of their
 * timestamp varint (1..5 bytes). */
static long g_seen_expiring, g_seen_tombstones, g_seen_ts_bytes[6];

static int span_cmp(const void *a, const void *b) {
    uint64_t x = ((const struct span *)a)->off, y = ((const struct span *)b)->off;
    return x < y ? -1 : x > y;
}

/* NULL if the hint of data file `data_name` is valid per docs/FORMAT.md
 * (hint version 4) and describes exactly the records of the data file; else
 * why not. On success, seed[] is the hint's seed (k0, k1). */
static const char *hint_problem(const char *dir, const char *data_name, uint64_t seed[2]) {
    static char why[256];
    size_t hl = 0, dl = 0, tab, tail, pos, n = 0, i;
    uint8_t *h = slurp(hint_of(dir, data_name), &hl);
    uint8_t *d = slurp(pjoin(dir, data_name), &dl);
    uint64_t id = strtoull(data_name, NULL, 16), k0, k1, off, last = 0;
    uint32_t base, oldest = UINT32_MAX;
    struct span *recs = NULL;
    const char *r = NULL;
    int p;
#define BAD(...) do { snprintf(why, sizeof why, __VA_ARGS__); r = why; goto out; } while (0)
    if (d == NULL) BAD("cannot read %s", data_name);
    if (h == NULL) BAD("no hint file for %s", data_name);
    /* Data files stay at version 1; a hint never vouches for a bad one. */
    if (dl < FILE_HDR || memcmp(d, "BITCASKD", 8) != 0 || le32(d + 8) != 1 ||
        le32(d + 12) != crc32_ieee(d, 12))
        BAD("%s: bad data file header", data_name);
    if (hl < FILE_HDR + TRAILER) BAD("hint of %s is %zu bytes", data_name, hl);
    if (memcmp(h, "BITCASKH", 8) != 0 || le32(h + 8) != 4 || le32(h + 12) != crc32_ieee(h, 12))
        BAD("hint of %s: bad header (version %u)", data_name, (unsigned)le32(h + 8));
    tab = hl - TRAILER;
    tail = tab + TABLE;
    k0 = le64(h + tail);
    k1 = le64(h + tail + 8);
    if (le64(h + tail + 16) != id)
        BAD("hint of %s: data_id %llx", data_name, (unsigned long long)le64(h + tail + 16));
    if (le64(h + tail + 24) != dl)
        BAD("hint of %s: data_len %llu, the file has %zu bytes", data_name,
            (unsigned long long)le64(h + tail + 24), dl);
    base = le32(h + tail + 32);
    if (le32(h + hl - 4) != crc32_ieee(h, hl - 4))
        BAD("hint of %s: CRC mismatch", data_name);
    recs = (struct span *)malloc(sizeof *recs * (hl / ENTRY + 1));
    if (recs == NULL) BAD("out of memory");
    /* Partition p runs from the previous row's end (16 for p = 0) to its
     * own; the rows tile the body. */
    for (p = 0, pos = FILE_HDR; p < PARTS; p++) {
        uint32_t count = le32(h + tab + (size_t)ROW * p), got = 0;
        uint64_t end = le64(h + tab + (size_t)ROW * p + 4);
        if (end < pos || end > tab)
            BAD("hint of %s: partition %d ends at %llu (starts at %zu, table at %zu)", data_name,
                p, (unsigned long long)end, pos, tab);
        while (pos < end) {
            struct entry e;
            const char *bad = parse_entry(h, pos, end, base, &e);
            const uint8_t *rec;
            if (bad != NULL) BAD("hint of %s: entry at %zu %s", data_name, pos, bad);
            off = e.off;
            if (e.hash >> 26 != (uint32_t)p)
                BAD("hint of %s: entry at %zu has hash %08x in partition %d", data_name, pos,
                    (unsigned)e.hash, p);
            if (n > 0 && ((uint64_t)e.hash << 32 | off) <= last)
                BAD("hint of %s: entry at %zu (hash %08x, offset %llu) not after the previous",
                    data_name, pos, (unsigned)e.hash, (unsigned long long)off);
            last = (uint64_t)e.hash << 32 | off;
            if (e.hash != key_hash(k0, k1, h + e.key_at, e.kl))
                BAD("hint of %s: entry at %zu has hash %08x, its key hashes to %08x", data_name,
                    pos, (unsigned)e.hash, (unsigned)key_hash(k0, k1, h + e.key_at, e.kl));
            if (e.kl == 0 || (e.flags & 0x7e) != 0 || ((e.flags & 1) && e.vl != 0) ||
                ((e.flags & EXPIRES) && e.ex == 0))
                BAD("hint of %s: entry at %zu is insane (key_len %u, flags %02x, expiry %u)",
                    data_name, pos, (unsigned)e.kl, (unsigned)e.flags, (unsigned)e.ex);
            if (off < FILE_HDR || off + REC_HDR + e.kl + e.vl > dl)
                BAD("hint of %s: entry at %zu places a record at %llu, outside the data file",
                    data_name, pos, (unsigned long long)off);
            rec = d + off; /* crc | timestamp | expiry | key_len | value_len | flags | key */
            if (le32(rec + 4) != e.ts || le32(rec + 8) != e.ex || le16(rec + 12) != e.kl ||
                le32(rec + 14) != e.vl || rec[18] != (e.flags & 0x7fu) ||
                memcmp(rec + REC_HDR, h + e.key_at, e.kl) != 0)
                BAD("hint of %s: entry at %zu does not match the record at %llu", data_name, pos,
                    (unsigned long long)off);
            if (e.ts < oldest) oldest = e.ts;
            g_seen_ts_bytes[e.ts_bytes]++;
            g_seen_expiring += (e.flags & EXPIRES) != 0;
            g_seen_tombstones += (e.flags & 1) != 0;
            recs[n].off = off;
            recs[n].len = REC_HDR + (uint64_t)e.kl + e.vl;
            n++;
            got++;
            pos = e.end;
        }
        if (got != count)
            BAD("hint of %s: partition %d has %u entries, its row says %u", data_name, p,
                (unsigned)got, (unsigned)count);
    }
    if (pos != tab)
        BAD("hint of %s: partitions end at %zu, the table is at %zu", data_name, pos, tab);
    if (base != (n > 0 ? oldest : 0))
        BAD("hint of %s: base %u, the oldest of its %zu records is from %u", data_name,
            (unsigned)base, n, (unsigned)oldest);
    /* Every record exactly once: sorted by offset they tile the data file. */
    qsort(recs, n, sizeof *recs, span_cmp);
    for (i = 0, off = FILE_HDR; i < n; i++) {
        if (recs[i].off != off)
            BAD("hint of %s: a record at %llu, expected one at %llu", data_name,
                (unsigned long long)recs[i].off, (unsigned long long)off);
        off += recs[i].len;
    }
    if (off != dl) BAD("hint of %s: records end at %llu, the file at %zu", data_name,
                       (unsigned long long)off, dl);
    seed[0] = k0;
    seed[1] = k1;
#undef BAD
out:
    free(recs);
    free(h);
    free(d);
    return r;
}

/* Every data file has a valid hint, all under one seed (stored in seed[]
 * when not NULL); no hint without its data file. */
static void check_hints(const char *dir, uint64_t seed[2]) {
    int nd = list_files(dir, ".data", g_names, MAXF);
    int nh = list_files(dir, ".hint", g_names2, MAXF);
    uint64_t first[2] = {0, 0}, s[2];
    int i;
    CHECK_MSG(nd > 3 && nd < MAXF, "%d data files", nd);
    for (i = 0; i < nd; i++) {
        const char *why = hint_problem(dir, g_names[i], s);
        CHECK_MSG(why == NULL, "%s", why);
        if (i == 0) memcpy(first, s, sizeof first);
        CHECK_MSG(s[0] == first[0] && s[1] == first[1],
                  "hint of %s has seed %016llx:%016llx, hint of %s %016llx:%016llx", g_names[i],
                  (unsigned long long)s[0], (unsigned long long)s[1], g_names[0],
                  (unsigned long long)first[0], (unsigned long long)first[1]);
    }
    for (i = 0; i < nh; i++) {
        char data[32];
        snprintf(data, sizeof data, "%.16s.data", g_names2[i]);
        CHECK_MSG(path_exists(pjoin(dir, data)), "hint %s has no data file", g_names2[i]);
    }
    CHECK_MSG(nh == nd, "%d hint files for %d data files", nh, nd);
    if (seed != NULL) memcpy(seed, first, sizeof first);
}

/* ---- tests --------------------------------------------------------------- */

/* The check values of docs/FORMAT.md, so that key_hash() is known right
 * before it judges the engine's hashes. */
static void test_key_hash_check_values(void) {
    static const size_t lens[] = {0, 1, 3, 4, 7, 8, 15, 16, 17, 32, 33, 100};
    static const uint32_t want[] = {0x70cc5405, 0xe2a93d3b, 0xf646da5f, 0xd86ef7a8,
                                    0x9370b96a, 0x1fb960fe, 0xd104582d, 0xe6197fe8,
                                    0x6b05fab8, 0x50441af0, 0xf2eb8fe6, 0x38926609};
    uint8_t msg[100];
    size_t i;
    for (i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)i;
    for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint32_t got = key_hash(UINT64_C(0x0706050403020100), UINT64_C(0x0f0e0d0c0b0a0908), msg,
                                lens[i]);
        CHECK_MSG(got == want[i], "key hash of %zu bytes: %08x, expected %08x", lens[i],
                  (unsigned)got, (unsigned)want[i]);
    }
}

static void check_same_seed(const uint64_t a[2], const uint64_t b[2], const char *when) {
    CHECK_MSG(a[0] == b[0] && a[1] == b[1],
              "%s: hints have seed %016llx:%016llx, before %016llx:%016llx", when,
              (unsigned long long)b[0], (unsigned long long)b[1], (unsigned long long)a[0],
              (unsigned long long)a[1]);
}

static void test_every_data_file_has_a_hint(void) {
    const char *dir = make_temp_dir();
    bc_options *o;
    bc_db *db;
    uint64_t seed[2], now[2];
    build(dir);
    g_seen_expiring = g_seen_tombstones = 0;
    check_hints(dir, seed);
    CHECK_MSG(g_seen_expiring > 10 && g_seen_tombstones > 10,
              "the hints hold %ld entries with an expiry and %ld tombstones", g_seen_expiring,
              g_seen_tombstones);

    o = hint_opts(0);
    db = open_db(dir, o); /* a reopen without writes */
    verify(db);
    close_db(db);
    check_hints(dir, now);
    check_same_seed(seed, now, "after a reopen");

    db = open_db(dir, o); /* a few writes, then a merge */
    v_put(db, 1, 5, 0);
    CHECK_STATUS(bc_merge(db), BC_OK);
    v_put(db, 2, 5, 0);
    close_db(db);
    check_hints(dir, now);
    check_same_seed(seed, now, "after a merge"); /* the database keeps its seed */

    db = open_db(dir, o);
    bc_options_free(o);
    verify(db);
    close_db(db);
    check_hints(dir, now);
    check_same_seed(seed, now, "after another reopen");
}

/* Timestamps of every varint length: records written at T0, then 1, 200
 * (two bytes), 20,000 (three), 3,000,000 (four) and 300,000,000 seconds
 * later (five: past 2^28), in sealed files and in merge outputs that mix
 * them. Every hint passes hint_problem() (each entry's timestamp is its
 * record's; the base is the oldest), and timestamps of one to five bytes
 * occur. */
static void test_hint_timestamps(void) {
    static const uint32_t later[] = {0, 1, 200, 20000, 3000000, 300000000};
    const char *dir = make_temp_dir();
    bc_options *o = hint_opts(0);
    bc_db *db;
    char key[32], val[100];
    int r, i;
    memset(val, 'v', sizeof val);
    db = open_db(dir, o);
    for (r = 0; r < 6; r++) {
        set_now(T0 + later[r]);
        for (i = 0; i < 60; i++) {
            int kl = sprintf(key, "t%d-%d", r, i);
            CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), sizeof val), BC_OK);
        }
    }
    close_db(db);
    memset(g_seen_ts_bytes, 0, sizeof g_seen_ts_bytes);
    check_hints(dir, NULL);
    db = open_db(dir, o);
    CHECK_STATUS(bc_merge(db), BC_OK);
    close_db(db);
    bc_options_free(o);
    check_hints(dir, NULL);
    for (i = 1; i <= 5; i++)
        CHECK_MSG(g_seen_ts_bytes[i] > 0, "no entry has a timestamp varint of %d bytes", i);
}

/* The copy the damage tests start from has valid hints and all the data. */
static void test_pristine_copy_is_intact(void) {
    const char *dir = fresh_db();
    bc_options *o = hint_opts(0);
    bc_db *db;
    check_hints(dir, NULL);
    db = open_db(dir, o);
    bc_options_free(o);
    verify(db);
    close_db(db);
    check_hints(dir, NULL);
}

/* The checks above can fail: a valid hint with any one byte changed and its
 * CRC recomputed (except when the byte is in the CRC) is refused by
 * hint_problem(), and the original is accepted. */
static void test_checker_refuses_every_change(void) {
    const char *dir = fresh_db();
    const char *hint;
    uint64_t seed[2];
    size_t len = 0, at;
    uint8_t *b;
    CHECK(list_files(dir, ".data", g_names, MAXF) > 3);
    hint = hint_of(dir, g_names[1]);
    b = slurp(hint, &len);
    CHECK(b != NULL && len > FILE_HDR + TRAILER);
    CHECK(hint_problem(dir, g_names[1], seed) == NULL);
    for (at = 0; at < len; at++) {
        const char *why;
        b[at] ^= (uint8_t)(1u << (at % 8));
        if (at < len - 4) put32(b + len - 4, crc32_ieee(b, len - 4));
        CHECK(spit(hint_of(dir, g_names[1]), b, len) == 0);
        why = hint_problem(dir, g_names[1], seed);
        CHECK_MSG(why != NULL, "a hint with byte %zu of %zu changed passes the checks", at, len);
        /* Undone with its CRC, so the next byte starts from a valid hint. */
        b[at] ^= (uint8_t)(1u << (at % 8));
        put32(b + len - 4, crc32_ieee(b, len - 4));
    }
    CHECK(spit(hint_of(dir, g_names[1]), b, len) == 0);
    CHECK(hint_problem(dir, g_names[1], seed) == NULL);
    free(b);
}

/* Damage applied to one hint file (path) of data file number i. */
typedef void (*damage_fn)(const char *dir, const char *hint, int i, int n);

static void truncate_to(const char *hint, long len) {
    CHECK_MSG(truncate(hint, len) == 0, "truncate %s: %s", hint, strerror(errno));
}

/* Sets the header CRC and the file CRC of hint b[0..len) to match it. */
static void fix_crcs(uint8_t *b, size_t len) {
    put32(b + 12, crc32_ieee(b, 12));
    put32(b + len - 4, crc32_ieee(b, len - 4));
}

/* Flips bit 4 of one byte (counted from the end when at_from_end >= 0);
 * with fix, the CRCs are then recomputed so that byte is all that is
 * wrong. */
static void flip(const char *hint, long at_from_start, long at_from_end, int fix) {
    size_t len = 0;
    uint8_t *b = slurp(hint, &len);
    size_t at;
    CHECK(b != NULL && len >= FILE_HDR + TRAILER);
    at = at_from_end >= 0 ? len - 1 - (size_t)at_from_end : (size_t)at_from_start;
    b[at] ^= 0x10;
    if (fix) fix_crcs(b, len);
    CHECK(spit(hint, b, len) == 0);
    free(b);
}

/* The size of a hint file (at least header + trailer). */
static long hint_size(const char *hint) {
    struct stat st;
    CHECK(stat(hint, &st) == 0);
    CHECK(st.st_size >= FILE_HDR + TRAILER);
    return (long)st.st_size;
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
    (void)dir, (void)i, (void)n;
    truncate_to(hint, hint_size(hint) - 1);
}
static void d_half(const char *dir, const char *hint, int i, int n) {
    (void)dir, (void)i, (void)n;
    truncate_to(hint, hint_size(hint) / 2);
}
static void d_flip_magic(const char *dir, const char *hint, int i, int n) {
    (void)dir, (void)i, (void)n;
    flip(hint, 3, -1, 0);
}
/* Version 3 ^ 0x10 = 19, with the header CRC and the file CRC recomputed:
 * the version is all that is wrong. */
static void d_flip_version(const char *dir, const char *hint, int i, int n) {
    (void)dir, (void)i, (void)n;
    flip(hint, 8, -1, 1);
}
static void d_flip_entry(const char *dir, const char *hint, int i, int n) {
    (void)dir, (void)n;
    flip(hint, FILE_HDR + 8 + (i % 4), -1, 0); /* the first entry's flags or varints */
}
static void d_flip_middle(const char *dir, const char *hint, int i, int n) {
    long len = hint_size(hint);
    (void)dir, (void)i, (void)n;
    flip(hint, FILE_HDR + (len - FILE_HDR - TRAILER) / 2, -1, 0); /* the middle of the entries */
}
/* The end of partition 31 moved by 16 bytes, the CRC recomputed: only the
 * table is wrong (it no longer matches the entries). */
static void d_flip_table(const char *dir, const char *hint, int i, int n) {
    (void)dir, (void)i, (void)n;
    flip(hint, 0, TRAILER - 1 - (ROW * 31 + 4), 1);
}
/* The top bit of partition 5's count, the CRC left wrong (bit rot): open
 * sizes the keydir by the counts before it reads the entries, so a count
 * of 2^31 more entries than the hint could hold must not be believed (it
 * asked for tens of GiB, and the failed allocation aborted the process). */
static void d_huge_count(const char *dir, const char *hint, int i, int n) {
    size_t len = 0;
    uint8_t *b = slurp(hint, &len);
    (void)dir, (void)i, (void)n;
    CHECK(b != NULL && len >= FILE_HDR + TRAILER);
    b[len - TRAILER + ROW * 5 + 3] ^= 0x80;
    CHECK(spit(hint, b, len) == 0);
    free(b);
}
/* data_len (... | data_len u64 | base u32 | crc u32) 16 bytes short, the
 * CRC recomputed: only the length no longer fits the data file. (A whole
 * hint of a longer file says records were lost from the data file's end:
 * open refuses that, torn_tail.rs.) */
static void d_flip_data_len(const char *dir, const char *hint, int i, int n) {
    size_t len = 0;
    uint8_t *b = slurp(hint, &len);
    (void)dir, (void)i, (void)n;
    CHECK(b != NULL && len >= FILE_HDR + TRAILER);
    put64(b + len - 16, le64(b + len - 16) - 16);
    fix_crcs(b, len);
    CHECK(spit(hint, b, len) == 0);
    free(b);
}
static void d_flip_crc(const char *dir, const char *hint, int i, int n) {
    (void)dir, (void)i, (void)n;
    flip(hint, 0, 0, 0);
}
/* A third of the hints under one other seed, their CRCs recomputed: valid
 * but for the seed (their hashes are the old seed's), and outvoted by the
 * other hints' seed. */
static void d_reseed(const char *dir, const char *hint, int i, int n) {
    size_t len = 0;
    uint8_t *b;
    (void)dir, (void)n;
    if (i % 3 != 1) return;
    b = slurp(hint, &len);
    CHECK(b != NULL && len >= FILE_HDR + TRAILER);
    /* seed_k0, just after the partition table */
    put64(b + len - TRAILER + TABLE, le64(b + len - TRAILER + TABLE) ^ UINT64_C(0x5eed5eed5eed5eed));
    fix_crcs(b, len);
    CHECK(spit(hint, b, len) == 0);
    free(b);
}
/* The hint labelled with the previous version, 3 (header CRC fixed): its
 * layout is this version's, but its hashes were SipHash's, so an open that
 * took it would place every key where no lookup finds it. */
static void d_v3(const char *dir, const char *hint, int i, int n) {
    size_t hl = 0;
    uint8_t *h = slurp(hint, &hl);
    (void)dir, (void)i, (void)n;
    CHECK(h != NULL && hl >= FILE_HDR + TRAILER);
    put32(h + 8, 3);
    fix_crcs(h, hl);
    CHECK(spit(hint, h, hl) == 0);
    free(h);
}
/* The hint an older release wrote (hint version 1): header, then per record
 * in file order expiry u32 | key_len u16 | value_len u32 | flags u8 | key,
 * then data_id u64 | data_len u64 | crc u32. */
static void d_v1(const char *dir, const char *hint, int i, int n) {
    size_t dl = 0, len = FILE_HDR, off;
    uint8_t *d = slurp(pjoin(dir, g_names[i]), &dl), *b;
    (void)n;
    CHECK(d != NULL && dl >= FILE_HDR);
    b = (uint8_t *)malloc(dl + 20);
    CHECK(b != NULL);
    memcpy(b, "BITCASKH", 8);
    put32(b + 8, 1);
    for (off = FILE_HDR; off < dl;) {
        uint32_t kl = le16(d + off + 12), vl = le32(d + off + 14);
        CHECK(off + REC_HDR + kl + vl <= dl);
        memcpy(b + len, d + off + 8, 4);
        memcpy(b + len + 4, d + off + 12, 2);
        memcpy(b + len + 6, d + off + 14, 4);
        b[len + 10] = d[off + 18];
        memcpy(b + len + 11, d + off + REC_HDR, kl);
        len += 11 + kl;
        off += REC_HDR + kl + vl;
    }
    put64(b + len, strtoull(g_names[i], NULL, 16));
    put64(b + len + 8, dl);
    len += 20;
    fix_crcs(b, len);
    CHECK(spit(hint, b, len) == 0);
    free(b);
    free(d);
}
/* The hint the previous release wrote (hint version 2), made from this
 * one: the same entries in the same partitions and order, each as hash u32
 * | offset u32 | value_len u32 | key_len u16 | flags u8 | [expiry u32] |
 * key, the table's ends moved to match, and no timestamp base. */
static void d_v2(const char *dir, const char *hint, int i, int n) {
    size_t hl = 0, pos = FILE_HDR, len = FILE_HDR, tab;
    uint8_t *h = slurp(hint, &hl), *b;
    uint64_t ends[PARTS];
    uint32_t base;
    int p;
    (void)dir, (void)i, (void)n;
    CHECK(h != NULL && hl >= FILE_HDR + TRAILER);
    tab = hl - TRAILER;
    base = le32(h + tab + TABLE + 32);
    b = (uint8_t *)malloc(2 * hl); /* entries grow by at most 3 of their >= 13 bytes */
    CHECK(b != NULL);
    memcpy(b, h, FILE_HDR);
    put32(b + 8, 2);
    for (p = 0; p < PARTS; p++) {
        size_t end = (size_t)le64(h + tab + (size_t)ROW * p + 4);
        while (pos < end) {
            struct entry e;
            CHECK(parse_entry(h, pos, end, base, &e) == NULL);
            put32(b + len, e.hash);
            put32(b + len + 4, e.off);
            put32(b + len + 8, e.vl);
            b[len + 12] = (uint8_t)e.kl;
            b[len + 13] = (uint8_t)(e.kl >> 8);
            b[len + 14] = (uint8_t)e.flags;
            len += 15;
            if (e.flags & EXPIRES) {
                put32(b + len, e.ex);
                len += 4;
            }
            memcpy(b + len, h + e.key_at, e.kl);
            len += e.kl;
            pos = e.end;
        }
        ends[p] = len;
    }
    for (p = 0; p < PARTS; p++) {
        memcpy(b + len, h + tab + (size_t)ROW * p, 4); /* count */
        put64(b + len + 4, ends[p]);
        len += ROW;
    }
    memcpy(b + len, h + tab + TABLE, 32); /* seed, data_id, data_len */
    len += 32 + 4;
    fix_crcs(b, len);
    CHECK(spit(hint, b, len) == 0);
    free(b);
    free(h);
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

/* The seed of the hints a damage test's read-write open left. */
static uint64_t g_seed_after[2];

static void run_damage(damage_fn damage, const char *what) {
    const char *dir = fresh_db();
    bc_options *o;
    bc_db *db = NULL;
    bc_status st;
    uint64_t before;
    int n, i;
    n = list_files(dir, ".data", g_names, MAXF);
    CHECK_MSG(n > 3 && n < MAXF, "%d data files", n);
    for (i = 0; i < n; i++) {
        char hint[4096]; /* a copy: the damage functions make paths too */
        snprintf(hint, sizeof hint, "%s", hint_of(dir, g_names[i]));
        damage(dir, hint, i, n);
    }

    o = hint_opts(1); /* read-only first: it cannot rewrite the hints */
    before = dir_fingerprint(dir);
    st = bc_open(dir, o, &db);
    CHECK_MSG(st == BC_OK, "hints %s: read-only bc_open returned %s (%d), expected BC_OK", what,
              status_name(st), (int)st);
    bc_options_free(o);
    verify(db);
    close_db(db);
    CHECK_MSG(dir_fingerprint(dir) == before, "hints %s: a read-only open changed the directory",
              what);

    o = hint_opts(0);
    db = NULL;
    st = bc_open(dir, o, &db);
    CHECK_MSG(st == BC_OK, "hints %s: bc_open returned %s (%d), expected BC_OK", what,
              status_name(st), (int)st);
    verify(db);
    close_db(db);
    check_hints(dir, g_seed_after); /* rewritten, all under one seed */

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
static void test_hints_bad_entry(void) { run_damage(d_flip_entry, "with a flipped entry flag or varint"); }
static void test_hints_bad_middle(void) { run_damage(d_flip_middle, "with a flipped middle byte"); }
static void test_hints_bad_table(void) { run_damage(d_flip_table, "with a wrong partition end"); }
static void test_hints_huge_count(void) { run_damage(d_huge_count, "with a huge partition count"); }
static void test_hints_bad_data_len(void) { run_damage(d_flip_data_len, "with a wrong data_len"); }
static void test_hints_bad_crc(void) { run_damage(d_flip_crc, "with a flipped CRC"); }
static void test_hints_appended(void) { run_damage(d_append, "with garbage appended"); }
static void test_hints_are_data(void) { run_damage(d_data_copy, "replaced by the data files"); }
static void test_hints_swapped(void) { run_damage(d_swap, "copied from other data files"); }
static void test_hints_v1(void) { run_damage(d_v1, "of hint version 1"); }
static void test_hints_v2(void) { run_damage(d_v2, "of hint version 2"); }
static void test_hints_v3(void) { run_damage(d_v3, "labelled hint version 3"); }

/* Hints valid but for their seed are scanned, and the rewritten ones carry
 * the seed of the majority, the pristine hints' seed. */
static void test_hints_reseeded(void) {
    uint64_t seed[2];
    run_damage(d_reseed, "under another seed");
    check_hints(g_pristine, seed);
    check_same_seed(seed, g_seed_after, "after reseeding a third of the hints");
}

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
    RUN(test_key_hash_check_values);
    RUN(test_every_data_file_has_a_hint);
    RUN(test_hint_timestamps);
    RUN(test_pristine_copy_is_intact);
    RUN(test_checker_refuses_every_change);
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
    RUN(test_hints_bad_table);
    RUN(test_hints_huge_count);
    RUN(test_hints_bad_data_len);
    RUN(test_hints_bad_crc);
    RUN(test_hints_appended);
    RUN(test_hints_are_data);
    RUN(test_equal_length_files_exist);
    RUN(test_hints_swapped);
    RUN(test_hints_v1);
    RUN(test_hints_v2);
    RUN(test_hints_v3);
    RUN(test_hints_reseeded);
    RUN(test_orphan_hints);
    return check_finish();
}
