/* The reward store conformance suite (workers/reward/reward_store.h) on every backend: the
 * reads, single writes and every primitive of the unit of work. */
#include "store_backends.h"

static json_t *request(const char *user, const char *event_id, const char *status) {
    char id[RP_OID_LEN], now[RP_ISO_LEN];
    rp_oid_new(id);
    rp_time_iso(rp_now_ms(), now);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[{s:i, s:s, s:s, s:s, s:i, s:i}], s:s, s:n, s:n, s:n, s:n, s:n, "
                     "s:s, s:n, s:s, s:s}",
                     "id", id, "userId", user, "eventId", event_id, "periodKey", "ONCE", "status", status,
                     "claimedRewards", "rewardIndex", 0, "rewardDefinitionId", "0123456789abcdef01234567", "name",
                     "Gold", "type", "CURRENCY", "value", 1, "quantity", 1, "requestedAt", now, "processedAt",
                     "processorId", "failureReason", "failureDetails", "notes", "source", "CLAIM", "batchId",
                     "createdAt", now, "updatedAt", now);
}

static rp_grant_line_t line0 = {0, 1};

/* Runs the grant of user on event_id; returns the outcome (asserting no store error). */
static rp_grant_outcome_t grant(const char *user, const char *event_id, const char *batch_id, int64_t seq,
                                json_t **req_out) {
    rp_err_t err;
    char key[128];
    snprintf(key, sizeof key, "%s:%s:ONCE", user, event_id);
    json_t *req = request(user, event_id, "SUCCESS"), *existing = NULL;
    json_t *payload = json_pack("{s:s, s:O}", "type", "reward.granted", "requestId", json_object_get(req, "id"));
    rp_grant_input_t in = {req, key, &line0, 1, 0, payload, batch_id, seq};
    rp_grant_outcome_t out;
    cr_assert(S.rewards->ops->grant(S.rewards, &in, &out, &existing, &err), "%s", err.message);
    if (out == RP_GRANT_DUPLICATE) cr_assert_not_null(existing, "a duplicate names the holder");
    json_decref(existing);
    json_decref(payload);
    if (req_out)
        *req_out = req;
    else
        json_decref(req);
    return out;
}

static int64_t stock_left(const char *event_id) {
    rp_err_t err;
    json_t *e = NULL;
    cr_assert(S.events->ops->event_get(S.events, event_id, &e, &err), "%s", err.message);
    cr_assert_not_null(e);
    json_t *left = json_object_get(json_array_get(json_object_get(e, "rewards"), 0), "stockLeft");
    int64_t v = json_is_integer(left) ? json_integer_value(left) : -1;
    json_decref(e);
    return v;
}

/* ---- reward store ---- */

BACKENDS(rewards, grant_is_all_or_nothing_and_exactly_once) {
    open_stores(*backend);
    rp_err_t err;
    char ev[RP_OID_LEN];
    make_event(2, ev);
    json_t *first = NULL;
    cr_assert_eq(grant("aaaaaaaaaaaaaaaaaaaaaaaa", ev, NULL, 0, &first), RP_GRANT_OK);
    cr_assert_eq(grant("aaaaaaaaaaaaaaaaaaaaaaaa", ev, NULL, 0, NULL), RP_GRANT_DUPLICATE);
    cr_assert_eq(grant("bbbbbbbbbbbbbbbbbbbbbbbb", ev, NULL, 0, NULL), RP_GRANT_OK);
    cr_assert_eq(grant("cccccccccccccccccccccccc", ev, NULL, 0, NULL), RP_GRANT_OUT_OF_STOCK);
    cr_assert_eq(stock_left(ev), 0);
    json_t *items = NULL, *got = NULL;
    bool more;
    cr_assert(S.rewards->ops->list_ledger(S.rewards, NULL, ev, 0, 10, &items, &more, &err), "%s", err.message);
    cr_assert_eq(json_array_size(items), 2u, "nothing of the refused grants is written");
    json_decref(items);
    cr_assert(S.rewards->ops->list_outbox(S.rewards, 0, 10, &items, &more, &err));
    cr_assert_eq(json_array_size(items), 2u);
    json_decref(items);
    const char *id = json_string_value(json_object_get(first, "id"));
    cr_assert(S.rewards->ops->get_request(S.rewards, id, &got, &err));
    cr_assert_not_null(got);
    cr_assert_str_eq(json_string_value(json_object_get(got, "status")), "SUCCESS");
    json_decref(got);
    char key[128];
    snprintf(key, sizeof key, "aaaaaaaaaaaaaaaaaaaaaaaa:%s:ONCE", ev);
    cr_assert(S.rewards->ops->find_active(S.rewards, key, &got, &err));
    cr_assert_str_eq(json_string_value(json_object_get(got, "id")), id);
    json_decref(got);
    json_decref(first);
}

