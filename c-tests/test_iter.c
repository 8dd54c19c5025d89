/* test_iter.c - bc_iter_new / bc_iter_next / bc_iter_value / bc_iter_free
 * and bc_count: NULL arguments (BC_INVALID_ARGUMENT, outputs untouched,
 * the iterator not moved), all keys (NULL/0) and by prefix, bytewise order
 * with binary keys holding NULs and high bytes, BC_NOT_FOUND at the end and
 * staying there, bc_iter_value before the first key / after the end / for a
 * key deleted after it was returned, a snapshot of the keys (keys deleted
 * later skipped, keys added later unseen, values current), puts, deletes
 * and bc_merge while an iterator is open, empty values, read-only handles,
 * 10,000 keys (valgrind checks nothing leaks, also for a partly consumed
 * iterator), exact bc_count after puts, overwrites, deletes, reopen, merge,
 * and an iterator that outlives its database's bc_close: its calls fail
 * with BC_INVALID_ARGUMENT, outputs untouched, and call the clock no more. */
#include "check.h"

#define CHECK_COUNT(db, expected)                                                         \
    do {                                                                                  \
        uint64_t cc_got_ = count_of(db), cc_exp_ = (uint64_t)(expected);                  \
        CHECK_MSG(cc_got_ == cc_exp_, "bc_count = %llu, expected %llu",                   \
                  (unsigned long long)cc_got_, (unsigned long long)cc_exp_);              \
    } while (0)

/* Requires bc_iter_next == BC_OK with exactly this key. */
#define CHECK_NEXT(it, exp, exp_len)                                                      \
    do {                                                                                  \
        const uint8_t *cn_k_ = NULL;                                                      \
        size_t cn_kl_ = 0;                                                                \
        CHECK_STATUS(bc_iter_next((it), &cn_k_, &cn_kl_), BC_OK);                          \
        CHECK_BYTES(cn_k_, cn_kl_, (exp), (exp_len));                                     \
    } while (0)

/* Requires bc_iter_value == BC_OK with exactly these bytes. */
#define CHECK_VALUE(it, exp, exp_len)                                                     \
    do {                                                                                  \
        uint8_t *cv_v_ = NULL;                                                            \
        size_t cv_vl_ = 0;                                                                \
        CHECK_STATUS(bc_iter_value((it), &cv_v_, &cv_vl_), BC_OK);                        \
        CHECK_BYTES(cv_v_, cv_vl_, (exp), (exp_len));                                     \
        bc_free(cv_v_, cv_vl_);                                                           \
    } while (0)

/* Requires bc_iter_next == BC_NOT_FOUND, outputs untouched. */
#define CHECK_END(it)                                                                     \
    do {                                                                                  \
        const uint8_t *ce_sent_ = (const uint8_t *)"sentinel";                            \
        const uint8_t *ce_k_ = ce_sent_;                                                  \
        size_t ce_kl_ = 4321;                                                             \
        CHECK_STATUS(bc_iter_next((it), &ce_k_, &ce_kl_), BC_NOT_FOUND);                  \
        CHECK_MSG(ce_k_ == ce_sent_ && ce_kl_ == 4321,                                    \
                  "bc_iter_next returned BC_NOT_FOUND but wrote its outputs");            \
    } while (0)

/* Requires bc_iter_value == BC_NOT_FOUND, outputs untouched. */
#define CHECK_NO_VALUE(it)                                                                \
    do {                                                                                  \
        uint8_t cnv_sent_;                                                                \
        uint8_t *cnv_v_ = &cnv_sent_;                                                     \
        size_t cnv_vl_ = 4321;                                                            \
        CHECK_STATUS(bc_iter_value((it), &cnv_v_, &cnv_vl_), BC_NOT_FOUND);               \
        CHECK_MSG(cnv_v_ == &cnv_sent_ && cnv_vl_ == 4321,                                \
                  "bc_iter_value returned BC_NOT_FOUND but wrote its outputs");           \
    } while (0)

