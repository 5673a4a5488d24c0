/* Tests workers/event/condition.c: validation of condition shapes and evaluation against
 * progress, in particular login streaks over game-day boundaries and event windows. */
#include <criterion/criterion.h>
#include <string.h>

#include "event/condition.h"
#include "timeutil.h"

static int64_t at(const char *iso) {
    int64_t ms;
    cr_assert(rp_time_parse_iso(iso, strlen(iso), &ms), "%s", iso);
    return ms;
}

static rp_login_day_t days[64];
static rp_progress_t prog;

static void reset(void) {
    memset(days, 0, sizeof days);
    memset(&prog, 0, sizeof prog);
    prog.logins = days;
}

/* Records a login at an ISO instant in the bitmap rows, as the progress store does. */
static void login(const char *iso) {
    int64_t t = at(iso), day = t / 86400000, minute = (t % 86400000) / 60000;
    size_t i = 0;
    while (i < prog.nlogins && days[i].utc_day != day)
        i++;
    if (i == prog.nlogins) {
        days[i].utc_day = day;
        prog.nlogins++;
    }
    days[i].minutes[minute / 8] |= (unsigned char)(1u << (minute % 8));
}

static void count(const char *start, const char *end, int offset, int64_t want_days, int64_t want_streak) {
    int64_t d, s;
    rp_login_days(&prog, at(start), at(end), offset, &d, &s);
    cr_assert_eq(d, want_days, "days %lld != %lld", (long long)d, (long long)want_days);
    cr_assert_eq(s, want_streak, "streak %lld != %lld", (long long)s, (long long)want_streak);
}

Test(login_days, streak_across_the_kst_boundary) {
    reset();
    /* +540: game days turn at 15:00 UTC. 14:59 and 15:01 on the same UTC day are two game days */
    login("2026-11-01T14:59:00Z");
    login("2026-11-01T15:01:00Z");
    login("2026-11-02T16:00:00Z");
    count("2026-10-30T00:00:00Z", "2026-11-30T00:00:00Z", 540, 3, 3);
    /* with offset 0 the first two are one day: 2 days, still consecutive */
    count("2026-10-30T00:00:00Z", "2026-11-30T00:00:00Z", 0, 2, 2);
}

Test(login_days, negative_offset_and_gaps) {
    reset();
    /* -300: game days turn at 05:00 UTC */
    login("2026-11-02T04:00:00Z"); /* game day Nov 1 */
    login("2026-11-02T06:00:00Z"); /* game day Nov 2 */
    login("2026-11-04T06:00:00Z"); /* game day Nov 4: a gap on Nov 3 */
    login("2026-11-05T04:59:00Z"); /* still game day Nov 4 */
    login("2026-11-05T05:00:00Z"); /* game day Nov 5 */
    count("2026-10-30T00:00:00Z", "2026-11-30T00:00:00Z", -300, 4, 2);
}

Test(login_days, logins_outside_the_window_do_not_count) {
    reset();
    login("2026-11-01T09:59:00Z"); /* one minute before the start */
    login("2026-11-01T10:00:00Z"); /* at the start: counts */
    login("2026-11-02T10:00:00Z");
    login("2026-11-03T09:59:00Z"); /* last minute inside */
    login("2026-11-03T10:00:00Z"); /* at the end: excluded */
    login("2026-11-04T10:00:00Z");
    count("2026-11-01T10:00:00Z", "2026-11-03T10:00:00Z", 0, 3, 3);
    count("2026-11-01T10:00:00Z", "2026-11-03T09:59:00Z", 0, 2, 2);
    count("2026-11-05T00:00:00Z", "2026-11-06T00:00:00Z", 0, 0, 0);
}

static rp_condition_t conds[RP_MAX_CONDITIONS];
static size_t ncond;
static json_t *cond_doc; /* the parsed conditions borrow from it until the test ends */

static void free_doc(void) {
    json_decref(cond_doc);
}
TestSuite(conditions, .fini = free_doc);

static void parse_ok(const char *text) {
    json_t *c = json_loads(text, 0, NULL), *details = json_array();
    cr_assert_not_null(c, "%s", text);
    cr_assert(rp_conditions_parse(c, conds, &ncond, details), "%s: %s", text, json_dumps(details, 0));
    json_decref(details);
    json_decref(cond_doc);
    cond_doc = c;
}

static json_t *parse_bad(const char *text) {
    json_t *c = json_loads(text, 0, NULL), *details = json_array();
    cr_assert_not_null(c, "%s", text);
    cr_assert_not(rp_conditions_parse(c, conds, &ncond, details), "accepted %s", text);
    cr_assert_gt(json_array_size(details), 0);
    json_decref(c);
    return details;
}

