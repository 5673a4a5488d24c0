/* auth_store_mongo.c - the auth repository on MongoDB (see auth_store_mongo.h): a client pool,
 * transactions for the multi-document writes and the unit of work, the same semantics as
 * auth_store_sqlite.c. Fields added after the first release (tokenVersion, disabled, ...) read
 * as their defaults (0, false, "") on documents that lack them. */
#include "auth_store_mongo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "mem.h"
#include "mongo_util.h"
#include "roles.h"
#include "store_handle.h"

#define USERS "users"
#define REFRESH "refresh_tokens"
#define FAILURES "login_failures"
#define REVOKED "revoked_access"
#define GUARDS "auth_guards"
#define SERVICES "service_accounts"
#define KEYS "service_keys"
#define CHANGES "session_changes" /* {_id: sequence number (int64), userId, at} */
#define ADMINS_GUARD "admins"     /* the guard document every admin-changing transaction writes */
/* in GUARDS: {latest: newest sequence number given, forgottenThrough: highest one forgotten} */
#define SESSION_LOG "sessionLog"
#define AUDIT_LOG "auth" /* this store's entries in the shared audit_logs collection */

static rp_mongo_t *db_of(rp_auth_store_t *base) {
    return rp_store_handle_backend(base);
}

static void m_free(rp_auth_store_t *base) {
    rp_store_handle_free(base);
}

/* A duplicate where none is expected (ids, token hashes) is a store error, as in SQLite. */
static void duplicate_is_error(rp_err_t *err, const char *what) {
    if (err && err->kind == RP_ERR_CONFLICT) rp_err_set(err, RP_ERR_STORE, "STORE_ERROR", "%s: duplicate key", what);
}

/* A found account replaces *out whole (the identity keys are not read back). */
static void doc_to_account(const bson_t *d, void *out) {
    rp_account_t *a = out;
    memset(a, 0, sizeof *a);
    rp_mongo_copy_str(d, "_id", a->id, sizeof a->id);
    rp_mongo_copy_str(d, "username", a->username, sizeof a->username);
    rp_mongo_copy_str(d, "email", a->email, sizeof a->email);
    rp_mongo_copy_str(d, "passwordHash", a->password_hash, sizeof a->password_hash);
    a->roles = (unsigned)rp_mongo_get_i64(d, "roles");
    a->created_at = rp_mongo_get_ms(d, "createdAt");
    a->updated_at = rp_mongo_get_ms(d, "updatedAt");
    a->token_version = rp_mongo_get_i64(d, "tokenVersion");
    a->disabled = rp_mongo_get_bool(d, "disabled");
    rp_mongo_copy_str(d, "disabledReason", a->disabled_reason, sizeof a->disabled_reason);
    a->disabled_at = rp_mongo_get_ms(d, "disabledAt");
}

static bool m_ping(rp_auth_store_t *base, rp_err_t *err) {
    return rp_mongo_ping(db_of(base), err);
}

/* Whether a duplicate-key message names the email index. The server writes "... index:
 * users_email_lower dup key: { emailLower: \"...\" }" since 4.2, but "dup key: { : \"...\" }"
 * (no field name) on 4.0, so the index name is what is looked for, and only before " dup key":
 * the key value that follows may contain anything. */
static bool duplicate_on_email(const char *msg) {
    static const char ix[] = "users_email_lower";
    const char *end = strstr(msg, " dup key");
    if (!end) return strstr(msg, "emailLower") != NULL;
    size_t n = (size_t)(end - msg);
    return n >= sizeof ix - 1 && memcmp(end - (sizeof ix - 1), ix, sizeof ix - 1) == 0;
}

static bool m_create_user(rp_auth_store_t *base, const rp_account_t *a, rp_err_t *err) {
    bson_error_t berr;
    bson_t *doc =
        BCON_NEW("_id", BCON_UTF8(a->id), "username", BCON_UTF8(a->username), "usernameLower",
                 BCON_UTF8(a->username_key), "email", BCON_UTF8(a->email), "emailLower", BCON_UTF8(a->email_key),
                 "passwordHash", BCON_UTF8(a->password_hash), "roles", BCON_INT64((int64_t)a->roles), "createdAt",
                 BCON_DATE_TIME(a->created_at), "updatedAt", BCON_DATE_TIME(a->updated_at), "tokenVersion",
                 BCON_INT64(a->token_version), "disabled", BCON_BOOL(a->disabled));
    bool ok = rp_mongo_insert(db_of(base), USERS, doc, &berr, err);
    if (!ok && rp_mongo_is_duplicate(&berr)) {
        if (duplicate_on_email(berr.message))
            rp_err_set(err, RP_ERR_CONFLICT, "EMAIL_TAKEN", "an account with this email already exists");
        else
            rp_err_set(err, RP_ERR_CONFLICT, "USERNAME_TAKEN", "this username is taken");
    }
    bson_destroy(doc);
    return ok;
}

