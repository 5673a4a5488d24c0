/* Tests of lib/sqlite_util.c: the per-component migrations (each step once, per component, in
 * its own transaction, safe when several connections start at once, and the bootstrap of files
 * made by the old single list counted in user_version, events.db at 1..4 included), and the one
 * statement helpers (rp_sqlite_query, its format binding and column tables). */
#include <criterion/criterion.h>
#include <stdatomic.h>

#include "run_together.h"
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "event/event_schema_sqlite.h"
#include "reward/reward_schema_sqlite.h"
#include "sqlite_fixture.h"
#include "sqlite_util.h"
#include "store_handle.h"

TestSuite(migrate, .init = make_dir, .fini = remove_dir, .timeout = 30);

static sqlite3 *open_db(void) {
    rp_err_t err;
    sqlite3 *db = rp_sqlite_open(path, &err);
    cr_assert_not_null(db, "%s", err.message);
    return db;
}

static int64_t version_of(sqlite3 *db, const char *component) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT version FROM schema_migrations WHERE component = '%s'", component);
    return scalar(db, sql);
}

static bool has_table(sqlite3 *db, const char *name) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM sqlite_master WHERE name = '%s'", name);
    return scalar(db, sql) == 1;
}

static void migrate_ok(sqlite3 *db, const rp_sqlite_schema_t *schemas) {
    rp_err_t err;
    cr_assert(rp_sqlite_migrate(db, schemas, &err), "%s", err.message);
}

/* CREATE TABLE fails when run twice: every test below would see a step that ran again */
static const char *const a_steps[] = {"CREATE TABLE a1 (x)", "CREATE TABLE a2 (x)", NULL};
static const char *const b_steps[] = {"CREATE TABLE b1 (x)", NULL};

Test(migrate, each_step_runs_once_per_component) {
    sqlite3 *db = open_db();
    const rp_sqlite_schema_t schemas[] = {{"a", a_steps, 0}, {"b", b_steps, 0}, {0}};
    migrate_ok(db, schemas);
    cr_assert(has_table(db, "a1") && has_table(db, "a2") && has_table(db, "b1"));
    cr_assert_eq(version_of(db, "a"), 2);
    cr_assert_eq(version_of(db, "b"), 1);
    migrate_ok(db, schemas);
    cr_assert_eq(scalar(db, "PRAGMA user_version"), 0, "versions live in schema_migrations only");
    sqlite3_close_v2(db);
}

Test(migrate, a_step_added_later_runs_alone) {
    sqlite3 *db = open_db();
    static const char *const first[] = {"CREATE TABLE a1 (x)", NULL};
    migrate_ok(db, (const rp_sqlite_schema_t[]){{"a", first, 0}, {0}});
    cr_assert_not(has_table(db, "a2"));
    migrate_ok(db, (const rp_sqlite_schema_t[]){{"a", a_steps, 0}, {"b", b_steps, 0}, {0}});
    cr_assert(has_table(db, "a2"));
    cr_assert(has_table(db, "b1"), "a component new to the file starts at its first step");
    cr_assert_eq(version_of(db, "a"), 2);
    sqlite3_close_v2(db);
}

Test(migrate, a_failed_step_leaves_nothing_and_stops) {
    sqlite3 *db = open_db();
    rp_err_t err;
    static const char *const broken[] = {"CREATE TABLE a1 (x)", "CREATE TABLE c (x); INSERT INTO nowhere VALUES (1)",
                                         "CREATE TABLE d (x)", NULL};
    cr_assert_not(rp_sqlite_migrate(db, (const rp_sqlite_schema_t[]){{"a", broken, 0}, {0}}, &err));
    cr_assert_eq(err.kind, RP_ERR_STORE);
    cr_assert_not_null(strstr(err.message, "nowhere"), "%s", err.message);
    cr_assert(has_table(db, "a1"));
    cr_assert_not(has_table(db, "c"), "the failed step rolled back whole");
    cr_assert_not(has_table(db, "d"), "no step after a failed one");
    cr_assert_eq(version_of(db, "a"), 1);
    static const char *const fixed[] = {"CREATE TABLE a1 (x)", "CREATE TABLE c (x)", NULL};
    migrate_ok(db, (const rp_sqlite_schema_t[]){{"a", fixed, 0}, {0}});
    cr_assert_eq(version_of(db, "a"), 2);
    sqlite3_close_v2(db);
}

Test(migrate, a_legacy_user_version_counts_as_the_steps_it_held) {
    sqlite3 *db = open_db();
    /* the old single list's script 1 made a1 and b1; the file says so in user_version */
    cr_assert(rp_sqlite_exec(db,
                             "CREATE TABLE a1 (x); CREATE TABLE b1 (x); INSERT INTO a1 VALUES (42); "
                             "PRAGMA user_version = 1",
                             NULL));
    static const char *const b_grown[] = {"CREATE TABLE b1 (x)", "CREATE TABLE b2 (x)", NULL};
    static const char *const c_new[] = {"CREATE TABLE c1 (x)", NULL};
    migrate_ok(db, (const rp_sqlite_schema_t[]){{"a", a_steps, 2}, {"b", b_grown, 1}, {"c", c_new, 0}, {0}});
    cr_assert(has_table(db, "a2"), "a's second step was not in user_version 1");
    cr_assert(has_table(db, "b2"), "b's second step came after the old list");
    cr_assert(has_table(db, "c1"));
    cr_assert_eq(scalar(db, "SELECT x FROM a1"), 42, "nothing lost");
    cr_assert_eq(version_of(db, "a"), 2);
    cr_assert_eq(version_of(db, "b"), 2);
    cr_assert_eq(version_of(db, "c"), 1);
    sqlite3_close_v2(db);
}

/* ---- events.db: the event and reward components against the old combined list ---- */

/* Every object the old list of events.db made, by the user_version that made it. */
static const char *const legacy_objects[4] = {
    "audit_logs audit_logs_target event_rewards events events_window idempotency_keys outbox outbox_pending "
    "progress_counters progress_facts progress_invites progress_levels progress_logins progress_quests "
    "reward_definitions reward_ledger reward_ledger_event reward_ledger_no_delete reward_ledger_no_update "
    "reward_ledger_user reward_requests reward_requests_active reward_requests_event reward_requests_requested "
    "reward_requests_status reward_requests_user",
    "audit_logs_at events_created reward_definitions_created reward_requests_time reward_requests_user_time",
    "batch_items batch_items_due batch_items_status batches batches_event batches_idem",
    "batches_created",
};

static const char *const *event_steps(void) {
    return rp_events_db_schemas[0].steps;
}

/* A file as the old list left it at user_version v: its script k was the event and the reward
 * components' step k. */
static void make_legacy(sqlite3 *db, int v) {
    for (int k = 0; k < v; k++) {
        if (k < rp_events_db_schemas[0].legacy_steps) cr_assert(rp_sqlite_exec(db, event_steps()[k], NULL));
        cr_assert(rp_sqlite_exec(db, rp_reward_sqlite_steps[k], NULL));
    }
    char sql[48];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v);
    cr_assert(rp_sqlite_exec(db, sql, NULL));
}

/* The text each row of sql answers, joined by sep. */
static void joined(sqlite3 *db, const char *sql, const char *sep, char *out, size_t cap) {
    sqlite3_stmt *st = NULL;
    size_t len = 0;
    out[0] = '\0';
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    while (sqlite3_step(st) == SQLITE_ROW)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? sep : "", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    cr_assert_lt(len, cap);
}

/* The names of the file's tables, indexes and triggers, sorted, space-separated. */
static void object_names(sqlite3 *db, char *out, size_t cap) {
    joined(db,
           "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations' "
           "ORDER BY name",
           " ", out, cap);
}

/* The whole schema, for comparing two files: every object's type, name and SQL. */
static void schema_text(sqlite3 *db, char *out, size_t cap) {
    joined(db, "SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_master ORDER BY type, name", "\n",
           out, cap);
}

/* The sorted union of the names legacy versions 1..v made. */
static void legacy_names(int v, char *out, size_t cap) {
    const char *names[64];
    char buf[2048];
    size_t n = 0, len = 0;
    buf[0] = '\0';
    for (int k = 0; k < v; k++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s ", legacy_objects[k]);
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " "))
        names[n++] = tok;
    for (size_t i = 1; i < n; i++) /* insertion sort: a few dozen names */
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? " " : "", names[i]);
}

