/* fuzz_routes.c - libFuzzer target for the api's route matcher (rp_routes_match) and the path
 * splitting inside it. Input: a method, a space, then the path below /api/v1 as civetweb hands it
 * over (percent-decoded, so any byte may appear). */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "routes.h"

/* A matched route's parameters are exactly its {name} segments, each a non-empty path segment. */
static void check_params(const rp_api_route_t *route, const json_t *params, const char *path, size_t len) {
    size_t nparams = 0;
    for (const char *p = route->pattern; (p = strchr(p, '{')) != NULL; p++)
        nparams++;
    FUZZ_CHECK(json_is_object(params) && json_object_size(params) == nparams);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)params, k, v) {
        size_t vlen = json_string_length(v);
        FUZZ_CHECK(vlen > 0 && memchr(json_string_value(v), '/', vlen) == NULL);
        FUZZ_CHECK(vlen <= len);
    }
    (void)path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    const char *sp = memchr(buf, ' ', size);
    if (!sp || sp - buf > 15) return 0;
    char method[16];
    memcpy(method, buf, (size_t)(sp - buf));
    method[sp - buf] = '\0';
    const char *path = sp + 1;
    size_t len = size - (size_t)(path - buf);
    /* civetweb's local_uri is NUL-terminated: the gateway passes strlen of it */
    char *copy = malloc(len + 1);
    memcpy(copy, path, len);
    copy[len] = '\0';
    len = strlen(copy);

    const rp_api_route_t *route = NULL;
    json_t *params = NULL;
    char allow[64];
    memset(allow, 'x', sizeof allow);
    rp_match_result_t r = rp_routes_match(method, copy, len, &route, &params, allow, sizeof allow);
    FUZZ_CHECK(memchr(allow, '\0', sizeof allow) != NULL);
    switch (r) {
    case RP_MATCH_OK:
        FUZZ_CHECK(route && strcmp(route->method, method) == 0);
        check_params(route, params, copy, len);
        FUZZ_CHECK(rp_routes_allows(route, true, 0) == (route->is_public || route->roles == 0));
        break;
    case RP_MATCH_BAD_METHOD: FUZZ_CHECK(!route && !params && allow[0] != '\0'); break;
    case RP_MATCH_NOT_FOUND: FUZZ_CHECK(!route && !params); break;
    }
    /* without the optional outputs the answer is the same */
    const rp_api_route_t *route2 = NULL;
    FUZZ_CHECK(rp_routes_match(method, copy, len, &route2, NULL, NULL, 0) == r || r == RP_MATCH_NOT_FOUND);
    json_decref(params);
    free(copy);
    return 0;
}
