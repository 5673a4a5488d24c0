/* claims.h - the service edge of the grant: a player's claim judged against its event (window,
 * period, conditions over the player's progress) and handed to the grant transaction
 * (grant_txn.h), operators' decisions, batch items settled by the sweeper's consumers, and the
 * JSON every one of them answers. The rules of the transaction itself are in grant_txn.c.
 * Thread-safe; all state changes go through the reward store's units of work. */
#ifndef RP_WORKERS_REWARD_CLAIMS_H
#define RP_WORKERS_REWARD_CLAIMS_H

#include "envelope.h"
#include "event/event_repo.h"
#include "grant_txn.h"
#include "reward_store.h"

typedef struct rp_claims rp_claims_t;

/* Both stores are borrowed and must outlive the result. Free with rp_claims_free. */
rp_claims_t *rp_claims_new(rp_reward_store_t *store, rp_event_repo_t *events);
void rp_claims_free(rp_claims_t *c);

/* POST /events/{id}/reward-requests by env's caller. Replies 201 (SUCCESS or AWAITING_REVIEW),
 * 409 ALREADY_CLAIMED, 422 CONDITION_NOT_MET / EVENT_NOT_ACTIVE / OUT_OF_STOCK /
 * MAX_CLAIMS_REACHED / IDEMPOTENCY_KEY_REUSED, 404 EVENT_NOT_FOUND; refusals carry the recorded
 * request (or the one holding the slot) under "request". With an Idempotency-Key the first
 * answer is stored in the claim's own transaction and replayed to every retry. */
void rp_claims_claim(rp_claims_t *c, const rp_envelope_t *env, const char *event_id, rp_reply_t *rep);

/* Approve, reject or revoke request id as env's caller, with an optional text (notes, or the
 * reason of a revocation). Replies 200 the request, 404 REQUEST_NOT_FOUND, 409 ALREADY_DECIDED /
 * NOT_REVOCABLE, 422 OUT_OF_STOCK (an approval that found the stock empty failed the request). */
void rp_claims_decide(rp_claims_t *c, const rp_envelope_t *env, const char *id, rp_decision_t d, const char *text,
                      rp_reply_t *rep);

/* Settles item seq of batch for user_id against event (the stored document; NULL when it no
 * longer exists): EVENT_NOT_FOUND or EVENT_CANCELED settle it FAILED, otherwise the batch grant
 * of grant_txn.h. False with err on a store failure (the item stays QUEUED, sent again). */
bool rp_claims_batch_item(rp_claims_t *c, const json_t *event, const rp_batch_t *batch, int64_t seq,
                          const char *user_id, rp_err_t *err);

#endif
