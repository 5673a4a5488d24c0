/* loop.c - a pass run over and over on its own thread (see loop.h). One mutex guards the kick and
 * stop flags; the pass itself runs unlocked. */
#include "loop.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "mem.h"
#include "timeutil.h"

#define MAX_BACKOFF_MS 5000

struct rp_loop {
    rp_loop_pass_fn pass;
    void *ctx;
    int idle_ms;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* kicked or stopping */
    _Atomic bool kicked; /* set under mu; read without it by rp_loop_kick */
    bool stopping;
};

rp_loop_t *rp_loop_new(rp_loop_pass_fn pass, void *ctx, int idle_ms) {
    rp_loop_t *l = rp_calloc(1, sizeof *l);
    l->pass = pass;
    l->ctx = ctx;
    l->idle_ms = idle_ms;
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&l->wake, &attr);
    pthread_condattr_destroy(&attr);
    return l;
}

/* Waits (mu held) until stopping, or until the pause of wait_ms is over, or until a kick once
 * RP_LOOP_KICK_GAP_MS have passed since the pass that began at began_ms. */
static void wait_turn(rp_loop_t *l, int64_t began_ms, int wait_ms) {
    int64_t end = rp_mono_ms() + wait_ms, kick_from = began_ms + RP_LOOP_KICK_GAP_MS;
    while (!l->stopping) {
        int64_t now = rp_mono_ms();
        if (now >= end || (l->kicked && now >= kick_from)) return;
        struct timespec until = rp_ms_timespec(l->kicked && kick_from < end ? kick_from : end);
        pthread_cond_timedwait(&l->wake, &l->mu, &until);
    }
}

static void *loop_main(void *arg) {
    rp_loop_t *l = arg;
    int backoff_ms = l->idle_ms;
    pthread_mutex_lock(&l->mu);
    while (!l->stopping) {
        pthread_mutex_unlock(&l->mu);
        int64_t began = rp_mono_ms();
        int wait_ms = l->idle_ms;
        switch (l->pass(l->ctx, backoff_ms)) {
        case RP_LOOP_FAILED:
            wait_ms = backoff_ms;
            backoff_ms = backoff_ms * 2 > MAX_BACKOFF_MS ? MAX_BACKOFF_MS : backoff_ms * 2;
            break;
        case RP_LOOP_MORE:
            wait_ms = 0;
            backoff_ms = l->idle_ms;
            break;
        case RP_LOOP_IDLE: backoff_ms = l->idle_ms; break;
        }
        pthread_mutex_lock(&l->mu);
        if (wait_ms > 0) wait_turn(l, began, wait_ms);
        l->kicked = false;
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

bool rp_loop_start(rp_loop_t *l, const char *what, rp_err_t *err) {
    if (pthread_create(&l->thread, NULL, loop_main, l) != 0) {
        rp_err_set(err, RP_ERR_INTERNAL, "INTERNAL", "cannot start the %s", what);
        return false;
    }
    l->started = true;
    return true;
}

/* A kick already pending covers this one: its pass begins after now. So only the first kick of a
 * pause takes the mutex and signals; the others (every claim kicks the fan-out) return here. */
void rp_loop_kick(rp_loop_t *l) {
    if (atomic_load(&l->kicked)) return;
    pthread_mutex_lock(&l->mu);
    l->kicked = true;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->mu);
}

void rp_loop_free(rp_loop_t *l) {
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stopping = true;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->mu);
    if (l->started) pthread_join(l->thread, NULL);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->wake);
    free(l);
}
