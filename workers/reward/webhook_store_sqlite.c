/* webhook_store_sqlite.c - the webhook store (webhook_store.h) on SQLite, in events.db beside the
 * outbox it fans out (tables of the "reward" component, reward_schema_sqlite.c v5). Writes that
 * must hold together run on lib/sqlite_util's runner (BEGIN IMMEDIATE); reads are one statement
 * on a pooled connection. Thread-safe (the pool is).
 *
 * Where webhook_store.h leaves room, this backend:
 * - keeps an endpoint's types as the bit mask, a delivery's attempt log as one JSON column;
 * - hands leased deliveries back in the order they were chosen (due time, then id). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event_schema_sqlite.h"
#include "json_util.h"
#include "mem.h"
#include "sqlite_util.h"
#include "store_handle.h"
#include "timeutil.h"
#include "webhook_store.h"

typedef rp_sqlite_use_t use_t;

static rp_sqlite_pool_t *pool_of(rp_webhook_store_t *s) {
    return rp_store_handle_backend(s);
}

static bool query(sqlite3 *db, rp_sqlite_pool_t *pool, rp_err_t *err, const use_t *u, const char *sql, const char *fmt,
                  ...) {
    va_list ap;
    va_start(ap, fmt);
    bool ok = rp_sqlite_vquery(db, pool, u, err, sql, fmt, ap);
    va_end(ap);
    return ok;
}

#define ENDPOINT_COLS                                                                                                  \
    "id, url, secret, created_by, disabled_reason, created_at, updated_at, failing_since, disabled_at, types, enabled"
#define DELIVERY_COLS                                                                                                  \
    "id, endpoint_id, webhook_id, type, attempts, round, next_at, created_at, settled_at, status, body, log"

static const rp_sqlite_col_t endpoint_cols[] = {
    RP_SQLITE_COL(rp_webhook_endpoint_t, id, TEXT),
    RP_SQLITE_COL(rp_webhook_endpoint_t, url, TEXT),
    RP_SQLITE_COL(rp_webhook_endpoint_t, secret, TEXT),
    RP_SQLITE_COL(rp_webhook_endpoint_t, created_by, TEXT),
    RP_SQLITE_COL(rp_webhook_endpoint_t, disabled_reason, TEXT),
    RP_SQLITE_COL(rp_webhook_endpoint_t, created_at, I64),
    RP_SQLITE_COL(rp_webhook_endpoint_t, updated_at, I64),
    RP_SQLITE_COL(rp_webhook_endpoint_t, failing_since, I64),
    RP_SQLITE_COL(rp_webhook_endpoint_t, disabled_at, I64),
};
static const rp_sqlite_col_t delivery_cols[] = {
    RP_SQLITE_COL(rp_webhook_delivery_t, id, TEXT),         RP_SQLITE_COL(rp_webhook_delivery_t, endpoint_id, TEXT),
    RP_SQLITE_COL(rp_webhook_delivery_t, webhook_id, TEXT), RP_SQLITE_COL(rp_webhook_delivery_t, type, TEXT),
    RP_SQLITE_COL(rp_webhook_delivery_t, attempts, I64),    RP_SQLITE_COL(rp_webhook_delivery_t, round, I64),
    RP_SQLITE_COL(rp_webhook_delivery_t, next_at, I64),     RP_SQLITE_COL(rp_webhook_delivery_t, created_at, I64),
    RP_SQLITE_COL(rp_webhook_delivery_t, settled_at, I64),
};

static void row_endpoint(sqlite3_stmt *st, void *out) {
    rp_webhook_endpoint_t *e = out;
    RP_SQLITE_GET_COLS(st, e, endpoint_cols);
    e->types = (unsigned)sqlite3_column_int64(st, 9);
    e->enabled = sqlite3_column_int(st, 10) != 0;
}

static void row_delivery(sqlite3_stmt *st, void *out) {
    rp_webhook_delivery_t *d = out;
    RP_SQLITE_GET_COLS(st, d, delivery_cols);
    rp_delivery_status_parse((const char *)sqlite3_column_text(st, 9), &d->status);
    d->body = rp_sqlite_col_strdup(st, 10);
    d->log = rp_sqlite_col_json(st, 11);
}

static void release_delivery(void *d) {
    rp_webhook_delivery_clear(d);
}

static void row_int(sqlite3_stmt *st, void *out) {
    *(int64_t *)out = sqlite3_column_int64(st, 0);
}

/* Whether sql (a SELECT 1 ... LIMIT 1 bound by fmt) finds a row: a read on a pooled connection,
 * so that an idle relay or sender polls without taking the write lock every grant needs. */
