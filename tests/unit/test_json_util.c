/* test_json_util.c - the request fingerprint (rp_json_request_hash): the SHA-256 of the scope, a
 * newline and the body printed compact with sorted keys, whatever the body's size. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

/* The expected fingerprint, computed from the whole printed text at once. */
static void expected(const char *scope, const char *text, char out[65]) {
    size_t n = strlen(scope) + 1 + (text ? strlen(text) : 0);
    char *all = malloc(n + 1);
    snprintf(all, n + 1, "%s\n%s", scope, text ? text : "");
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, (const unsigned char *)all, n);
    sodium_bin2hex(out, 65, d, sizeof d);
    free(all);
}

Test(json_util, the_fingerprint_is_the_hash_of_scope_and_sorted_compact_body) {
    cr_assert(sodium_init() >= 0);
    char got[65], want[65];
    json_t *body = json_pack("{s:[i,i], s:s}", "b", 1, 2, "a", "x");
    rp_json_request_hash("ev1", body, got);
    expected("ev1", "{\"a\":\"x\",\"b\":[1,2]}", want);
    cr_assert_str_eq(got, want);
    /* the same body built in another key order has the same fingerprint; another scope does not */
    json_t *again = json_pack("{s:s, s:[i,i]}", "a", "x", "b", 1, 2);
    char other[65];
    rp_json_request_hash("ev1", again, other);
    cr_assert_str_eq(other, got);
    rp_json_request_hash("ev2", again, other);
    cr_assert_str_neq(other, got);
    rp_json_request_hash("ev1", NULL, got);
    expected("ev1", NULL, want);
    cr_assert_str_eq(got, want);
    json_decref(body);
    json_decref(again);
}

Test(json_util, a_100000_player_body_hashes_as_its_printed_text) {
    cr_assert(sodium_init() >= 0);
    json_t *ids = json_array();
    for (int i = 0; i < 100000; i++) {
        char id[25];
        snprintf(id, sizeof id, "%024x", i);
        json_array_append_new(ids, json_string(id));
    }
    json_t *body = json_pack("{s:o, s:s}", "userIds", ids, "reason", "season end");
    char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    char got[65], want[65];
    rp_json_request_hash("event", body, got);
    expected("event", text, want);
    cr_assert_str_eq(got, want);
    free(text);
    json_decref(body);
}
