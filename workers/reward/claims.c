/* claims.c - claims, decisions and batch items at the service edge (see claims.h). Checks made
 * here before a unit of work only produce better answers; exactly-once comes from grant_txn.c
 * and the store's unique active key. */
#include "claims.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_cache.h"
#include "failpoint.h"
#include "ids.h"
#include "json_util.h"
#include "log.h"
#include "mem.h"
#include "rules/event_rules.h"
#include "service.h"
#include "timeutil.h"

#define KEPT_EVENTS 1024   /* slots of the event cache; an event is a few KiB */
#define CLAIM_JUDGEMENTS 3 /* a claim judged again this often on events that keep changing gives up */

struct rp_claims {
    rp_reward_store_t *store;
    rp_event_repo_t *events;
    rp_event_cache_t *kept; /* events claims were judged on lately (event_cache.h) */
};

rp_claims_t *rp_claims_new(rp_reward_store_t *store, rp_event_repo_t *events, int events_cache_ms) {
    rp_claims_t *c = rp_calloc(1, sizeof *c);
    c->store = store;
    c->events = events;
    c->kept = rp_event_cache_new(events_cache_ms, KEPT_EVENTS);
    return c;
}

void rp_claims_free(rp_claims_t *c) {
    if (!c) return;
    rp_event_cache_free(c->kept);
    free(c);
}

/* A new request of user_id for the event of v at now: its period and active key, and a snapshot
 * of every reward. The caller sets status, processor and source. */
static void new_request(const rp_event_view_t *v, const char *user_id, int64_t now, rp_request_t *r) {
    rp_request_init(r);
    rp_oid_new(r->id);
    snprintf(r->user_id, sizeof r->user_id, "%s", user_id);
    snprintf(r->event_id, sizeof r->event_id, "%s", v->id);
    rp_period_key(v->period, now, v->day_offset_minutes, r->period_key);
    rp_active_key(r->user_id, r->event_id, r->period_key, r->active_key, sizeof r->active_key);
    for (size_t i = 0; i < v->nrewards; i++) {
        const rp_event_reward_t *e = &v->rewards[i];
        rp_claimed_reward_t *line = &r->rewards[r->nrewards++];
        line->reward_index = e->index;
        snprintf(line->definition_id, sizeof line->definition_id, "%s", e->definition_id);
        snprintf(line->name, sizeof line->name, "%s", e->name ? e->name : "");
        snprintf(line->type, sizeof line->type, "%s", e->type ? e->type : "");
        line->value = e->value ? json_deep_copy(e->value) : json_null();
        line->quantity = e->quantity;
    }
    r->requested_at = r->created_at = r->updated_at = now;
}

/* A judged refusal: FAILED with its reason (and details), holding no slot. */
static void refuse(rp_request_t *r, const char *reason, json_t *details) {
    r->status = RP_REQ_FAILED;
    r->active_key[0] = '\0';
    snprintf(r->failure_reason, sizeof r->failure_reason, "%s", reason);
    rp_request_set_details(r, details);
    r->processed_at = r->requested_at;
}

/* error body + the request under "request", as DESIGN.md section 4 describes refusals */
static json_t *refusal(const char *code, const char *message, json_t *details, const rp_request_t *r) {
    json_t *body = rp_error_body(code, message, details);
    json_object_set_new(body, "request", rp_request_to_json(r));
    return body;
}

/* The answer of a claim (rp_grant_answer_fn): also what is stored with its Idempotency-Key. */
static json_t *claim_answer(void *ctx, const rp_grant_result_t *res, int *status) {
    const rp_request_t *r = &res->request;
    (void)ctx;
    *status = 422;
    switch (res->outcome) {
    case RP_GRANT_OK: *status = 201; return rp_request_to_json(r);
    case RP_GRANT_ALREADY_CLAIMED:
        *status = 409;
        return refusal("ALREADY_CLAIMED", "this reward was already claimed for this period", NULL, &res->holder);
    case RP_GRANT_OUT_OF_STOCK: return refusal("OUT_OF_STOCK", "the reward is out of stock", NULL, r);
    case RP_GRANT_MAX_CLAIMS_REACHED:
        return refusal("MAX_CLAIMS_REACHED", "the claim limit of this event is reached", NULL, r);
    case RP_GRANT_REFUSED:
        if (strcmp(r->failure_reason, "CONDITION_NOT_MET") == 0)
            return refusal("CONDITION_NOT_MET", "the event's conditions are not met",
                           r->failure_details ? json_deep_copy(r->failure_details) : NULL, r);
        return refusal("EVENT_NOT_ACTIVE", "the event is not active", NULL, r);
    case RP_GRANT_REPLAYED:
    case RP_GRANT_ITEM_SETTLED:
    case RP_GRANT_EVENT_CHANGED: break;
    }
    *status = 500;
    return rp_error_body("INTERNAL", "no answer for this outcome", NULL);
}

