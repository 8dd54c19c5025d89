/* test_status.c - bc_status_str() returns a static, non-empty, distinct string
 * for every documented status and "unknown status" for any other integer;
 * strings stay valid after the thread that fetched them has exited. */
#include "check.h"

/* The highest documented status: a new one moves it. */
#define LAST BC_FAILED

static void test_every_status(void) {
    const char *s[LAST + 1];
    int i, j;
    for (i = 0; i <= LAST; i++) {
        s[i] = bc_status_str(i);
        CHECK_MSG(s[i] != NULL, "bc_status_str(%d) == NULL", i);
        CHECK_MSG(s[i][0] != '\0', "bc_status_str(%d) is empty", i);
        CHECK_MSG(strcmp(s[i], "unknown status") != 0,
                  "bc_status_str(%d) is \"unknown status\" for a documented status", i);
    }
    for (i = 0; i <= LAST; i++)
        for (j = i + 1; j <= LAST; j++)
            CHECK_MSG(strcmp(s[i], s[j]) != 0, "bc_status_str(%d) == bc_status_str(%d) == \"%s\"",
                      i, j, s[i]);
}

static void test_unknown_values(void) {
    static const int32_t unknown[] = {-1, LAST + 1, LAST + 2, 100, 9999, -9999, INT32_MIN, INT32_MAX};
    size_t i;
    for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = bc_status_str(unknown[i]);
        CHECK_MSG(s != NULL, "bc_status_str(%ld) == NULL", (long)unknown[i]);
        CHECK_STR_EQ(s, "unknown status");
    }
}

static const char *from_thread[LAST + 3];

static void *fetch_strings(void *arg) {
    int i;
    (void)arg;
    for (i = 0; i <= LAST; i++) from_thread[i] = bc_status_str(i);
    from_thread[LAST + 1] = bc_status_str(-1);
    from_thread[LAST + 2] = bc_version();
    return NULL;
}

/* Static storage: not per-thread, not freed when a thread exits. */
static void test_strings_outlive_thread(void) {
    pthread_t t;
    int i;
    CHECK(pthread_create(&t, NULL, fetch_strings, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    for (i = 0; i <= LAST; i++) CHECK_STR_EQ(from_thread[i], bc_status_str(i));
    CHECK_STR_EQ(from_thread[LAST + 1], "unknown status");
    CHECK_STR_EQ(from_thread[LAST + 2], bc_version());
}

/* Looking up a string is not an error and changes no error state. */
static void test_does_not_touch_last_error(void) {
    char before[256];
    bc_options *o = make_opts(0, 0, 0);
    CHECK_STATUS(bc_options_set_max_file_size(o, 1), BC_INVALID_ARGUMENT);
    copy_last_error(before, sizeof before);
    (void)bc_status_str(BC_IO);
    (void)bc_status_str(12345);
    CHECK_STR_EQ(bc_last_error(), before);
    bc_options_free(o);
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(test_every_status);
    RUN(test_unknown_values);
    RUN(test_strings_outlive_thread);
    RUN(test_does_not_touch_last_error);
    return check_finish();
}