static bool find_account(rp_auth_store_t *base, const char *field, const char *value, rp_account_t *out, bool *found,
                         rp_err_t *err) {
    return rp_mongo_fetch(db_of(base), USERS, BCON_NEW(field, BCON_UTF8(value)), doc_to_account, out, found, err);
}

static bool m_find_by_id(rp_auth_store_t *base, const char *id, rp_account_t *out, bool *found, rp_err_t *err) {
    return find_account(base, "_id", id, out, found, err);
}

static bool m_find_by_login(rp_auth_store_t *base, const char *key, bool by_email, rp_account_t *out, bool *found,
                            rp_err_t *err) {
    return find_account(base, by_email ? "emailLower" : "usernameLower", key, out, found, err);
}

static bool m_list_users(rp_auth_store_t *base, const char *after, int limit, rp_account_t **out, size_t *n, bool *more,
                         rp_err_t *err) {
    rp_mongo_rows_t rows = {.fill = doc_to_account, .elem_size = sizeof **out, .limit = limit};
    *out = NULL;
    *n = 0;
    *more = false;
    if (limit < 0) return true; /* LIMIT limit+1 = 0 in SQLite: no rows */
    bson_t *filter = after ? BCON_NEW("_id", "{", "$gt", BCON_UTF8(after), "}") : bson_new();
    bson_t *opts = BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}", "limit", BCON_INT64((int64_t)limit + 1));
    bool ok = rp_mongo_find(db_of(base), USERS, filter, opts, rp_mongo_rows_add, &rows, err);
    if (ok) {
        *out = rows.items; /* NULL when none */
        *n = rows.n;
        *more = rows.more;
    } else {
        free(rows.items);
    }
    bson_destroy(filter);
    bson_destroy(opts);
    return ok;
}

typedef struct failure_arg {
    const char *user_id;
    int64_t at, forget_before;
} failure_arg_t;

static bool failure_txn(rp_mongo_txn_t *tx, void *p) {
    failure_arg_t *a = p;
    char id[RP_OID_LEN];
    bson_t *old = BCON_NEW("userId", BCON_UTF8(a->user_id), "at", "{", "$lt", BCON_DATE_TIME(a->forget_before), "}");
    bool ok = rp_mongo_txn_delete(tx, FAILURES, old, true, NULL);
    bson_destroy(old);
    if (!ok) return false;
    rp_oid_new(id);
    bson_t *doc = BCON_NEW("_id", BCON_UTF8(id), "userId", BCON_UTF8(a->user_id), "at", BCON_DATE_TIME(a->at));
    ok = rp_mongo_txn_insert(tx, FAILURES, doc);
    bson_destroy(doc);
    return ok;
}

static bool m_add_failure(rp_auth_store_t *base, const char *user_id, int64_t at, int64_t forget_before,
                          rp_err_t *err) {
    failure_arg_t a = {user_id, at, forget_before};
    bool ok = rp_mongo_transact(db_of(base), "record login failure", failure_txn, &a, err);
    if (!ok) duplicate_is_error(err, "record login failure");
    return ok;
}

static bool m_failures(rp_auth_store_t *base, const char *user_id, int64_t since, int n, int64_t *count,
                       int64_t *nth_at, rp_err_t *err) {
    bson_t *doc = NULL;
    *count = 0;
    *nth_at = 0;
    bson_t *filter = BCON_NEW("userId", BCON_UTF8(user_id), "at", "{", "$gt", BCON_DATE_TIME(since), "}");
    bson_t *opts = BCON_NEW("sort", "{", "at", BCON_INT32(-1), "}", "skip", BCON_INT64(n > 0 ? n - 1 : 0), "projection",
                            "{", "at", BCON_INT32(1), "}");
    bool ok = rp_mongo_count(db_of(base), FAILURES, filter, count, err) &&
              rp_mongo_find_one(db_of(base), FAILURES, filter, opts, &doc, err);
    if (ok && doc) *nth_at = rp_mongo_get_ms(doc, "at");
    if (!ok) *count = 0;
    bson_destroy(doc);
    bson_destroy(filter);
    bson_destroy(opts);
    return ok;
}

static bool m_clear_failures(rp_auth_store_t *base, const char *user_id, rp_err_t *err) {
    bson_t *filter = BCON_NEW("userId", BCON_UTF8(user_id));
    bool ok = rp_mongo_delete(db_of(base), FAILURES, filter, true, NULL, err);
    bson_destroy(filter);
    return ok;
}

static bson_t *token_doc(const rp_refresh_token_t *t) {
    return BCON_NEW("_id", BCON_UTF8(t->id), "userId", BCON_UTF8(t->user_id), "familyId", BCON_UTF8(t->family_id),
                    "tokenHash", BCON_UTF8(t->token_hash), "createdAt", BCON_DATE_TIME(t->created_at), "expiresAt",
                    BCON_DATE_TIME(t->expires_at), "usedAt", BCON_NULL, "revokedAt", BCON_NULL);
}

