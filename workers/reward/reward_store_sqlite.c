/* reward_store_sqlite.c - the reward store (reward_store.h) on SQLite; it stores and fetches,
 * nothing more. Its tables are events.db's "reward" component (reward_schema_sqlite.c), beside
 * the event_rewards whose stock a grant takes in the transaction that inserts its request. A unit
 * of work runs on lib/sqlite_util's runner (BEGIN IMMEDIATE on a pooled connection); every other
 * operation is one statement on a pooled connection. Thread-safe (the pool is).
 *
 * Where reward_store.h leaves room, this backend:
 * - stores a string the domain leaves "" as SQL NULL (the CHECK and the partial unique indexes
 *   expect it) and reads it back as ""; notes NULL or "" read back NULL;
 * - keeps claimed rewards as one JSON column (rp_claimed_print), failure details as JSON;
 * - numbers ledger and outbox rows by AUTOINCREMENT: writers run one at a time, so seq order is
 *   commit order;
 * - initialises every record it fills first (rp_request_init, ...), so hand it one that owns
 *   nothing; after a failure it owns nothing and *found is false;
 * - gives stock back to every line it can (a missing event reward is skipped);
 * - stores a batch in one transaction, so it is always complete and reads open; resume stores
 *   only the batch row and items that are missing; a keyless batch stored twice is a CONFLICT;
 * - hands leased records back in the order they were chosen (items by due, batch, seq; outbox by
 *   seq); an outbox lease is free once lease_until < now, and an owner renews its own. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event_schema_sqlite.h"
#include "mem.h"
#include "reward_store.h"
#include "sqlite_util.h"
#include "store_handle.h"

/* A unit of work running body fn(tx, arg), or, with db NULL, none: each statement then takes a
 * connection from pool. */
struct rp_reward_txn {
    sqlite3 *db;
    rp_err_t *err;
    rp_sqlite_pool_t *pool;
    rp_reward_txn_fn fn;
    void *arg;
};

static void s_free(rp_reward_store_t *base) {
    rp_store_handle_free(base);
}

/* Each list starts with the columns its record's table (below) reads, in the table's order. */
#define REQUEST_COLS                                                                                                   \
    "id, user_id, event_id, period_key, active_key, processor_id, failure_reason, batch_id, requested_at, "            \
    "processed_at, created_at, updated_at, status, source, claimed_rewards, failure_details, notes"
#define LEDGER_COLS                                                                                                    \
    "seq, id, request_id, user_id, event_id, reward_idx, reward_definition_id, quantity, processor_id, at, entry_type"
#define OUTBOX_COLS "seq, message_id, routing_key, request_id, created_at, published_at, payload"
#define BATCH_COLS "id, event_id, created_by, idem_key, request_hash, total, duplicates, created_at, reason"
#define ITEM_COLS "batch_id, seq, user_id, failure_reason, request_id, attempts, settled_at, status"

typedef rp_sqlite_use_t use_t;

/* One statement on the unit of work's connection, or on a pooled one outside a unit of work. */
static bool query(rp_reward_txn_t *tx, const use_t *u, const char *sql, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bool ok = rp_sqlite_vquery(tx->db, tx->pool, u, tx->err, sql, fmt, ap);
    va_end(ap);
    return ok;
}

/* ---- rows to records ---- */

static const rp_sqlite_col_t request_cols[] = {RP_SQLITE_COL(rp_request_t, id, TEXT),
                                               RP_SQLITE_COL(rp_request_t, user_id, TEXT),
                                               RP_SQLITE_COL(rp_request_t, event_id, TEXT),
                                               RP_SQLITE_COL(rp_request_t, period_key, TEXT),
                                               RP_SQLITE_COL(rp_request_t, active_key, TEXT),
                                               RP_SQLITE_COL(rp_request_t, processor_id, TEXT),
                                               RP_SQLITE_COL(rp_request_t, failure_reason, TEXT),
                                               RP_SQLITE_COL(rp_request_t, batch_id, TEXT),
                                               RP_SQLITE_COL(rp_request_t, requested_at, I64),
                                               RP_SQLITE_COL(rp_request_t, processed_at, I64),
                                               RP_SQLITE_COL(rp_request_t, created_at, I64),
                                               RP_SQLITE_COL(rp_request_t, updated_at, I64)};