static bc_iter *new_iter(bc_db *db, const void *prefix, size_t plen) {
    bc_iter *it = NULL;
    CHECK_STATUS(bc_iter_new(db, (const uint8_t *)prefix, plen, &it), BC_OK);
    CHECK(it != NULL);
    return it;
}

/* ------------------------------------------------------------------------ */

static void test_null_arguments(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    bc_iter *const sentinel = (bc_iter *)(uintptr_t)0x1234;
    bc_iter *it = sentinel;
    const uint8_t *const ksent = (const uint8_t *)"sentinel";
    const uint8_t *key = ksent;
    size_t klen = 999;
    uint8_t vsent, *val = &vsent;
    size_t vlen = 999;
    uint64_t n = 77;

    CHECK_STATUS(bc_iter_new(NULL, NULL, 0, &it), BC_INVALID_ARGUMENT);
    CHECK(it == sentinel);
    CHECK_STATUS(bc_iter_new(NULL, U8("a"), 1, &it), BC_INVALID_ARGUMENT);
    CHECK(it == sentinel);
    CHECK_STATUS(bc_iter_new(db, NULL, 0, NULL), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_iter_new(db, U8("a"), 1, NULL), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_iter_new(db, NULL, 1, &it), BC_INVALID_ARGUMENT);
    CHECK(it == sentinel);
    CHECK_STATUS(bc_iter_new(db, NULL, 100, &it), BC_INVALID_ARGUMENT);
    CHECK(it == sentinel);

    CHECK_STATUS(bc_count(NULL, &n), BC_INVALID_ARGUMENT);
    CHECK(n == 77);
    CHECK_STATUS(bc_count(db, NULL), BC_INVALID_ARGUMENT);

    CHECK_STATUS(bc_iter_next(NULL, &key, &klen), BC_INVALID_ARGUMENT);
    CHECK(key == ksent && klen == 999);
    CHECK_STATUS(bc_iter_value(NULL, &val, &vlen), BC_INVALID_ARGUMENT);
    CHECK(val == &vsent && vlen == 999);
    bc_iter_free(NULL);

    CHECK_STATUS(bc_put(db, K("a"), V("1")), BC_OK);
    CHECK_STATUS(bc_put(db, K("b"), V("2")), BC_OK);
    it = new_iter(db, NULL, 0);
    CHECK(it != sentinel);

    /* before the first bc_iter_next */
    CHECK_NO_VALUE(it);
    CHECK_STATUS(bc_iter_next(it, NULL, &klen), BC_INVALID_ARGUMENT);
    CHECK(klen == 999);
    CHECK_STATUS(bc_iter_next(it, &key, NULL), BC_INVALID_ARGUMENT);
    CHECK(key == ksent);
    CHECK_STATUS(bc_iter_next(it, NULL, NULL), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_iter_value(it, NULL, &vlen), BC_INVALID_ARGUMENT);
    CHECK(vlen == 999);
    CHECK_STATUS(bc_iter_value(it, &val, NULL), BC_INVALID_ARGUMENT);
    CHECK(val == &vsent);

    /* the rejected calls did not move the iterator */
    CHECK_NEXT(it, "a", 1);
    CHECK_STATUS(bc_iter_value(it, NULL, &vlen), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_iter_value(it, &val, NULL), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_iter_value(NULL, &val, &vlen), BC_INVALID_ARGUMENT);
    CHECK(val == &vsent && vlen == 999);
    CHECK_STATUS(bc_iter_next(it, &key, NULL), BC_INVALID_ARGUMENT);
    CHECK_VALUE(it, "1", 1); /* still on "a" */
    CHECK_NEXT(it, "b", 1);
    CHECK_VALUE(it, "2", 1);
    CHECK_END(it);
    CHECK_END(it); /* stays at the end */
    CHECK_NO_VALUE(it);
    CHECK_STATUS(bc_iter_next(it, NULL, NULL), BC_INVALID_ARGUMENT);
    CHECK_END(it);
    bc_iter_free(it);

    /* a non-NULL prefix with plen 0 is no prefix: every key */
    it = new_iter(db, "zzz", 0);
    CHECK_NEXT(it, "a", 1);
    CHECK_NEXT(it, "b", 1);
    CHECK_END(it);
    bc_iter_free(it);
    close_db(db);
}

