/* fuzz_query.c - libFuzzer target for the query-string parser of the api (rp_http_parse_query)
 * and the list parameters the workers read from its result: limit, cursor (ObjectId or
 * sequence), ids and ISO-8601 times (lib/paging.c, lib/timeutil.c, lib/ids.c). */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "fuzz_util.h"
#include "http_io.h"
#include "ids.h"
#include "paging.h"
#include "timeutil.h"

/* Every list parameter the workers read, as they read them. */
static void read_parameters(const rp_envelope_t *env) {
    rp_err_t err;
    int limit = 0;
    const char *cursor = NULL, *oid = NULL;
    int64_t seq = -1, ms = -1;
    if (rp_paging_parse(env, &limit, &cursor, &err)) {
        FUZZ_CHECK(limit >= 1 && limit <= RP_PAGE_MAX);
        FUZZ_CHECK(!cursor || rp_oid_valid(cursor, strlen(cursor)));
    } else {
        FUZZ_CHECK(strcmp(err.code, "VALIDATION_FAILED") == 0);
    }
    if (rp_query_limit(env, RP_PAGE_MAX, 1000, &limit, &err)) FUZZ_CHECK(limit >= 1 && limit <= 1000);
    if (rp_query_seq(env, "cursor", &seq, &err)) FUZZ_CHECK(seq >= 0);
    if (rp_query_seq(env, "after", &seq, &err)) FUZZ_CHECK(seq >= 0);
    if (rp_query_oid(env, "userId", &oid, &err)) FUZZ_CHECK(!oid || rp_oid_valid(oid, strlen(oid)));
    if (rp_query_time(env, "from", &ms, &err)) {
        const char *v = rp_envelope_query(env, "from");
        FUZZ_CHECK(v || ms == 0);
    }
    (void)rp_query_time(env, "activeAt", &ms, &err);
}

/* A time that parses prints as one that parses to the same instant. */
static void check_time(const char *s, size_t len) {
    int64_t ms = 0, again = 0;
    char iso[RP_ISO_LEN];
    if (!rp_time_parse_iso(s, len, &ms)) return;
    /* years beyond 9999 do not print in the fixed-width form: nothing to compare */
    if (ms < -62135596800000LL || ms > 253402300799999LL) return;
    rp_time_iso(ms, iso);
    FUZZ_CHECK(rp_time_parse_iso(iso, strlen(iso), &again));
    FUZZ_CHECK(again == ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *qs = malloc(size + 1); /* civetweb hands the query string over NUL-terminated */
    memcpy(qs, data, size);
    qs[size] = '\0';
    json_t *query = NULL;
    if (rp_http_parse_query(qs, &query)) {
        FUZZ_CHECK(json_is_object(query) && json_object_size(query) <= 32);
        const char *k;
        json_t *v;
        json_object_foreach(query, k, v) FUZZ_CHECK(k[0] && json_is_string(v) && strlen(k) <= 512);
        rp_envelope_t env;
        rp_envelope_init(&env);
        json_decref(env.query);
        env.query = query;
        read_parameters(&env);
        rp_envelope_clear(&env);
    } else {
        FUZZ_CHECK(query == NULL);
    }
    check_time((const char *)data, size);
    (void)rp_oid_valid((const char *)data, size);
    free(qs);
    return 0;
}
