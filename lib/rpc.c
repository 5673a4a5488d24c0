/* rpc.c - envelopes over transports (see rpc.h); no shared state. */
#include "rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "timeutil.h"

/* A call run in process on structures (see call). */
typedef struct local_call {
    const rp_envelope_t *env;
    rp_reply_t *rep;
} local_call_t;

static void run_local(void *service, void *arg) {
    local_call_t *lc = arg;
    rp_rpc_service_dispatch(service, lc->env, lc->rep);
}

static void release_body(json_t **release) {
    if (!release) return;
    json_decref(*release);
    *release = NULL;
}

/* Sends env; when raw, a 2xx reply stays text. *release (when not NULL) is released and cleared
 * once env is encoded. When comp is a service of this process (the embedded platform), its
 * handler gets env itself and fills rep, with no envelope or reply printed and parsed in between:
 * they were a sixth of GET /auth/me's CPU. */
static void call(rp_transport_t *t, rp_component_t comp, const rp_envelope_t *env, bool raw, bool shared,
                 json_t **release, rp_reply_t *rep) {
    size_t len = 0, rlen = 0;
    char *reply = NULL;
    rp_err_t err;
    rp_err_clear(&err);
    rp_reply_init(rep);
    local_call_t lc = {env, rep};
    switch (rp_transport_run_local(t, comp, rp_rpc_service_handler, env->deadline_ms, run_local, &lc, &err)) {
    case 1: release_body(release); return; /* as after a sent call: the caller holds no body any more */
    case -1: /* not run, or run too late: what it answered is dropped (a 503 asks for a retry) */
        rp_reply_clear(rep);
        rp_reply_from_err(rep, &err);
        return;
    default: break; /* not in this process: sent */
    }
    char *req = rp_envelope_serialize(env, &len);
    if (!req) {
        rp_reply_error(rep, 500, "INTERNAL", "cannot encode the request", NULL);
        return;
    }
    release_body(release);
    if (!(shared ? rp_transport_call_shared : rp_transport_call)(t, comp, req, len, env->deadline_ms, &reply, &rlen,
                                                                 &err)) {
        rp_reply_from_err(rep, &err); /* a 503 gets Retry-After there */
    } else if (!(raw ? rp_reply_parse_raw : rp_reply_parse)(rep, reply, rlen, &err)) {
        rp_reply_from_err(rep, &err);
    }
    free(req);
    free(reply);
}

void rp_rpc_call(rp_transport_t *t, rp_component_t comp, const rp_envelope_t *env, rp_reply_t *rep) {
    call(t, comp, env, false, false, NULL, rep);
}

void rp_rpc_call_raw(rp_transport_t *t, rp_component_t comp, rp_envelope_t *env, rp_reply_t *rep) {
    call(t, comp, env, true, false, &env->body, rep);
}

void rp_rpc_call_shared_raw(rp_transport_t *t, rp_component_t comp, rp_envelope_t *env, rp_reply_t *rep) {
    call(t, comp, env, true, true, &env->body, rep);
}

void rp_rpc_call_internal(rp_transport_t *t, rp_component_t comp, const char *method, const char *route, json_t *body,
                          int64_t deadline_ms, const char *request_id, rp_reply_t *rep) {
    rp_envelope_t env;
    rp_envelope_init(&env);
    snprintf(env.method, sizeof env.method, "%s", method);
    snprintf(env.route, sizeof env.route, "%s", route);
    if (request_id) snprintf(env.request_id, sizeof env.request_id, "%s", request_id);
    env.deadline_ms = deadline_ms;
    env.body = body;
    rp_rpc_call(t, comp, &env, rep);
    rp_envelope_clear(&env);
}

void rp_rpc_internal_err(const rp_reply_t *rep, const char *what, rp_err_t *err) {
    const char *msg = json_string_value(json_object_get(json_object_get(rep->body, "error"), "message"));
    rp_err_kind_t kind = rep->status == 504   ? RP_ERR_TIMEOUT
                         : rep->status == 503 ? RP_ERR_UNAVAILABLE
                                              : RP_ERR_BAD_REPLY;
    rp_err_set(err, kind, kind == RP_ERR_TIMEOUT ? "WORKER_TIMEOUT" : "AUTH_UNAVAILABLE", "%s: %s", what,
               msg ? msg : "no answer from the auth worker");
}

void rp_service_free(const rp_service_t *svc) {
    if (svc && svc->free) svc->free(svc->ctx);
}

void rp_rpc_service_dispatch(const rp_service_t *svc, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_err_t err;
    rp_err_clear(&err);
    if (env->deadline_ms > 0 && rp_now_ms() > env->deadline_ms) {
        rp_reply_error(rep, 504, "WORKER_TIMEOUT", "the request expired before a worker took it", NULL);
        return;
    }
    if (svc->ping && strcmp(env->method, "GET") == 0 && strcmp(env->route, RP_RPC_HEALTH_ROUTE) == 0) {
        if (svc->ping(svc->ctx, &err))
            rp_reply_set(rep, 200, json_pack("{s:s}", "status", "ok"));
        else
            rp_reply_error(rep, 503, "STORE_UNAVAILABLE", err.message, NULL);
        return;
    }
    for (size_t i = 0; i < svc->nops; i++) {
        if (strcmp(svc->ops[i].method, env->method) == 0 && strcmp(svc->ops[i].route, env->route) == 0) {
            svc->ops[i].fn(svc->ctx, env, rep);
            if (rep->status == 0) rp_reply_error(rep, 500, "INTERNAL", "the operation produced no reply", NULL);
            if (svc->after) svc->after(svc->ctx, env, rep);
            return;
        }
    }
    rp_reply_error(rep, 404, "ROUTE_NOT_FOUND", "no such operation", NULL);
}

char *rp_rpc_service_handler(void *service, const char *req, size_t len, size_t *out_len) {
    const rp_service_t *svc = service;
    rp_envelope_t env;
    rp_reply_t rep;
    rp_err_t err;
    rp_err_clear(&err);
    rp_reply_init(&rep);
    if (!rp_envelope_parse(&env, req, len, &err)) {
        rp_log(RP_LOG_WARN, svc->name, "dropping malformed envelope: %s", err.message);
        rp_reply_from_err(&rep, &err);
    } else {
        rp_rpc_service_dispatch(svc, &env, &rep);
    }
    char *out = rp_reply_serialize(&rep, out_len);
    rp_reply_clear(&rep);
    rp_envelope_clear(&env);
    return out;
}
