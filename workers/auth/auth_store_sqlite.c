/* auth_store_sqlite.c - the auth repository on SQLite (see auth_store.h): auth.db, a connection
 * pool, one statement per operation (rp_sqlite_query) and the shared transaction runner for
 * multi-statement writes and units of work (BEGIN IMMEDIATE: writers never interleave, so a
 * count and the update that follows it hold together across processes). Stores and matches the
 * identity keys it is given (the folding is identity.c's). Thread-safe (the pool is). */
#include <stdarg.h>
#include <string.h>

#include <stdlib.h>

#include "auth_store.h"
#include "roles.h"
#include "sqlite_util.h"
#include "store_handle.h"

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
    /* role changes */
    RP_SQLITE_AUDIT_TABLE;

/* token versions, disabled accounts and revoked access tokens */
static const char v2[] = "ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0;"
                         "ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;"
                         "ALTER TABLE users ADD COLUMN disabled_reason TEXT;"
                         "ALTER TABLE users ADD COLUMN disabled_at INTEGER;"
                         "CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);"
                         "CREATE TABLE revoked_access ("
                         "  jti TEXT PRIMARY KEY,"
                         "  user_id TEXT NOT NULL REFERENCES users(id),"
                         "  expires_at INTEGER NOT NULL);"
                         "CREATE INDEX revoked_access_user ON revoked_access(user_id, expires_at);";

/* service accounts and their API keys; a deleted account's keys stay, revoked */
static const char v3[] = "CREATE TABLE service_accounts ("
                         "  id TEXT PRIMARY KEY,"
                         "  name TEXT NOT NULL,"
                         "  name_lower TEXT NOT NULL UNIQUE,"
                         "  roles INTEGER NOT NULL,"
                         "  created_by TEXT,"
                         "  created_at INTEGER NOT NULL);"
                         "CREATE TABLE service_keys ("
                         "  id TEXT PRIMARY KEY,"
                         "  account_id TEXT NOT NULL,"
                         "  key_hash TEXT NOT NULL UNIQUE,"
                         "  created_at INTEGER NOT NULL,"
                         "  expires_at INTEGER,"
                         "  revoked_at INTEGER,"
                         "  last_used_at INTEGER);"
                         "CREATE INDEX service_keys_account ON service_keys(account_id, created_at);";

/* the log of session changes the api processes read (auth_store.h): one counter row, and the
 * entries of the last RP_SESSION_LOG_KEEP_MS */
static const char v4[] = "CREATE TABLE session_log ("
                         "  id INTEGER PRIMARY KEY CHECK (id = 1),"
                         "  latest INTEGER NOT NULL,"
                         "  forgotten_through INTEGER NOT NULL);"
                         "INSERT INTO session_log (id, latest, forgotten_through) VALUES (1, 0, 0);"
                         "CREATE TABLE session_changes ("
                         "  seq INTEGER PRIMARY KEY,"
                         "  user_id TEXT NOT NULL,"
                         "  at INTEGER NOT NULL);"
                         "CREATE INDEX session_changes_at ON session_changes(at);";

static const char *const steps[] = {v1, v2, v3, v4, NULL};
static const rp_sqlite_schema_t schemas[] = {{"auth", steps, 1}, {NULL, NULL, 0}};

#define USER_COLUMNS                                                                                                   \
    "id, username, email, password_hash, roles, created_at, updated_at, token_version, disabled, disabled_reason, "    \
    "disabled_at"
#define TOKEN_COLUMNS "id, user_id, family_id, token_hash, created_at, expires_at, used_at, revoked_at"

/* A found account replaces *out whole (the identity keys are not read back). */
static void row_account(sqlite3_stmt *st, void *out) {
    rp_account_t *a = out;
    memset(a, 0, sizeof *a);
    rp_sqlite_col_copy(st, 0, a->id, sizeof a->id);
    rp_sqlite_col_copy(st, 1, a->username, sizeof a->username);
    rp_sqlite_col_copy(st, 2, a->email, sizeof a->email);
    rp_sqlite_col_copy(st, 3, a->password_hash, sizeof a->password_hash);
    a->roles = (unsigned)sqlite3_column_int(st, 4);
    a->created_at = sqlite3_column_int64(st, 5);
    a->updated_at = sqlite3_column_int64(st, 6);
    a->token_version = sqlite3_column_int64(st, 7);
    a->disabled = sqlite3_column_int(st, 8) != 0;
    rp_sqlite_col_copy(st, 9, a->disabled_reason, sizeof a->disabled_reason);
    a->disabled_at = rp_sqlite_col_ms(st, 10);
}

