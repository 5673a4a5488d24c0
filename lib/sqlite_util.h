/* sqlite_util.h - shared SQLite plumbing for the stores: opening a connection with the
 * project's pragmas, schema migrations, a small connection pool and a store's handle on it, the
 * one transaction runner every SQLite store uses (rp_sqlite_transact), statement helpers, rows to
 * records and JSON by table, and the operator audit log. A pool is thread-safe; a
 * connection taken from it belongs to one thread until it is given back. */
#ifndef RP_LIB_SQLITE_UTIL_H
#define RP_LIB_SQLITE_UTIL_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "err.h"
#include "json_fields.h"
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
 * full disk (or max_page_count reached) → RP_ERR_STORE_UNAVAILABLE (STORE_FULL), a unique or
 * primary key → RP_ERR_CONFLICT (DUPLICATE_KEY), else RP_ERR_STORE (STORE_ERROR). */
void rp_sqlite_err(sqlite3 *db, const char *what, rp_err_t *err);

/* ---- statements ---- */

/* Prepares sql on db into *st (on a pooled connection, a statement kept from an earlier use of
 * the same SQL text at the same address); false with err on failure (*st is then NULL). End its
 * use with rp_sqlite_finalize. */
bool rp_sqlite_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, rp_err_t *err);
/* Steps st to completion (a write, or a query whose rows nobody wants) and finalizes it in every
 * case; false with err unless it reached SQLITE_DONE. *changes (may be NULL) receives
 * sqlite3_changes. A unique-key violation is RP_ERR_CONFLICT. */
bool rp_sqlite_run(sqlite3 *db, sqlite3_stmt *st, const char *what, int *changes, rp_err_t *err);
/* Steps st once: 1 when it stands on a row (read the columns, then finalize), 0 when there is
 * none (finalized), -1 on error (finalized, err set). */
int rp_sqlite_step_row(sqlite3 *db, sqlite3_stmt *st, const char *what, rp_err_t *err);
/* Ends the use of a statement from rp_sqlite_prepare: a pooled connection resets it and keeps it
 * for the next rp_sqlite_prepare of the same SQL, any other connection finalises it. Accepts
 * NULL. Use it instead of sqlite3_finalize on every statement rp_sqlite_prepare made. */
void rp_sqlite_finalize(sqlite3_stmt *st);
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

/* A new JSON object of the current row of st, member t->fields[k] read from column first + k. */
json_t *rp_sqlite_row_json(sqlite3_stmt *st, int first, const rp_json_table_t *t);

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

/* The page cache of each connection opened from now on, in KiB (SQLITE_CACHE_KIB). SQLite's own
 * default is about 2 MiB per connection; a process pools up to WORKER_THREADS connections per
 * store, and a cache fills with whatever pages were last read, so the default let every worker
 * grow for the whole of a 10-minute soak (bench/README.md). Rows the cache misses come from the
 * kernel's page cache. Process-wide; set before the stores open. */
#define RP_SQLITE_CACHE_KIB_DEFAULT 256
/* A pool's write connection (group commits) takes this many times as much: 4 MiB by default,
 * where 2 MiB missed about 2.5 pages per embedded grant, read from the kernel while every other
 * write of the file waited (a build may set another with -DRP_SQLITE_WRITER_CACHE_FACTOR=N, to
 * measure; bench/README.md). */
#ifndef RP_SQLITE_WRITER_CACHE_FACTOR
#define RP_SQLITE_WRITER_CACHE_FACTOR 16
#endif
void rp_sqlite_set_cache_kib(int kib);
/* A pool's writer leaves checkpoints to a thread of the pool, woken when a commit leaves the WAL
 * at this many pages or more (about 32 MiB), instead of checkpointing at SQLite's 1,000 itself.
 * 2,000 and 16,000 did no better than 4,000 for embedded claims on 2 and 3 December. On 5
 * December, with a claim's CPU under half of what it was then and the checkpointer 13 % of it,
 * 8,000 served 3-20 % more than 4,000 in six pairs: a hot page is copied once per checkpoint,
 * however often it was written (bench/README.md; a build may set another with
 * -DRP_SQLITE_CHECKPOINT_PAGES=N, to measure). */
#ifndef RP_SQLITE_CHECKPOINT_PAGES
#define RP_SQLITE_CHECKPOINT_PAGES 8000
#endif
/* The size in bytes the WAL file is cut back to when it starts over: twice the threshold's pages,
 * where the writer checkpoints itself. */
