/* test_version.c - bc_version() / bc_version_number() agree with the header
 * macros; BC_VERSION_NUMBER == MAJOR*1000000 + MINOR*1000 + PATCH (checked by
 * the preprocessor and at run time); status and sync-mode values are fixed. */
#include "check.h"

#if !defined(BC_VERSION_MAJOR) || !defined(BC_VERSION_MINOR) || \
    !defined(BC_VERSION_PATCH) || !defined(BC_VERSION_NUMBER)
#error "bitcask.h must define BC_VERSION_MAJOR/MINOR/PATCH/NUMBER as macros"
#endif
#if BC_VERSION_NUMBER != BC_VERSION_MAJOR * 1000000 + BC_VERSION_MINOR * 1000 + BC_VERSION_PATCH
#error "BC_VERSION_NUMBER != MAJOR*1000000 + MINOR*1000 + PATCH"
#endif

static void test_version_string(void) {
    char expected[64];
    const char *v = bc_version();
    snprintf(expected, sizeof expected, "%d.%d.%d", (int)BC_VERSION_MAJOR,
             (int)BC_VERSION_MINOR, (int)BC_VERSION_PATCH);
    CHECK_STR_EQ(v, expected);
    /* static: the same text on every call */
    CHECK_STR_EQ(bc_version(), expected);
}

static void test_version_number(void) {
    uint32_t n = bc_version_number();
    uint32_t computed = (uint32_t)BC_VERSION_MAJOR * 1000000u +
                        (uint32_t)BC_VERSION_MINOR * 1000u + (uint32_t)BC_VERSION_PATCH;
    CHECK_MSG(n == (uint32_t)BC_VERSION_NUMBER, "bc_version_number() = %lu, header says %lu",
              (unsigned long)n, (unsigned long)BC_VERSION_NUMBER);
    CHECK_MSG((uint32_t)BC_VERSION_NUMBER == computed,
              "BC_VERSION_NUMBER = %lu, MAJOR*1000000+MINOR*1000+PATCH = %lu",
              (unsigned long)BC_VERSION_NUMBER, (unsigned long)computed);
    CHECK(BC_VERSION_MINOR < 1000 && BC_VERSION_PATCH < 1000);
}

/* The numeric values are part of the ABI and fixed forever. */
static void test_fixed_values(void) {
    CHECK(sizeof(bc_status) == 4);
    CHECK((bc_status)-1 < 0); /* signed */
    CHECK(BC_OK == 0);
    CHECK(BC_NOT_FOUND == 1);
    CHECK(BC_INVALID_ARGUMENT == 2);
    CHECK(BC_IO == 3);
    CHECK(BC_CORRUPTION == 4);
    CHECK(BC_LOCKED == 5);
    CHECK(BC_TOO_LARGE == 6);
    CHECK(BC_BUFFER_TOO_SMALL == 7);
    CHECK(BC_READ_ONLY == 8);
    CHECK(BC_INTERNAL == 9);
    CHECK(BC_VERSION_MISMATCH == 10);
    CHECK(BC_NO_MEMORY == 11);
    CHECK(BC_SYNC_NONE == 0);
    CHECK(BC_SYNC_ALWAYS == 1);
    CHECK(BC_SYNC_INTERVAL == 2);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(test_version_string);
    RUN(test_version_number);
    RUN(test_fixed_values);
    return check_finish();
}
