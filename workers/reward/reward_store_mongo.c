/* reward_store_mongo.c - the reward store (reward_store.h) on MongoDB: the unit of work on
 * with_transaction, primitives of one or two commands each, typed records in and out, and the
 * durable stepwise batch creation. No business rule lives here: grant_txn.c has them all.
 * Thread-safe: the pool is shared, everything else is per call. */
#include "reward_store_mongo.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event_repo_mongo.h"
#include "ids.h"
#include "mem.h"
#include "mongo_util.h"
#include "store_handle.h"

#define REQUESTS RP_EVENT_MONGO_REQUESTS
#define EVENTS RP_EVENT_MONGO_EVENTS
#define LEDGER RP_REWARD_MONGO_LEDGER
#define OUTBOX RP_REWARD_MONGO_OUTBOX
#define IDEM RP_REWARD_MONGO_IDEMPOTENCY
#define BATCHES RP_REWARD_MONGO_BATCHES
#define ITEMS RP_REWARD_MONGO_BATCH_ITEMS
#define COUNTERS RP_REWARD_MONGO_COUNTERS
#define LEASE_COUNTER "batch_lease"

#define ITEM_CHUNK 5000                    /* batch items per durable insert_many */
#define PARKED_AT INT64_C(253402300799000) /* 9999-12-31T23:59:59Z: the dueAt of items not yet open */

struct rp_reward_txn {
    rp_mongo_txn_t *tx; /* the attempt in progress: a rerun gets a new one */
    rp_reward_txn_fn fn;
    void *arg;
};

static rp_mongo_t *db_of(rp_reward_store_t *s) {
    return rp_store_handle_backend(s);
}

static void m_free(rp_reward_store_t *base) {
    rp_store_handle_free(base);
}

/* ---- records <-> documents: the plain fields of each record, by table ---- */

static const rp_mongo_field_t request_fields[] = {
    RP_MONGO_FIELD(rp_request_t, id, "_id", STR),
    RP_MONGO_FIELD(rp_request_t, user_id, "userId", STR),
    RP_MONGO_FIELD(rp_request_t, event_id, "eventId", STR),
    RP_MONGO_FIELD(rp_request_t, period_key, "periodKey", STR),
    RP_MONGO_FIELD(rp_request_t, requested_at, "requestedAt", MS),
    RP_MONGO_FIELD(rp_request_t, batch_id, "batchId", OPT),
    RP_MONGO_FIELD(rp_request_t, created_at, "createdAt", MS),
};
/* What a decision writes, with status and notes: tx_update_request's $set. */
static const rp_mongo_field_t decision_fields[] = {
    RP_MONGO_FIELD(rp_request_t, processed_at, "processedAt", MS),
    RP_MONGO_FIELD(rp_request_t, processor_id, "processorId", OPT),
    RP_MONGO_FIELD(rp_request_t, failure_reason, "failureReason", OPT),
    RP_MONGO_FIELD(rp_request_t, updated_at, "updatedAt", MS),
};
static const rp_mongo_field_t claimed_fields[] = {
    RP_MONGO_FIELD(rp_claimed_reward_t, reward_index, "rewardIndex", INT),
    RP_MONGO_FIELD(rp_claimed_reward_t, definition_id, "rewardDefinitionId", STR),
    RP_MONGO_FIELD(rp_claimed_reward_t, name, "name", STR),
    RP_MONGO_FIELD(rp_claimed_reward_t, type, "type", STR),
    RP_MONGO_FIELD(rp_claimed_reward_t, quantity, "quantity", I64),
};
static const rp_mongo_field_t ledger_fields[] = {
    RP_MONGO_FIELD(rp_ledger_entry_t, id, "_id", STR),
    RP_MONGO_FIELD(rp_ledger_entry_t, seq, "seq", I64),
    RP_MONGO_FIELD(rp_ledger_entry_t, request_id, "requestId", STR),
    RP_MONGO_FIELD(rp_ledger_entry_t, user_id, "userId", STR),
    RP_MONGO_FIELD(rp_ledger_entry_t, event_id, "eventId", STR),
    RP_MONGO_FIELD(rp_ledger_entry_t, reward_index, "rewardIndex", INT),
    RP_MONGO_FIELD(rp_ledger_entry_t, definition_id, "rewardDefinitionId", STR),
    RP_MONGO_FIELD(rp_ledger_entry_t, quantity, "quantity", I64),
    RP_MONGO_FIELD(rp_ledger_entry_t, processor_id, "processorId", OPT),
    RP_MONGO_FIELD(rp_ledger_entry_t, at, "at", MS),
};
static const rp_mongo_field_t outbox_fields[] = {
    RP_MONGO_FIELD(rp_outbox_message_t, seq, "_id", I64),
    RP_MONGO_FIELD(rp_outbox_message_t, message_id, "messageId", STR),
    RP_MONGO_FIELD(rp_outbox_message_t, routing_key, "routingKey", STR),
    RP_MONGO_FIELD(rp_outbox_message_t, request_id, "requestId", STR),
    RP_MONGO_FIELD(rp_outbox_message_t, created_at, "createdAt", MS),
    RP_MONGO_FIELD(rp_outbox_message_t, published_at, "publishedAt", MS),
};
static const rp_mongo_field_t idem_fields[] = {
    RP_MONGO_FIELD(rp_idem_t, request_hash, "requestHash", STR),
    RP_MONGO_FIELD(rp_idem_t, status, "status", INT),
    RP_MONGO_FIELD(rp_idem_t, created_at, "createdAt", MS),
};
static const rp_mongo_field_t batch_fields[] = {
    RP_MONGO_FIELD(rp_batch_t, id, "_id", STR),
    RP_MONGO_FIELD(rp_batch_t, event_id, "eventId", STR),
    RP_MONGO_FIELD(rp_batch_t, created_by, "createdBy", STR),
    RP_MONGO_FIELD(rp_batch_t, request_hash, "requestHash", STR),
    RP_MONGO_FIELD(rp_batch_t, total, "total", I64),
    RP_MONGO_FIELD(rp_batch_t, duplicates, "duplicates", I64),
    RP_MONGO_FIELD(rp_batch_t, created_at, "createdAt", MS),
};
static const rp_mongo_field_t item_fields[] = {
    RP_MONGO_FIELD(rp_batch_item_t, batch_id, "batchId", STR),
    RP_MONGO_FIELD(rp_batch_item_t, seq, "seq", I64),
    RP_MONGO_FIELD(rp_batch_item_t, user_id, "userId", STR),
    RP_MONGO_FIELD(rp_batch_item_t, failure_reason, "failureReason", OPT),
    RP_MONGO_FIELD(rp_batch_item_t, request_id, "requestId", OPT),
    RP_MONGO_FIELD(rp_batch_item_t, attempts, "attempts", I64),
    RP_MONGO_FIELD(rp_batch_item_t, settled_at, "settledAt", MS),
};

