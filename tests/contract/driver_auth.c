/* driver_auth.c - the auth store scenarios of the MongoDB wire-contract driver (see
 * mongo_driver.c), and the login scenarios that run the whole auth worker on the MongoDB store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mongo_driver.h"
#include "auth/auth_service.h"
#include "auth/auth_store_mongo.h"
#include "auth/session_log.h"
#include "config.h"
#include "envelope.h"
#include "rpc.h"
#include "timeutil.h"

static json_t *account_json(const rp_account_t *a) {
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:b, s:s, s:I}", "id", a->id, "username", a->username,
                     "email", a->email, "passwordHash", a->password_hash, "roles", (int)a->roles, "createdAt",
                     (json_int_t)a->created_at, "updatedAt", (json_int_t)a->updated_at, "tokenVersion",
                     (json_int_t)a->token_version, "disabled", a->disabled, "disabledReason", a->disabled_reason,
                     "disabledAt", (json_int_t)a->disabled_at);
}

/* What auth_service.c's administrator changes do, in its order: the target read, the guard,
 * the count of enabled admins, the account written, its refresh tokens revoked when disabled,
 * the audit entry. Reports what the last attempt saw. */
typedef struct admin_change {
    rp_auth_store_t *s;
    bool disable;
    bool found;
    int64_t admins;
} admin_change_t;

