/* event_repo_mongo.c - the event repository on MongoDB (see event_repo_mongo.h): a client pool,
 * one transaction per write, the same semantics as event_repo_sqlite.c. */
#include "event_repo_mongo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "ids.h"
#include "mem.h"
#include "mongo_util.h"
#include "timeutil.h"

#define DEFS RP_EVENT_MONGO_DEFINITIONS
#define EVENTS RP_EVENT_MONGO_EVENTS
#define REQUESTS RP_EVENT_MONGO_REQUESTS
#define PROGRESS RP_EVENT_MONGO_PROGRESS
#define FACTS RP_EVENT_MONGO_FACTS
#define AUDIT_LOG "event" /* this store's entries in the shared audit_logs collection */

#define DAY_MS 86400000
#define LOGIN_BYTES 180

typedef struct repo {
    rp_event_repo_t base;
    rp_mongo_t *m;
} repo_t;

static rp_mongo_t *db_of(rp_event_repo_t *base) {
    return ((repo_t *)base)->m;
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

static bool append_audit(rp_mongo_txn_t *tx, const rp_event_audit_t *a) {
    if (!a) return true;
    rp_mongo_audit_t e = {AUDIT_LOG,    a->actor_id, a->actor_username, a->action, a->target_type,
                          a->target_id, a->before,   a->after,          a->at};
    return rp_mongo_audit_append(tx, &e);
}

/* Filter clauses are collected in a BSON array and ANDed; MongoDB refuses an empty $and. */
typedef struct clauses {
    bson_t arr;
    uint32_t n;
} clauses_t;

static bson_t *clause_begin(clauses_t *c, bson_t *child) {
    char kb[16];
    const char *key;
    bson_uint32_to_string(c->n++, &key, kb, sizeof kb);
    BSON_APPEND_DOCUMENT_BEGIN(&c->arr, key, child);
    return child;
}

static void clause_end(clauses_t *c, bson_t *child) {
    bson_append_document_end(&c->arr, child);
}

/* {$and: clauses} (or {} without any) as a new document. Consumes c. */
static bson_t *clauses_filter(clauses_t *c) {
    bson_t *f = bson_new();
    if (c->n) BSON_APPEND_ARRAY(f, "$and", &c->arr);
    bson_destroy(&c->arr);
    return f;
}

/* {field: {op: ms}} */
static void append_date_cmp(bson_t *b, const char *field, const char *op, int64_t ms) {
    bson_t cmp;
    BSON_APPEND_DOCUMENT_BEGIN(b, field, &cmp);
    BSON_APPEND_DATE_TIME(&cmp, op, ms);
    bson_append_document_end(b, &cmp);
}

/* ---- reward definitions ---- */

/* Lists are newest first by time, the id only breaking ties and naming the cursor document, as
 * in SQLite: ids made by different worker processes in the same second do not sort by time. */

static json_t *def_row(const bson_t *d) {
    json_t *o = json_object();
    json_object_set_new(o, "id", rp_mongo_get_json(d, "_id"));
    json_object_set_new(o, "name", rp_mongo_get_json(d, "name"));
    json_object_set_new(o, "type", rp_mongo_get_json(d, "type"));
    json_object_set_new(o, "value", rp_mongo_get_opaque(d, "value"));
    json_object_set_new(o, "description", rp_mongo_get_json(d, "description"));
    json_object_set_new(o, "isActive", json_boolean(rp_mongo_get_bool(d, "isActive")));
    json_object_set_new(o, "referenced", json_boolean(rp_mongo_get_bool(d, "referenced")));
    json_object_set_new(o, "createdBy", rp_mongo_get_json(d, "createdBy"));
    json_object_set_new(o, "createdAt", rp_mongo_get_time(d, "createdAt"));
    json_object_set_new(o, "updatedAt", rp_mongo_get_time(d, "updatedAt"));
    return o;
}

typedef struct doc_arg {
    const json_t *doc;
    const rp_event_audit_t *audit;
    bool replace_rewards;
    bool check_claims;
    bool conflict; /* result of the last attempt */
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
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(doc_str(d, "id") ? doc_str(d, "id") : ""));
    bool ok = rp_mongo_txn_update(tx, DEFS, filter, &update, RP_MONGO_UPSERT, NULL) && append_audit(tx, a->audit);
    bson_destroy(filter);
    bson_destroy(&update);
    return ok;
}

