/* grant_txn.c - the business bodies of the reward path, once, over any store's unit of work (see
 * grant_txn.h). Each body keeps what it finds in its run struct and resets it at its start,
 * because MongoDB may run a body again after a transient error. */
#include "grant_txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failpoint.h"
#include "ids.h"
#include "log.h"

#define ATTEMPTS 3 /* a claim that keeps losing races to concurrent claims of its slot gives up */

/* ---- small pieces ---- */

static size_t stock_lines(const rp_request_t *r, rp_stock_line_t lines[RP_MAX_EVENT_REWARDS]) {
    for (size_t i = 0; i < r->nrewards; i++)
        lines[i] = (rp_stock_line_t){r->rewards[i].reward_index, r->rewards[i].quantity};
    return r->nrewards;
}

/* One ledger entry per line of r (negative quantities for a reversal), by processor at `at`. */
static bool append_ledger(const rp_reward_store_ops_t *ops, rp_reward_txn_t *tx, const rp_request_t *r,
                          rp_ledger_kind_t kind, int64_t at) {
    rp_ledger_entry_t entries[RP_MAX_EVENT_REWARDS];
    memset(entries, 0, sizeof entries);
    for (size_t i = 0; i < r->nrewards; i++) {
        rp_ledger_entry_t *e = &entries[i];
        rp_oid_new(e->id);
        memcpy(e->request_id, r->id, sizeof e->request_id);
        memcpy(e->user_id, r->user_id, sizeof e->user_id);
        memcpy(e->event_id, r->event_id, sizeof e->event_id);
        e->reward_index = r->rewards[i].reward_index;
        memcpy(e->definition_id, r->rewards[i].definition_id, sizeof e->definition_id);
        e->quantity = kind == RP_LEDGER_REVERSAL ? -r->rewards[i].quantity : r->rewards[i].quantity;
        e->kind = kind;
        memcpy(e->processor_id, r->processor_id, sizeof e->processor_id);
        e->at = at;
    }
    return ops->tx_append_ledger(tx, entries, r->nrewards);
}

/* The outbox message about r: a grant's id is the request id, a revocation's "<id>:revoked", a
 * request waiting for review "<id>:review" (for webhooks, DESIGN.md section 10), and the payload
 * carries the same id, so a game server can deduplicate on either. */
typedef enum message_kind { MSG_GRANTED, MSG_REVOKED, MSG_AWAITING_REVIEW } message_kind_t;

static void make_message(const rp_request_t *r, message_kind_t kind, const char *reason, int64_t at,
                         rp_outbox_message_t *m) {
    static const char *const suffix[] = {"", ":revoked", ":review"};
    static const char *const key[] = {"reward.granted", "reward.revoked", "reward.awaiting_review"};
    memset(m, 0, sizeof *m);
    snprintf(m->message_id, sizeof m->message_id, "%s%s", r->id, suffix[kind]);
    snprintf(m->routing_key, sizeof m->routing_key, "%s", key[kind]);
    memcpy(m->request_id, r->id, sizeof m->request_id);
    /* printed without building the object: building, printing and freeing it was 8 % of an
     * embedded claim's CPU. A text that is not UTF-8 leaves the object to fail as it always did. */
    if (!(m->payload_text = rp_request_message_print(r, m->routing_key, m->message_id, at, reason)))
        m->payload = rp_request_message(r, m->routing_key, m->message_id, at, reason);
    m->created_at = at;
}

static bool append_message(const rp_reward_store_ops_t *ops, rp_reward_txn_t *tx, const rp_request_t *r,
                           message_kind_t kind, const char *reason, int64_t at) {
    rp_outbox_message_t m;
    make_message(r, kind, reason, at, &m);
    bool ok = ops->tx_append_outbox(tx, &m);
    rp_outbox_message_clear(&m);
    return ok;
}

/* Pays r out: stock taken by the caller, here the ledger and the message. */
static bool pay(const rp_reward_store_ops_t *ops, rp_reward_txn_t *tx, const rp_request_t *r, int64_t at) {
    return append_ledger(ops, tx, r, RP_LEDGER_GRANT, at) && append_message(ops, tx, r, MSG_GRANTED, NULL, at);
}

void rp_grant_result_clear(rp_grant_result_t *res) {
    if (!res) return;
    rp_request_clear(&res->request);
    rp_request_clear(&res->holder);
    rp_idem_clear(&res->replay);
    res->outcome = RP_GRANT_OK;
}

void rp_decide_result_clear(rp_decide_result_t *res) {
    if (!res) return;
    rp_request_clear(&res->request);
    res->outcome = RP_DECIDED;
}

