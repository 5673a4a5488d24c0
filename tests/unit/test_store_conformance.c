/* The store conformance suite: one set of repository tests (auth store, event repository,
 * reward store) run against every backend. SQLite always runs; MongoDB runs when MONGODB_URI
 * names a replica set (each test in a database of its own) and is otherwise reported as
 * skipped with the reason. Anything a backend must guarantee (uniqueness, compare-and-set,
 * the grant's all-or-nothing, paging order) is asserted here, not in backend-specific tests. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_store.h"
#include "auth/auth_store_mongo.h"
#include "event/event_repo.h"
#include "event/event_repo_mongo.h"
#include "ids.h"
#include "reward/reward_store.h"
#include "reward/reward_store_mongo.h"
#include "roles.h"
#include "timeutil.h"

enum { SQLITE = 0, MONGODB = 1 };

typedef struct stores {
    rp_auth_store_t *auth;
    rp_event_repo_t *events;
    rp_reward_store_t *rewards;
    char dir[64];
} stores_t;

static stores_t S;

static void open_stores(int backend) {
    rp_err_t err;
    memset(&S, 0, sizeof S);
    if (backend == SQLITE) {
        strcpy(S.dir, "/tmp/rp-conf-XXXXXX");
        cr_assert_not_null(mkdtemp(S.dir));
        S.auth = rp_auth_store_sqlite_open(S.dir, 4, &err);
        cr_assert_not_null(S.auth, "%s", err.message);
        S.events = rp_event_repo_sqlite_open(S.dir, 4, &err);
        cr_assert_not_null(S.events, "%s", err.message);
        S.rewards = rp_reward_store_sqlite_open(S.dir, 4, &err);
        cr_assert_not_null(S.rewards, "%s", err.message);
        return;
    }
    const char *uri = getenv("MONGODB_URI");
    if (!uri || !strstr(uri, "replicaSet="))
        cr_skip_test("MongoDB backend not run: MONGODB_URI does not name a replica set (no MongoDB server can be "
                     "installed on this machine)");
    char db[40], oid[RP_OID_LEN];
    rp_oid_new(oid);
    snprintf(db, sizeof db, "rp_conf_%s", oid);
    S.auth = rp_auth_store_mongo_open(uri, db, &err);
    cr_assert_not_null(S.auth, "%s", err.message);
    S.events = rp_event_repo_mongo_open(uri, db, &err);
    cr_assert_not_null(S.events, "%s", err.message);
    S.rewards = rp_reward_store_mongo_open(uri, db, &err);
    cr_assert_not_null(S.rewards, "%s", err.message);
}

static void close_stores(void) {
    if (S.rewards) S.rewards->ops->free(S.rewards);
    if (S.events) S.events->ops->free(S.events);
    if (S.auth) S.auth->ops->free(S.auth);
    if (S.dir[0]) {
        char cmd[96];
        snprintf(cmd, sizeof cmd, "rm -rf %s", S.dir);
        cr_assert_eq(system(cmd), 0);
    }
}

#define BACKENDS(suite, name)                                                                                          \
    ParameterizedTestParameters(suite, name) {                                                                         \
        static int b[] = {SQLITE, MONGODB};                                                                            \
        return cr_make_param_array(int, b, 2);                                                                         \
    }                                                                                                                  \
    ParameterizedTest(int *backend, suite, name, .init = NULL, .fini = close_stores, .timeout = 60)

/* ---- builders ---- */

static rp_account_t account(const char *username, const char *email) {
    rp_account_t a;
    memset(&a, 0, sizeof a);
    rp_oid_new(a.id);
    snprintf(a.username, sizeof a.username, "%s", username);
    snprintf(a.email, sizeof a.email, "%s", email);
    snprintf(a.password_hash, sizeof a.password_hash, "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA");
    a.roles = RP_ROLE_USER;
    a.created_at = a.updated_at = 1700000000000;
    return a;
}

static json_t *definition(void) {
    char id[RP_OID_LEN];
    rp_oid_new(id);
    return json_pack("{s:s, s:s, s:s, s:{s:i}, s:s, s:b, s:s, s:s, s:s}", "id", id, "name", "Gold", "type", "CURRENCY",
                     "value", "gold", 100, "description", "", "isActive", 1, "createdBy", "0123456789abcdef01234567",
                     "createdAt", "2026-01-01T00:00:00.000Z", "updatedAt", "2026-01-01T00:00:00.000Z");
}