static bool r_def_create(rp_event_repo_t *base, const json_t *doc, const rp_event_audit_t *audit, rp_err_t *err) {
    doc_arg_t a = {doc, audit, false, false, false};
    return rp_mongo_transact(db_of(base), "write definition", def_txn, &a, err);
}

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
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(a->id));
    bson_t *opts = BCON_NEW("projection", "{", "referenced", BCON_INT32(1), "}");
    bool ok = rp_mongo_txn_find_one(tx, DEFS, filter, opts, &doc);
    bson_destroy(filter);
    bson_destroy(opts);
    if (!ok) return false;
    a->found = doc != NULL;
    a->referenced = doc && rp_mongo_get_bool(doc, "referenced");
    bson_destroy(doc);
    if (!a->found || a->referenced) return true;
    /* the guard makes a concurrent event_create (which sets referenced) conflict with us */
    filter = BCON_NEW("_id", BCON_UTF8(a->id), "referenced", BCON_BOOL(false));
    ok = rp_mongo_txn_delete(tx, DEFS, filter, false, NULL) && append_audit(tx, a->audit);
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
    bson_t cl;
    int rc = 1;
    *items = NULL;
    *more = false;
    if (type) {
        BSON_APPEND_UTF8(clause_begin(&c, &cl), "type", type);
        clause_end(&c, &cl);
    }
    if (active >= 0) {
        /* SQLite compares is_active (0/1) with the integer: any other value matches nothing */
        clause_begin(&c, &cl);
        if (active <= 1)
            BSON_APPEND_BOOL(&cl, "isActive", active == 1);
        else
            BSON_APPEND_BOOL(&cl, "_id", false); /* ids are strings: never true */
        clause_end(&c, &cl);
    }
    if (cursor) rc = rp_mongo_cursor_clause(db_of(base), DEFS, cursor, "createdAt", &c.arr, &c.n, err);
    bson_t *filter = clauses_filter(&c);
    bool ok = rc >= 0;
    if (rc == 0) { /* unknown cursor: empty page */
        *items = json_array();
    } else if (rc > 0) {
        bson_t *sort = BCON_NEW("createdAt", BCON_INT32(-1), "_id", BCON_INT32(-1));
        ok = rp_mongo_find_page(db_of(base), DEFS, filter, sort, limit, def_row, items, more, err);
        bson_destroy(sort);
    }
    bson_destroy(filter);
    return ok;
}

/* ---- events ---- */

/* The event document without the definition fields of its rewards (joined later). */
static json_t *event_row(const bson_t *d) {
    json_t *o = json_object(), *rewards = json_array();
    bson_iter_t it, arr;
    json_object_set_new(o, "id", rp_mongo_get_json(d, "_id"));
    json_object_set_new(o, "title", rp_mongo_get_json(d, "title"));
    json_object_set_new(o, "description", rp_mongo_get_json(d, "description"));
    json_object_set_new(o, "startDate", rp_mongo_get_time(d, "startDate"));
    json_object_set_new(o, "endDate", rp_mongo_get_time(d, "endDate"));
    json_object_set_new(o, "canceledAt", rp_mongo_get_time(d, "canceledAt"));
    json_object_set_new(o, "conditions", rp_mongo_get_opaque(d, "conditions"));
    json_object_set_new(o, "conditionLogic", rp_mongo_get_json(d, "conditionLogic"));
    json_object_set_new(o, "claimPeriod", rp_mongo_get_json(d, "claimPeriod"));
    json_object_set_new(o, "maxClaims", rp_mongo_get_int(d, "maxClaims"));
    json_object_set_new(o, "requiresApproval", json_boolean(rp_mongo_get_bool(d, "requiresApproval")));
    json_object_set_new(o, "dayOffsetMinutes", json_integer(rp_mongo_get_i64(d, "dayOffsetMinutes")));
    json_object_set_new(o, "createdBy", rp_mongo_get_json(d, "createdBy"));
    json_object_set_new(o, "createdAt", rp_mongo_get_time(d, "createdAt"));
    json_object_set_new(o, "updatedAt", rp_mongo_get_time(d, "updatedAt"));
    if (bson_iter_init_find(&it, d, "rewards") && BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr)) {
        while (bson_iter_next(&arr)) {
            const uint8_t *data;
            uint32_t len;
            bson_t rw;
            if (!BSON_ITER_HOLDS_DOCUMENT(&arr)) continue;
            bson_iter_document(&arr, &len, &data);
            if (!bson_init_static(&rw, data, len)) continue;
            json_t *r = json_object();
            json_object_set_new(r, "rewardIndex", json_integer(rp_mongo_get_i64(&rw, "rewardIndex")));
            json_object_set_new(r, "rewardDefinitionId", rp_mongo_get_json(&rw, "rewardDefinitionId"));
            json_object_set_new(r, "quantity", json_integer(rp_mongo_get_i64(&rw, "quantity")));
            json_object_set_new(r, "stock", rp_mongo_get_int(&rw, "stock"));
            json_object_set_new(r, "stockLeft", rp_mongo_get_int(&rw, "stockLeft"));
            json_object_set_new(r, "customData", rp_mongo_get_opaque(&rw, "customData"));
            json_array_append_new(rewards, r);
        }
    }
    json_object_set_new(o, "rewards", rewards);
    return o;
}

