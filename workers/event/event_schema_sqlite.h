/* event_schema_sqlite.h - the SQLite schema of events.db: the event store's tables (definitions,
 * events, event rewards and their stock, audit logs, progress) and, as a component of its own
 * (reward/reward_schema_sqlite.h), the reward store's. Both stores open the one file because a
 * grant takes stock from event_rewards in the transaction that inserts its request, and the
 * event store reads reward_requests (rewards freeze once claimed). Constant data, and the
 * file's opener (thread-safe). */
#ifndef RP_WORKERS_EVENT_SCHEMA_SQLITE_H
#define RP_WORKERS_EVENT_SCHEMA_SQLITE_H

#include "sqlite_util.h"

/* The components of events.db for rp_sqlite_pool_new: "event", then "reward"; ended by a NULL
 * component. Either store migrates both, so whichever process starts first makes the file
 * whole. */
extern const rp_sqlite_schema_t rp_events_db_schemas[];

/* File name of the event store inside SQLITE_DIR. */
#define RP_EVENT_SQLITE_FILE "events.db"

/* Opens <dir>/events.db, migrated to rp_events_db_schemas, for the event or the reward store:
 * rp_sqlite_store_open, whose handle and errors it returns. */
void *rp_events_db_open(const char *dir, int max_conns, const void *handle, size_t handle_size, rp_err_t *err);

#endif