static bool m_insert_refresh(rp_auth_store_t *base, const rp_refresh_token_t *t, rp_err_t *err) {
    bson_t *doc = token_doc(t);
    bool ok = rp_mongo_insert(db_of(base), REFRESH, doc, NULL, err);
    if (!ok) duplicate_is_error(err, "refresh insert");
    bson_destroy(doc);
    return ok;
}

static void doc_to_token(const bson_t *doc, void *p) {
    rp_refresh_token_t *out = p;
    rp_mongo_copy_str(doc, "_id", out->id, sizeof out->id);
    rp_mongo_copy_str(doc, "userId", out->user_id, sizeof out->user_id);
    rp_mongo_copy_str(doc, "familyId", out->family_id, sizeof out->family_id);
    rp_mongo_copy_str(doc, "tokenHash", out->token_hash, sizeof out->token_hash);
    out->created_at = rp_mongo_get_ms(doc, "createdAt");
    out->expires_at = rp_mongo_get_ms(doc, "expiresAt");
    out->used_at = rp_mongo_get_ms(doc, "usedAt"); /* null reads as 0 = not yet */
    out->revoked_at = rp_mongo_get_ms(doc, "revokedAt");
}

static bool m_find_refresh(rp_auth_store_t *base, const char *hash, rp_refresh_token_t *out, bool *found,
                           rp_err_t *err) {
    memset(out, 0, sizeof *out);
    return rp_mongo_fetch(db_of(base), REFRESH, BCON_NEW("tokenHash", BCON_UTF8(hash)), doc_to_token, out, found, err);
}

typedef struct rotate_arg {
    const char *old_id;
    int64_t now;
    const rp_refresh_token_t *next;
    bool rotated;
} rotate_arg_t;

static bool rotate_txn(rp_mongo_txn_t *tx, void *p) {
    rotate_arg_t *a = p;
    bool unused;
    a->rotated = false;
    /* compare-and-set: only a token neither used nor revoked may be rotated, once */
    bool ok = rp_mongo_txn_update_take(
        tx, REFRESH, BCON_NEW("_id", BCON_UTF8(a->old_id), "usedAt", BCON_NULL, "revokedAt", BCON_NULL),
        BCON_NEW("$set", "{", "usedAt", BCON_DATE_TIME(a->now), "}"), 0, &unused);
    if (!ok || !unused) return ok;
    bson_t *doc = token_doc(a->next);
    ok = rp_mongo_txn_insert(tx, REFRESH, doc);
    bson_destroy(doc);
    a->rotated = ok;
    return ok;
}

static bool m_rotate_refresh(rp_auth_store_t *base, const char *old_id, int64_t now, const rp_refresh_token_t *next,
                             bool *rotated, rp_err_t *err) {
    rotate_arg_t a = {old_id, now, next, false};
    *rotated = false;
    bool ok = rp_mongo_transact(db_of(base), "rotate", rotate_txn, &a, err);
    if (ok)
        *rotated = a.rotated;
    else
        duplicate_is_error(err, "rotate");
    return ok;
}

static bool m_revoke_family(rp_auth_store_t *base, const char *family_id, int64_t now, rp_err_t *err) {
    bson_t *filter = BCON_NEW("familyId", BCON_UTF8(family_id), "revokedAt", BCON_NULL);
    bson_t *update = BCON_NEW("$set", "{", "revokedAt", BCON_DATE_TIME(now), "}");
    bool ok = rp_mongo_update(db_of(base), REFRESH, filter, update, RP_MONGO_MANY, NULL, err);
    bson_destroy(filter);
    bson_destroy(update);
    return ok;
}

static bool m_list_audit(rp_auth_store_t *base, const char *target_id, const char *actor_id, const char *cursor,
                         int limit, json_t **items, bool *more, rp_err_t *err) {
    return rp_mongo_audit_list(db_of(base), AUDIT_LOG, NULL, target_id, actor_id, cursor, limit, items, more, err);
}

typedef struct jti_rows {
    char (*jtis)[RP_JTI_LEN];
    int limit;
    size_t n;
    bool more;
} jti_rows_t;

static bool add_jti(const bson_t *doc, void *p) {
    jti_rows_t *r = p;
    if ((int)r->n == r->limit) {
        r->more = true;
        return false;
    }
    rp_mongo_copy_str(doc, "_id", r->jtis[r->n], RP_JTI_LEN);
    r->n++;
    return true;
}

static bool m_revoked_access(rp_auth_store_t *base, const char *user_id, int64_t now, int limit,
                             char (*jtis)[RP_JTI_LEN], size_t *n, bool *more, rp_err_t *err) {
    jti_rows_t rows = {jtis, limit < 0 ? 0 : limit, 0, false};
    bson_t *filter = BCON_NEW("userId", BCON_UTF8(user_id), "expiresAt", "{", "$gt", BCON_DATE_TIME(now), "}");
    bson_t *opts = BCON_NEW("sort", "{", "expiresAt", BCON_INT32(1), "}", "limit", BCON_INT64((int64_t)rows.limit + 1),
                            "projection", "{", "_id", BCON_INT32(1), "}");
    bool ok = rp_mongo_find(db_of(base), REVOKED, filter, opts, add_jti, &rows, err);
    *n = ok ? rows.n : 0;
    *more = ok && rows.more;
    bson_destroy(filter);
    bson_destroy(opts);
    return ok;
}