static const rp_sqlite_col_t ledger_cols[] = {RP_SQLITE_COL(rp_ledger_entry_t, seq, I64),
                                              RP_SQLITE_COL(rp_ledger_entry_t, id, TEXT),
                                              RP_SQLITE_COL(rp_ledger_entry_t, request_id, TEXT),
                                              RP_SQLITE_COL(rp_ledger_entry_t, user_id, TEXT),
                                              RP_SQLITE_COL(rp_ledger_entry_t, event_id, TEXT),
                                              RP_SQLITE_COL(rp_ledger_entry_t, reward_index, INT),
                                              RP_SQLITE_COL(rp_ledger_entry_t, definition_id, TEXT),
                                              RP_SQLITE_COL(rp_ledger_entry_t, quantity, I64),
                                              RP_SQLITE_COL(rp_ledger_entry_t, processor_id, TEXT),
                                              RP_SQLITE_COL(rp_ledger_entry_t, at, I64)};
static const rp_sqlite_col_t outbox_cols[] = {
    RP_SQLITE_COL(rp_outbox_message_t, seq, I64),          RP_SQLITE_COL(rp_outbox_message_t, message_id, TEXT),
    RP_SQLITE_COL(rp_outbox_message_t, routing_key, TEXT), RP_SQLITE_COL(rp_outbox_message_t, request_id, TEXT),
    RP_SQLITE_COL(rp_outbox_message_t, created_at, I64),   RP_SQLITE_COL(rp_outbox_message_t, published_at, I64)};
static const rp_sqlite_col_t idem_cols[] = {RP_SQLITE_COL(rp_idem_t, request_hash, TEXT),
                                            RP_SQLITE_COL(rp_idem_t, status, INT),
                                            RP_SQLITE_COL(rp_idem_t, created_at, I64)};
static const rp_sqlite_col_t batch_cols[] = {
    RP_SQLITE_COL(rp_batch_t, id, TEXT),           RP_SQLITE_COL(rp_batch_t, event_id, TEXT),
    RP_SQLITE_COL(rp_batch_t, created_by, TEXT),   RP_SQLITE_COL(rp_batch_t, idem_key, TEXT),
    RP_SQLITE_COL(rp_batch_t, request_hash, TEXT), RP_SQLITE_COL(rp_batch_t, total, I64),
    RP_SQLITE_COL(rp_batch_t, duplicates, I64),    RP_SQLITE_COL(rp_batch_t, created_at, I64)};
static const rp_sqlite_col_t item_cols[] = {
    RP_SQLITE_COL(rp_batch_item_t, batch_id, TEXT),   RP_SQLITE_COL(rp_batch_item_t, seq, I64),
    RP_SQLITE_COL(rp_batch_item_t, user_id, TEXT),    RP_SQLITE_COL(rp_batch_item_t, failure_reason, TEXT),
    RP_SQLITE_COL(rp_batch_item_t, request_id, TEXT), RP_SQLITE_COL(rp_batch_item_t, attempts, I64),
    RP_SQLITE_COL(rp_batch_item_t, settled_at, I64)};
static const rp_sqlite_col_t ref_cols[] = {RP_SQLITE_COL(rp_item_ref_t, batch_id, TEXT),
                                           RP_SQLITE_COL(rp_item_ref_t, seq, I64)};

static const char *col_text(sqlite3_stmt *st, int i) {
    return (const char *)sqlite3_column_text(st, i);
}

static void row_request(sqlite3_stmt *st, void *out) {
    rp_request_t *r = out;
    RP_SQLITE_GET_COLS(st, r, request_cols);
    rp_req_status_parse(col_text(st, 12), &r->status); /* the column's CHECK allows only names */
    r->source = rp_req_source_parse(col_text(st, 13));
    json_t *claimed = rp_sqlite_col_json(st, 14);
    rp_claimed_from_json(r, claimed);
    json_decref(claimed);
    r->failure_details = sqlite3_column_type(st, 15) == SQLITE_NULL ? NULL : rp_sqlite_col_json(st, 15);
    r->notes = rp_sqlite_col_strdup(st, 16);
}

static void row_ledger(sqlite3_stmt *st, void *out) {
    rp_ledger_entry_t *e = out;
    RP_SQLITE_GET_COLS(st, e, ledger_cols);
    rp_ledger_kind_parse(col_text(st, 10), &e->kind);
}

static void row_outbox(sqlite3_stmt *st, void *out) {
    rp_outbox_message_t *m = out;
    RP_SQLITE_GET_COLS(st, m, outbox_cols);
    m->payload = rp_sqlite_col_json(st, 6);
}

