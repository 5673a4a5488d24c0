/* event_repo_mongo.h - the event repository (event_repo.h) on MongoDB; thread-safe.
 *
 * Collections (ids as string _id, times as BSON dates, opaque client JSON as in lib/mongo_util.h):
 *   reward_definitions {_id, name, type, value, description, isActive, referenced, createdBy,
 *                       createdAt, updatedAt}; (createdAt, _id)
 *   events             {_id, title, description, startDate, endDate, canceledAt, conditions,
 *                       conditionLogic, claimPeriod, maxClaims, requiresApproval, dayOffsetMinutes,
 *                       createdBy, createdAt, updatedAt, rewards: [{rewardIndex, rewardDefinitionId,
 *                       quantity, stock, stockLeft, customData}]}; (createdAt, _id), (startDate, endDate)
 *                       A grant decrements rewards.<i>.stockLeft (null = unlimited) with a guard.
 *   progress_facts     {_id, userId, idempotencyKey, type, value, occurredAt, reportedBy, receivedAt};
 *                       (userId, idempotencyKey) unique: a key is scoped to its player
 *   user_progress      one document per (userId, kind, key), unique, server-assigned _id:
 *                       (the fields of one rp_aggregate_t, written whole by tx_aggregate_put)
 *                       kind "level"   key null      {maxLevel, updatedAt}
 *                       kind "login"   key UTC day   {minutes: binary, 180 bytes = 1440 bits}
 *                       kind "quest"   key quest id  {completedAt}
 *                       kind "invite"  key invitee   {invitedAt}
 *                       kind "counter" key counter   {total, updatedAt}
 *   audit_logs         shared with the auth store, entries tagged log: "event"
 * Reads RP_EVENT_MONGO_REQUESTS (written by the reward store) when an event_update asks for
 * "only if no slots", and settles requests there when an event is canceled. Every multi-document write runs in a
 * transaction: the server must be a replica set. */
#ifndef RP_WORKERS_EVENT_REPO_MONGO_H
#define RP_WORKERS_EVENT_REPO_MONGO_H

#include "err.h"
#include "event_repo.h"

/* Collection names shared with the reward store, which writes requests and moves stock. */
#define RP_EVENT_MONGO_DEFINITIONS "reward_definitions"
#define RP_EVENT_MONGO_EVENTS "events"
#define RP_EVENT_MONGO_REQUESTS "event_reward_requests" /* {_id, eventId, ...} */
#define RP_EVENT_MONGO_PROGRESS "user_progress"
#define RP_EVENT_MONGO_FACTS "progress_facts"

/* Connects a client pool to uri, checks that the server is a replica set and creates the
 * indexes. Returns a new repository, free with its ops->free; NULL with err on failure: 500
 * CONFIG_INVALID (bad URI), 503 STORE_UNAVAILABLE (no server, not a replica set), 500
 * STORE_ERROR (index creation refused). */
rp_event_repo_t *rp_event_repo_mongo_open(const char *uri, const char *db_name, rp_err_t *err);

#endif
