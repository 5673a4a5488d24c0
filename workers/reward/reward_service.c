/* reward_service.c - the reward worker's operations (see reward_service.h): everything but the
 * claim itself, which lives in grant.c. State is read-only after creation; the store is
 * thread-safe. */
#include "reward_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "batch.h"
#include "claims.h"
#include "export_page.h"
#include "log.h"
#include "mem.h"
#include "outbox_relay.h"
#include "paging.h"
#include "rules/request_state.h"
#include "reward_store.h"
#include "reward_store_mongo.h"
#include "roles.h"
#include "service.h"
#include "timeutil.h"
#include "webhooks.h"

struct rp_reward_worker {
    const rp_config_t *cfg;
    rp_reward_store_t *store;
    rp_event_repo_t *events;
    rp_event_repo_t *owned_events;
    rp_claims_t *claims;
    rp_batches_t *batches;
    rp_outbox_relay_t *relay;  /* NULL unless run_relay */
    rp_webhooks_t *hooks;      /* endpoints; its dispatcher runs from run_batches on */
    rp_transport_t *transport; /* borrowed from run_batches: account lookups go through it */
    rp_service_t service;
};

#define STAFF_READ (RP_ROLE_OPERATOR | RP_ROLE_AUDITOR | RP_ROLE_ADMIN)
#define STAFF_WRITE (RP_ROLE_OPERATOR | RP_ROLE_ADMIN)

/* the service hooks (rpc.h) */
static bool ping(void *ctx, rp_err_t *err) {
    rp_reward_worker_t *w = ctx;
    return w->store->ops->ping(w->store, err) && rp_webhooks_ping(w->hooks, err);
}

/* After a write that answered 2xx there may be a new outbox message: the webhook fan-out looks
 * at once instead of at its next idle poll. */
static void after_op(void *ctx, const rp_envelope_t *env, const rp_reply_t *rep) {
    rp_reward_worker_t *w = ctx;
    if (strcmp(env->method, "GET") != 0 && rep->status >= 200 && rep->status < 300) rp_webhooks_kick(w->hooks);
}

/* The webhook operations with the worker as ctx. */
#define HOOK_OP(name)                                                                                                  \
    static void op_hook_##name(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {                                 \
        rp_webhooks_op_##name(((rp_reward_worker_t *)ctx)->hooks, env, rep);                                           \
    }
HOOK_OP(create)
HOOK_OP(list)
HOOK_OP(get)
HOOK_OP(update)
HOOK_OP(delete)
HOOK_OP(deliveries)
HOOK_OP(redeliver)
HOOK_OP(ping)
HOOK_OP(metrics)

static void free_ctx(void *ctx) {
    rp_reward_worker_free(ctx);
}

/* The {id} path parameter as an ObjectId; NULL when a 404 code was sent. */
static const char *path_id(const rp_envelope_t *env, const char *code, rp_reply_t *rep) {
    return rp_service_path_id(env, "id", code, "no such id", rep);
}

static void op_claim(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_reward_worker_t *w = ctx;
    if (!rp_service_require_roles(env, RP_ROLE_USER, NULL, rep)) return;
    const char *event_id = path_id(env, "EVENT_NOT_FOUND", rep);
    if (!event_id) return;
    rp_claims_claim(w->claims, env, event_id, rep);
}

