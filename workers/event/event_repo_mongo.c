/* event_repo_mongo.c - the event repository on MongoDB (see event_repo_mongo.h): a client pool,
 * one transaction per write, the same semantics as event_repo_sqlite.c. It stores and fetches
 * only: statuses arrive as time bounds, aggregates as the values to keep. Thread-safe. */
#include "event_repo_mongo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "ids.h"
#include "mem.h"
#include "mongo_util.h"
#include "store_handle.h"
#include "timeutil.h"

#define DEFS RP_EVENT_MONGO_DEFINITIONS
#define EVENTS RP_EVENT_MONGO_EVENTS
#define REQUESTS RP_EVENT_MONGO_REQUESTS
#define PROGRESS RP_EVENT_MONGO_PROGRESS
#define FACTS RP_EVENT_MONGO_FACTS
#define AUDIT_LOG "event" /* this store's entries in the shared audit_logs collection */

static rp_mongo_t *db_of(rp_event_repo_t *base) {
    return rp_store_handle_backend(base);
}

static void r_free(rp_event_repo_t *base) {
    rp_store_handle_free(base);
}

/* ---- helpers ---- */

static const char *doc_str(const json_t *doc, const char *key) {
    return json_string_value(json_object_get(doc, key));
}

/* Appends a JSON integer as int64, anything else as null. */
static void append_int_or_null(bson_t *b, const char *key, const json_t *v) {
    if (json_is_integer(v))
        BSON_APPEND_INT64(b, key, json_integer_value(v));
    else
        BSON_APPEND_NULL(b, key);
}

/* Filter clauses are collected in a BSON array and ANDed; MongoDB refuses an empty $and. */
typedef struct clauses {
    bson_t arr;
    uint32_t n;
} clauses_t;

static void clause_add(clauses_t *c, const bson_t *clause) {
    char kb[16];
    const char *key = rp_mongo_array_key(c->n++, kb);
    BSON_APPEND_DOCUMENT(&c->arr, key, clause);
}

/* One page of coll newest first by (createdAt, _id) matching every clause of c (consumed), after
 * cursor (the id of the previous page's last document; unknown: an empty page). Lists are newest
 * first by time, the id only breaking ties and naming the cursor document, as in SQLite: ids
 * made by different worker processes in the same second do not sort by time. */
static bool newest_page(rp_mongo_t *m, const char *coll, clauses_t *c, const char *cursor, int limit,
                        json_t *(*row)(const bson_t *), json_t **items, bool *more, rp_err_t *err) {
    int rc = cursor ? rp_mongo_cursor_clause(m, coll, cursor, "createdAt", &c->arr, &c->n, err) : 1;
    bson_t *filter = bson_new();
    if (c->n) BSON_APPEND_ARRAY(filter, "$and", &c->arr);
    bson_destroy(&c->arr);
    *items = rc == 0 ? json_array() : NULL;
    *more = false;
    if (rc > 0) {
        bson_t *sort = BCON_NEW("createdAt", BCON_INT32(-1), "_id", BCON_INT32(-1));
        rc = rp_mongo_find_page(m, coll, filter, sort, limit, row, items, more, err) ? 1 : -1;
        bson_destroy(sort);
    }
    bson_destroy(filter);
    return rc >= 0;
}

/* ---- reward definitions ---- */

static json_t *def_row(const bson_t *d) {
    return rp_mongo_doc_json(d, &rp_event_def_json);
}

typedef struct doc_arg {
    const json_t *doc;
    const rp_event_audit_t *audit;
    bool replace_rewards, only_if_no_slots;
    bool claimed; /* result of the last attempt */
} doc_arg_t;

/* Upsert: a new definition gets every field, an existing one its editable fields and updatedAt
 * (createdBy, createdAt and referenced stay), as the SQLite ON CONFLICT clause does. */
static bool def_txn(rp_mongo_txn_t *tx, void *p) {
    doc_arg_t *a = p;
    const json_t *d = a->doc;
    const char *desc = doc_str(d, "description");
    bson_t update = BSON_INITIALIZER, set, ins;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    rp_mongo_append_str(&set, "name", doc_str(d, "name"));
    rp_mongo_append_str(&set, "type", doc_str(d, "type"));
    rp_mongo_append_opaque(&set, "value", json_object_get(d, "value"));
    BSON_APPEND_UTF8(&set, "description", desc ? desc : "");
    BSON_APPEND_BOOL(&set, "isActive", json_is_true(json_object_get(d, "isActive")));
    rp_mongo_append_iso(&set, "updatedAt", json_object_get(d, "updatedAt"));
    bson_append_document_end(&update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &ins);
    BSON_APPEND_BOOL(&ins, "referenced", false);
    rp_mongo_append_str(&ins, "createdBy", doc_str(d, "createdBy"));
    rp_mongo_append_iso(&ins, "createdAt", json_object_get(d, "createdAt"));
    bson_append_document_end(&update, &ins);
    return rp_mongo_txn_update_take(tx, DEFS, BCON_NEW("_id", BCON_UTF8(doc_str(d, "id") ? doc_str(d, "id") : "")),
                                    &update, RP_MONGO_UPSERT, NULL) &&
           rp_mongo_audit_append(tx, AUDIT_LOG, a->audit);
}

