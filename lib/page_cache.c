/* page_cache.c - briefly kept rendered pages (see page_cache.h). Direct-mapped slots, each with
 * its own lock; the generation is one atomic counter. */
#include "page_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "mem.h"

typedef struct slot {
    pthread_mutex_t mu;
    char *key;
    char *text;
    size_t len;
    uint64_t gen;
    int64_t until_ms;
    int64_t refresh_ms; /* when a caller last took on renewing this page ahead of its end */
} slot_t;

struct rp_page_cache {
    int ttl_ms;
    size_t nslots, max_bytes;
    _Atomic uint64_t gen;
    slot_t *slots;
};

rp_page_cache_t *rp_page_cache_new(int ttl_ms, size_t slots, size_t max_bytes) {
    rp_page_cache_t *c = rp_calloc(1, sizeof *c);
    c->ttl_ms = ttl_ms > 0 ? ttl_ms : 0;
    c->nslots = slots > 0 ? slots : 1;
    c->max_bytes = max_bytes;
    c->slots = rp_calloc(c->nslots, sizeof *c->slots);
    for (size_t i = 0; i < c->nslots; i++)
        pthread_mutex_init(&c->slots[i].mu, NULL);
    return c;
}

void rp_page_cache_free(rp_page_cache_t *c) {
    if (!c) return;
    for (size_t i = 0; i < c->nslots; i++) {
        pthread_mutex_destroy(&c->slots[i].mu);
        free(c->slots[i].key);
        free(c->slots[i].text);
    }
    free(c->slots);
    free(c);
}

/* keys come from this process, not from clients' choice alone: the plain hash will do */
static slot_t *slot_of(rp_page_cache_t *c, const char *key) {
    return &c->slots[rp_hash_str(key) % c->nslots];
}

uint64_t rp_page_cache_generation(rp_page_cache_t *c) {
    return atomic_load(&c->gen);
}

char *rp_page_cache_get(rp_page_cache_t *c, const char *key, int64_t now_ms, size_t *len, int64_t *until_ms) {
    if (c->ttl_ms == 0) return NULL;
    slot_t *s = slot_of(c, key);
    char *out = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->key && s->gen == atomic_load(&c->gen) && now_ms < s->until_ms && strcmp(s->key, key) == 0) {
        /* in the last quarter of its life, one caller (at most one per quarter) renews the page
         * while the others still read it: no crowd recomputing it the moment it ends */
        int64_t ahead = c->ttl_ms / 4;
        if (now_ms >= s->until_ms - ahead && now_ms - s->refresh_ms >= ahead) {
            s->refresh_ms = now_ms;
        } else {
            out = rp_malloc(s->len + 1);
            memcpy(out, s->text, s->len + 1);
            *len = s->len;
            if (until_ms) *until_ms = s->until_ms;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return out;
}

void rp_page_cache_put(rp_page_cache_t *c, const char *key, uint64_t gen, int64_t now_ms, int64_t until_ms,
                       const char *text, size_t len) {
    if (c->ttl_ms == 0 || len > c->max_bytes || gen != atomic_load(&c->gen)) return;
    if (until_ms > now_ms + c->ttl_ms) until_ms = now_ms + c->ttl_ms;
    if (until_ms <= now_ms) return;
    char *k = rp_strdup(key), *t = rp_malloc(len + 1);
    memcpy(t, text, len);
    t[len] = '\0';
    slot_t *s = slot_of(c, key);
    pthread_mutex_lock(&s->mu);
    char *old_k = s->key, *old_t = s->text;
    s->key = k;
    s->text = t;
    s->len = len;
    s->gen = gen;
    s->until_ms = until_ms;
    pthread_mutex_unlock(&s->mu);
    free(old_k);
    free(old_t);
}

void rp_page_cache_forget(rp_page_cache_t *c) {
    atomic_fetch_add(&c->gen, 1);
}
