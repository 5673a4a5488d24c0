/* reward_store_sqlite.c - the reward repository on SQLite (see reward_store.h): events.db shared
 * with the event store, one connection pool, BEGIN IMMEDIATE for every write transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event_schema_sqlite.h"
#include "ids.h"
#include "log.h"
#include "mem.h"
#include "reward_store.h"
#include "sqlite_util.h"
#include "timeutil.h"

typedef struct sqlite_store {
    rp_reward_store_t base;
    rp_sqlite_pool_t *pool;
} sqlite_store_t;

#define REQ_COLUMNS                                                                                                    \
    "id, user_id, event_id, period_key, status, claimed_rewards, requested_at, processed_at, processor_id, "           \
    "failure_reason, failure_details, notes, source, batch_id, created_at, updated_at"

/* ---- small binding and conversion helpers ---- */

static const char *doc_str(const json_t *doc, const char *key) {
    return json_string_value(json_object_get(doc, key));
}

static int64_t doc_time(const json_t *doc, const char *key) {
    const char *s = doc_str(doc, key);
    int64_t ms = 0;
    if (s && !rp_time_parse_iso(s, strlen(s), &ms)) ms = 0;
    return ms;
}

static void bind_time_or_null(sqlite3_stmt *st, int i, int64_t ms) {
    if (ms)
        sqlite3_bind_int64(st, i, ms);
    else
        sqlite3_bind_null(st, i);
}

/* Builds a request document from a row selected with REQ_COLUMNS. */
static json_t *row_to_request(sqlite3_stmt *st) {
    json_t *d = json_object();
    json_object_set_new(d, "id", rp_sqlite_col_string(st, 0));
    json_object_set_new(d, "userId", rp_sqlite_col_string(st, 1));
    json_object_set_new(d, "eventId", rp_sqlite_col_string(st, 2));
    json_object_set_new(d, "periodKey", rp_sqlite_col_string(st, 3));
    json_object_set_new(d, "status", rp_sqlite_col_string(st, 4));
    json_object_set_new(d, "claimedRewards", rp_sqlite_col_json(st, 5));
    json_object_set_new(d, "requestedAt", rp_sqlite_col_time(st, 6));
    json_object_set_new(d, "processedAt", rp_sqlite_col_time(st, 7));
    json_object_set_new(d, "processorId", rp_sqlite_col_string(st, 8));
    json_object_set_new(d, "failureReason", rp_sqlite_col_string(st, 9));
    json_object_set_new(d, "failureDetails", rp_sqlite_col_json(st, 10));
    json_object_set_new(d, "notes", rp_sqlite_col_string(st, 11));
    json_object_set_new(d, "source", rp_sqlite_col_string(st, 12));
    json_object_set_new(d, "batchId", rp_sqlite_col_string(st, 13));
    json_object_set_new(d, "createdAt", rp_sqlite_col_time(st, 14));
    json_object_set_new(d, "updatedAt", rp_sqlite_col_time(st, 15));
    return d;
}

static bool load_request(sqlite3 *db, const char *where, const char *arg, json_t **out, rp_err_t *err) {
    char sql[512];
    sqlite3_stmt *st = NULL;
    *out = NULL;
    snprintf(sql, sizeof sql, "SELECT " REQ_COLUMNS " FROM reward_requests WHERE %s", where);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "load request", err);
        return false;
    }
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *out = row_to_request(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rp_sqlite_err(db, "load request", err);
        return false;
    }
    return true;
}

static bool insert_request(sqlite3 *db, json_t *doc, const char *active_key, rp_err_t *err, bool *dup) {
    sqlite3_stmt *st = NULL;
    *dup = false;
    if (sqlite3_prepare_v2(
            db,
            "INSERT INTO reward_requests (id, user_id, event_id, period_key, active_key, status, "
            "claimed_rewards, requested_at, processed_at, processor_id, failure_reason, failure_details, "
            "notes, source, batch_id, created_at, updated_at) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, json(?7), ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare insert request", err);
        return false;
    }
    rp_sqlite_bind_text(st, 1, doc_str(doc, "id"));
    rp_sqlite_bind_text(st, 2, doc_str(doc, "userId"));
    rp_sqlite_bind_text(st, 3, doc_str(doc, "eventId"));
    rp_sqlite_bind_text(st, 4, doc_str(doc, "periodKey"));
    rp_sqlite_bind_text(st, 5, active_key);
    rp_sqlite_bind_text(st, 6, doc_str(doc, "status"));
    rp_sqlite_bind_json(st, 7, json_object_get(doc, "claimedRewards"));
    bind_time_or_null(st, 8, doc_time(doc, "requestedAt"));
    bind_time_or_null(st, 9, doc_time(doc, "processedAt"));
    rp_sqlite_bind_text(st, 10, doc_str(doc, "processorId"));
    rp_sqlite_bind_text(st, 11, doc_str(doc, "failureReason"));
    rp_sqlite_bind_json(st, 12, json_object_get(doc, "failureDetails"));
    rp_sqlite_bind_text(st, 13, doc_str(doc, "notes"));
    rp_sqlite_bind_text(st, 14, doc_str(doc, "source") ? doc_str(doc, "source") : "CLAIM");
    rp_sqlite_bind_text(st, 15, doc_str(doc, "batchId"));
    bind_time_or_null(st, 16, doc_time(doc, "createdAt"));
    bind_time_or_null(st, 17, doc_time(doc, "updatedAt"));
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) return true;
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        *dup = true;
        return false;
    }
    rp_sqlite_err(db, "insert request", err);
    return false;
}

