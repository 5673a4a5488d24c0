/* driver_reward.c - the reward store scenarios of the MongoDB wire-contract driver (see
 * mongo_driver.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mongo_driver.h"
#include "reward/reward_store_mongo.h"

static const char *grant_outcome_name(rp_grant_outcome_t o) {
    switch (o) {
    case RP_GRANT_OK: return "OK";
    case RP_GRANT_DUPLICATE: return "DUPLICATE";
    case RP_GRANT_OUT_OF_STOCK: return "OUT_OF_STOCK";
    case RP_GRANT_LIMIT_REACHED: return "LIMIT_REACHED";
    case RP_GRANT_ITEM_SETTLED: return "ITEM_SETTLED";
    }
    return "?";
}

static const char *decide_outcome_name(rp_decide_outcome_t o) {
    switch (o) {
    case RP_DECIDE_OK: return "OK";
    case RP_DECIDE_NOT_FOUND: return "NOT_FOUND";
    case RP_DECIDE_WRONG_STATE: return "WRONG_STATE";
    case RP_DECIDE_OUT_OF_STOCK: return "OUT_OF_STOCK";
    }
    return "?";
}

/* The request grant.c would build: reward 0 (quantity 2, limited in the mock's event) and
 * reward 1 (quantity 1, unlimited) whose value has a key MongoDB cannot store natively. */
