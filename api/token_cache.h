/* token_cache.h - access tokens this api process has verified, kept until they expire, so that a
 * client's next request with the same token costs a keyed hash instead of a JSON parse and an
 * HMAC (libjwt's verification was a fifth of GET /auth/me's CPU).
 *
 * An entry is found by a keyed BLAKE2b digest of the whole token (the key is random per
 * process, so nobody can aim a token at another's entry), holds what rp_token_verify said of it,
 * and is used only while the token's exp is ahead of the clock. Only tokens that verified are
 * kept: a rejected token is verified again every time. What a token says is fixed by its
 * signature, so nothing needs invalidating; whether its account may still use it is the session
 * check's question (session_cache.h), asked on every request as before. Fixed size (slots are
 * overwritten), one lock per slot stripe; thread-safe. */
#ifndef RP_API_TOKEN_CACHE_H
#define RP_API_TOKEN_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "err.h"
#include "token.h"

typedef struct rp_token_cache rp_token_cache_t;

/* A cache of `slots` verified tokens (0 keeps none) for tokens signed with secret (copied). */
rp_token_cache_t *rp_token_cache_new(const unsigned char *secret, size_t secret_len, size_t slots);
void rp_token_cache_free(rp_token_cache_t *c);

/* rp_token_verify through the cache: the same answers for the same token and clock, from the
 * cache when this token verified before and its exp is still after now_s. */
bool rp_token_cache_verify(rp_token_cache_t *c, const char *token, size_t len, int64_t now_s, rp_identity_t *who,
                           rp_token_claims_t *claims, rp_err_t *err);

/* How many answers came from the cache (for tests and metrics). */
uint64_t rp_token_cache_hits(rp_token_cache_t *c);

#endif
