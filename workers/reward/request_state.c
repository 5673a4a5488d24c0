/* request_state.c - allowed request transitions (see request_state.h). */
#include "request_state.h"

#include <stddef.h>
#include <string.h>

static const char *const states[] = {"PENDING", "AWAITING_REVIEW", "SUCCESS", "FAILED", "REVOKED"};

static const struct {
    const char *from, *to;
} edges[] = {{"PENDING", "SUCCESS"},         {"PENDING", "FAILED"},         {"PENDING", "AWAITING_REVIEW"},
             {"AWAITING_REVIEW", "SUCCESS"}, {"AWAITING_REVIEW", "FAILED"}, {"SUCCESS", "REVOKED"}};

bool rp_request_status_valid(const char *status) {
    for (size_t i = 0; status && i < sizeof states / sizeof states[0]; i++)
        if (strcmp(states[i], status) == 0) return true;
    return false;
}

bool rp_request_can_transition(const char *from, const char *to) {
    for (size_t i = 0; from && to && i < sizeof edges / sizeof edges[0]; i++)
        if (strcmp(edges[i].from, from) == 0 && strcmp(edges[i].to, to) == 0) return true;
    return false;
}

bool rp_request_holds_slot(const char *status) {
    return rp_request_status_valid(status) && strcmp(status, "FAILED") != 0;
}
