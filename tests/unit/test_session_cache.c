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

#include "hash.h"
#include "roles.h"
#include "routes.h"
#include "rpc.h"
#include "session.h"
#include "session_cache.h"
#include "timeutil.h"

#define USER "0123456789abcdef01234567"
#define SLOTS 65536 /* SESSION_CACHE_SLOTS's default */

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

/* A cache (ttl_ms, batch, keep_ms, poll_ms as rp_session_cache_new) over an in-process
 * transport of queue_capacity whose auth component svc serves on `slots` threads, in place of the
 * test's current ones. */
static void serve(const rp_service_t *svc, int queue_capacity, int slots, int ttl_ms, bool batch, int keep_ms,
                  int poll_ms) {
    rp_err_t err;
    rp_session_cache_free(cache);
    rp_transport_free(t);
    t = rp_transport_inproc_new(queue_capacity);
    cr_assert(rp_transport_serve(t, RP_COMP_AUTH, rp_rpc_service_handler, (void *)svc, slots, &err), "%s", err.message);
    cache = rp_session_cache_new(t, ttl_ms, batch, keep_ms, poll_ms, SLOTS);
}

static void setup(void) {
    atomic_store(&asked, 0);
    atomic_store(&singles, 0);
    atomic_store(&batches, 0);
    atomic_store(&batched_ids, 0);
    atomic_store(&first_held, false);
    memset(&answer, 0, sizeof answer);
    answer.roles = RP_ROLE_USER;
    answer.token_version = 3;
    cache = NULL;
    t = NULL;
    /* entries never expire during a test; batched, as over RabbitMQ: a lone caller asks alone */
    serve(&auth, 16, 2, 60000, true, 0, 0);
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
    cache = rp_session_cache_new(t, 2000, false, 0, 0, SLOTS);
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
    serve(svc, 64, slots, 60000, true, 0, 0);
    caller_t callers[CALLERS];
    pthread_t threads[CALLERS];
    memset(callers, 0, sizeof callers);
    for (int i = 0; i < CALLERS; i++) {
        snprintf(callers[i].id, sizeof callers[i].id, "0123456789abcdef012345%02x", 0x10 + i);
        cr_assert_eq(pthread_create(&threads[i], NULL, call_as, &callers[i]), 0);
        /* the others start once the first caller's question is held: started together, a second
         * caller could join the first question before it left, and never queue behind it */
        for (int64_t until = rp_mono_ms() + 20000; i == 0 && !atomic_load(&first_held) && rp_mono_ms() < until;)
            usleep(1000);
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

/* ---- the change log: a stand-in log the test writes, read by rp_session_cache_read_log ---- */

#define LOG_CAP 600
#define TTL 1000
static char log_ids[LOG_CAP][RP_OID_LEN]; /* the entry of sequence number i + 1 */
static atomic_int log_len, log_forgotten_through, log_fail_next;
static atomic_llong log_asked_after;

static void log_append(const char *id) {
    int n = atomic_load(&log_len);
    cr_assert_lt(n, LOG_CAP);
    snprintf(log_ids[n], RP_OID_LEN, "%s", id);
    atomic_store(&log_len, n + 1);
}

/* As the auth store reads it (auth_store.h): "last" is the newest number, or that of the last id
 * when more follow. */
static void op_changes(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    (void)ctx;
    json_int_t after = json_integer_value(json_object_get(env->body, "after"));
    atomic_store(&log_asked_after, after);
    if (atomic_exchange(&log_fail_next, 0)) {
        rp_reply_error(rep, 503, "STORE_ERROR", "the store is down", NULL);
        return;
    }
    int latest = atomic_load(&log_len);
    json_t *ids = json_array();
    json_int_t last = latest;
    bool more = false;
    for (json_int_t seq = after + 1; after >= 0 && seq <= latest; seq++) {
        if (json_array_size(ids) == RP_SESSION_CHANGES_MAX) {
            more = true;
            last = seq - 1;
            break;
        }
        if (seq > atomic_load(&log_forgotten_through)) json_array_append_new(ids, json_string(log_ids[seq - 1]));
    }
    rp_reply_set(rep, 200,
                 json_pack("{s:I, s:o, s:b, s:b}", "last", last, "userIds", ids, "more", more, "complete",
                           after < 0 || after >= atomic_load(&log_forgotten_through)));
}

static const rp_route_op_t log_ops[] = {{"POST", RP_SESSION_ROUTE, op_session},
                                        {"POST", RP_SESSION_CHANGES_ROUTE, op_changes}};
static const rp_service_t auth_log = {"auth", log_ops, 2, NULL, NULL, NULL, NULL};

static void log_setup(void) {
    setup();
    atomic_store(&log_len, 0);
    atomic_store(&log_forgotten_through, 0);
    atomic_store(&log_fail_next, 0);
    atomic_store(&log_asked_after, -2);
    /* no poller: each test reads the log when it means to */
    serve(&auth_log, 16, 2, TTL, false, 60000, 0);
}

TestSuite(session_log, .init = log_setup, .fini = teardown, .timeout = 30);

static void read_log(void) {
    rp_err_t err;
    bool unsupported = true;
    cr_assert(rp_session_cache_read_log(cache, rp_now_ms() + 5000, &unsupported, &err), "%s", err.message);
    cr_assert_not(unsupported);
    /* the cache's clock counts whole milliseconds, and covers only states fetched after the
     * millisecond of its first read */
    for (int64_t read = rp_mono_ms(); rp_mono_ms() == read;)
        usleep(100);
}

/* Waits until more than TTL has passed since since (monotonic ms). */
static void outlive_ttl(int64_t since) {
    while (rp_mono_ms() - since <= TTL + 20)
        usleep(10000);
}

Test(session_log, a_state_fetched_after_the_first_read_outlives_the_ttl_while_the_log_is_read) {
    rp_err_t err;
    const rp_api_route_t *me = route_of("GET", "/auth/me");
    read_log(); /* where the log stands */
    int64_t t0 = rp_mono_ms();
    cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err), "%s", err.message);
    cr_assert_eq(atomic_load(&asked), 1);
    outlive_ttl(t0);
    read_log();
    cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err), "%s", err.message);
    cr_assert_eq(atomic_load(&asked), 1, "kept past the ttl: every change since it was fetched has been read");
    rp_session_stats_t st;
    rp_session_cache_stats(cache, &st);
    cr_assert(st.log_current);
    cr_assert_eq(st.log_reads, 2u);
}

