/* metrics.c - atomic request counters and histograms (see metrics.h). */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "memory.h"
#include "sqlite_util.h"
#include "routes.h"

static const double bounds_ms[] = {1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000};
#define NB (sizeof bounds_ms / sizeof bounds_ms[0])
#define NCLASS 5 /* 1xx..5xx */

typedef struct route_metrics {
    atomic_ullong by_class[NCLASS];
    atomic_ullong buckets[NB + 1];
    atomic_ullong count;
    atomic_ullong sum_us;
    atomic_ullong kept; /* answered from a kept copy, without a call */
} route_metrics_t;

struct rp_metrics {
    size_t n;
    route_metrics_t *routes; /* n + 1 */
};

rp_metrics_t *rp_metrics_new(size_t nroutes) {
    rp_metrics_t *m = rp_calloc(1, sizeof *m);
    m->n = nroutes;
    m->routes = rp_calloc(nroutes + 1, sizeof *m->routes);
    return m;
}

void rp_metrics_free(rp_metrics_t *m) {
    if (!m) return;
    free(m->routes);
    free(m);
}

void rp_metrics_observe(rp_metrics_t *m, size_t route_index, int status, double latency_ms) {
    route_metrics_t *r = &m->routes[route_index < m->n ? route_index : m->n];
    int cls = status / 100 - 1;
    if (cls < 0 || cls >= NCLASS) cls = NCLASS - 1;
    atomic_fetch_add(&r->by_class[cls], 1);
    size_t b = 0;
    while (b < NB && latency_ms > bounds_ms[b])
        b++;
    atomic_fetch_add(&r->buckets[b], 1);
    atomic_fetch_add(&r->count, 1);
    atomic_fetch_add(&r->sum_us, (unsigned long long)(latency_ms * 1000.0));
}

void rp_metrics_kept(rp_metrics_t *m, size_t route_index) {
    atomic_fetch_add(&m->routes[route_index < m->n ? route_index : m->n].kept, 1);
}

typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

static void put(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf_t *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n;
        b->p = rp_realloc(b->p, b->cap);
    }
}

/* One histogram series: its cumulative buckets (counts[k] observations up to bounds[k] ms, counts[nb]
 * above the last bound; le in seconds), then its sum and count. labels: the series' own labels
 * ("" for none), without braces. */
static void put_histogram(buf_t *b, const char *name, const char *labels, const double *bounds, size_t nb,
                          const unsigned long long *counts, double sum_s, unsigned long long count) {
    const char *sep = labels[0] ? "," : "";
    unsigned long long cum = 0;
    for (size_t k = 0; k <= nb; k++) {
        cum += counts[k];
        if (k < nb)
            put(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[k] / 1000.0, cum);
        else
            put(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, cum);
    }
    const char *open = labels[0] ? "{" : "", *close = labels[0] ? "}" : "";
    put(b, "%s_sum%s%s%s %.6f\n%s_count%s%s%s %llu\n", name, open, labels, close, sum_s, name, open, labels, close,
        count);
}