/* ---- the unit of work ---- */

struct rp_auth_txn {
    rp_mongo_txn_t *tx; /* the attempt in progress: a rerun gets a new one */
    rp_auth_txn_fn fn;
    void *arg;
};

static bool run_body(rp_mongo_txn_t *tx, void *p) {
    rp_auth_txn_t *t = p;
    t->tx = tx;
    return rp_mongo_txn_end(tx, t->fn(t, t->arg));
}

static bool m_transact(rp_auth_store_t *base, const char *what, rp_auth_txn_fn fn, void *arg, rp_err_t *err) {
    rp_auth_txn_t t = {NULL, fn, arg};
    bool ok = rp_mongo_transact(db_of(base), what, run_body, &t, err);
    if (!ok) duplicate_is_error(err, what);
    return ok;
}

static bool m_tx_find_by_id(rp_auth_txn_t *t, const char *id, rp_account_t *out, bool *found) {
    return rp_mongo_txn_fetch(t->tx, USERS, BCON_NEW("_id", BCON_UTF8(id)), doc_to_account, out, found);
}

/* enabled: disabled is false or absent (accounts from before the field) */
static bool m_tx_count_admins(rp_auth_txn_t *t, int64_t *count) {
    bson_t *filter = BCON_NEW("roles", "{", "$bitsAnySet", BCON_INT64((int64_t)RP_ROLE_ADMIN), "}", "disabled", "{",
                              "$ne", BCON_BOOL(true), "}");
    bool ok = rp_mongo_txn_count(t->tx, USERS, filter, NULL, count);
    bson_destroy(filter);
    return ok;
}

/* Every admin-changing transaction increments the same document: two of them write one key,
 * so the second to write gets a WriteConflict and is rerun from the start, seeing the first's
 * result. That turns snapshot isolation's write skew into a serial order. */
static bool m_tx_guard_admins(rp_auth_txn_t *t) {
    return rp_mongo_txn_update_take(t->tx, GUARDS, BCON_NEW("_id", BCON_UTF8(ADMINS_GUARD)),
                                    BCON_NEW("$inc", "{", "n", BCON_INT64(1), "}"), RP_MONGO_UPSERT, NULL);
}

static bool m_tx_update_account(rp_auth_txn_t *t, const rp_account_t *a, bool *found) {
    bson_t *set = BCON_NEW("passwordHash", BCON_UTF8(a->password_hash), "roles", BCON_INT64((int64_t)a->roles),
                           "tokenVersion", BCON_INT64(a->token_version), "disabled", BCON_BOOL(a->disabled),
                           "updatedAt", BCON_DATE_TIME(a->updated_at));
    if (a->disabled) {
        BSON_APPEND_UTF8(set, "disabledReason", a->disabled_reason);
        BSON_APPEND_DATE_TIME(set, "disabledAt", a->disabled_at);
    } else {
        BSON_APPEND_NULL(set, "disabledReason");
        BSON_APPEND_NULL(set, "disabledAt");
    }
    bson_t *update = bson_new();
    BSON_APPEND_DOCUMENT(update, "$set", set);
    bson_destroy(set);
    return rp_mongo_txn_update_take(t->tx, USERS, BCON_NEW("_id", BCON_UTF8(a->id)), update, 0, found);
}

static bool m_tx_revoke_refresh_of(rp_auth_txn_t *t, const char *user_id, int64_t now) {
    return rp_mongo_txn_update_take(t->tx, REFRESH, BCON_NEW("userId", BCON_UTF8(user_id), "revokedAt", BCON_NULL),
                                    BCON_NEW("$set", "{", "revokedAt", BCON_DATE_TIME(now), "}"), RP_MONGO_MANY, NULL);
}

static bool m_tx_revoke_access(rp_auth_txn_t *t, const char *user_id, const char *jti, int64_t expires_at,
                               int64_t now) {
    bson_t *old = BCON_NEW("userId", BCON_UTF8(user_id), "expiresAt", "{", "$lte", BCON_DATE_TIME(now), "}");
    bool ok = rp_mongo_txn_delete(t->tx, REVOKED, old, true, NULL);
    bson_destroy(old);
    /* an upsert, so that recording a token twice is no duplicate key (which aborts a transaction) */
    return ok && rp_mongo_txn_update_take(t->tx, REVOKED, BCON_NEW("_id", BCON_UTF8(jti)),
                                          BCON_NEW("$setOnInsert", "{", "userId", BCON_UTF8(user_id), "expiresAt",
                                                   BCON_DATE_TIME(expires_at), "}"),
                                          RP_MONGO_UPSERT, NULL);
}

