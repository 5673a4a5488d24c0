/* reward_store_mongo.c - the reward repository on MongoDB (see reward_store_mongo.h): a client
 * pool, one transaction per multi-document write, the semantics of reward_store_sqlite.c op by
 * op. Thread-safe: the pool is shared, everything else is per call. */
#include "reward_store_mongo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event_repo_mongo.h"
#include "ids.h"
#include "mem.h"
#include "mongo_util.h"
#include "timeutil.h"

#define REQUESTS RP_EVENT_MONGO_REQUESTS
#define EVENTS RP_EVENT_MONGO_EVENTS
#define LEDGER RP_REWARD_MONGO_LEDGER
#define OUTBOX RP_REWARD_MONGO_OUTBOX
#define IDEM RP_REWARD_MONGO_IDEMPOTENCY
#define BATCHES RP_REWARD_MONGO_BATCHES
#define ITEMS RP_REWARD_MONGO_BATCH_ITEMS
#define COUNTERS RP_REWARD_MONGO_COUNTERS
#define LEASE_COUNTER "batch_lease"

#define ITEM_CHUNK 5000 /* batch items per insert_many in batch_create */

typedef struct mongo_store {
    rp_reward_store_t base;
    rp_mongo_t *m;
} mongo_store_t;

static rp_mongo_t *db_of(rp_reward_store_t *base) {
    return ((mongo_store_t *)base)->m;
}

/* ---- small helpers ---- */

static const char *doc_str(const json_t *doc, const char *key) {
    return json_string_value(json_object_get(doc, key));
}

static int64_t doc_time(const json_t *doc, const char *key) {
    const char *s = doc_str(doc, key);
    int64_t ms = 0;
    if (s && !rp_time_parse_iso(s, strlen(s), &ms)) ms = 0;
    return ms;
}

static const char *idx_key(uint32_t i, char buf[16]) {
    const char *key;
    bson_uint32_to_string(i, &key, buf, 16);
    return key;
}

/* {field: {op: ms}} with ms as a BSON date */
static void append_date_cmp(bson_t *b, const char *field, const char *op, int64_t ms) {
    bson_t cmp;
    BSON_APPEND_DOCUMENT_BEGIN(b, field, &cmp);
    BSON_APPEND_DATE_TIME(&cmp, op, ms);
    bson_append_document_end(b, &cmp);
}

/* {field: {$in: [seqs...]}} */
static void append_seq_in(bson_t *b, const char *field, const int64_t *seqs, size_t n) {
    bson_t in, arr;
    BSON_APPEND_DOCUMENT_BEGIN(b, field, &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
    for (size_t i = 0; i < n; i++) {
        char kb[16];
        const char *key = idx_key((uint32_t)i, kb);
        BSON_APPEND_INT64(&arr, key, seqs[i]);
    }
    bson_append_array_end(&in, &arr);
    bson_append_document_end(b, &in);
}

/* Filter clauses collected in a BSON array and ANDed; MongoDB refuses an empty $and. */
typedef struct clauses {
    bson_t arr;
    uint32_t n;
} clauses_t;

static void clause_eq(clauses_t *c, const char *field, const char *value) {
    char kb[16];
    bson_t cl;
    const char *key = idx_key(c->n++, kb); /* before the macro: it evaluates the key twice */
    BSON_APPEND_DOCUMENT_BEGIN(&c->arr, key, &cl);
    BSON_APPEND_UTF8(&cl, field, value);
    bson_append_document_end(&c->arr, &cl);
}

static void clause_date(clauses_t *c, const char *field, const char *op, int64_t ms) {
    char kb[16];
    bson_t cl;
    const char *key = idx_key(c->n++, kb); /* before the macro: it evaluates the key twice */
    BSON_APPEND_DOCUMENT_BEGIN(&c->arr, key, &cl);
    append_date_cmp(&cl, field, op, ms);
    bson_append_document_end(&c->arr, &cl);
}

/* {$and: clauses} (or {} without any) as a new document. Consumes c. */
static bson_t *clauses_filter(clauses_t *c) {
    bson_t *f = bson_new();
    if (c->n) BSON_APPEND_ARRAY(f, "$and", &c->arr);
    bson_destroy(&c->arr);
    return f;
}

/* ---- request documents ---- */

/* claimedRewards as stored: an array of documents whose fields are opaque values (native BSON
 * unless a client `value` holds keys BSON cannot, see lib/mongo_util.h). */
static void append_claimed(bson_t *b, const json_t *claimed) {
    bson_t arr, el;
    size_t i;
    json_t *c;
    if (!json_is_array(claimed)) {
        rp_mongo_append_opaque(b, "claimedRewards", claimed);
        return;
    }
    BSON_APPEND_ARRAY_BEGIN(b, "claimedRewards", &arr);
    json_array_foreach(claimed, i, c) {
        char kb[16];
        const char *key = idx_key((uint32_t)i, kb), *k;
        json_t *v;
        if (!json_is_object(c)) {
            rp_mongo_append_opaque(&arr, key, c);
            continue;
        }
        BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &el);
        /* the keys are the snapshot's own (grant.c); `value` is the client's JSON */
        json_object_foreach(c, k, v) rp_mongo_append_opaque(&el, k, v);
        bson_append_document_end(&arr, &el);
    }
    bson_append_array_end(b, &arr);
}

static json_t *get_claimed(const bson_t *d) {
    bson_iter_t it, arr, f;
    if (!bson_iter_init_find(&it, d, "claimedRewards") || !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr))
        return rp_mongo_get_opaque(d, "claimedRewards");
    json_t *out = json_array();
    while (bson_iter_next(&arr)) {
        const uint8_t *data;
        uint32_t len;
        bson_t el;
        if (!BSON_ITER_HOLDS_DOCUMENT(&arr)) {
            json_array_append_new(out, rp_mongo_json_from_iter(&arr));
            continue;
        }
        bson_iter_document(&arr, &len, &data);
        json_t *o = json_object();
        if (bson_init_static(&el, data, len) && bson_iter_init(&f, &el)) {
            while (bson_iter_next(&f))
                json_object_set_new(o, bson_iter_key(&f), rp_mongo_get_opaque(&el, bson_iter_key(&f)));
        }
        json_array_append_new(out, o);
    }
    return out;
}

/* The stored form of a request document (see the header); activeKey only when given. */
static bson_t *request_doc(const json_t *req, const char *active_key) {
    bson_t *b = bson_new();
    const char *source = doc_str(req, "source");
    rp_mongo_append_str(b, "_id", doc_str(req, "id"));
    rp_mongo_append_str(b, "userId", doc_str(req, "userId"));
    rp_mongo_append_str(b, "eventId", doc_str(req, "eventId"));
    rp_mongo_append_str(b, "periodKey", doc_str(req, "periodKey"));
    if (active_key) BSON_APPEND_UTF8(b, "activeKey", active_key);
    rp_mongo_append_str(b, "status", doc_str(req, "status"));
    append_claimed(b, json_object_get(req, "claimedRewards"));
    rp_mongo_append_iso(b, "requestedAt", json_object_get(req, "requestedAt"));
    rp_mongo_append_iso(b, "processedAt", json_object_get(req, "processedAt"));
    rp_mongo_append_str(b, "processorId", doc_str(req, "processorId"));
    rp_mongo_append_str(b, "failureReason", doc_str(req, "failureReason"));
    rp_mongo_append_opaque(b, "failureDetails", json_object_get(req, "failureDetails"));
    rp_mongo_append_str(b, "notes", doc_str(req, "notes"));
    BSON_APPEND_UTF8(b, "source", source ? source : "CLAIM");
    rp_mongo_append_str(b, "batchId", doc_str(req, "batchId"));
    rp_mongo_append_iso(b, "createdAt", json_object_get(req, "createdAt"));
    rp_mongo_append_iso(b, "updatedAt", json_object_get(req, "updatedAt"));
    return b;
}

/* The API shape of a stored request (activeKey stays inside the store, as in SQLite). */
static json_t *request_row(const bson_t *d) {
    json_t *o = json_object();
    json_object_set_new(o, "id", rp_mongo_get_json(d, "_id"));
    json_object_set_new(o, "userId", rp_mongo_get_json(d, "userId"));
    json_object_set_new(o, "eventId", rp_mongo_get_json(d, "eventId"));
    json_object_set_new(o, "periodKey", rp_mongo_get_json(d, "periodKey"));
    json_object_set_new(o, "status", rp_mongo_get_json(d, "status"));
    json_object_set_new(o, "claimedRewards", get_claimed(d));
    json_object_set_new(o, "requestedAt", rp_mongo_get_time(d, "requestedAt"));
    json_object_set_new(o, "processedAt", rp_mongo_get_time(d, "processedAt"));
    json_object_set_new(o, "processorId", rp_mongo_get_json(d, "processorId"));
    json_object_set_new(o, "failureReason", rp_mongo_get_json(d, "failureReason"));
    json_object_set_new(o, "failureDetails", rp_mongo_get_opaque(d, "failureDetails"));
    json_object_set_new(o, "notes", rp_mongo_get_json(d, "notes"));
    json_object_set_new(o, "source", rp_mongo_get_json(d, "source"));
    json_object_set_new(o, "batchId", rp_mongo_get_json(d, "batchId"));
    json_object_set_new(o, "createdAt", rp_mongo_get_time(d, "createdAt"));
    json_object_set_new(o, "updatedAt", rp_mongo_get_time(d, "updatedAt"));
    return o;
}