Test(session_log, a_change_in_the_log_is_forgotten_at_the_next_read) {
    rp_err_t err;
    const rp_api_route_t *me = route_of("GET", "/auth/me");
    read_log();
    cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err), "%s", err.message);
    answer.disabled = true; /* disabled through another api process */
    log_append(USER);
    cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err), "not read yet: the kept state still stands");
    read_log();
    cr_assert_not(check(me, 3, RP_ROLE_USER, NULL, &err), "the log named the account: asked again");
    cr_assert_str_eq(err.code, "ACCOUNT_DISABLED");
    cr_assert_eq(atomic_load(&asked), 2);
    cr_assert_eq(atomic_load(&log_asked_after), 0, "read from where the first read found the log");
    rp_session_stats_t st;
    rp_session_cache_stats(cache, &st);
    cr_assert_eq(st.log_forgotten, 1u);
}

Test(session_log, a_state_fetched_before_the_first_read_is_kept_only_the_ttl) {
    rp_err_t err;
    const rp_api_route_t *me = route_of("GET", "/auth/me");
    int64_t t0 = rp_mono_ms();
    cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err), "%s", err.message);
    read_log(); /* a change committed before this read would not be in what it reads */
    outlive_ttl(t0);
    read_log();
    cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err), "%s", err.message);
    cr_assert_eq(atomic_load(&asked), 2, "fetched before the log was first read: not covered by it (%d)",
                 atomic_load(&asked));
}

