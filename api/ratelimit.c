/* ratelimit.c - per-key token buckets in a bounded chained hash table with a least-recently-used
 * list (see ratelimit.h). Every entry is allocated at creation but left untouched until a key
 * needs it (the zeroed pages of calloc cost no memory until written), so a limiter sized for
 * 65,536 keys holds only what its keys use; all state is under one mutex. */
#include "ratelimit.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define NONE (-1)
#define DIGESTED 0xff /* key_len of an entry whose key is the digest of a longer key */

typedef struct entry {
    uint8_t key[RP_RATELIMIT_KEY_MAX];
    uint8_t key_len;      /* 0..RP_RATELIMIT_KEY_MAX, or DIGESTED */
    int32_t chain;        /* next entry in the same slot, or in the free list */
    int32_t newer, older; /* the LRU list */
    uint32_t slot;
    double tokens;
    int64_t last_us;
} entry_t;

/* A key as the table compares it: its bytes, or the digest of a long one. */
typedef struct norm_key {
    uint8_t bytes[RP_RATELIMIT_KEY_MAX];
    uint8_t len;
} norm_key_t;

struct rp_ratelimit {
    int rate, burst;
    size_t max_keys, nslots, used;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    unsigned char digest_key[crypto_generichash_KEYBYTES];
    pthread_mutex_t mu;
    int32_t *slots;   /* the first entry of each slot's chain, plus one: 0 is an empty slot */
    entry_t *entries; /* entries[0..used) have held a key; the rest are untouched */
    int32_t newest, oldest;
    entry_t overflow; /* shared by new keys while every bucket is active */
    uint64_t evictions, overflowed;
};

rp_ratelimit_t *rp_ratelimit_new(int rate, int burst) {
    return rp_ratelimit_new_sized(rate, burst, RP_RATELIMIT_DEFAULT_KEYS, 0);
}

rp_ratelimit_t *rp_ratelimit_new_sized(int rate, int burst, size_t max_keys, size_t slots) {
    if (sodium_init() < 0) abort(); /* no random key, no limiter: as fatal as an allocation failure */
    if (max_keys < 1) max_keys = 1;
    if (max_keys > INT32_MAX) max_keys = INT32_MAX;
    if (slots == 0)
        for (slots = 1; slots < max_keys; slots <<= 1)
            ;
    rp_ratelimit_t *rl = rp_calloc(1, sizeof *rl);
    rl->rate = rate;
    rl->burst = burst > 0 ? burst : 1;
    rl->max_keys = max_keys;
    rl->nslots = slots;
    /* keyed: whoever picks client addresses (any IPv6 subscriber, anyone behind a proxy) cannot
     * choose keys that pile into one slot */
    crypto_shorthash_keygen(rl->hash_key);
    crypto_generichash_keygen(rl->digest_key);
    pthread_mutex_init(&rl->mu, NULL);
    rl->slots = rp_calloc(slots, sizeof *rl->slots);
    rl->entries = rp_calloc(max_keys, sizeof *rl->entries);
    rl->newest = rl->oldest = NONE;
    rl->overflow.tokens = rl->burst;
    rl->overflow.last_us = INT64_MIN;
    return rl;
}

void rp_ratelimit_free(rp_ratelimit_t *rl) {
    if (!rl) return;
    pthread_mutex_destroy(&rl->mu);
    free(rl->slots);
    free(rl->entries);
    free(rl);
}

static void normalise(const rp_ratelimit_t *rl, const char *key, norm_key_t *out) {
    size_t n = key ? strlen(key) : 0;
    memset(out, 0, sizeof *out);
    if (n <= RP_RATELIMIT_KEY_MAX) {
        if (n) memcpy(out->bytes, key, n);
        out->len = (uint8_t)n;
        return;
    }
    crypto_generichash(out->bytes, crypto_generichash_BYTES, (const unsigned char *)key, n, rl->digest_key,
                       sizeof rl->digest_key);
    out->len = DIGESTED;
}

static uint32_t slot_of(const rp_ratelimit_t *rl, const norm_key_t *k) {
    unsigned char h[crypto_shorthash_BYTES];
    size_t n = k->len == DIGESTED ? crypto_generichash_BYTES : k->len;
    crypto_shorthash(h, k->bytes, n, rl->hash_key);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return (uint32_t)(v % rl->nslots);
}

static bool same_key(const entry_t *e, const norm_key_t *k) {
    size_t n = k->len == DIGESTED ? crypto_generichash_BYTES : k->len;
    return e->key_len == k->len && memcmp(e->key, k->bytes, n) == 0;
}

/* The entry holding k, or NONE. Caller holds mu. */
static int32_t find(const rp_ratelimit_t *rl, const norm_key_t *k, uint32_t slot) {
    for (int32_t i = rl->slots[slot] - 1; i != NONE; i = rl->entries[i].chain)
        if (same_key(&rl->entries[i], k)) return i;
    return NONE;
}

static void lru_unlink(rp_ratelimit_t *rl, int32_t i) {
    entry_t *e = &rl->entries[i];
    if (e->newer != NONE)
        rl->entries[e->newer].older = e->older;
    else
        rl->newest = e->older;
    if (e->older != NONE)
        rl->entries[e->older].newer = e->newer;
    else
        rl->oldest = e->newer;
}

