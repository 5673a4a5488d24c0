/* grant.c - claims and decisions (see grant.h). The rules live here; the exactly-once guarantee
 * comes from the store: the partial unique active key and the guarded stock update inside one
 * transaction. Checks made here before the transaction only produce better answers. */
#include "grant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event.h"
#include "ids.h"
#include "json_util.h"
#include "log.h"
#include "mem.h"
#include "rules/period.h"
#include "rules/request_state.h"
#include "timeutil.h"

struct rp_grant_engine {
    rp_reward_store_t *store;
    rp_event_repo_t *events;
};

rp_grant_engine_t *rp_grant_engine_new(rp_reward_store_t *store, rp_event_repo_t *events) {
    rp_grant_engine_t *g = rp_calloc(1, sizeof *g);
    g->store = store;
    g->events = events;
    return g;
}

void rp_grant_engine_free(rp_grant_engine_t *g) {
    free(g);
}

/* error + the recorded request, as DESIGN.md section 4 describes refusals */
static void refuse(rp_reply_t *rep, int status, const char *code, const char *message, json_t *details,
                   json_t *request) {
    rp_reply_error(rep, status, code, message, details);
    if (request) json_object_set(rep->body, "request", request);
}

static json_t *snapshot(const json_t *event) {
    json_t *out = json_array(), *rw;
    size_t i;
    json_array_foreach(json_object_get(event, "rewards"), i, rw) {
        json_array_append_new(
            out, json_pack("{s:O, s:O, s:O, s:O, s:O, s:O}", "rewardIndex", json_object_get(rw, "rewardIndex"),
                           "rewardDefinitionId", json_object_get(rw, "rewardDefinitionId"), "name",
                           json_object_get(rw, "name"), "type", json_object_get(rw, "type"), "value",
                           json_object_get(rw, "value"), "quantity", json_object_get(rw, "quantity")));
    }
    return out;
}

static size_t lines_of(const json_t *claimed, rp_grant_line_t *lines, size_t cap) {
    size_t i, n = 0;
    json_t *c;
    json_array_foreach(claimed, i, c) {
        if (n == cap) break;
        lines[n].reward_index = (int)json_integer_value(json_object_get(c, "rewardIndex"));
        lines[n].quantity = json_integer_value(json_object_get(c, "quantity"));
        n++;
    }
    return n;
}

static json_t *outbox_payload(const char *type, const json_t *req, const char *at) {
    return json_pack("{s:s, s:O, s:O, s:O, s:O, s:O, s:s, s:O}", "type", type, "messageId", json_object_get(req, "id"),
                     "requestId", json_object_get(req, "id"), "userId", json_object_get(req, "userId"), "eventId",
                     json_object_get(req, "eventId"), "rewards", json_object_get(req, "claimedRewards"), "at", at,
                     "processorId", json_object_get(req, "processorId"));
}

static void record_failure(rp_grant_engine_t *g, json_t *req, const char *reason, json_t *details, rp_reply_t *rep,
                           int status, const char *message) {
    rp_err_t err;
    json_object_set_new(req, "status", json_string("FAILED"));
    json_object_set_new(req, "failureReason", json_string(reason));
    json_object_set(req, "failureDetails", details ? details : json_null());
    json_object_set(req, "processedAt", json_object_get(req, "requestedAt"));
    if (!g->store->ops->record_failed(g->store, req, &err)) {
        json_decref(details);
        rp_reply_from_err(rep, &err);
        return;
    }
    refuse(rep, status, reason, message, details, req);
}