/* Guarded stock decrement (delta > 0) or return (delta < 0) of one event reward row. Returns 1
 * when applied, 0 when the guard refused (not enough stock), -1 on error. */
static int move_stock(sqlite3 *db, const char *event_id, int idx, int64_t delta, rp_err_t *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "UPDATE event_rewards SET stock_left = CASE WHEN stock_left IS NULL THEN NULL "
                           "ELSE stock_left - ?3 END "
                           "WHERE event_id = ?1 AND idx = ?2 AND (stock_left IS NULL OR stock_left >= ?3)",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare stock update", err);
        return -1;
    }
    sqlite3_bind_text(st, 1, event_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, idx);
    sqlite3_bind_int64(st, 3, delta);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        rp_sqlite_err(db, "stock update", err);
        return -1;
    }
    return sqlite3_changes(db) == 1 ? 1 : 0;
}

static bool append_ledger(sqlite3 *db, const json_t *req, const rp_grant_line_t *lines, size_t n, bool reversal,
                          const char *processor_id, int64_t now, rp_err_t *err) {
    sqlite3_stmt *st = NULL;
    json_t *claimed = json_object_get(req, "claimedRewards");
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO reward_ledger (id, request_id, user_id, event_id, reward_idx, "
                           "reward_definition_id, quantity, entry_type, processor_id, at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare ledger", err);
        return false;
    }
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        char id[RP_OID_LEN];
        const char *def = NULL;
        size_t k;
        json_t *c;
        json_array_foreach(claimed, k, c) {
            if (json_integer_value(json_object_get(c, "rewardIndex")) == lines[i].reward_index)
                def = doc_str(c, "rewardDefinitionId");
        }
        rp_oid_new(id);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        rp_sqlite_bind_text(st, 2, doc_str(req, "id"));
        rp_sqlite_bind_text(st, 3, doc_str(req, "userId"));
        rp_sqlite_bind_text(st, 4, doc_str(req, "eventId"));
        sqlite3_bind_int(st, 5, lines[i].reward_index);
        rp_sqlite_bind_text(st, 6, def ? def : "");
        sqlite3_bind_int64(st, 7, reversal ? -lines[i].quantity : lines[i].quantity);
        sqlite3_bind_text(st, 8, reversal ? "REVERSAL" : "GRANT", -1, SQLITE_STATIC);
        rp_sqlite_bind_text(st, 9, processor_id);
        sqlite3_bind_int64(st, 10, now);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rp_sqlite_err(db, "append ledger", err);
            ok = false;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    sqlite3_finalize(st);
    return ok;
}

static bool append_outbox(sqlite3 *db, const char *message_id, const char *routing_key, const char *request_id,
                          const json_t *payload, int64_t now, rp_err_t *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO outbox (message_id, routing_key, request_id, payload, created_at) "
                           "VALUES (?1, ?2, ?3, json(?4), ?5)",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare outbox", err);
        return false;
    }
    sqlite3_bind_text(st, 1, message_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, routing_key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, request_id, -1, SQLITE_TRANSIENT);
    rp_sqlite_bind_json(st, 4, payload);
    sqlite3_bind_int64(st, 5, now);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        rp_sqlite_err(db, "append outbox", err);
        return false;
    }
    return true;
}

static bool count_user_claims(sqlite3 *db, const char *user_id, const char *event_id, int64_t *count, rp_err_t *err) {
    sqlite3_stmt *st = NULL;
    *count = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM reward_requests WHERE user_id = ?1 AND event_id = ?2 "
                           "AND status <> 'FAILED'",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare claim count", err);
        return false;
    }
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, event_id, -1, SQLITE_TRANSIENT);
    bool ok = sqlite3_step(st) == SQLITE_ROW;
    if (ok)
        *count = sqlite3_column_int64(st, 0);
    else
        rp_sqlite_err(db, "claim count", err);
    sqlite3_finalize(st);
    return ok;
}

/* Moves a QUEUED batch item to status; 1 when it moved, 0 when it was settled already, -1 on
 * error. */
static int settle_item(sqlite3 *db, const char *batch_id, int64_t seq, const char *status, const char *reason,
                       const char *request_id, int64_t now, rp_err_t *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "UPDATE batch_items SET status = ?3, failure_reason = ?4, request_id = ?5, settled_at = ?6 "
                           "WHERE batch_id = ?1 AND seq = ?2 AND status = 'QUEUED'",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare settle item", err);
        return -1;
    }
    rp_sqlite_bind_text(st, 1, batch_id);
    sqlite3_bind_int64(st, 2, seq);
    rp_sqlite_bind_text(st, 3, status);
    rp_sqlite_bind_text(st, 4, reason);
    rp_sqlite_bind_text(st, 5, request_id);
    sqlite3_bind_int64(st, 6, now);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        rp_sqlite_err(db, "settle item", err);
        return -1;
    }
    return sqlite3_changes(db) > 0 ? 1 : 0;
}

