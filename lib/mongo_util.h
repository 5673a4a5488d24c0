/* mongo_util.h - shared MongoDB plumbing for the repositories (libmongoc/libbson 1.23): a client
 * pool opened from a URI, a store's start-up (replica-set check, index tables) and handle,
 * transactions through mongoc_client_session_with_transaction, finds into records and pages,
 * conversions between jansson values, records (field tables) and BSON, the operator audit log
 * both stores keep, and the mapping of driver errors to rp_err_t.
 * An rp_mongo_t is thread-safe; a transaction handle belongs to the thread running it.
 *
 * Storage conventions every MongoDB backend follows:
 * - Ids: the API's 24-hex ids are stored as BSON *strings* in `_id`, never as ObjectId. Lookups,
 *   `_id` range cursors and sort order are then byte-for-byte those of the SQLite stores' TEXT
 *   ids, and an id crosses the API unchanged (an upper-case id simply does not match, as there).
 * - Times are BSON dates (int64 ms since the epoch) where SQLite keeps ms; "not set" is BSON null.
 * - Field names are the API's camelCase names.
 * - Client-supplied JSON the store never queries (a definition's value, customData, conditions,
 *   audit before/after, a fact's value) is "opaque": stored as native BSON when every key is
 *   storable, otherwise (an empty key, a key starting with '$' or containing '.', the reserved
 *   key RP_MONGO_JSON_KEY, or nesting deeper than RP_MONGO_OPAQUE_DEPTH) as the document
 *   {RP_MONGO_JSON_KEY: "<compact JSON text>"}, so whatever the API accepted reads back equal.
 *   Integers are stored as int64, reals as double. */
#ifndef RP_LIB_MONGO_UTIL_H
#define RP_LIB_MONGO_UTIL_H

#include <bson/bson.h>
#include <jansson.h>
#include <mongoc/mongoc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "err.h"
#include "json_fields.h"
#include "txn.h"

#define RP_MONGO_JSON_KEY "_rpJson"
#define RP_MONGO_OPAQUE_DEPTH 32

typedef struct rp_mongo rp_mongo_t;

/* ---- connection ---- */

/* The process keeps one client pool per (uri, db_name): a second open of the same pair shares
 * the first one's pool (reference counted; the first appname wins). Otherwise: parses uri,
 * opens a client pool on it with error API version 2 and appname (unless the URI
 * sets one; NULL = none), and remembers db_name. Initialises the driver once per process and
 * routes its log through rp_log. Connects lazily: a missing server shows on first use.
 * Errors: 500 CONFIG_INVALID (bad URI or empty db_name). Returns a new handle, free with
 * rp_mongo_close. */
rp_mongo_t *rp_mongo_open(const char *uri, const char *db_name, const char *appname, rp_err_t *err);

/* Releases one open; the last one destroys the pool (no client may be in use). Accepts NULL. The driver itself stays
 * initialised (mongoc_cleanup is left to process exit). */
void rp_mongo_close(rp_mongo_t *m);

/* The database name (borrowed, valid until rp_mongo_close). */
const char *rp_mongo_db_name(const rp_mongo_t *m);

/* Start-up check: runs `hello` (falling back to `isMaster` on servers before 4.4.2) on admin and
 * requires `setName`. Errors: 503 STORE_UNAVAILABLE "MongoDB at <hosts> is not a replica set:
 * transactions need one", or the mapped driver error (no server: 503 STORE_UNAVAILABLE after
 * the URI's serverSelectionTimeoutMS). The message names hosts only, never credentials. */
bool rp_mongo_require_replset(rp_mongo_t *m, rp_err_t *err);

/* Runs `ping` on the database. */
bool rp_mongo_ping(rp_mongo_t *m, rp_err_t *err);

/* Runs createIndexes on collection with indexes, a BSON array (keys "0", "1", ...) of index
 * specs {key, name, unique?, partialFilterExpression?}. Repeating identical specs is a no-op;
 * a name reused with other options fails (500 STORE_ERROR). Run at start-up, outside
 * transactions; it also creates the collection, which transactions need on older servers. */
