/* mongo_driver.c - the C side of the MongoDB wire-contract tests (test_mongo_contract.py): opens
 * the real MongoDB stores on a URI, runs one named scenario (one store operation) and prints the
 * outcome as one JSON line on stdout. Single-threaded; logs (rp_log) go to stderr.
 *
 *   mongo_driver <mongodb://...> <scenario>
 *
 * Exit status 0 when the scenario ran (whatever the store answered), 2 on bad usage. The ids
 * below are fixed so that the Python side can script replies and check filters. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_store_mongo.h"
#include "err.h"
#include "event/event.h"
#include "event/event_repo_mongo.h"
#include "log.h"
#include "reward/reward_store_mongo.h"

#define DB_NAME "rp_contract"
#define USER_ID "5f0000000000000000000001"
#define OPERATOR_ID "5f000000000000000000000f"
#define EVENT_ID "5f00000000000000000000e1"
#define REQUEST_ID "5f00000000000000000000a1"
#define BATCH_ID "5f00000000000000000000b1"
#define DEF0_ID "5f00000000000000000000d0"
#define DEF1_ID "5f00000000000000000000d1"
#define ACTIVE_KEY USER_ID ":" EVENT_ID ":ONCE"
#define NOW_ISO "2026-01-02T03:04:05.000Z"
#define NOW_MS 1767323045000LL
#define NOW_DAY (NOW_MS / 86400000)
#define USER2_ID "5f0000000000000000000002"
#define FAMILY_ID "5f00000000000000000000fa"
#define TOKEN0_ID "5f00000000000000000000c0"
#define TOKEN1_ID "5f00000000000000000000c1"
#define TOKEN1_HASH "11111111111111111111111111111111111111111111111111111111111111aa"

static json_t *error_json(const rp_err_t *e) {
    return json_pack("{s:i, s:s, s:s}", "status", e->status, "code", e->code, "message", e->message);
}

/* {ok: true, ...fields} or {ok: false, error}; takes ownership of fields. */
static json_t *result(bool ok, const rp_err_t *e, json_t *fields) {
    json_t *out = fields ? fields : json_object();
    json_object_set_new(out, "ok", json_boolean(ok));
    if (!ok) json_object_set_new(out, "error", error_json(e));
    return out;
}

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