/* The refusal code of a grant outcome; NULL for OK. */
static const char *outcome_code(rp_grant_outcome_t o) {
    switch (o) {
    case RP_GRANT_ALREADY_CLAIMED: return "ALREADY_CLAIMED";
    case RP_GRANT_OUT_OF_STOCK: return "OUT_OF_STOCK";
    case RP_GRANT_MAX_CLAIMS_REACHED: return "MAX_CLAIMS_REACHED";
    default: return NULL;
    }
}

static void reply_idem(rp_reply_t *rep, const rp_idem_t *v, const char *hash) {
    if (strcmp(v->request_hash, hash) != 0)
        rp_reply_error(rep, 422, "IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used for a different request",
                       NULL);
    else
        rp_reply_set(rep, v->status, json_incref(v->response));
}

/* Judges user_id's claim against the event: a refusal (not active, conditions) comes back as a
 * FAILED request. With check_slot, a request already holding the slot of an active event is
 * found first (a cheap answer for the common repeat; the transaction decides anyway): then
 * holder (initialised by the caller) holds it and r is not judged further. False with a reply
 * already set when it cannot be judged. */
static bool judge(rp_claims_t *c, const char *user_id, const rp_event_view_t *v, int64_t now, rp_request_t *holder,
                  rp_request_t *r, rp_reply_t *rep) {
    rp_err_t err;
    new_request(v, user_id, now, r);
    if (rp_event_view_status(v, now) != RP_EVENT_ACTIVE) {
        refuse(r, "EVENT_NOT_ACTIVE", NULL);
        return true;
    }
    if (holder) {
        bool found = false;
        if (!c->store->ops->find_active(c->store, r, holder, &found, &err)) {
            rp_reply_from_err(rep, &err);
            return false;
        }
        if (found) return true;
    }
    if (v->nconditions > 0) { /* no conditions are always met: then nothing to read */
        rp_progress_t progress;
        json_t *unmet = NULL;
        int64_t first = (v->start_ms - RP_DAY_MS) / RP_DAY_MS, last = (v->end_ms + RP_DAY_MS) / RP_DAY_MS;
        if (!c->events->ops->progress_load(c->events, user_id, first, last, &progress, &err)) {
            rp_reply_from_err(rep, &err);
            return false;
        }
        bool met = rp_conditions_evaluate(v->conditions, v->nconditions, v->logic, &progress, v->start_ms, v->end_ms,
                                          v->day_offset_minutes, &unmet);
        rp_progress_release(&progress);
        if (!met) {
            refuse(r, "CONDITION_NOT_MET", unmet);
            return true;
        }
    }
    r->status = v->requires_approval ? RP_REQ_AWAITING_REVIEW : RP_REQ_SUCCESS;
    if (!v->requires_approval) r->processed_at = now;
    return true;
}

/* The event a claim is judged on and its view: a kept copy when `may_keep` and one is kept, else
 * read from the store and kept (when it has a version: a claim on a kept copy must name one).
 * *kept says which. False with the reply set (404, a store failure, a malformed event). */
static bool claim_event(rp_claims_t *c, const char *event_id, bool may_keep, json_t **event, rp_event_view_t *view,
                        bool *kept, rp_reply_t *rep) {
    rp_err_t err;
    int64_t now = rp_now_ms();
    *event = may_keep ? rp_event_cache_get(c->kept, event_id, now) : NULL;
    *kept = *event != NULL;
    if (!*kept) {
        bool read = c->events->ops->event_get(c->events, event_id, event, &err);
        if (!rp_service_found(rep, read, *event != NULL, &err, "EVENT_NOT_FOUND", "no such event")) return false;
    }
    if (!rp_event_view(*event, view)) {
        rp_reply_error(rep, 500, "INTERNAL", "the stored event is malformed", NULL);
        return false;
    }
    if (!*kept && view->updated_at > 0) rp_event_cache_put(c->kept, event_id, *event, now);
    return true;
}