#define RP_SQLITE_WAL_LIMIT_BYTES (2L * RP_SQLITE_CHECKPOINT_PAGES * 4096)

/* A pool of max_conns connections to path, and one more that only rp_sqlite_transact's group
 * commits use, all opened before this returns: the first is migrated to schemas (see
 * rp_sqlite_migrate; borrowed for the call only), so a bad path or schema, or a process out of
 * descriptors, fails at start-up. Connections are handed out in turn (the longest idle first), so
 * each is warm after the first minutes. NULL with err on failure. */
rp_sqlite_pool_t *rp_sqlite_pool_new(const char *path, const rp_sqlite_schema_t *schemas, int max_conns, rp_err_t *err);
/* Takes a connection (waits while all are in use). Give it back with rp_sqlite_pool_put. */
sqlite3 *rp_sqlite_pool_get(rp_sqlite_pool_t *p, rp_err_t *err);
void rp_sqlite_pool_put(rp_sqlite_pool_t *p, sqlite3 *db);
/* What SQLite holds in this process's pools: the page caches, prepared statements and schemas of
 * every pooled connection, writer and checkpointer included (SQLite's own count, through
 * sqlite3_db_status: Debian builds it without sqlite3_memory_used). Each connection's figures are
 * as its holder last read them, on letting it go, at most once a second; a closed connection
 * counts nothing. Part of the heap in use (lib/memory.h): the page caches fill as the files
 * grow, up to SQLITE_CACHE_KIB per connection (8 times that for a writer), which a leak does
 * not stop at (bench/soak.sh). cache_bound is the sum of those sizes over the open connections,
 * from their opening: what the caches may fill to (each page also carries SQLite's header of a
 * few hundred bytes, so a full cache counts up to about an eighth more), and it changes only
 * when a connection opens or closes. */
typedef struct rp_sqlite_memory {
    size_t cache, statements, schemas; /* bytes */
    size_t cache_bound;                /* bytes */
} rp_sqlite_memory_t;
void rp_sqlite_memory_read(rp_sqlite_memory_t *out);

/* What the writers of this process's pools did since it started (all pools summed): the group
 * commits, the writes that went through rp_sqlite_transact and its kind, how long each waited
 * from joining the writer's queue until its outcome was known (the group's commit, or its own
 * transaction for one that runs alone), and the checkpoints. Under load a write's wait is the
 * group before its own, its own, and being woken: what an embedded claim's latency is made of
 * (bench/README.md, 2026-12-05 eighth sitting). checkpoints_writer counts the checkpoints run by
 * the connection whose commit took the WAL to its bound (see lib/sqlite_util.c, "checkpoints"):
 * the writer, or a reader's own write; they hold up every write queued meanwhile, and
 * checkpoint_us is their time. wait_buckets[i] counts the waits of at most RP_SQLITE_WAIT_BOUNDS_MS[i] (and above the
 * bound before); the last, the rest. */
#define RP_SQLITE_WAIT_BUCKETS 10
extern const double RP_SQLITE_WAIT_BOUNDS_MS[RP_SQLITE_WAIT_BUCKETS - 1];
typedef struct rp_sqlite_writes {
    uint64_t groups, writes;
    uint64_t wait_us, wait_buckets[RP_SQLITE_WAIT_BUCKETS];
    uint64_t checkpoints_thread, checkpoints_writer, checkpoint_us;
} rp_sqlite_writes_t;
void rp_sqlite_writes_read(rp_sqlite_writes_t *out);

/* Closes every connection; none may be in use. Accepts NULL. */
void rp_sqlite_pool_free(rp_sqlite_pool_t *p);
/* The pool's database path (borrowed). */
const char *rp_sqlite_pool_path(const rp_sqlite_pool_t *p);

/* ---- a store's handle ---- */

/* Opens a SQLite store: the pool of <dir>/<file> in front of a new copy of handle, the store
 * interface's handle (handle_size bytes, its ops set), which is returned for the store to hand
 * out (lib/store_handle.h: rp_store_handle_backend is the pool, rp_store_handle_free drops it).
 * Stores of one file in a process share one pool, so the file has one writer per process: the
 * first opener makes it (rp_sqlite_pool_new with schemas and max_conns; the stores of a file pass
 * the same schemas), each later one adds max_conns readers, and the last to close closes it. NULL
 * with err on failure: RP_ERR_CONFIG (CONFIG_INVALID) when the path is too long for SQLITE_DIR,
 * else as rp_sqlite_pool_new. */
