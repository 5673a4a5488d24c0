/* Tests api/ratelimit.c: burst, refill, per-key isolation, the disabled limiter, colliding keys,
 * least-recently-used eviction, the memory bound and threads hammering one limiter. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"

Test(ratelimit, burst_then_refuse_then_refill) {
    rp_ratelimit_t *rl = rp_ratelimit_new(2, 3);
    int retry;
    int64_t t = 1000000;
    for (int i = 0; i < 3; i++)
        cr_assert(rp_ratelimit_take(rl, "10.0.0.1", t, &retry));
    cr_assert_not(rp_ratelimit_take(rl, "10.0.0.1", t, &retry));
    cr_assert_geq(retry, 1);
    /* another client is not affected */
    cr_assert(rp_ratelimit_take(rl, "10.0.0.2", t, &retry));
    /* half a second at 2/s gives one token back */
    cr_assert(rp_ratelimit_take(rl, "10.0.0.1", t + 500000, &retry));
    cr_assert_not(rp_ratelimit_take(rl, "10.0.0.1", t + 500000, &retry));
    /* a long pause refills only up to the burst */
    for (int i = 0; i < 3; i++)
        cr_assert(rp_ratelimit_take(rl, "10.0.0.1", t + 100000000, &retry));
    cr_assert_not(rp_ratelimit_take(rl, "10.0.0.1", t + 100000000, &retry));
    rp_ratelimit_free(rl);
}

Test(ratelimit, disabled_allows_everything) {
    rp_ratelimit_t *rl = rp_ratelimit_new(0, 1);
    int retry;
    for (int i = 0; i < 1000; i++)
        cr_assert(rp_ratelimit_take(rl, "x", 0, &retry));
    rp_ratelimit_free(rl);
    cr_assert(rp_ratelimit_take(NULL, "x", 0, &retry));
}

/* The two addresses of issue 12 collided under the old unkeyed hash and reset each other's bucket
 * on every request, so alternating between them was never limited. */
static void alternate_until_refused(rp_ratelimit_t *rl, const char *a, const char *b, int burst) {
    int retry;
    for (int i = 0; i < burst; i++) {
        cr_assert(rp_ratelimit_take(rl, a, 0, &retry), "%s take %d", a, i);
        cr_assert(rp_ratelimit_take(rl, b, 0, &retry), "%s take %d", b, i);
    }
    cr_assert_not(rp_ratelimit_take(rl, a, 0, &retry), "%s must be out of tokens", a);
    cr_assert_not(rp_ratelimit_take(rl, b, 0, &retry), "%s must be out of tokens", b);
}

Test(ratelimit, issue_addresses_alternating_are_limited) {
    rp_ratelimit_t *rl = rp_ratelimit_new(1, 5);
    alternate_until_refused(rl, "127.0.10.109", "127.0.10.202", 5);
    rp_ratelimit_free(rl);
}

Test(ratelimit, keys_in_one_slot_keep_separate_budgets) {
    /* one slot: every key collides; full comparison keeps their buckets apart */
    rp_ratelimit_t *rl = rp_ratelimit_new_sized(1, 4, 16, 1);
    alternate_until_refused(rl, "127.0.10.109", "127.0.10.202", 4);
    int retry;
    /* a third key in the same slot neither resets nor shares theirs */
    for (int i = 0; i < 4; i++)
        cr_assert(rp_ratelimit_take(rl, "10.0.0.3", 0, &retry));
    cr_assert_not(rp_ratelimit_take(rl, "127.0.10.109", 0, &retry));
    /* keys differing only past a prefix, and long keys (kept as digests), are distinct too */
    char long_a[200], long_b[200];
    memset(long_a, 'x', sizeof long_a - 1);
    long_a[sizeof long_a - 1] = '\0';
    memcpy(long_b, long_a, sizeof long_b);
    long_b[150] = 'y';
    alternate_until_refused(rl, long_a, long_b, 4);
    alternate_until_refused(rl, "2001:db8::/64", "2001:db8::/6", 4);
    rp_ratelimit_stats_t st;
    rp_ratelimit_stats(rl, &st);
    cr_assert_eq(st.keys, 7u);
    rp_ratelimit_free(rl);
}