static bool r_def_create(rp_event_repo_t *base, const json_t *doc, const rp_event_audit_t *audit, rp_err_t *err) {
    doc_arg_t a = {doc, audit, false, false, false};
    return rp_mongo_transact(db_of(base), "write definition", def_txn, &a, err);
}

/* The same upsert: createdBy, createdAt and referenced stay. */
static bool r_def_update(rp_event_repo_t *base, const json_t *doc, const rp_event_audit_t *audit, rp_err_t *err) {
    return r_def_create(base, doc, audit, err);
}

typedef struct delete_arg {
    const char *id;
    const rp_event_audit_t *audit;
    bool found, referenced; /* results of the last attempt */
} delete_arg_t;

static bool def_delete_txn(rp_mongo_txn_t *tx, void *p) {
    delete_arg_t *a = p;
    bson_t *doc = NULL;
    a->found = a->referenced = false;
    if (!rp_mongo_txn_find_one_take(tx, DEFS, BCON_NEW("_id", BCON_UTF8(a->id)),
                                    BCON_NEW("projection", "{", "referenced", BCON_INT32(1), "}"), &doc))
        return false;
    a->found = doc != NULL;
    a->referenced = doc && rp_mongo_get_bool(doc, "referenced");
    bson_destroy(doc);
    if (!a->found || a->referenced) return true;
    /* the guard makes a concurrent event_create (which sets referenced) conflict with us */
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(a->id), "referenced", BCON_BOOL(false));
    bool ok = rp_mongo_txn_delete(tx, DEFS, filter, false, NULL) && rp_mongo_audit_append(tx, AUDIT_LOG, a->audit);
    bson_destroy(filter);
    return ok;
}

static bool r_def_delete(rp_event_repo_t *base, const char *id, const rp_event_audit_t *audit, bool *found,
                         bool *referenced, rp_err_t *err) {
    delete_arg_t a = {id, audit, false, false};
    *found = *referenced = false;
    bool ok = rp_mongo_transact(db_of(base), "delete definition", def_delete_txn, &a, err);
    if (ok) {
        *found = a.found;
        *referenced = a.referenced;
    }
    return ok;
}

static bool r_def_get(rp_event_repo_t *base, const char *id, json_t **doc, rp_err_t *err) {
    bson_t *d = NULL;
    *doc = NULL;
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    bool ok = rp_mongo_find_one(db_of(base), DEFS, filter, NULL, &d, err);
    if (ok && d) *doc = def_row(d);
    bson_destroy(d);
    bson_destroy(filter);
    return ok;
}

static bool r_def_list(rp_event_repo_t *base, const char *type, int active, const char *cursor, int limit,
                       json_t **items, bool *more, rp_err_t *err) {
    clauses_t c = {BSON_INITIALIZER, 0};
    if (type) {
        bson_t *t = BCON_NEW("type", BCON_UTF8(type));
        clause_add(&c, t);
        bson_destroy(t);
    }
    if (active >= 0) {
        /* SQLite compares is_active (0/1) with the integer: any other value matches nothing (ids
         * are strings, never false) */
        bson_t *a = active <= 1 ? BCON_NEW("isActive", BCON_BOOL(active == 1)) : BCON_NEW("_id", BCON_BOOL(false));
        clause_add(&c, a);
        bson_destroy(a);
    }
    return newest_page(db_of(base), DEFS, &c, cursor, limit, def_row, items, more, err);
}

/* ---- events ---- */

/* The event document without the definition fields of its rewards (joined later). */
static json_t *event_row(const bson_t *d) {
    json_t *o = rp_mongo_doc_json(d, &rp_event_json), *rewards = json_array();
    bson_iter_t it, arr;
    bson_t rw;
    if (bson_iter_init_find(&it, d, "rewards") && BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr))
        while (bson_iter_next(&arr))
            if (rp_mongo_iter_doc(&arr, &rw))
                json_array_append_new(rewards, rp_mongo_doc_json(&rw, &rp_event_reward_json));
    json_object_set_new(o, "rewards", rewards);
    return o;
}

static bool collect_def(const bson_t *doc, void *p) {
    json_t *defs = p;
    json_t *id = rp_mongo_get_json(doc, "_id");
    if (json_is_string(id))
        json_object_set_new(defs, json_string_value(id), rp_mongo_doc_json(doc, &rp_event_reward_def_json));
    json_decref(id);
    return true;
}

