/* token_cache.c - verified access tokens, kept until they expire (see token_cache.h). */
#include "token_cache.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define STRIPES 64         /* locks; set i is guarded by lock i % STRIPES */
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
    size_t secret_len, nsets, ways; /* nsets sets of `ways` slots */
    unsigned char key[crypto_generichash_KEYBYTES];
    pthread_mutex_t locks[STRIPES];
    slot_t *slots;
    atomic_ullong hits, verified;
};

rp_token_cache_t *rp_token_cache_new(const unsigned char *secret, size_t secret_len, size_t slots) {
    rp_token_cache_t *c = rp_calloc(1, sizeof *c);
    c->secret = rp_malloc(secret_len ? secret_len : 1);
    memcpy(c->secret, secret, secret_len);
    c->secret_len = secret_len;
    c->ways = slots < RP_TOKEN_CACHE_WAYS ? slots : RP_TOKEN_CACHE_WAYS;
    c->nsets = c->ways ? slots / c->ways : 0;
    c->slots = c->nsets ? rp_calloc(c->nsets * c->ways, sizeof *c->slots) : NULL;
    randombytes_buf(c->key, sizeof c->key);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    atomic_init(&c->hits, 0);
    atomic_init(&c->verified, 0);
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

void rp_token_cache_stats(rp_token_cache_t *c, rp_token_stats_t *out) {
    out->kept = atomic_load(&c->hits);
    out->verified = atomic_load(&c->verified);
}

/* The way of set (locked) to put a token in at now_s: a free or expired one, else the one that
 * expires first. */
static slot_t *victim(rp_token_cache_t *c, slot_t *set, int64_t now_s) {
    slot_t *v = &set[0];
    for (size_t w = 0; w < c->ways; w++) {
        if (!set[w].used || set[w].claims.exp <= now_s) return &set[w];
        if (set[w].claims.exp < v->claims.exp) v = &set[w];
    }
    return v;
}

bool rp_token_cache_verify(rp_token_cache_t *c, const char *token, size_t len, int64_t now_s, rp_identity_t *who,
                           rp_token_claims_t *claims, rp_err_t *err) {
    if (c->nsets == 0 || len < TOKEN_MIN_BYTES || len > RP_TOKEN_MAX_LEN) {
        atomic_fetch_add(&c->verified, 1);
        return rp_token_verify(c->secret, c->secret_len, token, len, now_s, who, claims, err);
    }
    unsigned char digest[DIGEST_BYTES];
    crypto_generichash(digest, sizeof digest, (const unsigned char *)token, len, c->key, sizeof c->key);
    size_t i;
    memcpy(&i, digest, sizeof i); /* the digest is uniform: its first bytes pick the set */
    i %= c->nsets;
    slot_t *set = &c->slots[i * c->ways];
    pthread_mutex_t *mu = &c->locks[i % STRIPES];
    bool hit = false;
    pthread_mutex_lock(mu);
    for (size_t w = 0; w < c->ways && !hit; w++) {
        const slot_t *s = &set[w];
        if (s->used && s->claims.exp > now_s && sodium_memcmp(s->digest, digest, sizeof digest) == 0) {
            *who = s->who;
            if (claims) *claims = s->claims;
            hit = true;
        }
    }
    pthread_mutex_unlock(mu);
    if (hit) {
        atomic_fetch_add(&c->hits, 1);
        return true;
    }
    atomic_fetch_add(&c->verified, 1);
    rp_token_claims_t got;
    if (!rp_token_verify(c->secret, c->secret_len, token, len, now_s, who, &got, err)) return false;
    if (claims) *claims = got;
    pthread_mutex_lock(mu);
    slot_t *s = NULL;
    for (size_t w = 0; w < c->ways && !s; w++) /* put there meanwhile by another caller */
        if (set[w].used && sodium_memcmp(set[w].digest, digest, sizeof digest) == 0) s = &set[w];
    if (!s) s = victim(c, set, now_s);
    memcpy(s->digest, digest, sizeof digest);
    s->who = *who;
    s->claims = got;
    s->used = true;
    pthread_mutex_unlock(mu);
    return true;
}
