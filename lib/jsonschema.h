/* jsonschema.h - a compact JSON Schema validator (draft 2020-12 subset) for request bodies and
 * RPC messages. A compiled schema is immutable and may be used by many threads at once.
 *
 * Supported: type, properties, required, additionalProperties, enum, const, minLength,
 * maxLength (code points), pattern (PCRE2, unanchored as in ECMA-262), minimum, maximum,
 * exclusiveMinimum, exclusiveMaximum, items (single schema), minItems, maxItems, uniqueItems,
 * minProperties, maxProperties, allOf, anyOf, oneOf, not, $ref to "#..." JSON pointers
 * ($defs, definitions), format "date-time" (RFC 3339), boolean schemas. Annotations ($schema,
 * $id, $comment, title, description, default, examples) are ignored; other keywords are
 * refused at compile time so a schema cannot silently mean less than it says. */
#ifndef RP_LIB_JSONSCHEMA_H
#define RP_LIB_JSONSCHEMA_H

#include <jansson.h>
#include <stdbool.h>

#include "err.h"

typedef struct rp_schema rp_schema_t;

/* Compiles doc (borrowed; the schema keeps a reference). Returns a new schema (free with
 * rp_schema_free) or NULL with err 500 SCHEMA_INVALID for an unknown keyword, a keyword of the
 * wrong type, a regex that does not compile, or a $ref that does not resolve. */
rp_schema_t *rp_schema_compile(json_t *doc, rp_err_t *err);
void rp_schema_free(rp_schema_t *s);

/* Validates instance. When invalid and details is not NULL, *details receives a new array of at
 * most 50 distinct {field: JSON pointer into the instance, reason} entries; it is NULL when
 * valid. Instances nesting deeper than 64 levels are invalid ("nesting too deep"). */
bool rp_schema_validate(const rp_schema_t *s, const json_t *instance, json_t **details);

/* True when s is an RFC 3339 date-time (format "date-time"), leap seconds included. */
bool rp_schema_is_datetime(const char *s, size_t len);

#endif