typedef struct race {
    const char *event_id;
    int ok;
    pthread_mutex_t mu;
} race_t;

static void *race_main(void *arg) {
    race_t *r = arg;
    if (grant("dddddddddddddddddddddddd", r->event_id, NULL, 0, NULL) == RP_GRANT_OK) {
        pthread_mutex_lock(&r->mu);
        r->ok++;
        pthread_mutex_unlock(&r->mu);
    }
    return NULL;
}

BACKENDS(rewards, concurrent_grants_of_one_key_pay_once) {
    open_stores(*backend);
    char ev[RP_OID_LEN];
    make_event(100, ev);
    race_t r = {ev, 0, PTHREAD_MUTEX_INITIALIZER};
    pthread_t th[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, race_main, &r);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(r.ok, 1);
    cr_assert_eq(stock_left(ev), 99);
}

BACKENDS(rewards, transitions_compare_and_set) {
    open_stores(*backend);
    rp_err_t err;
    char ev[RP_OID_LEN];
    make_event(1, ev);
    /* AWAITING_REVIEW holds the key but no stock until approved */
    json_t *req = request("eeeeeeeeeeeeeeeeeeeeeeee", ev, "AWAITING_REVIEW"), *existing = NULL, *after = NULL;
    char key[128];
    snprintf(key, sizeof key, "eeeeeeeeeeeeeeeeeeeeeeee:%s:ONCE", ev);
    json_t *payload = json_pack("{s:s}", "type", "reward.granted");
    rp_grant_input_t in = {req, key, &line0, 1, 0, payload, NULL, 0};
    rp_grant_outcome_t out;
    cr_assert(S.rewards->ops->grant(S.rewards, &in, &out, &existing, &err), "%s", err.message);
    cr_assert_eq(out, RP_GRANT_OK);
    cr_assert_eq(stock_left(ev), 1);
    const char *id = json_string_value(json_object_get(req, "id"));
    rp_decide_outcome_t d;
    cr_assert(S.rewards->ops->transition(S.rewards, id, "AWAITING_REVIEW", "SUCCESS", "0123456789abcdef01234567", NULL,
                                         NULL, &line0, 1, payload, rp_now_ms(), &d, &after, &err),
              "%s", err.message);
    cr_assert_eq(d, RP_DECIDE_OK);
    cr_assert_str_eq(json_string_value(json_object_get(after, "status")), "SUCCESS");
    json_decref(after);
    cr_assert_eq(stock_left(ev), 0);
    cr_assert(S.rewards->ops->transition(S.rewards, id, "AWAITING_REVIEW", "FAILED", "0123456789abcdef01234567", NULL,
                                         "REJECTED", &line0, 1, payload, rp_now_ms(), &d, &after, &err));
    cr_assert_eq(d, RP_DECIDE_WRONG_STATE, "decided once");
    json_decref(after);
    cr_assert(S.rewards->ops->transition(S.rewards, id, "SUCCESS", "REVOKED", "0123456789abcdef01234567", "oops",
                                         "REVOKED", &line0, 1, payload, rp_now_ms(), &d, &after, &err));
    cr_assert_eq(d, RP_DECIDE_OK);
    json_decref(after);
    cr_assert_eq(stock_left(ev), 1, "a revocation returns the stock");
    json_t *items = NULL;
    bool more;
    cr_assert(S.rewards->ops->list_ledger(S.rewards, NULL, ev, 0, 10, &items, &more, &err));
    cr_assert_eq(json_array_size(items), 2u, "the grant and its reversal");
    json_decref(items);
    cr_assert(S.rewards->ops->transition(S.rewards, "ffffffffffffffffffffffff", "SUCCESS", "REVOKED", "x", NULL, NULL,
                                         &line0, 1, payload, rp_now_ms(), &d, &after, &err));
    cr_assert_eq(d, RP_DECIDE_NOT_FOUND);
    json_decref(after);
    json_decref(payload);
    json_decref(req);
}

