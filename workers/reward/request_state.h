/* request_state.h - the reward request state machine of DESIGN.md section 6:
 * PENDING → SUCCESS | FAILED | AWAITING_REVIEW; AWAITING_REVIEW → SUCCESS | FAILED;
 * SUCCESS → REVOKED. Pure functions, thread-safe. */
#ifndef RP_WORKERS_REWARD_REQUEST_STATE_H
#define RP_WORKERS_REWARD_REQUEST_STATE_H

#include <stdbool.h>

/* True when status is one of the five request states. */
bool rp_request_status_valid(const char *status);
/* True when a request may move from `from` to `to`. */
bool rp_request_can_transition(const char *from, const char *to);
/* True for states that hold the (user, event, period) slot: everything but FAILED. */
bool rp_request_holds_slot(const char *status);

#endif