static bool any_row(rp_webhook_store_t *s, bool *any, rp_err_t *err, const char *sql, const char *fmt, ...) {
    int64_t one = 0;
    va_list ap;
    va_start(ap, fmt);
    bool ok = rp_sqlite_vquery(NULL, pool_of(s), &(use_t){.what = "poll", .row = row_int, .out = &one, .found = any},
                               err, sql, fmt, ap);
    va_end(ap);
    return ok;
}

static bool s_ping(rp_webhook_store_t *s, rp_err_t *err) {
    int64_t one = 0;
    return query(NULL, pool_of(s), err, &(use_t){.what = "ping", .row = row_int, .out = &one}, "SELECT 1", "");
}

/* ---- endpoints ---- */

typedef struct endpoint_write {
    const rp_webhook_endpoint_t *e;
    const char *id;
    int64_t expect;
    const rp_audit_entry_t *a;
    bool *found;
    int op; /* 0 insert, 1 update, 2 delete */
} endpoint_write_t;

static rp_txn_end_t endpoint_body(sqlite3 *db, void *arg, rp_err_t *err) {
    endpoint_write_t *w = arg;
    const rp_webhook_endpoint_t *e = w->e;
    bool ok;
    if (w->op == 0)
        ok = query(db, NULL, err, &(use_t){.what = "insert webhook endpoint"},
                   "INSERT INTO webhook_endpoints (" ENDPOINT_COLS
                   ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                   "tttssmmmmii", e->id, e->url, e->secret, e->created_by, e->disabled_reason, e->created_at,
                   e->updated_at, e->failing_since, e->disabled_at, (int64_t)e->types, (int64_t)e->enabled);
    else if (w->op == 1)
        ok =
            query(db, NULL, err, &(use_t){.what = "update webhook endpoint", .found = w->found},
                  "UPDATE webhook_endpoints SET url = ?2, types = ?3, enabled = ?4, updated_at = ?5, disabled_at = ?6, "
                  "disabled_reason = ?7, failing_since = CASE WHEN enabled = ?4 THEN failing_since ELSE NULL END "
                  "WHERE id = ?1 AND (?8 = 0 OR updated_at = ?8)",
                  "ttiimmsi", e->id, e->url, (int64_t)e->types, (int64_t)e->enabled, e->updated_at, e->disabled_at,
                  e->disabled_reason, w->expect);
    else
        ok = query(db, NULL, err, &(use_t){.what = "delete webhook endpoint", .found = w->found},
                   "DELETE FROM webhook_endpoints WHERE id = ?1", "t", w->id) &&
             (!*w->found || query(db, NULL, err, &(use_t){.what = "delete webhook deliveries"},
                                  "DELETE FROM webhook_deliveries WHERE endpoint_id = ?1", "t", w->id));
    if (!ok) return RP_TXN_FAILED;
    if (w->found && !*w->found) return RP_TXN_ROLLBACK;
    return rp_sqlite_audit_append(db, w->a, err) ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

static bool s_endpoint_insert(rp_webhook_store_t *s, const rp_webhook_endpoint_t *e, const rp_audit_entry_t *a,
                              rp_err_t *err) {
    endpoint_write_t w = {.e = e, .a = a, .op = 0};
    return rp_sqlite_transact(pool_of(s), endpoint_body, &w, err);
}

static bool s_endpoint_get(rp_webhook_store_t *s, const char *id, rp_webhook_endpoint_t *out, bool *found,
                           rp_err_t *err) {
    memset(out, 0, sizeof *out);
    return query(NULL, pool_of(s), err,
                 &(use_t){.what = "read webhook endpoint", .row = row_endpoint, .out = out, .found = found},
                 "SELECT " ENDPOINT_COLS " FROM webhook_endpoints WHERE id = ?1", "t", id);
}

static bool s_endpoint_list(rp_webhook_store_t *s, const char *cursor, int limit, rp_webhook_endpoint_t **items,
                            size_t *n, bool *more, rp_err_t *err) {
    return query(NULL, pool_of(s), err,
                 RP_SQLITE_PAGE("list webhook endpoints", row_endpoint, NULL, items, n, limit, more),
                 "SELECT " ENDPOINT_COLS " FROM webhook_endpoints WHERE (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2",
                 "si", cursor, (int64_t)limit + 1);
}

static bool s_endpoint_update(rp_webhook_store_t *s, const rp_webhook_endpoint_t *e, int64_t expect_updated_at,
                              const rp_audit_entry_t *a, bool *found, rp_err_t *err) {
    endpoint_write_t w = {.e = e, .expect = expect_updated_at, .a = a, .found = found, .op = 1};
    *found = false;
    return rp_sqlite_transact(pool_of(s), endpoint_body, &w, err);
}

static bool s_endpoint_delete(rp_webhook_store_t *s, const char *id, const rp_audit_entry_t *a, bool *found,
                              rp_err_t *err) {
    endpoint_write_t w = {.id = id, .a = a, .found = found, .op = 2};
    *found = false;
    return rp_sqlite_transact(pool_of(s), endpoint_body, &w, err);
}

/* ---- deliveries ---- */

static bool insert_delivery(sqlite3 *db, rp_sqlite_pool_t *pool, const rp_webhook_delivery_t *d, bool *dup,
                            rp_err_t *err) {
    return query(
        db, pool, err, &(use_t){.what = "insert webhook delivery", .dup = dup},
        "INSERT INTO webhook_deliveries (id, endpoint_id, webhook_id, type, body, status, next_at, created_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, 'PENDING', ?6, ?7)",
        "tttttii", d->id, d->endpoint_id, d->webhook_id, d->type, d->body, d->next_at, d->created_at);
}

typedef struct fanout_run {
    int limit;
    rp_webhook_plan_fn plan;
    void *ctx;
    size_t *messages, *made;
} fanout_run_t;

static void row_outbox(sqlite3_stmt *st, void *out) {
    rp_outbox_message_t *m = out;
    m->seq = sqlite3_column_int64(st, 0);
    rp_sqlite_col_copy(st, 1, m->message_id, sizeof m->message_id);
    rp_sqlite_col_copy(st, 2, m->routing_key, sizeof m->routing_key);
    rp_sqlite_col_copy(st, 3, m->request_id, sizeof m->request_id);
    m->created_at = rp_sqlite_col_ms(st, 4);
    m->payload = rp_sqlite_col_json(st, 5);
}

static void release_outbox(void *m) {
    rp_outbox_message_clear(m);
}

static rp_txn_end_t fanout_body(sqlite3 *db, void *arg, rp_err_t *err) {
    fanout_run_t *run = arg;
    rp_outbox_message_t *msgs = NULL;
    rp_webhook_endpoint_t *eps = NULL;
    rp_webhook_delivery_t *out = NULL;
    size_t nm = 0, ne = 0;
    rp_txn_end_t end = RP_TXN_FAILED;
    *run->messages = *run->made = 0;
    if (!query(db, NULL, err, RP_SQLITE_PAGE("read webhook endpoints", row_endpoint, NULL, &eps, &ne, 1000000, NULL),
               "SELECT " ENDPOINT_COLS " FROM webhook_endpoints WHERE enabled = 1 ORDER BY id", ""))
        goto done;
    if (ne == 0) {
        /* nobody to deliver to, in this transaction's snapshot: an endpoint created after it
         * receives only what happens after its creation, so the messages are marked in one
         * statement instead of read, parsed and marked one by one (a 100,000-player batch makes
         * 100,000 of them while it holds the write lock) */
        sqlite3_stmt *st = NULL;
        int changed = 0;
        if (!rp_sqlite_prepare(db,
                               "UPDATE outbox SET hooked = 1 WHERE seq IN "
                               "(SELECT seq FROM outbox WHERE hooked = 0 ORDER BY seq LIMIT ?1)",
                               &st, err))
            goto done;
        sqlite3_bind_int64(st, 1, run->limit);
        if (!rp_sqlite_run(db, st, "mark outbox fanned out", &changed, err)) goto done;
        *run->messages = (size_t)changed;
        end = changed > 0 ? RP_TXN_COMMIT : RP_TXN_ROLLBACK;
        goto done;
    }
    if (!query(db, NULL, err,
               RP_SQLITE_PAGE("read outbox to fan out", row_outbox, release_outbox, &msgs, &nm, run->limit, NULL),
               "SELECT seq, message_id, routing_key, request_id, created_at, payload FROM outbox WHERE hooked = 0 "
               "ORDER BY seq LIMIT ?1",
               "i", (int64_t)run->limit))
        goto done;
    if (nm == 0) {
        end = RP_TXN_ROLLBACK;
        goto done;
    }
    out = rp_calloc(ne ? ne : 1, sizeof *out);
    for (size_t i = 0; i < nm; i++) {
        size_t nd = 0;
        bool dup = false, ok = true;
        run->plan(run->ctx, &msgs[i], eps, ne, out, &nd);
        for (size_t k = 0; k < nd; k++) {
            if (ok && !insert_delivery(db, NULL, &out[k], &dup, err)) ok = false;
            if (ok && !dup) (*run->made)++;
            rp_webhook_delivery_clear(&out[k]);
        }
        if (!ok || !query(db, NULL, err, &(use_t){.what = "mark outbox fanned out"},
                          "UPDATE outbox SET hooked = 1 WHERE seq = ?1", "i", msgs[i].seq))
            goto done;
        (*run->messages)++;
    }
    end = RP_TXN_COMMIT;
done:
    rp_sqlite_page_free((void **)&msgs, &nm, sizeof *msgs, release_outbox);
    free(eps);
    free(out);
    return end;
}

static bool s_fanout(rp_webhook_store_t *s, int limit, rp_webhook_plan_fn plan, void *ctx, size_t *messages,
                     size_t *made, rp_err_t *err) {
    fanout_run_t run = {limit, plan, ctx, messages, made};
    bool any = false;
    *messages = *made = 0;
    if (!any_row(s, &any, err, "SELECT 1 FROM outbox WHERE hooked = 0 LIMIT 1", "")) return false;
    return !any || rp_sqlite_transact(pool_of(s), fanout_body, &run, err);
}

/* ---- the notice relay ---- */

typedef struct notice_run {
    int64_t now;
    int limit;
    rp_webhook_plan_fn plan;
    void *ctx;
    size_t *things, *made;
} notice_run_t;

/* An event row (id, title, end_at, canceled_at) as the message of type `type` (column 4). */
static void row_event_message(sqlite3_stmt *st, void *out) {
    rp_outbox_message_t *m = out;
    const char *type = (const char *)sqlite3_column_text(st, 4);
    bool canceled = strcmp(type, "event.canceled") == 0;
    int64_t end = rp_sqlite_col_ms(st, 2), cancel = rp_sqlite_col_ms(st, 3);
    rp_sqlite_col_copy(st, 0, m->request_id, sizeof m->request_id);
    snprintf(m->message_id, sizeof m->message_id, "%s:%s", m->request_id, canceled ? "canceled" : "ended");
    snprintf(m->routing_key, sizeof m->routing_key, "%s", type);
    m->created_at = canceled ? cancel : end;
    m->payload = json_pack("{s:s, s:o, s:o, s:o}", "eventId", m->request_id, "title", rp_sqlite_col_string(st, 1),
                           "endDate", rp_json_time_or_null(end), "canceledAt", rp_json_time_or_null(cancel));
}

/* A batch row (id, event_id, total, created_by, SUCCESS, FAILED, last settled, created_at). */
static void row_batch_message(sqlite3_stmt *st, void *out) {
    rp_outbox_message_t *m = out;
    rp_sqlite_col_copy(st, 0, m->request_id, sizeof m->request_id);
    snprintf(m->message_id, sizeof m->message_id, "%s:completed", m->request_id);
    snprintf(m->routing_key, sizeof m->routing_key, "batch.completed");
    m->created_at = rp_sqlite_col_ms(st, 6) ? rp_sqlite_col_ms(st, 6) : rp_sqlite_col_ms(st, 7);
    m->payload = json_pack("{s:s, s:o, s:I, s:o, s:{s:I, s:I}}", "batchId", m->request_id, "eventId",
                           rp_sqlite_col_string(st, 1), "total", (json_int_t)sqlite3_column_int64(st, 2), "createdBy",
                           rp_sqlite_col_string(st, 3), "counts", "SUCCESS", (json_int_t)sqlite3_column_int64(st, 4),
                           "FAILED", (json_int_t)sqlite3_column_int64(st, 5));
}

#define NOT_NOTICED(t) "NOT EXISTS (SELECT 1 FROM webhook_notices n WHERE n.id = x.id AND n.type = '" t "')"

static rp_txn_end_t notice_body(sqlite3 *db, void *arg, rp_err_t *err) {
    notice_run_t *run = arg;
    rp_outbox_message_t *msgs[3] = {NULL, NULL, NULL};
    size_t nm[3] = {0, 0, 0};
    rp_webhook_endpoint_t *eps = NULL;
    rp_webhook_delivery_t *out = NULL;
    size_t ne = 0, total = 0;
    rp_txn_end_t end = RP_TXN_FAILED;
    *run->things = *run->made = 0;
    if (!query(db, NULL, err,
               RP_SQLITE_PAGE("find canceled events", row_event_message, release_outbox, &msgs[0], &nm[0], run->limit,
                              NULL),
               "SELECT id, title, end_at, canceled_at, 'event.canceled' FROM events x WHERE canceled_at IS NOT NULL "
               "AND canceled_at <= ?1 AND " NOT_NOTICED("event.canceled") " LIMIT ?2",
               "ii", run->now, (int64_t)run->limit) ||
        !query(
            db, NULL, err,
            RP_SQLITE_PAGE("find ended events", row_event_message, release_outbox, &msgs[1], &nm[1], run->limit, NULL),
            "SELECT id, title, end_at, canceled_at, 'event.ended' FROM events x WHERE canceled_at IS NULL AND "
            "end_at <= ?1 AND " NOT_NOTICED("event.ended") " LIMIT ?2",
            "ii", run->now, (int64_t)run->limit) ||
        !query(db, NULL, err,
               RP_SQLITE_PAGE("find completed batches", row_batch_message, release_outbox, &msgs[2], &nm[2], run->limit,
                              NULL),
               "SELECT id, event_id, total, created_by, "
               "(SELECT count(*) FROM batch_items WHERE batch_id = x.id AND status = 'SUCCESS'), "
               "(SELECT count(*) FROM batch_items WHERE batch_id = x.id AND status = 'FAILED'), "
               "(SELECT max(settled_at) FROM batch_items WHERE batch_id = x.id), created_at FROM batches x "
               "WHERE NOT EXISTS (SELECT 1 FROM batch_items i WHERE i.batch_id = x.id AND i.status = 'QUEUED') "
               "AND " NOT_NOTICED("batch.completed") " LIMIT ?1",
               "i", (int64_t)run->limit))
        goto done;
    total = nm[0] + nm[1] + nm[2];
    if (total == 0) {
        end = RP_TXN_ROLLBACK;
        goto done;
    }
    if (!query(db, NULL, err, RP_SQLITE_PAGE("read webhook endpoints", row_endpoint, NULL, &eps, &ne, 1000000, NULL),
               "SELECT " ENDPOINT_COLS " FROM webhook_endpoints WHERE enabled = 1 ORDER BY id", ""))
        goto done;
    out = rp_calloc(ne ? ne : 1, sizeof *out);
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < nm[k]; i++) {
            const rp_outbox_message_t *m = &msgs[k][i];
            size_t nd = 0;
            bool dup = false, ok = true;
            run->plan(run->ctx, m, eps, ne, out, &nd);
            for (size_t d = 0; d < nd; d++) {
                if (ok && !insert_delivery(db, NULL, &out[d], &dup, err)) ok = false;
                if (ok && !dup) (*run->made)++;
                rp_webhook_delivery_clear(&out[d]);
            }
            if (!ok || !query(db, NULL, err, &(use_t){.what = "mark noticed"},
                              "INSERT INTO webhook_notices (id, type, at) VALUES (?1, ?2, ?3)", "tti", m->request_id,
                              m->routing_key, run->now))
                goto done;
            (*run->things)++;
        }
    end = RP_TXN_COMMIT;
done:
    for (int k = 0; k < 3; k++)
        rp_sqlite_page_free((void **)&msgs[k], &nm[k], sizeof *msgs[k], release_outbox);
    free(eps);
    free(out);
    return end;
}

