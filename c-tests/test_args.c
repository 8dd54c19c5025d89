/* test_args.c - NULL / empty arguments to every exported function, output
 * parameters untouched on failure, bc_last_error() behaviour (set by errors,
 * NOT changed by BC_NOT_FOUND), harmless NULL for close / free functions. */
#include "check.h"

/* Requires a non-empty bc_last_error() right after a failing call. */
#define CHECK_HAS_ERROR()                                                    \
    do {                                                                     \
        const char *he_ = bc_last_error();                                   \
        CHECK_MSG(he_ != NULL && he_[0] != '\0',                             \
                  "expected a non-empty bc_last_error() after a failure");  \
    } while (0)

/* Must run first: nothing has failed on this thread yet. */
static void test_last_error_initially_empty(void) {
    const char *e = bc_last_error();
    CHECK(e != NULL);
    CHECK_STR_EQ(e, "");
}

static void test_open_null_args(void) {
    const char *dir = make_temp_dir();
    bc_db *sentinel = (bc_db *)(uintptr_t)0x1234;
    bc_db *db = sentinel;

    CHECK_STATUS(bc_open(NULL, NULL, &db), BC_INVALID_ARGUMENT);
    CHECK_HAS_ERROR();
    CHECK_MSG(db == sentinel, "bc_open failed but wrote *out");

    CHECK_STATUS(bc_open(dir, NULL, NULL), BC_INVALID_ARGUMENT);
    CHECK_HAS_ERROR();

    /* An empty path is an invalid argument. */
    db = sentinel;
    CHECK_STATUS(bc_open("", NULL, &db), BC_INVALID_ARGUMENT);
    CHECK_MSG(db == sentinel, "bc_open(\"\") failed but wrote *out");

    /* The valid call still works afterwards. */
    db = open_db(dir, NULL);
    close_db(db);
}

static void test_put_null_args(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    CHECK_STATUS(bc_put(NULL, K("k"), V("v")), BC_INVALID_ARGUMENT);
    CHECK_HAS_ERROR();
    CHECK_STATUS(bc_put(db, NULL, 1, V("v")), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_put(db, NULL, 0, V("v")), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_put(db, U8("k"), 0, V("v")), BC_INVALID_ARGUMENT); /* empty key */
    CHECK_HAS_ERROR();
    CHECK_STATUS(bc_put(db, K("k"), NULL, 1), BC_INVALID_ARGUMENT);    /* NULL value, vlen > 0 */
    CHECK_HAS_ERROR();
    /* Nothing was written by the failed calls. */
    CHECK_ABSENT(db, K("k"));
    close_db(db);
}

static void test_get_null_args(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    uint8_t sentinel;
    uint8_t *val = &sentinel;
    size_t vlen = 4242;

    /* The key exists, so NOT_FOUND cannot hide a missing NULL check. */
    CHECK_STATUS(bc_put(db, K("k"), V("v")), BC_OK);

    CHECK_STATUS(bc_get(NULL, K("k"), &val, &vlen), BC_INVALID_ARGUMENT);
    CHECK_HAS_ERROR();
    CHECK_STATUS(bc_get(db, NULL, 1, &val, &vlen), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_get(db, U8("k"), 0, &val, &vlen), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_get(db, K("k"), NULL, &vlen), BC_INVALID_ARGUMENT);
    CHECK_MSG(vlen == 4242, "bc_get failed but wrote *vlen (%zu)", vlen);
    CHECK_STATUS(bc_get(db, K("k"), &val, NULL), BC_INVALID_ARGUMENT);
    CHECK_MSG(val == &sentinel, "bc_get failed but wrote *val");
    CHECK_STATUS(bc_get(db, K("k"), NULL, NULL), BC_INVALID_ARGUMENT);
    CHECK_MSG(val == &sentinel && vlen == 4242, "bc_get failed but wrote its outputs");
    close_db(db);
}

