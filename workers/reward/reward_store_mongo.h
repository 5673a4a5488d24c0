/* reward_store_mongo.h - the reward repository (reward_store.h) on MongoDB; thread-safe.
 *
 * Collections (ids as string _id, times as BSON dates, opaque client JSON as in lib/mongo_util.h):
 *   event_reward_requests {_id, userId, eventId, periodKey, activeKey, status, claimedRewards:
 *                       [{rewardIndex, rewardDefinitionId, name, type, value (opaque), quantity}],
 *                       requestedAt, processedAt, processorId, failureReason, failureDetails
 *                       (opaque), notes, source, batchId, createdAt, updatedAt}. activeKey is
 *                       present exactly while the request is not FAILED (it is $unset on the way
 *                       to FAILED): the unique index on it is partial on {activeKey: {$exists:
 *                       true}}, so at most one non-FAILED request per (user, event, period).
 *   reward_ledger      {_id, seq, requestId, userId, eventId, rewardIndex, rewardDefinitionId,
 *                       quantity, entryType (GRANT|REVERSAL), processorId, at}; append-only.
 *   outbox             {_id: seq (int64), messageId, routingKey, requestId, payload (opaque),
 *                       createdAt, publishedAt, leaseOwner, leaseUntil}
 *   idempotency_keys   {_id, userId, key, requestHash, status, response (opaque), createdAt}
 *   batches            {_id, eventId, reason, createdBy, idemKey (absent without a key),
 *                       requestHash, total, duplicates, createdAt}
 *   batch_items        {_id: "<batchId>:<seq>", batchId, seq, userId, status, failureReason,
 *                       requestId, attempts, dueAt, settledAt}
 *   counters           {_id: "reward_ledger" | "outbox", seq}: the last sequence number handed out;
 *                       {_id: "batch_lease", seq}: bumped by every sweep, to serialise sweepers.
 * Stock lives in the event documents (RP_EVENT_MONGO_EVENTS, rewards.<i>.stockLeft, null =
 * unlimited); every grant also increments the event's `grants` field, so an event_update that
 * replaces rewards (it first looks for requests of the event) write-conflicts with a concurrent
 * grant instead of missing it.
 *
 * Sequence numbers: ledger and outbox seq come from the counters documents, incremented inside
 * the grant's own transaction. Two transactions that both increment a counter write-conflict,
 * and the loser reruns after the winner committed, so seq order is commit order and a reader
 * paging with `seq > after` never skips a row that commits later with a smaller seq. The price:
 * all grants that pay out serialise on these two documents (the driver reruns the loser at
 * once); the counter update is the last step before the ledger and outbox inserts to keep the
 * conflict window short.
 *
 * Every multi-document write runs in a transaction (write concern majority, snapshot reads): the
 * server must be a replica set. */
#ifndef RP_WORKERS_REWARD_STORE_MONGO_H
#define RP_WORKERS_REWARD_STORE_MONGO_H

#include "err.h"
#include "reward_store.h"

#define RP_REWARD_MONGO_LEDGER "reward_ledger"
#define RP_REWARD_MONGO_OUTBOX "outbox"
#define RP_REWARD_MONGO_IDEMPOTENCY "idempotency_keys"
#define RP_REWARD_MONGO_BATCHES "batches"
#define RP_REWARD_MONGO_BATCH_ITEMS "batch_items"
#define RP_REWARD_MONGO_COUNTERS "counters"

/* Connects a client pool to uri (a MongoDB connection string; its options apply), checks that
 * the server is a replica set, creates the indexes and the counters documents. Returns a new
 * store, free with its ops->free; NULL with err on failure: 500 CONFIG_INVALID (bad URI or empty
 * db_name), 503 STORE_UNAVAILABLE (no server, not a replica set), 500 STORE_ERROR (index
 * creation refused, e.g. an index of the same name with other options). */
rp_reward_store_t *rp_reward_store_mongo_open(const char *uri, const char *db_name, rp_err_t *err);

#endif
