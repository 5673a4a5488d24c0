/* Tests lib/token.c: HS256 issue/verify and every forgery the JWT guard must refuse. */
#include <criterion/criterion.h>
#include <jwt.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "envelope_fixture.h"
#include "roles.h"
#include "token.h"

static const unsigned char secret[] = "0123456789abcdef0123456789abcdef-test-secret";
#define SLEN (sizeof secret - 1)
static const int64_t now = 1800000000;

static rp_identity_t alice(void) {
    return signed_in("65f0a1b2c3d4e5f601234567", "alice", RP_ROLE_USER | RP_ROLE_OPERATOR);
}

static void setup(void) {
    cr_assert(sodium_init() >= 0);
}
TestSuite(token, .init = setup);

/* The claims of a forged token: sub, username, the roles as a JSON object, iat (= now) and exp
 * each present only when asked for. */
typedef struct claims {
    const char *sub, *username, *roles_json;
    bool with_iat, with_exp;
    int64_t exp;
} claims_t;

/* Builds a token with libjwt directly, so the test controls the algorithm and every claim.
 * Returns a new string; free() it. */
static char *forge_claims(jwt_alg_t alg, const unsigned char *key, size_t klen, const claims_t *c) {
    jwt_t *j = NULL;
    cr_assert_eq(jwt_new(&j), 0);
    jwt_add_grant(j, "sub", c->sub);
    jwt_add_grant(j, "username", c->username);
    jwt_add_grants_json(j, c->roles_json);
    if (c->with_iat) jwt_add_grant_int(j, "iat", (long)now);
    if (c->with_exp) jwt_add_grant_int(j, "exp", (long)c->exp);
    cr_assert_eq(jwt_set_alg(j, alg, alg == JWT_ALG_NONE ? NULL : key, alg == JWT_ALG_NONE ? 0 : (int)klen), 0);
    char *s = jwt_encode_str(j);
    jwt_free(j);
    cr_assert_not_null(s);
    return s;
}

/* Mallory's token claiming ADMIN, issued now; free() it. */
static char *forge(jwt_alg_t alg, const unsigned char *key, size_t klen, bool with_exp, int64_t exp) {
    claims_t c = {"65f0a1b2c3d4e5f601234567", "mallory", "{\"roles\":[\"ADMIN\"]}", true, with_exp, exp};
    return forge_claims(alg, key, klen, &c);
}

static void expect_reject(const char *tok, const char *code) {
    rp_identity_t who;
    rp_err_t err;
    cr_assert_not(rp_token_verify(secret, SLEN, tok, strlen(tok), now, &who, NULL, &err), "accepted %s", tok);
    cr_assert_eq(err.kind, RP_ERR_UNAUTHENTICATED);
    cr_assert_str_eq(err.code, code);
    cr_assert_not(who.authenticated);
}

Test(token, round_trip) {
    rp_identity_t in = alice(), out;
    rp_err_t err;
    char *tok = rp_token_issue(secret, SLEN, &in, 0, now, 900, &err);
    cr_assert_not_null(tok);
    cr_assert(rp_token_verify(secret, SLEN, tok, strlen(tok), now + 10, &out, NULL, &err), "%s", err.message);
    cr_assert(out.authenticated);
    cr_assert_str_eq(out.id, in.id);
    cr_assert_str_eq(out.username, "alice");
    cr_assert_eq(out.roles, RP_ROLE_USER | RP_ROLE_OPERATOR);
    free(tok);
}

/* The account's token version rides in claim ver, all 64 bits of it, with the token's own id and
 * expiry: what the gateway checks against the account's current state. */
Test(token, version_jti_and_expiry_come_back) {
    rp_identity_t in = alice(), out;
    rp_token_claims_t c;
    rp_err_t err;
    int64_t big = (int64_t)1 << 40;
    char *tok = rp_token_issue(secret, SLEN, &in, big, now, 900, &err);
    cr_assert_not_null(tok);
    cr_assert(rp_token_verify(secret, SLEN, tok, strlen(tok), now, &out, &c, &err), "%s", err.message);
    cr_assert_eq(c.ver, big);
    cr_assert_eq(c.exp, now + 900);
    cr_assert_eq(strlen(c.jti), 32u);
    char *again = rp_token_issue(secret, SLEN, &in, big, now, 900, &err);
    rp_token_claims_t c2;
    cr_assert(rp_token_verify(secret, SLEN, again, strlen(again), now, &out, &c2, &err));
    cr_assert_str_neq(c.jti, c2.jti, "every token has an id of its own");
    free(again);
    free(tok);
}

/* Correctly signed tokens whose ver or jti is missing or not what we issue. */
Test(token, version_and_jti_are_required) {
    static const char *const extras[] = {
        "{\"roles\":[\"USER\"],\"jti\":\"abc\"}",                                         /* no ver */
        "{\"roles\":[\"USER\"],\"jti\":\"abc\",\"ver\":\"0\"}",                           /* a string */
        "{\"roles\":[\"USER\"],\"jti\":\"abc\",\"ver\":-1}",                              /* negative */
        "{\"roles\":[\"USER\"],\"jti\":\"abc\",\"ver\":1.5}",                             /* not an integer */
        "{\"roles\":[\"USER\"],\"ver\":0}",                                               /* no jti */
        "{\"roles\":[\"USER\"],\"ver\":0,\"jti\":\"\"}",                                  /* empty jti */
        "{\"roles\":[\"USER\"],\"ver\":0,\"jti\":\"0123456789abcdef0123456789abcdef0\"}", /* 33 */
    };
    for (size_t i = 0; i < sizeof extras / sizeof extras[0]; i++) {
        claims_t c = {"65f0a1b2c3d4e5f601234567", "mallory", extras[i], true, true, now + 600};
        char *tok = forge_claims(JWT_ALG_HS256, secret, SLEN, &c);
        expect_reject(tok, "INVALID_TOKEN");
        free(tok);
    }
    claims_t ok = {"65f0a1b2c3d4e5f601234567",
                   "mallory",
                   "{\"roles\":[\"USER\"],\"jti\":\"abc\",\"ver\":3}",
                   true,
                   true,
                   now + 600};
    char *tok = forge_claims(JWT_ALG_HS256, secret, SLEN, &ok);
    rp_identity_t who;
    rp_token_claims_t c;
    rp_err_t err;
    cr_assert(rp_token_verify(secret, SLEN, tok, strlen(tok), now, &who, &c, &err), "%s", err.message);
    cr_assert_eq(c.ver, 3);
    cr_assert_str_eq(c.jti, "abc");
    free(tok);
}

