/* event_repo_sqlite.c - the event repository on SQLite (see event_repo.h): events.db with the
 * schema of event_schema_sqlite.c, a connection pool, BEGIN IMMEDIATE for every write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_repo.h"
#include "event_schema_sqlite.h"
#include "ids.h"
#include "log.h"
#include "mem.h"
#include "sqlite_util.h"
#include "timeutil.h"

typedef struct repo {
    rp_event_repo_t base;
    rp_sqlite_pool_t *pool;
} repo_t;

/* ---- helpers ---- */

static int64_t doc_ms(const json_t *doc, const char *key) {
    const char *s = json_string_value(json_object_get(doc, key));
    int64_t ms = 0;
    if (s) rp_time_parse_iso(s, strlen(s), &ms);
    return ms;
}

static const char *doc_str(const json_t *doc, const char *key) {
    return json_string_value(json_object_get(doc, key));
}

/* One statement on one connection: prepare, run to completion; false + err on failure. */
static bool prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, rp_err_t *err) {
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK) return true;
    rp_sqlite_err(db, "prepare", err);
    return false;
}

static bool step_done(sqlite3 *db, sqlite3_stmt *st, const char *what, rp_err_t *err) {
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) return true;
    rp_sqlite_err(db, what, err);
    return false;
}