static const char *outcome_reason(rp_grant_outcome_t o) {
    switch (o) {
    case RP_GRANT_ALREADY_CLAIMED: return "ALREADY_CLAIMED";
    case RP_GRANT_OUT_OF_STOCK: return "OUT_OF_STOCK";
    case RP_GRANT_MAX_CLAIMS_REACHED: return "MAX_CLAIMS_REACHED";
    default: return NULL;
    }
}

/* ---- the claim and the batch item ---- */

typedef struct claim_run {
    rp_reward_store_t *s;
    const rp_claim_t *c;
    int64_t item_seq;       /* > 0: a batch item (request->batch_id) */
    rp_grant_outcome_t why; /* the refusal body's input: what the grant body ended with */
    rp_grant_result_t *res;
    bool again; /* the body lost a race it cannot settle itself: run the claim again */
    bool dry;   /* a rehearsal (rp_grant_claim_check, rp_grant_batch_dry_run): nothing is paid, all rolled back */
    /* The message a grant of the claim appends, made and printed before its unit of work (see
     * prepare_grant), or NULL. */
    const rp_outbox_message_t *granted;
} claim_run_t;

static void start(claim_run_t *run) {
    rp_grant_result_clear(run->res);
    run->again = false;
}

/* The claim's Idempotency-Key, looked up in this unit of work: true when it was used before
 * (then res->replay holds the stored answer). */
static bool used_key(claim_run_t *run, rp_reward_txn_t *tx, bool *used) {
    const rp_claim_t *c = run->c;
    *used = false;
    if (!c->idem_key) return true;
    if (!run->s->ops->tx_idem_get(tx, c->request->user_id, c->idem_key, &run->res->replay, used)) return false;
    if (*used) run->res->outcome = RP_GRANT_REPLAYED;
    return true;
}

/* Ends a claim's unit of work on its outcome: with an Idempotency-Key the answer is stored in
 * this same transaction, so whoever retries after a crash gets exactly this answer. */
static rp_txn_end_t answer(claim_run_t *run, rp_reward_txn_t *tx, bool wrote) {
    const rp_claim_t *c = run->c;
    if (!c->idem_key) return wrote ? RP_TXN_COMMIT : RP_TXN_ROLLBACK;
    rp_idem_t v;
    bool duplicate = false;
    memset(&v, 0, sizeof v);
    snprintf(v.request_hash, sizeof v.request_hash, "%s", c->idem_hash);
    v.response = c->answer(c->answer_ctx, run->res, &v.status);
    v.created_at = c->request->created_at;
    bool ok = run->s->ops->tx_idem_put(tx, c->request->user_id, c->idem_key, &v, &duplicate);
    rp_idem_clear(&v);
    if (!ok) return RP_TXN_FAILED;
    if (duplicate) { /* a concurrent claim with the same key stored first: answer with its answer */
        run->again = true;
        return RP_TXN_ROLLBACK;
    }
    return RP_TXN_COMMIT;
}

/* The refusals of a grant that reads decide, in the grant's order: another request holds r's
 * slot (ALREADY_CLAIMED, res->holder), or the player holds max_claims (> 0) slots of the event
 * (MAX_CLAIMS_REACHED); res->outcome stays OK otherwise. False on a store failure. */
static bool judge_slot(const rp_reward_store_ops_t *ops, rp_reward_txn_t *tx, const rp_request_t *r, int64_t max_claims,
                       rp_grant_result_t *res) {
    bool found = false;
    if (!ops->tx_request_by_key(tx, r, &res->holder, &found)) return false;
    if (found) {
        res->outcome = RP_GRANT_ALREADY_CLAIMED;
        return true;
    }
    if (max_claims > 0) {
        int64_t held = 0;
        if (!ops->tx_count_slots(tx, r->user_id, r->event_id, max_claims, &held)) return false;
        if (held >= max_claims) res->outcome = RP_GRANT_MAX_CLAIMS_REACHED;
    }
    return true;
}

/* Whether the event of r is, as this unit of work reads it, the version the claim was judged on
 * (c->event_version) and not canceled; true without reading when the claim names no version. */
static bool same_event(const rp_reward_store_ops_t *ops, rp_reward_txn_t *tx, const rp_claim_t *c,
                       const rp_request_t *r, bool *same) {
    rp_event_state_t state;
    bool found = false;
    *same = true;
    if (c->event_version <= 0) return true;
    if (!ops->tx_event_state(tx, r->event_id, &state, &found)) return false;
    *same = found && state.canceled_at == 0 && state.updated_at == c->event_version;
    return true;
}

/* The grant: slot, maxClaims, stock, request, ledger, outbox (and the batch item), all or
 * nothing. */
