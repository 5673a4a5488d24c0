/* service_accounts.c - service accounts and API keys in the auth worker (see
 * service_accounts.h). */
#include "service_accounts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikey.h"
#include "details.h"
#include "identity.h"
#include "json_util.h"
#include "log.h"
#include "paging.h"
#include "roles.h"
#include "service.h"
#include "timeutil.h"

#define NOT_FOUND "SERVICE_ACCOUNT_NOT_FOUND"

/* What a unit of work decided; reset at the body's start. */
typedef enum outcome { DONE = 0, NO_ACCOUNT, NAME_TAKEN, NO_KEY, TOO_MANY_KEYS } outcome_t;

static void reply_outcome(outcome_t o, rp_reply_t *rep) {
    switch (o) {
    case DONE: break;
    case NO_ACCOUNT: rp_reply_error(rep, 404, NOT_FOUND, "no such service account", NULL); break;
    case NAME_TAKEN: rp_reply_error(rep, 409, "NAME_TAKEN", "a service account with this name exists", NULL); break;
    case NO_KEY: rp_reply_error(rep, 404, "KEY_NOT_FOUND", "the service account has no such key", NULL); break;
    case TOO_MANY_KEYS:
        rp_reply_error(rep, 409, "TOO_MANY_KEYS",
                       "the service account has too many live keys: revoke one, or rotate without grace", NULL);
        break;
    }
}

/* ---- rendering ---- */

static json_t *key_json(const rp_service_key_t *k) {
    return json_pack("{s:s, s:o, s:o, s:o}", "keyId", k->id, "createdAt", rp_json_time_or_null(k->created_at),
                     "expiresAt", rp_json_time_or_null(k->expires_at), "lastUsedAt",
                     rp_json_time_or_null(k->last_used_at));
}

/* {id, name, roles, keyId}: what create and rotate answer (the api adds the key). */
static json_t *minted_json(const rp_service_account_t *a, const char *key_id) {
    return json_pack("{s:s, s:s, s:o, s:s}", "id", a->id, "name", a->name, "roles", rp_roles_to_json(a->roles), "keyId",
                     key_id);
}

/* ---- validation ---- */

/* The keyHash the api put into the body (a client cannot: the body schemas forbid it); NULL with
 * a detail when it is missing or malformed. */
static const char *key_hash_of(const json_t *body, json_t *details) {
    json_t *v = json_object_get(body, "keyHash");
    if (!json_is_string(v) || !rp_apikey_hash_valid(json_string_value(v), json_string_length(v))) {
        rp_details_add(details, "/keyHash", "must be the hash of a minted key");
        return NULL;
    }
    return json_string_value(v);
}

/* A new details array holding the body's unknown members, or NULL with rep set when there is no
 * object body. */
static json_t *body_details(const rp_envelope_t *env, const char *const *allowed, rp_reply_t *rep) {
    if (!rp_service_need_body(env, rep)) return NULL;
    json_t *details = json_array();
    rp_details_unknown(env->body, allowed, "", details);
    return details;
}

static void new_key(const char *account_id, const char *hash, int64_t now, rp_service_key_t *k) {
    memset(k, 0, sizeof *k);
    rp_oid_new(k->id);
    snprintf(k->account_id, sizeof k->account_id, "%s", account_id);
    snprintf(k->key_hash, sizeof k->key_hash, "%s", hash);
    k->created_at = now;
}

/* ---- create ---- */

typedef struct create_arg {
    rp_auth_store_t *store;
    const rp_identity_t *caller;
    const rp_service_account_t *account;
    const rp_service_key_t *key;
    outcome_t outcome;
} create_arg_t;