/* Joins every reward of the events in items with its definition (name, type, value, isActive);
 * a reward whose definition is missing is dropped, like the SQLite inner join. */
static bool join_definitions(rp_mongo_t *m, json_t *items, rp_err_t *err) {
    size_t i, j;
    json_t *ev, *rw;
    bson_t filter = BSON_INITIALIZER, in, ids;
    uint32_t n = 0;
    json_t *seen = json_object(), *defs = json_object();
    json_array_foreach(items, i, ev) {
        json_array_foreach(json_object_get(ev, "rewards"), j, rw) {
            const char *id = doc_str(rw, "rewardDefinitionId");
            if (id) json_object_set_new(seen, id, json_true());
        }
    }
    bool ok = true;
    if (json_object_size(seen)) {
        const char *id;
        json_t *v;
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
        BSON_APPEND_ARRAY_BEGIN(&in, "$in", &ids);
        json_object_foreach(seen, id, v) {
            char kb[16];
            const char *key = rp_mongo_array_key(n++, kb);
            BSON_APPEND_UTF8(&ids, key, id);
        }
        bson_append_array_end(&in, &ids);
        bson_append_document_end(&filter, &in);
        bson_t *opts = BCON_NEW("projection", "{", "name", BCON_INT32(1), "type", BCON_INT32(1), "value", BCON_INT32(1),
                                "isActive", BCON_INT32(1), "}");
        ok = rp_mongo_find(m, DEFS, &filter, opts, collect_def, defs, err);
        bson_destroy(opts);
    }
    if (ok) {
        json_array_foreach(items, i, ev) {
            json_t *joined = json_array();
            json_array_foreach(json_object_get(ev, "rewards"), j, rw) {
                const char *id = doc_str(rw, "rewardDefinitionId");
                json_t *def = id ? json_object_get(defs, id) : NULL;
                if (!def) continue;
                json_t *r = json_deep_copy(rw);
                json_object_update(r, def);
                json_array_append_new(joined, r);
            }
            json_object_set_new(ev, "rewards", joined);
        }
    }
    bson_destroy(&filter);
    json_decref(seen);
    json_decref(defs);
    return ok;
}

/* rewards as stored: [{rewardIndex, rewardDefinitionId, quantity, stock, stockLeft = stock, customData}] */
static void append_rewards(bson_t *b, const json_t *rewards) {
    size_t i;
    json_t *rw;
    bson_t arr, r;
    BSON_APPEND_ARRAY_BEGIN(b, "rewards", &arr);
    json_array_foreach(rewards, i, rw) {
        char kb[16];
        const char *key = rp_mongo_array_key((uint32_t)i, kb);
        json_t *stock = json_object_get(rw, "stock");
        BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &r);
        BSON_APPEND_INT64(&r, "rewardIndex", (int64_t)i);
        rp_mongo_append_str(&r, "rewardDefinitionId", doc_str(rw, "rewardDefinitionId"));
        BSON_APPEND_INT64(&r, "quantity", json_integer_value(json_object_get(rw, "quantity")));
        append_int_or_null(&r, "stock", stock);
        append_int_or_null(&r, "stockLeft", stock);
        rp_mongo_append_opaque(&r, "customData", json_object_get(rw, "customData"));
        bson_append_document_end(&arr, &r);
    }
    bson_append_array_end(b, &arr);
}

/* Marks the definitions the rewards use as referenced (never deletable again). Every one must
 * exist in the transaction's snapshot: SQLite's foreign key refuses a reward row naming a missing
 * definition (e.g. deleted after event_worker.c checked it), so the event is not written. */
static bool mark_referenced(rp_mongo_txn_t *tx, const json_t *rewards) {
    size_t i;
    json_t *rw, *seen = json_object();
    uint32_t n = 0;
    bson_t filter = BSON_INITIALIZER, in, ids;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &ids);
    json_array_foreach(rewards, i, rw) {
        const char *id = doc_str(rw, "rewardDefinitionId");
        char kb[16];
        if (!id || json_object_get(seen, id)) continue; /* each distinct id once: n is what must match */
        json_object_set_new(seen, id, json_true());
        const char *key = rp_mongo_array_key(n++, kb);
        BSON_APPEND_UTF8(&ids, key, id);
    }
    bson_append_array_end(&in, &ids);
    bson_append_document_end(&filter, &in);
    json_decref(seen);
    bool ok = true;
    if (n) {
        rp_mongo_write_t res;
        bson_t *update = BCON_NEW("$set", "{", "referenced", BCON_BOOL(true), "}");
        ok = rp_mongo_txn_update(tx, DEFS, &filter, update, RP_MONGO_MANY, &res);
        bson_destroy(update);
        if (ok && res.matched < (int64_t)n)
            ok = rp_mongo_txn_fail(tx, RP_ERR_STORE, "STORE_ERROR",
                                   "write event: %u of %u reward definitions do not exist",
                                   (unsigned)(n - (uint32_t)res.matched), (unsigned)n);
    }
    bson_destroy(&filter);
    return ok;
}

