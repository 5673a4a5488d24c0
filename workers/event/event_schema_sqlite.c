/* event_schema_sqlite.c - the event tables of events.db, the file's list of components and the
 * opening of the file (see event_schema_sqlite.h). Times are epoch milliseconds, ids 24-hex
 * ObjectIds, JSON columns are checked with json_valid. Constant data; the opener is thread-safe. */
#include "event_schema_sqlite.h"

#include <stddef.h>

#include "reward/reward_schema_sqlite.h"

static const char v1[] =
    /* operators' reward catalogue */
    "CREATE TABLE reward_definitions ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  type TEXT NOT NULL CHECK (type IN ('CURRENCY','ITEM','BUFF','COUPON','POINT')),"
    "  value TEXT NOT NULL CHECK (json_valid(value)),"
    "  description TEXT NOT NULL DEFAULT '',"
    "  is_active INTEGER NOT NULL DEFAULT 1,"
    "  referenced INTEGER NOT NULL DEFAULT 0," /* 1 once an event uses it: deactivate, never delete */
    "  created_by TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"

    "CREATE TABLE events ("
    "  id TEXT PRIMARY KEY,"
    "  title TEXT NOT NULL,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  start_at INTEGER NOT NULL,"
    "  end_at INTEGER NOT NULL CHECK (end_at > start_at),"
    "  canceled_at INTEGER," /* status = CANCELED when set, else from the clock */
    "  conditions TEXT NOT NULL CHECK (json_valid(conditions)),"
    "  condition_logic TEXT NOT NULL CHECK (condition_logic IN ('ALL','ANY')),"
    "  claim_period TEXT NOT NULL CHECK (claim_period IN ('ONCE','DAILY','WEEKLY')),"
    "  max_claims INTEGER CHECK (max_claims IS NULL OR max_claims >= 1),"
    "  requires_approval INTEGER NOT NULL DEFAULT 0,"
    "  day_offset_minutes INTEGER NOT NULL DEFAULT 540,"
    "  created_by TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE INDEX events_window ON events(start_at, end_at);"

    /* an event's rewards; stock_left is decremented by grants with a guard, never below zero */
    "CREATE TABLE event_rewards ("
    "  event_id TEXT NOT NULL REFERENCES events(id),"
    "  idx INTEGER NOT NULL,"
    "  reward_definition_id TEXT NOT NULL REFERENCES reward_definitions(id),"
    "  quantity INTEGER NOT NULL CHECK (quantity >= 1),"
    "  stock INTEGER CHECK (stock IS NULL OR stock >= 0)," /* NULL = unlimited */
    "  stock_left INTEGER CHECK (stock_left IS NULL OR stock_left >= 0),"
    "  custom_data TEXT CHECK (custom_data IS NULL OR json_valid(custom_data)),"
    "  PRIMARY KEY (event_id, idx));"

    /* operator activity: definitions, events, approvals */
    RP_SQLITE_AUDIT_TABLE "CREATE INDEX audit_logs_target ON audit_logs(target_type, target_id);"

    /* progress: each reported fact once per idempotency key, plus per-player aggregates */
    "CREATE TABLE progress_facts ("
    "  idempotency_key TEXT PRIMARY KEY,"
    "  user_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  value TEXT CHECK (value IS NULL OR json_valid(value)),"
    "  occurred_at INTEGER NOT NULL,"
    "  reported_by TEXT,"
    "  received_at INTEGER NOT NULL) WITHOUT ROWID;"
    /* logins: one row per player and UTC day, a 1440-bit bitmap of the minutes with a login, so
     * game days for any dayOffsetMinutes and any event window come from at most window+2 rows */
    "CREATE TABLE progress_logins ("
    "  user_id TEXT NOT NULL,"
    "  utc_day INTEGER NOT NULL,"
    "  minutes BLOB NOT NULL CHECK (length(minutes) = 180),"
    "  PRIMARY KEY (user_id, utc_day)) WITHOUT ROWID;"
    "CREATE TABLE progress_levels ("
    "  user_id TEXT PRIMARY KEY,"
    "  max_level INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE progress_quests ("
    "  user_id TEXT NOT NULL,"
    "  quest_id TEXT NOT NULL,"
    "  completed_at INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, quest_id)) WITHOUT ROWID;"
    "CREATE TABLE progress_invites ("
    "  user_id TEXT NOT NULL,"
    "  invitee_id TEXT NOT NULL,"
    "  invited_at INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, invitee_id)) WITHOUT ROWID;"
    "CREATE TABLE progress_counters ("
    "  user_id TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  total INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, key)) WITHOUT ROWID;";

/* v2: lists newest first by time (see event_repo_sqlite.c) */
static const char v2[] = "CREATE INDEX events_created ON events(created_at, id);"
                         "CREATE INDEX audit_logs_at ON audit_logs(at, id);"
                         "CREATE INDEX reward_definitions_created ON reward_definitions(created_at, id);";

/* v3: a progress idempotency key belongs to its player: (user_id, idempotency_key) is the key,
 * so two players' facts never collide on a game server's key. Existing facts keep their rows. */
static const char v3[] = "CREATE TABLE progress_facts_v3 ("
                         "  user_id TEXT NOT NULL,"
                         "  idempotency_key TEXT NOT NULL,"
                         "  type TEXT NOT NULL,"
                         "  value TEXT CHECK (value IS NULL OR json_valid(value)),"
                         "  occurred_at INTEGER NOT NULL,"
                         "  reported_by TEXT,"
                         "  received_at INTEGER NOT NULL,"
                         "  PRIMARY KEY (user_id, idempotency_key)) WITHOUT ROWID;"
                         "INSERT INTO progress_facts_v3 (user_id, idempotency_key, type, value, occurred_at, "
                         "reported_by, received_at) SELECT user_id, idempotency_key, type, value, occurred_at, "
                         "reported_by, received_at FROM progress_facts;"
                         "DROP TABLE progress_facts;"
                         "ALTER TABLE progress_facts_v3 RENAME TO progress_facts;";

/* v1 and v2 were the event halves of the old combined list's user_version 1 and 2 */
static const char *const steps[] = {v1, v2, v3, NULL};

const rp_sqlite_schema_t rp_events_db_schemas[] = {
    {"event", steps, 2},
    {"reward", rp_reward_sqlite_steps, RP_REWARD_SQLITE_LEGACY_STEPS},
    {NULL, NULL, 0},
};

void *rp_events_db_open(const char *dir, int max_conns, const void *handle, size_t handle_size, rp_err_t *err) {
    return rp_sqlite_store_open(dir, RP_EVENT_SQLITE_FILE, rp_events_db_schemas, max_conns, handle, handle_size, err);
}
