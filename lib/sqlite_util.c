/* sqlite_util.c - SQLite connections, migrations, a connection pool, the transaction runner,
 * statement helpers and the audit log (see sqlite_util.h). */
#include "sqlite_util.h"
#include "sqlite_walbuf.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ids.h"
#include "log.h"
#include "mem.h"
#include "store_handle.h"
#include "timeutil.h"

void rp_sqlite_err(sqlite3 *db, const char *what, rp_err_t *err) {
    int ext = db ? sqlite3_extended_errcode(db) : SQLITE_ERROR, code = ext & 0xff;
    const char *msg = db ? sqlite3_errmsg(db) : "no connection";
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
        rp_err_set(err, RP_ERR_STORE_BUSY, "STORE_BUSY", "%s: the store is busy", what);
    } else if (code == SQLITE_FULL) {
        /* the write was refused whole (SQLite rolls the statement or transaction back), and it
         * succeeds once space returns: a 503 the client may retry, not a 500 */
        rp_err_set(err, RP_ERR_STORE_UNAVAILABLE, "STORE_FULL", "%s: the store's disk is full", what);
    } else if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY) {
        rp_err_set(err, RP_ERR_CONFLICT, "DUPLICATE_KEY", "%s: duplicate key", what);
        return; /* an expected outcome for callers that insert-if-absent: not worth an error line */
    } else {
        rp_err_set(err, RP_ERR_STORE, "STORE_ERROR", "%s: %s", what, msg);
    }
    rp_log(RP_LOG_ERROR, "sqlite", "%s: %s", what, msg);
}

bool rp_sqlite_exec(sqlite3 *db, const char *sql, rp_err_t *err) {
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK) return true;
    rp_sqlite_err(db, "exec", err);
    return false;
}

/* ---- prepared statements kept per pooled connection ----
 *
 * Preparing a statement (parsing and planning its SQL) costs more than running most of ours, so
 * a pooled connection keeps what it prepared: rp_sqlite_prepare hands out a kept statement whose
 * SQL is the same text at the same address (the stores' SQL are literals), and
 * rp_sqlite_finalize resets it for the next use instead of finalising it. A connection is used
 * by one thread at a time (the pool's rule), so its cache needs no lock; the registry that finds
 * a connection's cache is a fixed array scanned with atomic loads, written only when a pooled
 * connection opens or closes. Connections not from a pool prepare and finalise as before. */

#define STMT_SLOTS 96 /* statements a connection keeps; more distinct SQL replaces them in turn */
#define MAX_CACHED_CONNS 256

typedef struct kept_stmt {
    const char *sql; /* the caller's text (address identity); the statement holds its own copy */
    sqlite3_stmt *st;
    bool in_use;
} kept_stmt_t;

typedef struct stmt_cache {
    kept_stmt_t slots[STMT_SLOTS];
    int next_victim;
} stmt_cache_t;

static _Atomic(sqlite3 *) cached_db[MAX_CACHED_CONNS];
static stmt_cache_t *cached_stmts[MAX_CACHED_CONNS];

/* What SQLite holds for each registered connection (see rp_sqlite_memory_read): written by the
 * connection's holder, summed by whoever asks. */
typedef struct conn_memory {
    _Atomic size_t cache, statements, schemas;
    _Atomic size_t cache_bound; /* its page cache's configured size (cache_size), from its opening */
    int64_t read_ms;            /* when its holder last read them (monotonic ms); 0: not yet */
} conn_memory_t;
static conn_memory_t conn_memory[MAX_CACHED_CONNS];

/* db's slot in the registry, or -1 (a connection not from a pool). */
static int slot_of(sqlite3 *db) {
    for (int i = 0; i < MAX_CACHED_CONNS; i++)
        if (atomic_load_explicit(&cached_db[i], memory_order_acquire) == db) return i;
    return -1;
}

static stmt_cache_t *stmt_cache_of(sqlite3 *db) {
    int i = slot_of(db);
    return i < 0 ? NULL : cached_stmts[i];
}

/* Gives db a statement cache (pooled connections); without a free registry slot it has none.
 * The slot is claimed first and its cache set after: only db's holder, this thread until the
 * pool hands db out, ever reads the cache of a slot that names db. */
static void stmt_cache_attach(sqlite3 *db, int cache_kib_of_db) {
    for (int i = 0; i < MAX_CACHED_CONNS; i++) {
        sqlite3 *empty = NULL;
        if (atomic_compare_exchange_strong(&cached_db[i], &empty, db)) {
            cached_stmts[i] = rp_calloc(1, sizeof *cached_stmts[i]);
            conn_memory[i].read_ms = 0;
            atomic_store(&conn_memory[i].cache_bound, (size_t)cache_kib_of_db * 1024);
            return;
        }
    }
}

/* Finalises what db kept and forgets its cache; before closing db. */
static void stmt_cache_detach(sqlite3 *db) {
    for (int i = 0; i < MAX_CACHED_CONNS; i++) {
        if (atomic_load(&cached_db[i]) != db) continue;
        stmt_cache_t *c = cached_stmts[i];
        for (int k = 0; k < STMT_SLOTS; k++)
            sqlite3_finalize(c->slots[k].st);
        free(c);
        cached_stmts[i] = NULL;
        atomic_store(&conn_memory[i].cache, 0); /* closed next: SQLite frees what it held */
        atomic_store(&conn_memory[i].statements, 0);
        atomic_store(&conn_memory[i].schemas, 0);
        atomic_store(&conn_memory[i].cache_bound, 0);
        atomic_store(&cached_db[i], NULL);
        return;
    }
}

/* ---- what SQLite holds (rp_sqlite_memory_read) ----
 *
 * A connection's page cache, statements and schema can be read only by the thread that holds it
 * (its figures change under the statements it runs), so each holder reads them when it lets go:
 * a pooled connection when it is put back, the writer after a group, the checkpointer after a
 * checkpoint. At most once a second per connection: reading what the statements hold walks every
 * kept statement (about 30 us for 60), while the page cache alone takes a quarter of a
 * microsecond. */
#define MEMORY_EVERY_MS 1000

static void note_memory(sqlite3 *db) {
    int i = slot_of(db);
    if (i < 0) return;
    conn_memory_t *m = &conn_memory[i];
    int64_t now = rp_mono_ms();
    if (m->read_ms && now - m->read_ms < MEMORY_EVERY_MS) return;
    m->read_ms = now;
    int cur = 0, high = 0;
    if (sqlite3_db_status(db, SQLITE_DBSTATUS_CACHE_USED, &cur, &high, 0) == SQLITE_OK)
        atomic_store(&m->cache, (size_t)cur);
    if (sqlite3_db_status(db, SQLITE_DBSTATUS_STMT_USED, &cur, &high, 0) == SQLITE_OK)
        atomic_store(&m->statements, (size_t)cur);
    if (sqlite3_db_status(db, SQLITE_DBSTATUS_SCHEMA_USED, &cur, &high, 0) == SQLITE_OK)
        atomic_store(&m->schemas, (size_t)cur);
}

