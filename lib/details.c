/* details.c - VALIDATION_FAILED details (see details.h); no state. */
#include "details.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void rp_details_add(json_t *details, const char *field, const char *reason) {
    json_array_append_new(details, json_pack("{s:s, s:s}", "field", field, "reason", reason));
}

static bool known(const char *name, const char *const *allowed) {
    for (size_t i = 0; allowed[i]; i++)
        if (strcmp(allowed[i], name) == 0) return true;
    return false;
}

void rp_details_unknown(const json_t *body, const char *const *allowed, const char *prefix, json_t *details) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v) {
        if (known(k, allowed)) continue;
        char ptr[128];
        snprintf(ptr, sizeof ptr, "%s/%.80s", prefix, k);
        rp_details_add(details, ptr, "unknown field");
    }
}

size_t rp_details_count_unknown(const json_t *body, const char *const *allowed) {
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v) n += !known(k, allowed);
    return n;
}