/* The plan SQLite makes for sql, its detail column joined. */
static void plan_of(sqlite3 *db, const char *sql, char *out, size_t cap) {
    sqlite3_stmt *st;
    char eqp[1024];
    snprintf(eqp, sizeof eqp, "EXPLAIN QUERY PLAN %s", sql);
    cr_assert_eq(sqlite3_prepare_v2(db, eqp, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    size_t len = 0;
    out[0] = '\0';
    while (sqlite3_step(st) == SQLITE_ROW)
        len += (size_t)snprintf(out + len, cap - len, "%s; ", (const char *)sqlite3_column_text(st, 3));
    sqlite3_finalize(st);
}

Test(migrate, the_reads_of_a_grant_still_find_their_index_after_v7) {
    char plan[1024];
    sqlite3 *db = open_db();
    migrate_ok(db, rp_events_db_schemas);
    /* the slot count of maxClaims (reward_store_sqlite.c) and the event's "has claims" check */
    plan_of(db,
            "SELECT count(*) FROM (SELECT 1 FROM reward_requests WHERE user_id = ?1 AND +event_id = ?2 "
            "AND status <> 'FAILED' LIMIT ?3)",
            plan, sizeof plan);
    cr_assert(strstr(plan, "USING INDEX reward_requests_user_time (user_id=?)"), "%s", plan);
    /* the "has claims" check reads the slot index (v10), which holds only slot-holding requests */
    plan_of(db, "SELECT EXISTS (SELECT 1 FROM reward_requests WHERE event_id = ?1 AND active_key IS NOT NULL)", plan,
            sizeof plan);
    cr_assert(strstr(plan, "USING INDEX reward_requests_slot (event_id=?)"), "%s", plan);
    /* the slot's holder (s_tx_request_by_key), a seek on all three columns */
    plan_of(db,
            "SELECT id FROM reward_requests WHERE event_id = ?1 AND period_key = ?2 AND user_id = ?3 "
            "AND active_key IS NOT NULL",
            plan, sizeof plan);
    cr_assert(strstr(plan, "USING INDEX reward_requests_slot (event_id=? AND period_key=? AND user_id=?)"), "%s", plan);
    /* a player's history (the shape of reward_store_sqlite.c's s_list_requests with a player) */
    plan_of(db,
            "SELECT id FROM reward_requests WHERE user_id = ?1 AND (?2 IS NULL OR event_id = ?2) AND "
            "(requested_at, id) < (SELECT requested_at, id FROM reward_requests WHERE id = ?6 "
            "UNION ALL SELECT 9223372036854775807, '' WHERE ?6 IS NULL LIMIT 1) "
            "ORDER BY requested_at DESC, id DESC LIMIT ?7",
            plan, sizeof plan);
    cr_assert(strstr(plan, "USING INDEX reward_requests_user_time (user_id=? AND (requested_at,id)<(?,?))"), "%s",
              plan);
    cr_assert_null(strstr(plan, "TEMP B-TREE"), "read in order, not sorted: %s", plan);
    sqlite3_close_v2(db);
}

/* The shape of s_list_requests without a player (reward_store_sqlite.c), with the first terms
 * given. */
#define LIST_BY(first)                                                                                                 \
    "SELECT id FROM reward_requests WHERE ?1 IS NULL AND " first "(?2 IS NULL OR event_id = ?2) AND "                  \
    "(?3 IS NULL OR status = ?3) AND (?4 IS NULL OR requested_at >= ?4) AND (?5 IS NULL OR requested_at < ?5) AND "    \
    "(requested_at, id) < (SELECT requested_at, id FROM reward_requests WHERE id = ?6 "                                \
    "UNION ALL SELECT 9223372036854775807, '' WHERE ?6 IS NULL LIMIT 1) "                                              \
    "ORDER BY requested_at DESC, id DESC LIMIT ?7"

Test(migrate, requests_of_an_event_or_a_rare_status_are_read_in_order_from_an_index) {
    char plan[1024];
    sqlite3 *db = open_db();
    migrate_ok(db, rp_events_db_schemas);
    /* a status other than SUCCESS: a seek on the partial index, in order */
    plan_of(db, LIST_BY("status = ?3 AND status <> 'SUCCESS' AND "), plan, sizeof plan);
    cr_assert(strstr(plan, "USING INDEX reward_requests_status_time (status=? AND (requested_at,id)<(?,?))"), "%s",
              plan);
    cr_assert_null(strstr(plan, "TEMP B-TREE"), "read in order, not sorted: %s", plan);
    /* an event's requests: a seek on the event's index, in order */
    plan_of(db, LIST_BY("event_id = ?2 AND "), plan, sizeof plan);
    cr_assert(strstr(plan, "USING INDEX reward_requests_event_time (event_id=? AND (requested_at,id)<(?,?))"), "%s",
              plan);
    cr_assert_null(strstr(plan, "TEMP B-TREE"), "read in order, not sorted: %s", plan);
    /* SUCCESS or no status: the time index */
    plan_of(db, LIST_BY(""), plan, sizeof plan);
    cr_assert(strstr(plan, "USING INDEX reward_requests_time ((requested_at,id)<(?,?))"), "%s", plan);
    /* the partial index holds no SUCCESS request, so a grant's insert does not write it */
    char *e = NULL;
    cr_assert_eq(sqlite3_exec(db,
                              "INSERT INTO reward_requests (id, user_id, event_id, period_key, active_key, status, "
                              "claimed_rewards, requested_at, created_at, updated_at) VALUES "
                              "('r1', 'u', 'e', 'p', 'k1', 'SUCCESS', '[]', 1, 1, 1), "
                              "('r2', 'u', 'e', 'p2', 'k2', 'AWAITING_REVIEW', '[]', 2, 2, 2), "
                              "('r3', 'u', 'e', 'p', NULL, 'FAILED', '[]', 3, 3, 3)",
                              NULL, NULL, &e),
                 SQLITE_OK, "%s", e ? e : "");
    cr_assert_eq(scalar(db, "SELECT partial FROM pragma_index_list('reward_requests') "
                            "WHERE name = 'reward_requests_status_time'"),
                 1);
    cr_assert_eq(scalar(db, "SELECT count(*) FROM reward_requests INDEXED BY reward_requests_status_time "
                            "WHERE status <> 'SUCCESS'"),
                 2);
    cr_assert_eq(scalar(db, "SELECT count(*) FROM pragma_index_info('reward_requests_status')"), 0,
                 "the old status index is gone");
    sqlite3_close_v2(db);
}

/* v10 moves the slot's uniqueness from the active key to (event_id, period_key, user_id): the
 * requests a file at v9 holds keep their slots, a second request for a held slot is refused, and
 * a FAILED one or another period's is not. */
Test(migrate, v10_keeps_every_held_slot_unique_event_first) {
    const char *v9_steps[10] = {NULL}; /* the first nine steps, NULL-terminated */
    memcpy(v9_steps, rp_reward_sqlite_steps, 9 * sizeof *v9_steps);
    const rp_sqlite_schema_t at_v9[] = {
        rp_events_db_schemas[0], {"reward", v9_steps, RP_REWARD_SQLITE_LEGACY_STEPS}, {NULL, NULL, 0}};
    sqlite3 *db = open_db();
    migrate_ok(db, at_v9);
    cr_assert_eq(version_of(db, "reward"), 9);
    cr_assert(rp_sqlite_exec(db,
                             "INSERT INTO reward_requests (id, user_id, event_id, period_key, active_key, status, "
                             "claimed_rewards, requested_at, created_at, updated_at) VALUES "
                             "('r1', 'u1', 'e1', 'ONCE', 'u1:e1:ONCE', 'SUCCESS', '[]', 1, 1, 1), "
                             "('r2', 'u2', 'e1', 'ONCE', 'u2:e1:ONCE', 'AWAITING_REVIEW', '[]', 2, 2, 2), "
                             "('r3', 'u1', 'e1', 'ONCE', NULL, 'FAILED', '[]', 3, 3, 3)",
                             NULL));
    migrate_ok(db, rp_events_db_schemas);
    cr_assert_eq(version_of(db, "reward"), 10);
    cr_assert_eq(scalar(db, "SELECT count(*) FROM pragma_index_info('reward_requests_active')"), 0,
                 "the active key's index is gone");
    cr_assert_eq(scalar(db, "SELECT \"unique\" FROM pragma_index_list('reward_requests') "
                            "WHERE name = 'reward_requests_slot'"),
                 1);
    cr_assert_eq(scalar(db, "SELECT count(*) FROM reward_requests INDEXED BY reward_requests_slot "
                            "WHERE event_id = 'e1' AND active_key IS NOT NULL"),
                 2, "both held slots, not the FAILED request");
    static const char insert[] = "INSERT INTO reward_requests (id, user_id, event_id, period_key, active_key, status, "
                                 "claimed_rewards, requested_at, created_at, updated_at) VALUES ";
    char sql[512];
    rp_err_t err;
    snprintf(sql, sizeof sql, "%s('r4', 'u1', 'e1', 'ONCE', 'u1:e1:ONCE', 'SUCCESS', '[]', 4, 4, 4)", insert);
    cr_assert_not(rp_sqlite_exec(db, sql, &err), "u1's slot on e1 is held");
    cr_assert_str_eq(err.code, "DUPLICATE_KEY");
    snprintf(sql, sizeof sql, "%s('r5', 'u1', 'e1', 'ONCE', NULL, 'FAILED', '[]', 5, 5, 5)", insert);
    cr_assert(rp_sqlite_exec(db, sql, NULL), "a FAILED request holds no slot");
    snprintf(sql, sizeof sql, "%s('r6', 'u1', 'e1', 'D:2026-12-05', 'u1:e1:D:2026-12-05', 'SUCCESS', '[]', 6, 6, 6)",
             insert);
    cr_assert(rp_sqlite_exec(db, sql, NULL), "another period is another slot");
    cr_assert(
        rp_sqlite_exec(db, "UPDATE reward_requests SET status = 'FAILED', active_key = NULL WHERE id = 'r2'", NULL));
    snprintf(sql, sizeof sql, "%s('r7', 'u2', 'e1', 'ONCE', 'u2:e1:ONCE', 'SUCCESS', '[]', 7, 7, 7)", insert);
    cr_assert(rp_sqlite_exec(db, sql, NULL), "a released slot is free again");
    sqlite3_close_v2(db);
}

Test(migrate, events_db_from_every_legacy_version_ends_as_a_new_file) {
    static char fresh[16384], legacy[16384], names[4096], want[4096];
    sqlite3 *db = open_db();
    migrate_ok(db, rp_events_db_schemas);
    schema_text(db, fresh, sizeof fresh);
    cr_assert_eq(version_of(db, "event"), 3);
    cr_assert_eq(version_of(db, "reward"), 10); /* v10: the slot indexed event first */
    sqlite3_close_v2(db);
    for (int v = 1; v <= 4; v++) {
        snprintf(path, sizeof path, "%s/legacy%d.db", dir, v);
        db = open_db();
        make_legacy(db, v);
        object_names(db, names, sizeof names);
        legacy_names(v, want, sizeof want);
        cr_assert_str_eq(names, want, "the steps split the old list's version %d exactly", v);
        cr_assert_eq(has_table(db, "outbox") && scalar(db, "SELECT count(*) FROM pragma_table_info('outbox') "
                                                           "WHERE name = 'lease_owner'") == 1,
                     v >= 2, "the outbox leases came with version 2");
        cr_assert(rp_sqlite_exec(db,
                                 "INSERT INTO reward_requests (id, user_id, event_id, period_key, status, "
                                 "claimed_rewards, requested_at, created_at, updated_at) "
                                 "VALUES ('r1', 'u', 'e', 'ONCE', 'FAILED', '[]', 1, 1, 1)",
                                 NULL));
        cr_assert(rp_sqlite_exec(db,
                                 "INSERT INTO progress_facts (idempotency_key, user_id, type, value, occurred_at, "
                                 "reported_by, received_at) VALUES ('k1', 'u', 'LEVEL', '7', 1, 'gs', 1)",
                                 NULL));
        migrate_ok(db, rp_events_db_schemas);
        schema_text(db, legacy, sizeof legacy);
        cr_assert_str_eq(legacy, fresh, "legacy version %d migrated differs from a new file", v);
        cr_assert_eq(scalar(db, "SELECT count(*) FROM reward_requests WHERE id = 'r1'"), 1, "nothing lost");
        cr_assert_eq(scalar(db, "SELECT count(*) FROM progress_facts WHERE user_id = 'u' AND idempotency_key = 'k1' "
                                "AND value = '7'"),
                     1, "facts keep their rows when their key becomes per player (event v3)");
        cr_assert_eq(version_of(db, "event"), 3);
        cr_assert_eq(version_of(db, "reward"), 10); /* v10: the slot indexed event first */
        sqlite3_close_v2(db);
    }
}

/* ---- several processes starting at once ---- */

static const char *const counted[] = {"CREATE TABLE runs (step INTEGER); INSERT INTO runs VALUES (1)",
                                      "INSERT INTO runs VALUES (2)", "INSERT INTO runs VALUES (3)", NULL};

typedef struct starter {
    sqlite3 *db;
    pthread_barrier_t *go;
    bool ok;
} starter_t;

static void *start(void *p) {
    starter_t *s = p;
    pthread_barrier_wait(s->go);
    s->ok = rp_sqlite_migrate(s->db, (const rp_sqlite_schema_t[]){{"counted", counted, 0}, {0}}, NULL);
    return NULL;
}

Test(migrate, concurrent_starts_apply_each_step_once) {
    enum { N = 6 };
    pthread_barrier_t go;
    pthread_t th[N];
    starter_t s[N];
    pthread_barrier_init(&go, NULL, N);
    for (int i = 0; i < N; i++) /* opened first: the race under test is the migration's */
        s[i] = (starter_t){open_db(), &go, false};
    for (int i = 0; i < N; i++)
        pthread_create(&th[i], NULL, start, &s[i]);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        cr_assert(s[i].ok, "starter %d failed", i);
        sqlite3_close_v2(s[i].db);
    }
    pthread_barrier_destroy(&go);
    sqlite3 *db = open_db();
    cr_assert_eq(scalar(db, "SELECT count(*) FROM runs"), 3);
    cr_assert_eq(scalar(db, "SELECT count(DISTINCT step) FROM runs"), 3);
    cr_assert_eq(version_of(db, "counted"), 3);
    sqlite3_close_v2(db);
}

Test(migrate, a_pool_migrates_before_it_is_used) {
    rp_err_t err;
    rp_sqlite_pool_t *p = rp_sqlite_pool_new(path, (const rp_sqlite_schema_t[]){{"a", a_steps, 0}, {0}}, 2, &err);
    cr_assert_not_null(p, "%s", err.message);
    sqlite3 *db = rp_sqlite_pool_get(p, &err);
    cr_assert(has_table(db, "a2"));
    rp_sqlite_pool_put(p, db);
    rp_sqlite_pool_free(p);
    static const char *const broken[] = {"NOT SQL", NULL};
    cr_assert_null(rp_sqlite_pool_new(path, (const rp_sqlite_schema_t[]){{"z", broken, 0}, {0}}, 2, &err),
                   "a schema that cannot be applied fails the start");
    cr_assert_eq(err.kind, RP_ERR_STORE);
}

static int open_descriptors(void) {
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

typedef struct {
    sqlite3 *db;
    int cache;
} writer_seen_t;

static rp_txn_end_t note_writer(sqlite3 *db, void *arg, rp_err_t *err) {
    (void)err;
    writer_seen_t *w = arg;
    w->db = db;
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "PRAGMA cache_size", -1, &st, NULL);
    if (sqlite3_step(st) == SQLITE_ROW) w->cache = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return RP_TXN_COMMIT;
}

Test(migrate, a_pool_opens_every_connection_at_start_and_hands_them_out_in_turn) {
    rp_err_t err;
    int before = open_descriptors();
    rp_sqlite_pool_t *p = rp_sqlite_pool_new(path, (const rp_sqlite_schema_t[]){{"a", a_steps, 0}, {0}}, 3, &err);
    cr_assert_not_null(p, "%s", err.message);
    /* each connection holds the database and its WAL open: memory and descriptors are fixed now,
     * not at the first moment three are in use */
    cr_assert_geq(open_descriptors() - before, 6, "three connections open before any is taken");
    sqlite3 *seen[4];
    for (int i = 0; i < 4; i++) {
        seen[i] = rp_sqlite_pool_get(p, &err);
        cr_assert_not_null(seen[i]);
        rp_sqlite_pool_put(p, seen[i]);
    }
    cr_assert(seen[0] != seen[1] && seen[1] != seen[2] && seen[0] != seen[2],
              "one user after another still gets each connection in turn, so every one warms up");
    cr_assert_eq(seen[3], seen[0], "the longest idle comes back first");
    /* writes run on a connection of their own, never handed out, with a larger page cache */
    writer_seen_t w = {0};
    cr_assert(rp_sqlite_transact(p, note_writer, &w, &err), "%s", err.message);
    cr_assert(w.db && w.db != seen[0] && w.db != seen[1] && w.db != seen[2]);
    cr_assert_eq(w.cache, -RP_SQLITE_CACHE_KIB_DEFAULT * RP_SQLITE_WRITER_CACHE_FACTOR);
    int during = open_descriptors();
    sqlite3 *all[3];
    for (int i = 0; i < 3; i++)
        all[i] = rp_sqlite_pool_get(p, &err);
    cr_assert_eq(open_descriptors(), during, "taking all of them opens nothing more");
    for (int i = 0; i < 3; i++)
        rp_sqlite_pool_put(p, all[i]);
    rp_sqlite_pool_free(p);
    cr_assert_eq(open_descriptors(), before, "freeing the pool closes every connection");
}

/* ---- one statement: rp_sqlite_query ---- */

TestSuite(query, .init = make_dir, .fini = remove_dir, .timeout = 30);

typedef struct rec {
    char name[8];
    int64_t at;
    int n;
    char *owned; /* what a row allocates, so that a leak on a failure path shows */
} rec_t;

static const rp_sqlite_col_t rec_cols[] = {RP_SQLITE_COL(rec_t, name, TEXT), RP_SQLITE_COL(rec_t, at, I64),
                                           RP_SQLITE_COL(rec_t, n, INT)};

static void row_rec(sqlite3_stmt *st, void *out) {
    rec_t *r = out;
    free(r->owned);
    RP_SQLITE_GET_COLS(st, r, rec_cols);
    r->owned = strdup("row");
}

static int cleared;

static void clear_rec(void *out) {
    rec_t *r = out;
    free(r->owned);
    r->owned = NULL;
    cleared++;
}

/* Three rows, then a runtime error: abs() of the smallest integer overflows. */
#define ROWS_THEN_ERROR "SELECT name, at, n FROM t UNION ALL SELECT 'x', abs(-9223372036854775807 - 1), 0"

Test(query, binds_by_format_and_writes_reads_and_pages) {
    sqlite3 *db = open_db();
    rp_err_t err;
    bool found = false, dup = true;
    cr_assert(rp_sqlite_exec(db, "CREATE TABLE t (name TEXT UNIQUE, at INTEGER, n INTEGER, doc TEXT)", NULL));
    json_t *doc = json_pack("{s:i}", "a", 1);
    cr_assert(rp_sqlite_query(db, NULL, &(rp_sqlite_use_t){.what = "insert", .found = &found}, &err,
                              "INSERT INTO t VALUES (?1, ?2, ?3, ?4)", "tmij", "a", (int64_t)0, (int64_t)7, doc),
              "%s", err.message);
    json_decref(doc);
    cr_assert(found, "a write that changed a row");
    cr_assert(rp_sqlite_query(db, NULL, &(rp_sqlite_use_t){.what = "insert", .dup = &dup}, &err,
                              "INSERT INTO t VALUES (?1, ?2, ?3, NULL)", "sii", "", (int64_t)5, (int64_t)8));
    cr_assert_not(dup);
    cr_assert(rp_sqlite_query(db, NULL, &(rp_sqlite_use_t){.what = "insert", .dup = &dup}, &err,
                              "INSERT INTO t VALUES (?1, 1, 9, NULL)", "t", (const char *)NULL));
    cr_assert(rp_sqlite_query(db, NULL, &(rp_sqlite_use_t){.what = "insert", .dup = &dup}, &err,
                              "INSERT INTO t VALUES (?1, 1, 1, NULL)", "t", "a"));
    cr_assert(dup, "a unique violation is the outcome, not a failure");
    cr_assert_eq(scalar(db, "SELECT count(*) FROM t WHERE name IS NULL AND n = 8"), 1, "s binds \"\" as NULL");
    cr_assert_eq(scalar(db, "SELECT count(*) FROM t WHERE name = '' AND n = 9"), 1, "t binds NULL as ''");
    cr_assert_eq(scalar(db, "SELECT count(*) FROM t WHERE at IS NULL AND n = 7"), 1, "m binds 0 as NULL");
    cr_assert_eq(scalar(db, "SELECT json_extract(doc, '$.a') FROM t WHERE name = 'a'"), 1, "j binds JSON");
    cr_assert(rp_sqlite_query(db, NULL, &(rp_sqlite_use_t){.what = "update", .found = &found}, &err,
                              "UPDATE t SET n = n WHERE name = 'nobody'", ""));
    cr_assert_not(found, "a write that changed nothing");

    rec_t r = {0};
    cr_assert(rp_sqlite_query(db, NULL, &(rp_sqlite_use_t){.what = "read", .row = row_rec, .out = &r, .found = &found},
                              &err, "SELECT name, at, n FROM t WHERE name = ?1", "t", "a"));
    cr_assert(found);
    cr_assert_str_eq(r.name, "a");
    cr_assert_eq(r.at, 0, "NULL reads as 0");
    cr_assert_eq(r.n, 7);
    cr_assert(rp_sqlite_query(db, NULL, &(rp_sqlite_use_t){.what = "read", .row = row_rec, .out = &r, .found = &found},
                              &err, "SELECT name, at, n FROM t WHERE name = 'zz'", ""));
    cr_assert_not(found);
    clear_rec(&r);

    /* outside a transaction: a pooled connection for the one statement */
    rp_sqlite_pool_t *p = rp_sqlite_pool_new(path, (const rp_sqlite_schema_t[]){{0}}, 1, &err);
    cr_assert_not_null(p, "%s", err.message);
    rec_t *items = NULL;
    size_t n = 0;
    bool more = false;
    cr_assert(rp_sqlite_query(NULL, p, RP_SQLITE_PAGE("page", row_rec, clear_rec, &items, &n, 2, &more), &err,
                              "SELECT name, at, n FROM t ORDER BY n LIMIT ?1", "i", (int64_t)3),
              "%s", err.message);
    cr_assert_eq(n, 2u);
    cr_assert(more);
    cr_assert_eq(items[0].n, 7);
    cr_assert_eq(items[1].n, 8);
    cr_assert_eq(items[1].at, 5);
    cleared = 0;
    rp_sqlite_page_free((void **)&items, &n, sizeof *items, clear_rec);
    cr_assert_eq(cleared, 2);
    cr_assert_null(items);

    /* failures leave nothing to release: rows read before the error are cleared */
    cleared = 0;
    cr_assert_not(rp_sqlite_query(NULL, p, RP_SQLITE_PAGE("page", row_rec, clear_rec, &items, &n, 10, &more), &err,
                                  ROWS_THEN_ERROR, ""));
    cr_assert_eq(err.kind, RP_ERR_STORE);
    cr_assert_null(items);
    cr_assert_eq(n, 0u);
    cr_assert_eq(cleared, 3, "each record read is cleared");
    cleared = 0;
    cr_assert_not(rp_sqlite_query(
        NULL, p, &(rp_sqlite_use_t){.what = "read", .row = row_rec, .clear = clear_rec, .out = &r, .found = &found},
        &err, ROWS_THEN_ERROR, ""));
    cr_assert_not(found);
    cr_assert_null(r.owned);
    cr_assert_eq(cleared, 1);
    cr_assert_not(rp_sqlite_query(NULL, p, RP_SQLITE_PAGE("page", row_rec, NULL, &items, &n, 10, &more), &err,
                                  "SELECT nothing FROM t", ""));
    cr_assert_null(items);
    rp_sqlite_pool_free(p);
    sqlite3_close_v2(db);
}

static void *commit_later(void *db) {
    sqlite3_sleep(6000); /* longer than a statement's busy wait (5 s) */
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    return NULL;
}

/* Workers starting together open and migrate the same file one after the other; on a busy
 * machine one waited more than a statement's 5 s and the process exited ("exec: database is
 * locked"). A store's start waits as long as another process holds the file. */
/* Processes opening a new file at the same moment each switch it to WAL: SQLite may answer all
 * but one SQLITE_BUSY at once (a would-be deadlock between processes: no busy handler). None may
 * fail. Children wait on a pipe and all start when the parent closes it. */
Test(query, processes_opening_a_new_file_at_once_all_open) {
    enum { PROCS = 4, ROUNDS = 80 };
    int failed = 0;
    for (int round = 0; round < ROUNDS; round++) {
        char file[128];
        snprintf(file, sizeof file, "%s/fresh-%d.db", dir, round);
        int go[2];
        cr_assert_eq(pipe(go), 0);
        pid_t kids[PROCS];
        for (int i = 0; i < PROCS; i++) {
            kids[i] = fork();
            cr_assert(kids[i] >= 0);
            if (kids[i] == 0) {
                char c;
                close(go[1]);
                while (read(go[0], &c, 1) > 0) {
                }
                rp_err_t err;
                sqlite3 *db = rp_sqlite_open(file, &err);
                int ok = db != NULL;
                sqlite3_close(db);
                _exit(ok ? 0 : 1);
            }
        }
        close(go[0]);
        close(go[1]);
        for (int i = 0; i < PROCS; i++) {
            int st = 0;
            cr_assert_eq(waitpid(kids[i], &st, 0), kids[i]);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) failed++;
        }
    }
    cr_assert_eq(failed, 0, "%d of %d opens failed", failed, PROCS * ROUNDS);
}

