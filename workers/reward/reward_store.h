/* reward_store.h - the reward worker's repository: reward requests, the grant transaction,
 * decisions, the ledger, the outbox and claim idempotency keys. Backend-neutral: SQLite now,
 * MongoDB later; a backend only stores and fetches, every rule lives in reward_service.c.
 * A store is thread-safe.
 *
 * Requests travel as JSON documents in the API's shape: {id, userId, eventId, periodKey, status,
 * claimedRewards: [{rewardIndex, rewardDefinitionId, name, type, value, quantity}], requestedAt,
 * processedAt, processorId, failureReason, failureDetails, notes, source, batchId, createdAt,
 * updatedAt}, times as ISO-8601 strings, absent values as null. */
#ifndef RP_WORKERS_REWARD_STORE_H
#define RP_WORKERS_REWARD_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct rp_reward_store rp_reward_store_t;

/* One reward of a grant: which event reward row (stock) and how many. */
typedef struct rp_grant_line {
    int reward_index;
    int64_t quantity;
} rp_grant_line_t;

typedef struct rp_grant_input {
    json_t *request;        /* borrowed: the request document to insert (status SUCCESS or AWAITING_REVIEW) */
    const char *active_key; /* unique among non-FAILED requests */
    const rp_grant_line_t *lines;
    size_t nlines;
    int64_t max_claims_per_user; /* 0 = unlimited: non-FAILED requests of this user for this event */
    json_t *outbox_payload;      /* borrowed; written only when the request is SUCCESS */
    const char *batch_id;        /* NULL, or the batch item this grant settles: */
    int64_t batch_seq;           /* the item must still be QUEUED and becomes SUCCESS in the same transaction */
} rp_grant_input_t;

typedef enum {
    RP_GRANT_OK = 0,
    RP_GRANT_DUPLICATE,     /* a non-FAILED request holds the active key: *existing is set */
    RP_GRANT_OUT_OF_STOCK,  /* a limited stock could not cover a line: nothing written */
    RP_GRANT_LIMIT_REACHED, /* max_claims_per_user reached: nothing written */
    RP_GRANT_ITEM_SETTLED,  /* the batch item was no longer QUEUED (settled by another delivery): nothing written */
} rp_grant_outcome_t;

/* A new batch grant: stored with one QUEUED item per user id, all due at created_at. */
typedef struct rp_batch_input {
    const char *id, *event_id, *reason, *created_by;
    const char *idempotency_key; /* NULL or "" = none; else unique per created_by */
    const char *request_hash;    /* identifies the body a key was first used with */
    const char *const *user_ids;
    size_t nusers;
    int64_t duplicates; /* user ids dropped as repeated, for the record */
    int64_t created_at;
} rp_batch_input_t;

typedef enum {
    RP_DECIDE_OK = 0,
    RP_DECIDE_NOT_FOUND,
    RP_DECIDE_WRONG_STATE,  /* the request is not in the expected state: *after holds it as it is */
    RP_DECIDE_OUT_OF_STOCK, /* approval found a stock empty: the request was FAILED instead */
} rp_decide_outcome_t;

typedef struct rp_request_filter {
    const char *user_id, *event_id, *status; /* NULL = any */
    int64_t from_ms, to_ms;                  /* requestedAt in [from, to); 0 = open */
    const char *cursor;                      /* id of the last item of the previous page, or NULL */
    int limit;
} rp_request_filter_t;