/* ---- operations ---- */

static bool s_ping(rp_reward_store_t *base, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    bool ok = rp_sqlite_exec(db, "SELECT 1 FROM reward_requests LIMIT 1", err);
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool s_grant(rp_reward_store_t *base, const rp_grant_input_t *in, rp_grant_outcome_t *outcome, json_t **existing,
                    rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    bool ok = false, in_txn = false, dup = false;
    *outcome = RP_GRANT_OK;
    *existing = NULL;
    const char *user = doc_str(in->request, "userId"), *event = doc_str(in->request, "eventId");
    const char *status = doc_str(in->request, "status"), *id = doc_str(in->request, "id");
    bool success = status && strcmp(status, "SUCCESS") == 0;
    int64_t now = doc_time(in->request, "createdAt");
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    if (!rp_sqlite_exec(db, "BEGIN IMMEDIATE", err)) goto done;
    in_txn = true;
    if (in->batch_id) {
        int changed = settle_item(db, in->batch_id, in->batch_seq, "SUCCESS", NULL, id, now, err);
        if (changed < 0) goto done;
        if (changed == 0) {
            *outcome = RP_GRANT_ITEM_SETTLED;
            ok = true;
            goto done;
        }
    }
    if (!load_request(db, "active_key = ?1", in->active_key, existing, err)) goto done;
    if (*existing) {
        *outcome = RP_GRANT_DUPLICATE;
        ok = true;
        goto done;
    }
    if (in->max_claims_per_user > 0) {
        int64_t count;
        if (!count_user_claims(db, user, event, &count, err)) goto done;
        if (count >= in->max_claims_per_user) {
            *outcome = RP_GRANT_LIMIT_REACHED;
            ok = true;
            goto done;
        }
    }
    if (success) {
        for (size_t i = 0; i < in->nlines; i++) {
            int r = move_stock(db, event, in->lines[i].reward_index, in->lines[i].quantity, err);
            if (r < 0) goto done;
            if (r == 0) {
                *outcome = RP_GRANT_OUT_OF_STOCK;
                ok = true;
                goto done;
            }
        }
    }
    if (!insert_request(db, in->request, in->active_key, err, &dup)) {
        if (dup) {
            *outcome = RP_GRANT_DUPLICATE;
            ok = load_request(db, "active_key = ?1", in->active_key, existing, err);
        }
        goto done;
    }
    if (success &&
        (!append_ledger(db, in->request, in->lines, in->nlines, false, doc_str(in->request, "processorId"), now, err) ||
         !append_outbox(db, id, "reward.granted", id, in->outbox_payload, now, err)))
        goto done;
    if (!rp_sqlite_exec(db, "COMMIT", err)) goto done;
    in_txn = false;
    ok = true;
done:
    /* anything but a committed grant leaves no trace: duplicates, refusals and errors roll back */
    if (in_txn) rp_sqlite_exec(db, "ROLLBACK", NULL);
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool s_record_failed(rp_reward_store_t *base, json_t *request, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    bool dup = false;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    bool ok = insert_request(db, request, NULL, err, &dup);
    if (dup) rp_err_set(err, RP_ERR_STORE, "STORE_ERROR", "request id collision");
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool set_status(sqlite3 *db, const char *id, const char *to, const char *processor, const char *notes,
                       const char *reason, int64_t now, bool release_key, rp_err_t *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "UPDATE reward_requests SET status = ?2, processed_at = ?3, processor_id = ?4, "
                           "notes = coalesce(?5, notes), failure_reason = ?6, updated_at = ?3, "
                           "active_key = CASE WHEN ?7 THEN NULL ELSE active_key END WHERE id = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare transition", err);
        return false;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, to, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, now);
    rp_sqlite_bind_text(st, 4, processor);
    rp_sqlite_bind_text(st, 5, notes);
    rp_sqlite_bind_text(st, 6, reason);
    sqlite3_bind_int(st, 7, release_key);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        rp_sqlite_err(db, "transition", err);
        return false;
    }
    return true;
}