static void row_token(sqlite3_stmt *st, void *out) {
    rp_refresh_token_t *t = out;
    rp_sqlite_col_copy(st, 0, t->id, sizeof t->id);
    rp_sqlite_col_copy(st, 1, t->user_id, sizeof t->user_id);
    rp_sqlite_col_copy(st, 2, t->family_id, sizeof t->family_id);
    rp_sqlite_col_copy(st, 3, t->token_hash, sizeof t->token_hash);
    t->created_at = sqlite3_column_int64(st, 4);
    t->expires_at = sqlite3_column_int64(st, 5);
    t->used_at = rp_sqlite_col_ms(st, 6);
    t->revoked_at = rp_sqlite_col_ms(st, 7);
}

static void row_int(sqlite3_stmt *st, void *out) {
    *(int64_t *)out = sqlite3_column_int64(st, 0);
}

static rp_sqlite_pool_t *pool_of(rp_auth_store_t *base) {
    return rp_store_handle_backend(base);
}

static void s_free(rp_auth_store_t *base) {
    rp_store_handle_free(base);
}

/* One statement on a pooled connection (rp_sqlite_query). */
#define QUERY(base, use, err, ...) rp_sqlite_query(NULL, pool_of(base), use, err, __VA_ARGS__)

static bool s_ping(rp_auth_store_t *base, rp_err_t *err) {
    int64_t n;
    return QUERY(base, &(rp_sqlite_use_t){.what = "ping", .row = row_int, .out = &n}, err,
                 "SELECT count(*) FROM users WHERE 0", "");
}

static bool s_create_user(rp_auth_store_t *base, const rp_account_t *a, rp_err_t *err) {
    bool taken;
    int64_t n = 0;
    if (!QUERY(base, &(rp_sqlite_use_t){.what = "create user", .dup = &taken}, err,
               "INSERT INTO users (id, username, username_lower, email, email_lower, password_hash, roles, created_at, "
               "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
               "nnnnnniii", a->id, a->username, a->username_key, a->email, a->email_key, a->password_hash,
               (int64_t)a->roles, a->created_at, a->updated_at))
        return false;
    if (!taken) return true;
    /* which key is taken: ask, rather than parse the constraint's message */
    if (!QUERY(base, &(rp_sqlite_use_t){.what = "create user", .row = row_int, .out = &n}, err,
               "SELECT count(*) FROM users WHERE email_lower = ?1", "n", a->email_key))
        return false;
    if (n > 0)
        rp_err_set(err, RP_ERR_CONFLICT, "EMAIL_TAKEN", "an account with this email already exists");
    else
        rp_err_set(err, RP_ERR_CONFLICT, "USERNAME_TAKEN", "this username is taken");
    return false;
}

#define FIND_USER(out_, found_)                                                                                        \
    &(rp_sqlite_use_t) {                                                                                               \
        .what = "find user", .row = row_account, .out = out_, .found = found_                                          \
    }

static bool s_find_by_id(rp_auth_store_t *base, const char *id, rp_account_t *out, bool *found, rp_err_t *err) {
    return QUERY(base, FIND_USER(out, found), err, "SELECT " USER_COLUMNS " FROM users WHERE id = ?1", "n", id);
}

static bool s_find_by_login(rp_auth_store_t *base, const char *key, bool by_email, rp_account_t *out, bool *found,
                            rp_err_t *err) {
    return QUERY(base, FIND_USER(out, found), err,
                 by_email ? "SELECT " USER_COLUMNS " FROM users WHERE email_lower = ?1"
                          : "SELECT " USER_COLUMNS " FROM users WHERE username_lower = ?1",
                 "n", key);
}

