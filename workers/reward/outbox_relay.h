/* outbox_relay.h - publishes the grant outbox to RabbitMQ: exchange `rewards.events` (topic,
 * durable), routing keys `reward.granted` / `reward.revoked`, persistent messages whose
 * message_id is the grant id, with publisher confirms; a row is marked published only after the
 * broker confirmed it, so delivery is at-least-once and consumers deduplicate by message_id.
 * A relay owns one thread and one AMQP connection. */
#ifndef RP_WORKERS_REWARD_OUTBOX_RELAY_H
#define RP_WORKERS_REWARD_OUTBOX_RELAY_H

#include <stdbool.h>

#include "err.h"
#include "reward_store.h"

typedef struct rp_outbox_relay rp_outbox_relay_t;

/* Creates a relay for store (borrowed) publishing to the broker at url (copied). owner names
 * this relay in outbox leases (unique per process). Nothing runs until rp_outbox_relay_start. */
rp_outbox_relay_t *rp_outbox_relay_new(rp_reward_store_t *store, const char *url, const char *owner, rp_err_t *err);
/* One pass: lease up to 500 pending messages, publish them, wait for the confirms, mark them.
 * *published receives how many were confirmed. False on a broker or store failure (the leased
 * rows are retried after their lease expires). */
bool rp_outbox_relay_pass(rp_outbox_relay_t *r, int *published, rp_err_t *err);
/* Runs passes on a thread until stopped: immediately while there is work, every 200 ms when
 * idle, with backoff after failures. */
bool rp_outbox_relay_start(rp_outbox_relay_t *r, rp_err_t *err);
/* Stops the thread (if started) and frees. Accepts NULL. */
void rp_outbox_relay_free(rp_outbox_relay_t *r);

#endif
