/* auth_store_sqlite.c - the auth repository on SQLite (see auth_store.h): auth.db, a connection
 * pool, the shared transaction runner for multi-statement writes. Stores and matches the identity
 * keys it is given (the folding is identity.c's). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_store.h"
#include "log.h"
#include "mem.h"
#include "roles.h"
#include "sqlite_util.h"
#include "store_handle.h"
#include "timeutil.h"

static const char v1[] = "CREATE TABLE users ("
                         "  id TEXT PRIMARY KEY,"
                         "  username TEXT NOT NULL,"
                         "  username_lower TEXT NOT NULL UNIQUE,"
                         "  email TEXT NOT NULL,"
                         "  email_lower TEXT NOT NULL UNIQUE,"
                         "  password_hash TEXT NOT NULL,"
                         "  roles INTEGER NOT NULL,"
                         "  created_at INTEGER NOT NULL,"
                         "  updated_at INTEGER NOT NULL);"
                         "CREATE TABLE login_failures ("
                         "  user_id TEXT NOT NULL REFERENCES users(id),"
                         "  at INTEGER NOT NULL);"
                         "CREATE INDEX login_failures_user ON login_failures(user_id, at);"
                         "CREATE TABLE refresh_tokens ("
                         "  id TEXT PRIMARY KEY,"
                         "  user_id TEXT NOT NULL REFERENCES users(id),"
                         "  family_id TEXT NOT NULL,"
                         "  token_hash TEXT NOT NULL UNIQUE,"
                         "  created_at INTEGER NOT NULL,"
                         "  expires_at INTEGER NOT NULL,"
                         "  used_at INTEGER,"
                         "  revoked_at INTEGER);"
                         "CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);"
                         "CREATE TABLE audit_logs ("
                         "  id TEXT PRIMARY KEY,"
                         "  actor_id TEXT,"
                         "  actor_username TEXT,"
                         "  action TEXT NOT NULL,"
                         "  target_type TEXT NOT NULL,"
                         "  target_id TEXT NOT NULL,"
                         "  before TEXT CHECK (before IS NULL OR json_valid(before)),"
                         "  after TEXT CHECK (after IS NULL OR json_valid(after)),"
                         "  at INTEGER NOT NULL);";

static const char *const steps[] = {v1, NULL};
static const rp_sqlite_schema_t schemas[] = {{"auth", steps, 1}, {NULL, NULL, 0}};

#define USER_COLUMNS "id, username, email, password_hash, roles, created_at, updated_at"

static void row_to_account(sqlite3_stmt *st, void *elem) {
    rp_account_t *a = elem;
    memset(a, 0, sizeof *a);
    rp_sqlite_col_copy(st, 0, a->id, sizeof a->id);
    rp_sqlite_col_copy(st, 1, a->username, sizeof a->username);
    rp_sqlite_col_copy(st, 2, a->email, sizeof a->email);
    rp_sqlite_col_copy(st, 3, a->password_hash, sizeof a->password_hash);
    a->roles = (unsigned)sqlite3_column_int(st, 4);
    a->created_at = sqlite3_column_int64(st, 5);
    a->updated_at = sqlite3_column_int64(st, 6);
}

/* One statement on a pooled connection: sql is prepared, bind (may be NULL) binds its
 * parameters, then row (may be NULL) reads the first row into out. *found says whether there
 * was one; a write reports its changes there instead (true when it changed a row). */
static bool one(rp_sqlite_pool_t *pool, const char *sql, void (*bind)(sqlite3_stmt *, const void *), const void *in,
                void (*row)(sqlite3_stmt *, void *), void *out, bool *found, const char *what, rp_err_t *err) {
    sqlite3_stmt *st = NULL;
    bool hit = false, ok = false;
    sqlite3 *db = rp_sqlite_pool_get(pool, err);
    if (!db) return false;
    if (rp_sqlite_prepare(db, sql, &st, err)) {
        if (bind) bind(st, in);
        if (row) {
            int r = rp_sqlite_step_row(db, st, what, err);
            if ((hit = r == 1)) {
                row(st, out);
                sqlite3_finalize(st);
            }
            ok = r >= 0;
        } else {
            int changes = 0;
            ok = rp_sqlite_run(db, st, what, &changes, err);
            hit = changes > 0;
        }
    }
    rp_sqlite_pool_put(pool, db);
    if (found) *found = ok && hit;
    return ok;
}