static bool m_tx_count_revoked(rp_auth_txn_t *t, const char *user_id, int64_t now, int64_t *count) {
    bson_t *filter = BCON_NEW("userId", BCON_UTF8(user_id), "expiresAt", "{", "$gt", BCON_DATE_TIME(now), "}");
    bool ok = rp_mongo_txn_count(t->tx, REVOKED, filter, NULL, count);
    bson_destroy(filter);
    return ok;
}

static bool m_tx_append_audit(rp_auth_txn_t *t, const rp_audit_entry_t *entry) {
    return rp_mongo_audit_append(t->tx, AUDIT_LOG, entry);
}

/* The account's own document takes the write, so only reservations on the same account (and
 * that account's other units of work) conflict and rerun. */
static bool m_tx_guard_failures(rp_auth_txn_t *t, const char *user_id) {
    return rp_mongo_txn_update_take(t->tx, USERS, BCON_NEW("_id", BCON_UTF8(user_id)),
                                    BCON_NEW("$inc", "{", "failureGuard", BCON_INT64(1), "}"), 0, NULL);
}

static bool m_tx_failures(rp_auth_txn_t *t, const char *user_id, int64_t since, int n, int64_t *count,
                          int64_t *nth_at) {
    bson_t *doc = NULL;
    *count = 0;
    *nth_at = 0;
    bson_t *filter = BCON_NEW("userId", BCON_UTF8(user_id), "at", "{", "$gt", BCON_DATE_TIME(since), "}");
    bool ok =
        rp_mongo_txn_count(t->tx, FAILURES, filter, NULL, count) &&
        rp_mongo_txn_find_one_take(t->tx, FAILURES, bson_copy(filter),
                                   BCON_NEW("sort", "{", "at", BCON_INT32(-1), "}", "skip",
                                            BCON_INT64(n > 0 ? n - 1 : 0), "projection", "{", "at", BCON_INT32(1), "}"),
                                   &doc);
    if (ok && doc) *nth_at = rp_mongo_get_ms(doc, "at");
    if (!ok) *count = 0;
    bson_destroy(doc);
    bson_destroy(filter);
    return ok;
}

static bool m_tx_add_failure(rp_auth_txn_t *t, const char *user_id, int64_t at, int64_t forget_before) {
    failure_arg_t a = {user_id, at, forget_before};
    return failure_txn(t->tx, &a);
}

/* ---- service accounts and their keys ---- */

static void doc_to_service(const bson_t *d, void *out) {
    rp_service_account_t *a = out;
    memset(a, 0, sizeof *a);
    rp_mongo_copy_str(d, "_id", a->id, sizeof a->id);
    rp_mongo_copy_str(d, "name", a->name, sizeof a->name);
    a->roles = (unsigned)rp_mongo_get_i64(d, "roles");
    rp_mongo_copy_str(d, "createdBy", a->created_by, sizeof a->created_by);
    a->created_at = rp_mongo_get_ms(d, "createdAt");
}

static void doc_to_key(const bson_t *d, void *out) {
    rp_service_key_t *k = out;
    memset(k, 0, sizeof *k);
    rp_mongo_copy_str(d, "_id", k->id, sizeof k->id);
    rp_mongo_copy_str(d, "accountId", k->account_id, sizeof k->account_id);
    rp_mongo_copy_str(d, "keyHash", k->key_hash, sizeof k->key_hash);
    k->created_at = rp_mongo_get_ms(d, "createdAt");
    k->expires_at = rp_mongo_get_ms(d, "expiresAt"); /* null reads as 0: no expiry */
    k->revoked_at = rp_mongo_get_ms(d, "revokedAt");
    k->last_used_at = rp_mongo_get_ms(d, "lastUsedAt");
}

/* account_id's keys live at now: not revoked, no expiry or one after now (as KEY_LIVE in SQLite) */
static bson_t *live_keys(const char *account_id, int64_t now) {
    return BCON_NEW("accountId", BCON_UTF8(account_id), "revokedAt", BCON_NULL, "$or", "[", "{", "expiresAt", BCON_NULL,
                    "}", "{", "expiresAt", "{", "$gt", BCON_DATE_TIME(now), "}", "}", "]");
}

static bool m_list_services(rp_auth_store_t *base, const char *after, int limit, rp_service_account_t **out, size_t *n,
                            bool *more, rp_err_t *err) {
    rp_mongo_rows_t rows = {.fill = doc_to_service, .elem_size = sizeof **out, .limit = limit};
    *out = NULL;
    *n = 0;
    *more = false;
    if (limit < 0) return true;
    bson_t *filter = after ? BCON_NEW("_id", "{", "$gt", BCON_UTF8(after), "}") : bson_new();
    bson_t *opts = BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}", "limit", BCON_INT64((int64_t)limit + 1));
    bool ok = rp_mongo_find(db_of(base), SERVICES, filter, opts, rp_mongo_rows_add, &rows, err);
    if (ok) {
        *out = rows.items;
        *n = rows.n;
        *more = rows.more;
    } else {
        free(rows.items);
    }
    bson_destroy(filter);
    bson_destroy(opts);
    return ok;
}