/* An event with one reward of definition def_id; stock < 0 = unlimited. */
static json_t *event(const char *def_id, int64_t stock, const char *created_at) {
    char id[RP_OID_LEN];
    rp_oid_new(id);
    json_t *rw = json_pack("{s:s, s:i, s:n}", "rewardDefinitionId", def_id, "quantity", 1, "customData");
    json_object_set_new(rw, "stock", stock < 0 ? json_null() : json_integer(stock));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[], s:s, s:s, s:n, s:b, s:i, s:s, s:s, s:s, s:[o]}", "id", id,
                     "title", "Conformance", "description", "", "startDate", "2026-01-01T00:00:00.000Z", "endDate",
                     "2099-01-01T00:00:00.000Z", "conditions", "conditionLogic", "ALL", "claimPeriod", "ONCE",
                     "maxClaims", "requiresApproval", 0, "dayOffsetMinutes", 540, "createdBy",
                     "0123456789abcdef01234567", "createdAt", created_at, "updatedAt", created_at, "rewards", rw);
}

static rp_event_audit_t audit(const char *action, const char *type, const char *id) {
    return (rp_event_audit_t){"0123456789abcdef01234567", "op", action, type, id, NULL, NULL, rp_now_ms()};
}

/* A stored event with one reward; its id is copied to id. */
static void make_event(int64_t stock, char id[RP_OID_LEN]) {
    rp_err_t err;
    json_t *d = definition();
    rp_event_audit_t a = audit("CREATE", "REWARD_DEFINITION", json_string_value(json_object_get(d, "id")));
    cr_assert(S.events->ops->def_create(S.events, d, &a, &err), "%s", err.message);
    json_t *e = event(json_string_value(json_object_get(d, "id")), stock, "2026-01-01T00:00:00.000Z");
    snprintf(id, RP_OID_LEN, "%s", json_string_value(json_object_get(e, "id")));
    a = audit("CREATE", "EVENT", id);
    cr_assert(S.events->ops->event_create(S.events, e, &a, &err), "%s", err.message);
    json_decref(d);
    json_decref(e);
}

static json_t *request(const char *user, const char *event_id, const char *status) {
    char id[RP_OID_LEN], now[RP_ISO_LEN];
    rp_oid_new(id);
    rp_time_iso(rp_now_ms(), now);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[{s:i, s:s, s:s, s:s, s:i, s:i}], s:s, s:n, s:n, s:n, s:n, s:n, "
                     "s:s, s:n, s:s, s:s}",
                     "id", id, "userId", user, "eventId", event_id, "periodKey", "ONCE", "status", status,
                     "claimedRewards", "rewardIndex", 0, "rewardDefinitionId", "0123456789abcdef01234567", "name",
                     "Gold", "type", "CURRENCY", "value", 1, "quantity", 1, "requestedAt", now, "processedAt",
                     "processorId", "failureReason", "failureDetails", "notes", "source", "CLAIM", "batchId",
                     "createdAt", now, "updatedAt", now);
}

static rp_grant_line_t line0 = {0, 1};

/* Runs the grant of user on event_id; returns the outcome (asserting no store error). */
static rp_grant_outcome_t grant(const char *user, const char *event_id, const char *batch_id, int64_t seq,
                                json_t **req_out) {
    rp_err_t err;
    char key[128];
    snprintf(key, sizeof key, "%s:%s:ONCE", user, event_id);
    json_t *req = request(user, event_id, "SUCCESS"), *existing = NULL;
    json_t *payload = json_pack("{s:s, s:O}", "type", "reward.granted", "requestId", json_object_get(req, "id"));
    rp_grant_input_t in = {req, key, &line0, 1, 0, payload, batch_id, seq};
    rp_grant_outcome_t out;
    cr_assert(S.rewards->ops->grant(S.rewards, &in, &out, &existing, &err), "%s", err.message);
    if (out == RP_GRANT_DUPLICATE) cr_assert_not_null(existing, "a duplicate names the holder");
    json_decref(existing);
    json_decref(payload);
    if (req_out)
        *req_out = req;
    else
        json_decref(req);
    return out;
}

static int64_t stock_left(const char *event_id) {
    rp_err_t err;
    json_t *e = NULL;
    cr_assert(S.events->ops->event_get(S.events, event_id, &e, &err), "%s", err.message);
    cr_assert_not_null(e);
    json_t *left = json_object_get(json_array_get(json_object_get(e, "rewards"), 0), "stockLeft");
    int64_t v = json_is_integer(left) ? json_integer_value(left) : -1;
    json_decref(e);
    return v;
}

/* ---- auth store ---- */

