/* Tests api/token_cache.c: a token verified once answers from the cache, the same as
 * rp_token_verify would, until its exp; rejected, expired and foreign tokens are never kept or
 * served; tokens that share a slot never answer for each other; a set keeps as many tokens as it
 * has slots. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "envelope_fixture.h"
#include "roles.h"
#include "token_cache.h"

static const unsigned char secret[] = "0123456789abcdef0123456789abcdef-test-secret";
#define SLEN (sizeof secret - 1)
static const int64_t now = 1800000000;

static void setup(void) {
    cr_assert(sodium_init() >= 0);
}
TestSuite(token_cache, .init = setup);

static char *issue(const char *id, const char *name, unsigned roles, int64_t ver, int64_t ttl_s) {
    rp_err_t err;
    rp_identity_t who = signed_in(id, name, roles);
    char *t = rp_token_issue(secret, SLEN, &who, ver, now, ttl_s, &err);
    cr_assert_not_null(t, "%s", err.message);
    return t;
}

static bool verify(rp_token_cache_t *c, const char *t, int64_t at, rp_identity_t *who, rp_token_claims_t *cl,
                   rp_err_t *err) {
    memset(who, 0, sizeof *who);
    return rp_token_cache_verify(c, t, strlen(t), at, who, cl, err);
}

Test(token_cache, a_verified_token_answers_from_the_cache_as_verification_would_until_it_expires) {
    rp_token_cache_t *c = rp_token_cache_new(secret, SLEN, 64);
    char *t = issue("65f0a1b2c3d4e5f601234567", "alice", RP_ROLE_USER | RP_ROLE_OPERATOR, 7, 900);
    rp_identity_t direct, first, again;
    rp_token_claims_t dc, c1, c2;
    rp_err_t err;
    cr_assert(rp_token_verify(secret, SLEN, t, strlen(t), now + 1, &direct, &dc, &err), "%s", err.message);
    cr_assert(verify(c, t, now + 1, &first, &c1, &err), "%s", err.message);
    cr_assert_eq(rp_token_cache_hits(c), 0);
    cr_assert(verify(c, t, now + 2, &again, &c2, &err), "%s", err.message);
    cr_assert_eq(rp_token_cache_hits(c), 1, "the second verification came from the cache");
    cr_assert_eq(memcmp(&first, &direct, sizeof direct), 0);
    cr_assert_eq(memcmp(&again, &direct, sizeof direct), 0);
    cr_assert_eq(c2.ver, 7);
    cr_assert_eq(c2.exp, dc.exp);
    cr_assert_str_eq(c2.jti, dc.jti);
    cr_assert_not(verify(c, t, now + 900, &again, &c2, &err), "at its exp the token is refused, cached or not");
    cr_assert_str_eq(err.code, "TOKEN_EXPIRED");
    cr_assert_eq(rp_token_cache_hits(c), 1);
    free(t);
    rp_token_cache_free(c);
}

Test(token_cache, rejected_and_foreign_tokens_are_refused_every_time) {
    rp_token_cache_t *c = rp_token_cache_new(secret, SLEN, 64);
    char *t = issue("65f0a1b2c3d4e5f601234567", "alice", RP_ROLE_USER, 1, 900);
    rp_identity_t who;
    rp_token_claims_t cl;
    rp_err_t err;
    cr_assert(verify(c, t, now, &who, &cl, &err), "%s", err.message);
    char *forged = strdup(t);
    size_t n = strlen(forged);
    forged[n - 2] = forged[n - 2] == 'A' ? 'B' : 'A'; /* the signature changed */
    for (int i = 0; i < 3; i++) {
        cr_assert_not(verify(c, forged, now, &who, &cl, &err), "a bad signature, try %d", i);
        cr_assert_str_eq(err.code, "INVALID_TOKEN");
    }
    rp_token_cache_t *other = rp_token_cache_new((const unsigned char *)"another-secret-of-at-least-32-bytes!", 36, 64);
    cr_assert_not(verify(other, t, now, &who, &cl, &err), "a token signed with another secret");
    cr_assert_not(verify(other, t, now, &who, &cl, &err));
    cr_assert_eq(rp_token_cache_hits(other), 0);
    cr_assert_not(verify(c, "short", now, &who, &cl, &err));
    cr_assert_eq(rp_token_cache_hits(c), 0, "nothing answered from the cache but verified tokens");
    rp_token_stats_t st;
    rp_token_cache_stats(c, &st);
    cr_assert_eq(st.verified, 5, "every refused token counted as verified: the good one, three forged, one short");
    free(forged);
    free(t);
    rp_token_cache_free(other);
    rp_token_cache_free(c);
}

