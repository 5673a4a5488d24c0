/* json_util.h - guards for parsing untrusted JSON text; pure functions, thread-safe. */
#ifndef RP_LIB_JSON_UTIL_H
#define RP_LIB_JSON_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#define RP_JSON_MAX_DEPTH 64

/* True when arrays and objects in buf (len bytes, JSON text or not) nest at most max_depth
 * deep. jansson recurses once per level, and a few thousand levels overflow the stack of an
 * HTTP thread, so untrusted text is measured before it is parsed. Strings are skipped. */
bool rp_json_depth_ok(const char *buf, size_t len, int max_depth);

#endif