BACKENDS(rewards, histories_page_newest_first_and_filter) {
    open_stores(*backend);
    rp_err_t err;
    char ev[RP_OID_LEN], users[5][RP_OID_LEN];
    make_event(-1, ev);
    for (int i = 0; i < 5; i++) {
        snprintf(users[i], RP_OID_LEN, "%024d", i + 1);
        cr_assert_eq(grant(users[i], ev, NULL, 0, NULL), RP_GRANT_OK);
    }
    json_t *failed = request(users[0], ev, "FAILED");
    json_object_set_new(failed, "failureReason", json_string("CONDITION_NOT_MET"));
    cr_assert(S.rewards->ops->record_failed(S.rewards, failed, &err), "%s", err.message);
    rp_request_filter_t f = {.event_id = ev, .status = "SUCCESS", .limit = 3};
    json_t *items = NULL;
    bool more = false;
    cr_assert(S.rewards->ops->list_requests(S.rewards, &f, &items, &more, &err), "%s", err.message);
    cr_assert_eq(json_array_size(items), 3u);
    cr_assert(more);
    char cursor[RP_OID_LEN];
    strcpy(cursor, json_string_value(json_object_get(json_array_get(items, 2), "id")));
    json_decref(items);
    f.cursor = cursor;
    cr_assert(S.rewards->ops->list_requests(S.rewards, &f, &items, &more, &err));
    cr_assert_eq(json_array_size(items), 2u);
    cr_assert_not(more);
    json_decref(items);
    rp_request_filter_t mine = {.user_id = users[0], .limit = 10};
    cr_assert(S.rewards->ops->list_requests(S.rewards, &mine, &items, &more, &err));
    cr_assert_eq(json_array_size(items), 2u, "the grant and the recorded failure");
    json_decref(items);
    json_decref(failed);
}