Test(query, every_connection_takes_the_configured_page_cache) {
    rp_sqlite_set_cache_kib(300);
    sqlite3 *db = open_db();
    cr_assert_eq(scalar(db, "PRAGMA cache_size"), -300);
    sqlite3_close(db);
    rp_sqlite_set_cache_kib(RP_SQLITE_CACHE_KIB_DEFAULT);
    db = open_db();
    cr_assert_eq(scalar(db, "PRAGMA cache_size"), -RP_SQLITE_CACHE_KIB_DEFAULT);
    sqlite3_close(db);
}

Test(migrate, a_start_waits_for_another_process_holding_the_file) {
    const rp_sqlite_schema_t schemas[] = {{"a", a_steps, 0}, {0}};
    sqlite3 *other;
    rp_err_t err;
    cr_assert_eq(sqlite3_open(path, &other), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(other, "PRAGMA journal_mode=WAL; BEGIN EXCLUSIVE; CREATE TABLE t (x)", NULL, NULL, NULL),
                 SQLITE_OK);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, commit_later, other), 0);
    rp_sqlite_pool_t *p = rp_sqlite_pool_new(path, schemas, 2, &err);
    cr_assert_not_null(p, "%s", err.message);
    pthread_join(th, NULL);
    rp_sqlite_pool_free(p);
    sqlite3_close(other);
}

