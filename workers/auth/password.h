/* password.h - argon2id password hashing (libsodium) on a pool of hash threads of its own, behind
 * a bounded queue. The RPC threads that ask for a hash wait for it, but at most `threads + queue`
 * of them at once: the next one is refused at once (503 OVERLOADED), so a login flood can never
 * hold every RPC thread of the auth worker, and calls that need no hash (GET /auth/me, refresh,
 * the gateway's session lookups) always find one free. Hash threads run at a lower CPU priority
 * (nice +10), so that on a small machine cheap requests are served first. A hasher is
 * thread-safe. */
#ifndef RP_WORKERS_AUTH_PASSWORD_H
#define RP_WORKERS_AUTH_PASSWORD_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

typedef struct rp_hasher rp_hasher_t;

#define RP_HASH_LEN crypto_pwhash_STRBYTES

/* cost: "standard", "interactive", "moderate" or "min" (tests only); threads >= 1 hash threads
 * (started here), queue >= 0 hashes that may wait for one. Returns a new hasher (free with
 * rp_hasher_free) or NULL for an unknown cost or when no thread could be started. */
rp_hasher_t *rp_hasher_new(const char *cost, int threads, int queue);
/* Stops and joins the hash threads; nobody may be using h any more. Accepts NULL. */
void rp_hasher_free(rp_hasher_t *h);

/* Takes one of the threads + queue places a hash needs, without waiting: false with 503
 * OVERLOADED when every place is taken. A place taken here must be used by exactly one
 * rp_hasher_check, or given back with rp_hasher_leave. Lets a caller do something between being
 * admitted and hashing (the lockout reserves its attempt in the store) knowing the hash will run. */
bool rp_hasher_admit(rp_hasher_t *h, rp_err_t *err);
/* Gives back a place taken with rp_hasher_admit and not used. */
void rp_hasher_leave(rp_hasher_t *h);

/* Hashes pw (len bytes) into out (NUL-terminated "$argon2id$...") on a hash thread, taking and
 * releasing a place itself. Fails with 503 OVERLOADED when no place is free, or when memory for
 * the hash cannot be had. */
bool rp_hasher_hash(rp_hasher_t *h, const char *pw, size_t len, char out[RP_HASH_LEN], rp_err_t *err);
/* On a hash thread, in the place the caller took with rp_hasher_admit (released here): true when
 * pw matches the stored hash, false on a mismatch or a malformed hash. stored NULL burns the time
 * of one verification against a fixed hash, so an unknown account answers as slowly as a known
 * one (and returns false). */
bool rp_hasher_check(rp_hasher_t *h, const char *stored, const char *pw, size_t len);
/* True when stored was made with other parameters than the hasher's (upgrade at next login). */
bool rp_hasher_needs_rehash(rp_hasher_t *h, const char *stored);
/* The highest number of hashes that ran at the same time so far (for tests and metrics). */
int rp_hasher_peak(rp_hasher_t *h);

#endif