bool rp_mongo_create_indexes(rp_mongo_t *m, const char *collection, const bson_t *indexes, rp_err_t *err);

/* An index of a collection: its keys in order (direction 1 or -1), unique, and partial on
 * {partial: {$exists: true}} when partial is set. */
typedef struct rp_mongo_index {
    const char *coll, *name, *partial;
    bool unique;
    struct {
        const char *field;
        int dir;
    } keys[4];
} rp_mongo_index_t;

/* Creates the indexes specs[0..n) describe (rp_mongo_create_indexes), one command per run of
 * consecutive specs on the same collection, in order. */
bool rp_mongo_create_index_table(rp_mongo_t *m, const rp_mongo_index_t *specs, size_t n, rp_err_t *err);

/* Creates collection outside any transaction: before MongoDB 4.4 a transaction cannot create one
 * (its first write there would fail with OperationNotSupportedInTransaction every time). An
 * existing collection is fine (NamespaceExists before 7.0, ok after). */
bool rp_mongo_create_collection(rp_mongo_t *m, const char *collection, rp_err_t *err);

/* ---- a store's handle ---- */

/* What a MongoDB store needs before its first operation, outside any transaction: its appname,
 * its indexes (rp_mongo_create_index_table) and then set_up (may be NULL) for the rest
 * (collections, seed documents). */
typedef struct rp_mongo_setup {
    const char *appname;
    const rp_mongo_index_t *indexes;
    size_t nindexes;
    bool (*set_up)(rp_mongo_t *m, rp_err_t *err);
} rp_mongo_setup_t;

/* The setup of a store whose indexes are the array (not a pointer) indexes. */
#define RP_MONGO_SETUP(appname, indexes, set_up)                                                                       \
    { (appname), (indexes), sizeof(indexes) / sizeof((indexes)[0]), (set_up) }

/* Opens a MongoDB store: rp_mongo_open(uri, db_name, setup->appname), the replica-set check
 * (transactions need one) and the start-up of setup (borrowed for the call), in front of a new
 * copy of handle, the store interface's handle (handle_size bytes, its ops set), which is
 * returned for the store to hand out (lib/store_handle.h: rp_store_handle_backend is the
 * rp_mongo_t, rp_store_handle_free closes it). NULL with err on failure, and then nothing stays
 * open. */
void *rp_mongo_store_open(const char *uri, const char *db_name, const rp_mongo_setup_t *setup, const void *handle,
                          size_t handle_size, rp_err_t *err);

/* Takes a client from the pool (waits up to the URI's waitQueueTimeoutMS: then NULL and 503
 * STORE_BUSY). Give it back with rp_mongo_push. Thread-safe; the client is not. */
mongoc_client_t *rp_mongo_pop(rp_mongo_t *m, rp_err_t *err);
void rp_mongo_push(rp_mongo_t *m, mongoc_client_t *cli);

/* A collection of the database on cli; free with mongoc_collection_destroy before pushing cli. */
mongoc_collection_t *rp_mongo_collection(const rp_mongo_t *m, mongoc_client_t *cli, const char *name);

/* ---- errors ---- */

/* True for a duplicate-key error (code 11000/11001 in the server or write-concern domain). */
bool rp_mongo_is_duplicate(const bson_error_t *e);

/* Sets err from a driver error and logs it: no server, network, not primary, shutdown → 503
 * STORE_UNAVAILABLE; write conflict, lock or time limits after the driver's retries → 503
 * STORE_BUSY; duplicate key → 409 DUPLICATE_KEY (callers give it a domain code); anything
 * else → 500 STORE_ERROR. what names the operation. */
void rp_mongo_err(const bson_error_t *e, const char *what, rp_err_t *err);

/* ---- single operations outside transactions (each pops and pushes a client) ---- */

typedef struct rp_mongo_write {
    int64_t matched, modified, upserted, deleted, inserted;
} rp_mongo_write_t;

#define RP_MONGO_UPSERT 1u
#define RP_MONGO_MANY 2u

