/* auth_store_sqlite.c - the auth repository on SQLite (see auth_store.h): auth.db, a connection
 * pool, BEGIN IMMEDIATE for multi-statement writes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_store.h"
#include "log.h"
#include "mem.h"
#include "roles.h"
#include "sqlite_util.h"
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

static const char *const migrations[] = {v1, NULL};

typedef struct sqlite_store {
    rp_auth_store_t base;
    rp_sqlite_pool_t *pool;
} sqlite_store_t;

#define USER_COLUMNS "id, username, email, password_hash, roles, created_at, updated_at"

static void copy_col(char *dst, size_t cap, sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static void row_to_account(sqlite3_stmt *st, rp_account_t *a) {
    memset(a, 0, sizeof *a);
    copy_col(a->id, sizeof a->id, st, 0);
    copy_col(a->username, sizeof a->username, st, 1);
    copy_col(a->email, sizeof a->email, st, 2);
    copy_col(a->password_hash, sizeof a->password_hash, st, 3);
    a->roles = (unsigned)sqlite3_column_int(st, 4);
    a->created_at = sqlite3_column_int64(st, 5);
    a->updated_at = sqlite3_column_int64(st, 6);
}

static void lower(const char *in, char *out, size_t cap) {
    size_t i = 0;
    for (; in[i] && i + 1 < cap; i++)
        out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] + 32) : in[i];
    out[i] = '\0';
}

/* Prepares sql on a pooled connection; on failure reports and returns NULL (connection given back). */
static sqlite3_stmt *prepare(sqlite_store_t *s, sqlite3 **db, const char *sql, rp_err_t *err) {
    sqlite3_stmt *st = NULL;
    *db = rp_sqlite_pool_get(s->pool, err);
    if (!*db) return NULL;
    if (sqlite3_prepare_v2(*db, sql, -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(*db, "prepare", err);
        rp_sqlite_pool_put(s->pool, *db);
        *db = NULL;
        return NULL;
    }
    return st;
}

static void finish(sqlite_store_t *s, sqlite3 *db, sqlite3_stmt *st) {
    sqlite3_finalize(st);
    rp_sqlite_pool_put(s->pool, db);
}

static bool s_ping(rp_auth_store_t *base, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3 *db;
    sqlite3_stmt *st = prepare(s, &db, "SELECT count(*) FROM users WHERE 0", err);
    if (!st) return false;
    bool ok = sqlite3_step(st) == SQLITE_ROW;
    if (!ok) rp_sqlite_err(db, "ping", err);
    finish(s, db, st);
    return ok;
}

static bool s_create_user(rp_auth_store_t *base, const rp_account_t *a, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3 *db;
    char ul[64], el[256];
    lower(a->username, ul, sizeof ul);
    lower(a->email, el, sizeof el);
    sqlite3_stmt *st = prepare(s, &db,
                               "INSERT INTO users (id, username, username_lower, email, email_lower, password_hash, "
                               "roles, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                               err);
    if (!st) return false;
    sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->username, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, ul, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, a->email, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, el, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, a->password_hash, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 7, (int)a->roles);
    sqlite3_bind_int64(st, 8, a->created_at);
    sqlite3_bind_int64(st, 9, a->updated_at);
    int rc = sqlite3_step(st);
    bool ok = rc == SQLITE_DONE;
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        const char *msg = sqlite3_errmsg(db);
        if (strstr(msg, "email_lower"))
            rp_err_set(err, RP_ERR_CONFLICT, "EMAIL_TAKEN", "an account with this email already exists");
        else
            rp_err_set(err, RP_ERR_CONFLICT, "USERNAME_TAKEN", "this username is taken");
    } else if (!ok) {
        rp_sqlite_err(db, "create user", err);
    }
    finish(s, db, st);
    return ok;
}