BACKENDS(rewards, outbox_leases_and_idempotency_keys) {
    open_stores(*backend);
    rp_err_t err;
    char ev[RP_OID_LEN];
    make_event(-1, ev);
    cr_assert_eq(grant("111111111111111111111111", ev, NULL, 0, NULL), RP_GRANT_OK);
    cr_assert_eq(grant("222222222222222222222222", ev, NULL, 0, NULL), RP_GRANT_OK);
    json_t *a = NULL, *b = NULL;
    int64_t now = rp_now_ms();
    cr_assert(S.rewards->ops->outbox_lease(S.rewards, "relay-a", now, 30000, 10, &a, &err), "%s", err.message);
    cr_assert_eq(json_array_size(a), 2u);
    cr_assert(S.rewards->ops->outbox_lease(S.rewards, "relay-b", now, 30000, 10, &b, &err));
    cr_assert_eq(json_array_size(b), 0u, "leased rows are not handed to another relay");
    json_decref(b);
    int64_t seqs[2] = {json_integer_value(json_object_get(json_array_get(a, 0), "seq")),
                       json_integer_value(json_object_get(json_array_get(a, 1), "seq"))};
    cr_assert_lt(seqs[0], seqs[1], "commit order");
    cr_assert(S.rewards->ops->outbox_published(S.rewards, seqs, 2, now, &err));
    cr_assert(S.rewards->ops->outbox_lease(S.rewards, "relay-b", now + 60000, 30000, 10, &b, &err));
    cr_assert_eq(json_array_size(b), 0u, "published rows are never leased again");
    json_decref(a);
    json_decref(b);

    bool found = true;
    char hash[65];
    int status = 0;
    json_t *resp = NULL, *first = json_pack("{s:s}", "id", "first"), *second = json_pack("{s:s}", "id", "second");
    cr_assert(
        S.rewards->ops->idem_get(S.rewards, "111111111111111111111111", "k1", &found, hash, &status, &resp, &err));
    cr_assert_not(found);
    cr_assert(S.rewards->ops->idem_put(S.rewards, "111111111111111111111111", "k1", "h1", 201, first, now, &err));
    cr_assert(S.rewards->ops->idem_put(S.rewards, "111111111111111111111111", "k1", "h2", 409, second, now, &err));
    cr_assert(
        S.rewards->ops->idem_get(S.rewards, "111111111111111111111111", "k1", &found, hash, &status, &resp, &err));
    cr_assert(found);
    cr_assert_str_eq(hash, "h1", "the first writer wins");
    cr_assert_eq(status, 201);
    cr_assert(json_equal(resp, first));
    json_decref(resp);
    json_decref(first);
    json_decref(second);
}

BACKENDS(rewards, batches_store_lease_and_settle_once) {
    open_stores(*backend);
    rp_err_t err;
    char ev[RP_OID_LEN], bid[RP_OID_LEN], existing[RP_OID_LEN], ehash[65];
    make_event(-1, ev);
    rp_oid_new(bid);
    const char *users[] = {"aaaaaaaaaaaaaaaaaaaaaaa1", "aaaaaaaaaaaaaaaaaaaaaaa2", "aaaaaaaaaaaaaaaaaaaaaaa3"};
    int64_t t0 = rp_now_ms();
    rp_batch_input_t in = {bid, ev, "comp", "0123456789abcdef01234567", "key-1", "hash-1", users, 3, 1, t0};
    bool existed = true;
    cr_assert(S.rewards->ops->batch_create(S.rewards, &in, &existed, existing, ehash, &err), "%s", err.message);
    cr_assert_not(existed);
    rp_batch_input_t again = in;
    rp_oid_new((char *)existing);
    char other[RP_OID_LEN];
    rp_oid_new(other);
    again.id = other;
    cr_assert(S.rewards->ops->batch_create(S.rewards, &again, &existed, existing, ehash, &err));
    cr_assert(existed, "the same creator and key never make a second batch");
    cr_assert_str_eq(existing, bid);
    cr_assert_str_eq(ehash, "hash-1");

    json_t *items = NULL;
    cr_assert(S.rewards->ops->batch_lease(S.rewards, t0, 5000, 10, 2, &items, &err), "%s", err.message);
    cr_assert_eq(json_array_size(items), 2u, "no more than max_in_flight items out at once");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(items, 0), "seq")), 1);
    json_decref(items);
    cr_assert(S.rewards->ops->batch_lease(S.rewards, t0, 5000, 10, 2, &items, &err));
    cr_assert_eq(json_array_size(items), 0u);
    json_decref(items);
    /* settle item 1 by a grant, item 2 by a refusal; a second grant of item 1 is ITEM_SETTLED */
    cr_assert_eq(grant(users[0], ev, bid, 1, NULL), RP_GRANT_OK);
    cr_assert_eq(grant(users[0], ev, bid, 1, NULL), RP_GRANT_ITEM_SETTLED);
    cr_assert(S.rewards->ops->batch_item_fail(S.rewards, bid, 2, "OUT_OF_STOCK", NULL, t0, &err));
    cr_assert(S.rewards->ops->batch_item_fail(S.rewards, bid, 1, "OUT_OF_STOCK", NULL, t0, &err));
    int64_t seqs[] = {1, 2, 3, 99};
    cr_assert(S.rewards->ops->batch_items_get(S.rewards, bid, seqs, 4, &items, &err));
    cr_assert_eq(json_array_size(items), 3u);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "status")), "SUCCESS",
                     "a settled item stays settled");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 1), "status")), "FAILED");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 2), "status")), "QUEUED");
    json_decref(items);
    /* unsettled items come due again after the redelivery time; the third is free now */
    cr_assert(S.rewards->ops->batch_lease(S.rewards, t0 + 6000, 5000, 10, 100, &items, &err));
    cr_assert_eq(json_array_size(items), 1u);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(items, 0), "seq")), 3);
    json_decref(items);
    json_t *doc = NULL;
    cr_assert(S.rewards->ops->batch_get(S.rewards, bid, true, &doc, &err), "%s", err.message);
    cr_assert_not_null(doc);
    json_t *counts = json_object_get(doc, "counts");
    cr_assert_eq(json_integer_value(json_object_get(counts, "SUCCESS")), 1);
    cr_assert_eq(json_integer_value(json_object_get(counts, "FAILED")), 1);
    cr_assert_eq(json_integer_value(json_object_get(counts, "QUEUED")), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(doc, "failures"), "OUT_OF_STOCK")), 1);
    cr_assert_eq(json_integer_value(json_object_get(doc, "total")), 3);
    cr_assert_eq(json_integer_value(json_object_get(doc, "duplicates")), 1);
    json_decref(doc);
    bool more = true;
    cr_assert(S.rewards->ops->batch_items(S.rewards, bid, "FAILED", 0, 10, &items, &more, &err));
    cr_assert_eq(json_array_size(items), 1u);
    cr_assert_not(more);
    json_decref(items);
    cr_assert(S.rewards->ops->batch_items(S.rewards, bid, NULL, 1, 1, &items, &more, &err));
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(items, 0), "seq")), 2);
    cr_assert(more);
    json_decref(items);
    cr_assert(S.rewards->ops->batch_get(S.rewards, "ffffffffffffffffffffffff", true, &doc, &err));
    cr_assert_null(doc);
}