BACKENDS(auth, users_are_unique_case_insensitively) {
    open_stores(*backend);
    rp_err_t err;
    rp_account_t a = account("Alice_1", "Alice@Example.com"), out;
    bool found;
    cr_assert(S.auth->ops->create_user(S.auth, &a, &err), "%s", err.message);
    rp_account_t same_name = account("ALICE_1", "other@example.com");
    cr_assert_not(S.auth->ops->create_user(S.auth, &same_name, &err));
    cr_assert_eq(err.kind, RP_ERR_CONFLICT);
    cr_assert_str_eq(err.code, "USERNAME_TAKEN");
    rp_account_t same_mail = account("bob_1", "alice@example.COM");
    cr_assert_not(S.auth->ops->create_user(S.auth, &same_mail, &err));
    cr_assert_str_eq(err.code, "EMAIL_TAKEN");
    cr_assert(S.auth->ops->find_by_login(S.auth, "alice_1", false, &out, &found, &err));
    cr_assert(found);
    cr_assert_str_eq(out.id, a.id);
    cr_assert_str_eq(out.username, "Alice_1", "stored as given");
    cr_assert(S.auth->ops->find_by_login(S.auth, "ALICE@example.com", true, &out, &found, &err));
    cr_assert(found);
    cr_assert(S.auth->ops->find_by_id(S.auth, a.id, &out, &found, &err));
    cr_assert(found);
    cr_assert_eq(out.roles, (unsigned)RP_ROLE_USER);
    cr_assert(S.auth->ops->find_by_id(S.auth, "ffffffffffffffffffffffff", &out, &found, &err));
    cr_assert_not(found);
}

BACKENDS(auth, users_page_in_id_order_and_roles_are_audited) {
    open_stores(*backend);
    rp_err_t err;
    char ids[5][RP_OID_LEN];
    for (int i = 0; i < 5; i++) {
        char name[32], mail[48];
        snprintf(name, sizeof name, "user_%d", i);
        snprintf(mail, sizeof mail, "u%d@example.com", i);
        rp_account_t a = account(name, mail);
        strcpy(ids[i], a.id);
        cr_assert(S.auth->ops->create_user(S.auth, &a, &err), "%s", err.message);
    }
    rp_account_t *page = NULL;
    size_t n = 0;
    bool more = false;
    cr_assert(S.auth->ops->list_users(S.auth, NULL, 3, &page, &n, &more, &err));
    cr_assert_eq(n, 3u);
    cr_assert(more);
    cr_assert_str_eq(page[0].id, ids[0]);
    char after[RP_OID_LEN];
    strcpy(after, page[2].id);
    free(page);
    cr_assert(S.auth->ops->list_users(S.auth, after, 3, &page, &n, &more, &err));
    cr_assert_eq(n, 2u);
    cr_assert_not(more);
    cr_assert_str_eq(page[1].id, ids[4]);
    free(page);

    bool found = false;
    json_t *before = json_pack("{s:[s]}", "roles", "USER"), *after_roles = json_pack("{s:[s]}", "roles", "OPERATOR");
    rp_audit_entry_t e = {"0123456789abcdef01234567", "admin", "SET_ROLES", "USER", ids[1], before, after_roles, 5};
    cr_assert(S.auth->ops->set_roles(S.auth, ids[1], RP_ROLE_OPERATOR, 10, &e, &found, &err), "%s", err.message);
    cr_assert(found);
    cr_assert(S.auth->ops->set_roles(S.auth, "ffffffffffffffffffffffff", RP_ROLE_OPERATOR, 10, &e, &found, &err));
    cr_assert_not(found);
    int64_t count = 0;
    cr_assert(S.auth->ops->count_with_role(S.auth, RP_ROLE_OPERATOR, &count, &err));
    cr_assert_eq(count, 1);
    json_t *items = NULL;
    cr_assert(S.auth->ops->list_audit(S.auth, ids[1], NULL, NULL, 10, &items, &more, &err), "%s", err.message);
    cr_assert_eq(json_array_size(items), 1u, "only the applied change is audited");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(items, 0), "target"), "id")),
                     ids[1]);
    json_decref(items);
    json_decref(before);
    json_decref(after_roles);
}

BACKENDS(auth, login_failures_and_refresh_rotation) {
    open_stores(*backend);
    rp_err_t err;
    rp_account_t a = account("carol_1", "carol@example.com");
    cr_assert(S.auth->ops->create_user(S.auth, &a, &err));
    for (int i = 1; i <= 3; i++)
        cr_assert(S.auth->ops->add_failure(S.auth, a.id, i * 1000, 0, &err), "%s", err.message);
    int64_t count = 0, nth = 0;
    cr_assert(S.auth->ops->failures(S.auth, a.id, 1500, 2, &count, &nth, &err));
    cr_assert_eq(count, 2);
    cr_assert_eq(nth, 2000, "the 2nd most recent after 1500");
    cr_assert(S.auth->ops->clear_failures(S.auth, a.id, &err));
    cr_assert(S.auth->ops->failures(S.auth, a.id, 0, 1, &count, &nth, &err));
    cr_assert_eq(count, 0);

    rp_refresh_token_t t1 = {0}, t2 = {0}, t3 = {0}, out;
    rp_oid_new(t1.id);
    strcpy(t1.user_id, a.id);
    rp_oid_new(t1.family_id);
    memset(t1.token_hash, 'a', 64);
    t1.created_at = 1;
    t1.expires_at = 1000000;
    t2 = t1;
    rp_oid_new(t2.id);
    memset(t2.token_hash, 'b', 64);
    t3 = t1;
    rp_oid_new(t3.id);
    memset(t3.token_hash, 'c', 64);
    cr_assert(S.auth->ops->insert_refresh(S.auth, &t1, &err), "%s", err.message);
    bool found = false, rotated = false;
    cr_assert(S.auth->ops->find_refresh(S.auth, t1.token_hash, &out, &found, &err));
    cr_assert(found);
    cr_assert_str_eq(out.family_id, t1.family_id);
    cr_assert(S.auth->ops->rotate_refresh(S.auth, t1.id, 50, &t2, &rotated, &err), "%s", err.message);
    cr_assert(rotated);
    cr_assert(S.auth->ops->rotate_refresh(S.auth, t1.id, 60, &t3, &rotated, &err));
    cr_assert_not(rotated, "a used token never rotates twice");
    cr_assert(S.auth->ops->find_refresh(S.auth, t3.token_hash, &out, &found, &err));
    cr_assert_not(found, "nothing inserted by the refused rotation");
    cr_assert(S.auth->ops->revoke_family(S.auth, t1.family_id, 70, &err));
    cr_assert(S.auth->ops->find_refresh(S.auth, t2.token_hash, &out, &found, &err));
    cr_assert(found);
    cr_assert_eq(out.revoked_at, 70);
}

