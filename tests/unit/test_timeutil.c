/* Tests lib/timeutil.c: ISO-8601 formatting and RFC 3339 parsing. */
#include <criterion/criterion.h>
#include <string.h>

#include "timeutil.h"

static bool parse(const char *s, int64_t *ms) {
    return rp_time_parse_iso(s, strlen(s), ms);
}

Test(timeutil, format_and_parse_round_trip) {
    char buf[RP_ISO_LEN];
    int64_t ms;
    rp_time_iso(0, buf);
    cr_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
    rp_time_iso(1709251200123, buf); /* leap day 2024 */
    cr_assert_str_eq(buf, "2024-03-01T00:00:00.123Z");
    cr_assert(parse(buf, &ms));
    cr_assert_eq(ms, 1709251200123);
}

Test(timeutil, offsets_and_fractions) {
    int64_t a, b;
    cr_assert(parse("2026-01-02T09:00:00+09:00", &a));
    cr_assert(parse("2026-01-02T00:00:00Z", &b));
    cr_assert_eq(a, b);
    cr_assert(parse("2026-01-02T00:00:00.5Z", &a));
    cr_assert_eq(a, b + 500);
    cr_assert(parse("2026-01-01T23:30:00-00:30", &a));
    cr_assert_eq(a, b);
}

Test(timeutil, rejects_invalid) {
    int64_t ms;
    const char *bad[] = {"",
                         "2026-01-02",
                         "2026-01-02T00:00:00",
                         "2026-13-02T00:00:00Z",
                         "2026-02-29T00:00:00Z",
                         "2026-01-02T24:00:00Z",
                         "2026-01-02T00:00:00.Z",
                         "2026-01-02T00:00:00+0900",
                         "2026-01-02T00:00:00Zjunk",
                         "2026-01-02 00:00:00Z",
                         "x026-01-02T00:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(parse(bad[i], &ms), "%s", bad[i]);
    cr_assert(parse("2024-02-29T00:00:00Z", &ms));
}

Test(timeutil, ms_as_a_timespec) {
    struct timespec ts = rp_ms_timespec(1234567);
    cr_assert_eq(ts.tv_sec, 1234);
    cr_assert_eq(ts.tv_nsec, 567000000L);
    ts = rp_ms_timespec(999);
    cr_assert_eq(ts.tv_sec, 0);
    cr_assert_eq(ts.tv_nsec, 999000000L);
}