static bool event_txn(rp_mongo_txn_t *tx, void *p) {
    doc_arg_t *a = p;
    const json_t *d = a->doc;
    const char *id = doc_str(d, "id") ? doc_str(d, "id") : "";
    bson_t *found = NULL;
    a->claimed = false;
    if (a->only_if_no_slots) {
        /* a grant writes the event document too, so a request inserted after this read makes one
         * of the two transactions conflict (see reward_store_mongo.h); FAILED requests carry no
         * activeKey */
        if (!rp_mongo_txn_find_one_take(
                tx, REQUESTS, BCON_NEW("eventId", BCON_UTF8(id), "activeKey", "{", "$exists", BCON_BOOL(true), "}"),
                BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}"), &found))
            return false;
        a->claimed = found != NULL;
        bson_destroy(found);
        if (a->claimed) return rp_mongo_txn_rollback(tx);
    }
    bson_t update = BSON_INITIALIZER, set, ins;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    rp_mongo_append_str(&set, "title", doc_str(d, "title"));
    rp_mongo_append_str(&set, "description", doc_str(d, "description"));
    rp_mongo_append_iso(&set, "startDate", json_object_get(d, "startDate"));
    rp_mongo_append_iso(&set, "endDate", json_object_get(d, "endDate"));
    rp_mongo_append_opaque(&set, "conditions", json_object_get(d, "conditions"));
    rp_mongo_append_str(&set, "conditionLogic", doc_str(d, "conditionLogic"));
    rp_mongo_append_str(&set, "claimPeriod", doc_str(d, "claimPeriod"));
    append_int_or_null(&set, "maxClaims", json_object_get(d, "maxClaims"));
    BSON_APPEND_BOOL(&set, "requiresApproval", json_is_true(json_object_get(d, "requiresApproval")));
    BSON_APPEND_INT64(&set, "dayOffsetMinutes", (int)json_integer_value(json_object_get(d, "dayOffsetMinutes")));
    rp_mongo_append_iso(&set, "updatedAt", json_object_get(d, "updatedAt"));
    if (a->replace_rewards) append_rewards(&set, json_object_get(d, "rewards"));
    bson_append_document_end(&update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &ins);
    BSON_APPEND_NULL(&ins, "canceledAt");
    rp_mongo_append_str(&ins, "createdBy", doc_str(d, "createdBy"));
    rp_mongo_append_iso(&ins, "createdAt", json_object_get(d, "createdAt"));
    if (!a->replace_rewards) BSON_APPEND_ARRAY(&ins, "rewards", &(bson_t)BSON_INITIALIZER);
    bson_append_document_end(&update, &ins);
    return rp_mongo_txn_update_take(tx, EVENTS, BCON_NEW("_id", BCON_UTF8(id)), &update, RP_MONGO_UPSERT, NULL) &&
           (!a->replace_rewards || mark_referenced(tx, json_object_get(d, "rewards"))) &&
           rp_mongo_audit_append(tx, AUDIT_LOG, a->audit);
}

static bool r_event_create(rp_event_repo_t *base, const json_t *doc, const rp_event_audit_t *audit, rp_err_t *err) {
    doc_arg_t a = {doc, audit, true, false, false};
    return rp_mongo_transact(db_of(base), "write event", event_txn, &a, err);
}

static bool r_event_update(rp_event_repo_t *base, const json_t *doc, bool replace_rewards, bool only_if_no_slots,
                           const rp_event_audit_t *audit, bool *claimed, rp_err_t *err) {
    doc_arg_t a = {doc, audit, replace_rewards, only_if_no_slots, false};
    bool ok = rp_mongo_transact(db_of(base), "write event", event_txn, &a, err);
    *claimed = ok && a.claimed;
    return ok;
}

static bool r_event_get(rp_event_repo_t *base, const char *id, json_t **doc, rp_err_t *err) {
    bson_t *d = NULL;
    *doc = NULL;
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    bool ok = rp_mongo_find_one(db_of(base), EVENTS, filter, NULL, &d, err);
    bson_destroy(filter);
    if (ok && d) {
        json_t *items = json_pack("[o]", event_row(d));
        ok = join_definitions(db_of(base), items, err);
        if (ok) *doc = json_incref(json_array_get(items, 0));
        json_decref(items);
    }
    bson_destroy(d);
    return ok;
}

/* {field: {$lte: le, $gt: gt}} with the bounds that are set (INT64_MAX / INT64_MIN: none). */
static void append_range(bson_t *b, const char *field, int64_t le, int64_t gt) {
    bson_t cmp;
    if (le == INT64_MAX && gt == INT64_MIN) return;
    BSON_APPEND_DOCUMENT_BEGIN(b, field, &cmp);
    if (le != INT64_MAX) BSON_APPEND_DATE_TIME(&cmp, "$lte", le);
    if (gt != INT64_MIN) BSON_APPEND_DATE_TIME(&cmp, "$gt", gt);
    bson_append_document_end(b, &cmp);
}

/* Each bound one comparison, all in one clause; no clause when nothing is bounded. */
static bool r_event_list(rp_event_repo_t *base, const rp_event_filter_t *f, json_t **items, bool *more, rp_err_t *err) {
    const rp_event_bounds_t *b = &f->bounds;
    clauses_t c = {BSON_INITIALIZER, 0};
    bson_t cl = BSON_INITIALIZER;
    if (b->empty) {
        bson_destroy(&c.arr);
        *items = json_array();
        *more = false;
        return true;
    }
    if (b->canceled == 0) BSON_APPEND_NULL(&cl, "canceledAt");
    if (b->canceled == 1) BCON_APPEND(&cl, "canceledAt", "{", "$ne", BCON_NULL, "}");
    append_range(&cl, "startDate", b->start_le, b->start_gt);
    append_range(&cl, "endDate", b->end_le, b->end_gt);
    if (!bson_empty(&cl)) clause_add(&c, &cl);
    bson_destroy(&cl);
    bool ok = newest_page(db_of(base), EVENTS, &c, f->cursor, f->limit, event_row, items, more, err) &&
              join_definitions(db_of(base), *items, err);
    if (!ok) {
        json_decref(*items);
        *items = NULL;
        *more = false;
    }
    return ok;
}

typedef struct cancel_arg {
    const char *id;
    int64_t now;
    const rp_event_settle_t *settle;
    const rp_event_audit_t *audit;
    bool already;    /* result of the last attempt */
    int64_t settled; /* result of the last attempt */
} cancel_arg_t;

static bool cancel_txn(rp_mongo_txn_t *tx, void *p) {
    cancel_arg_t *a = p;
    const rp_event_settle_t *s = a->settle;
    bool canceled;
    a->already = false;
    a->settled = 0;
    if (!rp_mongo_txn_update_take(
            tx, EVENTS, BCON_NEW("_id", BCON_UTF8(a->id), "canceledAt", BCON_NULL),
            BCON_NEW("$set", "{", "canceledAt", BCON_DATE_TIME(a->now), "updatedAt", BCON_DATE_TIME(a->now), "}"), 0,
            &canceled))
        return false;
    if (!canceled) { /* already canceled, or no such event: as SQLite's changes() == 0 */
        a->already = true;
        return true;
    }
    if (s) {
        rp_mongo_write_t res;
        bson_t *filter = BCON_NEW("eventId", BCON_UTF8(a->id), "status", BCON_UTF8(s->from));
        bson_t *update =
            BCON_NEW("$set", "{", "status", BCON_UTF8(s->to), "failureReason", BCON_UTF8(s->failure_reason),
                     "processorId", BCON_UTF8(s->processor_id), "processedAt", BCON_DATE_TIME(a->now), "updatedAt",
                     BCON_DATE_TIME(a->now), "}", "$unset", "{", "activeKey", BCON_UTF8(""), "}");
        bool ok = rp_mongo_txn_update(tx, REQUESTS, filter, update, RP_MONGO_MANY, &res);
        bson_destroy(filter);
        bson_destroy(update);
        if (!ok) return false;
        a->settled = res.matched;
    }
    return rp_mongo_audit_append(tx, AUDIT_LOG, a->audit);
}

static bool r_event_cancel(rp_event_repo_t *base, const char *id, int64_t now, const rp_event_settle_t *settle,
                           const rp_event_audit_t *audit, bool *already, int64_t *settled, rp_err_t *err) {
    cancel_arg_t a = {id, now, settle, audit, false, 0};
    *already = false;
    if (settled) *settled = 0;
    bool ok = rp_mongo_transact(db_of(base), "cancel event", cancel_txn, &a, err);
    if (ok) {
        *already = a.already;
        if (settled) *settled = a.settled;
    }
    return ok;
}

typedef struct window_arg {
    const char *id;
    int64_t start, end, now;
    const rp_event_bounds_t *guard;
    const rp_event_audit_t *audit;
    bool moved; /* result of the last attempt */
} window_arg_t;

/* The guard is event_list's clause on the stored document, in the update's filter. */
static bool window_txn(rp_mongo_txn_t *tx, void *p) {
    window_arg_t *a = p;
    const rp_event_bounds_t *b = a->guard;
    a->moved = false;
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(a->id));
    if (b->canceled == 0) BSON_APPEND_NULL(filter, "canceledAt");
    if (b->canceled == 1) BCON_APPEND(filter, "canceledAt", "{", "$ne", BCON_NULL, "}");
    append_range(filter, "startDate", b->start_le, b->start_gt);
    append_range(filter, "endDate", b->end_le, b->end_gt);
    bson_t *update = BCON_NEW("$set", "{", "startDate", BCON_DATE_TIME(a->start), "endDate", BCON_DATE_TIME(a->end),
                              "updatedAt", BCON_DATE_TIME(a->now), "}");
    if (!rp_mongo_txn_update_take(tx, EVENTS, filter, update, 0, &a->moved)) return false;
    return a->moved ? rp_mongo_audit_append(tx, AUDIT_LOG, a->audit) : rp_mongo_txn_rollback(tx);
}

