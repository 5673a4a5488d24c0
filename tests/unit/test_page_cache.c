/* Tests lib/page_cache.c: a stored page comes back until its own deadline or the cache's TTL,
 * a forget invalidates every page at once, a page computed before a forget is never stored,
 * keys, sizes and a zero TTL are honoured, and readers of an ended page wait for the renewal on
 * its way rather than all asking. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "page_cache.h"
#include "timeutil.h"

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

/* ---- a page that ends while a caller renews it ---- */

typedef struct reader {
    rp_page_cache_t *c;
    int64_t now;
    char *got;
} reader_t;

static void *read_page(void *arg) {
    reader_t *r = arg;
    r->got = get(r->c, "a", r->now);
    return NULL;
}

/* Starts a reader of "a" at now and returns once it waits for the renewal under way. */
static void start_waiting_reader(pthread_t *th, reader_t *r, size_t waiting_before) {
    cr_assert_eq(pthread_create(th, NULL, read_page, r), 0);
    int64_t until = rp_mono_ms() + 20000;
    while (rp_page_cache_waiting(r->c) == waiting_before && rp_mono_ms() < until)
        usleep(1000);
    cr_assert_eq(rp_page_cache_waiting(r->c), waiting_before + 1, "the reader never waited");
}

/* The page ends while its renewal is on its way (a slow worker): the readers that come then wait
 * for that renewal instead of each asking again, and get the renewed page. */
Test(page_cache, readers_of_an_ended_page_wait_for_its_renewal, .timeout = 5) { /* woken, not timed out (10 s) */
    rp_page_cache_t *c = rp_page_cache_new(10000, 8, 1024);
    rp_page_cache_put(c, "a", rp_page_cache_generation(c), 10000, 10500, "A", 1);
    cr_assert_null(get(c, "a", 10400), "the renewer");
    pthread_t th[2];
    reader_t r[2] = {{c, 10600, NULL}, {c, 10700, NULL}};
    start_waiting_reader(&th[0], &r[0], 0);
    start_waiting_reader(&th[1], &r[1], 1);
    rp_page_cache_put(c, "a", rp_page_cache_generation(c), 10650, 20000, "A2", 2);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        cr_assert_str_eq(r[i].got, "A2", "reader %d: the renewed page", i);
        free(r[i].got);
    }
    cr_assert_eq(rp_page_cache_waiting(c), 0u);
    rp_page_cache_free(c);
}

/* A renewal that brings no page (the worker failed): its waiters ask for themselves. And a page
 * nobody is renewing is asked for at once by the first reader that finds it ended. */
Test(page_cache, a_renewal_without_a_page_sends_its_waiters_to_ask, .timeout = 5) { /* woken, not timed out */
    rp_page_cache_t *c = rp_page_cache_new(10000, 8, 1024);
    rp_page_cache_put(c, "a", rp_page_cache_generation(c), 10000, 10500, "A", 1);
    cr_assert_null(get(c, "a", 10600), "ended, nobody renewing it: this reader asks, without waiting");
    cr_assert_eq(rp_page_cache_waiting(c), 0u);
    pthread_t th;
    reader_t r = {c, 10700, (char *)"unset"};
    start_waiting_reader(&th, &r, 0);
    rp_page_cache_done(c, "a");
    pthread_join(th, NULL);
    cr_assert_null(r.got, "no page came: it asks itself");
    /* so did a put that was not kept (read across a write) */
    uint64_t before = rp_page_cache_generation(c);
    r.got = (char *)"unset";
    start_waiting_reader(&th, &r, 0);
    rp_page_cache_forget(c);
    rp_page_cache_put(c, "a", before, 10800, 20000, "stale", 5);
    pthread_join(th, NULL);
    cr_assert_null(r.got);
    rp_page_cache_free(c);
}

/* A renewer that never comes back is waited for at most the ttl. */
Test(page_cache, a_renewal_gone_quiet_is_waited_for_at_most_the_ttl) {
    rp_page_cache_t *c = rp_page_cache_new(200, 8, 1024);
    rp_page_cache_put(c, "a", rp_page_cache_generation(c), 10000, 10100, "A", 1);
    cr_assert_null(get(c, "a", 10150), "the renewer, which never puts");
    int64_t start = rp_mono_ms();
    cr_assert_null(get(c, "a", 10160), "the next reader waits, then asks itself");
    cr_assert_geq(rp_mono_ms() - start, 190, "it waited for the renewal first");
    rp_page_cache_free(c);
}
