/* routes.h - the api's route table: the single place where access rules live, and the matcher
 * that maps (method, path) to a route. The table is constant; matching is thread-safe. */
#ifndef RP_API_ROUTES_H
#define RP_API_ROUTES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "transport.h"

#define RP_ROUTE_LOCAL (-1)  /* handled inside the api, no RPC */
#define RP_ROUTE_EXPORT (-2) /* streamed by the api from the reward worker's pages (api/export.c) */
#define RP_ROUTE_APIDOC (-3) /* the OpenAPI document and the reference page, from the binary (api/apidoc.c) */

typedef enum {
    RP_BODY_NONE = 0,     /* no body is read; one sent is ignored */
    RP_BODY_REQUIRED = 1, /* a JSON object body is required */
    RP_BODY_OPTIONAL = 2, /* a JSON object body may be sent */
} rp_body_rule_t;

typedef struct rp_api_route {
    const char *method;  /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *pattern; /* below /api/v1, segments "{name}" are parameters */
    int component;       /* rp_component_t, RP_ROUTE_LOCAL, RP_ROUTE_EXPORT or RP_ROUTE_APIDOC */
    bool is_public;      /* no token needed (and none is checked) */
    unsigned roles;      /* rp_role_t bits, any of which grants access; 0 = any authenticated caller */
    rp_body_rule_t body;
    const char *schema; /* name of the body's JSON Schema in schemas/ (without .json), or NULL */
    size_t max_body;    /* body limit in bytes; 0 = MAX_BODY_BYTES */
    /* whose session a successful call changes (roles, status, password, logout), so that this api
     * process forgets what it cached of that account at once. The API key routes instead:
     * RP_SESSION_KEYS_MINT has the api mint a key, send only its hash (body member keyHash) and
     * add the key to a 2xx answer; a successful KEYS_MINT or KEYS_CHANGED makes this api process
     * forget the API keys it cached (api/apikey_cache.h) */
    enum {
        RP_SESSION_KEPT = 0,
        RP_SESSION_OF_CALLER,
        RP_SESSION_OF_PARAM_ID,
        RP_SESSION_KEYS_MINT,
        RP_SESSION_KEYS_CHANGED
    } session;
    /* the call may travel to its worker in one message with others of its kind waiting at the same
     * moment (rp_transport_call_shared): the claims, which come in waves and which the grant
     * worker commits together anyway, so that the broker carries one message for many */
    bool shared_call;
} rp_api_route_t;

#define RP_BATCH_BODY_BYTES (4u * 1024 * 1024) /* 100,000 user ids and some whitespace */

/* The table and its length. */
const rp_api_route_t *rp_routes_table(size_t *count);

typedef enum { RP_MATCH_OK, RP_MATCH_NOT_FOUND, RP_MATCH_BAD_METHOD } rp_match_result_t;

/* Matches path (below /api/v1, starting with '/', len bytes, already percent-decoded) and method.
 * The most specific pattern wins: at the first segment where two patterns differ, a literal
 * beats a parameter. On RP_MATCH_OK *route is set and, when params is not NULL, *params receives a
 * new JSON object of parameter name -> value (caller decrefs). On RP_MATCH_BAD_METHOD, allow
 * (if not NULL, cap bytes) receives the allowed methods, comma-separated. */
rp_match_result_t rp_routes_match(const char *method, const char *path, size_t len, const rp_api_route_t **route,
                                  json_t **params, char *allow, size_t cap);

/* True when a caller with these roles may use route (public routes: always). */
bool rp_routes_allows(const rp_api_route_t *route, bool authenticated, unsigned roles);

#endif