static bool r_event_set_window(rp_event_repo_t *base, const char *id, int64_t start_ms, int64_t end_ms, int64_t now,
                               const rp_event_bounds_t *guard, const rp_event_audit_t *audit, bool *moved,
                               rp_err_t *err) {
    window_arg_t a = {id, start_ms, end_ms, now, guard, audit, false};
    *moved = false;
    if (guard->empty) return true;
    bool ok = rp_mongo_transact(db_of(base), "set event window", window_txn, &a, err);
    *moved = ok && a.moved;
    return ok;
}

/* ---- audit log ---- */

static bool r_audit_list(rp_event_repo_t *base, const char *target_type, const char *target_id, const char *actor_id,
                         const char *cursor, int limit, json_t **items, bool *more, rp_err_t *err) {
    return rp_mongo_audit_list(db_of(base), AUDIT_LOG, target_type, target_id, actor_id, cursor, limit, items, more,
                               err);
}

/* ---- the unit of work and its primitives ---- */

struct rp_event_txn {
    rp_mongo_txn_t *m;
};

typedef struct body {
    rp_event_txn_fn fn;
    void *arg;
} body_t;

static bool run_body(rp_mongo_txn_t *mtx, void *p) {
    body_t *b = p;
    rp_event_txn_t tx = {mtx};
    return rp_mongo_txn_end(mtx, b->fn(&tx, b->arg));
}