static void test_empty_database(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    bc_iter *it = new_iter(db, NULL, 0);
    CHECK_COUNT(db, 0);
    CHECK_NO_VALUE(it);
    CHECK_END(it);
    CHECK_END(it);
    CHECK_NO_VALUE(it);
    bc_iter_free(it);
    it = new_iter(db, "a", 1);
    CHECK_END(it);
    bc_iter_free(it);
    /* a key put after the iterator was made is not seen */
    it = new_iter(db, NULL, 0);
    CHECK_STATUS(bc_put(db, K("late"), V("x")), BC_OK);
    CHECK_END(it);
    bc_iter_free(it);
    close_db(db);
}

/* Binary keys, listed in bytewise (unsigned, shorter-prefix-first) order. */
struct bkey {
    const char *k;
    size_t len;
};
#define BK(s) {s, sizeof(s) - 1}
static const struct bkey sorted_keys[] = {
    BK("\0"),    BK("\0\0"),    BK("\0\x01"), BK("A"),  BK("a"),
    BK("a\0"),   BK("a\0b"),    BK("a\x01"),  BK("aa"), BK("ab"),
    BK("b"),     BK("\x7f"),    BK("\x80z"),  BK("\xfe\xff"), BK("\xff"),
    BK("\xff\0"), BK("\xff\xff"),
};
#define NSORTED (sizeof sorted_keys / sizeof sorted_keys[0])

static int bkey_value(char *buf, size_t cap, size_t i) {
    return snprintf(buf, cap, "value-of-%u", (unsigned)i);
}

/* Iterates with `prefix` and requires exactly the sorted keys that start
 * with it, with their values. */
static void check_prefix(bc_db *db, const char *prefix, size_t plen) {
    bc_iter *it = new_iter(db, prefix, plen);
    size_t i;
    char val[32];
    for (i = 0; i < NSORTED; i++) {
        const struct bkey *b = &sorted_keys[i];
        int vl;
        if (b->len < plen || (plen > 0 && memcmp(b->k, prefix, plen) != 0)) continue;
        vl = bkey_value(val, sizeof val, i);
        CHECK_NEXT(it, b->k, b->len);
        CHECK_VALUE(it, val, (size_t)vl);
    }
    CHECK_END(it);
    CHECK_NO_VALUE(it);
    bc_iter_free(it);
}

static void test_order_and_prefixes(void) {
    const char *dir = make_temp_dir();
    bc_db *db = open_db(dir, NULL);
    size_t i, step;
    char val[32];

    /* put in a scrambled order (7 is coprime with the count) */
    for (step = 0, i = 0; step < NSORTED; step++, i = (i + 7) % NSORTED) {
        int vl = bkey_value(val, sizeof val, i);
        CHECK_STATUS(bc_put(db, U8(sorted_keys[i].k), sorted_keys[i].len, U8(val), (size_t)vl),
                     BC_OK);
    }
    CHECK_COUNT(db, NSORTED);

    check_prefix(db, NULL, 0);
    check_prefix(db, "a", 1);
    check_prefix(db, "a\0", 2);
    check_prefix(db, "\0", 1);
    check_prefix(db, "\0\0", 2);
    check_prefix(db, "\xff", 1);
    check_prefix(db, "\xff\xff", 2);
    check_prefix(db, "aa", 2);               /* a whole key */
    check_prefix(db, "aab", 3);              /* longer than every key: nothing */
    check_prefix(db, "c", 1);                /* between keys: nothing */
    check_prefix(db, "\x80", 1);
    check_prefix(db, "A", 1);                /* case matters */
    /* Longer than any key can be (65535): nothing, and the prefix is not
     * read (only 4 bytes are there, on the heap, where valgrind and ASan
     * would see a read past them). */
    {
        uint8_t *small = (uint8_t *)malloc(4);
        size_t lens[] = {65536, (size_t)1 << 31, SIZE_MAX};
        CHECK(small != NULL);
        memcpy(small, "aaaa", 4);
        for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            bc_iter *it = new_iter(db, small, lens[i]);
            CHECK_END(it);
            bc_iter_free(it);
        }
        free(small);
    }

    /* Two iterators interleaved do not disturb each other. */
    {
        bc_iter *x = new_iter(db, NULL, 0), *y = new_iter(db, NULL, 0);
        for (i = 0; i < NSORTED; i++) {
            CHECK_NEXT(x, sorted_keys[i].k, sorted_keys[i].len);
            if (i % 2 == 0) CHECK_NEXT(y, sorted_keys[i / 2].k, sorted_keys[i / 2].len);
        }
        CHECK_END(x);
        bc_iter_free(x);
        bc_iter_free(y); /* freed half way */
    }

    /* the same after a reopen (order does not depend on insertion) */
    close_db(db);
    db = open_db(dir, NULL);
    CHECK_COUNT(db, NSORTED);
    check_prefix(db, NULL, 0);
    check_prefix(db, "a\0", 2);
    close_db(db);
}

