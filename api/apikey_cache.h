/* apikey_cache.h - the gateway's authentication of API keys (lib/apikey.h) through a short-lived
 * cache: a key is hashed here (the key itself never leaves this process), and what the hash
 * stands for (account, roles, key id, expiry) or why it is refused is asked of the auth worker
 * and kept ttl_ms, so a revocation reaches every api process within ttl plus one RPC, and a hit
 * costs a hash, a lock and a copy. Refusals are cached too, and a client whose failed look-ups
 * used up its budget (RATE_LIMIT_AUTH_RPS / _BURST per address) gets 429 without a look-up, so
 * garbage keys cannot hammer the auth worker. A fixed table (bounded memory; two keys that hash
 * to one slot evict each other), locked in stripes. Thread-safe. */
#ifndef RP_API_APIKEY_CACHE_H
#define RP_API_APIKEY_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apikey.h"
#include "envelope.h"
#include "err.h"
#include "transport.h"

typedef struct rp_apikey_cache rp_apikey_cache_t;

#define RP_APIKEY_CACHE_SLOTS 4096 /* about 1 MB */

/* A cache asking the auth worker through t (borrowed), keeping answers ttl_ms, hashing with the
 * key derived from jwt_secret (len bytes, copied), and allowing fail_rps failed look-ups a
 * second per client (fail_burst at once; 0 rps = no limit) in up to max_clients buckets. Free
 * with rp_apikey_cache_free. */
rp_apikey_cache_t *rp_apikey_cache_new(rp_transport_t *t, const unsigned char *jwt_secret, size_t len, int ttl_ms,
                                       int fail_rps, int fail_burst, size_t max_clients);
void rp_apikey_cache_free(rp_apikey_cache_t *c);

typedef enum rp_apikey_verdict {
    RP_APIKEY_OK,          /* *who and key_id are set */
    RP_APIKEY_REFUSED,     /* 401: err says why (INVALID_API_KEY, API_KEY_REVOKED) */
    RP_APIKEY_LIMITED,     /* 429: the client's failed look-ups are used up; *retry_after_s */
    RP_APIKEY_UNAVAILABLE, /* 503/504: no answer from the auth worker (err); never admitted unchecked */
} rp_apikey_verdict_t;

/* Authenticates key (len bytes, from the Authorization header) for the client whose rate-limit
 * key is client: on RP_APIKEY_OK *who is the service account (authenticated, its id, name and
 * roles, no token id) and key_id the key's id. deadline_ms (epoch ms) bounds a look-up;
 * request_id (may be NULL) follows it in logs. The key is never logged. */
rp_apikey_verdict_t rp_apikey_cache_check(rp_apikey_cache_t *c, const char *key, size_t len, const char *client,
                                          int64_t deadline_ms, const char *request_id, rp_identity_t *who,
                                          char key_id[RP_OID_LEN], int *retry_after_s, rp_err_t *err);

/* Forgets every answer held (a key was created, rotated or revoked through this process); an
 * answer already on its way is dropped too. */
void rp_apikey_cache_forget_all(rp_apikey_cache_t *c);

/* Mints a new key and its hash (rp_apikey_mint with this cache's secret). */
void rp_apikey_cache_mint(rp_apikey_cache_t *c, char key[RP_APIKEY_LEN + 1], char hash[RP_APIKEY_HASH_LEN]);

#endif