/* ---- statements kept by pooled connections ---- */

static const rp_sqlite_schema_t kv_schema[] = {
    {"kv", (const char *const[]){"CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)", NULL}, 0}, {0}};

static const char SQL_GET[] = "SELECT v FROM kv WHERE k = ?1";

/* A pooled connection hands the same statement out again, reset and unbound, for the same SQL
 * literal; a second use of the same SQL while the first is open gets a statement of its own;
 * other text at the same address is never mistaken for it; a plain connection finalises. */
Test(query, pooled_connections_keep_statements_reset_for_the_next_use) {
    rp_err_t err;
    rp_sqlite_pool_t *pool = rp_sqlite_pool_new(path, kv_schema, 1, &err);
    cr_assert_not_null(pool, "%s", err.message);
    sqlite3 *db = rp_sqlite_pool_get(pool, &err);
    cr_assert(rp_sqlite_exec(db, "INSERT INTO kv VALUES ('a', 1), ('b', 2)", &err));
    sqlite3_stmt *s1, *s2, *s3;
    cr_assert(rp_sqlite_prepare(db, SQL_GET, &s1, &err));
    sqlite3_bind_text(s1, 1, "a", -1, SQLITE_TRANSIENT);
    cr_assert_eq(sqlite3_step(s1), SQLITE_ROW); /* left open on its row */
    cr_assert(rp_sqlite_prepare(db, SQL_GET, &s2, &err));
    cr_assert_neq(s1, s2, "a statement in use must not be handed out again");
    rp_sqlite_finalize(s2);
    rp_sqlite_finalize(s1);
    cr_assert(rp_sqlite_prepare(db, SQL_GET, &s3, &err));
    cr_assert(s3 == s1 || s3 == s2, "a kept statement is reused");
    cr_assert_eq(sqlite3_bind_parameter_count(s3), 1);
    cr_assert_eq(sqlite3_step(s3), SQLITE_DONE, "bindings are cleared: ?1 is NULL, no row matches");
    rp_sqlite_finalize(s3);
    char buf[64]; /* other SQL at one address: each text gets its own statement */
    snprintf(buf, sizeof buf, "SELECT v FROM kv WHERE k = 'a'");
    cr_assert(rp_sqlite_prepare(db, buf, &s1, &err));
    cr_assert_eq(sqlite3_step(s1), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(s1, 0), 1);
    rp_sqlite_finalize(s1);
    snprintf(buf, sizeof buf, "SELECT v FROM kv WHERE k = 'b'");
    cr_assert(rp_sqlite_prepare(db, buf, &s2, &err));
    cr_assert_eq(sqlite3_step(s2), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(s2, 0), 2, "the statement of the old text must not answer");
    rp_sqlite_finalize(s2);
    for (int i = 0; i < 200; i++) { /* more distinct SQL than a connection keeps */
        char sql[64];
        snprintf(sql, sizeof sql, "SELECT %d", i);
        cr_assert(rp_sqlite_prepare(db, sql, &s1, &err));
        cr_assert_eq(sqlite3_step(s1), SQLITE_ROW);
        cr_assert_eq(sqlite3_column_int(s1, 0), i);
        rp_sqlite_finalize(s1);
    }
    rp_sqlite_pool_put(pool, db);
    rp_sqlite_pool_free(pool); /* finalises what it kept: ASan reports any leak */
    sqlite3 *plain = open_db();
    cr_assert(rp_sqlite_prepare(plain, SQL_GET, &s1, &err));
    rp_sqlite_finalize(s1);
    cr_assert_null(sqlite3_next_stmt(plain, NULL), "a plain connection keeps nothing");
    sqlite3_close(plain);
}