static void test_get_into_null_args(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    uint8_t buf[8] = {0};
    size_t vlen = 4242;

    CHECK_STATUS(bc_put(db, K("k"), V("v")), BC_OK);
    CHECK_STATUS(bc_get_into(NULL, K("k"), buf, sizeof buf, &vlen), BC_INVALID_ARGUMENT);
    CHECK_HAS_ERROR();
    CHECK_STATUS(bc_get_into(db, NULL, 1, buf, sizeof buf, &vlen), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_get_into(db, U8("k"), 0, buf, sizeof buf, &vlen), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_get_into(db, K("k"), buf, sizeof buf, NULL), BC_INVALID_ARGUMENT);
    /* NULL buffer with a non-zero capacity is not a size query. */
    CHECK_STATUS(bc_get_into(db, K("k"), NULL, 8, &vlen), BC_INVALID_ARGUMENT);
    CHECK_MSG(vlen == 4242, "bc_get_into failed but wrote *vlen (%zu)", vlen);
    CHECK_MSG(buf[0] == 0, "bc_get_into failed but wrote the buffer");
    close_db(db);
}

static void test_delete_contains_null_args(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    CHECK_STATUS(bc_put(db, K("k"), V("v")), BC_OK);
    CHECK_STATUS(bc_delete(NULL, K("k")), BC_INVALID_ARGUMENT);
    CHECK_HAS_ERROR();
    CHECK_STATUS(bc_delete(db, NULL, 1), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_delete(db, U8("k"), 0), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_contains(NULL, K("k")), BC_INVALID_ARGUMENT);
    CHECK_HAS_ERROR();
    CHECK_STATUS(bc_contains(db, NULL, 1), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_contains(db, U8("k"), 0), BC_INVALID_ARGUMENT);
    /* The key survived the failed deletes. */
    CHECK_GET(db, K("k"), "v", 1);
    close_db(db);
}

static void test_sync_merge_null_db(void) {
    CHECK_STATUS(bc_sync(NULL), BC_INVALID_ARGUMENT);
    CHECK_HAS_ERROR();
    CHECK_STATUS(bc_merge(NULL), BC_INVALID_ARGUMENT);
    CHECK_HAS_ERROR();
}

static void test_options_null_args(void) {
    CHECK_STATUS(bc_options_new(NULL), BC_INVALID_ARGUMENT);
    CHECK_HAS_ERROR();
    CHECK_STATUS(bc_options_set_max_file_size(NULL, 1u << 20), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_max_key_size(NULL, 100), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_max_value_size(NULL, 100), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_sync(NULL, BC_SYNC_NONE, 0), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_read_only(NULL, true), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_create_if_missing(NULL, false), BC_INVALID_ARGUMENT);
    CHECK_STATUS(bc_options_set_repair(NULL, true), BC_INVALID_ARGUMENT);
    CHECK_HAS_ERROR();
}

/* Functions documented to accept NULL. */
static void test_null_is_harmless(void) {
    CHECK_STATUS(bc_close(NULL), BC_OK);
    bc_free(NULL, 0);
    bc_options_free(NULL);
    CHECK(bc_status_str(BC_OK) != NULL);
}

/* BC_NOT_FOUND is an outcome, not an error: bc_last_error() keeps the
 * message of the last real failure. */
static void test_not_found_keeps_last_error(void) {
    bc_db *db = open_db(make_temp_dir(), NULL);
    char before[512];
    uint8_t *val;
    size_t vlen;
    uint8_t buf[4];

    CHECK_STATUS(bc_put(db, U8("k"), 0, V("v")), BC_INVALID_ARGUMENT);
    copy_last_error(before, sizeof before);
    CHECK_MSG(before[0] != '\0', "expected a message after BC_INVALID_ARGUMENT");

    CHECK_STATUS(bc_delete(db, K("absent")), BC_NOT_FOUND);
    CHECK_STR_EQ(bc_last_error(), before);
    CHECK_STATUS(bc_get(db, K("absent"), &val, &vlen), BC_NOT_FOUND);
    CHECK_STR_EQ(bc_last_error(), before);
    CHECK_STATUS(bc_get_into(db, K("absent"), buf, sizeof buf, &vlen), BC_NOT_FOUND);
    CHECK_STR_EQ(bc_last_error(), before);
    CHECK_STATUS(bc_contains(db, K("absent")), BC_NOT_FOUND);
    CHECK_STR_EQ(bc_last_error(), before);

    /* Also for a key that existed and was deleted. */
    CHECK_STATUS(bc_put(db, K("gone"), V("x")), BC_OK);
    CHECK_STATUS(bc_delete(db, K("gone")), BC_OK);
    CHECK_STATUS(bc_put(db, NULL, 3, V("v")), BC_INVALID_ARGUMENT);
    copy_last_error(before, sizeof before);
    CHECK_STATUS(bc_delete(db, K("gone")), BC_NOT_FOUND);
    CHECK_STR_EQ(bc_last_error(), before);
    CHECK_STATUS(bc_get(db, K("gone"), &val, &vlen), BC_NOT_FOUND);
    CHECK_STR_EQ(bc_last_error(), before);
    close_db(db);
}