void rp_sqlite_memory_read(rp_sqlite_memory_t *out) {
    *out = (rp_sqlite_memory_t){0, 0, 0, 0};
    for (int i = 0; i < MAX_CACHED_CONNS; i++) {
        out->cache += atomic_load(&conn_memory[i].cache);
        out->cache_bound += atomic_load(&conn_memory[i].cache_bound);
        out->statements += atomic_load(&conn_memory[i].statements);
        out->schemas += atomic_load(&conn_memory[i].schemas);
    }
}

/* ---- what the writers did (rp_sqlite_writes_read) ---- */

const double RP_SQLITE_WAIT_BOUNDS_MS[RP_SQLITE_WAIT_BUCKETS - 1] = {1, 2, 5, 10, 20, 50, 100, 250, 1000};
static _Atomic uint64_t writes_groups, writes_done, writes_wait_us, writes_buckets[RP_SQLITE_WAIT_BUCKETS];
static _Atomic uint64_t checkpoints_thread, checkpoints_writer, checkpoint_us;

static void note_write(int64_t waited_us) {
    int b = 0;
    while (b < RP_SQLITE_WAIT_BUCKETS - 1 && (double)waited_us > RP_SQLITE_WAIT_BOUNDS_MS[b] * 1000.0)
        b++;
    atomic_fetch_add_explicit(&writes_done, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&writes_wait_us, (uint64_t)waited_us, memory_order_relaxed);
    atomic_fetch_add_explicit(&writes_buckets[b], 1, memory_order_relaxed);
}

void rp_sqlite_writes_read(rp_sqlite_writes_t *out) {
    out->groups = atomic_load(&writes_groups);
    out->writes = atomic_load(&writes_done);
    out->wait_us = atomic_load(&writes_wait_us);
    for (int b = 0; b < RP_SQLITE_WAIT_BUCKETS; b++)
        out->wait_buckets[b] = atomic_load(&writes_buckets[b]);
    out->checkpoints_thread = atomic_load(&checkpoints_thread);
    out->checkpoints_writer = atomic_load(&checkpoints_writer);
    out->checkpoint_us = atomic_load(&checkpoint_us);
}

static void close_conn(sqlite3 *db) {
    if (!db) return;
    stmt_cache_detach(db);
    sqlite3_close_v2(db);
}

bool rp_sqlite_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, rp_err_t *err) {
    stmt_cache_t *c = stmt_cache_of(db);
    *st = NULL;
    if (!c) {
        if (sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK) return true;
        rp_sqlite_err(db, "prepare", err);
        return false;
    }
    kept_stmt_t *free_slot = NULL;
    for (int k = 0; k < STMT_SLOTS; k++) {
        kept_stmt_t *e = &c->slots[k];
        if (!e->st) {
            if (!free_slot) free_slot = e;
        } else if (e->sql == sql && !e->in_use && strcmp(sqlite3_sql(e->st), sql) == 0) {
            e->in_use = true;
            *st = e->st;
            return true;
        }
    }
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare", err);
        return false;
    }
    for (int tries = 0; !free_slot && tries < STMT_SLOTS; tries++) { /* replace one not in use */
        kept_stmt_t *e = &c->slots[c->next_victim];
        c->next_victim = (c->next_victim + 1) % STMT_SLOTS;
        if (!e->in_use) {
            sqlite3_finalize(e->st);
            e->st = NULL;
            free_slot = e;
        }
    }
    if (free_slot) *free_slot = (kept_stmt_t){sql, *st, true};
    return true;
}

void rp_sqlite_finalize(sqlite3_stmt *st) {
    if (!st) return;
    stmt_cache_t *c = stmt_cache_of(sqlite3_db_handle(st));
    for (int k = 0; c && k < STMT_SLOTS; k++) {
        if (c->slots[k].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            c->slots[k].in_use = false;
            return;
        }
    }
    sqlite3_finalize(st);
}

/* Runs one statement of sql (kept, see above); false with err when it fails. */
static bool exec_kept(sqlite3 *db, const char *sql, rp_err_t *err) {
    sqlite3_stmt *st;
    return rp_sqlite_prepare(db, sql, &st, err) && rp_sqlite_run(db, st, "exec", NULL, err);
}

bool rp_sqlite_run(sqlite3 *db, sqlite3_stmt *st, const char *what, int *changes, rp_err_t *err) {
    int rc = sqlite3_step(st);
    if (changes) *changes = rc == SQLITE_DONE ? sqlite3_changes(db) : 0;
    if (rc != SQLITE_DONE) rp_sqlite_err(db, what, err); /* before finalize, which resets the error */
    rp_sqlite_finalize(st);
    return rc == SQLITE_DONE;
}

int rp_sqlite_step_row(sqlite3 *db, sqlite3_stmt *st, const char *what, rp_err_t *err) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) return 1;
    if (rc != SQLITE_DONE) rp_sqlite_err(db, what, err);
    rp_sqlite_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

void rp_sqlite_bind_ms(sqlite3_stmt *st, int i, int64_t ms) {
    if (ms)
        sqlite3_bind_int64(st, i, ms);
    else
        sqlite3_bind_null(st, i);
}

int64_t rp_sqlite_col_ms(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, i);
}

