/* Tests workers/rules/login_days.c: the login-minute bitmaps and game-day counting over day
 * offsets and event windows. */
#include <criterion/criterion.h>
#include <string.h>

#include "progress_fixture.h"
#include "rules/login_days.h"

static void count(const char *start, const char *end, int offset, int64_t want_days, int64_t want_streak) {
    int64_t d, s;
    rp_login_count(prog.logins, prog.nlogins, at(start), at(end), offset, &d, &s);
    cr_assert_eq(d, want_days, "days %lld != %lld", (long long)d, (long long)want_days);
    cr_assert_eq(s, want_streak, "streak %lld != %lld", (long long)s, (long long)want_streak);
}

Test(login_days, streak_across_the_kst_boundary) {
    progress_reset();
    /* +540: game days turn at 15:00 UTC. 14:59 and 15:01 on the same UTC day are two game days */
    login("2026-11-01T14:59:00Z");
    login("2026-11-01T15:01:00Z");
    login("2026-11-02T16:00:00Z");
    count("2026-10-30T00:00:00Z", "2026-11-30T00:00:00Z", 540, 3, 3);
    /* with offset 0 the first two are one day: 2 days, still consecutive */
    count("2026-10-30T00:00:00Z", "2026-11-30T00:00:00Z", 0, 2, 2);
}

Test(login_days, negative_offset_and_gaps) {
    progress_reset();
    /* -300: game days turn at 05:00 UTC */
    login("2026-11-02T04:00:00Z"); /* game day Nov 1 */
    login("2026-11-02T06:00:00Z"); /* game day Nov 2 */
    login("2026-11-04T06:00:00Z"); /* game day Nov 4: a gap on Nov 3 */
    login("2026-11-05T04:59:00Z"); /* still game day Nov 4 */
    login("2026-11-05T05:00:00Z"); /* game day Nov 5 */
    count("2026-10-30T00:00:00Z", "2026-11-30T00:00:00Z", -300, 4, 2);
}

Test(login_days, logins_outside_the_window_do_not_count) {
    progress_reset();
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

Test(login_days, marks_minutes_and_finds_the_last) {
    unsigned char bits[RP_LOGIN_DAY_BYTES];
    memset(bits, 0, sizeof bits);
    int64_t t1 = at("2026-11-10T00:00:30Z"), t2 = at("2026-11-10T23:59:59Z");
    rp_login_mark(bits, t1);
    rp_login_mark(bits, t2);
    cr_assert_eq(bits[0], 1u, "minute 0 is bit 0 of byte 0");
    cr_assert_eq(bits[179], 0x80u, "minute 1439 is bit 7 of byte 179");
    rp_login_day_t d = {rp_login_utc_day(t1), {0}};
    memcpy(d.minutes, bits, sizeof bits);
    cr_assert_eq(rp_login_last(&d), at("2026-11-10T23:59:00Z"));
    memset(d.minutes, 0, sizeof d.minutes);
    cr_assert_eq(rp_login_last(&d), -1);
    cr_assert_eq(rp_login_utc_day(-1), -1, "an instant before the epoch is on day -1");
    cr_assert_eq(rp_login_utc_day(0), 0);
}
