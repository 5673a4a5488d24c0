/* event_repo_sqlite.c - the event repository on SQLite (see event_repo.h): events.db with the
 * schema of event_schema_sqlite.c, a connection pool, every write in rp_sqlite_transact and every
 * multi-query read in rp_sqlite_read. It stores and fetches only: statuses arrive as time bounds,
 * aggregates as the values to keep. Thread-safe (the pool is). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_repo.h"
#include "event_schema_sqlite.h"
#include "ids.h"
#include "mem.h"
#include "sqlite_util.h"
#include "store_handle.h"
#include "timeutil.h"

static rp_sqlite_pool_t *pool_of(rp_event_repo_t *base) {
    return rp_store_handle_backend(base);
}

static void r_free(rp_event_repo_t *base) {
    rp_store_handle_free(base);
}

/* ---- statements with their parameters ---- */

/* One ?N parameter of a statement, bound in order from ?1. */
typedef enum { A_NULL, A_TEXT, A_INT, A_JSON } arg_kind_t;
typedef struct arg {
    arg_kind_t kind;
    const char *s;
    int64_t i;
    const json_t *j;
} arg_t;

static arg_t a_text(const char *s) {
    return (arg_t){s ? A_TEXT : A_NULL, s, 0, NULL};
}
static arg_t a_int(int64_t i) {
    return (arg_t){A_INT, NULL, i, NULL};
}
static arg_t a_json(const json_t *j) {
    return (arg_t){A_JSON, NULL, 0, j};
}
/* A JSON integer, or NULL for anything else (an optional number such as maxClaims or stock). */
static arg_t a_jint(const json_t *j) {
    return json_is_integer(j) ? a_int(json_integer_value(j)) : (arg_t){A_NULL, NULL, 0, NULL};
}

static const char *doc_str(const json_t *doc, const char *key) {
    return json_string_value(json_object_get(doc, key));
}

static arg_t a_ms(const json_t *doc, const char *key) {
    const char *s = doc_str(doc, key);
    int64_t ms = 0;
    if (s) rp_time_parse_iso(s, strlen(s), &ms);
    return a_int(ms);
}

/* Prepares sql and binds args[0..n) as ?1..?n. */
static bool prepare_args(sqlite3 *db, const char *sql, const arg_t *args, size_t n, sqlite3_stmt **st, rp_err_t *err) {
    if (!rp_sqlite_prepare(db, sql, st, err)) return false;
    for (size_t k = 0; k < n; k++) {
        int i = (int)k + 1;
        switch (args[k].kind) {
        case A_NULL: sqlite3_bind_null(*st, i); break;
        case A_TEXT: rp_sqlite_bind_text(*st, i, args[k].s); break;
        case A_INT: sqlite3_bind_int64(*st, i, args[k].i); break;
        case A_JSON: rp_sqlite_bind_json(*st, i, args[k].j); break;
        }
    }
    return true;
}

#define ARGS(...) (const arg_t[]){__VA_ARGS__}, sizeof((const arg_t[]){__VA_ARGS__}) / sizeof(arg_t)

/* Runs a write to completion; *changes (may be NULL) as rp_sqlite_run. */
static bool run_args(sqlite3 *db, const char *sql, const arg_t *args, size_t n, const char *what, int *changes,
                     rp_err_t *err) {
    sqlite3_stmt *st;
    return prepare_args(db, sql, args, n, &st, err) && rp_sqlite_run(db, st, what, changes, err);
}

/* The first column of the first row of sql (binding ?1 = id) as an integer; *found (may be NULL)
 * says whether there was a row (else *out is 0). */
static bool scalar(sqlite3 *db, const char *sql, const char *id, int64_t *out, bool *found, rp_err_t *err) {
    sqlite3_stmt *st;
    *out = 0;
    if (!prepare_args(db, sql, ARGS(a_text(id)), &st, err)) return false;
    int rc = rp_sqlite_step_row(db, st, "read", err);
    if (found) *found = rc == 1;
    if (rc == 1) {
        *out = sqlite3_column_int64(st, 0);
        rp_sqlite_finalize(st);
    }
    return rc >= 0;
}

/* A page (or the one row) of a SELECT, read by rp_sqlite_read; events get their rewards. */
typedef struct query {
    const char *sql;
    const arg_t *args;
    size_t nargs;
    json_t *(*row)(sqlite3_stmt *);
    bool rewards;
    int limit;
} query_t;

