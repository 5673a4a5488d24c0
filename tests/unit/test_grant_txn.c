/* Tests workers/reward/grant_txn.c: the business bodies of the reward path, run by the SQLite
 * store's unit of work (the MongoDB wire-contract tests run the same bodies over the MongoDB
 * store). Each test asserts what the store holds afterwards: requests, stock, ledger, outbox,
 * batch items and Idempotency-Key answers. */
#include "store_backends.h"

#include "reward/grant_txn.h"
#include "run_together.h"

#define OPERATOR "0123456789abcdef01234567"

static void open_all(void) {
    rp_err_t err;
    open_stores(SQLITE);
    S.rewards = rp_reward_store_sqlite_open(S.dir, 4, &err);
    cr_assert_not_null(S.rewards, "%s", err.message);
}

TestSuite(grant_txn, .init = open_all, .fini = close_stores, .timeout = 60);

/* An event with two rewards, stocks s0 and s1 (< 0 = unlimited), quantities 2 and 1. */
static void two_line_event(int64_t s0, int64_t s1, char id[RP_OID_LEN]) {
    rp_err_t err;
    json_t *d0 = definition(), *d1 = definition();
    rp_event_audit_t a = audit("CREATE", "REWARD_DEFINITION", "x");
    cr_assert(S.events->ops->def_create(S.events, d0, &a, &err), "%s", err.message);
    cr_assert(S.events->ops->def_create(S.events, d1, &a, &err), "%s", err.message);
    json_t *e = event(json_string_value(json_object_get(d0, "id")), s0, "2026-01-01T00:00:00.000Z");
    json_t *rw1 =
        json_pack("{s:O, s:i, s:n}", "rewardDefinitionId", json_object_get(d1, "id"), "quantity", 1, "customData");
    json_object_set_new(rw1, "stock", s1 < 0 ? json_null() : json_integer(s1));
    json_t *rw0 = json_array_get(json_object_get(e, "rewards"), 0);
    json_object_set_new(rw0, "quantity", json_integer(2));
    json_array_append_new(json_object_get(e, "rewards"), rw1);
    snprintf(id, RP_OID_LEN, "%s", json_string_value(json_object_get(e, "id")));
    cr_assert(S.events->ops->event_create(S.events, e, &a, &err), "%s", err.message);
    json_decref(d0);
    json_decref(d1);
    json_decref(e);
}

static int64_t stock(const char *event_id, int index) {
    rp_err_t err;
    json_t *e = NULL;
    cr_assert(S.events->ops->event_get(S.events, event_id, &e, &err), "%s", err.message);
    json_t *left = json_object_get(json_array_get(json_object_get(e, "rewards"), (size_t)index), "stockLeft");
    int64_t v = json_is_integer(left) ? json_integer_value(left) : -1;
    json_decref(e);
    return v;
}

/* The request a claim of user on the event would record (what claims.c builds); clear it. */
static rp_request_t request_for(const char *event_id, const char *user, rp_req_status_t status, const char *period) {
    rp_err_t err;
    json_t *e = NULL;
    rp_event_view_t v;
    rp_request_t r;
    cr_assert(S.events->ops->event_get(S.events, event_id, &e, &err), "%s", err.message);
    cr_assert(rp_event_view(e, &v));
    rp_request_init(&r);
    rp_oid_new(r.id);
    snprintf(r.user_id, sizeof r.user_id, "%s", user);
    snprintf(r.event_id, sizeof r.event_id, "%s", event_id);
    snprintf(r.period_key, sizeof r.period_key, "%s", period);
    rp_active_key(user, event_id, period, r.active_key, sizeof r.active_key);
    for (size_t i = 0; i < v.nrewards; i++) {
        rp_claimed_reward_t *c = &r.rewards[r.nrewards++];
        c->reward_index = v.rewards[i].index;
        snprintf(c->definition_id, sizeof c->definition_id, "%s", v.rewards[i].definition_id);
        snprintf(c->name, sizeof c->name, "%s", v.rewards[i].name);
        snprintf(c->type, sizeof c->type, "%s", v.rewards[i].type);
        c->value = json_deep_copy(v.rewards[i].value);
        c->quantity = v.rewards[i].quantity;
    }
    r.status = status;
    r.requested_at = r.created_at = r.updated_at = rp_now_ms();
    if (status == RP_REQ_SUCCESS) r.processed_at = r.requested_at;
    json_decref(e);
    return r;
}

static rp_grant_outcome_t claim(const rp_request_t *r, int64_t max_claims, rp_grant_result_t *res) {
    rp_err_t err;
    rp_claim_t c = {r, max_claims, NULL, NULL, NULL, NULL, 0};
    cr_assert(rp_grant_claim(S.rewards, &c, res, &err), "%s", err.message);
    return res->outcome;
}

/* Decides request id as OPERATOR at `at`; *d is the answer (clear it). Returns its outcome. */
static rp_decide_outcome_t decide(rp_decision_t decision, const char *id, const char *notes, int64_t at,
                                  rp_decide_result_t *d) {
    rp_err_t err;
    cr_assert(rp_grant_decide(S.rewards, decision, id, OPERATOR, notes, at, d, &err), "%s", err.message);
    return d->outcome;
}

/* The number of ledger entries of the event; their quantities' sum in *sum unless it is NULL. */
static size_t ledger_entries(const char *event_id, int64_t *sum) {
    rp_err_t err;
    rp_ledger_entry_t *items = NULL;
    size_t n = 0;
    bool more;
    cr_assert(S.rewards->ops->list_ledger(S.rewards, NULL, event_id, 0, 100, &items, &n, &more, &err), "%s",
              err.message);
    int64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += items[i].quantity;
    if (sum) *sum = total;
    free(items);
    return n;
}

/* The outbox messages about one request: how many, and the last one's id and payload messageId. */
typedef struct messages {
    size_t n;
    char last_id[RP_MESSAGE_ID_LEN], last_payload_id[64];
} messages_t;

/* The reward.awaiting_review messages of request id, checking each one's id "<id>:review". */
static size_t review_messages_of(const char *id) {
    rp_err_t err;
    rp_outbox_message_t *items = NULL;
    size_t n = 0, found = 0;
    bool more;
    char want[RP_MESSAGE_ID_LEN];
    snprintf(want, sizeof want, "%s:review", id);
    cr_assert(S.rewards->ops->list_outbox(S.rewards, 0, 1000, &items, &n, &more, &err), "%s", err.message);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(items[i].request_id, id) == 0 && strcmp(items[i].routing_key, "reward.awaiting_review") == 0) {
            found++;
            cr_assert_str_eq(items[i].message_id, want);
            cr_assert_str_eq(json_string_value(json_object_get(items[i].payload, "messageId")), want);
        }
        rp_outbox_message_clear(&items[i]);
    }
    free(items);
    return found;
}