static bool find_one(sqlite_store_t *s, const char *sql, const char *arg, rp_account_t *out, bool *found,
                     rp_err_t *err) {
    sqlite3 *db;
    *found = false;
    sqlite3_stmt *st = prepare(s, &db, sql, err);
    if (!st) return false;
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        row_to_account(st, out);
        *found = true;
    } else if (rc != SQLITE_DONE) {
        rp_sqlite_err(db, "find user", err);
    }
    finish(s, db, st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

static bool s_find_by_id(rp_auth_store_t *base, const char *id, rp_account_t *out, bool *found, rp_err_t *err) {
    return find_one((sqlite_store_t *)base, "SELECT " USER_COLUMNS " FROM users WHERE id = ?1", id, out, found, err);
}

static bool s_find_by_login(rp_auth_store_t *base, const char *login, bool by_email, rp_account_t *out, bool *found,
                            rp_err_t *err) {
    char l[256];
    lower(login, l, sizeof l);
    return find_one((sqlite_store_t *)base,
                    by_email ? "SELECT " USER_COLUMNS " FROM users WHERE email_lower = ?1"
                             : "SELECT " USER_COLUMNS " FROM users WHERE username_lower = ?1",
                    l, out, found, err);
}

static bool s_list_users(rp_auth_store_t *base, const char *after, int limit, rp_account_t **out, size_t *n, bool *more,
                         rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3 *db;
    int rc;
    *out = NULL;
    *n = 0;
    *more = false;
    sqlite3_stmt *st =
        prepare(s, &db, "SELECT " USER_COLUMNS " FROM users WHERE (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2", err);
    if (!st) return false;
    if (after) sqlite3_bind_text(st, 1, after, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, limit + 1);
    rp_account_t *items = rp_calloc((size_t)limit, sizeof *items);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((int)*n == limit) {
            *more = true;
            break;
        }
        row_to_account(st, &items[(*n)++]);
    }
    bool ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    if (!ok) {
        rp_sqlite_err(db, "list users", err);
        free(items);
        items = NULL;
        *n = 0;
    }
    *out = items;
    finish(s, db, st);
    return ok;
}

static bool s_set_roles(rp_auth_store_t *base, const char *id, unsigned roles, int64_t now,
                        const rp_audit_entry_t *audit, bool *found, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    bool ok = false, in_txn = false;
    *found = false;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    if (!rp_sqlite_exec(db, "BEGIN IMMEDIATE", err)) goto done;
    in_txn = true;
    if (sqlite3_prepare_v2(db, "UPDATE users SET roles = ?2, updated_at = ?3 WHERE id = ?1", -1, &st, NULL) !=
        SQLITE_OK) {
        rp_sqlite_err(db, "prepare set roles", err);
        goto done;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, (int)roles);
    sqlite3_bind_int64(st, 3, now);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rp_sqlite_err(db, "set roles", err);
        goto done;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_changes(db) == 0) {
        ok = true;
        goto done;
    }
    *found = true;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO audit_logs (id, actor_id, actor_username, action, target_type, target_id, "
                           "before, after, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare audit", err);
        goto done;
    }
    char aid[RP_OID_LEN];
    rp_oid_new(aid);
    sqlite3_bind_text(st, 1, aid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, audit->actor_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, audit->actor_username, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, audit->action, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, audit->target_type, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, audit->target_id, -1, SQLITE_TRANSIENT);
    rp_sqlite_bind_json(st, 7, audit->before);
    rp_sqlite_bind_json(st, 8, audit->after);
    sqlite3_bind_int64(st, 9, audit->at);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rp_sqlite_err(db, "append audit", err);
        goto done;
    }
    if (!rp_sqlite_exec(db, "COMMIT", err)) goto done;
    in_txn = false;
    ok = true;
done:
    if (in_txn) rp_sqlite_exec(db, "ROLLBACK", NULL);
    sqlite3_finalize(st);
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool s_count_with_role(rp_auth_store_t *base, unsigned role, int64_t *count, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3 *db;
    *count = 0;
    sqlite3_stmt *st = prepare(s, &db, "SELECT count(*) FROM users WHERE (roles & ?1) <> 0", err);
    if (!st) return false;
    sqlite3_bind_int(st, 1, (int)role);
    bool ok = sqlite3_step(st) == SQLITE_ROW;
    if (ok)
        *count = sqlite3_column_int64(st, 0);
    else
        rp_sqlite_err(db, "count roles", err);
    finish(s, db, st);
    return ok;
}