static rp_txn_end_t grant_body(rp_reward_txn_t *tx, void *arg) {
    claim_run_t *run = arg;
    const rp_reward_store_ops_t *ops = run->s->ops;
    const rp_claim_t *c = run->c;
    rp_grant_result_t *res = run->res;
    bool found = false, ok = true;
    start(run);
    rp_request_copy(&res->request, c->request);
    rp_request_t *r = &res->request;
    if (run->item_seq > 0) {
        if (!ops->tx_settle_item(tx, r->batch_id, run->item_seq, RP_ITEM_SUCCESS, "", r->id, r->created_at, &ok))
            return RP_TXN_FAILED;
        if (!ok) {
            res->outcome = RP_GRANT_ITEM_SETTLED;
            return RP_TXN_ROLLBACK;
        }
    }
    if (!used_key(run, tx, &found)) return RP_TXN_FAILED;
    if (found) return RP_TXN_ROLLBACK;
    if (!same_event(ops, tx, c, r, &ok)) return RP_TXN_FAILED;
    if (!ok) {
        res->outcome = RP_GRANT_EVENT_CHANGED;
        return RP_TXN_ROLLBACK;
    }
    if (!judge_slot(ops, tx, r, c->max_claims, res)) return RP_TXN_FAILED;
    if (res->outcome == RP_GRANT_ALREADY_CLAIMED) return run->item_seq > 0 ? RP_TXN_ROLLBACK : answer(run, tx, false);
    if (res->outcome == RP_GRANT_MAX_CLAIMS_REACHED) return RP_TXN_ROLLBACK;
    rp_stock_line_t lines[RP_MAX_EVENT_REWARDS];
    size_t n = stock_lines(r, lines);
    if (r->status == RP_REQ_SUCCESS) {
        if (!ops->tx_stock_take(tx, r->event_id, lines, n, &ok)) return RP_TXN_FAILED;
        if (!ok) {
            res->outcome = RP_GRANT_OUT_OF_STOCK;
            return RP_TXN_ROLLBACK;
        }
    }
    if (!ops->tx_insert_request(tx, r, &found)) return RP_TXN_FAILED;
    if (found) { /* taken by a claim that committed after this transaction's snapshot */
        res->outcome = RP_GRANT_ALREADY_CLAIMED;
        return RP_TXN_ROLLBACK;
    }
    /* paying refuses nothing, so a rehearsal that will roll back anyway skips it */
    if (r->status == RP_REQ_SUCCESS && !run->dry &&
        !(run->granted
              ? append_ledger(ops, tx, r, RP_LEDGER_GRANT, r->created_at) && ops->tx_append_outbox(tx, run->granted)
              : pay(ops, tx, r, r->created_at)))
        return RP_TXN_FAILED;
    if (r->status == RP_REQ_AWAITING_REVIEW && !run->dry &&
        !append_message(ops, tx, r, MSG_AWAITING_REVIEW, NULL, r->created_at))
        return RP_TXN_FAILED;
    res->outcome = RP_GRANT_OK;
    return answer(run, tx, true);
}

/* After a refusal rolled the grant back: records it, in a transaction of its own. A claim's
 * refusal is a FAILED request (ALREADY_CLAIMED records none) plus the stored answer; a batch
 * item's is the item settled FAILED. */
static rp_txn_end_t refusal_body(rp_reward_txn_t *tx, void *arg) {
    claim_run_t *run = arg;
    const rp_reward_store_ops_t *ops = run->s->ops;
    rp_grant_result_t *res = run->res;
    bool found = false, ok = false;
    start(run);
    rp_request_copy(&res->request, run->c->request);
    rp_request_t *r = &res->request;
    if (!used_key(run, tx, &found)) return RP_TXN_FAILED;
    if (found) return RP_TXN_ROLLBACK;
    res->outcome = run->why;
    if (run->why == RP_GRANT_ALREADY_CLAIMED) {
        if (!ops->tx_request_by_key(tx, r, &res->holder, &found)) return RP_TXN_FAILED;
        if (!found) { /* the holder was rejected meanwhile: the slot is free again */
            run->again = true;
            return RP_TXN_ROLLBACK;
        }
    }
    if (run->item_seq > 0) {
        if (!ops->tx_settle_item(tx, r->batch_id, run->item_seq, RP_ITEM_FAILED, outcome_reason(run->why),
                                 res->holder.id, r->created_at, &ok))
            return RP_TXN_FAILED;
        return RP_TXN_COMMIT; /* ok false: settled meanwhile by another delivery, nothing to add */
    }
    if (run->why != RP_GRANT_ALREADY_CLAIMED) {
        r->status = RP_REQ_FAILED;
        r->active_key[0] = '\0'; /* a FAILED request holds no slot: the player may try again later */
        if (run->why != RP_GRANT_REFUSED)
            snprintf(r->failure_reason, sizeof r->failure_reason, "%s", outcome_reason(run->why));
        r->processed_at = r->requested_at;
        if (!ops->tx_insert_request(tx, r, &found)) return RP_TXN_FAILED;
        if (found) { /* a FAILED request has no key: only an id collision gets here */
            rp_log(RP_LOG_ERROR, "grant", "request id %s collides", r->id);
            return RP_TXN_FAILED;
        }
    }
    return answer(run, tx, run->why != RP_GRANT_ALREADY_CLAIMED);
}

