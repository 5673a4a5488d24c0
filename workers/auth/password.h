/* password.h - argon2id password hashing (libsodium) with a bound on how many hashes run at
 * once, so a login flood cannot exhaust memory (each INTERACTIVE hash holds 64 MiB). A hasher is
 * thread-safe. */
#ifndef RP_WORKERS_AUTH_PASSWORD_H
#define RP_WORKERS_AUTH_PASSWORD_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

typedef struct rp_hasher rp_hasher_t;

#define RP_HASH_LEN crypto_pwhash_STRBYTES

/* cost: "interactive", "moderate" or "min" (tests only); concurrency >= 1. Returns a new hasher
 * (free with rp_hasher_free) or NULL for an unknown cost. */
rp_hasher_t *rp_hasher_new(const char *cost, int concurrency);
void rp_hasher_free(rp_hasher_t *h);

/* Hashes pw (len bytes) into out (NUL-terminated "$argon2id$..."). Fails with 503 when memory
 * for the hash cannot be had. */
bool rp_hasher_hash(rp_hasher_t *h, const char *pw, size_t len, char out[RP_HASH_LEN], rp_err_t *err);
/* True when pw matches the stored hash; false on mismatch or a malformed hash. */
bool rp_hasher_verify(rp_hasher_t *h, const char *stored, const char *pw, size_t len);
/* Burns the time of one verification against a fixed hash, so an unknown account answers as
 * slowly as a known one. */
void rp_hasher_verify_dummy(rp_hasher_t *h, const char *pw, size_t len);
/* True when stored was made with other parameters than the hasher's (upgrade at next login). */
bool rp_hasher_needs_rehash(rp_hasher_t *h, const char *stored);
/* The highest number of hashes that ran at the same time so far (for tests and metrics). */
int rp_hasher_peak(rp_hasher_t *h);

#endif
