/* event_schema_sqlite.h - the SQLite schema of the event store (events.db), shared by the event
 * worker's and the reward worker's repositories because a grant reads events and progress and
 * writes requests, stock, ledger and outbox in one transaction. Constant data. */
#ifndef RP_WORKERS_EVENT_SCHEMA_SQLITE_H
#define RP_WORKERS_EVENT_SCHEMA_SQLITE_H

/* Migrations for rp_sqlite_migrate / rp_sqlite_pool_new, NULL-terminated. */
extern const char *const rp_event_sqlite_migrations[];

/* File name of the event store inside SQLITE_DIR. */
#define RP_EVENT_SQLITE_FILE "events.db"

#endif