static bool r_transact(rp_event_repo_t *base, const char *what, rp_event_txn_fn fn, void *arg, rp_err_t *err) {
    body_t b = {fn, arg};
    return rp_mongo_transact(db_of(base), what, run_body, &b, err);
}

static bool r_tx_fact_record(rp_event_txn_t *tx, const rp_fact_t *f, const char *reported_by, int64_t now, bool *is_new,
                             rp_stored_fact_t *stored) {
    rp_mongo_write_t res;
    bson_t *doc = NULL;
    *is_new = false;
    rp_stored_fact_clear(stored);
    if (!f->idempotency_key || !f->user_id)
        return rp_mongo_txn_fail(tx->m, RP_ERR_STORE, "STORE_ERROR", "record fact: no idempotency key or user");
    /* insert-if-absent by upsert: a duplicate-key error would abort the whole transaction */
    bson_t *filter = BCON_NEW("userId", BCON_UTF8(f->user_id), "idempotencyKey", BCON_UTF8(f->idempotency_key));
    bson_t update = BSON_INITIALIZER, ins;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &ins);
    rp_mongo_append_str(&ins, "type", f->type_name);
    rp_mongo_append_opaque(&ins, "value", f->value);
    BSON_APPEND_DATE_TIME(&ins, "occurredAt", f->occurred_at);
    rp_mongo_append_str(&ins, "reportedBy", reported_by);
    BSON_APPEND_DATE_TIME(&ins, "receivedAt", now);
    bson_append_document_end(&update, &ins);
    bool ok = rp_mongo_txn_update(tx->m, FACTS, filter, &update, RP_MONGO_UPSERT, &res);
    bson_destroy(&update);
    *is_new = ok && res.upserted > 0;
    if (ok && !*is_new && stored) {
        ok = rp_mongo_txn_find_one(tx->m, FACTS, filter, NULL, &doc);
        if (ok && doc) {
            rp_mongo_copy_str(doc, "type", stored->type_name, sizeof stored->type_name);
            stored->value = rp_mongo_get_opaque(doc, "value");
            stored->occurred_at = rp_mongo_get_ms(doc, "occurredAt");
        }
        bson_destroy(doc);
    }
    bson_destroy(filter);
    return ok;
}

/* Each aggregate kind's user_progress document: the kind's name, and the fields that keep the
 * aggregate's number and time (NULL: the kind has none). Logins keep their day as key and the
 * bitmap in minutes; the level's key is null. */
static const struct {
    const char *kind, *number, *at;
} progress_kinds[] = {
    [RP_FACT_LOGIN] = {"login", NULL, NULL},
    [RP_FACT_LEVEL] = {"level", "maxLevel", "updatedAt"},
    [RP_FACT_QUEST] = {"quest", NULL, "completedAt"},
    [RP_FACT_INVITE] = {"invite", NULL, "invitedAt"},
    [RP_FACT_COUNTER] = {"counter", "total", "updatedAt"},
};

