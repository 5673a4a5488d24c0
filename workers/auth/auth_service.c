/* auth_service.c - the auth worker's operations (see auth_service.h). Rules live here, above the
 * repository: field validation, lockout, refresh-token rotation and family revocation, the
 * last-admin rule. State is read-only after creation except through the thread-safe store and
 * hasher. */
#include "auth_service.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_store.h"
#include "accounts.h"
#include "auth_store_mongo.h"
#include "details.h"
#include "identity.h"
#include "ids.h"
#include "log.h"
#include "mem.h"
#include "paging.h"
#include "password.h"
#include "roles.h"
#include "service.h"
#include "timeutil.h"
#include "token.h"

struct rp_auth_worker {
    const rp_config_t *cfg;
    rp_auth_store_t *store;
    rp_hasher_t *hasher;
    unsigned char refresh_key[crypto_generichash_KEYBYTES];
    int64_t (*now_ms)(void);
    rp_service_t service;
};

/* the service hooks (rpc.h) */
static bool ping(void *ctx, rp_err_t *err) {
    rp_auth_worker_t *w = ctx;
    return w->store->ops->ping(w->store, err);
}

static void free_ctx(void *ctx) {
    rp_auth_worker_free(ctx);
}

#define REFRESH_BYTES 32

/* ---- validation ---- */

/* Returns the string member or NULL, recording "is required" / "must be a string". */
static const char *string_field(const json_t *body, const char *name, json_t *details) {
    json_t *v = json_object_get(body, name);
    char ptr[64];
    snprintf(ptr, sizeof ptr, "/%s", name);
    if (!v) {
        rp_details_add(details, ptr, "is required");
        return NULL;
    }
    if (!json_is_string(v)) {
        rp_details_add(details, ptr, "must be a string");
        return NULL;
    }
    return json_string_value(v);
}

static bool valid_username(const char *u) {
    size_t n = strlen(u);
    if (n < 3 || n > 32) return false;
    for (size_t i = 0; i < n; i++) {
        char c = u[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return true;
}

static bool valid_email(const char *e) {
    size_t n = strlen(e);
    const char *at = strchr(e, '@');
    if (n < 3 || n > 254 || !at || strchr(at + 1, '@') || at == e) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)e[i] <= 0x20 || e[i] == 0x7f) return false;
    const char *dot = strrchr(at + 1, '.');
    return dot && dot > at + 1 && dot[1] != '\0';
}

/* ---- rendering ---- */

static json_t *account_json(const rp_account_t *a) {
    char c[RP_ISO_LEN], u[RP_ISO_LEN];
    rp_time_iso(a->created_at, c);
    rp_time_iso(a->updated_at, u);
    return json_pack("{s:s, s:s, s:s, s:o, s:s, s:s}", "id", a->id, "username", a->username, "email", a->email, "roles",
                     rp_roles_to_json(a->roles), "createdAt", c, "updatedAt", u);
}

/* ---- tokens ---- */

static void hash_refresh(const rp_auth_worker_t *w, const char *token, size_t len, char out[65]) {
    unsigned char d[32];
    crypto_generichash(d, sizeof d, (const unsigned char *)token, len, w->refresh_key, sizeof w->refresh_key);
    sodium_bin2hex(out, 65, d, sizeof d);
}

/* Issues an access token and a fresh refresh token (new family, or `family` when rotating) and
 * builds the login response. When rotating, old_id is compare-and-set to used first. */