/* ---- event repository ---- */

BACKENDS(events, definitions_and_events_round_trip) {
    open_stores(*backend);
    rp_err_t err;
    json_t *d = definition(), *got = NULL;
    const char *def_id = json_string_value(json_object_get(d, "id"));
    rp_event_audit_t a = audit("CREATE", "REWARD_DEFINITION", def_id);
    cr_assert(S.events->ops->def_create(S.events, d, &a, &err), "%s", err.message);
    cr_assert(S.events->ops->def_get(S.events, def_id, &got, &err));
    cr_assert_not_null(got);
    cr_assert(json_equal(json_object_get(got, "value"), json_object_get(d, "value")));
    cr_assert(json_is_false(json_object_get(got, "referenced")));
    json_decref(got);
    json_t *e = event(def_id, 10, "2026-01-01T00:00:00.000Z");
    const char *event_id = json_string_value(json_object_get(e, "id"));
    a = audit("CREATE", "EVENT", event_id);
    cr_assert(S.events->ops->event_create(S.events, e, &a, &err), "%s", err.message);
    cr_assert(S.events->ops->event_get(S.events, event_id, &got, &err));
    cr_assert_not_null(got);
    json_t *rw = json_array_get(json_object_get(got, "rewards"), 0);
    cr_assert_eq(json_integer_value(json_object_get(rw, "stockLeft")), 10);
    cr_assert_str_eq(json_string_value(json_object_get(rw, "name")), "Gold", "joined with its definition");
    json_decref(got);
    bool found = false, referenced = false;
    a = audit("DELETE", "REWARD_DEFINITION", def_id);
    cr_assert(S.events->ops->def_delete(S.events, def_id, &a, &found, &referenced, &err));
    cr_assert(found && referenced, "a definition an event uses is never deleted");
    bool already = true;
    a = audit("CANCEL", "EVENT", event_id);
    cr_assert(S.events->ops->event_cancel(S.events, event_id, 123, &a, &already, &err));
    cr_assert_not(already);
    cr_assert(S.events->ops->event_cancel(S.events, event_id, 124, &a, &already, &err));
    cr_assert(already);
    json_t *items = NULL;
    bool more;
    cr_assert(S.events->ops->audit_list(S.events, "EVENT", event_id, NULL, NULL, 10, &items, &more, &err));
    cr_assert_eq(json_array_size(items), 2u, "create and the one real cancel");
    json_decref(items);
    json_decref(d);
    json_decref(e);
}

BACKENDS(events, lists_newest_first_with_cursor) {
    open_stores(*backend);
    rp_err_t err;
    json_t *d = definition();
    rp_event_audit_t a = audit("CREATE", "REWARD_DEFINITION", json_string_value(json_object_get(d, "id")));
    cr_assert(S.events->ops->def_create(S.events, d, &a, &err));
    char ids[5][RP_OID_LEN];
    for (int i = 0; i < 5; i++) {
        char at[48];
        snprintf(at, sizeof at, "2026-01-0%dT00:00:00.000Z", i + 1);
        json_t *e = event(json_string_value(json_object_get(d, "id")), -1, at);
        strcpy(ids[i], json_string_value(json_object_get(e, "id")));
        a = audit("CREATE", "EVENT", ids[i]);
        cr_assert(S.events->ops->event_create(S.events, e, &a, &err), "%s", err.message);
        json_decref(e);
    }
    rp_event_filter_t f = {.status = -1, .now_ms = rp_now_ms(), .limit = 2};
    json_t *items = NULL;
    bool more = false;
    cr_assert(S.events->ops->event_list(S.events, &f, &items, &more, &err), "%s", err.message);
    cr_assert_eq(json_array_size(items), 2u);
    cr_assert(more);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "id")), ids[4]);
    char cursor[RP_OID_LEN];
    strcpy(cursor, json_string_value(json_object_get(json_array_get(items, 1), "id")));
    json_decref(items);
    f.cursor = cursor;
    f.limit = 10;
    cr_assert(S.events->ops->event_list(S.events, &f, &items, &more, &err));
    cr_assert_eq(json_array_size(items), 3u);
    cr_assert_not(more);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "id")), ids[2]);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 2), "id")), ids[0]);
    json_decref(items);
    json_decref(d);
}

