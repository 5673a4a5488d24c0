/* Tests workers/event/event_worker.c where it talks to another worker: a progress report asks the
 * auth worker, over the transport it was given, about its players (one batched call, each id
 * once) and is refused whole for unknown ones, or with 503 when no answer comes. And what it tells
 * the api about keeping a list page (maxAgeMs). A scripted auth
 * service answers on an in-process transport; the store is SQLite in a fresh directory. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "event/event_worker.h"
#include "roles.h"
#include "timeutil.h"

#define KNOWN "aaaaaaaaaaaaaaaaaaaaaaaa"
#define GHOST "bbbbbbbbbbbbbbbbbbbbbbbb"
#define DISABLED "cccccccccccccccccccccccc"

static struct {
    pthread_mutex_t lock;
    int calls;
    size_t ids; /* ids asked in all calls */
} asked = {PTHREAD_MUTEX_INITIALIZER, 0, 0};

/* The auth worker's account route, scripted: KNOWN is active, DISABLED disabled, others unknown. */
static void op_accounts(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    (void)ctx;
    json_t *ids = json_object_get(env->body, "ids"), *states = json_array(), *id;
    size_t i;
    pthread_mutex_lock(&asked.lock);
    asked.calls++;
    asked.ids += json_array_size(ids);
    pthread_mutex_unlock(&asked.lock);
    json_array_foreach(ids, i, id) {
        const char *s = json_string_value(id);
        json_array_append_new(states, json_string(strcmp(s, KNOWN) == 0      ? "ACTIVE"
                                                  : strcmp(s, DISABLED) == 0 ? "DISABLED"
                                                                             : "UNKNOWN"));
    }
    rp_reply_set(rep, 200, json_pack("{s:o}", "states", states));
}

static const rp_route_op_t auth_ops[] = {{"POST", RP_ACCOUNTS_ROUTE, op_accounts}};
static const rp_service_t auth_service = {"auth", auth_ops, 1, NULL, NULL, NULL, NULL};

static rp_config_t cfg;
static rp_transport_t *transport;
static rp_event_worker_t *worker;
static int cache_ms;                                                /* EVENTS_CACHE_MS of the next start */
static unsigned call_roles = RP_ROLE_GAME_SERVER | RP_ROLE_AUDITOR; /* whom call() acts as */

static void start(bool serve_auth) {
    rp_err_t err;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.store, sizeof cfg.store, "sqlite");
    snprintf(cfg.sqlite_dir, sizeof cfg.sqlite_dir, "/tmp/rp-evw-XXXXXX");
    cr_assert_not_null(mkdtemp(cfg.sqlite_dir));
    cfg.worker_threads = 2;
    cfg.events_cache_ms = cache_ms;
    transport = rp_transport_inproc_new(16);
    if (serve_auth)
        cr_assert(
            rp_transport_serve(transport, RP_COMP_ACCOUNTS, rp_rpc_service_handler, (void *)&auth_service, 2, &err),
            "%s", err.message);
    worker = rp_event_worker_new(&cfg, transport, &err);
    cr_assert_not_null(worker, "%s", err.message);
}

static void stop(void) {
    rp_transport_stop(transport);
    rp_event_worker_free(worker);
    rp_transport_free(transport);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", cfg.sqlite_dir);
    cr_assert_eq(system(cmd), 0);
}

/* Runs the worker's op for method and route with body (taken) as a game server, and what the
 * service runs after an op. */
static void call(const char *method, const char *route, json_t *body, const char *path_user, rp_reply_t *rep) {
    const rp_service_t *svc = rp_event_worker_service(worker);
    rp_envelope_t env;
    rp_envelope_init(&env);
    snprintf(env.method, sizeof env.method, "%s", method);
    snprintf(env.route, sizeof env.route, "%s", route);
    env.caller.authenticated = true;
    snprintf(env.caller.id, sizeof env.caller.id, "0123456789abcdef01234567");
    env.caller.roles = call_roles;
    env.deadline_ms = rp_now_ms() + 5000;
    env.body = body;
    if (path_user) json_object_set_new(env.params, "userId", json_string(path_user));
    rp_reply_init(rep);
    for (size_t i = 0; i < svc->nops; i++)
        if (strcmp(svc->ops[i].method, method) == 0 && strcmp(svc->ops[i].route, route) == 0) {
            svc->ops[i].fn(svc->ctx, &env, rep);
            if (svc->after) svc->after(svc->ctx, &env, rep);
        }
    rp_envelope_clear(&env);
    cr_assert_neq(rep->status, 0, "no op for %s %s", method, route);
}

static json_t *fact(const char *user, const char *type, int level) {
    char key[40], at[RP_ISO_LEN];
    static int n;
    snprintf(key, sizeof key, "key-%d", ++n);
    rp_time_iso(rp_now_ms(), at);
    json_t *f =
        json_pack("{s:s, s:s, s:s, s:s}", "userId", user, "type", type, "occurredAt", at, "idempotencyKey", key);
    if (level) json_object_set_new(f, "value", json_integer(level));
    return f;
}

static int64_t max_level(const char *user) {
    rp_reply_t rep;
    call("GET", "/events/progress/{userId}", NULL, user, &rep);
    cr_assert_eq(rep.status, 200, "%d", rep.status);
    int64_t level = json_integer_value(json_object_get(rep.body, "maxLevel"));
    rp_reply_clear(&rep);
    return level;
}