void rp_sqlite_col_copy(sqlite3_stmt *st, int i, char *dst, size_t cap) {
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

char *rp_sqlite_col_strdup(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? rp_strdup((const char *)t) : NULL;
}

#define BUSY_MS 5000          /* how long a statement waits for another writer */
#define STARTUP_BUSY_MS 60000 /* how long a store's start waits: processes starting together migrate */

static _Atomic int cache_kib = RP_SQLITE_CACHE_KIB_DEFAULT;

void rp_sqlite_set_cache_kib(int kib) {
    cache_kib = kib;
}

/* SQLite counts every allocation under one process-wide mutex while its memory statistics are
 * on (SQLITE_CONFIG_MEMSTATUS, the default). Nothing here reads them, and with the HTTP threads
 * of a busy process all in SQLite that mutex was 4 % of an embedded claim (perf: futex waits
 * under sqlite3Malloc; bench/README.md, 2026-12-03 second sitting). Turned off before SQLite
 * starts; if something started it already, the call fails and nothing changes. */
static pthread_once_t configured = PTHREAD_ONCE_INIT;

static void configure_sqlite(void) {
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* Opens path on the VFS named vfs_name (NULL: the default). */
static sqlite3 *open_waiting(const char *path, const char *vfs_name, int busy_ms, int cache_kib_now, rp_err_t *err) {
    sqlite3 *db = NULL;
    pthread_once(&configured, configure_sqlite);
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, vfs_name);
    if (rc != SQLITE_OK) {
        rp_err_set(err, RP_ERR_STORE_UNAVAILABLE, "STORE_UNAVAILABLE", "cannot open %s: %s", path,
                   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close_v2(db);
        return NULL;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, busy_ms);
    char pragmas[160];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-%d;",
             cache_kib_now);
    /* Switching a new file to WAL takes an exclusive lock. Two processes opening it at once can
     * each hold a shared lock and want the exclusive one, and SQLite then answers SQLITE_BUSY to
     * both at once rather than call the busy handler (it would deadlock): seen when the grant and
     * event workers of a cluster started together. So a busy answer is retried here, with a
     * growing pause, until busy_ms has passed. */
    int64_t deadline = rp_mono_ms() + busy_ms;
    int pause_ms = 5;
    while ((rc = sqlite3_exec(db, pragmas, NULL, NULL, NULL)) != SQLITE_OK) {
        if ((rc & 0xff) != SQLITE_BUSY || rp_mono_ms() + pause_ms > deadline) {
            rp_sqlite_err(db, "exec", err);
            sqlite3_close_v2(db);
            return NULL;
        }
        struct timespec ts = {0, (long)pause_ms * 1000000L};
        nanosleep(&ts, NULL);
        pause_ms = pause_ms < 200 ? pause_ms * 2 : 200;
    }
    return db;
}

sqlite3 *rp_sqlite_open(const char *path, rp_err_t *err) {
    return open_waiting(path, NULL, BUSY_MS, cache_kib, err);
}

/* Runs fn between begin and COMMIT on db; see rp_sqlite_transact. */
static bool run_txn(sqlite3 *db, const char *begin, rp_sqlite_txn_fn fn, void *arg, rp_err_t *err) {
    if (!exec_kept(db, begin, err)) return false;
    rp_txn_end_t end = fn(db, arg, err);
    if (end == RP_TXN_COMMIT && exec_kept(db, "COMMIT", err)) return true;
    if (!sqlite3_get_autocommit(db)) exec_kept(db, "ROLLBACK", NULL);
    return end == RP_TXN_ROLLBACK;
}

typedef struct migration {
    const rp_sqlite_schema_t *schema;
    int step;
} migration_t;

/* How many steps of schema db holds: its schema_migrations row or, for a file from before that
 * table, what the old list's user_version implies; -1 with err on failure. */
static int component_version(sqlite3 *db, const rp_sqlite_schema_t *schema, rp_err_t *err) {
    sqlite3_stmt *st = NULL;
    if (!rp_sqlite_prepare(db,
                           "SELECT coalesce((SELECT version FROM schema_migrations WHERE component = ?1), "
                           "min(?2, (SELECT user_version FROM pragma_user_version)))",
                           &st, err))
        return -1;
    sqlite3_bind_text(st, 1, schema->component, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, schema->legacy_steps);
    if (rp_sqlite_step_row(db, st, "read schema version", err) != 1) return -1;
    int v = sqlite3_column_int(st, 0);
    rp_sqlite_finalize(st);
    return v;
}

static rp_txn_end_t migrate_one(sqlite3 *db, void *p, rp_err_t *err) {
    const migration_t *m = p;
    sqlite3_stmt *st = NULL;
    if (!rp_sqlite_exec(db,
                        "CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT PRIMARY KEY, "
                        "version INTEGER NOT NULL) WITHOUT ROWID",
                        err))
        return RP_TXN_FAILED;
    int v = component_version(db, m->schema, err);
    if (v < 0) return RP_TXN_FAILED;
    /* v > step: another process, or the old list, applied it already */
    if (v <= m->step && !rp_sqlite_exec(db, m->schema->steps[m->step], err)) {
        rp_log(RP_LOG_ERROR, "sqlite", "migration %s step %d failed", m->schema->component, m->step + 1);
        return RP_TXN_FAILED;
    }
    /* a bootstrapped version is written too: from now on the row, not user_version, is the truth */
    if (!rp_sqlite_prepare(db,
                           "INSERT INTO schema_migrations (component, version) VALUES (?1, ?2) "
                           "ON CONFLICT (component) DO UPDATE SET version = excluded.version "
                           "WHERE version < excluded.version",
                           &st, err))
        return RP_TXN_FAILED;
    sqlite3_bind_text(st, 1, m->schema->component, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, v > m->step ? v : m->step + 1);
    return rp_sqlite_run(db, st, "record schema version", NULL, err) ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

bool rp_sqlite_migrate(sqlite3 *db, const rp_sqlite_schema_t *schemas, rp_err_t *err) {
    for (const rp_sqlite_schema_t *s = schemas; s->component; s++)
        for (int i = 0; s->steps[i]; i++) {
            migration_t m = {s, i};
            if (!run_txn(db, "BEGIN IMMEDIATE", migrate_one, &m, err)) return false;
        }
    return true;
}

void rp_sqlite_bind_text(sqlite3_stmt *st, int i, const char *s) {
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

void rp_sqlite_bind_json(sqlite3_stmt *st, int i, const json_t *v) {
    char *t = v && !json_is_null(v) ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (t)
        sqlite3_bind_text(st, i, t, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
    free(t);
}

json_t *rp_sqlite_col_string(sqlite3_stmt *st, int i) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) return json_null();
    json_t *v = json_stringn((const char *)sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i));
    return v ? v : json_null();
}

json_t *rp_sqlite_col_json(sqlite3_stmt *st, int i) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) return json_null();
    json_t *v = json_loadb((const char *)sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i),
                           JSON_DECODE_ANY, NULL);
    return v ? v : json_null();
}

json_t *rp_sqlite_col_time(sqlite3_stmt *st, int i) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) return json_null();
    char b[RP_ISO_LEN];
    rp_time_iso(sqlite3_column_int64(st, i), b);
    return json_string(b);
}

json_t *rp_sqlite_col_int(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null() : json_integer(sqlite3_column_int64(st, i));
}

static json_t *col_bool(sqlite3_stmt *st, int i) {
    return json_boolean(sqlite3_column_int(st, i));
}

static json_t *col_i64(sqlite3_stmt *st, int i) {
    return json_integer(sqlite3_column_int64(st, i));
}

json_t *rp_sqlite_row_json(sqlite3_stmt *st, int first, const rp_json_table_t *t) {
    static json_t *(*const read[RP_JSON_KINDS])(sqlite3_stmt *, int) = {
        [RP_JSON_STR] = rp_sqlite_col_string,
        [RP_JSON_OPAQUE] = rp_sqlite_col_json,
        [RP_JSON_TIME] = rp_sqlite_col_time,
        [RP_JSON_BOOL] = col_bool,
        [RP_JSON_INT] = col_i64,
        [RP_JSON_INT_OR_NULL] = rp_sqlite_col_int,
    };
    json_t *o = json_object();
    for (size_t k = 0; k < t->n; k++)
        json_object_set_new(o, t->fields[k].name, read[t->fields[k].kind](st, first + (int)k));
    return o;
}

bool rp_sqlite_collect(sqlite3 *db, sqlite3_stmt *st, int limit, json_t *(*row)(sqlite3_stmt *), json_t **items,
                       bool *more, rp_err_t *err) {
    int rc;
    *items = json_array();
    *more = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((int)json_array_size(*items) == limit) {
            *more = true;
            break;
        }
        json_array_append_new(*items, row(st));
    }
    rp_sqlite_finalize(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) return true;
    rp_sqlite_err(db, "list", err);
    json_decref(*items);
    *items = NULL;
    return false;
}

bool rp_sqlite_collect_into(sqlite3 *db, sqlite3_stmt *st, int limit, void (*row)(sqlite3_stmt *, void *elem),
                            size_t elem_size, void **items, size_t *n, bool *more, rp_err_t *err) {
    int rc;
    size_t cap = 0;
    char *out = NULL;
    *items = NULL;
    *n = 0;
    *more = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((int)*n == limit) {
            *more = true;
            break;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            out = rp_realloc(out, cap * elem_size);
        }
        memset(out + *n * elem_size, 0, elem_size);
        row(st, out + *n * elem_size);
        (*n)++;
    }
    *items = out;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        rp_sqlite_finalize(st);
        return true;
    }
    rp_sqlite_err(db, "list", err);
    rp_sqlite_finalize(st);
    return false; /* the caller releases what row put into the *n elements */
}