static bool s_notice(rp_webhook_store_t *s, int64_t now, int limit, rp_webhook_plan_fn plan, void *ctx, size_t *things,
                     size_t *made, rp_err_t *err) {
    notice_run_t run = {now, limit, plan, ctx, things, made};
    bool any = false;
    *things = *made = 0;
    if (!any_row(
            s, &any, err,
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM events x WHERE canceled_at IS NOT NULL AND canceled_at <= ?1 "
            "AND " NOT_NOTICED(
                "event.canceled") ") OR EXISTS (SELECT 1 FROM events x WHERE canceled_at IS NULL AND "
                                  "end_at <= ?1 AND " NOT_NOTICED(
                                      "event.ended") ") OR EXISTS (SELECT 1 FROM batches x WHERE NOT EXISTS "
                                                     "(SELECT 1 FROM batch_items i WHERE i.batch_id = x.id AND "
                                                     "i.status = 'QUEUED') AND " NOT_NOTICED("batch.completed") ")",
            "i", now))
        return false;
    return !any || rp_sqlite_transact(pool_of(s), notice_body, &run, err);
}

static bool s_delivery_insert(rp_webhook_store_t *s, const rp_webhook_delivery_t *d, bool *duplicate, rp_err_t *err) {
    return insert_delivery(NULL, pool_of(s), d, duplicate, err);
}