static bool s_transition(rp_reward_store_t *base, const char *id, const char *from_status, const char *to_status,
                         const char *processor_id, const char *notes, const char *failure_reason,
                         const rp_grant_line_t *lines, size_t nlines, json_t *outbox_payload, int64_t now_ms,
                         rp_decide_outcome_t *outcome, json_t **after, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    bool ok = false, in_txn = false;
    json_t *req = NULL;
    *outcome = RP_DECIDE_OK;
    *after = NULL;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    if (!rp_sqlite_exec(db, "BEGIN IMMEDIATE", err)) goto done;
    in_txn = true;
    if (!load_request(db, "id = ?1", id, &req, err)) goto done;
    if (!req) {
        *outcome = RP_DECIDE_NOT_FOUND;
        ok = true;
        goto done;
    }
    if (strcmp(doc_str(req, "status"), from_status) != 0) {
        *outcome = RP_DECIDE_WRONG_STATE;
        *after = json_incref(req);
        ok = true;
        goto done;
    }
    const char *event = doc_str(req, "eventId");
    const char *to = to_status, *reason = failure_reason;
    if (strcmp(to_status, "SUCCESS") == 0) {
        for (size_t i = 0; i < nlines; i++) {
            int r = move_stock(db, event, lines[i].reward_index, lines[i].quantity, err);
            if (r < 0) goto done;
            if (r == 0) {
                /* undo the decrements of earlier lines, then fail the request instead */
                rp_sqlite_exec(db, "ROLLBACK", NULL);
                if (!rp_sqlite_exec(db, "BEGIN IMMEDIATE", err)) {
                    in_txn = false;
                    goto done;
                }
                *outcome = RP_DECIDE_OUT_OF_STOCK;
                to = "FAILED";
                reason = "OUT_OF_STOCK";
                break;
            }
        }
    } else if (strcmp(to_status, "REVOKED") == 0) {
        for (size_t i = 0; i < nlines; i++)
            if (move_stock(db, event, lines[i].reward_index, -lines[i].quantity, err) < 0) goto done;
        if (!append_ledger(db, req, lines, nlines, true, processor_id, now_ms, err)) goto done;
        char mid[64];
        snprintf(mid, sizeof mid, "%s:revoked", id);
        if (!append_outbox(db, mid, "reward.revoked", id, outbox_payload, now_ms, err)) goto done;
    }
    bool release = strcmp(to, "FAILED") == 0;
    if (!set_status(db, id, to, processor_id, notes, release ? reason : (strcmp(to, "REVOKED") == 0 ? reason : NULL),
                    now_ms, release, err))
        goto done;
    if (strcmp(to, "SUCCESS") == 0 && (!append_ledger(db, req, lines, nlines, false, processor_id, now_ms, err) ||
                                       !append_outbox(db, id, "reward.granted", id, outbox_payload, now_ms, err)))
        goto done;
    json_decref(req);
    req = NULL;
    if (!load_request(db, "id = ?1", id, after, err)) goto done;
    if (!rp_sqlite_exec(db, "COMMIT", err)) goto done;
    in_txn = false;
    ok = true;
done:
    if (in_txn) rp_sqlite_exec(db, "ROLLBACK", NULL);
    if (!ok) {
        json_decref(*after);
        *after = NULL;
    }
    json_decref(req);
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool s_get_request(rp_reward_store_t *base, const char *id, json_t **request, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    bool ok = load_request(db, "id = ?1", id, request, err);
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool s_find_active(rp_reward_store_t *base, const char *key, json_t **request, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    bool ok = load_request(db, "active_key = ?1", key, request, err);
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static json_t *row_to_ledger(sqlite3_stmt *st) {
    json_t *e = json_object();
    json_object_set_new(e, "seq", json_integer(sqlite3_column_int64(st, 0)));
    json_object_set_new(e, "id", rp_sqlite_col_string(st, 1));
    json_object_set_new(e, "requestId", rp_sqlite_col_string(st, 2));
    json_object_set_new(e, "userId", rp_sqlite_col_string(st, 3));
    json_object_set_new(e, "eventId", rp_sqlite_col_string(st, 4));
    json_object_set_new(e, "rewardIndex", json_integer(sqlite3_column_int(st, 5)));
    json_object_set_new(e, "rewardDefinitionId", rp_sqlite_col_string(st, 6));
    json_object_set_new(e, "quantity", json_integer(sqlite3_column_int64(st, 7)));
    json_object_set_new(e, "entryType", rp_sqlite_col_string(st, 8));
    json_object_set_new(e, "processorId", rp_sqlite_col_string(st, 9));
    json_object_set_new(e, "at", rp_sqlite_col_time(st, 10));
    return e;
}

static json_t *row_to_outbox(sqlite3_stmt *st) {
    json_t *e = json_object();
    json_object_set_new(e, "seq", json_integer(sqlite3_column_int64(st, 0)));
    json_object_set_new(e, "messageId", rp_sqlite_col_string(st, 1));
    json_object_set_new(e, "routingKey", rp_sqlite_col_string(st, 2));
    json_object_set_new(e, "requestId", rp_sqlite_col_string(st, 3));
    json_object_set_new(e, "payload", rp_sqlite_col_json(st, 4));
    json_object_set_new(e, "createdAt", rp_sqlite_col_time(st, 5));
    json_object_set_new(e, "publishedAt", rp_sqlite_col_time(st, 6));
    return e;
}

static bool s_list_requests(rp_reward_store_t *base, const rp_request_filter_t *f, json_t **items, bool *more,
                            rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    bool ok = false;
    *items = NULL;
    *more = false;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    /* newest first by request time: ObjectIds made by different worker processes in the same
     * second do not sort by time, so the id only breaks ties (and names the cursor row) */
    if (sqlite3_prepare_v2(db,
                           "SELECT " REQ_COLUMNS " FROM reward_requests WHERE "
                           "(?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR event_id = ?2) AND "
                           "(?3 IS NULL OR status = ?3) AND (?4 IS NULL OR requested_at >= ?4) AND "
                           "(?5 IS NULL OR requested_at < ?5) AND (?6 IS NULL OR (requested_at, id) < "
                           "(SELECT requested_at, id FROM reward_requests WHERE id = ?6)) "
                           "ORDER BY requested_at DESC, id DESC LIMIT ?7",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare list requests", err);
    } else {
        rp_sqlite_bind_text(st, 1, f->user_id);
        rp_sqlite_bind_text(st, 2, f->event_id);
        rp_sqlite_bind_text(st, 3, f->status);
        bind_time_or_null(st, 4, f->from_ms);
        bind_time_or_null(st, 5, f->to_ms);
        rp_sqlite_bind_text(st, 6, f->cursor);
        sqlite3_bind_int(st, 7, f->limit + 1);
        ok = rp_sqlite_collect(db, st, f->limit, row_to_request, items, more, err);
    }
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool s_list_ledger(rp_reward_store_t *base, const char *user_id, const char *event_id, int64_t after_seq,
                          int limit, json_t **items, bool *more, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    bool ok = false;
    *items = NULL;
    *more = false;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    if (sqlite3_prepare_v2(db,
                           "SELECT seq, id, request_id, user_id, event_id, reward_idx, reward_definition_id, quantity, "
                           "entry_type, processor_id, at FROM reward_ledger WHERE seq > ?1 AND "
                           "(?2 IS NULL OR user_id = ?2) AND (?3 IS NULL OR event_id = ?3) ORDER BY seq LIMIT ?4",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare list ledger", err);
    } else {
        sqlite3_bind_int64(st, 1, after_seq);
        rp_sqlite_bind_text(st, 2, user_id);
        rp_sqlite_bind_text(st, 3, event_id);
        sqlite3_bind_int(st, 4, limit + 1);
        ok = rp_sqlite_collect(db, st, limit, row_to_ledger, items, more, err);
    }
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool s_list_outbox(rp_reward_store_t *base, int64_t after_seq, int limit, json_t **items, bool *more,
                          rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    bool ok = false;
    *items = NULL;
    *more = false;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    if (sqlite3_prepare_v2(db,
                           "SELECT seq, message_id, routing_key, request_id, payload, created_at, published_at "
                           "FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare list outbox", err);
    } else {
        sqlite3_bind_int64(st, 1, after_seq);
        sqlite3_bind_int(st, 2, limit + 1);
        ok = rp_sqlite_collect(db, st, limit, row_to_outbox, items, more, err);
    }
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool s_idem_get(rp_reward_store_t *base, const char *user_id, const char *key, bool *found, char hash[65],
                       int *status, json_t **response, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    bool ok = false;
    *found = false;
    *response = NULL;
    hash[0] = '\0';
    *status = 0;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    if (sqlite3_prepare_v2(
            db, "SELECT request_hash, status, response FROM idempotency_keys WHERE user_id = ?1 AND key = ?2", -1, &st,
            NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare idempotency lookup", err);
        goto done;
    }
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *found = true;
        snprintf(hash, 65, "%s", (const char *)sqlite3_column_text(st, 0));
        *status = sqlite3_column_int(st, 1);
        *response = rp_sqlite_col_json(st, 2);
    } else if (rc != SQLITE_DONE) {
        rp_sqlite_err(db, "idempotency lookup", err);
        goto done;
    }
    ok = true;
done:
    sqlite3_finalize(st);
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool s_idem_put(rp_reward_store_t *base, const char *user_id, const char *key, const char *hash, int status,
                       const json_t *response, int64_t now_ms, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    bool ok = false;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO idempotency_keys (user_id, key, request_hash, status, response, created_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (user_id, key) DO NOTHING",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare idempotency insert", err);
        goto done;
    }
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, status);
    rp_sqlite_bind_json(st, 5, response);
    sqlite3_bind_int64(st, 6, now_ms);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rp_sqlite_err(db, "idempotency insert", err);
        goto done;
    }
    ok = true;
done:
    sqlite3_finalize(st);
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool s_outbox_lease(rp_reward_store_t *base, const char *owner, int64_t now, int64_t lease_ms, int limit,
                           json_t **items, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    bool ok = false, in_txn = false;
    int rc;
    *items = NULL;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    if (!rp_sqlite_exec(db, "BEGIN IMMEDIATE", err)) goto done;
    in_txn = true;
    if (sqlite3_prepare_v2(
            db,
            "UPDATE outbox SET lease_owner = ?1, lease_until = ?2 WHERE seq IN (SELECT seq FROM outbox "
            "WHERE published_at IS NULL AND (lease_until IS NULL OR lease_until < ?3 OR lease_owner = ?1) "
            "ORDER BY seq LIMIT ?4)",
            -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare lease", err);
        goto done;
    }
    rp_sqlite_bind_text(st, 1, owner);
    sqlite3_bind_int64(st, 2, now + lease_ms);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_int(st, 4, limit);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_DONE) {
        rp_sqlite_err(db, "lease outbox", err);
        goto done;
    }
    if (sqlite3_prepare_v2(db,
                           "SELECT seq, message_id, routing_key, payload FROM outbox WHERE published_at IS NULL AND "
                           "lease_owner = ?1 AND lease_until = ?2 ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare leased", err);
        goto done;
    }
    rp_sqlite_bind_text(st, 1, owner);
    sqlite3_bind_int64(st, 2, now + lease_ms);
    *items = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(*items, json_pack("{s:I, s:o, s:o, s:o}", "seq", (json_int_t)sqlite3_column_int64(st, 0),
                                                "messageId", rp_sqlite_col_string(st, 1), "routingKey",
                                                rp_sqlite_col_string(st, 2), "payload", rp_sqlite_col_json(st, 3)));
    if (rc != SQLITE_DONE) {
        rp_sqlite_err(db, "read leased", err);
        goto done;
    }
    if (!rp_sqlite_exec(db, "COMMIT", err)) goto done;
    in_txn = false;
    ok = true;
done:
    sqlite3_finalize(st);
    if (in_txn) rp_sqlite_exec(db, "ROLLBACK", NULL);
    if (!ok) {
        json_decref(*items);
        *items = NULL;
    }
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool s_outbox_published(rp_reward_store_t *base, const int64_t *seqs, size_t n, int64_t now, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    bool ok = false, in_txn = false;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    if (!rp_sqlite_exec(db, "BEGIN IMMEDIATE", err)) goto done;
    in_txn = true;
    if (sqlite3_prepare_v2(db,
                           "UPDATE outbox SET published_at = ?2, lease_owner = NULL, lease_until = NULL "
                           "WHERE seq = ?1 AND published_at IS NULL",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare published", err);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, seqs[i]);
        sqlite3_bind_int64(st, 2, now);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rp_sqlite_err(db, "mark published", err);
            goto done;
        }
        sqlite3_reset(st);
    }
    if (!rp_sqlite_exec(db, "COMMIT", err)) goto done;
    in_txn = false;
    ok = true;
done:
    sqlite3_finalize(st);
    if (in_txn) rp_sqlite_exec(db, "ROLLBACK", NULL);
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

/* ---- batches ---- */

static json_t *row_to_batch(sqlite3_stmt *st);

static bool s_batch_create(rp_reward_store_t *base, const rp_batch_input_t *in, bool *existed, char existing_id[25],
                           char existing_hash[65], rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    bool ok = false, in_txn = false;
    const char *key = in->idempotency_key && in->idempotency_key[0] ? in->idempotency_key : NULL;
    *existed = false;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    if (!rp_sqlite_exec(db, "BEGIN IMMEDIATE", err)) goto done;
    in_txn = true;
    if (key) {
        if (sqlite3_prepare_v2(db, "SELECT id, request_hash FROM batches WHERE created_by = ?1 AND idem_key = ?2", -1,
                               &st, NULL) != SQLITE_OK) {
            rp_sqlite_err(db, "prepare batch key", err);
            goto done;
        }
        rp_sqlite_bind_text(st, 1, in->created_by);
        rp_sqlite_bind_text(st, 2, key);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            snprintf(existing_id, 25, "%s", (const char *)sqlite3_column_text(st, 0));
            snprintf(existing_hash, 65, "%s", (const char *)sqlite3_column_text(st, 1));
            *existed = true;
            ok = true;
            goto done;
        }
        if (rc != SQLITE_DONE) {
            rp_sqlite_err(db, "find batch key", err);
            goto done;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO batches (id, event_id, reason, created_by, idem_key, request_hash, total, "
                           "duplicates, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare batch", err);
        goto done;
    }
    rp_sqlite_bind_text(st, 1, in->id);
    rp_sqlite_bind_text(st, 2, in->event_id);
    rp_sqlite_bind_text(st, 3, in->reason);
    rp_sqlite_bind_text(st, 4, in->created_by);
    rp_sqlite_bind_text(st, 5, key);
    rp_sqlite_bind_text(st, 6, in->request_hash);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)in->nusers);
    sqlite3_bind_int64(st, 8, in->duplicates);
    sqlite3_bind_int64(st, 9, in->created_at);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rp_sqlite_err(db, "insert batch", err);
        goto done;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO batch_items (batch_id, seq, user_id, status, due_at) "
                           "VALUES (?1, ?2, ?3, 'QUEUED', ?4)",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare batch items", err);
        goto done;
    }
    for (size_t i = 0; i < in->nusers; i++) {
        rp_sqlite_bind_text(st, 1, in->id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)i + 1);
        rp_sqlite_bind_text(st, 3, in->user_ids[i]);
        sqlite3_bind_int64(st, 4, in->created_at);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rp_sqlite_err(db, "insert batch item", err);
            goto done;
        }
        sqlite3_reset(st);
    }
    if (!rp_sqlite_exec(db, "COMMIT", err)) goto done;
    in_txn = false;
    ok = true;
done:
    sqlite3_finalize(st);
    if (in_txn) rp_sqlite_exec(db, "ROLLBACK", NULL);
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool batch_counts(sqlite3 *db, const char *id, json_t *doc, rp_err_t *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT status, failure_reason, count(*), max(settled_at) FROM batch_items "
                           "WHERE batch_id = ?1 GROUP BY status, failure_reason",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare batch counts", err);
        return false;
    }
    rp_sqlite_bind_text(st, 1, id);
    json_t *counts = json_pack("{s:i, s:i, s:i}", "QUEUED", 0, "SUCCESS", 0, "FAILED", 0), *failures = json_object();
    int64_t last = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *status = (const char *)sqlite3_column_text(st, 0);
        const char *reason = (const char *)sqlite3_column_text(st, 1);
        json_int_t n = sqlite3_column_int64(st, 2);
        json_object_set_new(counts, status, json_integer(json_integer_value(json_object_get(counts, status)) + n));
        if (reason) json_object_set_new(failures, reason, json_integer(n));
        if (sqlite3_column_int64(st, 3) > last) last = sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(counts);
        json_decref(failures);
        rp_sqlite_err(db, "batch counts", err);
        return false;
    }
    char at[RP_ISO_LEN];
    if (last) rp_time_iso(last, at);
    json_object_set_new(doc, "counts", counts);
    json_object_set_new(doc, "failures", failures);
    json_object_set_new(doc, "lastSettledAt", last ? json_string(at) : json_null());
    return true;
}

static bool s_batch_get(rp_reward_store_t *base, const char *id, bool counts, json_t **doc, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    bool ok = false;
    *doc = NULL;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    /* one read transaction: the batch and its counts from the same snapshot */
    if (!rp_sqlite_exec(db, "BEGIN", err)) goto done;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, event_id, reason, created_by, total, duplicates, created_at FROM batches "
                           "WHERE id = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare batch", err);
        goto done;
    }
    rp_sqlite_bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *doc = row_to_batch(st);
    else if (rc != SQLITE_DONE) {
        rp_sqlite_err(db, "read batch", err);
        goto done;
    }
    ok = !*doc || !counts || batch_counts(db, id, *doc, err);
done:
    sqlite3_finalize(st);
    rp_sqlite_exec(db, "COMMIT", NULL);
    if (!ok) {
        json_decref(*doc);
        *doc = NULL;
    }
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static json_t *row_to_batch(sqlite3_stmt *st) {
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id", rp_sqlite_col_string(st, 0), "eventId",
                     rp_sqlite_col_string(st, 1), "reason", rp_sqlite_col_string(st, 2), "createdBy",
                     rp_sqlite_col_string(st, 3), "total", rp_sqlite_col_int(st, 4), "duplicates",
                     rp_sqlite_col_int(st, 5), "createdAt", rp_sqlite_col_time(st, 6));
}

static bool s_batch_list(rp_reward_store_t *base, const char *event_id, const char *cursor, int limit, json_t **items,
                         bool *more, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    bool ok = false;
    *items = NULL;
    *more = false;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, event_id, reason, created_by, total, duplicates, created_at FROM batches "
                           "WHERE (?1 IS NULL OR event_id = ?1) AND (?2 IS NULL OR (created_at, id) < "
                           "(SELECT created_at, id FROM batches WHERE id = ?2)) "
                           "ORDER BY created_at DESC, id DESC LIMIT ?3",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare batch list", err);
    } else {
        rp_sqlite_bind_text(st, 1, event_id);
        rp_sqlite_bind_text(st, 2, cursor);
        sqlite3_bind_int(st, 3, limit + 1);
        ok = rp_sqlite_collect(db, st, limit, row_to_batch, items, more, err);
    }
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static json_t *row_to_item(sqlite3_stmt *st) {
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "seq", rp_sqlite_col_int(st, 0), "userId",
                     rp_sqlite_col_string(st, 1), "status", rp_sqlite_col_string(st, 2), "failureReason",
                     rp_sqlite_col_string(st, 3), "requestId", rp_sqlite_col_string(st, 4), "attempts",
                     rp_sqlite_col_int(st, 5), "settledAt", rp_sqlite_col_time(st, 6));
}