/* The keys are those live at bc_iter_new; values are read when asked. */
static void test_snapshot_semantics(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    bc_iter *it;
    char key[16], val[32];
    int i;

    for (i = 0; i < 20; i++) {
        int kl = snprintf(key, sizeof key, "k%02d", i);
        int vl = snprintf(val, sizeof val, "v%02d", i);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), (size_t)vl), BC_OK);
    }
    CHECK_STATUS(bc_put(db, K("k20"), NULL, 0), BC_OK); /* an empty value */
    CHECK_COUNT(db, 21);
    it = new_iter(db, "k", 1);

    CHECK_STATUS(bc_delete(db, K("k05")), BC_OK);
    CHECK_STATUS(bc_delete(db, K("k10")), BC_OK);
    CHECK_STATUS(bc_delete(db, K("k19")), BC_OK);   /* near the end */
    CHECK_STATUS(bc_put(db, K("k03"), V("changed")), BC_OK);
    CHECK_STATUS(bc_put(db, K("k05x"), V("added")), BC_OK); /* would sort between k05 and k06 */
    CHECK_STATUS(bc_put(db, K("k99"), V("added")), BC_OK);
    CHECK_STATUS(bc_put(db, K("a"), V("added")), BC_OK);
    CHECK_COUNT(db, 21 - 3 + 3);

    for (i = 0; i < 20; i++) {
        int kl, vl;
        if (i == 5 || i == 10 || i == 19) continue;
        kl = snprintf(key, sizeof key, "k%02d", i);
        vl = i == 3 ? snprintf(val, sizeof val, "changed") : snprintf(val, sizeof val, "v%02d", i);
        CHECK_NEXT(it, key, (size_t)kl);
        CHECK_VALUE(it, val, (size_t)vl);
        if (i == 7) {
            /* deleted after bc_iter_next returned it: no value, outputs
             * untouched; the iteration goes on */
            CHECK_STATUS(bc_delete(db, K("k07")), BC_OK);
            CHECK_NO_VALUE(it);
            CHECK_NO_VALUE(it);
        }
        if (i == 8) {
            /* overwritten after it was returned: the current value */
            CHECK_STATUS(bc_put(db, K("k08"), V("newer")), BC_OK);
            CHECK_VALUE(it, "newer", 5);
        }
        if (i == 11) {
            /* a key not reached yet, deleted: skipped */
            CHECK_STATUS(bc_delete(db, K("k12")), BC_OK);
            i++;
        }
    }
    CHECK_NEXT(it, "k20", 3); /* the empty value */
    {
        uint8_t *v = NULL;
        size_t vl = 99;
        CHECK_STATUS(bc_iter_value(it, &v, &vl), BC_OK);
        CHECK_MSG(vl == 0, "empty value: vlen %zu", vl);
        bc_free(v, vl);
    }
    CHECK_END(it);
    bc_iter_free(it);
    CHECK_COUNT(db, 21 - 3 + 3 - 2);

    /* a fresh iterator sees the new state */
    it = new_iter(db, "k0", 2);
    CHECK_NEXT(it, "k00", 3);
    CHECK_NEXT(it, "k01", 3);
    CHECK_NEXT(it, "k02", 3);
    CHECK_NEXT(it, "k03", 3);
    CHECK_VALUE(it, "changed", 7);
    CHECK_NEXT(it, "k04", 3);
    CHECK_NEXT(it, "k05x", 4);
    CHECK_VALUE(it, "added", 5);
    CHECK_NEXT(it, "k06", 3);
    CHECK_NEXT(it, "k08", 3);
    CHECK_VALUE(it, "newer", 5);
    CHECK_NEXT(it, "k09", 3);
    CHECK_END(it);
    bc_iter_free(it);
    close_db(db);
}