static bool collect_def(const bson_t *doc, void *p) {
    json_t *defs = p;
    json_t *id = rp_mongo_get_json(doc, "_id");
    if (json_is_string(id))
        json_object_set_new(defs, json_string_value(id),
                            json_pack("{s:o, s:o, s:o, s:b}", "name", rp_mongo_get_json(doc, "name"), "type",
                                      rp_mongo_get_json(doc, "type"), "value", rp_mongo_get_opaque(doc, "value"),
                                      "isActive", rp_mongo_get_bool(doc, "isActive")));
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
            const char *key;
            bson_uint32_to_string(n++, &key, kb, sizeof kb);
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
        const char *key;
        json_t *stock = json_object_get(rw, "stock");
        bson_uint32_to_string((uint32_t)i, &key, kb, sizeof kb);
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
        const char *key;
        if (!id || json_object_get(seen, id)) continue; /* each distinct id once: n is what must match */
        json_object_set_new(seen, id, json_true());
        bson_uint32_to_string(n++, &key, kb, sizeof kb);
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
    a->conflict = false;
    if (a->check_claims && a->replace_rewards) {
        /* rewards (and their stock) are fixed once players have claimed */
        bson_t *filter = BCON_NEW("eventId", BCON_UTF8(id));
        bson_t *opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}");
        bool ok = rp_mongo_txn_find_one(tx, REQUESTS, filter, opts, &found);
        bson_destroy(filter);
        bson_destroy(opts);
        if (!ok) return false;
        if (found) {
            bson_destroy(found);
            a->conflict = true;
            return true;
        }
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
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    bool ok = rp_mongo_txn_update(tx, EVENTS, filter, &update, RP_MONGO_UPSERT, NULL) &&
              (!a->replace_rewards || mark_referenced(tx, json_object_get(d, "rewards"))) && append_audit(tx, a->audit);
    bson_destroy(filter);
    bson_destroy(&update);
    return ok;
}

static bool r_event_create(rp_event_repo_t *base, const json_t *doc, const rp_event_audit_t *audit, rp_err_t *err) {
    doc_arg_t a = {doc, audit, true, false, false};
    return rp_mongo_transact(db_of(base), "write event", event_txn, &a, err);
}