/* The message a grant of request appends (as pay would make it), made and printed here: on a
 * SQLite store the grant's unit of work runs in a group commit, one unit after the other on the
 * leader's thread, and making and printing the message there was a seventh of the leader's time
 * in an embedded claim's profile. Messages of no grant are made in the unit. */
static bool prepare_grant(const rp_request_t *request, rp_outbox_message_t *m) {
    if (request->status != RP_REQ_SUCCESS) return false;
    make_message(request, MSG_GRANTED, NULL, request->created_at, m);
    return true;
}

static bool claim_attempts(rp_reward_store_t *s, claim_run_t *run, rp_err_t *err) {
    for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
        if (run->c->request->status == RP_REQ_FAILED) {
            run->why = RP_GRANT_REFUSED;
        } else {
            if (!s->ops->transact(s, "grant", grant_body, run, err)) return false;
            if (run->again) continue;
            rp_grant_outcome_t o = run->res->outcome;
            if (o == RP_GRANT_OK || o == RP_GRANT_REPLAYED || o == RP_GRANT_ITEM_SETTLED ||
                o == RP_GRANT_EVENT_CHANGED ||
                (o == RP_GRANT_ALREADY_CLAIMED && run->res->holder.id[0] && run->item_seq == 0))
                return true;
            run->why = o;
        }
        if (!s->ops->transact(s, "record refusal", refusal_body, run, err)) return false;
        if (!run->again) return true;
    }
    rp_err_set(err, RP_ERR_STORE_BUSY, "STORE_BUSY", "the claim kept racing with concurrent claims of its slot");
    return false;
}

/* A claim or a batch item: its grant's message made first, then the attempts. */
static bool run_claim(rp_reward_store_t *s, claim_run_t *run, rp_err_t *err) {
    rp_outbox_message_t granted;
    if (prepare_grant(run->c->request, &granted)) run->granted = &granted;
    bool ok = claim_attempts(s, run, err);
    if (run->granted) rp_outbox_message_clear(&granted);
    run->granted = NULL;
    return ok;
}

bool rp_grant_claim(rp_reward_store_t *s, const rp_claim_t *c, rp_grant_result_t *res, rp_err_t *err) {
    claim_run_t run = {.s = s, .c = c, .res = res};
    memset(res, 0, sizeof *res);
    return run_claim(s, &run, err);
}

bool rp_grant_batch_item(rp_reward_store_t *s, const rp_request_t *request, int64_t seq, int64_t max_claims,
                         rp_grant_result_t *res, rp_err_t *err) {
    rp_claim_t c = {.request = request, .max_claims = max_claims};
    claim_run_t run = {.s = s, .c = &c, .item_seq = seq, .res = res};
    memset(res, 0, sizeof *res);
    return run_claim(s, &run, err);
}

/* ---- a chunk of batch items in one unit of work ---- */

typedef struct chunk_run {
    rp_reward_store_t *s;
    const char *batch_id;
    rp_grant_chunk_item_t *items;
    size_t n;
    int64_t max_claims, now;
    bool again; /* a write refused what the reads allowed (a race): settle the chunk item by item */
} chunk_run_t;

/* Whether the stock left (state, as this unit of work has moved it) covers every line of r. */
static bool stock_covers(const rp_event_state_t *state, const rp_request_t *r) {
    for (size_t i = 0; i < r->nrewards; i++) {
        int idx = r->rewards[i].reward_index;
        int64_t left = idx >= 0 && (size_t)idx < state->nrewards ? state->stock_left[idx] : -1;
        if (left >= 0 && left < r->rewards[i].quantity) return false;
    }
    return true;
}

static void stock_taken(rp_event_state_t *state, const rp_request_t *r) {
    for (size_t i = 0; i < r->nrewards; i++) {
        int idx = r->rewards[i].reward_index;
        if (idx >= 0 && (size_t)idx < state->nrewards && state->stock_left[idx] >= 0)
            state->stock_left[idx] -= r->rewards[i].quantity;
    }
}

