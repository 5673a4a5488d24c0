/* webhook_store_mongo.c - the webhook store (webhook_store.h) on MongoDB: collections
 * webhook_endpoints and webhook_deliveries, and the outbox's `hooked` mark (false on every
 * message the reward store appends; messages written before webhooks existed carry no mark and
 * are never fanned out). Writes that must hold together run in with_transaction; the lease is a
 * guarded update_many, as the outbox relay's. No rule lives here. Thread-safe: the pool is
 * shared, everything else is per call.
 *
 * Where webhook_store.h leaves room, this backend:
 * - keeps an endpoint's types as an array of their names, a delivery's attempt log as an array
 *   of the attempts' JSON;
 * - makes a fanned-out delivery with an upsert on (endpointId, webhookId) ($setOnInsert), since a
 *   duplicate key would end the whole transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"
#include "mem.h"
#include "mongo_util.h"
#include "reward_store_mongo.h"
#include "store_handle.h"
#include "timeutil.h"
#include "webhook_store.h"

#define ENDPOINTS "webhook_endpoints"
#define DELIVERIES "webhook_deliveries"
#define OUTBOX RP_REWARD_MONGO_OUTBOX

static rp_mongo_t *db_of(rp_webhook_store_t *s) {
    return rp_store_handle_backend(s);
}

static const rp_mongo_field_t endpoint_fields[] = {
    RP_MONGO_FIELD(rp_webhook_endpoint_t, id, "_id", STR),
    RP_MONGO_FIELD(rp_webhook_endpoint_t, url, "url", STR),
    RP_MONGO_FIELD(rp_webhook_endpoint_t, secret, "secret", STR),
    RP_MONGO_FIELD(rp_webhook_endpoint_t, created_by, "createdBy", OPT),
    RP_MONGO_FIELD(rp_webhook_endpoint_t, created_at, "createdAt", MS),
    RP_MONGO_FIELD(rp_webhook_endpoint_t, updated_at, "updatedAt", MS),
    RP_MONGO_FIELD(rp_webhook_endpoint_t, failing_since, "failingSince", MS),
    RP_MONGO_FIELD(rp_webhook_endpoint_t, disabled_at, "disabledAt", MS),
    RP_MONGO_FIELD(rp_webhook_endpoint_t, disabled_reason, "disabledReason", OPT),
};
/* What an update writes, with types and enabled. */
static const rp_mongo_field_t endpoint_update_fields[] = {
    RP_MONGO_FIELD(rp_webhook_endpoint_t, url, "url", STR),
    RP_MONGO_FIELD(rp_webhook_endpoint_t, updated_at, "updatedAt", MS),
    RP_MONGO_FIELD(rp_webhook_endpoint_t, disabled_at, "disabledAt", MS),
    RP_MONGO_FIELD(rp_webhook_endpoint_t, disabled_reason, "disabledReason", OPT),
};
static const rp_mongo_field_t delivery_fields[] = {
    RP_MONGO_FIELD(rp_webhook_delivery_t, id, "_id", STR),
    RP_MONGO_FIELD(rp_webhook_delivery_t, endpoint_id, "endpointId", STR),
    RP_MONGO_FIELD(rp_webhook_delivery_t, webhook_id, "webhookId", STR),
    RP_MONGO_FIELD(rp_webhook_delivery_t, type, "type", STR),
    RP_MONGO_FIELD(rp_webhook_delivery_t, attempts, "attempts", I64),
    RP_MONGO_FIELD(rp_webhook_delivery_t, round, "round", I64),
    RP_MONGO_FIELD(rp_webhook_delivery_t, next_at, "nextAt", MS),
    RP_MONGO_FIELD(rp_webhook_delivery_t, created_at, "createdAt", MS),
    RP_MONGO_FIELD(rp_webhook_delivery_t, settled_at, "settledAt", MS),
};

static void put_types(bson_t *b, unsigned mask) {
    bson_t arr;
    char kb[16];
    uint32_t k = 0;
    BSON_APPEND_ARRAY_BEGIN(b, "types", &arr);
    for (unsigned bit = 1; bit & RP_HOOK_ALL_TYPES; bit <<= 1)
        if (mask & bit) {
            const char *key = rp_mongo_array_key(k++, kb);
            BSON_APPEND_UTF8(&arr, key, rp_webhook_type_name(bit));
        }
    bson_append_array_end(b, &arr);
}

static void endpoint_from(const bson_t *d, void *out) {
    rp_webhook_endpoint_t *e = out;
    bson_iter_t it, sub;
    RP_MONGO_GET_FIELDS(d, e, endpoint_fields);
    e->enabled = rp_mongo_get_bool(d, "enabled");
    e->types = 0;
    if (bson_iter_init_find(&it, d, "types") && BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &sub))
        while (bson_iter_next(&sub))
            if (BSON_ITER_HOLDS_UTF8(&sub)) e->types |= rp_webhook_type_parse(bson_iter_utf8(&sub, NULL));
}

