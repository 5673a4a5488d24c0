/* token.h - HS256 access tokens (libjwt 1.10): issue and strict verification; thread-safe. */
#ifndef RP_LIB_TOKEN_H
#define RP_LIB_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "err.h"

#define RP_TOKEN_MAX_LEN 4096
#define RP_JTI_LEN 33 /* a token id: 32 hex characters and the NUL */

/* What a verified token says beyond the identity: what the gateway checks against the account's
 * current state (lib/session.h). */
typedef struct rp_token_claims {
    int64_t ver;          /* claim ver: the account's token version when the token was issued */
    int64_t exp;          /* epoch seconds */
    char jti[RP_JTI_LEN]; /* the token's own id */
} rp_token_claims_t;

/* Issues an HS256 token with claims sub, username, roles, ver (the account's token version),
 * iat=now_s, exp=now_s+ttl_s, jti. Returns a malloc'd string (free()) or NULL on failure (err
 * 500). The secret must be >= 32 bytes. */
char *rp_token_issue(const unsigned char *secret, size_t secret_len, const rp_identity_t *who, int64_t ver,
                     int64_t now_s, int64_t ttl_s, rp_err_t *err);

/* Verifies token (len bytes, untrusted) against the secret at time now_s and fills *who.
 * Rejects, with 401 INVALID_TOKEN (or TOKEN_EXPIRED): any algorithm but HS256 (including
 * "none" and HS384 signed with the same secret), bad signatures, malformed tokens, a missing
 * or non-integer exp, exp <= now_s, a sub that is not an ObjectId, unknown roles, a missing or
 * non-integer (or negative) ver, a jti that is missing or not 1-32 characters. claims (may be
 * NULL) receives ver, exp and jti. */
bool rp_token_verify(const unsigned char *secret, size_t secret_len, const char *token, size_t len, int64_t now_s,
                     rp_identity_t *who, rp_token_claims_t *claims, rp_err_t *err);

#endif
