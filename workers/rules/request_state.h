/* request_state.h - the reward request state machine of the grant:
 * PENDING → SUCCESS | FAILED | AWAITING_REVIEW; AWAITING_REVIEW → SUCCESS | FAILED;
 * SUCCESS → REVOKED. Every status but FAILED holds the (player, event, period) slot. Pure
 * functions over constant tables; thread-safe. */
#ifndef RP_WORKERS_RULES_REQUEST_STATE_H
#define RP_WORKERS_RULES_REQUEST_STATE_H

#include <stdbool.h>

typedef enum rp_req_status {
    RP_REQ_PENDING = 0,
    RP_REQ_AWAITING_REVIEW,
    RP_REQ_SUCCESS,
    RP_REQ_FAILED,
    RP_REQ_REVOKED,
} rp_req_status_t;

/* The status's name as the API and the stores spell it ("AWAITING_REVIEW"); constant. */
const char *rp_req_status_name(rp_req_status_t s);
/* Parses a status name; false (and *out untouched) when s is NULL or unknown. */
bool rp_req_status_parse(const char *s, rp_req_status_t *out);
/* True when a request may move from `from` to `to`. */
bool rp_req_can_transition(rp_req_status_t from, rp_req_status_t to);
/* True for the statuses that hold the (player, event, period) slot: all but FAILED. Such a
 * request carries the active key and counts against maxClaims. */
bool rp_req_holds_slot(rp_req_status_t s);

#endif