static void delivery_from(const bson_t *d, void *out) {
    rp_webhook_delivery_t *x = out;
    char status[16];
    RP_MONGO_GET_FIELDS(d, x, delivery_fields);
    rp_mongo_copy_str(d, "status", status, sizeof status);
    rp_delivery_status_parse(status, &x->status);
    x->body = rp_mongo_get_strdup(d, "body");
    x->log = rp_mongo_get_json(d, "log");
    if (!json_is_array(x->log)) {
        json_decref(x->log);
        x->log = json_array();
    }
}

static void release_delivery(void *d) {
    rp_webhook_delivery_clear(d);
}

static bson_t *endpoint_doc(const rp_webhook_endpoint_t *e) {
    bson_t *b = bson_new();
    RP_MONGO_PUT_FIELDS(b, e, endpoint_fields);
    BSON_APPEND_BOOL(b, "enabled", e->enabled);
    put_types(b, e->types);
    return b;
}

/* The fields a new delivery is stored with (PENDING, nothing attempted). */
static void put_new_delivery(bson_t *b, const rp_webhook_delivery_t *d) {
    RP_MONGO_PUT_FIELDS(b, d, delivery_fields);
    BSON_APPEND_UTF8(b, "body", d->body ? d->body : "");
    BSON_APPEND_UTF8(b, "status", "PENDING");
    bson_t arr;
    BSON_APPEND_ARRAY_BEGIN(b, "log", &arr);
    bson_append_array_end(b, &arr);
    BSON_APPEND_NULL(b, "leaseOwner");
    BSON_APPEND_NULL(b, "leaseUntil");
}

