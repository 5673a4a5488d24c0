/* Tests workers/rules/period.c: game days, period keys and active keys. */
#include <criterion/criterion.h>
#include <string.h>

#include "progress_fixture.h"
#include "rules/period.h"

static void key(rp_period_t p, const char *iso, int off, const char *want) {
    char out[RP_PERIOD_KEY_LEN];
    rp_period_key(p, at(iso), off, out);
    cr_assert_str_eq(out, want, "%s offset %d", iso, off);
}

Test(period, game_day_turns_at_the_offset) {
    /* +540: the game day turns at 15:00 UTC (midnight KST) */
    key(RP_PERIOD_DAILY, "2026-11-24T14:59:59Z", 540, "D:2026-11-24");
    key(RP_PERIOD_DAILY, "2026-11-24T15:00:00Z", 540, "D:2026-11-25");
    key(RP_PERIOD_DAILY, "2026-11-24T23:59:59Z", 0, "D:2026-11-24");
    key(RP_PERIOD_DAILY, "2026-11-25T00:00:00Z", 0, "D:2026-11-25");
    /* negative offsets: -300 turns at 05:00 UTC */
    key(RP_PERIOD_DAILY, "2026-11-25T04:59:00Z", -300, "D:2026-11-24");
    key(RP_PERIOD_DAILY, "2026-11-25T05:00:00Z", -300, "D:2026-11-25");
    key(RP_PERIOD_DAILY, "1969-12-31T23:00:00Z", 0, "D:1969-12-31");
}

Test(period, iso_weeks) {
    key(RP_PERIOD_WEEKLY, "2026-11-24T12:00:00Z", 0, "W:2026-W48");
    /* 2027-01-01 is a Friday: it belongs to 2026-W53 */
    key(RP_PERIOD_WEEKLY, "2027-01-01T12:00:00Z", 0, "W:2026-W53");
    key(RP_PERIOD_WEEKLY, "2027-01-04T00:00:00Z", 0, "W:2027-W01");
    /* 2024-12-30 is a Monday in 2025-W01 */
    key(RP_PERIOD_WEEKLY, "2024-12-30T00:00:00Z", 0, "W:2025-W01");
    /* Sunday 2026-11-29 23:00 UTC is Monday 08:00 KST: next week with +540 */
    key(RP_PERIOD_WEEKLY, "2026-11-29T14:59:00Z", 540, "W:2026-W48");
    key(RP_PERIOD_WEEKLY, "2026-11-29T15:00:00Z", 540, "W:2026-W49");
}

Test(period, once_and_parse) {
    key(RP_PERIOD_ONCE, "2026-11-24T12:00:00Z", 540, "ONCE");
    rp_period_t p;
    cr_assert(rp_period_parse("WEEKLY", &p) && p == RP_PERIOD_WEEKLY);
    cr_assert_not(rp_period_parse("weekly", &p));
    cr_assert_not(rp_period_parse(NULL, &p));
}

Test(period, active_key_bounds) {
    char out[80];
    cr_assert(rp_active_key("65f0a1b2c3d4e5f601234567", "65f0a1b2c3d4e5f601234568", "D:2026-11-24", out, sizeof out));
    cr_assert_str_eq(out, "65f0a1b2c3d4e5f601234567:65f0a1b2c3d4e5f601234568:D:2026-11-24");
    char small[10];
    cr_assert_not(rp_active_key("65f0a1b2c3d4e5f601234567", "x", "ONCE", small, sizeof small));
}
