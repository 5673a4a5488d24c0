/* Tests lib/page_cache.c: a stored page comes back until its own deadline or the cache's TTL,
 * a forget invalidates every page at once, a page computed before a forget is never stored, and
 * keys, sizes and a zero TTL are honoured. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "page_cache.h"

static char *get(rp_page_cache_t *c, const char *key, int64_t now) {
    size_t len = 0;
    char *t = rp_page_cache_get(c, key, now, &len, NULL);
    if (t) cr_assert_eq(len, strlen(t));
    return t;
}

Test(page_cache, returns_a_copy_until_the_earlier_of_its_deadline_and_the_ttl) {
    rp_page_cache_t *c = rp_page_cache_new(1000, 8, 1024);
    uint64_t g = rp_page_cache_generation(c);
    rp_page_cache_put(c, "a", g, 10000, 10500, "page-a", 6);
    rp_page_cache_put(c, "b", g, 10000, INT64_MAX, "page-b", 6);
    char *t = get(c, "a", 10249); /* before the last quarter (see below) */
    cr_assert_str_eq(t, "page-a");
    free(t);
    cr_assert_null(get(c, "a", 10500), "past its own deadline");
    t = get(c, "b", 10749);
    cr_assert_str_eq(t, "page-b");
    free(t);
    cr_assert_null(get(c, "b", 11000), "past the TTL");
    cr_assert_null(get(c, "c", 10001), "an unknown key");
    rp_page_cache_free(c);
}

Test(page_cache, forget_invalidates_and_a_stale_page_is_never_stored) {
    rp_page_cache_t *c = rp_page_cache_new(1000, 8, 1024);
    uint64_t before = rp_page_cache_generation(c);
    rp_page_cache_put(c, "a", before, 0, 500, "old", 3);
    rp_page_cache_forget(c); /* a write committed */
    cr_assert_null(get(c, "a", 1));
    rp_page_cache_put(c, "a", before, 0, 500, "read-before-the-write", 21);
    cr_assert_null(get(c, "a", 1), "a page read before the write must not be kept");
    uint64_t after = rp_page_cache_generation(c);
    cr_assert_neq(after, before);
    rp_page_cache_put(c, "a", after, 0, 500, "new", 3);
    char *t = get(c, "a", 1);
    cr_assert_str_eq(t, "new");
    free(t);
    rp_page_cache_free(c);
}

Test(page_cache, colliding_keys_replace_too_large_pages_and_zero_ttl_keep_nothing) {
    rp_page_cache_t *c = rp_page_cache_new(1000, 1, 8); /* one slot: every key collides */
    uint64_t g = rp_page_cache_generation(c);
    rp_page_cache_put(c, "a", g, 0, 500, "A", 1);
    rp_page_cache_put(c, "b", g, 0, 500, "B", 1);
    cr_assert_null(get(c, "a", 1), "a colliding key must never answer for another");
    char *t = get(c, "b", 1);
    cr_assert_str_eq(t, "B");
    free(t);
    rp_page_cache_put(c, "big", g, 0, 500, "123456789", 9);
    cr_assert_null(get(c, "big", 1));
    rp_page_cache_free(c);
    c = rp_page_cache_new(0, 8, 1024);
    rp_page_cache_put(c, "a", rp_page_cache_generation(c), 0, 500, "A", 1);
    cr_assert_null(get(c, "a", 1));
    rp_page_cache_free(c);
}

/* In the last quarter of a page's life one caller is told to renew it while the others still
 * read it; the next renewal may be claimed a quarter later at the earliest. */
Test(page_cache, one_caller_renews_a_page_ahead_of_its_end) {
    rp_page_cache_t *c = rp_page_cache_new(1000, 8, 1024);
    rp_page_cache_put(c, "a", rp_page_cache_generation(c), 10000, INT64_MAX, "A", 1);
    char *t = get(c, "a", 10749);
    cr_assert_str_eq(t, "A");
    free(t);
    cr_assert_null(get(c, "a", 10750), "the first caller in the last quarter renews it");
    for (int64_t now = 10751; now < 11000; now += 50) {
        t = get(c, "a", now);
        cr_assert_str_eq(t, "A", "the others still read the page while it is renewed");
        free(t);
    }
    rp_page_cache_put(c, "a", rp_page_cache_generation(c), 10800, INT64_MAX, "A2", 2);
    t = get(c, "a", 11500);
    cr_assert_str_eq(t, "A2");
    free(t);
    cr_assert_null(get(c, "a", 11550), "the renewed page is renewed in its own last quarter");
    rp_page_cache_free(c);
}

Test(page_cache, a_copy_says_until_when_it_holds) {
    rp_page_cache_t *c = rp_page_cache_new(1000, 8, 1024);
    uint64_t g = rp_page_cache_generation(c);
    rp_page_cache_put(c, "a", g, 10000, 10500, "page-a", 6);
    rp_page_cache_put(c, "b", g, 10000, INT64_MAX, "page-b", 6);
    size_t len = 0;
    int64_t until = 0;
    char *t = rp_page_cache_get(c, "a", 10100, &len, &until);
    cr_assert_not_null(t);
    cr_assert_eq(until, 10500, "its own deadline");
    free(t);
    t = rp_page_cache_get(c, "b", 10100, &len, &until);
    cr_assert_not_null(t);
    cr_assert_eq(until, 11000, "capped by the TTL from when it was stored");
    free(t);
    rp_page_cache_free(c);
}