/* The request whose `field` equals value, outside any transaction; *out NULL when none. */
static bool load_request(rp_mongo_t *m, const char *field, const char *value, json_t **out, rp_err_t *err) {
    bson_t *d = NULL;
    *out = NULL;
    if (!value) return true;
    bson_t *filter = BCON_NEW(field, BCON_UTF8(value));
    bool ok = rp_mongo_find_one(m, REQUESTS, filter, NULL, &d, err);
    if (ok && d) *out = request_row(d);
    bson_destroy(d);
    bson_destroy(filter);
    return ok;
}

/* ---- pieces of the grant and transition transactions ---- */

/* Hands out count consecutive numbers of sequence `name`; *first is the first of them. The
 * counter document stays write-locked by this transaction until it ends (see the header). */
static bool next_seq(rp_mongo_txn_t *tx, const char *name, int64_t count, int64_t *first) {
    bson_t *doc = NULL;
    *first = 0;
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(name));
    bson_t *update = BCON_NEW("$inc", "{", "seq", BCON_INT64(count), "}");
    bool ok = rp_mongo_txn_update(tx, COUNTERS, filter, update, RP_MONGO_UPSERT, NULL) &&
              rp_mongo_txn_find_one(tx, COUNTERS, filter, NULL, &doc);
    if (ok && !doc) ok = rp_mongo_txn_fail(tx, RP_ERR_STORE, "STORE_ERROR", "sequence %s: counter not readable", name);
    if (ok) *first = rp_mongo_get_i64(doc, "seq") - count + 1;
    bson_destroy(doc);
    bson_destroy(filter);
    bson_destroy(update);
    return ok;
}

/* One ledger entry per line (negative quantities for a reversal). */
static bool append_ledger(rp_mongo_txn_t *tx, const json_t *req, const rp_grant_line_t *lines, size_t n, bool reversal,
                          const char *processor_id, int64_t now) {
    int64_t seq;
    json_t *claimed = json_object_get(req, "claimedRewards");
    if (n == 0) return true;
    if (!next_seq(tx, LEDGER, (int64_t)n, &seq)) return false;
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
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&doc, "_id", id);
        BSON_APPEND_INT64(&doc, "seq", seq + (int64_t)i);
        rp_mongo_append_str(&doc, "requestId", doc_str(req, "id"));
        rp_mongo_append_str(&doc, "userId", doc_str(req, "userId"));
        rp_mongo_append_str(&doc, "eventId", doc_str(req, "eventId"));
        BSON_APPEND_INT64(&doc, "rewardIndex", lines[i].reward_index);
        BSON_APPEND_UTF8(&doc, "rewardDefinitionId", def ? def : "");
        BSON_APPEND_INT64(&doc, "quantity", reversal ? -lines[i].quantity : lines[i].quantity);
        BSON_APPEND_UTF8(&doc, "entryType", reversal ? "REVERSAL" : "GRANT");
        rp_mongo_append_str(&doc, "processorId", processor_id);
        BSON_APPEND_DATE_TIME(&doc, "at", now);
        ok = rp_mongo_txn_insert(tx, LEDGER, &doc);
        bson_destroy(&doc);
    }
    return ok;
}

static bool append_outbox(rp_mongo_txn_t *tx, const char *message_id, const char *routing_key, const char *request_id,
                          const json_t *payload, int64_t now) {
    int64_t seq;
    if (!next_seq(tx, OUTBOX, 1, &seq)) return false;
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_INT64(&doc, "_id", seq);
    BSON_APPEND_UTF8(&doc, "messageId", message_id);
    BSON_APPEND_UTF8(&doc, "routingKey", routing_key);
    rp_mongo_append_str(&doc, "requestId", request_id);
    rp_mongo_append_opaque(&doc, "payload", payload);
    BSON_APPEND_DATE_TIME(&doc, "createdAt", now);
    BSON_APPEND_NULL(&doc, "publishedAt");
    BSON_APPEND_NULL(&doc, "leaseOwner");
    BSON_APPEND_NULL(&doc, "leaseUntil");
    bool ok = rp_mongo_txn_insert(tx, OUTBOX, &doc);
    bson_destroy(&doc);
    return ok;
}

/* Writes the event document, so that a concurrent event_update (which checks for requests of
 * the event before replacing its rewards) write-conflicts with this grant. */
static bool touch_event(rp_mongo_txn_t *tx, const char *event_id) {
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(event_id));
    bson_t *update = BCON_NEW("$inc", "{", "grants", BCON_INT64(1), "}");
    bool ok = rp_mongo_txn_update(tx, EVENTS, filter, update, 0, NULL);
    bson_destroy(filter);
    bson_destroy(update);
    return ok;
}

/* Takes (guarded, never below zero) or gives back the stock of every limited line of event_id.
 * A reward whose stockLeft is null is unlimited and left alone; a reward (or event) that does not
 * exist cannot be taken from, as in SQLite where no row matches. Returns 1 when done, 0 when a
 * stock could not cover its line (the caller must abort: earlier lines were taken), -1 on a
 * driver error. */
static int move_stock(rp_mongo_txn_t *tx, const char *event_id, const rp_grant_line_t *lines, size_t n,
                      bool give_back) {
    bson_t *ev = NULL;
    int rc = 1;
    if (n == 0) return 1;
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(event_id));
    bson_t *opts = BCON_NEW("projection", "{", "rewards.stockLeft", BCON_INT32(1), "}");
    bool ok = rp_mongo_txn_find_one(tx, EVENTS, filter, opts, &ev);
    bson_destroy(opts);
    if (!ok) rc = -1;
    for (size_t i = 0; rc == 1 && i < n; i++) {
        char elem[48], path[64];
        bson_iter_t it, found;
        snprintf(elem, sizeof elem, "rewards.%d", lines[i].reward_index);
        snprintf(path, sizeof path, "rewards.%d.stockLeft", lines[i].reward_index);
        if (!ev || lines[i].reward_index < 0 || !bson_iter_init(&it, ev) ||
            !bson_iter_find_descendant(&it, elem, &found)) {
            if (!give_back) rc = 0;
            continue;
        }
        if (!bson_iter_init(&it, ev) || !bson_iter_find_descendant(&it, path, &found) ||
            !BSON_ITER_HOLDS_NUMBER(&found))
            continue; /* unlimited */
        bson_t guard = BSON_INITIALIZER, update = BSON_INITIALIZER, inc, gte;
        BSON_APPEND_UTF8(&guard, "_id", event_id);
        if (!give_back) {
            BSON_APPEND_DOCUMENT_BEGIN(&guard, path, &gte);
            BSON_APPEND_INT64(&gte, "$gte", lines[i].quantity);
            bson_append_document_end(&guard, &gte);
        }
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
        BSON_APPEND_INT64(&inc, path, give_back ? lines[i].quantity : -lines[i].quantity);
        bson_append_document_end(&update, &inc);
        rp_mongo_write_t res;
        if (!rp_mongo_txn_update(tx, EVENTS, &guard, &update, 0, &res))
            rc = -1;
        else if (res.matched == 0 && !give_back)
            rc = 0;
        bson_destroy(&guard);
        bson_destroy(&update);
    }
    bson_destroy(ev);
    bson_destroy(filter);
    return rc;
}

/* Settles a QUEUED batch item as SUCCESS with request_id; 1 when it moved, 0 when it was settled
 * already (by another delivery), -1 on a driver error. */
static int settle_item(rp_mongo_txn_t *tx, const char *batch_id, int64_t seq, const char *request_id, int64_t now) {
    rp_mongo_write_t res;
    bson_t *filter = BCON_NEW("batchId", BCON_UTF8(batch_id), "seq", BCON_INT64(seq), "status", BCON_UTF8("QUEUED"));
    bson_t *update = BCON_NEW("$set", "{", "status", BCON_UTF8("SUCCESS"), "failureReason", BCON_NULL, "requestId",
                              BCON_UTF8(request_id), "settledAt", BCON_DATE_TIME(now), "}");
    bool ok = rp_mongo_txn_update(tx, ITEMS, filter, update, 0, &res);
    bson_destroy(filter);
    bson_destroy(update);
    return !ok ? -1 : res.matched > 0 ? 1 : 0;
}

/* ---- the grant ---- */

typedef struct grant_arg {
    const rp_grant_input_t *in;
    const char *id, *user, *event;
    bool success;
    int64_t now;
    /* results of the last attempt (the driver may run the body several times) */
    rp_grant_outcome_t outcome; /* a refusal decided by the body; it then aborted */
    json_t *existing;           /* with RP_GRANT_DUPLICATE found by the active-key check */
    bool insert_failed;         /* the request insert itself failed */
} grant_arg_t;