static bool append_audit(sqlite3 *db, const rp_event_audit_t *a, rp_err_t *err) {
    sqlite3_stmt *st;
    char id[RP_OID_LEN];
    if (!a) return true;
    if (!prep(
            db,
            "INSERT INTO audit_logs (id, actor_id, actor_username, action, target_type, target_id, before, after, at) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
    return step_done(db, st, "append audit", err);
}

/* Runs fn inside BEGIN IMMEDIATE ... COMMIT on a pooled connection; rolls back on failure. */
typedef bool (*txn_fn)(sqlite3 *db, void *arg, rp_err_t *err);

static bool in_txn(repo_t *r, txn_fn fn, void *arg, rp_err_t *err) {
    sqlite3 *db = rp_sqlite_pool_get(r->pool, err);
    if (!db) return false;
    bool ok = rp_sqlite_exec(db, "BEGIN IMMEDIATE", err);
    if (ok) {
        ok = fn(db, arg, err) && rp_sqlite_exec(db, "COMMIT", err);
        if (!ok) rp_sqlite_exec(db, "ROLLBACK", NULL);
    }
    rp_sqlite_pool_put(r->pool, db);
    return ok;
}

/* ---- reward definitions ---- */

/* Lists are newest first by time, the id only breaking ties and naming the cursor row: ids made
 * by different worker processes in the same second do not sort by time. */

#define DEF_COLUMNS "id, name, type, value, description, is_active, referenced, created_by, created_at, updated_at"

static json_t *row_to_def(sqlite3_stmt *st) {
    json_t *d = json_object();
    json_object_set_new(d, "id", rp_sqlite_col_string(st, 0));
    json_object_set_new(d, "name", rp_sqlite_col_string(st, 1));
    json_object_set_new(d, "type", rp_sqlite_col_string(st, 2));
    json_object_set_new(d, "value", rp_sqlite_col_json(st, 3));
    json_object_set_new(d, "description", rp_sqlite_col_string(st, 4));
    json_object_set_new(d, "isActive", json_boolean(sqlite3_column_int(st, 5)));
    json_object_set_new(d, "referenced", json_boolean(sqlite3_column_int(st, 6)));
    json_object_set_new(d, "createdBy", rp_sqlite_col_string(st, 7));
    json_object_set_new(d, "createdAt", rp_sqlite_col_time(st, 8));
    json_object_set_new(d, "updatedAt", rp_sqlite_col_time(st, 9));
    return d;
}

typedef struct doc_arg {
    const json_t *doc;
    const rp_event_audit_t *audit;
    bool flag; /* in: replace rewards; */
    bool *conflict;
} doc_arg_t;

static bool def_write(sqlite3 *db, void *p, rp_err_t *err) {
    doc_arg_t *a = p;
    sqlite3_stmt *st;
    if (!prep(db,
              "INSERT INTO reward_definitions (id, name, type, value, description, is_active, created_by, created_at, "
              "updated_at) VALUES (?1, ?2, ?3, json(?4), ?5, ?6, ?7, ?8, ?9) "
              "ON CONFLICT (id) DO UPDATE SET name = excluded.name, type = excluded.type, value = excluded.value, "
              "description = excluded.description, is_active = excluded.is_active, updated_at = excluded.updated_at",
              &st, err))
        return false;
    rp_sqlite_bind_text(st, 1, doc_str(a->doc, "id"));
    rp_sqlite_bind_text(st, 2, doc_str(a->doc, "name"));
    rp_sqlite_bind_text(st, 3, doc_str(a->doc, "type"));
    rp_sqlite_bind_json(st, 4, json_object_get(a->doc, "value"));
    rp_sqlite_bind_text(st, 5, doc_str(a->doc, "description") ? doc_str(a->doc, "description") : "");
    sqlite3_bind_int(st, 6, json_is_true(json_object_get(a->doc, "isActive")));
    rp_sqlite_bind_text(st, 7, doc_str(a->doc, "createdBy"));
    sqlite3_bind_int64(st, 8, doc_ms(a->doc, "createdAt"));
    sqlite3_bind_int64(st, 9, doc_ms(a->doc, "updatedAt"));
    return step_done(db, st, "write definition", err) && append_audit(db, a->audit, err);
}

static bool r_def_create(rp_event_repo_t *base, const json_t *doc, const rp_event_audit_t *audit, rp_err_t *err) {
    doc_arg_t a = {doc, audit, false, NULL};
    return in_txn((repo_t *)base, def_write, &a, err);
}

static bool r_def_update(rp_event_repo_t *base, const json_t *doc, const rp_event_audit_t *audit, rp_err_t *err) {
    return r_def_create(base, doc, audit, err);
}

typedef struct delete_arg {
    const char *id;
    const rp_event_audit_t *audit;
    bool *found, *referenced;
} delete_arg_t;

static bool def_delete_write(sqlite3 *db, void *p, rp_err_t *err) {
    delete_arg_t *a = p;
    sqlite3_stmt *st;
    if (!prep(db, "SELECT referenced FROM reward_definitions WHERE id = ?1", &st, err)) return false;
    rp_sqlite_bind_text(st, 1, a->id);
    int rc = sqlite3_step(st);
    int referenced = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rp_sqlite_err(db, "find definition", err);
        return false;
    }
    *a->found = rc == SQLITE_ROW;
    *a->referenced = referenced != 0;
    if (!*a->found || *a->referenced) return true;
    if (!prep(db, "DELETE FROM reward_definitions WHERE id = ?1 AND referenced = 0", &st, err)) return false;
    rp_sqlite_bind_text(st, 1, a->id);
    return step_done(db, st, "delete definition", err) && append_audit(db, a->audit, err);
}

static bool r_def_delete(rp_event_repo_t *base, const char *id, const rp_event_audit_t *audit, bool *found,
                         bool *referenced, rp_err_t *err) {
    *found = *referenced = false;
    delete_arg_t a = {id, audit, found, referenced};
    return in_txn((repo_t *)base, def_delete_write, &a, err);
}

static bool r_def_get(rp_event_repo_t *base, const char *id, json_t **doc, rp_err_t *err) {
    repo_t *r = (repo_t *)base;
    sqlite3_stmt *st;
    bool more, ok = false;
    json_t *items = NULL;
    *doc = NULL;
    sqlite3 *db = rp_sqlite_pool_get(r->pool, err);
    if (!db) return false;
    if (prep(db, "SELECT " DEF_COLUMNS " FROM reward_definitions WHERE id = ?1", &st, err)) {
        rp_sqlite_bind_text(st, 1, id);
        ok = rp_sqlite_collect(db, st, 1, row_to_def, &items, &more, err);
    }
    if (ok && json_array_size(items)) *doc = json_incref(json_array_get(items, 0));
    json_decref(items);
    rp_sqlite_pool_put(r->pool, db);
    return ok;
}

static bool r_def_list(rp_event_repo_t *base, const char *type, int active, const char *cursor, int limit,
                       json_t **items, bool *more, rp_err_t *err) {
    repo_t *r = (repo_t *)base;
    sqlite3_stmt *st;
    bool ok = false;
    *items = NULL;
    sqlite3 *db = rp_sqlite_pool_get(r->pool, err);
    if (!db) return false;
    if (prep(
            db,
            "SELECT " DEF_COLUMNS " FROM reward_definitions WHERE (?1 IS NULL OR type = ?1) AND "
            "(?2 < 0 OR is_active = ?2) AND (?3 IS NULL OR (created_at, id) < "
            "(SELECT created_at, id FROM reward_definitions WHERE id = ?3)) ORDER BY created_at DESC, id DESC LIMIT ?4",
            &st, err)) {
        rp_sqlite_bind_text(st, 1, type);
        sqlite3_bind_int(st, 2, active);
        rp_sqlite_bind_text(st, 3, cursor);
        sqlite3_bind_int(st, 4, limit + 1);
        ok = rp_sqlite_collect(db, st, limit, row_to_def, items, more, err);
    }
    rp_sqlite_pool_put(r->pool, db);
    return ok;
}

/* ---- events ---- */

#define EVENT_COLUMNS                                                                                                  \
    "id, title, description, start_at, end_at, canceled_at, conditions, condition_logic, claim_period, max_claims, "   \
    "requires_approval, day_offset_minutes, created_by, created_at, updated_at"

static json_t *row_to_event(sqlite3_stmt *st) {
    json_t *d = json_object();
    json_object_set_new(d, "id", rp_sqlite_col_string(st, 0));
    json_object_set_new(d, "title", rp_sqlite_col_string(st, 1));
    json_object_set_new(d, "description", rp_sqlite_col_string(st, 2));
    json_object_set_new(d, "startDate", rp_sqlite_col_time(st, 3));
    json_object_set_new(d, "endDate", rp_sqlite_col_time(st, 4));
    json_object_set_new(d, "canceledAt", rp_sqlite_col_time(st, 5));
    json_object_set_new(d, "conditions", rp_sqlite_col_json(st, 6));
    json_object_set_new(d, "conditionLogic", rp_sqlite_col_string(st, 7));
    json_object_set_new(d, "claimPeriod", rp_sqlite_col_string(st, 8));
    json_object_set_new(d, "maxClaims", rp_sqlite_col_int(st, 9));
    json_object_set_new(d, "requiresApproval", json_boolean(sqlite3_column_int(st, 10)));
    json_object_set_new(d, "dayOffsetMinutes", json_integer(sqlite3_column_int(st, 11)));
    json_object_set_new(d, "createdBy", rp_sqlite_col_string(st, 12));
    json_object_set_new(d, "createdAt", rp_sqlite_col_time(st, 13));
    json_object_set_new(d, "updatedAt", rp_sqlite_col_time(st, 14));
    return d;
}

/* Attaches the rewards (joined with their definitions) to each event document of items. */
static bool attach_rewards(sqlite3 *db, json_t *items, rp_err_t *err) {
    size_t i;
    json_t *ev;
    sqlite3_stmt *st;
    bool ok = true;
    if (json_array_size(items) == 0) return true;
    if (!prep(db,
              "SELECT er.idx, er.reward_definition_id, er.quantity, er.stock, er.stock_left, er.custom_data, "
              "d.name, d.type, d.value, d.is_active FROM event_rewards er "
              "JOIN reward_definitions d ON d.id = er.reward_definition_id WHERE er.event_id = ?1 ORDER BY er.idx",
              &st, err))
        return false;
    json_array_foreach(items, i, ev) {
        rp_sqlite_bind_text(st, 1, doc_str(ev, "id"));
        json_t *rewards = json_array();
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            json_t *rw = json_object();
            json_object_set_new(rw, "rewardIndex", json_integer(sqlite3_column_int(st, 0)));
            json_object_set_new(rw, "rewardDefinitionId", rp_sqlite_col_string(st, 1));
            json_object_set_new(rw, "quantity", json_integer(sqlite3_column_int64(st, 2)));
            json_object_set_new(rw, "stock", rp_sqlite_col_int(st, 3));
            json_object_set_new(rw, "stockLeft", rp_sqlite_col_int(st, 4));
            json_object_set_new(rw, "customData", rp_sqlite_col_json(st, 5));
            json_object_set_new(rw, "name", rp_sqlite_col_string(st, 6));
            json_object_set_new(rw, "type", rp_sqlite_col_string(st, 7));
            json_object_set_new(rw, "value", rp_sqlite_col_json(st, 8));
            json_object_set_new(rw, "isActive", json_boolean(sqlite3_column_int(st, 9)));
            json_array_append_new(rewards, rw);
        }
        json_object_set_new(ev, "rewards", rewards);
        if (rc != SQLITE_DONE) {
            rp_sqlite_err(db, "load rewards", err);
            ok = false;
            break;
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return ok;
}

static bool write_rewards(sqlite3 *db, const json_t *doc, rp_err_t *err) {
    sqlite3_stmt *st;
    size_t i;
    json_t *rw;
    const char *id = doc_str(doc, "id");
    if (!prep(db, "DELETE FROM event_rewards WHERE event_id = ?1", &st, err)) return false;
    rp_sqlite_bind_text(st, 1, id);
    if (!step_done(db, st, "clear rewards", err)) return false;
    json_array_foreach(json_object_get(doc, "rewards"), i, rw) {
        json_t *stock = json_object_get(rw, "stock");
        if (!prep(db,
                  "INSERT INTO event_rewards (event_id, idx, reward_definition_id, quantity, stock, stock_left, "
                  "custom_data) VALUES (?1, ?2, ?3, ?4, ?5, ?5, json(?6))",
                  &st, err))
            return false;
        rp_sqlite_bind_text(st, 1, id);
        sqlite3_bind_int(st, 2, (int)i);
        rp_sqlite_bind_text(st, 3, doc_str(rw, "rewardDefinitionId"));
        sqlite3_bind_int64(st, 4, json_integer_value(json_object_get(rw, "quantity")));
        if (json_is_integer(stock))
            sqlite3_bind_int64(st, 5, json_integer_value(stock));
        else
            sqlite3_bind_null(st, 5);
        rp_sqlite_bind_json(st, 6, json_object_get(rw, "customData"));
        if (!step_done(db, st, "insert reward", err)) return false;
        if (!prep(db, "UPDATE reward_definitions SET referenced = 1 WHERE id = ?1", &st, err)) return false;
        rp_sqlite_bind_text(st, 1, doc_str(rw, "rewardDefinitionId"));
        if (!step_done(db, st, "mark definition referenced", err)) return false;
    }
    return true;
}

static bool event_write(sqlite3 *db, void *p, rp_err_t *err) {
    doc_arg_t *a = p;
    const json_t *d = a->doc;
    sqlite3_stmt *st;
    json_t *max = json_object_get(d, "maxClaims");
    if (a->conflict && a->flag) {
        /* rewards (and their stock) are fixed once players have claimed */
        if (!prep(db, "SELECT EXISTS (SELECT 1 FROM reward_requests WHERE event_id = ?1)", &st, err)) return false;
        rp_sqlite_bind_text(st, 1, doc_str(d, "id"));
        int claimed = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
        sqlite3_finalize(st);
        if (claimed < 0) {
            rp_sqlite_err(db, "check claims", err);
            return false;
        }
        if (claimed) {
            *a->conflict = true;
            return true;
        }
    }
    if (!prep(
            db,
            "INSERT INTO events (id, title, description, start_at, end_at, conditions, condition_logic, claim_period, "
            "max_claims, requires_approval, day_offset_minutes, created_by, created_at, updated_at) "
            "VALUES (?1, ?2, ?3, ?4, ?5, json(?6), ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) "
            "ON CONFLICT (id) DO UPDATE SET title = excluded.title, description = excluded.description, "
            "start_at = excluded.start_at, end_at = excluded.end_at, conditions = excluded.conditions, "
            "condition_logic = excluded.condition_logic, claim_period = excluded.claim_period, "
            "max_claims = excluded.max_claims, requires_approval = excluded.requires_approval, "
            "day_offset_minutes = excluded.day_offset_minutes, updated_at = excluded.updated_at",
            &st, err))
        return false;
    rp_sqlite_bind_text(st, 1, doc_str(d, "id"));
    rp_sqlite_bind_text(st, 2, doc_str(d, "title"));
    rp_sqlite_bind_text(st, 3, doc_str(d, "description"));
    sqlite3_bind_int64(st, 4, doc_ms(d, "startDate"));
    sqlite3_bind_int64(st, 5, doc_ms(d, "endDate"));
    rp_sqlite_bind_json(st, 6, json_object_get(d, "conditions"));
    rp_sqlite_bind_text(st, 7, doc_str(d, "conditionLogic"));
    rp_sqlite_bind_text(st, 8, doc_str(d, "claimPeriod"));
    if (json_is_integer(max))
        sqlite3_bind_int64(st, 9, json_integer_value(max));
    else
        sqlite3_bind_null(st, 9);
    sqlite3_bind_int(st, 10, json_is_true(json_object_get(d, "requiresApproval")));
    sqlite3_bind_int(st, 11, (int)json_integer_value(json_object_get(d, "dayOffsetMinutes")));
    rp_sqlite_bind_text(st, 12, doc_str(d, "createdBy"));
    sqlite3_bind_int64(st, 13, doc_ms(d, "createdAt"));
    sqlite3_bind_int64(st, 14, doc_ms(d, "updatedAt"));
    if (!step_done(db, st, "write event", err)) return false;
    if (a->flag && !write_rewards(db, d, err)) return false;
    return append_audit(db, a->audit, err);
}

static bool r_event_create(rp_event_repo_t *base, const json_t *doc, const rp_event_audit_t *audit, rp_err_t *err) {
    doc_arg_t a = {doc, audit, true, NULL};
    return in_txn((repo_t *)base, event_write, &a, err);
}

static bool r_event_update(rp_event_repo_t *base, const json_t *doc, bool replace_rewards,
                           const rp_event_audit_t *audit, bool *conflict, rp_err_t *err) {
    *conflict = false;
    doc_arg_t a = {doc, audit, replace_rewards, conflict};
    return in_txn((repo_t *)base, event_write, &a, err);
}

static bool r_event_get(rp_event_repo_t *base, const char *id, json_t **doc, rp_err_t *err) {
    repo_t *r = (repo_t *)base;
    sqlite3_stmt *st;
    bool more, ok = false;
    json_t *items = NULL;
    *doc = NULL;
    sqlite3 *db = rp_sqlite_pool_get(r->pool, err);
    if (!db) return false;
    if (prep(db, "SELECT " EVENT_COLUMNS " FROM events WHERE id = ?1", &st, err)) {
        rp_sqlite_bind_text(st, 1, id);
        ok = rp_sqlite_collect(db, st, 1, row_to_event, &items, &more, err) && attach_rewards(db, items, err);
    }
    if (ok && json_array_size(items)) *doc = json_incref(json_array_get(items, 0));
    json_decref(items);
    rp_sqlite_pool_put(r->pool, db);
    return ok;
}

static bool r_event_list(rp_event_repo_t *base, const rp_event_filter_t *f, json_t **items, bool *more, rp_err_t *err) {
    repo_t *r = (repo_t *)base;
    sqlite3_stmt *st;
    bool ok = false;
    *items = NULL;
    sqlite3 *db = rp_sqlite_pool_get(r->pool, err);
    if (!db) return false;
    /* ?1 status (-1 any; 0 UPCOMING, 1 ACTIVE, 2 FINISHED, 3 CANCELED), ?2 now, ?3 open only,
     * ?4 active at, ?5 cursor, ?6 limit */
    if (prep(db,
             "SELECT " EVENT_COLUMNS " FROM events WHERE "
             "(?1 < 0 OR (?1 = 3 AND canceled_at IS NOT NULL) OR (canceled_at IS NULL AND ("
             "  (?1 = 0 AND start_at > ?2) OR (?1 = 1 AND start_at <= ?2 AND ?2 < end_at) OR "
             "  (?1 = 2 AND end_at <= ?2)))) AND "
             "(?3 = 0 OR (canceled_at IS NULL AND end_at > ?2)) AND "
             "(?4 IS NULL OR (canceled_at IS NULL AND start_at <= ?4 AND ?4 < end_at)) AND "
             "(?5 IS NULL OR (created_at, id) < (SELECT created_at, id FROM events WHERE id = ?5)) "
             "ORDER BY created_at DESC, id DESC LIMIT ?6",
             &st, err)) {
        sqlite3_bind_int(st, 1, f->status);
        sqlite3_bind_int64(st, 2, f->now_ms);
        sqlite3_bind_int(st, 3, f->open_only);
        if (f->active_at)
            sqlite3_bind_int64(st, 4, f->active_at);
        else
            sqlite3_bind_null(st, 4);
        rp_sqlite_bind_text(st, 5, f->cursor);
        sqlite3_bind_int(st, 6, f->limit + 1);
        ok = rp_sqlite_collect(db, st, f->limit, row_to_event, items, more, err) && attach_rewards(db, *items, err);
    }
    if (!ok) {
        json_decref(*items);
        *items = NULL;
    }
    rp_sqlite_pool_put(r->pool, db);
    return ok;
}

typedef struct cancel_arg {
    const char *id;
    int64_t now;
    const rp_event_audit_t *audit;
    bool *already;
} cancel_arg_t;

static bool cancel_write(sqlite3 *db, void *p, rp_err_t *err) {
    cancel_arg_t *a = p;
    sqlite3_stmt *st;
    if (!prep(db, "UPDATE events SET canceled_at = ?2, updated_at = ?2 WHERE id = ?1 AND canceled_at IS NULL", &st,
              err))
        return false;
    rp_sqlite_bind_text(st, 1, a->id);
    sqlite3_bind_int64(st, 2, a->now);
    if (!step_done(db, st, "cancel event", err)) return false;
    if (sqlite3_changes(db) == 0) {
        *a->already = true;
        return true;
    }
    return append_audit(db, a->audit, err);
}

static bool r_event_cancel(rp_event_repo_t *base, const char *id, int64_t now, const rp_event_audit_t *audit,
                           bool *already, rp_err_t *err) {
    *already = false;
    cancel_arg_t a = {id, now, audit, already};
    return in_txn((repo_t *)base, cancel_write, &a, err);
}

/* ---- audit log ---- */

static json_t *row_to_audit(sqlite3_stmt *st) {
    return json_pack("{s:o, s:{s:o, s:o}, s:o, s:{s:o, s:o}, s:o, s:o, s:o}", "id", rp_sqlite_col_string(st, 0),
                     "actor", "id", rp_sqlite_col_string(st, 1), "username", rp_sqlite_col_string(st, 2), "action",
                     rp_sqlite_col_string(st, 3), "target", "type", rp_sqlite_col_string(st, 4), "id",
                     rp_sqlite_col_string(st, 5), "before", rp_sqlite_col_json(st, 6), "after",
                     rp_sqlite_col_json(st, 7), "at", rp_sqlite_col_time(st, 8));
}

static bool r_audit_list(rp_event_repo_t *base, const char *target_type, const char *target_id, const char *actor_id,
                         const char *cursor, int limit, json_t **items, bool *more, rp_err_t *err) {
    repo_t *r = (repo_t *)base;
    sqlite3_stmt *st;
    bool ok = false;
    *items = NULL;
    sqlite3 *db = rp_sqlite_pool_get(r->pool, err);
    if (!db) return false;
    if (prep(db,
             "SELECT id, actor_id, actor_username, action, target_type, target_id, before, after, at FROM audit_logs "
             "WHERE (?1 IS NULL OR target_type = ?1) AND (?2 IS NULL OR target_id = ?2) AND "
             "(?3 IS NULL OR actor_id = ?3) AND (?4 IS NULL OR (at, id) < (SELECT at, id FROM audit_logs WHERE id = "
             "?4)) "
             "ORDER BY at DESC, id DESC LIMIT ?5",
             &st, err)) {
        rp_sqlite_bind_text(st, 1, target_type);
        rp_sqlite_bind_text(st, 2, target_id);
        rp_sqlite_bind_text(st, 3, actor_id);
        rp_sqlite_bind_text(st, 4, cursor);
        sqlite3_bind_int(st, 5, limit + 1);
        ok = rp_sqlite_collect(db, st, limit, row_to_audit, items, more, err);
    }
    rp_sqlite_pool_put(r->pool, db);
    return ok;
}

/* ---- progress ---- */

typedef struct ingest_arg {
    const rp_fact_t *facts;
    size_t n;
    const char *reported_by;
    int64_t now, accepted, duplicates;
} ingest_arg_t;

static bool apply_login(sqlite3 *db, const char *user, int64_t at, rp_err_t *err) {
    sqlite3_stmt *st;
    int64_t day = at >= 0 ? at / 86400000 : (at - 86399999) / 86400000;
    int minute = (int)((at - day * 86400000) / 60000);
    unsigned char bits[180];
    memset(bits, 0, sizeof bits);
    if (!prep(db, "SELECT minutes FROM progress_logins WHERE user_id = ?1 AND utc_day = ?2", &st, err)) return false;
    rp_sqlite_bind_text(st, 1, user);
    sqlite3_bind_int64(st, 2, day);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 180)
        memcpy(bits, sqlite3_column_blob(st, 0), 180);
    sqlite3_finalize(st);
    bits[minute / 8] |= (unsigned char)(1u << (minute % 8));
    if (!prep(db, "INSERT OR REPLACE INTO progress_logins (user_id, utc_day, minutes) VALUES (?1, ?2, ?3)", &st, err))
        return false;
    rp_sqlite_bind_text(st, 1, user);
    sqlite3_bind_int64(st, 2, day);
    sqlite3_bind_blob(st, 3, bits, 180, SQLITE_TRANSIENT);
    return step_done(db, st, "record login", err);
}

static bool apply_fact(sqlite3 *db, const rp_fact_t *f, int64_t now, rp_err_t *err) {
    sqlite3_stmt *st;
    switch (f->type) {
    case RP_FACT_LOGIN: return apply_login(db, f->user_id, f->occurred_at, err);
    case RP_FACT_LEVEL:
        if (!prep(db,
                  "INSERT INTO progress_levels (user_id, max_level, updated_at) VALUES (?1, ?2, ?3) "
                  "ON CONFLICT (user_id) DO UPDATE SET max_level = max(max_level, excluded.max_level), "
                  "updated_at = excluded.updated_at",
                  &st, err))
            return false;
        rp_sqlite_bind_text(st, 1, f->user_id);
        sqlite3_bind_int64(st, 2, json_integer_value(f->value));
        sqlite3_bind_int64(st, 3, now);
        return step_done(db, st, "record level", err);
    case RP_FACT_QUEST:
        if (!prep(db, "INSERT OR IGNORE INTO progress_quests (user_id, quest_id, completed_at) VALUES (?1, ?2, ?3)",
                  &st, err))
            return false;
        rp_sqlite_bind_text(st, 1, f->user_id);
        rp_sqlite_bind_text(st, 2, json_string_value(f->value));
        sqlite3_bind_int64(st, 3, f->occurred_at);
        return step_done(db, st, "record quest", err);
    case RP_FACT_INVITE:
        if (!prep(db, "INSERT OR IGNORE INTO progress_invites (user_id, invitee_id, invited_at) VALUES (?1, ?2, ?3)",
                  &st, err))
            return false;
        rp_sqlite_bind_text(st, 1, f->user_id);
        rp_sqlite_bind_text(st, 2, json_string_value(f->value));
        sqlite3_bind_int64(st, 3, f->occurred_at);
        return step_done(db, st, "record invite", err);
    case RP_FACT_COUNTER:
        if (!prep(db,
                  "INSERT INTO progress_counters (user_id, key, total, updated_at) VALUES (?1, ?2, ?3, ?4) "
                  "ON CONFLICT (user_id, key) DO UPDATE SET total = total + excluded.total, "
                  "updated_at = excluded.updated_at",
                  &st, err))
            return false;
        rp_sqlite_bind_text(st, 1, f->user_id);
        rp_sqlite_bind_text(st, 2, json_string_value(json_object_get(f->value, "key")));
        sqlite3_bind_int64(st, 3, json_integer_value(json_object_get(f->value, "delta")));
        sqlite3_bind_int64(st, 4, now);
        return step_done(db, st, "record counter", err);
    }
    return false;
}

static bool ingest_write(sqlite3 *db, void *p, rp_err_t *err) {
    ingest_arg_t *a = p;
    for (size_t i = 0; i < a->n; i++) {
        const rp_fact_t *f = &a->facts[i];
        sqlite3_stmt *st;
        if (!prep(db,
                  "INSERT OR IGNORE INTO progress_facts (idempotency_key, user_id, type, value, occurred_at, "
                  "reported_by, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                  &st, err))
            return false;
        rp_sqlite_bind_text(st, 1, f->idempotency_key);
        rp_sqlite_bind_text(st, 2, f->user_id);
        rp_sqlite_bind_text(st, 3, f->type_name);
        rp_sqlite_bind_json(st, 4, f->value);
        sqlite3_bind_int64(st, 5, f->occurred_at);
        rp_sqlite_bind_text(st, 6, a->reported_by);
        sqlite3_bind_int64(st, 7, a->now);
        if (!step_done(db, st, "record fact", err)) return false;
        if (sqlite3_changes(db) == 0) {
            a->duplicates++;
            continue;
        }
        if (!apply_fact(db, f, a->now, err)) return false;
        a->accepted++;
    }
    return true;
}

static bool r_progress_ingest(rp_event_repo_t *base, const rp_fact_t *facts, size_t n, const char *reported_by,
                              int64_t now, int64_t *accepted, int64_t *duplicates, rp_err_t *err) {
    ingest_arg_t a = {facts, n, reported_by, now, 0, 0};
    bool ok = in_txn((repo_t *)base, ingest_write, &a, err);
    *accepted = ok ? a.accepted : 0;
    *duplicates = ok ? a.duplicates : 0;
    return ok;
}

static bool load_kv(sqlite3 *db, const char *sql, const char *user, json_t *into, bool ints, rp_err_t *err) {
    sqlite3_stmt *st;
    int rc;
    if (!prep(db, sql, &st, err)) return false;
    rp_sqlite_bind_text(st, 1, user);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *v = ints ? json_integer(sqlite3_column_int64(st, 1)) : rp_sqlite_col_time(st, 1);
        json_object_set_new(into, (const char *)sqlite3_column_text(st, 0), v);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) return true;
    rp_sqlite_err(db, "load progress", err);
    return false;
}

static bool scalar(sqlite3 *db, const char *sql, const char *user, int64_t *out, rp_err_t *err) {
    sqlite3_stmt *st;
    *out = 0;
    if (!prep(db, sql, &st, err)) return false;
    rp_sqlite_bind_text(st, 1, user);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) return true;
    rp_sqlite_err(db, "load progress", err);
    return false;
}

static bool r_progress_load(rp_event_repo_t *base, const char *user, int64_t day_from, int64_t day_to, rp_progress_t *p,
                            rp_err_t *err) {
    repo_t *r = (repo_t *)base;
    sqlite3_stmt *st = NULL;
    bool ok = false;
    memset(p, 0, sizeof *p);
    p->quests = json_object();
    p->counters = json_object();
    sqlite3 *db = rp_sqlite_pool_get(r->pool, err);
    if (!db) return false;
    if (!scalar(db, "SELECT max_level FROM progress_levels WHERE user_id = ?1", user, &p->max_level, err) ||
        !scalar(db, "SELECT count(*) FROM progress_invites WHERE user_id = ?1", user, &p->invites, err) ||
        !load_kv(db, "SELECT quest_id, completed_at FROM progress_quests WHERE user_id = ?1", user, p->quests, false,
                 err) ||
        !load_kv(db, "SELECT key, total FROM progress_counters WHERE user_id = ?1", user, p->counters, true, err) ||
        !prep(db,
              "SELECT utc_day, minutes FROM progress_logins WHERE user_id = ?1 AND utc_day BETWEEN ?2 AND ?3 "
              "ORDER BY utc_day",
              &st, err))
        goto done;
    rp_sqlite_bind_text(st, 1, user);
    sqlite3_bind_int64(st, 2, day_from);
    sqlite3_bind_int64(st, 3, day_to);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (p->nlogins == cap) {
            cap = cap ? cap * 2 : 16;
            p->logins = rp_realloc(p->logins, cap * sizeof *p->logins);
        }
        rp_login_day_t *d = &p->logins[p->nlogins++];
        d->utc_day = sqlite3_column_int64(st, 0);
        memset(d->minutes, 0, sizeof d->minutes);
        if (sqlite3_column_bytes(st, 1) == 180) memcpy(d->minutes, sqlite3_column_blob(st, 1), 180);
    }
    if (rc != SQLITE_DONE) {
        rp_sqlite_err(db, "load logins", err);
        goto done;
    }
    ok = true;
done:
    sqlite3_finalize(st);
    rp_sqlite_pool_put(r->pool, db);
    if (!ok) rp_progress_release(p);
    return ok;
}