static bool s_batch_items(rp_reward_store_t *base, const char *batch_id, const char *status, int64_t after_seq,
                          int limit, json_t **items, bool *more, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    bool ok = false;
    *items = NULL;
    *more = false;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    if (sqlite3_prepare_v2(db,
                           "SELECT seq, user_id, status, failure_reason, request_id, attempts, settled_at "
                           "FROM batch_items WHERE batch_id = ?1 AND seq > ?2 AND (?3 IS NULL OR status = ?3) "
                           "ORDER BY seq LIMIT ?4",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare batch items", err);
    } else {
        rp_sqlite_bind_text(st, 1, batch_id);
        sqlite3_bind_int64(st, 2, after_seq);
        rp_sqlite_bind_text(st, 3, status);
        sqlite3_bind_int(st, 4, limit + 1);
        ok = rp_sqlite_collect(db, st, limit, row_to_item, items, more, err);
    }
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool s_batch_lease(rp_reward_store_t *base, int64_t now, int64_t redeliver_ms, int limit, int64_t max_in_flight,
                          json_t **items, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    bool ok = false, in_txn = false;
    int rc;
    *items = NULL;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    /* the common case, nothing due, without taking the write lock the grants need */
    if (sqlite3_prepare_v2(db, "SELECT EXISTS (SELECT 1 FROM batch_items WHERE status = 'QUEUED' AND due_at <= ?1)", -1,
                           &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare due", err);
        goto done;
    }
    sqlite3_bind_int64(st, 1, now);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rp_sqlite_err(db, "find due", err);
        goto done;
    }
    bool due = sqlite3_column_int(st, 0) != 0;
    sqlite3_finalize(st);
    st = NULL;
    if (!due) {
        *items = json_array();
        ok = true;
        goto done;
    }
    if (!rp_sqlite_exec(db, "BEGIN IMMEDIATE", err)) goto done;
    in_txn = true;
    /* in flight: sent and not yet due again */
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM batch_items WHERE status = 'QUEUED' AND due_at > ?1", -1, &st,
                           NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare in flight", err);
        goto done;
    }
    sqlite3_bind_int64(st, 1, now);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rp_sqlite_err(db, "count in flight", err);
        goto done;
    }
    int64_t in_flight = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    *items = json_array();
    if (in_flight >= max_in_flight) {
        ok = true;
        goto done;
    }
    if (limit > max_in_flight - in_flight) limit = (int)(max_in_flight - in_flight);
    if (sqlite3_prepare_v2(db,
                           "UPDATE batch_items SET due_at = ?1, attempts = attempts + 1 WHERE status = 'QUEUED' AND "
                           "(batch_id, seq) IN (SELECT batch_id, seq FROM batch_items WHERE status = 'QUEUED' AND "
                           "due_at <= ?2 ORDER BY due_at, batch_id, seq LIMIT ?3) RETURNING batch_id, seq",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare lease items", err);
        goto done;
    }
    sqlite3_bind_int64(st, 1, now + redeliver_ms);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int(st, 3, limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(
            *items, json_pack("{s:o, s:o}", "batchId", rp_sqlite_col_string(st, 0), "seq", rp_sqlite_col_int(st, 1)));
    if (rc != SQLITE_DONE) {
        rp_sqlite_err(db, "lease items", err);
        goto done;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (!rp_sqlite_exec(db, "COMMIT", err)) goto done;
    in_txn = false;
    ok = true;
done:
    sqlite3_finalize(st);
    if (in_txn) rp_sqlite_exec(db, "ROLLBACK", NULL);
    if (!ok) {
        json_decref(*items);
        *items = NULL;
    }
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool s_batch_items_get(rp_reward_store_t *base, const char *batch_id, const int64_t *seqs, size_t n,
                              json_t **items, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    bool ok = false;
    *items = NULL;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    if (sqlite3_prepare_v2(db, "SELECT seq, user_id, status FROM batch_items WHERE batch_id = ?1 AND seq = ?2", -1, &st,
                           NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare item", err);
        goto done;
    }
    *items = json_array();
    for (size_t i = 0; i < n; i++) {
        rp_sqlite_bind_text(st, 1, batch_id);
        sqlite3_bind_int64(st, 2, seqs[i]);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            json_array_append_new(*items,
                                  json_pack("{s:o, s:o, s:o}", "seq", rp_sqlite_col_int(st, 0), "userId",
                                            rp_sqlite_col_string(st, 1), "status", rp_sqlite_col_string(st, 2)));
        else if (rc != SQLITE_DONE) {
            rp_sqlite_err(db, "read item", err);
            goto done;
        }
        sqlite3_reset(st);
    }
    ok = true;
done:
    sqlite3_finalize(st);
    if (!ok) {
        json_decref(*items);
        *items = NULL;
    }
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool s_batch_item_fail(rp_reward_store_t *base, const char *batch_id, int64_t seq, const char *reason,
                              const char *request_id, int64_t now, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    bool ok = settle_item(db, batch_id, seq, "FAILED", reason, request_id, now, err) >= 0;
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static void s_free(rp_reward_store_t *base) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    if (!s) return;
    rp_sqlite_pool_free(s->pool);
    free(s);
}

static const rp_reward_store_ops_t sqlite_ops = {
    .ping = s_ping,
    .grant = s_grant,
    .record_failed = s_record_failed,
    .transition = s_transition,
    .get_request = s_get_request,
    .find_active = s_find_active,
    .list_requests = s_list_requests,
    .list_ledger = s_list_ledger,
    .list_outbox = s_list_outbox,
    .outbox_lease = s_outbox_lease,
    .outbox_published = s_outbox_published,
    .idem_get = s_idem_get,
    .idem_put = s_idem_put,
    .batch_create = s_batch_create,
    .batch_get = s_batch_get,
    .batch_list = s_batch_list,
    .batch_items = s_batch_items,
    .batch_lease = s_batch_lease,
    .batch_items_get = s_batch_items_get,
    .batch_item_fail = s_batch_item_fail,
    .free = s_free,
};

rp_reward_store_t *rp_reward_store_sqlite_open(const char *dir, int max_conns, rp_err_t *err) {
    char path[1024];
    if (snprintf(path, sizeof path, "%s/%s", dir, RP_EVENT_SQLITE_FILE) >= (int)sizeof path) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "SQLITE_DIR is too long");
        return NULL;
    }
    rp_sqlite_pool_t *pool = rp_sqlite_pool_new(path, rp_event_sqlite_migrations, max_conns, err);
    if (!pool) return NULL;
    sqlite_store_t *s = rp_calloc(1, sizeof *s);
    s->base.ops = &sqlite_ops;
    s->pool = pool;
    return &s->base;
}