/* Ends the attempt with a refusal: aborted (so nothing this attempt wrote stays) and not rerun. */
static bool refuse_grant(rp_mongo_txn_t *tx, grant_arg_t *a, rp_grant_outcome_t outcome) {
    a->outcome = outcome;
    return rp_mongo_txn_fail(tx, RP_ERR_CONFLICT, "GRANT_REFUSED", "grant refused (outcome %d)", (int)outcome);
}

static bool grant_txn(rp_mongo_txn_t *tx, void *p) {
    grant_arg_t *a = p;
    const rp_grant_input_t *in = a->in;
    bson_t *doc = NULL, *filter, *opts;
    bool ok;
    a->outcome = RP_GRANT_OK;
    json_decref(a->existing);
    a->existing = NULL;
    a->insert_failed = false;
    if (in->batch_id) {
        int r = settle_item(tx, in->batch_id, in->batch_seq, a->id, a->now);
        if (r < 0) return false;
        if (r == 0) return refuse_grant(tx, a, RP_GRANT_ITEM_SETTLED);
    }
    filter = BCON_NEW("activeKey", BCON_UTF8(in->active_key));
    ok = rp_mongo_txn_find_one(tx, REQUESTS, filter, NULL, &doc);
    bson_destroy(filter);
    if (!ok) return false;
    if (doc) {
        a->existing = request_row(doc);
        bson_destroy(doc);
        return refuse_grant(tx, a, RP_GRANT_DUPLICATE);
    }
    if (in->max_claims_per_user > 0) {
        /* "count >= max" without a count: is there a max-th non-FAILED request? */
        filter = BCON_NEW("userId", BCON_UTF8(a->user), "eventId", BCON_UTF8(a->event), "status", "{", "$ne",
                          BCON_UTF8("FAILED"), "}");
        opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}", "skip", BCON_INT64(in->max_claims_per_user - 1));
        ok = rp_mongo_txn_find_one(tx, REQUESTS, filter, opts, &doc);
        bson_destroy(filter);
        bson_destroy(opts);
        if (!ok) return false;
        if (doc) {
            bson_destroy(doc);
            return refuse_grant(tx, a, RP_GRANT_LIMIT_REACHED);
        }
    }
    if (!touch_event(tx, a->event)) return false;
    if (a->success) {
        int r = move_stock(tx, a->event, in->lines, in->nlines, false);
        if (r < 0) return false;
        if (r == 0) return refuse_grant(tx, a, RP_GRANT_OUT_OF_STOCK);
    }
    doc = request_doc(in->request, in->active_key);
    ok = rp_mongo_txn_insert(tx, REQUESTS, doc);
    bson_destroy(doc);
    if (!ok) {
        a->insert_failed = true;
        return false;
    }
    if (!a->success) return true;
    return append_ledger(tx, in->request, in->lines, in->nlines, false, doc_str(in->request, "processorId"), a->now) &&
           append_outbox(tx, a->id, "reward.granted", a->id, in->outbox_payload, a->now);
}

static bool m_grant(rp_reward_store_t *base, const rp_grant_input_t *in, rp_grant_outcome_t *outcome, json_t **existing,
                    rp_err_t *err) {
    rp_err_t e;
    const char *status = doc_str(in->request, "status");
    grant_arg_t a = {.in = in,
                     .id = doc_str(in->request, "id"),
                     .user = doc_str(in->request, "userId"),
                     .event = doc_str(in->request, "eventId"),
                     .success = status && strcmp(status, "SUCCESS") == 0,
                     .now = doc_time(in->request, "createdAt")};
    *outcome = RP_GRANT_OK;
    *existing = NULL;
    if (!a.id || !a.user || !a.event || !in->active_key) {
        rp_err_set(err, RP_ERR_STORE, "STORE_ERROR", "grant: the request lacks id, userId, eventId or active key");
        return false;
    }
    rp_err_clear(&e);
    bool ok = rp_mongo_transact(db_of(base), "grant", grant_txn, &a, &e);
    if (!ok && a.outcome != RP_GRANT_OK) {
        /* refused by the body, transaction aborted: nothing written, as SQLite's ROLLBACK */
        ok = true;
        *outcome = a.outcome;
        *existing = a.existing;
        a.existing = NULL;
    } else if (!ok && a.insert_failed && e.kind == RP_ERR_CONFLICT && strcmp(e.code, "DUPLICATE_KEY") == 0) {
        /* a concurrent grant took the active key after our check: answer with its request,
         * read after the abort (no retry: the unique index has decided) */
        *outcome = RP_GRANT_DUPLICATE;
        ok = load_request(db_of(base), "activeKey", in->active_key, existing, err);
    } else if (!ok && err) {
        *err = e;
    }
    json_decref(a.existing);
    return ok;
}

typedef struct failed_arg {
    const char *event_id;
    const bson_t *doc;
} failed_arg_t;

static bool record_failed_txn(rp_mongo_txn_t *tx, void *p) {
    failed_arg_t *a = p;
    /* touching the event makes a concurrent reward edit conflict, as every recorded request
     * does in SQLite (rewards are fixed once any request exists) */
    return touch_event(tx, a->event_id) && rp_mongo_txn_insert(tx, REQUESTS, a->doc);
}

static bool m_record_failed(rp_reward_store_t *base, json_t *request, rp_err_t *err) {
    const char *event_id = doc_str(request, "eventId");
    if (!event_id) {
        rp_err_set(err, RP_ERR_STORE, "STORE_ERROR", "record failed: the request has no eventId");
        return false;
    }
    bson_t *doc = request_doc(request, NULL); /* FAILED: no active key */
    failed_arg_t a = {event_id, doc};
    rp_err_t e;
    rp_err_clear(&e);
    bool ok = rp_mongo_transact(db_of(base), "record failed request", record_failed_txn, &a, &e);
    if (!ok && e.kind == RP_ERR_CONFLICT) rp_err_set(&e, RP_ERR_STORE, "STORE_ERROR", "request id collision");
    if (!ok && err) *err = e;
    bson_destroy(doc);
    return ok;
}

/* ---- decisions ---- */

typedef struct transition_arg {
    const char *id, *from, *to, *processor, *notes, *reason;
    const rp_grant_line_t *lines;
    size_t nlines;
    const json_t *payload;
    int64_t now;
    bool force_failed; /* input: an earlier transaction found a stock short, fail the request instead */
    /* results of the last attempt */
    rp_decide_outcome_t outcome;
    bool short_stock; /* aborted: a stock could not cover a line */
    json_t *after;
} transition_arg_t;

static bool end_transition(rp_mongo_txn_t *tx, transition_arg_t *a, rp_decide_outcome_t outcome) {
    a->outcome = outcome;
    return rp_mongo_txn_fail(tx, RP_ERR_CONFLICT, "TRANSITION_REFUSED", "transition refused (outcome %d)",
                             (int)outcome);
}

static bool set_status(rp_mongo_txn_t *tx, const transition_arg_t *a, const char *to, const char *reason,
                       bool release_key) {
    rp_mongo_write_t res;
    bson_t update = BSON_INITIALIZER, set, unset;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", to);
    BSON_APPEND_DATE_TIME(&set, "processedAt", a->now);
    rp_mongo_append_str(&set, "processorId", a->processor);
    if (a->notes) BSON_APPEND_UTF8(&set, "notes", a->notes);
    rp_mongo_append_str(&set, "failureReason", reason);
    BSON_APPEND_DATE_TIME(&set, "updatedAt", a->now);
    bson_append_document_end(&update, &set);
    if (release_key) {
        /* FAILED requests carry no activeKey at all: the partial unique index skips them */
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
        BSON_APPEND_UTF8(&unset, "activeKey", "");
        bson_append_document_end(&update, &unset);
    }
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(a->id), "status", BCON_UTF8(a->from));
    bool ok = rp_mongo_txn_update(tx, REQUESTS, filter, &update, 0, &res);
    bson_destroy(filter);
    bson_destroy(&update);
    /* the body read the request in this transaction's snapshot; a concurrent change conflicts */
    if (ok && res.matched == 0)
        ok = rp_mongo_txn_fail(tx, RP_ERR_STORE, "STORE_ERROR", "transition: request %s moved", a->id);
    return ok;
}

