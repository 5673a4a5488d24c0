/* driver_reward.c - the reward scenarios of the MongoDB wire-contract driver (see mongo_driver.c):
 * the real grant bodies (grant_txn.h) over the MongoDB reward store, and single store
 * operations. Single-threaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mongo_driver.h"
#include "reward/grant_txn.h"
#include "reward/reward_store_mongo.h"

#define CLAIM_KEY "claim-key-1"
#define CLAIM_HASH "c1a1"

static const char *const grant_outcomes[] = {"OK",      "ALREADY_CLAIMED", "OUT_OF_STOCK", "MAX_CLAIMS_REACHED",
                                             "REFUSED", "REPLAYED",        "ITEM_SETTLED", "EVENT_CHANGED"};
static const char *const decide_outcomes[] = {"DECIDED",      "NOT_FOUND", "WRONG_STATE",
                                              "OUT_OF_STOCK", "SELF",      "EVENT_CANCELED"};

static void set_str(char *dst, size_t cap, const char *s) {
    snprintf(dst, cap, "%s", s);
}

/* The request grant.c would build: reward 0 (quantity 2, limited in the mock's event) and
 * reward 1 (quantity 1, unlimited) whose value has a key MongoDB cannot store natively. */
static void sample_request(rp_request_t *r, rp_req_status_t status) {
    rp_request_init(r);
    set_str(r->id, sizeof r->id, REQUEST_ID);
    set_str(r->user_id, sizeof r->user_id, USER_ID);
    set_str(r->event_id, sizeof r->event_id, EVENT_ID);
    set_str(r->period_key, sizeof r->period_key, "ONCE");
    if (rp_req_holds_slot(status)) set_str(r->active_key, sizeof r->active_key, ACTIVE_KEY);
    r->status = status;
    const char *defs[] = {DEF0_ID, DEF1_ID}, *names[] = {"Gold", "Badge"}, *types[] = {"CURRENCY", "ITEM"};
    for (int i = 0; i < 2; i++) {
        rp_claimed_reward_t *c = &r->rewards[r->nrewards++];
        c->reward_index = i;
        set_str(c->definition_id, sizeof c->definition_id, defs[i]);
        set_str(c->name, sizeof c->name, names[i]);
        set_str(c->type, sizeof c->type, types[i]);
        c->value = i == 0 ? json_pack("{s:i}", "amount", 100) : json_pack("{s:i}", "$weird", 1);
        c->quantity = i == 0 ? 2 : 1;
    }
    r->requested_at = r->created_at = r->updated_at = NOW_MS;
    if (status != RP_REQ_AWAITING_REVIEW) r->processed_at = NOW_MS;
}

/* The answer stored with an Idempotency-Key: what reward_service.c would send. */
static json_t *answer(void *ctx, const rp_grant_result_t *res, int *status) {
    (void)ctx;
    *status = res->outcome == RP_GRANT_OK ? 201 : 409;
    return json_pack("{s:s, s:s}", "outcome", grant_outcomes[res->outcome], "id", res->request.id);
}

static json_t *grant_json(bool ok, const rp_err_t *err, rp_grant_result_t *res) {
    json_t *out = result(ok, err,
                         ok ? json_pack("{s:s, s:s, s:o, s:o}", "outcome", grant_outcomes[res->outcome], "status",
                                        rp_req_status_name(res->request.status), "holder",
                                        res->holder.id[0] ? json_string(res->holder.id) : json_null(), "replay",
                                        res->replay.response ? json_incref(res->replay.response) : json_null())
                            : NULL);
    rp_grant_result_clear(res);
    return out;
}

/* A claim through rp_grant_claim (judged on the event of version event_version, 0 = none named),
 * or a batch item's grant through rp_grant_batch_item. */
