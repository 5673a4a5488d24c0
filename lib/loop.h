/* loop.h - a background thread that runs one pass of work over and over: again at once while a
 * pass says there is more, after an idle pause when there is not, and after a pause that doubles
 * from the idle pause up to 5 s while passes fail. It can be woken early (new work) and stops
 * promptly. For the batch sweeper and the outbox relay. rp_loop_kick is thread-safe; the rest
 * belongs to the owner's thread. */
#ifndef RP_LIB_LOOP_H
#define RP_LIB_LOOP_H

#include <stdbool.h>

#include "err.h"

typedef enum rp_loop_next {
    RP_LOOP_IDLE,   /* nothing more to do now: wait the idle pause */
    RP_LOOP_MORE,   /* more is due: go again at once */
    RP_LOOP_FAILED, /* the pass failed (and logged why): wait the backoff */
} rp_loop_next_t;

/* One pass. backoff_ms is the pause that follows should this pass fail, for its log line. */
typedef rp_loop_next_t (*rp_loop_pass_fn)(void *ctx, int backoff_ms);

typedef struct rp_loop rp_loop_t;

/* A loop of pass over ctx (borrowed; must outlive the loop) pausing idle_ms when idle. Nothing
 * runs until rp_loop_start. Free with rp_loop_free. */
rp_loop_t *rp_loop_new(rp_loop_pass_fn pass, void *ctx, int idle_ms);
/* Starts the thread; false with err (INTERNAL, naming what) when it cannot. */
bool rp_loop_start(rp_loop_t *l, const char *what, rp_err_t *err);
/* Ends the current pause early: there is new work. Safe from any thread, started or not. The
 * pass it brings begins after the kick, but not sooner than RP_LOOP_KICK_GAP_MS after the pass
 * before began: kicks in a stream (the webhook fan-out is kicked by every grant) bring one pass
 * per gap, not one each. */
void rp_loop_kick(rp_loop_t *l);
#define RP_LOOP_KICK_GAP_MS 10
/* Stops the thread (after its current pass, if started), joins it and frees. Accepts NULL. */
void rp_loop_free(rp_loop_t *l);

#endif