/* ---- what SQLite holds: rp_sqlite_memory_read ---- */

static rp_txn_end_t insert_one(sqlite3 *db, void *arg, rp_err_t *err) {
    (void)arg;
    return rp_sqlite_exec(db, "INSERT INTO kv VALUES ('written', 1)", err) ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

/* A pool's connections count what SQLite holds for them once their holder lets them go: a reader
 * when it is put back, the writer after a group; a page cache that read a file ten times its size
 * holds its bound (SQLITE_CACHE_KIB), no more; the bounds of every open connection are counted
 * from their opening; closing the pool counts it all out. */
Test(query, a_pool_counts_what_sqlite_holds_for_its_connections) {
    enum { KIB = 64 };
    rp_err_t err;
    rp_sqlite_memory_t m;
    rp_sqlite_set_cache_kib(KIB);
    rp_sqlite_pool_t *pool = rp_sqlite_pool_new(path, kv_schema, 2, &err);
    cr_assert_not_null(pool, "%s", err.message);
    rp_sqlite_memory_read(&m);
    cr_assert_eq(m.cache + m.statements + m.schemas, 0, "nothing is counted before a holder lets go");
    /* two readers, the writer at RP_SQLITE_WRITER_CACHE_FACTOR times theirs, the checkpointer */
    size_t bound = (size_t)(2 + RP_SQLITE_WRITER_CACHE_FACTOR + 1) * KIB * 1024;
    cr_assert_eq(m.cache_bound, bound, "%zu", m.cache_bound);
    sqlite3 *a = rp_sqlite_pool_get(pool, &err);
    /* about 1.3 MiB of rows: twenty times the cache */
    cr_assert(rp_sqlite_exec(a,
                             "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 5000) "
                             "INSERT INTO kv SELECT printf('key-%06d-', x) || hex(randomblob(100)), x FROM r",
                             &err),
              "%s", err.message);
    rp_sqlite_pool_put(pool, a);
    rp_sqlite_memory_read(&m);
    cr_assert_gt(m.schemas, 0);
    cr_assert_gt(m.cache, 0);
    size_t one = m.cache;
    sqlite3 *b = rp_sqlite_pool_get(pool, &err); /* the other connection: its first use */
    cr_assert_neq(a, b);
    sqlite3_stmt *st;
    cr_assert(rp_sqlite_prepare(b, "SELECT sum(length(k)) FROM kv", &st, &err));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_gt(sqlite3_column_int64(st, 0), 1 << 20);
    rp_sqlite_finalize(st); /* kept by the connection: it holds the statement */
    rp_sqlite_pool_put(pool, b);
    rp_sqlite_memory_read(&m);
    size_t b_cache = m.cache - one;
    /* a full cache: close to its bound, and not beyond it (each page carries SQLite's header) */
    cr_assert_geq(b_cache, KIB * 1024 / 2, "%zu", b_cache);
    cr_assert_leq(b_cache, KIB * 1024 * 5 / 4, "%zu", b_cache);
    cr_assert_gt(m.statements, 0);
    size_t readers = m.cache;
    cr_assert(rp_sqlite_transact(pool, insert_one, NULL, &err), "%s", err.message);
    rp_sqlite_memory_read(&m);
    cr_assert_gt(m.cache, readers, "the writer's cache is counted after its group");
    cr_assert_leq(m.cache, m.cache_bound, "%zu of %zu", m.cache, m.cache_bound);
    cr_assert_eq(m.cache_bound, bound, "using the connections moves no bound");
    rp_sqlite_pool_free(pool);
    rp_sqlite_memory_read(&m);
    cr_assert_eq(m.cache + m.statements + m.schemas + m.cache_bound, 0, "closed connections hold nothing");
    rp_sqlite_set_cache_kib(RP_SQLITE_CACHE_KIB_DEFAULT);
}

/* ---- group commit: rp_sqlite_transact ---- */

typedef struct write_arg {
    int id;
    atomic_int *runs;
} write_arg_t;

/* Every write reads the counter and writes it plus one (lost updates would show), logs its id;
 * one in five refuses after writing (rollback) and one in seven fails after writing: neither may
 * leave anything, nor undo the writes that share its group. It counts its runs. */
static rp_txn_end_t counter_body(sqlite3 *db, void *p, rp_err_t *err) {
    write_arg_t *a = p;
    sqlite3_stmt *st;
    atomic_fetch_add(a->runs, 1);
    if (!rp_sqlite_prepare(db, "SELECT v FROM kv WHERE k = 'n'", &st, err)) return RP_TXN_FAILED;
    int64_t v = rp_sqlite_step_row(db, st, "read", err) == 1 ? sqlite3_column_int64(st, 0) : -1;
    rp_sqlite_finalize(st);
    if (v < 0) return RP_TXN_FAILED;
    char sql[96];
    snprintf(sql, sizeof sql, "UPDATE kv SET v = %lld WHERE k = 'n'; INSERT INTO kv VALUES ('w%d', %d)",
             (long long)v + 1, a->id, a->id);
    if (!rp_sqlite_exec(db, sql, err)) return RP_TXN_FAILED;
    if (a->id % 5 == 0) return RP_TXN_ROLLBACK;
    if (a->id % 7 == 0) {
        rp_err_set(err, RP_ERR_STORE, "STORE_ERROR", "write %d fails", a->id);
        return RP_TXN_FAILED;
    }
    return RP_TXN_COMMIT;
}

#define WRITERS 8
#define WRITES 40

typedef struct writers {
    rp_sqlite_pool_t *pool;
    bool rerunnable; /* every write through rp_sqlite_transact_rerunnable; else plain and alone by turns */
    atomic_int next_thread, runs;
} writers_t;

static void *writer(void *p) {
    writers_t *ws = p;
    int t = atomic_fetch_add(&ws->next_thread, 1) + 1;
    for (int i = 0; i < WRITES; i++) {
        write_arg_t a = {t * 1000 + i, &ws->runs};
        rp_err_t err;
        /* every third runs alone (rp_sqlite_transact_alone), between the groups */
        rp_sqlite_transact_fn how = ws->rerunnable ? rp_sqlite_transact_rerunnable
                                    : i % 3        ? rp_sqlite_transact
                                                   : rp_sqlite_transact_alone;
        bool ok = how(ws->pool, counter_body, &a, &err);
        bool fails = a.id % 5 != 0 && a.id % 7 == 0;
        cr_assert_eq(ok, !fails, "write %d: %s", a.id, ok ? "" : err.message);
        if (fails) cr_assert_str_eq(err.code, "STORE_ERROR");
    }
    return NULL;
}

/* WRITERS threads of WRITES writes each on one counter; the outcome must be as if they had
 * committed one after the other. */
static void race_counter_writes(writers_t *ws) {
    rp_err_t err;
    ws->pool = rp_sqlite_pool_new(path, kv_schema, 4, &err);
    cr_assert_not_null(ws->pool, "%s", err.message);
    sqlite3 *db = rp_sqlite_pool_get(ws->pool, &err);
    cr_assert(rp_sqlite_exec(db, "INSERT INTO kv VALUES ('n', 0)", &err));
    rp_sqlite_pool_put(ws->pool, db);
    run_together(WRITERS, writer, ws);
    int committed = 0;
    for (int t = 1; t <= WRITERS; t++)
        for (int i = 0; i < WRITES; i++) {
            int id = t * 1000 + i;
            committed += id % 5 != 0 && id % 7 != 0;
        }
    db = rp_sqlite_pool_get(ws->pool, &err);
    cr_assert_eq(scalar(db, "SELECT v FROM kv WHERE k = 'n'"), committed, "every committed write, no lost update");
    cr_assert_eq(scalar(db, "SELECT count(*) FROM kv WHERE k LIKE 'w%'"), committed);
    cr_assert_eq(scalar(db, "SELECT count(*) FROM kv WHERE k LIKE 'w%' AND (v % 5 = 0 OR v % 7 = 0)"), 0,
                 "a refused or failed write leaves nothing");
    rp_sqlite_pool_put(ws->pool, db);
    rp_sqlite_pool_free(ws->pool);
}

Test(query, concurrent_writes_commit_as_if_one_after_the_other) {
    writers_t ws = {.rerunnable = false};
    rp_sqlite_writes_t before, after;
    rp_sqlite_writes_read(&before);
    race_counter_writes(&ws);
    rp_sqlite_writes_read(&after);
    cr_assert_eq(atomic_load(&ws.runs), WRITERS * WRITES, "each body ran once, in its savepoint");
    /* what the writer did (rp_sqlite_writes_read): every write counted once with its wait, in as
     * many transactions as it took, at least one for each third that runs alone */
    uint64_t writes = after.writes - before.writes, in_buckets = 0;
    for (int b = 0; b < RP_SQLITE_WAIT_BUCKETS; b++)
        in_buckets += after.wait_buckets[b] - before.wait_buckets[b];
    cr_assert_eq(writes, WRITERS * WRITES, "every write counted (%llu)", (unsigned long long)writes);
    cr_assert_eq(in_buckets, writes, "each write's wait in one bucket");
    cr_assert_gt(after.wait_us, before.wait_us, "the waits add up to some time");
    uint64_t groups = after.groups - before.groups, alone = 0;
    for (int i = 0; i < WRITES; i++)
        alone += i % 3 == 0;
    cr_assert_geq(groups, WRITERS * alone, "a transaction for each write that runs alone, and the groups (%llu)",
                  (unsigned long long)groups);
    cr_assert_leq(groups, writes, "no more transactions than writes (%llu)", (unsigned long long)groups);
}

/* The same writes, every one a body that may run again: groups run without savepoints, and a
 * refusal or a failure after writing makes its group run again, each body in its savepoint. */
Test(query, rerunnable_writes_commit_as_if_one_after_the_other_and_groups_run_again_to_undo_one) {
    writers_t ws = {.rerunnable = true};
    race_counter_writes(&ws);
    cr_assert_gt(atomic_load(&ws.runs), WRITERS * WRITES, "the first write to refuse after writing ran twice");
}

/* A body that notes whether it runs inside the group's savepoint (rolling back to it at its
 * start changes nothing; outside one, SQLite knows no such savepoint), then writes its row and
 * ends as told. */
typedef struct probe {
    const char *key;
    rp_txn_end_t end;
    bool write;
    int runs, in_savepoint;
} probe_t;

static rp_txn_end_t probe_body(sqlite3 *db, void *p, rp_err_t *err) {
    probe_t *pr = p;
    pr->runs++;
    pr->in_savepoint += sqlite3_exec(db, "ROLLBACK TO rp_write", NULL, NULL, NULL) == SQLITE_OK;
    char sql[96];
    snprintf(sql, sizeof sql, "INSERT INTO kv VALUES ('%s', 1)", pr->key);
    if (pr->write && !rp_sqlite_exec(db, sql, err)) return RP_TXN_FAILED;
    return pr->end;
}

static int rows_of(rp_sqlite_pool_t *pool, const char *key) {
    rp_err_t err;
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM kv WHERE k = '%s'", key);
    sqlite3 *db = rp_sqlite_pool_get(pool, &err);
    int n = (int)scalar(db, sql);
    rp_sqlite_pool_put(pool, db);
    return n;
}

Test(query, a_rerunnable_body_runs_without_a_savepoint_unless_it_must_be_undone) {
    rp_err_t err;
    rp_sqlite_pool_t *pool = rp_sqlite_pool_new(path, kv_schema, 1, &err);
    cr_assert_not_null(pool, "%s", err.message);

    probe_t kept = {"kept", RP_TXN_COMMIT, true, 0, 0};
    cr_assert(rp_sqlite_transact_rerunnable(pool, probe_body, &kept, &err), "%s", err.message);
    cr_assert(kept.runs == 1 && kept.in_savepoint == 0, "ran once, bare (%d runs)", kept.runs);
    cr_assert_eq(rows_of(pool, "kept"), 1);

    probe_t read_only = {"none", RP_TXN_ROLLBACK, false, 0, 0};
    cr_assert(rp_sqlite_transact_rerunnable(pool, probe_body, &read_only, &err), "%s", err.message);
    cr_assert(read_only.runs == 1 && read_only.in_savepoint == 0, "a refusal that changed nothing needs no undoing");

    probe_t refused = {"refused", RP_TXN_ROLLBACK, true, 0, 0};
    cr_assert(rp_sqlite_transact_rerunnable(pool, probe_body, &refused, &err), "%s", err.message);
    cr_assert_eq(refused.runs, 2, "a refusal after writing runs again");
    cr_assert_eq(refused.in_savepoint, 1, "the second time in its savepoint");
    cr_assert_eq(rows_of(pool, "refused"), 0, "and leaves nothing");

    /* the groups right after one that ran again use savepoints; later ones are bare again */
    probe_t next = {"n0", RP_TXN_COMMIT, false, 0, 0};
    cr_assert(rp_sqlite_transact_rerunnable(pool, probe_body, &next, &err), "%s", err.message);
    cr_assert_eq(next.in_savepoint, 1);
    bool bare_again = false;
    for (int i = 0; i < 32 && !bare_again; i++) {
        probe_t later = {"n1", RP_TXN_COMMIT, false, 0, 0};
        cr_assert(rp_sqlite_transact_rerunnable(pool, probe_body, &later, &err), "%s", err.message);
        bare_again = later.in_savepoint == 0;
    }
    cr_assert(bare_again, "bare groups again within 32 groups");

    probe_t failed = {"failed", RP_TXN_FAILED, true, 0, 0};
    cr_assert_not(rp_sqlite_transact_rerunnable(pool, probe_body, &failed, &err));
    cr_assert_eq(failed.runs, 2, "a failure after writing runs again, in its savepoint");
    cr_assert_eq(rows_of(pool, "failed"), 0);

    probe_t plain = {"plain", RP_TXN_COMMIT, true, 0, 0};
    cr_assert(rp_sqlite_transact(pool, probe_body, &plain, &err), "%s", err.message);
    cr_assert(plain.runs == 1 && plain.in_savepoint == 1, "a body that may not run again always has its savepoint");
    rp_sqlite_pool_free(pool);
}

/* The temp_store a unit of work's connection has, read from inside the unit. */
static rp_txn_end_t read_temp_store(sqlite3 *db, void *p, rp_err_t *err) {
    (void)err;
    *(int *)p = scalar(db, "PRAGMA temp_store");
    return RP_TXN_ROLLBACK;
}

Test(query, group_commits_keep_their_statement_journals_in_memory_and_readers_on_file) {
    rp_err_t err;
    rp_sqlite_pool_t *pool = rp_sqlite_pool_new(path, kv_schema, 2, &err);
    cr_assert_not_null(pool, "%s", err.message);
    int writer = -1, reader = -1;
    cr_assert(rp_sqlite_transact(pool, read_temp_store, &writer, &err), "%s", err.message);
    cr_assert_eq(writer, 2, "the write connection's temporary files are in memory (temp_store=MEMORY)");
    cr_assert(rp_sqlite_read(pool, read_temp_store, &reader, &err), "%s", err.message);
    cr_assert_eq(reader, 0, "a reader keeps the build's default, files, for large sorts");
    rp_sqlite_pool_free(pool);
}

/* ---- a full disk: a 503 the client may retry, nothing written, writes again once space returns ---- */

/* SQLite answers SQLITE_FULL both for a full disk and for a file at its max_page_count: the
 * body caps its connection's file at its current size, so the row cannot fit (or lifts the cap). */
static rp_txn_end_t grow_body(sqlite3 *db, void *p, rp_err_t *err) {
    const bool *capped = p;
    if (!rp_sqlite_exec(db, *capped ? "PRAGMA max_page_count = 1" : "PRAGMA max_page_count = 1073741823", err))
        return RP_TXN_FAILED;
    if (!rp_sqlite_exec(db, "INSERT INTO kv VALUES (hex(randomblob(16)), zeroblob(200000))", err)) return RP_TXN_FAILED;
    return RP_TXN_COMMIT;
}

Test(query, a_full_disk_is_a_retryable_503_that_writes_nothing) {
    rp_err_t err;
    rp_sqlite_pool_t *pool = rp_sqlite_pool_new(path, kv_schema, 1, &err);
    cr_assert_not_null(pool, "%s", err.message);
    bool capped = true;
    cr_assert_not(rp_sqlite_transact(pool, grow_body, &capped, &err));
    cr_assert_eq(err.kind, RP_ERR_STORE_UNAVAILABLE, "%s", err.message);
    cr_assert_str_eq(err.code, "STORE_FULL");
    cr_assert_eq(rp_err_http_status(err.kind), 503);
    cr_assert(rp_err_transient(err.kind));
    sqlite3 *db = rp_sqlite_pool_get(pool, &err);
    cr_assert_eq(scalar(db, "SELECT count(*) FROM kv"), 0, "nothing of the refused write stays");
    rp_sqlite_pool_put(pool, db);
    capped = false;
    cr_assert(rp_sqlite_transact(pool, grow_body, &capped, &err), "%s", err.message);
    db = rp_sqlite_pool_get(pool, &err);
    cr_assert_eq(scalar(db, "SELECT count(*) FROM kv"), 1, "the same write succeeds once there is room");
    rp_sqlite_pool_put(pool, db);
    rp_sqlite_pool_free(pool);
}

/* ---- one pool per file in a process, and checkpoints off the writer ---- */

static rp_txn_end_t put_one(sqlite3 *db, void *p, rp_err_t *err) {
    (void)p;
    return rp_sqlite_exec(db, "INSERT INTO kv VALUES ('kept', 1)", err) ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

/* Stores of one file share one pool with the connections of all of them (five held at once out
 * of 2 + 3), another file has its own, and the pool lives until its last store closes. */
Test(query, stores_of_one_file_share_one_pool_until_the_last_closes) {
    rp_err_t err;
    struct handle {
        int unused;
    } h = {0};
    void *a = rp_sqlite_store_open(dir, "kv.db", kv_schema, 2, &h, sizeof h, &err);
    cr_assert_not_null(a, "%s", err.message);
    void *b = rp_sqlite_store_open(dir, "kv.db", kv_schema, 3, &h, sizeof h, &err);
    void *c = rp_sqlite_store_open(dir, "other.db", kv_schema, 1, &h, sizeof h, &err);
    cr_assert(b && c, "%s", err.message);
    rp_sqlite_pool_t *pool = rp_store_handle_backend(a);
    cr_assert_eq(rp_store_handle_backend(b), pool, "the second store of kv.db uses the first one's pool");
    cr_assert_neq(rp_store_handle_backend(c), pool, "another file has a pool of its own");
    sqlite3 *held[5];
    for (int i = 0; i < 5; i++) /* would wait for ever in a pool of 2 or 3 */
        cr_assert_not_null(held[i] = rp_sqlite_pool_get(pool, &err));
    for (int i = 0; i < 5; i++)
        rp_sqlite_pool_put(pool, held[i]);
    rp_store_handle_free(a);
    cr_assert(rp_sqlite_transact(rp_store_handle_backend(b), put_one, NULL, &err), "%s", err.message);
    rp_store_handle_free(b);
    rp_store_handle_free(c);
    void *again = rp_sqlite_store_open(dir, "kv.db", kv_schema, 1, &h, sizeof h, &err);
    cr_assert_not_null(again, "%s", err.message);
    sqlite3 *db = rp_sqlite_pool_get(rp_store_handle_backend(again), &err);
    cr_assert_eq(scalar(db, "SELECT count(*) FROM kv WHERE k = 'kept'"), 1, "the file reopens with what was written");
    rp_sqlite_pool_put(rp_store_handle_backend(again), db);
    rp_store_handle_free(again);
}

/* count rows of one page each (a 3,000-byte value: two never share a 4 KiB page) */
static rp_txn_end_t fill_pages(sqlite3 *db, void *p, rp_err_t *err) {
    char sql[160];
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
             "INSERT INTO kv SELECT hex(randomblob(12)), zeroblob(3000) FROM n",
             *(int *)p);
    return rp_sqlite_exec(db, sql, err) ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

static long file_pages(void) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)(st.st_size / 4096) : -1;
}