char *rp_metrics_render(rp_metrics_t *m, const rp_amqp_stats_t *amqp, const rp_session_stats_t *sessions,
                        const rp_token_stats_t *tokens) {
    size_t nroutes;
    const rp_api_route_t *t = rp_routes_table(&nroutes);
    buf_t b = {rp_malloc(4096), 0, 4096};
    b.p[0] = '\0';
    put(&b, "# HELP rp_http_requests_total HTTP requests by route and status class.\n"
            "# TYPE rp_http_requests_total counter\n");
    for (size_t i = 0; i <= m->n; i++) {
        const char *method = i < m->n && i < nroutes ? t[i].method : "-";
        const char *route = i < m->n && i < nroutes ? t[i].pattern : "unmatched";
        for (int c = 0; c < NCLASS; c++) {
            unsigned long long v = atomic_load(&m->routes[i].by_class[c]);
            if (v)
                put(&b, "rp_http_requests_total{method=\"%s\",route=\"%s\",status=\"%dxx\"} %llu\n", method, route,
                    c + 1, v);
        }
    }
    put(&b, "# HELP rp_http_kept_replies_total Answers served from copies the api keeps (no worker call).\n"
            "# TYPE rp_http_kept_replies_total counter\n");
    for (size_t i = 0; i < m->n && i < nroutes; i++) {
        unsigned long long v = atomic_load(&m->routes[i].kept);
        if (v) put(&b, "rp_http_kept_replies_total{method=\"%s\",route=\"%s\"} %llu\n", t[i].method, t[i].pattern, v);
    }
    put(&b, "# HELP rp_http_request_duration_seconds Gateway latency by route.\n"
            "# TYPE rp_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i <= m->n; i++) {
        route_metrics_t *r = &m->routes[i];
        unsigned long long count = atomic_load(&r->count);
        if (!count) continue;
        const char *method = i < m->n && i < nroutes ? t[i].method : "-";
        const char *route = i < m->n && i < nroutes ? t[i].pattern : "unmatched";
        unsigned long long counts[NB + 1];
        for (size_t k = 0; k <= NB; k++)
            counts[k] = atomic_load(&r->buckets[k]);
        char labels[512];
        snprintf(labels, sizeof labels, "method=\"%s\",route=\"%s\"", method, route);
        put_histogram(&b, "rp_http_request_duration_seconds", labels, bounds_ms, NB, counts,
                      (double)atomic_load(&r->sum_us) / 1e6, count);
    }
    /* the api process's own memory (lib/memory.h); a worker reports its own on SIGUSR1 */
    rp_memory_t mem;
    rp_memory_read(&mem);
    put(&b,
        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
        "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %zu\n"
        "# HELP rp_heap_in_use_bytes Heap allocated and not freed (glibc mallinfo2: arenas plus mmapped blocks).\n"
        "# TYPE rp_heap_in_use_bytes gauge\nrp_heap_in_use_bytes %zu\n"
        "# HELP rp_heap_free_bytes Heap free in the malloc arenas, kept for reuse until trimmed.\n"
        "# TYPE rp_heap_free_bytes gauge\nrp_heap_free_bytes %zu\n",
        mem.resident, mem.heap_in_use, mem.heap_free);
    /* SQLite's part of that heap: 0 in reward-api, which opens no SQLite file */
    rp_sqlite_memory_t sq;
    rp_sqlite_memory_read(&sq);
    put(&b,
        "# HELP rp_sqlite_memory_bytes Heap held by SQLite's pooled connections: page caches, statements, schemas.\n"
        "# TYPE rp_sqlite_memory_bytes gauge\nrp_sqlite_memory_bytes{kind=\"cache\"} %zu\n"
        "rp_sqlite_memory_bytes{kind=\"statements\"} %zu\nrp_sqlite_memory_bytes{kind=\"schemas\"} %zu\n"
        "# HELP rp_sqlite_cache_bound_bytes What the page caches of the open SQLite connections may fill to "
        "(their cache_size).\n"
        "# TYPE rp_sqlite_cache_bound_bytes gauge\nrp_sqlite_cache_bound_bytes %zu\n",
        sq.cache, sq.statements, sq.schemas, sq.cache_bound);
    /* the SQLite writers' group commits (lib/sqlite_util.h): the store's side of a write's latency */
    rp_sqlite_writes_t w;
    rp_sqlite_writes_read(&w);
    put(&b,
        "# HELP rp_sqlite_group_commits_total Transactions the SQLite writers ran: group commits, and writes that "
        "ran alone.\n"
        "# TYPE rp_sqlite_group_commits_total counter\nrp_sqlite_group_commits_total %llu\n"
        "# HELP rp_sqlite_write_wait_seconds Time a write waited from joining its writer's queue until its outcome "
        "was known (the group before its own, its own, being woken).\n"
        "# TYPE rp_sqlite_write_wait_seconds histogram\n",
        (unsigned long long)w.groups);
    unsigned long long counts[RP_SQLITE_WAIT_BUCKETS];
    for (int k = 0; k < RP_SQLITE_WAIT_BUCKETS; k++)
        counts[k] = w.wait_buckets[k];
    put_histogram(&b, "rp_sqlite_write_wait_seconds", "", RP_SQLITE_WAIT_BOUNDS_MS, RP_SQLITE_WAIT_BUCKETS - 1, counts,
                  (double)w.wait_us / 1e6, (unsigned long long)w.writes);
    put(&b,
        "# HELP rp_sqlite_checkpoints_total WAL checkpoints by who ran them: the pool's checkpointer thread, or the "
        "connection whose commit took the WAL to its bound (the writer, or a reader's own write), holding up the "
        "writes queued behind it.\n"
        "# TYPE rp_sqlite_checkpoints_total counter\n"
        "rp_sqlite_checkpoints_total{by=\"checkpointer\"} %llu\nrp_sqlite_checkpoints_total{by=\"writer\"} %llu\n"
        "# HELP rp_sqlite_writer_checkpoint_seconds_total Time spent in the checkpoints counted by=\"writer\".\n"
        "# TYPE rp_sqlite_writer_checkpoint_seconds_total counter\nrp_sqlite_writer_checkpoint_seconds_total %.6f\n",
        (unsigned long long)w.checkpoints_thread, (unsigned long long)w.checkpoints_writer,
        (double)w.checkpoint_us / 1e6);
    if (amqp)
        put(&b,
            "# HELP rp_amqp_connections_reopened_total Broker connections closed and opened again to free the pages "
            "of a message too long to keep.\n"
            "# TYPE rp_amqp_connections_reopened_total counter\n"
            "rp_amqp_connections_reopened_total{side=\"calls\"} %ld\n"
            "rp_amqp_connections_reopened_total{side=\"consumers\"} %ld\n"
            "# HELP rp_amqp_long_reply_connections Call connections keeping the pages of a reply over 128 KiB.\n"
            "# TYPE rp_amqp_long_reply_connections gauge\nrp_amqp_long_reply_connections %d\n"
            "# HELP rp_amqp_bundles_sent_total Messages that carried two claims or more to a grant worker at once.\n"
            "# TYPE rp_amqp_bundles_sent_total counter\nrp_amqp_bundles_sent_total %ld\n"
            "# HELP rp_amqp_bundled_calls_total Claims that travelled in those messages.\n"
            "# TYPE rp_amqp_bundled_calls_total counter\nrp_amqp_bundled_calls_total %ld\n"
            "# HELP rp_amqp_shared_calls_waiting Claims waiting for a bundle to leave (RPC_BUNDLE_LANES were on their "
            "way).\n"
            "# TYPE rp_amqp_shared_calls_waiting gauge\nrp_amqp_shared_calls_waiting %d\n",
            amqp->reopened_calls, amqp->reopened_consumers, amqp->long_reply_conns, amqp->bundles_sent,
            amqp->bundled_calls, amqp->shared_waiting);
    if (sessions)
        put(&b,
            "# HELP rp_session_fetches_total Calls to the auth worker for the state of accounts the api did not hold, "
            "by kind: one account, or several that missed together.\n"
            "# TYPE rp_session_fetches_total counter\n"
            "rp_session_fetches_total{kind=\"single\"} %llu\nrp_session_fetches_total{kind=\"batch\"} %llu\n"
            "# HELP rp_session_accounts_fetched_total Accounts whose state those calls asked for.\n"
            "# TYPE rp_session_accounts_fetched_total counter\nrp_session_accounts_fetched_total %llu\n"
            "# HELP rp_session_fetch_waiting Requests waiting for the next fetch of account states.\n"
            "# TYPE rp_session_fetch_waiting gauge\nrp_session_fetch_waiting %zu\n"
            "# HELP rp_session_log_reads_total Reads of the auth worker's log of session changes, by result.\n"
            "# TYPE rp_session_log_reads_total counter\n"
            "rp_session_log_reads_total{result=\"ok\"} %llu\nrp_session_log_reads_total{result=\"failed\"} %llu\n"
            "# HELP rp_session_log_forgotten_total Accounts forgotten because the log named them.\n"
            "# TYPE rp_session_log_forgotten_total counter\nrp_session_log_forgotten_total %llu\n"
            "# HELP rp_session_log_gaps_total Reads that found changes forgotten unread (every state dropped).\n"
            "# TYPE rp_session_log_gaps_total counter\nrp_session_log_gaps_total %llu\n"
            "# HELP rp_session_log_current 1 while the log is read in time and states are kept SESSION_KEEP_MS.\n"
            "# TYPE rp_session_log_current gauge\nrp_session_log_current %d\n",
            sessions->single_calls, sessions->batch_calls, sessions->accounts, sessions->waiting, sessions->log_reads,
            sessions->log_failures, sessions->log_forgotten, sessions->log_gaps, sessions->log_current ? 1 : 0);
    if (tokens)
        put(&b,
            "# HELP rp_token_checks_total Access tokens checked, by how: from the tokens this process verified "
            "before and keeps (kept), or by their signature (verified).\n"
            "# TYPE rp_token_checks_total counter\n"
            "rp_token_checks_total{how=\"kept\"} %llu\nrp_token_checks_total{how=\"verified\"} %llu\n",
            tokens->kept, tokens->verified);
    return b.p;
}
