/* event.h - the event and reward-definition documents: validation of operator input, defaults,
 * and the status of a stored document (the rules themselves are in rules/event_rules.h). Pure
 * functions; thread-safe.
 *
 * Documents are JSON objects in the API's shape (camelCase, ISO-8601 UTC times, 24-hex ids). */
#ifndef RP_WORKERS_EVENT_EVENT_H
#define RP_WORKERS_EVENT_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "rules/event_rules.h"

/* Validates a reward definition body. partial: PATCH (every field optional, at least one).
 * Problems go to details ({field, reason}). On success with create, *out is a new normalised
 * document {name, type, value, description, isActive}. */
bool rp_definition_validate(const json_t *body, bool partial, json_t *details, json_t **out);

/* Validates an event body as POST /events takes it and returns, in *out, a new normalised
 * document with defaults applied: {title, description, startDate, endDate, conditions,
 * conditionLogic, rewards: [{rewardDefinitionId, quantity, stock, customData}], claimPeriod,
 * maxClaims, requiresApproval, dayOffsetMinutes}. */
bool rp_event_validate(const json_t *body, json_t *details, json_t **out);

/* The editable fields of a stored event document as a body for rp_event_validate (rewards as
 * {rewardDefinitionId, quantity, stock, customData}): what PATCH overlays and clone copies.
 * Returns a new object. */
json_t *rp_event_body_of(const json_t *stored);

/* For PATCH: the editable fields of a stored event document overlaid with patch, as a body for
 * rp_event_validate. Unknown patch members are reported in details. Returns a new object. */
json_t *rp_event_merge_patch(const json_t *stored, const json_t *patch, json_t *details);

/* The status of a stored event document at now_ms (rp_event_status_at over its startDate,
 * endDate and canceledAt). */
rp_event_status_t rp_event_doc_status(const json_t *doc, int64_t now_ms);
/* The first time after now_ms at which the clock alone may change that status: the document's
 * start or end, whichever comes first after now_ms; INT64_MAX when neither is ahead. */
int64_t rp_event_doc_next_change(const json_t *doc, int64_t now_ms);

#endif
