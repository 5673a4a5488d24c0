/* Tests workers/rules/event_rules.c: event status, the bounds a status filter hands to a store
 * (which must select exactly the events of that status), and the grant's view of an event. */
#include <criterion/criterion.h>
#include <string.h>

#include "progress_fixture.h"
#include "event/event.h"
#include "rules/event_rules.h"
#include "timeutil.h"

Test(event_rules, status_follows_the_clock_unless_canceled) {
    int64_t s = 1000, e = 2000;
    cr_assert_eq(rp_event_status_at(s, e, 0, 999), RP_EVENT_UPCOMING);
    cr_assert_eq(rp_event_status_at(s, e, 0, 1000), RP_EVENT_ACTIVE, "the window is [start, end)");
    cr_assert_eq(rp_event_status_at(s, e, 0, 1999), RP_EVENT_ACTIVE);
    cr_assert_eq(rp_event_status_at(s, e, 0, 2000), RP_EVENT_FINISHED);
    cr_assert_eq(rp_event_status_at(s, e, 1500, 1200), RP_EVENT_CANCELED);
    rp_event_status_t st;
    cr_assert(rp_event_status_parse("FINISHED", &st));
    cr_assert_eq(st, RP_EVENT_FINISHED);
    cr_assert_not(rp_event_status_parse("active", &st));
}

/* For every status and a grid of windows around now, the bounds select exactly the events
 * rp_event_status_at gives that status: the stores' queries and the status cannot disagree. */
Test(event_rules, bounds_select_exactly_the_status) {
    const int64_t now = 5000, times[] = {4000, 4999, 5000, 5001, 6000};
    for (int s = RP_EVENT_UPCOMING; s <= RP_EVENT_CANCELED; s++) {
        rp_event_bounds_t b;
        rp_event_bounds_init(&b);
        rp_event_bounds_status(&b, (rp_event_status_t)s, now);
        for (size_t i = 0; i < 5; i++)
            for (size_t j = 0; j < 5; j++) {
                if (times[j] <= times[i]) continue;
                for (int c = 0; c < 2; c++) {
                    int64_t canceled = c ? 4500 : 0;
                    bool want = rp_event_status_at(times[i], times[j], canceled, now) == (rp_event_status_t)s;
                    cr_assert_eq(rp_event_bounds_match(&b, times[i], times[j], canceled), want,
                                 "status %d start %lld end %lld canceled %d", s, (long long)times[i],
                                 (long long)times[j], c);
                }
            }
    }
}

Test(event_rules, open_and_active_at_narrow_and_can_contradict) {
    rp_event_bounds_t b;
    rp_event_bounds_init(&b);
    rp_event_bounds_open(&b, 5000);
    cr_assert(rp_event_bounds_match(&b, 6000, 7000, 0), "upcoming is open");
    cr_assert(rp_event_bounds_match(&b, 4000, 7000, 0), "active is open");
    cr_assert_not(rp_event_bounds_match(&b, 1000, 5000, 0), "finished is not");
    cr_assert_not(rp_event_bounds_match(&b, 6000, 7000, 1), "canceled is not");
    rp_event_bounds_active_at(&b, 6500);
    cr_assert(rp_event_bounds_match(&b, 6000, 7000, 0));
    cr_assert_not(rp_event_bounds_match(&b, 4000, 6500, 0));
    rp_event_bounds_status(&b, RP_EVENT_CANCELED, 5000);
    cr_assert(b.empty, "canceled and open at once select nothing");
    cr_assert_not(rp_event_bounds_match(&b, 6000, 7000, 1));
}

Test(event_rules, view_of_a_stored_event) {
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:n, s:[{s:s, s:i}], s:s, s:s, s:i, s:b, s:i, s:[{s:i, s:s, s:s, s:s, s:{s:i}, s:i}]}", "id",
        "5f00000000000000000000e1", "startDate", "2026-01-01T00:00:00Z", "endDate", "2026-02-01T00:00:00Z",
        "canceledAt", "conditions", "type", "LEVEL_ACHIEVE", "value", 3, "conditionLogic", "ANY", "claimPeriod",
        "DAILY", "maxClaims", 4, "requiresApproval", 1, "dayOffsetMinutes", -60, "rewards", "rewardIndex", 0,
        "rewardDefinitionId", "5f00000000000000000000d0", "name", "Gold", "type", "CURRENCY", "value", "amount", 5,
        "quantity", 2);
    rp_event_view_t v;
    cr_assert(rp_event_view(doc, &v));
    cr_assert_str_eq(v.id, "5f00000000000000000000e1");
    cr_assert_eq(v.logic, RP_LOGIC_ANY);
    cr_assert_eq(v.period, RP_PERIOD_DAILY);
    cr_assert_eq(v.max_claims, 4);
    cr_assert(v.requires_approval);
    cr_assert_eq(v.day_offset_minutes, -60);
    cr_assert_eq(v.nconditions, 1u);
    cr_assert_eq(v.nrewards, 1u);
    cr_assert_str_eq(v.rewards[0].definition_id, "5f00000000000000000000d0");
    cr_assert_str_eq(v.rewards[0].name, "Gold");
    cr_assert_eq(v.rewards[0].quantity, 2);
    cr_assert_eq(rp_event_view_status(&v, at("2026-01-15T00:00:00Z")), RP_EVENT_ACTIVE);
    json_object_set_new(doc, "canceledAt", json_string("2026-01-10T00:00:00Z"));
    cr_assert(rp_event_view(doc, &v));
    cr_assert_eq(rp_event_view_status(&v, at("2026-01-15T00:00:00Z")), RP_EVENT_CANCELED);
    json_object_set_new(doc, "claimPeriod", json_string("HOURLY"));
    cr_assert_not(rp_event_view(doc, &v), "a malformed stored event is refused, not guessed");
    json_decref(doc);
}

/* A cached list page lasts until one of its events changes status by the clock: its start when
 * it is ahead, else its end, else never. */
Test(event_rules, next_change_is_the_first_bound_ahead) {
    json_t *doc =
        json_pack("{s:s, s:s}", "startDate", "2030-01-01T00:00:00.000Z", "endDate", "2030-01-02T00:00:00.000Z");
    int64_t start = 0, end = 0;
    cr_assert(rp_time_parse_iso("2030-01-01T00:00:00.000Z", 24, &start));
    cr_assert(rp_time_parse_iso("2030-01-02T00:00:00.000Z", 24, &end));
    cr_assert_eq(rp_event_doc_next_change(doc, start - 1), start, "upcoming: its start");
    cr_assert_eq(rp_event_doc_next_change(doc, start), end, "active: its end");
    cr_assert_eq(rp_event_doc_next_change(doc, end), INT64_MAX, "finished: never");
    json_decref(doc);
}