static int by_due(const void *a, const void *b) {
    const rp_webhook_delivery_t *x = a, *y = b;
    if (x->next_at != y->next_at) return (x->next_at > y->next_at) - (x->next_at < y->next_at);
    return strcmp(x->id, y->id);
}

typedef struct lease_run {
    const char *owner;
    int64_t now, until;
    int limit;
    rp_webhook_delivery_t **items;
    size_t *n;
} lease_run_t;

/* The lease runs on the group-commit runner with the other writes of the process (grants,
 * attempts), instead of as a statement of its own that would wait in SQLite's busy handler. */
static rp_txn_end_t lease_body(sqlite3 *db, void *arg, rp_err_t *err) {
    lease_run_t *l = arg;
    /* one statement leases atomically; RETURNING has no order, so the page is sorted after */
    return query(db, NULL, err,
                 RP_SQLITE_PAGE("lease webhook deliveries", row_delivery, release_delivery, l->items, l->n, l->limit,
                                NULL),
                 "UPDATE webhook_deliveries SET lease_owner = ?1, lease_until = ?3 WHERE id IN (SELECT id FROM "
                 "webhook_deliveries WHERE status = 'PENDING' AND next_at <= ?2 AND (lease_until IS NULL OR "
                 "lease_until < ?2 OR lease_owner = ?1) ORDER BY next_at, id LIMIT ?4) RETURNING " DELIVERY_COLS,
                 "tiii", l->owner, l->now, l->until, (int64_t)l->limit)
               ? RP_TXN_COMMIT
               : RP_TXN_FAILED;
}

