/* period.c - game days and period keys (see period.h). */
#include "period.h"

#include <stdio.h>
#include <string.h>

#include "timeutil.h"

#define DAY_MS 86400000LL

bool rp_period_parse(const char *s, rp_period_t *out) {
    if (!s) return false;
    if (strcmp(s, "ONCE") == 0)
        *out = RP_PERIOD_ONCE;
    else if (strcmp(s, "DAILY") == 0)
        *out = RP_PERIOD_DAILY;
    else if (strcmp(s, "WEEKLY") == 0)
        *out = RP_PERIOD_WEEKLY;
    else
        return false;
    return true;
}

static int64_t floor_div(int64_t a, int64_t b) {
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

int64_t rp_game_day(int64_t ms, int day_offset_minutes) {
    return floor_div(ms + (int64_t)day_offset_minutes * 60000, DAY_MS);
}

void rp_period_key(rp_period_t p, int64_t ms, int day_offset_minutes, char out[RP_PERIOD_KEY_LEN]) {
    int64_t day = rp_game_day(ms, day_offset_minutes);
    int64_t y;
    unsigned m, d;
    switch (p) {
    case RP_PERIOD_DAILY:
        rp_civil_from_days(day, &y, &m, &d);
        snprintf(out, RP_PERIOD_KEY_LEN, "D:%04lld-%02u-%02u", (long long)y, m, d);
        return;
    case RP_PERIOD_WEEKLY: {
        /* ISO 8601: weeks start on Monday; a week belongs to the year of its Thursday */
        int64_t days_since_monday = (day + 3) - floor_div(day + 3, 7) * 7; /* day 0 was a Thursday */
        int64_t monday = day - days_since_monday;
        int64_t thursday = monday + 3;
        rp_civil_from_days(thursday, &y, &m, &d);
        int64_t jan1 = rp_days_from_civil(y, 1, 1);
        int week = (int)((thursday - jan1) / 7) + 1;
        snprintf(out, RP_PERIOD_KEY_LEN, "W:%04lld-W%02d", (long long)y, week);
        return;
    }
    case RP_PERIOD_ONCE:
    default: snprintf(out, RP_PERIOD_KEY_LEN, "ONCE"); return;
    }
}

bool rp_active_key(const char *user_id, const char *event_id, const char *period_key, char *out, size_t cap) {
    int n = snprintf(out, cap, "%s:%s:%s", user_id, event_id, period_key);
    return n > 0 && (size_t)n < cap;
}
