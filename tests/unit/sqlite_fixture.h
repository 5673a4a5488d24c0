/* sqlite_fixture.h - shared by the tests that work on one SQLite file of their own
 * (test_sqlite_util.c, test_sqlite_walbuf.c): a fresh directory per test holding path, and a
 * query's single integer. Static functions and variables; include once per test file. */
#ifndef RP_TESTS_SQLITE_FIXTURE_H
#define RP_TESTS_SQLITE_FIXTURE_H

#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[64], path[96]; /* the test's directory and the file test.db in it */

/* A suite's .init: makes dir and path. */
static void make_dir(void) {
    strcpy(dir, "/tmp/rp-sqlite-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/test.db", dir);
}

/* A suite's .fini: removes dir and everything in it. */
static void remove_dir(void) {
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* The single integer the query answers, -1 when it answers no row. */
static inline int64_t scalar(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

#endif