Test(token_cache, tokens_sharing_a_slot_never_answer_for_each_other) {
    rp_token_cache_t *c = rp_token_cache_new(secret, SLEN, 1); /* every token in one slot */
    char *a = issue("65f0a1b2c3d4e5f601234567", "alice", RP_ROLE_USER, 1, 900);
    char *b = issue("65f0a1b2c3d4e5f601234568", "bob", RP_ROLE_ADMIN, 2, 900);
    rp_identity_t who;
    rp_token_claims_t cl;
    rp_err_t err;
    for (int i = 0; i < 3; i++) {
        cr_assert(verify(c, a, now, &who, &cl, &err), "%s", err.message);
        cr_assert_str_eq(who.username, "alice");
        cr_assert_eq(who.roles, (unsigned)RP_ROLE_USER);
        cr_assert(verify(c, b, now, &who, &cl, &err), "%s", err.message);
        cr_assert_str_eq(who.username, "bob");
        cr_assert_eq(cl.ver, 2);
    }
    rp_token_cache_t *none = rp_token_cache_new(secret, SLEN, 0);
    cr_assert(verify(none, a, now, &who, &cl, &err));
    cr_assert(verify(none, a, now, &who, &cl, &err));
    cr_assert_eq(rp_token_cache_hits(none), 0, "0 slots keep nothing");
    free(a);
    free(b);
    rp_token_cache_free(none);
    rp_token_cache_free(c);
}

typedef struct user {
    rp_token_cache_t *c;
    char *token;
    char name[16];
} user_t;

static void *verify_often(void *p) {
    user_t *u = p;
    for (int i = 0; i < 2000; i++) {
        rp_identity_t who;
        rp_token_claims_t cl;
        rp_err_t err;
        cr_assert(verify(u->c, u->token, now, &who, &cl, &err), "%s", err.message);
        cr_assert_str_eq(who.username, u->name);
    }
    return NULL;
}

/* Eight threads, eight tokens, sixteen slots: each always gets its own identity. */
Test(token_cache, concurrent_callers_each_get_their_own_answer) {
    rp_token_cache_t *c = rp_token_cache_new(secret, SLEN, 16);
    user_t users[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        char id[RP_OID_LEN];
        snprintf(id, sizeof id, "65f0a1b2c3d4e5f60123456%c", (char)('0' + i));
        snprintf(users[i].name, sizeof users[i].name, "user%c", (char)('0' + i));
        users[i].c = c;
        users[i].token = issue(id, users[i].name, RP_ROLE_USER, i, 900);
    }
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, verify_often, &users[i]);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    cr_assert_gt(rp_token_cache_hits(c), 0);
    for (int i = 0; i < 8; i++)
        free(users[i].token);
    rp_token_cache_free(c);
}

/* Six tokens taking turns in one slot: each replaces the last and never answers for another; one
 * asked for twice in a row is answered from the slot. */