BACKENDS(rewards, batches_list_newest_first_by_event) {
    open_stores(*backend);
    rp_err_t err;
    char ev[RP_OID_LEN], other[RP_OID_LEN], ids[3][RP_OID_LEN], existing[RP_OID_LEN], ehash[65];
    make_event(-1, ev);
    make_event(-1, other);
    const char *users[] = {"aaaaaaaaaaaaaaaaaaaaaaa1"};
    bool existed;
    for (int i = 0; i < 3; i++) {
        rp_oid_new(ids[i]);
        rp_batch_input_t in = {ids[i], i == 1 ? other : ev,     "r", "0123456789abcdef01234567", NULL, "h", users, 1,
                               0,      1767225600000 + i * 1000};
        cr_assert(S.rewards->ops->batch_create(S.rewards, &in, &existed, existing, ehash, &err), "%s", err.message);
    }
    json_t *items = NULL;
    bool more = false;
    cr_assert(S.rewards->ops->batch_list(S.rewards, NULL, NULL, 2, &items, &more, &err), "%s", err.message);
    cr_assert_eq(json_array_size(items), 2u);
    cr_assert(more);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "id")), ids[2]);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 1), "id")), ids[1]);
    json_decref(items);
    cr_assert(S.rewards->ops->batch_list(S.rewards, NULL, ids[1], 2, &items, &more, &err));
    cr_assert_eq(json_array_size(items), 1u);
    cr_assert_not(more);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "id")), ids[0]);
    json_decref(items);
    cr_assert(S.rewards->ops->batch_list(S.rewards, ev, NULL, 10, &items, &more, &err));
    cr_assert_eq(json_array_size(items), 2u, "only the event's batches");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(items, 0), "total")), 1);
    json_decref(items);
}
