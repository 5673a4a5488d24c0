/* apikey_cache.c - API key authentication through a striped, fixed-size cache (see
 * apikey_cache.h). */
#include "apikey_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "mem.h"
#include "ratelimit.h"
#include "timeutil.h"

#define STRIPES 64 /* locks; slot i is guarded by lock i % STRIPES */

typedef struct slot {
    char hash[RP_APIKEY_HASH_LEN]; /* "" = empty */
    int64_t fetched_ms;            /* monotonic, when the answer was asked for */
    bool found;
    char code[RP_APIKEY_CODE_LEN]; /* the refusal when !found */
    rp_apikey_state_t state;
    int64_t refresh_ms; /* when a caller last took on renewing this entry ahead of its end */
} slot_t;

struct rp_apikey_cache {
    rp_transport_t *transport;
    int64_t ttl_ms;
    rp_apikey_secret_t secret;
    rp_ratelimit_t *failures;  /* failed look-ups per client */
    _Atomic int64_t forgot_ms; /* answers asked for before this (monotonic) are stale */
    pthread_mutex_t locks[STRIPES];
    slot_t slots[RP_APIKEY_CACHE_SLOTS];
};

rp_apikey_cache_t *rp_apikey_cache_new(rp_transport_t *t, const unsigned char *jwt_secret, size_t len, int ttl_ms,
                                       int fail_rps, int fail_burst, size_t max_clients) {
    rp_apikey_cache_t *c = rp_calloc(1, sizeof *c);
    c->transport = t;
    c->ttl_ms = ttl_ms;
    rp_apikey_secret_init(&c->secret, jwt_secret, len);
    c->failures = rp_ratelimit_new_sized(fail_rps, fail_burst, max_clients, 0);
    atomic_init(&c->forgot_ms, 0);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    return c;
}

void rp_apikey_cache_free(rp_apikey_cache_t *c) {
    if (!c) return;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&c->locks[i]);
    rp_ratelimit_free(c->failures);
    rp_apikey_secret_clear(&c->secret);
    free(c);
}

void rp_apikey_cache_mint(rp_apikey_cache_t *c, char key[RP_APIKEY_LEN + 1], char hash[RP_APIKEY_HASH_LEN]) {
    rp_apikey_mint(&c->secret, key, hash);
}

void rp_apikey_cache_forget_all(rp_apikey_cache_t *c) {
    atomic_store(&c->forgot_ms, rp_mono_ms());
}

/* The hash is keyed with a secret, so clients cannot aim keys at one slot. */
static size_t slot_of(const char *hash) {
    return (size_t)(rp_hash_str(hash) % RP_APIKEY_CACHE_SLOTS);
}

/* Copies the answer held for hash when it is younger than the ttl and than the last forget; false
 * on a miss, and for one caller once the entry is in the last quarter of its life (it renews it
 * while the others still use it: a key in steady use never sends a crowd of look-ups at once). */
static bool lookup(rp_apikey_cache_t *c, const char *hash, int64_t now, slot_t *out) {
    size_t i = slot_of(hash);
    bool hit = false;
    int64_t forgot = atomic_load(&c->forgot_ms);
    pthread_mutex_lock(&c->locks[i % STRIPES]);
    slot_t *s = &c->slots[i];
    if (strcmp(s->hash, hash) == 0 && s->fetched_ms > forgot && now - s->fetched_ms < c->ttl_ms) {
        int64_t ahead = c->ttl_ms / 4;
        if (now - s->fetched_ms >= c->ttl_ms - ahead && now - s->refresh_ms >= ahead) {
            s->refresh_ms = now;
        } else {
            *out = *s;
            hit = true;
        }
    }
    pthread_mutex_unlock(&c->locks[i % STRIPES]);
    return hit;
}

static void store(rp_apikey_cache_t *c, const slot_t *answer) {
    size_t i = slot_of(answer->hash);
    if (c->ttl_ms <= 0 || answer->fetched_ms <= atomic_load(&c->forgot_ms)) return;
    pthread_mutex_lock(&c->locks[i % STRIPES]);
    slot_t *s = &c->slots[i];
    if (strcmp(s->hash, answer->hash) != 0 || answer->fetched_ms >= s->fetched_ms) {
        int64_t refresh = strcmp(s->hash, answer->hash) == 0 ? s->refresh_ms : 0;
        *s = *answer;
        s->refresh_ms = refresh;
    }
    pthread_mutex_unlock(&c->locks[i % STRIPES]);
}

static void refuse(const char *code, rp_err_t *err) {
    if (strcmp(code, "API_KEY_REVOKED") == 0)
        rp_err_set(err, RP_ERR_UNAUTHENTICATED, code, "the API key was revoked or has expired");
    else
        rp_err_set(err, RP_ERR_UNAUTHENTICATED, "INVALID_API_KEY", "the API key is not valid");
}

rp_apikey_verdict_t rp_apikey_cache_check(rp_apikey_cache_t *c, const char *key, size_t len, const char *client,
                                          int64_t deadline_ms, const char *request_id, rp_identity_t *who,
                                          char key_id[RP_OID_LEN], int *retry_after_s, rp_err_t *err) {
    slot_t a;
    memset(&a, 0, sizeof a);
    memset(who, 0, sizeof *who);
    key_id[0] = '\0';
    *retry_after_s = 0;
    if (!rp_apikey_well_formed(key, len)) {
        refuse("INVALID_API_KEY", err);
        return RP_APIKEY_REFUSED;
    }
    rp_apikey_hash(&c->secret, key, len, a.hash);
    if (!lookup(c, a.hash, rp_mono_ms(), &a)) {
        /* a look-up costs the auth worker a read: a client whose look-ups keep failing waits */
        if (!rp_ratelimit_peek(c->failures, client, rp_mono_us(), retry_after_s)) {
            rp_err_set(err, RP_ERR_UNAVAILABLE, "RATE_LIMITED", "too many failed API key checks from this address");
            return RP_APIKEY_LIMITED;
        }
        a.fetched_ms = rp_mono_ms();
        if (!rp_apikey_fetch(c->transport, a.hash, deadline_ms, request_id, &a.state, &a.found, a.code, err))
            return RP_APIKEY_UNAVAILABLE;
        store(c, &a);
        if (!a.found) (void)rp_ratelimit_take(c->failures, client, rp_mono_us(), retry_after_s);
        *retry_after_s = 0;
    }
    /* a rotation's grace may end while the answer is held */
    if (a.found && a.state.expires_at && a.state.expires_at <= rp_now_ms()) {
        a.found = false;
        snprintf(a.code, sizeof a.code, "API_KEY_REVOKED");
    }
    if (!a.found) {
        refuse(a.code, err);
        return RP_APIKEY_REFUSED;
    }
    who->authenticated = true;
    memcpy(who->id, a.state.account_id, sizeof who->id);
    snprintf(who->username, sizeof who->username, "%s", a.state.name);
    who->roles = a.state.roles;
    memcpy(key_id, a.state.key_id, RP_OID_LEN);
    return RP_APIKEY_OK;
}