/* A write waiting for, or in, a group commit (see rp_sqlite_transact). */
typedef struct txn_job {
    rp_sqlite_txn_fn fn;
    void *arg;
    rp_err_t err;
    bool ok, done;
    bool alone; /* runs in a transaction of its own, without a savepoint (rp_sqlite_transact_alone) */
    bool rerun; /* its body may run again from its start (rp_sqlite_transact_rerunnable) */
    sem_t wake; /* posted once the job is done, or when its thread is to lead the next group */
    struct txn_job *next;
} txn_job_t;

struct rp_sqlite_pool {
    pthread_mutex_t mu;
    pthread_cond_t freed;
    char *path;
    sqlite3 **idle; /* a ring of nidle connections from idle[first], taken from the front, put at the back */
    int first, nidle, max;
    sqlite3 *writer; /* the group commits' own connection (see lead_group), not handed out */
    /* group commit: the writes waiting for the next group, and whether a leader runs one */
    pthread_mutex_t gmu;
    txn_job_t *head, *tail;
    bool leading;         /* a thread leads a group, or has been handed the lead (see transact_job) */
    int savepoint_groups; /* groups still to run with savepoints after a group ran again (lead_group) */
    /* checkpoints, off the writer's thread (see checkpointer) */
    pthread_mutex_t cmu;
    pthread_cond_t cdue;
    pthread_t cthread;
    sqlite3 *cdb; /* the checkpointer's own connection */
    bool cstarted, cdue_now, cstop;
};

/* A pool's connection after the first: opened on vfs_name (NULL: the default) with a page cache of
 * kib, keeping its statements. */
static sqlite3 *pooled_conn(const char *path, const char *vfs_name, int kib, rp_err_t *err) {
    sqlite3 *db = open_waiting(path, vfs_name, BUSY_MS, kib, err);
    if (db) stmt_cache_attach(db, kib);
    return db;
}

/* ---- checkpoints ----
 *
 * SQLite copies the WAL back into the database (a checkpoint) on the connection whose commit
 * takes the WAL past wal_autocheckpoint pages (1,000 by default): the group commit's leader,
 * with every write of the next group waiting behind it, and on a WAL that short the same hot
 * pages (the last leaves of the requests, ledger and outbox, the upper levels of each index) are
 * copied again at every checkpoint. The writer's commits instead wake a thread of the pool that
 * checkpoints on a connection of its own (PASSIVE: it copies what no reader still needs and never
 * blocks the writer) once the WAL holds RP_SQLITE_CHECKPOINT_PAGES.
 *
 * Under steady writes that checkpoint never catches up with the writer, and SQLite starts the WAL
 * over only after a checkpoint that copied all of it: the WAL grew to whatever limit the writer
 * kept (160 MiB at ten times the threshold, where a 30 s claims run held it). So once the WAL
 * holds twice the threshold the writer checkpoints itself too: most of it is copied already, its
 * checkpoint copies the rest with no new frames behind it, and the next commit starts the WAL
 * from its beginning; journal_size_limit then cuts the file back. Measured in bench/README.md
 * ("Claims on 2026-12-02, late evening"). */

#define CHECKPOINT_INLINE_PAGES (2 * RP_SQLITE_CHECKPOINT_PAGES)

static int on_commit(void *arg, sqlite3 *db, const char *name, int pages) {
    rp_sqlite_pool_t *p = arg;
    if (pages >= CHECKPOINT_INLINE_PAGES) {
        int64_t t0 = rp_mono_us();
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        atomic_fetch_add(&checkpoints_writer, 1);
        atomic_fetch_add(&checkpoint_us, (uint64_t)(rp_mono_us() - t0));
    } else if (pages >= RP_SQLITE_CHECKPOINT_PAGES) {
        pthread_mutex_lock(&p->cmu);
        p->cdue_now = true;
        pthread_cond_signal(&p->cdue);
        pthread_mutex_unlock(&p->cmu);
    }
    return SQLITE_OK;
}