void *rp_sqlite_store_open(const char *dir, const char *file, const rp_sqlite_schema_t *schemas, int max_conns,
                           const void *handle, size_t handle_size, rp_err_t *err);

/* ---- units of work ---- */

/* A body run on a connection; it reports failures through err. */
typedef rp_txn_end_t (*rp_sqlite_txn_fn)(sqlite3 *db, void *arg, rp_err_t *err);

/* The one write transaction of every SQLite store: runs fn inside BEGIN IMMEDIATE (so its reads
 * and writes are serialised against every other writer, in this process or another) and commits
 * it when it returns RP_TXN_COMMIT. Writes that arrive together share one transaction and one
 * commit (group commit), each in its own SAVEPOINT, run one after the other in arrival order,
 * possibly on another caller's thread: a body must use only db and arg. Returns true when the
 * body committed or chose to roll back (a refusal, nothing written), false with err when the
 * body failed (its savepoint undone) or the group could not begin or commit (nothing written). */
bool rp_sqlite_transact(rp_sqlite_pool_t *p, rp_sqlite_txn_fn fn, void *arg, rp_err_t *err);
/* The signature of rp_sqlite_transact and its variants below. */
typedef bool (*rp_sqlite_transact_fn)(rp_sqlite_pool_t *p, rp_sqlite_txn_fn fn, void *arg, rp_err_t *err);
/* rp_sqlite_transact for a body that may run again from its start: it resets, at its start,
 * everything it reports through arg, and has no effect outside db. A group of such bodies runs
 * without savepoints; when one of them must be undone (it failed, or refused after changing a
 * row), the group is rolled back and every body of it runs again, each in its savepoint. Same
 * answers as rp_sqlite_transact. */
bool rp_sqlite_transact_rerunnable(rp_sqlite_pool_t *p, rp_sqlite_txn_fn fn, void *arg, rp_err_t *err);
/* rp_sqlite_transact for a body that writes many pages (a batch chunk): it waits its turn among
 * the groups and then runs as a transaction of its own, without a savepoint, so that SQLite keeps
 * each statement's journal only until the statement ends (in a savepoint it keeps a copy of every
 * page the body touched, in memory on the writer). Same answers as rp_sqlite_transact. */
bool rp_sqlite_transact_alone(rp_sqlite_pool_t *p, rp_sqlite_txn_fn fn, void *arg, rp_err_t *err);

/* A read on one snapshot: fn runs inside BEGIN (deferred) ... COMMIT on a pooled connection, so
 * several queries see the same data. Returns what fn returned (COMMIT or ROLLBACK = true). */
bool rp_sqlite_read(rp_sqlite_pool_t *p, rp_sqlite_txn_fn fn, void *arg, rp_err_t *err);

/* ---- one statement, bound by a format and used as described ---- */

/* Binds ap's arguments from ?1 on, one letter of fmt each: t text (NULL binds ''), s optional
 * text ("" and NULL bind NULL, the domain's "absent"), n text or NULL (as given), i int64_t, m
 * int64_t epoch ms (0 binds NULL), j const json_t * (as rp_sqlite_bind_json). Every i and m
 * argument must be an int64_t. Texts are bound without a copy: they must stay valid until st is
 * reset (rp_sqlite_vquery resets it before it returns). */
void rp_sqlite_bind_fmt(sqlite3_stmt *st, const char *fmt, va_list ap);

typedef void (*rp_sqlite_row_fn)(sqlite3_stmt *st, void *out);

/* How rp_sqlite_query uses its statement. Without row, a write: *found (may be NULL) when it
 * changed a row; with dup, a unique-key violation is the outcome *dup, not a failure. With row
 * and without items, every row is handed to row with out (a record, or a sum rows add to), *found
 * when there was one. With items, a page (rp_sqlite_collect_into): up to limit records of size
 * bytes into a new array *items of *n (NULL when none), *more (may be NULL) when another row
 * followed. clear (may be NULL) releases what row put into a record. what names the statement in
 * errors. Borrowed for the call. */
typedef struct rp_sqlite_use {
    const char *what;
    bool *found, *dup;
    rp_sqlite_row_fn row;
    void (*clear)(void *record);
    void *out;
    void **items;
    size_t size, *n;
    int limit;
    bool *more;
} rp_sqlite_use_t;

