/* reward_schema_sqlite.c - the reward tables of events.db, as migration steps of the "reward"
 * component (see reward_schema_sqlite.h). Times are epoch milliseconds, ids 24-hex ObjectIds,
 * JSON columns are checked with json_valid. Constant data. */
#include "reward_schema_sqlite.h"

#include <stddef.h>

static const char v1[] =
    /* reward requests: at most one non-FAILED request per (user, event, period) through the
     * partial unique index on active_key, which FAILED requests do not carry */
    "CREATE TABLE reward_requests ("
    "  id TEXT PRIMARY KEY,"
    "  user_id TEXT NOT NULL,"
    "  event_id TEXT NOT NULL,"
    "  period_key TEXT NOT NULL,"
    "  active_key TEXT,"
    "  status TEXT NOT NULL CHECK (status IN ('PENDING','AWAITING_REVIEW','SUCCESS','FAILED','REVOKED')),"
    "  claimed_rewards TEXT NOT NULL CHECK (json_valid(claimed_rewards)),"
    "  requested_at INTEGER NOT NULL,"
    "  processed_at INTEGER,"
    "  processor_id TEXT,"
    "  failure_reason TEXT,"
    "  failure_details TEXT CHECK (failure_details IS NULL OR json_valid(failure_details)),"
    "  notes TEXT,"
    "  source TEXT NOT NULL DEFAULT 'CLAIM'," /* CLAIM or BATCH */
    "  batch_id TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  CHECK ((status = 'FAILED') = (active_key IS NULL)));"
    "CREATE UNIQUE INDEX reward_requests_active ON reward_requests(active_key) WHERE active_key IS NOT NULL;"
    "CREATE INDEX reward_requests_user ON reward_requests(user_id, id);"
    "CREATE INDEX reward_requests_event ON reward_requests(event_id, id);"
    "CREATE INDEX reward_requests_status ON reward_requests(status, id);"
    "CREATE INDEX reward_requests_requested ON reward_requests(requested_at);"

    /* append-only ledger: one row per reward paid (positive) or reversed (negative) */
    "CREATE TABLE reward_ledger ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  request_id TEXT NOT NULL REFERENCES reward_requests(id),"
    "  user_id TEXT NOT NULL,"
    "  event_id TEXT NOT NULL,"
    "  reward_idx INTEGER NOT NULL,"
    "  reward_definition_id TEXT NOT NULL,"
    "  quantity INTEGER NOT NULL,"
    "  entry_type TEXT NOT NULL CHECK (entry_type IN ('GRANT','REVERSAL')),"
    "  processor_id TEXT,"
    "  at INTEGER NOT NULL);"
    "CREATE INDEX reward_ledger_user ON reward_ledger(user_id, seq);"
    "CREATE INDEX reward_ledger_event ON reward_ledger(event_id, seq);"
    "CREATE TRIGGER reward_ledger_no_update BEFORE UPDATE ON reward_ledger"
    "  BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;"
    "CREATE TRIGGER reward_ledger_no_delete BEFORE DELETE ON reward_ledger"
    "  BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;"

    /* outbox: one message per SUCCESS (and per revocation), published later in commit order */
    "CREATE TABLE outbox ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  message_id TEXT NOT NULL UNIQUE,"
    "  routing_key TEXT NOT NULL,"
    "  request_id TEXT NOT NULL,"
    "  payload TEXT NOT NULL CHECK (json_valid(payload)),"
    "  created_at INTEGER NOT NULL,"
    "  published_at INTEGER);"
    "CREATE INDEX outbox_pending ON outbox(seq) WHERE published_at IS NULL;"

    /* Idempotency-Key of claims: the first response, replayed for the same key and body */
    "CREATE TABLE idempotency_keys ("
    "  user_id TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  request_hash TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  response TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, key)) WITHOUT ROWID;";

/* v2: leases on outbox rows, so several relays (one per grant-worker process) never publish
 * the same row at the same time; histories list newest first by request time */
