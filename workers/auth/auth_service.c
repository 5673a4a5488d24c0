/* auth_service.c - the auth worker's operations (see auth_service.h). Rules live here, above the
 * repository: field validation, lockout, refresh-token rotation and family revocation, token
 * versions (a role change, password change or disable kills every access token of the account),
 * revoked access tokens, disabled accounts, the last-admin rule. State is read-only after
 * creation except through the thread-safe store and hasher. */
#include "auth_service.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_store.h"
#include "accounts.h"
#include "apikey.h"
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
#include "service_accounts.h"
#include "session.h"
#include "session_log.h"
#include "timeutil.h"
#include "token.h"

struct rp_auth_worker {
    const rp_config_t *cfg;
    rp_auth_store_t *store;
    rp_hasher_t *hasher;
    unsigned char refresh_key[crypto_generichash_KEYBYTES];
    int64_t (*now_ms)(void);
    rp_service_t service;
    rp_service_t accounts_service; /* owns nothing: freed with service */
    rp_service_t login_service;    /* owns nothing: freed with service */
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
    return rp_identity_valid_name(u);
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
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:b}", "id", a->id, "username", a->username, "email", a->email,
                  "roles", rp_roles_to_json(a->roles), "createdAt", c, "updatedAt", u, "disabled", a->disabled);
    if (a->disabled) {
        char d[RP_ISO_LEN];
        rp_time_iso(a->disabled_at, d);
        json_object_set_new(o, "disabledReason", json_string(a->disabled_reason));
        json_object_set_new(o, "disabledAt", json_string(d));
    }
    return o;
}

/* An error reply; a full hashing queue or a busy store is worth trying again in a second. */
static void reply_err(rp_reply_t *rep, const rp_err_t *err) {
    rp_reply_from_err(rep, err);
    if (rep->status == 503) rep->retry_after_s = 1;
}

static void reply_disabled(rp_reply_t *rep) {
    rp_reply_error(rep, 403, "ACCOUNT_DISABLED", "this account is disabled", NULL);
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
    char *access = rp_token_issue(w->cfg->jwt_secret, w->cfg->jwt_secret_len, &who, a->token_version, now / 1000,
                                  w->cfg->jwt_expires_s, &err);
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
        reply_err(rep, &err);
        return;
    }
    json_t *out = account_json(&a);
    json_object_del(out, "updatedAt");
    rp_reply_set(rep, 201, out);
}

/* How a password check answers where it is made (login, password change). */
typedef struct password_check {
    const char *locked; /* 429 ACCOUNT_LOCKED message */
    int wrong_status;   /* INVALID_CREDENTIALS status */
    const char *wrong;  /* and message */
} password_check_t;

/* One password check reserved under the lockout: the attempt is recorded as a failure before
 * the hash runs, in one unit of work with the count it is judged by, so that however many checks
 * of one account run at once, at most LOGIN_MAX_FAILURES of them pass the count in a window. */
typedef struct attempt {
    rp_auth_store_t *store;
    const char *user_id;
    int64_t now, window_ms;
    int max;
    /* results */
    bool reserved;
    int64_t count, nth_at; /* failures in the window before this one; the max-th most recent's time */
} attempt_t;

static rp_txn_end_t reserve_attempt_txn(rp_auth_txn_t *tx, void *p) {
    attempt_t *a = p;
    const rp_auth_store_ops_t *o = a->store->ops;
    a->reserved = false;
    a->count = a->nth_at = 0;
    if (!o->tx_guard_failures(tx, a->user_id) ||
        !o->tx_failures(tx, a->user_id, a->now - a->window_ms, a->max, &a->count, &a->nth_at))
        return RP_TXN_FAILED;
    if (a->count >= a->max) return RP_TXN_ROLLBACK;
    if (!o->tx_add_failure(tx, a->user_id, a->now, a->now - a->window_ms)) return RP_TXN_FAILED;
    a->reserved = true;
    return RP_TXN_COMMIT;
}