static bool r_event_update(rp_event_repo_t *base, const json_t *doc, bool replace_rewards,
                           const rp_event_audit_t *audit, bool *conflict, rp_err_t *err) {
    doc_arg_t a = {doc, audit, replace_rewards, true, false};
    *conflict = false;
    bool ok = rp_mongo_transact(db_of(base), "write event", event_txn, &a, err);
    if (ok) *conflict = a.conflict;
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

static bool r_event_list(rp_event_repo_t *base, const rp_event_filter_t *f, json_t **items, bool *more, rp_err_t *err) {
    clauses_t c = {BSON_INITIALIZER, 0};
    bson_t cl;
    int rc = 1;
    *items = NULL;
    *more = false;
    /* status: -1 any; 0 UPCOMING, 1 ACTIVE, 2 FINISHED, 3 CANCELED (see the SQLite query) */
    if (f->status >= 0) {
        clause_begin(&c, &cl);
        switch (f->status) {
        case RP_EVENT_CANCELED: {
            bson_t ne;
            BSON_APPEND_DOCUMENT_BEGIN(&cl, "canceledAt", &ne);
            BSON_APPEND_NULL(&ne, "$ne");
            bson_append_document_end(&cl, &ne);
            break;
        }
        case RP_EVENT_UPCOMING:
            BSON_APPEND_NULL(&cl, "canceledAt");
            append_date_cmp(&cl, "startDate", "$gt", f->now_ms);
            break;
        case RP_EVENT_ACTIVE:
            BSON_APPEND_NULL(&cl, "canceledAt");
            append_date_cmp(&cl, "startDate", "$lte", f->now_ms);
            append_date_cmp(&cl, "endDate", "$gt", f->now_ms);
            break;
        case RP_EVENT_FINISHED:
            BSON_APPEND_NULL(&cl, "canceledAt");
            append_date_cmp(&cl, "endDate", "$lte", f->now_ms);
            break;
        default: rc = 0; break; /* no such status: nothing matches */
        }
        clause_end(&c, &cl);
    }
    if (f->open_only) {
        clause_begin(&c, &cl);
        BSON_APPEND_NULL(&cl, "canceledAt");
        append_date_cmp(&cl, "endDate", "$gt", f->now_ms);
        clause_end(&c, &cl);
    }
    if (f->active_at) {
        clause_begin(&c, &cl);
        BSON_APPEND_NULL(&cl, "canceledAt");
        append_date_cmp(&cl, "startDate", "$lte", f->active_at);
        append_date_cmp(&cl, "endDate", "$gt", f->active_at);
        clause_end(&c, &cl);
    }
    if (rc > 0 && f->cursor)
        rc = rp_mongo_cursor_clause(db_of(base), EVENTS, f->cursor, "createdAt", &c.arr, &c.n, err);
    bson_t *filter = clauses_filter(&c);
    bool ok = rc >= 0;
    if (rc == 0) {
        *items = json_array();
    } else if (rc > 0) {
        bson_t *sort = BCON_NEW("createdAt", BCON_INT32(-1), "_id", BCON_INT32(-1));
        ok = rp_mongo_find_page(db_of(base), EVENTS, filter, sort, f->limit, event_row, items, more, err) &&
             join_definitions(db_of(base), *items, err);
        bson_destroy(sort);
        if (!ok) {
            json_decref(*items);
            *items = NULL;
            *more = false;
        }
    }
    bson_destroy(filter);
    return ok;
}

typedef struct cancel_arg {
    const char *id;
    int64_t now;
    const rp_event_audit_t *audit;
    bool already; /* result of the last attempt */
} cancel_arg_t;

static bool cancel_txn(rp_mongo_txn_t *tx, void *p) {
    cancel_arg_t *a = p;
    rp_mongo_write_t res;
    a->already = false;
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(a->id), "canceledAt", BCON_NULL);
    bson_t *update =
        BCON_NEW("$set", "{", "canceledAt", BCON_DATE_TIME(a->now), "updatedAt", BCON_DATE_TIME(a->now), "}");
    bool ok = rp_mongo_txn_update(tx, EVENTS, filter, update, 0, &res);
    bson_destroy(filter);
    bson_destroy(update);
    if (!ok) return false;
    if (res.matched == 0) { /* already canceled, or no such event: as SQLite's changes() == 0 */
        a->already = true;
        return true;
    }
    return append_audit(tx, a->audit);
}

static bool r_event_cancel(rp_event_repo_t *base, const char *id, int64_t now, const rp_event_audit_t *audit,
                           bool *already, rp_err_t *err) {
    cancel_arg_t a = {id, now, audit, false};
    *already = false;
    bool ok = rp_mongo_transact(db_of(base), "cancel event", cancel_txn, &a, err);
    if (ok) *already = a.already;
    return ok;
}

/* ---- audit log ---- */

static bool r_audit_list(rp_event_repo_t *base, const char *target_type, const char *target_id, const char *actor_id,
                         const char *cursor, int limit, json_t **items, bool *more, rp_err_t *err) {
    return rp_mongo_audit_list(db_of(base), AUDIT_LOG, target_type, target_id, actor_id, cursor, limit, items, more,
                               err);
}

