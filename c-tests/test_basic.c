/* test_basic.c - put / get / delete / contains / sync round trips, empty values,
 * binary keys and values, caller buffers not retained. */
#include "check.h"

static void test_put_get(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    CHECK_STATUS(bc_put(db, K("hello"), V("world")), BC_OK);
    CHECK_GET(db, K("hello"), "world", 5);
    CHECK_STATUS(bc_contains(db, K("hello")), BC_OK);
    /* A prefix or extension of a key is a different key. */
    CHECK_ABSENT(db, K("hell"));
    CHECK_ABSENT(db, K("hello!"));
    CHECK_ABSENT(db, K("Hello"));
    CHECK_STATUS(bc_sync(db), BC_OK);
    close_db(db);
}

static void test_overwrite(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    CHECK_STATUS(bc_put(db, K("k"), V("1")), BC_OK);
    CHECK_STATUS(bc_put(db, K("k"), V("twenty-two")), BC_OK);
    CHECK_GET(db, K("k"), "twenty-two", 10);
    CHECK_STATUS(bc_put(db, K("k"), V("3")), BC_OK); /* shorter than before */
    CHECK_GET(db, K("k"), "3", 1);
    close_db(db);
}

static void test_delete(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    CHECK_STATUS(bc_put(db, K("a"), V("alpha")), BC_OK);
    CHECK_STATUS(bc_put(db, K("b"), V("beta")), BC_OK);
    CHECK_STATUS(bc_delete(db, K("a")), BC_OK);
    CHECK_ABSENT(db, K("a"));
    CHECK_GET(db, K("b"), "beta", 4);
    /* Deleting again: the key is absent now. */
    CHECK_STATUS(bc_delete(db, K("a")), BC_NOT_FOUND);
    /* Never existed. */
    CHECK_STATUS(bc_delete(db, K("zzz")), BC_NOT_FOUND);
    /* A deleted key can be written again. */
    CHECK_STATUS(bc_put(db, K("a"), V("again")), BC_OK);
    CHECK_GET(db, K("a"), "again", 5);
    close_db(db);
}

static void test_empty_value(void) {
    static const uint8_t some[4] = {1, 2, 3, 4};
    bc_db *db = open_db(make_temp_dir(), NULL);
    uint8_t *val;
    size_t vlen;

    /* NULL + 0 */
    CHECK_STATUS(bc_put(db, K("null-empty"), NULL, 0), BC_OK);
    /* non-NULL + 0 */
    CHECK_STATUS(bc_put(db, K("ptr-empty"), some, 0), BC_OK);

    vlen = 12345;
    val = NULL;
    CHECK_STATUS(bc_get(db, K("null-empty"), &val, &vlen), BC_OK);
    CHECK_MSG(vlen == 0, "empty value: expected *vlen 0, got %zu", vlen);
    CHECK_MSG(val != NULL, "empty value: *val must be a non-NULL pointer");
    /* A real address: Go's runtime aborts on a pointer below 4096 found on
     * a goroutine's stack (Rust's empty allocations point at 1). */
    CHECK_MSG((uintptr_t)val >= 4096, "empty value: *val is %p, not an address", (void *)val);
    bc_free(val, vlen);
    vlen = 12345;
    val = NULL;
    CHECK_STATUS(bc_get(db, K("ptr-empty"), &val, &vlen), BC_OK);
    CHECK_MSG(vlen == 0, "empty value: expected *vlen 0, got %zu", vlen);
    CHECK_MSG(val != NULL, "empty value: *val must be a non-NULL pointer");
    bc_free(val, vlen);

    /* Found-but-empty is not "not found". */
    CHECK_STATUS(bc_contains(db, K("null-empty")), BC_OK);
    CHECK_STATUS(bc_contains(db, K("ptr-empty")), BC_OK);
    CHECK_ABSENT(db, K("never-written"));

    /* Empty -> non-empty -> empty. */
    CHECK_STATUS(bc_put(db, K("null-empty"), V("x")), BC_OK);
    CHECK_GET(db, K("null-empty"), "x", 1);
    CHECK_STATUS(bc_put(db, K("null-empty"), NULL, 0), BC_OK);
    CHECK_GET(db, K("null-empty"), "", 0);

    /* Deleting an empty-valued key works (it exists). */
    CHECK_STATUS(bc_delete(db, K("ptr-empty")), BC_OK);
    CHECK_ABSENT(db, K("ptr-empty"));
    close_db(db);
}

