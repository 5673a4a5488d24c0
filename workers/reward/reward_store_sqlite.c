/* reward_store_sqlite.c - the reward store (reward_store.h) on SQLite; it stores and fetches,
 * nothing more. Its tables are events.db's "reward" component (reward_schema_sqlite.c), beside
 * the event_rewards whose stock a grant takes in the transaction that inserts its request. A unit
 * of work runs on lib/sqlite_util's runner (BEGIN IMMEDIATE on a pooled connection); anything
 * else takes a pooled connection per statement, or a read snapshot where it reads twice.
 * Thread-safe (the pool is); a unit of work belongs to the thread running it.
 *
 * Where reward_store.h leaves room, this backend:
 * - stores a string the domain leaves "" as SQL NULL (the CHECK and the partial unique indexes
 *   expect it) and reads it back as ""; notes NULL or "" read back NULL;
 * - keeps claimed rewards as one JSON column (rp_claimed_to_json), failure details as JSON;
 * - numbers ledger and outbox rows by AUTOINCREMENT: writers run one at a time, so seq order is
 *   commit order;
 * - initialises every record it fills first (rp_request_init, ...), so hand it one that owns
 *   nothing; after a failure it owns nothing and *found is false;
 * - gives stock back to every line it can (a missing event reward is skipped);
 * - stores a batch in one transaction: it is always complete and reads open; resume stores only
 *   the batch row and items that are missing, leaving stored items as they are;
 * - hands leased records back in the order they were chosen (items by due, batch, seq; outbox by
 *   seq); an outbox lease is free once lease_until < now, and an owner renews its own. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event_schema_sqlite.h"
#include "mem.h"
#include "reward_store.h"
#include "sqlite_util.h"

/* A unit of work, or, with db NULL, none: each statement then takes a connection from pool. */
struct rp_reward_txn {
    sqlite3 *db;
    rp_err_t *err;
    rp_sqlite_pool_t *pool;
};

typedef struct sqlite_store {
    rp_reward_store_t base;
    rp_sqlite_pool_t *pool;
} sqlite_store_t;

#define POOL(base) (((sqlite_store_t *)(base))->pool)
#define COPY(st, i, field) rp_sqlite_col_copy((st), (i), (field), sizeof(field))

#define REQUEST_COLS                                                                                                   \
    "id, user_id, event_id, period_key, active_key, status, source, claimed_rewards, failure_details, notes, "         \
    "requested_at, processed_at, created_at, updated_at, processor_id, failure_reason, batch_id"
#define LEDGER_COLS                                                                                                    \
    "seq, id, request_id, user_id, event_id, reward_idx, reward_definition_id, quantity, entry_type, processor_id, at"
#define OUTBOX_COLS "seq, message_id, routing_key, request_id, payload, created_at, published_at"
#define BATCH_COLS "id, event_id, created_by, reason, idem_key, request_hash, total, duplicates, created_at"
#define ITEM_COLS "batch_id, seq, user_id, status, failure_reason, request_id, attempts, settled_at"

/* ---- statements: prepare, bind by a format, use ---- */

/* Binds ap's arguments from ?1 on, one format letter each: t text (NULL binds ''), s optional
 * text ("" and NULL bind NULL), i int64_t, m int64_t ms (0 binds NULL), j const json_t *. */
static void bind(sqlite3_stmt *st, const char *fmt, va_list ap) {
    for (int i = 1; *fmt; fmt++, i++) {
        const char *s;
        switch (*fmt) {
        case 't':
        case 's':
            s = va_arg(ap, const char *);
            rp_sqlite_bind_text(st, i, *fmt == 't' ? (s ? s : "") : (s && s[0] ? s : NULL));
            break;
        case 'i': sqlite3_bind_int64(st, i, va_arg(ap, int64_t)); break;
        case 'm': rp_sqlite_bind_ms(st, i, va_arg(ap, int64_t)); break;
        case 'j': rp_sqlite_bind_json(st, i, va_arg(ap, const json_t *)); break;
        }
    }
}

typedef void (*row_fn)(sqlite3_stmt *st, void *out);

/* How a statement is used: a write (*changed when it changed a row; with dup, a unique-key
 * violation is the outcome *dup, not a failure), rows handed to row with out (a record, or a sum rows add to;
 * *found when there was one), or with items a page of records of size bytes: up to limit rows
 * into a new array of *n (NULL when none), *more when a query asking limit + 1 had another.
 * clear releases what row filled in a record. Every pointer but what may be NULL. */
