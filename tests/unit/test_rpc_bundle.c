/* Tests lib/rpc_bundle.c: netstrings joined and split, and every malformed bundle refused. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "rpc_bundle.h"

static size_t split(const char *b, rp_bundle_part_t *parts, size_t max) {
    return rp_bundle_split(b, strlen(b), parts, max);
}

Test(rpc_bundle, joins_and_splits_back_the_same_parts) {
    rp_bundle_part_t in[3] = {{"{\"a\":1}", 7}, {"", 0}, {"x,y:z", 5}}, out[3];
    size_t n = 0;
    char *b = rp_bundle_join(in, 3, &n);
    cr_assert_eq(n, strlen("7:{\"a\":1},0:,5:x,y:z,"));
    cr_assert(memcmp(b, "7:{\"a\":1},0:,5:x,y:z,", n) == 0, "%.*s", (int)n, b);
    cr_assert_eq(rp_bundle_split(b, n, out, 3), 3u);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(out[i].n, in[i].n);
        cr_assert(memcmp(out[i].p, in[i].p, in[i].n) == 0);
        cr_assert(out[i].p >= b && out[i].p + out[i].n <= b + n, "a part not borrowed from the bundle");
    }
    free(b);
}

Test(rpc_bundle, a_part_may_hold_any_bytes) {
    char body[300];
    for (int i = 0; i < 300; i++)
        body[i] = (char)(i % 256);
    rp_bundle_part_t in = {body, sizeof body}, out;
    size_t n = 0;
    char *b = rp_bundle_join(&in, 1, &n);
    cr_assert_eq(rp_bundle_split(b, n, &out, 1), 1u);
    cr_assert_eq(out.n, sizeof body);
    cr_assert(memcmp(out.p, body, sizeof body) == 0);
    free(b);
}

Test(rpc_bundle, refuses_what_is_not_a_bundle) {
    rp_bundle_part_t parts[4];
    const char *bad[] = {
        "",     ":,",     "3:ab,",      "2:ab",  "2:abc", "02:ab,",         "2ab,",
        "-1:,", "2:ab,x", "2:ab,3:ab,", "a:ab,", "2:ab;", "12345678901:x,", "2:ab,2:cd,2:ef,2:gh,2:ij,"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(split(bad[i], parts, 4), 0u, "accepted \"%s\"", bad[i]);
    cr_assert_eq(split("2:ab,2:cd,2:ef,2:gh,", parts, 4), 4u, "refused four parts with room for four");
    cr_assert_eq(split("0:,", parts, 4), 1u);
    cr_assert_eq(parts[0].n, 0u);
}

Test(rpc_bundle, a_length_past_the_end_is_refused_without_reading_past_it) {
    rp_bundle_part_t parts[1];
    char *b = malloc(4); /* no terminator: the sanitizer sees any read past */
    memcpy(b, "9:ab", 4);
    cr_assert_eq(rp_bundle_split(b, 4, parts, 1), 0u);
    memcpy(b, "1234", 4);
    cr_assert_eq(rp_bundle_split(b, 4, parts, 1), 0u);
    free(b);
}