static bool s_delivery_lease(rp_webhook_store_t *s, const char *owner, int64_t now, int64_t until, int limit,
                             rp_webhook_delivery_t **items, size_t *n, rp_err_t *err) {
    lease_run_t l = {owner, now, until, limit, items, n};
    bool any = false;
    *items = NULL;
    *n = 0;
    if (!any_row(s, &any, err,
                 "SELECT 1 FROM webhook_deliveries WHERE status = 'PENDING' AND next_at <= ?1 AND (lease_until IS NULL "
                 "OR lease_until < ?1 OR lease_owner = ?2) LIMIT 1",
                 "it", now, owner))
        return false;
    if (!any) return true;
    if (!rp_sqlite_transact(pool_of(s), lease_body, &l, err)) {
        /* the group could not commit: what the statement returned was not leased */
        rp_sqlite_page_free((void **)items, n, sizeof **items, release_delivery);
        return false;
    }
    if (*items) qsort(*items, *n, sizeof **items, by_due);
    return true;
}

typedef struct record_run {
    const char *id, *owner;
    const rp_webhook_attempt_t *a;
    const rp_webhook_outcome_t *o;
    bool *applied;
} record_run_t;

static rp_txn_end_t record_body(sqlite3 *db, void *arg, rp_err_t *err) {
    record_run_t *r = arg;
    json_t *entry = r->a ? rp_webhook_attempt_to_json(r->a) : NULL;
    rp_txn_end_t end = RP_TXN_FAILED;
    /* the log keeps the newest RP_WEBHOOK_MAX_ATTEMPTS attempts */
    if (!query(db, NULL, err, &(use_t){.what = "record webhook attempt", .found = r->applied},
               "UPDATE webhook_deliveries SET status = ?3, round = ?4, next_at = ?5, settled_at = ?6, "
               "attempts = attempts + ?7, lease_owner = NULL, lease_until = NULL, "
               "log = CASE WHEN ?8 IS NULL THEN log WHEN json_array_length(log) >= ?9 THEN "
               "json_insert(json_remove(log, '$[0]'), '$[#]', json(?8)) ELSE json_insert(log, '$[#]', json(?8)) END "
               "WHERE id = ?1 AND lease_owner = ?2",
               "ttsiimiji", r->id, r->owner, rp_delivery_status_name(r->o->status), r->o->round, r->o->next_at,
               r->o->settled_at, (int64_t)(r->a ? 1 : 0), entry, (int64_t)RP_WEBHOOK_MAX_ATTEMPTS))
        goto done;
    if (!*r->applied) {
        end = RP_TXN_ROLLBACK;
        goto done;
    }
    /* a success clears failing_since; a failure sets it unless it is set already */
    if (!query(db, NULL, err, &(use_t){.what = "mark endpoint failing"},
               "UPDATE webhook_endpoints SET failing_since = CASE WHEN ?2 = 0 THEN NULL ELSE "
               "coalesce(failing_since, ?2) END WHERE id = (SELECT endpoint_id FROM webhook_deliveries WHERE id = ?1)",
               "ti", r->id, r->o->failing_since))
        goto done;
    end = RP_TXN_COMMIT;
done:
    json_decref(entry);
    return end;
}

