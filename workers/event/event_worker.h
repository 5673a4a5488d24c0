/* event_worker.h - the event worker: reward definitions, events, progress ingest and the
 * operator audit log. Thread-safe: handlers run concurrently. */
#ifndef RP_WORKERS_EVENT_WORKER_H
#define RP_WORKERS_EVENT_WORKER_H

#include "config.h"
#include "err.h"
#include "event_repo.h"
#include "rpc.h"
#include "transport.h"

typedef struct rp_event_worker rp_event_worker_t;

/* Opens the store named by cfg (STORE=sqlite: SQLITE_DIR/events.db) and returns the worker;
 * cfg is borrowed and must outlive it. transport (borrowed, must outlive it) carries the
 * worker's own calls to the auth worker (is a reported player an account?); without one, progress
 * reports are refused 503. Free with rp_event_worker_free. */
rp_event_worker_t *rp_event_worker_new(const rp_config_t *cfg, rp_transport_t *transport, rp_err_t *err);
/* The worker's service (name "event") for rp_rpc_service_handler; borrowed. */
const rp_service_t *rp_event_worker_service(rp_event_worker_t *w);
/* The worker's repository, borrowed; the reward worker reads events and progress through it. */
rp_event_repo_t *rp_event_worker_repo(rp_event_worker_t *w);
void rp_event_worker_free(rp_event_worker_t *w);

#endif
