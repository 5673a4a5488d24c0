/* transport.c - dispatch through the transport vtable (see transport.h). */
#include "transport.h"

#include <stddef.h>

/* RPC requests are ephemeral, so their queues are classic (see transport_amqp.c); the names changed
 * with the type ("*.rpc" were quorum queues), because a broker refuses to redeclare a queue as
 * another type. */
static const char *queues[RP_COMP_COUNT] = {"auth.requests", "event.requests", "reward.requests", "accounts.requests",
                                            "login.requests"};
static const char *names[RP_COMP_COUNT] = {"auth", "event", "reward", "accounts", "login"};

const char *rp_component_queue(rp_component_t comp) {
    return (unsigned)comp < RP_COMP_COUNT ? queues[comp] : "?";
}
const char *rp_component_name(rp_component_t comp) {
    return (unsigned)comp < RP_COMP_COUNT ? names[comp] : "?";
}

bool rp_transport_serve(rp_transport_t *t, rp_component_t comp, rp_rpc_handler_fn fn, void *ctx, int threads,
                        rp_err_t *err) {
    return t->ops->serve(t, comp, fn, ctx, threads, err);
}

bool rp_transport_call(rp_transport_t *t, rp_component_t comp, const char *req, size_t len, int64_t deadline_ms,
                       char **reply, size_t *reply_len, rp_err_t *err) {
    *reply = NULL;
    *reply_len = 0;
    return t->ops->call(t, comp, req, len, deadline_ms, reply, reply_len, err);
}

bool rp_transport_call_shared(rp_transport_t *t, rp_component_t comp, const char *req, size_t len, int64_t deadline_ms,
                              char **reply, size_t *reply_len, rp_err_t *err) {
    *reply = NULL;
    *reply_len = 0;
    return (t->ops->call_shared ? t->ops->call_shared : t->ops->call)(t, comp, req, len, deadline_ms, reply, reply_len,
                                                                      err);
}

int rp_transport_run_local(rp_transport_t *t, rp_component_t comp, rp_rpc_handler_fn served_by, int64_t deadline_ms,
                           rp_local_fn fn, void *arg, rp_err_t *err) {
    if (!t->ops->run_local) return 0;
    return t->ops->run_local(t, comp, served_by, deadline_ms, fn, arg, err);
}

bool rp_transport_ready(rp_transport_t *t, rp_err_t *err) {
    return t->ops->ready(t, err);
}

bool rp_transport_enqueue(rp_transport_t *t, const char *queue, const char *const *msgs, const size_t *lens, size_t n,
                          rp_err_t *err) {
    return t->ops->enqueue(t, queue, msgs, lens, n, err);
}

bool rp_transport_consume(rp_transport_t *t, const char *queue, rp_work_fn fn, void *ctx, int threads, rp_err_t *err) {
    return t->ops->consume(t, queue, fn, ctx, threads, err);
}

void rp_transport_stop(rp_transport_t *t) {
    if (t) t->ops->stop(t);
}

void rp_transport_free(rp_transport_t *t) {
    if (t) t->ops->free(t);
}