/* Inserts doc into coll. When berr is not NULL it receives the driver error (e.g. to tell which
 * unique index a duplicate hit); err gets the mapped error either way. */
bool rp_mongo_insert(rp_mongo_t *m, const char *coll, const bson_t *doc, bson_error_t *berr, rp_err_t *err);
/* update_one (update_many with RP_MONGO_MANY, upsert with RP_MONGO_UPSERT); res may be NULL. */
bool rp_mongo_update(rp_mongo_t *m, const char *coll, const bson_t *filter, const bson_t *update, unsigned flags,
                     rp_mongo_write_t *res, rp_err_t *err);
/* delete_one, or delete_many when many; deleted may be NULL. */
bool rp_mongo_delete(rp_mongo_t *m, const char *coll, const bson_t *filter, bool many, int64_t *deleted, rp_err_t *err);
/* count_documents(filter). */
bool rp_mongo_count(rp_mongo_t *m, const char *coll, const bson_t *filter, int64_t *count, rp_err_t *err);

/* Called per document of a find; the document is borrowed for the call. Return false to stop. */
typedef bool (*rp_mongo_row_fn)(const bson_t *doc, void *ctx);

/* find_with_opts(filter, opts) calling row for each document. opts may be NULL. */
bool rp_mongo_find(rp_mongo_t *m, const char *coll, const bson_t *filter, const bson_t *opts, rp_mongo_row_fn row,
                   void *ctx, rp_err_t *err);
/* The first document of find(filter, opts) as a new bson_t in *doc (bson_destroy), NULL when none.
 * opts may carry projection and sort, never limit. */
bool rp_mongo_find_one(rp_mongo_t *m, const char *coll, const bson_t *filter, const bson_t *opts, bson_t **doc,
                       rp_err_t *err);

/* The first document of find(filter) (filter taken: destroyed here) read into the record out by
 * fill; *found when there was one (out is left as it was otherwise). */
bool rp_mongo_fetch(rp_mongo_t *m, const char *coll, bson_t *filter, void (*fill)(const bson_t *doc, void *out),
                    void *out, bool *found, rp_err_t *err);

/* One page of a list, like rp_sqlite_collect: finds filter sorted by sort with limit + 1,
 * converts up to limit documents with row into *items (a new array) and sets *more when another
 * followed. On failure *items is NULL. */
bool rp_mongo_find_page(rp_mongo_t *m, const char *coll, const bson_t *filter, const bson_t *sort, int limit,
                        json_t *(*row)(const bson_t *doc), json_t **items, bool *more, rp_err_t *err);

/* For lists newest first by (field, _id): looks up the cursor document by _id and appends to
 * clauses (a BSON array being built, next index *n) {$or: [{field: {$lt: v}}, {field: v,
 * _id: {$lt: cursor}}]} with v its field value. Returns 1 when appended, 0 when the cursor
 * names no document (the SQLite stores then return an empty page), -1 on error. */
int rp_mongo_cursor_clause(rp_mongo_t *m, const char *coll, const char *cursor, const char *field, bson_t *clauses,
                           uint32_t *n, rp_err_t *err);

/* ---- transactions ---- */

typedef struct rp_mongo_txn rp_mongo_txn_t;

/* A transaction body. The driver may run it several times (transient errors), so it must touch
 * the database only through the rp_mongo_txn_* calls, which pass the session and hand every
 * server reply back to the driver, have no other side effects, and reset at its start whatever
 * it reports through arg. Return true to commit; false to abort, right after a failed
 * rp_mongo_txn_* call or through rp_mongo_txn_fail. */
typedef bool (*rp_mongo_txn_fn)(rp_mongo_txn_t *tx, void *arg);

/* Runs fn in a transaction (write concern majority, read concern snapshot) on a pooled client
 * with mongoc_client_session_with_transaction, which retries transient errors and unknown
 * commit results for up to 120 s. True when the transaction committed, or when the body chose
 * to end it through rp_mongo_txn_rollback (aborted, nothing written: a refusal, not an error).
 * On false err is the error of rp_mongo_txn_fail when the body gave up, else the mapped driver
 * error. */