BACKENDS(events, progress_counts_each_key_once) {
    open_stores(*backend);
    rp_err_t err;
    const char *user = "aaaaaaaaaaaaaaaaaaaaaaaa";
    json_t *lvl = json_integer(7), *quest = json_string("q1"),
           *ctr = json_pack("{s:s, s:i}", "key", "kills", "delta", 5);
    int64_t t = 1767225600000; /* 2026-01-01 */
    rp_fact_t facts[] = {
        {user, RP_FACT_LOGIN, "LOGIN", NULL, t, "k-login"},
        {user, RP_FACT_LEVEL, "LEVEL", lvl, t, "k-level"},
        {user, RP_FACT_QUEST, "QUEST_COMPLETE", quest, t, "k-quest"},
        {user, RP_FACT_COUNTER, "COUNTER", ctr, t, "k-c1"},
        {user, RP_FACT_COUNTER, "COUNTER", ctr, t, "k-c1"},
    };
    int64_t accepted = 0, dups = 0;
    cr_assert(S.events->ops->progress_ingest(S.events, facts, 5, "gs", t, &accepted, &dups, &err), "%s", err.message);
    cr_assert_eq(accepted, 4);
    cr_assert_eq(dups, 1);
    cr_assert(S.events->ops->progress_ingest(S.events, facts, 4, "gs", t, &accepted, &dups, &err));
    cr_assert_eq(accepted, 0, "a retried report counts nothing twice");
    cr_assert_eq(dups, 4);
    rp_progress_t p;
    memset(&p, 0, sizeof p);
    cr_assert(S.events->ops->progress_load(S.events, user, t / 86400000 - 1, t / 86400000 + 1, &p, &err));
    cr_assert_eq(p.max_level, 7);
    cr_assert_eq(json_integer_value(json_object_get(p.counters, "kills")), 5);
    cr_assert_not_null(json_object_get(p.quests, "q1"));
    cr_assert_eq(p.nlogins, 1u);
    rp_progress_release(&p);
    json_decref(lvl);
    json_decref(quest);
    json_decref(ctr);
}

/* ---- reward store ---- */

BACKENDS(rewards, grant_is_all_or_nothing_and_exactly_once) {
    open_stores(*backend);
    rp_err_t err;
    char ev[RP_OID_LEN];
    make_event(2, ev);
    json_t *first = NULL;
    cr_assert_eq(grant("aaaaaaaaaaaaaaaaaaaaaaaa", ev, NULL, 0, &first), RP_GRANT_OK);
    cr_assert_eq(grant("aaaaaaaaaaaaaaaaaaaaaaaa", ev, NULL, 0, NULL), RP_GRANT_DUPLICATE);
    cr_assert_eq(grant("bbbbbbbbbbbbbbbbbbbbbbbb", ev, NULL, 0, NULL), RP_GRANT_OK);
    cr_assert_eq(grant("cccccccccccccccccccccccc", ev, NULL, 0, NULL), RP_GRANT_OUT_OF_STOCK);
    cr_assert_eq(stock_left(ev), 0);
    json_t *items = NULL, *got = NULL;
    bool more;
    cr_assert(S.rewards->ops->list_ledger(S.rewards, NULL, ev, 0, 10, &items, &more, &err), "%s", err.message);
    cr_assert_eq(json_array_size(items), 2u, "nothing of the refused grants is written");
    json_decref(items);
    cr_assert(S.rewards->ops->list_outbox(S.rewards, 0, 10, &items, &more, &err));
    cr_assert_eq(json_array_size(items), 2u);
    json_decref(items);
    const char *id = json_string_value(json_object_get(first, "id"));
    cr_assert(S.rewards->ops->get_request(S.rewards, id, &got, &err));
    cr_assert_not_null(got);
    cr_assert_str_eq(json_string_value(json_object_get(got, "status")), "SUCCESS");
    json_decref(got);
    char key[128];
    snprintf(key, sizeof key, "aaaaaaaaaaaaaaaaaaaaaaaa:%s:ONCE", ev);
    cr_assert(S.rewards->ops->find_active(S.rewards, key, &got, &err));
    cr_assert_str_eq(json_string_value(json_object_get(got, "id")), id);
    json_decref(got);
    json_decref(first);
}

typedef struct race {
    const char *event_id;
    int ok;
    pthread_mutex_t mu;
} race_t;