static bool transition_txn(rp_mongo_txn_t *tx, void *p) {
    transition_arg_t *a = p;
    bson_t *doc = NULL;
    json_t *req = NULL;
    bool ok = false;
    a->outcome = RP_DECIDE_OK;
    a->short_stock = false;
    json_decref(a->after);
    a->after = NULL;
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(a->id));
    if (!rp_mongo_txn_find_one(tx, REQUESTS, filter, NULL, &doc)) goto done;
    if (!doc) {
        ok = end_transition(tx, a, RP_DECIDE_NOT_FOUND);
        goto done;
    }
    req = request_row(doc);
    const char *status = doc_str(req, "status"), *event = doc_str(req, "eventId");
    if (!status || strcmp(status, a->from) != 0) {
        a->after = json_incref(req);
        ok = end_transition(tx, a, RP_DECIDE_WRONG_STATE);
        goto done;
    }
    const char *to = a->to, *reason = a->reason;
    if (strcmp(a->to, "SUCCESS") == 0) {
        if (a->force_failed) {
            to = "FAILED";
            reason = "OUT_OF_STOCK";
            a->outcome = RP_DECIDE_OUT_OF_STOCK;
        } else {
            int r = move_stock(tx, event ? event : "", a->lines, a->nlines, false);
            if (r < 0) goto done;
            if (r == 0) {
                /* abort the decrements of earlier lines; the caller fails the request in a new transaction */
                a->short_stock = true;
                ok = rp_mongo_txn_fail(tx, RP_ERR_CONFLICT, "OUT_OF_STOCK", "transition: out of stock");
                goto done;
            }
        }
    } else if (strcmp(a->to, "REVOKED") == 0) {
        char mid[64];
        snprintf(mid, sizeof mid, "%s:revoked", a->id);
        if (move_stock(tx, event ? event : "", a->lines, a->nlines, true) < 0 ||
            !append_ledger(tx, req, a->lines, a->nlines, true, a->processor, a->now) ||
            !append_outbox(tx, mid, "reward.revoked", a->id, a->payload, a->now))
            goto done;
    }
    bool release = strcmp(to, "FAILED") == 0;
    if (!set_status(tx, a, to, release || strcmp(to, "REVOKED") == 0 ? reason : NULL, release)) goto done;
    if (strcmp(to, "SUCCESS") == 0 && (!append_ledger(tx, req, a->lines, a->nlines, false, a->processor, a->now) ||
                                       !append_outbox(tx, a->id, "reward.granted", a->id, a->payload, a->now)))
        goto done;
    bson_destroy(doc);
    doc = NULL;
    if (!rp_mongo_txn_find_one(tx, REQUESTS, filter, NULL, &doc)) goto done;
    if (!doc) {
        ok = rp_mongo_txn_fail(tx, RP_ERR_STORE, "STORE_ERROR", "transition: request %s vanished", a->id);
        goto done;
    }
    a->after = request_row(doc);
    ok = true;
done:
    bson_destroy(doc);
    bson_destroy(filter);
    json_decref(req);
    return ok;
}

static bool m_transition(rp_reward_store_t *base, const char *id, const char *from_status, const char *to_status,
                         const char *processor_id, const char *notes, const char *failure_reason,
                         const rp_grant_line_t *lines, size_t nlines, json_t *outbox_payload, int64_t now_ms,
                         rp_decide_outcome_t *outcome, json_t **after, rp_err_t *err) {
    rp_err_t e;
    transition_arg_t a = {.id = id,
                          .from = from_status,
                          .to = to_status,
                          .processor = processor_id,
                          .notes = notes,
                          .reason = failure_reason,
                          .lines = lines,
                          .nlines = nlines,
                          .payload = outbox_payload,
                          .now = now_ms};
    *outcome = RP_DECIDE_OK;
    *after = NULL;
    rp_err_clear(&e);
    bool ok = rp_mongo_transact(db_of(base), "transition", transition_txn, &a, &e);
    if (!ok && a.short_stock) {
        a.force_failed = true;
        rp_err_clear(&e);
        ok = rp_mongo_transact(db_of(base), "transition", transition_txn, &a, &e);
    }
    if (!ok && (a.outcome == RP_DECIDE_NOT_FOUND || a.outcome == RP_DECIDE_WRONG_STATE)) ok = true;
    if (ok) {
        *outcome = a.outcome;
        *after = a.after;
        a.after = NULL;
    } else if (err) {
        *err = e;
    }
    json_decref(a.after);
    return ok;
}

/* ---- reads ---- */

static bool m_ping(rp_reward_store_t *base, rp_err_t *err) {
    return rp_mongo_ping(db_of(base), err);
}

static bool m_get_request(rp_reward_store_t *base, const char *id, json_t **request, rp_err_t *err) {
    return load_request(db_of(base), "_id", id, request, err);
}

static bool m_find_active(rp_reward_store_t *base, const char *active_key, json_t **request, rp_err_t *err) {
    return load_request(db_of(base), "activeKey", active_key, request, err);
}

static bool m_list_requests(rp_reward_store_t *base, const rp_request_filter_t *f, json_t **items, bool *more,
                            rp_err_t *err) {
    clauses_t c = {BSON_INITIALIZER, 0};
    int rc = 1;
    bool ok = false;
    *items = NULL;
    *more = false;
    if (f->user_id) clause_eq(&c, "userId", f->user_id);
    if (f->event_id) clause_eq(&c, "eventId", f->event_id);
    if (f->status) clause_eq(&c, "status", f->status);
    if (f->from_ms) clause_date(&c, "requestedAt", "$gte", f->from_ms);
    if (f->to_ms) clause_date(&c, "requestedAt", "$lt", f->to_ms);
    /* newest first by request time, the id breaking ties and naming the cursor document */
    if (f->cursor) rc = rp_mongo_cursor_clause(db_of(base), REQUESTS, f->cursor, "requestedAt", &c.arr, &c.n, err);
    bson_t *filter = clauses_filter(&c);
    if (rc == 0) { /* unknown cursor: an empty page, as in SQLite */
        *items = json_array();
        ok = true;
    } else if (rc > 0) {
        bson_t *sort = BCON_NEW("requestedAt", BCON_INT32(-1), "_id", BCON_INT32(-1));
        ok = rp_mongo_find_page(db_of(base), REQUESTS, filter, sort, f->limit, request_row, items, more, err);
        bson_destroy(sort);
    }
    bson_destroy(filter);
    return ok;
}

static json_t *ledger_row(const bson_t *d) {
    json_t *e = json_object();
    json_object_set_new(e, "seq", json_integer(rp_mongo_get_i64(d, "seq")));
    json_object_set_new(e, "id", rp_mongo_get_json(d, "_id"));
    json_object_set_new(e, "requestId", rp_mongo_get_json(d, "requestId"));
    json_object_set_new(e, "userId", rp_mongo_get_json(d, "userId"));
    json_object_set_new(e, "eventId", rp_mongo_get_json(d, "eventId"));
    json_object_set_new(e, "rewardIndex", json_integer(rp_mongo_get_i64(d, "rewardIndex")));
    json_object_set_new(e, "rewardDefinitionId", rp_mongo_get_json(d, "rewardDefinitionId"));
    json_object_set_new(e, "quantity", json_integer(rp_mongo_get_i64(d, "quantity")));
    json_object_set_new(e, "entryType", rp_mongo_get_json(d, "entryType"));
    json_object_set_new(e, "processorId", rp_mongo_get_json(d, "processorId"));
    json_object_set_new(e, "at", rp_mongo_get_time(d, "at"));
    return e;
}

static bool m_list_ledger(rp_reward_store_t *base, const char *user_id, const char *event_id, int64_t after_seq,
                          int limit, json_t **items, bool *more, rp_err_t *err) {
    bson_t *filter = BCON_NEW("seq", "{", "$gt", BCON_INT64(after_seq), "}");
    if (user_id) BSON_APPEND_UTF8(filter, "userId", user_id);
    if (event_id) BSON_APPEND_UTF8(filter, "eventId", event_id);
    bson_t *sort = BCON_NEW("seq", BCON_INT32(1));
    bool ok = rp_mongo_find_page(db_of(base), LEDGER, filter, sort, limit, ledger_row, items, more, err);
    bson_destroy(filter);
    bson_destroy(sort);
    return ok;
}

static json_t *outbox_row(const bson_t *d) {
    json_t *e = json_object();
    json_object_set_new(e, "seq", json_integer(rp_mongo_get_i64(d, "_id")));
    json_object_set_new(e, "messageId", rp_mongo_get_json(d, "messageId"));
    json_object_set_new(e, "routingKey", rp_mongo_get_json(d, "routingKey"));
    json_object_set_new(e, "requestId", rp_mongo_get_json(d, "requestId"));
    json_object_set_new(e, "payload", rp_mongo_get_opaque(d, "payload"));
    json_object_set_new(e, "createdAt", rp_mongo_get_time(d, "createdAt"));
    json_object_set_new(e, "publishedAt", rp_mongo_get_time(d, "publishedAt"));
    return e;
}

static bool m_list_outbox(rp_reward_store_t *base, int64_t after_seq, int limit, json_t **items, bool *more,
                          rp_err_t *err) {
    bson_t *filter = BCON_NEW("_id", "{", "$gt", BCON_INT64(after_seq), "}");
    bson_t *sort = BCON_NEW("_id", BCON_INT32(1));
    bool ok = rp_mongo_find_page(db_of(base), OUTBOX, filter, sort, limit, outbox_row, items, more, err);
    bson_destroy(filter);
    bson_destroy(sort);
    return ok;
}

