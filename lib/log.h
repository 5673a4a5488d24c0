/* log.h - the one logging entry point: JSON lines on stderr; thread-safe (one write per line). */
#ifndef RP_LIB_LOG_H
#define RP_LIB_LOG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum { RP_LOG_DEBUG = 0, RP_LOG_INFO = 1, RP_LOG_WARN = 2, RP_LOG_ERROR = 3 } rp_log_level_t;

/* Sets the minimum level written (default INFO). */
void rp_log_set_level(rp_log_level_t level);
/* Parses "debug"/"info"/"warn"/"error" (case-insensitive); returns -1 when unknown. */
int rp_log_level_parse(const char *s);
/* Sets the "component" field added to every line (e.g. "api", "worker-auth"); copies it. */
void rp_log_set_component(const char *name);

/* Whether lines of level are written: for callers whose arguments cost work to compute. */
bool rp_log_enabled(rp_log_level_t level);
/* Writes {"ts","level","component","module","msg"} as one line when level is enabled. */
void rp_log(rp_log_level_t level, const char *module, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* An answer to an operator's request (a signal): one line at level info whatever LOG_LEVEL says,
 * with module and the members of fields (stolen; a member named like a base field loses to it). */
struct json_t;
void rp_log_report(const char *module, struct json_t *fields);

/* The access log: one line per HTTP request with requestId, userId (may be NULL), method, route
 * (the route pattern, or the path when unmatched), status and latency in milliseconds. */
void rp_log_request(const char *request_id, const char *user_id, const char *method, const char *route, int status,
                    double latency_ms);

#endif
