/* period.h - claim periods: the game day of an instant and the period key that makes a claim
 * unique per (player, event, period). Pure functions, thread-safe. */
#ifndef RP_WORKERS_RULES_PERIOD_H
#define RP_WORKERS_RULES_PERIOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { RP_PERIOD_ONCE = 0, RP_PERIOD_DAILY = 1, RP_PERIOD_WEEKLY = 2 } rp_period_t;

/* Parses "ONCE" / "DAILY" / "WEEKLY"; false when unknown. */
bool rp_period_parse(const char *s, rp_period_t *out);

/* The game day of instant ms: days since the epoch after shifting by day_offset_minutes (a
 * +540 offset makes the game day turn at 15:00 UTC = midnight KST). */
int64_t rp_game_day(int64_t ms, int day_offset_minutes);

#define RP_PERIOD_KEY_LEN 24
/* Writes the period key of instant ms: "ONCE", "D:2026-11-24" (the game day's date) or
 * "W:2026-W48" (the ISO week of the game day). */
void rp_period_key(rp_period_t p, int64_t ms, int day_offset_minutes, char out[RP_PERIOD_KEY_LEN]);

/* Writes "<userId>:<eventId>:<periodKey>" into out (cap bytes); false when it does not fit. */
bool rp_active_key(const char *user_id, const char *event_id, const char *period_key, char *out, size_t cap);

#endif