static void judge(rp_grant_engine_t *g, const rp_envelope_t *env, const char *event_id, rp_reply_t *rep) {
    rp_err_t err;
    json_t *event = NULL, *req = NULL, *existing = NULL, *unmet = NULL, *payload = NULL;
    rp_progress_t progress;
    rp_event_view_t rules;
    memset(&progress, 0, sizeof progress);
    if (env->body && json_object_size(env->body) > 0) {
        rp_reply_error(rep, 400, "VALIDATION_FAILED", "a claim takes no body",
                       json_pack("[{s:s, s:s}]", "field", "", "reason", "must be empty or {}"));
        return;
    }
    if (!g->events->ops->event_get(g->events, event_id, &event, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    if (!event) {
        rp_reply_error(rep, 404, "EVENT_NOT_FOUND", "no such event", NULL);
        return;
    }
    int64_t now = rp_now_ms();
    char id[RP_OID_LEN], now_s[RP_ISO_LEN], period[RP_PERIOD_KEY_LEN], active[128];
    rp_oid_new(id);
    rp_time_iso(now, now_s);
    if (!rp_event_view(event, &rules)) {
        rp_reply_error(rep, 500, "INTERNAL", "the stored event is malformed", NULL);
        goto done;
    }
    rp_period_key(rules.period, now, rules.day_offset_minutes, period);
    rp_active_key(env->caller.id, event_id, period, active, sizeof active);
    req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:n, s:n, s:n, s:n, s:n, s:s, s:n, s:s, s:s}", "id", id,
                    "userId", env->caller.id, "eventId", event_id, "periodKey", period, "status", "PENDING",
                    "claimedRewards", snapshot(event), "requestedAt", now_s, "processedAt", "processorId",
                    "failureReason", "failureDetails", "notes", "source", "CLAIM", "batchId", "createdAt", now_s,
                    "updatedAt", now_s);
    if (rp_event_doc_status(event, now) != RP_EVENT_ACTIVE) {
        record_failure(g, req, "EVENT_NOT_ACTIVE", NULL, rep, 422, "the event is not active");
        goto done;
    }
    if (!g->store->ops->find_active(g->store, active, &existing, &err)) {
        rp_reply_from_err(rep, &err);
        goto done;
    }
    if (existing) {
        refuse(rep, 409, "ALREADY_CLAIMED", "this reward was already claimed for this period", NULL, existing);
        goto done;
    }
    int64_t first = (rules.start_ms - 86400000) / 86400000, last = (rules.end_ms + 86400000) / 86400000;
    if (!g->events->ops->progress_load(g->events, env->caller.id, first, last, &progress, &err)) {
        rp_reply_from_err(rep, &err);
        goto done;
    }
    if (!rp_conditions_evaluate(rules.conditions, rules.nconditions, rules.logic, &progress, rules.start_ms,
                                rules.end_ms, rules.day_offset_minutes, &unmet)) {
        record_failure(g, req, "CONDITION_NOT_MET", unmet, rep, 422, "the event's conditions are not met");
        unmet = NULL;
        goto done;
    }
    json_object_set_new(req, "status", json_string(rules.requires_approval ? "AWAITING_REVIEW" : "SUCCESS"));
    if (!rules.requires_approval) json_object_set_new(req, "processedAt", json_string(now_s));
    rp_grant_line_t lines[RP_MAX_EVENT_REWARDS];
    size_t n = lines_of(json_object_get(req, "claimedRewards"), lines, RP_MAX_EVENT_REWARDS);
    payload = outbox_payload("reward.granted", req, now_s);
    rp_grant_input_t in = {req, active, lines, n, rules.max_claims, payload, NULL, 0};
    rp_grant_outcome_t outcome;
    if (!g->store->ops->grant(g->store, &in, &outcome, &existing, &err)) {
        rp_reply_from_err(rep, &err);
        goto done;
    }
    switch (outcome) {
    case RP_GRANT_OK: rp_reply_set(rep, 201, json_incref(req)); break;
    case RP_GRANT_DUPLICATE:
        refuse(rep, 409, "ALREADY_CLAIMED", "this reward was already claimed for this period", NULL, existing);
        break;
    case RP_GRANT_OUT_OF_STOCK:
        json_object_set_new(req, "processedAt", json_null());
        record_failure(g, req, "OUT_OF_STOCK", NULL, rep, 422, "the reward is out of stock");
        break;
    case RP_GRANT_LIMIT_REACHED:
        json_object_set_new(req, "processedAt", json_null());
        record_failure(g, req, "MAX_CLAIMS_REACHED", NULL, rep, 422, "the claim limit of this event is reached");
        break;
    case RP_GRANT_ITEM_SETTLED: rp_reply_error(rep, 500, "INTERNAL", "a claim is not a batch item", NULL); break;
    }
done:
    rp_progress_release(&progress);
    json_decref(event);
    json_decref(req);
    json_decref(existing);
    json_decref(unmet);
    json_decref(payload);
}