/* ---- the outbox relay ---- */

/* {publishedAt: null, $or: [{leaseUntil: null}, {leaseUntil: {$lt: now}}, {leaseOwner: owner}]}
 * appended to b: what a relay may lease (SQLite's condition). */
static void append_leasable(bson_t *b, const char *owner, int64_t now) {
    bson_t alts, alt;
    BSON_APPEND_NULL(b, "publishedAt");
    BSON_APPEND_ARRAY_BEGIN(b, "$or", &alts);
    BSON_APPEND_DOCUMENT_BEGIN(&alts, "0", &alt);
    BSON_APPEND_NULL(&alt, "leaseUntil");
    bson_append_document_end(&alts, &alt);
    BSON_APPEND_DOCUMENT_BEGIN(&alts, "1", &alt);
    append_date_cmp(&alt, "leaseUntil", "$lt", now);
    bson_append_document_end(&alts, &alt);
    BSON_APPEND_DOCUMENT_BEGIN(&alts, "2", &alt);
    BSON_APPEND_UTF8(&alt, "leaseOwner", owner);
    bson_append_document_end(&alts, &alt);
    bson_append_array_end(b, &alts);
}

typedef struct seq_list {
    int64_t *v;
    size_t n, cap;
} seq_list_t;

static bool collect_seq(const bson_t *doc, void *p) {
    seq_list_t *l = p;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = rp_realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = rp_mongo_get_i64(doc, "_id");
    return true;
}

static bool collect_leased(const bson_t *d, void *p) {
    json_array_append_new(p,
                          json_pack("{s:I, s:o, s:o, s:o}", "seq", (json_int_t)rp_mongo_get_i64(d, "_id"), "messageId",
                                    rp_mongo_get_json(d, "messageId"), "routingKey", rp_mongo_get_json(d, "routingKey"),
                                    "payload", rp_mongo_get_opaque(d, "payload")));
    return true;
}

/* Without a transaction: the guarded update_many leases each message atomically, and relays
 * racing for the same messages each get only those their own guard matched. */
static bool m_outbox_lease(rp_reward_store_t *base, const char *owner, int64_t now, int64_t lease_ms, int limit,
                           json_t **items, rp_err_t *err) {
    rp_mongo_t *m = db_of(base);
    seq_list_t cand = {0};
    bool ok = false;
    *items = NULL;
    bson_t *filter = bson_new(), *opts = NULL, *update = NULL, *leased = NULL, *sort = NULL;
    if (limit <= 0) { /* SQLite's LIMIT 0: nothing (a MongoDB limit 0 would be "all") */
        *items = json_array();
        ok = true;
        goto done;
    }
    append_leasable(filter, owner, now);
    opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}", "sort", "{", "_id", BCON_INT32(1), "}", "limit",
                    BCON_INT64(limit));
    if (!rp_mongo_find(m, OUTBOX, filter, opts, collect_seq, &cand, err)) goto done;
    if (cand.n > 0) {
        bson_t guard = BSON_INITIALIZER;
        append_seq_in(&guard, "_id", cand.v, cand.n);
        append_leasable(&guard, owner, now);
        update =
            BCON_NEW("$set", "{", "leaseOwner", BCON_UTF8(owner), "leaseUntil", BCON_DATE_TIME(now + lease_ms), "}");
        bool leased_ok = rp_mongo_update(m, OUTBOX, &guard, update, RP_MONGO_MANY, NULL, err);
        bson_destroy(&guard);
        if (!leased_ok) goto done;
    }
    leased = BCON_NEW("publishedAt", BCON_NULL, "leaseOwner", BCON_UTF8(owner), "leaseUntil",
                      BCON_DATE_TIME(now + lease_ms));
    sort = BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}");
    *items = json_array();
    ok = rp_mongo_find(m, OUTBOX, leased, sort, collect_leased, *items, err);
done:
    if (!ok) {
        json_decref(*items);
        *items = NULL;
    }
    free(cand.v);
    bson_destroy(filter);
    bson_destroy(opts);
    bson_destroy(update);
    bson_destroy(leased);
    bson_destroy(sort);
    return ok;
}

static bool m_outbox_published(rp_reward_store_t *base, const int64_t *seqs, size_t n, int64_t now, rp_err_t *err) {
    if (n == 0) return true;
    bson_t filter = BSON_INITIALIZER;
    append_seq_in(&filter, "_id", seqs, n);
    BSON_APPEND_NULL(&filter, "publishedAt");
    bson_t *update = BCON_NEW("$set", "{", "publishedAt", BCON_DATE_TIME(now), "leaseOwner", BCON_NULL, "leaseUntil",
                              BCON_NULL, "}");
    bool ok = rp_mongo_update(db_of(base), OUTBOX, &filter, update, RP_MONGO_MANY, NULL, err);
    bson_destroy(&filter);
    bson_destroy(update);
    return ok;
}

/* ---- claim idempotency ---- */

static bool m_idem_get(rp_reward_store_t *base, const char *user_id, const char *key, bool *found, char hash[65],
                       int *status, json_t **response, rp_err_t *err) {
    bson_t *doc = NULL;
    *found = false;
    *response = NULL;
    hash[0] = '\0';
    *status = 0;
    bson_t *filter = BCON_NEW("userId", BCON_UTF8(user_id), "key", BCON_UTF8(key));
    bool ok = rp_mongo_find_one(db_of(base), IDEM, filter, NULL, &doc, err);
    if (ok && doc) {
        *found = true;
        rp_mongo_copy_str(doc, "requestHash", hash, 65);
        *status = (int)rp_mongo_get_i64(doc, "status");
        *response = rp_mongo_get_opaque(doc, "response");
    }
    bson_destroy(doc);
    bson_destroy(filter);
    return ok;
}

static bool m_idem_put(rp_reward_store_t *base, const char *user_id, const char *key, const char *hash, int status,
                       const json_t *response, int64_t now_ms, rp_err_t *err) {
    char id[RP_OID_LEN];
    bson_error_t berr;
    bson_t doc = BSON_INITIALIZER;
    rp_oid_new(id);
    BSON_APPEND_UTF8(&doc, "_id", id);
    BSON_APPEND_UTF8(&doc, "userId", user_id);
    BSON_APPEND_UTF8(&doc, "key", key);
    BSON_APPEND_UTF8(&doc, "requestHash", hash);
    BSON_APPEND_INT32(&doc, "status", status);
    rp_mongo_append_opaque(&doc, "response", response);
    BSON_APPEND_DATE_TIME(&doc, "createdAt", now_ms);
    bool ok = rp_mongo_insert(db_of(base), IDEM, &doc, &berr, err);
    if (!ok && rp_mongo_is_duplicate(&berr)) ok = true; /* the first response stays (ON CONFLICT DO NOTHING) */
    bson_destroy(&doc);
    return ok;
}

/* ---- batches ---- */

/* A batch is created in steps, each durable (w: majority) and each safe to repeat, rather than
 * in one transaction: 100,000 items would strain a transaction's size and its 60 s lifetime.
 *   1. the batch document, state CREATING (the unique (createdBy, idemKey) index decides races);
 *   2. the items, in chunks, parked (dueAt = PARKED_AT: no sweeper takes them); _id is
 *      "<batch>:<seq>", so a repeated chunk only meets duplicate keys;
 *   3. the parked items made due at the batch's creation time;
 *   4. the batch document, state OPEN.
 * A creation cut short by a crash is finished by the next post with the same Idempotency-Key
 * (the same body, so the same items); without a key the client, who got no 202, posts a new
 * batch and the parked items of the broken one are never sent. */
#define PARKED_AT INT64_C(253402300799000) /* 9999-12-31T23:59:59Z */

static bson_t *item_doc(const char *batch_id, int64_t seq, const char *user_id, int64_t due) {
    char id[64];
    snprintf(id, sizeof id, "%s:%lld", batch_id, (long long)seq);
    return BCON_NEW("_id", BCON_UTF8(id), "batchId", BCON_UTF8(batch_id), "seq", BCON_INT64(seq), "userId",
                    BCON_UTF8(user_id), "status", BCON_UTF8("QUEUED"), "failureReason", BCON_NULL, "requestId",
                    BCON_NULL, "attempts", BCON_INT64(0), "dueAt", BCON_DATE_TIME(due), "settledAt", BCON_NULL);
}

/* Options {writeConcern: {w: "majority"}} (plus ordered: false for inserts). */
static bson_t *majority_opts(bool unordered) {
    bson_t *o = bson_new();
    mongoc_write_concern_t *wc = mongoc_write_concern_new();
    mongoc_write_concern_set_w(wc, MONGOC_WRITE_CONCERN_W_MAJORITY);
    mongoc_write_concern_append(wc, o);
    mongoc_write_concern_destroy(wc);
    if (unordered) BSON_APPEND_BOOL(o, "ordered", false);
    return o;
}