Test(session_log, states_fall_back_to_the_ttl_when_the_log_is_not_read) {
    rp_err_t err;
    const rp_api_route_t *me = route_of("GET", "/auth/me");
    read_log();
    int64_t t0 = rp_mono_ms();
    cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err), "%s", err.message);
    atomic_store(&log_fail_next, 1);
    bool unsupported = true;
    cr_assert_not(rp_session_cache_read_log(cache, rp_now_ms() + 5000, &unsupported, &err));
    cr_assert_not(unsupported, "a store that failed is not a worker without the log");
    outlive_ttl(t0);
    cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err), "%s", err.message);
    cr_assert_eq(atomic_load(&asked), 2, "no complete read within the ttl: the state is asked for again");
    rp_session_stats_t st;
    rp_session_cache_stats(cache, &st);
    cr_assert_not(st.log_current);
    cr_assert_eq(st.log_failures, 1u);
    /* the next read takes up where the last complete one ended */
    log_append(USER);
    read_log();
    cr_assert_eq(atomic_load(&log_asked_after), 0);
}

Test(session_log, an_incomplete_log_forgets_every_state) {
    rp_err_t err;
    const rp_api_route_t *me = route_of("GET", "/auth/me");
    read_log();
    cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err), "%s", err.message);
    /* changes this process never read were forgotten by the store: any of them may be its */
    log_append("0123456789abcdef0123ffff");
    log_append("0123456789abcdef0123fffe");
    atomic_store(&log_forgotten_through, 2);
    read_log();
    cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err), "%s", err.message);
    cr_assert_eq(atomic_load(&asked), 2);
    rp_session_stats_t st;
    rp_session_cache_stats(cache, &st);
    cr_assert_eq(st.log_gaps, 1u);
}

Test(session_log, a_long_log_is_read_to_its_end) {
    rp_err_t err;
    const rp_api_route_t *me = route_of("GET", "/auth/me");
    read_log();
    cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err), "%s", err.message);
    for (int i = 0; i < RP_SESSION_CHANGES_MAX + 40; i++) {
        char id[RP_OID_LEN];
        snprintf(id, sizeof id, "0123456789abcdef0123%04x", i);
        log_append(i == RP_SESSION_CHANGES_MAX + 30 ? USER : id);
    }
    answer.token_version = 4;
    read_log();
    cr_assert_eq(atomic_load(&log_asked_after), RP_SESSION_CHANGES_MAX, "a second page asked for");
    cr_assert_not(check(me, 3, RP_ROLE_USER, NULL, &err), "named on the second page: forgotten");
    cr_assert_str_eq(err.code, "TOKEN_REVOKED");
}

Test(session_log, an_auth_worker_without_the_log_is_told_apart) {
    rp_err_t err;
    serve(&auth, 16, 2, TTL, false, 60000, 0);
    bool unsupported = false;
    cr_assert_not(rp_session_cache_read_log(cache, rp_now_ms() + 5000, &unsupported, &err));
    cr_assert(unsupported, "%s", err.message);
    int64_t t0 = rp_mono_ms();
    cr_assert(check(route_of("GET", "/auth/me"), 3, RP_ROLE_USER, NULL, &err), "%s", err.message);
    outlive_ttl(t0);
    cr_assert(check(route_of("GET", "/auth/me"), 3, RP_ROLE_USER, NULL, &err), "%s", err.message);
    cr_assert_eq(atomic_load(&asked), 2, "kept the ttl only");
}

Test(session_log, the_poller_reads_the_log_on_its_own) {
    rp_err_t err;
    const rp_api_route_t *me = route_of("GET", "/auth/me");
    rp_session_cache_free(cache);
    cache = rp_session_cache_new(t, TTL, false, 60000, 20, SLOTS);
    rp_session_stats_t st;
    int64_t until = rp_mono_ms() + 20000;
    for (rp_session_cache_stats(cache, &st); !st.log_current && rp_mono_ms() < until;
         rp_session_cache_stats(cache, &st))
        usleep(5000);
    cr_assert(st.log_current, "the first read never came");
    cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err), "%s", err.message);
    answer.disabled = true;
    log_append(USER);
    for (rp_session_cache_stats(cache, &st); st.log_forgotten < 1 && rp_mono_ms() < until;
         rp_session_cache_stats(cache, &st))
        usleep(5000);
    cr_assert_eq(st.log_forgotten, 1u);
    cr_assert_not(check(me, 3, RP_ROLE_USER, NULL, &err));
    cr_assert_str_eq(err.code, "ACCOUNT_DISABLED");
}

