/* sqlite_util.h - shared SQLite plumbing for the repositories: opening a connection with the
 * project's pragmas, schema migrations, and a small per-thread connection pool. A pool is
 * thread-safe; a connection taken from it belongs to one thread until it is given back. */
#ifndef RP_LIB_SQLITE_UTIL_H
#define RP_LIB_SQLITE_UTIL_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>

#include "err.h"

/* Opens (creating) the database at path in multi-thread mode with WAL, synchronous=NORMAL,
 * foreign_keys=ON, busy_timeout 5000 ms and extended result codes. Returns NULL with err
 * (503 STORE_UNAVAILABLE) on failure. Close with sqlite3_close_v2. */
sqlite3 *rp_sqlite_open(const char *path, rp_err_t *err);

/* Applies migrations in order: migrations[i] is the SQL script that brings user_version i to
 * i+1; each runs in its own BEGIN IMMEDIATE transaction, so several processes may start at once.
 * NULL-terminated array. */
bool rp_sqlite_migrate(sqlite3 *db, const char *const *migrations, rp_err_t *err);

/* Runs one SQL script without results; err 503 STORE_ERROR on failure. */
bool rp_sqlite_exec(sqlite3 *db, const char *sql, rp_err_t *err);

/* Sets err from the connection's last error: busy/locked → 503 STORE_BUSY, else 500 STORE_ERROR. */
void rp_sqlite_err(sqlite3 *db, const char *what, rp_err_t *err);

/* Binding and reading the JSON documents the repositories exchange. NULL (or JSON null) binds
 * SQL NULL; SQL NULL reads as JSON null. Times are stored as epoch ms and read as ISO-8601.
 * Returned values are new references. */
void rp_sqlite_bind_text(sqlite3_stmt *st, int i, const char *s);
void rp_sqlite_bind_json(sqlite3_stmt *st, int i, const json_t *v);
json_t *rp_sqlite_col_string(sqlite3_stmt *st, int i);
json_t *rp_sqlite_col_json(sqlite3_stmt *st, int i);
json_t *rp_sqlite_col_time(sqlite3_stmt *st, int i);
json_t *rp_sqlite_col_int(sqlite3_stmt *st, int i);

/* Steps a prepared SELECT (which asked for limit + 1 rows) and collects up to limit rows,
 * converted by row, into *items (a new array); *more says whether another row followed.
 * Finalizes st in every case. */
bool rp_sqlite_collect(sqlite3 *db, sqlite3_stmt *st, int limit, json_t *(*row)(sqlite3_stmt *), json_t **items,
                       bool *more, rp_err_t *err);

typedef struct rp_sqlite_pool rp_sqlite_pool_t;

/* A pool of up to max_conns connections to path, each opened lazily and migrated once. */
rp_sqlite_pool_t *rp_sqlite_pool_new(const char *path, const char *const *migrations, int max_conns, rp_err_t *err);
/* Takes a connection (waits while all are in use). Give it back with rp_sqlite_pool_put. */
sqlite3 *rp_sqlite_pool_get(rp_sqlite_pool_t *p, rp_err_t *err);
void rp_sqlite_pool_put(rp_sqlite_pool_t *p, sqlite3 *db);
/* Closes every connection; none may be in use. Accepts NULL. */
void rp_sqlite_pool_free(rp_sqlite_pool_t *p);
/* The pool's database path (borrowed). */
const char *rp_sqlite_pool_path(const rp_sqlite_pool_t *p);

#endif