static rp_txn_end_t admin_change_txn(rp_auth_txn_t *tx, void *p) {
    admin_change_t *c = p;
    rp_account_t a;
    bool written = false;
    c->found = false;
    c->admins = -1;
    if (!c->s->ops->tx_find_by_id(tx, USER_ID, &a, &c->found)) return RP_TXN_FAILED;
    if (!c->found) return RP_TXN_ROLLBACK;
    if (!c->s->ops->tx_guard_admins(tx) || !c->s->ops->tx_count_admins(tx, &c->admins)) return RP_TXN_FAILED;
    if (c->admins <= 1) return RP_TXN_ROLLBACK; /* LAST_ADMIN */
    if (c->disable) {
        a.disabled = true;
        snprintf(a.disabled_reason, sizeof a.disabled_reason, "fraud");
        a.disabled_at = NOW_MS;
    } else {
        a.roles = 1;
    }
    a.token_version++;
    a.updated_at = NOW_MS;
    json_t *before = json_pack("{s:[s, s]}", "roles", "USER", "ADMIN"), *after = json_pack("{s:[s]}", "roles", "USER");
    rp_audit_entry_t audit = {OPERATOR_ID, "root", "user.roles.update", "user", USER_ID, before, after, NOW_MS};
    bool ok = c->s->ops->tx_update_account(tx, &a, &written) &&
              (!c->disable || c->s->ops->tx_revoke_refresh_of(tx, USER_ID, NOW_MS)) &&
              c->s->ops->tx_append_audit(tx, &audit);
    json_decref(before);
    json_decref(after);
    return ok ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

typedef struct logout_arg {
    rp_auth_store_t *s;
    int64_t count;
} logout_arg_t;

static rp_txn_end_t logout_txn(rp_auth_txn_t *tx, void *p) {
    logout_arg_t *a = p;
    a->count = -1;
    return a->s->ops->tx_revoke_access(tx, USER_ID, "abc123", NOW_MS + 3600000, NOW_MS) &&
                   a->s->ops->tx_count_revoked(tx, USER_ID, NOW_MS, &a->count)
               ? RP_TXN_COMMIT
               : RP_TXN_FAILED;
}

/* A unit of work that logs one session change of USER_ID at NOW, forgetting what is older than
 * SESSION_LOG_KEEP_MS. */
#define SESSION_LOG_KEEP_MS 600000

static rp_txn_end_t log_change_txn(rp_auth_txn_t *tx, void *p) {
    rp_auth_store_t *s = p;
    return rp_auth_tx_log_session_change(s->ops, tx, USER_ID, NOW_MS, NOW_MS - SESSION_LOG_KEEP_MS) ? RP_TXN_COMMIT
                                                                                                    : RP_TXN_FAILED;
}

/* session_changes after 5 (after -1 for -latest), up to 2: {items, more, last, complete}. */
static json_t *run_session_changes(rp_auth_store_t *s, const char *scenario) {
    rp_err_t err;
    char ids[2][RP_OID_LEN];
    size_t n = 0;
    int64_t last = -1;
    bool more = false, complete = false;
    rp_err_clear(&err);
    bool ok = rp_auth_session_changes(s, scenario[20] ? -1 : 5, 2, ids, &n, &last, &more, &complete, &err);
    json_t *arr = json_array();
    for (size_t i = 0; ok && i < n; i++)
        json_array_append_new(arr, json_string(ids[i]));
    if (!ok) json_decref(arr);
    return result(ok, &err,
                  ok ? json_pack("{s:o, s:b, s:I, s:b}", "items", arr, "more", more, "last", (json_int_t)last,
                                 "complete", complete)
                     : NULL);
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
        ok = s->ops->find_by_login(s, "alice", false, &a, &found, &err);
        return result(ok, &err,
                      ok ? json_pack("{s:b, s:s, s:s}", "found", found, "id", found ? a.id : "", "username",
                                     found ? a.username : "")
                         : NULL);
    }
    if (strcmp(scenario, "auth-find-email") == 0 || strcmp(scenario, "auth-find-id") == 0) {
        ok = scenario[10] == 'e' ? s->ops->find_by_login(s, "alice@example.com", true, &a, &found, &err)
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
        rp_account_t in = {USER_ID,
                           "Alice",
                           "Alice@Example.COM",
                           "alice",
                           "alice@example.com",
                           "$argon2id$hash",
                           1,
                           NOW_MS,
                           NOW_MS,
                           0,
                           false,
                           "",
                           0};
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
    if (strcmp(scenario, "auth-demote-admin") == 0 || strcmp(scenario, "auth-disable-admin") == 0) {
        admin_change_t c = {s, scenario[5] == 'd' && scenario[6] == 'i', false, -1};
        ok = s->ops->transact(s, "admin change", admin_change_txn, &c, &err);
        return result(ok, &err, ok ? json_pack("{s:b, s:I}", "found", c.found, "admins", (json_int_t)c.admins) : NULL);
    }
    if (strcmp(scenario, "auth-logout-access") == 0) {
        logout_arg_t l = {s, -1};
        ok = s->ops->transact(s, "logout", logout_txn, &l, &err);
        return result(ok, &err, ok ? json_pack("{s:I}", "count", (json_int_t)l.count) : NULL);
    }
    if (strcmp(scenario, "auth-revoked-access") == 0) {
        char jtis[2][RP_JTI_LEN];
        size_t n = 0;
        bool more = false;
        ok = s->ops->revoked_access(s, USER_ID, NOW_MS, 2, jtis, &n, &more, &err);
        json_t *arr = json_array();
        for (size_t i = 0; ok && i < n; i++)
            json_array_append_new(arr, json_string(jtis[i]));
        if (!ok) json_decref(arr);
        return page(ok, &err, ok ? arr : NULL, more);
    }
    if (strcmp(scenario, "auth-log-session-change") == 0)
        return result(s->ops->transact(s, "log session change", log_change_txn, s, &err), &err, NULL);
    if (strcmp(scenario, "auth-session-changes") == 0 || strcmp(scenario, "auth-session-changes-latest") == 0)
        return run_session_changes(s, scenario);
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

/* ---- login through the auth worker: the real lockout reservation (auth_service.c) ---- */

typedef struct login_env {
    const char *uri;
} login_env_t;

/* The worker's configuration: the MongoDB store on the mock, the cheapest hash, no bootstrap
 * admin (its reads and writes would precede every login's), the default lockout (5 in 15 min). */
static const char *login_getter(const char *name, void *ud) {
    const login_env_t *e = ud;
    if (strcmp(name, "STORE") == 0) return "mongodb";
    if (strcmp(name, "MONGODB_URI") == 0) return e->uri;
    if (strcmp(name, "MONGODB_DB_NAME") == 0) return DB_NAME;
    if (strcmp(name, "JWT_SECRET") == 0) return "0123456789abcdef0123456789abcdef-contract";
    if (strcmp(name, "PASSWORD_HASH") == 0) return "min";
    return NULL;
}

static int64_t fixed_now(void) {
    return NOW_MS;
}

/* One request through the auth worker on the MongoDB store (the clock at NOW), as the api sends
 * it: method and route to the login service (login) or the main one, with params and body (both
 * taken, may be NULL) and, when admin, an ADMIN caller (OPERATOR_ID, "root"). The reply's
 * {status, code (error code or null), retryAfter, body}. */
static json_t *run_request(const char *uri, bool login, const char *method, const char *route, json_t *params,
                           json_t *body, bool admin) {
    login_env_t e = {uri};
    rp_config_t cfg;
    rp_err_t err;
    rp_envelope_t env;
    rp_reply_t rep = {0};
    rp_auth_worker_t *w = NULL;
    char *req = NULL, *out = NULL;
    size_t len = 0, out_len = 0;
    json_t *res = NULL;
    rp_err_clear(&err);
    rp_envelope_init(&env);
    if (params) {
        json_decref(env.params);
        env.params = params;
    }
    env.body = body;
    if (!rp_config_load(&cfg, login_getter, &e, &err) || !(w = rp_auth_worker_new(&cfg, &err))) {
        res = result(false, &err, NULL);
        goto done;
    }
    rp_auth_worker_set_clock(w, fixed_now);
    snprintf(env.method, sizeof env.method, "%s", method);
    snprintf(env.route, sizeof env.route, "%s", route);
    snprintf(env.request_id, sizeof env.request_id, "contract");
    if (admin) {
        env.caller.authenticated = true;
        snprintf(env.caller.id, sizeof env.caller.id, "%s", OPERATOR_ID);
        snprintf(env.caller.username, sizeof env.caller.username, "root");
        env.caller.roles = 8 | 1; /* ADMIN, USER */
    }
    env.deadline_ms = rp_now_ms() + 10000; /* the handler's own clock, not the worker's */
    req = rp_envelope_serialize(&env, &len);
    const rp_service_t *svc = login ? rp_auth_worker_login_service(w) : rp_auth_worker_service(w);
    out = rp_rpc_service_handler((void *)svc, req, len, &out_len);
    if (!rp_reply_parse(&rep, out, out_len, &err)) {
        res = result(false, &err, NULL);
        goto done;
    }
    json_t *code = json_object_get(json_object_get(rep.body, "error"), "code");
    res = result(true, &err,
                 json_pack("{s:i, s:O, s:i, s:O}", "status", rep.status, "code", code ? code : json_null(),
                           "retryAfter", rep.retry_after_s, "body", rep.body ? rep.body : json_null()));
done:
    rp_reply_clear(&rep);
    free(out);
    free(req);
    rp_envelope_clear(&env);
    rp_auth_worker_free(w);
    return res;
}

/* POST /auth/login {alice, password} through the login service: {status, code, retryAfter}. */
static json_t *run_login(const char *uri, const char *password) {
    json_t *res = run_request(uri, true, "POST", "/auth/login", NULL,
                              json_pack("{s:s, s:s}", "username", "alice", "password", password), false);
    json_object_del(res, "body");
    return res;
}

/* ---- service accounts through the auth worker (service_accounts.c over the MongoDB store) ---- */

#define SA_HASH "ab00000000000000000000000000000000000000000000000000000000000000"

static json_t *run_service_account(const char *uri, const char *scenario) {
    const char *sa = "5f0000000000000000000051", *key = "5f0000000000000000000061";
    if (strcmp(scenario, "auth-sa-create") == 0)
        return run_request(uri, false, "POST", "/auth/service-accounts", NULL,
                           json_pack("{s:s, s:[s], s:s}", "name", "Game_1", "roles", "GAME_SERVER", "keyHash", SA_HASH),
                           true);
    if (strcmp(scenario, "auth-sa-rotate") == 0 || strcmp(scenario, "auth-sa-rotate-grace") == 0) {
        json_t *body = json_pack("{s:s}", "keyHash", SA_HASH);
        if (scenario[14]) json_object_set_new(body, "graceSeconds", json_integer(60));
        return run_request(uri, false, "POST", "/auth/service-accounts/{id}/keys", json_pack("{s:s}", "id", sa), body,
                           true);
    }
    if (strcmp(scenario, "auth-sa-revoke") == 0)
        return run_request(uri, false, "DELETE", "/auth/service-accounts/{id}/keys/{keyId}",
                           json_pack("{s:s, s:s}", "id", sa, "keyId", key), NULL, true);
    if (strcmp(scenario, "auth-sa-delete") == 0)
        return run_request(uri, false, "DELETE", "/auth/service-accounts/{id}", json_pack("{s:s}", "id", sa), NULL,
                           true);
    if (strcmp(scenario, "auth-sa-list") == 0)
        return run_request(uri, false, "GET", "/auth/service-accounts", NULL, NULL, true);
    if (strcmp(scenario, "auth-sa-me") == 0) /* as a caller signed in with a key: no token id */
        return run_request(uri, false, "GET", "/auth/me", NULL, NULL, true);
    if (strcmp(scenario, "auth-sa-lookup") == 0)
        return run_request(uri, false, "POST", "/_internal/api-key", NULL, json_pack("{s:s}", "keyHash", SA_HASH),
                           false);
    return NULL;
}

json_t *contract_auth(const char *uri, const char *scenario) {
    rp_err_t err;
    rp_err_clear(&err);
    if (strcmp(scenario, "auth-login-wrong") == 0) return run_login(uri, "wrong-password");
    if (strcmp(scenario, "auth-login-right") == 0) return run_login(uri, "right-password");
    if (strncmp(scenario, "auth-sa-", 8) == 0) return run_service_account(uri, scenario);
    if (!(strncmp(scenario, "open-auth", 9) == 0 || strncmp(scenario, "auth-", 5) == 0)) return NULL;
    rp_auth_store_t *s = rp_auth_store_mongo_open(uri, DB_NAME, &err);
    json_t *out = s ? run_auth(s, scenario) : result(false, &err, NULL);
    if (s) s->ops->free(s);
    return out;
}