bool rp_grant_batch_item(rp_grant_engine_t *g, const json_t *event, const json_t *batch, int64_t seq,
                         const char *user_id, rp_err_t *err) {
    const char *batch_id = json_string_value(json_object_get(batch, "id"));
    const char *operator_id = json_string_value(json_object_get(batch, "createdBy"));
    int64_t now = rp_now_ms();
    rp_event_view_t rules;
    if (!event) return g->store->ops->batch_item_fail(g->store, batch_id, seq, "EVENT_NOT_FOUND", NULL, now, err);
    if (rp_event_doc_status(event, now) == RP_EVENT_CANCELED)
        return g->store->ops->batch_item_fail(g->store, batch_id, seq, "EVENT_CANCELED", NULL, now, err);
    if (!rp_event_view(event, &rules)) {
        rp_err_set(err, RP_ERR_INTERNAL, "INTERNAL", "the stored event is malformed");
        return false;
    }
    const char *event_id = json_string_value(json_object_get(event, "id"));
    char id[RP_OID_LEN], now_s[RP_ISO_LEN], period[RP_PERIOD_KEY_LEN], active[128];
    rp_oid_new(id);
    rp_time_iso(now, now_s);
    rp_period_key(rules.period, now, rules.day_offset_minutes, period);
    rp_active_key(user_id, event_id, period, active, sizeof active);
    /* the operator decided: no conditions, no review; the period, stock and claim limits hold */
    json_t *req =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:n, s:n, s:O, s:s, s:s, s:s, s:s}", "id", id,
                  "userId", user_id, "eventId", event_id, "periodKey", period, "status", "SUCCESS", "claimedRewards",
                  snapshot(event), "requestedAt", now_s, "processedAt", now_s, "processorId", operator_id,
                  "failureReason", "failureDetails", "notes", json_object_get(batch, "reason"), "source", "BATCH",
                  "batchId", batch_id, "createdAt", now_s, "updatedAt", now_s);
    rp_grant_line_t lines[RP_MAX_EVENT_REWARDS];
    size_t n = lines_of(json_object_get(req, "claimedRewards"), lines, RP_MAX_EVENT_REWARDS);
    json_t *payload = outbox_payload("reward.granted", req, now_s), *existing = NULL;
    rp_grant_input_t in = {req, active, lines, n, rules.max_claims, payload, batch_id, seq};
    rp_grant_outcome_t outcome;
    bool ok = g->store->ops->grant(g->store, &in, &outcome, &existing, err);
    if (ok) {
        const char *reason = NULL, *other = NULL;
        switch (outcome) {
        case RP_GRANT_OK:
        case RP_GRANT_ITEM_SETTLED: break;
        case RP_GRANT_DUPLICATE:
            reason = "ALREADY_CLAIMED";
            other = json_string_value(json_object_get(existing, "id"));
            break;
        case RP_GRANT_OUT_OF_STOCK: reason = "OUT_OF_STOCK"; break;
        case RP_GRANT_LIMIT_REACHED: reason = "MAX_CLAIMS_REACHED"; break;
        }
        if (reason) ok = g->store->ops->batch_item_fail(g->store, batch_id, seq, reason, other, now, err);
    }
    json_decref(existing);
    json_decref(payload);
    json_decref(req);
    return ok;
}

