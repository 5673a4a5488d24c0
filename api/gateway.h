/* gateway.h - the HTTP front end: civetweb server, request bounds, JWT guard, role check, body
 * validation and the RPC to the owning worker. One gateway per process; thread-safe. */
#ifndef RP_API_GATEWAY_H
#define RP_API_GATEWAY_H

#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "err.h"
#include "transport.h"

typedef struct rp_gateway rp_gateway_t;

/* Validates a JSON body against a named schema; on failure *details gets a new array of
 * {field, reason}. Returns true when valid. NULL validator = no schema validation. */
typedef bool (*rp_body_validator_fn)(void *ud, const char *schema, const json_t *body, json_t **details);

/* Starts listening on cfg->bind_address:cfg->port and serving /api/v1 through transport t: HTTPS
 * only when cfg names a TLS certificate, with the HTTP timeouts and the per-address connection
 * cap of cfg. cfg and t are borrowed and must outlive the gateway. Requires mg_init_library()
 * first (with MG_FEATURES_TLS for HTTPS). A certificate or key OpenSSL cannot use fails here.
 * Returns NULL with err (500 HTTP_START) when the port cannot be bound. */
rp_gateway_t *rp_gateway_start(const rp_config_t *cfg, rp_transport_t *t, rp_body_validator_fn validate,
                               void *validate_ud, rp_err_t *err);
/* rp_gateway_start with the embedded JSON Schemas as validator: compiles them (a broken schema
 * fails here, at start-up), initialises civetweb and starts serving. The gateway owns both and
 * releases them in rp_gateway_free. */
rp_gateway_t *rp_gateway_open(const rp_config_t *cfg, rp_transport_t *t, rp_err_t *err);

/* Stops accepting and waits for running requests to finish (SHUTDOWN_GRACE_MS). Accepts NULL.
 * The caches' background calls may still be waiting: stop the transport next, so that they give
 * up, then rp_gateway_free. */
void rp_gateway_stop(rp_gateway_t *gw);
/* Frees a stopped gateway, joining its caches' threads. Accepts NULL. */
void rp_gateway_free(rp_gateway_t *gw);

#endif