/* status, the decision fields and notes */
static void put_decision(bson_t *b, const rp_request_t *r) {
    BSON_APPEND_UTF8(b, "status", rp_req_status_name(r->status));
    RP_MONGO_PUT_FIELDS(b, r, decision_fields);
    rp_mongo_append_opt(b, "notes", r->notes);
}

/* The stored request (see the header); a new document. */
static bson_t *request_doc(const rp_request_t *r) {
    bson_t *b = bson_new(), arr, el;
    char kb[16];
    RP_MONGO_PUT_FIELDS(b, r, request_fields);
    if (r->active_key[0]) BSON_APPEND_UTF8(b, "activeKey", r->active_key); /* else absent: the index is partial */
    put_decision(b, r);
    BSON_APPEND_UTF8(b, "source", rp_req_source_name(r->source));
    rp_mongo_append_opaque(b, "failureDetails", r->failure_details);
    BSON_APPEND_ARRAY_BEGIN(b, "claimedRewards", &arr);
    for (size_t i = 0; i < r->nrewards; i++) {
        const char *key = rp_mongo_array_key((uint32_t)i, kb);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &el);
        RP_MONGO_PUT_FIELDS(&el, &r->rewards[i], claimed_fields);
        rp_mongo_append_opaque(&el, "value", r->rewards[i].value);
        bson_append_document_end(&arr, &el);
    }
    bson_append_array_end(b, &arr);
    return b;
}

static void request_from(const bson_t *d, void *out) {
    rp_request_t *r = out;
    char name[24];
    bson_iter_t it, arr;
    bson_t el;
    RP_MONGO_GET_FIELDS(d, r, request_fields);
    RP_MONGO_GET_FIELDS(d, r, decision_fields);
    rp_mongo_copy_str(d, "activeKey", r->active_key, sizeof r->active_key);
    rp_mongo_copy_str(d, "status", name, sizeof name);
    rp_req_status_parse(name, &r->status);
    rp_mongo_copy_str(d, "source", name, sizeof name);
    r->source = rp_req_source_parse(name);
    r->failure_details = rp_mongo_get_opaque(d, "failureDetails");
    if (json_is_null(r->failure_details)) rp_request_set_details(r, NULL);
    r->notes = rp_mongo_get_strdup(d, "notes");
    if (!bson_iter_init_find(&it, d, "claimedRewards") || !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr))
        return;
    while (bson_iter_next(&arr) && r->nrewards < RP_MAX_EVENT_REWARDS) {
        if (!rp_mongo_iter_doc(&arr, &el)) continue;
        rp_claimed_reward_t *c = &r->rewards[r->nrewards++];
        RP_MONGO_GET_FIELDS(&el, c, claimed_fields);
        c->value = rp_mongo_get_opaque(&el, "value");
    }
}

static void ledger_from(const bson_t *d, void *out) {
    rp_ledger_entry_t *e = out;
    char kind[16];
    RP_MONGO_GET_FIELDS(d, e, ledger_fields);
    rp_mongo_copy_str(d, "entryType", kind, sizeof kind);
    rp_ledger_kind_parse(kind, &e->kind);
}

static void outbox_from(const bson_t *d, void *out) {
    rp_outbox_message_t *m = out;
    RP_MONGO_GET_FIELDS(d, m, outbox_fields);
    m->payload = rp_mongo_get_opaque(d, "payload");
}

static void idem_from(const bson_t *d, void *out) {
    rp_idem_t *v = out;
    RP_MONGO_GET_FIELDS(d, v, idem_fields);
    v->response = rp_mongo_get_opaque(d, "response");
}

static void batch_from(const bson_t *d, void *out) {
    rp_batch_t *b = out;
    char state[16];
    RP_MONGO_GET_FIELDS(d, b, batch_fields);
    rp_mongo_copy_str(d, "idemKey", b->idem_key, sizeof b->idem_key);
    rp_mongo_copy_str(d, "state", state, sizeof state);
    b->open = strcmp(state, "CREATING") != 0;
    b->reason = rp_mongo_get_strdup(d, "reason");
}

static void item_from(const bson_t *d, void *out) {
    rp_batch_item_t *it = out;
    char status[16];
    RP_MONGO_GET_FIELDS(d, it, item_fields);
    rp_mongo_copy_str(d, "status", status, sizeof status);
    rp_item_status_parse(status, &it->status);
}

static void ref_from(const bson_t *d, void *out) {
    rp_item_ref_t *r = out;
    rp_mongo_copy_str(d, "batchId", r->batch_id, sizeof r->batch_id);
    r->seq = rp_mongo_get_i64(d, "seq");
}

static void seq_from(const bson_t *d, void *out) {
    *(int64_t *)out = rp_mongo_get_i64(d, "_id");
}

/* How a record type is read: fill a zeroed record from a document, release what it owns. */
typedef struct rec_kind {
    void (*fill)(const bson_t *doc, void *rec);
    void (*release)(void *rec); /* NULL: the record owns nothing */
    size_t size;
} rec_kind_t;

static const rec_kind_t K_REQUEST = {request_from, rp_reward_release_request, sizeof(rp_request_t)};
static const rec_kind_t K_LEDGER = {ledger_from, NULL, sizeof(rp_ledger_entry_t)};
static const rec_kind_t K_OUTBOX = {outbox_from, rp_reward_release_outbox, sizeof(rp_outbox_message_t)};
static const rec_kind_t K_IDEM = {idem_from, NULL, sizeof(rp_idem_t)};
static const rec_kind_t K_BATCH = {batch_from, rp_reward_release_batch, sizeof(rp_batch_t)};
static const rec_kind_t K_ITEM = {item_from, NULL, sizeof(rp_batch_item_t)};

/* The first document of filter (taken: destroyed here) as the record out (zeroed first): inside
 * tx when it is not NULL, else on its own. */
