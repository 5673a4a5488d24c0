/* rpc_bundle.c - see rpc_bundle.h. */
#include "rpc_bundle.h"

#include <stdio.h>
#include <string.h>

#include "mem.h"

#define MAX_DIGITS 10 /* 9,999,999,999 bytes: more than any message the broker takes */

char *rp_bundle_join(const rp_bundle_part_t *parts, size_t n, size_t *out_len) {
    size_t cap = 0;
    for (size_t i = 0; i < n; i++)
        cap += parts[i].n + MAX_DIGITS + 2;
    char *out = rp_malloc(cap + 1), *w = out;
    for (size_t i = 0; i < n; i++) {
        w += sprintf(w, "%zu:", parts[i].n);
        if (parts[i].n) memcpy(w, parts[i].p, parts[i].n);
        w += parts[i].n;
        *w++ = ',';
    }
    *out_len = (size_t)(w - out);
    return out;
}

size_t rp_bundle_split(const char *b, size_t len, rp_bundle_part_t *parts, size_t max) {
    size_t at = 0, n = 0;
    while (at < len) {
        if (n == max) return 0;
        size_t digits = 0, part = 0;
        while (at + digits < len && b[at + digits] >= '0' && b[at + digits] <= '9') {
            if (++digits > MAX_DIGITS) return 0;
            part = part * 10 + (size_t)(b[at + digits - 1] - '0');
        }
        if (digits == 0 || (digits > 1 && b[at] == '0')) return 0;
        at += digits;
        if (at >= len || b[at] != ':') return 0;
        at++;
        if (part > len - at || len - at - part < 1 || b[at + part] != ',') return 0;
        parts[n].p = b + at;
        parts[n].n = part;
        n++;
        at += part + 1;
    }
    return n;
}