static void *checkpointer(void *arg) {
    rp_sqlite_pool_t *p = arg;
    pthread_mutex_lock(&p->cmu);
    for (;;) {
        while (!p->cdue_now && !p->cstop)
            pthread_cond_wait(&p->cdue, &p->cmu);
        if (p->cstop) break;
        p->cdue_now = false;
        pthread_mutex_unlock(&p->cmu);
        int rc = sqlite3_wal_checkpoint_v2(p->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        atomic_fetch_add(&checkpoints_thread, 1);
        if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
            rp_log(RP_LOG_WARN, "sqlite", "checkpoint of %s: %s", p->path, sqlite3_errmsg(p->cdb));
        note_memory(p->cdb);
        pthread_mutex_lock(&p->cmu);
    }
    pthread_mutex_unlock(&p->cmu);
    return NULL;
}

/* Gives the pool's writer its checkpointer; false with err when its connection does not open. */
static bool start_checkpointer(rp_sqlite_pool_t *p, rp_err_t *err) {
    if (!(p->cdb = open_waiting(p->path, NULL, BUSY_MS, cache_kib, err))) return false;
    stmt_cache_attach(p->cdb, cache_kib); /* it prepares nothing; registered for rp_sqlite_memory_read */
    if (pthread_create(&p->cthread, NULL, checkpointer, p) != 0) {
        rp_err_set(err, RP_ERR_INTERNAL, "INTERNAL", "cannot start the checkpointer of %s", p->path);
        return false;
    }
    p->cstarted = true;
    sqlite3_wal_hook(p->writer, on_commit, p); /* replaces the writer's own wal_autocheckpoint */
    return true;
}

/* Adds more read connections to p: a new pool's after its first, an open pool's for another store
 * of its file. They are opened before p's lock is taken. */
static bool pool_grow(rp_sqlite_pool_t *p, int more, rp_err_t *err) {
    sqlite3 **conns = rp_calloc((size_t)more, sizeof *conns);
    for (int i = 0; i < more; i++) {
        if (!(conns[i] = pooled_conn(p->path, NULL, cache_kib, err))) {
            while (i-- > 0)
                close_conn(conns[i]);
            free(conns);
            return false;
        }
        sqlite3_wal_hook(conns[i], on_commit, p); /* see the pool's first connection */
    }
    pthread_mutex_lock(&p->mu);
    int max = p->max + more;
    sqlite3 **idle = rp_calloc((size_t)max, sizeof *idle);
    for (int i = 0; i < p->nidle; i++) /* the ring, laid out again from idle[0] */
        idle[i] = p->idle[(p->first + i) % p->max];
    memcpy(idle + p->nidle, conns, (size_t)more * sizeof *conns);
    free(p->idle);
    p->idle = idle;
    p->first = 0;
    p->nidle += more;
    p->max = max;
    pthread_cond_broadcast(&p->freed);
    pthread_mutex_unlock(&p->mu);
    free(conns);
    return true;
}

rp_sqlite_pool_t *rp_sqlite_pool_new(const char *path, const rp_sqlite_schema_t *schemas, int max_conns,
                                     rp_err_t *err) {
    rp_sqlite_pool_t *p = rp_calloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->freed, NULL);
    p->path = rp_strdup(path);
    p->max = 1; /* the first connection; pool_grow adds the others */
    p->idle = rp_calloc(1, sizeof *p->idle);
    pthread_mutex_init(&p->gmu, NULL);
    pthread_mutex_init(&p->cmu, NULL);
    pthread_cond_init(&p->cdue, NULL);
    /* workers starting together each switch the file to WAL and migrate it, one after the other:
     * on a busy machine that outlasts a statement's wait, so the start waits longer */
    sqlite3 *db = open_waiting(path, NULL, STARTUP_BUSY_MS, cache_kib, err);
    if (!db || !rp_sqlite_migrate(db, schemas, err)) {
        sqlite3_close_v2(db);
        rp_sqlite_pool_free(p);
        return NULL;
    }
    sqlite3_busy_timeout(db, BUSY_MS);
    stmt_cache_attach(db, cache_kib);
    /* A reader's own writes (statements outside a unit of work: the outbox relay's lease and
     * "published" marks) follow the writer's checkpoint rule too. With SQLite's wal_autocheckpoint
     * they checkpointed at 1,000 pages on the relay's thread, beside the checkpointer: 3.4 % of a
     * grant worker's samples under amqp claims (bench/README.md, 2026-12-05 third sitting). */
    sqlite3_wal_hook(db, on_commit, p);
    p->idle[p->nidle++] = db;
    /* Every connection is opened now, not at the first moment that many are in use: a process's
     * descriptors and memory are then fixed at start (a pool that cannot open its connections
     * fails the start, not a request at the busiest moment), and the soak showed the lazy pool's
     * steps of ~1 MiB at whichever later batch first overlapped enough claims (bench/README.md). */
    if (max_conns > 1 && !pool_grow(p, max_conns - 1, err)) {
        rp_sqlite_pool_free(p);
        return NULL;
    }
    /* Writes run one group at a time on a connection of their own, with a page cache of
     * RP_SQLITE_WRITER_CACHE_FACTOR times the readers': it keeps the pages every write touches
     * (the tables' last leaves, the upper levels of each index). When writes took turns on the
     * readers' 256 KiB caches, a 20,000-player batch read those pages back from the kernel for
     * every chunk and ran 25-30 % slower (bench/README.md). */
    /* A group runs each write in a savepoint of its own, and SQLite keeps a statement journal for
     * a statement that may need undoing inside a transaction: in a temporary file by default,
     * opened, written, unlinked and closed again (strace: one for about every fourth claim). In
     * memory they cost a few pages each; the group's writes sort nothing large. The readers keep
     * files, since a list without a fitting index may sort many rows. */
    char pragmas[96];
    snprintf(pragmas, sizeof pragmas, "PRAGMA temp_store=MEMORY; PRAGMA journal_size_limit=%ld",
             (long)RP_SQLITE_WAL_LIMIT_BYTES);
    /* The writer gathers each commit's WAL frames into about two writes (lib/sqlite_walbuf.h): SQLite
     * writes a frame as two pwrites, its header and its page, about ten per grant on the one thread
     * every write of the file waits for. */
    if (!(p->writer = pooled_conn(path, rp_sqlite_walbuf_vfs(), cache_kib * RP_SQLITE_WRITER_CACHE_FACTOR, err)) ||
        !rp_sqlite_exec(p->writer, pragmas, err) || !start_checkpointer(p, err)) {
        rp_sqlite_pool_free(p);
        return NULL;
    }
    return p;
}

sqlite3 *rp_sqlite_pool_get(rp_sqlite_pool_t *p, rp_err_t *err) {
    (void)err; /* every connection is open: taking one only waits */
    pthread_mutex_lock(&p->mu);
    while (p->nidle == 0)
        pthread_cond_wait(&p->freed, &p->mu);
    /* the longest idle: every connection takes turns, so each has compiled its statements and
     * filled its page cache (SQLITE_CACHE_KIB) within the first minutes of traffic */
    sqlite3 *db = p->idle[p->first];
    p->first = (p->first + 1) % p->max;
    p->nidle--;
    pthread_mutex_unlock(&p->mu);
    return db;
}

void rp_sqlite_pool_put(rp_sqlite_pool_t *p, sqlite3 *db) {
    if (!db) return;
    if (sqlite3_get_autocommit(db) == 0) {
        /* a caller left a transaction open: never hand that state to the next user */
        rp_log(RP_LOG_ERROR, "sqlite", "connection returned inside a transaction; rolling back");
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    note_memory(db);
    pthread_mutex_lock(&p->mu);
    p->idle[(p->first + p->nidle++) % p->max] = db;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->mu);
}

void rp_sqlite_pool_free(rp_sqlite_pool_t *p) {
    if (!p) return;
    if (p->cstarted) {
        pthread_mutex_lock(&p->cmu);
        p->cstop = true;
        pthread_cond_signal(&p->cdue);
        pthread_mutex_unlock(&p->cmu);
        pthread_join(p->cthread, NULL);
    }
    close_conn(p->cdb);
    for (int i = 0; i < p->nidle; i++)
        close_conn(p->idle[(p->first + i) % p->max]);
    if (p->writer) close_conn(p->writer);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->freed);
    pthread_mutex_destroy(&p->gmu);
    pthread_mutex_destroy(&p->cmu);
    pthread_cond_destroy(&p->cdue);
    free(p->idle);
    free(p->path);
    free(p);
}

const char *rp_sqlite_pool_path(const rp_sqlite_pool_t *p) {
    return p->path;
}

/* ---- one pool per file in a process ----
 *
 * The stores that live in one file (events.db holds the event repository, the reward store and
 * the webhook store) share one pool in a process, so the process has one writer on the file and
 * every write of it joins the same group commits. With a pool each, every store's writer was a
 * second writer to the others: in WAL mode a connection drops its whole page cache when it
 * begins after another connection committed, so the grant writer read back the pages of every
 * index it writes after each commit of the webhook fan-out beside it (strace: 13 page reads per
 * claim; bench/README.md). A shared pool has the connections of all its openers, so it serves as
 * many readers at once as their pools did. */

typedef struct shared_pool {
    rp_sqlite_pool_t *pool;
    int refs;
    struct shared_pool *next;
} shared_pool_t;

static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static shared_pool_t *shared; /* the open pools of rp_sqlite_store_open */

/* The pool of path: the open one, grown by max_conns connections, or a new one (migrated to
 * schemas). A new reference either way; NULL with err. */
static rp_sqlite_pool_t *shared_pool_open(const char *path, const rp_sqlite_schema_t *schemas, int max_conns,
                                          rp_err_t *err) {
    rp_sqlite_pool_t *p = NULL;
    pthread_mutex_lock(&shared_mu);
    for (shared_pool_t *sp = shared; sp; sp = sp->next) {
        if (strcmp(sp->pool->path, path) != 0) continue;
        if (pool_grow(sp->pool, max_conns > 0 ? max_conns : 1, err)) {
            sp->refs++;
            p = sp->pool;
        }
        pthread_mutex_unlock(&shared_mu);
        return p;
    }
    if ((p = rp_sqlite_pool_new(path, schemas, max_conns, err))) {
        shared_pool_t *sp = rp_calloc(1, sizeof *sp);
        *sp = (shared_pool_t){p, 1, shared};
        shared = sp;
    }
    pthread_mutex_unlock(&shared_mu);
    return p;
}

