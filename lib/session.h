/* session.h - what the gateway checks an access token against: the account's current state as
 * the auth worker holds it (roles, token version, disabled, the ids of its revoked tokens that
 * are still unexpired), asked over the same transport as every other RPC (route
 * RP_SESSION_ROUTE, not reachable from HTTP: the gateway forwards only its route table). The
 * gateway caches it briefly (api/session_cache.h). Thread-safe; no state of its own. */
#ifndef RP_LIB_SESSION_H
#define RP_LIB_SESSION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "token.h"
#include "transport.h"

/* POST, body {"userId": 24-hex} -> 200 {"roles": [...], "tokenVersion": n, "disabled": bool,
 * "revokedJtis": [...]} (at most RP_SESSION_MAX_REVOKED); 404 USER_NOT_FOUND; 400
 * VALIDATION_FAILED on a bad body. */
#define RP_SESSION_ROUTE "/_internal/session"
/* An account never has more revoked, unexpired tokens than this: a logout that would exceed it
 * bumps the account's token version instead (every token of the account dies). */
#define RP_SESSION_MAX_REVOKED 16

typedef struct rp_session_state {
    unsigned roles; /* rp_role_t bits, as the store holds them now */
    int64_t token_version;
    bool disabled;
    size_t n_revoked;
    char revoked[RP_SESSION_MAX_REVOKED][RP_JTI_LEN];
} rp_session_state_t;

/* POST, body {"userIds": [24-hex, ...]} (1..RP_SESSIONS_MAX) -> 200 {"sessions": [state or
 * null, ...]}, each as RP_SESSION_ROUTE answers (null: no such account), in the order of
 * userIds; 400 VALIDATION_FAILED on a bad body. */
#define RP_SESSIONS_ROUTE "/_internal/sessions"
#define RP_SESSIONS_MAX 64

/* Asks the auth worker for the state of user_id (an ObjectId), answering before deadline_ms
 * (epoch ms). True with *found (false: no such account) and *out; false with err (UNAVAILABLE,
 * TIMEOUT, BAD_REPLY kinds) when there is no usable answer, and then nothing may be concluded.
 * request_id (may be NULL) follows the call in logs. */
bool rp_session_fetch(rp_transport_t *t, const char *user_id, int64_t deadline_ms, const char *request_id,
                      rp_session_state_t *out, bool *found, rp_err_t *err);

/* rp_session_fetch for the n accounts of ids (1..RP_SESSIONS_MAX) in one call: out[i] and
 * found[i] for ids[i]. False with err as rp_session_fetch; *unsupported then says the auth
 * worker has no RP_SESSIONS_ROUTE (one older than the api during an upgrade), and the caller
 * asks for each account alone. */
bool rp_session_fetch_many(rp_transport_t *t, const char *const *ids, size_t n, int64_t deadline_ms,
                           const char *request_id, rp_session_state_t *out, bool *found, bool *unsupported,
                           rp_err_t *err);

/* Whether a token with these claims is still good for an account in state s: false with err
 * (401 ACCOUNT_DISABLED, TOKEN_REVOKED) when the account is disabled, the token's version is
 * not the account's or its jti is revoked. */
bool rp_session_admits(const rp_session_state_t *s, const rp_token_claims_t *claims, rp_err_t *err);

/* The reply body of RP_SESSION_ROUTE for state s (a new object). */
json_t *rp_session_to_json(const rp_session_state_t *s);

#endif
