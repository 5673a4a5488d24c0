/* page_cache.h - rendered answers that many callers ask for alike (the open events page every
 * player loads), kept briefly so that a read costs a copy instead of a query and a rendering.
 *
 * An entry is valid until its own deadline (the caller knows when its page would change by the
 * clock alone, and the cache caps it at ttl_ms) and only while the cache's generation is the one
 * read before the entry was computed: a writer in this process calls rp_page_cache_forget after
 * every write that could change a page, which invalidates everything at once. What other
 * processes write is seen within ttl_ms. Thread-safe: one lock per slot. */
#ifndef RP_LIB_PAGE_CACHE_H
#define RP_LIB_PAGE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rp_page_cache rp_page_cache_t;

/* A cache of `slots` entries (direct-mapped by key), none larger than max_bytes, each trusted for
 * at most ttl_ms; ttl_ms 0 keeps nothing. Free with rp_page_cache_free. */
rp_page_cache_t *rp_page_cache_new(int ttl_ms, size_t slots, size_t max_bytes);
void rp_page_cache_free(rp_page_cache_t *c);

/* The generation to tag a page with: read it before reading what the page is computed from. */
uint64_t rp_page_cache_generation(rp_page_cache_t *c);
/* A copy (malloc'd, NUL-terminated, *len bytes) of the page stored under key, valid at now_ms
 * (epoch ms), or NULL; *until_ms (when not NULL) gets the end of its validity. A caller that
 * gets NULL computes the page and must then put it, or call rp_page_cache_done when it has none
 * to put. In the last quarter of a page's life (a quarter of ttl_ms before it ends) one caller
 * gets NULL, to renew the page, while the others still get the copy. A page that has ended, or
 * that a write made stale, while a caller is renewing it is waited for (up to ttl_ms, on this
 * caller's thread) instead of asked for again by every reader; a renewal that brings no page
 * (rp_page_cache_done) sends its waiters to ask for themselves. */
char *rp_page_cache_get(rp_page_cache_t *c, const char *key, int64_t now_ms, size_t *len, int64_t *until_ms);
/* Stores a copy of text under key, computed from data read after generation gen was read,
 * valid until the earlier of until_ms and now_ms + ttl_ms. Ignored when stale or too large. Ends
 * the renewal of key either way. */
void rp_page_cache_put(rp_page_cache_t *c, const char *key, uint64_t gen, int64_t now_ms, int64_t until_ms,
                       const char *text, size_t len);
/* A caller that got NULL for key has no page to put (an error, an answer not to keep): the
 * callers waiting for its renewal ask for themselves. */
void rp_page_cache_done(rp_page_cache_t *c, const char *key);
/* How many callers wait for a renewal now (for tests). */
size_t rp_page_cache_waiting(rp_page_cache_t *c);
/* Invalidates every entry (a write that may change pages has committed). */
void rp_page_cache_forget(rp_page_cache_t *c);

#endif