/* A list result {items, more}. */
static json_t *page(bool ok, const rp_err_t *err, json_t *items, bool more) {
    return result(ok, err, ok ? json_pack("{s:o, s:b}", "items", items, "more", more) : NULL);
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

/* The validated event document event_worker.c hands to event_create / event_update: reward 0
 * limited (stock 10), reward 1 unlimited with customData. */
static json_t *sample_event(void) {
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[], s:s, s:s, s:i, s:b, s:i, s:s, s:s, s:s, s:[{s:s, s:i, s:i, "
                     "s:n}, {s:s, s:i, s:n, s:{s:s}}]}",
                     "id", EVENT_ID, "title", "Launch", "description", "", "startDate", "2026-01-01T03:04:05.000Z",
                     "endDate", "2026-01-03T03:04:05.000Z", "conditions", "conditionLogic", "ALL", "claimPeriod",
                     "ONCE", "maxClaims", 3, "requiresApproval", 0, "dayOffsetMinutes", 540, "createdBy", OPERATOR_ID,
                     "createdAt", NOW_ISO, "updatedAt", NOW_ISO, "rewards", "rewardDefinitionId", DEF0_ID, "quantity",
                     2, "stock", 10, "customData", "rewardDefinitionId", DEF1_ID, "quantity", 1, "stock", "customData",
                     "color", "red");
}

static json_t *run_event_list(rp_event_repo_t *r, const char *variant) {
    rp_err_t err;
    json_t *items = NULL;
    bool more = false;
    rp_event_filter_t f = {.status = -1, .now_ms = NOW_MS, .limit = 2};
    rp_err_clear(&err);
    if (strcmp(variant, "upcoming") == 0) f.status = RP_EVENT_UPCOMING;
    if (strcmp(variant, "active") == 0) f.status = RP_EVENT_ACTIVE;
    if (strcmp(variant, "finished") == 0) f.status = RP_EVENT_FINISHED;
    if (strcmp(variant, "canceled") == 0) f.status = RP_EVENT_CANCELED;
    if (strcmp(variant, "open") == 0) f.open_only = true;
    if (strcmp(variant, "at") == 0) f.active_at = NOW_MS - 3600000;
    if (strcmp(variant, "cursor") == 0) f.cursor = EVENT_ID;
    if (strcmp(variant, "bad-status") == 0) f.status = 7;
    bool ok = r->ops->event_list(r, &f, &items, &more, &err);
    return page(ok, &err, items, more);
}

/* The facts an ingest might carry: one of each type, the level fact reported twice (same key). */
static json_t *run_progress_ingest(rp_event_repo_t *r) {
    rp_err_t err;
    int64_t accepted = -1, duplicates = -1;
    json_t *level = json_integer(7), *quest = json_string("q.1"), *invitee = json_string(USER2_ID),
           *counter = json_pack("{s:s, s:i}", "key", "kills.total", "delta", 3);
    const rp_fact_t facts[] = {
        {USER_ID, RP_FACT_LOGIN, "LOGIN", NULL, NOW_MS, "k-login"},
        {USER_ID, RP_FACT_LEVEL, "LEVEL", level, NOW_MS, "k-level"},
        {USER_ID, RP_FACT_QUEST, "QUEST", quest, NOW_MS, "k-quest"},
        {USER_ID, RP_FACT_INVITE, "INVITE", invitee, NOW_MS, "k-invite"},
        {USER_ID, RP_FACT_COUNTER, "COUNTER", counter, NOW_MS, "k-counter"},
        {USER_ID, RP_FACT_LEVEL, "LEVEL", level, NOW_MS, "k-level"},
    };
    rp_err_clear(&err);
    bool ok = r->ops->progress_ingest(r, facts, sizeof facts / sizeof facts[0], OPERATOR_ID, NOW_MS + 1000, &accepted,
                                      &duplicates, &err);
    json_decref(level);
    json_decref(quest);
    json_decref(invitee);
    json_decref(counter);
    return result(ok, &err,
                  json_pack("{s:I, s:I}", "accepted", (json_int_t)accepted, "duplicates", (json_int_t)duplicates));
}

/* {maxLevel, invites, quests, counters, logins: [{day, minutes: [set minute numbers]}]} */
static json_t *run_progress_load(rp_event_repo_t *r) {
    rp_err_t err;
    rp_progress_t p;
    rp_err_clear(&err);
    bool ok = r->ops->progress_load(r, USER_ID, NOW_DAY - 6, NOW_DAY, &p, &err);
    if (!ok) return result(false, &err, NULL);
    json_t *logins = json_array();
    for (size_t i = 0; i < p.nlogins; i++) {
        json_t *minutes = json_array();
        for (int m = 0; m < 1440; m++)
            if (p.logins[i].minutes[m / 8] & (1u << (m % 8))) json_array_append_new(minutes, json_integer(m));
        json_array_append_new(logins,
                              json_pack("{s:I, s:o}", "day", (json_int_t)p.logins[i].utc_day, "minutes", minutes));
    }
    json_t *out = json_pack("{s:I, s:I, s:O, s:O, s:o}", "maxLevel", (json_int_t)p.max_level, "invites",
                            (json_int_t)p.invites, "quests", p.quests, "counters", p.counters, "logins", logins);
    rp_progress_release(&p);
    return result(true, &err, out);
}

static json_t *run_event(rp_event_repo_t *r, const char *scenario) {
    rp_err_t err;
    json_t *doc = NULL, *items = NULL;
    bool ok, more = false, flag = false, flag2 = false;
    json_t *before = json_pack("{s:s}", "title", "Old"), *after = json_pack("{s:s, s:s}", "title", "New", "$k", "x");
    rp_event_audit_t audit = {OPERATOR_ID, "op", "event.x", "event", EVENT_ID, before, after, NOW_MS};
    json_t *out = NULL;
    rp_err_clear(&err);
    if (strcmp(scenario, "open-event") == 0)
        out = result(true, &err, NULL);
    else if (strcmp(scenario, "event-get") == 0) {
        ok = r->ops->event_get(r, EVENT_ID, &doc, &err);
        out = result(ok, &err, ok ? json_pack("{s:o}", "event", doc ? doc : json_null()) : NULL);
    } else if (strcmp(scenario, "event-create") == 0) {
        doc = sample_event();
        out = result(r->ops->event_create(r, doc, &audit, &err), &err, NULL);
        json_decref(doc);
    } else if (strcmp(scenario, "event-update") == 0 || strcmp(scenario, "event-update-rewards") == 0) {
        doc = sample_event();
        json_object_set_new(doc, "title", json_string("New"));
        ok = r->ops->event_update(r, doc, strcmp(scenario, "event-update-rewards") == 0, &audit, &flag, &err);
        out = result(ok, &err, ok ? json_pack("{s:b}", "conflict", flag) : NULL);
        json_decref(doc);
    } else if (strcmp(scenario, "event-cancel") == 0) {
        ok = r->ops->event_cancel(r, EVENT_ID, NOW_MS, &audit, &flag, &err);
        out = result(ok, &err, ok ? json_pack("{s:b}", "already", flag) : NULL);
    } else if (strncmp(scenario, "event-list-", 11) == 0) {
        out = run_event_list(r, scenario + 11);
    } else if (strcmp(scenario, "event-audit-list") == 0) {
        ok = r->ops->audit_list(r, "event", EVENT_ID, OPERATOR_ID, NULL, 5, &items, &more, &err);
        out = page(ok, &err, items, more);
    } else if (strcmp(scenario, "def-create") == 0) {
        doc = json_pack("{s:s, s:s, s:s, s:{s:i}, s:s, s:b, s:s, s:s, s:s}", "id", DEF0_ID, "name", "Gold", "type",
                        "CURRENCY", "value", "amount", 100, "description", "gold", "isActive", 1, "createdBy",
                        OPERATOR_ID, "createdAt", NOW_ISO, "updatedAt", NOW_ISO);
        out = result(r->ops->def_create(r, doc, &audit, &err), &err, NULL);
        json_decref(doc);
    } else if (strcmp(scenario, "def-get") == 0) {
        ok = r->ops->def_get(r, DEF0_ID, &doc, &err);
        out = result(ok, &err, ok ? json_pack("{s:o}", "definition", doc ? doc : json_null()) : NULL);
    } else if (strcmp(scenario, "def-list") == 0) {
        ok = r->ops->def_list(r, "CURRENCY", 1, DEF1_ID, 2, &items, &more, &err);
        out = page(ok, &err, items, more);
    } else if (strcmp(scenario, "def-delete") == 0) {
        ok = r->ops->def_delete(r, DEF0_ID, &audit, &flag, &flag2, &err);
        out = result(ok, &err, ok ? json_pack("{s:b, s:b}", "found", flag, "referenced", flag2) : NULL);
    } else if (strcmp(scenario, "progress-ingest") == 0) {
        out = run_progress_ingest(r);
    } else if (strcmp(scenario, "progress-load") == 0) {
        out = run_progress_load(r);
    } else if (strcmp(scenario, "progress-summary") == 0) {
        ok = r->ops->progress_summary(r, USER_ID, &doc, &err);
        out = result(ok, &err, ok ? json_pack("{s:o}", "summary", doc) : NULL);
    }
    json_decref(before);
    json_decref(after);
    return out;
}

static json_t *account_json(const rp_account_t *a) {
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:I}", "id", a->id, "username", a->username, "email", a->email,
                     "passwordHash", a->password_hash, "roles", (int)a->roles, "createdAt", (json_int_t)a->created_at,
                     "updatedAt", (json_int_t)a->updated_at);
}

