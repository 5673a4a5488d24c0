/* The reward store conformance suite (workers/reward/reward_store.h) on every backend: the unit
 * of work and each of its primitives, driven by small bodies written here (the business bodies
 * of grant_txn.c have their own tests), every read with its order, paging and filters, and the
 * single writes. Records round-trip field by field. */
#include <sqlite3.h>

#include "mem.h"
#include "reward/reward_store_mongo.h"
#include "run_together.h"
#include "store_backends.h"

#define OPS (S.rewards->ops)

static const char *const USER_A = "aaaaaaaaaaaaaaaaaaaaaaaa", *const USER_B = "bbbbbbbbbbbbbbbbbbbbbbbb";
static const char *const OPERATOR = "0123456789abcdef01234567";

/* What every test starts from: two events of one unlimited reward each. */
static struct events { char ev[RP_OID_LEN], other[RP_OID_LEN]; } E;

/* The backend's auth and event stores, and its reward store beside them: SQLite in the same
 * directory (events.db holds the stock), MongoDB in the same database; then the events E. */
static void open_all(int backend) {
    rp_err_t err;
    open_stores(backend);
    S.rewards = backend == SQLITE ? rp_reward_store_sqlite_open(S.dir, 4, &err)
                                  : rp_reward_store_mongo_open(getenv("MONGODB_URI"), S.mongo_db, &err);
    cr_assert_not_null(S.rewards, "%s", err.message);
    make_event(-1, E.ev);
    make_event(-1, E.other);
}

/* A request of user for event in period at `at` (every time field), one reward line; unless it
 * is FAILED it holds its slot, under the active key the services give it (rp_active_key). */
static rp_request_t request(const char *user, const char *event_id, rp_req_status_t status, const char *period,
                            int64_t at) {
    rp_request_t r;
    rp_request_init(&r);
    rp_oid_new(r.id);
    snprintf(r.user_id, sizeof r.user_id, "%s", user);
    snprintf(r.event_id, sizeof r.event_id, "%s", event_id);
    snprintf(r.period_key, sizeof r.period_key, "%s", period);
    if (rp_req_holds_slot(status)) cr_assert(rp_active_key(user, event_id, period, r.active_key, sizeof r.active_key));
    r.status = status;
    r.requested_at = r.created_at = r.updated_at = at;
    r.nrewards = 1;
    r.rewards[0] = (rp_claimed_reward_t){0, "0123456789abcdef01234567", "Gold", "CURRENCY", json_integer(1), 1};
    return r;
}

static void assert_same_request(const rp_request_t *got, const rp_request_t *want) {
    cr_assert_str_eq(got->id, want->id);
    cr_assert_str_eq(got->user_id, want->user_id);
    cr_assert_str_eq(got->event_id, want->event_id);
    cr_assert_str_eq(got->period_key, want->period_key);
    cr_assert_str_eq(got->active_key, want->active_key);
    cr_assert_eq(got->status, want->status);
    cr_assert_eq(got->source, want->source);
    cr_assert_eq(got->nrewards, want->nrewards);
    for (size_t i = 0; i < want->nrewards; i++) {
        const rp_claimed_reward_t *g = &got->rewards[i], *w = &want->rewards[i];
        cr_assert_eq(g->reward_index, w->reward_index);
        cr_assert_str_eq(g->definition_id, w->definition_id);
        cr_assert_str_eq(g->name, w->name);
        cr_assert_str_eq(g->type, w->type);
        cr_assert(json_equal(g->value, w->value), "reward line %zu's value", i);
        cr_assert_eq(g->quantity, w->quantity);
    }
    cr_assert_eq(got->requested_at, want->requested_at);
    cr_assert_eq(got->processed_at, want->processed_at);
    cr_assert_eq(got->created_at, want->created_at);
    cr_assert_eq(got->updated_at, want->updated_at);
    cr_assert_str_eq(got->processor_id, want->processor_id);
    cr_assert_str_eq(got->failure_reason, want->failure_reason);
    cr_assert_eq(!got->failure_details, !want->failure_details);
    if (want->failure_details) cr_assert(json_equal(got->failure_details, want->failure_details));
    cr_assert_eq(!got->notes, !want->notes);
    if (want->notes) cr_assert_str_eq(got->notes, want->notes);
    cr_assert_str_eq(got->batch_id, want->batch_id);
}

/* ---- bodies ---- */

/* What a test body does, in this order, each when set; then it ends with `end`, or rolls back
 * after a duplicate or a stock not taken (on MongoDB the transaction is then dead). */
typedef struct work {
    const rp_request_t *insert;
    const rp_request_t *update;
    rp_req_status_t from;
    const char *stock_event;
    const rp_stock_line_t *lines;
    size_t nlines;
    bool give;
    const rp_ledger_entry_t *ledger;
    size_t nledger;
    const rp_outbox_message_t *outbox;
    int outbox_times;
    const char *idem_user, *idem_key;
    const rp_idem_t *idem;
    const char *settle_batch;
    int64_t settle_seq;
    rp_item_status_t settle_to;
    int64_t lease_now, lease_until;
    int lease_limit;
    rp_txn_end_t end;
    /* outcomes */
    bool dup, moved, taken, idem_dup, settled;
    rp_item_ref_t *leased; /* the store's array: free() */
    size_t nleased;
} work_t;

static rp_txn_end_t do_work(rp_reward_txn_t *tx, void *p) {
    work_t *w = p;
    w->dup = w->moved = w->idem_dup = w->settled = false; /* the body may run again */
    w->taken = true;
    free(w->leased);
    w->leased = NULL;
    if (w->insert && !OPS->tx_insert_request(tx, w->insert, &w->dup)) return RP_TXN_FAILED;
    if (w->update && !OPS->tx_update_request(tx, w->update, w->from, &w->moved)) return RP_TXN_FAILED;
    if (w->stock_event && !(w->give ? OPS->tx_stock_give(tx, w->stock_event, w->lines, w->nlines)
                                    : OPS->tx_stock_take(tx, w->stock_event, w->lines, w->nlines, &w->taken)))
        return RP_TXN_FAILED;
    if (w->nledger && !OPS->tx_append_ledger(tx, w->ledger, w->nledger)) return RP_TXN_FAILED;
    for (int i = 0; i < w->outbox_times; i++)
        if (!OPS->tx_append_outbox(tx, w->outbox)) return RP_TXN_FAILED;
    if (w->idem && !OPS->tx_idem_put(tx, w->idem_user, w->idem_key, w->idem, &w->idem_dup)) return RP_TXN_FAILED;
    if (w->settle_batch &&
        !OPS->tx_settle_item(tx, w->settle_batch, w->settle_seq, w->settle_to,
                             w->settle_to == RP_ITEM_FAILED ? "OUT_OF_STOCK" : "",
                             w->settle_to == RP_ITEM_SUCCESS ? OPERATOR : "", 1767225600500, &w->settled))
        return RP_TXN_FAILED;
    if (w->lease_limit &&
        !OPS->tx_items_lease(tx, w->lease_now, w->lease_until, w->lease_limit, &w->leased, &w->nleased))
        return RP_TXN_FAILED;
    return w->dup || w->idem_dup || !w->taken ? RP_TXN_ROLLBACK : w->end;
}

static void run_work(work_t *w) {
    rp_err_t err;
    cr_assert(OPS->transact(S.rewards, "test work", do_work, w, &err), "%s", err.message);
}

static void insert(const rp_request_t *r) {
    work_t w = {.insert = r};
    run_work(&w);
    cr_assert_not(w.dup);
}

/* The reads of a body: by id and by slot (the holder of slot's slot), a slot count, an
 * idempotency key, the items in flight. */
typedef struct look {
    const char *id, *count_user, *count_event, *idem_user, *idem_key;
    const rp_request_t *slot;
    int64_t at_most, now;
    rp_request_t by_id, by_key;
    rp_idem_t idem;
    bool found_id, found_key, found_idem;
    int64_t count, in_flight;
} look_t;