static bool r_progress_summary(rp_event_repo_t *base, const char *user, json_t **doc, rp_err_t *err) {
    repo_t *r = (repo_t *)base;
    int64_t level = 0, invites = 0, days = 0, last_day = -1;
    json_t *quests = json_object(), *counters = json_object();
    sqlite3_stmt *st = NULL;
    bool ok = false;
    *doc = NULL;
    sqlite3 *db = rp_sqlite_pool_get(r->pool, err);
    if (!db) goto done;
    if (!scalar(db, "SELECT max_level FROM progress_levels WHERE user_id = ?1", user, &level, err) ||
        !scalar(db, "SELECT count(*) FROM progress_invites WHERE user_id = ?1", user, &invites, err) ||
        !scalar(db, "SELECT count(*) FROM progress_logins WHERE user_id = ?1", user, &days, err) ||
        !load_kv(db, "SELECT quest_id, completed_at FROM progress_quests WHERE user_id = ?1", user, quests, false,
                 err) ||
        !load_kv(db, "SELECT key, total FROM progress_counters WHERE user_id = ?1", user, counters, true, err) ||
        !prep(db, "SELECT utc_day, minutes FROM progress_logins WHERE user_id = ?1 ORDER BY utc_day DESC LIMIT 1", &st,
              err))
        goto done;
    rp_sqlite_bind_text(st, 1, user);
    json_t *last = json_null();
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 1) == 180) {
        last_day = sqlite3_column_int64(st, 0);
        const unsigned char *bits = sqlite3_column_blob(st, 1);
        for (int m = 1439; m >= 0; m--)
            if (bits[m / 8] & (1u << (m % 8))) {
                char b[RP_ISO_LEN];
                rp_time_iso(last_day * 86400000 + (int64_t)m * 60000, b);
                json_decref(last);
                last = json_string(b);
                break;
            }
    }
    json_t *quest_ids = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(quests, k, v) json_array_append_new(quest_ids, json_string(k));
    *doc = json_pack("{s:s, s:I, s:o, s:I, s:O, s:I, s:o}", "userId", user, "maxLevel", (json_int_t)level,
                     "questsCompleted", quest_ids, "invites", (json_int_t)invites, "counters", counters, "loginDays",
                     (json_int_t)days, "lastLoginAt", last);
    ok = true;