static bool fetch(rp_mongo_t *m, rp_mongo_txn_t *tx, const char *coll, bson_t *filter, const rec_kind_t *k, void *out,
                  bool *found, rp_err_t *err) {
    memset(out, 0, k->size);
    return tx ? rp_mongo_txn_fetch(tx, coll, filter, k->fill, out, found)
              : rp_mongo_fetch(m, coll, filter, k->fill, out, found, err);
}

/* One page of filter (taken) sorted by sort (taken) as records of kind k into *items (a T **). */
static bool page(rp_mongo_t *m, const char *coll, bson_t *filter, bson_t *sort, int limit, const rec_kind_t *k,
                 void *items, size_t *n, bool *more, rp_err_t *err) {
    void *v = NULL;
    *more = false;
    *n = 0;
    bool ok = !filter ||
              rp_mongo_find_page_into(m, coll, filter, sort, limit, k->fill, k->release, k->size, &v, n, more, err);
    memcpy(items, &v, sizeof v);
    bson_destroy(filter);
    bson_destroy(sort);
    return ok;
}

/* ---- the unit of work ---- */

static bool run_body(rp_mongo_txn_t *tx, void *p) {
    rp_reward_txn_t *t = p;
    t->tx = tx;
    return rp_mongo_txn_end(tx, t->fn(t, t->arg));
}

static bool m_transact(rp_reward_store_t *s, const char *what, rp_reward_txn_fn fn, void *arg, rp_err_t *err) {
    rp_reward_txn_t t = {NULL, fn, arg};
    return rp_mongo_transact(db_of(s), what, run_body, &t, err);
}

/* A MongoDB transaction holds its writes on the server, not here: a bulk body is a body. */
static bool m_transact_bulk(rp_reward_store_t *s, const char *what, rp_reward_txn_fn fn, void *arg, rp_err_t *err) {
    return m_transact(s, what, fn, arg, err);
}

static bool m_rehearse(rp_reward_store_t *s, const char *what, rp_reward_txn_fn fn, void *arg, rp_err_t *err) {
    return m_transact(s, what, fn, arg, err);
}

/* Through the unique index on activeKey, the slot's three fields in one string. */
static bool m_tx_request_by_key(rp_reward_txn_t *t, const rp_request_t *slot, rp_request_t *out, bool *found) {
    return fetch(NULL, t->tx, REQUESTS, BCON_NEW("activeKey", BCON_UTF8(slot->active_key)), &K_REQUEST, out, found,
                 NULL);
}

static bool m_tx_request_by_id(rp_reward_txn_t *t, const char *id, rp_request_t *out, bool *found) {
    return fetch(NULL, t->tx, REQUESTS, BCON_NEW("_id", BCON_UTF8(id)), &K_REQUEST, out, found, NULL);
}

/* With at_most, count_documents stops at at_most: one round trip, and only what a limit check
 * needs. */
static bool m_tx_count_slots(rp_reward_txn_t *t, const char *user_id, const char *event_id, int64_t at_most,
                             int64_t *count) {
    bson_t *filter = BCON_NEW("userId", BCON_UTF8(user_id), "eventId", BCON_UTF8(event_id), "status", "{", "$ne",
                              BCON_UTF8("FAILED"), "}");
    bson_t *opts = at_most > 0 ? BCON_NEW("limit", BCON_INT64(at_most)) : NULL;
    bool ok = rp_mongo_txn_count(t->tx, REQUESTS, filter, opts, count);
    bson_destroy(filter);
    bson_destroy(opts);
    return ok;
}

/* Moves every limited line's stock by sign * quantity, one update per line (a take guarded by
 * {stockLeft: {$gte: quantity}}); which lines are limited (stockLeft a number, not null) is
 * read once. *moved false when a take found a line uncovered, or its event or reward missing;
 * a give skips those. */
static bool move_stock(rp_reward_txn_t *t, const char *event_id, const rp_stock_line_t *lines, size_t n, int sign,
                       bool *moved) {
    bson_t *ev = NULL;
    *moved = true;
    if (n == 0) return true;
    bool ok = rp_mongo_txn_find_one_take(t->tx, EVENTS, BCON_NEW("_id", BCON_UTF8(event_id)),
                                         BCON_NEW("projection", "{", "rewards.stockLeft", BCON_INT32(1), "}"), &ev);
    for (size_t i = 0; ok && *moved && i < n; i++) {
        char elem[32], path[48];
        bson_iter_t it, found;
        snprintf(elem, sizeof elem, "rewards.%d", lines[i].reward_index);
        snprintf(path, sizeof path, "rewards.%d.stockLeft", lines[i].reward_index);
        if (!ev || lines[i].reward_index < 0 || !bson_iter_init(&it, ev) ||
            !bson_iter_find_descendant(&it, elem, &found)) {
            *moved = sign > 0;
            continue;
        }
        if (!bson_iter_init(&it, ev) || !bson_iter_find_descendant(&it, path, &found) ||
            !BSON_ITER_HOLDS_NUMBER(&found))
            continue; /* unlimited */
        bson_t *guard = BCON_NEW("_id", BCON_UTF8(event_id));
        if (sign < 0) BCON_APPEND(guard, path, "{", "$gte", BCON_INT64(lines[i].quantity), "}");
        ok = rp_mongo_txn_update_take(t->tx, EVENTS, guard,
                                      BCON_NEW("$inc", "{", path, BCON_INT64(sign * lines[i].quantity), "}"), 0, moved);
        if (sign > 0) *moved = true;
    }
    bson_destroy(ev);
    return ok;
}

static bool m_tx_stock_take(rp_reward_txn_t *t, const char *event_id, const rp_stock_line_t *lines, size_t n,
                            bool *taken) {
    return move_stock(t, event_id, lines, n, -1, taken);
}

static bool m_tx_stock_give(rp_reward_txn_t *t, const char *event_id, const rp_stock_line_t *lines, size_t n) {
    bool moved;
    return move_stock(t, event_id, lines, n, 1, &moved);
}

