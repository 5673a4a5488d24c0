/* login_days.c - the login-minute bitmaps (see login_days.h). */
#include "login_days.h"

#include <stdlib.h>
#include <string.h>

#include "mem.h"

static int64_t floor_div(int64_t a, int64_t b) {
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

int64_t rp_login_utc_day(int64_t at) {
    return floor_div(at, RP_DAY_MS);
}

void rp_login_mark(unsigned char minutes[RP_LOGIN_DAY_BYTES], int64_t at) {
    int minute = (int)((at - rp_login_utc_day(at) * RP_DAY_MS) / 60000);
    minutes[minute / 8] |= (unsigned char)(1u << (minute % 8));
}

int64_t rp_login_last(const rp_login_day_t *d) {
    for (int m = 1439; m >= 0; m--)
        if (d->minutes[m / 8] & (1u << (m % 8))) return d->utc_day * RP_DAY_MS + (int64_t)m * 60000;
    return -1;
}

void rp_login_count(const rp_login_day_t *days, size_t n, int64_t start_ms, int64_t end_ms, int day_offset_minutes,
                    int64_t *count, int64_t *streak) {
    int64_t off = (int64_t)day_offset_minutes * 60000;
    int64_t first = floor_div(start_ms + off, RP_DAY_MS), last = floor_div(end_ms - 1 + off, RP_DAY_MS);
    *count = *streak = 0;
    if (end_ms <= start_ms || last - first > 4000) return;
    size_t span = (size_t)(last - first + 1);
    unsigned char *seen = rp_calloc(span, 1);
    for (size_t r = 0; r < n; r++) {
        const rp_login_day_t *d = &days[r];
        for (int b = 0; b < RP_LOGIN_DAY_BYTES; b++) {
            if (!d->minutes[b]) continue;
            for (int bit = 0; bit < 8; bit++) {
                if (!(d->minutes[b] & (1u << bit))) continue;
                int64_t t = d->utc_day * RP_DAY_MS + (int64_t)(b * 8 + bit) * 60000;
                if (t < start_ms || t >= end_ms) continue;
                int64_t g = floor_div(t + off, RP_DAY_MS);
                if (g >= first && g <= last) seen[g - first] = 1;
            }
        }
    }
    int64_t run = 0;
    for (size_t k = 0; k < span; k++) {
        if (seen[k]) {
            (*count)++;
            run++;
            if (run > *streak) *streak = run;
        } else {
            run = 0;
        }
    }
    free(seen);
}