void rp_grant_claim(rp_grant_engine_t *g, const rp_envelope_t *env, const char *event_id, rp_reply_t *rep) {
    rp_err_t err;
    const char *key = env->idempotency_key;
    char hash[65], stored_hash[65];
    if (!key[0]) {
        judge(g, env, event_id, rep);
        return;
    }
    rp_json_request_hash(event_id, env->body, hash);
    bool found = false;
    int status = 0;
    json_t *response = NULL;
    if (!g->store->ops->idem_get(g->store, env->caller.id, key, &found, stored_hash, &status, &response, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    if (!found) {
        judge(g, env, event_id, rep);
        /* first writer wins: a concurrent retry with the same key may have stored first */
        if (rep->status < 500 &&
            g->store->ops->idem_put(g->store, env->caller.id, key, hash, rep->status, rep->body, rp_now_ms(), &err) &&
            g->store->ops->idem_get(g->store, env->caller.id, key, &found, stored_hash, &status, &response, &err) &&
            found && strcmp(stored_hash, hash) == 0 && status != rep->status)
            rp_reply_set(rep, status, json_incref(response));
        json_decref(response);
        return;
    }
    if (strcmp(stored_hash, hash) != 0) {
        json_decref(response);
        {
            rp_reply_error(rep, 422, "IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used for a different request",
                           NULL);
            return;
        }
    }
    rp_reply_set(rep, status, response);
}

void rp_grant_decide(rp_grant_engine_t *g, const rp_envelope_t *env, const char *id, const char *from, const char *to,
                     const char *text, const char *reason_code, rp_reply_t *rep) {
    rp_err_t err;
    json_t *req = NULL, *after = NULL, *payload = NULL;
    char now_s[RP_ISO_LEN];
    int64_t now = rp_now_ms();
    rp_time_iso(now, now_s);
    bool revoke = strcmp(to, "REVOKED") == 0;
    if (!g->store->ops->get_request(g->store, id, &req, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    if (!req) {
        rp_reply_error(rep, 404, "REQUEST_NOT_FOUND", "no such reward request", NULL);
        return;
    }
    const char *status = json_string_value(json_object_get(req, "status"));
    rp_req_status_t f, t;
    if (strcmp(status, from) != 0 || !rp_req_status_parse(from, &f) || !rp_req_status_parse(to, &t) ||
        !rp_req_can_transition(f, t)) {
        refuse(rep, 409, revoke ? "NOT_REVOCABLE" : "ALREADY_DECIDED",
               revoke ? "only a SUCCESS request can be revoked" : "the request is not awaiting review", NULL, req);
        json_decref(req);
        return;
    }
    rp_grant_line_t lines[RP_MAX_EVENT_REWARDS];
    size_t n = lines_of(json_object_get(req, "claimedRewards"), lines, RP_MAX_EVENT_REWARDS);
    json_object_set_new(req, "processorId", json_string(env->caller.id));
    payload = outbox_payload(revoke ? "reward.revoked" : "reward.granted", req, now_s);
    if (revoke && text) json_object_set_new(payload, "reason", json_string(text));
    rp_decide_outcome_t outcome;
    if (!g->store->ops->transition(g->store, id, from, to, env->caller.id, text, reason_code, lines, n, payload, now,
                                   &outcome, &after, &err)) {
        rp_reply_from_err(rep, &err);
    } else if (outcome == RP_DECIDE_NOT_FOUND) {
        rp_reply_error(rep, 404, "REQUEST_NOT_FOUND", "no such reward request", NULL);
    } else if (outcome == RP_DECIDE_WRONG_STATE) {
        refuse(rep, 409, revoke ? "NOT_REVOCABLE" : "ALREADY_DECIDED", "the request was decided meanwhile", NULL,
               after);
    } else if (outcome == RP_DECIDE_OUT_OF_STOCK) {
        refuse(rep, 422, "OUT_OF_STOCK", "the reward ran out of stock before approval; the request failed", NULL,
               after);
    } else {
        rp_log(RP_LOG_INFO, "grant", "request %s: %s -> %s by %s", id, from, to, env->caller.id);
        rp_reply_set(rep, 200, json_incref(after));
    }
    json_decref(req);
    json_decref(after);
    json_decref(payload);
}