static json_t *token_json(const rp_refresh_token_t *t) {
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "id", t->id, "userId", t->user_id, "familyId",
                     t->family_id, "tokenHash", t->token_hash, "createdAt", (json_int_t)t->created_at, "expiresAt",
                     (json_int_t)t->expires_at, "usedAt", (json_int_t)t->used_at, "revokedAt",
                     (json_int_t)t->revoked_at);
}

static json_t *run_auth(rp_auth_store_t *s, const char *scenario) {
    rp_err_t err;
    rp_account_t a;
    rp_refresh_token_t t;
    bool found = false, ok;
    rp_err_clear(&err);
    if (strcmp(scenario, "open-auth") == 0) return result(true, &err, NULL);
    if (strcmp(scenario, "auth-find-login") == 0) {
        ok = s->ops->find_by_login(s, "Alice", false, &a, &found, &err);
        return result(ok, &err,
                      ok ? json_pack("{s:b, s:s, s:s}", "found", found, "id", found ? a.id : "", "username",
                                     found ? a.username : "")
                         : NULL);
    }
    if (strcmp(scenario, "auth-find-email") == 0 || strcmp(scenario, "auth-find-id") == 0) {
        ok = scenario[10] == 'e' ? s->ops->find_by_login(s, "Alice@Example.COM", true, &a, &found, &err)
                                 : s->ops->find_by_id(s, USER_ID, &a, &found, &err);
        return result(ok, &err, ok ? json_pack("{s:o}", "account", found ? account_json(&a) : json_null()) : NULL);
    }
    if (strcmp(scenario, "auth-list-audit") == 0) {
        json_t *items = NULL;
        bool more = false;
        ok = s->ops->list_audit(s, USER_ID, OPERATOR_ID, EVENT_ID, 5, &items, &more, &err);
        return page(ok, &err, items, more);
    }
    if (strcmp(scenario, "auth-create-user") == 0) {
        rp_account_t in = {USER_ID, "Alice", "Alice@Example.COM", "$argon2id$hash", 1, NOW_MS, NOW_MS};
        return result(s->ops->create_user(s, &in, &err), &err, NULL);
    }
    if (strcmp(scenario, "auth-list-users") == 0 || strcmp(scenario, "auth-list-users-start") == 0) {
        rp_account_t *items = NULL;
        size_t n = 0;
        bool more = false;
        ok = s->ops->list_users(s, scenario[15] ? NULL : USER_ID, 2, &items, &n, &more, &err);
        json_t *arr = json_array();
        for (size_t i = 0; ok && i < n; i++)
            json_array_append_new(arr, account_json(&items[i]));
        free(items);
        if (!ok) json_decref(arr);
        return page(ok, &err, ok ? arr : NULL, more);
    }
    if (strcmp(scenario, "auth-set-roles") == 0) {
        json_t *before = json_pack("{s:[s]}", "roles", "USER"),
               *after = json_pack("{s:[s, s]}", "roles", "USER", "OPERATOR");
        rp_audit_entry_t audit = {OPERATOR_ID, "root", "user.roles", "user", USER_ID, before, after, NOW_MS};
        ok = s->ops->set_roles(s, USER_ID, 3, NOW_MS, &audit, &found, &err);
        json_decref(before);
        json_decref(after);
        return result(ok, &err, ok ? json_pack("{s:b}", "found", found) : NULL);
    }
    if (strcmp(scenario, "auth-count-role") == 0) {
        int64_t count = -1;
        ok = s->ops->count_with_role(s, 8, &count, &err);
        return result(ok, &err, ok ? json_pack("{s:I}", "count", (json_int_t)count) : NULL);
    }
    if (strcmp(scenario, "auth-add-failure") == 0)
        return result(s->ops->add_failure(s, USER_ID, NOW_MS, NOW_MS - 900000, &err), &err, NULL);
    if (strcmp(scenario, "auth-failures") == 0) {
        int64_t count = -1, nth = -1;
        ok = s->ops->failures(s, USER_ID, NOW_MS - 900000, 5, &count, &nth, &err);
        return result(ok, &err,
                      ok ? json_pack("{s:I, s:I}", "count", (json_int_t)count, "nthAt", (json_int_t)nth) : NULL);
    }
    if (strcmp(scenario, "auth-clear-failures") == 0)
        return result(s->ops->clear_failures(s, USER_ID, &err), &err, NULL);
    if (strcmp(scenario, "auth-insert-refresh") == 0 || strcmp(scenario, "auth-rotate") == 0) {
        rp_refresh_token_t next = {TOKEN1_ID, USER_ID, FAMILY_ID, TOKEN1_HASH, NOW_MS, NOW_MS + 86400000, 0, 0};
        bool rotated = false;
        if (scenario[5] == 'i') return result(s->ops->insert_refresh(s, &next, &err), &err, NULL);
        ok = s->ops->rotate_refresh(s, TOKEN0_ID, NOW_MS, &next, &rotated, &err);
        return result(ok, &err, ok ? json_pack("{s:b}", "rotated", rotated) : NULL);
    }
    if (strcmp(scenario, "auth-find-refresh") == 0) {
        ok = s->ops->find_refresh(s, TOKEN1_HASH, &t, &found, &err);
        return result(ok, &err, ok ? json_pack("{s:o}", "token", found ? token_json(&t) : json_null()) : NULL);
    }
    if (strcmp(scenario, "auth-revoke-family") == 0)
        return result(s->ops->revoke_family(s, FAMILY_ID, NOW_MS, &err), &err, NULL);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s <mongodb-uri> <scenario>\n", argv[0]);
        return 2;
    }
    const char *uri = argv[1], *scenario = argv[2];
    rp_err_t err;
    json_t *out = NULL;
    rp_err_clear(&err);
    rp_log_set_component("mongo-contract");
    if (sodium_init() < 0) {
        fprintf(stderr, "sodium_init failed\n");
        return 1;
    }
    if (strcmp(scenario, "open-event") == 0 || strncmp(scenario, "event-", 6) == 0 ||
        strncmp(scenario, "def-", 4) == 0 || strncmp(scenario, "progress-", 9) == 0) {
        rp_event_repo_t *r = rp_event_repo_mongo_open(uri, DB_NAME, &err);
        out = r ? run_event(r, scenario) : result(false, &err, NULL);
        if (r) r->ops->free(r);
    } else if (strncmp(scenario, "open-auth", 9) == 0 || strncmp(scenario, "auth-", 5) == 0) {
        rp_auth_store_t *s = rp_auth_store_mongo_open(uri, DB_NAME, &err);
        out = s ? run_auth(s, scenario) : result(false, &err, NULL);
        if (s) s->ops->free(s);
    } else {
        rp_reward_store_t *s = rp_reward_store_mongo_open(uri, DB_NAME, &err);
        out = s ? run_reward(s, scenario) : result(false, &err, NULL);
        if (s) s->ops->free(s);
    }
    if (!out) {
        fprintf(stderr, "unknown scenario: %s\n", scenario);
        return 2;
    }
    char *line = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    printf("%s\n", line ? line : "{\"ok\":false}");
    free(line);
    json_decref(out);
    return 0;
}
