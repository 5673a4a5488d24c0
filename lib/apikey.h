/* apikey.h - API keys of service accounts: their text form ("rpk_" + 43 base64url characters, 256
 * random bits), minting, the keyed hash they are stored and found by, and the look-up the gateway
 * asks the auth worker for (route RP_APIKEY_ROUTE, not reachable from HTTP: the gateway forwards
 * only its route table). Only the api holds a key: it mints it, shows it once and hashes what
 * clients present; the hash alone travels to the auth worker and is stored. Thread-safe; no state
 * of its own. */
#ifndef RP_LIB_APIKEY_H
#define RP_LIB_APIKEY_H

#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "ids.h"
#include "transport.h"

#define RP_APIKEY_PREFIX "rpk_"
#define RP_APIKEY_PREFIX_LEN 4
#define RP_APIKEY_BYTES 32
#define RP_APIKEY_LEN (RP_APIKEY_PREFIX_LEN + 43) /* characters, without the NUL */
#define RP_APIKEY_HASH_LEN 65                     /* hex of 32 bytes and the NUL */
/* A key's last use is written at most once per this long (a look-up that finds it older). */
#define RP_APIKEY_TOUCH_MS 60000

/* POST, body {"keyHash": 64 hex} -> 200 {"serviceAccountId", "name", "roles", "keyId", "expiresAt":
 * epoch ms or null} for a live key; 404 INVALID_API_KEY (no such key or account) or
 * API_KEY_REVOKED (revoked, or its rotation's grace is over); 400 VALIDATION_FAILED on a bad
 * body. */
#define RP_APIKEY_ROUTE "/_internal/api-key"

/* The key the hashes are keyed with, derived from JWT_SECRET with a label of its own (so it is
 * none of the secret's other uses): a copy of the database alone yields nothing to try keys
 * against. */
typedef struct rp_apikey_secret {
    unsigned char key[crypto_generichash_KEYBYTES];
} rp_apikey_secret_t;

/* Derives s from the JWT secret (len bytes). */
void rp_apikey_secret_init(rp_apikey_secret_t *s, const unsigned char *jwt_secret, size_t len);
/* Wipes s. */
void rp_apikey_secret_clear(rp_apikey_secret_t *s);

/* Whether a bearer credential of len bytes claims to be an API key (it starts with the prefix):
 * the gateway tells keys from JWTs by this alone. */
bool rp_apikey_claims(const char *text, size_t len);
/* Whether text (len bytes) is a key as minted: the prefix and 43 base64url characters. */
bool rp_apikey_well_formed(const char *text, size_t len);

/* Mints a key into key (NUL-terminated) and its hash into hash. The caller wipes key
 * (sodium_memzero) once it is sent. */
void rp_apikey_mint(const rp_apikey_secret_t *s, char key[RP_APIKEY_LEN + 1], char hash[RP_APIKEY_HASH_LEN]);
/* The stored form of key (len bytes): hex of BLAKE2b-256 keyed with s. */
void rp_apikey_hash(const rp_apikey_secret_t *s, const char *key, size_t len, char hash[RP_APIKEY_HASH_LEN]);
/* Whether text (len bytes) is a hash as rp_apikey_hash writes it (64 lower-case hex digits). */
bool rp_apikey_hash_valid(const char *text, size_t len);

/* What a live key stands for. */
typedef struct rp_apikey_state {
    char account_id[RP_OID_LEN];
    char name[64];
    unsigned roles;
    char key_id[RP_OID_LEN];
    int64_t expires_at; /* epoch ms, 0 = until revoked */
} rp_apikey_state_t;

/* The 200 reply body of RP_APIKEY_ROUTE for s (a new object). */
json_t *rp_apikey_state_to_json(const rp_apikey_state_t *s);

/* Asks the auth worker what the key of hash stands for, answering before deadline_ms (epoch ms).
 * True with *found and out for a live key, or *found false and code (cap RP_APIKEY_CODE_LEN) the
 * refusal (INVALID_API_KEY, API_KEY_REVOKED); false with err (UNAVAILABLE, TIMEOUT, BAD_REPLY
 * kinds) when there is no usable answer. request_id (may be NULL) follows the call in logs. */
#define RP_APIKEY_CODE_LEN 32
bool rp_apikey_fetch(rp_transport_t *t, const char *hash, int64_t deadline_ms, const char *request_id,
                     rp_apikey_state_t *out, bool *found, char code[RP_APIKEY_CODE_LEN], rp_err_t *err);

#endif