Test(ratelimit, evicts_the_least_recently_used_idle_bucket) {
    rp_ratelimit_t *rl = rp_ratelimit_new_sized(1, 2, 3, 0);
    int retry;
    int64_t t = 0;
    cr_assert(rp_ratelimit_take(rl, "a", t, &retry));
    cr_assert(rp_ratelimit_take(rl, "b", t, &retry));
    cr_assert(rp_ratelimit_take(rl, "c", t, &retry));
    t += 10 * 1000000;                                /* everyone refilled: all idle */
    cr_assert(rp_ratelimit_take(rl, "a", t, &retry)); /* a becomes the most recent: b, c, a */
    t += 10 * 1000000;
    cr_assert(rp_ratelimit_take(rl, "d", t, &retry));
    cr_assert_not(rp_ratelimit_tracks(rl, "b"), "b was the least recently used");
    cr_assert(rp_ratelimit_tracks(rl, "a") && rp_ratelimit_tracks(rl, "c") && rp_ratelimit_tracks(rl, "d"));
    cr_assert(rp_ratelimit_take(rl, "e", t + 10 * 1000000, &retry));
    cr_assert_not(rp_ratelimit_tracks(rl, "c"));
    cr_assert(rp_ratelimit_tracks(rl, "a") && rp_ratelimit_tracks(rl, "d") && rp_ratelimit_tracks(rl, "e"));
    rp_ratelimit_stats_t st;
    rp_ratelimit_stats(rl, &st);
    cr_assert_eq(st.evictions, 2u);
    cr_assert_eq(st.keys, 3u);
    rp_ratelimit_free(rl);
}

Test(ratelimit, a_full_table_never_resets_an_active_bucket) {
    rp_ratelimit_t *rl = rp_ratelimit_new_sized(1, 2, 2, 0);
    int retry;
    for (int i = 0; i < 2; i++) {
        cr_assert(rp_ratelimit_take(rl, "a", 0, &retry));
        cr_assert(rp_ratelimit_take(rl, "b", 0, &retry));
    }
    /* the table is full of spent buckets: newcomers share the overflow bucket */
    cr_assert(rp_ratelimit_take(rl, "c", 0, &retry));
    cr_assert(rp_ratelimit_take(rl, "d", 0, &retry));
    cr_assert_not(rp_ratelimit_take(rl, "e", 0, &retry), "the overflow bucket is shared");
    cr_assert_geq(retry, 1);
    cr_assert(rp_ratelimit_tracks(rl, "a") && rp_ratelimit_tracks(rl, "b"));
    cr_assert_not(rp_ratelimit_take(rl, "a", 0, &retry), "a's bucket was not reset by the newcomers");
    cr_assert_not(rp_ratelimit_take(rl, "b", 0, &retry));
    /* still spent: no room; once refilled, the least recently used bucket makes room */
    cr_assert_not(rp_ratelimit_take(rl, "f", 0, &retry));
    cr_assert_not(rp_ratelimit_tracks(rl, "f"));
    cr_assert(rp_ratelimit_take(rl, "f", 5 * 1000000, &retry));
    cr_assert(rp_ratelimit_tracks(rl, "f"));
    rp_ratelimit_stats_t st;
    rp_ratelimit_stats(rl, &st);
    cr_assert_eq(st.overflowed, 4u);
    cr_assert_eq(st.evictions, 1u);
    rp_ratelimit_free(rl);
}

Test(ratelimit, memory_is_bounded) {
    rp_ratelimit_t *rl = rp_ratelimit_new_sized(10, 10, 1000, 0);
    rp_ratelimit_stats_t before, after;
    rp_ratelimit_stats(rl, &before);
    int retry;
    char key[32];
    /* 100000 addresses, one a millisecond: each bucket is idle again a second later */
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        cr_assert(rp_ratelimit_take(rl, key, (int64_t)i * 1000, &retry), "%s", key);
    }
    rp_ratelimit_stats(rl, &after);
    cr_assert_eq(after.keys, 1000u);
    cr_assert_eq(after.memory_bytes, before.memory_bytes);
    cr_assert_lt(after.memory_bytes, 1000u * 200 + 4096 * 8);
    cr_assert_eq(after.evictions, 99000u);
    cr_assert_eq(after.overflowed, 0u);
    rp_ratelimit_free(rl);
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    cr_assert_not_null(f);
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kib = atol(line + 6);
    fclose(f);
    return kib;
}

/* The api makes four limiters of RATE_LIMIT_MAX_CLIENTS (65,536) buckets each; touching every
 * bucket at creation held 28 MiB of a fresh api process. A limiter holds what its keys use. */