bool rp_mongo_transact(rp_mongo_t *m, const char *what, rp_mongo_txn_fn fn, void *arg, rp_err_t *err);

/* Operations inside a transaction body; false on failure (the body should return false). */
bool rp_mongo_txn_insert(rp_mongo_txn_t *tx, const char *coll, const bson_t *doc);
bool rp_mongo_txn_update(rp_mongo_txn_t *tx, const char *coll, const bson_t *filter, const bson_t *update,
                         unsigned flags, rp_mongo_write_t *res);
bool rp_mongo_txn_delete(rp_mongo_txn_t *tx, const char *coll, const bson_t *filter, bool many, int64_t *deleted);
/* As rp_mongo_find_one, within the transaction's snapshot. */
bool rp_mongo_txn_find_one(rp_mongo_txn_t *tx, const char *coll, const bson_t *filter, const bson_t *opts,
                           bson_t **doc);
/* Every document of find(filter, opts) to row, within the transaction's snapshot; row returns
 * false to stop. */
bool rp_mongo_txn_find(rp_mongo_txn_t *tx, const char *coll, const bson_t *filter, const bson_t *opts,
                       rp_mongo_row_fn row, void *ctx);
/* count_documents(filter, opts) within the transaction; opts (may be NULL) may carry limit and
 * skip, so that {limit: n} counts min(count, n) in one round trip. */
bool rp_mongo_txn_count(rp_mongo_txn_t *tx, const char *coll, const bson_t *filter, const bson_t *opts, int64_t *count);
/* Ends the attempt without keeping anything and without an error: the driver aborts the
 * transaction (no rerun) and rp_mongo_transact returns true. Returns false (for the body to
 * return). */
bool rp_mongo_txn_rollback(rp_mongo_txn_t *tx);
/* What an rp_mongo_txn_fn returns for a store body that ended as end: true to commit, the
 * rollback for RP_TXN_ROLLBACK, false for RP_TXN_FAILED. */
bool rp_mongo_txn_end(rp_mongo_txn_t *tx, rp_txn_end_t end);
/* True when the last failed rp_mongo_txn_* call of this attempt hit a unique index (11000). The
 * server has then aborted the transaction: the body can only roll back. */
