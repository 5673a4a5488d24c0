/* sqlite_util.c - SQLite connections, migrations and a connection pool (see sqlite_util.h). */
#include "sqlite_util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"
#include "timeutil.h"

void rp_sqlite_err(sqlite3 *db, const char *what, rp_err_t *err) {
    int code = db ? sqlite3_errcode(db) & 0xff : SQLITE_ERROR;
    const char *msg = db ? sqlite3_errmsg(db) : "no connection";
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
        rp_err_set(err, 503, "STORE_BUSY", "%s: the store is busy", what);
    else
        rp_err_set(err, 500, "STORE_ERROR", "%s: %s", what, msg);
    rp_log(RP_LOG_ERROR, "sqlite", "%s: %s", what, msg);
}

bool rp_sqlite_exec(sqlite3 *db, const char *sql, rp_err_t *err) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        rp_err_set(err, 500, "STORE_ERROR", "sql failed: %s", msg ? msg : "?");
        rp_log(RP_LOG_ERROR, "sqlite", "exec failed: %s", msg ? msg : "?");
        sqlite3_free(msg);
        return false;
    }
    return true;
}

sqlite3 *rp_sqlite_open(const char *path, rp_err_t *err) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rp_err_set(err, 503, "STORE_UNAVAILABLE", "cannot open %s: %s", path,
                   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close_v2(db);
        return NULL;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 5000);
    if (!rp_sqlite_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", err)) {
        sqlite3_close_v2(db);
        return NULL;
    }
    return db;
}

static int user_version(sqlite3 *db) {
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

bool rp_sqlite_migrate(sqlite3 *db, const char *const *migrations, rp_err_t *err) {
    for (int i = 0; migrations[i]; i++) {
        if (!rp_sqlite_exec(db, "BEGIN IMMEDIATE", err)) return false;
        int v = user_version(db);
        if (v < 0) {
            rp_sqlite_err(db, "read schema version", err);
            rp_sqlite_exec(db, "ROLLBACK", NULL);
            return false;
        }
        if (v == i) {
            char bump[64];
            snprintf(bump, sizeof bump, "PRAGMA user_version=%d", i + 1);
            if (!rp_sqlite_exec(db, migrations[i], err) || !rp_sqlite_exec(db, bump, err)) {
                rp_sqlite_exec(db, "ROLLBACK", NULL);
                return false;
            }
        }
        if (!rp_sqlite_exec(db, "COMMIT", err)) {
            rp_sqlite_exec(db, "ROLLBACK", NULL);
            return false;
        }
    }
    return true;
}

void rp_sqlite_bind_text(sqlite3_stmt *st, int i, const char *s) {
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

void rp_sqlite_bind_json(sqlite3_stmt *st, int i, const json_t *v) {
    char *t = v && !json_is_null(v) ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (t)
        sqlite3_bind_text(st, i, t, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
    free(t);
}

json_t *rp_sqlite_col_string(sqlite3_stmt *st, int i) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) return json_null();
    json_t *v = json_stringn((const char *)sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i));
    return v ? v : json_null();
}

json_t *rp_sqlite_col_json(sqlite3_stmt *st, int i) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) return json_null();
    json_t *v = json_loadb((const char *)sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i),
                           JSON_DECODE_ANY, NULL);
    return v ? v : json_null();
}

json_t *rp_sqlite_col_time(sqlite3_stmt *st, int i) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) return json_null();
    char b[RP_ISO_LEN];
    rp_time_iso(sqlite3_column_int64(st, i), b);
    return json_string(b);
}

json_t *rp_sqlite_col_int(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null() : json_integer(sqlite3_column_int64(st, i));
}

bool rp_sqlite_collect(sqlite3 *db, sqlite3_stmt *st, int limit, json_t *(*row)(sqlite3_stmt *), json_t **items,
                       bool *more, rp_err_t *err) {
    int rc;
    *items = json_array();
    *more = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((int)json_array_size(*items) == limit) {
            *more = true;
            break;
        }
        json_array_append_new(*items, row(st));
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) return true;
    rp_sqlite_err(db, "list", err);
    json_decref(*items);
    *items = NULL;
    return false;
}

struct rp_sqlite_pool {
    pthread_mutex_t mu;
    pthread_cond_t freed;
    char *path;
    const char *const *migrations;
    sqlite3 **idle;
    int nidle, open, max;
};

rp_sqlite_pool_t *rp_sqlite_pool_new(const char *path, const char *const *migrations, int max_conns, rp_err_t *err) {
    rp_sqlite_pool_t *p = rp_calloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->freed, NULL);
    p->path = rp_strdup(path);
    p->migrations = migrations;
    p->max = max_conns > 0 ? max_conns : 1;
    p->idle = rp_calloc((size_t)p->max, sizeof *p->idle);
    /* open and migrate one connection now, so a bad path or schema fails at start-up */
    sqlite3 *db = rp_sqlite_open(path, err);
    if (!db || !rp_sqlite_migrate(db, migrations, err)) {
        sqlite3_close_v2(db);
        rp_sqlite_pool_free(p);
        return NULL;
    }
    p->idle[p->nidle++] = db;
    p->open = 1;
    return p;
}

sqlite3 *rp_sqlite_pool_get(rp_sqlite_pool_t *p, rp_err_t *err) {
    sqlite3 *db = NULL;
    pthread_mutex_lock(&p->mu);
    while (p->nidle == 0 && p->open >= p->max)
        pthread_cond_wait(&p->freed, &p->mu);
    if (p->nidle > 0) {
        db = p->idle[--p->nidle];
        pthread_mutex_unlock(&p->mu);
        return db;
    }
    p->open++;
    pthread_mutex_unlock(&p->mu);
    db = rp_sqlite_open(p->path, err);
    if (!db) {
        pthread_mutex_lock(&p->mu);
        p->open--;
        pthread_cond_signal(&p->freed);
        pthread_mutex_unlock(&p->mu);
    }
    return db;
}

void rp_sqlite_pool_put(rp_sqlite_pool_t *p, sqlite3 *db) {
    if (!db) return;
    if (sqlite3_get_autocommit(db) == 0) {
        /* a caller left a transaction open: never hand that state to the next user */
        rp_log(RP_LOG_ERROR, "sqlite", "connection returned inside a transaction; rolling back");
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_lock(&p->mu);
    p->idle[p->nidle++] = db;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->mu);
}

void rp_sqlite_pool_free(rp_sqlite_pool_t *p) {
    if (!p) return;
    for (int i = 0; i < p->nidle; i++)
        sqlite3_close_v2(p->idle[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->freed);
    free(p->idle);
    free(p->path);
    free(p);
}

const char *rp_sqlite_pool_path(const rp_sqlite_pool_t *p) {
    return p->path;
}