/* The stored reward.granted message of request r carries the whole payload game servers get
 * (made and printed before the grant's unit of work): type, ids, rewards, time, processor. */
static void assert_granted_payload(const rp_request_t *r) {
    rp_err_t err;
    rp_outbox_message_t *items = NULL;
    size_t n = 0, found = 0;
    bool more;
    json_t *want = rp_request_message(r, "reward.granted", r->id, r->created_at, NULL);
    cr_assert(S.rewards->ops->list_outbox(S.rewards, 0, 1000, &items, &n, &more, &err), "%s", err.message);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(items[i].message_id, r->id) == 0) {
            found++;
            char *got = json_dumps(items[i].payload, JSON_SORT_KEYS), *exp = json_dumps(want, JSON_SORT_KEYS);
            cr_assert(json_equal(items[i].payload, want), "stored %s, want %s", got, exp);
            cr_assert_eq(json_array_size(json_object_get(items[i].payload, "rewards")), r->nrewards);
            free(got);
            free(exp);
        }
        rp_outbox_message_clear(&items[i]);
    }
    free(items);
    json_decref(want);
    cr_assert_eq(found, 1u);
}

static messages_t messages_of(const char *id) {
    rp_err_t err;
    rp_outbox_message_t *items = NULL;
    size_t n = 0;
    bool more;
    messages_t m = {0, "", ""};
    cr_assert(S.rewards->ops->list_outbox(S.rewards, 0, 1000, &items, &n, &more, &err), "%s", err.message);
    for (size_t i = 0; i < n; i++) {
        /* grants and revocations; a request waiting for review has a message of its own */
        if (strcmp(items[i].request_id, id) == 0 && strcmp(items[i].routing_key, "reward.awaiting_review") != 0) {
            m.n++;
            snprintf(m.last_id, sizeof m.last_id, "%s", items[i].message_id);
            const char *p = json_string_value(json_object_get(items[i].payload, "messageId"));
            snprintf(m.last_payload_id, sizeof m.last_payload_id, "%s", p ? p : "");
        }
        rp_outbox_message_clear(&items[i]);
    }
    free(items);
    return m;
}

/* Reads request id into *r (initialised here; clear it) and asserts whether it is stored: expect.
 * *found starts as the opposite, so a read that never sets it fails. */
static void assert_stored(const char *id, rp_request_t *r, bool expect, const char *why) {
    rp_err_t err;
    bool found = !expect;
    rp_request_init(r);
    cr_assert(S.rewards->ops->get_request(S.rewards, id, r, &found, &err), "%s", err.message);
    cr_assert_eq(found, expect, "request %s: %s", id, why);
}

/* Stored request id, which must be there; clear it. */
static rp_request_t stored(const char *id) {
    rp_request_t r;
    assert_stored(id, &r, true, "is stored");
    return r;
}

/* Asserts that stored request id failed for reason (why, when set, says what it shows). */
static void assert_failure_reason(const char *id, const char *reason, const char *why) {
    rp_request_t f = stored(id);
    cr_assert_str_eq(f.failure_reason, reason, "%s", why ? why : reason);
    rp_request_clear(&f);
}

/* Most tests' start: a two-line event (stocks s0, s1; < 0 = unlimited), one player's request in
 * status on it, and the grant's answer to its claim, which must be want. */
typedef struct scene {
    char ev[RP_OID_LEN];
    rp_request_t r;
    rp_grant_result_t res;
} scene_t;

static scene_t claimed(int64_t s0, int64_t s1, const char *user, rp_req_status_t status, rp_grant_outcome_t want) {
    scene_t c;
    two_line_event(s0, s1, c.ev);
    c.r = request_for(c.ev, user, status, "ONCE");
    cr_assert_eq(claim(&c.r, 0, &c.res), want);
    return c;
}

static void scene_clear(scene_t *c) {
    rp_grant_result_clear(&c->res);
    rp_request_clear(&c->r);
}

Test(grant_txn, a_claim_pays_every_line_once) {
    int64_t sum;
    scene_t c = claimed(10, -1, "aaaaaaaaaaaaaaaaaaaaaaaa", RP_REQ_SUCCESS, RP_GRANT_OK);
    cr_assert_eq(stock(c.ev, 0), 8, "quantity 2 taken from the limited line");
    cr_assert_eq(stock(c.ev, 1), -1, "the unlimited line stays unlimited");
    cr_assert_eq(ledger_entries(c.ev, &sum), 2u);
    cr_assert_eq(sum, 3);
    messages_t m = messages_of(c.r.id);
    cr_assert_eq(m.n, 1u);
    cr_assert_str_eq(m.last_id, c.r.id, "a grant's message id is its request id");
    cr_assert_str_eq(m.last_payload_id, c.r.id);
    assert_granted_payload(&c.r);
    rp_grant_result_clear(&c.res);

    rp_request_t again = request_for(c.ev, "aaaaaaaaaaaaaaaaaaaaaaaa", RP_REQ_SUCCESS, "ONCE"), none;
    cr_assert_eq(claim(&again, 0, &c.res), RP_GRANT_ALREADY_CLAIMED);
    cr_assert_str_eq(c.res.holder.id, c.r.id, "the answer names the request holding the slot");
    cr_assert_eq(stock(c.ev, 0), 8);
    cr_assert_eq(ledger_entries(c.ev, NULL), 2u, "a repeated claim never pays twice");
    assert_stored(again.id, &none, false, "an ALREADY_CLAIMED claim records no request");
    rp_request_clear(&none);
    rp_request_clear(&again);
    scene_clear(&c);
}

Test(grant_txn, a_short_line_takes_nothing_and_fails_the_request) {
    scene_t c = claimed(10, 0, "bbbbbbbbbbbbbbbbbbbbbbbb", RP_REQ_SUCCESS, RP_GRANT_OUT_OF_STOCK);
    cr_assert_eq(stock(c.ev, 0), 10, "the first line's stock came back with the rollback");
    cr_assert_eq(ledger_entries(c.ev, NULL), 0u);
    rp_request_t f = stored(c.r.id);
    cr_assert_eq(f.status, RP_REQ_FAILED);
    cr_assert_str_eq(f.failure_reason, "OUT_OF_STOCK");
    cr_assert_str_eq(f.active_key, "", "a FAILED request holds no slot");
    cr_assert_eq(f.processed_at, f.requested_at);
    rp_request_clear(&f);
    scene_clear(&c);
}

Test(grant_txn, max_claims_counts_slots_over_every_period) {
    char ev[RP_OID_LEN];
    two_line_event(-1, -1, ev);
    rp_grant_result_t res;
    rp_request_t a = request_for(ev, "cccccccccccccccccccccccc", RP_REQ_SUCCESS, "D:2026-01-01");
    rp_request_t b = request_for(ev, "cccccccccccccccccccccccc", RP_REQ_SUCCESS, "D:2026-01-02");
    cr_assert_eq(claim(&a, 1, &res), RP_GRANT_OK);
    rp_grant_result_clear(&res);
    cr_assert_eq(claim(&b, 1, &res), RP_GRANT_MAX_CLAIMS_REACHED);
    assert_failure_reason(b.id, "MAX_CLAIMS_REACHED", NULL);
    rp_grant_result_clear(&res);
    rp_request_clear(&a);
    rp_request_clear(&b);
}