static json_t *run_grant(rp_reward_store_t *s, rp_req_status_t status, bool batch, const char *idem_key,
                         int64_t event_version) {
    rp_err_t err;
    rp_request_t r;
    rp_grant_result_t res;
    bool ok;
    rp_err_clear(&err);
    sample_request(&r, status);
    if (status == RP_REQ_FAILED) { /* judged by the event worker: not active, conditions unmet */
        set_str(r.failure_reason, sizeof r.failure_reason, "CONDITION_NOT_MET");
        rp_request_set_details(&r, json_pack("[{s:i}]", "$k", 2));
    }
    if (batch) {
        r.source = RP_SOURCE_BATCH;
        set_str(r.batch_id, sizeof r.batch_id, BATCH_ID);
        set_str(r.processor_id, sizeof r.processor_id, OPERATOR_ID);
        ok = rp_grant_batch_item(s, &r, 7, 3, &res, &err);
    } else {
        rp_claim_t c = {&r, 3, idem_key, idem_key ? CLAIM_HASH : NULL, answer, NULL, event_version};
        ok = rp_grant_claim(s, &c, &res, &err);
    }
    rp_request_clear(&r);
    return grant_json(ok, &err, &res);
}

/* A chunk of two batch items through rp_grant_batch_chunk: item 7 the sample grant, item 8
 * refused before any grant (UNKNOWN_PLAYER); the outcomes in order. */
static json_t *run_chunk(rp_reward_store_t *s) {
    rp_err_t err;
    rp_request_t r;
    rp_err_clear(&err);
    sample_request(&r, RP_REQ_SUCCESS);
    r.source = RP_SOURCE_BATCH;
    set_str(r.batch_id, sizeof r.batch_id, BATCH_ID);
    set_str(r.processor_id, sizeof r.processor_id, OPERATOR_ID);
    rp_grant_chunk_item_t items[] = {{.seq = 7, .request = &r}, {.seq = 8, .reason = "UNKNOWN_PLAYER"}};
    bool ok = rp_grant_batch_chunk(s, BATCH_ID, items, 2, 3, NOW_MS, &err);
    rp_request_clear(&r);
    return result(
        ok, &err,
        ok ? json_pack("{s:[s,s]}", "outcomes", grant_outcomes[items[0].outcome], grant_outcomes[items[1].outcome])
           : NULL);
}

static json_t *run_decide(rp_reward_store_t *s, rp_decision_t d, const char *text, const char *processor) {
    rp_err_t err;
    rp_decide_result_t res;
    rp_err_clear(&err);
    bool ok = rp_grant_decide(s, d, REQUEST_ID, processor, text, NOW_MS, &res, &err);
    json_t *out = result(ok, &err,
                         ok ? json_pack("{s:s, s:o}", "outcome", decide_outcomes[res.outcome], "request",
                                        res.request.id[0] ? rp_request_to_json(&res.request) : json_null())
                            : NULL);
    rp_decide_result_clear(&res);
    return out;
}

/* The eligibility rehearsal of the sample claim (rp_grant_claim_check): its outcome and the
 * stock it read. */
static json_t *run_check(rp_reward_store_t *s) {
    rp_err_t err;
    rp_request_t r;
    rp_grant_result_t res;
    rp_event_state_t st;
    rp_err_clear(&err);
    sample_request(&r, RP_REQ_SUCCESS);
    rp_claim_t c = {&r, 3, NULL, NULL, NULL, NULL, 0};
    bool ok = rp_grant_claim_check(s, &c, &res, &st, &err);
    json_t *out = result(ok, &err,
                         ok ? json_pack("{s:s, s:I, s:I}", "outcome", grant_outcomes[res.outcome], "stock0",
                                        (json_int_t)st.stock_left[0], "stock1", (json_int_t)st.stock_left[1])
                            : NULL);
    rp_grant_result_clear(&res);
    rp_request_clear(&r);
    return out;
}

/* A batch rehearsal (rp_grant_batch_dry_run) of the sample item for USER_ID and USER2_ID. */
static json_t *run_dry_run(rp_reward_store_t *s) {
    rp_err_t err;
    rp_request_t r;
    rp_grant_outcome_t out[2];
    const char *users[] = {USER_ID, USER2_ID};
    rp_err_clear(&err);
    sample_request(&r, RP_REQ_SUCCESS);
    r.source = RP_SOURCE_BATCH;
    set_str(r.batch_id, sizeof r.batch_id, BATCH_ID);
    bool ok = rp_grant_batch_dry_run(s, &r, users, 2, 3, out, &err);
    rp_request_clear(&r);
    return result(ok, &err,
                  ok ? json_pack("{s:[s, s]}", "outcomes", grant_outcomes[out[0]], grant_outcomes[out[1]]) : NULL);
}