static bool m_tx_event_state(rp_reward_txn_t *t, const char *event_id, rp_event_state_t *out, bool *found) {
    bson_t *ev = NULL;
    bson_iter_t it, arr, el;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < RP_MAX_EVENT_REWARDS; i++)
        out->stock_left[i] = -1;
    *found = false;
    if (!rp_mongo_txn_find_one_take(t->tx, EVENTS, BCON_NEW("_id", BCON_UTF8(event_id)),
                                    BCON_NEW("projection", "{", "canceledAt", BCON_INT32(1), "updatedAt", BCON_INT32(1),
                                             "rewards.stockLeft", BCON_INT32(1), "}"),
                                    &ev))
        return false;
    if (!ev) return true;
    *found = true;
    out->canceled_at = rp_mongo_get_ms(ev, "canceledAt");
    out->updated_at = rp_mongo_get_ms(ev, "updatedAt");
    if (bson_iter_init_find(&it, ev, "rewards") && BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr)) {
        while (bson_iter_next(&arr) && out->nrewards < RP_MAX_EVENT_REWARDS) {
            int64_t *left = &out->stock_left[out->nrewards++];
            if (BSON_ITER_HOLDS_DOCUMENT(&arr) && bson_iter_recurse(&arr, &el) && bson_iter_find(&el, "stockLeft") &&
                BSON_ITER_HOLDS_NUMBER(&el))
                *left = bson_iter_as_int64(&el);
        }
    }
    bson_destroy(ev);
    return true;
}

/* The event document is written first, so that a concurrent event update (which looks for
 * requests of the event before it replaces the rewards) write-conflicts with this insert
 * instead of missing it. */
static bool m_tx_insert_request(rp_reward_txn_t *t, const rp_request_t *r, bool *duplicate) {
    *duplicate = false;
    return rp_mongo_txn_update_take(t->tx, EVENTS, BCON_NEW("_id", BCON_UTF8(r->event_id)),
                                    BCON_NEW("$inc", "{", "grants", BCON_INT64(1), "}"), 0, NULL) &&
           rp_mongo_txn_insert_take(t->tx, REQUESTS, request_doc(r), duplicate);
}

static bool m_tx_update_request(rp_reward_txn_t *t, const rp_request_t *r, rp_req_status_t from, bool *moved) {
    bson_t *u = bson_new(), set;
    BSON_APPEND_DOCUMENT_BEGIN(u, "$set", &set);
    put_decision(&set, r);
    if (r->active_key[0]) BSON_APPEND_UTF8(&set, "activeKey", r->active_key);
    bson_append_document_end(u, &set);
    /* a released key is absent, so that the partial unique index skips the request */
    if (!r->active_key[0]) BCON_APPEND(u, "$unset", "{", "activeKey", BCON_UTF8(""), "}");
    return rp_mongo_txn_update_take(
        t->tx, REQUESTS, BCON_NEW("_id", BCON_UTF8(r->id), "status", BCON_UTF8(rp_req_status_name(from))), u, 0, moved);
}

/* Hands out count consecutive numbers of sequence `name`; *first is the first of them. The
 * counter document stays write-locked by this transaction until it ends (see the header). */
static bool next_seq(rp_mongo_txn_t *tx, const char *name, int64_t count, int64_t *first) {
    bson_t *doc = NULL;
    *first = 0;
    bool ok = rp_mongo_txn_update_take(tx, COUNTERS, BCON_NEW("_id", BCON_UTF8(name)),
                                       BCON_NEW("$inc", "{", "seq", BCON_INT64(count), "}"), RP_MONGO_UPSERT, NULL);
    ok = ok && rp_mongo_txn_find_one_take(tx, COUNTERS, BCON_NEW("_id", BCON_UTF8(name)), NULL, &doc);
    if (ok && !doc) ok = rp_mongo_txn_fail(tx, RP_ERR_STORE, "STORE_ERROR", "sequence %s: counter not readable", name);
    if (ok) *first = rp_mongo_get_i64(doc, "seq") - count + 1;
    bson_destroy(doc);
    return ok;
}

static bool m_tx_append_ledger(rp_reward_txn_t *t, const rp_ledger_entry_t *entries, size_t n) {
    int64_t first;
    bool ok = n == 0 || next_seq(t->tx, LEDGER, (int64_t)n, &first);
    for (size_t i = 0; ok && i < n; i++) {
        rp_ledger_entry_t e = entries[i];
        bson_t doc = BSON_INITIALIZER;
        e.seq = first + (int64_t)i;
        RP_MONGO_PUT_FIELDS(&doc, &e, ledger_fields);
        BSON_APPEND_UTF8(&doc, "entryType", rp_ledger_kind_name(e.kind));
        ok = rp_mongo_txn_insert(t->tx, LEDGER, &doc);
        bson_destroy(&doc);
    }
    return ok;
}

static bool m_tx_append_outbox(rp_reward_txn_t *t, const rp_outbox_message_t *m) {
    rp_outbox_message_t row = *m;
    if (!next_seq(t->tx, OUTBOX, 1, &row.seq)) return false;
    row.published_at = 0;
    /* hooked: not yet fanned out to webhook endpoints (webhook_store_mongo.c) */
    bson_t *doc = BCON_NEW("leaseOwner", BCON_NULL, "leaseUntil", BCON_NULL, "hooked", BCON_BOOL(false));
    RP_MONGO_PUT_FIELDS(doc, &row, outbox_fields);
    /* a message made for a grant comes printed (grant_txn.c); MongoDB keeps it as a document */
    json_t *parsed = m->payload || !m->payload_text ? NULL : json_loads(m->payload_text, 0, NULL);
    rp_mongo_append_opaque(doc, "payload", m->payload ? m->payload : parsed);
    json_decref(parsed);
    bool ok = rp_mongo_txn_insert(t->tx, OUTBOX, doc);
    bson_destroy(doc);
    return ok;
}