Test(grant_txn, review_then_approve_pays_and_decides_once) {
    rp_decide_result_t d;
    scene_t c = claimed(5, -1, "dddddddddddddddddddddddd", RP_REQ_AWAITING_REVIEW, RP_GRANT_OK);
    cr_assert_eq(stock(c.ev, 0), 5, "review holds the slot, not the stock");
    cr_assert_eq(messages_of(c.r.id).n, 0u, "nothing is granted yet");
    cr_assert_eq(review_messages_of(c.r.id), 1u, "the review's own message (webhooks: reward.awaiting_review)");
    cr_assert_eq(decide(RP_DECIDE_APPROVE, c.r.id, "looks fine", 1000, &d), RP_DECIDED);
    cr_assert_eq(d.request.status, RP_REQ_SUCCESS);
    cr_assert_str_eq(d.request.processor_id, OPERATOR);
    cr_assert_str_eq(d.request.notes, "looks fine");
    cr_assert_eq(stock(c.ev, 0), 3);
    cr_assert_eq(ledger_entries(c.ev, NULL), 2u);
    cr_assert_eq(messages_of(c.r.id).n, 1u);
    rp_decide_result_clear(&d);
    cr_assert_eq(decide(RP_DECIDE_REJECT, c.r.id, NULL, 2000, &d), RP_DECIDE_WRONG_STATE, "decided once");
    cr_assert_eq(d.request.status, RP_REQ_SUCCESS, "the answer shows the request as it is");
    rp_decide_result_clear(&d);
    cr_assert_eq(decide(RP_DECIDE_APPROVE, "ffffffffffffffffffffffff", NULL, 3, &d), RP_DECIDE_NOT_FOUND);
    rp_decide_result_clear(&d);
    scene_clear(&c);
}

/* Defect: SQLite's approval that ran out of stock failed the request with no compare-and-set. */
Test(grant_txn, approval_out_of_stock_fails_the_request_with_a_compare_and_set) {
    rp_decide_result_t d;
    scene_t c = claimed(10, 0, "eeeeeeeeeeeeeeeeeeeeeeee", RP_REQ_AWAITING_REVIEW, RP_GRANT_OK);
    rp_grant_result_clear(&c.res);
    cr_assert_eq(decide(RP_DECIDE_APPROVE, c.r.id, NULL, 1000, &d), RP_DECIDE_OUT_OF_STOCK);
    cr_assert_eq(d.request.status, RP_REQ_FAILED);
    cr_assert_str_eq(d.request.failure_reason, "OUT_OF_STOCK");
    cr_assert_eq(stock(c.ev, 0), 10, "nothing of the first line stays taken");
    cr_assert_eq(ledger_entries(c.ev, NULL), 0u);
    rp_decide_result_clear(&d);
    /* the slot is free again: the same player may claim anew */
    rp_request_t again = request_for(c.ev, "eeeeeeeeeeeeeeeeeeeeeeee", RP_REQ_AWAITING_REVIEW, "ONCE");
    cr_assert_eq(claim(&again, 0, &c.res), RP_GRANT_OK);
    rp_grant_result_clear(&c.res);
    /* a request decided meanwhile is not touched by an approval that finds no stock */
    cr_assert_eq(decide(RP_DECIDE_REJECT, again.id, "no", 1500, &d), RP_DECIDED);
    rp_decide_result_clear(&d);
    cr_assert_eq(decide(RP_DECIDE_APPROVE, again.id, NULL, 2000, &d), RP_DECIDE_WRONG_STATE);
    assert_failure_reason(again.id, "REJECTED", "the rejection stands");
    rp_decide_result_clear(&d);
    rp_request_clear(&again);
    scene_clear(&c);
}

/* The store with its transact made to let a rejection in between the approval that found the
 * stock short (rolled back) and the unit of work that fails the request: the window in which the
 * old SQLite store overwrote whatever status the request had reached. */
static rp_reward_store_ops_t racing_ops;
static const rp_reward_store_ops_t *real_ops;
static const char *race_id;
static int transacts;

static bool racing_transact(rp_reward_store_t *s, const char *what, rp_reward_txn_fn fn, void *arg, rp_err_t *err) {
    if (++transacts == 2) {
        rp_decide_result_t d;
        s->ops = real_ops;
        cr_assert(rp_grant_decide(s, RP_DECIDE_REJECT, race_id, OPERATOR, "meanwhile", 1500, &d, err));
        cr_assert_eq(d.outcome, RP_DECIDED);
        rp_decide_result_clear(&d);
        s->ops = &racing_ops;
    }
    return real_ops->transact(s, what, fn, arg, err);
}

Test(grant_txn, a_decision_between_the_two_units_of_a_short_approval_stands) {
    rp_decide_result_t d;
    rp_err_t err;
    scene_t c = claimed(10, 0, "abababababababababababab", RP_REQ_AWAITING_REVIEW, RP_GRANT_OK);
    rp_grant_result_clear(&c.res);
    real_ops = S.rewards->ops;
    racing_ops = *real_ops;
    racing_ops.transact = racing_transact;
    race_id = c.r.id;
    transacts = 0;
    S.rewards->ops = &racing_ops;
    bool ok = rp_grant_decide(S.rewards, RP_DECIDE_APPROVE, c.r.id, OPERATOR, NULL, 2000, &d, &err);
    S.rewards->ops = real_ops;
    cr_assert(ok, "%s", err.message);
    cr_assert_eq(transacts, 2, "the approval rolled back, then tried to fail the request");
    cr_assert_eq(d.outcome, RP_DECIDE_WRONG_STATE, "the failing step found the request decided meanwhile");
    assert_failure_reason(c.r.id, "REJECTED", "the rejection stands: the fail was a compare-and-set");
    rp_decide_result_clear(&d);
    scene_clear(&c);
}

