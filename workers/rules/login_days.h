/* login_days.h - the one encoding of player logins: per player and UTC day, a bitmap of the 1440
 * minutes with a login (bit m of byte m/8, least significant first). Stores keep the bytes as
 * they are; marking a login, finding the last one and counting game days for any day offset
 * and event window happen here only. Pure functions; thread-safe. */
#ifndef RP_WORKERS_RULES_LOGIN_DAYS_H
#define RP_WORKERS_RULES_LOGIN_DAYS_H

#include <stddef.h>
#include <stdint.h>

#define RP_LOGIN_DAY_BYTES 180 /* 1440 minutes */
#define RP_DAY_MS INT64_C(86400000)

typedef struct rp_login_day {
    int64_t utc_day; /* days since the epoch, UTC */
    unsigned char minutes[RP_LOGIN_DAY_BYTES];
} rp_login_day_t;

/* The UTC day of instant at (floor division: instants before the epoch fall on negative days). */
int64_t rp_login_utc_day(int64_t at);

/* Marks the minute of instant at in the bitmap of its UTC day (the caller passes the day's
 * bitmap, rp_login_utc_day(at)'s). */
void rp_login_mark(unsigned char minutes[RP_LOGIN_DAY_BYTES], int64_t at);

/* The instant (ms) of the last minute with a login in d, or -1 when none is set. */
int64_t rp_login_last(const rp_login_day_t *d);

/* Over the rows days[0..n): the game days with a login inside [start_ms, end_ms) (*count) and
 * the longest run of consecutive such game days (*streak). A game day is
 * floor((t + day_offset_minutes * 60000) / day); the rows may come in any order. Windows longer
 * than 4000 days count nothing. */
void rp_login_count(const rp_login_day_t *days, size_t n, int64_t start_ms, int64_t end_ms, int day_offset_minutes,
                    int64_t *count, int64_t *streak);

#endif
