/* request_state.c - request statuses and their allowed transitions (see request_state.h). */
#include "request_state.h"

#include <stddef.h>

#include "names.h"

static const char *const names[] = {"PENDING", "AWAITING_REVIEW", "SUCCESS", "FAILED", "REVOKED"};

static const struct {
    rp_req_status_t from, to;
} edges[] = {{RP_REQ_PENDING, RP_REQ_SUCCESS},         {RP_REQ_PENDING, RP_REQ_FAILED},
             {RP_REQ_PENDING, RP_REQ_AWAITING_REVIEW}, {RP_REQ_AWAITING_REVIEW, RP_REQ_SUCCESS},
             {RP_REQ_AWAITING_REVIEW, RP_REQ_FAILED},  {RP_REQ_SUCCESS, RP_REQ_REVOKED}};

#define NNAMES (sizeof names / sizeof names[0])

const char *rp_req_status_name(rp_req_status_t s) {
    return rp_name_of(names, NNAMES, (int)s);
}

bool rp_req_status_parse(const char *s, rp_req_status_t *out) {
    int v;
    if (!rp_name_parse(names, NNAMES, s, &v)) return false;
    *out = (rp_req_status_t)v;
    return true;
}

bool rp_req_can_transition(rp_req_status_t from, rp_req_status_t to) {
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        if (edges[i].from == from && edges[i].to == to) return true;
    return false;
}

bool rp_req_holds_slot(rp_req_status_t s) {
    return s != RP_REQ_FAILED;
}