/* Defect: a revocation's outbox row said <id>:revoked outside and the grant's id inside. */
Test(grant_txn, revocation_returns_stock_reverses_and_has_its_own_message_id) {
    char want[RP_MESSAGE_ID_LEN];
    rp_decide_result_t d;
    int64_t sum;
    scene_t c = claimed(4, -1, "111111111111111111111111", RP_REQ_SUCCESS, RP_GRANT_OK);
    rp_grant_result_clear(&c.res);
    cr_assert_eq(decide(RP_DECIDE_REVOKE, c.r.id, "paid by mistake", 5000, &d), RP_DECIDED);
    cr_assert_eq(d.request.status, RP_REQ_REVOKED);
    cr_assert_str_eq(d.request.notes, "paid by mistake");
    cr_assert_eq(stock(c.ev, 0), 4, "the stock is back");
    cr_assert_eq(ledger_entries(c.ev, &sum), 4u, "two grants, two reversals");
    cr_assert_eq(sum, 0);
    messages_t m = messages_of(c.r.id);
    cr_assert_eq(m.n, 2u);
    snprintf(want, sizeof want, "%s:revoked", c.r.id);
    cr_assert_str_eq(m.last_id, want);
    cr_assert_str_eq(m.last_payload_id, want, "the payload's messageId is the message's id, not the grant's");
    rp_decide_result_clear(&d);
    cr_assert_eq(decide(RP_DECIDE_REVOKE, c.r.id, "again", 6000, &d), RP_DECIDE_WRONG_STATE, "revoked once");
    cr_assert_eq(ledger_entries(c.ev, NULL), 4u);
    rp_decide_result_clear(&d);
    scene_clear(&c);
}

static json_t *answer(void *ctx, const rp_grant_result_t *res, int *status) {
    (void)ctx;
    *status = res->outcome == RP_GRANT_OK ? 201 : res->outcome == RP_GRANT_ALREADY_CLAIMED ? 409 : 422;
    return json_pack("{s:s, s:i}", "id", res->outcome == RP_GRANT_ALREADY_CLAIMED ? res->holder.id : res->request.id,
                     "outcome", (int)res->outcome);
}

Test(grant_txn, idempotency_key_answer_is_stored_and_replayed) {
    char ev[RP_OID_LEN];
    two_line_event(-1, -1, ev);
    rp_grant_result_t res;
    rp_err_t err;
    rp_request_t r = request_for(ev, "222222222222222222222222", RP_REQ_SUCCESS, "ONCE");
    rp_claim_t c = {&r, 0, "key-1", "hash-1", answer, NULL, 0};
    cr_assert(rp_grant_claim(S.rewards, &c, &res, &err), "%s", err.message);
    cr_assert_eq(res.outcome, RP_GRANT_OK);
    rp_grant_result_clear(&res);
    /* a retry (a new request id, as after a lost answer) gets the stored first answer */
    rp_request_t retry = request_for(ev, "222222222222222222222222", RP_REQ_SUCCESS, "ONCE");
    rp_claim_t again = {&retry, 0, "key-1", "hash-1", answer, NULL, 0};
    cr_assert(rp_grant_claim(S.rewards, &again, &res, &err), "%s", err.message);
    cr_assert_eq(res.outcome, RP_GRANT_REPLAYED);
    cr_assert_eq(res.replay.status, 201);
    cr_assert_str_eq(json_string_value(json_object_get(res.replay.response, "id")), r.id);
    cr_assert_str_eq(res.replay.request_hash, "hash-1");
    cr_assert_eq(ledger_entries(ev, NULL), 2u);
    rp_grant_result_clear(&res);
    /* a judged refusal with a key: the FAILED request and its answer, together */
    rp_request_t refused = request_for(ev, "333333333333333333333333", RP_REQ_FAILED, "ONCE");
    refused.active_key[0] = '\0';
    snprintf(refused.failure_reason, sizeof refused.failure_reason, "EVENT_NOT_ACTIVE");
    rp_claim_t judged = {&refused, 0, "key-2", "hash-2", answer, NULL, 0};
    cr_assert(rp_grant_claim(S.rewards, &judged, &res, &err), "%s", err.message);
    cr_assert_eq(res.outcome, RP_GRANT_REFUSED);
    rp_idem_t v;
    bool found = false;
    memset(&v, 0, sizeof v);
    cr_assert(S.rewards->ops->idem_get(S.rewards, refused.user_id, "key-2", &v, &found, &err));
    cr_assert(found);
    cr_assert_eq(v.status, 422);
    assert_failure_reason(refused.id, "EVENT_NOT_ACTIVE", NULL);
    rp_idem_clear(&v);
    rp_grant_result_clear(&res);
    rp_request_clear(&r);
    rp_request_clear(&retry);
    rp_request_clear(&refused);
}

/* The store with one primitive made to fail: what the grant wrote before it must not stay. */
static rp_reward_store_ops_t failing_ops;
static bool fail_idem_put(rp_reward_txn_t *tx, const char *user_id, const char *key, const rp_idem_t *v,
                          bool *duplicate) {
    (void)tx, (void)user_id, (void)key, (void)v;
    *duplicate = false;
    return false;
}

/* Defect: the answer was stored after the grant committed, so a crash in between made the retry
 * answer 409. Now the answer is part of the grant: if it cannot be stored, nothing is. */
Test(grant_txn, the_answer_is_written_in_the_grants_own_transaction) {
    char ev[RP_OID_LEN];
    two_line_event(3, -1, ev);
    rp_grant_result_t res;
    rp_err_t err;
    rp_request_t r = request_for(ev, "444444444444444444444444", RP_REQ_SUCCESS, "ONCE");
    /* the same store (its state) with one primitive swapped */
    rp_reward_store_t *real = S.rewards;
    const rp_reward_store_ops_t *ops = real->ops;
    failing_ops = *ops;
    failing_ops.tx_idem_put = fail_idem_put;
    real->ops = &failing_ops;
    rp_claim_t c = {&r, 0, "key-3", "hash-3", answer, NULL, 0};
    rp_err_clear(&err);
    bool ok = rp_grant_claim(real, &c, &res, &err);
    real->ops = ops;
    cr_assert_not(ok);
    rp_grant_result_clear(&res);
    cr_assert_eq(stock(ev, 0), 3, "no stock taken");
    cr_assert_eq(ledger_entries(ev, NULL), 0u, "no ledger entry");
    cr_assert_eq(messages_of(r.id).n, 0u, "no outbox message");
    rp_request_t none;
    bool found = true;
    rp_request_init(&none);
    cr_assert(real->ops->find_active(real, &r, &none, &found, &err));
    cr_assert_not(found, "no request: the slot is free for the retry");
    rp_request_clear(&r);
}

typedef struct race {
    const char *event_id;
    int ok, refused;
    pthread_mutex_t mu;
} race_t;

static void *race_main(void *arg) {
    race_t *rc = arg;
    rp_grant_result_t res;
    rp_err_t err;
    rp_request_t r = request_for(rc->event_id, "555555555555555555555555", RP_REQ_SUCCESS, "ONCE");
    rp_claim_t c = {&r, 0, NULL, NULL, NULL, NULL, 0};
    bool ok = rp_grant_claim(S.rewards, &c, &res, &err);
    pthread_mutex_lock(&rc->mu);
    if (ok && res.outcome == RP_GRANT_OK) rc->ok++;
    if (ok && res.outcome == RP_GRANT_ALREADY_CLAIMED) rc->refused++;
    pthread_mutex_unlock(&rc->mu);
    rp_grant_result_clear(&res);
    rp_request_clear(&r);
    return NULL;
}

