/* batch.h - batch grants (DESIGN.md section 7): an operator grants an event's rewards to up to
 * 100,000 players at once. The batch and its items are stored first; a sweeper in every reward
 * worker process sends QUEUED items, in chunks, to the durable work queue `reward.grant` and sends
 * them again when they stay QUEUED longer than BATCH_REDELIVER_MS (a lost message, a crashed
 * worker, a restart); consumers settle each item with the grant transaction. At most
 * BATCH_MAX_IN_FLIGHT items are sent and unsettled at once, so a large batch never floods the
 * queue nor outruns its redelivery timeout. Thread-safe. */
#ifndef RP_WORKERS_REWARD_BATCH_H
#define RP_WORKERS_REWARD_BATCH_H

#include "config.h"
#include "envelope.h"
#include "event/event_repo.h"
#include "claims.h"
#include "reward_store.h"
#include "transport.h"

#define RP_BATCH_QUEUE "reward.grant"
#define RP_BATCH_MAX_USERS 100000
/* The most distinct players one dry run rehearses: it runs every item's grant in one unit of work
 * that holds the store's write lock (SQLite) or one transaction (MongoDB) until it rolls back, so
 * a rehearsal of a whole 100,000-player batch would stall claims for seconds and outlive the
 * RPC deadline. Larger batches are rehearsed in parts (a sample, or by ranges of players). */
#define RP_DRY_RUN_MAX_USERS 10000

typedef struct rp_batches rp_batches_t;

/* Everything is borrowed and must outlive the result. Nothing runs until rp_batches_start. */
rp_batches_t *rp_batches_new(const rp_config_t *cfg, rp_reward_store_t *store, rp_event_repo_t *events,
                             rp_claims_t *claims);
/* Consumes reward.grant on t with cfg->worker_threads threads and starts the sweeper thread. */
bool rp_batches_start(rp_batches_t *b, rp_transport_t *t, rp_err_t *err);
/* Stops the sweeper. The transport's consumers must be stopped before (rp_transport_stop).
 * Accepts NULL. */
void rp_batches_free(rp_batches_t *b);

/* POST /events/{id}/batch-grants {userIds, reason} -> 202 the batch; repeated user ids count
 * once. With an Idempotency-Key the same operator gets the first batch back (202) instead of a
 * second one; the key with another body is 422 IDEMPOTENCY_KEY_REUSED. 404 EVENT_NOT_FOUND,
 * 422 EVENT_CANCELED. Items are checked against the players' accounts when they settle: one
 * that names no account settles FAILED UNKNOWN_PLAYER, a disabled one ACCOUNT_DISABLED.
 * With ?dryRun=true (validated the same way) nothing is stored: the accounts are looked up
 * (503 AUTH_UNAVAILABLE when the auth worker cannot answer) and every item's grant rehearsed in
 * order (rp_claims_batch_dry_run) -> 200 {dryRun: true, items, expected: {SUCCESS,
 * ALREADY_CLAIMED, UNKNOWN_PLAYER, OUT_OF_STOCK, MAX_CLAIMS_REACHED, ACCOUNT_DISABLED}}; the
 * Idempotency-Key is not used. Needs the transport of rp_batches_start. */
void rp_batches_create(rp_batches_t *b, const rp_envelope_t *env, const char *event_id, rp_reply_t *rep);
/* GET /events/batches/{id} -> 200 the batch with counts per status and per failure reason and
 * status RUNNING (items still QUEUED) or COMPLETED. */
void rp_batches_get(rp_batches_t *b, const char *id, rp_reply_t *rep);
/* GET /events/batches?eventId=&cursor=&limit= -> 200 {items, nextCursor}: batches newest first,
 * without counts (GET /events/batches/{id} has them). */
void rp_batches_list(rp_batches_t *b, const rp_envelope_t *env, rp_reply_t *rep);
/* GET /events/batches/{id}/items?status=&cursor=&limit= -> 200 {items, nextCursor}. */
void rp_batches_items(rp_batches_t *b, const rp_envelope_t *env, const char *id, rp_reply_t *rep);

#endif
