/* grant.h - the grant engine: a player's claim judged and paid exactly once, and the operator
 * decisions (approve, reject, revoke) on recorded requests. Thread-safe; all state changes go
 * through the reward store's transactions. */
#ifndef RP_WORKERS_REWARD_GRANT_H
#define RP_WORKERS_REWARD_GRANT_H

#include "envelope.h"
#include "event/event_repo.h"
#include "reward_store.h"

typedef struct rp_grant_engine rp_grant_engine_t;

/* Both stores are borrowed and must outlive the engine. */
rp_grant_engine_t *rp_grant_engine_new(rp_reward_store_t *store, rp_event_repo_t *events);
void rp_grant_engine_free(rp_grant_engine_t *g);

/* POST /events/{id}/reward-requests by env's caller. Replies 201 (SUCCESS or AWAITING_REVIEW),
 * 409 ALREADY_CLAIMED, 422 CONDITION_NOT_MET / EVENT_NOT_ACTIVE / OUT_OF_STOCK /
 * MAX_CLAIMS_REACHED / IDEMPOTENCY_KEY_REUSED, 404 EVENT_NOT_FOUND; refusals carry the recorded
 * request under "request". With an Idempotency-Key the first response is stored and replayed. */
void rp_grant_claim(rp_grant_engine_t *g, const rp_envelope_t *env, const char *event_id, rp_reply_t *rep);

/* Settles item seq of batch (the batch document) for user_id: grants event's rewards (event may
 * be NULL when it does not exist) with processorId = the batch creator and source BATCH,
 * skipping conditions and review (the operator decided) but not the period, stock and claim
 * limits; a refusal settles the item FAILED with its reason. The item's settlement is part of
 * the grant transaction, so a redelivered item is never paid twice. False on a store error (the
 * item stays QUEUED and is sent again). */
bool rp_grant_batch_item(rp_grant_engine_t *g, const json_t *event, const json_t *batch, int64_t seq,
                         const char *user_id, rp_err_t *err);

/* Moves request id from `from` to `to` as env's caller (the processor), with an optional text
 * (notes, or the reason of a revocation) and the failure reason code to record. */
void rp_grant_decide(rp_grant_engine_t *g, const rp_envelope_t *env, const char *id, const char *from, const char *to,
                     const char *text, const char *reason_code, rp_reply_t *rep);

#endif