Test(grant_txn, concurrent_claims_of_one_slot_pay_once) {
    char ev[RP_OID_LEN];
    two_line_event(100, -1, ev);
    race_t rc = {ev, 0, 0, PTHREAD_MUTEX_INITIALIZER};
    run_together(8, race_main, &rc);
    cr_assert_eq(rc.ok, 1);
    cr_assert_eq(rc.refused, 7);
    cr_assert_eq(stock(ev, 0), 98);
    cr_assert_eq(ledger_entries(ev, NULL), 2u);
}

static void make_batch(const char *event_id, const char *key, const char *hash, const char *const *users, size_t n,
                       rp_batch_created_t *outcome, char id[RP_OID_LEN]) {
    rp_err_t err;
    rp_batch_t b;
    memset(&b, 0, sizeof b);
    rp_oid_new(b.id);
    snprintf(b.event_id, sizeof b.event_id, "%s", event_id);
    snprintf(b.created_by, sizeof b.created_by, OPERATOR);
    snprintf(b.idem_key, sizeof b.idem_key, "%s", key ? key : "");
    snprintf(b.request_hash, sizeof b.request_hash, "%s", hash);
    b.reason = strdup("launch gift");
    b.total = (int64_t)n;
    b.created_at = rp_now_ms();
    cr_assert(rp_grant_batch_create(S.rewards, &b, users, n, outcome, id, &err), "%s", err.message);
    rp_batch_clear(&b);
}

static rp_batch_item_t item(const char *batch_id, int64_t seq) {
    rp_err_t err;
    rp_batch_item_t *items = NULL, it;
    size_t got = 0;
    cr_assert(S.rewards->ops->batch_items_get(S.rewards, batch_id, &seq, 1, &items, &got, &err), "%s", err.message);
    cr_assert_eq(got, 1u);
    it = items[0];
    free(items);
    return it;
}

/* A batch item request, as claims.c builds it for the sweeper's consumer; clear it. */
static rp_request_t item_request(const char *event_id, const char *batch_id, const char *user) {
    rp_request_t r = request_for(event_id, user, RP_REQ_SUCCESS, "ONCE");
    r.source = RP_SOURCE_BATCH;
    snprintf(r.batch_id, sizeof r.batch_id, "%s", batch_id);
    snprintf(r.processor_id, sizeof r.processor_id, OPERATOR);
    return r;
}

Test(grant_txn, batch_items_settle_once_with_their_grant) {
    char ev[RP_OID_LEN], bid[RP_OID_LEN], again_id[RP_OID_LEN];
    two_line_event(2, -1, ev); /* room for one grant of quantity 2 */
    const char *users[] = {"666666666666666666666666", "777777777777777777777777", "666666666666666666666666"};
    rp_batch_created_t outcome;
    make_batch(ev, "batch-key", "h1", users, 2, &outcome, bid);
    cr_assert_eq(outcome, RP_BATCH_CREATED);
    make_batch(ev, "batch-key", "h1", users, 2, &outcome, again_id);
    cr_assert_eq(outcome, RP_BATCH_EXISTED);
    cr_assert_str_eq(again_id, bid, "the same key and body answer the first batch");
    make_batch(ev, "batch-key", "h2", users, 2, &outcome, again_id);
    cr_assert_eq(outcome, RP_BATCH_KEY_REUSED);

    rp_grant_result_t res;
    rp_err_t err;
    rp_request_t r = item_request(ev, bid, users[0]);
    cr_assert(rp_grant_batch_item(S.rewards, &r, 1, 0, &res, &err), "%s", err.message);
    cr_assert_eq(res.outcome, RP_GRANT_OK);
    rp_grant_result_clear(&res);
    rp_batch_item_t it = item(bid, 1);
    cr_assert_eq(it.status, RP_ITEM_SUCCESS);
    cr_assert_str_eq(it.request_id, r.id);
    rp_request_clear(&r);
    /* a redelivery of item 1 pays nothing */
    r = item_request(ev, bid, users[0]);
    cr_assert(rp_grant_batch_item(S.rewards, &r, 1, 0, &res, &err));
    cr_assert_eq(res.outcome, RP_GRANT_ITEM_SETTLED);
    cr_assert_eq(stock(ev, 0), 0);
    rp_grant_result_clear(&res);
    rp_request_clear(&r);
    /* item 2: out of stock settles it FAILED, no request recorded for it */
    r = item_request(ev, bid, users[1]);
    cr_assert(rp_grant_batch_item(S.rewards, &r, 2, 0, &res, &err));
    cr_assert_eq(res.outcome, RP_GRANT_OUT_OF_STOCK);
    it = item(bid, 2);
    cr_assert_eq(it.status, RP_ITEM_FAILED);
    cr_assert_str_eq(it.failure_reason, "OUT_OF_STOCK");
    rp_grant_result_clear(&res);
    rp_request_clear(&r);
}

Test(grant_txn, batch_item_of_a_paid_player_names_the_holder) {
    char ev[RP_OID_LEN], bid[RP_OID_LEN];
    two_line_event(-1, -1, ev);
    const char *users[] = {"888888888888888888888888"};
    rp_batch_created_t outcome;
    rp_grant_result_t res;
    rp_err_t err;
    rp_request_t first = request_for(ev, users[0], RP_REQ_SUCCESS, "ONCE");
    cr_assert_eq(claim(&first, 0, &res), RP_GRANT_OK);
    rp_grant_result_clear(&res);
    make_batch(ev, NULL, "h", users, 1, &outcome, bid);
    rp_request_t r = item_request(ev, bid, users[0]);
    cr_assert(rp_grant_batch_item(S.rewards, &r, 1, 0, &res, &err), "%s", err.message);
    cr_assert_eq(res.outcome, RP_GRANT_ALREADY_CLAIMED);
    rp_batch_item_t it = item(bid, 1);
    cr_assert_eq(it.status, RP_ITEM_FAILED);
    cr_assert_str_eq(it.failure_reason, "ALREADY_CLAIMED");
    cr_assert_str_eq(it.request_id, first.id, "the item names the request that holds the slot");
    cr_assert(rp_grant_item_fail(S.rewards, bid, 1, "EVENT_CANCELED", 1, &err));
    it = item(bid, 1);
    cr_assert_str_eq(it.failure_reason, "ALREADY_CLAIMED", "a settled item stays as it is");
    rp_grant_result_clear(&res);
    rp_request_clear(&first);
    rp_request_clear(&r);
}

