/* progress.h - player progress: the facts game servers report, how each folds into the
 * per-player aggregate it changes (level: the highest; counter: the sum; quest and invite: the
 * first report wins; login: the minute's bit), and the view condition evaluation reads. The
 * stores keep facts and aggregates as they are given; the folding happens here only. Pure
 * functions over caller-owned data; thread-safe. */
#ifndef RP_WORKERS_RULES_PROGRESS_H
#define RP_WORKERS_RULES_PROGRESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "login_days.h"

typedef enum rp_fact_type {
    RP_FACT_LOGIN = 0,
    RP_FACT_LEVEL,
    RP_FACT_QUEST,
    RP_FACT_INVITE,
    RP_FACT_COUNTER,
} rp_fact_type_t;

/* One reported fact, validated by the event worker. Strings and value are borrowed. */
typedef struct rp_fact {
    const char *user_id;
    rp_fact_type_t type;
    const char *type_name; /* LOGIN, LEVEL, QUEST_COMPLETE, INVITE, COUNTER */
    json_t *value;         /* NULL (login), level, quest id, invitee id or {key, delta} */
    int64_t occurred_at;
    const char *idempotency_key;
} rp_fact_t;

/* One per-player aggregate, as a store keeps it under (player, kind, key or day). */
typedef struct rp_aggregate {
    rp_fact_type_t kind;
    char key[129];  /* quest id, invitee id or counter key; "" for the level and for logins */
    int64_t day;    /* logins: the UTC day */
    int64_t number; /* level: the highest reported; counter: the total */
    int64_t at;     /* quest, invite: when first reported; level, counter: last change */
    unsigned char minutes[RP_LOGIN_DAY_BYTES]; /* logins: the day's minute bitmap */
} rp_aggregate_t;

/* True when the len bytes at s are a counter key, as COUNTER facts and conditions name one: 1 to
 * 64 characters of [A-Za-z0-9_.:-]. */
bool rp_counter_key_valid(const char *s, size_t len);

/* True when fact f reports the same thing as a fact stored under its key: the same type name,
 * value (absent and JSON null alike) and occurredAt. A player's key is the game server's promise
 * that a retry carries the same fact; another fact under it is a reused key, not a duplicate.
 * value may be NULL. */
bool rp_fact_same(const rp_fact_t *f, const char *type_name, const json_t *value, int64_t occurred_at);

/* Zeroes *a and names the aggregate fact f changes (kind, key or day): what the store reads. */
void rp_progress_target(const rp_fact_t *f, rp_aggregate_t *a);

/* Folds fact f into a, the aggregate rp_progress_target named as the store returned it (found
 * false: it did not exist yet, a as rp_progress_target left it). now is the ingest time.
 * Returns true when a changed and must be written back, false when f changes nothing (a quest
 * or invite already recorded). */
bool rp_progress_fold(rp_aggregate_t *a, bool found, const rp_fact_t *f, int64_t now);

/* A player's progress as condition evaluation reads it. */
typedef struct rp_progress {
    int64_t max_level;
    int64_t invites;
    json_t *quests;         /* object: quest id -> completedAt (ISO); owned */
    json_t *counters;       /* object: key -> total; owned */
    rp_login_day_t *logins; /* owned, nlogins rows, any order */
    size_t nlogins;
} rp_progress_t;

/* Starts an empty progress (empty quests and counters objects, no logins). */
void rp_progress_init(rp_progress_t *p);
/* Appends one login row (grows the array). */
void rp_progress_add_login(rp_progress_t *p, int64_t utc_day, const unsigned char minutes[RP_LOGIN_DAY_BYTES]);
/* Frees what p owns and zeroes it. Accepts NULL. */
void rp_progress_release(rp_progress_t *p);

#endif