static bool m_find_service(rp_auth_store_t *base, const char *id, rp_service_account_t *out, bool *found,
                           rp_err_t *err) {
    return rp_mongo_fetch(db_of(base), SERVICES, BCON_NEW("_id", BCON_UTF8(id)), doc_to_service, out, found, err);
}

static bool m_service_keys(rp_auth_store_t *base, const char *account_id, int64_t now, rp_service_key_t *keys,
                           size_t cap, size_t *n, rp_err_t *err) {
    rp_mongo_rows_t rows = {.fill = doc_to_key, .elem_size = sizeof *keys, .limit = (int)cap};
    *n = 0;
    bson_t *filter = live_keys(account_id, now);
    bson_t *opts = BCON_NEW("sort", "{", "createdAt", BCON_INT32(1), "_id", BCON_INT32(1), "}", "limit",
                            BCON_INT64((int64_t)cap + 1));
    bool ok = rp_mongo_find(db_of(base), KEYS, filter, opts, rp_mongo_rows_add, &rows, err);
    if (ok && rows.n) memcpy(keys, rows.items, rows.n * sizeof *keys);
    if (ok) *n = rows.n;
    free(rows.items);
    bson_destroy(filter);
    bson_destroy(opts);
    return ok;
}

static bool m_find_key(rp_auth_store_t *base, const char *key_hash, rp_service_key_t *key,
                       rp_service_account_t *account, bool *found, rp_err_t *err) {
    bool has_key = false;
    memset(key, 0, sizeof *key);
    memset(account, 0, sizeof *account);
    *found = false;
    if (!rp_mongo_fetch(db_of(base), KEYS, BCON_NEW("keyHash", BCON_UTF8(key_hash)), doc_to_key, key, &has_key, err))
        return false;
    if (!has_key) return true;
    return rp_mongo_fetch(db_of(base), SERVICES, BCON_NEW("_id", BCON_UTF8(key->account_id)), doc_to_service, account,
                          found, err);
}

static bool m_touch_key(rp_auth_store_t *base, const char *key_id, int64_t now, int64_t before, rp_err_t *err) {
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(key_id), "$or", "[", "{", "lastUsedAt", BCON_NULL, "}", "{",
                              "lastUsedAt", "{", "$lt", BCON_DATE_TIME(before), "}", "}", "]");
    bson_t *update = BCON_NEW("$set", "{", "lastUsedAt", BCON_DATE_TIME(now), "}");
    bool ok = rp_mongo_update(db_of(base), KEYS, filter, update, 0, NULL, err);
    bson_destroy(filter);
    bson_destroy(update);
    return ok;
}

static bool m_tx_find_service(rp_auth_txn_t *t, const char *id, rp_service_account_t *out, bool *found) {
    return rp_mongo_txn_fetch(t->tx, SERVICES, BCON_NEW("_id", BCON_UTF8(id)), doc_to_service, out, found);
}

static bool m_tx_insert_service(rp_auth_txn_t *t, const rp_service_account_t *a, bool *taken) {
    bson_t *doc = BCON_NEW("_id", BCON_UTF8(a->id), "name", BCON_UTF8(a->name), "nameLower", BCON_UTF8(a->name_key),
                           "roles", BCON_INT64((int64_t)a->roles), "createdAt", BCON_DATE_TIME(a->created_at));
    rp_mongo_append_opt(doc, "createdBy", a->created_by);
    return rp_mongo_txn_insert_take(t->tx, SERVICES, doc, taken);
}

static bool m_tx_delete_service(rp_auth_txn_t *t, const char *id, bool *found) {
    int64_t deleted = 0;
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    bool ok = rp_mongo_txn_delete(t->tx, SERVICES, filter, false, &deleted);
    bson_destroy(filter);
    *found = ok && deleted > 0;
    return ok;
}

static bool m_tx_insert_key(rp_auth_txn_t *t, const rp_service_key_t *k) {
    bson_t *doc =
        BCON_NEW("_id", BCON_UTF8(k->id), "accountId", BCON_UTF8(k->account_id), "keyHash", BCON_UTF8(k->key_hash),
                 "createdAt", BCON_DATE_TIME(k->created_at), "revokedAt", BCON_NULL, "lastUsedAt", BCON_NULL);
    rp_mongo_append_ms(doc, "expiresAt", k->expires_at);
    bool ok = rp_mongo_txn_insert(t->tx, KEYS, doc);
    bson_destroy(doc);
    return ok;
}

