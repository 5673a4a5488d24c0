/* metrics.h - Prometheus counters and latency histograms of the gateway, per route and status;
 * lock-free (atomic counters), safe from every HTTP thread. */
#ifndef RP_API_METRICS_H
#define RP_API_METRICS_H

#include <stddef.h>

#include "session_cache.h"
#include "token_cache.h"
#include "transport.h"

typedef struct rp_metrics rp_metrics_t;

/* Metrics for nroutes routes (index = position in the route table) plus one "unmatched" slot. */
rp_metrics_t *rp_metrics_new(size_t nroutes);
void rp_metrics_free(rp_metrics_t *m);

/* Records one request; route_index >= nroutes (or (size_t)-1) means unmatched. */
void rp_metrics_observe(rp_metrics_t *m, size_t route_index, int status, double latency_ms);

/* Counts one answer of route served from the api's kept copies (api/gateway.c, keep_key). */
void rp_metrics_kept(rp_metrics_t *m, size_t route_index);

/* Renders the Prometheus text exposition format, with the process's memory, when amqp is not
 * NULL what its broker connections did with long messages, when sessions is not NULL the session
 * cache's calls to the auth worker, and when tokens is not NULL how the token cache answered;
 * returns a malloc'd string (free()). */
char *rp_metrics_render(rp_metrics_t *m, const rp_amqp_stats_t *amqp, const rp_session_stats_t *sessions,
                        const rp_token_stats_t *tokens);

#endif