static rp_sqlite_pool_t *pool_of(rp_auth_store_t *base) {
    return rp_store_handle_backend(base);
}

static void s_free(rp_auth_store_t *base) {
    rp_store_handle_free(base);
}

static void bind_text1(sqlite3_stmt *st, const void *s) {
    rp_sqlite_bind_text(st, 1, s);
}

static void read_count(sqlite3_stmt *st, void *out) {
    *(int64_t *)out = sqlite3_column_int64(st, 0);
}

static bool s_ping(rp_auth_store_t *base, rp_err_t *err) {
    int64_t n;
    return one(pool_of(base), "SELECT count(*) FROM users WHERE 0", NULL, NULL, read_count, &n, NULL, "ping", err);
}

static void bind_account(sqlite3_stmt *st, const void *p) {
    const rp_account_t *a = p;
    rp_sqlite_bind_text(st, 1, a->id);
    rp_sqlite_bind_text(st, 2, a->username);
    rp_sqlite_bind_text(st, 3, a->username_key);
    rp_sqlite_bind_text(st, 4, a->email);
    rp_sqlite_bind_text(st, 5, a->email_key);
    rp_sqlite_bind_text(st, 6, a->password_hash);
    sqlite3_bind_int(st, 7, (int)a->roles);
    sqlite3_bind_int64(st, 8, a->created_at);
    sqlite3_bind_int64(st, 9, a->updated_at);
}

