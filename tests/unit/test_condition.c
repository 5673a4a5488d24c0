/* Tests workers/rules/condition.c: validation of condition shapes and evaluation against
 * progress, including login streaks seen from different game-day offsets. */
#include <criterion/criterion.h>
#include <string.h>

#include "progress_fixture.h"
#include "rules/condition.h"

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
    progress_reset();
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
    progress_reset();
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
    progress_reset();
    cr_assert(rp_conditions_evaluate(conds, 0, RP_LOGIC_ALL, &prog, 0, 1, 0, NULL));
    cr_assert(rp_conditions_evaluate(conds, 0, RP_LOGIC_ANY, &prog, 0, 1, 0, NULL));
}