static rp_txn_end_t do_look(rp_reward_txn_t *tx, void *p) {
    look_t *l = p;
    rp_request_clear(&l->by_id); /* the body may run again */
    rp_request_clear(&l->by_key);
    rp_idem_clear(&l->idem);
    if (l->id && !OPS->tx_request_by_id(tx, l->id, &l->by_id, &l->found_id)) return RP_TXN_FAILED;
    if (l->slot && !OPS->tx_request_by_key(tx, l->slot, &l->by_key, &l->found_key)) return RP_TXN_FAILED;
    if (l->count_user && !OPS->tx_count_slots(tx, l->count_user, l->count_event, l->at_most, &l->count))
        return RP_TXN_FAILED;
    if (l->idem_key && !OPS->tx_idem_get(tx, l->idem_user, l->idem_key, &l->idem, &l->found_idem)) return RP_TXN_FAILED;
    if (l->now && !OPS->tx_items_in_flight(tx, l->now, &l->in_flight)) return RP_TXN_FAILED;
    return RP_TXN_COMMIT;
}

static void run_look(look_t *l) {
    rp_err_t err;
    cr_assert(OPS->transact(S.rewards, "test look", do_look, l, &err), "%s", err.message);
}

static void look_clear(look_t *l) {
    rp_request_clear(&l->by_id);
    rp_request_clear(&l->by_key);
    rp_idem_clear(&l->idem);
}

static bool exists(const char *id) {
    rp_err_t err;
    rp_request_t r;
    bool found = true;
    cr_assert(OPS->get_request(S.rewards, id, &r, &found, &err), "%s", err.message);
    rp_request_clear(&r);
    return found;
}

/* ---- the unit of work ---- */

BACKENDS(rewards, a_unit_of_work_commits_rolls_back_or_fails_whole) {
    open_all(*backend);
    rp_err_t err;
    rp_request_t kept = request(USER_A, E.ev, RP_REQ_SUCCESS, "ONCE", 1767225600000);
    rp_request_t refused = request(USER_B, E.ev, RP_REQ_FAILED, "ONCE", 1767225600000);
    rp_request_t failed = request(USER_B, E.ev, RP_REQ_FAILED, "ONCE", 1767225600000);
    rp_outbox_message_t m = {
        .routing_key = "reward.granted", .payload = json_pack("{s:i}", "n", 1), .created_at = 1767225600000};
    snprintf(m.message_id, sizeof m.message_id, "%s", kept.id);
    snprintf(m.request_id, sizeof m.request_id, "%s", kept.id);
    work_t commit = {.insert = &kept, .outbox = &m, .outbox_times = 1};
    run_work(&commit);
    cr_assert(exists(kept.id));

    work_t rollback = {.insert = &refused, .end = RP_TXN_ROLLBACK};
    cr_assert(OPS->transact(S.rewards, "refusal", do_work, &rollback, &err), "a refusal is not an error");
    cr_assert_not(exists(refused.id), "a rollback keeps nothing");

    rp_outbox_message_t again = m;
    snprintf(again.message_id, sizeof again.message_id, "%s:revoked", kept.id);
    work_t broken = {.insert = &failed, .outbox = &again, .outbox_times = 2};
    rp_err_clear(&err);
    cr_assert_not(OPS->transact(S.rewards, "doomed work", do_work, &broken, &err), "a message id is unique");
    cr_assert_neq(err.kind, RP_ERR_NONE, "a failure says why");
    cr_assert_not(exists(failed.id), "a failed body keeps nothing");
    rp_outbox_message_t *msgs = NULL;
    size_t n = 0;
    bool more = true;
    cr_assert(OPS->list_outbox(S.rewards, 0, 10, &msgs, &n, &more, &err), "%s", err.message);
    cr_assert_eq(n, 1u, "only the committed message");
    rp_outbox_message_clear(&msgs[0]);
    free(msgs);
    cr_assert(OPS->ping(S.rewards, &err), "%s", err.message);
    json_decref(m.payload);
    rp_request_clear(&kept);
    rp_request_clear(&refused);
    rp_request_clear(&failed);
}

/* ---- requests ---- */

BACKENDS(rewards, a_request_round_trips_every_field_by_id_and_key) {
    open_all(*backend);
    rp_err_t err;
    char bid[RP_OID_LEN];
    rp_oid_new(bid);
    rp_request_t r = request(USER_A, E.ev, RP_REQ_AWAITING_REVIEW, "ONCE", 1767225600001);
    r.source = RP_SOURCE_BATCH;
    snprintf(r.batch_id, sizeof r.batch_id, "%s", bid);
    snprintf(r.processor_id, sizeof r.processor_id, "%s", OPERATOR);
    snprintf(r.failure_reason, sizeof r.failure_reason, "CONDITION_NOT_MET");
    r.processed_at = 1767225600002;
    r.created_at = 1767225600003;
    r.updated_at = 1767225600004;
    rp_request_set_notes(&r, "checked by hand: ok ✓");
    rp_request_set_details(&r, json_pack("[{s:s, s:i, s:n}]", "type", "LEVEL_ACHIEVE", "need", 10, "have"));
    r.nrewards = 2;
    r.rewards[0].reward_index = 3;
    json_decref(r.rewards[0].value);
    r.rewards[0].value = json_pack("{s:[i, f, {s:b}], s:s}", "a", 1, 2.5, "c", 1, "d", "x");
    r.rewards[1] = (rp_claimed_reward_t){1, "fedcba9876543210fedcba98", "Sword", "ITEM", json_string("rare"), 7};
    insert(&r);

    look_t l = {.id = r.id, .slot = &r};
    run_look(&l);
    cr_assert(l.found_id && l.found_key);
    assert_same_request(&l.by_id, &r);
    assert_same_request(&l.by_key, &r);
    look_clear(&l);

    rp_request_t got;
    bool found = false;
    cr_assert(OPS->get_request(S.rewards, r.id, &got, &found, &err), "%s", err.message);
    cr_assert(found);
    assert_same_request(&got, &r);
    rp_request_clear(&got);
    cr_assert(OPS->find_active(S.rewards, &r, &got, &found, &err), "%s", err.message);
    cr_assert(found);
    assert_same_request(&got, &r);
    rp_request_clear(&got);
    cr_assert(OPS->get_request(S.rewards, "ffffffffffffffffffffffff", &got, &found, &err));
    cr_assert_not(found);
    /* nobody holds another period's slot, another player's, or another event's */
    rp_request_t others[3] = {request(USER_A, E.ev, RP_REQ_SUCCESS, "D:2026-01-01", 1),
                              request(USER_B, E.ev, RP_REQ_SUCCESS, "ONCE", 1),
                              request(USER_A, E.other, RP_REQ_SUCCESS, "ONCE", 1)};
    for (int i = 0; i < 3; i++) {
        cr_assert(OPS->find_active(S.rewards, &others[i], &got, &found, &err));
        cr_assert_not(found, "slot %d", i);
        rp_request_clear(&others[i]);
    }

    /* a FAILED request carries no key: the key finds nothing, the id finds it */
    rp_request_t f = request(USER_B, E.ev, RP_REQ_FAILED, "ONCE", 1767225600005);
    insert(&f);
    rp_request_t b_slot = request(USER_B, E.ev, RP_REQ_SUCCESS, "ONCE", 1767225600005);
    look_t l2 = {.id = f.id, .slot = &b_slot};
    run_look(&l2);
    cr_assert(l2.found_id);
    cr_assert_not(l2.found_key);
    assert_same_request(&l2.by_id, &f);
    look_clear(&l2);
    rp_request_clear(&r);
    rp_request_clear(&f);
    rp_request_clear(&b_slot);
}

BACKENDS(rewards, slots_count_every_status_but_failed) {
    open_all(*backend);
    rp_request_t rs[6] = {
        request(USER_A, E.ev, RP_REQ_SUCCESS, "D:1", 1), request(USER_A, E.ev, RP_REQ_AWAITING_REVIEW, "D:2", 2),
        request(USER_A, E.ev, RP_REQ_REVOKED, "D:3", 3), request(USER_A, E.ev, RP_REQ_FAILED, "D:4", 4),
        request(USER_B, E.ev, RP_REQ_SUCCESS, "D:1", 5), request(USER_A, E.other, RP_REQ_SUCCESS, "D:1", 6),
    };
    for (int i = 0; i < 6; i++)
        insert(&rs[i]);
    look_t l = {.count_user = USER_A, .count_event = E.ev};
    run_look(&l);
    cr_assert_eq(l.count, 3, "SUCCESS, AWAITING_REVIEW and REVOKED hold a slot; FAILED does not");
    l.at_most = 10;
    run_look(&l);
    cr_assert_eq(l.count, 3);
    l.at_most = 2;
    run_look(&l);
    cr_assert(l.count >= 2 && l.count <= 3, "may stop at at_most: %lld", (long long)l.count);
    l.count_user = "cccccccccccccccccccccccc";
    l.at_most = 0;
    run_look(&l);
    cr_assert_eq(l.count, 0);
    for (int i = 0; i < 6; i++)
        rp_request_clear(&rs[i]);
}

