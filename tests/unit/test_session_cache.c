/* Tests api/session_cache.c: when the gateway trusts what it holds of an account and when it
 * asks the auth worker again, against a stand-in auth worker on a real in-process transport
 * that counts the questions and answers a state the test sets; and that callers that miss
 * together share one question. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "roles.h"
#include "routes.h"
#include "rpc.h"
#include "session.h"
#include "session_cache.h"
#include "timeutil.h"

#define USER "0123456789abcdef01234567"

static atomic_int asked;
static rp_session_state_t answer; /* what the stand-in answers; set before each question */

static void op_session(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    (void)ctx;
    (void)env;
    atomic_fetch_add(&asked, 1);
    rp_reply_set(rep, 200, rp_session_to_json(&answer));
}

static const rp_route_op_t ops[] = {{"POST", RP_SESSION_ROUTE, op_session}};
static const rp_service_t auth = {"auth", ops, 1, NULL, NULL, NULL, NULL};

static rp_transport_t *t;
static rp_session_cache_t *cache;

/* ---- a stand-in for the batch tests: every account's token version is its id's last two hex
 * digits; the first question waits until the test's other callers all wait behind it ---- */

#define CALLERS 16
static atomic_int singles, batches, batched_ids;
static atomic_bool first_held;

static int64_t version_of(const char *id) {
    return strtol(id + strlen(id) - 2, NULL, 16);
}

static json_t *state_of(const char *id) {
    rp_session_state_t st = {.roles = RP_ROLE_USER, .token_version = version_of(id)};
    return rp_session_to_json(&st);
}

/* The first question of a test waits here until the other CALLERS - 1 callers queued. */
static void hold_first(void) {
    if (atomic_exchange(&first_held, true)) return;
    int64_t until = rp_mono_ms() + 20000;
    rp_session_stats_t st;
    for (rp_session_cache_stats(cache, &st); st.waiting < CALLERS - 1 && rp_mono_ms() < until;
         rp_session_cache_stats(cache, &st))
        usleep(1000);
}

static void op_one(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    (void)ctx;
    hold_first();
    atomic_fetch_add(&singles, 1);
    rp_reply_set(rep, 200, state_of(json_string_value(json_object_get(env->body, "userId"))));
}

static void op_many(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    (void)ctx;
    hold_first();
    atomic_fetch_add(&batches, 1);
    json_t *ids = json_object_get(env->body, "userIds"), *v, *out = json_array();
    size_t i;
    json_array_foreach(ids, i, v) {
        atomic_fetch_add(&batched_ids, 1);
        json_array_append_new(out, state_of(json_string_value(v)));
    }
    rp_reply_set(rep, 200, json_pack("{s:o}", "sessions", out));
}

static const rp_route_op_t both_ops[] = {{"POST", RP_SESSION_ROUTE, op_one}, {"POST", RP_SESSIONS_ROUTE, op_many}};
static const rp_service_t auth_both = {"auth", both_ops, 2, NULL, NULL, NULL, NULL};
/* an auth worker older than the api: no RP_SESSIONS_ROUTE */
static const rp_service_t auth_older = {"auth", both_ops, 1, NULL, NULL, NULL, NULL};

static void setup(void) {
    rp_err_t err;
    atomic_store(&asked, 0);
    atomic_store(&singles, 0);
    atomic_store(&batches, 0);
    atomic_store(&batched_ids, 0);
    atomic_store(&first_held, false);
    memset(&answer, 0, sizeof answer);
    answer.roles = RP_ROLE_USER;
    answer.token_version = 3;
    t = rp_transport_inproc_new(16);
    cr_assert(rp_transport_serve(t, RP_COMP_AUTH, rp_rpc_service_handler, (void *)&auth, 2, &err), "%s", err.message);
    /* entries never expire during a test; batched, as over RabbitMQ: a lone caller asks alone */
    cache = rp_session_cache_new(t, 60000, true);
}

static void teardown(void) {
    rp_session_cache_free(cache);
    rp_transport_free(t);
}

TestSuite(session_cache, .init = setup, .fini = teardown, .timeout = 30);

static const rp_api_route_t *route_of(const char *method, const char *path) {
    const rp_api_route_t *r = NULL;
    cr_assert_eq(rp_routes_match(method, path, strlen(path), &r, NULL, NULL, 0), RP_MATCH_OK, "%s", path);
    return r;
}

/* Checks a token of version ver (roles as it says) for route; returns whether it is admitted and
 * sets *roles to the roles the workers would see. */