/* One item of a chunk: every refusal is decided by reads before the item's first write, and
 * the item's compare-and-set from QUEUED comes before its grant, so an item refused or settled
 * meanwhile leaves nothing of its own behind and the items before and after it keep theirs. A
 * write that refuses after the reads allowed it (a race) sets run->again. */
static bool chunk_item(chunk_run_t *run, rp_reward_txn_t *tx, rp_grant_chunk_item_t *it, rp_event_state_t *state,
                       bool have_state) {
    const rp_reward_store_ops_t *ops = run->s->ops;
    const rp_request_t *r = it->request;
    rp_grant_result_t res;
    bool settled = false, ok = true;
    memset(&res, 0, sizeof res);
    if (!r) { /* refused before any grant (no account, event canceled or gone) */
        if (!ops->tx_settle_item(tx, run->batch_id, it->seq, RP_ITEM_FAILED, it->reason, "", run->now, &settled))
            return false;
        it->outcome = settled ? RP_GRANT_REFUSED : RP_GRANT_ITEM_SETTLED;
        return true;
    }
    if (!judge_slot(ops, tx, r, run->max_claims, &res)) goto failed;
    if (res.outcome == RP_GRANT_OK && have_state && !stock_covers(state, r)) res.outcome = RP_GRANT_OUT_OF_STOCK;
    rp_item_status_t to = res.outcome == RP_GRANT_OK ? RP_ITEM_SUCCESS : RP_ITEM_FAILED;
    if (!ops->tx_settle_item(tx, run->batch_id, it->seq, to, outcome_reason(res.outcome),
                             to == RP_ITEM_SUCCESS ? r->id : res.holder.id, r->created_at, &settled))
        goto failed;
    it->outcome = settled ? res.outcome : RP_GRANT_ITEM_SETTLED;
    if (!settled || to == RP_ITEM_FAILED) goto done;
    rp_stock_line_t lines[RP_MAX_EVENT_REWARDS];
    size_t nlines = stock_lines(r, lines);
    bool dup = false;
    if (!ops->tx_stock_take(tx, r->event_id, lines, nlines, &ok) || (ok && !ops->tx_insert_request(tx, r, &dup)))
        goto failed;
    if (!ok || dup) { /* a stock or slot the reads saw free was taken: on MongoDB the transaction is dead */
        run->again = true;
        goto done;
    }
    if (!pay(ops, tx, r, r->created_at)) goto failed;
    stock_taken(state, r);
done:
    rp_grant_result_clear(&res);
    return true;
failed:
    rp_grant_result_clear(&res);
    return false;
}

static rp_txn_end_t chunk_body(rp_reward_txn_t *tx, void *arg) {
    chunk_run_t *run = arg;
    rp_event_state_t state;
    bool have_state = false;
    run->again = false;
    for (size_t i = 0; i < run->n; i++)
        run->items[i].outcome = RP_GRANT_OK;
    /* the stock, once: the items' takes are then counted here, so that a short stock is known
     * before an item writes anything */
    for (size_t i = 0; i < run->n && !have_state; i++) {
        if (!run->items[i].request) continue;
        if (!run->s->ops->tx_event_state(tx, run->items[i].request->event_id, &state, &have_state))
            return RP_TXN_FAILED;
        break;
    }
    for (size_t i = 0; i < run->n; i++) {
        if (!chunk_item(run, tx, &run->items[i], &state, have_state)) return RP_TXN_FAILED;
        if (run->again) return RP_TXN_ROLLBACK;
        if (i == 0 && run->n > 1) rp_failpoint("batch.mid_chunk"); /* a crash test: paid one, not the rest */
    }
    return RP_TXN_COMMIT;
}

bool rp_grant_batch_chunk(rp_reward_store_t *s, const char *batch_id, rp_grant_chunk_item_t *items, size_t n,
                          int64_t max_claims, int64_t now, rp_err_t *err) {
    chunk_run_t run = {s, batch_id, items, n, max_claims, now, false};
    for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
        if (!s->ops->transact_bulk(s, "settle batch chunk", chunk_body, &run, err)) return false;
        if (!run.again) return true;
    }
    /* races kept undoing the chunk: each item on its own, as a lone redelivery would */
    for (size_t i = 0; i < n; i++) {
        rp_grant_result_t res;
        bool ok = items[i].request ? rp_grant_batch_item(s, items[i].request, items[i].seq, max_claims, &res, err)
                                   : rp_grant_item_fail(s, batch_id, items[i].seq, items[i].reason, now, err);
        items[i].outcome = items[i].request ? res.outcome : RP_GRANT_REFUSED;
        if (items[i].request) rp_grant_result_clear(&res);
        if (!ok) return false;
    }
    return true;
}

/* ---- rehearsals: the grant body in a unit of work that always rolls back ---- */