static bool s_create_user(rp_auth_store_t *base, const rp_account_t *a, rp_err_t *err) {
    rp_sqlite_pool_t *pool = pool_of(base);
    rp_err_t e;
    bool taken;
    rp_err_clear(&e);
    if (one(pool,
            "INSERT INTO users (id, username, username_lower, email, email_lower, password_hash, roles, created_at, "
            "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            bind_account, a, NULL, NULL, NULL, "create user", &e))
        return true;
    if (e.kind != RP_ERR_CONFLICT) {
        if (err) *err = e;
        return false;
    }
    /* which key is taken: ask, rather than parse the constraint's message */
    int64_t n = 0;
    if (!one(pool, "SELECT count(*) FROM users WHERE email_lower = ?1", bind_text1, a->email_key, read_count, &n,
             &taken, "create user", err))
        return false;
    if (n > 0)
        rp_err_set(err, RP_ERR_CONFLICT, "EMAIL_TAKEN", "an account with this email already exists");
    else
        rp_err_set(err, RP_ERR_CONFLICT, "USERNAME_TAKEN", "this username is taken");
    return false;
}

static bool s_find_by_id(rp_auth_store_t *base, const char *id, rp_account_t *out, bool *found, rp_err_t *err) {
    return one(pool_of(base), "SELECT " USER_COLUMNS " FROM users WHERE id = ?1", bind_text1, id, row_to_account, out,
               found, "find user", err);
}

static bool s_find_by_login(rp_auth_store_t *base, const char *key, bool by_email, rp_account_t *out, bool *found,
                            rp_err_t *err) {
    return one(pool_of(base),
               by_email ? "SELECT " USER_COLUMNS " FROM users WHERE email_lower = ?1"
                        : "SELECT " USER_COLUMNS " FROM users WHERE username_lower = ?1",
               bind_text1, key, row_to_account, out, found, "find user", err);
}

static bool s_list_users(rp_auth_store_t *base, const char *after, int limit, rp_account_t **out, size_t *n, bool *more,
                         rp_err_t *err) {
    rp_sqlite_pool_t *pool = pool_of(base);
    sqlite3_stmt *st = NULL;
    bool ok = false;
    *out = NULL;
    *n = 0;
    *more = false;
    sqlite3 *db = rp_sqlite_pool_get(pool, err);
    if (!db) return false;
    if (rp_sqlite_prepare(db, "SELECT " USER_COLUMNS " FROM users WHERE (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2",
                          &st, err)) {
        rp_sqlite_bind_text(st, 1, after);
        sqlite3_bind_int(st, 2, limit + 1);
        ok = rp_sqlite_collect_into(db, st, limit, row_to_account, sizeof **out, (void **)out, n, more, err);
    }
    rp_sqlite_pool_put(pool, db);
    return ok;
}

typedef struct roles_arg {
    const char *id;
    unsigned roles;
    int64_t now;
    const rp_audit_entry_t *audit;
    bool *found;
} roles_arg_t;

static bool append_audit(sqlite3 *db, const rp_audit_entry_t *a, rp_err_t *err) {
    sqlite3_stmt *st;
    char id[RP_OID_LEN];
    if (!rp_sqlite_prepare(db,
                           "INSERT INTO audit_logs (id, actor_id, actor_username, action, target_type, target_id, "
                           "before, after, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                           &st, err))
        return false;
    rp_oid_new(id);
    rp_sqlite_bind_text(st, 1, id);
    rp_sqlite_bind_text(st, 2, a->actor_id);
    rp_sqlite_bind_text(st, 3, a->actor_username);
    rp_sqlite_bind_text(st, 4, a->action);
    rp_sqlite_bind_text(st, 5, a->target_type);
    rp_sqlite_bind_text(st, 6, a->target_id);
    rp_sqlite_bind_json(st, 7, a->before);
    rp_sqlite_bind_json(st, 8, a->after);
    sqlite3_bind_int64(st, 9, a->at);
    return rp_sqlite_run(db, st, "append audit", NULL, err);
}

static rp_txn_end_t roles_body(sqlite3 *db, void *p, rp_err_t *err) {
    roles_arg_t *a = p;
    sqlite3_stmt *st;
    int changes = 0;
    if (!rp_sqlite_prepare(db, "UPDATE users SET roles = ?2, updated_at = ?3 WHERE id = ?1", &st, err))
        return RP_TXN_FAILED;
    rp_sqlite_bind_text(st, 1, a->id);
    sqlite3_bind_int(st, 2, (int)a->roles);
    sqlite3_bind_int64(st, 3, a->now);
    if (!rp_sqlite_run(db, st, "set roles", &changes, err)) return RP_TXN_FAILED;
    *a->found = changes > 0;
    if (!*a->found) return RP_TXN_ROLLBACK;
    return append_audit(db, a->audit, err) ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

static bool s_set_roles(rp_auth_store_t *base, const char *id, unsigned roles, int64_t now,
                        const rp_audit_entry_t *audit, bool *found, rp_err_t *err) {
    roles_arg_t a = {id, roles, now, audit, found};
    *found = false;
    return rp_sqlite_transact(pool_of(base), roles_body, &a, err);
}

static void bind_role(sqlite3_stmt *st, const void *role) {
    sqlite3_bind_int(st, 1, (int)*(const unsigned *)role);
}

static bool s_count_with_role(rp_auth_store_t *base, unsigned role, int64_t *count, rp_err_t *err) {
    *count = 0;
    return one(pool_of(base), "SELECT count(*) FROM users WHERE (roles & ?1) <> 0", bind_role, &role, read_count, count,
               NULL, "count roles", err);
}

typedef struct failure_arg {
    const char *user_id;
    int64_t at, forget_before;
} failure_arg_t;

static rp_txn_end_t failure_body(sqlite3 *db, void *p, rp_err_t *err) {
    failure_arg_t *a = p;
    sqlite3_stmt *st;
    if (!rp_sqlite_prepare(db, "DELETE FROM login_failures WHERE user_id = ?1 AND at < ?2", &st, err))
        return RP_TXN_FAILED;
    rp_sqlite_bind_text(st, 1, a->user_id);
    sqlite3_bind_int64(st, 2, a->forget_before);
    if (!rp_sqlite_run(db, st, "forget login failures", NULL, err) ||
        !rp_sqlite_prepare(db, "INSERT INTO login_failures (user_id, at) VALUES (?1, ?2)", &st, err))
        return RP_TXN_FAILED;
    rp_sqlite_bind_text(st, 1, a->user_id);
    sqlite3_bind_int64(st, 2, a->at);
    return rp_sqlite_run(db, st, "record login failure", NULL, err) ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

static bool s_add_failure(rp_auth_store_t *base, const char *user_id, int64_t at, int64_t forget_before,
                          rp_err_t *err) {
    failure_arg_t a = {user_id, at, forget_before};
    return rp_sqlite_transact(pool_of(base), failure_body, &a, err);
}

typedef struct failures_q {
    const char *user_id;
    int64_t since;
    int n;
} failures_q_t;

static void bind_failures(sqlite3_stmt *st, const void *p) {
    const failures_q_t *q = p;
    rp_sqlite_bind_text(st, 1, q->user_id);
    sqlite3_bind_int64(st, 2, q->since);
    sqlite3_bind_int(st, 3, q->n > 0 ? q->n - 1 : 0);
}

static void read_two(sqlite3_stmt *st, void *out) {
    ((int64_t *)out)[0] = sqlite3_column_int64(st, 0);
    ((int64_t *)out)[1] = sqlite3_column_int64(st, 1);
}

static bool s_failures(rp_auth_store_t *base, const char *user_id, int64_t since, int n, int64_t *count,
                       int64_t *nth_at, rp_err_t *err) {
    failures_q_t q = {user_id, since, n};
    int64_t v[2] = {0, 0};
    bool ok = one(pool_of(base),
                  "SELECT (SELECT count(*) FROM login_failures WHERE user_id = ?1 AND at > ?2), "
                  "(SELECT at FROM login_failures WHERE user_id = ?1 AND at > ?2 ORDER BY at DESC LIMIT 1 OFFSET ?3)",
                  bind_failures, &q, read_two, v, NULL, "count login failures", err);
    *count = v[0];
    *nth_at = v[1];
    return ok;
}

static bool s_clear_failures(rp_auth_store_t *base, const char *user_id, rp_err_t *err) {
    return one(pool_of(base), "DELETE FROM login_failures WHERE user_id = ?1", bind_text1, user_id, NULL, NULL, NULL,
               "clear login failures", err);
}

static void bind_token(sqlite3_stmt *st, const void *p) {
    const rp_refresh_token_t *t = p;
    rp_sqlite_bind_text(st, 1, t->id);
    rp_sqlite_bind_text(st, 2, t->user_id);
    rp_sqlite_bind_text(st, 3, t->family_id);
    rp_sqlite_bind_text(st, 4, t->token_hash);
    sqlite3_bind_int64(st, 5, t->created_at);
    sqlite3_bind_int64(st, 6, t->expires_at);
}

#define INSERT_TOKEN                                                                                                   \
    "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at) "                         \
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"

static bool s_insert_refresh(rp_auth_store_t *base, const rp_refresh_token_t *t, rp_err_t *err) {
    return one(pool_of(base), INSERT_TOKEN, bind_token, t, NULL, NULL, NULL, "insert refresh token", err);
}

static void row_to_token(sqlite3_stmt *st, void *elem) {
    rp_refresh_token_t *t = elem;
    rp_sqlite_col_copy(st, 0, t->id, sizeof t->id);
    rp_sqlite_col_copy(st, 1, t->user_id, sizeof t->user_id);
    rp_sqlite_col_copy(st, 2, t->family_id, sizeof t->family_id);
    rp_sqlite_col_copy(st, 3, t->token_hash, sizeof t->token_hash);
    t->created_at = sqlite3_column_int64(st, 4);
    t->expires_at = sqlite3_column_int64(st, 5);
    t->used_at = rp_sqlite_col_ms(st, 6);
    t->revoked_at = rp_sqlite_col_ms(st, 7);
}

static bool s_find_refresh(rp_auth_store_t *base, const char *hash, rp_refresh_token_t *out, bool *found,
                           rp_err_t *err) {
    memset(out, 0, sizeof *out);
    return one(pool_of(base),
               "SELECT id, user_id, family_id, token_hash, created_at, expires_at, used_at, revoked_at "
               "FROM refresh_tokens WHERE token_hash = ?1",
               bind_text1, hash, row_to_token, out, found, "find refresh token", err);
}

typedef struct rotate_arg {
    const char *old_id;
    int64_t now;
    const rp_refresh_token_t *next;
    bool *rotated;
} rotate_arg_t;

static rp_txn_end_t rotate_body(sqlite3 *db, void *p, rp_err_t *err) {
    rotate_arg_t *a = p;
    sqlite3_stmt *st;
    int changes = 0;
    if (!rp_sqlite_prepare(db,
                           "UPDATE refresh_tokens SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL "
                           "AND revoked_at IS NULL",
                           &st, err))
        return RP_TXN_FAILED;
    rp_sqlite_bind_text(st, 1, a->old_id);
    sqlite3_bind_int64(st, 2, a->now);
    if (!rp_sqlite_run(db, st, "rotate", &changes, err)) return RP_TXN_FAILED;
    if (changes != 1) return RP_TXN_ROLLBACK; /* used or revoked already: compare-and-set lost */
    if (!rp_sqlite_prepare(db, INSERT_TOKEN, &st, err)) return RP_TXN_FAILED;
    bind_token(st, a->next);
    if (!rp_sqlite_run(db, st, "insert refresh token", NULL, err)) return RP_TXN_FAILED;
    *a->rotated = true;
    return RP_TXN_COMMIT;
}

static bool s_rotate_refresh(rp_auth_store_t *base, const char *old_id, int64_t now, const rp_refresh_token_t *next,
                             bool *rotated, rp_err_t *err) {
    rotate_arg_t a = {old_id, now, next, rotated};
    *rotated = false;
    bool ok = rp_sqlite_transact(pool_of(base), rotate_body, &a, err);
    if (!ok) *rotated = false;
    return ok;
}

typedef struct revoke_q {
    const char *family_id;
    int64_t now;
} revoke_q_t;

static void bind_revoke(sqlite3_stmt *st, const void *p) {
    const revoke_q_t *q = p;
    rp_sqlite_bind_text(st, 1, q->family_id);
    sqlite3_bind_int64(st, 2, q->now);
}

static bool s_revoke_family(rp_auth_store_t *base, const char *family_id, int64_t now, rp_err_t *err) {
    revoke_q_t q = {family_id, now};
    return one(pool_of(base), "UPDATE refresh_tokens SET revoked_at = ?2 WHERE family_id = ?1 AND revoked_at IS NULL",
               bind_revoke, &q, NULL, NULL, NULL, "revoke family", err);
}

static json_t *row_to_audit(sqlite3_stmt *st) {
    return json_pack("{s:o, s:{s:o, s:o}, s:o, s:{s:o, s:o}, s:o, s:o, s:o}", "id", rp_sqlite_col_string(st, 0),
                     "actor", "id", rp_sqlite_col_string(st, 1), "username", rp_sqlite_col_string(st, 2), "action",
                     rp_sqlite_col_string(st, 3), "target", "type", rp_sqlite_col_string(st, 4), "id",
                     rp_sqlite_col_string(st, 5), "before", rp_sqlite_col_json(st, 6), "after",
                     rp_sqlite_col_json(st, 7), "at", rp_sqlite_col_time(st, 8));
}

static bool s_list_audit(rp_auth_store_t *base, const char *target_id, const char *actor_id, const char *cursor,
                         int limit, json_t **items, bool *more, rp_err_t *err) {
    rp_sqlite_pool_t *pool = pool_of(base);
    sqlite3_stmt *st = NULL;
    bool ok = false;
    *items = NULL;
    *more = false;
    sqlite3 *db = rp_sqlite_pool_get(pool, err);
    if (!db) return false;
    if (rp_sqlite_prepare(db,
                          "SELECT id, actor_id, actor_username, action, target_type, target_id, before, after, at "
                          "FROM audit_logs WHERE (?1 IS NULL OR target_id = ?1) AND (?2 IS NULL OR actor_id = ?2) "
                          "AND (?3 IS NULL OR (at, id) < (SELECT at, id FROM audit_logs WHERE id = ?3)) "
                          "ORDER BY at DESC, id DESC LIMIT ?4",
                          &st, err)) {
        rp_sqlite_bind_text(st, 1, target_id);
        rp_sqlite_bind_text(st, 2, actor_id);
        rp_sqlite_bind_text(st, 3, cursor);
        sqlite3_bind_int(st, 4, limit + 1);
        ok = rp_sqlite_collect(db, st, limit, row_to_audit, items, more, err);
    }
    rp_sqlite_pool_put(pool, db);
    return ok;
}

static const rp_auth_store_ops_t ops = RP_AUTH_STORE_OPS(s_);

rp_auth_store_t *rp_auth_store_sqlite_open(const char *dir, int max_conns, rp_err_t *err) {
    return rp_sqlite_store_open(dir, "auth.db", schemas, max_conns, &(rp_auth_store_t){&ops}, sizeof(rp_auth_store_t),
                                err);
}
