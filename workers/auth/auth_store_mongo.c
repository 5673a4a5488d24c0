/* auth_store_mongo.c - the auth repository on MongoDB (see auth_store_mongo.h): a client pool,
 * transactions for the multi-document writes, the same semantics as auth_store_sqlite.c. */
#include "auth_store_mongo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "mem.h"
#include "mongo_util.h"
#include "store_handle.h"

#define USERS "users"
#define REFRESH "refresh_tokens"
#define FAILURES "login_failures"
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
                 BCON_DATE_TIME(a->created_at), "updatedAt", BCON_DATE_TIME(a->updated_at));
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

typedef struct roles_arg {
    const char *id;
    unsigned roles;
    int64_t now;
    const rp_audit_entry_t *audit;
    bool found; /* result of the last (committed) attempt */
} roles_arg_t;

static bool roles_txn(rp_mongo_txn_t *tx, void *p) {
    roles_arg_t *a = p;
    a->found = false;
    bool ok = rp_mongo_txn_update_take(
        tx, USERS, BCON_NEW("_id", BCON_UTF8(a->id)),
        BCON_NEW("$set", "{", "roles", BCON_INT64((int64_t)a->roles), "updatedAt", BCON_DATE_TIME(a->now), "}"), 0,
        &a->found);
    if (!ok || !a->found) return ok; /* no such user: nothing to audit */
    return rp_mongo_audit_append(tx, AUDIT_LOG, a->audit);
}

static bool m_set_roles(rp_auth_store_t *base, const char *id, unsigned roles, int64_t now,
                        const rp_audit_entry_t *audit, bool *found, rp_err_t *err) {
    roles_arg_t a = {id, roles, now, audit, false};
    *found = false;
    bool ok = rp_mongo_transact(db_of(base), "set roles", roles_txn, &a, err);
    if (ok) *found = a.found;
    return ok;
}

static bool m_count_with_role(rp_auth_store_t *base, unsigned role, int64_t *count, rp_err_t *err) {
    bson_t *filter = BCON_NEW("roles", "{", "$bitsAnySet", BCON_INT64((int64_t)role), "}");
    bool ok = rp_mongo_count(db_of(base), USERS, filter, count, err);
    bson_destroy(filter);
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

static const rp_auth_store_ops_t ops = RP_AUTH_STORE_OPS(m_);

/* The identity keys are unique; tokens are found by hash and revoked by family; the lockout
 * counts a user's recent failures. */
static const rp_mongo_index_t indexes[] = {
    {USERS, "users_username_lower", NULL, true, {{"usernameLower", 1}}},
    {USERS, "users_email_lower", NULL, true, {{"emailLower", 1}}},
    {REFRESH, "refresh_tokens_hash", NULL, true, {{"tokenHash", 1}}},
    {REFRESH, "refresh_tokens_family", NULL, false, {{"familyId", 1}}},
    {FAILURES, "login_failures_user", NULL, false, {{"userId", 1}, {"at", 1}}},
};

static const rp_mongo_setup_t setup = RP_MONGO_SETUP("reward-auth", indexes, rp_mongo_audit_indexes);

rp_auth_store_t *rp_auth_store_mongo_open(const char *uri, const char *db_name, rp_err_t *err) {
    return rp_mongo_store_open(uri, db_name, &setup, &(rp_auth_store_t){&ops}, sizeof(rp_auth_store_t), err);
}