Test(ratelimit, memory_is_taken_as_keys_come_not_at_creation) {
    long before = rss_kib();
    rp_ratelimit_t *rl = rp_ratelimit_new_sized(10, 10, 1u << 20, 0); /* ~108 MiB of buckets if touched */
    long created = rss_kib();
    cr_assert_lt(created - before, 8 * 1024, "a million-bucket limiter took %ld KiB at creation", created - before);
    int retry;
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "10.1.%d.%d", i >> 8, i & 255);
        cr_assert(rp_ratelimit_take(rl, key, 0, &retry));
    }
    rp_ratelimit_stats_t st;
    rp_ratelimit_stats(rl, &st);
    cr_assert_eq(st.keys, 1000u);
    cr_assert_lt(rss_kib() - created, 8 * 1024);
    /* the same keys again are found, not added */
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "10.1.%d.%d", i >> 8, i & 255);
        cr_assert(rp_ratelimit_take(rl, key, 0, &retry));
    }
    rp_ratelimit_stats(rl, &st);
    cr_assert_eq(st.keys, 1000u);
    rp_ratelimit_free(rl);
}

#define THREADS 8
#define TAKES 4000
#define KEYS 16
#define BURST 100

typedef struct hammer {
    rp_ratelimit_t *rl;
    int evicting; /* keys of their own, in a table too small for them */
    int allowed[KEYS];
    int id;
} hammer_t;

static void *hammer(void *arg) {
    hammer_t *h = arg;
    char key[32];
    int retry;
    for (int i = 0; i < TAKES; i++) {
        int k = (i * 7 + h->id) % KEYS;
        if (h->evicting)
            snprintf(key, sizeof key, "t%d-%d", h->id, i);
        else
            snprintf(key, sizeof key, "10.0.0.%d", k);
        /* time stands still: nothing refills, so each key must be allowed exactly BURST times */
        if (rp_ratelimit_take(h->rl, key, h->evicting ? i : 0, &retry)) h->allowed[k]++;
    }
    return NULL;
}

Test(ratelimit, threads_hammering_never_exceed_a_budget) {
    rp_ratelimit_t *rl = rp_ratelimit_new_sized(1, BURST, 64, 4);
    pthread_t th[THREADS];
    hammer_t hs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        hs[t] = (hammer_t){.rl = rl, .id = t};
        cr_assert_eq(pthread_create(&th[t], NULL, hammer, &hs[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    for (int k = 0; k < KEYS; k++) {
        int sum = 0;
        for (int t = 0; t < THREADS; t++)
            sum += hs[t].allowed[k];
        cr_assert_eq(sum, BURST, "key %d allowed %d times", k, sum);
    }
    rp_ratelimit_free(rl);

    /* and with the table churning (new keys evicting idle ones) from every thread at once */
    rl = rp_ratelimit_new_sized(1000000, 1, 32, 2);
    for (int t = 0; t < THREADS; t++) {
        hs[t] = (hammer_t){.rl = rl, .id = t, .evicting = 1};
        cr_assert_eq(pthread_create(&th[t], NULL, hammer, &hs[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    rp_ratelimit_stats_t st;
    rp_ratelimit_stats(rl, &st);
    cr_assert_leq(st.keys, 32u);
    cr_assert_gt(st.evictions, 0u);
    rp_ratelimit_free(rl);
}

Test(ratelimit, peek_looks_without_taking) {
    rp_ratelimit_t *rl = rp_ratelimit_new(1, 2);
    int retry = -1;
    int64_t t = 1000000;
    cr_assert(rp_ratelimit_peek(rl, "a", t, &retry), "a key without a bucket would be allowed");
    cr_assert_eq(retry, 0);
    for (int i = 0; i < 5; i++)
        cr_assert(rp_ratelimit_peek(rl, "a", t, &retry), "looking takes nothing");
    cr_assert(rp_ratelimit_take(rl, "a", t, &retry));
    cr_assert(rp_ratelimit_take(rl, "a", t, &retry));
    cr_assert_not(rp_ratelimit_peek(rl, "a", t, &retry));
    cr_assert_geq(retry, 1);
    cr_assert(rp_ratelimit_peek(rl, "b", t, &retry), "another key has its own bucket");
    cr_assert(rp_ratelimit_peek(rl, "a", t + 1000000, &retry), "refilled after a second");
    rp_ratelimit_free(rl);
}