BACKENDS(rewards, an_active_key_has_one_holder) {
    open_all(*backend);
    rp_request_t first = request(USER_A, E.ev, RP_REQ_SUCCESS, "ONCE", 1);
    rp_request_t second = request(USER_A, E.ev, RP_REQ_AWAITING_REVIEW, "ONCE", 2);
    rp_request_t same_id = request(USER_B, E.ev, RP_REQ_SUCCESS, "ONCE", 3); /* a free slot */
    snprintf(same_id.id, sizeof same_id.id, "%s", first.id);
    insert(&first);
    work_t w = {.insert = &second};
    run_work(&w);
    cr_assert(w.dup, "the key is held");
    cr_assert_not(exists(second.id), "nothing written");
    w.insert = &same_id;
    run_work(&w);
    cr_assert(w.dup, "so is the id");
    look_t l = {.slot = &same_id};
    run_look(&l);
    cr_assert_not(l.found_key, "the slot stays free");
    /* FAILED requests carry no key and never conflict */
    rp_request_t f1 = request(USER_A, E.ev, RP_REQ_FAILED, "ONCE", 4),
                 f2 = request(USER_A, E.ev, RP_REQ_FAILED, "ONCE", 5);
    insert(&f1);
    insert(&f2);
    cr_assert(exists(f1.id) && exists(f2.id));
    look_clear(&l);
    rp_request_clear(&first);
    rp_request_clear(&second);
    rp_request_clear(&same_id);
    rp_request_clear(&f1);
    rp_request_clear(&f2);
}

BACKENDS(rewards, a_request_moves_only_from_the_status_expected) {
    open_all(*backend);
    rp_request_t r = request(USER_A, E.ev, RP_REQ_AWAITING_REVIEW, "ONCE", 1767225600000);
    rp_request_set_details(&r, json_pack("{s:s}", "why", "kept"));
    insert(&r);

    rp_request_t next;
    rp_request_init(&next);
    rp_request_copy(&next, &r);
    next.status = RP_REQ_SUCCESS;
    next.processed_at = next.updated_at = 1767225601000;
    snprintf(next.processor_id, sizeof next.processor_id, "%s", OPERATOR);
    rp_request_set_notes(&next, "approved");
    work_t w = {.update = &next, .from = RP_REQ_SUCCESS};
    run_work(&w);
    cr_assert_not(w.moved, "not in SUCCESS");
    look_t l = {.id = r.id};
    run_look(&l);
    assert_same_request(&l.by_id, &r);
    w.from = RP_REQ_AWAITING_REVIEW;
    run_work(&w);
    cr_assert(w.moved);
    run_look(&l);
    assert_same_request(&l.by_id, &next);
    run_work(&w);
    cr_assert_not(w.moved, "moved once");

    /* to FAILED with the key released: the slot is free for a new request */
    rp_request_t failed;
    rp_request_init(&failed);
    rp_request_copy(&failed, &next);
    failed.status = RP_REQ_FAILED;
    failed.active_key[0] = '\0';
    snprintf(failed.failure_reason, sizeof failed.failure_reason, "REJECTED");
    failed.processor_id[0] = '\0';
    rp_request_set_notes(&failed, NULL);
    failed.updated_at = 1767225602000;
    work_t fail = {.update = &failed, .from = RP_REQ_SUCCESS};
    run_work(&fail);
    cr_assert(fail.moved);
    run_look(&l);
    assert_same_request(&l.by_id, &failed);
    rp_request_t again = request(USER_A, E.ev, RP_REQ_SUCCESS, "ONCE", 1767225603000);
    insert(&again);
    rp_request_t ghost = request(USER_A, E.ev, RP_REQ_SUCCESS, "x", 1);
    work_t none = {.update = &ghost, .from = RP_REQ_PENDING};
    run_work(&none);
    cr_assert_not(none.moved, "an unknown id moves nothing");
    look_clear(&l);
    rp_request_clear(&r);
    rp_request_clear(&next);
    rp_request_clear(&failed);
    rp_request_clear(&again);
    rp_request_clear(&ghost);
}

static bool matches(const rp_request_t *r, const rp_request_filter_t *f) {
    return (!f->user_id || strcmp(r->user_id, f->user_id) == 0) &&
           (!f->event_id || strcmp(r->event_id, f->event_id) == 0) && (f->status < 0 || (int)r->status == f->status) &&
           r->requested_at >= f->from_ms && (!f->to_ms || r->requested_at < f->to_ms);
}

static int newest_first(const void *a, const void *b) {
    const rp_request_t *x = *(const rp_request_t *const *)a, *y = *(const rp_request_t *const *)b;
    if (x->requested_at != y->requested_at) return x->requested_at < y->requested_at ? 1 : -1;
    return -strcmp(x->id, y->id);
}

