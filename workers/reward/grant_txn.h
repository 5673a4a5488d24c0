/* grant_txn.h - the grant transaction and every other business body of the reward path,
 * written once and run by whichever store's unit of work (reward_store.h): the claim and the
 * records of its refusals, approve / reject / revoke, settling a batch item, the sweeper's lease
 * with its back-pressure, and batch creation with its idempotency. The rules decide here; a
 * store only stores and fetches. Nothing here reads or writes JSON: a claim's stored answer is
 * rendered by the caller's callback, outbox payloads by request.h. Thread-safe: state lives in
 * the caller's structs.
 *
 * Exactly once: at most one request holding a slot per (player, event, period) - the store's
 * unique active key - and every state change a compare-and-set on the status it expects, in the
 * same transaction as the stock, ledger, outbox, batch item and Idempotency-Key it implies. */
#ifndef RP_WORKERS_REWARD_GRANT_TXN_H
#define RP_WORKERS_REWARD_GRANT_TXN_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "request.h"
#include "reward_store.h"

typedef enum rp_grant_outcome {
    RP_GRANT_OK = 0,             /* recorded as asked: SUCCESS paid, or AWAITING_REVIEW holding the slot */
    RP_GRANT_ALREADY_CLAIMED,    /* another request holds the slot: result.holder */
    RP_GRANT_OUT_OF_STOCK,       /* a limited stock could not cover a line: recorded FAILED */
    RP_GRANT_MAX_CLAIMS_REACHED, /* the player holds maxClaims slots of the event: recorded FAILED */
    RP_GRANT_REFUSED,            /* the claim came judged FAILED (not active, conditions): recorded as given */
    RP_GRANT_REPLAYED,           /* the Idempotency-Key was used before: result.replay, nothing recorded */
    RP_GRANT_ITEM_SETTLED,       /* a batch item settled by another delivery meanwhile: nothing recorded */
    RP_GRANT_EVENT_CHANGED,      /* the event is no longer the version the claim was judged on: nothing recorded */
} rp_grant_outcome_t;

typedef struct rp_grant_result {
    rp_grant_outcome_t outcome;
    rp_request_t request; /* as recorded: OK, OUT_OF_STOCK, MAX_CLAIMS_REACHED, REFUSED */
    rp_request_t holder;  /* ALREADY_CLAIMED: the request holding the slot */
    rp_idem_t replay;     /* REPLAYED: the answer stored with the key */
} rp_grant_result_t;

/* Frees what res holds and zeroes it. Accepts NULL. */
void rp_grant_result_clear(rp_grant_result_t *res);

/* Renders the answer (status and a new JSON body) of a claim that ended as res, so that it is
 * stored with the claim's Idempotency-Key in the claim's own transaction. Called inside a unit
 * of work, maybe more than once; must have no side effects. */
typedef json_t *(*rp_grant_answer_fn)(void *ctx, const rp_grant_result_t *res, int *status);

typedef struct rp_claim {
    const rp_request_t *request; /* SUCCESS or AWAITING_REVIEW with its active key, or FAILED (judged) */
    int64_t max_claims;          /* 0 = unlimited */
    const char *idem_key;        /* NULL = none; else idem_hash and answer are required */
    const char *idem_hash;
    rp_grant_answer_fn answer;
    void *answer_ctx;
    int64_t event_version; /* > 0: the updatedAt of the event the request was judged on (see rp_grant_claim) */
} rp_claim_t;

/* A player's claim. With an Idempotency-Key used before, REPLAYED with the stored answer and
 * nothing else. Otherwise, in one transaction: the slot must be free (ALREADY_CLAIMED), the
 * player below maxClaims (MAX_CLAIMS_REACHED), every limited stock must cover its line
 * (OUT_OF_STOCK); then the request is inserted and, when SUCCESS, the ledger (one entry per
 * line) and the outbox message (id = request id) appended; the answer is stored with the key.
 * A refusal rolls all of that back and then records, in a transaction of its own, the FAILED
 * request (except for ALREADY_CLAIMED, which records nothing but the answer). With an
 * event_version, the transaction first checks that the event, as stored now, is still that
 * version and not canceled: otherwise EVENT_CHANGED and nothing is recorded, and the caller judges
 * the claim again on the event as it is now (so a claim judged on a kept copy of the event never
 * pays against an edit or a cancellation that committed before it). False with err on a store
 * failure: nothing recorded. */
