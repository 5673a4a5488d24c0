/* rpc.h - typed RPC on top of a transport: the api sends envelopes and gets replies; a worker
 * turns request bytes into an envelope, dispatches it to its handler table and serialises the
 * reply. Thread-safe as long as handlers are. */
#ifndef RP_LIB_RPC_H
#define RP_LIB_RPC_H

#include "envelope.h"
#include "transport.h"

/* Sends env to comp and fills rep (initialised by this call). Transport failures become error
 * replies (503 OVERLOADED/UNAVAILABLE, 504 WORKER_TIMEOUT, 502 BAD_REPLY); never fails otherwise. */
void rp_rpc_call(rp_transport_t *t, rp_component_t comp, const rp_envelope_t *env, rp_reply_t *rep);
/* As rp_rpc_call, but a 2xx body stays the worker's text (rep->raw, see rp_reply_parse_raw): for
 * the api, which relays it to the client as it is. env's body is released as soon as the
 * envelope is encoded (env->body is NULL after), so a large request body is not held twice (here
 * and in the worker) while the worker runs. In process (rp_transport_run_local) the worker gets
 * env itself and rep is its own reply, raw only where the worker answered with text; the body
 * is released after the call. */
void rp_rpc_call_raw(rp_transport_t *t, rp_component_t comp, rp_envelope_t *env, rp_reply_t *rep);
/* As rp_rpc_call_raw, sent with rp_transport_call_shared: it may travel in one message with other
 * such calls to comp that wait at the same moment. */
void rp_rpc_call_shared_raw(rp_transport_t *t, rp_component_t comp, rp_envelope_t *env, rp_reply_t *rep);

/* One worker asking another (or the api asking a worker) on an internal route: sends
 * {method, route, body (taken, may be NULL)} to comp with no caller, answering before deadline_ms
 * (epoch ms), and fills rep as rp_rpc_call does. request_id (may be NULL) follows the call in logs. */
void rp_rpc_call_internal(rp_transport_t *t, rp_component_t comp, const char *method, const char *route, json_t *body,
                          int64_t deadline_ms, const char *request_id, rp_reply_t *rep);

/* The error of an internal call whose reply rep is not the answer hoped for: TIMEOUT
 * (WORKER_TIMEOUT) for 504, UNAVAILABLE for 503, else BAD_REPLY (both AUTH_UNAVAILABLE: the
 * internal routes are the auth worker's), saying "<what>: <the reply's message>". */
void rp_rpc_internal_err(const rp_reply_t *rep, const char *what, rp_err_t *err);

/* A worker operation: reads env (borrowed) and fills rep (initialised, empty). ctx is the
 * worker's state. */
typedef void (*rp_op_fn)(void *ctx, const rp_envelope_t *env, rp_reply_t *rep);

typedef struct rp_route_op {
    const char *method; /* "POST" */
    const char *route;  /* the route pattern as in the api's table, e.g. "/auth/register" */
    rp_op_fn fn;
} rp_route_op_t;

/* The route the api asks a worker's health on (GET). */
#define RP_RPC_HEALTH_ROUTE "/_health"

/* A worker's service: its operation table and state. */
typedef struct rp_service {
    const char *name;
    const rp_route_op_t *ops;
    size_t nops;
    void *ctx;
    /* Whether the worker's store answers (false with err when not); NULL: no health route. */
    bool (*ping)(void *ctx, rp_err_t *err);
    /* Frees ctx, and with it this service (rp_service_free); NULL: the service owns nothing. */
    void (*free)(void *ctx);
    /* Called after every operation has run, with its envelope and reply (e.g. to forget cached
     * pages after a write); NULL: nothing. */
    void (*after)(void *ctx, const rp_envelope_t *env, const rp_reply_t *rep);
} rp_service_t;

/* Frees the worker behind svc through its free hook. Accepts NULL. */
void rp_service_free(const rp_service_t *svc);

/* An rp_rpc_handler_fn whose ctx is an rp_service_t*: parses the envelope (400 BAD_MESSAGE when
 * it cannot), drops work whose deadline has passed (504), answers GET RP_RPC_HEALTH_ROUTE from
 * ping (200 {status: ok}, or 503 STORE_UNAVAILABLE), finds any other operation by method+route
 * (404 ROUTE_NOT_FOUND) and serialises its reply. */
char *rp_rpc_service_handler(void *service, const char *req, size_t len, size_t *out_len);
/* What rp_rpc_service_handler does once it has the envelope: fills rep (initialised, empty) with
 * the answer of svc to env. rp_rpc_call runs it directly for a service of its own process. */
void rp_rpc_service_dispatch(const rp_service_t *svc, const rp_envelope_t *env, rp_reply_t *rep);

#endif