static json_t *sample_request(const char *status) {
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[{s:i, s:s, s:s, s:s, s:{s:i}, s:i}, {s:i, s:s, s:s, s:s, s:{s:i}, "
                     "s:i}], s:s, s:s, s:n, s:n, s:n, s:n, s:s, s:n, s:s, s:s}",
                     "id", REQUEST_ID, "userId", USER_ID, "eventId", EVENT_ID, "periodKey", "ONCE", "status", status,
                     "claimedRewards", "rewardIndex", 0, "rewardDefinitionId", DEF0_ID, "name", "Gold", "type",
                     "CURRENCY", "value", "amount", 100, "quantity", 2, "rewardIndex", 1, "rewardDefinitionId", DEF1_ID,
                     "name", "Badge", "type", "ITEM", "value", "$weird", 1, "quantity", 1, "requestedAt", NOW_ISO,
                     "processedAt", NOW_ISO, "processorId", "failureReason", "failureDetails", "notes", "source",
                     "CLAIM", "batchId", "createdAt", NOW_ISO, "updatedAt", NOW_ISO);
}

static const rp_grant_line_t lines[] = {{0, 2}, {1, 1}};

static json_t *run_grant(rp_reward_store_t *s, const char *status, const char *batch_id) {
    rp_err_t err;
    json_t *req = sample_request(status), *existing = NULL;
    if (batch_id) {
        json_object_set_new(req, "source", json_string("BATCH"));
        json_object_set_new(req, "batchId", json_string(batch_id));
        json_object_set_new(req, "processorId", json_string(OPERATOR_ID));
    }
    json_t *payload =
        json_pack("{s:s, s:s, s:s}", "type", "reward.granted", "messageId", REQUEST_ID, "userId", USER_ID);
    rp_grant_input_t in = {req, ACTIVE_KEY, lines, 2, 3, payload, batch_id, 7};
    rp_grant_outcome_t outcome;
    rp_err_clear(&err);
    bool ok = s->ops->grant(s, &in, &outcome, &existing, &err);
    json_t *out = result(ok, &err, NULL);
    if (ok) {
        json_object_set_new(out, "outcome", json_string(grant_outcome_name(outcome)));
        json_object_set_new(out, "existing", existing ? existing : json_null());
    }
    json_decref(req);
    json_decref(payload);
    return out;
}

static json_t *run_transition(rp_reward_store_t *s, const char *from, const char *to) {
    rp_err_t err;
    json_t *after = NULL, *payload = json_pack("{s:s}", "type", "reward.x");
    rp_decide_outcome_t outcome;
    rp_err_clear(&err);
    bool ok = s->ops->transition(s, REQUEST_ID, from, to, OPERATOR_ID, "checked", strcmp(to, "SUCCESS") ? "WHY" : NULL,
                                 lines, 2, payload, NOW_MS, &outcome, &after, &err);
    json_t *out = result(ok, &err, NULL);
    if (ok) {
        json_object_set_new(out, "outcome", json_string(decide_outcome_name(outcome)));
        json_object_set_new(out, "after", after ? after : json_null());
    }
    json_decref(payload);
    return out;
}

static json_t *run_reward(rp_reward_store_t *s, const char *scenario) {
    rp_err_t err;
    json_t *doc = NULL, *items = NULL;
    bool ok, more = false;
    rp_err_clear(&err);
    if (strcmp(scenario, "open-reward") == 0) return result(true, &err, NULL);
    if (strcmp(scenario, "grant") == 0) return run_grant(s, "SUCCESS", NULL);
    if (strcmp(scenario, "grant-review") == 0) return run_grant(s, "AWAITING_REVIEW", NULL);
    if (strcmp(scenario, "grant-batch") == 0) return run_grant(s, "SUCCESS", BATCH_ID);
    if (strcmp(scenario, "approve") == 0) return run_transition(s, "AWAITING_REVIEW", "SUCCESS");
    if (strcmp(scenario, "reject") == 0) return run_transition(s, "AWAITING_REVIEW", "FAILED");
    if (strcmp(scenario, "revoke") == 0) return run_transition(s, "SUCCESS", "REVOKED");
    if (strcmp(scenario, "record-failed") == 0) {
        json_t *req = sample_request("FAILED");
        ok = s->ops->record_failed(s, req, &err);
        json_decref(req);
        return result(ok, &err, NULL);
    }
    if (strcmp(scenario, "get-request") == 0 || strcmp(scenario, "find-active") == 0) {
        ok = scenario[0] == 'g' ? s->ops->get_request(s, REQUEST_ID, &doc, &err)
                                : s->ops->find_active(s, ACTIVE_KEY, &doc, &err);
        return result(ok, &err, ok ? json_pack("{s:o}", "request", doc ? doc : json_null()) : NULL);
    }
    if (strcmp(scenario, "list-requests") == 0) {
        rp_request_filter_t f = {USER_ID, EVENT_ID, "SUCCESS", NOW_MS - 86400000, NOW_MS, REQUEST_ID, 2};
        ok = s->ops->list_requests(s, &f, &items, &more, &err);
        return page(ok, &err, items, more);
    }
    if (strcmp(scenario, "list-ledger") == 0) {
        ok = s->ops->list_ledger(s, USER_ID, NULL, 10, 2, &items, &more, &err);
        return page(ok, &err, items, more);
    }
    if (strcmp(scenario, "list-outbox") == 0) {
        ok = s->ops->list_outbox(s, 10, 2, &items, &more, &err);
        return page(ok, &err, items, more);
    }
    if (strcmp(scenario, "outbox-lease") == 0) {
        ok = s->ops->outbox_lease(s, "relay-1", NOW_MS, 30000, 2, &items, &err);
        return result(ok, &err, ok ? json_pack("{s:o}", "items", items) : NULL);
    }
    if (strcmp(scenario, "outbox-published") == 0) {
        const int64_t seqs[] = {11, 12};
        return result(s->ops->outbox_published(s, seqs, 2, NOW_MS, &err), &err, NULL);
    }
    if (strcmp(scenario, "idem-get") == 0) {
        char hash[65];
        int status;
        bool found;
        ok = s->ops->idem_get(s, USER_ID, "key-1", &found, hash, &status, &doc, &err);
        return result(ok, &err,
                      ok ? json_pack("{s:b, s:s, s:i, s:o}", "found", found, "hash", hash, "status", status, "response",
                                     doc ? doc : json_null())
                         : NULL);
    }
    if (strcmp(scenario, "idem-put") == 0) {
        json_t *resp = json_pack("{s:s}", "id", REQUEST_ID);
        ok = s->ops->idem_put(s, USER_ID, "key-1", "abc", 201, resp, NOW_MS, &err);
        json_decref(resp);
        return result(ok, &err, NULL);
    }
    if (strcmp(scenario, "batch-create") == 0) {
        const char *users[] = {USER_ID, "5f0000000000000000000002", "5f0000000000000000000003"};
        rp_batch_input_t in = {BATCH_ID, EVENT_ID, "launch", OPERATOR_ID, "idem-1", "hash-1", users, 3, 1, NOW_MS};
        char id[25], hash[65];
        bool existed;
        ok = s->ops->batch_create(s, &in, &existed, id, hash, &err);
        return result(ok, &err,
                      ok ? json_pack("{s:b, s:s, s:s}", "existed", existed, "existingId", id, "existingHash", hash)
                         : NULL);
    }
    if (strcmp(scenario, "batch-get") == 0) {
        ok = s->ops->batch_get(s, BATCH_ID, true, &doc, &err);
        return result(ok, &err, ok ? json_pack("{s:o}", "batch", doc ? doc : json_null()) : NULL);
    }
    if (strcmp(scenario, "batch-items") == 0) {
        ok = s->ops->batch_items(s, BATCH_ID, "QUEUED", 0, 2, &items, &more, &err);
        return page(ok, &err, items, more);
    }
    if (strcmp(scenario, "batch-list") == 0) {
        ok = s->ops->batch_list(s, EVENT_ID, BATCH_ID, 2, &items, &more, &err);
        return page(ok, &err, items, more);
    }
    if (strcmp(scenario, "batch-lease") == 0) {
        ok = s->ops->batch_lease(s, NOW_MS, 60000, 10, 100, &items, &err);
        return result(ok, &err, ok ? json_pack("{s:o}", "items", items) : NULL);
    }
    if (strcmp(scenario, "batch-items-get") == 0) {
        const int64_t seqs[] = {3, 1, 99};
        ok = s->ops->batch_items_get(s, BATCH_ID, seqs, 3, &items, &err);
        return result(ok, &err, ok ? json_pack("{s:o}", "items", items) : NULL);
    }
    if (strcmp(scenario, "batch-item-fail") == 0)
        return result(s->ops->batch_item_fail(s, BATCH_ID, 2, "OUT_OF_STOCK", NULL, NOW_MS, &err), &err, NULL);
    return NULL;
}

json_t *contract_reward(const char *uri, const char *scenario) {
    rp_err_t err;
    rp_err_clear(&err);
    if (!(1)) return NULL;
    rp_reward_store_t *s = rp_reward_store_mongo_open(uri, DB_NAME, &err);
    json_t *out = s ? run_reward(s, scenario) : result(false, &err, NULL);
    if (s) s->ops->free(s);
    return out;
}