/* The relay's row: the payload kept as the text stored, published as it is (parsing it and
 * printing it again was 5 % of a grant worker under amqp claims). */
static void row_outbox_text(sqlite3_stmt *st, void *out) {
    rp_outbox_message_t *m = out;
    RP_SQLITE_GET_COLS(st, m, outbox_cols);
    m->payload_text = rp_sqlite_col_strdup(st, 6);
}

static void row_idem(sqlite3_stmt *st, void *out) {
    rp_idem_t *v = out;
    RP_SQLITE_GET_COLS(st, v, idem_cols);
    v->response = rp_sqlite_col_json(st, 3);
}

static void row_batch(sqlite3_stmt *st, void *out) {
    rp_batch_t *b = out;
    RP_SQLITE_GET_COLS(st, b, batch_cols);
    b->reason = rp_sqlite_col_strdup(st, 8);
    b->open = true; /* stored whole in one transaction */
}

/* A batch row joined with one (status, reason) group of its items, which is added to its
 * counts; a batch without items (or not counted) has one row whose status is NULL. */
static void row_counted_batch(sqlite3_stmt *st, void *out) {
    rp_batch_t *b = out;
    rp_item_status_t s = RP_ITEM_QUEUED;
    if (!b->id[0]) row_batch(st, out);
    if (sqlite3_column_type(st, 9) == SQLITE_NULL) return;
    rp_item_status_parse(col_text(st, 9), &s);
    rp_batch_count(b, s, col_text(st, 10), sqlite3_column_int64(st, 11));
    if (rp_sqlite_col_ms(st, 12) > b->last_settled_at) b->last_settled_at = rp_sqlite_col_ms(st, 12);
}

static void row_item(sqlite3_stmt *st, void *out) {
    rp_batch_item_t *it = out;
    RP_SQLITE_GET_COLS(st, it, item_cols);
    rp_item_status_parse(col_text(st, 7), &it->status);
}

static void row_ref(sqlite3_stmt *st, void *out) {
    RP_SQLITE_GET_COLS(st, out, ref_cols);
}

static void row_int(sqlite3_stmt *st, void *out) {
    *(int64_t *)out = sqlite3_column_int64(st, 0);
}

/* ---- the unit of work ---- */

static rp_txn_end_t run_body(sqlite3 *db, void *p, rp_err_t *err) {
    rp_reward_txn_t *tx = p;
    tx->db = db;
    tx->err = err;
    return tx->fn(tx, tx->arg);
}

/* Every body of this store may run again from its start (rp_reward_txn_fn), so a group of them
 * runs without savepoints, save rehearsals, which always undo what they wrote. */
static bool transact_as(rp_reward_store_t *base, rp_sqlite_transact_fn how, const char *what, rp_reward_txn_fn fn,
                        void *arg, rp_err_t *err) {
    rp_reward_txn_t tx = {.fn = fn, .arg = arg};
    rp_err_t e;
    rp_err_clear(&e);
    if (how(rp_store_handle_backend(base), run_body, &tx, &e)) return true;
    if (e.kind == RP_ERR_NONE) rp_err_set(&e, RP_ERR_INTERNAL, "INTERNAL", "the body failed without an error");
    rp_err_set(err, e.kind, e.code, "%s: %s", what, e.message);
    return false;
}

static bool s_transact(rp_reward_store_t *base, const char *what, rp_reward_txn_fn fn, void *arg, rp_err_t *err) {
    return transact_as(base, rp_sqlite_transact_rerunnable, what, fn, arg, err);
}

static bool s_transact_bulk(rp_reward_store_t *base, const char *what, rp_reward_txn_fn fn, void *arg, rp_err_t *err) {
    return transact_as(base, rp_sqlite_transact_alone, what, fn, arg, err);
}

static bool s_rehearse(rp_reward_store_t *base, const char *what, rp_reward_txn_fn fn, void *arg, rp_err_t *err) {
    return transact_as(base, rp_sqlite_transact, what, fn, arg, err);
}

#define READ_REQUEST(out_, found_)                                                                                     \
    &(use_t) {                                                                                                         \
        .what = "read request", .row = row_request, .clear = rp_reward_release_request, .out = out_, .found = found_   \
    }