static bool s_add_failure(rp_auth_store_t *base, const char *user_id, int64_t at, int64_t forget_before,
                          rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    bool ok = false, in_txn = false;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    if (!rp_sqlite_exec(db, "BEGIN IMMEDIATE", err)) goto done;
    in_txn = true;
    if (sqlite3_prepare_v2(db, "DELETE FROM login_failures WHERE user_id = ?1 AND at < ?2", -1, &st, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, forget_before);
    if (sqlite3_step(st) != SQLITE_DONE) goto fail;
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db, "INSERT INTO login_failures (user_id, at) VALUES (?1, ?2)", -1, &st, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, at);
    if (sqlite3_step(st) != SQLITE_DONE) goto fail;
    if (!rp_sqlite_exec(db, "COMMIT", err)) goto done;
    in_txn = false;
    ok = true;
    goto done;
fail:
    rp_sqlite_err(db, "record login failure", err);
done:
    if (in_txn) rp_sqlite_exec(db, "ROLLBACK", NULL);
    sqlite3_finalize(st);
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool s_failures(rp_auth_store_t *base, const char *user_id, int64_t since, int n, int64_t *count,
                       int64_t *nth_at, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3 *db;
    *count = 0;
    *nth_at = 0;
    sqlite3_stmt *st = prepare(s, &db,
                               "SELECT (SELECT count(*) FROM login_failures WHERE user_id = ?1 AND at > ?2), "
                               "(SELECT at FROM login_failures WHERE user_id = ?1 AND at > ?2 "
                               " ORDER BY at DESC LIMIT 1 OFFSET ?3)",
                               err);
    if (!st) return false;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, since);
    sqlite3_bind_int(st, 3, n > 0 ? n - 1 : 0);
    bool ok = sqlite3_step(st) == SQLITE_ROW;
    if (ok) {
        *count = sqlite3_column_int64(st, 0);
        *nth_at = sqlite3_column_int64(st, 1);
    } else {
        rp_sqlite_err(db, "count login failures", err);
    }
    finish(s, db, st);
    return ok;
}

static bool s_clear_failures(rp_auth_store_t *base, const char *user_id, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3 *db;
    sqlite3_stmt *st = prepare(s, &db, "DELETE FROM login_failures WHERE user_id = ?1", err);
    if (!st) return false;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    bool ok = sqlite3_step(st) == SQLITE_DONE;
    if (!ok) rp_sqlite_err(db, "clear login failures", err);
    finish(s, db, st);
    return ok;
}

static bool insert_token(sqlite3 *db, const rp_refresh_token_t *t, rp_err_t *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare refresh insert", err);
        return false;
    }
    sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, t->family_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, t->token_hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, t->created_at);
    sqlite3_bind_int64(st, 6, t->expires_at);
    bool ok = sqlite3_step(st) == SQLITE_DONE;
    if (!ok) rp_sqlite_err(db, "refresh insert", err);
    sqlite3_finalize(st);
    return ok;
}