static bool m_tx_settle_item(rp_reward_txn_t *t, const char *batch_id, int64_t seq, rp_item_status_t status,
                             const char *reason, const char *request_id, int64_t at, bool *settled) {
    bson_t *u = bson_new(), set;
    BSON_APPEND_DOCUMENT_BEGIN(u, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", rp_item_status_name(status));
    rp_mongo_append_opt(&set, "failureReason", reason);
    rp_mongo_append_opt(&set, "requestId", request_id);
    BSON_APPEND_DATE_TIME(&set, "settledAt", at);
    bson_append_document_end(u, &set);
    return rp_mongo_txn_update_take(
        t->tx, ITEMS, BCON_NEW("batchId", BCON_UTF8(batch_id), "seq", BCON_INT64(seq), "status", BCON_UTF8("QUEUED")),
        u, 0, settled);
}

static bool m_tx_idem_get(rp_reward_txn_t *t, const char *user_id, const char *key, rp_idem_t *out, bool *found) {
    return fetch(NULL, t->tx, IDEM, BCON_NEW("userId", BCON_UTF8(user_id), "key", BCON_UTF8(key)), &K_IDEM, out, found,
                 NULL);
}

static bool m_tx_idem_put(rp_reward_txn_t *t, const char *user_id, const char *key, const rp_idem_t *v,
                          bool *duplicate) {
    char id[RP_OID_LEN];
    rp_oid_new(id);
    bson_t *doc = BCON_NEW("_id", BCON_UTF8(id), "userId", BCON_UTF8(user_id), "key", BCON_UTF8(key));
    RP_MONGO_PUT_FIELDS(doc, v, idem_fields);
    rp_mongo_append_opaque(doc, "response", v->response);
    return rp_mongo_txn_insert_take(t->tx, IDEM, doc, duplicate);
}

/* Writing the lease counter first makes concurrent sweeps write-conflict, so they run one after
 * the other (SQLite: BEGIN IMMEDIATE). Parked items (a creation not finished) were never sent. */
static bool m_tx_items_in_flight(rp_reward_txn_t *t, int64_t now, int64_t *count) {
    *count = 0;
    if (!rp_mongo_txn_update_take(t->tx, COUNTERS, BCON_NEW("_id", BCON_UTF8(LEASE_COUNTER)),
                                  BCON_NEW("$inc", "{", "seq", BCON_INT64(1), "}"), RP_MONGO_UPSERT, NULL))
        return false;
    bson_t *flying = BCON_NEW("status", BCON_UTF8("QUEUED"), "dueAt", "{", "$gt", BCON_DATE_TIME(now), "$lt",
                              BCON_DATE_TIME(PARKED_AT), "}");
    bool ok = rp_mongo_txn_count(t->tx, ITEMS, flying, NULL, count);
    bson_destroy(flying);
    return ok;
}

static bool m_tx_items_lease(rp_reward_txn_t *t, int64_t now, int64_t until, int limit, rp_item_ref_t **items,
                             size_t *n) {
    rp_mongo_rows_t rows = {.fill = ref_from, .elem_size = sizeof(rp_item_ref_t), .limit = -1};
    bson_t ids = BSON_INITIALIZER;
    *items = NULL;
    *n = 0;
    if (limit <= 0) return true;
    bson_t *due = BCON_NEW("status", BCON_UTF8("QUEUED"), "dueAt", "{", "$lte", BCON_DATE_TIME(now), "}");
    bson_t *opts =
        BCON_NEW("projection", "{", "batchId", BCON_INT32(1), "seq", BCON_INT32(1), "}", "sort", "{", "dueAt",
                 BCON_INT32(1), "batchId", BCON_INT32(1), "seq", BCON_INT32(1), "}", "limit", BCON_INT64(limit));
    bool ok = rp_mongo_txn_find(t->tx, ITEMS, due, opts, rp_mongo_rows_add, &rows);
    const rp_item_ref_t *refs = rows.items;
    for (size_t i = 0; ok && i < rows.n; i++) {
        char kb[16], id[64];
        const char *key = rp_mongo_array_key((uint32_t)i, kb);
        snprintf(id, sizeof id, "%s:%lld", refs[i].batch_id, (long long)refs[i].seq);
        BSON_APPEND_UTF8(&ids, key, id);
    }
    if (ok && rows.n > 0)
        ok = rp_mongo_txn_update_take(
            t->tx, ITEMS, BCON_NEW("_id", "{", "$in", BCON_ARRAY(&ids), "}", "status", BCON_UTF8("QUEUED")),
            BCON_NEW("$set", "{", "dueAt", BCON_DATE_TIME(until), "}", "$inc", "{", "attempts", BCON_INT64(1), "}"),
            RP_MONGO_MANY, NULL);
    bson_destroy(&ids);
    bson_destroy(due);
    bson_destroy(opts);
    if (!ok) {
        free(rows.items);
        return false;
    }
    *items = rows.items; /* NULL when none */
    *n = rows.n;
    return true;
}

/* ---- reads ---- */

static bool m_ping(rp_reward_store_t *s, rp_err_t *err) {
    return rp_mongo_ping(db_of(s), err);
}

static bool m_get_request(rp_reward_store_t *s, const char *id, rp_request_t *out, bool *found, rp_err_t *err) {
    return fetch(db_of(s), NULL, REQUESTS, BCON_NEW("_id", BCON_UTF8(id)), &K_REQUEST, out, found, err);
}

static bool m_find_active(rp_reward_store_t *s, const rp_request_t *slot, rp_request_t *out, bool *found,
                          rp_err_t *err) {
    return fetch(db_of(s), NULL, REQUESTS, BCON_NEW("activeKey", BCON_UTF8(slot->active_key)), &K_REQUEST, out, found,
                 err);
}

static bool m_idem_get(rp_reward_store_t *s, const char *user_id, const char *key, rp_idem_t *out, bool *found,
                       rp_err_t *err) {
    return fetch(db_of(s), NULL, IDEM, BCON_NEW("userId", BCON_UTF8(user_id), "key", BCON_UTF8(key)), &K_IDEM, out,
                 found, err);
}

static bool m_batch_by_key(rp_reward_store_t *s, const char *created_by, const char *key, rp_batch_t *out, bool *found,
                           rp_err_t *err) {
    return fetch(db_of(s), NULL, BATCHES, BCON_NEW("createdBy", BCON_UTF8(created_by), "idemKey", BCON_UTF8(key)),
                 &K_BATCH, out, found, err);
}

/* Filter clauses collected in a BSON array and ANDed; MongoDB refuses an empty $and. */
typedef struct clauses {
    bson_t arr;
    uint32_t n;
} clauses_t;

/* Appends {field: value}, or with value NULL {field: {op: ms}}. */
static void clause(clauses_t *c, const char *field, const char *value, const char *op, int64_t ms) {
    char kb[16];
    const char *key = rp_mongo_array_key(c->n++, kb); /* before the macro: it evaluates the key twice */
    if (value)
        BCON_APPEND(&c->arr, key, "{", field, BCON_UTF8(value), "}");
    else
        BCON_APPEND(&c->arr, key, "{", field, "{", op, BCON_DATE_TIME(ms), "}", "}");
}

/* A page newest first by (field, _id) of the documents matching c (consumed) after cursor (an
 * unknown cursor gives an empty page, as in SQLite). */
static bool newest_page(rp_mongo_t *m, const char *coll, clauses_t *c, const char *field, const char *cursor, int limit,
                        const rec_kind_t *k, void *items, size_t *n, bool *more, rp_err_t *err) {
    int rc = cursor ? rp_mongo_cursor_clause(m, coll, cursor, field, &c->arr, &c->n, err) : 1;
    bson_t *filter = rc > 0 ? bson_new() : NULL;
    if (filter && c->n) BSON_APPEND_ARRAY(filter, "$and", &c->arr);
    bson_destroy(&c->arr);
    return page(m, coll, filter, BCON_NEW(field, BCON_INT32(-1), "_id", BCON_INT32(-1)), limit, k, items, n, more,
                err) &&
           rc >= 0;
}

static bool m_list_requests(rp_reward_store_t *s, const rp_request_filter_t *f, rp_request_t **items, size_t *n,
                            bool *more, rp_err_t *err) {
    clauses_t c = {BSON_INITIALIZER, 0};
    if (f->user_id) clause(&c, "userId", f->user_id, NULL, 0);
    if (f->event_id) clause(&c, "eventId", f->event_id, NULL, 0);
    if (f->status >= 0) clause(&c, "status", rp_req_status_name((rp_req_status_t)f->status), NULL, 0);
    if (f->from_ms) clause(&c, "requestedAt", NULL, "$gte", f->from_ms);
    if (f->to_ms) clause(&c, "requestedAt", NULL, "$lt", f->to_ms);
    return newest_page(db_of(s), REQUESTS, &c, "requestedAt", f->cursor, f->limit, &K_REQUEST, items, n, more, err);
}

static bool m_batch_list(rp_reward_store_t *s, const char *event_id, const char *cursor, int limit, rp_batch_t **items,
                         size_t *n, bool *more, rp_err_t *err) {
    clauses_t c = {BSON_INITIALIZER, 0};
    if (event_id) clause(&c, "eventId", event_id, NULL, 0);
    return newest_page(db_of(s), BATCHES, &c, "createdAt", cursor, limit, &K_BATCH, items, n, more, err);
}

/* A page by `key` ascending of filter (taken) with key > after. */
static bool seq_page(rp_mongo_t *m, const char *coll, bson_t *filter, const char *key, int64_t after, int limit,
                     const rec_kind_t *k, void *items, size_t *n, bool *more, rp_err_t *err) {
    BCON_APPEND(filter, key, "{", "$gt", BCON_INT64(after), "}");
    return page(m, coll, filter, BCON_NEW(key, BCON_INT32(1)), limit, k, items, n, more, err);
}

static bool m_list_ledger(rp_reward_store_t *s, const char *user_id, const char *event_id, int64_t after_seq, int limit,
                          rp_ledger_entry_t **items, size_t *n, bool *more, rp_err_t *err) {
    bson_t *filter = bson_new();
    if (user_id) BSON_APPEND_UTF8(filter, "userId", user_id);
    if (event_id) BSON_APPEND_UTF8(filter, "eventId", event_id);
    return seq_page(db_of(s), LEDGER, filter, "seq", after_seq, limit, &K_LEDGER, items, n, more, err);
}

static bool m_list_outbox(rp_reward_store_t *s, int64_t after_seq, int limit, rp_outbox_message_t **items, size_t *n,
                          bool *more, rp_err_t *err) {
    return seq_page(db_of(s), OUTBOX, bson_new(), "_id", after_seq, limit, &K_OUTBOX, items, n, more, err);
}

static bool m_batch_items(rp_reward_store_t *s, const char *batch_id, int status, int64_t after_seq, int limit,
                          rp_batch_item_t **items, size_t *n, bool *more, rp_err_t *err) {
    bson_t *filter = BCON_NEW("batchId", BCON_UTF8(batch_id));
    if (status >= 0) BSON_APPEND_UTF8(filter, "status", rp_item_status_name((rp_item_status_t)status));
    return seq_page(db_of(s), ITEMS, filter, "seq", after_seq, limit, &K_ITEM, items, n, more, err);
}

static bool add_count(const bson_t *doc, void *p) {
    rp_batch_t *b = p;
    bson_iter_t it;
    bson_t group;
    char status[16] = "", reason[RP_REASON_LEN] = "";
    rp_item_status_t st;
    if (bson_iter_init_find(&it, doc, "_id") && rp_mongo_iter_doc(&it, &group)) {
        rp_mongo_copy_str(&group, "status", status, sizeof status);
        rp_mongo_copy_str(&group, "reason", reason, sizeof reason);
    }
    if (rp_item_status_parse(status, &st)) rp_batch_count(b, st, reason, rp_mongo_get_i64(doc, "n"));
    int64_t last = rp_mongo_get_ms(doc, "last");
    if (last > b->last_settled_at) b->last_settled_at = last;
    return true;
}

/* A batch's fields never change once it is open, so reading them and the counts with two
 * queries gives what SQLite's single read transaction gives. */
static bool m_batch_get(rp_reward_store_t *s, const char *id, bool counts, rp_batch_t *out, bool *found,
                        rp_err_t *err) {
    bool ok = fetch(db_of(s), NULL, BATCHES, BCON_NEW("_id", BCON_UTF8(id)), &K_BATCH, out, found, err);
    if (!ok || !*found || !counts) return ok;
    bson_t *pipeline =
        BCON_NEW("0", "{", "$match", "{", "batchId", BCON_UTF8(id), "}", "}", "1", "{", "$group", "{", "_id", "{",
                 "status", BCON_UTF8("$status"), "reason", BCON_UTF8("$failureReason"), "}", "n", "{", "$sum",
                 BCON_INT32(1), "}", "last", "{", "$max", BCON_UTF8("$settledAt"), "}", "}", "}");
    ok = rp_mongo_aggregate(db_of(s), ITEMS, pipeline, add_count, out, err);
    bson_destroy(pipeline);
    if (!ok) {
        rp_batch_clear(out);
        *found = false;
    }
    return ok;
}

static bool m_batch_items_get(rp_reward_store_t *s, const char *batch_id, const int64_t *seqs, size_t n,
                              rp_batch_item_t **items, size_t *got, rp_err_t *err) {
    rp_mongo_rows_t rows = {.fill = item_from, .elem_size = sizeof(rp_batch_item_t), .limit = -1};
    *items = NULL;
    *got = 0;
    if (n == 0) return true;
    bson_t *filter = BCON_NEW("batchId", BCON_UTF8(batch_id));
    rp_mongo_append_in(filter, "seq", seqs, n);
    bool ok = rp_mongo_find(db_of(s), ITEMS, filter, NULL, rp_mongo_rows_add, &rows, err);
    bson_destroy(filter);
    const rp_batch_item_t *found = rows.items;
    if (ok && rows.n > 0) { /* in the order asked for, unknown seqs skipped */
        *items = rp_calloc(n, sizeof **items);
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < rows.n; k++)
                if (found[k].seq == seqs[i]) {
                    (*items)[(*got)++] = found[k];
                    break;
                }
    }
    free(rows.items);
    return ok;
}