/* Model for the merge test: gen[i] (0, 1, 2) or -1 when deleted. */
enum { NM = 400 };

static int model_value(char *buf, size_t cap, int i, int gen) {
    return snprintf(buf, cap, "gen%d-of-m%04d-%.*s", gen, i, 40 + (i % 23),
                    "................................................................");
}

static void test_writes_and_merge_while_open(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db = open_db(dir, o);
    static int gen[NM];
    const int nm = under_valgrind() ? NM / 2 : NM;
    bc_iter *it;
    char key[32], val[128];
    int i, g, j, merges = 0, live = nm;

    for (g = 0; g < 2; g++) {
        for (i = 0; i < nm; i++) {
            int kl = snprintf(key, sizeof key, "m%04d", i);
            int vl = model_value(val, sizeof val, i, g);
            CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), (size_t)vl), BC_OK);
            gen[i] = g;
        }
    }
    CHECK_STATUS(bc_put(db, K("other"), V("not in the prefix")), BC_OK);
    it = new_iter(db, "m", 1);

    for (i = 0; i < nm; i++) {
        int kl, vl;
        /* a new key, sorting right after m<i>: never seen by `it` */
        kl = snprintf(key, sizeof key, "m%04d+new", i);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, V("new")), BC_OK);
        if (gen[i] < 0) continue;
        kl = snprintf(key, sizeof key, "m%04d", i);
        CHECK_NEXT(it, key, (size_t)kl);
        if (i % 50 == 0) { /* merge between bc_iter_next and bc_iter_value */
            CHECK_STATUS(bc_merge(db), BC_OK);
            merges++;
        }
        vl = model_value(val, sizeof val, i, gen[i]);
        CHECK_VALUE(it, val, (size_t)vl);

        /* writes ahead of the iterator */
        if (i % 7 == 0 && i + 1 < nm && gen[i + 1] >= 0) {
            kl = snprintf(key, sizeof key, "m%04d", i + 1);
            vl = model_value(val, sizeof val, i + 1, 2);
            CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), (size_t)vl), BC_OK);
            gen[i + 1] = 2;
        }
        if (i % 11 == 0 && i + 3 < nm && gen[i + 3] >= 0) {
            kl = snprintf(key, sizeof key, "m%04d", i + 3);
            CHECK_STATUS(bc_delete(db, U8(key), (size_t)kl), BC_OK);
            gen[i + 3] = -1;
            live--;
        }
        if (i % 100 == 99) { /* merge between bc_iter_value and the next bc_iter_next */
            CHECK_STATUS(bc_merge(db), BC_OK);
            merges++;
        }
    }
    CHECK_END(it);
    bc_iter_free(it);
    /* Merges really ran (a merge with nothing to reclaim does not count). */
    CHECK_MSG(merges >= 4 && get_stats(db).merges >= 4,
              "%d bc_merge calls, stats.merges = %llu", merges,
              (unsigned long long)get_stats(db).merges);
    CHECK_COUNT(db, (uint64_t)live + nm + 1);

    /* a fresh iterator after all that: old and new keys interleaved */
    it = new_iter(db, "m", 1);
    for (i = 0; i < nm; i++) {
        int kl, vl;
        if (gen[i] >= 0) {
            kl = snprintf(key, sizeof key, "m%04d", i);
            vl = model_value(val, sizeof val, i, gen[i]);
            CHECK_NEXT(it, key, (size_t)kl);
            CHECK_VALUE(it, val, (size_t)vl);
        }
        kl = snprintf(key, sizeof key, "m%04d+new", i);
        CHECK_NEXT(it, key, (size_t)kl);
        CHECK_VALUE(it, "new", 3);
    }
    CHECK_END(it);
    bc_iter_free(it);
    close_db(db);

    /* and after a reopen */
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_COUNT(db, (uint64_t)live + nm + 1);
    it = new_iter(db, NULL, 0);
    for (j = 0, i = 0; i < nm; i++) {
        int kl;
        if (gen[i] >= 0) {
            kl = snprintf(key, sizeof key, "m%04d", i);
            CHECK_NEXT(it, key, (size_t)kl);
            j++;
        }
        kl = snprintf(key, sizeof key, "m%04d+new", i);
        CHECK_NEXT(it, key, (size_t)kl);
    }
    CHECK_NEXT(it, "other", 5);
    CHECK_END(it);
    bc_iter_free(it);
    CHECK(j == live);
    close_db(db);
}