typedef struct use {
    const char *what;
    bool *changed;
    bool *dup;
    row_fn row;
    void (*clear)(void *record);
    void *out;
    bool *found;
    void **items;
    size_t size, *n;
    int limit;
    bool *more;
} use_t;

#define PAGE(what_, row_, clear_, items_, n_, limit_, more_)                                                           \
    &(use_t) {                                                                                                         \
        .what = what_, .row = row_, .clear = clear_, .items = (void **)(items_), .size = sizeof **(items_), .n = n_,   \
        .limit = limit_, .more = more_                                                                                 \
    }

/* Releases an array of *n records of size bytes, clear (may be NULL) releasing each. */
static void free_page(void **items, size_t *n, size_t size, void (*clear)(void *)) {
    for (size_t i = 0; clear && i < *n; i++)
        clear((char *)*items + i * size);
    free(*items);
    *items = NULL;
    *n = 0;
}

static bool step(sqlite3 *db, sqlite3_stmt *st, const use_t *u, rp_err_t *err) {
    bool ignored;
    int rc;
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
    int changes = 0;
    if (rp_sqlite_run(db, st, u->what, &changes, &e)) {
        if (u->changed) *u->changed = changes > 0;
        return true;
    }
    if (u->dup && e.kind == RP_ERR_CONFLICT) return *u->dup = true;
    if (err) *err = e;
    return false;
}

/* Runs sql with fmt's arguments on the unit of work's connection (or a pooled one), used as u
 * says. Its outputs are reset first; after a failure nothing is left to release. */
static bool query(rp_reward_txn_t *tx, const use_t *u, const char *sql, const char *fmt, ...) {
    sqlite3 *db = tx->db ? tx->db : rp_sqlite_pool_get(tx->pool, tx->err);
    sqlite3_stmt *st = NULL;
    bool ok = false;
    va_list ap;
    if (u->dup) *u->dup = false;
    if (u->changed) *u->changed = false;
    if (u->found) *u->found = false;
    if (u->items) {
        *u->items = NULL;
        *u->n = 0;
    }
    if (u->more) *u->more = false;
    if (db && rp_sqlite_prepare(db, sql, &st, tx->err)) {
        va_start(ap, fmt);
        bind(st, fmt, ap);
        va_end(ap);
        ok = step(db, st, u, tx->err);
    }
    if (db && !tx->db) rp_sqlite_pool_put(tx->pool, db);
    if (!ok && u->items) free_page(u->items, u->n, u->size, u->clear);
    if (!ok && !u->items && u->clear) u->clear(u->out);
    if (!ok && u->found) *u->found = false;
    return ok;
}

/* ---- rows to records ---- */

static const char *col_text(sqlite3_stmt *st, int i) {
    return (const char *)sqlite3_column_text(st, i);
}

static void row_request(sqlite3_stmt *st, void *out) {
    rp_request_t *r = out;
    COPY(st, 0, r->id);
    COPY(st, 1, r->user_id);
    COPY(st, 2, r->event_id);
    COPY(st, 3, r->period_key);
    COPY(st, 4, r->active_key);
    rp_req_status_parse(col_text(st, 5), &r->status); /* the column's CHECK allows only names */
    r->source = strcmp(col_text(st, 6), "BATCH") == 0 ? RP_SOURCE_BATCH : RP_SOURCE_CLAIM;
    json_t *claimed = rp_sqlite_col_json(st, 7);
    rp_claimed_from_json(r, claimed);
    json_decref(claimed);
    r->failure_details = sqlite3_column_type(st, 8) == SQLITE_NULL ? NULL : rp_sqlite_col_json(st, 8);
    r->notes = rp_sqlite_col_strdup(st, 9);
    r->requested_at = rp_sqlite_col_ms(st, 10);
    r->processed_at = rp_sqlite_col_ms(st, 11);
    r->created_at = rp_sqlite_col_ms(st, 12);
    r->updated_at = rp_sqlite_col_ms(st, 13);
    COPY(st, 14, r->processor_id);
    COPY(st, 15, r->failure_reason);
    COPY(st, 16, r->batch_id);
}

static void row_ledger(sqlite3_stmt *st, void *out) {
    rp_ledger_entry_t *e = out;
    e->seq = sqlite3_column_int64(st, 0);
    COPY(st, 1, e->id);
    COPY(st, 2, e->request_id);
    COPY(st, 3, e->user_id);
    COPY(st, 4, e->event_id);
    e->reward_index = sqlite3_column_int(st, 5);
    COPY(st, 6, e->definition_id);
    e->quantity = sqlite3_column_int64(st, 7);
    rp_ledger_kind_parse(col_text(st, 8), &e->kind);
    COPY(st, 9, e->processor_id);
    e->at = sqlite3_column_int64(st, 10);
}