static bool s_insert_refresh(rp_auth_store_t *base, const rp_refresh_token_t *t, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    bool ok = insert_token(db, t, err);
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool s_find_refresh(rp_auth_store_t *base, const char *hash, rp_refresh_token_t *out, bool *found,
                           rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3 *db;
    *found = false;
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st =
        prepare(s, &db,
                "SELECT id, user_id, family_id, token_hash, created_at, expires_at, "
                "coalesce(used_at, 0), coalesce(revoked_at, 0) FROM refresh_tokens WHERE token_hash = ?1",
                err);
    if (!st) return false;
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        copy_col(out->id, sizeof out->id, st, 0);
        copy_col(out->user_id, sizeof out->user_id, st, 1);
        copy_col(out->family_id, sizeof out->family_id, st, 2);
        copy_col(out->token_hash, sizeof out->token_hash, st, 3);
        out->created_at = sqlite3_column_int64(st, 4);
        out->expires_at = sqlite3_column_int64(st, 5);
        out->used_at = sqlite3_column_int64(st, 6);
        out->revoked_at = sqlite3_column_int64(st, 7);
        *found = true;
    } else if (rc != SQLITE_DONE) {
        rp_sqlite_err(db, "find refresh token", err);
    }
    finish(s, db, st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

static bool s_rotate_refresh(rp_auth_store_t *base, const char *old_id, int64_t now, const rp_refresh_token_t *next,
                             bool *rotated, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    bool ok = false, in_txn = false;
    *rotated = false;
    sqlite3 *db = rp_sqlite_pool_get(s->pool, err);
    if (!db) return false;
    if (!rp_sqlite_exec(db, "BEGIN IMMEDIATE", err)) goto done;
    in_txn = true;
    if (sqlite3_prepare_v2(db,
                           "UPDATE refresh_tokens SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL "
                           "AND revoked_at IS NULL",
                           -1, &st, NULL) != SQLITE_OK) {
        rp_sqlite_err(db, "prepare rotate", err);
        goto done;
    }
    sqlite3_bind_text(st, 1, old_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, now);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rp_sqlite_err(db, "rotate", err);
        goto done;
    }
    if (sqlite3_changes(db) == 1) {
        if (!insert_token(db, next, err)) goto done;
        *rotated = true;
    }
    if (!rp_sqlite_exec(db, "COMMIT", err)) goto done;
    in_txn = false;
    ok = true;
done:
    if (in_txn) rp_sqlite_exec(db, "ROLLBACK", NULL);
    if (!ok) *rotated = false;
    sqlite3_finalize(st);
    rp_sqlite_pool_put(s->pool, db);
    return ok;
}

static bool s_revoke_family(rp_auth_store_t *base, const char *family_id, int64_t now, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3 *db;
    sqlite3_stmt *st =
        prepare(s, &db, "UPDATE refresh_tokens SET revoked_at = ?2 WHERE family_id = ?1 AND revoked_at IS NULL", err);
    if (!st) return false;
    sqlite3_bind_text(st, 1, family_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, now);
    bool ok = sqlite3_step(st) == SQLITE_DONE;
    if (!ok) rp_sqlite_err(db, "revoke family", err);
    finish(s, db, st);
    return ok;
}

static bool s_list_audit(rp_auth_store_t *base, const char *target_id, const char *actor_id, const char *cursor,
                         int limit, json_t **items, bool *more, rp_err_t *err) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3 *db;
    int rc;
    *items = NULL;
    *more = false;
    sqlite3_stmt *st = prepare(s, &db,
                               "SELECT id, actor_id, actor_username, action, target_type, target_id, before, after, at "
                               "FROM audit_logs WHERE (?1 IS NULL OR target_id = ?1) AND (?2 IS NULL OR actor_id = ?2) "
                               "AND (?3 IS NULL OR (at, id) < (SELECT at, id FROM audit_logs WHERE id = ?3)) "
                               "ORDER BY at DESC, id DESC LIMIT ?4",
                               err);
    if (!st) return false;
    if (target_id) sqlite3_bind_text(st, 1, target_id, -1, SQLITE_TRANSIENT);
    if (actor_id) sqlite3_bind_text(st, 2, actor_id, -1, SQLITE_TRANSIENT);
    if (cursor) sqlite3_bind_text(st, 3, cursor, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, limit + 1);
    *items = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((int)json_array_size(*items) == limit) {
            *more = true;
            break;
        }
        char at[RP_ISO_LEN];
        rp_time_iso(sqlite3_column_int64(st, 8), at);
        json_array_append_new(
            *items, json_pack("{s:o, s:{s:o, s:o}, s:o, s:{s:o, s:o}, s:o, s:o, s:s}", "id",
                              rp_sqlite_col_string(st, 0), "actor", "id", rp_sqlite_col_string(st, 1), "username",
                              rp_sqlite_col_string(st, 2), "action", rp_sqlite_col_string(st, 3), "target", "type",
                              rp_sqlite_col_string(st, 4), "id", rp_sqlite_col_string(st, 5), "before",
                              rp_sqlite_col_json(st, 6), "after", rp_sqlite_col_json(st, 7), "at", at));
    }
    bool ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    if (!ok) {
        rp_sqlite_err(db, "list audit", err);
        json_decref(*items);
        *items = NULL;
    }
    finish(s, db, st);
    return ok;
}

static void s_free(rp_auth_store_t *base) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    if (!s) return;
    rp_sqlite_pool_free(s->pool);
    free(s);
}

static const rp_auth_store_ops_t ops = {
    .ping = s_ping,
    .create_user = s_create_user,
    .find_by_id = s_find_by_id,
    .find_by_login = s_find_by_login,
    .list_users = s_list_users,
    .set_roles = s_set_roles,
    .count_with_role = s_count_with_role,
    .add_failure = s_add_failure,
    .failures = s_failures,
    .clear_failures = s_clear_failures,
    .insert_refresh = s_insert_refresh,
    .find_refresh = s_find_refresh,
    .rotate_refresh = s_rotate_refresh,
    .revoke_family = s_revoke_family,
    .list_audit = s_list_audit,
    .free = s_free,
};

rp_auth_store_t *rp_auth_store_sqlite_open(const char *dir, int max_conns, rp_err_t *err) {
    char path[1024];
    if (snprintf(path, sizeof path, "%s/auth.db", dir) >= (int)sizeof path) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "SQLITE_DIR is too long");
        return NULL;
    }
    rp_sqlite_pool_t *pool =
        rp_sqlite_pool_new(path, (const rp_sqlite_schema_t[]){{"auth", migrations, 1}, {0}}, max_conns, err);
    if (!pool) return NULL;
    sqlite_store_t *s = rp_calloc(1, sizeof *s);
    s->base.ops = &ops;
    s->pool = pool;
    return &s->base;
}