/* Waits (up to 30 s) until the pool's checkpointer has copied the WAL into the database file. */
static void the_checkpointer_copies_the_wal(void) {
    long pages = 0;
    for (int i = 0; i < 3000 && (pages = file_pages()) < RP_SQLITE_CHECKPOINT_PAGES; i++)
        usleep(10 * 1000);
    cr_assert_geq(pages, RP_SQLITE_CHECKPOINT_PAGES, "the checkpointer copied the WAL into the file (%ld pages)",
                  pages);
}

/* The writer no longer checkpoints at SQLite's 1,000 pages on its own thread: below
 * RP_SQLITE_CHECKPOINT_PAGES nothing reaches the database file; past it the pool's checkpointer
 * copies the WAL back while nothing else is written. */
Test(query, a_pool_checkpoints_past_its_threshold_on_a_thread_of_its_own) {
    rp_err_t err;
    rp_sqlite_pool_t *pool = rp_sqlite_pool_new(path, kv_schema, 1, &err);
    cr_assert_not_null(pool, "%s", err.message);
    long start = file_pages();
    int rows = 500;
    for (int written = 0; written + rows < RP_SQLITE_CHECKPOINT_PAGES - 200; written += rows)
        cr_assert(rp_sqlite_transact(pool, fill_pages, &rows, &err), "%s", err.message);
    cr_assert_eq(file_pages(), start, "no checkpoint below the threshold (SQLite's own would run at 1,000 pages)");
    rp_sqlite_writes_t w;
    rp_sqlite_writes_read(&w);
    cr_assert_eq(w.checkpoints_thread + w.checkpoints_writer, 0, "no checkpoint counted below the threshold");
    rows = 1000;
    cr_assert(rp_sqlite_transact(pool, fill_pages, &rows, &err), "%s", err.message);
    the_checkpointer_copies_the_wal();
    rp_sqlite_writes_read(&w);
    cr_assert_geq(w.checkpoints_thread, 1, "counted as the checkpointer's");
    cr_assert_eq(w.checkpoints_writer, 0, "the writer ran none of its own");
    rp_sqlite_pool_free(pool);
}