/* Through reward_requests_slot (v10), the slot's columns in that index's order. */
static bool s_tx_request_by_key(rp_reward_txn_t *tx, const rp_request_t *slot, rp_request_t *out, bool *found) {
    rp_request_init(out);
    return query(tx, READ_REQUEST(out, found),
                 "SELECT " REQUEST_COLS " FROM reward_requests WHERE event_id = ?1 AND period_key = ?2 "
                 "AND user_id = ?3 AND active_key IS NOT NULL",
                 "ttt", slot->event_id, slot->period_key, slot->user_id);
}

static bool s_tx_request_by_id(rp_reward_txn_t *tx, const char *id, rp_request_t *out, bool *found) {
    rp_request_init(out);
    return query(tx, READ_REQUEST(out, found), "SELECT " REQUEST_COLS " FROM reward_requests WHERE id = ?1", "t", id);
}

/* A player has few requests and an event may have millions: the unary + keeps the planner on
 * reward_requests_user_time (with reward_requests_event_time, v9, it took the event's index). */
static bool s_tx_count_slots(rp_reward_txn_t *tx, const char *user_id, const char *event_id, int64_t at_most,
                             int64_t *count) {
    *count = 0;
    return query(tx, &(use_t){.what = "count slots", .row = row_int, .out = count},
                 "SELECT count(*) FROM (SELECT 1 FROM reward_requests WHERE user_id = ?1 AND +event_id = ?2 "
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
        if (!query(tx, &(use_t){.what = "move stock", .found = &changed},
                   "UPDATE event_rewards SET stock_left = stock_left - ?3 WHERE event_id = ?1 AND idx = ?2 "
                   "AND (stock_left IS NULL OR stock_left >= ?3)",
                   "tii", event_id, (int64_t)lines[i].reward_index, sign * lines[i].quantity))
            return false;
        *moved = *moved && changed;
    }
    return true;
}

static bool s_tx_stock_take(rp_reward_txn_t *tx, const char *event_id, const rp_stock_line_t *lines, size_t n,
                            bool *taken) {
    return move_stock(tx, event_id, lines, n, 1, taken);
}

static bool s_tx_stock_give(rp_reward_txn_t *tx, const char *event_id, const rp_stock_line_t *lines, size_t n) {
    bool moved;
    return move_stock(tx, event_id, lines, n, -1, &moved);
}

static bool s_tx_insert_request(rp_reward_txn_t *tx, const rp_request_t *r, bool *duplicate) {
    char *claimed = rp_claimed_print(r); /* NULL (not UTF-8) is refused by the column's NOT NULL */
    bool ok =
        query(tx, &(use_t){.what = "insert request", .dup = duplicate},
              "INSERT INTO reward_requests (" REQUEST_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
              "?11, ?12, ?13, ?14, ?15, ?16, ?17)",
              "ttttssssimiittnjs", r->id, r->user_id, r->event_id, r->period_key, r->active_key, r->processor_id,
              r->failure_reason, r->batch_id, r->requested_at, r->processed_at, r->created_at, r->updated_at,
              rp_req_status_name(r->status), rp_req_source_name(r->source), claimed, r->failure_details, r->notes);
    free(claimed);
    return ok;
}

static bool s_tx_update_request(rp_reward_txn_t *tx, const rp_request_t *r, rp_req_status_t from, bool *moved) {
    return query(tx, &(use_t){.what = "update request", .found = moved},
                 "UPDATE reward_requests SET status = ?3, active_key = ?4, processed_at = ?5, processor_id = ?6, "
                 "failure_reason = ?7, notes = ?8, updated_at = ?9 WHERE id = ?1 AND status = ?2",
                 "tttsmsssi", r->id, rp_req_status_name(from), rp_req_status_name(r->status), r->active_key,
                 r->processed_at, r->processor_id, r->failure_reason, r->notes, r->updated_at);
}

static bool s_tx_append_ledger(rp_reward_txn_t *tx, const rp_ledger_entry_t *entries, size_t n) {
    for (const rp_ledger_entry_t *e = entries; e < entries + n; e++)
        if (!query(tx, &(use_t){.what = "append ledger"},
                   "INSERT INTO reward_ledger (id, request_id, user_id, event_id, reward_idx, reward_definition_id, "
                   "quantity, entry_type, processor_id, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                   "ttttititsi", e->id, e->request_id, e->user_id, e->event_id, (int64_t)e->reward_index,
                   e->definition_id, e->quantity, rp_ledger_kind_name(e->kind), e->processor_id, e->at))
            return false;
    return true;
}

