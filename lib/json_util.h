/* json_util.h - guards for parsing untrusted JSON text, request digests and the two nullable
 * values every rendering writes; pure functions, thread-safe. */
#ifndef RP_LIB_JSON_UTIL_H
#define RP_LIB_JSON_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RP_JSON_MAX_DEPTH 64

/* True when arrays and objects in buf (len bytes, JSON text or not) nest at most max_depth
 * deep. jansson recurses once per level, and a few thousand levels overflow the stack of an
 * HTTP thread, so untrusted text is measured before it is parsed. Strings are skipped. */
bool rp_json_depth_ok(const char *buf, size_t len, int max_depth);

/* The hex SHA-256 of scope, a newline and body's canonical text (compact, keys sorted; nothing
 * when body is NULL): what an Idempotency-Key is bound to, so the same key with another request
 * is told apart. */
void rp_json_request_hash(const char *scope, const json_t *body, char out[65]);

/* A new JSON string of s, or null when s is NULL or "" (an unset optional text field). */
json_t *rp_json_str_or_null(const char *s);

/* A new JSON string of ms as ISO 8601 UTC (rp_time_iso), or null when ms is 0 (not happened). */
json_t *rp_json_time_or_null(int64_t ms);

#endif
