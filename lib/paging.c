/* paging.c - list query parameters (see paging.h). */
#include "paging.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "timeutil.h"

bool rp_query_limit(const rp_envelope_t *env, int def, int max, int *limit, rp_err_t *err) {
    const char *l = rp_envelope_query(env, "limit");
    *limit = def;
    if (!l) return true;
    char *end = NULL;
    errno = 0;
    long v = strtol(l, &end, 10);
    if (!*l || errno || *end || v < 1 || v > max) {
        rp_err_set(err, RP_ERR_INVALID, "VALIDATION_FAILED", "limit must be an integer from 1 to %d", max);
        return false;
    }
    *limit = (int)v;
    return true;
}

bool rp_paging_parse(const rp_envelope_t *env, int *limit, const char **cursor, rp_err_t *err) {
    *cursor = NULL;
    return rp_query_limit(env, RP_PAGE_DEFAULT, RP_PAGE_MAX, limit, err) && rp_query_oid(env, "cursor", cursor, err);
}

bool rp_query_seq(const rp_envelope_t *env, const char *name, int64_t *out, rp_err_t *err) {
    const char *v = rp_envelope_query(env, name);
    *out = 0;
    if (!v) return true;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*v || errno || *end || n < 0) {
        rp_err_set(err, RP_ERR_INVALID, "VALIDATION_FAILED", "%s must be a non-negative sequence number", name);
        return false;
    }
    *out = n;
    return true;
}

bool rp_query_time(const rp_envelope_t *env, const char *name, int64_t *ms, rp_err_t *err) {
    const char *v = rp_envelope_query(env, name);
    *ms = 0;
    if (v && !rp_time_parse_iso(v, strlen(v), ms)) {
        rp_err_set(err, RP_ERR_INVALID, "VALIDATION_FAILED", "%s must be an ISO-8601 date-time", name);
        return false;
    }
    return true;
}

bool rp_query_oid(const rp_envelope_t *env, const char *name, const char **out, rp_err_t *err) {
    const char *v = rp_envelope_query(env, name);
    *out = NULL;
    if (v && !rp_oid_valid(v, strlen(v))) {
        rp_err_set(err, RP_ERR_INVALID, "VALIDATION_FAILED", "%s must be a 24-character hex id", name);
        return false;
    }
    *out = v;
    return true;
}