/* A message written while no webhook endpoint is enabled is born fanned out (hooked): an endpoint
 * receives only what happens after its creation (webhook_store_sqlite.c, fanout_body), and this
 * transaction holds the write lock, so none can be created between this check and the commit.
 * Marking it here spares the fan-out an UPDATE of every message, and its index two changes: 15 %
 * of a grant worker's CPU during a 100,000-player batch. */
static bool s_tx_append_outbox(rp_reward_txn_t *tx, const rp_outbox_message_t *m) {
    char *printed = m->payload_text ? NULL : json_dumps(m->payload, JSON_COMPACT);
    bool ok = query(tx, &(use_t){.what = "append outbox"},
                    "INSERT INTO outbox (message_id, routing_key, request_id, payload, created_at, hooked) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled = 1))",
                    "tttti", m->message_id, m->routing_key, m->request_id, m->payload_text ? m->payload_text : printed,
                    m->created_at);
    free(printed);
    return ok;
}

static bool s_tx_settle_item(rp_reward_txn_t *tx, const char *batch_id, int64_t seq, rp_item_status_t status,
                             const char *reason, const char *request_id, int64_t at, bool *settled) {
    return query(tx, &(use_t){.what = "settle item", .found = settled},
                 "UPDATE batch_items SET status = ?3, failure_reason = ?4, request_id = ?5, settled_at = ?6 "
                 "WHERE batch_id = ?1 AND seq = ?2 AND status = 'QUEUED'",
                 "titssi", batch_id, seq, rp_item_status_name(status), reason, request_id, at);
}

static bool s_tx_idem_get(rp_reward_txn_t *tx, const char *user_id, const char *key, rp_idem_t *out, bool *found) {
    memset(out, 0, sizeof *out);
    return query(tx,
                 &(use_t){.what = "read idempotency key",
                          .row = row_idem,
                          .clear = rp_reward_release_idem,
                          .out = out,
                          .found = found},
                 "SELECT request_hash, status, created_at, response FROM idempotency_keys WHERE user_id = ?1 AND "
                 "key = ?2",
                 "tt", user_id, key);
}

static bool s_tx_idem_put(rp_reward_txn_t *tx, const char *user_id, const char *key, const rp_idem_t *v,
                          bool *duplicate) {
    return query(tx, &(use_t){.what = "store idempotency key", .dup = duplicate},
                 "INSERT INTO idempotency_keys (user_id, key, request_hash, status, response, created_at) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                 "tttiji", user_id, key, v->request_hash, (int64_t)v->status, v->response, v->created_at);
}

static bool s_tx_items_in_flight(rp_reward_txn_t *tx, int64_t now, int64_t *count) {
    *count = 0;
    return query(tx, &(use_t){.what = "count items in flight", .row = row_int, .out = count},
                 "SELECT count(*) FROM batch_items WHERE status = 'QUEUED' AND due_at > ?1", "i", now);
}

/* ?1 now, ?2 limit */
#define DUE_ITEMS                                                                                                      \
    "SELECT batch_id, seq FROM batch_items WHERE status = 'QUEUED' AND due_at <= ?1 ORDER BY due_at, batch_id, seq "   \
    "LIMIT ?2"

static bool s_tx_items_lease(rp_reward_txn_t *tx, int64_t now, int64_t until, int limit, rp_item_ref_t **items,
                             size_t *n) {
    /* chosen first, since the update moves what they were chosen by */
    if (!query(tx, RP_SQLITE_PAGE("due items", row_ref, NULL, items, n, limit, NULL), DUE_ITEMS, "ii", now,
               (int64_t)limit))
        return false;
    if (query(tx, &(use_t){.what = "lease items"},
              "UPDATE batch_items SET due_at = ?3, attempts = attempts + 1 WHERE (batch_id, seq) IN (" DUE_ITEMS ")",
              "iii", now, (int64_t)limit, until))
        return true;
    rp_sqlite_page_free((void **)items, n, sizeof **items, NULL);
    return false;
}

/* One (canceled_at, updated_at, idx, stock_left) row of an event joined with its rewards; idx is
 * NULL for an event without rewards. */
static void row_event_state(sqlite3_stmt *st, void *out) {
    rp_event_state_t *e = out;
    e->canceled_at = sqlite3_column_type(st, 0) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 0);
    e->updated_at = sqlite3_column_int64(st, 1);
    int64_t idx = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 2);
    if (idx < 0 || idx >= RP_MAX_EVENT_REWARDS) return;
    e->stock_left[idx] = sqlite3_column_type(st, 3) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 3);
    if ((size_t)idx + 1 > e->nrewards) e->nrewards = (size_t)idx + 1;
}

