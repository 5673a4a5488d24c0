/* reward_schema_sqlite.h - the SQLite schema of the reward store: requests, ledger, outbox,
 * claim idempotency keys, batches and their items. They live in events.db as its "reward"
 * component (event/event_schema_sqlite.h lists the file's components), migrated on their own
 * steps and version. Constant data. */
#ifndef RP_WORKERS_REWARD_SCHEMA_SQLITE_H
#define RP_WORKERS_REWARD_SCHEMA_SQLITE_H

/* The steps of the "reward" component for rp_sqlite_migrate, NULL-terminated. A new schema
 * change is a new step at the end. */
extern const char *const rp_reward_sqlite_steps[];

/* How many of those steps the old combined list of events.db made (as its user_version 1..4). */
#define RP_REWARD_SQLITE_LEGACY_STEPS 4

#endif