void rp_claims_claim(rp_claims_t *c, const rp_envelope_t *env, const char *event_id, rp_reply_t *rep) {
    rp_err_t err;
    rp_request_t req, holder;
    rp_grant_result_t res;
    rp_idem_t stored;
    rp_event_view_t view;
    json_t *event = NULL;
    const char *key = env->idempotency_key[0] ? env->idempotency_key : NULL;
    char hash[65] = "", *text = NULL;
    size_t text_len = 0;
    bool found = false, kept = false;
    rp_request_init(&req);
    rp_request_init(&holder);
    memset(&res, 0, sizeof res);
    memset(&stored, 0, sizeof stored);
    if (env->body && json_object_size(env->body) > 0) {
        rp_service_reject_field(rep, "a claim takes no body", "", "must be empty or {}");
        return;
    }
    if (key) {
        rp_json_request_hash(event_id, env->body, hash);
        if (!c->store->ops->idem_get(c->store, env->caller.id, key, &stored, &found, &err)) {
            rp_reply_from_err(rep, &err);
            return;
        }
        if (found) {
            reply_idem(rep, &stored, hash);
            goto done;
        }
    }
    /* Judged on a kept copy of the event, a grant pays only if the event is still that version
     * (rp_grant_claim checks it in its unit of work), and a refusal is judged again on a fresh
     * read; either way the claim ends as if judged on the event as stored. */
    for (int judgements = 0;; judgements++) {
        if (judgements == CLAIM_JUDGEMENTS) {
            rp_reply_error(rep, 503, "STORE_BUSY", "the event kept changing while the claim was judged", NULL);
            goto done;
        }
        rp_request_clear(&req);
        rp_request_clear(&holder);
        rp_grant_result_clear(&res);
        json_decref(event);
        if (!claim_event(c, event_id, judgements == 0, &event, &view, &kept, rep)) goto done;
        /* A repeat is answered before the conditions are judged (a held slot is refused first). With
         * a key the answer must be stored, and where there are no conditions nothing comes between:
         * then the grant's unit of work finds the holder, and a first claim reads its slot once, not
         * once before the unit and again in it (that read was a fifteenth of an embedded claim's
         * CPU: every group commit drops the readers' page caches). */
        bool holder_first = !key && view.nconditions > 0;
        if (!judge(c, env->caller.id, &view, rp_now_ms(), holder_first ? &holder : NULL, &req, rep)) goto done;
        if (holder.id[0]) {
            rp_reply_set(rep, 409,
                         refusal("ALREADY_CLAIMED", "this reward was already claimed for this period", NULL, &holder));
            goto done;
        }
        if (kept && req.status == RP_REQ_FAILED) continue; /* refused on a kept copy: judge it on the store's */
        rp_failpoint_hold("claim.judged");                 /* a test edits the event here, between judging and paying */
        rp_claim_t claim = {&req, view.max_claims, key, hash, claim_answer, NULL, view.updated_at};
        if (!rp_grant_claim(c->store, &claim, &res, &err)) {
            rp_reply_from_err(rep, &err);
            goto done;
        }
        if (res.outcome != RP_GRANT_EVENT_CHANGED) break;
        rp_event_cache_forget(c->kept, event_id);
    }
    if (res.outcome == RP_GRANT_OK) rp_failpoint("claim.after_commit"); /* a crash before the answer leaves */
    if (res.outcome == RP_GRANT_REPLAYED) {
        reply_idem(rep, &res.replay, hash);
    } else if (res.outcome == RP_GRANT_OK && (text = rp_request_print(&res.request, &text_len))) {
        rp_reply_set_raw(rep, 201, text, text_len); /* claim_answer's, printed without its object */
    } else {
        int status;
        json_t *body = claim_answer(NULL, &res, &status);
        rp_reply_set(rep, status, body);
    }
done:
    rp_grant_result_clear(&res);
    rp_request_clear(&req);
    rp_request_clear(&holder);
    rp_idem_clear(&stored);
    json_decref(event);
}

