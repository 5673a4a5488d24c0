/* claims.h - the service edge of the grant: a player's claim judged against its event (window,
 * period, conditions over the player's progress) and handed to the grant transaction
 * (grant_txn.h), operators' decisions, batch items settled by the sweeper's consumers, and the
 * JSON every one of them answers. The rules of the transaction itself are in grant_txn.c.
 * Thread-safe; all state changes go through the reward store's units of work. */
#ifndef RP_WORKERS_REWARD_CLAIMS_H
#define RP_WORKERS_REWARD_CLAIMS_H

#include "accounts.h"
#include "envelope.h"
#include "event/event_repo.h"
#include "grant_txn.h"
#include "reward_store.h"

typedef struct rp_claims rp_claims_t;

/* Both stores are borrowed and must outlive the result. Claims are judged on events kept up to
 * events_cache_ms (EVENTS_CACHE_MS; 0 reads every time), never paid on a stale one (event_cache.h).
 * Free with rp_claims_free. */
rp_claims_t *rp_claims_new(rp_reward_store_t *store, rp_event_repo_t *events, int events_cache_ms);
void rp_claims_free(rp_claims_t *c);

/* POST /events/{id}/reward-requests by env's caller. Replies 201 (SUCCESS or AWAITING_REVIEW),
 * 409 ALREADY_CLAIMED, 422 CONDITION_NOT_MET / EVENT_NOT_ACTIVE / OUT_OF_STOCK /
 * MAX_CLAIMS_REACHED / IDEMPOTENCY_KEY_REUSED, 404 EVENT_NOT_FOUND; refusals carry the recorded
 * request (or the one holding the slot) under "request". With an Idempotency-Key the first
 * answer is stored in the claim's own transaction and replayed to every retry. 503 STORE_BUSY when
 * the event changed under the claim three times running. */
void rp_claims_claim(rp_claims_t *c, const rp_envelope_t *env, const char *event_id, rp_reply_t *rep);

/* Approve, reject or revoke request id as env's caller, with an optional text (notes, or the
 * reason of a revocation). Replies 200 the request, 404 REQUEST_NOT_FOUND, 409 ALREADY_DECIDED /
 * NOT_REVOCABLE, 422 OUT_OF_STOCK (an approval that found the stock empty failed the request). */
void rp_claims_decide(rp_claims_t *c, const rp_envelope_t *env, const char *id, rp_decision_t d, const char *text,
                      rp_reply_t *rep);

/* Settles the items seqs[0..n) of batch, of players user_ids[0..n) whose accounts are in
 * states[0..n), against event (the stored document; NULL when it no longer exists), in one unit
 * of work (rp_grant_batch_chunk): EVENT_NOT_FOUND, EVENT_CANCELED, UNKNOWN_PLAYER or
 * ACCOUNT_DISABLED settle an item FAILED, in that order; otherwise the batch grant of
 * grant_txn.h. Items settled meanwhile stay as they are. False with err on a store failure (the
 * items stay QUEUED, sent again). */
bool rp_claims_batch_chunk(rp_claims_t *c, const json_t *event, const rp_batch_t *batch, const int64_t *seqs,
                           const char *const *user_ids, const rp_account_state_t *states, size_t n, rp_err_t *err);

/* What a batch would settle, counted (POST /events/{id}/batch-grants?dryRun=true). */
typedef struct rp_batch_expect {
    int64_t items, success, already_claimed, unknown_player, account_disabled, out_of_stock, max_claims_reached;
} rp_batch_expect_t;

/* Rehearses batch (its creator and reason) for user_ids[0..n) (each once, in order; states[i]
 * the account of user_ids[i]) against event (the stored, not canceled document), writing
 * nothing: the items of unknown and disabled accounts fail as rp_claims_batch_chunk fails them,
 * the others run rp_grant_batch_dry_run. *out receives the counts. False with err on a store
 * failure. */
bool rp_claims_batch_dry_run(rp_claims_t *c, const json_t *event, const rp_batch_t *batch, const char *const *user_ids,
                             const rp_account_state_t *states, size_t n, rp_batch_expect_t *out, rp_err_t *err);

/* GET /events/{id}/eligibility for user_id, whose account is in state (ACTIVE or DISABLED):
 * 200 {eventId, userId, eligible, reason, unmet, periodKey, existingRequestId, stockLeft}. The
 * claim's own judgement (window, slot, conditions) and its grant body rehearsed in a unit of
 * work that rolls back (rp_grant_claim_check), so the answer is what a claim made now would
 * get, and nothing is written. reason: null, EVENT_NOT_ACTIVE, ALREADY_CLAIMED (the holder in
 * existingRequestId), CONDITION_NOT_MET (unmet lists each unmet condition with the player's
 * progress, as the claim's details do; [] otherwise), OUT_OF_STOCK, MAX_CLAIMS_REACHED, or
 * ACCOUNT_DISABLED, which comes first. stockLeft: the smallest stock left among the event's
 * limited rewards, null when none is limited. 404 EVENT_NOT_FOUND. */
void rp_claims_eligibility(rp_claims_t *c, const char *event_id, const char *user_id, rp_account_state_t state,
                           rp_reply_t *rep);

#endif