/* ---- progress ---- */

typedef struct ingest_arg {
    const rp_fact_t *facts;
    size_t n;
    const char *reported_by;
    int64_t now, accepted, duplicates; /* counts of the last attempt */
} ingest_arg_t;

/* The filter naming one user_progress document; key NULL (level) matches key: null. */
static bson_t *progress_key(const char *user, const char *kind, const char *key, const int64_t *day) {
    bson_t *f = BCON_NEW("userId", BCON_UTF8(user), "kind", BCON_UTF8(kind));
    if (day)
        BSON_APPEND_INT64(f, "key", *day);
    else
        rp_mongo_append_str(f, "key", key);
    return f;
}

static bool progress_upsert(rp_mongo_txn_t *tx, bson_t *filter, bson_t *update) {
    bool ok = rp_mongo_txn_update(tx, PROGRESS, filter, update, RP_MONGO_UPSERT, NULL);
    bson_destroy(filter);
    bson_destroy(update);
    return ok;
}

/* Sets the login minute's bit in the day's bitmap: read, modify, write inside the transaction,
 * so two concurrent logins of one day conflict and one is retried. */
static bool apply_login(rp_mongo_txn_t *tx, const char *user, int64_t at) {
    int64_t day = at >= 0 ? at / DAY_MS : (at - (DAY_MS - 1)) / DAY_MS;
    int minute = (int)((at - day * DAY_MS) / 60000);
    unsigned char bits[LOGIN_BYTES];
    bson_t *doc = NULL;
    bson_iter_t it;
    memset(bits, 0, sizeof bits);
    bson_t *filter = progress_key(user, "login", NULL, &day);
    bson_t *opts = BCON_NEW("projection", "{", "minutes", BCON_INT32(1), "}");
    bool ok = rp_mongo_txn_find_one(tx, PROGRESS, filter, opts, &doc);
    bson_destroy(opts);
    if (!ok) {
        bson_destroy(filter);
        return false;
    }
    if (doc && bson_iter_init_find(&it, doc, "minutes") && BSON_ITER_HOLDS_BINARY(&it)) {
        const uint8_t *data;
        uint32_t len;
        bson_subtype_t sub;
        bson_iter_binary(&it, &sub, &len, &data);
        if (len == LOGIN_BYTES) memcpy(bits, data, LOGIN_BYTES);
    }
    bson_destroy(doc);
    bits[minute / 8] |= (unsigned char)(1u << (minute % 8));
    bson_t *update = BCON_NEW("$set", "{", "minutes", BCON_BIN(BSON_SUBTYPE_BINARY, bits, LOGIN_BYTES), "}");
    return progress_upsert(tx, filter, update);
}

static bool apply_fact(rp_mongo_txn_t *tx, const rp_fact_t *f, int64_t now) {
    const char *s;
    switch (f->type) {
    case RP_FACT_LOGIN: return apply_login(tx, f->user_id, f->occurred_at);
    case RP_FACT_LEVEL:
        return progress_upsert(tx, progress_key(f->user_id, "level", NULL, NULL),
                               BCON_NEW("$max", "{", "maxLevel", BCON_INT64(json_integer_value(f->value)), "}", "$set",
                                        "{", "updatedAt", BCON_DATE_TIME(now), "}"));
    case RP_FACT_QUEST:
        if (!(s = json_string_value(f->value))) break;
        return progress_upsert(tx, progress_key(f->user_id, "quest", s, NULL),
                               BCON_NEW("$setOnInsert", "{", "completedAt", BCON_DATE_TIME(f->occurred_at), "}"));
    case RP_FACT_INVITE:
        if (!(s = json_string_value(f->value))) break;
        return progress_upsert(tx, progress_key(f->user_id, "invite", s, NULL),
                               BCON_NEW("$setOnInsert", "{", "invitedAt", BCON_DATE_TIME(f->occurred_at), "}"));
    case RP_FACT_COUNTER:
        if (!(s = json_string_value(json_object_get(f->value, "key")))) break;
        return progress_upsert(tx, progress_key(f->user_id, "counter", s, NULL),
                               BCON_NEW("$inc", "{", "total",
                                        BCON_INT64(json_integer_value(json_object_get(f->value, "delta"))), "}", "$set",
                                        "{", "updatedAt", BCON_DATE_TIME(now), "}"));
    }
    return rp_mongo_txn_fail(tx, RP_ERR_STORE, "STORE_ERROR", "record fact: malformed %s fact",
                             f->type_name ? f->type_name : "?");
}