static bool s_list_users(rp_auth_store_t *base, const char *after, int limit, rp_account_t **out, size_t *n, bool *more,
                         rp_err_t *err) {
    return QUERY(base, RP_SQLITE_PAGE("list", row_account, NULL, out, n, limit, more), err,
                 "SELECT " USER_COLUMNS " FROM users WHERE (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2", "ni", after,
                 (int64_t)limit + 1);
}

/* A compare-and-set with what goes with it, in one transaction: the update sql (its fmt
 * arguments: id, then a and b as fmt takes them) and, when it changed a row, then(db, arg).
 * *changed says whether it did. */
typedef struct cas {
    const char *what, *sql, *fmt, *id;
    int64_t a, b;
    bool (*then)(sqlite3 *db, const void *arg, rp_err_t *err);
    const void *arg;
    bool *changed;
} cas_t;

static rp_txn_end_t cas_body(sqlite3 *db, void *p, rp_err_t *err) {
    const cas_t *c = p;
    if (!rp_sqlite_query(db, NULL, &(rp_sqlite_use_t){.what = c->what, .found = c->changed}, err, c->sql, c->fmt, c->id,
                         c->a, c->b))
        return RP_TXN_FAILED;
    if (!*c->changed) return RP_TXN_ROLLBACK; /* lost, or no such row: nothing is written */
    return c->then(db, c->arg, err) ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

typedef struct failure_arg {
    const char *user_id;
    int64_t at, forget_before;
} failure_arg_t;

static rp_txn_end_t failure_body(sqlite3 *db, void *p, rp_err_t *err) {
    failure_arg_t *a = p;
    bool ok = rp_sqlite_query(db, NULL, &(rp_sqlite_use_t){.what = "forget login failures"}, err,
                              "DELETE FROM login_failures WHERE user_id = ?1 AND at < ?2", "ni", a->user_id,
                              a->forget_before) &&
              rp_sqlite_query(db, NULL, &(rp_sqlite_use_t){.what = "record login failure"}, err,
                              "INSERT INTO login_failures (user_id, at) VALUES (?1, ?2)", "ni", a->user_id, a->at);
    return ok ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

static bool s_add_failure(rp_auth_store_t *base, const char *user_id, int64_t at, int64_t forget_before,
                          rp_err_t *err) {
    failure_arg_t a = {user_id, at, forget_before};
    return rp_sqlite_transact(pool_of(base), failure_body, &a, err);
}

static void row_two(sqlite3_stmt *st, void *out) {
    ((int64_t *)out)[0] = sqlite3_column_int64(st, 0);
    ((int64_t *)out)[1] = sqlite3_column_int64(st, 1);
}

static bool s_failures(rp_auth_store_t *base, const char *user_id, int64_t since, int n, int64_t *count,
                       int64_t *nth_at, rp_err_t *err) {
    int64_t v[2] = {0, 0};
    bool ok = QUERY(base, &(rp_sqlite_use_t){.what = "count login failures", .row = row_two, .out = v}, err,
                    "SELECT (SELECT count(*) FROM login_failures WHERE user_id = ?1 AND at > ?2), "
                    "(SELECT at FROM login_failures WHERE user_id = ?1 AND at > ?2 ORDER BY at DESC LIMIT 1 OFFSET ?3)",
                    "nii", user_id, since, (int64_t)(n > 0 ? n - 1 : 0));
    *count = v[0];
    *nth_at = v[1];
    return ok;
}

static bool s_clear_failures(rp_auth_store_t *base, const char *user_id, rp_err_t *err) {
    return QUERY(base, &(rp_sqlite_use_t){.what = "clear login failures"}, err,
                 "DELETE FROM login_failures WHERE user_id = ?1", "n", user_id);
}

/* Inserts t on db, or on a pooled connection when db is NULL. */
static bool insert_token(sqlite3 *db, rp_sqlite_pool_t *pool, const rp_refresh_token_t *t, rp_err_t *err) {
    return rp_sqlite_query(db, pool, &(rp_sqlite_use_t){.what = "insert refresh token"}, err,
                           "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                           "nnnnii", t->id, t->user_id, t->family_id, t->token_hash, t->created_at, t->expires_at);
}

static bool s_insert_refresh(rp_auth_store_t *base, const rp_refresh_token_t *t, rp_err_t *err) {
    return insert_token(NULL, pool_of(base), t, err);
}

static bool s_find_refresh(rp_auth_store_t *base, const char *hash, rp_refresh_token_t *out, bool *found,
                           rp_err_t *err) {
    memset(out, 0, sizeof *out);
    return QUERY(base, &(rp_sqlite_use_t){.what = "find refresh token", .row = row_token, .out = out, .found = found},
                 err, "SELECT " TOKEN_COLUMNS " FROM refresh_tokens WHERE token_hash = ?1", "n", hash);
}

static bool insert_next(sqlite3 *db, const void *t, rp_err_t *err) {
    return insert_token(db, NULL, t, err);
}

static bool s_rotate_refresh(rp_auth_store_t *base, const char *old_id, int64_t now, const rp_refresh_token_t *next,
                             bool *rotated, rp_err_t *err) {
    cas_t c = {.what = "rotate",
               .sql = "UPDATE refresh_tokens SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL AND revoked_at IS NULL",
               .fmt = "ni",
               .id = old_id,
               .a = now,
               .then = insert_next,
               .arg = next,
               .changed = rotated};
    *rotated = false;
    bool ok = rp_sqlite_transact(pool_of(base), cas_body, &c, err);
    if (!ok) *rotated = false;
    return ok;
}

static bool s_revoke_family(rp_auth_store_t *base, const char *family_id, int64_t now, rp_err_t *err) {
    return QUERY(base, &(rp_sqlite_use_t){.what = "revoke family"}, err,
                 "UPDATE refresh_tokens SET revoked_at = ?2 WHERE family_id = ?1 AND revoked_at IS NULL", "ni",
                 family_id, now);
}

static bool s_list_audit(rp_auth_store_t *base, const char *target_id, const char *actor_id, const char *cursor,
                         int limit, json_t **items, bool *more, rp_err_t *err) {
    return rp_sqlite_audit_list(pool_of(base), NULL, target_id, actor_id, cursor, limit, items, more, err);
}

static void row_jti(sqlite3_stmt *st, void *out) {
    rp_sqlite_col_copy(st, 0, out, RP_JTI_LEN);
}

static bool s_revoked_access(rp_auth_store_t *base, const char *user_id, int64_t now, int limit,
                             char (*jtis)[RP_JTI_LEN], size_t *n, bool *more, rp_err_t *err) {
    char(*page)[RP_JTI_LEN] = NULL;
    bool ok =
        QUERY(base, RP_SQLITE_PAGE("revoked access", row_jti, NULL, &page, n, limit, more), err,
              "SELECT jti FROM revoked_access WHERE user_id = ?1 AND expires_at > ?2 ORDER BY expires_at LIMIT ?3",
              "nii", user_id, now, (int64_t)limit + 1);
    if (ok && *n) memcpy(jtis, page, *n * sizeof *page);
    free(page);
    return ok;
}

/* ---- the unit of work ---- */

struct rp_auth_txn {
    sqlite3 *db;
    rp_err_t *err;
    rp_auth_txn_fn fn;
    void *arg;
};

static rp_txn_end_t run_body(sqlite3 *db, void *p, rp_err_t *err) {
    rp_auth_txn_t *tx = p;
    tx->db = db;
    tx->err = err;
    return tx->fn(tx, tx->arg);
}

static bool s_transact(rp_auth_store_t *base, const char *what, rp_auth_txn_fn fn, void *arg, rp_err_t *err) {
    rp_auth_txn_t tx = {.fn = fn, .arg = arg};
    rp_err_t e;
    rp_err_clear(&e);
    if (rp_sqlite_transact(pool_of(base), run_body, &tx, &e)) return true;
    if (e.kind == RP_ERR_NONE) rp_err_set(&e, RP_ERR_INTERNAL, "INTERNAL", "the body failed without an error");
    rp_err_set(err, e.kind, e.code, "%s: %s", what, e.message);
    return false;
}

/* One statement on the unit of work's connection. */
static bool tx_query(rp_auth_txn_t *tx, const rp_sqlite_use_t *u, const char *sql, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bool ok = rp_sqlite_vquery(tx->db, NULL, u, tx->err, sql, fmt, ap);
    va_end(ap);
    return ok;
}

static bool s_tx_find_by_id(rp_auth_txn_t *tx, const char *id, rp_account_t *out, bool *found) {
    return tx_query(tx, FIND_USER(out, found), "SELECT " USER_COLUMNS " FROM users WHERE id = ?1", "n", id);
}

static bool s_tx_count_admins(rp_auth_txn_t *tx, int64_t *count) {
    *count = 0;
    return tx_query(tx, &(rp_sqlite_use_t){.what = "count admins", .row = row_int, .out = count},
                    "SELECT count(*) FROM users WHERE (roles & ?1) <> 0 AND disabled = 0", "i", (int64_t)RP_ROLE_ADMIN);
}

static bool s_tx_guard_admins(rp_auth_txn_t *tx) {
    (void)tx; /* BEGIN IMMEDIATE already serialises every writer */
    return true;
}

static bool s_tx_update_account(rp_auth_txn_t *tx, const rp_account_t *a, bool *found) {
    return tx_query(tx, &(rp_sqlite_use_t){.what = "update account", .found = found},
                    "UPDATE users SET password_hash = ?2, roles = ?3, token_version = ?4, disabled = ?5, "
                    "disabled_reason = ?6, disabled_at = ?7, updated_at = ?8 WHERE id = ?1",
                    "nniiismi", a->id, a->password_hash, (int64_t)a->roles, a->token_version, (int64_t)a->disabled,
                    a->disabled_reason, a->disabled_at, a->updated_at);
}

static bool s_tx_revoke_refresh_of(rp_auth_txn_t *tx, const char *user_id, int64_t now) {
    return tx_query(tx, &(rp_sqlite_use_t){.what = "revoke refresh tokens"},
                    "UPDATE refresh_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL", "ni",
                    user_id, now);
}

static bool s_tx_revoke_access(rp_auth_txn_t *tx, const char *user_id, const char *jti, int64_t expires_at,
                               int64_t now) {
    return tx_query(tx, &(rp_sqlite_use_t){.what = "forget revoked access"},
                    "DELETE FROM revoked_access WHERE user_id = ?1 AND expires_at <= ?2", "ni", user_id, now) &&
           tx_query(tx, &(rp_sqlite_use_t){.what = "revoke access"},
                    "INSERT INTO revoked_access (jti, user_id, expires_at) VALUES (?1, ?2, ?3) "
                    "ON CONFLICT (jti) DO NOTHING",
                    "nni", jti, user_id, expires_at);
}

static bool s_tx_count_revoked(rp_auth_txn_t *tx, const char *user_id, int64_t now, int64_t *count) {
    *count = 0;
    return tx_query(tx, &(rp_sqlite_use_t){.what = "count revoked access", .row = row_int, .out = count},
                    "SELECT count(*) FROM revoked_access WHERE user_id = ?1 AND expires_at > ?2", "ni", user_id, now);
}

static bool s_tx_append_audit(rp_auth_txn_t *tx, const rp_audit_entry_t *entry) {
    return rp_sqlite_audit_append(tx->db, entry, tx->err);
}

static bool s_tx_guard_failures(rp_auth_txn_t *tx, const char *user_id) {
    (void)tx; /* BEGIN IMMEDIATE already serialises every writer */
    (void)user_id;
    return true;
}

static bool s_tx_failures(rp_auth_txn_t *tx, const char *user_id, int64_t since, int n, int64_t *count,
                          int64_t *nth_at) {
    int64_t v[2] = {0, 0};
    bool ok = tx_query(tx, &(rp_sqlite_use_t){.what = "count login failures", .row = row_two, .out = v},
                       "SELECT (SELECT count(*) FROM login_failures WHERE user_id = ?1 AND at > ?2), "
                       "(SELECT at FROM login_failures WHERE user_id = ?1 AND at > ?2 ORDER BY at DESC LIMIT 1 "
                       "OFFSET ?3)",
                       "nii", user_id, since, (int64_t)(n > 0 ? n - 1 : 0));
    *count = v[0];
    *nth_at = v[1];
    return ok;
}

static bool s_tx_add_failure(rp_auth_txn_t *tx, const char *user_id, int64_t at, int64_t forget_before) {
    failure_arg_t a = {user_id, at, forget_before};
    return failure_body(tx->db, &a, tx->err) == RP_TXN_COMMIT;
}

/* ---- service accounts and their keys ---- */

#define SERVICE_COLUMNS "id, name, roles, created_by, created_at"
#define KEY_COLUMNS "id, account_id, key_hash, created_at, expires_at, revoked_at, last_used_at"
/* live at ?2: not revoked, and no expiry or one after ?2 */
#define KEY_LIVE "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)"

static void row_service(sqlite3_stmt *st, void *out) {
    rp_service_account_t *a = out;
    memset(a, 0, sizeof *a);
    rp_sqlite_col_copy(st, 0, a->id, sizeof a->id);
    rp_sqlite_col_copy(st, 1, a->name, sizeof a->name);
    a->roles = (unsigned)sqlite3_column_int(st, 2);
    rp_sqlite_col_copy(st, 3, a->created_by, sizeof a->created_by);
    a->created_at = sqlite3_column_int64(st, 4);
}

static void key_from(sqlite3_stmt *st, int at, rp_service_key_t *k) {
    memset(k, 0, sizeof *k);
    rp_sqlite_col_copy(st, at, k->id, sizeof k->id);
    rp_sqlite_col_copy(st, at + 1, k->account_id, sizeof k->account_id);
    rp_sqlite_col_copy(st, at + 2, k->key_hash, sizeof k->key_hash);
    k->created_at = sqlite3_column_int64(st, at + 3);
    k->expires_at = rp_sqlite_col_ms(st, at + 4);
    k->revoked_at = rp_sqlite_col_ms(st, at + 5);
    k->last_used_at = rp_sqlite_col_ms(st, at + 6);
}

static void row_key(sqlite3_stmt *st, void *out) {
    key_from(st, 0, out);
}

typedef struct key_and_account {
    rp_service_key_t *key;
    rp_service_account_t *account;
} key_and_account_t;

static void row_key_and_account(sqlite3_stmt *st, void *out) {
    key_and_account_t *r = out;
    key_from(st, 0, r->key);
    rp_service_account_t *a = r->account;
    memset(a, 0, sizeof *a);
    rp_sqlite_col_copy(st, 7, a->id, sizeof a->id);
    rp_sqlite_col_copy(st, 8, a->name, sizeof a->name);
    a->roles = (unsigned)sqlite3_column_int(st, 9);
    rp_sqlite_col_copy(st, 10, a->created_by, sizeof a->created_by);
    a->created_at = sqlite3_column_int64(st, 11);
}

static bool s_list_services(rp_auth_store_t *base, const char *after, int limit, rp_service_account_t **out, size_t *n,
                            bool *more, rp_err_t *err) {
    return QUERY(base, RP_SQLITE_PAGE("list service accounts", row_service, NULL, out, n, limit, more), err,
                 "SELECT " SERVICE_COLUMNS " FROM service_accounts WHERE (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2",
                 "ni", after, (int64_t)limit + 1);
}

static bool s_find_service(rp_auth_store_t *base, const char *id, rp_service_account_t *out, bool *found,
                           rp_err_t *err) {
    return QUERY(base,
                 &(rp_sqlite_use_t){.what = "find service account", .row = row_service, .out = out, .found = found},
                 err, "SELECT " SERVICE_COLUMNS " FROM service_accounts WHERE id = ?1", "n", id);
}

static bool s_service_keys(rp_auth_store_t *base, const char *account_id, int64_t now, rp_service_key_t *keys,
                           size_t cap, size_t *n, rp_err_t *err) {
    rp_service_key_t *page = NULL;
    *n = 0;
    bool ok = QUERY(base, RP_SQLITE_PAGE("service keys", row_key, NULL, &page, n, (int)cap, NULL), err,
                    "SELECT " KEY_COLUMNS " FROM service_keys WHERE account_id = ?1 AND " KEY_LIVE
                    " ORDER BY created_at, id LIMIT ?3",
                    "nii", account_id, now, (int64_t)cap + 1);
    if (ok && *n) memcpy(keys, page, *n * sizeof *page);
    free(page);
    return ok;
}

static bool s_find_key(rp_auth_store_t *base, const char *key_hash, rp_service_key_t *key,
                       rp_service_account_t *account, bool *found, rp_err_t *err) {
    key_and_account_t r = {key, account};
    memset(key, 0, sizeof *key);
    memset(account, 0, sizeof *account);
    return QUERY(base,
                 &(rp_sqlite_use_t){.what = "find service key", .row = row_key_and_account, .out = &r, .found = found},
                 err,
                 "SELECT k.id, k.account_id, k.key_hash, k.created_at, k.expires_at, k.revoked_at, k.last_used_at, "
                 "a.id, a.name, a.roles, a.created_by, a.created_at "
                 "FROM service_keys k JOIN service_accounts a ON a.id = k.account_id WHERE k.key_hash = ?1",
                 "n", key_hash);
}

static bool s_touch_key(rp_auth_store_t *base, const char *key_id, int64_t now, int64_t before, rp_err_t *err) {
    return QUERY(base, &(rp_sqlite_use_t){.what = "touch service key"}, err,
                 "UPDATE service_keys SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR "
                 "last_used_at < ?3)",
                 "nii", key_id, now, before);
}

static bool s_tx_find_service(rp_auth_txn_t *tx, const char *id, rp_service_account_t *out, bool *found) {
    return tx_query(tx,
                    &(rp_sqlite_use_t){.what = "find service account", .row = row_service, .out = out, .found = found},
                    "SELECT " SERVICE_COLUMNS " FROM service_accounts WHERE id = ?1", "n", id);
}

static bool s_tx_insert_service(rp_auth_txn_t *tx, const rp_service_account_t *a, bool *taken) {
    return tx_query(tx, &(rp_sqlite_use_t){.what = "insert service account", .dup = taken},
                    "INSERT INTO service_accounts (id, name, name_lower, roles, created_by, created_at) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    "nnnisi", a->id, a->name, a->name_key, (int64_t)a->roles, a->created_by, a->created_at);
}

static bool s_tx_delete_service(rp_auth_txn_t *tx, const char *id, bool *found) {
    return tx_query(tx, &(rp_sqlite_use_t){.what = "delete service account", .found = found},
                    "DELETE FROM service_accounts WHERE id = ?1", "n", id);
}

static bool s_tx_insert_key(rp_auth_txn_t *tx, const rp_service_key_t *k) {
    return tx_query(tx, &(rp_sqlite_use_t){.what = "insert service key"},
                    "INSERT INTO service_keys (id, account_id, key_hash, created_at, expires_at) "
                    "VALUES (?1, ?2, ?3, ?4, ?5)",
                    "nnnim", k->id, k->account_id, k->key_hash, k->created_at, k->expires_at);
}

static bool s_tx_retire_keys(rp_auth_txn_t *tx, const char *account_id, int64_t now, int64_t until) {
    if (until <= now)
        return tx_query(tx, &(rp_sqlite_use_t){.what = "revoke service keys"},
                        "UPDATE service_keys SET revoked_at = ?2 WHERE account_id = ?1 AND " KEY_LIVE, "ni", account_id,
                        now);
    return tx_query(tx, &(rp_sqlite_use_t){.what = "expire service keys"},
                    "UPDATE service_keys SET expires_at = ?3 WHERE account_id = ?1 AND " KEY_LIVE
                    " AND (expires_at IS NULL OR expires_at > ?3)",
                    "nii", account_id, now, until);
}

static bool s_tx_revoke_key(rp_auth_txn_t *tx, const char *account_id, const char *key_id, int64_t now, bool *found) {
    return tx_query(tx, &(rp_sqlite_use_t){.what = "revoke service key", .found = found},
                    "UPDATE service_keys SET revoked_at = coalesce(revoked_at, ?3) WHERE id = ?2 AND account_id = ?1",
                    "nni", account_id, key_id, now);
}

static bool s_tx_count_keys(rp_auth_txn_t *tx, const char *account_id, int64_t now, int64_t *count) {
    *count = 0;
    return tx_query(tx, &(rp_sqlite_use_t){.what = "count service keys", .row = row_int, .out = count},
                    "SELECT count(*) FROM service_keys WHERE account_id = ?1 AND " KEY_LIVE, "ni", account_id, now);
}

/* ---- the log of session changes ---- */

static void row_counter(sqlite3_stmt *st, void *out) {
    int64_t *v = out;
    v[0] = sqlite3_column_int64(st, 0);
    v[1] = sqlite3_column_int64(st, 1);
}

static bool s_tx_session_log_next(rp_auth_txn_t *tx, int64_t *seq, int64_t *forgotten) {
    int64_t v[2] = {0, 0};
    bool numbered = false;
    if (!tx_query(
            tx, &(rp_sqlite_use_t){.what = "number a session change", .row = row_counter, .out = v, .found = &numbered},
            "UPDATE session_log SET latest = latest + 1 WHERE id = 1 RETURNING latest, forgotten_through", ""))
        return false;
    if (!numbered) {
        rp_err_set(tx->err, RP_ERR_STORE, "STORE_ERROR", "the session log has no counter");
        return false;
    }
    *seq = v[0];
    *forgotten = v[1];
    return true;
}

static bool s_tx_session_log_append(rp_auth_txn_t *tx, int64_t seq, const char *user_id, int64_t at) {
    return tx_query(tx, &(rp_sqlite_use_t){.what = "log a session change"},
                    "INSERT INTO session_changes (seq, user_id, at) VALUES (?1, ?2, ?3)", "ini", seq, user_id, at);
}

static bool s_tx_session_log_newest_before(rp_auth_txn_t *tx, int64_t before, int64_t *seq) {
    *seq = 0;
    return tx_query(tx, &(rp_sqlite_use_t){.what = "find old session changes", .row = row_int, .out = seq},
                    "SELECT coalesce(max(seq), 0) FROM session_changes WHERE at < ?1", "i", before);
}

static bool s_tx_session_log_forget(rp_auth_txn_t *tx, int64_t through) {
    return tx_query(tx, &(rp_sqlite_use_t){.what = "mark forgotten session changes"},
                    "UPDATE session_log SET forgotten_through = max(forgotten_through, ?1) WHERE id = 1", "i",
                    through) &&
           tx_query(tx, &(rp_sqlite_use_t){.what = "forget session changes"},
                    "DELETE FROM session_changes WHERE seq <= ?1", "i", through);
}

typedef struct change_row {
    int64_t seq;
    char user_id[RP_OID_LEN];
} change_row_t;

static void row_change(sqlite3_stmt *st, void *out) {
    change_row_t *c = out;
    c->seq = sqlite3_column_int64(st, 0);
    rp_sqlite_col_copy(st, 1, c->user_id, sizeof c->user_id);
}

static bool s_session_log_counter(rp_auth_store_t *base, int64_t *latest, int64_t *forgotten, rp_err_t *err) {
    int64_t v[2] = {0, 0};
    bool ok = QUERY(base, &(rp_sqlite_use_t){.what = "session log counter", .row = row_counter, .out = v}, err,
                    "SELECT latest, forgotten_through FROM session_log WHERE id = 1", "");
    *latest = v[0];
    *forgotten = v[1];
    return ok;
}

static bool s_session_changes_between(rp_auth_store_t *base, int64_t after, int64_t upto, int limit, int64_t *seqs,
                                      char (*user_ids)[RP_OID_LEN], size_t *n, rp_err_t *err) {
    change_row_t *page = NULL;
    if (!QUERY(base, RP_SQLITE_PAGE("session changes", row_change, NULL, &page, n, limit, NULL), err,
               "SELECT seq, user_id FROM session_changes WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3", "iii",
               after, upto, (int64_t)limit))
        return false;
    for (size_t i = 0; i < *n; i++) {
        seqs[i] = page[i].seq;
        memcpy(user_ids[i], page[i].user_id, RP_OID_LEN);
    }
    free(page);
    return true;
}

static const rp_auth_store_ops_t ops = RP_AUTH_STORE_OPS(s_);

rp_auth_store_t *rp_auth_store_sqlite_open(const char *dir, int max_conns, rp_err_t *err) {
    return rp_sqlite_store_open(dir, "auth.db", schemas, max_conns, &(rp_auth_store_t){&ops}, sizeof(rp_auth_store_t),
                                err);
}