static bool s_tx_event_state(rp_reward_txn_t *tx, const char *event_id, rp_event_state_t *out, bool *found) {
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < RP_MAX_EVENT_REWARDS; i++)
        out->stock_left[i] = -1;
    return query(tx, &(use_t){.what = "read event state", .row = row_event_state, .out = out, .found = found},
                 "SELECT canceled_at, updated_at, idx, stock_left FROM events LEFT JOIN event_rewards ON event_id = id "
                 "WHERE id = ?1",
                 "t", event_id);
}

/* ---- reads ---- */

#define NO_TXN(base, err)                                                                                              \
    { .err = (err), .pool = rp_store_handle_backend(base) }

static bool s_ping(rp_reward_store_t *base, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    return query(&tx, &(use_t){.what = "ping"}, "SELECT 1 FROM reward_requests WHERE 0", "");
}

static bool s_get_request(rp_reward_store_t *base, const char *id, rp_request_t *out, bool *found, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    return s_tx_request_by_id(&tx, id, out, found);
}

static bool s_find_active(rp_reward_store_t *base, const rp_request_t *slot, rp_request_t *out, bool *found,
                          rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    return s_tx_request_by_key(&tx, slot, out, found);
}

static bool s_list_requests(rp_reward_store_t *base, const rp_request_filter_t *f, rp_request_t **items, size_t *n,
                            bool *more, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    /* newest first by request time: ObjectIds made by different processes in the same second do
     * not sort by time, so the id only breaks ties (and names the cursor's row). The cursor is a
     * plain row-value bound (no "?6 IS NULL OR"), so each page is an index seek on (requested_at,
     * id) rather than a scan from the newest row: the export pages through millions of rows.
     * Without a cursor the bound is above every row; a cursor naming no row gives no rows.
     * One player's history is its own statement, "user_id = ?1", which the planner serves from
     * reward_requests_user_time; behind "?1 IS NULL OR user_id = ?1" it walked every player's
     * requests by time instead (426 ms against 0.2 ms for a player without requests among
     * 300,000). Likewise a status other than SUCCESS without a player: "status = ?3 AND status
     * <> 'SUCCESS'" lets the planner read reward_requests_status_time (partial: grants, all
     * SUCCESS, do not write it) instead of filtering every newer request on the time index; and
     * an event without either, "event_id = ?2", reward_requests_event_time. */
#define LIST_REQUESTS_REST                                                                                             \
    "(?2 IS NULL OR event_id = ?2) AND (?3 IS NULL OR status = ?3) AND "                                               \
    "(?4 IS NULL OR requested_at >= ?4) AND (?5 IS NULL OR requested_at < ?5) AND "                                    \
    "(requested_at, id) < (SELECT requested_at, id FROM reward_requests WHERE id = ?6 "                                \
    "UNION ALL SELECT 9223372036854775807, '' WHERE ?6 IS NULL LIMIT 1) "                                              \
    "ORDER BY requested_at DESC, id DESC LIMIT ?7"
    bool player = f->user_id && f->user_id[0], rare = f->status >= 0 && f->status != RP_REQ_SUCCESS,
         event = f->event_id && f->event_id[0];
    return query(&tx, RP_SQLITE_PAGE("list requests", row_request, rp_reward_release_request, items, n, f->limit, more),
                 player  ? "SELECT " REQUEST_COLS " FROM reward_requests WHERE user_id = ?1 AND " LIST_REQUESTS_REST
                 : rare  ? "SELECT " REQUEST_COLS " FROM reward_requests WHERE ?1 IS NULL AND status = ?3 AND "
                           "status <> 'SUCCESS' AND " LIST_REQUESTS_REST
                 : event ? "SELECT " REQUEST_COLS
                           " FROM reward_requests WHERE ?1 IS NULL AND event_id = ?2 AND " LIST_REQUESTS_REST
                         : "SELECT " REQUEST_COLS " FROM reward_requests WHERE ?1 IS NULL AND " LIST_REQUESTS_REST,
                 "sssmmsi", f->user_id, f->event_id, f->status < 0 ? NULL : rp_req_status_name(f->status), f->from_ms,
                 f->to_ms, f->cursor, (int64_t)f->limit + 1);
#undef LIST_REQUESTS_REST
}