static bool ingest_txn(rp_mongo_txn_t *tx, void *p) {
    ingest_arg_t *a = p;
    a->accepted = a->duplicates = 0;
    for (size_t i = 0; i < a->n; i++) {
        const rp_fact_t *f = &a->facts[i];
        rp_mongo_write_t res;
        if (!f->idempotency_key || !f->user_id)
            return rp_mongo_txn_fail(tx, RP_ERR_STORE, "STORE_ERROR", "record fact: no idempotency key or user");
        /* insert-if-absent by upsert: a duplicate-key error would abort the whole transaction */
        bson_t *filter = BCON_NEW("_id", BCON_UTF8(f->idempotency_key));
        bson_t update = BSON_INITIALIZER, ins;
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &ins);
        BSON_APPEND_UTF8(&ins, "userId", f->user_id);
        rp_mongo_append_str(&ins, "type", f->type_name);
        rp_mongo_append_opaque(&ins, "value", f->value);
        BSON_APPEND_DATE_TIME(&ins, "occurredAt", f->occurred_at);
        rp_mongo_append_str(&ins, "reportedBy", a->reported_by);
        BSON_APPEND_DATE_TIME(&ins, "receivedAt", a->now);
        bson_append_document_end(&update, &ins);
        bool ok = rp_mongo_txn_update(tx, FACTS, filter, &update, RP_MONGO_UPSERT, &res);
        bson_destroy(filter);
        bson_destroy(&update);
        if (!ok) return false;
        if (res.upserted == 0) {
            a->duplicates++;
            continue;
        }
        if (!apply_fact(tx, f, a->now)) return false;
        a->accepted++;
    }
    return true;
}

static bool r_progress_ingest(rp_event_repo_t *base, const rp_fact_t *facts, size_t n, const char *reported_by,
                              int64_t now, int64_t *accepted, int64_t *duplicates, rp_err_t *err) {
    ingest_arg_t a = {facts, n, reported_by, now, 0, 0};
    bool ok = rp_mongo_transact(db_of(base), "record progress", ingest_txn, &a, err);
    *accepted = ok ? a.accepted : 0;
    *duplicates = ok ? a.duplicates : 0;
    return ok;
}

/* What a user's progress documents give; logins are kept only when `logins` is set. */
typedef struct progress_read {
    int64_t max_level, invites;
    json_t *quests, *counters;
    rp_progress_t *logins;
} progress_read_t;

static bool progress_doc(const bson_t *d, void *p) {
    progress_read_t *r = p;
    bson_iter_t it;
    char kind[16];
    rp_mongo_copy_str(d, "kind", kind, sizeof kind);
    if (strcmp(kind, "level") == 0) {
        r->max_level = rp_mongo_get_i64(d, "maxLevel");
    } else if (strcmp(kind, "invite") == 0) {
        r->invites++;
    } else if (strcmp(kind, "quest") == 0 || strcmp(kind, "counter") == 0) {
        json_t *k = rp_mongo_get_json(d, "key");
        if (json_is_string(k)) {
            if (kind[0] == 'q')
                json_object_set_new(r->quests, json_string_value(k), rp_mongo_get_time(d, "completedAt"));
            else
                json_object_set_new(r->counters, json_string_value(k), json_integer(rp_mongo_get_i64(d, "total")));
        }
        json_decref(k);
    } else if (strcmp(kind, "login") == 0 && r->logins) {
        rp_progress_t *pr = r->logins;
        if (pr->nlogins % 16 == 0) pr->logins = rp_realloc(pr->logins, (pr->nlogins + 16) * sizeof *pr->logins);
        rp_login_day_t *day = &pr->logins[pr->nlogins++];
        day->utc_day = rp_mongo_get_i64(d, "key");
        memset(day->minutes, 0, sizeof day->minutes);
        if (bson_iter_init_find(&it, d, "minutes") && BSON_ITER_HOLDS_BINARY(&it)) {
            const uint8_t *data;
            uint32_t len;
            bson_subtype_t sub;
            bson_iter_binary(&it, &sub, &len, &data);
            if (len == LOGIN_BYTES) memcpy(day->minutes, data, LOGIN_BYTES);
        }
    }
    return true;
}