/* Verifies password against account a under the lockout (LOGIN_MAX_FAILURES wrong passwords in
 * LOGIN_LOCKOUT_WINDOW lock the account until the one that reached the limit leaves the window).
 * The order is: a place on the hashing queue (503 OVERLOADED at once when none), then the
 * attempt reserved as a failure (429 ACCOUNT_LOCKED when the window is full: the password is not
 * even checked), then the hash. A match forgets every failure, the reserved one included; a wrong
 * password leaves the reservation as the recorded failure. True when it matches; otherwise false
 * with rep set (OVERLOADED, ACCOUNT_LOCKED, INVALID_CREDENTIALS or the store's error). */
static bool verify_password(rp_auth_worker_t *w, const rp_account_t *a, const char *password, size_t len,
                            const password_check_t *how, rp_reply_t *rep) {
    rp_err_t err;
    attempt_t at = {.store = w->store,
                    .user_id = a->id,
                    .now = w->now_ms(),
                    .window_ms = w->cfg->login_lockout_s * 1000,
                    .max = w->cfg->login_max_failures};
    if (!rp_hasher_admit(w->hasher, &err)) {
        reply_err(rep, &err);
        return false;
    }
    if (!w->store->ops->transact(w->store, "reserve a password check", reserve_attempt_txn, &at, &err)) {
        rp_hasher_leave(w->hasher);
        reply_err(rep, &err);
        return false;
    }
    if (!at.reserved) {
        rp_hasher_leave(w->hasher);
        int64_t wait_ms = at.nth_at + at.window_ms - at.now;
        rp_reply_error(rep, 429, "ACCOUNT_LOCKED", how->locked, NULL);
        rep->retry_after_s = wait_ms > 0 ? (int)((wait_ms + 999) / 1000) : 1;
        return false;
    }
    if (!rp_hasher_check(w->hasher, a->password_hash, password, len)) {
        if (at.count + 1 >= at.max)
            rp_log(RP_LOG_WARN, "auth", "account %s locked after %d wrong passwords", a->id, at.max);
        rp_reply_error(rep, how->wrong_status, "INVALID_CREDENTIALS", how->wrong, NULL);
        return false;
    }
    w->store->ops->clear_failures(w->store, a->id, NULL);
    return true;
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
        reply_err(rep, &err);
        return;
    }
    if (!found) { /* as slow as a known account, and refused alike when the hashers are busy */
        if (!rp_hasher_admit(w->hasher, &err)) {
            reply_err(rep, &err);
            return;
        }
        rp_hasher_check(w->hasher, NULL, password, pwlen);
        rp_reply_error(rep, 401, "INVALID_CREDENTIALS", "wrong username or password", NULL);
        return;
    }
    static const password_check_t at_login = {"too many failed logins; try again later", 401,
                                              "wrong username or password"};
    if (!verify_password(w, &a, password, pwlen, &at_login, rep)) return;
    if (a.disabled) { /* told only to whoever knows the password */
        reply_disabled(rep);
        return;
    }
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
    if (!w->store->ops->find_by_id(w->store, t.user_id, &a, &found, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    if (found && a.disabled) {
        reply_disabled(rep);
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
    if (!found) {
        rp_reply_error(rep, 401, "INVALID_REFRESH_TOKEN", "the account no longer exists", NULL);
        return;
    }
    issue_tokens(w, &a, t.family_id, t.id, rep);
}

/* ---- units of work ---- */

/* What a unit of work decided; a body reports it through its arg, reset at its start. */
typedef enum outcome { DONE = 0, NO_ACCOUNT, NOT_ADMIN, LAST_ADMIN, PASSWORD_MOVED } outcome_t;

/* Sets rep for a refusal a unit of work decided. */
static void reply_outcome(outcome_t o, rp_reply_t *rep) {
    switch (o) {
    case DONE: break;
    case NO_ACCOUNT: rp_reply_error(rep, 404, "USER_NOT_FOUND", "no such account", NULL); break;
    case NOT_ADMIN: rp_reply_error(rep, 403, "FORBIDDEN", "administrators only", NULL); break;
    case LAST_ADMIN:
        rp_reply_error(rep, 409, "LAST_ADMIN", "at least one enabled administrator must remain", NULL);
        break;
    case PASSWORD_MOVED:
        rp_reply_error(rep, 409, "CONFLICT", "the password was changed meanwhile; try again", NULL);
        break;
    }
}

static bool enabled_admin(const rp_account_t *a) {
    return (a->roles & RP_ROLE_ADMIN) && !a->disabled;
}

/* Inside a unit of work: whether the caller is, in the store, an enabled ADMIN (*admin). */
static bool tx_caller_is_admin(rp_auth_store_t *s, rp_auth_txn_t *tx, const char *caller_id, bool *admin) {
    rp_account_t c;
    bool found = false;
    if (!s->ops->tx_find_by_id(tx, caller_id, &c, &found)) return false;
    *admin = found && enabled_admin(&c);
    return true;
}

/* Inside a unit of work, before an account goes from `before` to `after`: when that changes who
 * is an enabled ADMIN, writes the guard (so concurrent such changes serialise on every store)
 * and, when one fewer would remain, counts them: *last when it was the last. */
static bool tx_admin_rule(rp_auth_store_t *s, rp_auth_txn_t *tx, const rp_account_t *before, const rp_account_t *after,
                          bool *last) {
    int64_t admins = 0;
    *last = false;
    if (enabled_admin(before) == enabled_admin(after)) return true;
    if (!s->ops->tx_guard_admins(tx)) return false;
    if (enabled_admin(after)) return true;
    if (!s->ops->tx_count_admins(tx, &admins)) return false;
    *last = admins <= 1;
    return true;
}

/* Inside a unit of work that changes user_id's session state: tells the api processes, through
 * the change log they read (session.h), in the same transaction as the change. */
static bool tx_session_changed(const rp_auth_store_ops_t *o, rp_auth_txn_t *tx, const char *user_id, int64_t now) {
    return rp_auth_tx_log_session_change(o, tx, user_id, now, now - RP_SESSION_LOG_KEEP_MS);
}

typedef struct logout_arg {
    rp_auth_store_t *store;
    const rp_identity_t *caller;
    int64_t now;
} logout_arg_t;

/* Revokes the caller's access token until it expires; past RP_SESSION_MAX_REVOKED unexpired
 * revocations the account's version is bumped instead of listing more (session.h). */
static rp_txn_end_t logout_txn(rp_auth_txn_t *tx, void *p) {
    logout_arg_t *a = p;
    const rp_auth_store_ops_t *o = a->store->ops;
    int64_t count = 0;
    rp_account_t acc;
    bool found = false;
    if (!o->tx_revoke_access(tx, a->caller->id, a->caller->jti, a->caller->token_exp * 1000, a->now) ||
        !tx_session_changed(o, tx, a->caller->id, a->now) || !o->tx_count_revoked(tx, a->caller->id, a->now, &count))
        return RP_TXN_FAILED;
    if (count <= RP_SESSION_MAX_REVOKED) return RP_TXN_COMMIT;
    if (!o->tx_find_by_id(tx, a->caller->id, &acc, &found)) return RP_TXN_FAILED;
    if (!found) return RP_TXN_COMMIT;
    acc.token_version++;
    acc.updated_at = a->now;
    return o->tx_update_account(tx, &acc, &found) ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

static void op_logout(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_auth_worker_t *w = ctx;
    rp_err_t err;
    rp_refresh_token_t t;
    bool found = false;
    int64_t now = w->now_ms();
    if (!rp_service_require_caller(env, rep) || !find_refresh(w, env, rep, &t, &found)) return;
    /* someone else's or an unknown token: answer the same, change nothing */
    if (found && strcmp(t.user_id, env->caller.id) == 0 &&
        !w->store->ops->revoke_family(w->store, t.family_id, now, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    /* and the access token it is called with, whatever the refresh token was */
    logout_arg_t a = {w->store, &env->caller, now};
    if (env->caller.jti[0] && env->caller.token_exp * 1000 > now &&
        !w->store->ops->transact(w->store, "logout", logout_txn, &a, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    rp_reply_set(rep, 200, json_pack("{s:s}", "status", "logged_out"));
}

typedef struct password_arg {
    rp_auth_store_t *store;
    const char *user_id, *old_hash, *new_hash;
    int64_t now;
    outcome_t outcome;
} password_arg_t;

/* The new hash, a new token version and every refresh family revoked, if the password is still
 * the one the caller proved. */
static rp_txn_end_t password_txn(rp_auth_txn_t *tx, void *p) {
    password_arg_t *a = p;
    const rp_auth_store_ops_t *o = a->store->ops;
    rp_account_t acc;
    bool found = false;
    a->outcome = DONE;
    if (!o->tx_find_by_id(tx, a->user_id, &acc, &found)) return RP_TXN_FAILED;
    if (!found || strcmp(acc.password_hash, a->old_hash) != 0) {
        a->outcome = found ? PASSWORD_MOVED : NO_ACCOUNT;
        return RP_TXN_ROLLBACK;
    }
    snprintf(acc.password_hash, sizeof acc.password_hash, "%s", a->new_hash);
    acc.token_version++;
    acc.updated_at = a->now;
    rp_audit_entry_t audit = {acc.id, acc.username, "user.password.change", "user", acc.id, NULL, NULL, a->now};
    return o->tx_update_account(tx, &acc, &found) && o->tx_revoke_refresh_of(tx, acc.id, a->now) &&
                   tx_session_changed(o, tx, acc.id, a->now) && o->tx_append_audit(tx, &audit)
               ? RP_TXN_COMMIT
               : RP_TXN_FAILED;
}

/* POST /auth/password {currentPassword, newPassword}: wrong current passwords count toward the
 * login lockout. */
static void op_password(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    static const char *const allowed[] = {"currentPassword", "newPassword", NULL};
    rp_auth_worker_t *w = ctx;
    rp_err_t err;
    rp_account_t a;
    bool found = false;
    if (!rp_service_require_caller(env, rep)) return;
    json_t *details = body_details(env, allowed, rep);
    if (!details) return;
    const char *current = string_field(env->body, "currentPassword", details);
    const char *next = string_field(env->body, "newPassword", details);
    size_t curlen = current ? json_string_length(json_object_get(env->body, "currentPassword")) : 0;
    size_t newlen = next ? json_string_length(json_object_get(env->body, "newPassword")) : 0;
    if (next && (newlen < 8 || newlen > 128)) rp_details_add(details, "/newPassword", "must be 8 to 128 bytes");
    if (current && curlen > 1024) rp_details_add(details, "/currentPassword", "must be at most 1024 bytes");
    if (rp_service_reject_invalid(rep, details)) return;
    bool read = w->store->ops->find_by_id(w->store, env->caller.id, &a, &found, &err);
    if (!rp_service_found(rep, read, found, &err, "USER_NOT_FOUND", "the account no longer exists")) return;
    static const password_check_t at_change = {"too many wrong passwords; try again later", 403,
                                               "the current password is wrong"};
    if (!verify_password(w, &a, current, curlen, &at_change, rep)) return;
    int64_t now = w->now_ms();
    char hash[sizeof a.password_hash];
    if (!rp_hasher_hash(w->hasher, next, newlen, hash, &err)) {
        reply_err(rep, &err);
        return;
    }
    password_arg_t arg = {w->store, a.id, a.password_hash, hash, now, DONE};
    bool ok = w->store->ops->transact(w->store, "change password", password_txn, &arg, &err);
    sodium_memzero(hash, sizeof hash);
    if (!ok) {
        rp_reply_from_err(rep, &err);
        return;
    }
    if (arg.outcome != DONE) {
        reply_outcome(arg.outcome, rep);
        return;
    }
    rp_log(RP_LOG_INFO, "auth", "password of %s changed; its tokens are revoked", a.id);
    rp_reply_set(rep, 200, json_pack("{s:s}", "status", "password_changed"));
}

static void op_me(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_auth_worker_t *w = ctx;
    rp_err_t err;
    rp_account_t a;
    bool found = false;
    if (!rp_service_require_caller(env, rep)) return;
    bool read = w->store->ops->find_by_id(w->store, env->caller.id, &a, &found, &err);
    /* a caller signed in with an API key (no token id) is a service account, not a user */
    if (read && !found && !env->caller.jti[0] && rp_service_accounts_me(w->store, env->caller.id, rep)) return;
    if (rp_service_found(rep, read, found, &err, "USER_NOT_FOUND", "the account no longer exists"))
        rp_reply_set(rep, 200, account_json(&a));
}

/* The caller is an ADMIN by the roles the gateway sent and, read now, an enabled ADMIN in the
 * store; otherwise false with rep set (403). */
static bool require_stored_admin(rp_auth_worker_t *w, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_err_t err;
    rp_account_t c;
    bool found = false;
    if (!rp_service_require_roles(env, RP_ROLE_ADMIN, "administrators only", rep)) return false;
    if (!w->store->ops->find_by_id(w->store, env->caller.id, &c, &found, &err)) {
        rp_reply_from_err(rep, &err);
        return false;
    }
    if (!found || !enabled_admin(&c)) {
        reply_outcome(NOT_ADMIN, rep);
        return false;
    }
    return true;
}

static void op_list_users(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_auth_worker_t *w = ctx;
    rp_err_t err;
    int limit;
    const char *cursor;
    rp_account_t *items = NULL;
    size_t n = 0;
    bool more = false;
    if (!require_stored_admin(w, env, rep)) return;
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

/* An administrator's change of an account, in one unit of work: the caller must be an enabled
 * ADMIN in the store, the last enabled ADMIN is kept, the change is audited. */
typedef struct admin_change {
    rp_auth_store_t *store;
    const rp_identity_t *caller;
    const char *target_id;
    int64_t now;
    /* what to change: the roles (set_roles), or the disabled state (set_status) */
    bool set_roles;
    unsigned roles;
    bool disabled;
    const char *reason;
    /* results */
    outcome_t outcome;
    rp_account_t account; /* as written */
} admin_change_t;

/* The audit before/after of a change: roles, or the disabled state. */
static json_t *change_json(const admin_change_t *c, const rp_account_t *a) {
    if (c->set_roles) return rp_roles_to_json(a->roles);
    return a->disabled ? json_pack("{s:b, s:s}", "disabled", true, "reason", a->disabled_reason)
                       : json_pack("{s:b}", "disabled", false);
}

static rp_txn_end_t admin_change_txn(rp_auth_txn_t *tx, void *p) {
    admin_change_t *c = p;
    const rp_auth_store_ops_t *o = c->store->ops;
    rp_account_t before, after;
    bool found = false, admin = false, last = false;
    c->outcome = DONE;
    if (!tx_caller_is_admin(c->store, tx, c->caller->id, &admin)) return RP_TXN_FAILED;
    if (!admin) {
        c->outcome = NOT_ADMIN;
        return RP_TXN_ROLLBACK;
    }
    if (!o->tx_find_by_id(tx, c->target_id, &before, &found)) return RP_TXN_FAILED;
    if (!found) {
        c->outcome = NO_ACCOUNT;
        return RP_TXN_ROLLBACK;
    }
    after = before;
    if (c->set_roles) {
        after.roles = c->roles;
    } else if (c->disabled) {
        after.disabled = true;
        snprintf(after.disabled_reason, sizeof after.disabled_reason, "%s", c->reason);
        after.disabled_at = before.disabled ? before.disabled_at : c->now;
    } else {
        after.disabled = false;
        after.disabled_reason[0] = '\0';
        after.disabled_at = 0;
    }
    if (!tx_admin_rule(c->store, tx, &before, &after, &last)) return RP_TXN_FAILED;
    if (last) {
        c->outcome = LAST_ADMIN;
        return RP_TXN_ROLLBACK;
    }
    /* what the account's tokens carried is no longer true: they all die. Enabling bumps it too,
     * so that the first token after it is newer than any state a gateway cached meanwhile. */
    if (after.roles != before.roles || after.disabled != before.disabled) after.token_version++;
    after.updated_at = c->now;
    json_t *b = change_json(c, &before), *a = change_json(c, &after);
    rp_audit_entry_t audit = {c->caller->id,
                              c->caller->username,
                              c->set_roles ? "user.roles.update" : "user.status.update",
                              "user",
                              after.id,
                              b,
                              a,
                              c->now};
    bool ok = o->tx_update_account(tx, &after, &found) &&
              (!after.disabled || o->tx_revoke_refresh_of(tx, after.id, c->now)) &&
              (after.token_version == before.token_version || tx_session_changed(o, tx, after.id, c->now)) &&
              o->tx_append_audit(tx, &audit);
    json_decref(b);
    json_decref(a);
    c->account = after;
    return ok ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

/* Runs c and answers with the account as written. */
static void run_admin_change(rp_auth_worker_t *w, admin_change_t *c, rp_reply_t *rep) {
    rp_err_t err;
    if (!w->store->ops->transact(w->store, c->set_roles ? "set roles" : "set status", admin_change_txn, c, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    if (c->outcome != DONE) {
        reply_outcome(c->outcome, rep);
        return;
    }
    rp_log(RP_LOG_INFO, "auth", "%s of %s changed by %s", c->set_roles ? "roles" : "status", c->target_id,
           c->caller->id);
    rp_reply_set(rep, 200, account_json(&c->account));
}

static void op_set_roles(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    static const char *const allowed[] = {"roles", NULL};
    rp_auth_worker_t *w = ctx;
    rp_err_t err;
    unsigned roles = 0;
    if (!rp_service_require_roles(env, RP_ROLE_ADMIN, "administrators only", rep)) return;
    const char *id = rp_service_path_id(env, "id", "USER_NOT_FOUND", "no such account", rep);
    json_t *details = id ? body_details(env, allowed, rep) : NULL;
    if (!details) return;
    if (!rp_roles_from_json(json_object_get(env->body, "roles"), &roles, &err))
        rp_details_add(details, "/roles", err.message);
    if (rp_service_reject_invalid(rep, details)) return;
    admin_change_t c = {.store = w->store,
                        .caller = &env->caller,
                        .target_id = id,
                        .now = w->now_ms(),
                        .set_roles = true,
                        .roles = roles};
    run_admin_change(w, &c, rep);
}

/* PUT /auth/users/{id}/status {disabled, reason}: a disabled account's tokens and refresh
 * families die, and it cannot sign in until enabled again. */
static void op_set_status(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    static const char *const allowed[] = {"disabled", "reason", NULL};
    rp_auth_worker_t *w = ctx;
    if (!rp_service_require_roles(env, RP_ROLE_ADMIN, "administrators only", rep)) return;
    const char *id = rp_service_path_id(env, "id", "USER_NOT_FOUND", "no such account", rep);
    json_t *details = id ? body_details(env, allowed, rep) : NULL;
    if (!details) return;
    json_t *disabled = json_object_get(env->body, "disabled");
    json_t *reason = json_object_get(env->body, "reason");
    if (!disabled)
        rp_details_add(details, "/disabled", "is required");
    else if (!json_is_boolean(disabled))
        rp_details_add(details, "/disabled", "must be a boolean");
    if (reason && (!json_is_string(reason) || json_string_length(reason) > 255 ||
                   strlen(json_string_value(reason)) != json_string_length(reason)))
        rp_details_add(details, "/reason", "must be a string of at most 255 bytes");
    if (rp_service_reject_invalid(rep, details)) return;
    admin_change_t c = {.store = w->store,
                        .caller = &env->caller,
                        .target_id = id,
                        .now = w->now_ms(),
                        .disabled = json_is_true(disabled),
                        .reason = reason ? json_string_value(reason) : ""};
    run_admin_change(w, &c, rep);
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
        json_array_append_new(states, json_string(!found ? "UNKNOWN" : a.disabled ? "DISABLED" : "ACTIVE"));
    }
    rp_reply_set(rep, 200, json_pack("{s:o}", "states", states));
}

/* The session state of account user_id into *st (*found false: no such account); false with
 * err when the store fails. */
static bool session_state(rp_auth_worker_t *w, const char *user_id, rp_session_state_t *st, bool *found,
                          rp_err_t *err) {
    rp_account_t a;
    bool more = false;
    memset(st, 0, sizeof *st);
    *found = false;
    if (!w->store->ops->find_by_id(w->store, user_id, &a, found, err)) return false;
    if (!*found) return true;
    if (!w->store->ops->revoked_access(w->store, a.id, w->now_ms(), RP_SESSION_MAX_REVOKED, st->revoked, &st->n_revoked,
                                       &more, err))
        return false;
    st->roles = a.roles;
    st->token_version = a.token_version;
    st->disabled = a.disabled;
    return true;
}

/* RP_SESSION_ROUTE (session.h): the gateway asking for the state it checks access tokens against. */
static void op_session(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_err_t err;
    bool found = false;
    rp_session_state_t st;
    json_t *user = json_object_get(env->body, "userId");
    if (!json_is_string(user) || !rp_oid_valid(json_string_value(user), json_string_length(user))) {
        rp_service_reject_field(rep, "the request body is invalid", "/userId", "must be an ObjectId");
        return;
    }
    bool read = session_state(ctx, json_string_value(user), &st, &found, &err);
    if (rp_service_found(rep, read, found, &err, "USER_NOT_FOUND", "no such account"))
        rp_reply_set(rep, 200, rp_session_to_json(&st));
}

/* RP_SESSIONS_ROUTE (session.h): the same for several accounts at once. */
static void op_sessions(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_err_t err;
    json_t *ids = json_object_get(env->body, "userIds");
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > RP_SESSIONS_MAX) {
        rp_service_reject_field(rep, "the request body is invalid", "/userIds", "must be an array of 1 to 64 ids");
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        if (!json_is_string(v) || !rp_oid_valid(json_string_value(v), json_string_length(v))) {
            rp_service_reject_field(rep, "the request body is invalid", "/userIds", "must hold ObjectIds only");
            return;
        }
    }
    json_t *sessions = json_array();
    json_array_foreach(ids, i, v) {
        rp_session_state_t st;
        bool found = false;
        if (!session_state(ctx, json_string_value(v), &st, &found, &err)) {
            json_decref(sessions);
            rp_reply_from_err(rep, &err);
            return;
        }
        json_array_append_new(sessions, found ? rp_session_to_json(&st) : json_null());
    }
    rp_reply_set(rep, 200, json_pack("{s:o}", "sessions", sessions));
}

/* RP_SESSION_CHANGES_ROUTE (session.h): an api process reading the log of session changes. */
static void op_session_changes(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_auth_worker_t *w = ctx;
    rp_err_t err;
    json_t *after = json_object_get(env->body, "after");
    if (!json_is_integer(after) || json_integer_value(after) < -1) {
        rp_service_reject_field(rep, "the request body is invalid", "/after", "must be an integer of -1 or more");
        return;
    }
    rp_session_changes_t *c = rp_malloc(sizeof *c);
    if (!rp_auth_session_changes(w->store, json_integer_value(after), RP_SESSION_CHANGES_MAX, c->user_ids, &c->n,
                                 &c->last, &c->more, &c->complete, &err)) {
        free(c);
        rp_reply_from_err(rep, &err);
        return;
    }
    json_t *ids = json_array();
    for (size_t i = 0; i < c->n; i++)
        json_array_append_new(ids, json_string(c->user_ids[i]));
    rp_reply_set(rep, 200,
                 json_pack("{s:I, s:o, s:b, s:b}", "last", (json_int_t)c->last, "userIds", ids, "more", c->more,
                           "complete", c->complete));
    free(c);
}

/* ---- service accounts (service_accounts.c): ADMIN, checked against the store first ---- */

#define SERVICE_OP(name_, fn_)                                                                                         \
    static void name_(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {                                          \
        rp_auth_worker_t *w = ctx;                                                                                     \
        if (require_stored_admin(w, env, rep)) fn_(w->store, w->now_ms(), env, rep);                                   \
    }
SERVICE_OP(op_service_create, rp_service_accounts_create)
SERVICE_OP(op_service_list, rp_service_accounts_list)
SERVICE_OP(op_service_delete, rp_service_accounts_delete)
SERVICE_OP(op_service_rotate, rp_service_accounts_rotate)
SERVICE_OP(op_service_revoke, rp_service_accounts_revoke)

/* RP_APIKEY_ROUTE (apikey.h): the gateway asking what a key hash stands for. */
static void op_api_key(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_auth_worker_t *w = ctx;
    rp_service_accounts_lookup(w->store, w->now_ms(), env, rep);
}

static const rp_route_op_t ops[] = {
    {"POST", "/auth/refresh", op_refresh},
    {"POST", "/auth/logout", op_logout},
    {"GET", "/auth/me", op_me},
    {"GET", "/auth/users", op_list_users},
    {"PUT", "/auth/users/{id}/roles", op_set_roles},
    {"PUT", "/auth/users/{id}/status", op_set_status},
    {"GET", "/auth/audit-log", op_audit},
    {"POST", RP_SESSION_ROUTE, op_session},
    {"POST", RP_SESSIONS_ROUTE, op_sessions},
    {"POST", RP_SESSION_CHANGES_ROUTE, op_session_changes},
    {"POST", "/auth/service-accounts", op_service_create},
    {"GET", "/auth/service-accounts", op_service_list},
    {"DELETE", "/auth/service-accounts/{id}", op_service_delete},
    {"POST", "/auth/service-accounts/{id}/keys", op_service_rotate},
    {"DELETE", "/auth/service-accounts/{id}/keys/{keyId}", op_service_revoke},
    {"POST", RP_APIKEY_ROUTE, op_api_key},
};

/* the operations that hash a password (RP_COMP_LOGIN): their own queue and threads, so a flood
 * of them waits for the hash threads there, never in front of /auth/me and refresh */
static const rp_route_op_t login_ops[] = {
    {"POST", "/auth/register", op_register},
    {"POST", "/auth/login", op_login},
    {"POST", "/auth/password", op_password},
};

/* the narrow door (RP_COMP_ACCOUNTS): the other workers may call this and nothing else */
static const rp_route_op_t account_ops[] = {
    {"POST", RP_ACCOUNTS_ROUTE, op_accounts},
};

/* Reads the account named ADMIN_USERNAME into a (*found): false with err when it cannot be read
 * or when a non-admin holds the name (someone registered it first: starting would leave the
 * platform without the administrator the operator asked for, and nobody would notice). */
static bool bootstrap_holder(rp_auth_worker_t *w, rp_account_t *a, bool *found, rp_err_t *err) {
    char key[64];
    rp_identity_key(w->cfg->admin_username, key, sizeof key);
    if (!w->store->ops->find_by_login(w->store, key, false, a, found, err)) return false;
    if (*found && !(a->roles & RP_ROLE_ADMIN)) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID",
                   "ADMIN_USERNAME %s is held by an account that is not an administrator; choose another name",
                   a->username);
        return false;
    }
    return true;
}

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
    if (!bootstrap_holder(w, &a, &found, err)) return false;
    if (found) return true;
    char email[sizeof a.email];
    snprintf(email, sizeof email, "%s@admin.invalid", w->cfg->admin_username);
    new_account(w, w->cfg->admin_username, email, RP_ROLE_USER | RP_ROLE_ADMIN, &a);
    if (!rp_hasher_hash(w->hasher, w->cfg->admin_password, pwlen, a.password_hash, err)) return false;
    if (!w->store->ops->create_user(w->store, &a, err)) {
        /* another auth worker process created it first, or a registration took the name now */
        if (err && err->kind == RP_ERR_CONFLICT) return bootstrap_holder(w, &a, &found, err);
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
    w->hasher = rp_hasher_new(cfg->password_hash, cfg->password_hash_concurrency, cfg->password_hash_queue);
    w->store = strcmp(cfg->store, "mongodb") == 0
                   ? rp_auth_store_mongo_open(cfg->mongodb_uri, cfg->mongodb_db_name, err)
                   : rp_auth_store_sqlite_open(cfg->sqlite_dir, cfg->worker_threads + 2, err);
    w->service = (rp_service_t){"auth", ops, sizeof ops / sizeof ops[0], w, ping, free_ctx, NULL};
    w->accounts_service =
        (rp_service_t){"accounts", account_ops, sizeof account_ops / sizeof account_ops[0], w, ping, NULL, NULL};
    w->login_service = (rp_service_t){"login", login_ops, sizeof login_ops / sizeof login_ops[0], w, ping, NULL, NULL};
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

const rp_service_t *rp_auth_worker_accounts_service(rp_auth_worker_t *w) {
    return &w->accounts_service;
}

const rp_service_t *rp_auth_worker_login_service(rp_auth_worker_t *w) {
    return &w->login_service;
}

void rp_auth_worker_set_clock(rp_auth_worker_t *w, int64_t (*now_ms)(void)) {
    w->now_ms = now_ms;
}

rp_hasher_t *rp_auth_worker_hasher(rp_auth_worker_t *w) {
    return w->hasher;
}

void rp_auth_worker_free(rp_auth_worker_t *w) {
    if (!w) return;
    if (w->store) w->store->ops->free(w->store);
    rp_hasher_free(w->hasher);
    sodium_memzero(w->refresh_key, sizeof w->refresh_key);
    free(w);
}