static void row_outbox(sqlite3_stmt *st, void *out) {
    rp_outbox_message_t *m = out;
    m->seq = sqlite3_column_int64(st, 0);
    COPY(st, 1, m->message_id);
    COPY(st, 2, m->routing_key);
    COPY(st, 3, m->request_id);
    m->payload = rp_sqlite_col_json(st, 4);
    m->created_at = rp_sqlite_col_ms(st, 5);
    m->published_at = rp_sqlite_col_ms(st, 6);
}

static void row_idem(sqlite3_stmt *st, void *out) {
    rp_idem_t *v = out;
    COPY(st, 0, v->request_hash);
    v->status = sqlite3_column_int(st, 1);
    v->response = rp_sqlite_col_json(st, 2);
    v->created_at = sqlite3_column_int64(st, 3);
}

static void row_batch(sqlite3_stmt *st, void *out) {
    rp_batch_t *b = out;
    COPY(st, 0, b->id);
    COPY(st, 1, b->event_id);
    COPY(st, 2, b->created_by);
    b->reason = rp_sqlite_col_strdup(st, 3);
    COPY(st, 4, b->idem_key);
    COPY(st, 5, b->request_hash);
    b->total = sqlite3_column_int64(st, 6);
    b->duplicates = sqlite3_column_int64(st, 7);
    b->created_at = sqlite3_column_int64(st, 8);
    b->open = true; /* stored whole in one transaction */
}

/* One (status, reason) group of a batch's items, added to its counts. */
static void row_count(sqlite3_stmt *st, void *out) {
    rp_batch_t *b = out;
    rp_item_status_t s = RP_ITEM_QUEUED;
    rp_item_status_parse(col_text(st, 0), &s);
    rp_batch_count(b, s, col_text(st, 1), sqlite3_column_int64(st, 2));
    if (rp_sqlite_col_ms(st, 3) > b->last_settled_at) b->last_settled_at = rp_sqlite_col_ms(st, 3);
}

static void row_item(sqlite3_stmt *st, void *out) {
    rp_batch_item_t *it = out;
    COPY(st, 0, it->batch_id);
    it->seq = sqlite3_column_int64(st, 1);
    COPY(st, 2, it->user_id);
    rp_item_status_parse(col_text(st, 3), &it->status);
    COPY(st, 4, it->failure_reason);
    COPY(st, 5, it->request_id);
    it->attempts = sqlite3_column_int64(st, 6);
    it->settled_at = rp_sqlite_col_ms(st, 7);
}

static void row_ref(sqlite3_stmt *st, void *out) {
    rp_item_ref_t *r = out;
    COPY(st, 0, r->batch_id);
    r->seq = sqlite3_column_int64(st, 1);
}

static void row_int(sqlite3_stmt *st, void *out) {
    *(int64_t *)out = sqlite3_column_int64(st, 0);
}

static void clear_request(void *r) {
    rp_request_clear(r);
}
static void clear_outbox(void *m) {
    rp_outbox_message_clear(m);
}
static void clear_batch(void *b) {
    rp_batch_clear(b);
}
static void clear_idem(void *v) {
    rp_idem_clear(v);
}

/* ---- the unit of work ---- */

typedef struct body {
    rp_reward_txn_fn fn;
    void *arg;
} body_t;

static rp_txn_end_t run_body(sqlite3 *db, void *p, rp_err_t *err) {
    body_t *b = p;
    rp_reward_txn_t tx = {db, err, NULL};
    return b->fn(&tx, b->arg);
}

/* Runs fn as a write transaction (write) or on one read snapshot. */
static bool unit(rp_sqlite_pool_t *pool, bool write, rp_reward_txn_fn fn, void *arg, rp_err_t *err) {
    body_t b = {fn, arg};
    return (write ? rp_sqlite_transact : rp_sqlite_read)(pool, run_body, &b, err);
}

static bool s_transact(rp_reward_store_t *base, const char *what, rp_reward_txn_fn fn, void *arg, rp_err_t *err) {
    rp_err_t e;
    rp_err_clear(&e);
    if (unit(POOL(base), true, fn, arg, &e)) return true;
    if (e.kind == RP_ERR_NONE) rp_err_set(&e, RP_ERR_INTERNAL, "INTERNAL", "the body failed without an error");
    rp_err_set(err, e.kind, e.code, "%s: %s", what, e.message);
    return false;
}