/* Drops a reference of shared_pool_open; the last closes the pool (rp_store_handle_new's close). */
static void close_pool(void *pool) {
    pthread_mutex_lock(&shared_mu);
    for (shared_pool_t **at = &shared; *at; at = &(*at)->next) {
        shared_pool_t *sp = *at;
        if (sp->pool != pool) continue;
        if (--sp->refs == 0) {
            *at = sp->next;
            rp_sqlite_pool_free(sp->pool);
            free(sp);
        }
        break;
    }
    pthread_mutex_unlock(&shared_mu);
}

void *rp_sqlite_store_open(const char *dir, const char *file, const rp_sqlite_schema_t *schemas, int max_conns,
                           const void *handle, size_t handle_size, rp_err_t *err) {
    char path[1024];
    if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "SQLITE_DIR is too long");
        return NULL;
    }
    rp_sqlite_pool_t *pool = shared_pool_open(path, schemas, max_conns, err);
    return pool ? rp_store_handle_new(pool, close_pool, handle, handle_size) : NULL;
}

static bool transact(rp_sqlite_pool_t *p, const char *begin, rp_sqlite_txn_fn fn, void *arg, rp_err_t *err) {
    sqlite3 *db = rp_sqlite_pool_get(p, err);
    if (!db) return false;
    bool ok = run_txn(db, begin, fn, arg, err);
    rp_sqlite_pool_put(p, db);
    return ok;
}

/* ---- group commit ----
 *
 * Writes that arrive while another is running wait, and the next leader runs all of them in one
 * BEGIN IMMEDIATE ... COMMIT, each body inside its own SAVEPOINT: a body that refuses or fails
 * is rolled back to its savepoint and undoes nothing of the others, and the group pays one
 * commit (its WAL frames: pages several writes touched are written once). The bodies run one
 * after the other in arrival order on the leader's thread, so each sees what the ones before it
 * wrote, exactly as if they had committed one after the other; if the COMMIT fails, every write
 * of the group fails. Bodies use only the connection and their argument (they may be run on
 * another thread). */

#define MAX_GROUP 64 /* writes per commit at most: bounds how long a group holds the lock */

static void fail_job(txn_job_t *j, const rp_err_t *err) {
    j->ok = false;
    j->err = *err;
}

/* Takes up to room jobs off the queue (gmu held); returns the first, links them by next. A job
 * that runs alone is taken only first (when may_start_alone), and then nothing after it; with
 * rerun_only, nothing from the first job that may not run again. */
static txn_job_t *take_jobs(rp_sqlite_pool_t *p, int room, bool may_start_alone, bool rerun_only, int *taken) {
    txn_job_t *first = p->head, *last = NULL;
    *taken = 0;
    for (txn_job_t *j = p->head; j && *taken < room; j = j->next) {
        if (j->alone && (*taken > 0 || !may_start_alone)) break;
        if (rerun_only && !j->rerun) break;
        last = j;
        (*taken)++;
        if (j->alone) break;
    }
    if (!last) return NULL;
    p->head = last->next;
    if (!p->head) p->tail = NULL;
    last->next = NULL;
    return first;
}

/* Puts jobs back at the head of the queue (gmu held), to run in the next group. */
static void requeue(rp_sqlite_pool_t *p, txn_job_t *jobs) {
    if (!jobs) return;
    txn_job_t *last = jobs;
    while (last->next)
        last = last->next;
    last->next = p->head;
    p->head = jobs;
    if (!p->tail) p->tail = last;
}

/* Runs one body inside its savepoint; false when the whole transaction is gone (SQLite rolled it
 * back on an I/O error or a full disk: the group's earlier writes are lost with it). */
static bool run_in_savepoint(sqlite3 *db, txn_job_t *j) {
    rp_err_t e;
    if (!exec_kept(db, "SAVEPOINT rp_write", &j->err)) {
        j->ok = false;
        return !sqlite3_get_autocommit(db);
    }
    rp_txn_end_t end = j->fn(db, j->arg, &j->err);
    if (sqlite3_get_autocommit(db)) {
        j->ok = false;
        if (end != RP_TXN_FAILED) rp_err_set(&j->err, RP_ERR_STORE, "STORE_ERROR", "the transaction was rolled back");
        return false;
    }
    if (end == RP_TXN_COMMIT) {
        j->ok = exec_kept(db, "RELEASE rp_write", &j->err);
        return true;
    }
    bool undone = exec_kept(db, "ROLLBACK TO rp_write", &e) && exec_kept(db, "RELEASE rp_write", &e);
    j->ok = end == RP_TXN_ROLLBACK && undone;
    if (!undone) j->err = e;
    return !sqlite3_get_autocommit(db);
}

/* Runs one body of a bare group, with no savepoint (every body of the group may run again): 1
 * when what it did stands (it kept its writes, or refused having changed no row), 0 when it must
 * be undone (it failed, or refused after writing: only rolling the whole group back undoes that),
 * -1 when SQLite rolled the transaction back (an I/O error, a full disk). */
static int run_bare(sqlite3 *db, txn_job_t *j) {
    sqlite3_int64 before = sqlite3_total_changes64(db);
    rp_txn_end_t end = j->fn(db, j->arg, &j->err);
    if (sqlite3_get_autocommit(db)) {
        j->ok = false;
        if (end != RP_TXN_FAILED) rp_err_set(&j->err, RP_ERR_STORE, "STORE_ERROR", "the transaction was rolled back");
        return -1;
    }
    if (end == RP_TXN_COMMIT || (end == RP_TXN_ROLLBACK && sqlite3_total_changes64(db) == before)) {
        j->ok = true;
        return 1;
    }
    return 0;
}

/* A job that runs alone: its body is the whole transaction, so its statements' journals are
 * released statement by statement (a savepoint open around the body would keep a copy of every
 * page it touches until the end: 20 MiB for a batch chunk of 500 items). */
static void run_alone(sqlite3 *db, txn_job_t *j) {
    rp_err_t e;
    if (!exec_kept(db, "BEGIN IMMEDIATE", &j->err)) {
        j->ok = false;
        return;
    }
    rp_txn_end_t end = j->fn(db, j->arg, &j->err);
    if (sqlite3_get_autocommit(db)) { /* SQLite rolled it back (an I/O error, a full disk) */
        j->ok = false;
        if (end != RP_TXN_FAILED) rp_err_set(&j->err, RP_ERR_STORE, "STORE_ERROR", "the transaction was rolled back");
        return;
    }
    if (end == RP_TXN_COMMIT) {
        j->ok = exec_kept(db, "COMMIT", &j->err);
    } else {
        j->ok = exec_kept(db, "ROLLBACK", &e) && end == RP_TXN_ROLLBACK;
        if (end == RP_TXN_ROLLBACK && !j->ok) j->err = e;
    }
    if (!sqlite3_get_autocommit(db)) exec_kept(db, "ROLLBACK", NULL);
}

typedef enum group_end { GROUP_COMMITTED, GROUP_FAILED, GROUP_AGAIN } group_end_t;

/* Runs a group's bodies in one transaction, each in a savepoint or, in a bare group, without one;
 * writes that arrive meanwhile join it, up to MAX_GROUP (*n). GROUP_AGAIN: a bare body must be
 * undone, and the transaction was rolled back. */