static bool m_ping(rp_webhook_store_t *s, rp_err_t *err) {
    return rp_mongo_ping(db_of(s), err);
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

static bool endpoint_body(rp_mongo_txn_t *tx, void *arg) {
    endpoint_write_t *w = arg;
    const rp_webhook_endpoint_t *e = w->e;
    if (w->found) *w->found = false;
    if (w->op == 0) {
        bson_t *doc = endpoint_doc(e);
        bool ok = rp_mongo_txn_insert(tx, ENDPOINTS, doc);
        bson_destroy(doc);
        if (!ok) return false;
    } else if (w->op == 1) {
        rp_webhook_endpoint_t cur;
        bool found = false;
        memset(&cur, 0, sizeof cur);
        if (!rp_mongo_txn_fetch(tx, ENDPOINTS, BCON_NEW("_id", BCON_UTF8(e->id)), endpoint_from, &cur, &found))
            return false;
        if (!found || (w->expect && cur.updated_at != w->expect)) return rp_mongo_txn_rollback(tx);
        bson_t *set = bson_new(), *u = bson_new();
        RP_MONGO_PUT_FIELDS(set, e, endpoint_update_fields);
        BSON_APPEND_BOOL(set, "enabled", e->enabled);
        put_types(set, e->types);
        /* enabling or disabling starts the failure clock again */
        rp_mongo_append_ms(set, "failingSince", cur.enabled == e->enabled ? cur.failing_since : 0);
        BSON_APPEND_DOCUMENT(u, "$set", set);
        bson_destroy(set);
        bson_t *filter = BCON_NEW("_id", BCON_UTF8(e->id), "updatedAt", BCON_DATE_TIME(cur.updated_at));
        if (!rp_mongo_txn_update_take(tx, ENDPOINTS, filter, u, 0, w->found)) return false;
        if (!*w->found) return rp_mongo_txn_rollback(tx);
    } else {
        int64_t deleted = 0;
        bson_t *filter = BCON_NEW("_id", BCON_UTF8(w->id));
        bool ok = rp_mongo_txn_delete(tx, ENDPOINTS, filter, false, &deleted);
        bson_destroy(filter);
        if (!ok) return false;
        if (!deleted) return rp_mongo_txn_rollback(tx);
        *w->found = true;
        filter = BCON_NEW("endpointId", BCON_UTF8(w->id));
        ok = rp_mongo_txn_delete(tx, DELIVERIES, filter, true, NULL);
        bson_destroy(filter);
        if (!ok) return false;
    }
    return !w->a || rp_mongo_audit_append(tx, "event", w->a);
}

static bool m_endpoint_insert(rp_webhook_store_t *s, const rp_webhook_endpoint_t *e, const rp_audit_entry_t *a,
                              rp_err_t *err) {
    endpoint_write_t w = {.e = e, .a = a, .op = 0};
    return rp_mongo_transact(db_of(s), "insert webhook endpoint", endpoint_body, &w, err);
}

static bool m_endpoint_get(rp_webhook_store_t *s, const char *id, rp_webhook_endpoint_t *out, bool *found,
                           rp_err_t *err) {
    memset(out, 0, sizeof *out);
    *found = false;
    return rp_mongo_fetch(db_of(s), ENDPOINTS, BCON_NEW("_id", BCON_UTF8(id)), endpoint_from, out, found, err);
}

static bool m_endpoint_list(rp_webhook_store_t *s, const char *cursor, int limit, rp_webhook_endpoint_t **items,
                            size_t *n, bool *more, rp_err_t *err) {
    bson_t *filter = cursor ? BCON_NEW("_id", "{", "$gt", BCON_UTF8(cursor), "}") : bson_new();
    bson_t *sort = BCON_NEW("_id", BCON_INT32(1));
    bool ok = rp_mongo_find_page_into(db_of(s), ENDPOINTS, filter, sort, limit, endpoint_from, NULL, sizeof **items,
                                      (void **)items, n, more, err);
    bson_destroy(filter);
    bson_destroy(sort);
    return ok;
}

static bool m_endpoint_update(rp_webhook_store_t *s, const rp_webhook_endpoint_t *e, int64_t expect_updated_at,
                              const rp_audit_entry_t *a, bool *found, rp_err_t *err) {
    endpoint_write_t w = {.e = e, .expect = expect_updated_at, .a = a, .found = found, .op = 1};
    *found = false;
    return rp_mongo_transact(db_of(s), "update webhook endpoint", endpoint_body, &w, err);
}

static bool m_endpoint_delete(rp_webhook_store_t *s, const char *id, const rp_audit_entry_t *a, bool *found,
                              rp_err_t *err) {
    endpoint_write_t w = {.id = id, .a = a, .found = found, .op = 2};
    *found = false;
    return rp_mongo_transact(db_of(s), "delete webhook endpoint", endpoint_body, &w, err);
}

/* ---- the fan-out ---- */

static void outbox_from(const bson_t *d, void *out) {
    rp_outbox_message_t *m = out;
    m->seq = rp_mongo_get_i64(d, "_id");
    rp_mongo_copy_str(d, "messageId", m->message_id, sizeof m->message_id);
    rp_mongo_copy_str(d, "routingKey", m->routing_key, sizeof m->routing_key);
    rp_mongo_copy_str(d, "requestId", m->request_id, sizeof m->request_id);
    m->created_at = rp_mongo_get_ms(d, "createdAt");
    m->payload = rp_mongo_get_opaque(d, "payload");
}

typedef struct fanout_run {
    int limit;
    rp_webhook_plan_fn plan;
    void *ctx;
    size_t *messages, *made;
} fanout_run_t;

static bool fanout_body(rp_mongo_txn_t *tx, void *arg) {
    fanout_run_t *run = arg;
    rp_mongo_rows_t msgs = {.fill = outbox_from, .elem_size = sizeof(rp_outbox_message_t), .limit = run->limit};
    rp_mongo_rows_t eps = {.fill = endpoint_from, .elem_size = sizeof(rp_webhook_endpoint_t), .limit = -1};
    rp_webhook_delivery_t *out = NULL;
    bool ok = false;
    *run->messages = *run->made = 0; /* a rerun starts over */
    bson_t *filter = BCON_NEW("hooked", BCON_BOOL(false));
    bson_t *opts = BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}", "limit", BCON_INT64(run->limit));
    bson_t *efilter = BCON_NEW("enabled", BCON_BOOL(true));
    bson_t *eopts = BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}");
    if (!rp_mongo_txn_find(tx, OUTBOX, filter, opts, rp_mongo_rows_add, &msgs)) goto done;
    if (msgs.n == 0) {
        ok = rp_mongo_txn_rollback(tx);
        goto done;
    }
    if (!rp_mongo_txn_find(tx, ENDPOINTS, efilter, eopts, rp_mongo_rows_add, &eps)) goto done;
    out = rp_calloc(eps.n ? eps.n : 1, sizeof *out);
    for (size_t i = 0; i < msgs.n; i++) {
        const rp_outbox_message_t *m = &((rp_outbox_message_t *)msgs.items)[i];
        size_t nd = 0;
        bool step = true;
        run->plan(run->ctx, m, eps.items, eps.n, out, &nd);
        for (size_t k = 0; k < nd; k++) {
            if (step) {
                bson_t *key =
                    BCON_NEW("endpointId", BCON_UTF8(out[k].endpoint_id), "webhookId", BCON_UTF8(out[k].webhook_id));
                bson_t *u = bson_new(), ins;
                BSON_APPEND_DOCUMENT_BEGIN(u, "$setOnInsert", &ins);
                put_new_delivery(&ins, &out[k]);
                bson_append_document_end(u, &ins);
                rp_mongo_write_t res = {0};
                step = rp_mongo_txn_update(tx, DELIVERIES, key, u, RP_MONGO_UPSERT, &res);
                if (step && res.upserted) (*run->made)++;
                bson_destroy(key);
                bson_destroy(u);
            }
            rp_webhook_delivery_clear(&out[k]);
        }
        if (!step ||
            !rp_mongo_txn_update_take(tx, OUTBOX, BCON_NEW("_id", BCON_INT64(m->seq), "hooked", BCON_BOOL(false)),
                                      BCON_NEW("$set", "{", "hooked", BCON_BOOL(true), "}"), 0, NULL))
            goto done;
        (*run->messages)++;
    }
    ok = true;