Test(token, issue_refuses_short_secret) {
    rp_identity_t in = alice();
    rp_err_t err;
    cr_assert_null(rp_token_issue((const unsigned char *)"short", 5, &in, 0, now, 900, &err));
}

Test(token, expired) {
    rp_identity_t in = alice();
    rp_err_t err;
    char *tok = rp_token_issue(secret, SLEN, &in, 0, now - 1000, 900, &err);
    expect_reject(tok, "TOKEN_EXPIRED");
    free(tok);
}

Test(token, expiry_is_exclusive) {
    rp_identity_t in = alice();
    rp_err_t err;
    char *tok = rp_token_issue(secret, SLEN, &in, 0, now - 900, 900, &err); /* exp == now */
    expect_reject(tok, "TOKEN_EXPIRED");
    free(tok);
}

Test(token, wrong_secret) {
    static const unsigned char other[] = "another-secret-of-sufficient-length-000";
    char *tok = forge(JWT_ALG_HS256, other, sizeof other - 1, true, now + 100);
    expect_reject(tok, "INVALID_TOKEN");
    free(tok);
}

Test(token, alg_none) {
    char *tok = forge(JWT_ALG_NONE, NULL, 0, true, now + 100);
    expect_reject(tok, "INVALID_TOKEN");
    free(tok);
}

Test(token, alg_none_with_copied_signature) {
    char *good = forge(JWT_ALG_HS256, secret, SLEN, true, now + 100);
    char *none = forge(JWT_ALG_NONE, NULL, 0, true, now + 100);
    char buf[2048];
    const char *sig = strrchr(good, '.');
    snprintf(buf, sizeof buf, "%.*s%s", (int)(strrchr(none, '.') - none), none, sig);
    expect_reject(buf, "INVALID_TOKEN");
    free(good);
    free(none);
}

Test(token, hs384_with_same_secret) {
    char *tok = forge(JWT_ALG_HS384, secret, SLEN, true, now + 100);
    expect_reject(tok, "INVALID_TOKEN");
    free(tok);
}

Test(token, hs512_with_same_secret) {
    char *tok = forge(JWT_ALG_HS512, secret, SLEN, true, now + 100);
    expect_reject(tok, "INVALID_TOKEN");
    free(tok);
}

Test(token, missing_exp) {
    char *tok = forge(JWT_ALG_HS256, secret, SLEN, false, 0);
    expect_reject(tok, "INVALID_TOKEN");
    free(tok);
}

Test(token, tampered_payload) {
    rp_identity_t in = alice();
    rp_err_t err;
    char *tok = rp_token_issue(secret, SLEN, &in, 0, now, 900, &err);
    char *dot = strchr(tok, '.');
    dot[5] = dot[5] == 'A' ? 'B' : 'A';
    expect_reject(tok, "INVALID_TOKEN");
    free(tok);
}

Test(token, garbage_and_bounds) {
    expect_reject("", "INVALID_TOKEN");
    expect_reject("abc", "INVALID_TOKEN");
    expect_reject("a.b.c", "INVALID_TOKEN");
    expect_reject("....", "INVALID_TOKEN");
    char *big = malloc(RP_TOKEN_MAX_LEN + 2);
    memset(big, 'a', RP_TOKEN_MAX_LEN + 1);
    big[RP_TOKEN_MAX_LEN + 1] = '\0';
    expect_reject(big, "INVALID_TOKEN");
    free(big);
}

Test(token, embedded_nul_rejected) {
    rp_identity_t who;
    rp_err_t err;
    cr_assert_not(rp_token_verify(secret, SLEN, "ab\0cd", 5, now, &who, NULL, &err));
}

Test(token, unknown_role_rejected) {
    claims_t c = {"65f0a1b2c3d4e5f601234567", "x", "{\"roles\":[\"ROOT\"]}", false, true, now + 100};
    char *tok = forge_claims(JWT_ALG_HS256, secret, SLEN, &c);
    expect_reject(tok, "INVALID_TOKEN");
    free(tok);
}

Test(token, sub_must_be_object_id) {
    claims_t c = {"not-an-id", "x", "{\"roles\":[\"USER\"]}", false, true, now + 100};
    char *tok = forge_claims(JWT_ALG_HS256, secret, SLEN, &c);
    expect_reject(tok, "INVALID_TOKEN");
    free(tok);
}

Test(token, verify_needs_a_real_secret) {
    rp_identity_t in = alice(), out;
    rp_err_t err;
    char *tok = rp_token_issue(secret, SLEN, &in, 0, now, 900, &err);
    cr_assert_not(rp_token_verify(NULL, 0, tok, strlen(tok), now, &out, NULL, &err));
    cr_assert_not(rp_token_verify(secret, 8, tok, strlen(tok), now, &out, NULL, &err));
    free(tok);
}