/* A reader that writes on its own (an autocommit statement outside a unit of work, as the outbox
 * relay's marks) follows the same rule: SQLite's own checkpoint at 1,000 pages does not run on
 * its thread, and past the threshold the pool's checkpointer copies the WAL back. */
Test(query, a_reader_s_own_writes_do_not_checkpoint_below_the_threshold_either) {
    rp_err_t err;
    rp_sqlite_pool_t *pool = rp_sqlite_pool_new(path, kv_schema, 2, &err);
    cr_assert_not_null(pool, "%s", err.message);
    sqlite3 *reader = rp_sqlite_pool_get(pool, &err);
    long start = file_pages();
    int rows = 500;
    for (int written = 0; written + rows < RP_SQLITE_CHECKPOINT_PAGES - 200; written += rows)
        cr_assert_eq(fill_pages(reader, &rows, &err), RP_TXN_COMMIT, "%s", err.message);
    cr_assert_eq(file_pages(), start, "no checkpoint below the threshold (SQLite's own would run at 1,000 pages)");
    rows = 1000;
    cr_assert_eq(fill_pages(reader, &rows, &err), RP_TXN_COMMIT, "%s", err.message);
    rp_sqlite_pool_put(pool, reader);
    the_checkpointer_copies_the_wal();
    rp_sqlite_pool_free(pool);
}