done:
    for (size_t i = 0; i < msgs.n; i++)
        rp_outbox_message_clear(&((rp_outbox_message_t *)msgs.items)[i]);
    free(msgs.items);
    free(eps.items);
    free(out);
    bson_destroy(filter);
    bson_destroy(opts);
    bson_destroy(efilter);
    bson_destroy(eopts);
    return ok;
}

static bool m_fanout(rp_webhook_store_t *s, int limit, rp_webhook_plan_fn plan, void *ctx, size_t *messages,
                     size_t *made, rp_err_t *err) {
    fanout_run_t run = {limit, plan, ctx, messages, made};
    bson_t *filter = BCON_NEW("hooked", BCON_BOOL(false)),
           *opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}");
    bson_t *doc = NULL;
    *messages = *made = 0;
    /* an idle relay polls with a plain read, not a transaction */
    bool ok = rp_mongo_find_one(db_of(s), OUTBOX, filter, opts, &doc, err);
    bson_destroy(filter);
    bson_destroy(opts);
    if (!ok || !doc) return ok;
    bson_destroy(doc);
    return rp_mongo_transact(db_of(s), "fan out webhooks", fanout_body, &run, err);
}

/* ---- the notice relay ---- */

#define EVENTS "events"
#define BATCHES RP_REWARD_MONGO_BATCHES
#define ITEMS RP_REWARD_MONGO_BATCH_ITEMS
#define NOTICES "webhookNotices" /* on an event or batch: the webhook types made about it */

typedef struct notice_run {
    int64_t now;
    int limit;
    rp_webhook_plan_fn plan;
    void *ctx;
    size_t *things, *made;
} notice_run_t;

typedef struct found_things {
    rp_mongo_txn_t *tx;
    const char *type;
    rp_outbox_message_t *items;
    size_t n, cap;
    bool failed;
} found_things_t;

static rp_outbox_message_t *add_thing(found_things_t *f) {
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->items = rp_realloc(f->items, f->cap * sizeof *f->items);
    }
    rp_outbox_message_t *m = &f->items[f->n++];
    memset(m, 0, sizeof *m);
    return m;
}

static bool event_thing(const bson_t *d, void *ctx) {
    found_things_t *f = ctx;
    rp_outbox_message_t *m = add_thing(f);
    bool canceled = strcmp(f->type, "event.canceled") == 0;
    int64_t end = rp_mongo_get_ms(d, "endDate"), cancel = rp_mongo_get_ms(d, "canceledAt");
    rp_mongo_copy_str(d, "_id", m->request_id, sizeof m->request_id);
    snprintf(m->message_id, sizeof m->message_id, "%s:%s", m->request_id, canceled ? "canceled" : "ended");
    snprintf(m->routing_key, sizeof m->routing_key, "%s", f->type);
    m->created_at = canceled ? cancel : end;
    m->payload = json_pack("{s:s, s:o, s:o, s:o}", "eventId", m->request_id, "title", rp_mongo_get_json(d, "title"),
                           "endDate", rp_json_time_or_null(end), "canceledAt", rp_json_time_or_null(cancel));
    return true;
}

/* A batch is complete when none of its items is QUEUED: counted inside the transaction. */
static bool batch_thing(const bson_t *d, void *ctx) {
    found_things_t *f = ctx;
    char id[RP_OID_LEN];
    int64_t queued = 0, ok_n = 0, failed_n = 0;
    rp_mongo_copy_str(d, "_id", id, sizeof id);
    bson_t *q = BCON_NEW("batchId", BCON_UTF8(id), "status", BCON_UTF8("QUEUED"));
    bson_t *one = BCON_NEW("limit", BCON_INT64(1));
    bool ok = rp_mongo_txn_count(f->tx, ITEMS, q, one, &queued);
    bson_destroy(q);
    bson_destroy(one);
    if (!ok) {
        f->failed = true;
        return false;
    }
    if (queued) return true;
    q = BCON_NEW("batchId", BCON_UTF8(id), "status", BCON_UTF8("SUCCESS"));
    ok = rp_mongo_txn_count(f->tx, ITEMS, q, NULL, &ok_n);
    bson_destroy(q);
    q = BCON_NEW("batchId", BCON_UTF8(id), "status", BCON_UTF8("FAILED"));
    ok = ok && rp_mongo_txn_count(f->tx, ITEMS, q, NULL, &failed_n);
    bson_destroy(q);
    if (!ok) {
        f->failed = true;
        return false;
    }
    rp_outbox_message_t *m = add_thing(f);
    memcpy(m->request_id, id, sizeof m->request_id);
    snprintf(m->message_id, sizeof m->message_id, "%s:completed", id);
    snprintf(m->routing_key, sizeof m->routing_key, "batch.completed");
    m->created_at = rp_mongo_get_ms(d, "createdAt");
    m->payload =
        json_pack("{s:s, s:o, s:I, s:o, s:{s:I, s:I}}", "batchId", id, "eventId", rp_mongo_get_json(d, "eventId"),
                  "total", (json_int_t)rp_mongo_get_i64(d, "total"), "createdBy", rp_mongo_get_json(d, "createdBy"),
                  "counts", "SUCCESS", (json_int_t)ok_n, "FAILED", (json_int_t)failed_n);
    return true;
}