BACKENDS(rewards, requests_list_newest_first_with_every_filter) {
    open_all(*backend);
    rp_err_t err;
    char period[RP_PERIOD_KEY_LEN];
    /* request times out of creation (and so id) order, two of them equal: the id breaks ties */
    static const struct {
        bool b, other;
        rp_req_status_t status;
        int at;
    } rows[] = {{0, 0, RP_REQ_SUCCESS, 2}, {1, 0, RP_REQ_SUCCESS, 0},         {0, 0, RP_REQ_FAILED, 5},
                {1, 1, RP_REQ_SUCCESS, 1}, {0, 0, RP_REQ_AWAITING_REVIEW, 3}, {1, 0, RP_REQ_SUCCESS, 3},
                {0, 1, RP_REQ_REVOKED, 4}};
    enum { N = sizeof rows / sizeof rows[0] };
    int64_t t0 = 1767225600000;
    rp_request_t rs[N];
    for (int i = 0; i < N; i++) {
        const char *user = rows[i].b ? USER_B : USER_A, *event_id = rows[i].other ? E.other : E.ev;
        snprintf(period, sizeof period, "D:%d", i);
        rs[i] = request(user, event_id, rows[i].status, period, t0 + 1000 * rows[i].at);
        insert(&rs[i]);
    }
    const rp_request_filter_t cases[] = {
        {.status = -1},
        {.user_id = USER_B, .status = -1},
        {.event_id = E.ev, .status = -1},
        {.status = RP_REQ_SUCCESS},
        {.user_id = USER_A, .event_id = E.ev, .status = RP_REQ_AWAITING_REVIEW},
        {.status = -1, .from_ms = t0 + 3000},
        {.status = -1, .to_ms = t0 + 3000},
        {.user_id = USER_A, .status = -1, .from_ms = t0 + 1000, .to_ms = t0 + 4000},
        {.user_id = "cccccccccccccccccccccccc", .status = -1},
        /* statuses other than SUCCESS without a player: SQLite reads them from a partial index */
        {.status = RP_REQ_AWAITING_REVIEW},
        {.status = RP_REQ_FAILED},
        {.status = RP_REQ_REVOKED, .event_id = E.other},
        {.status = RP_REQ_REVOKED, .event_id = E.ev},
        {.status = RP_REQ_FAILED, .to_ms = t0 + 5000},
        {.status = RP_REQ_PENDING},
        /* an event without a player or a rare status: SQLite reads it from the event's index */
        {.event_id = E.other, .status = -1},
        {.event_id = E.other, .status = RP_REQ_SUCCESS, .from_ms = t0},
        {.event_id = "cccccccccccccccccccccccc", .status = -1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const rp_request_t *want[N];
        size_t nwant = 0, seen = 0;
        for (int i = 0; i < N; i++)
            if (matches(&rs[i], &cases[c])) want[nwant++] = &rs[i];
        qsort(want, nwant, sizeof want[0], newest_first);
        /* pages of two, each after the previous page's last id */
        rp_request_filter_t f = cases[c];
        char cursor[RP_OID_LEN] = "";
        bool more = true;
        f.limit = 2;
        while (more) {
            rp_request_t *items = NULL;
            size_t n = 0;
            f.cursor = cursor[0] ? cursor : NULL;
            cr_assert(OPS->list_requests(S.rewards, &f, &items, &n, &more, &err), "%s", err.message);
            cr_assert_leq(seen + n, nwant, "case %zu", c);
            cr_assert_eq(more, seen + n < nwant, "case %zu: more", c);
            for (size_t i = 0; i < n; i++, seen++) {
                assert_same_request(&items[i], want[seen]);
                rp_request_clear(&items[i]);
            }
            if (n) snprintf(cursor, sizeof cursor, "%s", want[seen - 1]->id);
            free(items);
            cr_assert(n > 0 || !more);
        }
        cr_assert_eq(seen, nwant, "case %zu", c);
    }
    for (int i = 0; i < N; i++)
        rp_request_clear(&rs[i]);
}

/* ---- stock ---- */

/* Takes (or gives) lines of event_id in a unit of work of its own; whether it was taken. */
static bool stock(const char *event_id, const rp_stock_line_t *lines, size_t n, bool give) {
    work_t w = {.stock_event = event_id, .lines = lines, .nlines = n, .give = give};
    run_work(&w);
    return w.taken;
}

BACKENDS(rewards, stock_is_taken_with_a_guard_and_given_back) {
    open_all(*backend);
    char limited[RP_OID_LEN];
    const char *unlimited = E.ev;
    make_event(2, limited);
    rp_stock_line_t one = {0, 1}, two = {0, 2}, both[2] = {{0, 1}, {0, 1}}, missing = {5, 1};
    cr_assert(stock(limited, &one, 1, false));
    cr_assert_not(stock(limited, &two, 1, false), "one left: two cannot be taken");
    cr_assert_not(stock(limited, both, 2, false), "the second line is short: the body rolls back");
    cr_assert(stock(limited, &one, 1, false), "the last one, untouched by the refusals");
    cr_assert_not(stock(limited, &one, 1, false), "never below zero");
    stock(limited, &two, 1, true);
    cr_assert(stock(limited, both, 2, false), "given back, then taken");
    cr_assert_not(stock(limited, &one, 1, false));
    rp_stock_line_t skip[2] = {{5, 1}, {0, 1}};
    stock(limited, skip, 2, true);
    cr_assert(stock(limited, &one, 1, false), "a give goes past a line it cannot give");
    rp_stock_line_t lots = {0, 1000000};
    cr_assert(stock(unlimited, &lots, 1, false));
    cr_assert(stock(unlimited, &lots, 1, false), "unlimited stays unlimited");
    stock(unlimited, &lots, 1, true);
    cr_assert(stock(unlimited, &lots, 1, false));
    cr_assert_not(stock(limited, &missing, 1, false), "no such event reward");
    cr_assert_not(stock("ffffffffffffffffffffffff", &one, 1, false), "no such event");
    /* a rolled-back body's take is undone */
    stock(limited, &one, 1, true);
    work_t w = {.stock_event = limited, .lines = &one, .nlines = 1, .end = RP_TXN_ROLLBACK};
    run_work(&w);
    cr_assert(w.taken);
    cr_assert(stock(limited, &one, 1, false), "still there after the rollback");
}

/* The event's state as a unit of work reads it. */
typedef struct state_read {
    const char *event_id;
    rp_event_state_t st;
    bool found;
} state_read_t;

static rp_txn_end_t do_read_state(rp_reward_txn_t *tx, void *p) {
    state_read_t *r = p;
    return OPS->tx_event_state(tx, r->event_id, &r->st, &r->found) ? RP_TXN_ROLLBACK : RP_TXN_FAILED;
}

static state_read_t read_state(const char *event_id) {
    rp_err_t err;
    state_read_t r = {.event_id = event_id};
    cr_assert(OPS->transact(S.rewards, "read state", do_read_state, &r, &err), "%s", err.message);
    return r;
}

BACKENDS(rewards, event_state_reads_cancel_time_version_and_stock_left) {
    open_all(*backend);
    rp_err_t err;
    bool already = false;
    char limited[RP_OID_LEN];
    make_event(3, limited);
    rp_stock_line_t one = {0, 1};
    cr_assert(stock(limited, &one, 1, false));
    state_read_t r = read_state(limited);
    cr_assert(r.found);
    cr_assert_eq(r.st.canceled_at, 0);
    cr_assert_gt(r.st.updated_at, 0, "the version: the event's updatedAt");
    int64_t created = r.st.updated_at;
    cr_assert_eq(r.st.nrewards, 1u);
    cr_assert_eq(r.st.stock_left[0], 2, "the stock left, not the stock");
    r = read_state(E.ev);
    cr_assert(r.found);
    cr_assert_eq(r.st.stock_left[0], -1, "unlimited");
    rp_event_audit_t a = audit("CANCEL", "EVENT", limited);
    cr_assert(S.events->ops->event_cancel(S.events, limited, 5000, NULL, &a, &already, NULL, &err), "%s", err.message);
    r = read_state(limited);
    cr_assert_eq(r.st.canceled_at, 5000);
    cr_assert_eq(r.st.updated_at, 5000, "a cancel is a new version (it was %lld)", (long long)created);
    r = read_state("ffffffffffffffffffffffff");
    cr_assert_not(r.found, "no such event");
}

/* ---- ledger and outbox ---- */

static rp_ledger_entry_t entry(const rp_request_t *r, int index, int64_t quantity, rp_ledger_kind_t kind,
                               const char *processor, int64_t at) {
    rp_ledger_entry_t e = {.reward_index = index, .quantity = quantity, .kind = kind, .at = at};
    rp_oid_new(e.id);
    snprintf(e.request_id, sizeof e.request_id, "%s", r->id);
    snprintf(e.user_id, sizeof e.user_id, "%s", r->user_id);
    snprintf(e.event_id, sizeof e.event_id, "%s", r->event_id);
    snprintf(e.definition_id, sizeof e.definition_id, "%s", r->rewards[0].definition_id);
    snprintf(e.processor_id, sizeof e.processor_id, "%s", processor);
    return e;
}

static void assert_same_entry(const rp_ledger_entry_t *g, const rp_ledger_entry_t *w) {
    cr_assert_str_eq(g->id, w->id);
    cr_assert_str_eq(g->request_id, w->request_id);
    cr_assert_str_eq(g->user_id, w->user_id);
    cr_assert_str_eq(g->event_id, w->event_id);
    cr_assert_eq(g->reward_index, w->reward_index);
    cr_assert_str_eq(g->definition_id, w->definition_id);
    cr_assert_eq(g->quantity, w->quantity);
    cr_assert_eq(g->kind, w->kind);
    cr_assert_str_eq(g->processor_id, w->processor_id);
    cr_assert_eq(g->at, w->at);
}

BACKENDS(rewards, the_ledger_appends_in_commit_order_and_pages) {
    open_all(*backend);
    rp_err_t err;
    rp_request_t a = request(USER_A, E.ev, RP_REQ_SUCCESS, "a", 1),
                 b = request(USER_B, E.other, RP_REQ_SUCCESS, "b", 2);
    rp_ledger_entry_t grant[2] = {entry(&a, 0, 3, RP_LEDGER_GRANT, "", 1767225600000),
                                  entry(&a, 1, 1, RP_LEDGER_GRANT, "", 1767225600000)};
    rp_ledger_entry_t rev = entry(&a, 0, -3, RP_LEDGER_REVERSAL, OPERATOR, 1767225609000);
    rp_ledger_entry_t other_grant = entry(&b, 0, 1, RP_LEDGER_GRANT, "", 1767225601000);
    work_t w1 = {.insert = &a, .ledger = grant, .nledger = 2};
    run_work(&w1);
    work_t w2 = {.insert = &b, .ledger = &other_grant, .nledger = 1};
    run_work(&w2);
    work_t w3 = {.ledger = &rev, .nledger = 1};
    run_work(&w3);
    const rp_ledger_entry_t *want[4] = {&grant[0], &grant[1], &other_grant, &rev};
    rp_ledger_entry_t *items = NULL;
    size_t n = 0;
    bool more = true;
    cr_assert(OPS->list_ledger(S.rewards, NULL, NULL, 0, 10, &items, &n, &more, &err), "%s", err.message);
    cr_assert_eq(n, 4u);
    cr_assert_not(more);
    for (size_t i = 0; i < n; i++) {
        assert_same_entry(&items[i], want[i]);
        cr_assert(i == 0 || items[i].seq > items[i - 1].seq, "seq in commit order");
    }
    int64_t second = items[1].seq;
    free(items);
    cr_assert(OPS->list_ledger(S.rewards, NULL, NULL, second, 1, &items, &n, &more, &err), "%s", err.message);
    cr_assert_eq(n, 1u);
    cr_assert(more);
    assert_same_entry(&items[0], &other_grant);
    free(items);
    cr_assert(OPS->list_ledger(S.rewards, USER_A, NULL, 0, 10, &items, &n, &more, &err));
    cr_assert_eq(n, 3u, "the user's");
    free(items);
    cr_assert(OPS->list_ledger(S.rewards, NULL, E.other, 0, 10, &items, &n, &more, &err));
    cr_assert_eq(n, 1u, "the event's");
    assert_same_entry(&items[0], &other_grant);
    free(items);
    cr_assert(OPS->list_ledger(S.rewards, USER_B, E.ev, 0, 10, &items, &n, &more, &err));
    cr_assert_eq(n, 0u);
    free(items);
    rp_request_clear(&a);
    rp_request_clear(&b);
}

static rp_outbox_message_t message(const char *id, const char *routing_key, int64_t at) {
    rp_outbox_message_t m = {0};
    snprintf(m.message_id, sizeof m.message_id, "%s", id);
    snprintf(m.request_id, sizeof m.request_id, "%.24s", id);
    snprintf(m.routing_key, sizeof m.routing_key, "%s", routing_key);
    m.payload = json_pack("{s:s, s:[i, {s:n}]}", "messageId", id, "x", 1, "y");
    m.created_at = at;
    return m;
}

static void append(const rp_outbox_message_t *m) {
    work_t w = {.outbox = m, .outbox_times = 1};
    run_work(&w);
}

static void free_messages(rp_outbox_message_t *items, size_t n) {
    for (size_t i = 0; i < n; i++)
        rp_outbox_message_clear(&items[i]);
    free(items);
}

/* The hooked mark of the outbox message with message_id, read from events.db. */
static int hooked_of(const char *message_id) {
    char path[128];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(path, sizeof path, "%s/events.db", S.dir);
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT hooked FROM outbox WHERE message_id = ?1", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, message_id, -1, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* SQLite only (an optimisation, not a guarantee): a message written while no webhook endpoint is
 * enabled is born fanned out, so the fan-out never has to mark it; one written while an endpoint
 * is enabled waits for the fan-out. */
Test(rewards_sqlite, a_message_written_while_no_endpoint_is_enabled_is_born_fanned_out, .fini = close_stores) {
    open_all(SQLITE);
    char a[RP_OID_LEN], b[RP_OID_LEN], c[RP_OID_LEN], path[128];
    rp_oid_new(a);
    rp_oid_new(b);
    rp_oid_new(c);
    rp_outbox_message_t ma = message(a, "reward.granted", 1767225600000),
                        mb = message(b, "reward.granted", 1767225601000),
                        mc = message(c, "reward.granted", 1767225602000);
    append(&ma);
    cr_assert_eq(hooked_of(a), 1, "no endpoint at all");
    snprintf(path, sizeof path, "%s/events.db", S.dir);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "INSERT INTO webhook_endpoints (id, url, types, enabled, secret, created_at, updated_at) "
                              "VALUES ('e1', 'https://example.com/h', 1, 0, 's', 1, 1)",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    append(&mb);
    cr_assert_eq(hooked_of(b), 1, "a disabled endpoint receives nothing");
    cr_assert_eq(sqlite3_exec(db, "UPDATE webhook_endpoints SET enabled = 1", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    append(&mc);
    cr_assert_eq(hooked_of(c), 0, "an enabled endpoint: the fan-out makes its deliveries");
    rp_outbox_message_clear(&ma);
    rp_outbox_message_clear(&mb);
    rp_outbox_message_clear(&mc);
}

BACKENDS(rewards, the_outbox_feeds_in_commit_order_and_leases_to_one_relay) {
    open_all(*backend);
    rp_err_t err;
    char ids[3][RP_OID_LEN], revoked[RP_MESSAGE_ID_LEN];
    rp_outbox_message_t ms[3];
    for (int i = 0; i < 3; i++) {
        rp_oid_new(ids[i]);
        ms[i] = message(ids[i], "reward.granted", 1767225600000 + i);
        append(&ms[i]);
    }
    snprintf(revoked, sizeof revoked, "%s:revoked", ids[0]);
    rp_outbox_message_t rv = message(revoked, "reward.revoked", 1767225609000);
    append(&rv);
    rp_outbox_message_t *items = NULL;
    size_t n = 0;
    bool more = false;
    cr_assert(OPS->list_outbox(S.rewards, 0, 3, &items, &n, &more, &err), "%s", err.message);
    cr_assert_eq(n, 3u);
    cr_assert(more);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(items[i].message_id, ms[i].message_id);
        cr_assert_str_eq(items[i].routing_key, "reward.granted");
        cr_assert_str_eq(items[i].request_id, ids[i]);
        cr_assert(json_equal(items[i].payload, ms[i].payload));
        cr_assert_eq(items[i].created_at, ms[i].created_at);
        cr_assert_eq(items[i].published_at, 0);
        cr_assert(i == 0 || items[i].seq > items[i - 1].seq);
    }
    int64_t seqs[4] = {items[0].seq, items[1].seq, items[2].seq, 0};
    free_messages(items, n);
    cr_assert(OPS->list_outbox(S.rewards, seqs[2], 3, &items, &n, &more, &err), "%s", err.message);
    cr_assert_eq(n, 1u);
    cr_assert_not(more);
    cr_assert_str_eq(items[0].message_id, revoked);
    cr_assert_str_eq(items[0].routing_key, "reward.revoked");
    cr_assert_str_eq(items[0].request_id, ids[0]);
    seqs[3] = items[0].seq;
    free_messages(items, n);

    /* leases: A takes two, B the rest, A renews its own; published messages never come back */
    int64_t now = 1767225700000;
    cr_assert(OPS->outbox_lease(S.rewards, "relay-a", now, 30000, 2, &items, &n, &err), "%s", err.message);
    cr_assert_eq(n, 2u);
    cr_assert_eq(items[0].seq, seqs[0], "commit order");
    cr_assert_eq(items[1].seq, seqs[1]);
    /* the relay publishes the payload as stored: SQLite hands over its text, MongoDB a document */
    json_t *leased = items[0].payload_text ? json_loads(items[0].payload_text, 0, NULL) : json_incref(items[0].payload);
    cr_assert(json_equal(leased, ms[0].payload));
    json_decref(leased);
    free_messages(items, n);
    cr_assert(OPS->outbox_lease(S.rewards, "relay-b", now, 30000, 10, &items, &n, &err), "%s", err.message);
    cr_assert_eq(n, 2u, "what A holds is skipped");
    cr_assert_eq(items[0].seq, seqs[2]);
    cr_assert_eq(items[1].seq, seqs[3]);
    free_messages(items, n);
    cr_assert(OPS->outbox_lease(S.rewards, "relay-c", now + 1000, 30000, 10, &items, &n, &err));
    cr_assert_eq(n, 0u, "everything is held");
    free_messages(items, n);
    cr_assert(OPS->outbox_lease(S.rewards, "relay-a", now + 1000, 30000, 10, &items, &n, &err));
    cr_assert_eq(n, 2u, "an owner renews its own leases");
    free_messages(items, n);
    cr_assert(OPS->outbox_published(S.rewards, seqs, 2, now + 2000, &err), "%s", err.message);
    cr_assert(OPS->outbox_published(S.rewards, seqs, 1, now + 3000, &err), "%s", err.message);
    cr_assert(OPS->list_outbox(S.rewards, 0, 10, &items, &n, &more, &err));
    cr_assert_eq(items[0].published_at, now + 2000, "published once");
    cr_assert_eq(items[1].published_at, now + 2000);
    cr_assert_eq(items[2].published_at, 0);
    free_messages(items, n);
    cr_assert(OPS->outbox_lease(S.rewards, "relay-c", now + 100000, 30000, 10, &items, &n, &err));
    cr_assert_eq(n, 2u, "expired leases are free again, published messages are not");
    cr_assert_eq(items[0].seq, seqs[2]);
    cr_assert_eq(items[1].seq, seqs[3]);
    free_messages(items, n);
    for (int i = 0; i < 3; i++)
        rp_outbox_message_clear(&ms[i]);
    rp_outbox_message_clear(&rv);
}

/* ---- idempotency keys ---- */

BACKENDS(rewards, an_idempotency_key_keeps_its_first_answer) {
    open_all(*backend);
    rp_err_t err;
    rp_idem_t first = {"h1", 201, json_pack("{s:s, s:[i]}", "id", "first", "n", 1), 1767225600000};
    rp_idem_t second = {"h2", 409, json_pack("{s:s}", "id", "second"), 1767225601000};
    look_t l = {.idem_user = USER_A, .idem_key = "k1"};
    run_look(&l);
    cr_assert_not(l.found_idem);
    work_t undone = {.idem_user = USER_A, .idem_key = "k1", .idem = &first, .end = RP_TXN_ROLLBACK};
    run_work(&undone);
    cr_assert_not(undone.idem_dup);
    run_look(&l);
    cr_assert_not(l.found_idem, "rolled back with its body");
    work_t put = {.idem_user = USER_A, .idem_key = "k1", .idem = &first};
    run_work(&put);
    cr_assert_not(put.idem_dup);
    work_t again = {.idem_user = USER_A, .idem_key = "k1", .idem = &second};
    run_work(&again);
    cr_assert(again.idem_dup);
    work_t other_user = {.idem_user = USER_B, .idem_key = "k1", .idem = &second};
    run_work(&other_user);
    cr_assert_not(other_user.idem_dup, "a key is the user's own");
    run_look(&l);
    cr_assert(l.found_idem);
    cr_assert_str_eq(l.idem.request_hash, "h1", "the first answer stays");
    cr_assert_eq(l.idem.status, 201);
    cr_assert(json_equal(l.idem.response, first.response));
    cr_assert_eq(l.idem.created_at, first.created_at);
    rp_idem_t got;
    bool found = false;
    cr_assert(OPS->idem_get(S.rewards, USER_B, "k1", &got, &found, &err), "%s", err.message);
    cr_assert(found);
    cr_assert_str_eq(got.request_hash, "h2");
    cr_assert_eq(got.status, 409);
    rp_idem_clear(&got);
    cr_assert(OPS->idem_get(S.rewards, USER_B, "k2", &got, &found, &err));
    cr_assert_not(found);
    look_clear(&l);
    rp_idem_clear(&first);
    rp_idem_clear(&second);
}

/* ---- batches ---- */

static const char *const USERS[5] = {"aaaaaaaaaaaaaaaaaaaaaaa1", "aaaaaaaaaaaaaaaaaaaaaaa2", "aaaaaaaaaaaaaaaaaaaaaaa3",
                                     "aaaaaaaaaaaaaaaaaaaaaaa4", "aaaaaaaaaaaaaaaaaaaaaaa5"};

static rp_batch_t batch(const char *event_id, const char *creator, const char *key, int64_t total, int64_t at) {
    rp_batch_t b = {.total = total, .duplicates = 1, .created_at = at};
    rp_oid_new(b.id);
    snprintf(b.event_id, sizeof b.event_id, "%s", event_id);
    snprintf(b.created_by, sizeof b.created_by, "%s", creator);
    snprintf(b.idem_key, sizeof b.idem_key, "%s", key);
    snprintf(b.request_hash, sizeof b.request_hash, "hash-of-%s", key);
    b.reason = rp_strdup("season finale");
    return b;
}

/* Stores b with items for the first total users; whether its key was taken. */
static bool store(const rp_batch_t *b, bool resume) {
    rp_err_t err;
    bool taken = true;
    cr_assert(OPS->batch_store(S.rewards, b, USERS, (size_t)b->total, resume, &taken, &err), "%s", err.message);
    return taken;
}

static void assert_same_batch(const rp_batch_t *g, const rp_batch_t *w) {
    cr_assert_str_eq(g->id, w->id);
    cr_assert_str_eq(g->event_id, w->event_id);
    cr_assert_str_eq(g->created_by, w->created_by);
    cr_assert_str_eq(g->reason, w->reason);
    cr_assert_str_eq(g->idem_key, w->idem_key);
    cr_assert_str_eq(g->request_hash, w->request_hash);
    cr_assert_eq(g->total, w->total);
    cr_assert_eq(g->duplicates, w->duplicates);
    cr_assert_eq(g->created_at, w->created_at);
    cr_assert(g->open, "a stored batch is open");
}

/* Reads one page of batch_id's items (status < 0 = any) after seq `after`, limit at most, and
 * checks it: the seqs want[0..n) in order, and whether more follow. */
static void assert_item_page(const char *batch_id, int status, int64_t after, int limit, const int64_t *want, size_t n,
                             bool more_want) {
    rp_err_t err;
    rp_batch_item_t *items = NULL;
    size_t got = 0;
    bool more = !more_want;
    cr_assert(OPS->batch_items(S.rewards, batch_id, status, after, limit, &items, &got, &more, &err), "%s",
              err.message);
    cr_assert_eq(got, n);
    cr_assert_eq(more, more_want);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(items[i].seq, want[i], "item %zu", i);
    free(items);
}

static bool settle(const char *batch_id, int64_t seq, rp_item_status_t to) {
    work_t w = {.settle_batch = batch_id, .settle_seq = seq, .settle_to = to};
    run_work(&w);
    return w.settled;
}

/* The SQLite store writes the ids as JSON text itself (no jansson copy): whatever bytes an id
 * holds come back as they went in. */
BACKENDS(rewards, batch_item_ids_come_back_byte_for_byte) {
    open_all(*backend);
    rp_err_t err;
    static const char *const odd[4] = {"quote\"d", "back\\slash", "tab\tand\x01ctl", "caf\xc3\xa9 \xe2\x9c\x93"};
    rp_batch_t b = batch(E.ev, OPERATOR, "odd-ids", 4, 1767225600000);
    bool taken = true;
    cr_assert(OPS->batch_store(S.rewards, &b, odd, 4, false, &taken, &err), "%s", err.message);
    cr_assert_not(taken);
    rp_batch_item_t *items = NULL;
    size_t n = 0;
    bool more = true;
    cr_assert(OPS->batch_items(S.rewards, b.id, -1, 0, 10, &items, &n, &more, &err), "%s", err.message);
    cr_assert_eq(n, 4u);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(items[i].seq, (int64_t)i + 1);
        cr_assert_str_eq(items[i].user_id, odd[i], "item %zu", i);
    }
    free(items);
    rp_batch_clear(&b);
}

BACKENDS(rewards, a_batch_is_stored_once_per_key_and_counted) {
    open_all(*backend);
    rp_err_t err;
    rp_batch_t b = batch(E.ev, OPERATOR, "key-1", 3, 1767225600000);
    cr_assert_not(store(&b, false));
    rp_batch_t got;
    bool found = false;
    cr_assert(OPS->batch_get(S.rewards, b.id, false, &got, &found, &err), "%s", err.message);
    cr_assert(found);
    assert_same_batch(&got, &b);
    rp_batch_clear(&got);
    cr_assert(OPS->batch_by_key(S.rewards, OPERATOR, "key-1", &got, &found, &err), "%s", err.message);
    cr_assert(found);
    assert_same_batch(&got, &b);
    rp_batch_clear(&got);
    cr_assert(OPS->batch_by_key(S.rewards, USER_A, "key-1", &got, &found, &err));
    cr_assert_not(found, "a key is its creator's");

    rp_batch_t dup = batch(E.ev, OPERATOR, "key-1", 2, 1767225601000);
    cr_assert(store(&dup, false), "the creator's key is held");
    cr_assert(OPS->batch_get(S.rewards, dup.id, true, &got, &found, &err));
    cr_assert_not(found, "nothing written");
    rp_batch_item_t *items = NULL;
    size_t n = 0;
    bool more = true;
    cr_assert(OPS->batch_items(S.rewards, dup.id, -1, 0, 10, &items, &n, &more, &err));
    cr_assert_eq(n, 0u, "not even items");
    free(items);
    rp_batch_t theirs = batch(E.ev, USER_A, "key-1", 1, 1767225602000);
    cr_assert_not(store(&theirs, false));
    rp_batch_t nokey1 = batch(E.ev, OPERATOR, "", 1, 1767225603000),
               nokey2 = batch(E.ev, OPERATOR, "", 1, 1767225604000);
    cr_assert_not(store(&nokey1, false));
    cr_assert_not(store(&nokey2, false), "batches without a key never conflict");
    bool taken = true;
    cr_assert_not(OPS->batch_store(S.rewards, &nokey1, USERS, 1, false, &taken, &err), "the same batch twice");
    cr_assert_eq(err.kind, RP_ERR_CONFLICT);
    cr_assert_not(taken, "no key was taken");

    cr_assert(settle(b.id, 1, RP_ITEM_SUCCESS));
    cr_assert(settle(b.id, 2, RP_ITEM_FAILED));
    cr_assert_not(settle(b.id, 1, RP_ITEM_FAILED), "settled once");
    cr_assert_not(settle(b.id, 9, RP_ITEM_SUCCESS), "no such item");
    cr_assert(OPS->batch_get(S.rewards, b.id, false, &got, &found, &err), "%s", err.message);
    cr_assert_eq(got.counts[RP_ITEM_QUEUED] + got.counts[RP_ITEM_SUCCESS] + got.counts[RP_ITEM_FAILED], 0,
                 "counted only when asked");
    rp_batch_clear(&got);
    cr_assert(OPS->batch_get(S.rewards, b.id, true, &got, &found, &err), "%s", err.message);
    cr_assert(found);
    assert_same_batch(&got, &b);
    cr_assert_eq(got.counts[RP_ITEM_QUEUED], 1);
    cr_assert_eq(got.counts[RP_ITEM_SUCCESS], 1);
    cr_assert_eq(got.counts[RP_ITEM_FAILED], 1);
    cr_assert_eq(got.nfailures, 1u);
    cr_assert_str_eq(got.failures[0].reason, "OUT_OF_STOCK");
    cr_assert_eq(got.failures[0].n, 1);
    cr_assert_eq(got.last_settled_at, 1767225600500);
    rp_batch_clear(&got);
    int64_t seqs[] = {3, 1, 99, 2};
    cr_assert(OPS->batch_items_get(S.rewards, b.id, seqs, 4, &items, &n, &err), "%s", err.message);
    cr_assert_eq(n, 3u, "unknown seqs are skipped");
    cr_assert_eq(items[0].seq, 3);
    cr_assert_eq(items[1].seq, 1);
    cr_assert_eq(items[2].seq, 2);
    cr_assert_str_eq(items[0].batch_id, b.id);
    cr_assert_str_eq(items[0].user_id, USERS[2]);
    cr_assert_eq(items[0].status, RP_ITEM_QUEUED);
    cr_assert_str_eq(items[0].failure_reason, "");
    cr_assert_str_eq(items[0].request_id, "");
    cr_assert_eq(items[0].settled_at, 0);
    cr_assert_eq(items[1].status, RP_ITEM_SUCCESS);
    cr_assert_str_eq(items[1].request_id, OPERATOR);
    cr_assert_eq(items[1].settled_at, 1767225600500);
    cr_assert_eq(items[2].status, RP_ITEM_FAILED);
    cr_assert_str_eq(items[2].failure_reason, "OUT_OF_STOCK");
    free(items);

    /* resume: only what is missing is stored, what is there stays as it is */
    b.total = 5;
    cr_assert_not(store(&b, true));
    cr_assert(OPS->batch_items(S.rewards, b.id, -1, 0, 10, &items, &n, &more, &err), "%s", err.message);
    cr_assert_eq(n, 5u);
    cr_assert_eq(items[0].status, RP_ITEM_SUCCESS, "a settled item is not stored again");
    cr_assert_eq(items[3].status, RP_ITEM_QUEUED);
    cr_assert_str_eq(items[4].user_id, USERS[4]);
    free(items);
    cr_assert(OPS->batch_get(S.rewards, b.id, true, &got, &found, &err), "%s", err.message);
    cr_assert(got.open);
    cr_assert_eq(got.counts[RP_ITEM_QUEUED], 3);
    rp_batch_clear(&got);
    cr_assert(OPS->batch_get(S.rewards, "ffffffffffffffffffffffff", true, &got, &found, &err));
    cr_assert_not(found);
    rp_batch_clear(&b);
    rp_batch_clear(&dup);
    rp_batch_clear(&theirs);
    rp_batch_clear(&nokey1);
    rp_batch_clear(&nokey2);
}

BACKENDS(rewards, batches_and_items_page_in_order) {
    open_all(*backend);
    rp_err_t err;
    rp_batch_t bs[3];
    for (int i = 0; i < 3; i++) {
        bs[i] = batch(i == 1 ? E.other : E.ev, OPERATOR, "", i == 0 ? 5 : 1, 1767225600000 + i * 1000);
        cr_assert_not(store(&bs[i], false));
    }
    rp_batch_t *list = NULL;
    size_t n = 0;
    bool more = false;
    cr_assert(OPS->batch_list(S.rewards, NULL, NULL, 2, &list, &n, &more, &err), "%s", err.message);
    cr_assert_eq(n, 2u);
    cr_assert(more);
    assert_same_batch(&list[0], &bs[2]);
    assert_same_batch(&list[1], &bs[1]);
    for (size_t i = 0; i < n; i++)
        rp_batch_clear(&list[i]);
    free(list);
    cr_assert(OPS->batch_list(S.rewards, NULL, bs[1].id, 2, &list, &n, &more, &err), "%s", err.message);
    cr_assert_eq(n, 1u);
    cr_assert_not(more);
    assert_same_batch(&list[0], &bs[0]);
    rp_batch_clear(&list[0]);
    free(list);
    cr_assert(OPS->batch_list(S.rewards, E.ev, NULL, 10, &list, &n, &more, &err), "%s", err.message);
    cr_assert_eq(n, 2u, "only the event's");
    cr_assert_str_eq(list[0].id, bs[2].id);
    cr_assert_str_eq(list[1].id, bs[0].id);
    for (size_t i = 0; i < n; i++)
        rp_batch_clear(&list[i]);
    free(list);

    cr_assert(settle(bs[0].id, 2, RP_ITEM_FAILED));
    cr_assert(settle(bs[0].id, 4, RP_ITEM_FAILED));
    assert_item_page(bs[0].id, -1, 1, 2, (int64_t[]){2, 3}, 2, true);
    assert_item_page(bs[0].id, RP_ITEM_FAILED, 0, 10, (int64_t[]){2, 4}, 2, false);
    assert_item_page(bs[0].id, RP_ITEM_QUEUED, 3, 10, (int64_t[]){5}, 1, false);
    for (int i = 0; i < 3; i++)
        rp_batch_clear(&bs[i]);
}

/* Leases and checks the refs: (batch, seq) pairs, in order. */
static void lease(int64_t now, int limit, size_t want, const char *const *batch_ids, const int64_t *seqs) {
    work_t w = {.lease_now = now, .lease_until = now + 5000, .lease_limit = limit};
    run_work(&w);
    cr_assert_eq(w.nleased, want);
    cr_assert_eq(w.leased == NULL, want == 0);
    for (size_t i = 0; i < want; i++) {
        cr_assert_str_eq(w.leased[i].batch_id, batch_ids[i], "item %zu", i);
        cr_assert_eq(w.leased[i].seq, seqs[i], "item %zu", i);
    }
    free(w.leased);
}

static int64_t in_flight(int64_t now) {
    look_t l = {.now = now};
    run_look(&l);
    look_clear(&l);
    return l.in_flight;
}

static bool any_due(int64_t now) {
    rp_err_t err;
    bool any = false;
    cr_assert(OPS->batch_any_due(S.rewards, now, &any, &err), "%s", err.message);
    return any;
}

BACKENDS(rewards, items_lease_by_due_time_and_come_back) {
    open_all(*backend);
    rp_err_t err;
    int64_t t0 = 1767225600000;
    rp_batch_t late = batch(E.ev, OPERATOR, "", 3, t0), early = batch(E.ev, OPERATOR, "", 1, t0 - 1000);
    cr_assert_not(store(&late, false));
    cr_assert_not(store(&early, false));
    cr_assert_not(any_due(t0 - 1001));
    cr_assert(any_due(t0 - 1000));
    cr_assert_eq(in_flight(t0), 0);
    const char *ids1[] = {early.id, late.id}, *ids2[] = {late.id, late.id};
    lease(t0, 2, 2, ids1, (int64_t[]){1, 1});
    cr_assert_eq(in_flight(t0), 2);
    lease(t0, 10, 2, ids2, (int64_t[]){2, 3});
    cr_assert_eq(in_flight(t0), 4);
    lease(t0, 10, 0, NULL, NULL);
    cr_assert_not(any_due(t0 + 4999), "all sent, none due again yet");
    cr_assert(any_due(t0 + 5000));
    cr_assert(settle(late.id, 2, RP_ITEM_SUCCESS));
    cr_assert_eq(in_flight(t0), 3, "a settled item is not in flight");
    /* all due at once again: by batch, then seq */
    bool early_first = strcmp(early.id, late.id) < 0;
    const char *ids3[] = {early_first ? early.id : late.id, late.id, early_first ? late.id : early.id};
    lease(t0 + 6000, 10, 3, ids3, early_first ? (int64_t[]){1, 1, 3} : (int64_t[]){1, 3, 1});
    rp_batch_item_t *items = NULL;
    size_t n = 0;
    bool more;
    cr_assert(OPS->batch_items(S.rewards, late.id, -1, 0, 10, &items, &n, &more, &err), "%s", err.message);
    cr_assert_eq(items[0].attempts, 2, "each lease counts an attempt");
    cr_assert_eq(items[1].attempts, 1);
    cr_assert_eq(items[2].attempts, 2);
    free(items);
    rp_batch_clear(&late);
    rp_batch_clear(&early);
}

/* ---- concurrency ---- */

typedef struct race {
    const char *event_id, *period;
    int won, lost;
    pthread_mutex_t mu;
} race_t;

static void *race_main(void *arg) {
    race_t *r = arg;
    rp_request_t mine = request(USER_A, r->event_id, RP_REQ_SUCCESS, r->period, rp_now_ms());
    work_t w = {.insert = &mine};
    rp_err_t err;
    bool ok = OPS->transact(S.rewards, "race", do_work, &w, &err);
    pthread_mutex_lock(&r->mu);
    if (ok && !w.dup) r->won++;
    if (ok && w.dup) r->lost++;
    pthread_mutex_unlock(&r->mu);
    rp_request_clear(&mine);
    return NULL;
}

BACKENDS(rewards, racing_inserts_of_one_active_key_have_one_winner) {
    open_all(*backend);
    race_t r = {E.ev, "ONCE", 0, 0, PTHREAD_MUTEX_INITIALIZER};
    run_together(8, race_main, &r);
    cr_assert_eq(r.won, 1);
    cr_assert_eq(r.lost, 7, "every other insert saw the duplicate, none failed");
    look_t l = {.count_user = USER_A, .count_event = E.ev};
    run_look(&l);
    cr_assert_eq(l.count, 1);
}

/* The event store's freeze guard (event_repo.h, only_if_no_slots) needs requests of the event to
 * refuse, so it is tested here, with the reward store beside it: a FAILED request holds no slot
 * and freezes nothing; once a slot-holding request is stored, an update under the guard writes
 * nothing; without the guard it goes through. */
BACKENDS(rewards, the_event_freeze_guard_sees_slot_holding_requests) {
    open_all(*backend);
    rp_err_t err;
    json_t *doc = NULL;
    bool claimed = true;
    rp_request_t r = request(USER_A, E.ev, RP_REQ_FAILED, "ONCE", rp_now_ms());
    insert(&r);
    rp_request_clear(&r);
    cr_assert(S.events->ops->event_get(S.events, E.ev, &doc, &err) && doc, "%s", err.message);
    json_object_set_new(doc, "title", json_string("Free"));
    rp_event_audit_t a = audit("UPDATE", "EVENT", E.ev);
    cr_assert(S.events->ops->event_update(S.events, doc, true, true, &a, &claimed, &err), "%s", err.message);
    cr_assert_not(claimed, "a FAILED request holds no slot: nothing is frozen");
    json_decref(doc);
    r = request(USER_B, E.ev, RP_REQ_AWAITING_REVIEW, "ONCE", rp_now_ms());
    insert(&r);
    rp_request_clear(&r);
    cr_assert(S.events->ops->event_get(S.events, E.ev, &doc, &err) && doc, "%s", err.message);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "title")), "Free");
    json_object_set_new(doc, "title", json_string("Frozen"));
    cr_assert(S.events->ops->event_update(S.events, doc, true, true, &a, &claimed, &err), "%s", err.message);
    cr_assert(claimed, "a slot-holding request freezes the guarded fields");
    json_decref(doc);
    cr_assert(S.events->ops->event_get(S.events, E.ev, &doc, &err) && doc);
    cr_assert_str_neq(json_string_value(json_object_get(doc, "title")), "Frozen", "nothing written");
    json_object_set_new(doc, "title", json_string("Renamed"));
    cr_assert(S.events->ops->event_update(S.events, doc, false, false, &a, &claimed, &err), "%s", err.message);
    cr_assert_not(claimed, "an edit the caller does not guard goes through");
    json_decref(doc);
    cr_assert(S.events->ops->event_get(S.events, E.ev, &doc, &err) && doc);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "title")), "Renamed");
    json_decref(doc);
}