Test(token_cache, tokens_taking_turns_in_one_slot_each_get_their_own_answer) {
    rp_token_cache_t *c = rp_token_cache_new(secret, SLEN, 1);
    char *tokens[6];
    for (int i = 0; i < 6; i++) {
        char id[RP_OID_LEN], name[8];
        snprintf(id, sizeof id, "65f0a1b2c3d4e5f60123457%c", (char)('0' + i));
        snprintf(name, sizeof name, "u%c", (char)('0' + i));
        tokens[i] = issue(id, name, RP_ROLE_USER, i, 900);
    }
    rp_identity_t who;
    rp_token_claims_t cl;
    rp_err_t err;
    for (int round = 0; round < 5; round++)
        for (int i = 0; i < 6; i++) {
            int k = (i * (round + 1)) % 6;
            cr_assert(verify(c, tokens[k], now, &who, &cl, &err), "%s", err.message);
            cr_assert_eq(cl.ver, k);
            cr_assert_eq(who.username[1], (char)('0' + k));
        }
    uint64_t before = rp_token_cache_hits(c);
    cr_assert(verify(c, tokens[5], now, &who, &cl, &err));
    cr_assert(verify(c, tokens[5], now, &who, &cl, &err));
    cr_assert_str_eq(who.username, "u5");
    cr_assert_eq(rp_token_cache_hits(c), before + 1);
    for (int i = 0; i < 6; i++)
        free(tokens[i]);
    rp_token_cache_free(c);
}

/* One set: as many tokens as it has slots are all kept; one more takes the slot of the token that
 * expires first, and only that token is verified again. */
Test(token_cache, tokens_sharing_a_set_are_all_kept_until_one_more_takes_the_first_to_expire) {
    rp_token_cache_t *c = rp_token_cache_new(secret, SLEN, RP_TOKEN_CACHE_WAYS);
    char *tokens[RP_TOKEN_CACHE_WAYS + 1];
    for (int i = 0; i <= RP_TOKEN_CACHE_WAYS; i++) {
        char id[RP_OID_LEN], name[8];
        snprintf(id, sizeof id, "65f0a1b2c3d4e5f60123458%c", (char)('0' + i));
        snprintf(name, sizeof name, "u%c", (char)('0' + i));
        tokens[i] = issue(id, name, RP_ROLE_USER, i, i == 1 ? 600 : 900); /* tokens[1] expires first */
    }
    rp_identity_t who;
    rp_token_claims_t cl;
    rp_err_t err;
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < RP_TOKEN_CACHE_WAYS; i++)
            cr_assert(verify(c, tokens[i], now, &who, &cl, &err), "%s", err.message);
    cr_assert_eq(rp_token_cache_hits(c), RP_TOKEN_CACHE_WAYS, "every token of the set kept");
    cr_assert(verify(c, tokens[RP_TOKEN_CACHE_WAYS], now, &who, &cl, &err), "%s", err.message);
    cr_assert_eq(rp_token_cache_hits(c), RP_TOKEN_CACHE_WAYS);
    for (int i = 0; i <= RP_TOKEN_CACHE_WAYS; i++) {
        if (i == 1) continue;
        cr_assert(verify(c, tokens[i], now, &who, &cl, &err), "%s", err.message);
        cr_assert_eq(cl.ver, i);
    }
    cr_assert_eq(rp_token_cache_hits(c), 2 * RP_TOKEN_CACHE_WAYS, "the newcomer kept, the others still held");
    cr_assert(verify(c, tokens[1], now, &who, &cl, &err), "%s", err.message);
    cr_assert_str_eq(who.username, "u1");
    cr_assert_eq(rp_token_cache_hits(c), 2 * RP_TOKEN_CACHE_WAYS, "the token that expired first was given up");
    rp_token_stats_t st;
    rp_token_cache_stats(c, &st);
    cr_assert_eq(st.kept, 2 * RP_TOKEN_CACHE_WAYS);
    cr_assert_eq(st.verified, RP_TOKEN_CACHE_WAYS + 2, "each token once, the newcomer, and the one given up again");
    for (int i = 0; i <= RP_TOKEN_CACHE_WAYS; i++)
        free(tokens[i]);
    rp_token_cache_free(c);
}