/* ---- an answer asked before a change, arriving after another account took the slot ---- */

static atomic_bool holding, held_arrived;

/* As op_session, but the question for USER waits while holding, answering the state as it was
 * when asked. */
static void op_holding(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    (void)ctx;
    atomic_fetch_add(&asked, 1);
    rp_session_state_t st = answer;
    bool user = strcmp(json_string_value(json_object_get(env->body, "userId")), USER) == 0;
    if (!user) st.disabled = false; /* only USER's account changes here */
    if (user && atomic_load(&holding)) {
        atomic_store(&held_arrived, true);
        while (atomic_load(&holding))
            usleep(1000);
    }
    rp_reply_set(rep, 200, rp_session_to_json(&st));
}

static const rp_route_op_t holding_ops[] = {{"POST", RP_SESSION_ROUTE, op_holding}};
static const rp_service_t auth_holding = {"auth", holding_ops, 1, NULL, NULL, NULL, NULL};

static bool check_as(const char *id, rp_err_t *err) {
    rp_identity_t who = {.authenticated = true, .roles = RP_ROLE_USER};
    snprintf(who.id, sizeof who.id, "%s", id);
    rp_token_claims_t claims = {.ver = 3, .exp = rp_now_ms() / 1000 + 600};
    snprintf(claims.jti, sizeof claims.jti, "jti-1");
    return rp_session_cache_check(cache, route_of("GET", "/auth/me"), &who, &claims, rp_now_ms() + 20000, "test", err);
}

static void *check_user(void *arg) {
    rp_err_t err;
    *(bool *)arg = check_as(USER, &err);
    return NULL;
}

/* Fills others[0..n-1] with accounts whose states go into USER's set of slots. */
static void accounts_sharing_users_set(char (*others)[RP_OID_LEN], int n) {
    const uint64_t sets = SLOTS / RP_SESSION_CACHE_WAYS, want = rp_hash_str(USER) % sets;
    int found = 0;
    for (uint32_t i = 0; found < n; i++) {
        char id[RP_OID_LEN];
        snprintf(id, sizeof id, "fedcba9876543210%08x", i);
        if (rp_hash_str(id) % sets == want) memcpy(others[found++], id, RP_OID_LEN);
    }
}

/* USER's account changes while a question for it is on its way; then other accounts take every
 * slot of its set, the one that remembered the change last: by their own states (answers kept)
 * or by changes of their own (forgotten). The answer from before the change must not be kept
 * when it arrives. */
static void slot_taken_before_the_answer(bool by_a_change) {
    rp_err_t err;
    serve(&auth_holding, 16, 4, 60000, false, 0, 0); /* kept a minute: a stale state would show */
    char others[RP_SESSION_CACHE_WAYS][RP_OID_LEN];
    accounts_sharing_users_set(others, RP_SESSION_CACHE_WAYS);
    atomic_store(&holding, true);
    atomic_store(&held_arrived, false);
    bool first = false;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, check_user, &first), 0);
    int64_t until = rp_mono_ms() + 20000;
    while (!atomic_load(&held_arrived) && rp_mono_ms() < until)
        usleep(1000);
    cr_assert(atomic_load(&held_arrived));
    /* the account is disabled while that question is on its way; then the other accounts take
     * the set's slots, the one that remembered the change last (it was never fetched) */
    answer.disabled = true;
    rp_session_cache_forget(cache, USER);
    for (int k = 0; k < RP_SESSION_CACHE_WAYS; k++) {
        if (by_a_change)
            rp_session_cache_forget(cache, others[k]);
        else
            cr_assert(check_as(others[k], &err), "%s", err.message);
    }
    atomic_store(&holding, false);
    pthread_join(th, NULL);
    cr_assert(first, "that request was checked against the state as asked");
    cr_assert_not(check_as(USER, &err), "the answer from before the change was kept");
    cr_assert_str_eq(err.code, "ACCOUNT_DISABLED");
}