Test(grant_txn, the_lease_holds_back_pressure) {
    char ev[RP_OID_LEN], bid[RP_OID_LEN];
    two_line_event(-1, -1, ev);
    const char *users[] = {"900000000000000000000001", "900000000000000000000002", "900000000000000000000003",
                           "900000000000000000000004", "900000000000000000000005"};
    rp_batch_created_t outcome;
    rp_item_ref_t *items = NULL;
    size_t n = 0;
    rp_err_t err;
    make_batch(ev, NULL, "h", users, 5, &outcome, bid);
    int64_t now = rp_now_ms() + 1000;
    cr_assert(rp_grant_lease_items(S.rewards, now, 60000, 10, 3, &items, &n, &err), "%s", err.message);
    cr_assert_eq(n, 3u, "no more than max_in_flight out at once");
    cr_assert_str_eq(items[0].batch_id, bid);
    cr_assert_eq(items[0].seq, 1);
    free(items);
    cr_assert(rp_grant_lease_items(S.rewards, now, 60000, 10, 3, &items, &n, &err));
    cr_assert_eq(n, 0u, "three are in flight: nothing more until they settle or come due");
    free(items);
    cr_assert(rp_grant_item_fail(S.rewards, bid, 1, "EVENT_CANCELED", now, &err));
    cr_assert(rp_grant_lease_items(S.rewards, now, 60000, 10, 3, &items, &n, &err));
    cr_assert_eq(n, 1u, "a settled item makes room for one more");
    cr_assert_eq(items[0].seq, 4);
    free(items);
    cr_assert(rp_grant_lease_items(S.rewards, now + 61000, 60000, 10, 100, &items, &n, &err));
    cr_assert_eq(n, 4u, "unsettled items come due again after the redelivery time");
    free(items);
}

/* The request counted by the store: how many requests of the event exist, whatever status. */
static size_t requests_of(const char *event_id) {
    rp_err_t err;
    rp_request_t *items = NULL;
    size_t n = 0;
    bool more;
    rp_request_filter_t f = {.event_id = event_id, .status = -1, .limit = 100};
    cr_assert(S.rewards->ops->list_requests(S.rewards, &f, &items, &n, &more, &err), "%s", err.message);
    for (size_t i = 0; i < n; i++)
        rp_request_clear(&items[i]);
    free(items);
    return n;
}

Test(grant_txn, nobody_decides_his_own_request) {
    rp_decide_result_t d;
    const char *self = OPERATOR; /* an operator who also plays */
    scene_t c = claimed(5, -1, self, RP_REQ_AWAITING_REVIEW, RP_GRANT_OK);
    cr_assert_eq(decide(RP_DECIDE_APPROVE, c.r.id, NULL, 1000, &d), RP_DECIDE_SELF);
    rp_decide_result_clear(&d);
    cr_assert_eq(decide(RP_DECIDE_REJECT, c.r.id, NULL, 1000, &d), RP_DECIDE_SELF);
    rp_decide_result_clear(&d);
    rp_request_t r = stored(c.r.id);
    cr_assert_eq(r.status, RP_REQ_AWAITING_REVIEW, "nothing changed");
    cr_assert_str_eq(r.processor_id, "");
    cr_assert_eq(stock(c.ev, 0), 5);
    cr_assert_eq(ledger_entries(c.ev, NULL), 0u);
    rp_request_clear(&r);
    scene_clear(&c);
}

Test(grant_txn, approval_of_a_canceled_events_request_pays_nothing) {
    rp_decide_result_t d;
    rp_err_t err;
    bool already = false;
    scene_t c = claimed(5, -1, "abababababababababababab", RP_REQ_AWAITING_REVIEW, RP_GRANT_OK);
    rp_event_audit_t a = audit("CANCEL", "EVENT", c.ev);
    /* a cancel that left the review pending (one from before cancels settled reviews): the
     * approval's own check is what refuses */
    cr_assert(S.events->ops->event_cancel(S.events, c.ev, rp_now_ms(), NULL, &a, &already, NULL, &err), "%s",
              err.message);
    cr_assert_eq(decide(RP_DECIDE_APPROVE, c.r.id, "ok", 1000, &d), RP_DECIDE_EVENT_CANCELED);
    cr_assert_eq(d.request.status, RP_REQ_FAILED);
    rp_decide_result_clear(&d);
    rp_request_t r = stored(c.r.id);
    cr_assert_eq(r.status, RP_REQ_FAILED);
    cr_assert_str_eq(r.failure_reason, "EVENT_CANCELED");
    cr_assert_str_eq(r.active_key, "", "the slot is freed");
    cr_assert_eq(stock(c.ev, 0), 5, "no stock taken");
    cr_assert_eq(ledger_entries(c.ev, NULL), 0u, "no ledger entry");
    cr_assert_eq(messages_of(c.r.id).n, 0u, "no message");
    rp_request_clear(&r);
    /* rejection of a canceled event's request is still a rejection */
    scene_clear(&c);
}

/* rp_grant_claim_check's outcome for r (maxClaims max); asserts nothing was written. */
static rp_grant_outcome_t check(const rp_request_t *r, int64_t max_claims, rp_grant_result_t *res,
                                rp_event_state_t *state) {
    rp_err_t err;
    size_t before = requests_of(r->event_id), ledger = ledger_entries(r->event_id, NULL);
    int64_t s0 = stock(r->event_id, 0);
    rp_claim_t c = {r, max_claims, NULL, NULL, NULL, NULL, 0};
    cr_assert(rp_grant_claim_check(S.rewards, &c, res, state, &err), "%s", err.message);
    cr_assert_eq(requests_of(r->event_id), before, "a check records no request");
    cr_assert_eq(ledger_entries(r->event_id, NULL), ledger, "a check pays nothing");
    cr_assert_eq(stock(r->event_id, 0), s0, "a check takes no stock");
    return res->outcome;
}

