/* paging.h - the `limit` and `cursor` query parameters shared by every list route; pure. */
#ifndef RP_LIB_PAGING_H
#define RP_LIB_PAGING_H

#include <stdbool.h>

#include "envelope.h"

#define RP_PAGE_DEFAULT 20
#define RP_PAGE_MAX 100

/* Reads ?limit (1..100, default 20) and ?cursor (an ObjectId) from env. *cursor is borrowed from
 * env or NULL. Fails with 400 VALIDATION_FAILED naming the parameter. */
bool rp_paging_parse(const rp_envelope_t *env, int *limit, const char **cursor, rp_err_t *err);

/* Reads ?limit: an integer from 1 to max, def when absent; 400 VALIDATION_FAILED otherwise. */
bool rp_query_limit(const rp_envelope_t *env, int def, int max, int *limit, rp_err_t *err);

/* Reads an optional non-negative integer query parameter (a sequence cursor) into *out (0 when
 * absent); 400 when malformed. */
bool rp_query_seq(const rp_envelope_t *env, const char *name, int64_t *out, rp_err_t *err);

/* Reads an optional ISO-8601 query parameter into *ms (0 when absent); 400 when malformed. */
bool rp_query_time(const rp_envelope_t *env, const char *name, int64_t *ms, rp_err_t *err);

/* Reads an optional ObjectId query parameter (borrowed, NULL when absent); 400 when malformed. */
bool rp_query_oid(const rp_envelope_t *env, const char *name, const char **out, rp_err_t *err);

#endif