static bool m_tx_retire_keys(rp_auth_txn_t *t, const char *account_id, int64_t now, int64_t until) {
    if (until <= now)
        return rp_mongo_txn_update_take(t->tx, KEYS, live_keys(account_id, now),
                                        BCON_NEW("$set", "{", "revokedAt", BCON_DATE_TIME(now), "}"), RP_MONGO_MANY,
                                        NULL);
    /* live and ending after until (until > now): no expiry, or a later one */
    return rp_mongo_txn_update_take(
        t->tx, KEYS,
        BCON_NEW("accountId", BCON_UTF8(account_id), "revokedAt", BCON_NULL, "$or", "[", "{", "expiresAt", BCON_NULL,
                 "}", "{", "expiresAt", "{", "$gt", BCON_DATE_TIME(until), "}", "}", "]"),
        BCON_NEW("$set", "{", "expiresAt", BCON_DATE_TIME(until), "}"), RP_MONGO_MANY, NULL);
}

static bool m_tx_revoke_key(rp_auth_txn_t *t, const char *account_id, const char *key_id, int64_t now, bool *found) {
    /* one already revoked keeps its time: only an unrevoked key is written */
    bool unrevoked = false;
    *found = false;
    if (!rp_mongo_txn_update_take(
            t->tx, KEYS, BCON_NEW("_id", BCON_UTF8(key_id), "accountId", BCON_UTF8(account_id), "revokedAt", BCON_NULL),
            BCON_NEW("$set", "{", "revokedAt", BCON_DATE_TIME(now), "}"), 0, &unrevoked))
        return false;
    if (unrevoked) {
        *found = true;
        return true;
    }
    rp_service_key_t k;
    return rp_mongo_txn_fetch(t->tx, KEYS, BCON_NEW("_id", BCON_UTF8(key_id), "accountId", BCON_UTF8(account_id)),
                              doc_to_key, &k, found);
}

static bool m_tx_count_keys(rp_auth_txn_t *t, const char *account_id, int64_t now, int64_t *count) {
    bson_t *filter = live_keys(account_id, now);
    bool ok = rp_mongo_txn_count(t->tx, KEYS, filter, NULL, count);
    bson_destroy(filter);
    return ok;
}

/* ---- the log of session changes ---- */

static bson_t *session_log_id(void) {
    return BCON_NEW("_id", BCON_UTF8(SESSION_LOG));
}

/* The counter's increment comes first: it is the write two appends conflict on, so the second
 * is rerun after the first commits and numbers follow commit order. */
static bool m_tx_session_log_next(rp_auth_txn_t *t, int64_t *seq, int64_t *forgotten) {
    bson_t *log = NULL;
    bool ok = rp_mongo_txn_update_take(t->tx, GUARDS, session_log_id(),
                                       BCON_NEW("$inc", "{", "latest", BCON_INT64(1), "}"), RP_MONGO_UPSERT, NULL) &&
              rp_mongo_txn_find_one_take(t->tx, GUARDS, session_log_id(), NULL, &log);
    if (ok && !log) ok = rp_mongo_txn_fail(t->tx, RP_ERR_STORE, "STORE_ERROR", "the session log has no counter");
    if (ok) {
        *seq = rp_mongo_get_i64(log, "latest");
        *forgotten = rp_mongo_get_i64(log, "forgottenThrough");
    }
    bson_destroy(log);
    return ok;
}

static bool m_tx_session_log_append(rp_auth_txn_t *t, int64_t seq, const char *user_id, int64_t at) {
    bson_t *doc = BCON_NEW("_id", BCON_INT64(seq), "userId", BCON_UTF8(user_id), "at", BCON_DATE_TIME(at));
    bool ok = rp_mongo_txn_insert(t->tx, CHANGES, doc);
    bson_destroy(doc);
    return ok;
}

static bool m_tx_session_log_newest_before(rp_auth_txn_t *t, int64_t before, int64_t *seq) {
    bson_t *old = NULL;
    bool ok = rp_mongo_txn_find_one_take(
        t->tx, CHANGES, BCON_NEW("at", "{", "$lt", BCON_DATE_TIME(before), "}"),
        BCON_NEW("sort", "{", "_id", BCON_INT32(-1), "}", "projection", "{", "_id", BCON_INT32(1), "}"), &old);
    *seq = ok && old ? rp_mongo_get_i64(old, "_id") : 0;
    bson_destroy(old);
    return ok;
}

static bool m_tx_session_log_forget(rp_auth_txn_t *t, int64_t through) {
    bson_t *gone = BCON_NEW("_id", "{", "$lte", BCON_INT64(through), "}");
    bool ok = rp_mongo_txn_update_take(t->tx, GUARDS, session_log_id(),
                                       BCON_NEW("$max", "{", "forgottenThrough", BCON_INT64(through), "}"), 0, NULL) &&
              rp_mongo_txn_delete(t->tx, CHANGES, gone, true, NULL);
    bson_destroy(gone);
    return ok;
}

typedef struct change_rows {
    int64_t *seqs;
    char (*user_ids)[RP_OID_LEN];
    size_t n, limit;
} change_rows_t;