typedef struct rp_reward_store_ops {
    bool (*ping)(rp_reward_store_t *s, rp_err_t *err);
    /* The grant: in ONE transaction insert the request, decrement every limited stock with a
     * guard, append one ledger entry per line and one outbox message (SUCCESS only). */
    bool (*grant)(rp_reward_store_t *s, const rp_grant_input_t *in, rp_grant_outcome_t *outcome, json_t **existing,
                  rp_err_t *err);
    /* Inserts a FAILED request (no active key) on its own. */
    bool (*record_failed)(rp_reward_store_t *s, json_t *request, rp_err_t *err);
    /* Moves request id from `from_status` to `to_status` in one transaction (compare-and-set),
     * setting processedAt=now, processorId, notes, failureReason; when to_status is SUCCESS the
     * lines' stocks are decremented (guarded) and ledger + outbox written (out of stock → the
     * request becomes FAILED with failureReason OUT_OF_STOCK); when to_status is REVOKED,
     * reversal ledger entries are appended, stocks returned and outbox_payload written; when
     * to_status is FAILED the active key is released. *after receives the request document. */
    bool (*transition)(rp_reward_store_t *s, const char *id, const char *from_status, const char *to_status,
                       const char *processor_id, const char *notes, const char *failure_reason,
                       const rp_grant_line_t *lines, size_t nlines, json_t *outbox_payload, int64_t now_ms,
                       rp_decide_outcome_t *outcome, json_t **after, rp_err_t *err);
    bool (*get_request)(rp_reward_store_t *s, const char *id, json_t **request, rp_err_t *err);
    bool (*find_active)(rp_reward_store_t *s, const char *active_key, json_t **request, rp_err_t *err);
    bool (*list_requests)(rp_reward_store_t *s, const rp_request_filter_t *f, json_t **items, bool *more,
                          rp_err_t *err);
    /* Ledger entries by seq ascending after `after_seq`, optional user/event filters. */
    bool (*list_ledger)(rp_reward_store_t *s, const char *user_id, const char *event_id, int64_t after_seq, int limit,
                        json_t **items, bool *more, rp_err_t *err);
    /* Outbox messages by seq ascending after `after_seq` (the grants feed). */
    bool (*list_outbox)(rp_reward_store_t *s, int64_t after_seq, int limit, json_t **items, bool *more, rp_err_t *err);
    /* Leases up to limit unpublished outbox messages (in commit order) to owner until
     * now + lease_ms, skipping rows another owner holds; *items = [{seq, messageId, routingKey,
     * payload}]. */
    bool (*outbox_lease)(rp_reward_store_t *s, const char *owner, int64_t now, int64_t lease_ms, int limit,
                         json_t **items, rp_err_t *err);
    /* Marks the messages with these sequence numbers published at now. */
    bool (*outbox_published)(rp_reward_store_t *s, const int64_t *seqs, size_t n, int64_t now, rp_err_t *err);
    /* Claim idempotency: *found false when unknown; else the stored hash/status/response. */
    bool (*idem_get)(rp_reward_store_t *s, const char *user_id, const char *key, bool *found, char hash[65],
                     int *status, json_t **response, rp_err_t *err);
    /* Stores the first response for (user, key); an existing entry is kept (first one wins). */
    bool (*idem_put)(rp_reward_store_t *s, const char *user_id, const char *key, const char *hash, int status,
                     const json_t *response, int64_t now_ms, rp_err_t *err);
    /* Batches. batch_create stores the batch and its items in one transaction; when the creator
     * already used the idempotency key, nothing is written, *existed is set and existing_id /
     * existing_hash name the first batch. */
    bool (*batch_create)(rp_reward_store_t *s, const rp_batch_input_t *in, bool *existed, char existing_id[25],
                         char existing_hash[65], rp_err_t *err);
    /* *doc NULL when unknown; else {id, eventId, reason, createdBy, total, duplicates, createdAt}
     * and, with counts, also counts: {QUEUED, SUCCESS, FAILED}, failures: {reason: n},
     * lastSettledAt (ISO or null). */
    bool (*batch_get)(rp_reward_store_t *s, const char *id, bool counts, json_t **doc, rp_err_t *err);
    /* Batches newest first by (createdAt, id), optionally of one event, after cursor (the id of
     * the previous page's last batch); the documents of batch_get without counts. */
    bool (*batch_list)(rp_reward_store_t *s, const char *event_id, const char *cursor, int limit, json_t **items,
                       bool *more, rp_err_t *err);
    /* Items by seq after `after_seq` (optional status filter): [{seq, userId, status,
     * failureReason, requestId, attempts, settledAt}]. */
    bool (*batch_items)(rp_reward_store_t *s, const char *batch_id, const char *status, int64_t after_seq, int limit,
                        json_t **items, bool *more, rp_err_t *err);
    /* The sweeper's lease: takes up to limit QUEUED items due by now (oldest first), makes them
     * due again at now + redeliver_ms and counts the attempt, so they are sent again unless
     * settled by then; takes none while max_in_flight items are already sent and not yet due.
     * *items = [{batchId, seq}] in (batch, seq) order within equal due times. */
    bool (*batch_lease)(rp_reward_store_t *s, int64_t now, int64_t redeliver_ms, int limit, int64_t max_in_flight,
                        json_t **items, rp_err_t *err);
    /* The items seqs[0..n) of a batch as [{seq, userId, status}] (unknown seqs are skipped). */
    bool (*batch_items_get)(rp_reward_store_t *s, const char *batch_id, const int64_t *seqs, size_t n, json_t **items,
                            rp_err_t *err);
    /* Settles a QUEUED item as FAILED with reason (request_id may be NULL); a settled item is
     * left as it is. */
    bool (*batch_item_fail)(rp_reward_store_t *s, const char *batch_id, int64_t seq, const char *reason,
                            const char *request_id, int64_t now, rp_err_t *err);
    void (*free)(rp_reward_store_t *s);
} rp_reward_store_ops_t;

struct rp_reward_store {
    const rp_reward_store_ops_t *ops;
};

/* Opens the SQLite reward store on <dir>/events.db (the event store's file). Returns a new store
 * (free with s->ops->free) or NULL with err. */
rp_reward_store_t *rp_reward_store_sqlite_open(const char *dir, int max_conns, rp_err_t *err);

#endif