/* A new error replaces the previous message. */
static void test_last_error_updates(void) {
    char first[512];
    bc_options *o = NULL;
    CHECK_STATUS(bc_options_new(&o), BC_OK);
    CHECK_STATUS(bc_options_set_max_key_size(o, 0), BC_INVALID_ARGUMENT);
    copy_last_error(first, sizeof first);
    CHECK_MSG(first[0] != '\0', "expected a message after BC_INVALID_ARGUMENT");
    {
        const char *dir = make_temp_dir();
        const char *missing = path_join(dir, "missing-dir");
        bc_db *db = NULL;
        CHECK_STATUS(bc_options_set_create_if_missing(o, false), BC_OK);
        CHECK_STATUS(bc_open(missing, o, &db), BC_IO);
        CHECK_MSG(strcmp(bc_last_error(), first) != 0,
                  "bc_last_error() still holds the previous message \"%s\"", first);
        CHECK_STR_CONTAINS(bc_last_error(), "missing-dir");
    }
    bc_options_free(o);
}

/* "No call prints anything": failing calls write nothing to stdout/stderr. */
static void test_library_prints_nothing(void) {
    const char *dir = make_temp_dir();
    const char *capture = path_join(dir, "captured-output");
    int saved_out, saved_err, fd;
    long n;
    char buf[512];
    bc_db *db, *db2 = NULL;
    bc_options *o = NULL;
    uint8_t *val;
    size_t vlen;

    fflush(stdout);
    fflush(stderr);
    fd = open(capture, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    saved_out = dup(1);
    saved_err = dup(2);
    CHECK(saved_out >= 0 && saved_err >= 0);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);

    /* failures of every kind that can be provoked cheaply */
    db = NULL;
    (void)bc_open(NULL, NULL, &db);
    (void)bc_open(path_join(dir, "captured-output"), NULL, &db); /* a regular file */
    (void)bc_options_new(&o);
    (void)bc_options_set_max_file_size(o, 1);
    (void)bc_options_set_sync(o, 99, 0);
    (void)bc_options_set_create_if_missing(o, false);
    (void)bc_open(path_join(dir, "nope"), o, &db);
    bc_options_free(o);
    db = NULL;
    CHECK_STATUS(bc_open(path_join(dir, "db"), NULL, &db), BC_OK);
    (void)bc_open(path_join(dir, "db"), NULL, &db2); /* BC_LOCKED */
    (void)bc_put(db, NULL, 1, NULL, 0);
    (void)bc_put(db, K("k"), NULL, 5);
    (void)bc_get(db, K("absent"), &val, &vlen);
    (void)bc_get_into(db, K("absent"), NULL, 4, &vlen);
    (void)bc_delete(db, K("absent"));
    (void)bc_close(db);
    (void)bc_sync(NULL);
    (void)bc_merge(NULL);

    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    n = read_small_file(capture, buf, sizeof buf);
    CHECK_MSG(n == 0, "the library printed %ld bytes: \"%s\"", n, n > 0 ? buf : "");
}

int main(int argc, char **argv) {
    check_init(argc, argv);
    RUN(test_last_error_initially_empty); /* must be first */
    RUN(test_open_null_args);
    RUN(test_put_null_args);
    RUN(test_get_null_args);
    RUN(test_get_into_null_args);
    RUN(test_delete_contains_null_args);
    RUN(test_sync_merge_null_db);
    RUN(test_options_null_args);
    RUN(test_null_is_harmless);
    RUN(test_not_found_keeps_last_error);
    RUN(test_last_error_updates);
    RUN(test_library_prints_nothing);
    return check_finish();
}
