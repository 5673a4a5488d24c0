/* page_cache.c - briefly kept rendered pages (see page_cache.h). Direct-mapped slots, each with
 * its own lock; the generation is one atomic counter. */
#include "page_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "mem.h"
#include "timeutil.h"

typedef struct slot {
    pthread_mutex_t mu;
    char *key;
    char *text;
    size_t len;
    uint64_t gen;
    int64_t until_ms;
    int64_t refresh_ms; /* when a caller last took on renewing this page ahead of its end */
    bool renewing;      /* a caller got NULL to renew this page and has not put it or given up */
    uint64_t round;     /* renewals ended (put or done): what the callers waiting for one watch */
    pthread_cond_t ended;
} slot_t;

struct rp_page_cache {
    int ttl_ms;
    size_t nslots, max_bytes;
    _Atomic uint64_t gen;
    atomic_size_t waiting; /* callers waiting for a renewal now */
    slot_t *slots;
};

rp_page_cache_t *rp_page_cache_new(int ttl_ms, size_t slots, size_t max_bytes) {
    rp_page_cache_t *c = rp_calloc(1, sizeof *c);
    c->ttl_ms = ttl_ms > 0 ? ttl_ms : 0;
    c->nslots = slots > 0 ? slots : 1;
    c->max_bytes = max_bytes;
    c->slots = rp_calloc(c->nslots, sizeof *c->slots);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (size_t i = 0; i < c->nslots; i++) {
        pthread_mutex_init(&c->slots[i].mu, NULL);
        pthread_cond_init(&c->slots[i].ended, &ca);
    }
    pthread_condattr_destroy(&ca);
    return c;
}

void rp_page_cache_free(rp_page_cache_t *c) {
    if (!c) return;
    for (size_t i = 0; i < c->nslots; i++) {
        pthread_mutex_destroy(&c->slots[i].mu);
        pthread_cond_destroy(&c->slots[i].ended);
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

/* Waits on s (locked) until the renewal under way ends or until the monotonic deadline; true
 * when it ended. */
static bool wait_renewal(rp_page_cache_t *c, slot_t *s, int64_t until_mono_ms) {
    uint64_t round = s->round;
    struct timespec ts = rp_ms_timespec(until_mono_ms);
    atomic_fetch_add(&c->waiting, 1);
    while (s->round == round && rp_mono_ms() < until_mono_ms)
        pthread_cond_timedwait(&s->ended, &s->mu, &ts);
    atomic_fetch_sub(&c->waiting, 1);
    return s->round != round;
}

size_t rp_page_cache_waiting(rp_page_cache_t *c) {
    return atomic_load(&c->waiting);
}

char *rp_page_cache_get(rp_page_cache_t *c, const char *key, int64_t now_ms, size_t *len, int64_t *until_ms) {
    if (c->ttl_ms == 0) return NULL;
    slot_t *s = slot_of(c, key);
    char *out = NULL;
    bool waited = false;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        bool mine = s->key && strcmp(s->key, key) == 0;
        if (mine && s->gen == atomic_load(&c->gen) && now_ms < s->until_ms) {
            /* in the last quarter of its life, one caller (at most one per quarter) renews the
             * page while the others still read it: no crowd recomputing it the moment it ends */
            int64_t ahead = c->ttl_ms / 4;
            if (now_ms >= s->until_ms - ahead && now_ms - s->refresh_ms >= ahead) {
                s->refresh_ms = now_ms;
                s->renewing = true;
            } else {
                out = rp_malloc(s->len + 1);
                memcpy(out, s->text, s->len + 1);
                *len = s->len;
                if (until_ms) *until_ms = s->until_ms;
            }
            break;
        }
        /* ended, or made stale by a write: when another caller is renewing it, wait for that
         * renewal (at most ttl) rather than ask too, so that a slow renewal does not turn into
         * every reader asking at once, each adding to what made it slow */
        if (mine && s->renewing && !waited) {
            int64_t start = rp_mono_ms();
            waited = true;
            bool ended = wait_renewal(c, s, start + c->ttl_ms);
            now_ms += rp_mono_ms() - start;
            if (ended) continue; /* the new page, or none: then this caller asks itself */
        }
        if (mine) {
            s->renewing = true; /* this caller renews it (or takes over a renewal gone quiet) */
            s->refresh_ms = now_ms;
        }
        break;
    }
    pthread_mutex_unlock(&s->mu);
    return out;
}

/* Ends a renewal of s's page (s locked): its waiters look again. */
static void end_renewal(slot_t *s) {
    s->renewing = false;
    s->round++;
    pthread_cond_broadcast(&s->ended);
}

void rp_page_cache_done(rp_page_cache_t *c, const char *key) {
    if (c->ttl_ms == 0) return;
    slot_t *s = slot_of(c, key);
    pthread_mutex_lock(&s->mu);
    if (s->key && strcmp(s->key, key) == 0 && s->renewing) end_renewal(s);
    pthread_mutex_unlock(&s->mu);
}

void rp_page_cache_put(rp_page_cache_t *c, const char *key, uint64_t gen, int64_t now_ms, int64_t until_ms,
                       const char *text, size_t len) {
    if (c->ttl_ms == 0) return;
    if (until_ms > now_ms + c->ttl_ms) until_ms = now_ms + c->ttl_ms;
    if (len > c->max_bytes || gen != atomic_load(&c->gen) || until_ms <= now_ms) {
        rp_page_cache_done(c, key); /* nothing to keep: the renewal ends all the same */
        return;
    }
    char *k = rp_strdup(key), *t = rp_malloc(len + 1);
    memcpy(t, text, len);
    t[len] = '\0';
    slot_t *s = slot_of(c, key);
    pthread_mutex_lock(&s->mu);
    char *old_k = s->key, *old_t = s->text;
    bool renewed = old_k && strcmp(old_k, key) == 0;
    s->key = k;
    s->text = t;
    s->len = len;
    s->gen = gen;
    s->until_ms = until_ms;
    if (!renewed) s->refresh_ms = 0;
    end_renewal(s);
    pthread_mutex_unlock(&s->mu);
    free(old_k);
    free(old_t);
}

void rp_page_cache_forget(rp_page_cache_t *c) {
    atomic_fetch_add(&c->gen, 1);
}
