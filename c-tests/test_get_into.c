/* test_get_into.c - bc_get_into: exact fit, larger buffer (bytes past the value
 * untouched), small buffer (BC_BUFFER_TOO_SMALL + needed length, buffer
 * untouched), NULL/0 size query, empty values, not found, binary data. */
#include "check.h"

static const char value[] = "hello, get_into"; /* 15 bytes */
#define VLEN (sizeof(value) - 1)

static bc_db *db_with_value(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    CHECK_STATUS(bc_put(db, K("key"), U8(value), VLEN), BC_OK);
    CHECK_STATUS(bc_put(db, K("empty"), NULL, 0), BC_OK);
    return db;
}

static void test_exact_and_larger_buffer(void) {
    bc_db *db = db_with_value();
    uint8_t buf[64];
    size_t vlen = 0, i;

    memset(buf, 0xAA, sizeof buf);
    CHECK_STATUS(bc_get_into(db, K("key"), buf, VLEN, &vlen), BC_OK);
    CHECK_BYTES(buf, vlen, value, VLEN);

    memset(buf, 0xAA, sizeof buf);
    vlen = 0;
    CHECK_STATUS(bc_get_into(db, K("key"), buf, sizeof buf, &vlen), BC_OK);
    CHECK_BYTES(buf, vlen, value, VLEN);
    for (i = VLEN; i < sizeof buf; i++)
        CHECK_MSG(buf[i] == 0xAA, "byte %zu past the value was overwritten (0x%02x)", i, buf[i]);
    close_db(db);
}

static void test_small_buffer(void) {
    bc_db *db = db_with_value();
    uint8_t buf[64];
    size_t vlen = 0, i;

    memset(buf, 0xAA, sizeof buf);
    CHECK_STATUS(bc_get_into(db, K("key"), buf, 4, &vlen), BC_BUFFER_TOO_SMALL);
    CHECK_MSG(vlen == VLEN, "BC_BUFFER_TOO_SMALL: expected needed length %zu, got %zu",
              (size_t)VLEN, vlen);
    {
        /* The message says both sizes (README's conventions). */
        char sizes[64];
        snprintf(sizes, sizeof sizes, "value is %zu bytes, the buffer holds 4", (size_t)VLEN);
        CHECK_STR_CONTAINS(bc_last_error(), sizes);
    }
    for (i = 0; i < sizeof buf; i++)
        CHECK_MSG(buf[i] == 0xAA, "BC_BUFFER_TOO_SMALL but buffer byte %zu was written", i);

    vlen = 0;
    CHECK_STATUS(bc_get_into(db, K("key"), buf, VLEN - 1, &vlen), BC_BUFFER_TOO_SMALL);
    CHECK_MSG(vlen == VLEN, "expected needed length %zu, got %zu", (size_t)VLEN, vlen);

    /* Retry with the reported size. */
    {
        uint8_t *exact = (uint8_t *)malloc(vlen);
        size_t got = 0;
        CHECK(exact != NULL);
        CHECK_STATUS(bc_get_into(db, K("key"), exact, vlen, &got), BC_OK);
        CHECK_BYTES(exact, got, value, VLEN);
        free(exact);
    }
    close_db(db);
}

static void test_size_query(void) {
    bc_db *db = db_with_value();
    size_t vlen = 0;
    uint8_t one;
    CHECK_STATUS(bc_get_into(db, K("key"), NULL, 0, &vlen), BC_BUFFER_TOO_SMALL);
    CHECK_MSG(vlen == VLEN, "size query: expected %zu, got %zu", (size_t)VLEN, vlen);
    /* non-NULL buffer with capacity 0 behaves the same */
    vlen = 0;
    CHECK_STATUS(bc_get_into(db, K("key"), &one, 0, &vlen), BC_BUFFER_TOO_SMALL);
    CHECK_MSG(vlen == VLEN, "cap 0: expected %zu, got %zu", (size_t)VLEN, vlen);
    close_db(db);
}

static void test_empty_value(void) {
    bc_db *db = db_with_value();
    size_t vlen = 77;
    uint8_t buf[4] = {9, 9, 9, 9};
    CHECK_STATUS(bc_get_into(db, K("empty"), NULL, 0, &vlen), BC_OK);
    CHECK_MSG(vlen == 0, "empty value: expected *vlen 0, got %zu", vlen);
    vlen = 77;
    CHECK_STATUS(bc_get_into(db, K("empty"), buf, sizeof buf, &vlen), BC_OK);
    CHECK_MSG(vlen == 0, "empty value: expected *vlen 0, got %zu", vlen);
    CHECK_MSG(buf[0] == 9, "empty value: buffer was written");
    close_db(db);
}

static void test_not_found(void) {
    bc_db *db = db_with_value();
    size_t vlen = 77;
    uint8_t buf[32];
    memset(buf, 0xAA, sizeof buf);
    CHECK_STATUS(bc_get_into(db, K("nope"), buf, sizeof buf, &vlen), BC_NOT_FOUND);
    CHECK_MSG(vlen == 77, "BC_NOT_FOUND wrote *vlen (%zu)", vlen);
    CHECK_MSG(buf[0] == 0xAA, "BC_NOT_FOUND wrote the buffer");
    CHECK_STATUS(bc_get_into(db, K("nope"), NULL, 0, &vlen), BC_NOT_FOUND);
    CHECK_MSG(vlen == 77, "BC_NOT_FOUND wrote *vlen (%zu)", vlen);
    /* deleted */
    CHECK_STATUS(bc_delete(db, K("key")), BC_OK);
    CHECK_STATUS(bc_get_into(db, K("key"), buf, sizeof buf, &vlen), BC_NOT_FOUND);
    CHECK_STATUS(bc_get_into(db, K("key"), NULL, 0, &vlen), BC_NOT_FOUND);
    CHECK_MSG(vlen == 77, "BC_NOT_FOUND wrote *vlen (%zu)", vlen);
    close_db(db);
}

static void test_binary_and_large(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    size_t n = 100000, i, vlen = 0;
    uint8_t *v = (uint8_t *)malloc(n), *buf = (uint8_t *)malloc(n + 1);
    static const uint8_t bkey[3] = {0, 'x', 0};
    CHECK(v != NULL && buf != NULL);
    for (i = 0; i < n; i++) v[i] = (uint8_t)(i % 7 == 0 ? 0 : i);
    CHECK_STATUS(bc_put(db, bkey, sizeof bkey, v, n), BC_OK);
    CHECK_STATUS(bc_get_into(db, bkey, sizeof bkey, buf, n - 1, &vlen), BC_BUFFER_TOO_SMALL);
    CHECK_MSG(vlen == n, "expected needed length %zu, got %zu", n, vlen);
    vlen = 0;
    CHECK_STATUS(bc_get_into(db, bkey, sizeof bkey, buf, n + 1, &vlen), BC_OK);
    CHECK_BYTES(buf, vlen, v, n);
    close_db(db);
    free(v);
    free(buf);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(test_exact_and_larger_buffer);
    RUN(test_small_buffer);
    RUN(test_size_query);
    RUN(test_empty_value);
    RUN(test_not_found);
    RUN(test_binary_and_large);
    return check_finish();
}
