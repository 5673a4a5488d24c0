/* Tests workers/rules/request_state.c: the request state machine and status names. */
#include <criterion/criterion.h>

#include "rules/request_state.h"

Test(request_state, transitions) {
    rp_req_status_t st;
    cr_assert(rp_req_can_transition(RP_REQ_PENDING, RP_REQ_SUCCESS));
    cr_assert(rp_req_can_transition(RP_REQ_PENDING, RP_REQ_AWAITING_REVIEW));
    cr_assert(rp_req_can_transition(RP_REQ_AWAITING_REVIEW, RP_REQ_FAILED));
    cr_assert(rp_req_can_transition(RP_REQ_SUCCESS, RP_REQ_REVOKED));
    cr_assert_not(rp_req_can_transition(RP_REQ_SUCCESS, RP_REQ_FAILED));
    cr_assert_not(rp_req_can_transition(RP_REQ_FAILED, RP_REQ_SUCCESS));
    cr_assert_not(rp_req_can_transition(RP_REQ_REVOKED, RP_REQ_SUCCESS));
    cr_assert_not(rp_req_can_transition(RP_REQ_AWAITING_REVIEW, RP_REQ_REVOKED));
    cr_assert_not(rp_req_can_transition(RP_REQ_SUCCESS, RP_REQ_SUCCESS));
    cr_assert_not(rp_req_status_parse("BOGUS", &st));
    cr_assert(rp_req_holds_slot(RP_REQ_AWAITING_REVIEW));
    cr_assert(rp_req_holds_slot(RP_REQ_REVOKED));
    cr_assert_not(rp_req_holds_slot(RP_REQ_FAILED));
    cr_assert_not(rp_req_status_parse("NOPE", &st));
}

Test(request_state, names_round_trip) {
    for (int i = RP_REQ_PENDING; i <= RP_REQ_REVOKED; i++) {
        rp_req_status_t back;
        cr_assert(rp_req_status_parse(rp_req_status_name((rp_req_status_t)i), &back));
        cr_assert_eq(back, (rp_req_status_t)i);
    }
    rp_req_status_t st = RP_REQ_SUCCESS;
    cr_assert_not(rp_req_status_parse(NULL, &st));
    cr_assert_not(rp_req_status_parse("success", &st), "names are case-sensitive");
    cr_assert_eq(st, RP_REQ_SUCCESS, "untouched on failure");
}