done:
    sqlite3_finalize(st);
    if (db) rp_sqlite_pool_put(r->pool, db);
    json_decref(quests);
    json_decref(counters);
    return ok;
}

static bool r_ping(rp_event_repo_t *base, rp_err_t *err) {
    repo_t *r = (repo_t *)base;
    sqlite3 *db = rp_sqlite_pool_get(r->pool, err);
    if (!db) return false;
    bool ok = rp_sqlite_exec(db, "SELECT 1 FROM events LIMIT 1", err);
    rp_sqlite_pool_put(r->pool, db);
    return ok;
}

static void r_free(rp_event_repo_t *base) {
    repo_t *r = (repo_t *)base;
    if (!r) return;
    rp_sqlite_pool_free(r->pool);
    free(r);
}

static const rp_event_repo_ops_t ops = {
    .ping = r_ping,
    .def_create = r_def_create,
    .def_get = r_def_get,
    .def_list = r_def_list,
    .def_update = r_def_update,
    .def_delete = r_def_delete,
    .event_create = r_event_create,
    .event_get = r_event_get,
    .event_list = r_event_list,
    .event_update = r_event_update,
    .event_cancel = r_event_cancel,
    .audit_list = r_audit_list,
    .progress_ingest = r_progress_ingest,
    .progress_load = r_progress_load,
    .progress_summary = r_progress_summary,
    .free = r_free,
};

rp_event_repo_t *rp_event_repo_sqlite_open(const char *dir, int max_conns, rp_err_t *err) {
    char path[1024];
    if (snprintf(path, sizeof path, "%s/%s", dir, RP_EVENT_SQLITE_FILE) >= (int)sizeof path) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "SQLITE_DIR is too long");
        return NULL;
    }
    rp_sqlite_pool_t *pool = rp_sqlite_pool_new(path, rp_events_db_schemas, max_conns, err);
    if (!pool) return NULL;
    repo_t *r = rp_calloc(1, sizeof *r);
    r->base.ops = &ops;
    r->pool = pool;
    return &r->base;
}
