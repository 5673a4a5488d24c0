/* envelope.h - the RPC envelope (request) and reply that travel between the api and the workers
 * over any transport, with JSON (de)serialisation; values are plain data owned by one thread. */
#ifndef RP_LIB_ENVELOPE_H
#define RP_LIB_ENVELOPE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "ids.h"

/* Who is calling, as the api authenticated it. Workers trust identity only from here. */
typedef struct rp_identity {
    bool authenticated;
    char id[RP_OID_LEN];
    char username[64];
    unsigned roles;    /* rp_role_t bits */
    char jti[33];      /* the access token's id ("" when the caller used none); logout revokes it */
    int64_t token_exp; /* the access token's expiry, epoch seconds (0 with no token) */
} rp_identity_t;

typedef struct rp_envelope {
    char method[8]; /* HTTP method: GET, POST, PUT, PATCH, DELETE */
    char route[96]; /* route pattern, e.g. "/events/{id}/reward-requests" */
    json_t *params; /* object: path parameter name -> string; never NULL after init */
    json_t *query;  /* object: query parameter name -> string; never NULL after init */
    json_t *body;   /* request body, or NULL when there is none */
    rp_identity_t caller;
    char request_id[72];
    char idempotency_key[136]; /* Idempotency-Key header, "" when absent */
    int64_t deadline_ms;       /* epoch ms after which the caller no longer waits; 0 = none */
} rp_envelope_t;

typedef struct rp_reply {
    int status;        /* HTTP status */
    json_t *body;      /* response body (owned), may be NULL for 204 */
    int retry_after_s; /* > 0 adds a Retry-After header */
    /* The body as compact JSON text (owned, not NUL-terminated), set instead of body: by a worker
     * answering with text it rendered before (a cached page), and by rp_reply_parse_raw, so that
     * bytes pass from the worker to the HTTP client without being parsed and printed again. */
    char *raw;
    size_t raw_len;
    /* > 0 on a 2xx only: the body depends on nothing but the route, its path and query and the
     * caller's roles, and holds for this many more milliseconds (so the api may keep it: see
     * api/gateway.c). Travels as "maxAgeMs", a duration, so that clocks of hosts do not matter.
     * Reset by rp_reply_set. */
    int max_age_ms;
} rp_reply_t;

/* Initialises env with empty params/query objects. Free its members with rp_envelope_clear. */
void rp_envelope_init(rp_envelope_t *env);
/* Releases params, query and body; env can be re-initialised afterwards. Accepts NULL. */
void rp_envelope_clear(rp_envelope_t *env);
/* Returns the envelope as compact JSON text (malloc'd, free()) and its length in *len. */
char *rp_envelope_serialize(const rp_envelope_t *env, size_t *len);
/* Parses len bytes (untrusted) into env (initialised by this call, also on failure; clear it
 * afterwards either way). Fails with 400 BAD_MESSAGE on malformed JSON, wrong member types,
 * oversized strings or unknown roles. */
bool rp_envelope_parse(rp_envelope_t *env, const char *buf, size_t len, rp_err_t *err);

/* Path parameter lookup: borrowed string valid while env lives, or NULL. */
const char *rp_envelope_param(const rp_envelope_t *env, const char *name);
/* Query parameter lookup: borrowed string valid while env lives, or NULL. */
const char *rp_envelope_query(const rp_envelope_t *env, const char *name);

void rp_reply_init(rp_reply_t *rep);
void rp_reply_clear(rp_reply_t *rep);
/* Sets status and takes ownership of body (replacing any previous body). */
void rp_reply_set(rp_reply_t *rep, int status, json_t *body);
/* The error body {"error": {code, message, details}} as a new object; takes ownership of
 * details (may be NULL = empty array). */
json_t *rp_error_body(const char *code, const char *message, json_t *details);
/* Sets an error reply {"error": {code, message, details}}; takes ownership of details (may be
 * NULL = empty array). */
void rp_reply_error(rp_reply_t *rep, int status, const char *code, const char *message, json_t *details);
/* rp_reply_error from an rp_err_t, with the HTTP status of its kind; a 503 asks the client to
 * retry after 1 s (unless the reply already says when). A cleared err (a callee that failed
 * without filling it) answers 500 INTERNAL with a fixed message, and is logged. */
void rp_reply_from_err(rp_reply_t *rep, const rp_err_t *err);
/* Sets status and takes ownership of text (malloc'd JSON, len bytes) as the body, in raw. */
void rp_reply_set_raw(rp_reply_t *rep, int status, char *text, size_t len);
/* The reply as {"status":S,"retryAfter":R,"body":B} (body omitted when there is none; B is raw
 * when set, else body printed compactly), malloc'd with its length in *len. */
char *rp_reply_serialize(const rp_reply_t *rep, size_t *len);
/* Parses a reply (untrusted bytes) into rep (initialised by this call): body parsed, raw NULL.
 * Fails with 502 BAD_REPLY when buf is not a reply. */
bool rp_reply_parse(rp_reply_t *rep, const char *buf, size_t len, rp_err_t *err);
/* As rp_reply_parse, but a 2xx body is kept as text in raw (copied, not parsed) when the reply
 * has the exact layout rp_reply_serialize writes and the body is one object or array ending the
 * reply; any other reply is parsed whole. */
bool rp_reply_parse_raw(rp_reply_t *rep, const char *buf, size_t len, rp_err_t *err);

#endif