#define READ_REQUEST(out_, found_)                                                                                     \
    &(use_t) {                                                                                                         \
        .what = "read request", .row = row_request, .clear = clear_request, .out = out_, .found = found_               \
    }

static bool tx_request_by_key(rp_reward_txn_t *tx, const char *active_key, rp_request_t *out, bool *found) {
    rp_request_init(out);
    return query(tx, READ_REQUEST(out, found), "SELECT " REQUEST_COLS " FROM reward_requests WHERE active_key = ?1",
                 "t", active_key);
}

static bool tx_request_by_id(rp_reward_txn_t *tx, const char *id, rp_request_t *out, bool *found) {
    rp_request_init(out);
    return query(tx, READ_REQUEST(out, found), "SELECT " REQUEST_COLS " FROM reward_requests WHERE id = ?1", "t", id);
}

static bool tx_count_slots(rp_reward_txn_t *tx, const char *user_id, const char *event_id, int64_t at_most,
                           int64_t *count) {
    *count = 0;
    return query(tx, &(use_t){.what = "count slots", .row = row_int, .out = count},
                 "SELECT count(*) FROM (SELECT 1 FROM reward_requests WHERE user_id = ?1 AND event_id = ?2 "
                 "AND status <> 'FAILED' LIMIT ?3)",
                 "tti", user_id, event_id, at_most > 0 ? at_most : (int64_t)-1);
}

/* Moves each line's quantity out of (sign 1) or back into (sign -1) its limited stock; the
 * guard never lets stock_left go below zero, and NULL (unlimited) stays NULL. *moved false when
 * a line was missing or short: a take stops there, a give goes on with the others. */
static bool move_stock(rp_reward_txn_t *tx, const char *event_id, const rp_stock_line_t *lines, size_t n, int64_t sign,
                       bool *moved) {
    *moved = true;
    for (size_t i = 0; i < n && (*moved || sign < 0); i++) {
        bool changed;
        if (!query(tx, &(use_t){.what = "move stock", .changed = &changed},
                   "UPDATE event_rewards SET stock_left = stock_left - ?3 WHERE event_id = ?1 AND idx = ?2 "
                   "AND (stock_left IS NULL OR stock_left >= ?3)",
                   "tii", event_id, (int64_t)lines[i].reward_index, sign * lines[i].quantity))
            return false;
        *moved = *moved && changed;
    }
    return true;
}

static bool tx_stock_take(rp_reward_txn_t *tx, const char *event_id, const rp_stock_line_t *lines, size_t n,
                          bool *taken) {
    return move_stock(tx, event_id, lines, n, 1, taken);
}

static bool tx_stock_give(rp_reward_txn_t *tx, const char *event_id, const rp_stock_line_t *lines, size_t n) {
    bool moved;
    return move_stock(tx, event_id, lines, n, -1, &moved);
}

static bool tx_insert_request(rp_reward_txn_t *tx, const rp_request_t *r, bool *duplicate) {
    json_t *claimed = rp_claimed_to_json(r);
    bool ok = query(tx, &(use_t){.what = "insert request", .dup = duplicate},
                    "INSERT INTO reward_requests (" REQUEST_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                    "?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                    "ttttsttjjsimiisss", r->id, r->user_id, r->event_id, r->period_key, r->active_key,
                    rp_req_status_name(r->status), r->source == RP_SOURCE_BATCH ? "BATCH" : "CLAIM", claimed,
                    r->failure_details, r->notes, r->requested_at, r->processed_at, r->created_at, r->updated_at,
                    r->processor_id, r->failure_reason, r->batch_id);
    json_decref(claimed);
    return ok;
}

static bool tx_update_request(rp_reward_txn_t *tx, const rp_request_t *r, rp_req_status_t from, bool *moved) {
    return query(tx, &(use_t){.what = "update request", .changed = moved},
                 "UPDATE reward_requests SET status = ?3, active_key = ?4, processed_at = ?5, processor_id = ?6, "
                 "failure_reason = ?7, notes = ?8, updated_at = ?9 WHERE id = ?1 AND status = ?2",
                 "tttsmsssi", r->id, rp_req_status_name(from), rp_req_status_name(r->status), r->active_key,
                 r->processed_at, r->processor_id, r->failure_reason, r->notes, r->updated_at);
}