/* The filter naming a's document, or NULL (after rp_mongo_txn_fail) for an unknown kind. */
static bson_t *aggregate_key(rp_event_txn_t *tx, const char *user, const rp_aggregate_t *a) {
    if ((unsigned)a->kind >= sizeof progress_kinds / sizeof progress_kinds[0]) {
        rp_mongo_txn_fail(tx->m, RP_ERR_INTERNAL, "INTERNAL", "unknown progress kind %d", (int)a->kind);
        return NULL;
    }
    bson_t *f = BCON_NEW("userId", BCON_UTF8(user), "kind", BCON_UTF8(progress_kinds[a->kind].kind));
    if (a->kind == RP_FACT_LOGIN)
        BSON_APPEND_INT64(f, "key", a->day);
    else
        rp_mongo_append_str(f, "key", a->kind == RP_FACT_LEVEL ? NULL : a->key);
    return f;
}

/* A login document's bitmap into out; a value of the wrong size reads as no logins. */
static void get_minutes(const bson_t *d, unsigned char out[RP_LOGIN_DAY_BYTES]) {
    bson_iter_t it;
    memset(out, 0, RP_LOGIN_DAY_BYTES);
    if (bson_iter_init_find(&it, d, "minutes") && BSON_ITER_HOLDS_BINARY(&it)) {
        const uint8_t *data;
        uint32_t len;
        bson_subtype_t sub;
        bson_iter_binary(&it, &sub, &len, &data);
        if (len == RP_LOGIN_DAY_BYTES) memcpy(out, data, RP_LOGIN_DAY_BYTES);
    }
}

static bool r_tx_aggregate_get(rp_event_txn_t *tx, const char *user, rp_aggregate_t *a, bool *found) {
    bson_t *doc = NULL, *filter = aggregate_key(tx, user, a);
    *found = false;
    if (!filter) return false;
    bool ok = rp_mongo_txn_find_one(tx->m, PROGRESS, filter, NULL, &doc);
    if (ok && doc) {
        *found = true;
        a->number = progress_kinds[a->kind].number ? rp_mongo_get_i64(doc, progress_kinds[a->kind].number) : 0;
        a->at = progress_kinds[a->kind].at ? rp_mongo_get_ms(doc, progress_kinds[a->kind].at) : 0;
        get_minutes(doc, a->minutes);
    }
    bson_destroy(doc);
    bson_destroy(filter);
    return ok;
}

static bool r_tx_aggregate_put(rp_event_txn_t *tx, const char *user, const rp_aggregate_t *a) {
    bson_t update = BSON_INITIALIZER, set, *filter = aggregate_key(tx, user, a);
    if (!filter) return false;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    if (progress_kinds[a->kind].number) BSON_APPEND_INT64(&set, progress_kinds[a->kind].number, a->number);
    if (progress_kinds[a->kind].at) BSON_APPEND_DATE_TIME(&set, progress_kinds[a->kind].at, a->at);
    if (a->kind == RP_FACT_LOGIN)
        BSON_APPEND_BINARY(&set, "minutes", BSON_SUBTYPE_BINARY, a->minutes, RP_LOGIN_DAY_BYTES);
    bson_append_document_end(&update, &set);
    bool ok = rp_mongo_txn_update(tx->m, PROGRESS, filter, &update, RP_MONGO_UPSERT, NULL);
    bson_destroy(filter);
    bson_destroy(&update);
    return ok;
}

/* ---- progress reads ---- */

/* Adds one user_progress document to the progress being read (rp_progress_t *). */
static bool progress_doc(const bson_t *d, void *p) {
    rp_progress_t *pr = p;
    char kind[16];
    rp_mongo_copy_str(d, "kind", kind, sizeof kind);
    json_t *key = rp_mongo_get_json(d, "key");
    if (strcmp(kind, "level") == 0) {
        pr->max_level = rp_mongo_get_i64(d, "maxLevel");
    } else if (strcmp(kind, "invite") == 0) {
        pr->invites++;
    } else if (strcmp(kind, "quest") == 0 && json_is_string(key)) {
        json_object_set_new(pr->quests, json_string_value(key), rp_mongo_get_time(d, "completedAt"));
    } else if (strcmp(kind, "counter") == 0 && json_is_string(key)) {
        json_object_set_new(pr->counters, json_string_value(key), json_integer(rp_mongo_get_i64(d, "total")));
    } else if (strcmp(kind, "login") == 0) {
        unsigned char minutes[RP_LOGIN_DAY_BYTES];
        get_minutes(d, minutes);
        rp_progress_add_login(pr, rp_mongo_get_i64(d, "key"), minutes);
    }
    json_decref(key);
    return true;
}

/* Reads a user's progress in one query into p (initialised here; released on failure), sorted by
 * (kind, key) so quests and counters come in key order (SQLite's primary-key order) and logins
 * by day. With logins, only the login days in [day_from, day_to]; without, no login documents. */