bool rp_grant_claim(rp_reward_store_t *s, const rp_claim_t *c, rp_grant_result_t *res, rp_err_t *err);

/* Settles batch item seq of request->batch_id for request->user_id: the same grant (SUCCESS,
 * source BATCH, processor the batch's creator; no conditions or review, the period, stock and
 * maxClaims hold), and the item moves QUEUED -> SUCCESS in the grant's transaction, so a
 * redelivered item is never paid twice (ITEM_SETTLED). A refusal settles the item FAILED with
 * the reason (ALREADY_CLAIMED with the holder's id). False with err on a store failure: the item
 * stays QUEUED, to be sent again. */
bool rp_grant_batch_item(rp_reward_store_t *s, const rp_request_t *request, int64_t seq, int64_t max_claims,
                         rp_grant_result_t *res, rp_err_t *err);

/* One item of a chunk (rp_grant_batch_chunk). */
typedef struct rp_grant_chunk_item {
    int64_t seq;
    const rp_request_t *request; /* the grant, as rp_grant_batch_item takes it; NULL: refused before any grant */
    const char *reason;          /* request NULL: the item settles FAILED with this reason (UNKNOWN_PLAYER, ...) */
    rp_grant_outcome_t outcome;  /* out: OK (paid), ALREADY_CLAIMED, OUT_OF_STOCK, MAX_CLAIMS_REACHED (settled
                                    FAILED), REFUSED (settled FAILED with reason), ITEM_SETTLED (nothing written) */
} rp_grant_chunk_item_t;

/* Settles items[0..n) of batch batch_id (a chunk message) in one unit of work, in order, each as
 * rp_grant_batch_item (or rp_grant_item_fail at now, for an item without request) would, so that
 * each sees the stock, slots and claims the items before it took. One item's refusal undoes
 * nothing of the others: every refusal is decided by reads before the item's first write. When a
 * write refuses what the reads allowed (a concurrent claim won a race), the chunk is rolled back
 * and tried again, then settled item by item. False with err on a store failure: the chunk's
 * unit of work left nothing (item by item, the items before the failure are settled), and what
 * stays QUEUED is sent again. Each items[i].outcome is set on success. */
bool rp_grant_batch_chunk(rp_reward_store_t *s, const char *batch_id, rp_grant_chunk_item_t *items, size_t n,
                          int64_t max_claims, int64_t now, rp_err_t *err);

/* A rehearsal of rp_grant_claim that writes nothing: the same grant body in a unit of work that
 * always rolls back, with nothing paid, no Idempotency-Key and no refusal recorded. res->outcome
 * is what the claim would end with now: OK, ALREADY_CLAIMED (res->holder), OUT_OF_STOCK,
 * MAX_CLAIMS_REACHED, or REFUSED for a request that came judged FAILED (res->request, with its
 * reason and details). *state receives the event's cancel time and stock as that unit of work
 * read them. False with err on a store failure. */
bool rp_grant_claim_check(rp_reward_store_t *s, const rp_claim_t *c, rp_grant_result_t *res, rp_event_state_t *state,
                          rp_err_t *err);

/* A rehearsal of a batch that writes nothing: for each of user_ids[0..n), in order, the grant a
 * batch item would run (tmpl with that user, a new id and its active key; tmpl as
 * rp_grant_batch_item takes it), all in one unit of work that rolls back at the end, so that
 * each item sees the stock, slots and claims the items before it took. outcomes[i] (an array
 * of n) is OK, ALREADY_CLAIMED, OUT_OF_STOCK or MAX_CLAIMS_REACHED. One transaction: on MongoDB
 * bounded by its transaction lifetime. False with err on a store failure. */