static bool s_list_ledger(rp_reward_store_t *base, const char *user_id, const char *event_id, int64_t after_seq,
                          int limit, rp_ledger_entry_t **items, size_t *n, bool *more, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    return query(&tx, RP_SQLITE_PAGE("list ledger", row_ledger, NULL, items, n, limit, more),
                 "SELECT " LEDGER_COLS " FROM reward_ledger WHERE seq > ?1 AND (?2 IS NULL OR user_id = ?2) AND "
                 "(?3 IS NULL OR event_id = ?3) ORDER BY seq LIMIT ?4",
                 "issi", after_seq, user_id, event_id, (int64_t)limit + 1);
}

static bool s_list_outbox(rp_reward_store_t *base, int64_t after_seq, int limit, rp_outbox_message_t **items, size_t *n,
                          bool *more, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    return query(&tx, RP_SQLITE_PAGE("list outbox", row_outbox, rp_reward_release_outbox, items, n, limit, more),
                 "SELECT " OUTBOX_COLS " FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2", "ii", after_seq,
                 (int64_t)limit + 1);
}

static bool s_idem_get(rp_reward_store_t *base, const char *user_id, const char *key, rp_idem_t *out, bool *found,
                       rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    return s_tx_idem_get(&tx, user_id, key, out, found);
}

#define READ_BATCH(out_, found_, row_)                                                                                 \
    &(use_t) {                                                                                                         \
        .what = "read batch", .row = row_, .clear = rp_reward_release_batch, .out = out_, .found = found_              \
    }

static bool s_batch_get(rp_reward_store_t *base, const char *id, bool counts, rp_batch_t *out, bool *found,
                        rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    memset(out, 0, sizeof *out);
    /* one statement, so the batch and its counts come from one snapshot. Without counts, the row
     * the join gives a batch without items: a join whose ON is false still visits every item of the
     * batch (a chunk's lookup of a 100,000-item batch took half the process's CPU) */
    if (!counts)
        return query(&tx, READ_BATCH(out, found, row_counted_batch),
                     "SELECT " BATCH_COLS ", NULL, NULL, 0, NULL FROM batches WHERE id = ?1", "t", id);
    return query(&tx, READ_BATCH(out, found, row_counted_batch),
                 "SELECT " BATCH_COLS ", status, failure_reason, count(seq), max(settled_at) FROM batches "
                 "LEFT JOIN batch_items ON batch_id = id WHERE id = ?1 GROUP BY status, failure_reason",
                 "t", id);
}

static bool s_batch_by_key(rp_reward_store_t *base, const char *created_by, const char *key, rp_batch_t *out,
                           bool *found, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    memset(out, 0, sizeof *out);
    return query(&tx, READ_BATCH(out, found, row_batch),
                 "SELECT " BATCH_COLS " FROM batches WHERE created_by = ?1 AND idem_key = ?2", "tt", created_by, key);
}

static bool s_batch_list(rp_reward_store_t *base, const char *event_id, const char *cursor, int limit,
                         rp_batch_t **items, size_t *n, bool *more, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    return query(&tx, RP_SQLITE_PAGE("list batches", row_batch, rp_reward_release_batch, items, n, limit, more),
                 "SELECT " BATCH_COLS " FROM batches WHERE (?1 IS NULL OR event_id = ?1) AND (?2 IS NULL OR "
                 "(created_at, id) < (SELECT created_at, id FROM batches WHERE id = ?2)) "
                 "ORDER BY created_at DESC, id DESC LIMIT ?3",
                 "ssi", event_id, cursor, (int64_t)limit + 1);
}

