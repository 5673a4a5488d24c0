/* session_cache.h - the gateway's check of an access token against its account's current state
 * (lib/session.h), through a cache: a change of the account (roles, password, disable, logout)
 * reaches every api process within ttl plus one RPC, and a hit costs a hash, a lock and a copy.
 * The auth worker logs each change in the transaction that makes it, and the cache reads that log
 * every poll interval and forgets the accounts it names: while those reads succeed, a change
 * reaches the process within one interval and a read, and a state may be kept far longer than
 * ttl (keep) without being trusted a moment longer than ttl past the last change it can have
 * missed. The cache is a fixed table (bounded memory): an account hashes to a set of
 * RP_SESSION_CACHE_WAYS slots, and one that finds its set full takes the slot of the state fetched
 * longest ago. Locked in stripes of sets. Thread-safe. */
#ifndef RP_API_SESSION_CACHE_H
#define RP_API_SESSION_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "err.h"
#include "routes.h"
#include "session.h"
#include "token.h"
#include "transport.h"

typedef struct rp_session_cache rp_session_cache_t;

#define RP_SESSION_CACHE_WAYS 8 /* slots an account may take; a slot is 72 bytes, touched as accounts arrive */

/* A cache asking the auth worker through t (borrowed) and keeping an answer ttl_ms. With batch,
 * callers that miss together share one call for their accounts (RP_SESSIONS_ROUTE): for a
 * transport whose calls are round trips (RabbitMQ), not for the in-process one, whose calls run
 * on the caller's thread and would wait for one another. With keep_ms above ttl_ms and poll_ms
 * in 1..ttl_ms-1, a thread reads the change log every poll_ms (rp_session_cache_read_log), and
 * an answer fetched after the log's first read is kept up to keep_ms while the last complete
 * read was sent less than ttl_ms ago. It holds up to `slots` states (in whole sets of
 * RP_SESSION_CACHE_WAYS, at least one). */
rp_session_cache_t *rp_session_cache_new(rp_transport_t *t, int ttl_ms, bool batch, int keep_ms, int poll_ms,
                                         size_t slots);
void rp_session_cache_free(rp_session_cache_t *c);

/* Reads the auth worker's change log (RP_SESSION_CHANGES_ROUTE) from where the last read ended
 * to its end, and forgets each account it names; all of them when the log is incomplete (this
 * process read it too long ago). False with err when it could not be read to the end (then
 * *unsupported says the auth worker has no log: one older than the api). The poller calls it;
 * tests call it to step the cache. */
bool rp_session_cache_read_log(rp_session_cache_t *c, int64_t deadline_ms, bool *unsupported, rp_err_t *err);

/* Checks the caller who (as its token says), whose token has these claims, for route: the
 * account must exist and admit the token (rp_session_admits); then who->roles becomes the
 * account's current roles. The state comes from the cache unless it is older than ttl, or the
 * token is newer than it (a token version above the cached one), or the route's permission
 * depends on the caller's ADMIN role (the route allows ADMIN and none of the caller's other
 * roles): then it is asked for at once. False with err when the caller is refused: 401
 * (INVALID_TOKEN for an account that no longer exists, ACCOUNT_DISABLED, TOKEN_REVOKED), 403
 * FORBIDDEN when the token is refused and the account's current roles do not allow the route
 * either (a demoted admin on an admin route), or an UNAVAILABLE / TIMEOUT / BAD_REPLY kind when
 * the state cannot be had (the gateway answers 503: never admitted unchecked). */
bool rp_session_cache_check(rp_session_cache_t *c, const rp_api_route_t *route, rp_identity_t *who,
                            const rp_token_claims_t *claims, int64_t deadline_ms, const char *request_id,
                            rp_err_t *err);

/* What the cache asked the auth worker for since it was made, for /metrics. */
typedef struct rp_session_stats {
    unsigned long long single_calls; /* calls for one account (RP_SESSION_ROUTE) */
    unsigned long long batch_calls;  /* calls for several that missed together (RP_SESSIONS_ROUTE) */
    unsigned long long accounts;     /* accounts asked for by all of them */
    size_t waiting;                  /* callers queued now for a fetch another leads */
    /* the change log: complete reads, failed reads, accounts forgotten by them, reads that found
     * it incomplete (every state forgotten); log_current when states are kept beyond ttl now */
    unsigned long long log_reads, log_failures, log_forgotten, log_gaps;
    bool log_current;
} rp_session_stats_t;
void rp_session_cache_stats(rp_session_cache_t *c, rp_session_stats_t *out);

/* Forgets what the cache holds for user_id (a broadcast of a change). */
void rp_session_cache_forget(rp_session_cache_t *c, const char *user_id);

#endif
