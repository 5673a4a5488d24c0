/* loop.c - a pass run over and over on its own thread (see loop.h). One mutex guards the kick and
 * stop flags; the pass itself runs unlocked. */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
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
    bool kicked, stopping;
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

static void *loop_main(void *arg) {
    rp_loop_t *l = arg;
    int backoff_ms = l->idle_ms;
    pthread_mutex_lock(&l->mu);
    while (!l->stopping) {
        pthread_mutex_unlock(&l->mu);
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
        if (wait_ms > 0 && !l->kicked && !l->stopping) {
            struct timespec until = rp_ms_timespec(rp_mono_ms() + wait_ms);
            while (!l->kicked && !l->stopping && pthread_cond_timedwait(&l->wake, &l->mu, &until) != ETIMEDOUT) {
            }
        }
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

void rp_loop_kick(rp_loop_t *l) {
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