typedef struct check_run {
    claim_run_t run;
    rp_event_state_t *state;
} check_run_t;

static rp_txn_end_t check_body(rp_reward_txn_t *tx, void *arg) {
    check_run_t *ck = arg;
    bool found = false;
    start(&ck->run);
    if (!ck->run.s->ops->tx_event_state(tx, ck->run.c->request->event_id, ck->state, &found)) return RP_TXN_FAILED;
    if (ck->run.c->request->status == RP_REQ_FAILED) { /* judged already: the grant would not run */
        ck->run.res->outcome = RP_GRANT_REFUSED;
        rp_request_copy(&ck->run.res->request, ck->run.c->request);
        return RP_TXN_ROLLBACK;
    }
    return grant_body(tx, &ck->run) == RP_TXN_FAILED ? RP_TXN_FAILED : RP_TXN_ROLLBACK;
}

bool rp_grant_claim_check(rp_reward_store_t *s, const rp_claim_t *c, rp_grant_result_t *res, rp_event_state_t *state,
                          rp_err_t *err) {
    rp_claim_t keyless = *c;
    keyless.idem_key = NULL; /* nothing is stored, so no answer either */
    check_run_t ck = {{.s = s, .c = &keyless, .res = res, .dry = true}, state};
    memset(res, 0, sizeof *res);
    for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
        if (!s->ops->rehearse(s, "check claim", check_body, &ck, err)) return false;
        /* a slot taken by a claim that committed after the snapshot: look again */
        if (res->outcome != RP_GRANT_ALREADY_CLAIMED || res->holder.id[0]) return true;
    }
    rp_err_set(err, RP_ERR_STORE_BUSY, "STORE_BUSY", "the check kept racing with concurrent claims of its slot");
    return false;
}

typedef struct dry_run {
    rp_reward_store_t *s;
    const rp_request_t *tmpl;
    const char *const *user_ids;
    size_t n;
    int64_t max_claims;
    rp_grant_outcome_t *outcomes;
    bool again;
} dry_run_t;

/* Every item's grant, in order, in one unit of work: what an item takes (stock, a slot, a claim
 * of maxClaims) is there for the items after it, as it would be for the real batch. */
static rp_txn_end_t dry_body(rp_reward_txn_t *tx, void *arg) {
    dry_run_t *d = arg;
    rp_request_t r;
    rp_grant_result_t res;
    rp_claim_t c = {.request = &r, .max_claims = d->max_claims};
    claim_run_t run = {.s = d->s, .c = &c, .res = &res, .dry = true};
    rp_txn_end_t end = RP_TXN_ROLLBACK;
    d->again = false;
    memset(&res, 0, sizeof res);
    rp_request_init(&r);
    for (size_t i = 0; i < d->n; i++) {
        rp_request_clear(&r);
        rp_request_copy(&r, d->tmpl);
        rp_oid_new(r.id);
        snprintf(r.user_id, sizeof r.user_id, "%s", d->user_ids[i]);
        rp_active_key(r.user_id, r.event_id, r.period_key, r.active_key, sizeof r.active_key);
        if (grant_body(tx, &run) == RP_TXN_FAILED) {
            end = RP_TXN_FAILED;
            break;
        }
        /* a duplicate insert: a claim committed after the snapshot (and on MongoDB the
         * transaction is dead); rehearse again */
        if (res.outcome == RP_GRANT_ALREADY_CLAIMED && !res.holder.id[0]) {
            d->again = true;
            break;
        }
        d->outcomes[i] = res.outcome;
    }
    rp_grant_result_clear(&res);
    rp_request_clear(&r);
    return end;
}

bool rp_grant_batch_dry_run(rp_reward_store_t *s, const rp_request_t *tmpl, const char *const *user_ids, size_t n,
                            int64_t max_claims, rp_grant_outcome_t *outcomes, rp_err_t *err) {
    dry_run_t d = {s, tmpl, user_ids, n, max_claims, outcomes, false};
    for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
        if (!s->ops->rehearse(s, "rehearse batch", dry_body, &d, err)) return false;
        if (!d.again) return true;
    }
    rp_err_set(err, RP_ERR_STORE_BUSY, "STORE_BUSY", "the rehearsal kept racing with concurrent claims");
    return false;
}

typedef struct item_fail {
    rp_reward_store_t *s;
    const char *batch_id, *reason;
    int64_t seq, now;
} item_fail_t;

static rp_txn_end_t item_fail_body(rp_reward_txn_t *tx, void *arg) {
    item_fail_t *f = arg;
    bool settled; /* false: settled meanwhile by another delivery, which is as good */
    return f->s->ops->tx_settle_item(tx, f->batch_id, f->seq, RP_ITEM_FAILED, f->reason, "", f->now, &settled)
               ? RP_TXN_COMMIT
               : RP_TXN_FAILED;
}