static void *race_main(void *arg) {
    race_t *r = arg;
    if (grant("dddddddddddddddddddddddd", r->event_id, NULL, 0, NULL) == RP_GRANT_OK) {
        pthread_mutex_lock(&r->mu);
        r->ok++;
        pthread_mutex_unlock(&r->mu);
    }
    return NULL;
}

BACKENDS(rewards, concurrent_grants_of_one_key_pay_once) {
    open_stores(*backend);
    char ev[RP_OID_LEN];
    make_event(100, ev);
    race_t r = {ev, 0, PTHREAD_MUTEX_INITIALIZER};
    pthread_t th[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, race_main, &r);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(r.ok, 1);
    cr_assert_eq(stock_left(ev), 99);
}

BACKENDS(rewards, transitions_compare_and_set) {
    open_stores(*backend);
    rp_err_t err;
    char ev[RP_OID_LEN];
    make_event(1, ev);
    /* AWAITING_REVIEW holds the key but no stock until approved */
    json_t *req = request("eeeeeeeeeeeeeeeeeeeeeeee", ev, "AWAITING_REVIEW"), *existing = NULL, *after = NULL;
    char key[128];
    snprintf(key, sizeof key, "eeeeeeeeeeeeeeeeeeeeeeee:%s:ONCE", ev);
    json_t *payload = json_pack("{s:s}", "type", "reward.granted");
    rp_grant_input_t in = {req, key, &line0, 1, 0, payload, NULL, 0};
    rp_grant_outcome_t out;
    cr_assert(S.rewards->ops->grant(S.rewards, &in, &out, &existing, &err), "%s", err.message);
    cr_assert_eq(out, RP_GRANT_OK);
    cr_assert_eq(stock_left(ev), 1);
    const char *id = json_string_value(json_object_get(req, "id"));
    rp_decide_outcome_t d;
    cr_assert(S.rewards->ops->transition(S.rewards, id, "AWAITING_REVIEW", "SUCCESS", "0123456789abcdef01234567", NULL,
                                         NULL, &line0, 1, payload, rp_now_ms(), &d, &after, &err),
              "%s", err.message);
    cr_assert_eq(d, RP_DECIDE_OK);
    cr_assert_str_eq(json_string_value(json_object_get(after, "status")), "SUCCESS");
    json_decref(after);
    cr_assert_eq(stock_left(ev), 0);
    cr_assert(S.rewards->ops->transition(S.rewards, id, "AWAITING_REVIEW", "FAILED", "0123456789abcdef01234567", NULL,
                                         "REJECTED", &line0, 1, payload, rp_now_ms(), &d, &after, &err));
    cr_assert_eq(d, RP_DECIDE_WRONG_STATE, "decided once");
    json_decref(after);
    cr_assert(S.rewards->ops->transition(S.rewards, id, "SUCCESS", "REVOKED", "0123456789abcdef01234567", "oops",
                                         "REVOKED", &line0, 1, payload, rp_now_ms(), &d, &after, &err));
    cr_assert_eq(d, RP_DECIDE_OK);
    json_decref(after);
    cr_assert_eq(stock_left(ev), 1, "a revocation returns the stock");
    json_t *items = NULL;
    bool more;
    cr_assert(S.rewards->ops->list_ledger(S.rewards, NULL, ev, 0, 10, &items, &more, &err));
    cr_assert_eq(json_array_size(items), 2u, "the grant and its reversal");
    json_decref(items);
    cr_assert(S.rewards->ops->transition(S.rewards, "ffffffffffffffffffffffff", "SUCCESS", "REVOKED", "x", NULL, NULL,
                                         &line0, 1, payload, rp_now_ms(), &d, &after, &err));
    cr_assert_eq(d, RP_DECIDE_NOT_FOUND);
    json_decref(after);
    json_decref(payload);
    json_decref(req);
}

BACKENDS(rewards, histories_page_newest_first_and_filter) {
    open_stores(*backend);
    rp_err_t err;
    char ev[RP_OID_LEN], users[5][RP_OID_LEN];
    make_event(-1, ev);
    for (int i = 0; i < 5; i++) {
        snprintf(users[i], RP_OID_LEN, "%024d", i + 1);
        cr_assert_eq(grant(users[i], ev, NULL, 0, NULL), RP_GRANT_OK);
    }
    json_t *failed = request(users[0], ev, "FAILED");
    json_object_set_new(failed, "failureReason", json_string("CONDITION_NOT_MET"));
    cr_assert(S.rewards->ops->record_failed(S.rewards, failed, &err), "%s", err.message);
    rp_request_filter_t f = {.event_id = ev, .status = "SUCCESS", .limit = 3};
    json_t *items = NULL;
    bool more = false;
    cr_assert(S.rewards->ops->list_requests(S.rewards, &f, &items, &more, &err), "%s", err.message);
    cr_assert_eq(json_array_size(items), 3u);
    cr_assert(more);
    char cursor[RP_OID_LEN];
    strcpy(cursor, json_string_value(json_object_get(json_array_get(items, 2), "id")));
    json_decref(items);
    f.cursor = cursor;
    cr_assert(S.rewards->ops->list_requests(S.rewards, &f, &items, &more, &err));
    cr_assert_eq(json_array_size(items), 2u);
    cr_assert_not(more);
    json_decref(items);
    rp_request_filter_t mine = {.user_id = users[0], .limit = 10};
    cr_assert(S.rewards->ops->list_requests(S.rewards, &mine, &items, &more, &err));
    cr_assert_eq(json_array_size(items), 2u, "the grant and the recorded failure");
    json_decref(items);
    json_decref(failed);
}