/* Reads a user's progress in one query, sorted by (kind, key) so quests and counters come in
 * key order (SQLite's primary-key order) and logins by day. With logins, only the login days in
 * [day_from, day_to]; without, no login documents. */
static bool read_progress(rp_mongo_t *m, const char *user, progress_read_t *r, int64_t day_from, int64_t day_to,
                          rp_err_t *err) {
    bson_t *filter;
    if (r->logins)
        filter = BCON_NEW("userId", BCON_UTF8(user), "$or", "[", "{", "kind", "{", "$ne", BCON_UTF8("login"), "}", "}",
                          "{", "kind", BCON_UTF8("login"), "key", "{", "$gte", BCON_INT64(day_from), "$lte",
                          BCON_INT64(day_to), "}", "}", "]");
    else
        filter = BCON_NEW("userId", BCON_UTF8(user), "kind", "{", "$ne", BCON_UTF8("login"), "}");
    bson_t *opts = BCON_NEW("sort", "{", "kind", BCON_INT32(1), "key", BCON_INT32(1), "}");
    bool ok = rp_mongo_find(m, PROGRESS, filter, opts, progress_doc, r, err);
    bson_destroy(filter);
    bson_destroy(opts);
    return ok;
}

static bool r_progress_load(rp_event_repo_t *base, const char *user, int64_t day_from, int64_t day_to, rp_progress_t *p,
                            rp_err_t *err) {
    memset(p, 0, sizeof *p);
    p->quests = json_object();
    p->counters = json_object();
    progress_read_t r = {0, 0, p->quests, p->counters, p};
    bool ok = read_progress(db_of(base), user, &r, day_from, day_to, err);
    if (ok) {
        p->max_level = r.max_level;
        p->invites = r.invites;
    } else {
        rp_progress_release(p);
    }
    return ok;
}

static bool r_progress_summary(rp_event_repo_t *base, const char *user, json_t **doc, rp_err_t *err) {
    progress_read_t r = {0, 0, json_object(), json_object(), NULL};
    int64_t days = 0;
    bson_t *last = NULL;
    bson_iter_t it;
    *doc = NULL;
    bson_t *logins = BCON_NEW("userId", BCON_UTF8(user), "kind", BCON_UTF8("login"));
    bson_t *newest = BCON_NEW("sort", "{", "key", BCON_INT32(-1), "}");
    bool ok = read_progress(db_of(base), user, &r, 0, 0, err) &&
              rp_mongo_count(db_of(base), PROGRESS, logins, &days, err) &&
              rp_mongo_find_one(db_of(base), PROGRESS, logins, newest, &last, err);
    if (ok) {
        json_t *last_at = json_null();
        if (last && bson_iter_init_find(&it, last, "minutes") && BSON_ITER_HOLDS_BINARY(&it)) {
            const uint8_t *bits;
            uint32_t len;
            bson_subtype_t sub;
            bson_iter_binary(&it, &sub, &len, &bits);
            int64_t day = rp_mongo_get_i64(last, "key");
            for (int m = 1439; len == LOGIN_BYTES && m >= 0; m--)
                if (bits[m / 8] & (1u << (m % 8))) {
                    char b[RP_ISO_LEN];
                    rp_time_iso(day * DAY_MS + (int64_t)m * 60000, b);
                    json_decref(last_at);
                    last_at = json_string(b);
                    break;
                }
        }
        json_t *quest_ids = json_array();
        const char *k;
        json_t *v;
        json_object_foreach(r.quests, k, v) json_array_append_new(quest_ids, json_string(k));
        *doc = json_pack("{s:s, s:I, s:o, s:I, s:O, s:I, s:o}", "userId", user, "maxLevel", (json_int_t)r.max_level,
                         "questsCompleted", quest_ids, "invites", (json_int_t)r.invites, "counters", r.counters,
                         "loginDays", (json_int_t)days, "lastLoginAt", last_at);
    }
    bson_destroy(last);
    bson_destroy(logins);
    bson_destroy(newest);
    json_decref(r.quests);
    json_decref(r.counters);
    return ok;
}