static bool s_delivery_record(rp_webhook_store_t *s, const char *id, const char *owner, const rp_webhook_attempt_t *a,
                              const rp_webhook_outcome_t *o, bool *applied, rp_err_t *err) {
    record_run_t r = {id, owner, a, o, applied};
    *applied = false;
    return rp_sqlite_transact(pool_of(s), record_body, &r, err);
}

static bool s_delivery_get(rp_webhook_store_t *s, const char *endpoint_id, const char *id, rp_webhook_delivery_t *out,
                           bool *found, rp_err_t *err) {
    memset(out, 0, sizeof *out);
    return query(NULL, pool_of(s), err,
                 &(use_t){.what = "read webhook delivery",
                          .row = row_delivery,
                          .clear = release_delivery,
                          .out = out,
                          .found = found},
                 "SELECT " DELIVERY_COLS " FROM webhook_deliveries WHERE id = ?1 AND endpoint_id = ?2", "tt", id,
                 endpoint_id);
}

static bool s_delivery_list(rp_webhook_store_t *s, const char *endpoint_id, int status, const char *cursor, int limit,
                            rp_webhook_delivery_t **items, size_t *n, bool *more, rp_err_t *err) {
    return query(NULL, pool_of(s), err,
                 RP_SQLITE_PAGE("list webhook deliveries", row_delivery, release_delivery, items, n, limit, more),
                 "SELECT " DELIVERY_COLS " FROM webhook_deliveries WHERE endpoint_id = ?1 AND (?2 IS NULL OR "
                 "status = ?2) AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4",
                 "tssi", endpoint_id, status < 0 ? NULL : rp_delivery_status_name((rp_delivery_status_t)status), cursor,
                 (int64_t)limit + 1);
}