static group_end_t run_group(rp_sqlite_pool_t *p, sqlite3 *db, txn_job_t *group, int *n, bool bare, rp_err_t *err) {
    int more;
    if (!exec_kept(db, "BEGIN IMMEDIATE", err)) return GROUP_FAILED;
    for (txn_job_t *j = group; j; j = j->next) {
        int stands = bare ? run_bare(db, j) : run_in_savepoint(db, j) ? 1 : -1;
        if (stands == 0) {
            exec_kept(db, "ROLLBACK", NULL);
            return GROUP_AGAIN;
        }
        if (stands < 0) { /* the transaction is gone */
            /* every write of the group fails as this one did when its cause passes (a full disk,
             * a busy file: 503, retry), else as a store error */
            bool transient = rp_err_transient(j->err.kind);
            rp_err_set(err, transient ? j->err.kind : RP_ERR_STORE, transient ? j->err.code : "STORE_ERROR",
                       "a write of the group failed the transaction: %s", j->err.message);
            pthread_mutex_lock(&p->gmu);
            requeue(p, j->next); /* not run yet: the next group runs them */
            pthread_mutex_unlock(&p->gmu);
            j->next = NULL;
            if (!sqlite3_get_autocommit(db)) exec_kept(db, "ROLLBACK", NULL);
            return GROUP_FAILED;
        }
        if (!j->next && *n < MAX_GROUP) { /* writes that arrived meanwhile join this group */
            pthread_mutex_lock(&p->gmu);
            j->next = take_jobs(p, MAX_GROUP - *n, false, bare, &more);
            pthread_mutex_unlock(&p->gmu);
            *n += more;
        }
    }
    if (exec_kept(db, "COMMIT", err)) return GROUP_COMMITTED;
    if (!sqlite3_get_autocommit(db)) exec_kept(db, "ROLLBACK", NULL);
    return GROUP_FAILED;
}

/* How many groups after one that ran again run with savepoints before bare groups are tried
 * again: where bodies often refuse after writing, a bare attempt would mostly be wasted. */
#define SAVEPOINT_GROUPS_AFTER_AGAIN 16

/* The leader's turn: one group (jobs taken from the queue), one commit. If the group does not
 * commit, every write that ran in it fails, refusals too: a refusal may rest on what an earlier
 * write of the group did, which is now undone.
 *
 * A group whose bodies may all run again from their start (rp_sqlite_transact_rerunnable) runs
 * bare: no savepoints. A savepoint costs SQLite a copy of every page the body touches (its
 * sub-journal), 17 % of the leader's time in an embedded claim's profile, while nearly every
 * body either keeps its writes or refuses having written nothing, and then nothing needs undoing.
 * When one must be undone, the whole group is rolled back and runs again, each body in its
 * savepoint as any group: the same bodies, from their start, on the file as it is then. */
static void lead_group(rp_sqlite_pool_t *p, txn_job_t *self) {
    rp_err_t err;
    int n = 0;
    pthread_mutex_lock(&p->gmu);
    txn_job_t *group = take_jobs(p, MAX_GROUP, true, false, &n);
    pthread_mutex_unlock(&p->gmu);
    sqlite3 *db = p->writer; /* one leader at a time: never in use here */
    atomic_fetch_add_explicit(&writes_groups, 1, memory_order_relaxed);
    if (group->alone) {
        run_alone(db, group);
        group->done = true;
        if (group != self) sem_post(&group->wake); /* its thread returns: the job is gone after this */
        return;
    }
    bool bare = p->savepoint_groups == 0;
    for (txn_job_t *j = group; bare && j; j = j->next)
        bare = j->rerun;
    if (p->savepoint_groups > 0) p->savepoint_groups--;
    group_end_t end = run_group(p, db, group, &n, bare, &err);
    if (end == GROUP_AGAIN) {
        for (txn_job_t *j = group; j; j = j->next) {
            j->ok = false;
            rp_err_clear(&j->err);
        }
        p->savepoint_groups = SAVEPOINT_GROUPS_AFTER_AGAIN;
        end = run_group(p, db, group, &n, false, &err);
    }
    for (txn_job_t *k = group; k;) {
        txn_job_t *next = k->next; /* read first: a woken job's thread returns, and the job is gone */
        if (end != GROUP_COMMITTED && (k->ok || k->err.kind == RP_ERR_NONE)) fail_job(k, &err);
        k->done = true;
        if (k != self) sem_post(&k->wake);
        k = next;
    }
}

/* A write joins the queue. With no leader, its thread leads; else it sleeps on its own semaphore
 * until its group is done, or until the leader of the group before hands it the lead: then the
 * queue's first job is its own. Each waiting thread is woken once, by the one post meant for it,
 * and goes on without taking the queue's lock again. (One condition broadcast at the end of
 * every group woke every waiting thread, those of the next group too, and each took the lock
 * again to look: 4.3-4.6 context switches per embedded claim, 3.2-3.7 now; the CPU per claim
 * did not measurably change, bench/README.md.) */
static bool transact_job(rp_sqlite_pool_t *p, rp_sqlite_txn_fn fn, void *arg, bool alone, bool rerun, rp_err_t *err) {
    int64_t joined_us = rp_mono_us();
    txn_job_t job = {.fn = fn, .arg = arg, .alone = alone, .rerun = rerun};
    rp_err_clear(&job.err);
    sem_init(&job.wake, 0, 0);
    pthread_mutex_lock(&p->gmu);
    if (p->tail)
        p->tail->next = &job;
    else
        p->head = &job;
    p->tail = &job;
    bool lead = !p->leading;
    p->leading = true;
    pthread_mutex_unlock(&p->gmu);
    for (;;) {
        if (!lead) {
            while (sem_wait(&job.wake) != 0 && errno == EINTR) {
            }
            if (job.done) break;
        }
        lead_group(p, &job);
        note_memory(p->writer); /* still the leader: nobody else runs on the writer */
        pthread_mutex_lock(&p->gmu);
        txn_job_t *heir = p->head; /* waiting since before this group ended: it leads the next */
        if (!heir) p->leading = false;
        pthread_mutex_unlock(&p->gmu);
        lead = heir == &job; /* not taken yet (a full group, or a job that runs alone): lead again */
        if (heir && !lead) sem_post(&heir->wake);
        if (job.done) break;
    }
    sem_destroy(&job.wake);
    note_write(rp_mono_us() - joined_us);
    if (!job.ok && err) *err = job.err;
    return job.ok;
}

bool rp_sqlite_transact(rp_sqlite_pool_t *p, rp_sqlite_txn_fn fn, void *arg, rp_err_t *err) {
    return transact_job(p, fn, arg, false, false, err);
}

bool rp_sqlite_transact_rerunnable(rp_sqlite_pool_t *p, rp_sqlite_txn_fn fn, void *arg, rp_err_t *err) {
    return transact_job(p, fn, arg, false, true, err);
}

bool rp_sqlite_transact_alone(rp_sqlite_pool_t *p, rp_sqlite_txn_fn fn, void *arg, rp_err_t *err) {
    return transact_job(p, fn, arg, true, false, err);
}

bool rp_sqlite_read(rp_sqlite_pool_t *p, rp_sqlite_txn_fn fn, void *arg, rp_err_t *err) {
    return transact(p, "BEGIN", fn, arg, err);
}

