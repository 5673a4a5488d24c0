/* store_backends.h - shared by the store conformance suites (test_auth_store.c,
 * test_event_store.c, test_reward_store.c): every store test runs against every backend.
 * SQLite always runs; MongoDB runs when MONGODB_URI names a replica set (each test in a
 * database of its own) and is otherwise reported as skipped with the reason. Anything a backend
 * must guarantee (uniqueness, compare-and-set, the grant's all-or-nothing, paging order) is
 * asserted in those suites, not in backend-specific tests. Static functions; include once per
 * test file. */
#ifndef RP_TESTS_STORE_BACKENDS_H
#define RP_TESTS_STORE_BACKENDS_H

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_store.h"
#include "auth/auth_store_mongo.h"
#include "auth/identity.h"
#include "event/event_repo.h"
#include "event/event_repo_mongo.h"
#include "ids.h"
#include "reward/reward_store.h"
#include "roles.h"
#include "timeutil.h"

enum { SQLITE = 0, MONGODB = 1 };

typedef struct stores {
    rp_auth_store_t *auth;
    rp_event_repo_t *events;
    struct rp_reward_store *rewards; /* opened by the reward suite (test_reward_store.c) */
    char dir[64], mongo_db[40];
} stores_t;

static stores_t S;

/* Opens the auth and event stores of backend (the reward suite adds its own). */
static inline void open_stores(int backend) {
    rp_err_t err;
    memset(&S, 0, sizeof S);
    if (backend == SQLITE) {
        strcpy(S.dir, "/tmp/rp-conf-XXXXXX");
        cr_assert_not_null(mkdtemp(S.dir));
        S.auth = rp_auth_store_sqlite_open(S.dir, 4, &err);
        cr_assert_not_null(S.auth, "%s", err.message);
        S.events = rp_event_repo_sqlite_open(S.dir, 4, &err);
        cr_assert_not_null(S.events, "%s", err.message);
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
    snprintf(S.mongo_db, sizeof S.mongo_db, "%s", db);
    S.events = rp_event_repo_mongo_open(uri, db, &err);
    cr_assert_not_null(S.events, "%s", err.message);
}

static inline void close_stores(void) {
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

/* A USER account with a fixed hash and times, keyed the way auth_service.c keys accounts. */
static inline rp_account_t account(const char *username, const char *email) {
    rp_account_t a = {.password_hash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
                      .roles = RP_ROLE_USER,
                      .created_at = 1700000000000,
                      .updated_at = 1700000000000};
    rp_oid_new(a.id);
    snprintf(a.username, sizeof a.username, "%s", username);
    snprintf(a.email, sizeof a.email, "%s", email);
    rp_identity_key(a.username, a.username_key, sizeof a.username_key);
    rp_identity_key(a.email, a.email_key, sizeof a.email_key);
    return a;
}

static inline json_t *definition(void) {
    char id[RP_OID_LEN];
    rp_oid_new(id);
    return json_pack("{s:s, s:s, s:s, s:{s:i}, s:s, s:b, s:s, s:s, s:s}", "id", id, "name", "Gold", "type", "CURRENCY",
                     "value", "gold", 100, "description", "", "isActive", 1, "createdBy", "0123456789abcdef01234567",
                     "createdAt", "2026-01-01T00:00:00.000Z", "updatedAt", "2026-01-01T00:00:00.000Z");
}

/* An event with one reward of definition def_id; stock < 0 = unlimited. */
static inline json_t *event(const char *def_id, int64_t stock, const char *created_at) {
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

static inline rp_event_audit_t audit(const char *action, const char *type, const char *id) {
    return (rp_event_audit_t){"0123456789abcdef01234567", "op", action, type, id, NULL, NULL, rp_now_ms()};
}

/* A stored event with one reward; its id is copied to id. */
static inline void make_event(int64_t stock, char id[RP_OID_LEN]) {
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

#endif