Test(grant_txn, a_check_agrees_with_the_claim_that_follows_and_writes_nothing) {
    char ev[RP_OID_LEN];
    rp_grant_result_t res, got;
    rp_event_state_t st;
    two_line_event(2, -1, ev); /* one grant of quantity 2 */
    const char *u1 = "acacacacacacacacacacacac", *u2 = "adadadadadadadadadadadad";
    rp_request_t a = request_for(ev, u1, RP_REQ_SUCCESS, "ONCE");
    cr_assert_eq(check(&a, 0, &res, &st), RP_GRANT_OK);
    cr_assert_eq(st.nrewards, 2u);
    cr_assert_eq(st.stock_left[0], 2);
    cr_assert_eq(st.stock_left[1], -1, "unlimited");
    cr_assert_eq(st.canceled_at, 0);
    rp_grant_result_clear(&res);
    cr_assert_eq(claim(&a, 0, &got), RP_GRANT_OK);
    rp_grant_result_clear(&got);

    rp_request_t again = request_for(ev, u1, RP_REQ_SUCCESS, "ONCE");
    cr_assert_eq(check(&again, 0, &res, &st), RP_GRANT_ALREADY_CLAIMED);
    cr_assert_str_eq(res.holder.id, a.id);
    rp_grant_result_clear(&res);
    cr_assert_eq(claim(&again, 0, &got), RP_GRANT_ALREADY_CLAIMED);
    rp_grant_result_clear(&got);

    rp_request_t b = request_for(ev, u2, RP_REQ_SUCCESS, "ONCE");
    cr_assert_eq(check(&b, 0, &res, &st), RP_GRANT_OUT_OF_STOCK);
    cr_assert_eq(st.stock_left[0], 0);
    rp_grant_result_clear(&res);
    cr_assert_eq(claim(&b, 0, &got), RP_GRANT_OUT_OF_STOCK);
    rp_grant_result_clear(&got);

    /* maxClaims over periods, and a request judged FAILED only reads */
    rp_request_t d2 = request_for(ev, u1, RP_REQ_SUCCESS, "D:2026-01-02");
    cr_assert_eq(check(&d2, 1, &res, &st), RP_GRANT_MAX_CLAIMS_REACHED);
    rp_grant_result_clear(&res);
    rp_request_t judged = request_for(ev, u2, RP_REQ_FAILED, "ONCE");
    snprintf(judged.failure_reason, sizeof judged.failure_reason, "CONDITION_NOT_MET");
    cr_assert_eq(check(&judged, 0, &res, &st), RP_GRANT_REFUSED);
    cr_assert_str_eq(res.request.failure_reason, "CONDITION_NOT_MET");
    rp_grant_result_clear(&res);
    rp_request_clear(&a);
    rp_request_clear(&again);
    rp_request_clear(&b);
    rp_request_clear(&d2);
    rp_request_clear(&judged);
}

Test(grant_txn, a_batch_rehearsal_counts_what_the_batch_would_settle_and_writes_nothing) {
    char ev[RP_OID_LEN], bid[RP_OID_LEN];
    rp_err_t err;
    rp_grant_result_t res;
    two_line_event(4, -1, ev); /* two grants of quantity 2 */
    const char *paid = "aeaeaeaeaeaeaeaeaeaeaeae";
    rp_request_t first = request_for(ev, paid, RP_REQ_SUCCESS, "ONCE");
    cr_assert_eq(claim(&first, 0, &res), RP_GRANT_OK); /* stock 2 left */
    rp_grant_result_clear(&res);
    const char *users[] = {"afafafafafafafafafafafaf", paid, "a0a0a0a0a0a0a0a0a0a0a0a0", "a1a1a1a1a1a1a1a1a1a1a1a1"};
    rp_request_t tmpl = item_request(ev, "a2a2a2a2a2a2a2a2a2a2a2a2", users[0]);
    rp_grant_outcome_t out[4];
    size_t before = requests_of(ev);
    cr_assert(rp_grant_batch_dry_run(S.rewards, &tmpl, users, 4, 0, out, &err), "%s", err.message);
    cr_assert_eq(out[0], RP_GRANT_OK);
    cr_assert_eq(out[1], RP_GRANT_ALREADY_CLAIMED);
    cr_assert_eq(out[2], RP_GRANT_OUT_OF_STOCK, "the first item took the last stock");
    cr_assert_eq(out[3], RP_GRANT_OUT_OF_STOCK);
    cr_assert_eq(requests_of(ev), before, "nothing recorded");
    cr_assert_eq(stock(ev, 0), 2, "nothing taken");
    cr_assert_eq(ledger_entries(ev, NULL), 2u, "only the first claim's entries");

    /* the real batch, run right after, settles the same */
    rp_batch_created_t outcome;
    make_batch(ev, NULL, "h", users, 4, &outcome, bid);
    for (int64_t i = 0; i < 4; i++) {
        rp_request_t r = item_request(ev, bid, users[i]);
        cr_assert(rp_grant_batch_item(S.rewards, &r, i + 1, 0, &res, &err), "%s", err.message);
        cr_assert_eq(res.outcome, out[i], "item %lld", (long long)i + 1);
        rp_grant_result_clear(&res);
        rp_request_clear(&r);
    }
    rp_request_clear(&tmpl);
    rp_request_clear(&first);
}

/* Settles items (seq i + 1 for users[i]; reasons[i] non-NULL: refused before any grant) of
 * batch bid in one chunk; outcomes[i] receives each item's outcome. */
static void settle_chunk(const char *ev, const char *bid, const char *const *users, const char *const *reasons,
                         size_t n, rp_grant_outcome_t *outcomes) {
    rp_err_t err;
    rp_grant_chunk_item_t items[8];
    rp_request_t reqs[8];
    cr_assert(n <= 8);
    memset(items, 0, sizeof items);
    for (size_t i = 0; i < n; i++) {
        reqs[i] = item_request(ev, bid, users[i]);
        items[i].seq = (int64_t)i + 1;
        items[i].request = reasons && reasons[i] ? NULL : &reqs[i];
        items[i].reason = reasons ? reasons[i] : NULL;
    }
    cr_assert(rp_grant_batch_chunk(S.rewards, bid, items, n, 0, rp_now_ms(), &err), "%s", err.message);
    for (size_t i = 0; i < n; i++) {
        outcomes[i] = items[i].outcome;
        if (items[i].request) {
            rp_batch_item_t it = item(bid, items[i].seq);
            if (outcomes[i] == RP_GRANT_OK) cr_assert_str_eq(it.request_id, reqs[i].id);
        }
        rp_request_clear(&reqs[i]);
    }
}

Test(grant_txn, a_chunk_settles_every_item_in_order_and_a_refusal_undoes_none_of_the_others) {
    char ev[RP_OID_LEN], bid[RP_OID_LEN];
    two_line_event(6, -1, ev); /* quantity 2 of 6: three grants */
    const char *users[] = {"a10000000000000000000001", "a10000000000000000000002", "a10000000000000000000003",
                           "a10000000000000000000004", "a10000000000000000000005"};
    const char *reasons[] = {NULL, "UNKNOWN_PLAYER", NULL, NULL, NULL};
    rp_grant_result_t res;
    rp_request_t first = request_for(ev, users[0], RP_REQ_SUCCESS, "ONCE"); /* paid before the batch */
    cr_assert_eq(claim(&first, 0, &res), RP_GRANT_OK);
    rp_grant_result_clear(&res);
    rp_batch_created_t outcome;
    make_batch(ev, NULL, "h", users, 5, &outcome, bid);

    rp_grant_outcome_t out[5];
    settle_chunk(ev, bid, users, reasons, 5, out);
    cr_assert_eq(out[0], RP_GRANT_ALREADY_CLAIMED);
    cr_assert_eq(out[1], RP_GRANT_REFUSED);
    cr_assert_eq(out[2], RP_GRANT_OK);
    cr_assert_eq(out[3], RP_GRANT_OK);
    cr_assert_eq(out[4], RP_GRANT_OUT_OF_STOCK, "the items before it took the last of the stock");
    rp_batch_item_t it = item(bid, 1);
    cr_assert_eq(it.status, RP_ITEM_FAILED);
    cr_assert_str_eq(it.failure_reason, "ALREADY_CLAIMED");
    cr_assert_str_eq(it.request_id, first.id, "the item names the request that holds the slot");
    it = item(bid, 2);
    cr_assert_eq(it.status, RP_ITEM_FAILED);
    cr_assert_str_eq(it.failure_reason, "UNKNOWN_PLAYER");
    cr_assert_eq(item(bid, 3).status, RP_ITEM_SUCCESS);
    cr_assert_eq(item(bid, 4).status, RP_ITEM_SUCCESS);
    it = item(bid, 5);
    cr_assert_eq(it.status, RP_ITEM_FAILED);
    cr_assert_str_eq(it.failure_reason, "OUT_OF_STOCK");
    cr_assert_eq(stock(ev, 0), 0);
    cr_assert_eq(ledger_entries(ev, NULL), 6u, "the claim's two lines and two lines for each paid item");

    /* the same chunk delivered again pays nobody and changes no item */
    settle_chunk(ev, bid, users, reasons, 5, out);
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(out[i], RP_GRANT_ITEM_SETTLED, "item %zu", i + 1);
    cr_assert_eq(ledger_entries(ev, NULL), 6u);
    it = item(bid, 5);
    cr_assert_str_eq(it.failure_reason, "OUT_OF_STOCK");
    rp_request_clear(&first);
}

