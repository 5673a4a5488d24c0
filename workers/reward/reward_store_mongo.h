/* reward_store_mongo.h - the reward store (reward_store.h) on MongoDB; thread-safe. It stores
 * and fetches only: every rule of the grant is in grant_txn.c, run in this store's unit of work
 * (mongoc_client_session_with_transaction, write concern majority, snapshot reads), so the
 * server must be a replica set.
 *
 * Collections (ids as string _id, times as BSON dates with null for "not set", opaque client
 * JSON as in lib/mongo_util.h):
 *   event_reward_requests {_id, userId, eventId, periodKey, activeKey, status, claimedRewards:
 *                       [{rewardIndex, rewardDefinitionId, name, type, value (opaque), quantity}]
 *                       (one document per line), requestedAt, processedAt, processorId,
 *                       failureReason, failureDetails (opaque), notes, source, batchId,
 *                       createdAt, updatedAt}. activeKey is present exactly while the request
 *                       holds its slot (it is $unset when the slot is released): the unique index
 *                       on it is partial on {activeKey: {$exists: true}}, so at most one
 *                       non-FAILED request per (user, event, period).
 *   reward_ledger      {_id, seq, requestId, userId, eventId, rewardIndex, rewardDefinitionId,
 *                       quantity, entryType (GRANT|REVERSAL), processorId, at}; append-only.
 *   outbox             {_id: seq (int64), messageId (unique), routingKey, requestId, payload
 *                       (opaque), createdAt, publishedAt, leaseOwner, leaseUntil}
 *   idempotency_keys   {_id, userId, key, requestHash, status, response (opaque), createdAt};
 *                       unique on (userId, key).
 *   batches            {_id, eventId, reason, createdBy, idemKey (absent without a key: the
 *                       unique (createdBy, idemKey) index is partial), requestHash, total,
 *                       duplicates, createdAt, state (CREATING | OPEN)}
 *   batch_items        {_id: "<batchId>:<seq>", batchId, seq, userId, status, failureReason,
 *                       requestId, attempts, dueAt, settledAt}
 *   counters           {_id: "reward_ledger" | "outbox", seq}: the last sequence number handed
 *                       out; {_id: "batch_lease", seq}: bumped by every sweep (tx_items_in_flight),
 *                       so that concurrent sweeps write-conflict and run one after the other.
 * Stock lives in the event documents (RP_EVENT_MONGO_EVENTS, rewards.<i>.stockLeft, null =
 * unlimited): tx_stock_take reads which lines are limited once, then sends one guarded update
 * per limited line ({_id, rewards.<i>.stockLeft: {$gte: q}}, $inc -q). Every request insert
 * first increments the event's `grants` field, so an event update that replaces rewards (it
 * first looks for requests of the event) write-conflicts with a concurrent grant instead of
 * missing it.
 *
 * Sequence numbers: ledger and outbox seq come from the counters documents, incremented inside
 * the grant's own transaction. Two transactions that both increment a counter write-conflict,
 * and the loser reruns after the winner committed, so seq order is commit order and a reader
 * paging with `seq > after` never skips a row that commits later with a smaller seq. The price:
 * all grants that pay out serialise on these two documents (the driver reruns the loser at
 * once); the grant body appends the ledger and the outbox after all its checks, which keeps the
 * conflict window short.
 *
 * Batches are stored in durable steps (w: majority each), not in one transaction (100,000 items
 * would strain its size and lifetime): the batch CREATING, the items in chunks of 5,000
 * "parked" (dueAt 9999-12-31: no sweep leases them, none counts as in flight), the items made
 * due at the batch's creation time, the batch OPEN. Each step is safe to repeat; a creation cut
 * short is finished by batch_store with resume. */
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
 * the server is a replica set, creates the indexes and the counters documents, all outside any
 * transaction. Returns a new store, free with its ops->free; NULL with err on failure:
 * RP_ERR_CONFIG (bad URI or empty db_name), RP_ERR_STORE_UNAVAILABLE (no server, not a replica
 * set), RP_ERR_STORE (index creation refused, e.g. an index of the same name with other
 * options). */
rp_reward_store_t *rp_reward_store_mongo_open(const char *uri, const char *db_name, rp_err_t *err);

#endif
