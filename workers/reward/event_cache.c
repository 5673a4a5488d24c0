/* event_cache.c - events kept for claims to be judged on (see event_cache.h). */
#include "event_cache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "ids.h"
#include "mem.h"

#define STRIPES 16 /* locks; slot i is guarded by lock i % STRIPES */

typedef struct slot {
    char id[RP_OID_LEN];
    json_t *doc; /* NULL: empty */
    int64_t until_ms;
} slot_t;

struct rp_event_cache {
    int ttl_ms;
    size_t nslots;
    slot_t *slots;
    pthread_mutex_t locks[STRIPES];
};

rp_event_cache_t *rp_event_cache_new(int ttl_ms, size_t slots) {
    rp_event_cache_t *c = rp_calloc(1, sizeof *c);
    c->ttl_ms = ttl_ms > 0 ? ttl_ms : 0;
    c->nslots = c->ttl_ms ? slots : 0;
    c->slots = c->nslots ? rp_calloc(c->nslots, sizeof *c->slots) : NULL;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    return c;
}

void rp_event_cache_free(rp_event_cache_t *c) {
    if (!c) return;
    for (size_t i = 0; i < c->nslots; i++)
        json_decref(c->slots[i].doc);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&c->locks[i]);
    free(c->slots);
    free(c);
}

/* The slot of id; NULL when nothing is kept or id could not be a key. */
static slot_t *slot_of(rp_event_cache_t *c, const char *id, pthread_mutex_t **mu) {
    if (c->nslots == 0 || !id || strlen(id) >= RP_OID_LEN) return NULL;
    size_t i = (size_t)(rp_hash_str(id) % c->nslots);
    *mu = &c->locks[i % STRIPES];
    return &c->slots[i];
}

json_t *rp_event_cache_get(rp_event_cache_t *c, const char *id, int64_t now_ms) {
    pthread_mutex_t *mu;
    slot_t *s = slot_of(c, id, &mu);
    json_t *doc = NULL;
    if (!s) return NULL;
    pthread_mutex_lock(mu);
    if (s->doc && now_ms < s->until_ms && strcmp(s->id, id) == 0) doc = json_incref(s->doc);
    pthread_mutex_unlock(mu);
    return doc;
}

void rp_event_cache_put(rp_event_cache_t *c, const char *id, json_t *doc, int64_t read_ms) {
    pthread_mutex_t *mu;
    slot_t *s = slot_of(c, id, &mu);
    if (!s || !doc) return;
    json_incref(doc);
    pthread_mutex_lock(mu);
    json_t *old = s->doc;
    memcpy(s->id, id, strlen(id) + 1);
    s->doc = doc;
    s->until_ms = read_ms + c->ttl_ms;
    pthread_mutex_unlock(mu);
    json_decref(old); /* outside the lock: the last reference frees a whole document */
}

void rp_event_cache_forget(rp_event_cache_t *c, const char *id) {
    pthread_mutex_t *mu;
    slot_t *s = slot_of(c, id, &mu);
    json_t *old = NULL;
    if (!s) return;
    pthread_mutex_lock(mu);
    if (s->doc && strcmp(s->id, id) == 0) {
        old = s->doc;
        s->doc = NULL;
    }
    pthread_mutex_unlock(mu);
    json_decref(old);
}