static void test_binary_keys_and_values(void) {
    static const uint8_t k_nul[1] = {0};
    static const uint8_t k_nul2[2] = {0, 0};
    static const uint8_t k_a[1] = {'a'};
    static const uint8_t k_a_nul[2] = {'a', 0};
    static const uint8_t k_a_nul_b[3] = {'a', 0, 'b'};
    static const uint8_t k_a_nul_c[3] = {'a', 0, 'c'};
    static const uint8_t k_hi[2] = {0xff, 0xfe};
    const uint8_t *keys[7];
    size_t klens[7] = {1, 2, 1, 2, 3, 3, 2};
    uint8_t all_bytes[256];
    uint8_t vals[7][8];
    size_t i;
    bc_db *db = open_db(make_temp_dir(), NULL);

    keys[0] = k_nul; keys[1] = k_nul2; keys[2] = k_a; keys[3] = k_a_nul;
    keys[4] = k_a_nul_b; keys[5] = k_a_nul_c; keys[6] = k_hi;
    for (i = 0; i < 7; i++) {
        /* values with embedded and trailing NULs, distinct per key */
        memset(vals[i], 0, sizeof vals[i]);
        vals[i][1] = (uint8_t)(i + 1);
        vals[i][3] = 0xff;
        CHECK_STATUS(bc_put(db, keys[i], klens[i], vals[i], sizeof vals[i]), BC_OK);
    }
    for (i = 0; i < 7; i++) CHECK_GET(db, keys[i], klens[i], vals[i], sizeof vals[i]);

    for (i = 0; i < 256; i++) all_bytes[i] = (uint8_t)i;
    CHECK_STATUS(bc_put(db, k_a_nul_b, 3, all_bytes, sizeof all_bytes), BC_OK);
    CHECK_GET(db, k_a_nul_b, 3, all_bytes, sizeof all_bytes);
    CHECK_GET(db, k_a_nul_c, 3, vals[5], sizeof vals[5]);

    CHECK_STATUS(bc_delete(db, k_a_nul, 2), BC_OK);
    CHECK_ABSENT(db, k_a_nul, 2);
    CHECK_GET(db, k_a, 1, vals[2], sizeof vals[2]);
    CHECK_GET(db, k_a_nul_b, 3, all_bytes, sizeof all_bytes);
    close_db(db);
}

static void test_many_keys(void) {
    enum { N = 2000 };
    bc_db *db = open_db(make_temp_dir(), NULL);
    char key[32], val[400];
    int i;
    for (i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof key, "key-%d", i);
        size_t vl = (size_t)(i % 300) + 1;
        memset(val, 'a' + i % 26, vl);
        CHECK_STATUS(bc_put(db, U8(key), (size_t)kl, U8(val), vl), BC_OK);
    }
    for (i = 0; i < N; i += 2) {
        int kl = snprintf(key, sizeof key, "key-%d", i);
        CHECK_STATUS(bc_delete(db, U8(key), (size_t)kl), BC_OK);
    }
    for (i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof key, "key-%d", i);
        size_t vl = (size_t)(i % 300) + 1;
        if (i % 2 == 0) {
            CHECK_ABSENT(db, U8(key), (size_t)kl);
        } else {
            memset(val, 'a' + i % 26, vl);
            CHECK_GET(db, U8(key), (size_t)kl, val, vl);
        }
    }
    close_db(db);
}

static void test_large_value(void) {
    size_t n = 1u << 20, i;
    uint8_t *big = (uint8_t *)malloc(n);
    bc_db *db = open_db(make_temp_dir(), NULL);
    CHECK(big != NULL);
    for (i = 0; i < n; i++) big[i] = (uint8_t)(i * 7 + i / 251);
    CHECK_STATUS(bc_put(db, K("big"), big, n), BC_OK);
    CHECK_GET(db, K("big"), big, n);
    close_db(db);
    free(big);
}

/* The library copies what it needs: caller buffers may be reused at once,
 * and a returned value is the caller's own copy. */
static void test_buffers_not_retained(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    char key[8], val[8];
    uint8_t *got;
    size_t glen;
    memcpy(key, "key1", 4);
    memcpy(val, "val1", 4);
    CHECK_STATUS(bc_put(db, U8(key), 4, U8(val), 4), BC_OK);
    memcpy(key, "XXXX", 4);
    memcpy(val, "YYYY", 4);
    CHECK_GET(db, K("key1"), "val1", 4);
    CHECK_ABSENT(db, K("XXXX"));

    CHECK_STATUS(bc_get(db, K("key1"), &got, &glen), BC_OK);
    CHECK_BYTES(got, glen, "val1", 4);
    memset(got, 'Z', glen);
    bc_free(got, glen);
    CHECK_GET(db, K("key1"), "val1", 4);
    close_db(db);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(test_put_get);
    RUN(test_overwrite);
    RUN(test_delete);
    RUN(test_empty_value);
    RUN(test_binary_keys_and_values);
    RUN(test_many_keys);
    RUN(test_large_value);
    RUN(test_buffers_not_retained);
    return check_finish();
}
