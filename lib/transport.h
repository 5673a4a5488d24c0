/* transport.h - how RPC bytes move between the api and the workers: one interface, implemented
 * in-process (transport_inproc.c) and over RabbitMQ (transport_amqp.c). All functions are thread-safe. */
#ifndef RP_LIB_TRANSPORT_H
#define RP_LIB_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* RP_COMP_ACCOUNTS is the auth worker's narrow second door: it answers only the account lookups of
 * the other workers (accounts.h), so that they may call it without being able to call auth.rpc,
 * whose operations trust the caller identity in the envelope. RP_COMP_LOGIN is its third: the
 * operations that hash a password (register, login, password change), on a queue and threads of
 * their own, so that a login flood never queues in front of /auth/me and refresh. */
typedef enum {
    RP_COMP_AUTH = 0,
    RP_COMP_EVENT = 1,
    RP_COMP_REWARD = 2,
    RP_COMP_ACCOUNTS = 3,
    RP_COMP_LOGIN = 4,
    RP_COMP_COUNT = 5
} rp_component_t;

/* Queue name of a component ("auth.requests", "event.requests", "reward.requests",
 * "accounts.requests", "login.requests"). */
const char *rp_component_queue(rp_component_t comp);
/* Short name of a component ("auth", "event", "reward", "accounts", "login"). */
const char *rp_component_name(rp_component_t comp);

/* A server-side handler: gets the request bytes (borrowed, not NUL-terminated) and returns the
 * reply bytes (malloc'd; the transport frees them) with their length in *out_len. It must always
 * return a reply; NULL is treated as an internal error. Called concurrently from many threads. */
typedef char *(*rp_rpc_handler_fn)(void *ctx, const char *req, size_t len, size_t *out_len);

/* A work-queue handler: processes one message (borrowed bytes, not NUL-terminated) and returns
 * true when it is done with it, false when the message is malformed (it is then dead-lettered).
 * Delivery is at-least-once: the handler must be idempotent. */
typedef bool (*rp_work_fn)(void *ctx, const char *msg, size_t len);

/* Work run in process in place of a call (rp_transport_run_local): gets the ctx comp was served
 * with and the caller's arg. */
typedef void (*rp_local_fn)(void *served_ctx, void *arg);

typedef struct rp_transport rp_transport_t;

typedef struct rp_transport_ops {
    bool (*serve)(rp_transport_t *t, rp_component_t comp, rp_rpc_handler_fn fn, void *ctx, int threads, rp_err_t *err);
    bool (*call)(rp_transport_t *t, rp_component_t comp, const char *req, size_t len, int64_t deadline_ms, char **reply,
                 size_t *reply_len, rp_err_t *err);
    /* NULL when calls never share a message: call is used */
    bool (*call_shared)(rp_transport_t *t, rp_component_t comp, const char *req, size_t len, int64_t deadline_ms,
                        char **reply, size_t *reply_len, rp_err_t *err);
    bool (*ready)(rp_transport_t *t, rp_err_t *err);
    /* NULL when no component can be run in process (see rp_transport_run_local) */
    int (*run_local)(rp_transport_t *t, rp_component_t comp, rp_rpc_handler_fn served_by, int64_t deadline_ms,
                     rp_local_fn fn, void *arg, rp_err_t *err);
    bool (*enqueue)(rp_transport_t *t, const char *queue, const char *const *msgs, const size_t *lens, size_t n,
                    rp_err_t *err);
    bool (*consume)(rp_transport_t *t, const char *queue, rp_work_fn fn, void *ctx, int threads, rp_err_t *err);
    void (*stop)(rp_transport_t *t);
    void (*free)(rp_transport_t *t);
} rp_transport_ops_t;

/* Every implementation starts its struct with this header. */
struct rp_transport {
    const rp_transport_ops_t *ops;
};

/* Starts `threads` consumers of comp that run fn. Fails if comp is already served here. */
bool rp_transport_serve(rp_transport_t *t, rp_component_t comp, rp_rpc_handler_fn fn, void *ctx, int threads,
                        rp_err_t *err);
/* Sends one request to comp and waits for its reply until deadline_ms (epoch ms). On success
 * *reply is malloc'd (free()). Errors: 503 OVERLOADED (queue full), 503 UNAVAILABLE (nobody
 * serves comp, broker down), 504 WORKER_TIMEOUT (deadline passed). A reply arriving after the
 * deadline is dropped, never handed to another call. */
bool rp_transport_call(rp_transport_t *t, rp_component_t comp, const char *req, size_t len, int64_t deadline_ms,
                       char **reply, size_t *reply_len, rp_err_t *err);
/* As rp_transport_call, for a call that may travel in one message with other such calls to comp
 * waiting at the same moment (over RabbitMQ: a bundle, rp_transport_amqp_bundle), and so also
 * wait for the slowest of them: for short calls made in waves, the claims. It may also end with
 * 503 OVERLOADED when no bundle could leave before deadline_ms. In process it is a call. */
bool rp_transport_call_shared(rp_transport_t *t, rp_component_t comp, const char *req, size_t len, int64_t deadline_ms,
                              char **reply, size_t *reply_len, rp_err_t *err);
/* When comp is served in this process with served_by, runs fn(served ctx, arg) on the caller's
 * thread under the rules of a call (a slot, the deadline, 503/504) instead of sending bytes, so
 * that the caller and the handler share the request and reply as structures (lib/rpc.c). Returns
 * 1 when fn ran and its result stands, 0 when comp is not served so here (the caller sends the
 * call), -1 with err as rp_transport_call's (fn did not run, or ran past the deadline: its result
 * is to be dropped, as a late reply is). */