static long wal_bytes(void) {
    char wal[128];
    struct stat st;
    snprintf(wal, sizeof wal, "%s-wal", path);
    return stat(wal, &st) == 0 ? (long)st.st_size : -1;
}

/* Past twice the threshold the writer checkpoints itself, so the WAL starts over at the next
 * commit and its file is cut back to RP_SQLITE_WAL_LIMIT_BYTES: under steady writes the
 * checkpointer alone never caught up, and the WAL grew to 160 MiB. */
Test(query, a_wal_past_twice_the_threshold_starts_over_and_shrinks) {
    rp_err_t err;
    rp_sqlite_pool_t *pool = rp_sqlite_pool_new(path, kv_schema, 1, &err);
    cr_assert_not_null(pool, "%s", err.message);
    int rows = 2 * RP_SQLITE_CHECKPOINT_PAGES + 500;
    cr_assert(rp_sqlite_transact(pool, fill_pages, &rows, &err), "%s", err.message);
    rp_sqlite_writes_t w;
    rp_sqlite_writes_read(&w);
    cr_assert_eq(w.checkpoints_writer, 1, "the writer's own checkpoint is counted (%llu)",
                 (unsigned long long)w.checkpoints_writer);
    cr_assert_gt(w.checkpoint_us, 0, "with its time");
    long big = wal_bytes();
    cr_assert_gt(big, RP_SQLITE_WAL_LIMIT_BYTES, "the one large commit made a WAL past the limit (%ld)", big);
    rows = 1;
    cr_assert(rp_sqlite_transact(pool, fill_pages, &rows, &err), "%s", err.message);
    long after = wal_bytes();
    cr_assert_leq(after, RP_SQLITE_WAL_LIMIT_BYTES, "the next commit started the WAL over and cut it (%ld)", after);
    rp_sqlite_pool_free(pool);
}

/* ---- a write that runs alone ---- */

typedef struct growth {
    int size;           /* the rows' new length */
    sqlite3_int64 grew; /* SQLite's memory in use after the rewrite less before it */
} growth_t;

/* Rewrites every row (each on a page of its own) and says how much SQLite's memory grew meanwhile. */
static rp_txn_end_t rewrite_all(sqlite3 *db, void *p, rp_err_t *err) {
    growth_t *g = p;
    sqlite3_int64 before, after, high;
    char sql[64];
    snprintf(sql, sizeof sql, "UPDATE kv SET v = zeroblob(%d)", g->size);
    sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &before, &high, 0);
    if (!rp_sqlite_exec(db, sql, err)) return RP_TXN_FAILED;
    sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &after, &high, 0);
    g->grew = after - before;
    return RP_TXN_COMMIT;
}

/* In a group a write runs in a savepoint, for which the writer keeps a copy of every page it
 * changes in memory (temp_store=MEMORY) until the commit: 20 MiB for a batch chunk of 500 items.
 * A write that runs alone has no savepoint around it, and its rows are all written. */
Test(query, a_write_that_runs_alone_keeps_no_copy_of_the_pages_it_changes) {
    rp_err_t err;
    /* the pools turn SQLite's memory accounting off; this test counts memory, so it starts SQLite
     * with the accounting on first (the pools' later attempt then changes nothing) */
    cr_assert_eq(sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 1), SQLITE_OK);
    cr_assert_eq(sqlite3_initialize(), SQLITE_OK);
    rp_sqlite_pool_t *pool = rp_sqlite_pool_new(path, kv_schema, 1, &err);
    cr_assert_not_null(pool, "%s", err.message);
    int rows = 1000;
    cr_assert(rp_sqlite_transact(pool, fill_pages, &rows, &err), "%s", err.message);
    growth_t grouped = {3001, 0}, alone = {3002, 0};
    cr_assert(rp_sqlite_transact(pool, rewrite_all, &grouped, &err), "%s", err.message);
    cr_assert(rp_sqlite_transact_alone(pool, rewrite_all, &alone, &err), "%s", err.message);
    cr_assert_gt(grouped.grew, 3 * 1024 * 1024, "in a savepoint: a copy of 1,000 pages (%lld bytes)",
                 (long long)grouped.grew);
    cr_assert_lt(alone.grew, 1024 * 1024, "alone: no copies (%lld bytes)", (long long)alone.grew);
    sqlite3 *db = rp_sqlite_pool_get(pool, &err);
    cr_assert_eq(scalar(db, "SELECT count(*) FROM kv WHERE length(v) = 3002"), rows);
    rp_sqlite_pool_put(pool, db);
    rp_sqlite_pool_free(pool);
}
