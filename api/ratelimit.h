/* ratelimit.h - token buckets per client address, so one client cannot take the platform (or
 * the password hashers) for itself. The table is bounded (least recently used buckets make room
 * once they are idle), keys are compared in full, and the slot hash is keyed with a random key
 * per limiter, so no two clients ever share or reset each other's bucket and nobody can aim keys
 * at one slot. A limiter is thread-safe (one mutex, held for a table look-up). */
#ifndef RP_API_RATELIMIT_H
#define RP_API_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rp_ratelimit rp_ratelimit_t;

/* Buckets a limiter made by rp_ratelimit_new holds at most. */
#define RP_RATELIMIT_DEFAULT_KEYS 65536
/* Key bytes kept as they are; a longer key is kept as a keyed 32-byte BLAKE2b digest of it. */
#define RP_RATELIMIT_KEY_MAX 64

/* A limiter refilling `rate` tokens per second up to `burst`, for at most
 * RP_RATELIMIT_DEFAULT_KEYS keys; rate 0 disables it (always allows). Returns a new limiter, free
 * with rp_ratelimit_free. */
rp_ratelimit_t *rp_ratelimit_new(int rate, int burst);

/* As rp_ratelimit_new with at most max_keys buckets (>= 1), all allocated now, so the memory held
 * never grows, and `slots` hash slots (0: the next power of two >= max_keys; tests pass 1 to put
 * every key in one slot). When the table is full, a new key takes the place of the least recently
 * used bucket only when that bucket has refilled to `burst`, so forgetting it changes nothing;
 * otherwise every new key shares one overflow bucket (same rate and burst) until a bucket idles
 * out: a flood of new addresses never resets an active client's bucket nor gets a fresh budget
 * per address. Returns a new limiter, free with rp_ratelimit_free. */
rp_ratelimit_t *rp_ratelimit_new_sized(int rate, int burst, size_t max_keys, size_t slots);

/* Frees the limiter; NULL is fine. No call may be in flight. */
void rp_ratelimit_free(rp_ratelimit_t *rl);

/* Takes one token for key (e.g. the client address; NUL-terminated, any length) at monotonic time
 * now_us. Returns true when allowed; otherwise *retry_after_s says when a token will be there
 * (>= 1). NULL rl or rate 0 always allows. */
bool rp_ratelimit_take(rp_ratelimit_t *rl, const char *key, int64_t now_us, int *retry_after_s);

/* Whether rp_ratelimit_take for key at now_us would be allowed, taking nothing (a key with no
 * bucket would be); otherwise *retry_after_s as take sets it. For a budget charged only after the
 * fact (failed authentications): look first, take once the outcome is known. */
bool rp_ratelimit_peek(rp_ratelimit_t *rl, const char *key, int64_t now_us, int *retry_after_s);

typedef struct rp_ratelimit_stats {
    size_t keys;         /* buckets in use */
    size_t max_keys;     /* the bound */
    size_t memory_bytes; /* held by the limiter: fixed at creation */
    uint64_t evictions;  /* idle buckets forgotten to make room */
    uint64_t overflowed; /* takes charged to the shared overflow bucket because the table was full */
} rp_ratelimit_stats_t;

/* Fills *out with the limiter's current figures (zeros for NULL rl). */
void rp_ratelimit_stats(rp_ratelimit_t *rl, rp_ratelimit_stats_t *out);

/* True when key has a bucket of its own now (for tests of eviction). */
bool rp_ratelimit_tracks(rp_ratelimit_t *rl, const char *key);

#endif