static bool notice_body(rp_mongo_txn_t *tx, void *arg) {
    notice_run_t *run = arg;
    found_things_t f[3] = {{tx, "event.canceled", NULL, 0, 0, false},
                           {tx, "event.ended", NULL, 0, 0, false},
                           {tx, "batch.completed", NULL, 0, 0, false}};
    rp_mongo_rows_t eps = {.fill = endpoint_from, .elem_size = sizeof(rp_webhook_endpoint_t), .limit = -1};
    rp_webhook_delivery_t *out = NULL;
    const char *colls[3] = {EVENTS, EVENTS, BATCHES};
    bool ok = false;
    *run->things = *run->made = 0; /* a rerun starts over */
    bson_t *filters[3] = {BCON_NEW("canceledAt", "{", "$ne", BCON_NULL, "$lte", BCON_DATE_TIME(run->now), "}", NOTICES,
                                   "{", "$ne", BCON_UTF8("event.canceled"), "}"),
                          BCON_NEW("canceledAt", BCON_NULL, "endDate", "{", "$lte", BCON_DATE_TIME(run->now), "}",
                                   NOTICES, "{", "$ne", BCON_UTF8("event.ended"), "}"),
                          BCON_NEW("state", "{", "$ne", BCON_UTF8("CREATING"), "}", NOTICES, "{", "$ne",
                                   BCON_UTF8("batch.completed"), "}")};
    bson_t *opts = BCON_NEW("limit", BCON_INT64(run->limit));
    bson_t *efilter = BCON_NEW("enabled", BCON_BOOL(true));
    bson_t *eopts = BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}");
    size_t total = 0;
    for (int k = 0; k < 3; k++) {
        if (!rp_mongo_txn_find(tx, colls[k], filters[k], opts, k < 2 ? event_thing : batch_thing, &f[k]) || f[k].failed)
            goto done;
        total += f[k].n;
    }
    if (total == 0) {
        ok = rp_mongo_txn_rollback(tx);
        goto done;
    }
    if (!rp_mongo_txn_find(tx, ENDPOINTS, efilter, eopts, rp_mongo_rows_add, &eps)) goto done;
    out = rp_calloc(eps.n ? eps.n : 1, sizeof *out);
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < f[k].n; i++) {
            const rp_outbox_message_t *m = &f[k].items[i];
            size_t nd = 0;
            bool step = true;
            run->plan(run->ctx, m, eps.items, eps.n, out, &nd);
            for (size_t d = 0; d < nd; d++) {
                if (step) {
                    bson_t *key = BCON_NEW("endpointId", BCON_UTF8(out[d].endpoint_id), "webhookId",
                                           BCON_UTF8(out[d].webhook_id));
                    bson_t *u = bson_new(), ins;
                    rp_mongo_write_t res = {0};
                    BSON_APPEND_DOCUMENT_BEGIN(u, "$setOnInsert", &ins);
                    put_new_delivery(&ins, &out[d]);
                    bson_append_document_end(u, &ins);
                    step = rp_mongo_txn_update(tx, DELIVERIES, key, u, RP_MONGO_UPSERT, &res);
                    if (step && res.upserted) (*run->made)++;
                    bson_destroy(key);
                    bson_destroy(u);
                }
                rp_webhook_delivery_clear(&out[d]);
            }
            if (!step ||
                !rp_mongo_txn_update_take(
                    tx, colls[k],
                    BCON_NEW("_id", BCON_UTF8(m->request_id), NOTICES, "{", "$ne", BCON_UTF8(m->routing_key), "}"),
                    BCON_NEW("$addToSet", "{", NOTICES, BCON_UTF8(m->routing_key), "}"), 0, NULL))
                goto done;
            (*run->things)++;
        }
    ok = true;
done:
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < f[k].n; i++)
            rp_outbox_message_clear(&f[k].items[i]);
        free(f[k].items);
        bson_destroy(filters[k]);
    }
    free(eps.items);
    free(out);
    bson_destroy(opts);
    bson_destroy(efilter);
    bson_destroy(eopts);
    return ok;
}

