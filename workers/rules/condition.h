/* condition.h - event conditions: their JSON form {type, value, description}, validation, and
 * evaluation against a player's progress (progress.h). Pure functions over caller-owned data;
 * thread-safe. */
#ifndef RP_WORKERS_RULES_CONDITION_H
#define RP_WORKERS_RULES_CONDITION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "progress.h"

typedef enum {
    RP_COND_LOGIN_STREAK,   /* value: days >= 1, consecutive game days with a login in the window */
    RP_COND_LOGIN_DAYS,     /* value: days >= 1, game days with a login in the window */
    RP_COND_LEVEL_ACHIEVE,  /* value: level >= 1 */
    RP_COND_QUEST_COMPLETE, /* value: quest id (1..128 chars) */
    RP_COND_INVITE_FRIENDS, /* value: distinct invited players >= 1 */
    RP_COND_COUNTER,        /* value: {key, min} */
} rp_cond_type_t;

#define RP_MAX_CONDITIONS 20

typedef struct rp_condition {
    rp_cond_type_t type;
    int64_t amount; /* days, level, invite count, counter minimum */
    char text[129]; /* quest id or counter key */
    json_t *source; /* the condition as given (borrowed from the event document) */
} rp_condition_t;

/* Validates conditions (a JSON array) and fills out[0..*n). Problems are appended to details as
 * {field: "/conditions/i/...", reason}; returns false when there was any. Unknown types, values
 * of the wrong type (objects where a number or string belongs, e.g. {"$gt": ""}) and unknown
 * members are refused. out borrows from conditions. */
bool rp_conditions_parse(const json_t *conditions, rp_condition_t out[RP_MAX_CONDITIONS], size_t *n, json_t *details);

typedef enum { RP_LOGIC_ALL = 0, RP_LOGIC_ANY = 1 } rp_logic_t;

/* Evaluates conditions under logic. Returns true when met (no conditions: met). *unmet, when not
 * NULL, receives a new array with one entry per unmet condition: {type, required, current,
 * description}. */
bool rp_conditions_evaluate(const rp_condition_t *c, size_t n, rp_logic_t logic, const rp_progress_t *p,
                            int64_t start_ms, int64_t end_ms, int day_offset_minutes, json_t **unmet);

#endif