static bool s_delivery_redeliver(rp_webhook_store_t *s, const char *endpoint_id, const char *id, int64_t now,
                                 bool *found, rp_err_t *err) {
    return query(NULL, pool_of(s), err, &(use_t){.what = "redeliver webhook delivery", .found = found},
                 "UPDATE webhook_deliveries SET status = 'PENDING', round = 0, next_at = ?3, settled_at = NULL, "
                 "lease_owner = NULL, lease_until = NULL WHERE id = ?1 AND endpoint_id = ?2",
                 "tti", id, endpoint_id, now);
}

static void row_stats(sqlite3_stmt *st, void *out) {
    rp_webhook_stats_t *o = out;
    unsigned bit = rp_webhook_type_parse((const char *)sqlite3_column_text(st, 0));
    rp_delivery_status_t status = RP_DELIVERY_PENDING;
    int i = 0;
    if (!bit || !rp_delivery_status_parse((const char *)sqlite3_column_text(st, 1), &status)) return;
    while (!(bit & 1u)) {
        bit >>= 1;
        i++;
    }
    o->count[i][status] += sqlite3_column_int64(st, 2);
    if (status == RP_DELIVERY_PENDING) {
        o->pending += sqlite3_column_int64(st, 2);
        int64_t oldest = rp_sqlite_col_ms(st, 3);
        if (oldest && (!o->oldest_pending_created_at || oldest < o->oldest_pending_created_at))
            o->oldest_pending_created_at = oldest;
    }
}