/* A page of the records *items_ points to (rp_sqlite_use_t, as a compound literal). */
#define RP_SQLITE_PAGE(what_, row_, clear_, items_, n_, limit_, more_)                                                 \
    &(rp_sqlite_use_t) {                                                                                               \
        .what = what_, .row = row_, .clear = clear_, .items = (void **)(items_), .size = sizeof **(items_), .n = n_,   \
        .limit = limit_, .more = more_                                                                                 \
    }

/* Prepares sql on db, or, when db is NULL, on a connection taken from pool for this statement
 * alone; binds fmt's arguments (rp_sqlite_bind_fmt) and uses the statement as u says. u's
 * outputs are reset first; false with err on failure, and then nothing is left to release (a
 * page is freed, a record cleared, *found false). */
bool rp_sqlite_query(sqlite3 *db, rp_sqlite_pool_t *pool, const rp_sqlite_use_t *u, rp_err_t *err, const char *sql,
                     const char *fmt, ...);
/* The same with a va_list. */
bool rp_sqlite_vquery(sqlite3 *db, rp_sqlite_pool_t *pool, const rp_sqlite_use_t *u, rp_err_t *err, const char *sql,
                      const char *fmt, va_list ap);

/* Releases a page: clear (may be NULL) each of the *n records of size bytes, free *items, and
 * set *items NULL and *n 0. */
void rp_sqlite_page_free(void **items, size_t *n, size_t size, void (*clear)(void *record));

/* ---- the operator audit log (table audit_logs) ---- */

/* The audit_logs table, for a component's schema step (a string literal, to concatenate). Its
 * indexes are each component's own. */
#define RP_SQLITE_AUDIT_TABLE                                                                                          \
    "CREATE TABLE audit_logs ("                                                                                        \
    "  id TEXT PRIMARY KEY,"                                                                                           \
    "  actor_id TEXT,"                                                                                                 \
    "  actor_username TEXT,"                                                                                           \
    "  action TEXT NOT NULL,"                                                                                          \
    "  target_type TEXT NOT NULL,"                                                                                     \
    "  target_id TEXT NOT NULL,"                                                                                       \
    "  before TEXT CHECK (before IS NULL OR json_valid(before)),"                                                      \
    "  after TEXT CHECK (after IS NULL OR json_valid(after)),"                                                         \
    "  at INTEGER NOT NULL);"

/* Appends entry a (NULL: nothing) with a new id, on db, inside the caller's transaction. */
bool rp_sqlite_audit_append(sqlite3 *db, const rp_audit_entry_t *a, rp_err_t *err);

/* Entries newest first by (at, id), optionally filtered (NULL = any), after cursor (the id of the
 * previous page's last entry; an unknown one gives an empty page), on a pooled connection.
 * *items is a new array of up to limit {id, actor: {id, username}, action, target: {type, id},
 * before, after, at}, *more when another entry follows; NULL on failure. */
bool rp_sqlite_audit_list(rp_sqlite_pool_t *pool, const char *target_type, const char *target_id, const char *actor_id,
                          const char *cursor, int limit, json_t **items, bool *more, rp_err_t *err);

/* ---- rows to records by table ---- */

/* How a record keeps a column: TEXT a char array ("" for NULL), I64 an int64_t (0 for NULL, the
 * domain's "not set" for times), INT an int. */
typedef enum rp_sqlite_ckind { RP_SQLITE_TEXT, RP_SQLITE_I64, RP_SQLITE_INT } rp_sqlite_ckind_t;

typedef struct rp_sqlite_col {
    size_t off, cap;
    rp_sqlite_ckind_t kind;
} rp_sqlite_col_t;

/* A table entry for member of record type T. */
#define RP_SQLITE_COL(T, member, kind)                                                                                 \
    { offsetof(T, member), sizeof(((T *)0)->member), RP_SQLITE_##kind }

/* Reads columns 0..n-1 of st's current row into the record rec as cols[0..n) say. */
void rp_sqlite_get_cols(sqlite3_stmt *st, void *rec, const rp_sqlite_col_t *cols, size_t n);
/* The same for a whole table (an array, not a pointer). */
#define RP_SQLITE_GET_COLS(st, rec, table) rp_sqlite_get_cols((st), (rec), (table), sizeof(table) / sizeof((table)[0]))

#endif