Test(event_worker, unknown_players_refuse_the_report_after_one_batched_lookup, .fini = stop, .timeout = 30) {
    start(true);
    rp_reply_t rep;
    json_t *facts = json_pack("[o, o, o, o]", fact(KNOWN, "LEVEL", 5), fact(GHOST, "LOGIN", 0), fact(GHOST, "LEVEL", 3),
                              fact(KNOWN, "LOGIN", 0));
    call("POST", "/events/progress", json_pack("{s:o}", "facts", facts), NULL, &rep);
    cr_assert_eq(rep.status, 422);
    json_t *error = json_object_get(rep.body, "error"), *details = json_object_get(error, "details");
    cr_assert_str_eq(json_string_value(json_object_get(error, "code")), "UNKNOWN_PLAYER");
    cr_assert_eq(json_array_size(details), 1u, "the unknown id once");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(details, 0), "userId")), GHOST);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(details, 0), "field")), "/facts/1/userId");
    rp_reply_clear(&rep);
    cr_assert_eq(asked.calls, 1, "one call for the whole report");
    cr_assert_eq(asked.ids, 2u, "each player asked once");
    cr_assert_eq(max_level(KNOWN), 0, "nothing was recorded, not even the known player's facts");
    /* known and disabled players' progress is recorded */
    facts = json_pack("[o, o]", fact(KNOWN, "LEVEL", 5), fact(DISABLED, "LEVEL", 2));
    call("POST", "/events/progress", json_pack("{s:o}", "facts", facts), NULL, &rep);
    cr_assert_eq(rep.status, 200, "%d", rep.status);
    cr_assert_eq(json_integer_value(json_object_get(rep.body, "accepted")), 2);
    rp_reply_clear(&rep);
    cr_assert_eq(max_level(KNOWN), 5);
}

Test(event_worker, no_answer_from_the_auth_worker_is_503_and_records_nothing, .fini = stop, .timeout = 30) {
    start(false); /* nobody serves auth: the lookup cannot be answered */
    rp_reply_t rep;
    call("POST", "/events/progress", json_pack("{s:[o]}", "facts", fact(KNOWN, "LEVEL", 5)), NULL, &rep);
    cr_assert_eq(rep.status, 503, "%d", rep.status);
    rp_reply_clear(&rep);
    cr_assert_eq(max_level(KNOWN), 0);
}

/* Runs GET /events with query (name=value pairs, NULL-terminated) and returns its maxAgeMs. */
static int list_max_age(const char *const *query) {
    const rp_service_t *svc = rp_event_worker_service(worker);
    rp_envelope_t env;
    rp_reply_t rep;
    rp_envelope_init(&env);
    snprintf(env.method, sizeof env.method, "GET");
    snprintf(env.route, sizeof env.route, "/events");
    env.caller.authenticated = true;
    snprintf(env.caller.id, sizeof env.caller.id, "0123456789abcdef01234567");
    env.caller.roles = RP_ROLE_USER;
    for (; query && *query; query += 2)
        json_object_set_new(env.query, query[0], json_string(query[1]));
    rp_reply_init(&rep);
    for (size_t i = 0; i < svc->nops; i++)
        if (strcmp(svc->ops[i].method, "GET") == 0 && strcmp(svc->ops[i].route, "/events") == 0)
            svc->ops[i].fn(svc->ctx, &env, &rep);
    cr_assert_eq(rep.status, 200);
    int age = rep.max_age_ms;
    rp_reply_clear(&rep);
    rp_envelope_clear(&env);
    return age;
}

/* The open events page may be kept by the api no longer than this worker keeps it, and never past
 * the next start or end of one of its events; a page asked for at a given instant is not offered. */
Test(event_worker, a_list_page_is_offered_for_keeping_no_longer_than_it_holds, .fini = stop, .timeout = 30) {
    cache_ms = 10000;
    start(false);
    cache_ms = 0;
    call_roles = RP_ROLE_OPERATOR;
    rp_reply_t rep;
    call("POST", "/events/reward-definitions",
         json_pack("{s:s, s:s, s:s}", "name", "Gold", "type", "POINT", "value", "gold"), NULL, &rep);
    cr_assert_eq(rep.status, 201, "%d", rep.status);
    char def[32];
    snprintf(def, sizeof def, "%s", json_string_value(json_object_get(rep.body, "id")));
    rp_reply_clear(&rep);
    cr_assert_eq(list_max_age(NULL), 10000, "an empty page holds for the whole EVENTS_CACHE_MS");
    int64_t now = rp_now_ms();
    char start_at[RP_ISO_LEN], end_at[RP_ISO_LEN];
    rp_time_iso(now + 4000, start_at);
    rp_time_iso(now + 86400000, end_at);
    call("POST", "/events",
         json_pack("{s:s, s:s, s:s, s:[{s:s, s:i}]}", "title", "soon", "startDate", start_at, "endDate", end_at,
                   "rewards", "rewardDefinitionId", def, "quantity", 1),
         NULL, &rep);
    cr_assert_eq(rep.status, 201, "%d", rep.status);
    rp_reply_clear(&rep);
    int age = list_max_age(NULL);
    cr_assert(age > 0 && age <= 4000, "the page must end when its event starts: %d", age);
    age = list_max_age(NULL); /* now from the worker's own copy: what is left of it */
    cr_assert(age > 0 && age <= 4000, "%d", age);
    static const char *const at[] = {"activeAt", "2030-01-01T00:00:00Z", NULL};
    cr_assert_eq(list_max_age(at), 0);
    call_roles = RP_ROLE_GAME_SERVER | RP_ROLE_AUDITOR;
}