static bool m_notice(rp_webhook_store_t *s, int64_t now, int limit, rp_webhook_plan_fn plan, void *ctx, size_t *things,
                     size_t *made, rp_err_t *err) {
    notice_run_t run = {now, limit, plan, ctx, things, made};
    *things = *made = 0;
    return rp_mongo_transact(db_of(s), "notice webhooks", notice_body, &run, err);
}

/* ---- deliveries ---- */

static bool m_delivery_insert(rp_webhook_store_t *s, const rp_webhook_delivery_t *d, bool *duplicate, rp_err_t *err) {
    bson_t *doc = bson_new();
    bson_error_t berr;
    rp_err_t e;
    put_new_delivery(doc, d);
    rp_err_clear(&e);
    bool ok = rp_mongo_insert(db_of(s), DELIVERIES, doc, &berr, &e);
    bson_destroy(doc);
    *duplicate = !ok && rp_mongo_is_duplicate(&berr);
    if (!ok && !*duplicate && err) *err = e;
    return ok || *duplicate;
}

/* {status: PENDING, nextAt: {$lte: now}, $or: [lease free, expired, owner's]} and, with ids,
 * {_id: {$in: ids}}. */
static bson_t *leasable(const char *owner, int64_t now, const rp_mongo_rows_t *ids) {
    bson_t *b = BCON_NEW("status", BCON_UTF8("PENDING"), "nextAt", "{", "$lte", BCON_DATE_TIME(now), "}", "$or", "[",
                         "{", "leaseUntil", BCON_NULL, "}", "{", "leaseUntil", "{", "$lt", BCON_DATE_TIME(now), "}",
                         "}", "{", "leaseOwner", BCON_UTF8(owner), "}", "]");
    if (ids) {
        bson_t in, arr;
        char kb[16];
        BSON_APPEND_DOCUMENT_BEGIN(b, "_id", &in);
        BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
        for (size_t i = 0; i < ids->n; i++) {
            const char *key = rp_mongo_array_key((uint32_t)i, kb);
            BSON_APPEND_UTF8(&arr, key, ((const char(*)[RP_OID_LEN])ids->items)[i]);
        }
        bson_append_array_end(&in, &arr);
        bson_append_document_end(b, &in);
    }
    return b;
}

static void id_from(const bson_t *d, void *out) {
    rp_mongo_copy_str(d, "_id", out, RP_OID_LEN);
}

/* Without a transaction, as the outbox relay: the guarded update_many leases each delivery
 * atomically, and senders racing for one each get only what their own guard matched. */
static bool m_delivery_lease(rp_webhook_store_t *s, const char *owner, int64_t now, int64_t until, int limit,
                             rp_webhook_delivery_t **items, size_t *n, rp_err_t *err) {
    rp_mongo_t *m = db_of(s);
    rp_mongo_rows_t cand = {.fill = id_from, .elem_size = RP_OID_LEN, .limit = -1};
    bool more = false;
    *items = NULL;
    *n = 0;
    bson_t *filter = leasable(owner, now, NULL), *guard = NULL, *mine = NULL, *sort = NULL;
    bson_t *opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}", "sort", "{", "nextAt", BCON_INT32(1), "_id",
                            BCON_INT32(1), "}", "limit", BCON_INT64(limit));
    bson_t *lease = BCON_NEW("$set", "{", "leaseOwner", BCON_UTF8(owner), "leaseUntil", BCON_DATE_TIME(until), "}");
    bool ok = rp_mongo_find(m, DELIVERIES, filter, opts, rp_mongo_rows_add, &cand, err);
    if (ok && cand.n > 0) {
        guard = leasable(owner, now, &cand);
        mine = BCON_NEW("status", BCON_UTF8("PENDING"), "leaseOwner", BCON_UTF8(owner), "leaseUntil",
                        BCON_DATE_TIME(until));
        sort = BCON_NEW("nextAt", BCON_INT32(1), "_id", BCON_INT32(1));
        ok = rp_mongo_update(m, DELIVERIES, guard, lease, RP_MONGO_MANY, NULL, err) &&
             rp_mongo_find_page_into(m, DELIVERIES, mine, sort, limit, delivery_from, release_delivery, sizeof **items,
                                     (void **)items, n, &more, err);
    }
    free(cand.items);
    bson_destroy(filter);
    bson_destroy(opts);
    bson_destroy(lease);
    bson_destroy(guard);
    bson_destroy(mine);
    bson_destroy(sort);
    return ok;
}

typedef struct record_run {
    const char *id, *owner;
    const rp_webhook_attempt_t *a;
    const rp_webhook_outcome_t *o;
    bool *applied;
} record_run_t;