static rp_txn_end_t create_txn(rp_auth_txn_t *tx, void *p) {
    create_arg_t *c = p;
    const rp_auth_store_ops_t *o = c->store->ops;
    bool taken = false;
    c->outcome = DONE;
    if (!o->tx_insert_service(tx, c->account, &taken)) return RP_TXN_FAILED;
    if (taken) {
        c->outcome = NAME_TAKEN;
        return RP_TXN_ROLLBACK;
    }
    json_t *after = json_pack("{s:s, s:o, s:s}", "name", c->account->name, "roles", rp_roles_to_json(c->account->roles),
                              "keyId", c->key->id);
    rp_audit_entry_t audit = {
        c->caller->id, c->caller->username,   "service_account.create", "service_account", c->account->id, NULL,
        after,         c->account->created_at};
    bool ok = o->tx_insert_key(tx, c->key) && o->tx_append_audit(tx, &audit);
    json_decref(after);
    return ok ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

void rp_service_accounts_create(rp_auth_store_t *s, int64_t now, const rp_envelope_t *env, rp_reply_t *rep) {
    static const char *const allowed[] = {"name", "roles", "keyHash", NULL};
    rp_err_t err;
    unsigned roles = 0;
    json_t *details = body_details(env, allowed, rep);
    if (!details) return;
    json_t *name = json_object_get(env->body, "name");
    if (!json_is_string(name) || strlen(json_string_value(name)) != json_string_length(name) ||
        !rp_identity_valid_name(json_string_value(name)))
        rp_details_add(details, "/name", "must be 3 to 32 characters of letters, digits and underscore");
    if (!rp_roles_from_json(json_object_get(env->body, "roles"), &roles, &err))
        rp_details_add(details, "/roles", "must be a non-empty array of GAME_SERVER, OPERATOR, AUDITOR");
    else if (roles & ~(unsigned)RP_SERVICE_ROLES)
        rp_details_add(details, "/roles", "a service account may hold only GAME_SERVER, OPERATOR, AUDITOR");
    const char *hash = key_hash_of(env->body, details);
    if (rp_service_reject_invalid(rep, details)) return;

    rp_service_account_t a;
    rp_service_key_t k;
    memset(&a, 0, sizeof a);
    rp_oid_new(a.id);
    snprintf(a.name, sizeof a.name, "%s", json_string_value(name));
    rp_identity_key(a.name, a.name_key, sizeof a.name_key);
    a.roles = roles;
    snprintf(a.created_by, sizeof a.created_by, "%s", env->caller.id);
    a.created_at = now;
    new_key(a.id, hash, now, &k);
    create_arg_t c = {s, &env->caller, &a, &k, DONE};
    if (!s->ops->transact(s, "create service account", create_txn, &c, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    if (c.outcome != DONE) {
        reply_outcome(c.outcome, rep);
        return;
    }
    rp_log(RP_LOG_INFO, "auth", "service account %s (%s) created by %s with key %s", a.id, a.name, env->caller.id,
           k.id);
    rp_reply_set(rep, 201, minted_json(&a, k.id));
}

/* ---- list ---- */

void rp_service_accounts_list(rp_auth_store_t *s, int64_t now, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_err_t err;
    int limit;
    const char *cursor;
    rp_service_account_t *items = NULL;
    size_t n = 0;
    bool more = false;
    if (!rp_paging_parse(env, &limit, &cursor, &err) ||
        !s->ops->list_services(s, cursor, limit, &items, &n, &more, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        rp_service_key_t keys[RP_SERVICE_KEYS_MAX];
        size_t nk = 0;
        if (!s->ops->service_keys(s, items[i].id, now, keys, RP_SERVICE_KEYS_MAX, &nk, &err)) {
            json_decref(list);
            free(items);
            rp_reply_from_err(rep, &err);
            return;
        }
        json_t *karr = json_array();
        for (size_t j = 0; j < nk; j++)
            json_array_append_new(karr, key_json(&keys[j]));
        json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}", "id", items[i].id, "name", items[i].name, "roles",
                              rp_roles_to_json(items[i].roles), "createdAt", rp_json_time_or_null(items[i].created_at),
                              "createdBy", rp_json_str_or_null(items[i].created_by), "keys", karr);
        json_array_append_new(list, o);
    }
    free(items);
    rp_reply_set(rep, 200, rp_service_page(list, more));
}

/* ---- delete, rotate, revoke: one unit of work on an existing account ---- */

typedef enum change_kind { DELETE_ACCOUNT, ROTATE, REVOKE } change_kind_t;

typedef struct change {
    rp_auth_store_t *store;
    const rp_identity_t *caller;
    change_kind_t kind;
    const char *account_id;
    int64_t now;
    int64_t grace_s;             /* ROTATE */
    const rp_service_key_t *key; /* ROTATE: the new key */
    const char *key_id;          /* REVOKE */
    /* results */
    outcome_t outcome;
    rp_service_account_t account;
} change_t;

static const char *action_of(change_kind_t k) {
    return k == DELETE_ACCOUNT ? "service_account.delete"
           : k == ROTATE       ? "service_account.key.rotate"
                               : "service_account.key.revoke";
}

/* The body of one change: the account read, then what the kind does, then the audit entry. */
static rp_txn_end_t change_txn(rp_auth_txn_t *tx, void *p) {
    change_t *c = p;
    const rp_auth_store_ops_t *o = c->store->ops;
    bool found = false;
    json_t *before = NULL, *after = NULL;
    c->outcome = DONE;
    if (!o->tx_find_service(tx, c->account_id, &c->account, &found)) return RP_TXN_FAILED;
    if (!found) {
        c->outcome = NO_ACCOUNT;
        return RP_TXN_ROLLBACK;
    }
    switch (c->kind) {
    case DELETE_ACCOUNT:
        if (!o->tx_retire_keys(tx, c->account_id, c->now, c->now) || !o->tx_delete_service(tx, c->account_id, &found))
            return RP_TXN_FAILED;
        before = json_pack("{s:s, s:o}", "name", c->account.name, "roles", rp_roles_to_json(c->account.roles));
        break;
    case ROTATE: {
        int64_t live = 0;
        if (!o->tx_retire_keys(tx, c->account_id, c->now, c->now + c->grace_s * 1000) ||
            !o->tx_count_keys(tx, c->account_id, c->now, &live))
            return RP_TXN_FAILED;
        if (live >= RP_SERVICE_KEYS_MAX) {
            c->outcome = TOO_MANY_KEYS;
            return RP_TXN_ROLLBACK;
        }
        if (!o->tx_insert_key(tx, c->key)) return RP_TXN_FAILED;
        after = json_pack("{s:s, s:I}", "keyId", c->key->id, "graceSeconds", (json_int_t)c->grace_s);
        break;
    }
    case REVOKE:
        if (!o->tx_revoke_key(tx, c->account_id, c->key_id, c->now, &found)) return RP_TXN_FAILED;
        if (!found) {
            c->outcome = NO_KEY;
            return RP_TXN_ROLLBACK;
        }
        after = json_pack("{s:s}", "keyId", c->key_id);
        break;
    }
    rp_audit_entry_t audit = {
        c->caller->id, c->caller->username, action_of(c->kind), "service_account", c->account_id, before, after,
        c->now};
    bool ok = o->tx_append_audit(tx, &audit);
    json_decref(before);
    json_decref(after);
    return ok ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

/* Runs c; true when it was done, otherwise false with rep set. */
static bool run_change(change_t *c, rp_reply_t *rep) {
    rp_err_t err;
    if (!c->store->ops->transact(c->store, action_of(c->kind), change_txn, c, &err)) {
        rp_reply_from_err(rep, &err);
        return false;
    }
    if (c->outcome != DONE) {
        reply_outcome(c->outcome, rep);
        return false;
    }
    rp_log(RP_LOG_INFO, "auth", "%s of %s by %s", action_of(c->kind), c->account_id, c->caller->id);
    return true;
}

void rp_service_accounts_delete(rp_auth_store_t *s, int64_t now, const rp_envelope_t *env, rp_reply_t *rep) {
    const char *id = rp_service_path_id(env, "id", NOT_FOUND, "no such service account", rep);
    if (!id) return;
    change_t c = {.store = s, .caller = &env->caller, .kind = DELETE_ACCOUNT, .account_id = id, .now = now};
    if (run_change(&c, rep)) rp_reply_set(rep, 200, json_pack("{s:s, s:b}", "id", id, "deleted", 1));
}

void rp_service_accounts_rotate(rp_auth_store_t *s, int64_t now, const rp_envelope_t *env, rp_reply_t *rep) {
    static const char *const allowed[] = {"graceSeconds", "keyHash", NULL};
    const char *id = rp_service_path_id(env, "id", NOT_FOUND, "no such service account", rep);
    json_t *details = id ? body_details(env, allowed, rep) : NULL;
    if (!details) return;
    json_t *grace = json_object_get(env->body, "graceSeconds");
    if (grace && (!json_is_integer(grace) || json_integer_value(grace) < 0 ||
                  json_integer_value(grace) > RP_SERVICE_GRACE_MAX_S))
        rp_details_add(details, "/graceSeconds", "must be an integer from 0 to 604800 (7 days)");
    const char *hash = key_hash_of(env->body, details);
    if (rp_service_reject_invalid(rep, details)) return;
    rp_service_key_t k;
    new_key(id, hash, now, &k);
    change_t c = {.store = s,
                  .caller = &env->caller,
                  .kind = ROTATE,
                  .account_id = id,
                  .now = now,
                  .grace_s = grace ? json_integer_value(grace) : 0,
                  .key = &k};
    if (run_change(&c, rep)) rp_reply_set(rep, 201, minted_json(&c.account, k.id));
}

void rp_service_accounts_revoke(rp_auth_store_t *s, int64_t now, const rp_envelope_t *env, rp_reply_t *rep) {
    const char *id = rp_service_path_id(env, "id", NOT_FOUND, "no such service account", rep);
    const char *key_id = id ? rp_service_path_id(env, "keyId", "KEY_NOT_FOUND", "no such key", rep) : NULL;
    if (!key_id) return;
    change_t c = {.store = s, .caller = &env->caller, .kind = REVOKE, .account_id = id, .now = now, .key_id = key_id};
    if (run_change(&c, rep))
        rp_reply_set(rep, 200, json_pack("{s:s, s:s, s:b}", "id", id, "keyId", key_id, "revoked", 1));
}

bool rp_service_accounts_me(rp_auth_store_t *s, const char *id, rp_reply_t *rep) {
    rp_err_t err;
    rp_service_account_t a;
    bool found = false;
    if (!s->ops->find_service(s, id, &a, &found, &err)) {
        rp_reply_from_err(rep, &err);
        return true;
    }
    if (!found) return false;
    rp_reply_set(rep, 200,
                 json_pack("{s:s, s:s, s:o, s:o, s:s}", "id", a.id, "name", a.name, "roles", rp_roles_to_json(a.roles),
                           "createdAt", rp_json_time_or_null(a.created_at), "type", "SERVICE_ACCOUNT"));
    return true;
}

/* ---- the gateway's look-up ---- */

void rp_service_accounts_lookup(rp_auth_store_t *s, int64_t now, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_err_t err;
    rp_service_key_t k;
    rp_service_account_t a;
    bool found = false;
    json_t *hash = json_object_get(env->body, "keyHash");
    if (!json_is_string(hash) || !rp_apikey_hash_valid(json_string_value(hash), json_string_length(hash))) {
        rp_service_reject_field(rep, "the request body is invalid", "/keyHash", "must be 64 hex digits");
        return;
    }
    if (!s->ops->find_key(s, json_string_value(hash), &k, &a, &found, &err)) {
        rp_reply_from_err(rep, &err);
        if (rep->status == 503) rep->retry_after_s = 1;
        return;
    }
    if (!found) {
        rp_reply_error(rep, 404, "INVALID_API_KEY", "the API key is not valid", NULL);
        return;
    }
    if (k.revoked_at || (k.expires_at && k.expires_at <= now)) {
        rp_reply_error(rep, 404, "API_KEY_REVOKED", "the API key was revoked or has expired", NULL);
        return;
    }
    /* at most one write per key per RP_APIKEY_TOUCH_MS, and only when the look-up found it older:
     * losing it costs a minute of accuracy, never the request */
    if ((!k.last_used_at || k.last_used_at < now - RP_APIKEY_TOUCH_MS) &&
        !s->ops->touch_key(s, k.id, now, now - RP_APIKEY_TOUCH_MS, &err))
        rp_log(RP_LOG_WARN, "auth", "cannot record the last use of key %s: %s", k.id, err.message);
    rp_apikey_state_t st;
    memset(&st, 0, sizeof st);
    snprintf(st.account_id, sizeof st.account_id, "%s", a.id);
    snprintf(st.name, sizeof st.name, "%s", a.name);
    st.roles = a.roles;
    snprintf(st.key_id, sizeof st.key_id, "%s", k.id);
    st.expires_at = k.expires_at;
    rp_reply_set(rep, 200, rp_apikey_state_to_json(&st));
}