Test(session_cache, an_answer_from_before_a_change_is_not_kept_after_another_accounts_state_took_its_slot) {
    slot_taken_before_the_answer(false);
}

Test(session_cache, an_answer_from_before_a_change_is_not_kept_after_another_accounts_change_took_its_slot) {
    slot_taken_before_the_answer(true);
}

/* Checks the set's worth of accounts ids[0..RP_SESSION_CACHE_WAYS-1], each fetched in a
 * millisecond of its own (ids[0] the oldest), then `rounds` times again: each asked once. */
static void fill_a_set(char (*ids)[RP_OID_LEN], int rounds, const char *held_msg) {
    rp_err_t err;
    for (int k = 0; k < RP_SESSION_CACHE_WAYS; k++) {
        cr_assert(check_as(ids[k], &err), "%s", err.message);
        usleep(2000); /* fetched in distinct milliseconds: ids[0] is the oldest */
    }
    for (int round = 0; round < rounds; round++)
        for (int k = 0; k < RP_SESSION_CACHE_WAYS; k++)
            cr_assert(check_as(ids[k], &err), "%s", err.message);
    cr_assert_eq(atomic_load(&asked), RP_SESSION_CACHE_WAYS, "%s", held_msg);
}

/* As many accounts as a set has slots are all kept; one more takes the slot of the state fetched
 * longest ago, and only that account is asked again. */
Test(session_cache, accounts_sharing_a_set_are_all_kept_until_one_more_takes_the_oldest_slot) {
    rp_err_t err;
    char ids[RP_SESSION_CACHE_WAYS + 1][RP_OID_LEN];
    accounts_sharing_users_set(ids, RP_SESSION_CACHE_WAYS + 1);
    fill_a_set(ids, 3, "each account of the set asked once");
    cr_assert(check_as(ids[RP_SESSION_CACHE_WAYS], &err), "%s", err.message);
    for (int k = 1; k <= RP_SESSION_CACHE_WAYS; k++)
        cr_assert(check_as(ids[k], &err), "%s", err.message);
    cr_assert_eq(atomic_load(&asked), RP_SESSION_CACHE_WAYS + 1, "the newcomer took the oldest state's slot");
    cr_assert(check_as(ids[0], &err), "%s", err.message);
    cr_assert_eq(atomic_load(&asked), RP_SESSION_CACHE_WAYS + 2, "the oldest state was the one given up");
}

/* SESSION_CACHE_SLOTS sizes the cache: one set's worth holds that many accounts, whatever their
 * hashes, and one more takes the slot of the state fetched longest ago. */
Test(session_cache, a_cache_of_one_set_holds_as_many_accounts_as_it_has_slots) {
    rp_err_t err;
    rp_session_cache_free(cache);
    cache = rp_session_cache_new(t, 60000, false, 0, 0, RP_SESSION_CACHE_WAYS);
    char ids[RP_SESSION_CACHE_WAYS + 1][RP_OID_LEN];
    for (int k = 0; k <= RP_SESSION_CACHE_WAYS; k++)
        snprintf(ids[k], sizeof ids[k], "abcdefabcdefabcdef%06x", (unsigned)k);
    fill_a_set(ids, 1, "every account held");
    cr_assert(check_as(ids[RP_SESSION_CACHE_WAYS], &err), "%s", err.message);
    cr_assert(check_as(ids[0], &err), "%s", err.message);
    cr_assert_eq(atomic_load(&asked), RP_SESSION_CACHE_WAYS + 2, "one more took the oldest state's slot");
}
