/* Tests workers/rules/progress.c: how each fact folds into its aggregate (the rule both stores
 * used to write themselves). */
#include <criterion/criterion.h>
#include <string.h>

#include "progress_fixture.h"
#include "rules/progress.h"

static rp_fact_t fact(rp_fact_type_t type, json_t *value, const char *when) {
    return (rp_fact_t){"aaaaaaaaaaaaaaaaaaaaaaaa", type, "", value, at(when), "k"};
}

Test(progress, level_keeps_the_highest) {
    json_t *seven = json_integer(7), *five = json_integer(5);
    rp_fact_t f = fact(RP_FACT_LEVEL, seven, "2026-01-01T00:00:00Z");
    rp_aggregate_t a;
    rp_progress_target(&f, &a);
    cr_assert_eq(a.kind, RP_FACT_LEVEL);
    cr_assert_str_eq(a.key, "");
    cr_assert(rp_progress_fold(&a, false, &f, 100));
    cr_assert_eq(a.number, 7);
    rp_fact_t lower = fact(RP_FACT_LEVEL, five, "2026-01-02T00:00:00Z");
    cr_assert(rp_progress_fold(&a, true, &lower, 200));
    cr_assert_eq(a.number, 7, "a lower level never lowers the aggregate");
    cr_assert_eq(a.at, 200, "but the report is recorded");
    json_decref(seven);
    json_decref(five);
}

Test(progress, counters_add_up_and_may_go_down) {
    json_t *plus = json_pack("{s:s, s:i}", "key", "kills", "delta", 5);
    json_t *minus = json_pack("{s:s, s:i}", "key", "kills", "delta", -2);
    rp_fact_t f = fact(RP_FACT_COUNTER, plus, "2026-01-01T00:00:00Z");
    rp_aggregate_t a;
    rp_progress_target(&f, &a);
    cr_assert_str_eq(a.key, "kills");
    cr_assert(rp_progress_fold(&a, false, &f, 1));
    cr_assert(rp_progress_fold(&a, true, &f, 2));
    rp_fact_t g = fact(RP_FACT_COUNTER, minus, "2026-01-01T00:00:00Z");
    cr_assert(rp_progress_fold(&a, true, &g, 3));
    cr_assert_eq(a.number, 8);
    json_decref(plus);
    json_decref(minus);
}

Test(progress, quests_and_invites_first_report_wins) {
    json_t *q = json_string("q.main"), *inv = json_string("bbbbbbbbbbbbbbbbbbbbbbbb");
    rp_fact_t first = fact(RP_FACT_QUEST, q, "2026-01-01T00:00:00Z"),
              later = fact(RP_FACT_QUEST, q, "2026-02-01T00:00:00Z");
    rp_aggregate_t a;
    rp_progress_target(&first, &a);
    cr_assert_str_eq(a.key, "q.main");
    cr_assert(rp_progress_fold(&a, false, &first, 9));
    cr_assert_eq(a.at, first.occurred_at, "a quest is dated by when it happened, not when reported");
    cr_assert_not(rp_progress_fold(&a, true, &later, 10), "nothing to write: the first report stays");
    cr_assert_eq(a.at, first.occurred_at);
    rp_fact_t i = fact(RP_FACT_INVITE, inv, "2026-01-03T00:00:00Z");
    rp_progress_target(&i, &a);
    cr_assert_eq(a.kind, RP_FACT_INVITE);
    cr_assert_str_eq(a.key, "bbbbbbbbbbbbbbbbbbbbbbbb");
    cr_assert_not(rp_progress_fold(&a, true, &i, 11));
    json_decref(q);
    json_decref(inv);
}

Test(progress, logins_set_their_minute_in_their_utc_day) {
    rp_fact_t f = fact(RP_FACT_LOGIN, NULL, "2026-01-01T00:01:59Z");
    rp_aggregate_t a;
    rp_progress_target(&f, &a);
    cr_assert_eq(a.day, rp_login_utc_day(f.occurred_at));
    cr_assert(rp_progress_fold(&a, false, &f, 1));
    cr_assert_eq(a.minutes[0], 2u, "minute 1");
    rp_fact_t g = fact(RP_FACT_LOGIN, NULL, "2026-01-01T00:00:00Z");
    cr_assert(rp_progress_fold(&a, true, &g, 2));
    cr_assert_eq(a.minutes[0], 3u, "bits accumulate");
}
