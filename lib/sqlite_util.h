/* sqlite_util.h - shared SQLite plumbing for the stores: opening a connection with the
 * project's pragmas, schema migrations, a small connection pool, the one transaction runner every
 * SQLite store uses (rp_sqlite_transact) and statement helpers. A pool is thread-safe; a
 * connection taken from it belongs to one thread until it is given back. */
#ifndef RP_LIB_SQLITE_UTIL_H
#define RP_LIB_SQLITE_UTIL_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>

#include "err.h"
#include "txn.h"

/* Opens (creating) the database at path in multi-thread mode with WAL, synchronous=NORMAL,
 * foreign_keys=ON, busy_timeout 5000 ms and extended result codes. Returns NULL with err
 * (RP_ERR_STORE_UNAVAILABLE) on failure. Close with sqlite3_close_v2. */
sqlite3 *rp_sqlite_open(const char *path, rp_err_t *err);

/* The schema of one component of a database file (several components may share a file: the
 * event and the reward tables live in events.db). Its steps are applied in order, each once; the
 * table schema_migrations(component, version) keeps how many a file holds, per component, so
 * components grow independently.
 *
 * legacy_steps bootstraps files made before schema_migrations existed, when one list of scripts
 * per file counted in PRAGMA user_version: such a file at user_version v already holds this
 * component's first min(v, legacy_steps) steps (step i was part of that list's script i+1).
 * Steps added since have no legacy version, so legacy_steps stays at the count of the old list. */
typedef struct rp_sqlite_schema {
    const char *component;    /* the key in schema_migrations; NULL ends an array of schemas */
    const char *const *steps; /* SQL scripts, NULL-terminated */
    int legacy_steps;
} rp_sqlite_schema_t;

/* Brings db up to every schema of schemas (an array ended by a NULL component), in order. Each
 * step runs in its own BEGIN IMMEDIATE transaction together with its schema_migrations row, so
 * several processes may start at once: a step another process applied first is skipped, a step
 * that fails leaves nothing behind. False with err (as rp_sqlite_err) on failure. */
bool rp_sqlite_migrate(sqlite3 *db, const rp_sqlite_schema_t *schemas, rp_err_t *err);

/* Runs one SQL script without results; err as rp_sqlite_err on failure. */
bool rp_sqlite_exec(sqlite3 *db, const char *sql, rp_err_t *err);

/* Sets err from the connection's last error: busy/locked → RP_ERR_STORE_BUSY (STORE_BUSY), a
 * unique or primary key → RP_ERR_CONFLICT (DUPLICATE_KEY), else RP_ERR_STORE (STORE_ERROR). */
void rp_sqlite_err(sqlite3 *db, const char *what, rp_err_t *err);

/* ---- statements ---- */

/* Prepares sql on db into *st; false with err on failure (*st is then NULL). */
bool rp_sqlite_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, rp_err_t *err);
/* Steps st to completion (a write, or a query whose rows nobody wants) and finalizes it in every
 * case; false with err unless it reached SQLITE_DONE. *changes (may be NULL) receives
 * sqlite3_changes. A unique-key violation is RP_ERR_CONFLICT. */
bool rp_sqlite_run(sqlite3 *db, sqlite3_stmt *st, const char *what, int *changes, rp_err_t *err);
/* Steps st once: 1 when it stands on a row (read the columns, then finalize), 0 when there is
 * none (finalized), -1 on error (finalized, err set). */
int rp_sqlite_step_row(sqlite3 *db, sqlite3_stmt *st, const char *what, rp_err_t *err);
/* Binds epoch ms, or SQL NULL when ms is 0 (the domain's "not set"). */
void rp_sqlite_bind_ms(sqlite3_stmt *st, int i, int64_t ms);
/* Column i as epoch ms, 0 for NULL. */
int64_t rp_sqlite_col_ms(sqlite3_stmt *st, int i);
/* Copies text column i into dst (cap bytes, truncating, always NUL-terminated; "" for NULL). */
void rp_sqlite_col_copy(sqlite3_stmt *st, int i, char *dst, size_t cap);
/* Text column i as a new string (free()), NULL for SQL NULL. */
char *rp_sqlite_col_strdup(sqlite3_stmt *st, int i);

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

/* The same for typed rows: row fills the element at elem (zeroed first) from the current row.
 * *items is a new array of *n elements of elem_size bytes (free() it, after releasing what row
 * allocated inside the elements); NULL when there are none. */
bool rp_sqlite_collect_into(sqlite3 *db, sqlite3_stmt *st, int limit, void (*row)(sqlite3_stmt *, void *elem),
                            size_t elem_size, void **items, size_t *n, bool *more, rp_err_t *err);

typedef struct rp_sqlite_pool rp_sqlite_pool_t;

/* A pool of up to max_conns connections to path, opened lazily; the first is opened and migrated
 * to schemas (see rp_sqlite_migrate; borrowed for the call only) before this returns, so a bad
 * path or schema fails at start-up. NULL with err on failure. */
rp_sqlite_pool_t *rp_sqlite_pool_new(const char *path, const rp_sqlite_schema_t *schemas, int max_conns, rp_err_t *err);
/* Takes a connection (waits while all are in use). Give it back with rp_sqlite_pool_put. */
sqlite3 *rp_sqlite_pool_get(rp_sqlite_pool_t *p, rp_err_t *err);
void rp_sqlite_pool_put(rp_sqlite_pool_t *p, sqlite3 *db);
/* Closes every connection; none may be in use. Accepts NULL. */
void rp_sqlite_pool_free(rp_sqlite_pool_t *p);
/* The pool's database path (borrowed). */
const char *rp_sqlite_pool_path(const rp_sqlite_pool_t *p);

/* ---- units of work ---- */

/* A body run on a connection; it reports failures through err. */
typedef rp_txn_end_t (*rp_sqlite_txn_fn)(sqlite3 *db, void *arg, rp_err_t *err);

/* The one write transaction of every SQLite store: takes a pooled connection, BEGIN IMMEDIATE
 * (so the body's reads and writes are serialised against every other writer, in this process or
 * another), runs fn, then COMMIT when it returns RP_TXN_COMMIT and ROLLBACK otherwise. Returns
 * true when the body committed or chose to roll back (a refusal, nothing written), false with
 * err when the body, BEGIN or COMMIT failed (nothing written). */
bool rp_sqlite_transact(rp_sqlite_pool_t *p, rp_sqlite_txn_fn fn, void *arg, rp_err_t *err);

/* A read on one snapshot: fn runs inside BEGIN (deferred) ... COMMIT on a pooled connection, so
 * several queries see the same data. Returns what fn returned (COMMIT or ROLLBACK = true). */
bool rp_sqlite_read(rp_sqlite_pool_t *p, rp_sqlite_txn_fn fn, void *arg, rp_err_t *err);

#endif