static bool record_body(rp_mongo_txn_t *tx, void *arg) {
    record_run_t *r = arg;
    bson_t *doc = NULL;
    *r->applied = false;
    bson_t *u = bson_new(), set, inc;
    BSON_APPEND_DOCUMENT_BEGIN(u, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", rp_delivery_status_name(r->o->status));
    BSON_APPEND_INT64(&set, "round", r->o->round);
    rp_mongo_append_ms(&set, "nextAt", r->o->next_at);
    rp_mongo_append_ms(&set, "settledAt", r->o->settled_at);
    BSON_APPEND_NULL(&set, "leaseOwner");
    BSON_APPEND_NULL(&set, "leaseUntil");
    bson_append_document_end(u, &set);
    BSON_APPEND_DOCUMENT_BEGIN(u, "$inc", &inc);
    BSON_APPEND_INT64(&inc, "attempts", r->a ? 1 : 0);
    bson_append_document_end(u, &inc);
    if (r->a) {
        json_t *entry = rp_webhook_attempt_to_json(r->a);
        bson_t push, each, arr;
        BSON_APPEND_DOCUMENT_BEGIN(u, "$push", &push);
        BSON_APPEND_DOCUMENT_BEGIN(&push, "log", &each);
        BSON_APPEND_ARRAY_BEGIN(&each, "$each", &arr);
        rp_mongo_append_json(&arr, "0", entry);
        bson_append_array_end(&each, &arr);
        BSON_APPEND_INT32(&each, "$slice", -RP_WEBHOOK_MAX_ATTEMPTS);
        bson_append_document_end(&push, &each);
        bson_append_document_end(u, &push);
        json_decref(entry);
    }
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(r->id), "leaseOwner", BCON_UTF8(r->owner));
    if (!rp_mongo_txn_update_take(tx, DELIVERIES, filter, u, 0, r->applied)) return false;
    if (!*r->applied) return rp_mongo_txn_rollback(tx);
    if (!rp_mongo_txn_find_one_take(tx, DELIVERIES, BCON_NEW("_id", BCON_UTF8(r->id)),
                                    BCON_NEW("projection", "{", "endpointId", BCON_INT32(1), "}"), &doc))
        return false;
    char endpoint[RP_OID_LEN] = "";
    if (doc) rp_mongo_copy_str(doc, "endpointId", endpoint, sizeof endpoint);
    bson_destroy(doc);
    /* a success clears failingSince; a failure sets it unless it is set already */
    bson_t *ef = r->o->failing_since ? BCON_NEW("_id", BCON_UTF8(endpoint), "failingSince", BCON_NULL)
                                     : BCON_NEW("_id", BCON_UTF8(endpoint));
    bson_t *eu = bson_new(), eset;
    BSON_APPEND_DOCUMENT_BEGIN(eu, "$set", &eset);
    rp_mongo_append_ms(&eset, "failingSince", r->o->failing_since);
    bson_append_document_end(eu, &eset);
    return rp_mongo_txn_update_take(tx, ENDPOINTS, ef, eu, 0, NULL);
}

static bool m_delivery_record(rp_webhook_store_t *s, const char *id, const char *owner, const rp_webhook_attempt_t *a,
                              const rp_webhook_outcome_t *o, bool *applied, rp_err_t *err) {
    record_run_t r = {id, owner, a, o, applied};
    *applied = false;
    return rp_mongo_transact(db_of(s), "record webhook attempt", record_body, &r, err);
}

static bool m_delivery_get(rp_webhook_store_t *s, const char *endpoint_id, const char *id, rp_webhook_delivery_t *out,
                           bool *found, rp_err_t *err) {
    memset(out, 0, sizeof *out);
    *found = false;
    return rp_mongo_fetch(db_of(s), DELIVERIES, BCON_NEW("_id", BCON_UTF8(id), "endpointId", BCON_UTF8(endpoint_id)),
                          delivery_from, out, found, err);
}

static bool m_delivery_list(rp_webhook_store_t *s, const char *endpoint_id, int status, const char *cursor, int limit,
                            rp_webhook_delivery_t **items, size_t *n, bool *more, rp_err_t *err) {
    bson_t *filter = BCON_NEW("endpointId", BCON_UTF8(endpoint_id));
    if (status >= 0) BSON_APPEND_UTF8(filter, "status", rp_delivery_status_name((rp_delivery_status_t)status));
    if (cursor) {
        bson_t lt;
        BSON_APPEND_DOCUMENT_BEGIN(filter, "_id", &lt);
        BSON_APPEND_UTF8(&lt, "$lt", cursor);
        bson_append_document_end(filter, &lt);
    }
    bson_t *sort = BCON_NEW("_id", BCON_INT32(-1));
    bool ok = rp_mongo_find_page_into(db_of(s), DELIVERIES, filter, sort, limit, delivery_from, release_delivery,
                                      sizeof **items, (void **)items, n, more, err);
    bson_destroy(filter);
    bson_destroy(sort);
    return ok;
}