/* A page of requests by the list's filters, of up to max_limit rows. */
static void list_requests(rp_reward_worker_t *w, const rp_envelope_t *env, const char *user_id, int max_limit,
                          rp_reply_t *rep) {
    rp_request_filter_t f = {.status = -1};
    rp_err_t err;
    rp_request_t *items = NULL;
    size_t n = 0;
    bool more = false;
    const char *uid = NULL, *status;
    if (!rp_query_limit(env, RP_PAGE_DEFAULT, max_limit, &f.limit, &err) ||
        !rp_query_oid(env, "cursor", &f.cursor, &err) || !rp_query_oid(env, "eventId", &f.event_id, &err) ||
        !rp_query_oid(env, "userId", &uid, &err) || !rp_query_time(env, "from", &f.from_ms, &err) ||
        !rp_query_time(env, "to", &f.to_ms, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    f.user_id = user_id ? user_id : uid;
    if ((status = rp_envelope_query(env, "status"))) {
        rp_req_status_t st;
        if (!rp_req_status_parse(status, &st)) {
            rp_reply_error(rep, 400, "VALIDATION_FAILED",
                           "status must be one of PENDING, AWAITING_REVIEW, SUCCESS, FAILED, REVOKED", NULL);
            return;
        }
        f.status = (int)st;
    }
    if (!w->store->ops->list_requests(w->store, &f, &items, &n, &more, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(list, rp_request_to_json(&items[i]));
        rp_request_clear(&items[i]);
    }
    free(items);
    rp_reply_set(rep, 200, rp_service_page(list, more));
}

static void op_list_mine(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    if (rp_service_require_caller(env, rep)) list_requests(ctx, env, env->caller.id, RP_PAGE_MAX, rep);
}

static void op_list_all(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    if (!rp_service_require_roles(env, STAFF_READ, NULL, rep)) return;
    list_requests(ctx, env, NULL, RP_PAGE_MAX, rep);
}

/* The export's pages (export_page.h): the list's filters and order, larger pages. */
static void op_export_page(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    if (!rp_service_require_roles(env, RP_ROLE_AUDITOR | RP_ROLE_ADMIN, NULL, rep)) return;
    list_requests(ctx, env, NULL, RP_EXPORT_PAGE_MAX, rep);
}

static void op_get_request(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_reward_worker_t *w = ctx;
    rp_err_t err;
    rp_request_t req;
    bool found = false;
    const char *id = path_id(env, "REQUEST_NOT_FOUND", rep);
    if (!id) return;
    rp_request_init(&req);
    if (!w->store->ops->get_request(w->store, id, &req, &found, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    bool staff = env->caller.authenticated && (env->caller.roles & STAFF_READ);
    /* someone else's request is reported as missing: its existence is not the caller's business */
    if (!found || (!staff && strcmp(req.user_id, env->caller.id) != 0))
        rp_reply_error(rep, 404, "REQUEST_NOT_FOUND", "no such reward request", NULL);
    else
        rp_reply_set(rep, 200, rp_request_to_json(&req));
    rp_request_clear(&req);
}

/* Reads the optional {notes} (approve/reject) or required {reason} (revoke) of a decision. */
static bool decision_text(const rp_envelope_t *env, const char *field, bool required, const char **out,
                          rp_reply_t *rep) {
    json_t *v = env->body ? json_object_get(env->body, field) : NULL;
    *out = NULL;
    if (env->body && json_object_size(env->body) > (v ? 1u : 0u)) {
        rp_service_reject_field(rep, "unknown field in the body", "", "only one text field is allowed");
        return false;
    }
    if ((!v && required) || (v && (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 1000))) {
        char ptr[40];
        snprintf(ptr, sizeof ptr, "/%s", field);
        rp_service_reject_field(rep, "the request body is invalid", ptr, "must be a string of 1 to 1000 characters");
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static void decide(rp_reward_worker_t *w, const rp_envelope_t *env, rp_reply_t *rep, rp_decision_t d,
                   const char *text_field, bool text_required) {
    if (!rp_service_require_roles(env, STAFF_WRITE, NULL, rep)) return;
    const char *id = path_id(env, "REQUEST_NOT_FOUND", rep);
    const char *text = NULL;
    if (!id || !decision_text(env, text_field, text_required, &text, rep)) return;
    rp_claims_decide(w->claims, env, id, d, text, rep);
}

static void op_approve(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    decide(ctx, env, rep, RP_DECIDE_APPROVE, "notes", false);
}

static void op_reject(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    decide(ctx, env, rep, RP_DECIDE_REJECT, "notes", false);
}

static void op_revoke(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    decide(ctx, env, rep, RP_DECIDE_REVOKE, "reason", true);
}

/* ?after= (or ?cursor=) for the ledger and the feed: a non-negative sequence number. */
static bool parse_after(const rp_envelope_t *env, int64_t *after, rp_err_t *err) {
    return rp_query_seq(env, rp_envelope_query(env, "after") ? "after" : "cursor", after, err);
}

/* A page by sequence number: the feed always hands back where to continue; hasMore says whether
 * to poll again at once. Takes items. */
static json_t *seq_page(json_t *items, int64_t last_seq, bool more) {
    char next[32];
    snprintf(next, sizeof next, "%lld", (long long)last_seq);
    return json_pack("{s:o, s:o, s:b}", "items", items, "nextCursor",
                     json_array_size(items) ? json_string(next) : json_null(), "hasMore", more);
}

/* The ledger and the feed page by sequence number (commit order), not by id. */
static void op_ledger(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_reward_worker_t *w = ctx;
    rp_err_t err;
    int limit;
    const char *user_id, *event_id;
    int64_t after;
    rp_ledger_entry_t *items = NULL;
    size_t n = 0;
    bool more;
    if (!rp_service_require_roles(env, RP_ROLE_AUDITOR | RP_ROLE_ADMIN, NULL, rep)) return;
    if (!parse_after(env, &after, &err) || !rp_query_limit(env, RP_PAGE_DEFAULT, RP_PAGE_MAX, &limit, &err) ||
        !rp_query_oid(env, "userId", &user_id, &err) || !rp_query_oid(env, "eventId", &event_id, &err) ||
        !w->store->ops->list_ledger(w->store, user_id, event_id, after, limit, &items, &n, &more, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, rp_ledger_entry_to_json(&items[i]));
    rp_reply_set(rep, 200, seq_page(list, n ? items[n - 1].seq : 0, more));
    free(items);
}

static void op_feed(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_reward_worker_t *w = ctx;
    rp_err_t err;
    int64_t after;
    int limit;
    rp_outbox_message_t *items = NULL;
    size_t n = 0;
    bool more;
    if (!rp_service_require_roles(env, RP_ROLE_GAME_SERVER, NULL, rep)) return;
    if (!parse_after(env, &after, &err) || !rp_query_limit(env, RP_PAGE_MAX, 1000, &limit, &err) ||
        !w->store->ops->list_outbox(w->store, after, limit, &items, &n, &more, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, rp_outbox_message_to_json(&items[i]));
    rp_reply_set(rep, 200, seq_page(list, n ? items[n - 1].seq : 0, more));
    for (size_t i = 0; i < n; i++)
        rp_outbox_message_clear(&items[i]);
    free(items);
}

/* The player an eligibility question is about: a USER asks for himself (userId absent or his
 * own); staff name him with ?userId=. NULL when a reply was sent. */
static const char *eligibility_user(const rp_envelope_t *env, rp_reply_t *rep) {
    rp_err_t err;
    const char *uid = NULL;
    if (!rp_service_require_caller(env, rep)) return NULL;
    if (!rp_query_oid(env, "userId", &uid, &err)) {
        rp_reply_from_err(rep, &err);
        return NULL;
    }
    bool staff = (env->caller.roles & STAFF_READ) != 0, user = (env->caller.roles & RP_ROLE_USER) != 0;
    if (!uid && user) return env->caller.id;
    if (!uid && staff) {
        rp_service_reject_field(rep, "userId is required", "", "staff name the player with ?userId=");
        return NULL;
    }
    if (uid && (staff || (user && strcmp(uid, env->caller.id) == 0))) return uid;
    rp_reply_error(rep, 403, "FORBIDDEN", "a player asks only about himself", NULL);
    return NULL;
}

static void op_eligibility(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_reward_worker_t *w = ctx;
    rp_err_t err;
    rp_account_state_t state = RP_ACCOUNT_UNKNOWN;
    const char *event_id = path_id(env, "EVENT_NOT_FOUND", rep);
    const char *user_id = event_id ? eligibility_user(env, rep) : NULL;
    if (!user_id) return;
    int64_t deadline = env->deadline_ms ? env->deadline_ms : rp_now_ms() + w->cfg->rpc_timeout_ms;
    if (!rp_accounts_lookup(w->transport, &user_id, 1, deadline, env->request_id, &state, &err)) {
        rp_reply_error(rep, 503, "AUTH_UNAVAILABLE", "cannot look the player's account up now; try again", NULL);
        return;
    }
    if (state == RP_ACCOUNT_UNKNOWN)
        rp_reply_error(rep, 404, "USER_NOT_FOUND", "no account has this id", NULL);
    else
        rp_claims_eligibility(w->claims, event_id, user_id, state, rep);
}

static void op_batch_create(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_reward_worker_t *w = ctx;
    if (!rp_service_require_roles(env, STAFF_WRITE, NULL, rep)) return;
    const char *event_id = path_id(env, "EVENT_NOT_FOUND", rep);
    if (event_id) rp_batches_create(w->batches, env, event_id, rep);
}

static void op_batch_get(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_reward_worker_t *w = ctx;
    if (!rp_service_require_roles(env, STAFF_READ, NULL, rep)) return;
    const char *id = path_id(env, "BATCH_NOT_FOUND", rep);
    if (id) rp_batches_get(w->batches, id, rep);
}

static void op_batch_list(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_reward_worker_t *w = ctx;
    if (rp_service_require_roles(env, STAFF_READ, NULL, rep)) rp_batches_list(w->batches, env, rep);
}

static void op_batch_items(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_reward_worker_t *w = ctx;
    if (!rp_service_require_roles(env, STAFF_READ, NULL, rep)) return;
    const char *id = path_id(env, "BATCH_NOT_FOUND", rep);
    if (id) rp_batches_items(w->batches, env, id, rep);
}

static const rp_route_op_t ops[] = {
    {"POST", "/events/{id}/reward-requests", op_claim},
    {"GET", "/events/reward-requests/me", op_list_mine},
    {"GET", "/events/reward-requests", op_list_all},
    {"GET", "/events/reward-requests/{id}", op_get_request},
    {"POST", "/events/reward-requests/{id}/approve", op_approve},
    {"POST", "/events/reward-requests/{id}/reject", op_reject},
    {"POST", "/events/reward-requests/{id}/revoke", op_revoke},
    {"GET", "/events/ledger", op_ledger},
    {"GET", "/events/grants/feed", op_feed},
    {"POST", "/events/{id}/batch-grants", op_batch_create},
    {"GET", "/events/{id}/eligibility", op_eligibility},
    {"GET", "/events/batches", op_batch_list},
    {"GET", "/events/batches/{id}", op_batch_get},
    {"GET", "/events/batches/{id}/items", op_batch_items},
    {"GET", RP_EXPORT_PAGE_ROUTE, op_export_page},
    {"POST", "/events/webhooks", op_hook_create},
    {"GET", "/events/webhooks", op_hook_list},
    {"GET", "/events/webhooks/{id}", op_hook_get},
    {"PATCH", "/events/webhooks/{id}", op_hook_update},
    {"DELETE", "/events/webhooks/{id}", op_hook_delete},
    {"GET", "/events/webhooks/{id}/deliveries", op_hook_deliveries},
    {"POST", "/events/webhooks/{id}/deliveries/{deliveryId}/redeliver", op_hook_redeliver},
    {"POST", "/events/webhooks/{id}/ping", op_hook_ping},
    {"GET", RP_WEBHOOKS_METRICS_ROUTE, op_hook_metrics},
};

rp_reward_worker_t *rp_reward_worker_new(const rp_config_t *cfg, rp_event_repo_t *events, rp_err_t *err) {
    rp_event_repo_t *owned = NULL;
    if (!events && !(events = owned = rp_event_repo_open(cfg, cfg->worker_threads + 2, err))) return NULL;
    rp_reward_store_t *store = strcmp(cfg->store, "mongodb") == 0
                                   ? rp_reward_store_mongo_open(cfg->mongodb_uri, cfg->mongodb_db_name, err)
                                   : rp_reward_store_sqlite_open(cfg->sqlite_dir, cfg->worker_threads + 2, err);
    rp_webhooks_t *hooks = store ? rp_webhooks_new(cfg, err) : NULL;
    if (!hooks) {
        if (store) store->ops->free(store);
        if (owned) owned->ops->free(owned);
        return NULL;
    }
    rp_reward_worker_t *w = rp_calloc(1, sizeof *w);
    w->cfg = cfg;
    w->store = store;
    w->hooks = hooks;
    w->events = events;
    w->owned_events = owned;
    w->claims = rp_claims_new(store, events, cfg->events_cache_ms);
    w->batches = rp_batches_new(cfg, store, events, w->claims);
    w->service = (rp_service_t){"reward", ops, sizeof ops / sizeof ops[0], w, ping, free_ctx, after_op};
    return w;
}

bool rp_reward_worker_run_batches(rp_reward_worker_t *w, rp_transport_t *t, rp_err_t *err) {
    w->transport = t;
    return rp_batches_start(w->batches, t, err) && rp_webhooks_start(w->hooks, err);
}

bool rp_reward_worker_run_relay(rp_reward_worker_t *w, const char *owner, rp_err_t *err) {
    w->relay = rp_outbox_relay_new(w->store, w->cfg->amqp_url, owner, err);
    return w->relay && rp_outbox_relay_start(w->relay, err);
}

const rp_service_t *rp_reward_worker_service(rp_reward_worker_t *w) {
    return &w->service;
}

void rp_reward_worker_free(rp_reward_worker_t *w) {
    if (!w) return;
    rp_outbox_relay_free(w->relay); /* first: it works on the store */
    rp_webhooks_free(w->hooks);
    rp_batches_free(w->batches);
    rp_claims_free(w->claims);
    w->store->ops->free(w->store);
    if (w->owned_events) w->owned_events->ops->free(w->owned_events);
    free(w);
}