int rp_transport_run_local(rp_transport_t *t, rp_component_t comp, rp_rpc_handler_fn served_by, int64_t deadline_ms,
                           rp_local_fn fn, void *arg, rp_err_t *err);
/* True when the transport can deliver calls now (for /health/ready). */
bool rp_transport_ready(rp_transport_t *t, rp_err_t *err);
/* Work queues (batch items on "reward.grant"): hands the n messages to the durable queue and
 * returns true only once all of them are safely stored (RabbitMQ: persistent messages confirmed
 * by the broker; in process: appended to the queue). False (503) when they may not have been:
 * the caller must treat them as unsent. */
bool rp_transport_enqueue(rp_transport_t *t, const char *queue, const char *const *msgs, const size_t *lens, size_t n,
                          rp_err_t *err);
/* Starts `threads` consumers of queue running fn. */
bool rp_transport_consume(rp_transport_t *t, const char *queue, rp_work_fn fn, void *ctx, int threads, rp_err_t *err);
/* Stops consumers: queued calls are answered 503, running handlers finish (their own calls
 * included). Then calls still waiting for a reply end with 503 UNAVAILABLE, and later calls fail
 * at once. Idempotent. */
void rp_transport_stop(rp_transport_t *t);
/* Stops and frees; accepts NULL. */
void rp_transport_free(rp_transport_t *t);

/* The in-process transport: per component a bounded queue of queue_capacity requests and a pool
 * of worker threads. Returns a new transport, free with rp_transport_free. */
rp_transport_t *rp_transport_inproc_new(int queue_capacity);

/* The RabbitMQ transport (librabbitmq-c 0.11). Calls publish transient messages through the
 * exchange rp.rpc to the component's durable classic queue (auth.requests, event.requests,
 * reward.requests; rp.accounts -> accounts.requests) with a correlation id, an expiration equal to
 * the call's budget and reply_to naming the connection's exclusive reply queue (bound to
 * rp.reply), no confirms. The calling threads share up to `connections` AMQP connections, one
 * call at a time each (a call finding every one busy waits for one until its deadline, then gets
 * 503 OVERLOADED). Work messages go persistent
 * through rp.work to the quorum queue reward.grant with publisher confirms. Consumers use manual
 * ack (RPC: one unacked message per consumer thread, reply then ack; work: `prefetch` each).
 * Messages that cannot be parsed are dead-lettered at once to <queue>.dlq; a work message
 * delivered more than 5 times (a worker died on it) is dead-lettered by the broker; an RPC request
 * a worker died on is redelivered until its expiration, then dead-lettered as expired.
 * A call waiting alone in this process for its reply polls its connection for up to
 * reply_spin_us microseconds before it sleeps (0: never; see transport_amqp.c).
 * url: amqp://user:pass@host:port/vhost (copied). Returns a new transport or NULL with err. */
rp_transport_t *rp_transport_amqp_new(const char *url, int prefetch, int connections, int reply_spin_us, rp_err_t *err);
/* Opens n of an amqp transport's call connections now (at most its `connections`), so that the
 * first burst of calls finds them open: each takes the broker several round trips and a queue.
 * False with err when the broker cannot be reached; those opened stay open. */
bool rp_transport_amqp_connect(rp_transport_t *t, int n, rp_err_t *err);
/* Lets an amqp transport's shared calls (rp_transport_call_shared) travel as bundles: while
 * `lanes` bundles to a component are on their way from this process, further shared calls to it
 * wait, and the first of them to go takes up to max - 1 of the others with it (those whose
 * deadline is at most BUNDLE_SKEW_MS later than its own), as one message of netstrings
 * (lib/rpc_bundle.h) with the type "rp.bundle". A worker runs a bundle's calls side by side (its
 * consumer thread and a pool of helper threads) and answers them in one reply, in their order. A
 * call alone travels as a plain message. max 1 (the default) sends every call alone. Call before
 * the first call. The workers must understand bundles before an api sends them. */
void rp_transport_amqp_bundle(rp_transport_t *t, int max, int lanes);
/* What an amqp transport did with the pages of long messages (lib/amqp_util.h), and with bundles. */
typedef struct rp_amqp_stats {
    /* bundles this process sent (of two calls or more), the calls they carried, and the bundles
     * its consumers answered */
    long bundles_sent, bundled_calls, bundles_served;
    /* shared calls of this process waiting for a bundle to leave */
    int shared_waiting;
    /* connections closed and opened again because they read a message too long to keep its
     * pages: a call connection's reply over RP_AMQP_KEEP_REPLY_BYTES, or over RP_AMQP_KEEP_BYTES
     * when RP_AMQP_LONG_REPLY_CONNS others keep such pages (before its call returns); a consumer's
     * request over RP_AMQP_KEEP_BYTES (after it has replied) */
    long reopened_calls, reopened_consumers;
    /* call connections keeping the pages of a reply over RP_AMQP_KEEP_BYTES now */
    int long_reply_conns;
} rp_amqp_stats_t;

/* Fills out and returns true when t is an amqp transport; false (out zeroed) otherwise. */
bool rp_transport_amqp_stats(const rp_transport_t *t, rp_amqp_stats_t *out);

#endif