/* Binds s as it is, without SQLite's copy (the caller keeps it until the statement is reset). */
static void bind_kept_text(sqlite3_stmt *st, int i, const char *s) {
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

void rp_sqlite_bind_fmt(sqlite3_stmt *st, const char *fmt, va_list ap) {
    for (int i = 1; *fmt; fmt++, i++) {
        const char *s;
        const json_t *v;
        switch (*fmt) {
        case 't':
            s = va_arg(ap, const char *);
            bind_kept_text(st, i, s ? s : "");
            break;
        case 's':
            s = va_arg(ap, const char *);
            bind_kept_text(st, i, s && s[0] ? s : NULL);
            break;
        case 'n': bind_kept_text(st, i, va_arg(ap, const char *)); break;
        case 'i': sqlite3_bind_int64(st, i, va_arg(ap, int64_t)); break;
        case 'm': rp_sqlite_bind_ms(st, i, va_arg(ap, int64_t)); break;
        case 'j': /* printed here, and handed to SQLite, which frees it */
            v = va_arg(ap, const json_t *);
            if (v && !json_is_null(v))
                sqlite3_bind_text(st, i, json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY), -1, free);
            else
                sqlite3_bind_null(st, i);
            break;
        }
    }
}

void rp_sqlite_page_free(void **items, size_t *n, size_t size, void (*clear)(void *record)) {
    for (size_t i = 0; clear && i < *n; i++)
        clear((char *)*items + i * size);
    free(*items);
    *items = NULL;
    *n = 0;
}

/* Steps st (finalizing it) as u says; see rp_sqlite_use_t. */
static bool use(sqlite3 *db, sqlite3_stmt *st, const rp_sqlite_use_t *u, rp_err_t *err) {
    bool ignored;
    int rc, changes = 0;
    rp_err_t e;
    if (u->items)
        return rp_sqlite_collect_into(db, st, u->limit, u->row, u->size, u->items, u->n, u->more ? u->more : &ignored,
                                      err);
    if (u->row) {
        while ((rc = rp_sqlite_step_row(db, st, u->what, err)) == 1) {
            u->row(st, u->out);
            if (u->found) *u->found = true;
        }
        return rc == 0;
    }
    if (rp_sqlite_run(db, st, u->what, &changes, &e)) {
        if (u->found) *u->found = changes > 0;
        return true;
    }
    if (u->dup && e.kind == RP_ERR_CONFLICT) return *u->dup = true;
    if (err) *err = e;
    return false;
}

bool rp_sqlite_vquery(sqlite3 *db, rp_sqlite_pool_t *pool, const rp_sqlite_use_t *u, rp_err_t *err, const char *sql,
                      const char *fmt, va_list ap) {
    sqlite3 *conn = db ? db : rp_sqlite_pool_get(pool, err);
    sqlite3_stmt *st = NULL;
    bool ok = false;
    if (u->dup) *u->dup = false;
    if (u->found) *u->found = false;
    if (u->items) {
        *u->items = NULL;
        *u->n = 0;
    }
    if (u->more) *u->more = false;
    if (conn && rp_sqlite_prepare(conn, sql, &st, err)) {
        rp_sqlite_bind_fmt(st, fmt, ap);
        ok = use(conn, st, u, err);
    }
    if (conn && !db) rp_sqlite_pool_put(pool, conn);
    if (!ok && u->items) rp_sqlite_page_free(u->items, u->n, u->size, u->clear);
    if (!ok && !u->items && u->clear) u->clear(u->out);
    if (!ok && u->found) *u->found = false;
    return ok;
}

bool rp_sqlite_query(sqlite3 *db, rp_sqlite_pool_t *pool, const rp_sqlite_use_t *u, rp_err_t *err, const char *sql,
                     const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bool ok = rp_sqlite_vquery(db, pool, u, err, sql, fmt, ap);
    va_end(ap);
    return ok;
}

void rp_sqlite_get_cols(sqlite3_stmt *st, void *rec, const rp_sqlite_col_t *cols, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char *p = (char *)rec + cols[i].off;
        if (cols[i].kind == RP_SQLITE_TEXT)
            rp_sqlite_col_copy(st, (int)i, p, cols[i].cap);
        else if (cols[i].kind == RP_SQLITE_I64)
            *(int64_t *)(void *)p = rp_sqlite_col_ms(st, (int)i);
        else
            *(int *)(void *)p = sqlite3_column_int(st, (int)i);
    }
}

/* ---- the operator audit log ---- */

bool rp_sqlite_audit_append(sqlite3 *db, const rp_audit_entry_t *a, rp_err_t *err) {
    char id[RP_OID_LEN];
    if (!a) return true;
    rp_oid_new(id);
    return rp_sqlite_query(db, NULL, &(rp_sqlite_use_t){.what = "append audit"}, err,
                           "INSERT INTO audit_logs (id, actor_id, actor_username, action, target_type, target_id, "
                           "before, after, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                           "nnnnnnjji", id, a->actor_id, a->actor_username, a->action, a->target_type, a->target_id,
                           a->before, a->after, a->at);
}

static json_t *audit_row(sqlite3_stmt *st) {
    return json_pack("{s:o, s:{s:o, s:o}, s:o, s:{s:o, s:o}, s:o, s:o, s:o}", "id", rp_sqlite_col_string(st, 0),
                     "actor", "id", rp_sqlite_col_string(st, 1), "username", rp_sqlite_col_string(st, 2), "action",
                     rp_sqlite_col_string(st, 3), "target", "type", rp_sqlite_col_string(st, 4), "id",
                     rp_sqlite_col_string(st, 5), "before", rp_sqlite_col_json(st, 6), "after",
                     rp_sqlite_col_json(st, 7), "at", rp_sqlite_col_time(st, 8));
}

bool rp_sqlite_audit_list(rp_sqlite_pool_t *pool, const char *target_type, const char *target_id, const char *actor_id,
                          const char *cursor, int limit, json_t **items, bool *more, rp_err_t *err) {
    sqlite3_stmt *st = NULL;
    bool ok = false;
    *items = NULL;
    *more = false;
    sqlite3 *db = rp_sqlite_pool_get(pool, err);
    if (!db) return false;
    if (rp_sqlite_prepare(db,
                          "SELECT id, actor_id, actor_username, action, target_type, target_id, before, after, at "
                          "FROM audit_logs WHERE (?1 IS NULL OR target_type = ?1) AND (?2 IS NULL OR target_id = ?2) "
                          "AND (?3 IS NULL OR actor_id = ?3) AND (?4 IS NULL OR (at, id) < (SELECT at, id FROM "
                          "audit_logs WHERE id = ?4)) ORDER BY at DESC, id DESC LIMIT ?5",
                          &st, err)) {
        rp_sqlite_bind_text(st, 1, target_type);
        rp_sqlite_bind_text(st, 2, target_id);
        rp_sqlite_bind_text(st, 3, actor_id);
        rp_sqlite_bind_text(st, 4, cursor);
        sqlite3_bind_int64(st, 5, (int64_t)limit + 1);
        ok = rp_sqlite_collect(db, st, limit, audit_row, items, more, err);
    }
    rp_sqlite_pool_put(pool, db);
    return ok;
}
