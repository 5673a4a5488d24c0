/* token_cache.h - access tokens this api process has verified, kept until they expire, so that a
 * client's next request with the same token costs a keyed hash instead of a JSON parse and an
 * HMAC (libjwt's verification was a fifth of GET /auth/me's CPU).
 *
 * An entry is found by a keyed BLAKE2b digest of the whole token (the key is random per
 * process, so nobody can aim a token at another's entry), holds what rp_token_verify said of it,
 * and is used only while the token's exp is ahead of the clock. Only tokens that verified are
 * kept: a rejected token is verified again every time. What a token says is fixed by its
 * signature, so nothing needs invalidating; whether its account may still use it is the session
 * check's question (session_cache.h), asked on every request as before. Fixed size: a token's
 * digest picks a set of RP_TOKEN_CACHE_WAYS slots, and a token put in a full set takes the slot
 * of the one that expires first (reading as 20,000 players, one slot per hash verified 41-44 % of
 * the tokens, sets of 8 in the same memory 3-4 %). One lock per stripe of sets; thread-safe. */
#ifndef RP_API_TOKEN_CACHE_H
#define RP_API_TOKEN_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "err.h"
#include "token.h"

typedef struct rp_token_cache rp_token_cache_t;

#define RP_TOKEN_CACHE_WAYS 8 /* slots a token may take */

/* A cache of `slots` verified tokens (0 keeps none; fewer than RP_TOKEN_CACHE_WAYS make one set)
 * for tokens signed with secret (copied). */
rp_token_cache_t *rp_token_cache_new(const unsigned char *secret, size_t secret_len, size_t slots);
void rp_token_cache_free(rp_token_cache_t *c);

/* rp_token_verify through the cache: the same answers for the same token and clock, from the
 * cache when this token verified before and its exp is still after now_s. */
bool rp_token_cache_verify(rp_token_cache_t *c, const char *token, size_t len, int64_t now_s, rp_identity_t *who,
                           rp_token_claims_t *claims, rp_err_t *err);

/* How many answers came from the cache (for tests and metrics). */
uint64_t rp_token_cache_hits(rp_token_cache_t *c);

/* What the cache answered since it was made, for /metrics: from a kept token, and by verifying
 * one (its signature checked and its claims parsed, whether it passed or not). */
typedef struct rp_token_stats {
    unsigned long long kept, verified;
} rp_token_stats_t;
void rp_token_cache_stats(rp_token_cache_t *c, rp_token_stats_t *out);

#endif
