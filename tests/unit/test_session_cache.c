/* Tests api/session_cache.c: when the gateway trusts what it holds of an account and when it
 * asks the auth worker again, against a stand-in auth worker on a real in-process transport
 * that counts the questions and answers a state the test sets. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <string.h>

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

static void setup(void) {
    rp_err_t err;
    atomic_store(&asked, 0);
    memset(&answer, 0, sizeof answer);
    answer.roles = RP_ROLE_USER;
    answer.token_version = 3;
    t = rp_transport_inproc_new(16);
    cr_assert(rp_transport_serve(t, RP_COMP_AUTH, rp_rpc_service_handler, (void *)&auth, 2, &err), "%s", err.message);
    cache = rp_session_cache_new(t, 60000); /* entries never expire during a test */
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
    cache = rp_session_cache_new(t, 2000);
    int64_t t0 = rp_mono_ms();
    cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err), "%s", err.message);
    cr_assert_eq(atomic_load(&asked), 1);
    while (rp_mono_ms() - t0 < 1900) /* up to just before the entry would end */
        cr_assert(check(me, 3, RP_ROLE_USER, NULL, &err), "%s", err.message);
    cr_assert_eq(atomic_load(&asked), 2, "renewed once in its last quarter, not by every check");
}
