/* reward_service.h - the reward worker: claims and the grant, approvals, revocations, request
 * history, the ledger, the grants feed and batch grants. Thread-safe: handlers run on many threads at once. */
#ifndef RP_WORKERS_REWARD_SERVICE_H
#define RP_WORKERS_REWARD_SERVICE_H

#include "config.h"
#include "err.h"
#include "event/event_repo.h"
#include "rpc.h"
#include "transport.h"

typedef struct rp_reward_worker rp_reward_worker_t;

/* Opens the reward store named by cfg (STORE=sqlite: SQLITE_DIR/events.db) and returns the
 * worker; events and progress are read through `events` (borrowed, must outlive the worker),
 * or, when events is NULL (a reward worker process of its own), through an event repository
 * the worker opens and owns. cfg is borrowed too. Free with rp_reward_worker_free. */
rp_reward_worker_t *rp_reward_worker_new(const rp_config_t *cfg, rp_event_repo_t *events, rp_err_t *err);
/* Starts batch grant processing on t: consumers of reward.grant and the sweeper, and the webhook
 * dispatcher (webhooks.h: fan-out relay and senders); t is also
 * how the worker asks the auth worker about accounts (lib/accounts.h: batch items, dry runs,
 * eligibility). The transport must be stopped before the worker is freed. */
bool rp_reward_worker_run_batches(rp_reward_worker_t *w, rp_transport_t *t, rp_err_t *err);
/* Starts the outbox relay of the worker's store (outbox_relay.h) on the broker at cfg's
 * AMQP_URL, leasing as owner (unique per process); it runs until the worker is freed. */
bool rp_reward_worker_run_relay(rp_reward_worker_t *w, const char *owner, rp_err_t *err);
/* The worker's service (name "reward") for rp_rpc_service_handler; borrowed. */
const rp_service_t *rp_reward_worker_service(rp_reward_worker_t *w);
void rp_reward_worker_free(rp_reward_worker_t *w);

#endif