void rp_claims_decide(rp_claims_t *c, const rp_envelope_t *env, const char *id, rp_decision_t d, const char *text,
                      rp_reply_t *rep) {
    rp_err_t err;
    rp_decide_result_t res;
    if (!rp_grant_decide(c->store, d, id, env->caller.id, text, rp_now_ms(), &res, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    switch (res.outcome) {
    case RP_DECIDE_NOT_FOUND: rp_reply_error(rep, 404, "REQUEST_NOT_FOUND", "no such reward request", NULL); break;
    case RP_DECIDE_WRONG_STATE:
        rp_reply_set(rep, 409,
                     d == RP_DECIDE_REVOKE
                         ? refusal("NOT_REVOCABLE", "only a SUCCESS request can be revoked", NULL, &res.request)
                         : refusal("ALREADY_DECIDED", "the request is not awaiting review", NULL, &res.request));
        break;
    case RP_DECIDE_OUT_OF_STOCK:
        rp_reply_set(rep, 422,
                     refusal("OUT_OF_STOCK", "the reward ran out of stock before approval; the request failed", NULL,
                             &res.request));
        break;
    case RP_DECIDE_SELF:
        rp_reply_error(rep, 403, "SELF_DECISION", "nobody approves or rejects a request of their own", NULL);
        break;
    case RP_DECIDE_EVENT_CANCELED:
        rp_reply_set(rep, 422,
                     refusal("EVENT_CANCELED", "the event is canceled; the request failed and nothing was paid", NULL,
                             &res.request));
        break;
    case RP_DECIDED:
        rp_log(RP_LOG_INFO, "grant", "request %s: %s by %s", id, rp_req_status_name(res.request.status),
               env->caller.id);
        rp_reply_set(rep, 200, rp_request_to_json(&res.request));
        break;
    }
    rp_decide_result_clear(&res);
}

/* The request a batch item of user_id grants: the operator decided, so no conditions and no
 * review; the period, stock and claim limits hold. */
static void batch_request(const rp_event_view_t *v, const rp_batch_t *batch, const char *user_id, int64_t now,
                          rp_request_t *r) {
    new_request(v, user_id, now, r);
    r->status = RP_REQ_SUCCESS;
    r->source = RP_SOURCE_BATCH;
    r->processed_at = now;
    snprintf(r->processor_id, sizeof r->processor_id, "%s", batch->created_by);
    snprintf(r->batch_id, sizeof r->batch_id, "%s", batch->id);
    rp_request_set_notes(r, batch->reason);
}

/* Why a player's item fails before any grant: no account, or a disabled one; NULL otherwise. */
static const char *account_refusal(rp_account_state_t state) {
    return state == RP_ACCOUNT_UNKNOWN ? "UNKNOWN_PLAYER" : state == RP_ACCOUNT_DISABLED ? "ACCOUNT_DISABLED" : NULL;
}

bool rp_claims_batch_chunk(rp_claims_t *c, const json_t *event, const rp_batch_t *batch, const int64_t *seqs,
                           const char *const *user_ids, const rp_account_state_t *states, size_t n, rp_err_t *err) {
    int64_t now = rp_now_ms();
    rp_event_view_t view;
    const char *refusal = NULL; /* the whole chunk's, when its event cannot be granted */
    if (!event) {
        refusal = "EVENT_NOT_FOUND";
    } else if (!rp_event_view(event, &view)) {
        rp_err_set(err, RP_ERR_INTERNAL, "INTERNAL", "the stored event %s is malformed", batch->event_id);
        return false;
    } else if (rp_event_view_status(&view, now) == RP_EVENT_CANCELED) {
        refusal = "EVENT_CANCELED";
    }
    rp_grant_chunk_item_t *items = rp_calloc(n ? n : 1, sizeof *items);
    rp_request_t *reqs = rp_calloc(n ? n : 1, sizeof *reqs);
    for (size_t i = 0; i < n; i++) {
        items[i].seq = seqs[i];
        items[i].reason = refusal ? refusal : account_refusal(states[i]);
        if (items[i].reason) continue;
        batch_request(&view, batch, user_ids[i], now, &reqs[i]);
        items[i].request = &reqs[i];
    }
    bool ok = rp_grant_batch_chunk(c->store, batch->id, items, n, refusal ? 0 : view.max_claims, now, err);
    for (size_t i = 0; i < n; i++)
        if (items[i].request) rp_request_clear(&reqs[i]);
    free(reqs);
    free(items);
    return ok;
}

bool rp_claims_batch_dry_run(rp_claims_t *c, const json_t *event, const rp_batch_t *batch, const char *const *user_ids,
                             const rp_account_state_t *states, size_t n, rp_batch_expect_t *out, rp_err_t *err) {
    int64_t now = rp_now_ms();
    rp_event_view_t view;
    memset(out, 0, sizeof *out);
    out->items = (int64_t)n;
    if (!rp_event_view(event, &view)) {
        rp_err_set(err, RP_ERR_INTERNAL, "INTERNAL", "the stored event %s is malformed", batch->event_id);
        return false;
    }
    /* the players an item would be granted to, in the batch's order; the others fail before */
    const char **granted = rp_calloc(n ? n : 1, sizeof *granted);
    rp_grant_outcome_t *outcomes = rp_calloc(n ? n : 1, sizeof *outcomes);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (states[i] == RP_ACCOUNT_UNKNOWN)
            out->unknown_player++;
        else if (states[i] == RP_ACCOUNT_DISABLED)
            out->account_disabled++;
        else
            granted[m++] = user_ids[i];
    }
    rp_request_t tmpl;
    batch_request(&view, batch, granted[0] ? granted[0] : "", now, &tmpl);
    bool ok = m == 0 || rp_grant_batch_dry_run(c->store, &tmpl, granted, m, view.max_claims, outcomes, err);
    for (size_t i = 0; ok && i < m; i++) {
        switch (outcomes[i]) {
        case RP_GRANT_OK: out->success++; break;
        case RP_GRANT_ALREADY_CLAIMED: out->already_claimed++; break;
        case RP_GRANT_OUT_OF_STOCK: out->out_of_stock++; break;
        case RP_GRANT_MAX_CLAIMS_REACHED: out->max_claims_reached++; break;
        default: break;
        }
    }
    rp_request_clear(&tmpl);
    free(granted);
    free(outcomes);
    return ok;
}

/* The eligibility answer (DESIGN.md section 4). */
static json_t *eligibility_json(const char *event_id, const char *user_id, const char *reason, const json_t *unmet,
                                const char *period_key, const char *existing, const rp_event_state_t *state) {
    int64_t least = -1; /* the smallest limited stock left */
    for (size_t i = 0; i < state->nrewards; i++)
        if (state->stock_left[i] >= 0 && (least < 0 || state->stock_left[i] < least)) least = state->stock_left[i];
    return json_pack("{s:s, s:s, s:b, s:o, s:o, s:s, s:o, s:o}", "eventId", event_id, "userId", user_id, "eligible",
                     reason == NULL, "reason", reason ? json_string(reason) : json_null(), "unmet",
                     json_is_array(unmet) ? json_deep_copy(unmet) : json_array(), "periodKey", period_key,
                     "existingRequestId", rp_json_str_or_null(existing), "stockLeft",
                     least >= 0 ? json_integer(least) : json_null());
}

void rp_claims_eligibility(rp_claims_t *c, const char *event_id, const char *user_id, rp_account_state_t state,
                           rp_reply_t *rep) {
    rp_err_t err;
    rp_request_t req, holder;
    rp_grant_result_t res;
    rp_event_state_t es;
    rp_event_view_t view;
    json_t *event = NULL;
    const char *reason = NULL;
    rp_request_init(&req);
    rp_request_init(&holder);
    memset(&res, 0, sizeof res);
    bool read = c->events->ops->event_get(c->events, event_id, &event, &err);
    if (!rp_service_found(rep, read, event != NULL, &err, "EVENT_NOT_FOUND", "no such event")) goto done;
    if (!rp_event_view(event, &view)) {
        rp_reply_error(rep, 500, "INTERNAL", "the stored event is malformed", NULL);
        goto done;
    }
    /* the claim's own judgement and grant body, rehearsed: nothing is written */
    if (!judge(c, user_id, &view, rp_now_ms(), &holder, &req, rep)) goto done;
    if (holder.id[0]) req.status = RP_REQ_FAILED; /* answered already: the unit of work only reads the stock */
    rp_claim_t claim = {.request = &req, .max_claims = view.max_claims};
    if (!rp_grant_claim_check(c->store, &claim, &res, &es, &err)) {
        rp_reply_from_err(rep, &err);
        goto done;
    }
    const rp_request_t *holding = holder.id[0] ? &holder : res.holder.id[0] ? &res.holder : NULL;
    if (holding)
        reason = "ALREADY_CLAIMED";
    else if (res.outcome == RP_GRANT_REFUSED)
        reason = req.failure_reason;
    else
        reason = outcome_code(res.outcome);
    if (state == RP_ACCOUNT_DISABLED) reason = "ACCOUNT_DISABLED"; /* its claims are refused before any of these */
    rp_reply_set(rep, 200,
                 eligibility_json(event_id, user_id, reason, req.failure_details, req.period_key,
                                  holding ? holding->id : NULL, &es));
done:
    rp_grant_result_clear(&res);
    rp_request_clear(&req);
    rp_request_clear(&holder);
    json_decref(event);
}