BACKENDS(rewards, outbox_leases_and_idempotency_keys) {
    open_stores(*backend);
    rp_err_t err;
    char ev[RP_OID_LEN];
    make_event(-1, ev);
    cr_assert_eq(grant("111111111111111111111111", ev, NULL, 0, NULL), RP_GRANT_OK);
    cr_assert_eq(grant("222222222222222222222222", ev, NULL, 0, NULL), RP_GRANT_OK);
    json_t *a = NULL, *b = NULL;
    int64_t now = rp_now_ms();
    cr_assert(S.rewards->ops->outbox_lease(S.rewards, "relay-a", now, 30000, 10, &a, &err), "%s", err.message);
    cr_assert_eq(json_array_size(a), 2u);
    cr_assert(S.rewards->ops->outbox_lease(S.rewards, "relay-b", now, 30000, 10, &b, &err));
    cr_assert_eq(json_array_size(b), 0u, "leased rows are not handed to another relay");
    json_decref(b);
    int64_t seqs[2] = {json_integer_value(json_object_get(json_array_get(a, 0), "seq")),
                       json_integer_value(json_object_get(json_array_get(a, 1), "seq"))};
    cr_assert_lt(seqs[0], seqs[1], "commit order");
    cr_assert(S.rewards->ops->outbox_published(S.rewards, seqs, 2, now, &err));
    cr_assert(S.rewards->ops->outbox_lease(S.rewards, "relay-b", now + 60000, 30000, 10, &b, &err));
    cr_assert_eq(json_array_size(b), 0u, "published rows are never leased again");
    json_decref(a);
    json_decref(b);

    bool found = true;
    char hash[65];
    int status = 0;
    json_t *resp = NULL, *first = json_pack("{s:s}", "id", "first"), *second = json_pack("{s:s}", "id", "second");
    cr_assert(
        S.rewards->ops->idem_get(S.rewards, "111111111111111111111111", "k1", &found, hash, &status, &resp, &err));
    cr_assert_not(found);
    cr_assert(S.rewards->ops->idem_put(S.rewards, "111111111111111111111111", "k1", "h1", 201, first, now, &err));
    cr_assert(S.rewards->ops->idem_put(S.rewards, "111111111111111111111111", "k1", "h2", 409, second, now, &err));
    cr_assert(
        S.rewards->ops->idem_get(S.rewards, "111111111111111111111111", "k1", &found, hash, &status, &resp, &err));
    cr_assert(found);
    cr_assert_str_eq(hash, "h1", "the first writer wins");
    cr_assert_eq(status, 201);
    cr_assert(json_equal(resp, first));
    json_decref(resp);
    json_decref(first);
    json_decref(second);
}