Test(conditions, rejects_wrong_shapes) {
    const char *bad[] = {
        "[{\"type\":\"LOGIN_STREAK\",\"value\":\"7\"}]",
        "[{\"type\":\"LOGIN_STREAK\",\"value\":0}]",
        "[{\"type\":\"LOGIN_STREAK\",\"value\":1.5}]",
        "[{\"type\":\"LEVEL_ACHIEVE\",\"value\":{\"$gt\":0}}]",
        "[{\"type\":\"QUEST_COMPLETE\",\"value\":{\"$gt\":\"\"}}]",
        "[{\"type\":\"QUEST_COMPLETE\",\"value\":\"\"}]",
        "[{\"type\":\"QUEST_COMPLETE\",\"value\":[\"q1\"]}]",
        "[{\"type\":\"INVITE_FRIENDS\",\"value\":-3}]",
        "[{\"type\":\"COUNTER\",\"value\":{\"key\":\"kills\"}}]",
        "[{\"type\":\"COUNTER\",\"value\":{\"key\":\"a b\",\"min\":3}}]",
        "[{\"type\":\"COUNTER\",\"value\":{\"key\":\"kills\",\"min\":3,\"$where\":\"1\"}}]",
        "[{\"type\":\"TELEPORT\",\"value\":1}]",
        "[{\"type\":\"LEVEL_ACHIEVE\",\"value\":3,\"extra\":true}]",
        "[{\"value\":3}]",
        "[7]",
        "{\"type\":\"LEVEL_ACHIEVE\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        json_decref(parse_bad(bad[i]));
    json_t *d = parse_bad("[{\"type\":\"LEVEL_ACHIEVE\",\"value\":3},{\"type\":\"LEVEL_ACHIEVE\",\"value\":\"x\"}]");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(d, 0), "field")), "/conditions/1/value");
    json_decref(d);
}

Test(conditions, all_versus_any_with_progress_details) {
    reset();
    parse_ok("[{\"type\":\"LEVEL_ACHIEVE\",\"value\":10,\"description\":\"reach 10\"},"
             "{\"type\":\"QUEST_COMPLETE\",\"value\":\"q-main-5\"},"
             "{\"type\":\"COUNTER\",\"value\":{\"key\":\"boss.kills\",\"min\":3}},"
             "{\"type\":\"INVITE_FRIENDS\",\"value\":2}]");
    cr_assert_eq(ncond, 4u);
    prog.max_level = 12;
    prog.quests = json_pack("{s:s}", "q-other", "x");
    prog.counters = json_pack("{s:i}", "boss.kills", 2);
    prog.invites = 2;
    json_t *unmet = NULL;
    int64_t s = at("2026-11-01T00:00:00Z"), e = at("2026-12-01T00:00:00Z");
    cr_assert_not(rp_conditions_evaluate(conds, ncond, RP_LOGIC_ALL, &prog, s, e, 540, &unmet));
    cr_assert_eq(json_array_size(unmet), 2u);
    json_t *q = json_array_get(unmet, 0), *k = json_array_get(unmet, 1);
    cr_assert_str_eq(json_string_value(json_object_get(q, "type")), "QUEST_COMPLETE");
    cr_assert(json_is_false(json_object_get(q, "current")));
    cr_assert_str_eq(json_string_value(json_object_get(k, "type")), "COUNTER");
    cr_assert_eq(json_integer_value(json_object_get(k, "current")), 2);
    json_decref(unmet);
    cr_assert(rp_conditions_evaluate(conds, ncond, RP_LOGIC_ANY, &prog, s, e, 540, &unmet));
    cr_assert_null(unmet);
    json_object_set_new(prog.quests, "q-main-5", json_string("x"));
    json_object_set_new(prog.counters, "boss.kills", json_integer(3));
    cr_assert(rp_conditions_evaluate(conds, ncond, RP_LOGIC_ALL, &prog, s, e, 540, &unmet));
    json_decref(prog.quests);
    json_decref(prog.counters);
}

Test(conditions, streak_condition_reports_current_streak) {
    reset();
    parse_ok("[{\"type\":\"LOGIN_STREAK\",\"value\":3},{\"type\":\"LOGIN_DAYS\",\"value\":2}]");
    login("2026-11-10T01:00:00Z");
    login("2026-11-11T01:00:00Z");
    login("2026-11-13T01:00:00Z");
    json_t *unmet = NULL;
    int64_t s = at("2026-11-01T00:00:00Z"), e = at("2026-12-01T00:00:00Z");
    cr_assert_not(rp_conditions_evaluate(conds, ncond, RP_LOGIC_ALL, &prog, s, e, 0, &unmet));
    cr_assert_eq(json_array_size(unmet), 1u);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(unmet, 0), "current")), 2);
    json_decref(unmet);
    login("2026-11-12T23:59:00Z");
    cr_assert(rp_conditions_evaluate(conds, ncond, RP_LOGIC_ALL, &prog, s, e, 0, &unmet));
    /* the same logins seen from +540: Nov 12 23:59 UTC is game day Nov 13, so Nov 12 is missing */
    cr_assert_not(rp_conditions_evaluate(conds, ncond, RP_LOGIC_ALL, &prog, s, e, 540, &unmet));
    json_decref(unmet);
}

Test(conditions, no_conditions_is_met) {
    reset();
    cr_assert(rp_conditions_evaluate(conds, 0, RP_LOGIC_ALL, &prog, 0, 1, 0, NULL));
    cr_assert(rp_conditions_evaluate(conds, 0, RP_LOGIC_ANY, &prog, 0, 1, 0, NULL));
}
