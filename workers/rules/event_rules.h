/* event_rules.h - the rules of an event both workers apply: its status at an instant
 * (UPCOMING, ACTIVE, FINISHED, CANCELED), the time bounds a status filter hands to a store, and
 * the typed view of an event that a claim is judged and paid by. Pure functions; thread-safe. */
#ifndef RP_WORKERS_RULES_EVENT_RULES_H
#define RP_WORKERS_RULES_EVENT_RULES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "condition.h"
#include "ids.h"
#include "period.h"

#define RP_MAX_EVENT_REWARDS 20

typedef enum rp_event_status {
    RP_EVENT_UPCOMING = 0,
    RP_EVENT_ACTIVE,
    RP_EVENT_FINISHED,
    RP_EVENT_CANCELED,
} rp_event_status_t;

/* The status of an event with window [start, end) and canceled_at (0 = not canceled) at now:
 * CANCELED once canceled, else by the window. The one definition of an event's status. */
rp_event_status_t rp_event_status_at(int64_t start, int64_t end, int64_t canceled_at, int64_t now);
const char *rp_event_status_name(rp_event_status_t s);
/* Parses a status name; false when s is NULL or unknown. */
bool rp_event_status_parse(const char *s, rp_event_status_t *out);

/* What a list filter asks of the stored window and cancel time, as plain comparisons a store
 * can run: start <= start_le, start > start_gt, end > end_gt, end <= end_le (INT64_MAX /
 * INT64_MIN: no bound), and canceled: -1 either, 0 not canceled, 1 canceled. empty: the filters
 * contradict each other, so nothing matches (the store need not be asked). */
typedef struct rp_event_bounds {
    int canceled;
    int64_t start_le, start_gt, end_gt, end_le;
    bool empty;
} rp_event_bounds_t;

/* No bound at all. */
void rp_event_bounds_init(rp_event_bounds_t *b);
/* Narrows b to the events whose status at now is s. */
void rp_event_bounds_status(rp_event_bounds_t *b, rp_event_status_t s, int64_t now);
/* Narrows b to what players see: UPCOMING or ACTIVE at now. */
void rp_event_bounds_open(rp_event_bounds_t *b, int64_t now);
/* Narrows b to the events running (not canceled) at instant t. */
void rp_event_bounds_active_at(rp_event_bounds_t *b, int64_t t);
/* True when an event with these times lies inside b (what a store's query must agree with). */
bool rp_event_bounds_match(const rp_event_bounds_t *b, int64_t start, int64_t end, int64_t canceled_at);

/* One reward of an event as the grant reads it; strings and value borrowed from the event
 * document. */
typedef struct rp_event_reward {
    int index;
    char definition_id[RP_OID_LEN];
    const char *name, *type;
    const json_t *value;
    int64_t quantity;
} rp_event_reward_t;

/* The part of an event a claim is judged and paid by, read from a stored event document (which
 * it borrows: keep the document alive while the view is used). */
typedef struct rp_event_view {
    char id[RP_OID_LEN];
    int64_t start_ms, end_ms, canceled_at; /* canceled_at 0 = not canceled */
    int64_t updated_at;                    /* the event's version (updatedAt, ms); 0 when it has none */
    rp_logic_t logic;
    rp_period_t period;
    int64_t max_claims; /* 0 = unlimited */
    bool requires_approval;
    int day_offset_minutes;
    rp_condition_t conditions[RP_MAX_CONDITIONS];
    size_t nconditions;
    rp_event_reward_t rewards[RP_MAX_EVENT_REWARDS];
    size_t nrewards;
} rp_event_view_t;

/* Fills v from a stored (already validated) event document in the API's shape; false when it
 * is malformed. */
bool rp_event_view(const json_t *doc, rp_event_view_t *v);
/* The view's status at now. */
rp_event_status_t rp_event_view_status(const rp_event_view_t *v, int64_t now);

#endif