static bool s_delivery_stats(rp_webhook_store_t *s, rp_webhook_stats_t *out, rp_err_t *err) {
    memset(out, 0, sizeof *out);
    return query(NULL, pool_of(s), err, &(use_t){.what = "count deliveries", .row = row_stats, .out = out},
                 "SELECT type, status, count(*), min(created_at) FROM webhook_deliveries GROUP BY type, status", "");
}

static void s_free(rp_webhook_store_t *s) {
    rp_store_handle_free(s);
}

static const rp_webhook_store_ops_t sqlite_ops = {
    .ping = s_ping,
    .endpoint_insert = s_endpoint_insert,
    .endpoint_get = s_endpoint_get,
    .endpoint_list = s_endpoint_list,
    .endpoint_update = s_endpoint_update,
    .endpoint_delete = s_endpoint_delete,
    .fanout = s_fanout,
    .notice = s_notice,
    .delivery_insert = s_delivery_insert,
    .delivery_lease = s_delivery_lease,
    .delivery_record = s_delivery_record,
    .delivery_get = s_delivery_get,
    .delivery_list = s_delivery_list,
    .delivery_redeliver = s_delivery_redeliver,
    .delivery_stats = s_delivery_stats,
    .free = s_free,
};

rp_webhook_store_t *rp_webhook_store_sqlite_open(const char *dir, int max_conns, rp_err_t *err) {
    return rp_events_db_open(dir, max_conns, &(rp_webhook_store_t){&sqlite_ops}, sizeof(rp_webhook_store_t), err);
}