BACKENDS(rewards, batches_store_lease_and_settle_once) {
    open_stores(*backend);
    rp_err_t err;
    char ev[RP_OID_LEN], bid[RP_OID_LEN], existing[RP_OID_LEN], ehash[65];
    make_event(-1, ev);
    rp_oid_new(bid);
    const char *users[] = {"aaaaaaaaaaaaaaaaaaaaaaa1", "aaaaaaaaaaaaaaaaaaaaaaa2", "aaaaaaaaaaaaaaaaaaaaaaa3"};
    int64_t t0 = rp_now_ms();
    rp_batch_input_t in = {bid, ev, "comp", "0123456789abcdef01234567", "key-1", "hash-1", users, 3, 1, t0};
    bool existed = true;
    cr_assert(S.rewards->ops->batch_create(S.rewards, &in, &existed, existing, ehash, &err), "%s", err.message);
    cr_assert_not(existed);
    rp_batch_input_t again = in;
    rp_oid_new((char *)existing);
    char other[RP_OID_LEN];
    rp_oid_new(other);
    again.id = other;
    cr_assert(S.rewards->ops->batch_create(S.rewards, &again, &existed, existing, ehash, &err));
    cr_assert(existed, "the same creator and key never make a second batch");
    cr_assert_str_eq(existing, bid);
    cr_assert_str_eq(ehash, "hash-1");

    json_t *items = NULL;
    cr_assert(S.rewards->ops->batch_lease(S.rewards, t0, 5000, 10, 2, &items, &err), "%s", err.message);
    cr_assert_eq(json_array_size(items), 2u, "no more than max_in_flight items out at once");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(items, 0), "seq")), 1);
    json_decref(items);
    cr_assert(S.rewards->ops->batch_lease(S.rewards, t0, 5000, 10, 2, &items, &err));
    cr_assert_eq(json_array_size(items), 0u);
    json_decref(items);
    /* settle item 1 by a grant, item 2 by a refusal; a second grant of item 1 is ITEM_SETTLED */
    cr_assert_eq(grant(users[0], ev, bid, 1, NULL), RP_GRANT_OK);
    cr_assert_eq(grant(users[0], ev, bid, 1, NULL), RP_GRANT_ITEM_SETTLED);
    cr_assert(S.rewards->ops->batch_item_fail(S.rewards, bid, 2, "OUT_OF_STOCK", NULL, t0, &err));
    cr_assert(S.rewards->ops->batch_item_fail(S.rewards, bid, 1, "OUT_OF_STOCK", NULL, t0, &err));
    int64_t seqs[] = {1, 2, 3, 99};
    cr_assert(S.rewards->ops->batch_items_get(S.rewards, bid, seqs, 4, &items, &err));
    cr_assert_eq(json_array_size(items), 3u);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "status")), "SUCCESS",
                     "a settled item stays settled");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 1), "status")), "FAILED");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 2), "status")), "QUEUED");
    json_decref(items);
    /* unsettled items come due again after the redelivery time; the third is free now */
    cr_assert(S.rewards->ops->batch_lease(S.rewards, t0 + 6000, 5000, 10, 100, &items, &err));
    cr_assert_eq(json_array_size(items), 1u);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(items, 0), "seq")), 3);
    json_decref(items);
    json_t *doc = NULL;
    cr_assert(S.rewards->ops->batch_get(S.rewards, bid, true, &doc, &err), "%s", err.message);
    cr_assert_not_null(doc);
    json_t *counts = json_object_get(doc, "counts");
    cr_assert_eq(json_integer_value(json_object_get(counts, "SUCCESS")), 1);
    cr_assert_eq(json_integer_value(json_object_get(counts, "FAILED")), 1);
    cr_assert_eq(json_integer_value(json_object_get(counts, "QUEUED")), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(doc, "failures"), "OUT_OF_STOCK")), 1);
    cr_assert_eq(json_integer_value(json_object_get(doc, "total")), 3);
    cr_assert_eq(json_integer_value(json_object_get(doc, "duplicates")), 1);
    json_decref(doc);
    bool more = true;
    cr_assert(S.rewards->ops->batch_items(S.rewards, bid, "FAILED", 0, 10, &items, &more, &err));
    cr_assert_eq(json_array_size(items), 1u);
    cr_assert_not(more);
    json_decref(items);
    cr_assert(S.rewards->ops->batch_items(S.rewards, bid, NULL, 1, 1, &items, &more, &err));
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(items, 0), "seq")), 2);
    cr_assert(more);
    json_decref(items);
    cr_assert(S.rewards->ops->batch_get(S.rewards, "ffffffffffffffffffffffff", true, &doc, &err));
    cr_assert_null(doc);
}

BACKENDS(rewards, batches_list_newest_first_by_event) {
    open_stores(*backend);
    rp_err_t err;
    char ev[RP_OID_LEN], other[RP_OID_LEN], ids[3][RP_OID_LEN], existing[RP_OID_LEN], ehash[65];
    make_event(-1, ev);
    make_event(-1, other);
    const char *users[] = {"aaaaaaaaaaaaaaaaaaaaaaa1"};
    bool existed;
    for (int i = 0; i < 3; i++) {
        rp_oid_new(ids[i]);
        rp_batch_input_t in = {ids[i], i == 1 ? other : ev,     "r", "0123456789abcdef01234567", NULL, "h", users, 1,
                               0,      1767225600000 + i * 1000};
        cr_assert(S.rewards->ops->batch_create(S.rewards, &in, &existed, existing, ehash, &err), "%s", err.message);
    }
    json_t *items = NULL;
    bool more = false;
    cr_assert(S.rewards->ops->batch_list(S.rewards, NULL, NULL, 2, &items, &more, &err), "%s", err.message);
    cr_assert_eq(json_array_size(items), 2u);
    cr_assert(more);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "id")), ids[2]);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 1), "id")), ids[1]);
    json_decref(items);
    cr_assert(S.rewards->ops->batch_list(S.rewards, NULL, ids[1], 2, &items, &more, &err));
    cr_assert_eq(json_array_size(items), 1u);
    cr_assert_not(more);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "id")), ids[0]);
    json_decref(items);
    cr_assert(S.rewards->ops->batch_list(S.rewards, ev, NULL, 10, &items, &more, &err));
    cr_assert_eq(json_array_size(items), 2u, "only the event's batches");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(items, 0), "total")), 1);
    json_decref(items);
}
