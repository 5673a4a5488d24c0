/* event.h - the event and reward-definition documents: validation of operator input, defaults,
 * status from the clock, and the rules a claim is judged by. Pure functions; thread-safe.
 *
 * Documents are JSON objects in the API's shape (camelCase, ISO-8601 UTC times, 24-hex ids). */
#ifndef RP_WORKERS_EVENT_EVENT_H
#define RP_WORKERS_EVENT_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "condition.h"
#include "reward/period.h"

#define RP_MAX_EVENT_REWARDS 20

/* Validates a reward definition body. partial: PATCH (every field optional, at least one).
 * Problems go to details ({field, reason}). On success with create, *out is a new normalised
 * document {name, type, value, description, isActive}. */
bool rp_definition_validate(const json_t *body, bool partial, json_t *details, json_t **out);

/* Validates an event body as POST /events takes it and returns, in *out, a new normalised
 * document with defaults applied: {title, description, startDate, endDate, conditions,
 * conditionLogic, rewards: [{rewardDefinitionId, quantity, stock, customData}], claimPeriod,
 * maxClaims, requiresApproval, dayOffsetMinutes}. */
bool rp_event_validate(const json_t *body, json_t *details, json_t **out);

/* For PATCH: the editable fields of a stored event document overlaid with patch, as a body for
 * rp_event_validate. Unknown patch members are reported in details. Returns a new object. */
json_t *rp_event_merge_patch(const json_t *stored, const json_t *patch, json_t *details);

typedef enum { RP_EVENT_UPCOMING, RP_EVENT_ACTIVE, RP_EVENT_FINISHED, RP_EVENT_CANCELED } rp_event_status_t;

/* The status of an event document at now_ms: CANCELED when canceledAt is set, else by window. */
rp_event_status_t rp_event_status(const json_t *doc, int64_t now_ms);
const char *rp_event_status_name(rp_event_status_t s);
/* Parses a status name; false when unknown. */
bool rp_event_status_parse(const char *s, rp_event_status_t *out);

/* What a claim is judged by, read from a stored event document (which it borrows). */
typedef struct rp_event_rules {
    int64_t start_ms, end_ms;
    rp_logic_t logic;
    rp_period_t period;
    int64_t max_claims; /* 0 = unlimited */
    bool requires_approval;
    int day_offset_minutes;
    rp_condition_t conditions[RP_MAX_CONDITIONS];
    size_t nconditions;
} rp_event_rules_t;

/* Fills rules from a stored (already validated) document; false if it is malformed. */
bool rp_event_rules(const json_t *doc, rp_event_rules_t *rules);

#endif