/* The body of the idem-put scenario: one primitive in a unit of work. */
static rp_txn_end_t idem_put_body(rp_reward_txn_t *tx, void *arg) {
    rp_reward_store_t *s = arg;
    rp_idem_t v = {.request_hash = "abc", .status = 201, .created_at = NOW_MS};
    bool duplicate = false;
    v.response = json_pack("{s:s}", "id", REQUEST_ID);
    bool ok = s->ops->tx_idem_put(tx, USER_ID, "key-1", &v, &duplicate);
    rp_idem_clear(&v);
    return !ok ? RP_TXN_FAILED : duplicate ? RP_TXN_ROLLBACK : RP_TXN_COMMIT;
}

static void sample_batch(rp_batch_t *b) {
    memset(b, 0, sizeof *b);
    set_str(b->id, sizeof b->id, BATCH_ID);
    set_str(b->event_id, sizeof b->event_id, EVENT_ID);
    set_str(b->created_by, sizeof b->created_by, OPERATOR_ID);
    set_str(b->idem_key, sizeof b->idem_key, "idem-1");
    set_str(b->request_hash, sizeof b->request_hash, "hash-1");
    b->reason = "launch";
    b->total = 3;
    b->duplicates = 1;
    b->created_at = NOW_MS;
}

/* The typed records of a list as JSON; each one released, then the array freed. */
static json_t *request_json(const void *r) {
    return rp_request_to_json(r);
}
static json_t *ledger_json(const void *e) {
    return rp_ledger_entry_to_json(e);
}
static json_t *outbox_json(const void *m) {
    return rp_outbox_message_to_json(m);
}
static json_t *batch_plain_json(const void *b) {
    return rp_batch_to_json(b, false);
}
static json_t *item_json(const void *it) {
    return rp_batch_item_to_json(it);
}
static void request_release(void *r) {
    rp_request_clear(r);
}
static void outbox_release(void *m) {
    rp_outbox_message_clear(m);
}
static void batch_release(void *b) {
    rp_batch_clear(b);
}

static json_t *array_json(bool ok, void *items, size_t n, size_t size, json_t *(*to_json)(const void *),
                          void (*release)(void *)) {
    json_t *a = ok ? json_array() : NULL; /* page() takes it only when ok */
    for (size_t i = 0; i < n; i++) {
        void *elem = (char *)items + i * size;
        if (a) json_array_append_new(a, to_json(elem));
        if (release) release(elem);
    }
    free(items);
    return a;
}

static json_t *batch_json(rp_batch_t *b, bool counts) {
    json_t *j = rp_batch_to_json(b, counts);
    json_object_set_new(j, "open", json_boolean(b->open));
    json_object_set_new(j, "idemKey", json_string(b->idem_key));
    rp_batch_clear(b);
    return j;
}