bool rp_grant_item_fail(rp_reward_store_t *s, const char *batch_id, int64_t seq, const char *reason, int64_t now,
                        rp_err_t *err) {
    item_fail_t f = {s, batch_id, reason, seq, now};
    return s->ops->transact(s, "fail batch item", item_fail_body, &f, err);
}

/* ---- decisions ---- */

typedef struct decide_run {
    rp_reward_store_t *s;
    rp_decision_t d;
    const char *id, *processor_id, *text;
    int64_t now;
    bool short_stock; /* in: an earlier approval found a stock short; fail the request instead */
    rp_decide_result_t *res;
    bool found_short; /* out: this approval found a stock short and rolled back */
} decide_run_t;

/* Whether an approval of r must fail instead because its event is canceled, as stored now: a
 * canceled event pays nothing, whoever approves. */
static bool event_canceled(const rp_reward_store_ops_t *ops, rp_reward_txn_t *tx, const rp_request_t *r,
                           bool *canceled) {
    rp_event_state_t state;
    bool found = false;
    *canceled = false;
    if (!ops->tx_event_state(tx, r->event_id, &state, &found)) return false;
    *canceled = found && state.canceled_at != 0;
    return true;
}

/* The request after the decision, from r as found: status, slot, processor, times, text. */
static void decided(const decide_run_t *run, rp_request_t *r, rp_req_status_t to, const char *reason) {
    r->status = to;
    if (!rp_req_holds_slot(to)) r->active_key[0] = '\0';
    r->processed_at = r->updated_at = run->now;
    snprintf(r->processor_id, sizeof r->processor_id, "%s", run->processor_id);
    snprintf(r->failure_reason, sizeof r->failure_reason, "%s", reason ? reason : "");
    if (run->text) rp_request_set_notes(r, run->text);
}

static rp_txn_end_t decide_body(rp_reward_txn_t *tx, void *arg) {
    decide_run_t *run = arg;
    const rp_reward_store_ops_t *ops = run->s->ops;
    rp_decide_result_t *res = run->res;
    rp_request_t *r = &res->request;
    bool found = false, ok = false;
    rp_decide_result_clear(res);
    run->found_short = false;
    if (!ops->tx_request_by_id(tx, run->id, r, &found)) return RP_TXN_FAILED;
    if (!found) {
        res->outcome = RP_DECIDE_NOT_FOUND;
        return RP_TXN_ROLLBACK;
    }
    /* revocation undoes a mistake and is not a decision on one's own claim */
    if (run->d != RP_DECIDE_REVOKE && strcmp(r->user_id, run->processor_id) == 0) {
        res->outcome = RP_DECIDE_SELF;
        return RP_TXN_ROLLBACK;
    }
    rp_req_status_t from = run->d == RP_DECIDE_REVOKE ? RP_REQ_SUCCESS : RP_REQ_AWAITING_REVIEW, to;
    const char *reason = NULL;
    bool canceled = false;
    switch (run->d) {
    case RP_DECIDE_APPROVE:
        if (r->status == from && !run->short_stock && !event_canceled(ops, tx, r, &canceled)) return RP_TXN_FAILED;
        to = run->short_stock || canceled ? RP_REQ_FAILED : RP_REQ_SUCCESS;
        reason = run->short_stock ? "OUT_OF_STOCK" : canceled ? "EVENT_CANCELED" : NULL;
        break;
    case RP_DECIDE_REJECT:
        to = RP_REQ_FAILED;
        reason = "REJECTED";
        break;
    default:
        to = RP_REQ_REVOKED;
        reason = "REVOKED";
        break;
    }
    if (r->status != from || !rp_req_can_transition(from, to)) {
        res->outcome = RP_DECIDE_WRONG_STATE;
        return RP_TXN_ROLLBACK;
    }
    rp_stock_line_t lines[RP_MAX_EVENT_REWARDS];
    size_t n = stock_lines(r, lines);
    if (to == RP_REQ_SUCCESS) {
        if (!ops->tx_stock_take(tx, r->event_id, lines, n, &ok)) return RP_TXN_FAILED;
        if (!ok) { /* earlier lines may be taken: roll back, then fail the request on its own */
            run->found_short = true;
            return RP_TXN_ROLLBACK;
        }
    }
    decided(run, r, to, reason);
    if (!ops->tx_update_request(tx, r, from, &ok)) return RP_TXN_FAILED;
    if (!ok) { /* decided by someone else since it was read */
        res->outcome = RP_DECIDE_WRONG_STATE;
        return RP_TXN_ROLLBACK;
    }
    if (to == RP_REQ_SUCCESS && !pay(ops, tx, r, run->now)) return RP_TXN_FAILED;
    if (to == RP_REQ_REVOKED &&
        (!ops->tx_stock_give(tx, r->event_id, lines, n) || !append_ledger(ops, tx, r, RP_LEDGER_REVERSAL, run->now) ||
         !append_message(ops, tx, r, MSG_REVOKED, run->text, run->now)))
        return RP_TXN_FAILED;
    res->outcome = run->short_stock ? RP_DECIDE_OUT_OF_STOCK : canceled ? RP_DECIDE_EVENT_CANCELED : RP_DECIDED;
    return RP_TXN_COMMIT;
}

