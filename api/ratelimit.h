/* ratelimit.h - token buckets per client address, so one client cannot take the platform (or
 * the password hashers) for itself. A limiter is thread-safe (striped locks). */
#ifndef RP_API_RATELIMIT_H
#define RP_API_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct rp_ratelimit rp_ratelimit_t;

/* A limiter refilling `rate` tokens per second up to `burst`; rate 0 disables it (always
 * allows). Returns a new limiter, free with rp_ratelimit_free. */
rp_ratelimit_t *rp_ratelimit_new(int rate, int burst);
void rp_ratelimit_free(rp_ratelimit_t *rl);

/* Takes one token for key (e.g. the client address) at monotonic time now_us. Returns true when
 * allowed; otherwise *retry_after_s says when a token will be there (>= 1). */
bool rp_ratelimit_take(rp_ratelimit_t *rl, const char *key, int64_t now_us, int *retry_after_s);

#endif