Test(grant_txn, a_chunk_whose_write_refuses_what_its_reads_allowed_settles_item_by_item) {
    char ev[RP_OID_LEN], bid[RP_OID_LEN];
    two_line_event(-1, -1, ev);
    const char *users[] = {"b10000000000000000000001", "b10000000000000000000002", "b10000000000000000000003"};
    rp_batch_created_t outcome;
    rp_err_t err;
    make_batch(ev, NULL, "h", users, 3, &outcome, bid);
    rp_grant_chunk_item_t items[3];
    rp_request_t reqs[3];
    memset(items, 0, sizeof items);
    for (size_t i = 0; i < 3; i++) {
        reqs[i] = item_request(ev, bid, users[i]);
        items[i] = (rp_grant_chunk_item_t){.seq = (int64_t)i + 1, .request = &reqs[i]};
    }
    /* item 2 names a reward the event does not have: the stock read cannot see that, the take
     * refuses it, and the chunk is settled again item by item */
    reqs[1].rewards[reqs[1].nrewards] = reqs[1].rewards[0];
    reqs[1].rewards[reqs[1].nrewards].value = json_deep_copy(reqs[1].rewards[0].value);
    reqs[1].rewards[reqs[1].nrewards++].reward_index = 7;
    cr_assert(rp_grant_batch_chunk(S.rewards, bid, items, 3, 0, rp_now_ms(), &err), "%s", err.message);
    cr_assert_eq(items[0].outcome, RP_GRANT_OK);
    cr_assert_eq(items[1].outcome, RP_GRANT_OUT_OF_STOCK);
    cr_assert_eq(items[2].outcome, RP_GRANT_OK);
    cr_assert_eq(item(bid, 1).status, RP_ITEM_SUCCESS);
    cr_assert_str_eq(item(bid, 2).failure_reason, "OUT_OF_STOCK");
    cr_assert_eq(item(bid, 3).status, RP_ITEM_SUCCESS);
    cr_assert_eq(ledger_entries(ev, NULL), 4u, "two lines for each of the two paid items, once");
    for (size_t i = 0; i < 3; i++)
        rp_request_clear(&reqs[i]);
}

/* The event's version as claims.c reads it: its updatedAt in ms. */
static int64_t version_of(const char *event_id) {
    rp_err_t err;
    json_t *e = NULL;
    int64_t ms = 0;
    cr_assert(S.events->ops->event_get(S.events, event_id, &e, &err), "%s", err.message);
    const json_t *at = json_object_get(e, "updatedAt");
    cr_assert(rp_time_parse_iso(json_string_value(at), json_string_length(at), &ms));
    json_decref(e);
    return ms;
}

static rp_grant_outcome_t claim_on(const rp_request_t *r, int64_t version, rp_grant_result_t *res) {
    rp_err_t err;
    rp_claim_t c = {r, 0, NULL, NULL, NULL, NULL, version};
    cr_assert(rp_grant_claim(S.rewards, &c, res, &err), "%s", err.message);
    return res->outcome;
}

Test(grant_txn, a_claim_judged_on_another_version_of_its_event_writes_nothing) {
    char ev[RP_OID_LEN];
    rp_grant_result_t res;
    rp_request_t none;
    two_line_event(5, -1, ev);
    int64_t v = version_of(ev);
    cr_assert_gt(v, 0);
    rp_request_t r = request_for(ev, "aeaeaeaeaeaeaeaeaeaeaeae", RP_REQ_SUCCESS, "ONCE");
    cr_assert_eq(claim_on(&r, v - 1, &res), RP_GRANT_EVENT_CHANGED, "an older version");
    rp_grant_result_clear(&res);
    cr_assert_eq(claim_on(&r, v + 1, &res), RP_GRANT_EVENT_CHANGED, "a version the store never had");
    rp_grant_result_clear(&res);
    assert_stored(r.id, &none, false, "a claim on another version records no request");
    rp_request_clear(&none);
    cr_assert_eq(requests_of(ev), 0u);
    cr_assert_eq(stock(ev, 0), 5, "no stock taken");
    cr_assert_eq(ledger_entries(ev, NULL), 0u, "nothing paid");
    cr_assert_eq(messages_of(r.id).n, 0u, "no message");

    cr_assert_eq(claim_on(&r, v, &res), RP_GRANT_OK, "the version as stored pays");
    rp_grant_result_clear(&res);
    cr_assert_eq(stock(ev, 0), 3);
    rp_request_clear(&r);
}

Test(grant_txn, no_claim_judged_before_a_cancel_pays_after_it) {
    char ev[RP_OID_LEN];
    rp_grant_result_t res;
    rp_err_t err;
    bool already = false;
    two_line_event(5, -1, ev);
    int64_t before = version_of(ev);
    rp_event_audit_t a = audit("CANCEL", "EVENT", ev);
    cr_assert(S.events->ops->event_cancel(S.events, ev, before, NULL, &a, &already, NULL, &err), "%s", err.message);
    int64_t after = version_of(ev);
    cr_assert_eq(after, before, "canceled in the same millisecond: the version alone cannot tell");
    rp_request_t r = request_for(ev, "afafafafafafafafafafafaf", RP_REQ_SUCCESS, "ONCE");
    cr_assert_eq(claim_on(&r, before, &res), RP_GRANT_EVENT_CHANGED, "the cancel time decides");
    rp_grant_result_clear(&res);
    cr_assert_eq(requests_of(ev), 0u);
    cr_assert_eq(stock(ev, 0), 5, "no stock taken");
    cr_assert_eq(ledger_entries(ev, NULL), 0u, "nothing paid");
    rp_request_clear(&r);
}