static void issue_tokens(rp_auth_worker_t *w, const rp_account_t *a, const char *family, const char *old_id,
                         rp_reply_t *rep) {
    rp_err_t err;
    rp_identity_t who = {.authenticated = true, .roles = a->roles};
    unsigned char raw[REFRESH_BYTES];
    char refresh[sodium_base64_ENCODED_LEN(REFRESH_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    rp_refresh_token_t t;
    int64_t now = w->now_ms();
    memset(&t, 0, sizeof t);
    memcpy(who.id, a->id, sizeof who.id);
    snprintf(who.username, sizeof who.username, "%s", a->username);
    char *access =
        rp_token_issue(w->cfg->jwt_secret, w->cfg->jwt_secret_len, &who, now / 1000, w->cfg->jwt_expires_s, &err);
    if (!access) {
        rp_reply_from_err(rep, &err);
        return;
    }
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(refresh, sizeof refresh, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    rp_oid_new(t.id);
    memcpy(t.user_id, a->id, sizeof t.user_id);
    if (family)
        snprintf(t.family_id, sizeof t.family_id, "%s", family);
    else
        memcpy(t.family_id, t.id, sizeof t.family_id);
    hash_refresh(w, refresh, strlen(refresh), t.token_hash);
    t.created_at = now;
    t.expires_at = now + w->cfg->refresh_expires_s * 1000;
    bool rotated = true;
    bool stored = old_id ? w->store->ops->rotate_refresh(w->store, old_id, now, &t, &rotated, &err)
                         : w->store->ops->insert_refresh(w->store, &t, &err);
    if (!stored) {
        rp_reply_from_err(rep, &err);
    } else if (!rotated) {
        /* lost a race with another use of the same token: that is reuse */
        w->store->ops->revoke_family(w->store, family, now, NULL);
        rp_log(RP_LOG_WARN, "auth", "refresh token reused concurrently; family %s revoked", family);
        rp_reply_error(rep, 401, "REFRESH_TOKEN_REUSED", "this refresh token was already used; sign in again", NULL);
    } else {
        rp_reply_set(rep, 200,
                     json_pack("{s:s, s:s, s:s, s:I, s:{s:s, s:s, s:o}}", "accessToken", access, "refreshToken",
                               refresh, "tokenType", "Bearer", "expiresIn", (json_int_t)w->cfg->jwt_expires_s, "user",
                               "id", a->id, "username", a->username, "roles", rp_roles_to_json(a->roles)));
    }
    sodium_memzero(refresh, sizeof refresh);
    free(access);
}

/* ---- operations ---- */

/* A new details array holding the body's unknown members (allowed: NULL-terminated), or NULL
 * with rep set when there is no object body. */
static json_t *body_details(const rp_envelope_t *env, const char *const *allowed, rp_reply_t *rep) {
    if (!rp_service_need_body(env, rep)) return NULL;
    json_t *details = json_array();
    rp_details_unknown(env->body, allowed, "", details);
    return details;
}

/* A new account record of username and email: a fresh id and its identity keys; the caller sets
 * the password hash. */
static void new_account(rp_auth_worker_t *w, const char *username, const char *email, unsigned roles, rp_account_t *a) {
    memset(a, 0, sizeof *a);
    rp_oid_new(a->id);
    snprintf(a->username, sizeof a->username, "%s", username);
    snprintf(a->email, sizeof a->email, "%s", email);
    rp_identity_key(a->username, a->username_key, sizeof a->username_key);
    rp_identity_key(a->email, a->email_key, sizeof a->email_key);
    a->roles = roles;
    a->created_at = a->updated_at = w->now_ms();
}

static void op_register(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    static const char *const allowed[] = {"username", "email", "password", NULL};
    rp_auth_worker_t *w = ctx;
    rp_err_t err;
    json_t *details = body_details(env, allowed, rep);
    if (!details) return;
    const char *username = string_field(env->body, "username", details);
    const char *email = string_field(env->body, "email", details);
    const char *password = string_field(env->body, "password", details);
    if (username && !valid_username(username))
        rp_details_add(details, "/username", "must be 3 to 32 characters of letters, digits and underscore");
    if (email && !valid_email(email)) rp_details_add(details, "/email", "must be a valid email address");
    size_t pwlen = password ? json_string_length(json_object_get(env->body, "password")) : 0;
    if (password && (pwlen < 8 || pwlen > 128)) rp_details_add(details, "/password", "must be 8 to 128 bytes");
    if (rp_service_reject_invalid(rep, details)) return;

    rp_account_t a;
    new_account(w, username, email, RP_ROLE_USER, &a);
    if (!rp_hasher_hash(w->hasher, password, pwlen, a.password_hash, &err) ||
        !w->store->ops->create_user(w->store, &a, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    json_t *out = account_json(&a);
    json_object_del(out, "updatedAt");
    rp_reply_set(rep, 201, out);
}

static void op_login(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    static const char *const allowed[] = {"username", "password", NULL};
    rp_auth_worker_t *w = ctx;
    rp_err_t err;
    rp_account_t a;
    bool found = false;
    json_t *details = body_details(env, allowed, rep);
    if (!details) return;
    const char *login = string_field(env->body, "username", details);
    const char *password = string_field(env->body, "password", details);
    if (rp_service_reject_invalid(rep, details)) return;
    size_t pwlen = json_string_length(json_object_get(env->body, "password"));
    if (strlen(login) > 254 || pwlen > 1024) {
        rp_reply_error(rep, 401, "INVALID_CREDENTIALS", "wrong username or password", NULL);
        return;
    }
    char key[256];
    rp_identity_key(login, key, sizeof key);
    if (!w->store->ops->find_by_login(w->store, key, strchr(login, '@') != NULL, &a, &found, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    if (!found) {
        rp_hasher_verify_dummy(w->hasher, password, pwlen);
        rp_reply_error(rep, 401, "INVALID_CREDENTIALS", "wrong username or password", NULL);
        return;
    }
    int64_t now = w->now_ms(), window = w->cfg->login_lockout_s * 1000, count, nth_at;
    if (!w->store->ops->failures(w->store, a.id, now - window, w->cfg->login_max_failures, &count, &nth_at, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    if (count >= w->cfg->login_max_failures) {
        /* locked until the failure that reached the limit leaves the window */
        int64_t wait_ms = nth_at + window - now;
        rp_reply_error(rep, 429, "ACCOUNT_LOCKED", "too many failed logins; try again later", NULL);
        rep->retry_after_s = wait_ms > 0 ? (int)((wait_ms + 999) / 1000) : 1;
        return;
    }
    if (!rp_hasher_verify(w->hasher, a.password_hash, password, pwlen)) {
        if (!w->store->ops->add_failure(w->store, a.id, now, now - window, &err)) {
            rp_reply_from_err(rep, &err);
            return;
        }
        if (count + 1 >= w->cfg->login_max_failures)
            rp_log(RP_LOG_WARN, "auth", "account %s locked after %d failed logins", a.id, w->cfg->login_max_failures);
        rp_reply_error(rep, 401, "INVALID_CREDENTIALS", "wrong username or password", NULL);
        return;
    }
    if (count > 0) w->store->ops->clear_failures(w->store, a.id, NULL);
    if (rp_hasher_needs_rehash(w->hasher, a.password_hash))
        rp_log(RP_LOG_INFO, "auth", "password hash of %s uses other parameters than PASSWORD_HASH", a.id);
    issue_tokens(w, &a, NULL, NULL, rep);
}

/* Reads {refreshToken} and looks the token up by its hash: false when a reply was set (a bad
 * body, a store failure); else *found says whether the store knows it, and t holds it. */
static bool find_refresh(rp_auth_worker_t *w, const rp_envelope_t *env, rp_reply_t *rep, rp_refresh_token_t *t,
                         bool *found) {
    static const char *const allowed[] = {"refreshToken", NULL};
    rp_err_t err;
    char hash[65];
    json_t *details = body_details(env, allowed, rep);
    if (!details) return false;
    const char *token = string_field(env->body, "refreshToken", details);
    if (rp_service_reject_invalid(rep, details)) return false;
    hash_refresh(w, token, json_string_length(json_object_get(env->body, "refreshToken")), hash);
    if (!w->store->ops->find_refresh(w->store, hash, t, found, &err)) {
        rp_reply_from_err(rep, &err);
        return false;
    }
    return true;
}

static void op_refresh(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_auth_worker_t *w = ctx;
    rp_err_t err;
    rp_refresh_token_t t;
    rp_account_t a;
    bool found = false;
    if (!find_refresh(w, env, rep, &t, &found)) return;
    int64_t now = w->now_ms();
    if (!found || t.expires_at <= now) {
        rp_reply_error(rep, 401, "INVALID_REFRESH_TOKEN", "the refresh token is unknown or expired", NULL);
        return;
    }
    if (t.used_at || t.revoked_at) {
        /* a dead token came back: assume it was stolen and end every session of its family */
        w->store->ops->revoke_family(w->store, t.family_id, now, NULL);
        rp_log(RP_LOG_WARN, "auth", "reuse of a rotated refresh token for user %s; family %s revoked", t.user_id,
               t.family_id);
        rp_reply_error(rep, 401, "REFRESH_TOKEN_REUSED", "this refresh token was already used; sign in again", NULL);
        return;
    }
    if (!w->store->ops->find_by_id(w->store, t.user_id, &a, &found, &err) || !found) {
        if (found)
            rp_reply_from_err(rep, &err);
        else
            rp_reply_error(rep, 401, "INVALID_REFRESH_TOKEN", "the account no longer exists", NULL);
        return;
    }
    issue_tokens(w, &a, t.family_id, t.id, rep);
}

static void op_logout(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_auth_worker_t *w = ctx;
    rp_err_t err;
    rp_refresh_token_t t;
    bool found = false;
    if (!rp_service_require_caller(env, rep) || !find_refresh(w, env, rep, &t, &found)) return;
    /* someone else's or an unknown token: answer the same, change nothing */
    if (found && strcmp(t.user_id, env->caller.id) == 0 &&
        !w->store->ops->revoke_family(w->store, t.family_id, w->now_ms(), &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    rp_reply_set(rep, 200, json_pack("{s:s}", "status", "logged_out"));
}

static void op_me(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_auth_worker_t *w = ctx;
    rp_err_t err;
    rp_account_t a;
    bool found = false;
    if (!rp_service_require_caller(env, rep)) return;
    bool read = w->store->ops->find_by_id(w->store, env->caller.id, &a, &found, &err);
    if (rp_service_found(rep, read, found, &err, "USER_NOT_FOUND", "the account no longer exists"))
        rp_reply_set(rep, 200, account_json(&a));
}

static void op_list_users(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_auth_worker_t *w = ctx;
    rp_err_t err;
    int limit;
    const char *cursor;
    rp_account_t *items = NULL;
    size_t n = 0;
    bool more = false;
    if (!rp_service_require_roles(env, RP_ROLE_ADMIN, "administrators only", rep)) return;
    if (!rp_paging_parse(env, &limit, &cursor, &err) ||
        !w->store->ops->list_users(w->store, cursor, limit, &items, &n, &more, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, account_json(&items[i]));
    free(items);
    rp_reply_set(rep, 200, rp_service_page(list, more));
}

static void op_set_roles(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    static const char *const allowed[] = {"roles", NULL};
    rp_auth_worker_t *w = ctx;
    rp_err_t err;
    rp_account_t a;
    bool found = false;
    unsigned roles = 0;
    if (!rp_service_require_roles(env, RP_ROLE_ADMIN, "administrators only", rep)) return;
    const char *id = rp_service_path_id(env, "id", "USER_NOT_FOUND", "no such account", rep);
    json_t *details = id ? body_details(env, allowed, rep) : NULL;
    if (!details) return;
    if (!rp_roles_from_json(json_object_get(env->body, "roles"), &roles, &err))
        rp_details_add(details, "/roles", err.message);
    if (rp_service_reject_invalid(rep, details)) return;
    bool read = w->store->ops->find_by_id(w->store, id, &a, &found, &err);
    if (!rp_service_found(rep, read, found, &err, "USER_NOT_FOUND", "no such account")) return;
    if ((a.roles & RP_ROLE_ADMIN) && !(roles & RP_ROLE_ADMIN)) {
        int64_t admins = 0;
        if (!w->store->ops->count_with_role(w->store, RP_ROLE_ADMIN, &admins, &err)) {
            rp_reply_from_err(rep, &err);
            return;
        }
        if (admins <= 1) {
            rp_reply_error(rep, 409, "LAST_ADMIN", "the last administrator cannot lose the ADMIN role", NULL);
            return;
        }
    }
    json_t *before = rp_roles_to_json(a.roles), *after = rp_roles_to_json(roles);
    rp_audit_entry_t audit = {env->caller.id, env->caller.username, "user.roles.update", "user", a.id, before,
                              after,          w->now_ms()};
    bool ok = w->store->ops->set_roles(w->store, a.id, roles, audit.at, &audit, &found, &err);
    json_decref(before);
    json_decref(after);
    if (!rp_service_found(rep, ok, found, &err, "USER_NOT_FOUND", "no such account")) return;
    rp_log(RP_LOG_INFO, "auth", "roles of %s changed by %s", a.id, env->caller.id);
    a.roles = roles;
    a.updated_at = audit.at;
    rp_reply_set(rep, 200, account_json(&a));
}

static void op_audit(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_auth_worker_t *w = ctx;
    rp_err_t err;
    int limit;
    const char *cursor, *target, *actor;
    json_t *items = NULL;
    bool more = false;
    if (!rp_service_require_roles(env, RP_ROLE_AUDITOR | RP_ROLE_ADMIN, "auditors and administrators only", rep))
        return;
    if (!rp_paging_parse(env, &limit, &cursor, &err) || !rp_query_oid(env, "targetId", &target, &err) ||
        !rp_query_oid(env, "actorId", &actor, &err) ||
        !w->store->ops->list_audit(w->store, target, actor, cursor, limit, &items, &more, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    rp_reply_set(rep, 200, rp_service_page(items, more));
}

/* RP_ACCOUNTS_ROUTE (accounts.h): the other workers asking which ids name accounts. */
static void op_accounts(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_auth_worker_t *w = ctx;
    rp_err_t err;
    json_t *ids = json_object_get(env->body, "ids");
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > RP_ACCOUNTS_MAX) {
        rp_service_reject_field(rep, "the request body is invalid", "/ids", "must be an array of 1 to 1000 ids");
        return;
    }
    json_t *states = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        const char *id = json_string_value(v);
        rp_account_t a;
        bool found = false;
        if (!id || !rp_oid_valid(id, json_string_length(v))) {
            json_decref(states);
            rp_service_reject_field(rep, "the request body is invalid", "/ids", "must hold ObjectIds only");
            return;
        }
        if (!w->store->ops->find_by_id(w->store, id, &a, &found, &err)) {
            json_decref(states);
            rp_reply_from_err(rep, &err);
            return;
        }
        json_array_append_new(states, json_string(found ? "ACTIVE" : "UNKNOWN"));
    }
    rp_reply_set(rep, 200, json_pack("{s:o}", "states", states));
}

static const rp_route_op_t ops[] = {
    {"POST", "/auth/register", op_register},
    {"POST", "/auth/login", op_login},
    {"POST", "/auth/refresh", op_refresh},
    {"POST", "/auth/logout", op_logout},
    {"GET", "/auth/me", op_me},
    {"GET", "/auth/users", op_list_users},
    {"PUT", "/auth/users/{id}/roles", op_set_roles},
    {"GET", "/auth/audit-log", op_audit},
    {"POST", RP_ACCOUNTS_ROUTE, op_accounts},
};

static bool bootstrap_admin(rp_auth_worker_t *w, rp_err_t *err) {
    rp_account_t a;
    bool found = false;
    if (!w->cfg->admin_username[0]) return true;
    if (!valid_username(w->cfg->admin_username)) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID",
                   "ADMIN_USERNAME must be 3 to 32 letters, digits or underscores");
        return false;
    }
    size_t pwlen = strlen(w->cfg->admin_password);
    if (pwlen < 8 || pwlen > 128) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "ADMIN_PASSWORD must be 8 to 128 bytes");
        return false;
    }
    char key[64];
    rp_identity_key(w->cfg->admin_username, key, sizeof key);
    if (!w->store->ops->find_by_login(w->store, key, false, &a, &found, err)) return false;
    if (found) return true;
    char email[sizeof a.email];
    snprintf(email, sizeof email, "%s@admin.invalid", w->cfg->admin_username);
    new_account(w, w->cfg->admin_username, email, RP_ROLE_USER | RP_ROLE_ADMIN, &a);
    if (!rp_hasher_hash(w->hasher, w->cfg->admin_password, pwlen, a.password_hash, err)) return false;
    if (!w->store->ops->create_user(w->store, &a, err)) {
        /* another auth worker process created it first */
        if (err && err->kind == RP_ERR_CONFLICT) return true;
        return false;
    }
    rp_log(RP_LOG_INFO, "auth", "bootstrap administrator %s created", a.username);
    return true;
}

rp_auth_worker_t *rp_auth_worker_new(const rp_config_t *cfg, rp_err_t *err) {
    rp_auth_worker_t *w = rp_calloc(1, sizeof *w);
    w->cfg = cfg;
    w->now_ms = rp_now_ms;
    /* refresh tokens are stored as BLAKE2b keyed by a value derived from the JWT secret, so a
     * copy of the database alone yields no usable token */
    crypto_generichash(w->refresh_key, sizeof w->refresh_key, cfg->jwt_secret, cfg->jwt_secret_len,
                       (const unsigned char *)"rp-refresh-token-pepper", 23);
    w->hasher = rp_hasher_new(cfg->password_hash, cfg->password_hash_concurrency);
    w->store = strcmp(cfg->store, "mongodb") == 0
                   ? rp_auth_store_mongo_open(cfg->mongodb_uri, cfg->mongodb_db_name, err)
                   : rp_auth_store_sqlite_open(cfg->sqlite_dir, cfg->worker_threads + 2, err);
    w->service = (rp_service_t){"auth", ops, sizeof ops / sizeof ops[0], w, ping, free_ctx};
    if (!w->hasher || !w->store || !bootstrap_admin(w, err)) {
        if (!w->hasher) rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "unknown PASSWORD_HASH");
        rp_auth_worker_free(w);
        return NULL;
    }
    return w;
}

const rp_service_t *rp_auth_worker_service(rp_auth_worker_t *w) {
    return &w->service;
}

void rp_auth_worker_set_clock(rp_auth_worker_t *w, int64_t (*now_ms)(void)) {
    w->now_ms = now_ms;
}

void rp_auth_worker_free(rp_auth_worker_t *w) {
    if (!w) return;
    if (w->store) w->store->ops->free(w->store);
    rp_hasher_free(w->hasher);
    sodium_memzero(w->refresh_key, sizeof w->refresh_key);
    free(w);
}