/* 10,000 keys put in a scrambled order; under valgrind nothing may leak,
 * neither from a consumed iterator nor from one freed half way. */
enum { NBIG = 10000 };

static void test_many_keys(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    bc_iter *it, *partial;
    char key[32], val[32];
    int i, step;

    for (step = 0, i = 0; step < NBIG; step++, i = (i + 7919) % NBIG) {
        int kl = snprintf(key, sizeof key, "key%08d", i);
        int vl = snprintf(val, sizeof val, "v%d", i * 3);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), (size_t)vl), BC_OK);
    }
    CHECK_COUNT(db, NBIG);

    partial = new_iter(db, NULL, 0);
    it = new_iter(db, NULL, 0);
    for (i = 0; i < NBIG; i++) {
        int kl = snprintf(key, sizeof key, "key%08d", i);
        CHECK_NEXT(it, key, (size_t)kl);
        if (i % 97 == 0) {
            int vl = snprintf(val, sizeof val, "v%d", i * 3);
            CHECK_VALUE(it, val, (size_t)vl);
        }
    }
    CHECK_END(it);
    bc_iter_free(it);

    for (i = 0; i < 10; i++) {
        int kl = snprintf(key, sizeof key, "key%08d", i);
        CHECK_NEXT(partial, key, (size_t)kl);
    }
    CHECK_VALUE(partial, "v27", 3);
    bc_iter_free(partial); /* not consumed */

    it = new_iter(db, "key000001", 9); /* key00000100 .. key00000199 */
    for (i = 100; i < 200; i++) {
        int kl = snprintf(key, sizeof key, "key%08d", i);
        CHECK_NEXT(it, key, (size_t)kl);
    }
    CHECK_END(it);
    bc_iter_free(it);

    it = new_iter(db, NULL, 0); /* never advanced */
    bc_iter_free(it);
    close_db(db);
}