static json_t *run_reward(rp_reward_store_t *s, const char *scenario) {
    rp_err_t err;
    rp_request_t req;
    rp_batch_t b;
    bool ok, more = false, found = false;
    size_t n = 0;
    rp_err_clear(&err);
    if (strcmp(scenario, "open-reward") == 0) return result(true, &err, NULL);
    /* the grant bodies */
    if (strcmp(scenario, "grant") == 0) return run_grant(s, RP_REQ_SUCCESS, false, NULL, 0);
    /* judged on the event as the mock stores it (updatedAt NOW), or on an older version */
    if (strcmp(scenario, "grant-versioned") == 0) return run_grant(s, RP_REQ_SUCCESS, false, NULL, NOW_MS);
    if (strcmp(scenario, "grant-stale") == 0) return run_grant(s, RP_REQ_SUCCESS, false, NULL, NOW_MS - 1);
    if (strcmp(scenario, "grant-idem") == 0) return run_grant(s, RP_REQ_SUCCESS, false, CLAIM_KEY, 0);
    if (strcmp(scenario, "grant-review") == 0) return run_grant(s, RP_REQ_AWAITING_REVIEW, false, NULL, 0);
    if (strcmp(scenario, "grant-batch") == 0) return run_grant(s, RP_REQ_SUCCESS, true, NULL, 0);
    if (strcmp(scenario, "grant-chunk") == 0) return run_chunk(s);
    if (strcmp(scenario, "record-failed") == 0) return run_grant(s, RP_REQ_FAILED, false, NULL, 0);
    if (strcmp(scenario, "approve") == 0) return run_decide(s, RP_DECIDE_APPROVE, "checked", OPERATOR_ID);
    if (strcmp(scenario, "approve-self") == 0) return run_decide(s, RP_DECIDE_APPROVE, "mine", USER_ID);
    if (strcmp(scenario, "reject") == 0) return run_decide(s, RP_DECIDE_REJECT, "checked", OPERATOR_ID);
    if (strcmp(scenario, "revoke") == 0) return run_decide(s, RP_DECIDE_REVOKE, "oops", OPERATOR_ID);
    if (strcmp(scenario, "grant-check") == 0) return run_check(s);
    if (strcmp(scenario, "batch-dry-run") == 0) return run_dry_run(s);
    if (strcmp(scenario, "item-fail") == 0)
        return result(rp_grant_item_fail(s, BATCH_ID, 2, "EVENT_CANCELED", NOW_MS, &err), &err, NULL);
    if (strcmp(scenario, "batch-create") == 0) {
        const char *users[] = {USER_ID, USER2_ID, "5f0000000000000000000003"};
        char id[RP_OID_LEN];
        rp_batch_created_t created;
        sample_batch(&b);
        ok = rp_grant_batch_create(s, &b, users, 3, &created, id, &err);
        const char *names[] = {"CREATED", "EXISTED", "KEY_REUSED"};
        return result(ok, &err, ok ? json_pack("{s:s, s:s}", "outcome", names[created], "id", id) : NULL);
    }
    if (strcmp(scenario, "batch-lease") == 0) {
        rp_item_ref_t *refs = NULL;
        ok = rp_grant_lease_items(s, NOW_MS, 60000, 10, 100, &refs, &n, &err);
        json_t *a = json_array();
        for (size_t i = 0; ok && i < n; i++)
            json_array_append_new(a,
                                  json_pack("{s:s, s:I}", "batchId", refs[i].batch_id, "seq", (json_int_t)refs[i].seq));
        free(refs);
        return result(ok, &err, ok ? json_pack("{s:o}", "items", a) : (json_decref(a), NULL));
    }
    /* single store operations */
    if (strcmp(scenario, "idem-put") == 0)
        return result(s->ops->transact(s, "idem", idem_put_body, s, &err), &err, NULL);
    if (strcmp(scenario, "get-request") == 0 || strcmp(scenario, "find-active") == 0) {
        rp_request_t slot;
        sample_request(&slot, RP_REQ_SUCCESS); /* the slot (USER_ID, EVENT_ID, ONCE) of ACTIVE_KEY */
        ok = strcmp(scenario, "get-request") == 0 ? s->ops->get_request(s, REQUEST_ID, &req, &found, &err)
                                                  : s->ops->find_active(s, &slot, &req, &found, &err);
        rp_request_clear(&slot);
        /* the API shape keeps the active key inside the store: shown beside it */
        json_t *j = json_pack("{s:o, s:o}", "request", ok && found ? rp_request_to_json(&req) : json_null(),
                              "activeKey", ok && found ? json_string(req.active_key) : json_null());
        rp_request_clear(&req);
        return result(ok, &err, ok ? j : (json_decref(j), NULL));
    }
    if (strcmp(scenario, "list-requests") == 0) {
        rp_request_filter_t f = {USER_ID, EVENT_ID, RP_REQ_SUCCESS, NOW_MS - 86400000, NOW_MS, REQUEST_ID, 2};
        rp_request_t *items = NULL;
        ok = s->ops->list_requests(s, &f, &items, &n, &more, &err);
        return page(ok, &err, array_json(ok, items, n, sizeof *items, request_json, request_release), more);
    }
    if (strcmp(scenario, "list-ledger") == 0) {
        rp_ledger_entry_t *items = NULL;
        ok = s->ops->list_ledger(s, USER_ID, NULL, 10, 2, &items, &n, &more, &err);
        return page(ok, &err, array_json(ok, items, n, sizeof *items, ledger_json, NULL), more);
    }
    if (strcmp(scenario, "list-outbox") == 0 || strcmp(scenario, "outbox-lease") == 0) {
        rp_outbox_message_t *items = NULL;
        ok = strcmp(scenario, "list-outbox") == 0
                 ? s->ops->list_outbox(s, 10, 2, &items, &n, &more, &err)
                 : s->ops->outbox_lease(s, "relay-1", NOW_MS, 30000, 2, &items, &n, &err);
        return page(ok, &err, array_json(ok, items, n, sizeof *items, outbox_json, outbox_release), more);
    }
    if (strcmp(scenario, "outbox-published") == 0) {
        const int64_t seqs[] = {11, 12};
        return result(s->ops->outbox_published(s, seqs, 2, NOW_MS, &err), &err, NULL);
    }
    if (strcmp(scenario, "idem-get") == 0) {
        rp_idem_t v;
        ok = s->ops->idem_get(s, USER_ID, "key-1", &v, &found, &err);
        json_t *j = json_pack("{s:b, s:s, s:i, s:O}", "found", found, "hash", v.request_hash, "status", v.status,
                              "response", v.response ? v.response : json_null());
        rp_idem_clear(&v);
        return result(ok, &err, ok ? j : (json_decref(j), NULL));
    }
    if (strcmp(scenario, "batch-get") == 0 || strcmp(scenario, "batch-by-key") == 0) {
        bool by_key = strcmp(scenario, "batch-by-key") == 0;
        ok = by_key ? s->ops->batch_by_key(s, OPERATOR_ID, "idem-1", &b, &found, &err)
                    : s->ops->batch_get(s, BATCH_ID, true, &b, &found, &err);
        json_t *j = ok && found ? batch_json(&b, !by_key) : json_null();
        return result(ok, &err, ok ? json_pack("{s:o}", "batch", j) : NULL);
    }
    if (strcmp(scenario, "batch-list") == 0) {
        rp_batch_t *items = NULL;
        ok = s->ops->batch_list(s, EVENT_ID, BATCH_ID, 2, &items, &n, &more, &err);
        return page(ok, &err, array_json(ok, items, n, sizeof *items, batch_plain_json, batch_release), more);
    }
    if (strcmp(scenario, "batch-items") == 0 || strcmp(scenario, "batch-items-get") == 0) {
        const int64_t seqs[] = {3, 1, 99};
        rp_batch_item_t *items = NULL;
        ok = strcmp(scenario, "batch-items-get") == 0
                 ? s->ops->batch_items_get(s, BATCH_ID, seqs, 3, &items, &n, &err)
                 : s->ops->batch_items(s, BATCH_ID, RP_ITEM_QUEUED, 0, 2, &items, &n, &more, &err);
        return page(ok, &err, array_json(ok, items, n, sizeof *items, item_json, NULL), more);
    }
    if (strcmp(scenario, "batch-any-due") == 0) {
        ok = s->ops->batch_any_due(s, NOW_MS, &found, &err);
        return result(ok, &err, ok ? json_pack("{s:b}", "any", found) : NULL);
    }
    return NULL;
}

json_t *contract_reward(const char *uri, const char *scenario) {
    rp_err_t err;
    rp_err_clear(&err);
    rp_reward_store_t *s = rp_reward_store_mongo_open(uri, DB_NAME, &err);
    json_t *out = s ? run_reward(s, scenario) : result(false, &err, NULL);
    if (s) s->ops->free(s);
    return out;
}
