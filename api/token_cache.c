/* token_cache.c - verified access tokens, kept until they expire (see token_cache.h). */
#include "token_cache.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define STRIPES 64         /* locks; slot i is guarded by lock i % STRIPES */
#define DIGEST_BYTES 16    /* 128-bit keyed BLAKE2b: finding two tokens that share one is hopeless */
#define TOKEN_MIN_BYTES 16 /* shorter is no token of ours: verified, never kept */

typedef struct slot {
    unsigned char digest[DIGEST_BYTES];
    bool used;
    rp_identity_t who;
    rp_token_claims_t claims;
} slot_t;

struct rp_token_cache {
    unsigned char *secret;
    size_t secret_len, nslots;
    unsigned char key[crypto_generichash_KEYBYTES];
    pthread_mutex_t locks[STRIPES];
    slot_t *slots;
    atomic_ullong hits;
};

rp_token_cache_t *rp_token_cache_new(const unsigned char *secret, size_t secret_len, size_t slots) {
    rp_token_cache_t *c = rp_calloc(1, sizeof *c);
    c->secret = rp_malloc(secret_len ? secret_len : 1);
    memcpy(c->secret, secret, secret_len);
    c->secret_len = secret_len;
    c->nslots = slots;
    c->slots = slots ? rp_calloc(slots, sizeof *c->slots) : NULL;
    randombytes_buf(c->key, sizeof c->key);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    atomic_init(&c->hits, 0);
    return c;
}

void rp_token_cache_free(rp_token_cache_t *c) {
    if (!c) return;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&c->locks[i]);
    sodium_memzero(c->secret, c->secret_len);
    sodium_memzero(c->key, sizeof c->key);
    free(c->secret);
    free(c->slots);
    free(c);
}

uint64_t rp_token_cache_hits(rp_token_cache_t *c) {
    return atomic_load(&c->hits);
}

bool rp_token_cache_verify(rp_token_cache_t *c, const char *token, size_t len, int64_t now_s, rp_identity_t *who,
                           rp_token_claims_t *claims, rp_err_t *err) {
    if (c->nslots == 0 || len < TOKEN_MIN_BYTES || len > RP_TOKEN_MAX_LEN)
        return rp_token_verify(c->secret, c->secret_len, token, len, now_s, who, claims, err);
    unsigned char digest[DIGEST_BYTES];
    crypto_generichash(digest, sizeof digest, (const unsigned char *)token, len, c->key, sizeof c->key);
    size_t i;
    memcpy(&i, digest, sizeof i); /* the digest is uniform: its first bytes pick the slot */
    i %= c->nslots;
    slot_t *s = &c->slots[i];
    pthread_mutex_t *mu = &c->locks[i % STRIPES];
    bool hit = false;
    pthread_mutex_lock(mu);
    if (s->used && s->claims.exp > now_s && sodium_memcmp(s->digest, digest, sizeof digest) == 0) {
        *who = s->who;
        if (claims) *claims = s->claims;
        hit = true;
    }
    pthread_mutex_unlock(mu);
    if (hit) {
        atomic_fetch_add(&c->hits, 1);
        return true;
    }
    rp_token_claims_t got;
    if (!rp_token_verify(c->secret, c->secret_len, token, len, now_s, who, &got, err)) return false;
    if (claims) *claims = got;
    pthread_mutex_lock(mu);
    memcpy(s->digest, digest, sizeof digest);
    s->who = *who;
    s->claims = got;
    s->used = true;
    pthread_mutex_unlock(mu);
    return true;
}