static const char v2[] = "ALTER TABLE outbox ADD COLUMN lease_owner TEXT;"
                         "ALTER TABLE outbox ADD COLUMN lease_until INTEGER;"
                         "CREATE INDEX reward_requests_user_time ON reward_requests(user_id, requested_at, id);"
                         "CREATE INDEX reward_requests_time ON reward_requests(requested_at, id);";

/* v3: batch grants (DESIGN.md section 7). An item is QUEUED until a grant settles it; due_at is
 * when the sweeper sends it (again): the creation time at first, then each send pushes it out by
 * the redelivery timeout. */
static const char v3[] = "CREATE TABLE batches ("
                         "  id TEXT PRIMARY KEY,"
                         "  event_id TEXT NOT NULL,"
                         "  reason TEXT NOT NULL,"
                         "  created_by TEXT NOT NULL,"
                         "  idem_key TEXT,"
                         "  request_hash TEXT NOT NULL,"
                         "  total INTEGER NOT NULL,"
                         "  duplicates INTEGER NOT NULL,"
                         "  created_at INTEGER NOT NULL);"
                         "CREATE UNIQUE INDEX batches_idem ON batches(created_by, idem_key) WHERE idem_key IS NOT NULL;"
                         "CREATE INDEX batches_event ON batches(event_id, created_at);"
                         "CREATE TABLE batch_items ("
                         "  batch_id TEXT NOT NULL,"
                         "  seq INTEGER NOT NULL,"
                         "  user_id TEXT NOT NULL,"
                         "  status TEXT NOT NULL CHECK (status IN ('QUEUED', 'SUCCESS', 'FAILED')),"
                         "  failure_reason TEXT,"
                         "  request_id TEXT,"
                         "  attempts INTEGER NOT NULL DEFAULT 0,"
                         "  due_at INTEGER NOT NULL,"
                         "  settled_at INTEGER,"
                         "  PRIMARY KEY (batch_id, seq)) WITHOUT ROWID;"
                         "CREATE INDEX batch_items_due ON batch_items(due_at, batch_id, seq) WHERE status = 'QUEUED';"
                         "CREATE INDEX batch_items_status ON batch_items(batch_id, status, failure_reason);";

/* v4: the batch list pages newest first over all events */
static const char v4[] = "CREATE INDEX batches_created ON batches(created_at, id);";

/* v5: signed webhooks (DESIGN.md section 10). The fan-out relay makes one delivery per subscribed
 * endpoint of every outbox message not yet `hooked`, and marks it in the same transaction;
 * messages written before webhooks existed are marked already. A delivery keeps the exact body
 * it sends, its attempt log and a lease, so that several senders never post it at once. */
static const char v5[] =
    "ALTER TABLE outbox ADD COLUMN hooked INTEGER NOT NULL DEFAULT 0;"
    "UPDATE outbox SET hooked = 1;"
    "CREATE INDEX outbox_unhooked ON outbox(seq) WHERE hooked = 0;"
    "CREATE TABLE webhook_endpoints ("
    "  id TEXT PRIMARY KEY,"
    "  url TEXT NOT NULL,"
    "  types INTEGER NOT NULL,"
    "  enabled INTEGER NOT NULL,"
    "  secret TEXT NOT NULL,"
    "  created_by TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  failing_since INTEGER,"
    "  disabled_at INTEGER,"
    "  disabled_reason TEXT);"
    "CREATE TABLE webhook_deliveries ("
    "  id TEXT PRIMARY KEY,"
    "  endpoint_id TEXT NOT NULL,"
    "  webhook_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  status TEXT NOT NULL CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  round INTEGER NOT NULL DEFAULT 0,"
    "  next_at INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  settled_at INTEGER,"
    "  log TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(log)),"
    "  lease_owner TEXT,"
    "  lease_until INTEGER,"
    "  UNIQUE (endpoint_id, webhook_id));"
    "CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_at, id) WHERE status = 'PENDING';"
    "CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, status, id);"
    /* events and batches whose webhook (event.canceled, event.ended, batch.completed) was made:
     * the relay of webhook_store.h's notice */
    "CREATE TABLE webhook_notices ("
    "  id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  at INTEGER NOT NULL,"
    "  PRIMARY KEY (id, type)) WITHOUT ROWID;";

