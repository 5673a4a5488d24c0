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
#include "ids.h"
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

/* POST, body {"after": n} (n >= -1) -> 200 {"last": n, "userIds": [24-hex, ...], "more": bool,
 * "complete": bool}: the accounts whose session state changed after the change log's sequence
 * number n, in the order of the log, at most RP_SESSION_CHANGES_MAX (auth_store.h's
 * session_changes says what each field means; after -1 asks for "last" alone); 400
 * VALIDATION_FAILED on a bad body. Each api process reads it every SESSION_POLL_MS, forgets the
 * accounts it names, and may then keep states longer (api/session_cache.h). */
#define RP_SESSION_CHANGES_ROUTE "/_internal/session_changes"
#define RP_SESSION_CHANGES_MAX 256
/* How long the auth store keeps a change in its log. A reader that has not read it for longer
 * finds the log incomplete, and forgets every state it holds. */
#define RP_SESSION_LOG_KEEP_MS (10 * 60 * 1000)

typedef struct rp_session_changes {
    int64_t last;
    bool more, complete;
    size_t n;
    char user_ids[RP_SESSION_CHANGES_MAX][RP_OID_LEN];
} rp_session_changes_t;

/* Asks the auth worker for the changes after sequence number after (RP_SESSION_CHANGES_ROUTE).
 * False with err as rp_session_fetch; *unsupported then says the auth worker has no such route
 * (one older than the api). */
bool rp_session_read_changes(rp_transport_t *t, int64_t after, int64_t deadline_ms, rp_session_changes_t *out,
                             bool *unsupported, rp_err_t *err);

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