/* Step 2: inserts the items in chunks; duplicate keys (a repeated step) are not errors. */
static bool insert_items(rp_mongo_t *m, const rp_batch_input_t *in, const char *batch_id, rp_err_t *err) {
    bson_error_t berr;
    mongoc_client_t *cli = rp_mongo_pop(m, err);
    if (!cli) return false;
    mongoc_collection_t *c = rp_mongo_collection(m, cli, ITEMS);
    bson_t *opts = majority_opts(true);
    bson_t **docs = rp_calloc(ITEM_CHUNK, sizeof *docs);
    bool ok = true;
    for (size_t from = 0; ok && from < in->nusers; from += ITEM_CHUNK) {
        size_t n = in->nusers - from < ITEM_CHUNK ? in->nusers - from : ITEM_CHUNK;
        for (size_t i = 0; i < n; i++)
            docs[i] = item_doc(batch_id, (int64_t)(from + i) + 1, in->user_ids[from + i], PARKED_AT);
        bson_t reply;
        ok = mongoc_collection_insert_many(c, (const bson_t **)docs, n, opts, &reply, &berr) ||
             rp_mongo_is_duplicate(&berr);
        if (!ok) rp_mongo_err(&berr, "insert batch items", err);
        bson_destroy(&reply);
        for (size_t i = 0; i < n; i++)
            bson_destroy(docs[i]);
    }
    free(docs);
    bson_destroy(opts);
    mongoc_collection_destroy(c);
    rp_mongo_push(m, cli);
    return ok;
}

/* Steps 3 and 4. */
static bool open_batch(rp_mongo_t *m, const char *batch_id, int64_t created_at, rp_err_t *err) {
    bson_error_t berr;
    mongoc_client_t *cli = rp_mongo_pop(m, err);
    if (!cli) return false;
    bson_t *opts = majority_opts(false);
    mongoc_collection_t *items = rp_mongo_collection(m, cli, ITEMS), *batches = rp_mongo_collection(m, cli, BATCHES);
    bson_t *f1 =
        BCON_NEW("batchId", BCON_UTF8(batch_id), "status", BCON_UTF8("QUEUED"), "dueAt", BCON_DATE_TIME(PARKED_AT));
    bson_t *u1 = BCON_NEW("$set", "{", "dueAt", BCON_DATE_TIME(created_at), "}");
    bson_t *f2 = BCON_NEW("_id", BCON_UTF8(batch_id));
    bson_t *u2 = BCON_NEW("$set", "{", "state", BCON_UTF8("OPEN"), "}");
    bool ok = mongoc_collection_update_many(items, f1, u1, opts, NULL, &berr) &&
              mongoc_collection_update_one(batches, f2, u2, opts, NULL, &berr);
    if (!ok) rp_mongo_err(&berr, "open batch", err);
    bson_destroy(f1);
    bson_destroy(u1);
    bson_destroy(f2);
    bson_destroy(u2);
    bson_destroy(opts);
    mongoc_collection_destroy(items);
    mongoc_collection_destroy(batches);
    rp_mongo_push(m, cli);
    return ok;
}

static bool m_batch_create(rp_reward_store_t *base, const rp_batch_input_t *in, bool *existed, char existing_id[25],
                           char existing_hash[65], rp_err_t *err) {
    rp_mongo_t *m = db_of(base);
    const char *key = in->idempotency_key && in->idempotency_key[0] ? in->idempotency_key : NULL;
    *existed = false;
    existing_id[0] = existing_hash[0] = '\0';
    for (int attempt = 0; attempt < 2; attempt++) {
        if (key) {
            bson_t *found = NULL, *filter = BCON_NEW("createdBy", BCON_UTF8(in->created_by), "idemKey", BCON_UTF8(key));
            bool ok = rp_mongo_find_one(m, BATCHES, filter, NULL, &found, err);
            bson_destroy(filter);
            if (!ok) return false;
            if (found) {
                char state[16];
                *existed = true;
                rp_mongo_copy_str(found, "_id", existing_id, 25);
                rp_mongo_copy_str(found, "requestHash", existing_hash, 65);
                rp_mongo_copy_str(found, "state", state, sizeof state);
                int64_t created_at = rp_mongo_get_ms(found, "createdAt");
                bson_destroy(found);
                /* the same body cut short by a crash: finish it; anything else is the caller's */
                if (strcmp(state, "CREATING") == 0 && strcmp(existing_hash, in->request_hash) == 0)
                    return insert_items(m, in, existing_id, err) && open_batch(m, existing_id, created_at, err);
                return true;
            }
        }
        bson_t *batch = bson_new();
        rp_mongo_append_str(batch, "_id", in->id);
        rp_mongo_append_str(batch, "eventId", in->event_id);
        rp_mongo_append_str(batch, "reason", in->reason);
        rp_mongo_append_str(batch, "createdBy", in->created_by);
        if (key) BSON_APPEND_UTF8(batch, "idemKey", key); /* absent without a key: the unique index is partial */
        rp_mongo_append_str(batch, "requestHash", in->request_hash);
        BSON_APPEND_INT64(batch, "total", (int64_t)in->nusers);
        BSON_APPEND_INT64(batch, "duplicates", in->duplicates);
        BSON_APPEND_DATE_TIME(batch, "createdAt", in->created_at);
        BSON_APPEND_UTF8(batch, "state", "CREATING");
        bson_error_t berr;
        rp_err_t e;
        rp_err_clear(&e);
        bool ok = false;
        mongoc_client_t *cli = rp_mongo_pop(m, &e);
        if (cli) {
            mongoc_collection_t *c = rp_mongo_collection(m, cli, BATCHES);
            bson_t *opts = majority_opts(false);
            ok = mongoc_collection_insert_one(c, batch, opts, NULL, &berr);
            if (!ok) rp_mongo_err(&berr, "insert batch", &e);
            bson_destroy(opts);
            mongoc_collection_destroy(c);
            rp_mongo_push(m, cli);
        } else {
            memset(&berr, 0, sizeof berr);
        }
        bson_destroy(batch);
        if (ok) return insert_items(m, in, in->id, err) && open_batch(m, in->id, in->created_at, err);
        /* a concurrent post with the same key inserted first: read its batch on the next round */
        if (!(key && rp_mongo_is_duplicate(&berr))) {
            if (err) *err = e;
            return false;
        }
    }
    rp_err_set(err, RP_ERR_STORE, "STORE_ERROR",
               "create batch: the idempotency key is held by a batch that cannot be read");
    return false;
}

typedef struct counts_ctx {
    json_t *counts, *failures;
    int64_t last;
} counts_ctx_t;

static bool add_count(const bson_t *doc, void *p) {
    counts_ctx_t *c = p;
    bson_iter_t it, g;
    const char *status = NULL, *reason = NULL;
    if (bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &g)) {
        while (bson_iter_next(&g)) {
            if (strcmp(bson_iter_key(&g), "status") == 0 && BSON_ITER_HOLDS_UTF8(&g)) status = bson_iter_utf8(&g, NULL);
            if (strcmp(bson_iter_key(&g), "reason") == 0 && BSON_ITER_HOLDS_UTF8(&g)) reason = bson_iter_utf8(&g, NULL);
        }
    }
    json_int_t n = rp_mongo_get_i64(doc, "n");
    if (status)
        json_object_set_new(c->counts, status,
                            json_integer(json_integer_value(json_object_get(c->counts, status)) + n));
    if (reason) json_object_set_new(c->failures, reason, json_integer(n));
    int64_t last = rp_mongo_get_ms(doc, "last");
    if (last > c->last) c->last = last;
    return true;
}

/* Per (status, failureReason) counts of a batch's items with one aggregate (no helper for it in
 * mongo_util: the pipeline runs on a pooled client here). */
static bool batch_counts(rp_mongo_t *m, const char *id, json_t *doc, rp_err_t *err) {
    bson_error_t berr;
    const bson_t *row;
    counts_ctx_t c = {json_pack("{s:i, s:i, s:i}", "QUEUED", 0, "SUCCESS", 0, "FAILED", 0), json_object(), 0};
    bson_t *pipeline =
        BCON_NEW("pipeline", "[", "{", "$match", "{", "batchId", BCON_UTF8(id), "}", "}", "{", "$group", "{", "_id",
                 "{", "status", BCON_UTF8("$status"), "reason", BCON_UTF8("$failureReason"), "}", "n", "{", "$sum",
                 BCON_INT32(1), "}", "last", "{", "$max", BCON_UTF8("$settledAt"), "}", "}", "}", "]");
    bool ok = false;
    mongoc_client_t *cli = rp_mongo_pop(m, err);
    if (cli) {
        mongoc_collection_t *coll = rp_mongo_collection(m, cli, ITEMS);
        mongoc_cursor_t *cur = mongoc_collection_aggregate(coll, MONGOC_QUERY_NONE, pipeline, NULL, NULL);
        while (mongoc_cursor_next(cur, &row))
            add_count(row, &c);
        ok = !mongoc_cursor_error(cur, &berr);
        if (!ok) rp_mongo_err(&berr, "batch counts", err);
        mongoc_cursor_destroy(cur);
        mongoc_collection_destroy(coll);
        rp_mongo_push(m, cli);
    }
    bson_destroy(pipeline);
    if (!ok) {
        json_decref(c.counts);
        json_decref(c.failures);
        return false;
    }
    char at[RP_ISO_LEN];
    if (c.last) rp_time_iso(c.last, at);
    json_object_set_new(doc, "counts", c.counts);
    json_object_set_new(doc, "failures", c.failures);
    json_object_set_new(doc, "lastSettledAt", c.last ? json_string(at) : json_null());
    return true;
}