static bool add_change(const bson_t *doc, void *p) {
    change_rows_t *r = p;
    if (r->n == r->limit) return false; /* a server that sent more than asked is not believed */
    r->seqs[r->n] = rp_mongo_get_i64(doc, "_id");
    rp_mongo_copy_str(doc, "userId", r->user_ids[r->n], RP_OID_LEN);
    r->n++;
    return true;
}

static bool m_session_log_counter(rp_auth_store_t *base, int64_t *latest, int64_t *forgotten, rp_err_t *err) {
    bson_t *doc = NULL, *id = session_log_id();
    bool ok = rp_mongo_find_one(db_of(base), GUARDS, id, NULL, &doc, err);
    /* no counter yet: a log never written */
    *latest = ok && doc ? rp_mongo_get_i64(doc, "latest") : 0;
    *forgotten = ok && doc ? rp_mongo_get_i64(doc, "forgottenThrough") : 0;
    bson_destroy(id);
    bson_destroy(doc);
    return ok;
}

static bool m_session_changes_between(rp_auth_store_t *base, int64_t after, int64_t upto, int limit, int64_t *seqs,
                                      char (*user_ids)[RP_OID_LEN], size_t *n, rp_err_t *err) {
    change_rows_t rows = {seqs, user_ids, 0, limit > 0 ? (size_t)limit : 0};
    bson_t *filter = BCON_NEW("_id", "{", "$gt", BCON_INT64(after), "$lte", BCON_INT64(upto), "}");
    bson_t *opts = BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}", "limit", BCON_INT64((int64_t)limit), "projection",
                            "{", "userId", BCON_INT32(1), "}");
    bool ok = limit <= 0 || /* a limit of 0 would be none to MongoDB */ rp_mongo_find(db_of(base), CHANGES, filter,
                                                                                      opts, add_change, &rows, err);
    *n = ok ? rows.n : 0;
    bson_destroy(filter);
    bson_destroy(opts);
    return ok;
}

static const rp_auth_store_ops_t ops = RP_AUTH_STORE_OPS(m_);

/* The identity keys are unique; tokens are found by hash and revoked by family; the lockout
 * counts a user's recent failures. */
static const rp_mongo_index_t indexes[] = {
    {USERS, "users_username_lower", NULL, true, {{"usernameLower", 1}}},
    {USERS, "users_email_lower", NULL, true, {{"emailLower", 1}}},
    {REFRESH, "refresh_tokens_hash", NULL, true, {{"tokenHash", 1}}},
    {REFRESH, "refresh_tokens_family", NULL, false, {{"familyId", 1}}},
    {FAILURES, "login_failures_user", NULL, false, {{"userId", 1}, {"at", 1}}},
    {REFRESH, "refresh_tokens_user", NULL, false, {{"userId", 1}}},
    {REVOKED, "revoked_access_user", NULL, false, {{"userId", 1}, {"expiresAt", 1}}},
    {SERVICES, "service_accounts_name_lower", NULL, true, {{"nameLower", 1}}},
    {KEYS, "service_keys_hash", NULL, true, {{"keyHash", 1}}},
    {KEYS, "service_keys_account", NULL, false, {{"accountId", 1}, {"createdAt", 1}}},
    {CHANGES, "session_changes_at", NULL, false, {{"at", 1}}},
};

/* Creates the guard document id with fields (taken) when it does not exist; an existing one
 * keeps its values. */
static bool seed_guard(rp_mongo_t *m, const char *id, bson_t *fields, rp_err_t *err) {
    rp_err_t e;
    rp_err_clear(&e);
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    bson_t *u = bson_new();
    BSON_APPEND_DOCUMENT(u, "$setOnInsert", fields);
    bool ok = rp_mongo_update(m, GUARDS, filter, u, RP_MONGO_UPSERT, NULL, &e);
    if (!ok && e.kind == RP_ERR_CONFLICT) ok = true; /* another process seeded it at the same moment */
    if (!ok && err) *err = e;
    bson_destroy(filter);
    bson_destroy(u);
    bson_destroy(fields);
    return ok;
}

/* Seeds the admins guard and the session log's counter outside any transaction (older servers
 * cannot create a collection inside one), then the audit indexes. */
static bool set_up(rp_mongo_t *m, rp_err_t *err) {
    return seed_guard(m, ADMINS_GUARD, BCON_NEW("n", BCON_INT64(0)), err) &&
           seed_guard(m, SESSION_LOG, BCON_NEW("latest", BCON_INT64(0), "forgottenThrough", BCON_INT64(0)), err) &&
           rp_mongo_audit_indexes(m, err);
}

static const rp_mongo_setup_t setup = RP_MONGO_SETUP("reward-auth", indexes, set_up);

rp_auth_store_t *rp_auth_store_mongo_open(const char *uri, const char *db_name, rp_err_t *err) {
    return rp_mongo_store_open(uri, db_name, &setup, &(rp_auth_store_t){&ops}, sizeof(rp_auth_store_t), err);
}
