/* webhooks.h - signed webhooks (DESIGN.md section 10), the reward worker's part: the endpoint and
 * delivery operations of /events/webhooks, and the dispatcher that every process running the
 * reward worker (the embedded platform, each grant worker) starts:
 * - a fan-out relay turns each outbox message into one delivery per subscribed endpoint, in the
 *   transaction that marks the message fanned out (webhook_store.h), so none is skipped or made
 *   twice, whichever process and however many relays run;
 * - WEBHOOK_SENDERS sender threads lease due deliveries (a killed sender's lease runs out and
 *   another takes the delivery), POST them signed (webhook_http.h), record every attempt and
 *   follow WEBHOOK_RETRY_SCHEDULE; an endpoint failing every delivery for WEBHOOK_DISABLE_AFTER,
 *   or answering 410 Gone, is disabled with an audit entry.
 * Thread-safe: operations run on many threads; the dispatcher owns its threads. */
#ifndef RP_WORKERS_REWARD_WEBHOOKS_H
#define RP_WORKERS_REWARD_WEBHOOKS_H

#include <stdbool.h>

#include "config.h"
#include "envelope.h"
#include "err.h"

typedef struct rp_webhooks rp_webhooks_t;

/* Opens the webhook store named by cfg (borrowed, must outlive the result). Nothing is sent until
 * rp_webhooks_start. NULL with err on failure. */
rp_webhooks_t *rp_webhooks_new(const rp_config_t *cfg, rp_err_t *err);
/* Starts the fan-out relay and the senders. */
bool rp_webhooks_start(rp_webhooks_t *w, rp_err_t *err);
/* There may be new outbox messages (a grant committed): the relay looks at once. Any thread. */
void rp_webhooks_kick(rp_webhooks_t *w);
/* Whether the store answers. */
bool rp_webhooks_ping(rp_webhooks_t *w, rp_err_t *err);
/* Stops the threads and frees. Accepts NULL. */
void rp_webhooks_free(rp_webhooks_t *w);

/* The operations, as rp_op_fn with w as ctx (roles are checked here too). */
void rp_webhooks_op_create(void *w, const rp_envelope_t *env, rp_reply_t *rep);
void rp_webhooks_op_list(void *w, const rp_envelope_t *env, rp_reply_t *rep);
void rp_webhooks_op_get(void *w, const rp_envelope_t *env, rp_reply_t *rep);
void rp_webhooks_op_update(void *w, const rp_envelope_t *env, rp_reply_t *rep);
void rp_webhooks_op_delete(void *w, const rp_envelope_t *env, rp_reply_t *rep);
void rp_webhooks_op_deliveries(void *w, const rp_envelope_t *env, rp_reply_t *rep);
void rp_webhooks_op_redeliver(void *w, const rp_envelope_t *env, rp_reply_t *rep);
void rp_webhooks_op_ping(void *w, const rp_envelope_t *env, rp_reply_t *rep);
/* RP_WEBHOOKS_METRICS_ROUTE (internal, no caller: the api asks while rendering /metrics):
 * {text} in Prometheus text format: deliveries in the store by type and status, queue depth and
 * the oldest PENDING delivery's age (the whole platform's), attempts by type and result and the
 * attempt latency histogram (the answering process's). */
void rp_webhooks_op_metrics(void *w, const rp_envelope_t *env, rp_reply_t *rep);

#define RP_WEBHOOKS_METRICS_ROUTE "/_internal/webhooks/metrics"

#endif
