/* conn_limit.h - open connections per client address, so that one address cannot hold every HTTP
 * thread (civetweb serves one connection per thread, keep-alive waits included). A limiter is
 * thread-safe (one mutex; it is taken once when a connection opens and once when it closes). */
#ifndef RP_API_CONN_LIMIT_H
#define RP_API_CONN_LIMIT_H

#include <stdbool.h>

typedef struct rp_conn_limit rp_conn_limit_t;

/* A limiter allowing max_per_address open connections per address (0 = no limit) among at most
 * capacity addresses at once (the number of HTTP threads: a counted connection holds one).
 * Returns a new limiter, free with rp_conn_limit_free. */
rp_conn_limit_t *rp_conn_limit_new(int max_per_address, int capacity);
/* Accepts NULL. Connections still counted are forgotten. */
void rp_conn_limit_free(rp_conn_limit_t *cl);

/* Counts one more open connection from address (a NUL-terminated text address, borrowed).
 * Returns false, counting nothing, when the address already has max_per_address open; a full
 * table (more addresses than capacity) admits rather than refuses. Every true must be matched by
 * one rp_conn_limit_release with the same address. */
bool rp_conn_limit_acquire(rp_conn_limit_t *cl, const char *address);
/* Forgets one connection counted by rp_conn_limit_acquire. */
void rp_conn_limit_release(rp_conn_limit_t *cl, const char *address);

/* Open connections counted for address now (tests, diagnostics). */
int rp_conn_limit_count(rp_conn_limit_t *cl, const char *address);

#endif