bool rp_grant_decide(rp_reward_store_t *s, rp_decision_t d, const char *id, const char *processor_id, const char *text,
                     int64_t now, rp_decide_result_t *res, rp_err_t *err) {
    decide_run_t run = {s, d, id, processor_id, text, now, false, res, false};
    memset(res, 0, sizeof *res);
    if (!s->ops->transact(s, "decide", decide_body, &run, err)) return false;
    if (!run.found_short) return true;
    /* the approval rolled back on a short stock: the request fails instead, still only from
     * AWAITING_REVIEW (a decision made meanwhile wins) */
    run.short_stock = true;
    return s->ops->transact(s, "decide", decide_body, &run, err);
}

/* ---- the sweeper's lease ---- */

typedef struct lease_run {
    rp_reward_store_t *s;
    int64_t now, until, max_in_flight;
    int limit;
    rp_item_ref_t *items;
    size_t n;
} lease_run_t;

static rp_txn_end_t lease_body(rp_reward_txn_t *tx, void *arg) {
    lease_run_t *run = arg;
    int64_t in_flight = 0;
    free(run->items);
    run->items = NULL;
    run->n = 0;
    if (!run->s->ops->tx_items_in_flight(tx, run->now, &in_flight)) return RP_TXN_FAILED;
    int64_t room = run->max_in_flight - in_flight;
    if (room > run->limit) room = run->limit;
    if (room <= 0) return RP_TXN_COMMIT; /* back-pressure: enough is out already */
    return run->s->ops->tx_items_lease(tx, run->now, run->until, (int)room, &run->items, &run->n) ? RP_TXN_COMMIT
                                                                                                  : RP_TXN_FAILED;
}

bool rp_grant_lease_items(rp_reward_store_t *s, int64_t now, int64_t redeliver_ms, int limit, int64_t max_in_flight,
                          rp_item_ref_t **items, size_t *n, rp_err_t *err) {
    lease_run_t run = {s, now, now + redeliver_ms, max_in_flight, limit, NULL, 0};
    bool any = false;
    *items = NULL;
    *n = 0;
    /* the common case, nothing due, without a unit of work (which takes SQLite's write lock) */
    if (!s->ops->batch_any_due(s, now, &any, err)) return false;
    if (!any) return true;
    if (!s->ops->transact(s, "lease batch items", lease_body, &run, err)) {
        free(run.items);
        return false;
    }
    *items = run.items;
    *n = run.n;
    return true;
}

/* ---- batch creation ---- */

bool rp_grant_batch_create(rp_reward_store_t *s, const rp_batch_t *b, const char *const *user_ids, size_t n,
                           rp_batch_created_t *outcome, char existing_id[RP_OID_LEN], rp_err_t *err) {
    *outcome = RP_BATCH_CREATED;
    snprintf(existing_id, RP_OID_LEN, "%s", b->id);
    for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
        if (b->idem_key[0]) {
            rp_batch_t first;
            bool found = false, ok;
            memset(&first, 0, sizeof first);
            if (!s->ops->batch_by_key(s, b->created_by, b->idem_key, &first, &found, err)) return false;
            if (found) {
                snprintf(existing_id, RP_OID_LEN, "%s", first.id);
                ok = true;
                if (strcmp(first.request_hash, b->request_hash) != 0) {
                    *outcome = RP_BATCH_KEY_REUSED;
                } else {
                    *outcome = RP_BATCH_EXISTED;
                    /* the same body, its creation cut short by a crash: finish it */
                    if (!first.open) ok = s->ops->batch_store(s, &first, user_ids, n, true, &found, err);
                }
                rp_batch_clear(&first);
                return ok;
            }
        }
        bool taken = false;
        if (!s->ops->batch_store(s, b, user_ids, n, false, &taken, err)) return false;
        if (!taken) return true;
        /* a concurrent post with the same key stored first: answer with its batch */
    }
    rp_err_set(err, RP_ERR_STORE, "STORE_ERROR",
               "create batch: the Idempotency-Key is held by a batch that cannot be read");
    return false;
}
