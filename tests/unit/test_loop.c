/* Tests lib/loop.c: a kick brings a pass that begins after it, at once after a quiet spell; a
 * stream of kicks brings one pass per RP_LOOP_KICK_GAP_MS, not one per kick; a stop is prompt. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "loop.h"
#include "timeutil.h"

#define LONG_IDLE_MS 60000 /* no pass comes from the idle pause within a test */

static void nap_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static atomic_int passes;
static _Atomic int64_t last_began_ms;

static rp_loop_next_t count_pass(void *ctx, int backoff_ms) {
    (void)ctx;
    (void)backoff_ms;
    atomic_store(&last_began_ms, rp_mono_ms());
    atomic_fetch_add(&passes, 1);
    return RP_LOOP_IDLE;
}

static rp_loop_t *started_loop(void) {
    rp_err_t err;
    atomic_store(&passes, 0);
    rp_loop_t *l = rp_loop_new(count_pass, NULL, LONG_IDLE_MS);
    cr_assert(rp_loop_start(l, "test loop", &err));
    int64_t deadline = rp_mono_ms() + 5000;
    while (atomic_load(&passes) < 1 && rp_mono_ms() < deadline) /* the first pass runs at start */
        nap_ms(1);
    cr_assert_eq(atomic_load(&passes), 1);
    return l;
}

/* Kicks l and waits for a pass that began after the kick; false when none came within 5 s. */
static bool kick_brings_a_pass(rp_loop_t *l) {
    int before = atomic_load(&passes);
    int64_t kicked = rp_mono_ms();
    rp_loop_kick(l);
    int64_t deadline = kicked + 5000;
    while (rp_mono_ms() < deadline) {
        if (atomic_load(&passes) > before && atomic_load(&last_began_ms) >= kicked) return true;
        nap_ms(1);
    }
    return false;
}

Test(loop, every_kick_brings_a_pass_that_begins_after_it) {
    rp_loop_t *l = started_loop();
    /* back to back: each after the first falls within the gap of the pass before */
    for (int i = 0; i < 20; i++)
        cr_assert(kick_brings_a_pass(l), "kick %d brought no pass within 5 s (the idle pause is 60 s)", i);
    nap_ms(3 * RP_LOOP_KICK_GAP_MS);
    cr_assert(kick_brings_a_pass(l), "a kick after a quiet spell");
    rp_loop_free(l);
}

typedef struct kicker {
    rp_loop_t *l;
    int64_t until_ms;
    long kicks;
} kicker_t;

static void *kick_until(void *arg) {
    kicker_t *k = arg;
    while (rp_mono_ms() < k->until_ms) {
        rp_loop_kick(k->l);
        k->kicks++;
    }
    return NULL;
}

Test(loop, a_stream_of_kicks_brings_one_pass_per_gap) {
    enum { THREADS = 4, STREAM_MS = 300 };
    rp_loop_t *l = started_loop();
    pthread_t th[THREADS];
    kicker_t k[THREADS];
    int64_t began = rp_mono_ms();
    for (int i = 0; i < THREADS; i++) {
        k[i] = (kicker_t){l, began + STREAM_MS, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, kick_until, &k[i]), 0);
    }
    long kicks = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        kicks += k[i].kicks;
    }
    int64_t elapsed = rp_mono_ms() - began;
    int ran = atomic_load(&passes) - 1;
    /* passes begin at least a gap apart; the first may follow the start's pass at once */
    cr_assert_leq(ran, elapsed / RP_LOOP_KICK_GAP_MS + 2, "%d passes for %ld kicks in %lld ms", ran, kicks,
                  (long long)elapsed);
    cr_assert_geq(ran, 1, "the stream brought no pass at all");
    cr_assert_gt(kicks, 10L * ran, "the kicks were not a stream (%ld kicks)", kicks);
    cr_assert(kick_brings_a_pass(l), "a kick after the stream");
    rp_loop_free(l);
}

Test(loop, a_stop_waits_for_neither_the_gap_nor_the_idle_pause) {
    rp_loop_t *l = started_loop();
    rp_loop_kick(l); /* now waiting out the gap, or already past it and waiting the idle pause */
    int64_t t0 = rp_mono_ms();
    rp_loop_free(l);
    cr_assert_lt(rp_mono_ms() - t0, 2000);
}