static json_t *batch_row(const bson_t *d);

/* A batch's fields never change after batch_create, so reading them and the counts with two
 * queries gives what SQLite's single read transaction gives. */
static bool m_batch_get(rp_reward_store_t *base, const char *id, bool counts, json_t **doc, rp_err_t *err) {
    bson_t *d = NULL;
    *doc = NULL;
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    bool ok = rp_mongo_find_one(db_of(base), BATCHES, filter, NULL, &d, err);
    bson_destroy(filter);
    if (ok && d) *doc = batch_row(d);
    bson_destroy(d);
    if (ok && *doc && counts) ok = batch_counts(db_of(base), id, *doc, err);
    if (!ok) {
        json_decref(*doc);
        *doc = NULL;
    }
    return ok;
}

static json_t *batch_row(const bson_t *d) {
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id", rp_mongo_get_json(d, "_id"), "eventId",
                     rp_mongo_get_json(d, "eventId"), "reason", rp_mongo_get_json(d, "reason"), "createdBy",
                     rp_mongo_get_json(d, "createdBy"), "total", rp_mongo_get_int(d, "total"), "duplicates",
                     rp_mongo_get_int(d, "duplicates"), "createdAt", rp_mongo_get_time(d, "createdAt"));
}

static bool m_batch_list(rp_reward_store_t *base, const char *event_id, const char *cursor, int limit, json_t **items,
                         bool *more, rp_err_t *err) {
    clauses_t c = {BSON_INITIALIZER, 0};
    int rc = 1;
    bool ok = false;
    *items = NULL;
    *more = false;
    if (event_id) clause_eq(&c, "eventId", event_id);
    if (cursor) rc = rp_mongo_cursor_clause(db_of(base), BATCHES, cursor, "createdAt", &c.arr, &c.n, err);
    bson_t *filter = clauses_filter(&c);
    if (rc == 0) { /* unknown cursor: an empty page, as in SQLite */
        *items = json_array();
        ok = true;
    } else if (rc > 0) {
        bson_t *sort = BCON_NEW("createdAt", BCON_INT32(-1), "_id", BCON_INT32(-1));
        ok = rp_mongo_find_page(db_of(base), BATCHES, filter, sort, limit, batch_row, items, more, err);
        bson_destroy(sort);
    }
    bson_destroy(filter);
    return ok;
}

static json_t *item_row(const bson_t *d) {
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "seq", rp_mongo_get_int(d, "seq"), "userId",
                     rp_mongo_get_json(d, "userId"), "status", rp_mongo_get_json(d, "status"), "failureReason",
                     rp_mongo_get_json(d, "failureReason"), "requestId", rp_mongo_get_json(d, "requestId"), "attempts",
                     rp_mongo_get_int(d, "attempts"), "settledAt", rp_mongo_get_time(d, "settledAt"));
}

static bool m_batch_items(rp_reward_store_t *base, const char *batch_id, const char *status, int64_t after_seq,
                          int limit, json_t **items, bool *more, rp_err_t *err) {
    bson_t *filter = BCON_NEW("batchId", BCON_UTF8(batch_id), "seq", "{", "$gt", BCON_INT64(after_seq), "}");
    if (status) BSON_APPEND_UTF8(filter, "status", status);
    bson_t *sort = BCON_NEW("seq", BCON_INT32(1));
    bool ok = rp_mongo_find_page(db_of(base), ITEMS, filter, sort, limit, item_row, items, more, err);
    bson_destroy(filter);
    bson_destroy(sort);
    return ok;
}

typedef struct lease_arg {
    int64_t now, redeliver_ms, max_in_flight;
    int limit;
    json_t *items; /* result of the last attempt */
} lease_arg_t;

static bool collect_lease(const bson_t *d, void *p) {
    json_array_append_new(
        p, json_pack("{s:o, s:o}", "batchId", rp_mongo_get_json(d, "batchId"), "seq", rp_mongo_get_int(d, "seq")));
    return true;
}

static bool batch_lease_txn(rp_mongo_txn_t *tx, void *p) {
    lease_arg_t *a = p;
    int64_t in_flight = 0;
    bool ok = false;
    json_decref(a->items);
    a->items = json_array();
    bson_t *lock = BCON_NEW("_id", BCON_UTF8(LEASE_COUNTER));
    bson_t *bump = BCON_NEW("$inc", "{", "seq", BCON_INT64(1), "}");
    bson_t *flying = BCON_NEW("status", BCON_UTF8("QUEUED"), "dueAt", "{", "$gt", BCON_DATE_TIME(a->now), "}");
    bson_t *due = BCON_NEW("status", BCON_UTF8("QUEUED"), "dueAt", "{", "$lte", BCON_DATE_TIME(a->now), "}");
    bson_t *opts = NULL, *update = NULL, ids = BSON_INITIALIZER;
    /* writing the lock document first makes concurrent sweeps conflict, so they run one after
     * the other and max_in_flight holds across worker processes (SQLite: BEGIN IMMEDIATE) */
    if (!rp_mongo_txn_update(tx, COUNTERS, lock, bump, RP_MONGO_UPSERT, NULL) ||
        !rp_mongo_txn_count(tx, ITEMS, flying, &in_flight))
        goto done;
    int64_t room = a->max_in_flight - in_flight;
    if (room > a->limit) room = a->limit;
    if (room <= 0) {
        ok = true;
        goto done;
    }
    opts = BCON_NEW("projection", "{", "batchId", BCON_INT32(1), "seq", BCON_INT32(1), "}", "sort", "{", "dueAt",
                    BCON_INT32(1), "batchId", BCON_INT32(1), "seq", BCON_INT32(1), "}", "limit", BCON_INT64(room));
    if (!rp_mongo_txn_find(tx, ITEMS, due, opts, collect_lease, a->items)) goto done;
    size_t i;
    json_t *it;
    bson_t in, arr;
    BSON_APPEND_DOCUMENT_BEGIN(&ids, "_id", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
    json_array_foreach(a->items, i, it) {
        char id[64], kb[16];
        snprintf(id, sizeof id, "%s:%lld", json_string_value(json_object_get(it, "batchId")),
                 (long long)json_integer_value(json_object_get(it, "seq")));
        const char *key = idx_key((uint32_t)i, kb);
        BSON_APPEND_UTF8(&arr, key, id);
    }
    bson_append_array_end(&in, &arr);
    bson_append_document_end(&ids, &in);
    BSON_APPEND_UTF8(&ids, "status", "QUEUED");
    update = BCON_NEW("$set", "{", "dueAt", BCON_DATE_TIME(a->now + a->redeliver_ms), "}", "$inc", "{", "attempts",
                      BCON_INT64(1), "}");
    ok = json_array_size(a->items) == 0 || rp_mongo_txn_update(tx, ITEMS, &ids, update, RP_MONGO_MANY, NULL);
done:
    bson_destroy(lock);
    bson_destroy(bump);
    bson_destroy(flying);
    bson_destroy(due);
    bson_destroy(opts);
    bson_destroy(update);
    bson_destroy(&ids);
    return ok;
}

static bool m_batch_lease(rp_reward_store_t *base, int64_t now, int64_t redeliver_ms, int limit, int64_t max_in_flight,
                          json_t **items, rp_err_t *err) {
    lease_arg_t a = {now, redeliver_ms, max_in_flight, limit, NULL};
    *items = NULL;
    if (!rp_mongo_transact(db_of(base), "lease batch items", batch_lease_txn, &a, err)) {
        json_decref(a.items);
        return false;
    }
    *items = a.items;
    return true;
}

static bool keep_item(const bson_t *d, void *p) {
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)rp_mongo_get_i64(d, "seq"));
    json_object_set_new(p, key,
                        json_pack("{s:o, s:o, s:o}", "seq", rp_mongo_get_int(d, "seq"), "userId",
                                  rp_mongo_get_json(d, "userId"), "status", rp_mongo_get_json(d, "status")));
    return true;
}