static bool m_batch_any_due(rp_reward_store_t *s, int64_t now, bool *any, rp_err_t *err) {
    rp_batch_item_t it;
    return fetch(db_of(s), NULL, ITEMS,
                 BCON_NEW("status", BCON_UTF8("QUEUED"), "dueAt", "{", "$lte", BCON_DATE_TIME(now), "}"), &K_ITEM, &it,
                 any, err);
}

/* ---- single writes ---- */

/* One step of a batch creation, outside any transaction and durable (w: majority) before it
 * returns: docs[0..n) inserted unordered, or else filter / update (both taken) applied with
 * update_many. With dup, a duplicate key is no error but reported there. */
static bool durable_step(rp_mongo_t *m, const char *coll, bson_t **docs, size_t n, bson_t *filter, bson_t *update,
                         bool *dup, rp_err_t *err) {
    bson_error_t berr;
    bool ok = false;
    if (dup) *dup = false;
    mongoc_client_t *cli = rp_mongo_pop(m, err);
    if (cli) {
        mongoc_collection_t *c = rp_mongo_collection(m, cli, coll);
        bson_t *opts = BCON_NEW("writeConcern", "{", "w", BCON_UTF8("majority"), "}");
        if (docs) BSON_APPEND_BOOL(opts, "ordered", false);
        ok = docs ? mongoc_collection_insert_many(c, (const bson_t **)docs, n, opts, NULL, &berr)
                  : mongoc_collection_update_many(c, filter, update, opts, NULL, &berr);
        if (!ok && dup && rp_mongo_is_duplicate(&berr)) ok = *dup = true;
        if (!ok) rp_mongo_err(&berr, coll, err);
        bson_destroy(opts);
        mongoc_collection_destroy(c);
        rp_mongo_push(m, cli);
    }
    bson_destroy(filter);
    bson_destroy(update);
    return ok;
}

