/* timeutil.h - wall and monotonic clocks and ISO-8601 UTC formatting/parsing; thread-safe. */
#ifndef RP_LIB_TIMEUTIL_H
#define RP_LIB_TIMEUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t rp_now_ms(void);
/* Milliseconds of CLOCK_MONOTONIC, for measuring intervals. */
int64_t rp_mono_ms(void);
/* Monotonic time in microseconds. */
int64_t rp_mono_us(void);
/* A time in ms, on whichever clock it is counted, as the struct timespec of an absolute timed
 * wait (pthread_cond_timedwait on a condition variable of that clock). */
struct timespec rp_ms_timespec(int64_t ms);

#define RP_ISO_LEN 32
/* Formats ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (at least RP_ISO_LEN bytes). */
void rp_time_iso(int64_t ms, char out[RP_ISO_LEN]);
/* Parses an RFC 3339 date-time (e.g. "2026-01-02T03:04:05Z", "...05.5+09:00") of exactly len
 * bytes into epoch ms. Returns false on any syntax or range error. */
bool rp_time_parse_iso(const char *s, size_t len, int64_t *out_ms);

/* Days since the epoch of a civil date (proleptic Gregorian) and back. */
int64_t rp_days_from_civil(int64_t y, unsigned m, unsigned d);
void rp_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

#endif