static bool tx_append_ledger(rp_reward_txn_t *tx, const rp_ledger_entry_t *entries, size_t n) {
    for (const rp_ledger_entry_t *e = entries; e < entries + n; e++)
        if (!query(tx, &(use_t){.what = "append ledger"},
                   "INSERT INTO reward_ledger (id, request_id, user_id, event_id, reward_idx, reward_definition_id, "
                   "quantity, entry_type, processor_id, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                   "ttttititsi", e->id, e->request_id, e->user_id, e->event_id, (int64_t)e->reward_index,
                   e->definition_id, e->quantity, rp_ledger_kind_name(e->kind), e->processor_id, e->at))
            return false;
    return true;
}

static bool tx_append_outbox(rp_reward_txn_t *tx, const rp_outbox_message_t *m) {
    return query(tx, &(use_t){.what = "append outbox"},
                 "INSERT INTO outbox (message_id, routing_key, request_id, payload, created_at) "
                 "VALUES (?1, ?2, ?3, ?4, ?5)",
                 "tttji", m->message_id, m->routing_key, m->request_id, m->payload, m->created_at);
}

static bool tx_settle_item(rp_reward_txn_t *tx, const char *batch_id, int64_t seq, rp_item_status_t status,
                           const char *reason, const char *request_id, int64_t at, bool *settled) {
    return query(tx, &(use_t){.what = "settle item", .changed = settled},
                 "UPDATE batch_items SET status = ?3, failure_reason = ?4, request_id = ?5, settled_at = ?6 "
                 "WHERE batch_id = ?1 AND seq = ?2 AND status = 'QUEUED'",
                 "titssi", batch_id, seq, rp_item_status_name(status), reason, request_id, at);
}

static bool tx_idem_get(rp_reward_txn_t *tx, const char *user_id, const char *key, rp_idem_t *out, bool *found) {
    memset(out, 0, sizeof *out);
    return query(
        tx, &(use_t){.what = "read idempotency key", .row = row_idem, .clear = clear_idem, .out = out, .found = found},
        "SELECT request_hash, status, response, created_at FROM idempotency_keys WHERE user_id = ?1 AND "
        "key = ?2",
        "tt", user_id, key);
}