static bool s_batch_items(rp_reward_store_t *base, const char *batch_id, int status, int64_t after_seq, int limit,
                          rp_batch_item_t **items, size_t *n, bool *more, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    return query(&tx, RP_SQLITE_PAGE("list items", row_item, NULL, items, n, limit, more),
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
    bool ok = query(&tx, RP_SQLITE_PAGE("read items", row_item, NULL, items, got, (int)n, NULL),
                    "SELECT " ITEM_COLS " FROM json_each(?2) AS j JOIN batch_items ON batch_id = ?1 AND seq = j.value "
                    "ORDER BY j.key",
                    "tj", batch_id, wanted);
    json_decref(wanted);
    return ok;
}

static bool s_batch_any_due(rp_reward_store_t *base, int64_t now, bool *any, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    int64_t one;
    return query(&tx, &(use_t){.what = "find due items", .row = row_int, .out = &one, .found = any},
                 "SELECT 1 FROM batch_items WHERE status = 'QUEUED' AND due_at <= ?1 LIMIT 1", "i", now);
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

/* The JSON array text of ids for json_each, written straight into one buffer: as jansson values
 * 100,000 ids took 8 MB at a batch's memory peak, as text they take 2.6 MB. Caller frees. */
static char *ids_json(const char *const *ids, size_t n) {
    size_t cap = 3;
    for (size_t i = 0; i < n; i++)
        cap += 3 + 6 * strlen(ids[i]); /* quotes, comma, and \u00XX at worst per byte */
    char *out = rp_malloc(cap), *w = out;
    *w++ = '[';
    for (size_t i = 0; i < n; i++) {
        if (i) *w++ = ',';
        *w++ = '"';
        for (const unsigned char *c = (const unsigned char *)ids[i]; *c; c++) {
            if (*c == '"' || *c == '\\') *w++ = '\\';
            if (*c < 0x20)
                w += sprintf(w, "\\u%04x", *c);
            else
                *w++ = (char)*c;
        }
        *w++ = '"';
    }
    memcpy(w, "]", 2);
    return out;
}

static rp_txn_end_t store_batch(rp_reward_txn_t *tx, void *p) {
    batch_write_t *a = p;
    const rp_batch_t *b = a->b;
    rp_txn_end_t end = RP_TXN_FAILED;
    char *users = ids_json(a->user_ids, a->n);
    /* a unique violation: the creator's key is held by another batch, or (without a key) the id */
    if (!query(tx, &(use_t){.what = "insert batch", .dup = a->key_taken},
               a->resume ? INSERT_BATCH " ON CONFLICT (id) DO NOTHING" : INSERT_BATCH, "tttstiiit", b->id, b->event_id,
               b->created_by, b->idem_key, b->request_hash, b->total, b->duplicates, b->created_at, b->reason))
        goto done;
    if (*a->key_taken && !b->idem_key[0]) {
        *a->key_taken = false;
        rp_err_set(tx->err, RP_ERR_CONFLICT, "DUPLICATE_KEY", "batch %s exists", b->id);
    } else if (*a->key_taken)
        end = RP_TXN_ROLLBACK;
    else if (query(tx, &(use_t){.what = "insert batch items"},
                   a->resume ? INSERT_ITEMS " ON CONFLICT DO NOTHING" : INSERT_ITEMS, "tit", b->id, b->created_at,
                   users))
        end = RP_TXN_COMMIT;
done:
    free(users);
    return end;
}

static bool s_batch_store(rp_reward_store_t *base, const rp_batch_t *b, const char *const *user_ids, size_t n,
                          bool resume, bool *key_taken, rp_err_t *err) {
    batch_write_t a = {b, user_ids, n, resume, key_taken};
    *key_taken = false;
    return s_transact(base, "store batch", store_batch, &a, err);
}

static int by_seq(const void *a, const void *b) {
    int64_t x = ((const rp_outbox_message_t *)a)->seq, y = ((const rp_outbox_message_t *)b)->seq;
    return (x > y) - (x < y);
}

static bool s_outbox_lease(rp_reward_store_t *base, const char *owner, int64_t now, int64_t lease_ms, int limit,
                           rp_outbox_message_t **items, size_t *n, rp_err_t *err) {
    rp_reward_txn_t tx = NO_TXN(base, err);
    /* one statement leases atomically; RETURNING has no order, so the page is sorted after */
    if (!query(&tx, RP_SQLITE_PAGE("lease outbox", row_outbox_text, rp_reward_release_outbox, items, n, limit, NULL),
               "UPDATE outbox SET lease_owner = ?1, lease_until = ?4 WHERE seq IN (SELECT seq FROM outbox WHERE "
               "published_at IS NULL AND (lease_until IS NULL OR lease_until < ?2 OR lease_owner = ?1) "
               "ORDER BY seq LIMIT ?3) RETURNING " OUTBOX_COLS,
               "tiii", owner, now, (int64_t)limit, now + lease_ms))
        return false;
    if (*items) qsort(*items, *n, sizeof **items, by_seq);
    return true;
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

static const rp_reward_store_ops_t sqlite_ops = RP_REWARD_STORE_OPS(s_);

rp_reward_store_t *rp_reward_store_sqlite_open(const char *dir, int max_conns, rp_err_t *err) {
    return rp_events_db_open(dir, max_conns, &(rp_reward_store_t){&sqlite_ops}, sizeof(rp_reward_store_t), err);
}