static bool m_delivery_redeliver(rp_webhook_store_t *s, const char *endpoint_id, const char *id, int64_t now,
                                 bool *found, rp_err_t *err) {
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id), "endpointId", BCON_UTF8(endpoint_id));
    bson_t *u =
        BCON_NEW("$set", "{", "status", BCON_UTF8("PENDING"), "round", BCON_INT64(0), "nextAt", BCON_DATE_TIME(now),
                 "settledAt", BCON_NULL, "leaseOwner", BCON_NULL, "leaseUntil", BCON_NULL, "}");
    rp_mongo_write_t res = {0};
    bool ok = rp_mongo_update(db_of(s), DELIVERIES, filter, u, 0, &res, err);
    *found = ok && res.matched > 0;
    bson_destroy(filter);
    bson_destroy(u);
    return ok;
}

static bool stats_row(const bson_t *doc, void *ctx) {
    rp_webhook_stats_t *o = ctx;
    bson_iter_t it;
    bson_t id;
    char type[RP_WEBHOOK_TYPE_LEN] = "", status[16] = "";
    rp_delivery_status_t st;
    if (bson_iter_init_find(&it, doc, "_id") && rp_mongo_iter_doc(&it, &id)) {
        rp_mongo_copy_str(&id, "type", type, sizeof type);
        rp_mongo_copy_str(&id, "status", status, sizeof status);
    }
    unsigned bit = rp_webhook_type_parse(type);
    int i = 0;
    if (!bit || !rp_delivery_status_parse(status, &st)) return true;
    while (!(bit & 1u)) {
        bit >>= 1;
        i++;
    }
    int64_t n = rp_mongo_get_i64(doc, "n");
    o->count[i][st] += n;
    if (st == RP_DELIVERY_PENDING) {
        int64_t oldest = rp_mongo_get_ms(doc, "oldest");
        o->pending += n;
        if (oldest && (!o->oldest_pending_created_at || oldest < o->oldest_pending_created_at))
            o->oldest_pending_created_at = oldest;
    }
    return true;
}

static bool m_delivery_stats(rp_webhook_store_t *s, rp_webhook_stats_t *out, rp_err_t *err) {
    memset(out, 0, sizeof *out);
    bson_t *pipeline = BCON_NEW("pipeline", "[", "{", "$group", "{", "_id", "{", "type", BCON_UTF8("$type"), "status",
                                BCON_UTF8("$status"), "}", "n", "{", "$sum", BCON_INT32(1), "}", "oldest", "{", "$min",
                                BCON_UTF8("$createdAt"), "}", "}", "}", "]");
    bool ok = rp_mongo_aggregate(db_of(s), DELIVERIES, pipeline, stats_row, out, err);
    bson_destroy(pipeline);
    return ok;
}

static void m_free(rp_webhook_store_t *s) {
    rp_store_handle_free(s);
}

static const rp_webhook_store_ops_t mongo_ops = {
    .ping = m_ping,
    .endpoint_insert = m_endpoint_insert,
    .endpoint_get = m_endpoint_get,
    .endpoint_list = m_endpoint_list,
    .endpoint_update = m_endpoint_update,
    .endpoint_delete = m_endpoint_delete,
    .fanout = m_fanout,
    .notice = m_notice,
    .delivery_insert = m_delivery_insert,
    .delivery_lease = m_delivery_lease,
    .delivery_record = m_delivery_record,
    .delivery_get = m_delivery_get,
    .delivery_list = m_delivery_list,
    .delivery_redeliver = m_delivery_redeliver,
    .delivery_stats = m_delivery_stats,
    .free = m_free,
};

static const rp_mongo_index_t indexes[] = {
    {DELIVERIES, "webhook_deliveries_key", NULL, true, {{"endpointId", 1}, {"webhookId", 1}}},
    {DELIVERIES, "webhook_deliveries_due", NULL, false, {{"status", 1}, {"nextAt", 1}, {"_id", 1}}},
    {DELIVERIES, "webhook_deliveries_endpoint", NULL, false, {{"endpointId", 1}, {"status", 1}, {"_id", -1}}},
    {OUTBOX, "outbox_unhooked", NULL, false, {{"hooked", 1}, {"_id", 1}}},
};

/* The endpoints collection exists before the first transaction writes it (older servers). */
static bool set_up(rp_mongo_t *m, rp_err_t *err) {
    return rp_mongo_create_collection(m, ENDPOINTS, err);
}

static const rp_mongo_setup_t setup = RP_MONGO_SETUP("reward-webhooks", indexes, set_up);

rp_webhook_store_t *rp_webhook_store_mongo_open(const char *uri, const char *db_name, rp_err_t *err) {
    return rp_mongo_store_open(uri, db_name, &setup, &(rp_webhook_store_t){&mongo_ops}, sizeof(rp_webhook_store_t),
                               err);
}