/* A cancel settles the event's AWAITING_REVIEW requests in its own transaction (event_repo.h,
 * rp_event_settle_t): FAILED with the reason, processed by the canceller at the cancel time, the
 * slot released; other statuses and other events' requests stay as they are. */
BACKENDS(rewards, cancel_settles_the_events_reviews_in_its_transaction) {
    open_all(*backend);
    rp_err_t err;
    const int64_t t = 1767225600000, now = t + 5000;
    rp_request_t review = request(USER_A, E.ev, RP_REQ_AWAITING_REVIEW, "ONCE", t),
                 paid = request(USER_B, E.ev, RP_REQ_SUCCESS, "ONCE", t),
                 elsewhere = request(USER_A, E.other, RP_REQ_AWAITING_REVIEW, "ONCE", t);
    insert(&review);
    insert(&paid);
    insert(&elsewhere);
    const rp_event_settle_t settle = {"AWAITING_REVIEW", "FAILED", "EVENT_CANCELED", OPERATOR};
    rp_event_audit_t a = audit("CANCEL", "EVENT", E.ev);
    bool already = true;
    int64_t settled = -1;
    cr_assert(S.events->ops->event_cancel(S.events, E.ev, now, &settle, &a, &already, &settled, &err), "%s",
              err.message);
    cr_assert_not(already);
    cr_assert_eq(settled, 1);
    look_t l = {.id = review.id, .slot = &review};
    run_look(&l);
    cr_assert(l.found_id);
    cr_assert_eq(l.by_id.status, RP_REQ_FAILED);
    cr_assert_str_eq(l.by_id.failure_reason, "EVENT_CANCELED");
    cr_assert_str_eq(l.by_id.processor_id, OPERATOR);
    cr_assert_eq(l.by_id.processed_at, now);
    cr_assert_str_eq(l.by_id.active_key, "", "the slot is released");
    cr_assert_not(l.found_key, "nobody holds the key any more");
    look_clear(&l);
    l = (look_t){.id = paid.id};
    run_look(&l);
    cr_assert_eq(l.by_id.status, RP_REQ_SUCCESS, "a paid request stays paid");
    look_clear(&l);
    l = (look_t){.id = elsewhere.id};
    run_look(&l);
    cr_assert_eq(l.by_id.status, RP_REQ_AWAITING_REVIEW, "another event's review stays");
    look_clear(&l);
    cr_assert(S.events->ops->event_cancel(S.events, E.ev, now + 1, &settle, &a, &already, &settled, &err));
    cr_assert(already);
    cr_assert_eq(settled, 0);
    rp_request_clear(&review);
    rp_request_clear(&paid);
    rp_request_clear(&elsewhere);
}