/* v6: a batch's counts (GET /events/batches/{id}: items by status and failure reason, and the
 * last settlement) read from the index alone; batch_items_status made each such read visit every
 * item's row for settled_at, 100,000 rows per poll of a large batch */
static const char v6[] = "CREATE INDEX batch_items_counts ON batch_items(batch_id, status, failure_reason, settled_at);"
                         "DROP INDEX batch_items_status;";

/* v7: the indexes no query of this store uses, each one more B-tree every grant writes (a random
 * page per grant for those led by a user or an event id). reward_requests_user and
 * reward_requests_requested are prefixes of v2's reward_requests_user_time and
 * reward_requests_time, which the planner takes instead; the ledger's reads (ledger by seq, with
 * optional user and event filters) walk the ledger in seq order, never through reward_ledger_user
 * or reward_ledger_event. Dropping the four took embedded claims up by about a quarter
 * (bench/README.md, 2026-12-03 second sitting). */
static const char v7[] = "DROP INDEX IF EXISTS reward_requests_user;"
                         "DROP INDEX IF EXISTS reward_requests_requested;"
                         "DROP INDEX IF EXISTS reward_ledger_user;"
                         "DROP INDEX IF EXISTS reward_ledger_event;";

/* v8: requests listed by a status other than SUCCESS read in the listing's order from an index of
 * their own, and grants no longer write a status index. reward_requests_status (status, id)
 * served no query: the listing filters status on its way down the time index, so asking for a
 * rare status (the review queue's AWAITING_REVIEW) walked every newer request; and every grant
 * wrote it, one of the seven B-trees of the request's insert. Its successor holds only the
 * requests that are not SUCCESS, in (requested_at, id) order under each status; SUCCESS, nearly
 * every row, is listed from reward_requests_time, where nearly every row matches. */
static const char v8[] = "DROP INDEX IF EXISTS reward_requests_status;"
                         "CREATE INDEX reward_requests_status_time ON reward_requests(status, requested_at, id) "
                         "WHERE status <> 'SUCCESS';";

/* v9: an event's requests in the listing's order. reward_requests_event (event_id, id) served the
 * event's "has claims" check but not the listing, which filtered event_id on its way down the
 * time index: an admin looking at one event walked every newer request of every event. The same
 * key led by event_id serves both, and a grant writes one index for it as before. */
static const char v9[] = "DROP INDEX IF EXISTS reward_requests_event;"
                         "CREATE INDEX reward_requests_event_time ON reward_requests(event_id, requested_at, id);";

/* v10: the exactly-once slot indexed event first. reward_requests_active held the active key,
 * "user:event:period", so a grant's uniqueness check and insert went to the player's place in an
 * index ordered by player: a page at random among every player's, one more random page per grant
 * to read and to write. Claims come in waves for the few events running now, from many players,
 * so the same slot, unique over (event_id, period_key, user_id) among the requests that hold one,
 * puts a grant on the pages of its event's current period, which the waves keep in the writer's
 * cache. Embedded claims at 400 players x 1,000 events went up by a fifth or more and their p99
 * halved (bench/README.md, 2026-12-05 sixth sitting). The uniqueness is the same one: the services
 * make every active key as rp_active_key of those three columns (reward_store.h), and a FAILED
 * request has none. The active_key column stays, the store's record of the slot. */
static const char v10[] = "CREATE UNIQUE INDEX reward_requests_slot ON reward_requests(event_id, period_key, user_id) "
                          "WHERE active_key IS NOT NULL;"
                          "DROP INDEX IF EXISTS reward_requests_active;";

/* v1..v4 were the reward halves of the old combined list's user_version 1..4 */
const char *const rp_reward_sqlite_steps[] = {v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, NULL};