bool rp_grant_batch_dry_run(rp_reward_store_t *s, const rp_request_t *tmpl, const char *const *user_ids, size_t n,
                            int64_t max_claims, rp_grant_outcome_t *outcomes, rp_err_t *err);

/* Settles a QUEUED item FAILED with reason without a grant (its event is gone or canceled); an
 * item settled meanwhile stays as it is. */
bool rp_grant_item_fail(rp_reward_store_t *s, const char *batch_id, int64_t seq, const char *reason, int64_t now,
                        rp_err_t *err);

typedef enum rp_decision { RP_DECIDE_APPROVE = 0, RP_DECIDE_REJECT, RP_DECIDE_REVOKE } rp_decision_t;

typedef enum rp_decide_outcome {
    RP_DECIDED = 0,
    RP_DECIDE_NOT_FOUND,
    RP_DECIDE_WRONG_STATE,    /* not in the state the decision needs (decided meanwhile): the request as it is */
    RP_DECIDE_OUT_OF_STOCK,   /* approval found a stock short: the request was FAILED (OUT_OF_STOCK) instead */
    RP_DECIDE_SELF,           /* approve or reject of the processor's own request: nothing changed */
    RP_DECIDE_EVENT_CANCELED, /* approval of a canceled event's request: it was FAILED (EVENT_CANCELED) instead */
} rp_decide_outcome_t;

typedef struct rp_decide_result {
    rp_decide_outcome_t outcome;
    rp_request_t request; /* after the decision, or as found */
} rp_decide_result_t;

/* An operator's decision on request id: APPROVE (AWAITING_REVIEW -> SUCCESS: stock, ledger,
 * outbox), REJECT (AWAITING_REVIEW -> FAILED, reason REJECTED, the slot freed), REVOKE (SUCCESS
 * -> REVOKED: stock returned, reversal ledger entries, outbox message "<id>:revoked"). text is
 * the notes (approve, reject) or the reason (revoke), may be NULL. Every move is a
 * compare-and-set on the expected status. Nobody approves or rejects his own request (SELF,
 * nothing written). An approval whose event is canceled, as stored in the approval's own unit
 * of work, pays nothing: the request moves to FAILED (EVENT_CANCELED) instead, freeing the slot.
 * False with err on a store failure. */
bool rp_grant_decide(rp_reward_store_t *s, rp_decision_t d, const char *id, const char *processor_id, const char *text,
                     int64_t now, rp_decide_result_t *res, rp_err_t *err);

/* Frees the request of res and zeroes it. */
void rp_decide_result_clear(rp_decide_result_t *res);

/* The sweeper's lease: up to limit QUEUED items due by now, each due again at now +
 * redeliver_ms, but never more than max_in_flight sent and unsettled at once (back-pressure).
 * *items a new array of *n (free()), NULL when none. */
bool rp_grant_lease_items(rp_reward_store_t *s, int64_t now, int64_t redeliver_ms, int limit, int64_t max_in_flight,
                          rp_item_ref_t **items, size_t *n, rp_err_t *err);

typedef enum rp_batch_created {
    RP_BATCH_CREATED = 0, /* stored with its items */
    RP_BATCH_EXISTED,     /* the creator used this Idempotency-Key for the same body: that batch */
    RP_BATCH_KEY_REUSED,  /* the key was used for another body: nothing stored */
} rp_batch_created_t;

/* Creates batch b with one item per user id, or with an Idempotency-Key used before by the same
 * creator returns that batch (finishing its creation if a crash cut it short) or KEY_REUSED
 * when the body differs. *existing_id receives the batch id answered. */
bool rp_grant_batch_create(rp_reward_store_t *s, const rp_batch_t *b, const char *const *user_ids, size_t n,
                           rp_batch_created_t *outcome, char existing_id[RP_OID_LEN], rp_err_t *err);

#endif