typedef struct query_run {
    const query_t *q;
    json_t *items;
    bool more;
} query_run_t;

static bool attach_rewards(sqlite3 *db, json_t *items, rp_err_t *err);

static rp_txn_end_t query_body(sqlite3 *db, void *p, rp_err_t *err) {
    query_run_t *run = p;
    const query_t *q = run->q;
    sqlite3_stmt *st;
    bool ok = prepare_args(db, q->sql, q->args, q->nargs, &st, err) &&
              rp_sqlite_collect(db, st, q->limit, q->row, &run->items, &run->more, err) &&
              (!q->rewards || attach_rewards(db, run->items, err));
    return ok ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

/* Runs q; on success *items is a new array (NULL on failure) and *more set. */
static bool query_page(rp_event_repo_t *base, const query_t *q, json_t **items, bool *more, rp_err_t *err) {
    query_run_t run = {q, NULL, false};
    bool ok = rp_sqlite_read(pool_of(base), query_body, &run, err);
    if (!ok) json_decref(run.items);
    *items = ok ? run.items : NULL;
    *more = ok && run.more;
    return ok;
}

/* Runs q (limit 1): *doc is its row (a new reference) or NULL. */
static bool query_one(rp_event_repo_t *base, const query_t *q, json_t **doc, rp_err_t *err) {
    json_t *items = NULL;
    bool more;
    bool ok = query_page(base, q, &items, &more, err);
    *doc = json_incref(json_array_get(items, 0));
    json_decref(items);
    return ok;
}

static rp_txn_end_t end_of(bool ok) {
    return ok ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

/* ---- the unit of work and its primitives ---- */

struct rp_event_txn {
    sqlite3 *db;
    rp_err_t *err;
};

typedef struct body {
    rp_event_txn_fn fn;
    void *arg;
} body_t;

static rp_txn_end_t run_body(sqlite3 *db, void *p, rp_err_t *err) {
    body_t *b = p;
    rp_event_txn_t tx = {db, err};
    return b->fn(&tx, b->arg);
}

static bool r_transact(rp_event_repo_t *base, const char *what, rp_event_txn_fn fn, void *arg, rp_err_t *err) {
    body_t b = {fn, arg};
    (void)what; /* SQLite errors name their statement */
    return rp_sqlite_transact(pool_of(base), run_body, &b, err);
}

static bool r_tx_fact_record(rp_event_txn_t *tx, const rp_fact_t *f, const char *reported_by, int64_t now, bool *is_new,
                             rp_stored_fact_t *stored) {
    int changes = 0;
    sqlite3_stmt *st;
    rp_stored_fact_clear(stored);
    bool ok = run_args(tx->db,
                       "INSERT INTO progress_facts (user_id, idempotency_key, type, value, occurred_at, reported_by, "
                       "received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (user_id, idempotency_key) "
                       "DO NOTHING",
                       ARGS(a_text(f->user_id), a_text(f->idempotency_key), a_text(f->type_name), a_json(f->value),
                            a_int(f->occurred_at), a_text(reported_by), a_int(now)),
                       "record fact", &changes, tx->err);
    *is_new = ok && changes > 0;
    if (!ok || *is_new || !stored) return ok;
    if (!prepare_args(tx->db,
                      "SELECT type, value, occurred_at FROM progress_facts WHERE user_id = ?1 AND idempotency_key = ?2",
                      ARGS(a_text(f->user_id), a_text(f->idempotency_key)), &st, tx->err))
        return false;
    int rc = rp_sqlite_step_row(tx->db, st, "read fact", tx->err);
    if (rc == 1) {
        const char *type = (const char *)sqlite3_column_text(st, 0), *value = (const char *)sqlite3_column_text(st, 1);
        snprintf(stored->type_name, sizeof stored->type_name, "%s", type ? type : "");
        stored->value = value ? json_loads(value, JSON_DECODE_ANY, NULL) : NULL;
        stored->occurred_at = sqlite3_column_int64(st, 2);
        rp_sqlite_finalize(st);
    }
    return rc >= 0;
}

/* Each aggregate kind's table. Parameters are the same for all: ?1 user, ?2 key (logins: the
 * UTC day), ?3 number, ?4 at, ?5 minutes; a statement uses those its table has. Reads return
 * (number, at, minutes), NULL where the table has no such column. */
static const struct {
    const char *get, *put;
} aggregate_sql[] = {
    [RP_FACT_LOGIN] = {"SELECT NULL, NULL, minutes FROM progress_logins WHERE user_id = ?1 AND utc_day = ?2",
                       "INSERT OR REPLACE INTO progress_logins (user_id, utc_day, minutes) VALUES (?1, ?2, ?5)"},
    [RP_FACT_LEVEL] = {"SELECT max_level, updated_at, NULL FROM progress_levels WHERE user_id = ?1",
                       "INSERT OR REPLACE INTO progress_levels (user_id, max_level, updated_at) VALUES (?1, ?3, ?4)"},
    [RP_FACT_QUEST] = {"SELECT NULL, completed_at, NULL FROM progress_quests WHERE user_id = ?1 AND quest_id = ?2",
                       "INSERT OR REPLACE INTO progress_quests (user_id, quest_id, completed_at) VALUES (?1, ?2, ?4)"},
    [RP_FACT_INVITE] =
        {"SELECT NULL, invited_at, NULL FROM progress_invites WHERE user_id = ?1 AND invitee_id = ?2",
         "INSERT OR REPLACE INTO progress_invites (user_id, invitee_id, invited_at) VALUES (?1, ?2, ?4)"},
    [RP_FACT_COUNTER] = {"SELECT total, updated_at, NULL FROM progress_counters WHERE user_id = ?1 AND key = ?2",
                         "INSERT OR REPLACE INTO progress_counters (user_id, key, total, updated_at) "
                         "VALUES (?1, ?2, ?3, ?4)"},
};

/* Prepares the get or put statement of a's kind with a's values bound. Binding a parameter
 * number the statement does not use is a harmless SQLITE_RANGE. */
static bool aggregate_stmt(rp_event_txn_t *tx, bool put, const char *user, const rp_aggregate_t *a, sqlite3_stmt **st) {
    if ((unsigned)a->kind >= sizeof aggregate_sql / sizeof aggregate_sql[0]) {
        rp_err_set(tx->err, RP_ERR_INTERNAL, "INTERNAL", "unknown progress kind %d", (int)a->kind);
        return false;
    }
    arg_t key = a->kind == RP_FACT_LOGIN ? a_int(a->day) : a_text(a->key);
    if (!prepare_args(tx->db, put ? aggregate_sql[a->kind].put : aggregate_sql[a->kind].get,
                      ARGS(a_text(user), key, a_int(a->number), a_int(a->at)), st, tx->err))
        return false;
    sqlite3_bind_blob(*st, 5, a->minutes, RP_LOGIN_DAY_BYTES, SQLITE_TRANSIENT);
    return true;
}

/* A login bitmap column into out; a value of the wrong size reads as no logins. */
static void col_minutes(sqlite3_stmt *st, int i, unsigned char out[RP_LOGIN_DAY_BYTES]) {
    const void *b = sqlite3_column_blob(st, i);
    memset(out, 0, RP_LOGIN_DAY_BYTES);
    if (b && sqlite3_column_bytes(st, i) == RP_LOGIN_DAY_BYTES) memcpy(out, b, RP_LOGIN_DAY_BYTES);
}

static bool r_tx_aggregate_get(rp_event_txn_t *tx, const char *user, rp_aggregate_t *a, bool *found) {
    sqlite3_stmt *st;
    *found = false;
    if (!aggregate_stmt(tx, false, user, a, &st)) return false;
    int rc = rp_sqlite_step_row(tx->db, st, "read progress", tx->err);
    if (rc == 1) {
        *found = true;
        a->number = sqlite3_column_int64(st, 0);
        a->at = sqlite3_column_int64(st, 1);
        col_minutes(st, 2, a->minutes);
        rp_sqlite_finalize(st);
    }
    return rc >= 0;
}

static bool r_tx_aggregate_put(rp_event_txn_t *tx, const char *user, const rp_aggregate_t *a) {
    sqlite3_stmt *st;
    return aggregate_stmt(tx, true, user, a, &st) && rp_sqlite_run(tx->db, st, "write progress", NULL, tx->err);
}

/* ---- reward definitions ---- */

/* Lists are newest first by time, the id only breaking ties and naming the cursor row: ids made
 * by different worker processes in the same second do not sort by time. */

#define DEF_COLUMNS "id, name, type, value, description, is_active, referenced, created_by, created_at, updated_at"

static json_t *row_to_def(sqlite3_stmt *st) {
    return rp_sqlite_row_json(st, 0, &rp_event_def_json);
}

typedef struct doc_arg {
    const json_t *doc;
    const rp_event_audit_t *audit;
    bool replace_rewards, only_if_no_slots;
    bool claimed; /* out */
} doc_arg_t;

static rp_txn_end_t def_write(sqlite3 *db, void *p, rp_err_t *err) {
    doc_arg_t *a = p;
    const json_t *d = a->doc;
    const char *desc = doc_str(d, "description");
    bool ok =
        run_args(db,
                 "INSERT INTO reward_definitions (id, name, type, value, description, is_active, created_by, "
                 "created_at, updated_at) VALUES (?1, ?2, ?3, json(?4), ?5, ?6, ?7, ?8, ?9) "
                 "ON CONFLICT (id) DO UPDATE SET name = excluded.name, type = excluded.type, value = excluded.value, "
                 "description = excluded.description, is_active = excluded.is_active, updated_at = excluded.updated_at",
                 ARGS(a_text(doc_str(d, "id")), a_text(doc_str(d, "name")), a_text(doc_str(d, "type")),
                      a_json(json_object_get(d, "value")), a_text(desc ? desc : ""),
                      a_int(json_is_true(json_object_get(d, "isActive"))), a_text(doc_str(d, "createdBy")),
                      a_ms(d, "createdAt"), a_ms(d, "updatedAt")),
                 "write definition", NULL, err) &&
        rp_sqlite_audit_append(db, a->audit, err);
    return end_of(ok);
}

static bool r_def_create(rp_event_repo_t *base, const json_t *doc, const rp_event_audit_t *audit, rp_err_t *err) {
    doc_arg_t a = {.doc = doc, .audit = audit};
    return rp_sqlite_transact(pool_of(base), def_write, &a, err);
}

/* The same upsert: createdBy and createdAt stay. */
static bool r_def_update(rp_event_repo_t *base, const json_t *doc, const rp_event_audit_t *audit, rp_err_t *err) {
    return r_def_create(base, doc, audit, err);
}

typedef struct delete_arg {
    const char *id;
    const rp_event_audit_t *audit;
    bool found, referenced; /* out */
} delete_arg_t;

static rp_txn_end_t def_delete_write(sqlite3 *db, void *p, rp_err_t *err) {
    delete_arg_t *a = p;
    int64_t referenced = 0;
    if (!scalar(db, "SELECT referenced FROM reward_definitions WHERE id = ?1", a->id, &referenced, &a->found, err))
        return RP_TXN_FAILED;
    a->referenced = referenced != 0;
    if (!a->found || a->referenced) return RP_TXN_ROLLBACK;
    return end_of(run_args(db, "DELETE FROM reward_definitions WHERE id = ?1 AND referenced = 0", ARGS(a_text(a->id)),
                           "delete definition", NULL, err) &&
                  rp_sqlite_audit_append(db, a->audit, err));
}

static bool r_def_delete(rp_event_repo_t *base, const char *id, const rp_event_audit_t *audit, bool *found,
                         bool *referenced, rp_err_t *err) {
    delete_arg_t a = {id, audit, false, false};
    bool ok = rp_sqlite_transact(pool_of(base), def_delete_write, &a, err);
    *found = ok && a.found;
    *referenced = ok && a.referenced;
    return ok;
}

static bool r_def_get(rp_event_repo_t *base, const char *id, json_t **doc, rp_err_t *err) {
    query_t q = {"SELECT " DEF_COLUMNS " FROM reward_definitions WHERE id = ?1", ARGS(a_text(id)), row_to_def, false,
                 1};
    return query_one(base, &q, doc, err);
}

static bool r_def_list(rp_event_repo_t *base, const char *type, int active, const char *cursor, int limit,
                       json_t **items, bool *more, rp_err_t *err) {
    query_t q = {"SELECT " DEF_COLUMNS " FROM reward_definitions WHERE (?1 IS NULL OR type = ?1) AND "
                 "(?2 < 0 OR is_active = ?2) AND (?3 IS NULL OR (created_at, id) < "
                 "(SELECT created_at, id FROM reward_definitions WHERE id = ?3)) ORDER BY created_at DESC, id DESC "
                 "LIMIT ?4",
                 ARGS(a_text(type), a_int(active), a_text(cursor), a_int(limit + 1)), row_to_def, false, limit};
    return query_page(base, &q, items, more, err);
}

/* ---- events ---- */

#define EVENT_COLUMNS                                                                                                  \
    "id, title, description, start_at, end_at, canceled_at, conditions, condition_logic, claim_period, max_claims, "   \
    "requires_approval, day_offset_minutes, created_by, created_at, updated_at"

static json_t *row_to_event(sqlite3_stmt *st) {
    return rp_sqlite_row_json(st, 0, &rp_event_json);
}

/* The reward's columns, then its definition's. */
static json_t *row_to_reward(sqlite3_stmt *st) {
    json_t *o = rp_sqlite_row_json(st, 0, &rp_event_reward_json);
    json_object_update_new(o, rp_sqlite_row_json(st, (int)rp_event_reward_json.n, &rp_event_reward_def_json));
    return o;
}

/* Attaches the rewards (joined with their definitions) to each event document of items, with one
 * query for the whole page (the ids go in as one JSON array). */
static bool attach_rewards(sqlite3 *db, json_t *items, rp_err_t *err) {
    size_t i;
    json_t *ev, *ids = json_array(), *by_event = json_object();
    sqlite3_stmt *st = NULL;
    int rc = 0;
    json_array_foreach(items, i, ev) {
        json_t *rewards = json_array();
        json_object_set(by_event, doc_str(ev, "id"), rewards);
        json_object_set_new(ev, "rewards", rewards);
        json_array_append(ids, json_object_get(ev, "id"));
    }
    if (json_array_size(ids) > 0 &&
        prepare_args(db,
                     "SELECT er.idx, er.reward_definition_id, er.quantity, er.stock, er.stock_left, "
                     "er.custom_data, d.name, d.type, d.value, d.is_active, er.event_id FROM event_rewards er "
                     "JOIN reward_definitions d ON d.id = er.reward_definition_id "
                     "WHERE er.event_id IN (SELECT value FROM json_each(?1)) ORDER BY er.event_id, er.idx",
                     ARGS(a_json(ids)), &st, err)) {
        while ((rc = rp_sqlite_step_row(db, st, "load rewards", err)) == 1) {
            json_t *rewards = json_object_get(by_event, (const char *)sqlite3_column_text(st, 10));
            json_array_append_new(rewards, row_to_reward(st));
        }
    }
    json_decref(ids);
    json_decref(by_event);
    return json_array_size(items) == 0 || (st && rc == 0);
}

static bool write_rewards(sqlite3 *db, const json_t *doc, rp_err_t *err) {
    size_t i;
    json_t *rw;
    const char *id = doc_str(doc, "id");
    if (!run_args(db, "DELETE FROM event_rewards WHERE event_id = ?1", ARGS(a_text(id)), "clear rewards", NULL, err))
        return false;
    json_array_foreach(json_object_get(doc, "rewards"), i, rw) {
        const char *def = doc_str(rw, "rewardDefinitionId");
        if (!run_args(db,
                      "INSERT INTO event_rewards (event_id, idx, reward_definition_id, quantity, stock, stock_left, "
                      "custom_data) VALUES (?1, ?2, ?3, ?4, ?5, ?5, json(?6))",
                      ARGS(a_text(id), a_int((int64_t)i), a_text(def),
                           a_int(json_integer_value(json_object_get(rw, "quantity"))),
                           a_jint(json_object_get(rw, "stock")), a_json(json_object_get(rw, "customData"))),
                      "insert reward", NULL, err) ||
            !run_args(db, "UPDATE reward_definitions SET referenced = 1 WHERE id = ?1", ARGS(a_text(def)),
                      "mark definition referenced", NULL, err))
            return false;
    }
    return true;
}

static rp_txn_end_t event_write(sqlite3 *db, void *p, rp_err_t *err) {
    doc_arg_t *a = p;
    const json_t *d = a->doc;
    if (a->only_if_no_slots) {
        int64_t claimed = 0;
        if (!scalar(db, "SELECT EXISTS (SELECT 1 FROM reward_requests WHERE event_id = ?1 AND active_key IS NOT NULL)",
                    doc_str(d, "id"), &claimed, NULL, err))
            return RP_TXN_FAILED;
        a->claimed = claimed != 0;
        if (a->claimed) return RP_TXN_ROLLBACK;
    }
    bool ok = run_args(db,
                       "INSERT INTO events (id, title, description, start_at, end_at, conditions, condition_logic, "
                       "claim_period, max_claims, requires_approval, day_offset_minutes, created_by, created_at, "
                       "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, json(?6), ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) "
                       "ON CONFLICT (id) DO UPDATE SET title = excluded.title, description = excluded.description, "
                       "start_at = excluded.start_at, end_at = excluded.end_at, conditions = excluded.conditions, "
                       "condition_logic = excluded.condition_logic, claim_period = excluded.claim_period, "
                       "max_claims = excluded.max_claims, requires_approval = excluded.requires_approval, "
                       "day_offset_minutes = excluded.day_offset_minutes, updated_at = excluded.updated_at",
                       ARGS(a_text(doc_str(d, "id")), a_text(doc_str(d, "title")), a_text(doc_str(d, "description")),
                            a_ms(d, "startDate"), a_ms(d, "endDate"), a_json(json_object_get(d, "conditions")),
                            a_text(doc_str(d, "conditionLogic")), a_text(doc_str(d, "claimPeriod")),
                            a_jint(json_object_get(d, "maxClaims")),
                            a_int(json_is_true(json_object_get(d, "requiresApproval"))),
                            a_int(json_integer_value(json_object_get(d, "dayOffsetMinutes"))),
                            a_text(doc_str(d, "createdBy")), a_ms(d, "createdAt"), a_ms(d, "updatedAt")),
                       "write event", NULL, err) &&
              (!a->replace_rewards || write_rewards(db, d, err)) && rp_sqlite_audit_append(db, a->audit, err);
    return end_of(ok);
}

static bool r_event_create(rp_event_repo_t *base, const json_t *doc, const rp_event_audit_t *audit, rp_err_t *err) {
    doc_arg_t a = {.doc = doc, .audit = audit, .replace_rewards = true};
    return rp_sqlite_transact(pool_of(base), event_write, &a, err);
}

static bool r_event_update(rp_event_repo_t *base, const json_t *doc, bool replace_rewards, bool only_if_no_slots,
                           const rp_event_audit_t *audit, bool *claimed, rp_err_t *err) {
    doc_arg_t a = {doc, audit, replace_rewards, only_if_no_slots, false};
    bool ok = rp_sqlite_transact(pool_of(base), event_write, &a, err);
    *claimed = ok && a.claimed;
    return ok;
}

static bool r_event_get(rp_event_repo_t *base, const char *id, json_t **doc, rp_err_t *err) {
    query_t q = {"SELECT " EVENT_COLUMNS " FROM events WHERE id = ?1", ARGS(a_text(id)), row_to_event, true, 1};
    return query_one(base, &q, doc, err);
}

/* Each bound one comparison; the "none" sentinels (INT64_MIN / INT64_MAX) hold for every row. */
static bool r_event_list(rp_event_repo_t *base, const rp_event_filter_t *f, json_t **items, bool *more, rp_err_t *err) {
    const rp_event_bounds_t *b = &f->bounds;
    /* the unary + keeps the planner off the window index: a page is the newest events that match,
     * read from events_created in order and stopped at the limit, not every match sorted */
    query_t q = {"SELECT " EVENT_COLUMNS " FROM events WHERE NOT ?1 AND (?2 < 0 OR (canceled_at IS NOT NULL) = ?2) "
                 "AND +start_at <= ?3 AND +start_at > ?4 AND +end_at > ?5 AND +end_at <= ?6 AND (?7 IS NULL OR "
                 "(created_at, id) < (SELECT created_at, id FROM events WHERE id = ?7)) "
                 "ORDER BY created_at DESC, id DESC LIMIT ?8",
                 ARGS(a_int(b->empty), a_int(b->canceled), a_int(b->start_le), a_int(b->start_gt), a_int(b->end_gt),
                      a_int(b->end_le), a_text(f->cursor), a_int(f->limit + 1)),
                 row_to_event, true, f->limit};
    return query_page(base, &q, items, more, err);
}

typedef struct cancel_arg {
    const char *id;
    int64_t now;
    const rp_event_settle_t *settle;
    const rp_event_audit_t *audit;
    bool already;    /* out */
    int64_t settled; /* out */
} cancel_arg_t;

static rp_txn_end_t cancel_write(sqlite3 *db, void *p, rp_err_t *err) {
    cancel_arg_t *a = p;
    const rp_event_settle_t *s = a->settle;
    int changes = 0, settled = 0;
    if (!run_args(db, "UPDATE events SET canceled_at = ?2, updated_at = ?2 WHERE id = ?1 AND canceled_at IS NULL",
                  ARGS(a_text(a->id), a_int(a->now)), "cancel event", &changes, err))
        return RP_TXN_FAILED;
    a->already = changes == 0;
    if (a->already) return RP_TXN_ROLLBACK;
    if (s && !run_args(db,
                       "UPDATE reward_requests SET status = ?3, failure_reason = ?4, processor_id = ?5, "
                       "processed_at = ?6, updated_at = ?6, active_key = NULL WHERE event_id = ?1 AND status = ?2",
                       ARGS(a_text(a->id), a_text(s->from), a_text(s->to), a_text(s->failure_reason),
                            a_text(s->processor_id), a_int(a->now)),
                       "settle requests", &settled, err))
        return RP_TXN_FAILED;
    a->settled = settled;
    return end_of(rp_sqlite_audit_append(db, a->audit, err));
}

static bool r_event_cancel(rp_event_repo_t *base, const char *id, int64_t now, const rp_event_settle_t *settle,
                           const rp_event_audit_t *audit, bool *already, int64_t *settled, rp_err_t *err) {
    cancel_arg_t a = {id, now, settle, audit, false, 0};
    bool ok = rp_sqlite_transact(pool_of(base), cancel_write, &a, err);
    *already = ok && a.already;
    if (settled) *settled = ok ? a.settled : 0;
    return ok;
}

typedef struct window_arg {
    const char *id;
    int64_t start, end, now;
    const rp_event_bounds_t *guard;
    const rp_event_audit_t *audit;
    bool moved; /* out */
} window_arg_t;

/* The guard is event_list's comparisons on the stored row, in the UPDATE itself. */
static rp_txn_end_t window_write(sqlite3 *db, void *p, rp_err_t *err) {
    window_arg_t *a = p;
    const rp_event_bounds_t *b = a->guard;
    int changes = 0;
    if (!run_args(db,
                  "UPDATE events SET start_at = ?2, end_at = ?3, updated_at = ?4 WHERE id = ?1 AND NOT ?5 AND "
                  "(?6 < 0 OR (canceled_at IS NOT NULL) = ?6) AND start_at <= ?7 AND start_at > ?8 AND end_at > ?9 "
                  "AND end_at <= ?10",
                  ARGS(a_text(a->id), a_int(a->start), a_int(a->end), a_int(a->now), a_int(b->empty),
                       a_int(b->canceled), a_int(b->start_le), a_int(b->start_gt), a_int(b->end_gt), a_int(b->end_le)),
                  "set event window", &changes, err))
        return RP_TXN_FAILED;
    a->moved = changes > 0;
    return a->moved ? end_of(rp_sqlite_audit_append(db, a->audit, err)) : RP_TXN_ROLLBACK;
}

static bool r_event_set_window(rp_event_repo_t *base, const char *id, int64_t start_ms, int64_t end_ms, int64_t now,
                               const rp_event_bounds_t *guard, const rp_event_audit_t *audit, bool *moved,
                               rp_err_t *err) {
    window_arg_t a = {id, start_ms, end_ms, now, guard, audit, false};
    bool ok = rp_sqlite_transact(pool_of(base), window_write, &a, err);
    *moved = ok && a.moved;
    return ok;
}

/* ---- audit log ---- */

static bool r_audit_list(rp_event_repo_t *base, const char *target_type, const char *target_id, const char *actor_id,
                         const char *cursor, int limit, json_t **items, bool *more, rp_err_t *err) {
    return rp_sqlite_audit_list(pool_of(base), target_type, target_id, actor_id, cursor, limit, items, more, err);
}

/* ---- progress reads ---- */

/* Rows (key, value) of sql for user into the object into: values are times or integers. */
static bool load_kv(sqlite3 *db, const char *sql, const char *user, json_t *into, bool ints, rp_err_t *err) {
    sqlite3_stmt *st;
    int rc;
    if (!prepare_args(db, sql, ARGS(a_text(user)), &st, err)) return false;
    while ((rc = rp_sqlite_step_row(db, st, "load progress", err)) == 1) {
        json_t *v = ints ? json_integer(sqlite3_column_int64(st, 1)) : rp_sqlite_col_time(st, 1);
        json_object_set_new(into, (const char *)sqlite3_column_text(st, 0), v);
    }
    return rc == 0;
}

typedef struct progress_arg {
    const char *user;
    int64_t day_from, day_to;
    rp_progress_t *p;
    int64_t *login_days; /* NULL: the logins of [day_from, day_to]; else the summary */
} progress_arg_t;

static rp_txn_end_t progress_read(sqlite3 *db, void *arg, rp_err_t *err) {
    progress_arg_t *a = arg;
    rp_progress_t *p = a->p;
    unsigned char minutes[RP_LOGIN_DAY_BYTES];
    sqlite3_stmt *st;
    int rc;
    if (!scalar(db, "SELECT max_level FROM progress_levels WHERE user_id = ?1", a->user, &p->max_level, NULL, err) ||
        !scalar(db, "SELECT count(*) FROM progress_invites WHERE user_id = ?1", a->user, &p->invites, NULL, err) ||
        !load_kv(db, "SELECT quest_id, completed_at FROM progress_quests WHERE user_id = ?1", a->user, p->quests, false,
                 err) ||
        !load_kv(db, "SELECT key, total FROM progress_counters WHERE user_id = ?1", a->user, p->counters, true, err) ||
        (a->login_days &&
         !scalar(db, "SELECT count(*) FROM progress_logins WHERE user_id = ?1", a->user, a->login_days, NULL, err)) ||
        !prepare_args(db,
                      a->login_days ? "SELECT utc_day, minutes FROM progress_logins WHERE user_id = ?1 "
                                      "ORDER BY utc_day DESC LIMIT 1"
                                    : "SELECT utc_day, minutes FROM progress_logins WHERE user_id = ?1 AND "
                                      "utc_day BETWEEN ?2 AND ?3 ORDER BY utc_day",
                      ARGS(a_text(a->user), a_int(a->day_from), a_int(a->day_to)), &st, err))
        return RP_TXN_FAILED;
    while ((rc = rp_sqlite_step_row(db, st, "load logins", err)) == 1) {
        col_minutes(st, 1, minutes);
        rp_progress_add_login(p, sqlite3_column_int64(st, 0), minutes);
    }
    return rc == 0 ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

static bool read_progress(rp_event_repo_t *base, progress_arg_t *a, rp_err_t *err) {
    rp_progress_init(a->p);
    bool ok = rp_sqlite_read(pool_of(base), progress_read, a, err);
    if (!ok) rp_progress_release(a->p);
    return ok;
}

static bool r_progress_load(rp_event_repo_t *base, const char *user, int64_t day_from, int64_t day_to, rp_progress_t *p,
                            rp_err_t *err) {
    progress_arg_t a = {user, day_from, day_to, p, NULL};
    return read_progress(base, &a, err);
}

static bool r_progress_summary(rp_event_repo_t *base, const char *user, rp_progress_t *p, int64_t *login_days,
                               rp_err_t *err) {
    progress_arg_t a = {user, INT64_MIN, INT64_MAX, p, login_days};
    *login_days = 0;
    return read_progress(base, &a, err);
}

/* ---- lifecycle ---- */

static bool r_ping(rp_event_repo_t *base, rp_err_t *err) {
    sqlite3 *db = rp_sqlite_pool_get(pool_of(base), err);
    if (!db) return false;
    bool ok = rp_sqlite_exec(db, "SELECT 1 FROM events LIMIT 1", err);
    rp_sqlite_pool_put(pool_of(base), db);
    return ok;
}

static const rp_event_repo_ops_t ops = RP_EVENT_REPO_OPS(r_);

rp_event_repo_t *rp_event_repo_sqlite_open(const char *dir, int max_conns, rp_err_t *err) {
    return rp_events_db_open(dir, max_conns, &(rp_event_repo_t){&ops}, sizeof(rp_event_repo_t), err);
}
