/* event_cache.h - the events a reward worker judged claims on lately, kept for a short while, so
 * that a claim does not read its event from the store every time (reading it was a fifth of a
 * claim's CPU: every commit of the process drops the readers' SQLite page cache, so each read
 * went back to the file).
 *
 * A kept event is never trusted to pay: a claim judged on it names its version (updatedAt) to
 * the grant, whose unit of work checks it against the event as stored (rp_grant_claim), and a
 * claim it refuses is judged again on a fresh read (claims.c). What a kept event may still hold
 * stale, for at most the cache's lifetime, is what its reward definitions said (their names and
 * values, copied into a request): a definition's edit does not change its events' version.
 *
 * Fixed size (a slot is overwritten by the next event that hashes to it), one lock per stripe of
 * slots; thread-safe. The documents are shared between threads read-only (jansson counts their
 * references atomically): nobody may change one. */
#ifndef RP_REWARD_EVENT_CACHE_H
#define RP_REWARD_EVENT_CACHE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rp_event_cache rp_event_cache_t;

/* A cache of `slots` events, each kept ttl_ms after it was read; ttl_ms 0 or slots 0 keeps
 * nothing. */
rp_event_cache_t *rp_event_cache_new(int ttl_ms, size_t slots);
void rp_event_cache_free(rp_event_cache_t *c);

/* The kept event id read less than ttl_ms before now_ms (a new reference), or NULL. */
json_t *rp_event_cache_get(rp_event_cache_t *c, const char *id, int64_t now_ms);
/* Keeps doc (a reference is taken) as event id, read at read_ms. */
void rp_event_cache_put(rp_event_cache_t *c, const char *id, json_t *doc, int64_t read_ms);
/* Drops event id, if kept. */
void rp_event_cache_forget(rp_event_cache_t *c, const char *id);

#endif
