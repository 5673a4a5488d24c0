/* envelope_fixture.h - shared by the tests that build RPC envelopes by hand (test_envelope.c,
 * test_transport.c, test_auth.c, test_token.c): a call of a route and the caller making it.
 * Static functions; include once per test file. */
#ifndef RP_TESTS_ENVELOPE_FIXTURE_H
#define RP_TESTS_ENVELOPE_FIXTURE_H

#include <stdio.h>

#include "envelope.h"

/* An authenticated caller with the given id, username and rp_role_t bits. */
static inline rp_identity_t signed_in(const char *id, const char *username, unsigned roles) {
    rp_identity_t who = {.authenticated = true, .roles = roles};
    snprintf(who.id, sizeof who.id, "%s", id);
    snprintf(who.username, sizeof who.username, "%s", username);
    return who;
}

/* Initialises env as a call of method on route by caller (copied; NULL = anonymous), with no
 * parameters, body or deadline yet. Release it with rp_envelope_clear. */
static inline void envelope_call(rp_envelope_t *env, const char *method, const char *route,
                                 const rp_identity_t *caller) {
    rp_envelope_init(env);
    snprintf(env->method, sizeof env->method, "%s", method);
    snprintf(env->route, sizeof env->route, "%s", route);
    if (caller) env->caller = *caller;
}

#endif