static bool r_ping(rp_event_repo_t *base, rp_err_t *err) {
    return rp_mongo_ping(db_of(base), err);
}

static void r_free(rp_event_repo_t *base) {
    repo_t *r = (repo_t *)base;
    if (!r) return;
    rp_mongo_close(r->m);
    free(r);
}

static const rp_event_repo_ops_t ops = {
    .ping = r_ping,
    .def_create = r_def_create,
    .def_get = r_def_get,
    .def_list = r_def_list,
    .def_update = r_def_update,
    .def_delete = r_def_delete,
    .event_create = r_event_create,
    .event_get = r_event_get,
    .event_list = r_event_list,
    .event_update = r_event_update,
    .event_cancel = r_event_cancel,
    .audit_list = r_audit_list,
    .progress_ingest = r_progress_ingest,
    .progress_load = r_progress_load,
    .progress_summary = r_progress_summary,
    .free = r_free,
};

/* Creates collection outside any transaction: before MongoDB 4.4 a transaction cannot create one
 * (the first write would fail with OperationNotSupportedInTransaction every time). An existing
 * collection is fine (NamespaceExists before 7.0, ok after). */
static bool create_collection(rp_mongo_t *m, const char *collection, rp_err_t *err) {
    bson_t reply;
    bson_error_t berr;
    mongoc_client_t *cli = rp_mongo_pop(m, err);
    if (!cli) return false;
    mongoc_database_t *db = mongoc_client_get_database(cli, rp_mongo_db_name(m));
    bson_t *cmd = BCON_NEW("create", BCON_UTF8(collection));
    bool ok = mongoc_database_write_command_with_opts(db, cmd, NULL, &reply, &berr);
    if (!ok && berr.domain == MONGOC_ERROR_SERVER && berr.code == 48 /* NamespaceExists */) ok = true;
    if (!ok) {
        char what[96];
        snprintf(what, sizeof what, "create collection %s", collection);
        rp_mongo_err(&berr, what, err);
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    mongoc_database_destroy(db);
    rp_mongo_push(m, cli);
    return ok;
}

static bool create_indexes(rp_mongo_t *m, rp_err_t *err) {
    bson_t *defs = BCON_NEW("0", "{", "key", "{", "createdAt", BCON_INT32(-1), "_id", BCON_INT32(-1), "}", "name",
                            BCON_UTF8("reward_definitions_created"), "}");
    bson_t *events = BCON_NEW("0", "{", "key", "{", "createdAt", BCON_INT32(-1), "_id", BCON_INT32(-1), "}", "name",
                              BCON_UTF8("events_created"), "}", "1", "{", "key", "{", "startDate", BCON_INT32(1),
                              "endDate", BCON_INT32(1), "}", "name", BCON_UTF8("events_window"), "}");
    bson_t *progress =
        BCON_NEW("0", "{", "key", "{", "userId", BCON_INT32(1), "kind", BCON_INT32(1), "key", BCON_INT32(1), "}",
                 "name", BCON_UTF8("user_progress_key"), "unique", BCON_BOOL(true), "}");
    /* progress_facts needs no index (the idempotency key is its _id), only to exist */
    bool ok = rp_mongo_create_indexes(m, DEFS, defs, err) && rp_mongo_create_indexes(m, EVENTS, events, err) &&
              rp_mongo_create_indexes(m, PROGRESS, progress, err) && create_collection(m, FACTS, err) &&
              rp_mongo_audit_indexes(m, err);
    bson_destroy(defs);
    bson_destroy(events);
    bson_destroy(progress);
    return ok;
}

rp_event_repo_t *rp_event_repo_mongo_open(const char *uri, const char *db_name, rp_err_t *err) {
    rp_mongo_t *m = rp_mongo_open(uri, db_name, "reward-event", err);
    if (!m) return NULL;
    if (!rp_mongo_require_replset(m, err) || !create_indexes(m, err)) {
        rp_mongo_close(m);
        return NULL;
    }
    repo_t *r = rp_calloc(1, sizeof *r);
    r->base.ops = &ops;
    r->m = m;
    return &r->base;
}