bool rp_mongo_txn_last_duplicate(const rp_mongo_txn_t *tx);
/* Gives up with a domain error (no retry): records it for rp_mongo_transact and returns false. */
bool rp_mongo_txn_fail(rp_mongo_txn_t *tx, rp_err_kind_t kind, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* rp_mongo_txn_update that takes filter and update (destroys both, whatever happens) and reports
 * only whether a document matched (*matched, may be NULL). */
bool rp_mongo_txn_update_take(rp_mongo_txn_t *tx, const char *coll, bson_t *filter, bson_t *update, unsigned flags,
                              bool *matched);
/* rp_mongo_txn_find_one that takes filter and opts (may be NULL; destroys both). */
bool rp_mongo_txn_find_one_take(rp_mongo_txn_t *tx, const char *coll, bson_t *filter, bson_t *opts, bson_t **doc);
/* rp_mongo_fetch within the transaction's snapshot. */
bool rp_mongo_txn_fetch(rp_mongo_txn_t *tx, const char *coll, bson_t *filter,
                        void (*fill)(const bson_t *doc, void *out), void *out, bool *found);
/* rp_mongo_txn_insert that takes doc (destroys it) and reports a unique index it hits through
 * *duplicate instead of failing: the server has then aborted the transaction, so the body can
 * only roll back. */
bool rp_mongo_txn_insert_take(rp_mongo_txn_t *tx, const char *coll, bson_t *doc, bool *duplicate);

/* The key of element i of a BSON array being built ("0", "1", ...; buf may hold it). Keep it in a
 * variable: BSON_APPEND_* evaluate their key argument twice. */
const char *rp_mongo_array_key(uint32_t i, char buf[16]);

/* ---- jansson <-> BSON ---- */

/* Appends v under key as native BSON: null, bool, int64, double, UTF-8, document, array (NULL
 * appends null). No extended-JSON interpretation: {"$date": ...} stays a plain document.
 * Returns false when BSON cannot hold it (a key with an embedded NUL, a non-finite real). */
bool rp_mongo_append_json(bson_t *b, const char *key, const json_t *v);
/* A new document from a JSON object (bson_destroy); NULL when obj is no object or fails above. */
bson_t *rp_mongo_bson_from_json(const json_t *obj);
/* A new jansson value for the element at it: int32/int64 → integer, double → real, date →
 * ISO-8601 string, ObjectId → 24-hex string, decimal128 → string, document/array recursively,
 * other types → null. Never NULL. */
json_t *rp_mongo_json_from_iter(const bson_iter_t *it);
/* A new JSON object for a whole document. */
json_t *rp_mongo_json_from_bson(const bson_t *doc);

/* Appends an opaque client value under key (see the conventions above). NULL/JSON null → null. */
void rp_mongo_append_opaque(bson_t *b, const char *key, const json_t *v);

/* Appends s under key, or null when s is NULL. */
void rp_mongo_append_str(bson_t *b, const char *key, const char *s);
/* Appends s under key, or null when s is NULL or "" (a record's "absent"). */
void rp_mongo_append_opt(bson_t *b, const char *key, const char *s);
/* Appends epoch ms as a BSON date, or null when ms is 0 (a record's "not set"). */
void rp_mongo_append_ms(bson_t *b, const char *key, int64_t ms);
/* Appends {field: {$in: [v[0], ..., v[n-1]]}} (int64 values). */
void rp_mongo_append_in(bson_t *b, const char *field, const int64_t *v, size_t n);
/* Appends an ISO-8601 JSON string as a BSON date; null when v is no parseable time. */
void rp_mongo_append_iso(bson_t *b, const char *key, const json_t *v);

/* Readers of a document's top-level field; a missing field reads as null / 0 / false / "". */
json_t *rp_mongo_get_json(const bson_t *doc, const char *key);   /* new reference */
json_t *rp_mongo_get_opaque(const bson_t *doc, const char *key); /* new reference */
json_t *rp_mongo_get_time(const bson_t *doc, const char *key);   /* ISO string or null; new reference */
json_t *rp_mongo_get_int(const bson_t *doc, const char *key);    /* integer or null; new reference */
int64_t rp_mongo_get_ms(const bson_t *doc, const char *key);     /* date or number as ms, else 0 */
int64_t rp_mongo_get_i64(const bson_t *doc, const char *key);
bool rp_mongo_get_bool(const bson_t *doc, const char *key);
/* Copies a string field into dst (cap bytes, truncating, always NUL-terminated). */
void rp_mongo_copy_str(const bson_t *doc, const char *key, char *dst, size_t cap);
/* A new JSON object of document d, member t->fields[k] read from the field of its name (_id for
 * "id"). */
json_t *rp_mongo_doc_json(const bson_t *d, const rp_json_table_t *t);
/* A string field as a new string (free()), NULL when it is missing or no string. */
char *rp_mongo_get_strdup(const bson_t *doc, const char *key);
/* The document the iterator stands on, as a read-only view into it in *out; false when it is none. */
bool rp_mongo_iter_doc(const bson_iter_t *it, bson_t *out);

/* ---- records <-> documents by table ---- */

/* How a record keeps a field, and how the document stores it: STR a char array as a string ("" read
 * back for a missing field or null), OPT a char array whose "" is stored as null, MS int64 epoch ms
 * as a BSON date (0 stored as null, read back as 0), I64 an int64_t, INT an int stored as int64. */
typedef enum rp_mongo_fkind { RP_MONGO_STR, RP_MONGO_OPT, RP_MONGO_MS, RP_MONGO_I64, RP_MONGO_INT } rp_mongo_fkind_t;

typedef struct rp_mongo_field {
    const char *key;
    size_t off, cap;
    rp_mongo_fkind_t kind;
} rp_mongo_field_t;

/* A table entry: member of record type T, stored under key. */
#define RP_MONGO_FIELD(T, member, key, kind)                                                                           \
    { key, offsetof(T, member), sizeof(((T *)0)->member), RP_MONGO_##kind }

/* Appends the fields f[0..n) of record rec to b, in table order. */
void rp_mongo_put_fields(bson_t *b, const void *rec, const rp_mongo_field_t *f, size_t n);
/* Reads the fields f[0..n) of document d into record rec. */
void rp_mongo_get_fields(const bson_t *d, void *rec, const rp_mongo_field_t *f, size_t n);
/* The same for a whole table (an array, not a pointer). */
#define RP_MONGO_PUT_FIELDS(b, rec, table) rp_mongo_put_fields((b), (rec), (table), sizeof(table) / sizeof((table)[0]))
#define RP_MONGO_GET_FIELDS(d, rec, table) rp_mongo_get_fields((d), (rec), (table), sizeof(table) / sizeof((table)[0]))

/* ---- the operator audit log (collection audit_logs, shared by both stores) ---- */

#define RP_MONGO_AUDIT_COLLECTION "audit_logs"

/* Creates the audit_logs indexes (the same specs whichever store calls it). */
bool rp_mongo_audit_indexes(rp_mongo_t *m, rp_err_t *err);
/* Inserts entry a (borrowed; NULL: nothing) with a new id inside tx, tagged with its log ("auth",
 * "event"), which tells the stores' logs apart: with SQLite they live in separate files, here in
 * one collection. */
bool rp_mongo_audit_append(rp_mongo_txn_t *tx, const char *log, const rp_audit_entry_t *a);
/* Entries of log newest first by (at, id), optionally filtered (NULL = any), after cursor (the
 * id of the previous page's last entry; unknown → empty page). *items is a new array of {id,
 * actor: {id, username}, action, target: {type, id}, before, after, at}. */
bool rp_mongo_audit_list(rp_mongo_t *m, const char *log, const char *target_type, const char *target_id,
                         const char *actor_id, const char *cursor, int limit, json_t **items, bool *more,
                         rp_err_t *err);

/* ---- typed rows and aggregation ---- */

/* A growing array of records of elem_size bytes, for the stores that return typed records:
 * rp_mongo_rows_add is a row callback for rp_mongo_find / rp_mongo_txn_find / rp_mongo_aggregate
 * that zeroes a new element and has fill copy the document into it. With limit >= 0 it keeps
 * at most limit records and sets more when another document follows; limit < 0 keeps all.
 * Start from {fill, elem_size, limit} (the rest zeroed); release what fill allocated inside the
 * elements, then free(items). */
typedef struct rp_mongo_rows {
    void (*fill)(const bson_t *doc, void *elem);
    size_t elem_size;
    int limit;
    void *items;
    size_t n, cap;
    bool more;
} rp_mongo_rows_t;

bool rp_mongo_rows_add(const bson_t *doc, void *rows);

/* One page of typed records, like rp_mongo_find_page: finds filter sorted by sort with limit + 1
 * and fills up to limit records; *items a new array of *n (NULL when none), *more when another
 * followed. On failure nothing is returned: release (NULL when fill allocates nothing) frees
 * what was filled. */
bool rp_mongo_find_page_into(rp_mongo_t *m, const char *coll, const bson_t *filter, const bson_t *sort, int limit,
                             void (*fill)(const bson_t *doc, void *elem), void (*release)(void *elem), size_t elem_size,
                             void **items, size_t *n, bool *more, rp_err_t *err);

/* Runs an aggregation pipeline (a BSON array of stages, or {pipeline: [...]}) on coll outside
 * transactions, calling row for each result document (borrowed for the call; return false to
 * stop). */
bool rp_mongo_aggregate(rp_mongo_t *m, const char *coll, const bson_t *pipeline, rp_mongo_row_fn row, void *ctx,
                        rp_err_t *err);

#endif
