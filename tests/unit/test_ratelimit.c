/* Tests api/ratelimit.c: burst, refill, per-key isolation, and the disabled limiter. */
#include <criterion/criterion.h>

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