static void test_count_exact(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(4096, 0, 0);
    bc_db *db = open_db(dir, o);
    char key[16];
    int i;

    CHECK_COUNT(db, 0);
    for (i = 0; i < 100; i++) {
        int kl = snprintf(key, sizeof key, "c%03d", i);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, V("first value of a key")), BC_OK);
        CHECK_COUNT(db, i + 1);
    }
    for (i = 0; i < 100; i += 2) { /* overwrites do not count */
        int kl = snprintf(key, sizeof key, "c%03d", i);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, V("second")), BC_OK);
    }
    CHECK_COUNT(db, 100);
    for (i = 0; i < 30; i++) {
        int kl = snprintf(key, sizeof key, "c%03d", i * 3);
        CHECK_STATUS(bc_delete(db, U8(key), (size_t)kl), BC_OK);
    }
    CHECK_COUNT(db, 70);
    for (i = 0; i < 30; i++) { /* deleting again: BC_NOT_FOUND, no change */
        int kl = snprintf(key, sizeof key, "c%03d", i * 3);
        CHECK_STATUS(bc_delete(db, U8(key), (size_t)kl), BC_NOT_FOUND);
    }
    CHECK_COUNT(db, 70);
    CHECK_STATUS(bc_put(db, K("empty"), NULL, 0), BC_OK); /* an empty value is a value */
    CHECK_COUNT(db, 71);
    CHECK_STATUS(bc_put(db, K("c000"), V("back")), BC_OK); /* re-put after delete */
    CHECK_COUNT(db, 72);
    close_db(db);

    db = open_db(dir, o);
    CHECK_COUNT(db, 72);
    CHECK_STATUS(bc_merge(db), BC_OK);
    CHECK_COUNT(db, 72);
    close_db(db);

    /* read-only handle: count and iterate */
    CHECK_STATUS(bc_options_set_read_only(o, true), BC_OK);
    db = open_db(dir, o);
    bc_options_free(o);
    CHECK_COUNT(db, 72);
    {
        bc_iter *it = new_iter(db, "c00", 3);
        CHECK_NEXT(it, "c000", 4);
        CHECK_VALUE(it, "back", 4);
        CHECK_NEXT(it, "c001", 4);
        CHECK_VALUE(it, "first value of a key", 20);
        CHECK_NEXT(it, "c002", 4);
        CHECK_VALUE(it, "second", 6);
        CHECK_NEXT(it, "c004", 4); /* c003 deleted */
        CHECK_NEXT(it, "c005", 4);
        CHECK_NEXT(it, "c007", 4); /* c006 deleted */
        CHECK_NEXT(it, "c008", 4);
        CHECK_END(it);
        bc_iter_free(it);
    }
    close_db(db);
}

static int g_clock_calls;

static uint32_t counting_clock(void *ctx) {
    (void)ctx;
    g_clock_calls++;
    return 1000;
}

/* The iterator's next key and value, if it read on after bc_close, would
 * come from a database another handle now changes, and the clock it calls
 * is the caller's, whose context may be gone. */
static void test_an_iterator_fails_after_close(void) {
    const char *dir = make_temp_dir();
    bc_options *o = make_opts(0, 0, 0);
    const uint8_t *k = NULL, *ksent = (const uint8_t *)"sentinel";
    uint8_t vsent, *v = &vsent;
    size_t kl = 4321, vl = 4321;
    bc_iter *it;
    bc_db *db, *db2;
    CHECK_STATUS(bc_options_set_clock(o, counting_clock, NULL), BC_OK);
    db = open_db(dir, o);
    CHECK_STATUS(bc_put(db, K("a"), V("1")), BC_OK);
    CHECK_STATUS(bc_put_ttl(db, K("b"), V("2"), 60), BC_OK);
    CHECK_STATUS(bc_put(db, K("c"), V("3")), BC_OK);
    it = new_iter(db, NULL, 0);
    CHECK_NEXT(it, "a", 1);
    CHECK_VALUE(it, "1", 1);
    close_db(db);

    /* Another handle changes what the iterator would read next. */
    db2 = open_db(dir, o);
    CHECK_STATUS(bc_delete(db2, K("b")), BC_OK);
    close_db(db2);
    g_clock_calls = 0;

    k = ksent;
    CHECK_STATUS(bc_iter_next(it, &k, &kl), BC_INVALID_ARGUMENT);
    CHECK_STR_CONTAINS(bc_last_error(), "closed");
    CHECK_MSG(k == ksent && kl == 4321, "bc_iter_next failed but wrote its outputs");
    CHECK_STATUS(bc_iter_value(it, &v, &vl), BC_INVALID_ARGUMENT);
    CHECK_MSG(v == &vsent && vl == 4321, "bc_iter_value failed but wrote its outputs");
    CHECK_MSG(g_clock_calls == 0, "the clock was called %d times after bc_close", g_clock_calls);
    bc_iter_free(it);
    bc_options_free(o);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(test_null_arguments);
    RUN(test_empty_database);
    RUN(test_order_and_prefixes);
    RUN(test_snapshot_semantics);
    RUN(test_writes_and_merge_while_open);
    RUN(test_many_keys);
    RUN(test_count_exact);
    RUN(test_an_iterator_fails_after_close);
    return check_finish();
}
