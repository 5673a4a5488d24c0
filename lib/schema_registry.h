/* schema_registry.h - every JSON Schema of schemas/ (embedded in the binary), compiled once at
 * start-up and looked up by name. Read-only after creation: thread-safe. */
#ifndef RP_LIB_SCHEMA_REGISTRY_H
#define RP_LIB_SCHEMA_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>

#include "err.h"
#include "jsonschema.h"

typedef struct rp_schema_registry rp_schema_registry_t;

/* Compiles every embedded schema. Fails (500 SCHEMA_INVALID naming the file) when one does not
 * parse or compile, so a broken schema stops the process at start-up, not at the first request.
 * Free with rp_schema_registry_free. */
rp_schema_registry_t *rp_schema_registry_new(rp_err_t *err);
void rp_schema_registry_free(rp_schema_registry_t *r);

/* The compiled schema called name, or NULL; borrowed, valid while the registry lives. */
const rp_schema_t *rp_schema_registry_get(const rp_schema_registry_t *r, const char *name);

/* An rp_body_validator_fn (gateway.h): ud is the registry. An unknown schema name fails closed
 * with one detail entry, so a typo in the route table cannot let bodies through unchecked. */
bool rp_schema_registry_validate(void *ud, const char *name, const json_t *body, json_t **details);

#endif