static bool check(const rp_api_route_t *route, int64_t ver, unsigned token_roles, unsigned *roles, rp_err_t *err) {
    rp_identity_t who = {.authenticated = true, .roles = token_roles};
    snprintf(who.id, sizeof who.id, "%s", USER);
    rp_token_claims_t claims = {.ver = ver, .exp = rp_now_ms() / 1000 + 600};
    snprintf(claims.jti, sizeof claims.jti, "jti-1");
    bool ok = rp_session_cache_check(cache, route, &who, &claims, rp_now_ms() + 5000, "test", err);
    if (roles) *roles = who.roles;
    return ok;
}

Test(session_cache, a_held_state_is_trusted_and_the_roles_are_the_accounts) {
    rp_err_t err;
    unsigned roles = 0;
    const rp_api_route_t *me = route_of("GET", "/auth/me");
    answer.roles = RP_ROLE_USER | RP_ROLE_OPERATOR;
    cr_assert(check(me, 3, RP_ROLE_USER, &roles, &err), "%s", err.message);
    cr_assert_eq(roles, RP_ROLE_USER | RP_ROLE_OPERATOR, "the account's roles, not the token's");
    for (int i = 0; i < 5; i++)
        cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err));
    cr_assert_eq(atomic_load(&asked), 1, "asked once, then held");
}

Test(session_cache, a_forgotten_account_is_asked_again_and_its_old_token_refused) {
    rp_err_t err;
    const rp_api_route_t *me = route_of("GET", "/auth/me");
    cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err));
    answer.token_version = 4; /* a password change, say */
    cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err), "held: the change is not seen yet");
    rp_session_cache_forget(cache, USER);
    cr_assert_not(check(me, 3, RP_ROLE_USER, NULL, &err));
    cr_assert_str_eq(err.code, "TOKEN_REVOKED");
    cr_assert_eq(atomic_load(&asked), 2);
}

Test(session_cache, a_token_newer_than_the_held_state_is_checked_at_once) {
    rp_err_t err;
    const rp_api_route_t *me = route_of("GET", "/auth/me");
    cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err));
    answer.token_version = 4;
    cr_assert(check(me, 4, RP_ROLE_USER, NULL, &err), "%s", err.message);
    cr_assert_eq(atomic_load(&asked), 2);
}

Test(session_cache, admin_power_is_always_read_fresh) {
    rp_err_t err;
    const rp_api_route_t *users = route_of("GET", "/auth/users");
    answer.roles = RP_ROLE_USER | RP_ROLE_ADMIN;
    cr_assert(check(users, 3, RP_ROLE_USER | RP_ROLE_ADMIN, NULL, &err));
    cr_assert(check(users, 3, RP_ROLE_USER | RP_ROLE_ADMIN, NULL, &err));
    cr_assert_eq(atomic_load(&asked), 2, "every admin-only use asks");
    answer.roles = RP_ROLE_USER; /* demoted, which also kills his tokens */
    answer.token_version = 4;
    cr_assert_not(check(users, 3, RP_ROLE_USER | RP_ROLE_ADMIN, NULL, &err), "the held ADMIN state is not used");
    cr_assert_eq(atomic_load(&asked), 3);
    cr_assert_str_eq(err.code, "FORBIDDEN");
}

Test(session_cache, a_disabled_or_unknown_account_and_a_revoked_token_are_refused) {
    rp_err_t err;
    const rp_api_route_t *me = route_of("GET", "/auth/me");
    answer.n_revoked = 1;
    snprintf(answer.revoked[0], sizeof answer.revoked[0], "jti-1");
    cr_assert_not(check(me, 3, RP_ROLE_USER, NULL, &err));
    cr_assert_str_eq(err.code, "TOKEN_REVOKED");
    rp_session_cache_forget(cache, USER);
    answer.n_revoked = 0;
    answer.disabled = true;
    cr_assert_not(check(me, 3, RP_ROLE_USER, NULL, &err));
    cr_assert_str_eq(err.code, "ACCOUNT_DISABLED");
}

Test(session_cache, no_answer_admits_nothing) {
    rp_err_t err;
    rp_transport_stop(t); /* the auth worker is gone */
    cr_assert_not(check(route_of("GET", "/auth/me"), 3, RP_ROLE_USER, NULL, &err));
    cr_assert(err.kind == RP_ERR_UNAVAILABLE || err.kind == RP_ERR_TIMEOUT || err.kind == RP_ERR_BAD_REPLY, "%d %s",
              err.kind, err.message);
}