static bool read_progress(rp_mongo_t *m, const char *user, bool logins, int64_t day_from, int64_t day_to,
                          rp_progress_t *p, rp_err_t *err) {
    bson_t *filter;
    rp_progress_init(p);
    if (logins)
        filter = BCON_NEW("userId", BCON_UTF8(user), "$or", "[", "{", "kind", "{", "$ne", BCON_UTF8("login"), "}", "}",
                          "{", "kind", BCON_UTF8("login"), "key", "{", "$gte", BCON_INT64(day_from), "$lte",
                          BCON_INT64(day_to), "}", "}", "]");
    else
        filter = BCON_NEW("userId", BCON_UTF8(user), "kind", "{", "$ne", BCON_UTF8("login"), "}");
    bson_t *opts = BCON_NEW("sort", "{", "kind", BCON_INT32(1), "key", BCON_INT32(1), "}");
    bool ok = rp_mongo_find(m, PROGRESS, filter, opts, progress_doc, p, err);
    bson_destroy(filter);
    bson_destroy(opts);
    if (!ok) rp_progress_release(p);
    return ok;
}

static bool r_progress_load(rp_event_repo_t *base, const char *user, int64_t day_from, int64_t day_to, rp_progress_t *p,
                            rp_err_t *err) {
    return read_progress(db_of(base), user, true, day_from, day_to, p, err);
}

static bool r_progress_summary(rp_event_repo_t *base, const char *user, rp_progress_t *p, int64_t *login_days,
                               rp_err_t *err) {
    bson_t *last = NULL;
    *login_days = 0;
    if (!read_progress(db_of(base), user, false, 0, 0, p, err)) return false;
    bson_t *logins = BCON_NEW("userId", BCON_UTF8(user), "kind", BCON_UTF8("login"));
    bson_t *newest = BCON_NEW("sort", "{", "key", BCON_INT32(-1), "}");
    bool ok = rp_mongo_count(db_of(base), PROGRESS, logins, login_days, err) &&
              rp_mongo_find_one(db_of(base), PROGRESS, logins, newest, &last, err);
    if (ok && last) progress_doc(last, p);
    if (!ok) rp_progress_release(p);
    bson_destroy(last);
    bson_destroy(logins);
    bson_destroy(newest);
    return ok;
}

static bool r_ping(rp_event_repo_t *base, rp_err_t *err) {
    return rp_mongo_ping(db_of(base), err);
}

static const rp_event_repo_ops_t ops = RP_EVENT_REPO_OPS(r_);

/* Lists are newest first; events are also filtered by their window; an aggregate is found by
 * (user, kind, key), which is unique. */
static const rp_mongo_index_t indexes[] = {
    {DEFS, "reward_definitions_created", NULL, false, {{"createdAt", -1}, {"_id", -1}}},
    {EVENTS, "events_created", NULL, false, {{"createdAt", -1}, {"_id", -1}}},
    {EVENTS, "events_window", NULL, false, {{"startDate", 1}, {"endDate", 1}}},
    {PROGRESS, "user_progress_key", NULL, true, {{"userId", 1}, {"kind", 1}, {"key", 1}}},
};

/* A fact's key is unique per player. Facts stored before keys were scoped had the key as their
 * _id and no idempotencyKey field: it is copied from _id before the unique index is built (an
 * update pipeline, MongoDB 4.2+), so a retry of an old fact is still a duplicate. */
static const rp_mongo_index_t facts_index[] = {
    {FACTS, "progress_facts_key", NULL, true, {{"userId", 1}, {"idempotencyKey", 1}}},
};

static bool set_up_facts_and_audit(rp_mongo_t *m, rp_err_t *err) {
    bson_t *legacy = BCON_NEW("idempotencyKey", "{", "$exists", BCON_BOOL(false), "}");
    bson_t *copy_key = BCON_NEW("0", "{", "$set", "{", "idempotencyKey", BCON_UTF8("$_id"), "}", "}");
    bool ok = rp_mongo_create_collection(m, FACTS, err) &&
              rp_mongo_update(m, FACTS, legacy, copy_key, RP_MONGO_MANY, NULL, err) &&
              rp_mongo_create_index_table(m, facts_index, 1, err) && rp_mongo_audit_indexes(m, err);
    bson_destroy(legacy);
    bson_destroy(copy_key);
    return ok;
}

static const rp_mongo_setup_t setup = RP_MONGO_SETUP("reward-event", indexes, set_up_facts_and_audit);

rp_event_repo_t *rp_event_repo_mongo_open(const char *uri, const char *db_name, rp_err_t *err) {
    return rp_mongo_store_open(uri, db_name, &setup, &(rp_event_repo_t){&ops}, sizeof(rp_event_repo_t), err);
}