static bool m_batch_items_get(rp_reward_store_t *base, const char *batch_id, const int64_t *seqs, size_t n,
                              json_t **items, rp_err_t *err) {
    json_t *found = json_object();
    *items = NULL;
    bson_t *filter = BCON_NEW("batchId", BCON_UTF8(batch_id));
    append_seq_in(filter, "seq", seqs, n);
    bool ok = n == 0 || rp_mongo_find(db_of(base), ITEMS, filter, NULL, keep_item, found, err);
    if (ok) {
        /* in the order asked for, unknown seqs skipped, as SQLite's loop */
        *items = json_array();
        for (size_t i = 0; i < n; i++) {
            char key[24];
            snprintf(key, sizeof key, "%lld", (long long)seqs[i]);
            json_t *it = json_object_get(found, key);
            if (it) json_array_append(*items, it);
        }
    }
    json_decref(found);
    bson_destroy(filter);
    return ok;
}

static bool m_batch_item_fail(rp_reward_store_t *base, const char *batch_id, int64_t seq, const char *reason,
                              const char *request_id, int64_t now, rp_err_t *err) {
    bson_t *filter = BCON_NEW("batchId", BCON_UTF8(batch_id), "seq", BCON_INT64(seq), "status", BCON_UTF8("QUEUED"));
    bson_t update = BSON_INITIALIZER, set;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", "FAILED");
    rp_mongo_append_str(&set, "failureReason", reason);
    rp_mongo_append_str(&set, "requestId", request_id);
    BSON_APPEND_DATE_TIME(&set, "settledAt", now);
    bson_append_document_end(&update, &set);
    bool ok = rp_mongo_update(db_of(base), ITEMS, filter, &update, 0, NULL, err); /* settled: left as it is */
    bson_destroy(filter);
    bson_destroy(&update);
    return ok;
}

static void m_free(rp_reward_store_t *base) {
    mongo_store_t *s = (mongo_store_t *)base;
    if (!s) return;
    rp_mongo_close(s->m);
    free(s);
}

static const rp_reward_store_ops_t mongo_ops = {
    .ping = m_ping,
    .grant = m_grant,
    .record_failed = m_record_failed,
    .transition = m_transition,
    .get_request = m_get_request,
    .find_active = m_find_active,
    .list_requests = m_list_requests,
    .list_ledger = m_list_ledger,
    .list_outbox = m_list_outbox,
    .outbox_lease = m_outbox_lease,
    .outbox_published = m_outbox_published,
    .idem_get = m_idem_get,
    .idem_put = m_idem_put,
    .batch_create = m_batch_create,
    .batch_get = m_batch_get,
    .batch_list = m_batch_list,
    .batch_items = m_batch_items,
    .batch_lease = m_batch_lease,
    .batch_items_get = m_batch_items_get,
    .batch_item_fail = m_batch_item_fail,
    .free = m_free,
};

/* ---- start-up ---- */

static bool create_indexes(rp_mongo_t *m, rp_err_t *err) {
    /* the history lists sort newest first by (requestedAt, _id) under each filter */
    bson_t *requests = BCON_NEW(
        "0", "{", "key", "{", "activeKey", BCON_INT32(1), "}", "name", BCON_UTF8("event_reward_requests_active"),
        "unique", BCON_BOOL(true), "partialFilterExpression", "{", "activeKey", "{", "$exists", BCON_BOOL(true), "}",
        "}", "}", "1", "{", "key", "{", "userId", BCON_INT32(1), "requestedAt", BCON_INT32(-1), "_id", BCON_INT32(-1),
        "}", "name", BCON_UTF8("event_reward_requests_user_time"), "}", "2", "{", "key", "{", "eventId", BCON_INT32(1),
        "requestedAt", BCON_INT32(-1), "_id", BCON_INT32(-1), "}", "name",
        BCON_UTF8("event_reward_requests_event_time"), "}", "3", "{", "key", "{", "status", BCON_INT32(1),
        "requestedAt", BCON_INT32(-1), "_id", BCON_INT32(-1), "}", "name",
        BCON_UTF8("event_reward_requests_status_time"), "}", "4", "{", "key", "{", "requestedAt", BCON_INT32(-1), "_id",
        BCON_INT32(-1), "}", "name", BCON_UTF8("event_reward_requests_time"), "}", "5", "{", "key", "{", "userId",
        BCON_INT32(1), "eventId", BCON_INT32(1), "status", BCON_INT32(1), "}", "name",
        BCON_UTF8("event_reward_requests_user_event"), "}");
    bson_t *ledger =
        BCON_NEW("0", "{", "key", "{", "seq", BCON_INT32(1), "}", "name", BCON_UTF8("reward_ledger_seq"), "unique",
                 BCON_BOOL(true), "}", "1", "{", "key", "{", "userId", BCON_INT32(1), "seq", BCON_INT32(1), "}", "name",
                 BCON_UTF8("reward_ledger_user"), "}", "2", "{", "key", "{", "eventId", BCON_INT32(1), "seq",
                 BCON_INT32(1), "}", "name", BCON_UTF8("reward_ledger_event"), "}");
    bson_t *outbox =
        BCON_NEW("0", "{", "key", "{", "messageId", BCON_INT32(1), "}", "name", BCON_UTF8("outbox_message_id"),
                 "unique", BCON_BOOL(true), "}", "1", "{", "key", "{", "publishedAt", BCON_INT32(1), "_id",
                 BCON_INT32(1), "}", "name", BCON_UTF8("outbox_pending"), "}");
    bson_t *idem = BCON_NEW("0", "{", "key", "{", "userId", BCON_INT32(1), "key", BCON_INT32(1), "}", "name",
                            BCON_UTF8("idempotency_keys_user_key"), "unique", BCON_BOOL(true), "}");
    bson_t *batches = BCON_NEW("0", "{", "key", "{", "createdBy", BCON_INT32(1), "idemKey", BCON_INT32(1), "}", "name",
                               BCON_UTF8("batches_idem"), "unique", BCON_BOOL(true), "partialFilterExpression", "{",
                               "idemKey", "{", "$exists", BCON_BOOL(true), "}", "}", "}", "1", "{", "key", "{",
                               "eventId", BCON_INT32(1), "createdAt", BCON_INT32(-1), "_id", BCON_INT32(-1), "}",
                               "name", BCON_UTF8("batches_event"), "}", "2", "{", "key", "{", "createdAt",
                               BCON_INT32(-1), "_id", BCON_INT32(-1), "}", "name", BCON_UTF8("batches_created"), "}");
    bson_t *items =
        BCON_NEW("0", "{", "key", "{", "batchId", BCON_INT32(1), "seq", BCON_INT32(1), "}", "name",
                 BCON_UTF8("batch_items_seq"), "unique", BCON_BOOL(true), "}", "1", "{", "key", "{", "status",
                 BCON_INT32(1), "dueAt", BCON_INT32(1), "batchId", BCON_INT32(1), "seq", BCON_INT32(1), "}", "name",
                 BCON_UTF8("batch_items_due"), "}", "2", "{", "key", "{", "batchId", BCON_INT32(1), "status",
                 BCON_INT32(1), "failureReason", BCON_INT32(1), "}", "name", BCON_UTF8("batch_items_status"), "}");
    bool ok = rp_mongo_create_indexes(m, REQUESTS, requests, err) && rp_mongo_create_indexes(m, LEDGER, ledger, err) &&
              rp_mongo_create_indexes(m, OUTBOX, outbox, err) && rp_mongo_create_indexes(m, IDEM, idem, err) &&
              rp_mongo_create_indexes(m, BATCHES, batches, err) && rp_mongo_create_indexes(m, ITEMS, items, err);
    bson_destroy(requests);
    bson_destroy(ledger);
    bson_destroy(outbox);
    bson_destroy(idem);
    bson_destroy(batches);
    bson_destroy(items);
    return ok;
}

/* Creates the counters collection and documents outside any transaction (older servers cannot
 * create collections inside one); an existing counter keeps its value. */
static bool seed_counters(rp_mongo_t *m, rp_err_t *err) {
    static const char *const names[] = {LEDGER, OUTBOX, LEASE_COUNTER};
    bson_t *update = BCON_NEW("$setOnInsert", "{", "seq", BCON_INT64(0), "}");
    bool ok = true;
    for (size_t i = 0; ok && i < sizeof names / sizeof names[0]; i++) {
        rp_err_t e;
        bson_t *filter = BCON_NEW("_id", BCON_UTF8(names[i]));
        rp_err_clear(&e);
        ok = rp_mongo_update(m, COUNTERS, filter, update, RP_MONGO_UPSERT, NULL, &e);
        if (!ok && e.kind == RP_ERR_CONFLICT) ok = true; /* another process seeded it at the same moment */
        if (!ok && err) *err = e;
        bson_destroy(filter);
    }
    bson_destroy(update);
    return ok;
}

rp_reward_store_t *rp_reward_store_mongo_open(const char *uri, const char *db_name, rp_err_t *err) {
    rp_mongo_t *m = rp_mongo_open(uri, db_name, "reward-grant", err);
    if (!m) return NULL;
    if (!rp_mongo_require_replset(m, err) || !create_indexes(m, err) || !seed_counters(m, err)) {
        rp_mongo_close(m);
        return NULL;
    }
    mongo_store_t *s = rp_calloc(1, sizeof *s);
    s->base.ops = &mongo_ops;
    s->m = m;
    return &s->base;
}