/* In the last quarter of an entry's life one check renews it (one question to the auth worker)
 * while the others keep using it, so no crowd of questions leaves when it ends. */
Test(session_cache, one_check_renews_an_entry_ahead_of_its_end) {
    rp_err_t err;
    const rp_api_route_t *me = route_of("GET", "/auth/me");
    rp_session_cache_free(cache);
    cache = rp_session_cache_new(t, 2000, false);
    int64_t t0 = rp_mono_ms();
    cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err), "%s", err.message);
    cr_assert_eq(atomic_load(&asked), 1);
    while (rp_mono_ms() - t0 < 1900) /* up to just before the entry would end */
        cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err), "%s", err.message);
    cr_assert_eq(atomic_load(&asked), 2, "renewed once in its last quarter, not by every check");
}

/* ---- callers that miss together ---- */

typedef struct caller {
    char id[RP_OID_LEN];
    bool admitted;
    unsigned roles;
    rp_err_t err;
} caller_t;

static void *call_as(void *arg) {
    caller_t *c = arg;
    const rp_api_route_t *me = route_of("GET", "/auth/me");
    rp_identity_t who = {.authenticated = true, .roles = RP_ROLE_USER};
    snprintf(who.id, sizeof who.id, "%s", c->id);
    rp_token_claims_t claims = {.ver = version_of(c->id), .exp = rp_now_ms() / 1000 + 600};
    snprintf(claims.jti, sizeof claims.jti, "jti-%s", c->id);
    c->admitted = rp_session_cache_check(cache, me, &who, &claims, rp_now_ms() + 30000, "test", &c->err);
    c->roles = who.roles;
    return NULL;
}

/* CALLERS accounts checked at once by a cache over a stand-in serving svc; each must be
 * admitted with its own token version (so with its own account's state). */
static void check_together(const rp_service_t *svc, int slots) {
    rp_err_t err;
    rp_session_cache_free(cache);
    rp_transport_free(t);
    t = rp_transport_inproc_new(64);
    cr_assert(rp_transport_serve(t, RP_COMP_AUTH, rp_rpc_service_handler, (void *)svc, slots, &err), "%s", err.message);
    cache = rp_session_cache_new(t, 60000, true);
    caller_t callers[CALLERS];
    pthread_t threads[CALLERS];
    memset(callers, 0, sizeof callers);
    for (int i = 0; i < CALLERS; i++) {
        snprintf(callers[i].id, sizeof callers[i].id, "0123456789abcdef012345%02x", 0x10 + i);
        cr_assert_eq(pthread_create(&threads[i], NULL, call_as, &callers[i]), 0);
    }
    for (int i = 0; i < CALLERS; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < CALLERS; i++) {
        cr_assert(callers[i].admitted, "%s: %s", callers[i].id, callers[i].err.message);
        cr_assert_eq(callers[i].roles, (unsigned)RP_ROLE_USER);
    }
}

Test(session_cache, callers_that_miss_together_share_one_question) {
    check_together(&auth_both, 4);
    cr_assert_eq(atomic_load(&singles), 1, "the first caller asks alone, at once");
    cr_assert_eq(atomic_load(&batches), 1, "the fifteen that waited behind it, in one question");
    cr_assert_eq(atomic_load(&batched_ids), CALLERS - 1);
    rp_session_stats_t st;
    rp_session_cache_stats(cache, &st);
    cr_assert_eq(st.single_calls, 1u);
    cr_assert_eq(st.batch_calls, 1u);
    cr_assert_eq(st.accounts, (unsigned long long)CALLERS);
    cr_assert_eq(st.waiting, 0u);
    /* what the question brought is kept: no caller asks again */
    caller_t again = {.id = "0123456789abcdef01234517"};
    call_as(&again);
    cr_assert(again.admitted, "%s", again.err.message);
    cr_assert_eq(atomic_load(&singles) + atomic_load(&batches), 2);
}

Test(session_cache, an_older_auth_worker_is_asked_for_each_account_alone) {
    check_together(&auth_older, 4);
    cr_assert_eq(atomic_load(&batches), 0);
    cr_assert_eq(atomic_load(&singles), CALLERS, "the batch refused as an unknown route, each asked alone");
    rp_session_stats_t st;
    rp_session_cache_stats(cache, &st);
    cr_assert_eq(st.batch_calls, 1u, "the refused batch is counted");
    cr_assert_eq(st.single_calls, (unsigned long long)CALLERS);
}