/* A batch is created in steps, each durable and each safe to repeat, rather than in one
 * transaction: 100,000 items would strain a transaction's size and its 60 s lifetime.
 *   1. the batch document, state CREATING (the unique (createdBy, idemKey) index decides races);
 *   2. the items, in chunks, parked (dueAt PARKED_AT: no sweep takes them, none counts as in
 *      flight); _id is "<batch>:<seq>", so a repeated chunk only meets duplicate keys;
 *   3. the parked items made due at the batch's creation time;
 *   4. the batch document, state OPEN.
 * A creation cut short is finished by a resume (steps 2 to 4). */
static bool m_batch_store(rp_reward_store_t *s, const rp_batch_t *b, const char *const *user_ids, size_t n, bool resume,
                          bool *key_taken, rp_err_t *err) {
    rp_mongo_t *m = db_of(s);
    bool ok = true, dup = false;
    *key_taken = false;
    if (!resume) {
        bson_t *doc = BCON_NEW("state", BCON_UTF8("CREATING"));
        RP_MONGO_PUT_FIELDS(doc, b, batch_fields);
        rp_mongo_append_opt(doc, "reason", b->reason);
        if (b->idem_key[0]) BSON_APPEND_UTF8(doc, "idemKey", b->idem_key); /* absent without: the index is partial */
        ok = durable_step(m, BATCHES, &doc, 1, NULL, NULL, &dup, err);
        bson_destroy(doc);
        if (ok && dup && b->idem_key[0]) return *key_taken = true;
        if (ok && dup) {
            rp_err_set(err, RP_ERR_CONFLICT, "DUPLICATE_KEY", "store batch: batch %s exists", b->id);
            return false;
        }
    }
    bson_t **docs = rp_calloc(ITEM_CHUNK, sizeof *docs);
    for (size_t from = 0; ok && from < n; from += ITEM_CHUNK) {
        size_t k = n - from < ITEM_CHUNK ? n - from : ITEM_CHUNK;
        for (size_t i = 0; i < k; i++) {
            rp_batch_item_t it = {.seq = (int64_t)(from + i) + 1};
            char id[64];
            snprintf(it.batch_id, sizeof it.batch_id, "%s", b->id);
            snprintf(it.user_id, sizeof it.user_id, "%s", user_ids[from + i]);
            snprintf(id, sizeof id, "%s:%lld", b->id, (long long)it.seq);
            docs[i] = BCON_NEW("_id", BCON_UTF8(id), "status", BCON_UTF8("QUEUED"), "dueAt", BCON_DATE_TIME(PARKED_AT));
            RP_MONGO_PUT_FIELDS(docs[i], &it, item_fields);
        }
        ok = durable_step(m, ITEMS, docs, k, NULL, NULL, &dup, err);
        for (size_t i = 0; i < k; i++)
            bson_destroy(docs[i]);
    }
    free(docs);
    return ok &&
           durable_step(
               m, ITEMS, NULL, 0,
               BCON_NEW("batchId", BCON_UTF8(b->id), "status", BCON_UTF8("QUEUED"), "dueAt", BCON_DATE_TIME(PARKED_AT)),
               BCON_NEW("$set", "{", "dueAt", BCON_DATE_TIME(b->created_at), "}"), NULL, err) &&
           durable_step(m, BATCHES, NULL, 0, BCON_NEW("_id", BCON_UTF8(b->id)),
                        BCON_NEW("$set", "{", "state", BCON_UTF8("OPEN"), "}"), NULL, err);
}

/* ---- the outbox relay ---- */

/* What a relay may lease (SQLite's condition), of seqs[0..n) when n > 0:
 * {publishedAt: null, $or: [{leaseUntil: null}, {leaseUntil: {$lt: now}}, {leaseOwner: owner}]} */
static bson_t *leasable(const char *owner, int64_t now, const int64_t *seqs, size_t n) {
    bson_t *b = BCON_NEW("publishedAt", BCON_NULL, "$or", "[", "{", "leaseUntil", BCON_NULL, "}", "{", "leaseUntil",
                         "{", "$lt", BCON_DATE_TIME(now), "}", "}", "{", "leaseOwner", BCON_UTF8(owner), "}", "]");
    if (n) rp_mongo_append_in(b, "_id", seqs, n);
    return b;
}

/* Without a transaction: the guarded update_many leases each message atomically, and relays
 * racing for the same messages each get only those their own guard matched. */