static bool tx_idem_put(rp_reward_txn_t *tx, const char *user_id, const char *key, const rp_idem_t *v,
                        bool *duplicate) {
    return query(tx, &(use_t){.what = "store idempotency key", .dup = duplicate},
                 "INSERT INTO idempotency_keys (user_id, key, request_hash, status, response, created_at) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                 "tttiji", user_id, key, v->request_hash, (int64_t)v->status, v->response, v->created_at);
}

static bool tx_items_in_flight(rp_reward_txn_t *tx, int64_t now, int64_t *count) {
    *count = 0;
    return query(tx, &(use_t){.what = "count items in flight", .row = row_int, .out = count},
                 "SELECT count(*) FROM batch_items WHERE status = 'QUEUED' AND due_at > ?1", "i", now);
}

/* ?1 now, ?2 limit */
#define DUE_ITEMS                                                                                                      \
    "SELECT batch_id, seq FROM batch_items WHERE status = 'QUEUED' AND due_at <= ?1 ORDER BY due_at, batch_id, seq "   \
    "LIMIT ?2"

static bool tx_items_lease(rp_reward_txn_t *tx, int64_t now, int64_t until, int limit, rp_item_ref_t **items,
                           size_t *n) {
    /* chosen first, since the update moves what they were chosen by */
    if (!query(tx, PAGE("due items", row_ref, NULL, items, n, limit, NULL), DUE_ITEMS, "ii", now, (int64_t)limit))
        return false;
    if (query(tx, &(use_t){.what = "lease items"},
              "UPDATE batch_items SET due_at = ?3, attempts = attempts + 1 WHERE (batch_id, seq) IN (" DUE_ITEMS ")",
              "iii", now, (int64_t)limit, until))
        return true;
    free_page((void **)items, n, sizeof **items, NULL);
    return false;
}

/* ---- reads ---- */

#define NO_TXN(base, err)                                                                                              \
    { NULL, (err), POOL(base) }

static bool s_ping(rp_reward_store_t *base, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    return query(&tx, &(use_t){.what = "ping"}, "SELECT 1 FROM reward_requests WHERE 0", "");
}

static bool s_get_request(rp_reward_store_t *base, const char *id, rp_request_t *out, bool *found, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    return tx_request_by_id(&tx, id, out, found);
}

static bool s_find_active(rp_reward_store_t *base, const char *active_key, rp_request_t *out, bool *found,
                          rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    return tx_request_by_key(&tx, active_key, out, found);
}

static bool s_list_requests(rp_reward_store_t *base, const rp_request_filter_t *f, rp_request_t **items, size_t *n,
                            bool *more, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    /* newest first by request time: ObjectIds made by different processes in the same second do
     * not sort by time, so the id only breaks ties (and names the cursor's row) */
    return query(&tx, PAGE("list requests", row_request, clear_request, items, n, f->limit, more),
                 "SELECT " REQUEST_COLS " FROM reward_requests WHERE (?1 IS NULL OR user_id = ?1) AND "
                 "(?2 IS NULL OR event_id = ?2) AND (?3 IS NULL OR status = ?3) AND "
                 "(?4 IS NULL OR requested_at >= ?4) AND (?5 IS NULL OR requested_at < ?5) AND "
                 "(?6 IS NULL OR (requested_at, id) < (SELECT requested_at, id FROM reward_requests WHERE id = ?6)) "
                 "ORDER BY requested_at DESC, id DESC LIMIT ?7",
                 "sssmmsi", f->user_id, f->event_id, f->status < 0 ? NULL : rp_req_status_name(f->status), f->from_ms,
                 f->to_ms, f->cursor, (int64_t)f->limit + 1);
}

static bool s_list_ledger(rp_reward_store_t *base, const char *user_id, const char *event_id, int64_t after_seq,
                          int limit, rp_ledger_entry_t **items, size_t *n, bool *more, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    return query(&tx, PAGE("list ledger", row_ledger, NULL, items, n, limit, more),
                 "SELECT " LEDGER_COLS " FROM reward_ledger WHERE seq > ?1 AND (?2 IS NULL OR user_id = ?2) AND "
                 "(?3 IS NULL OR event_id = ?3) ORDER BY seq LIMIT ?4",
                 "issi", after_seq, user_id, event_id, (int64_t)limit + 1);
}

static bool s_list_outbox(rp_reward_store_t *base, int64_t after_seq, int limit, rp_outbox_message_t **items, size_t *n,
                          bool *more, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    return query(&tx, PAGE("list outbox", row_outbox, clear_outbox, items, n, limit, more),
                 "SELECT " OUTBOX_COLS " FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2", "ii", after_seq,
                 (int64_t)limit + 1);
}

static bool s_idem_get(rp_reward_store_t *base, const char *user_id, const char *key, rp_idem_t *out, bool *found,
                       rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    return tx_idem_get(&tx, user_id, key, out, found);
}

#define READ_BATCH(out_, found_)                                                                                       \
    &(use_t) {                                                                                                         \
        .what = "read batch", .row = row_batch, .clear = clear_batch, .out = out_, .found = found_                     \
    }

typedef struct batch_read {
    const char *id;
    bool counts;
    rp_batch_t *out;
    bool *found;
} batch_read_t;

/* The batch row and the counts of its items, on one snapshot. */
static rp_txn_end_t read_batch(rp_reward_txn_t *tx, void *p) {
    batch_read_t *a = p;
    bool ok = query(tx, READ_BATCH(a->out, a->found), "SELECT " BATCH_COLS " FROM batches WHERE id = ?1", "t", a->id);
    if (ok && *a->found && a->counts)
        ok = query(tx, &(use_t){.what = "count items", .row = row_count, .clear = clear_batch, .out = a->out},
                   "SELECT status, failure_reason, count(*), max(settled_at) FROM batch_items WHERE batch_id = ?1 "
                   "GROUP BY status, failure_reason",
                   "t", a->id);
    return ok ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

static bool s_batch_get(rp_reward_store_t *base, const char *id, bool counts, rp_batch_t *out, bool *found,
                        rp_err_t *err) {
    batch_read_t a = {id, counts, out, found};
    memset(out, 0, sizeof *out);
    *found = false;
    if (unit(POOL(base), false, read_batch, &a, err)) return true;
    rp_batch_clear(out);
    *found = false;
    return false;
}

static bool s_batch_by_key(rp_reward_store_t *base, const char *created_by, const char *key, rp_batch_t *out,
                           bool *found, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    memset(out, 0, sizeof *out);
    return query(&tx, READ_BATCH(out, found),
                 "SELECT " BATCH_COLS " FROM batches WHERE created_by = ?1 AND idem_key = ?2", "tt", created_by, key);
}

static bool s_batch_list(rp_reward_store_t *base, const char *event_id, const char *cursor, int limit,
                         rp_batch_t **items, size_t *n, bool *more, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    return query(&tx, PAGE("list batches", row_batch, clear_batch, items, n, limit, more),
                 "SELECT " BATCH_COLS " FROM batches WHERE (?1 IS NULL OR event_id = ?1) AND (?2 IS NULL OR "
                 "(created_at, id) < (SELECT created_at, id FROM batches WHERE id = ?2)) "
                 "ORDER BY created_at DESC, id DESC LIMIT ?3",
                 "ssi", event_id, cursor, (int64_t)limit + 1);
}

static bool s_batch_items(rp_reward_store_t *base, const char *batch_id, int status, int64_t after_seq, int limit,
                          rp_batch_item_t **items, size_t *n, bool *more, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    return query(&tx, PAGE("list items", row_item, NULL, items, n, limit, more),
                 "SELECT " ITEM_COLS " FROM batch_items WHERE batch_id = ?1 AND seq > ?2 AND "
                 "(?3 IS NULL OR status = ?3) ORDER BY seq LIMIT ?4",
                 "tisi", batch_id, after_seq, status < 0 ? NULL : rp_item_status_name(status), (int64_t)limit + 1);
}

/* A JSON array of n integers, for the statements that take a list through json_each. */
static json_t *int_array(const int64_t *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

static bool s_batch_items_get(rp_reward_store_t *base, const char *batch_id, const int64_t *seqs, size_t n,
                              rp_batch_item_t **items, size_t *got, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    json_t *wanted = int_array(seqs, n);
    bool ok = query(&tx, PAGE("read items", row_item, NULL, items, got, (int)n, NULL),
                    "SELECT " ITEM_COLS " FROM json_each(?2) AS j JOIN batch_items ON batch_id = ?1 AND seq = j.value "
                    "ORDER BY j.key",
                    "tj", batch_id, wanted);
    json_decref(wanted);
    return ok;
}

static bool s_batch_any_due(rp_reward_store_t *base, int64_t now, bool *any, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    int64_t due = 0;
    bool ok = query(&tx, &(use_t){.what = "find due items", .row = row_int, .out = &due},
                    "SELECT EXISTS (SELECT 1 FROM batch_items WHERE status = 'QUEUED' AND due_at <= ?1)", "i", now);
    *any = ok && due;
    return ok;
}

/* ---- single writes ---- */

typedef struct batch_write {
    const rp_batch_t *b;
    const char *const *user_ids;
    size_t n;
    bool resume, *key_taken;
} batch_write_t;

#define INSERT_BATCH "INSERT INTO batches (" BATCH_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
/* "WHERE true" keeps SQLite from reading ON CONFLICT as a join constraint */
#define INSERT_ITEMS                                                                                                   \
    "INSERT INTO batch_items (batch_id, seq, user_id, status, due_at) "                                                \
    "SELECT ?1, key + 1, value, 'QUEUED', ?2 FROM json_each(?3) WHERE true"

static rp_txn_end_t store_batch(rp_reward_txn_t *tx, void *p) {
    batch_write_t *a = p;
    const rp_batch_t *b = a->b;
    json_t *users = json_array();
    rp_txn_end_t end = RP_TXN_FAILED;
    for (size_t i = 0; i < a->n; i++)
        if (json_array_append_new(users, json_string(a->user_ids[i])) != 0) {
            rp_err_set(tx->err, RP_ERR_INVALID, "VALIDATION_FAILED", "user id %zu is not UTF-8", i + 1);
            goto done;
        }
    /* ids are new ObjectIds, so a unique violation is the creator's key, held by another batch */
    if (!query(tx, &(use_t){.what = "insert batch", .dup = a->key_taken},
               a->resume ? INSERT_BATCH " ON CONFLICT (id) DO NOTHING" : INSERT_BATCH, "ttttstiii", b->id, b->event_id,
               b->created_by, b->reason, b->idem_key, b->request_hash, b->total, b->duplicates, b->created_at))
        goto done;
    end = RP_TXN_ROLLBACK;
    if (!*a->key_taken &&
        query(tx, &(use_t){.what = "insert batch items"},
              a->resume ? INSERT_ITEMS " ON CONFLICT DO NOTHING" : INSERT_ITEMS, "tij", b->id, b->created_at, users))
        end = RP_TXN_COMMIT;
    else if (!*a->key_taken)
        end = RP_TXN_FAILED;
done:
    json_decref(users);
    return end;
}

static bool s_batch_store(rp_reward_store_t *base, const rp_batch_t *b, const char *const *user_ids, size_t n,
                          bool resume, bool *key_taken, rp_err_t *err) {
    batch_write_t a = {b, user_ids, n, resume, key_taken};
    *key_taken = false;
    return s_transact(base, "store batch", store_batch, &a, err);
}

typedef struct outbox_lease {
    const char *owner;
    int64_t now, until;
    int limit;
    rp_outbox_message_t **items;
    size_t *n;
} outbox_lease_t;

/* ?1 owner, ?2 now, ?3 limit */
#define LEASABLE                                                                                                       \
    "FROM outbox WHERE published_at IS NULL AND (lease_until IS NULL OR lease_until < ?2 OR lease_owner = ?1) "        \
    "ORDER BY seq LIMIT ?3"

static rp_txn_end_t lease_outbox(rp_reward_txn_t *tx, void *p) {
    outbox_lease_t *a = p;
    bool ok = query(tx, PAGE("leasable outbox", row_outbox, clear_outbox, a->items, a->n, a->limit, NULL),
                    "SELECT " OUTBOX_COLS " " LEASABLE, "tii", a->owner, a->now, (int64_t)a->limit) &&
              query(tx, &(use_t){.what = "lease outbox"},
                    "UPDATE outbox SET lease_owner = ?1, lease_until = ?4 WHERE seq IN (SELECT seq " LEASABLE ")",
                    "tiii", a->owner, a->now, (int64_t)a->limit, a->until);
    return ok ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

static bool s_outbox_lease(rp_reward_store_t *base, const char *owner, int64_t now, int64_t lease_ms, int limit,
                           rp_outbox_message_t **items, size_t *n, rp_err_t *err) {
    outbox_lease_t a = {owner, now, now + lease_ms, limit, items, n};
    *items = NULL;
    *n = 0;
    if (s_transact(base, "lease outbox", lease_outbox, &a, err)) return true;
    free_page((void **)items, n, sizeof **items, clear_outbox);
    return false;
}

static bool s_outbox_published(rp_reward_store_t *base, const int64_t *seqs, size_t n, int64_t now, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    json_t *done = int_array(seqs, n);
    bool ok = query(&tx, &(use_t){.what = "mark published"},
                    "UPDATE outbox SET published_at = ?2, lease_owner = NULL, lease_until = NULL "
                    "WHERE seq IN (SELECT value FROM json_each(?1)) AND published_at IS NULL",
                    "ji", done, now);
    json_decref(done);
    return ok;
}

static void s_free(rp_reward_store_t *base) {
    if (!base) return;
    rp_sqlite_pool_free(POOL(base));
    free(base);
}

static const rp_reward_store_ops_t sqlite_ops = {
    .ping = s_ping,
    .transact = s_transact,
    .tx_request_by_key = tx_request_by_key,
    .tx_request_by_id = tx_request_by_id,
    .tx_count_slots = tx_count_slots,
    .tx_stock_take = tx_stock_take,
    .tx_stock_give = tx_stock_give,
    .tx_insert_request = tx_insert_request,
    .tx_update_request = tx_update_request,
    .tx_append_ledger = tx_append_ledger,
    .tx_append_outbox = tx_append_outbox,
    .tx_settle_item = tx_settle_item,
    .tx_idem_get = tx_idem_get,
    .tx_idem_put = tx_idem_put,
    .tx_items_in_flight = tx_items_in_flight,
    .tx_items_lease = tx_items_lease,
    .get_request = s_get_request,
    .find_active = s_find_active,
    .list_requests = s_list_requests,
    .list_ledger = s_list_ledger,
    .list_outbox = s_list_outbox,
    .idem_get = s_idem_get,
    .batch_get = s_batch_get,
    .batch_by_key = s_batch_by_key,
    .batch_list = s_batch_list,
    .batch_items = s_batch_items,
    .batch_items_get = s_batch_items_get,
    .batch_any_due = s_batch_any_due,
    .batch_store = s_batch_store,
    .outbox_lease = s_outbox_lease,
    .outbox_published = s_outbox_published,
    .free = s_free,
};

rp_reward_store_t *rp_reward_store_sqlite_open(const char *dir, int max_conns, rp_err_t *err) {
    char path[1024];
    if (snprintf(path, sizeof path, "%s/%s", dir, RP_EVENT_SQLITE_FILE) >= (int)sizeof path) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "SQLITE_DIR is too long");
        return NULL;
    }
    rp_sqlite_pool_t *pool = rp_sqlite_pool_new(path, rp_events_db_schemas, max_conns, err);
    if (!pool) return NULL;
    sqlite_store_t *s = rp_calloc(1, sizeof *s);
    s->base.ops = &sqlite_ops;
    s->pool = pool;
    return &s->base;
}