static void lru_push(rp_ratelimit_t *rl, int32_t i) {
    entry_t *e = &rl->entries[i];
    e->newer = NONE;
    e->older = rl->newest;
    if (rl->newest != NONE) rl->entries[rl->newest].newer = i;
    rl->newest = i;
    if (rl->oldest == NONE) rl->oldest = i;
}

static void chain_unlink(rp_ratelimit_t *rl, int32_t i) {
    int32_t *head = &rl->slots[rl->entries[i].slot];
    if (*head - 1 == i) {
        *head = rl->entries[i].chain + 1;
        return;
    }
    int32_t j = *head - 1;
    while (rl->entries[j].chain != i)
        j = rl->entries[j].chain;
    rl->entries[j].chain = rl->entries[i].chain;
}

/* The tokens b holds at now_us, refilled up to burst. */
static double refilled(const rp_ratelimit_t *rl, const entry_t *b, int64_t now_us) {
    if (b->last_us == INT64_MIN) return rl->burst;
    double t = b->tokens;
    if (now_us > b->last_us) t += (double)(now_us - b->last_us) / 1e6 * rl->rate;
    return t > rl->burst ? rl->burst : t;
}

/* A fresh entry for k: a free one, or the least recently used once it has refilled; NONE when
 * every bucket is still active. Caller holds mu. */
static int32_t claim(rp_ratelimit_t *rl, const norm_key_t *k, uint32_t slot, int64_t now_us) {
    int32_t i = NONE;
    if (rl->used < rl->max_keys) {
        i = (int32_t)rl->used++; /* never used before: entries are not given back, only reused */
    } else {
        i = rl->oldest;
        if (i == NONE || refilled(rl, &rl->entries[i], now_us) < rl->burst) return NONE;
        lru_unlink(rl, i);
        chain_unlink(rl, i);
        rl->evictions++;
    }
    entry_t *e = &rl->entries[i];
    memcpy(e->key, k->bytes, sizeof e->key);
    e->key_len = k->len;
    e->slot = slot;
    e->tokens = rl->burst;
    e->last_us = now_us;
    e->chain = rl->slots[slot] - 1;
    rl->slots[slot] = i + 1;
    lru_push(rl, i);
    return i;
}

bool rp_ratelimit_take(rp_ratelimit_t *rl, const char *key, int64_t now_us, int *retry_after_s) {
    *retry_after_s = 0;
    if (!rl || rl->rate <= 0) return true;
    norm_key_t k;
    normalise(rl, key, &k);
    uint32_t slot = slot_of(rl, &k);
    bool ok;
    pthread_mutex_lock(&rl->mu);
    int32_t i = find(rl, &k, slot);
    if (i != NONE) {
        lru_unlink(rl, i);
        lru_push(rl, i);
    } else {
        i = claim(rl, &k, slot, now_us);
    }
    entry_t *b = i != NONE ? &rl->entries[i] : &rl->overflow;
    if (i == NONE) rl->overflowed++;
    b->tokens = refilled(rl, b, now_us);
    if (now_us > b->last_us) b->last_us = now_us;
    ok = b->tokens >= 1.0;
    if (ok) {
        b->tokens -= 1.0;
    } else {
        double wait_s = (1.0 - b->tokens) / rl->rate;
        *retry_after_s = (int)wait_s + 1;
    }
    pthread_mutex_unlock(&rl->mu);
    return ok;
}

bool rp_ratelimit_peek(rp_ratelimit_t *rl, const char *key, int64_t now_us, int *retry_after_s) {
    *retry_after_s = 0;
    if (!rl || rl->rate <= 0) return true;
    norm_key_t k;
    normalise(rl, key, &k);
    uint32_t slot = slot_of(rl, &k);
    pthread_mutex_lock(&rl->mu);
    int32_t i = find(rl, &k, slot);
    double tokens = i != NONE ? refilled(rl, &rl->entries[i], now_us) : (double)rl->burst;
    pthread_mutex_unlock(&rl->mu);
    if (tokens >= 1.0) return true;
    *retry_after_s = (int)((1.0 - tokens) / rl->rate) + 1;
    return false;
}

void rp_ratelimit_stats(rp_ratelimit_t *rl, rp_ratelimit_stats_t *out) {
    memset(out, 0, sizeof *out);
    if (!rl) return;
    pthread_mutex_lock(&rl->mu);
    out->keys = rl->used;
    out->max_keys = rl->max_keys;
    out->memory_bytes = sizeof *rl + rl->nslots * sizeof *rl->slots + rl->max_keys * sizeof *rl->entries;
    out->evictions = rl->evictions;
    out->overflowed = rl->overflowed;
    pthread_mutex_unlock(&rl->mu);
}

bool rp_ratelimit_tracks(rp_ratelimit_t *rl, const char *key) {
    if (!rl) return false;
    norm_key_t k;
    normalise(rl, key, &k);
    uint32_t slot = slot_of(rl, &k);
    pthread_mutex_lock(&rl->mu);
    bool found = find(rl, &k, slot) != NONE;
    pthread_mutex_unlock(&rl->mu);
    return found;
}