static bool m_outbox_lease(rp_reward_store_t *s, const char *owner, int64_t now, int64_t lease_ms, int limit,
                           rp_outbox_message_t **items, size_t *n, rp_err_t *err) {
    rp_mongo_t *m = db_of(s);
    rp_mongo_rows_t cand = {.fill = seq_from, .elem_size = sizeof(int64_t), .limit = -1};
    bool more;
    *items = NULL;
    *n = 0;
    if (limit <= 0) return true;
    bson_t *filter = leasable(owner, now, NULL, 0), *guard = NULL;
    bson_t *opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}", "sort", "{", "_id", BCON_INT32(1), "}",
                            "limit", BCON_INT64(limit));
    bson_t *lease =
        BCON_NEW("$set", "{", "leaseOwner", BCON_UTF8(owner), "leaseUntil", BCON_DATE_TIME(now + lease_ms), "}");
    bool ok = rp_mongo_find(m, OUTBOX, filter, opts, rp_mongo_rows_add, &cand, err);
    if (ok && cand.n > 0) {
        guard = leasable(owner, now, cand.items, cand.n);
        ok = rp_mongo_update(m, OUTBOX, guard, lease, RP_MONGO_MANY, NULL, err) &&
             page(m, OUTBOX,
                  BCON_NEW("publishedAt", BCON_NULL, "leaseOwner", BCON_UTF8(owner), "leaseUntil",
                           BCON_DATE_TIME(now + lease_ms)),
                  BCON_NEW("_id", BCON_INT32(1)), limit, &K_OUTBOX, items, n, &more, err);
    }
    free(cand.items);
    bson_destroy(filter);
    bson_destroy(opts);
    bson_destroy(lease);
    bson_destroy(guard);
    return ok;
}

static bool m_outbox_published(rp_reward_store_t *s, const int64_t *seqs, size_t n, int64_t now, rp_err_t *err) {
    if (n == 0) return true;
    bson_t *filter = BCON_NEW("publishedAt", BCON_NULL);
    rp_mongo_append_in(filter, "_id", seqs, n);
    bson_t *u = BCON_NEW("$set", "{", "publishedAt", BCON_DATE_TIME(now), "leaseOwner", BCON_NULL, "leaseUntil",
                         BCON_NULL, "}");
    bool ok = rp_mongo_update(db_of(s), OUTBOX, filter, u, RP_MONGO_MANY, NULL, err);
    bson_destroy(filter);
    bson_destroy(u);
    return ok;
}

static const rp_reward_store_ops_t mongo_ops = RP_REWARD_STORE_OPS(m_);

/* ---- start-up ---- */

/* The history lists sort newest first by (requestedAt, _id) under each filter; the sweep takes
 * QUEUED items by due time. */
static const rp_mongo_index_t indexes[] = {
    {REQUESTS, "event_reward_requests_active", "activeKey", true, {{"activeKey", 1}}},
    {REQUESTS, "event_reward_requests_user_time", NULL, false, {{"userId", 1}, {"requestedAt", -1}, {"_id", -1}}},
    {REQUESTS, "event_reward_requests_event_time", NULL, false, {{"eventId", 1}, {"requestedAt", -1}, {"_id", -1}}},
    {REQUESTS, "event_reward_requests_status_time", NULL, false, {{"status", 1}, {"requestedAt", -1}, {"_id", -1}}},
    {REQUESTS, "event_reward_requests_time", NULL, false, {{"requestedAt", -1}, {"_id", -1}}},
    {REQUESTS, "event_reward_requests_user_event", NULL, false, {{"userId", 1}, {"eventId", 1}, {"status", 1}}},
    {LEDGER, "reward_ledger_seq", NULL, true, {{"seq", 1}}},
    {LEDGER, "reward_ledger_user", NULL, false, {{"userId", 1}, {"seq", 1}}},
    {LEDGER, "reward_ledger_event", NULL, false, {{"eventId", 1}, {"seq", 1}}},
    {OUTBOX, "outbox_message_id", NULL, true, {{"messageId", 1}}},
    {OUTBOX, "outbox_pending", NULL, false, {{"publishedAt", 1}, {"_id", 1}}},
    {IDEM, "idempotency_keys_user_key", NULL, true, {{"userId", 1}, {"key", 1}}},
    {BATCHES, "batches_idem", "idemKey", true, {{"createdBy", 1}, {"idemKey", 1}}},
    {BATCHES, "batches_event", NULL, false, {{"eventId", 1}, {"createdAt", -1}, {"_id", -1}}},
    {BATCHES, "batches_created", NULL, false, {{"createdAt", -1}, {"_id", -1}}},
    {ITEMS, "batch_items_seq", NULL, true, {{"batchId", 1}, {"seq", 1}}},
    {ITEMS, "batch_items_due", NULL, false, {{"status", 1}, {"dueAt", 1}, {"batchId", 1}, {"seq", 1}}},
    {ITEMS, "batch_items_status", NULL, false, {{"batchId", 1}, {"status", 1}, {"failureReason", 1}}},
};

/* Creates the counters collection and documents outside any transaction (older servers cannot
 * create collections inside one); an existing counter keeps its value. */
static bool seed_counters(rp_mongo_t *m, rp_err_t *err) {
    static const char *const names[] = {LEDGER, OUTBOX, LEASE_COUNTER};
    bson_t *u = BCON_NEW("$setOnInsert", "{", "seq", BCON_INT64(0), "}");
    bool ok = true;
    for (size_t i = 0; ok && i < sizeof names / sizeof names[0]; i++) {
        rp_err_t e;
        bson_t *filter = BCON_NEW("_id", BCON_UTF8(names[i]));
        rp_err_clear(&e);
        ok = rp_mongo_update(m, COUNTERS, filter, u, RP_MONGO_UPSERT, NULL, &e);
        if (!ok && e.kind == RP_ERR_CONFLICT) ok = true; /* another process seeded it at the same moment */
        if (!ok && err) *err = e;
        bson_destroy(filter);
    }
    bson_destroy(u);
    return ok;
}

static const rp_mongo_setup_t setup = RP_MONGO_SETUP("reward-grant", indexes, seed_counters);

rp_reward_store_t *rp_reward_store_mongo_open(const char *uri, const char *db_name, rp_err_t *err) {
    return rp_mongo_store_open(uri, db_name, &setup, &(rp_reward_store_t){&mongo_ops}, sizeof(rp_reward_store_t), err);
}
