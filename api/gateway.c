/* gateway.c - the HTTP pipeline (see gateway.h): route → authenticate → authorise → bounded body
 * → media type → JSON → schema → RPC → reply. civetweb runs it on its worker threads; the gateway
 * state is read-only after start, but for the rate limiters (locked inside) and the readiness
 * log's throttle (atomics). */
#include "gateway.h"

#include <civetweb.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "envelope.h"
#include "export.h"
#include "http_io.h"
#include "http_options.h"
#include "ipnet.h"
#include "json_util.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "ratelimit.h"
#include "roles.h"
#include "routes.h"
#include "rpc.h"
#include "schema_registry.h"
#include "session_cache.h"
#include "timeutil.h"
#include "token.h"

#define API_PREFIX "/api/v1"
#define READY_TIMEOUT_MS 2000
/* At most one log line of /health/ready's failing checks per this long: a probe every 100 ms
 * (or an attacker) must not flood the log. */
#define READY_LOG_EVERY_MS 10000
/* More lines of CLIENT_IP_HEADER than this are not a proxy's doing: treated as malformed. */
#define FORWARDED_LINES_MAX 8

struct rp_gateway {
    struct mg_context *ctx;
    const rp_config_t *cfg;
    rp_transport_t *transport;
    rp_body_validator_fn validate;
    void *validate_ud;
    bool components[RP_COMP_COUNT]; /* components some route sends to: checked by /health/ready */
    rp_ratelimit_t *limit_all;      /* every routed request, per client address */
    rp_ratelimit_t *limit_auth;     /* public auth routes (register, login, refresh): password hashing */
    rp_metrics_t *metrics;
    rp_schema_registry_t *owned_schemas; /* set by rp_gateway_open */
    rp_session_cache_t *sessions;        /* the accounts' current state, briefly cached */
    bool has_metrics_token;
    unsigned char metrics_digest[crypto_generichash_BYTES]; /* of METRICS_TOKEN: compared, never the token */
    _Atomic int64_t ready_log_after_ms;                     /* when the next not-ready detail may be logged */
    atomic_uint ready_unlogged;                             /* not-ready answers whose detail was not logged since */
};

/* Who is asking: the key its rate limits are counted under, and whether it is on this host. */
typedef struct client {
    char key[RP_IPADDR_TEXT_MAX];
    bool loopback;
} client_t;

/* Per-request state, on the handler's stack. */
typedef struct req_ctx {
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    char request_id[72];
    const char *route_name;
    rp_identity_t who;
    int status;
    bool close;
    size_t route_index; /* position in the route table, (size_t)-1 when unmatched */
    client_t client;
} req_ctx_t;

static rp_http_extra_t extra_of(const req_ctx_t *rc, int retry_after, const char *allow, const char *www_auth) {
    return (rp_http_extra_t){.request_id = rc->request_id,
                             .retry_after_s = retry_after,
                             .allow = allow,
                             .www_authenticate = www_auth,
                             .close = rc->close};
}

/* Sends status with body (taken), which gets the request id when it is an error. */
static void send_reply(req_ctx_t *rc, int status, json_t *body, int retry_after, const char *allow,
                       const char *www_auth) {
    if (body && json_is_object(json_object_get(body, "error")))
        json_object_set_new(body, "requestId", json_string(rc->request_id));
    rp_http_extra_t extra = extra_of(rc, retry_after, allow, www_auth);
    rp_http_send_json(rc->conn, status, body, &extra);
    rc->status = status;
    json_decref(body);
}

/* Sends a worker's reply: a success's text as it came (rp_rpc_call_raw), anything else parsed. */
static void send_worker_reply(req_ctx_t *rc, const rp_reply_t *rep) {
    if (!rep->raw) {
        send_reply(rc, rep->status, json_incref(rep->body), rep->retry_after_s, NULL, NULL);
        return;
    }
    rp_http_extra_t extra = extra_of(rc, rep->retry_after_s, NULL, NULL);
    rp_http_send_json_text(rc->conn, rep->status, rep->raw, rep->raw_len, &extra);
    rc->status = rep->status;
}

static void send_error(req_ctx_t *rc, int status, const char *code, const char *message, json_t *details) {
    rp_reply_t rep;
    rp_reply_init(&rep);
    rp_reply_error(&rep, status, code, message, details);
    send_reply(rc, status, rep.body, 0, NULL, status == 401 ? "Bearer" : NULL);
}

/* True when the caller may see internals (/metrics, readiness detail): it holds METRICS_TOKEN,
 * or it is a loopback client and METRICS_ALLOW_LOOPBACK=1. The token is compared as BLAKE2b
 * digests of fixed size, in constant time: neither its bytes nor its length leak by timing. */
static bool privileged(const rp_gateway_t *gw, const req_ctx_t *rc) {
    if (gw->cfg->metrics_allow_loopback && rc->client.loopback) return true;
    const char *auth = mg_get_header(rc->conn, "Authorization");
    if (!gw->has_metrics_token || !auth || strncasecmp(auth, "Bearer ", 7) != 0) return false;
    unsigned char d[crypto_generichash_BYTES];
    crypto_generichash(d, sizeof d, (const unsigned char *)auth + 7, strlen(auth + 7), NULL, 0);
    return sodium_memcmp(d, gw->metrics_digest, sizeof d) == 0;
}

/* Logs the failing checks, at most once per READY_LOG_EVERY_MS for the whole process. */
static void log_not_ready(rp_gateway_t *gw, const json_t *checks) {
    int64_t now = rp_now_ms(), after = atomic_load(&gw->ready_log_after_ms);
    if (now < after || !atomic_compare_exchange_strong(&gw->ready_log_after_ms, &after, now + READY_LOG_EVERY_MS)) {
        atomic_fetch_add(&gw->ready_unlogged, 1);
        return;
    }
    unsigned skipped = atomic_exchange(&gw->ready_unlogged, 0);
    char *text = json_dumps(checks, JSON_COMPACT | JSON_SORT_KEYS);
    rp_log(RP_LOG_WARN, "gateway", "not ready: %s (%u not-ready answers before this one were not logged)",
           text ? text : "?", skipped);
    free(text);
}

/* GET /health/ready: 200 {"status":"ready"} or 503 {"status":"not_ready"} for anyone; which check
 * failed and why (store and broker error texts) goes to the log, and to privileged callers as
 * "checks". */
static void handle_ready(rp_gateway_t *gw, req_ctx_t *rc) {
    json_t *checks = json_object();
    bool all_ok = true;
    rp_err_t err;
    rp_err_clear(&err);
    if (!rp_transport_ready(gw->transport, &err)) {
        json_object_set_new(checks, "transport", json_string(err.message));
        all_ok = false;
    } else {
        json_object_set_new(checks, "transport", json_string("ok"));
    }
    for (int c = 0; c < RP_COMP_COUNT; c++) {
        if (!gw->components[c]) continue;
        rp_envelope_t env;
        rp_reply_t rep;
        rp_envelope_init(&env);
        snprintf(env.method, sizeof env.method, "GET");
        snprintf(env.route, sizeof env.route, "%s", RP_RPC_HEALTH_ROUTE);
        snprintf(env.request_id, sizeof env.request_id, "%s", rc->request_id);
        env.deadline_ms = rp_now_ms() + READY_TIMEOUT_MS;
        rp_rpc_call(gw->transport, (rp_component_t)c, &env, &rep);
        bool ok = rep.status == 200;
        const char *msg = json_string_value(json_object_get(json_object_get(rep.body, "error"), "message"));
        json_object_set_new(checks, rp_component_name((rp_component_t)c), json_string(ok ? "ok" : msg ? msg : "down"));
        all_ok = all_ok && ok;
        rp_reply_clear(&rep);
        rp_envelope_clear(&env);
    }
    if (!all_ok) log_not_ready(gw, checks);
    json_t *body = json_pack("{s:s}", "status", all_ok ? "ready" : "not_ready");
    if (privileged(gw, rc))
        json_object_set_new(body, "checks", checks);
    else
        json_decref(checks);
    send_reply(rc, all_ok ? 200 : 503, body, all_ok ? 0 : 1, NULL, NULL);
}

static void handle_local(rp_gateway_t *gw, req_ctx_t *rc, const rp_api_route_t *route) {
    if (strcmp(route->pattern, "/") == 0)
        send_reply(rc, 200, json_pack("{s:s, s:s}", "status", "ok", "message", "Gateway is running"), 0, NULL, NULL);
    else if (strcmp(route->pattern, "/health/live") == 0)
        send_reply(rc, 200, json_pack("{s:s}", "status", "ok"), 0, NULL, NULL);
    else
        handle_ready(gw, rc);
}

/* Authenticates the bearer token and checks it against the account's current state, whose roles
 * become the caller's; false when a 401 (403: a demoted admin on an admin route; 503: no state to
 * check against, so fail closed) was sent. */
static bool authenticate(rp_gateway_t *gw, req_ctx_t *rc) {
    const char *h = mg_get_header(rc->conn, "Authorization");
    rp_err_t err;
    rp_token_claims_t claims;
    size_t nroutes;
    if (!h || !*h) {
        send_error(rc, 401, "UNAUTHORIZED", "a bearer token is required", NULL);
        return false;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        send_error(rc, 401, "INVALID_TOKEN", "the Authorization header must be 'Bearer <token>'", NULL);
        return false;
    }
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    if (!rp_token_verify(gw->cfg->jwt_secret, gw->cfg->jwt_secret_len, tok, strlen(tok), rp_now_ms() / 1000, &rc->who,
                         &claims, &err)) {
        send_error(rc, 401, err.code, err.message, NULL);
        return false;
    }
    memcpy(rc->who.jti, claims.jti, sizeof rc->who.jti);
    rc->who.token_exp = claims.exp;
    const rp_api_route_t *route = &rp_routes_table(&nroutes)[rc->route_index];
    if (!rp_session_cache_check(gw->sessions, route, &rc->who, &claims, rp_now_ms() + gw->cfg->rpc_timeout_ms,
                                rc->request_id, &err)) {
        int status = err.kind == RP_ERR_UNAUTHENTICATED ? 401 : err.kind == RP_ERR_FORBIDDEN ? 403 : 503;
        memset(&rc->who, 0, sizeof rc->who);
        send_error(rc, status, err.code, err.message, NULL);
        return false;
    }
    return true;
}

/* Reads and checks the JSON body per the route's rule; false when an error was sent. */
static bool read_json_body(rp_gateway_t *gw, req_ctx_t *rc, const rp_api_route_t *route, json_t **out) {
    long long declared = rc->ri->content_length;
    size_t cap = route->max_body ? route->max_body : gw->cfg->max_body_bytes;
    char *buf = NULL;
    *out = NULL;
    if (declared > (long long)cap) {
        rc->close = true; /* do not drain an oversized body: close the connection instead */
        mg_disable_connection_keep_alive(rc->conn);
        send_error(rc, 413, "PAYLOAD_TOO_LARGE", "the request body is larger than the limit", NULL);
        return false;
    }
    /* civetweb reports -1 both for chunked bodies and for requests without any length: only the
     * former carries a body (RFC 9112 section 6.3) */
    bool has_body = declared > 0 || (declared < 0 && mg_get_header(rc->conn, "Transfer-Encoding") != NULL);
    if (has_body && !rp_http_is_json_type(mg_get_header(rc->conn, "Content-Type"))) {
        rc->close = declared < 0;
        if (rc->close) mg_disable_connection_keep_alive(rc->conn);
        send_error(rc, 415, "UNSUPPORTED_MEDIA_TYPE", "the request body must be application/json", NULL);
        return false;
    }
    const char *expect = mg_get_header(rc->conn, "Expect");
    if (has_body && expect && strcasecmp(expect, "100-continue") == 0)
        mg_printf(rc->conn, "HTTP/1.1 100 Continue\r\n\r\n");
    long got = has_body ? rp_http_read_body(rc->conn, cap, &buf) : 0;
    if (got == RP_HTTP_BODY_TOO_LARGE) {
        rc->close = true;
        mg_disable_connection_keep_alive(rc->conn);
        send_error(rc, 413, "PAYLOAD_TOO_LARGE", "the request body is larger than the limit", NULL);
        return false;
    }
    if (got == RP_HTTP_BODY_SHORT) {
        rc->close = true;
        mg_disable_connection_keep_alive(rc->conn);
        send_error(rc, 400, "INCOMPLETE_BODY", "the request body ended before Content-Length bytes", NULL);
        return false;
    }
    if (got == 0) {
        free(buf);
        if (route->body == RP_BODY_OPTIONAL) return true;
        send_error(rc, 400, "INVALID_JSON", "a JSON object body is required", NULL);
        return false;
    }
    json_error_t je;
    if (!rp_json_depth_ok(buf, (size_t)got, RP_JSON_MAX_DEPTH)) {
        free(buf);
        send_error(rc, 400, "INVALID_JSON", "the request body nests too deeply", NULL);
        return false;
    }
    json_t *doc = json_loadb(buf, (size_t)got, JSON_REJECT_DUPLICATES, &je);
    free(buf);
    if (!doc || !json_is_object(doc)) {
        char msg[200];
        if (doc)
            snprintf(msg, sizeof msg, "the request body must be a JSON object");
        else
            snprintf(msg, sizeof msg, "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
        json_decref(doc);
        send_error(rc, 400, "INVALID_JSON", msg, NULL);
        return false;
    }
    json_t *details = NULL;
    if (route->schema && gw->validate && !gw->validate(gw->validate_ud, route->schema, doc, &details)) {
        json_decref(doc);
        send_error(rc, 400, "VALIDATION_FAILED", "the request body is invalid", details);
        return false;
    }
    *out = doc;
    return true;
}

static bool valid_idempotency_key(const char *k) {
    size_t n = strlen(k);
    if (n == 0 || n > 128) return false;
    for (size_t i = 0; i < n; i++)
        if (k[i] < 0x21 || k[i] > 0x7e) return false;
    return true;
}

/* The account whose session a successful call of route changed (the route table says), or NULL.
 * This process forgets what it cached of it at once; other api processes see the change when
 * their entry expires (SESSION_CACHE_MS). */
static const char *changed_account(const rp_api_route_t *route, const json_t *params, const rp_identity_t *who) {
    switch (route->session) {
    case RP_SESSION_OF_CALLER: return who->authenticated ? who->id : NULL;
    case RP_SESSION_OF_PARAM_ID: return json_string_value(json_object_get(params, "id"));
    case RP_SESSION_KEPT: break;
    }
    return NULL;
}

static void forward(rp_gateway_t *gw, req_ctx_t *rc, const rp_api_route_t *route, json_t *params, json_t *query,
                    json_t *body) {
    rp_envelope_t env;
    rp_reply_t rep;
    rp_envelope_init(&env);
    snprintf(env.method, sizeof env.method, "%s", route->method);
    snprintf(env.route, sizeof env.route, "%s", route->pattern);
    snprintf(env.request_id, sizeof env.request_id, "%s", rc->request_id);
    json_decref(env.params);
    json_decref(env.query);
    env.params = json_incref(params);
    env.query = json_incref(query);
    env.body = json_incref(body);
    env.caller = rc->who;
    const char *ik = mg_get_header(rc->conn, "Idempotency-Key");
    if (ik) snprintf(env.idempotency_key, sizeof env.idempotency_key, "%s", ik);
    env.deadline_ms = rp_now_ms() + gw->cfg->rpc_timeout_ms;
    rp_rpc_call_raw(gw->transport, (rp_component_t)route->component, &env, &rep);
    const char *changed = rep.status / 100 == 2 ? changed_account(route, params, &rc->who) : NULL;
    if (changed) rp_session_cache_forget(gw->sessions, changed);
    send_worker_reply(rc, &rep);
    rp_reply_clear(&rep);
    rp_envelope_clear(&env);
}

/* Fills rc->client from the TCP peer, or, when the peer is one of TRUSTED_PROXIES and
 * CLIENT_IP_HEADER is set, from that header read from the right (rp_ipnet_forwarded_client).
 * A header without entries means the proxy itself is asking. A malformed entry in the client's
 * place, or more than FORWARDED_LINES_MAX lines, is not guessed at: the request counts against
 * the peer's own key (a client rotating garbage gets one shared budget, not one each) and is not
 * loopback. */
static void resolve_client(const rp_gateway_t *gw, req_ctx_t *rc) {
    const rp_config_t *cfg = gw->cfg;
    client_t *cl = &rc->client;
    rp_ipaddr_t peer, who;
    if (!rp_ipaddr_parse(rc->ri->remote_addr, strlen(rc->ri->remote_addr), &peer)) {
        snprintf(cl->key, sizeof cl->key, "%s", rc->ri->remote_addr);
        cl->loopback = false;
        return;
    }
    who = peer;
    bool malformed = false;
    if (cfg->client_ip_header[0] && rp_ipnet_list_contains(&cfg->trusted_proxies, &peer)) {
        const char *lines[FORWARDED_LINES_MAX];
        size_t n = 0;
        for (int i = 0; i < rc->ri->num_headers && !malformed; i++) {
            if (strcasecmp(rc->ri->http_headers[i].name, cfg->client_ip_header) != 0) continue;
            if (n == FORWARDED_LINES_MAX)
                malformed = true;
            else
                lines[n++] = rc->ri->http_headers[i].value;
        }
        rp_ipaddr_t fwd;
        if (!malformed) switch (rp_ipnet_forwarded_client(&cfg->trusted_proxies, lines, n, &fwd)) {
            case RP_FWD_ABSENT: break;
            case RP_FWD_CLIENT: who = fwd; break;
            case RP_FWD_MALFORMED: malformed = true; break;
            }
    }
    rp_ipaddr_client_key(&who, cl->key, sizeof cl->key);
    cl->loopback = !malformed && rp_ipaddr_is_loopback(&who);
}

/* GET /metrics: Prometheus text, for privileged callers (see privileged). Anyone else gets the
 * same 404 as any unknown path. */
static bool handle_metrics(rp_gateway_t *gw, req_ctx_t *rc) {
    if (strcmp(rc->ri->request_method, "GET") != 0 || !privileged(gw, rc)) return false;
    char *text = rp_metrics_render(gw->metrics);
    size_t n = strlen(text);
    mg_printf(rc->conn,
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %zu\r\n"
              "X-Request-Id: %s\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\r\n",
              n, rc->request_id);
    mg_write(rc->conn, text, n);
    free(text);
    rc->status = 200;
    return true;
}

static int handle_request(struct mg_connection *conn, void *cbdata) {
    rp_gateway_t *gw = cbdata;
    int64_t t0 = rp_mono_us();
    req_ctx_t rc = {.conn = conn, .ri = mg_get_request_info(conn), .route_index = (size_t)-1};
    const rp_api_route_t *route = NULL;
    json_t *params = NULL, *query = NULL, *body = NULL;
    char allow[64];
    rp_http_request_id(mg_get_header(conn, "X-Request-Id"), rc.request_id);
    resolve_client(gw, &rc);
    const char *path = rc.ri->local_uri ? rc.ri->local_uri : "";
    const char *method = rc.ri->request_method ? rc.ri->request_method : "";
    rc.route_name = path;
    size_t plen = strlen(path);
    size_t pfx = sizeof API_PREFIX - 1;
    if (strcmp(path, "/metrics") == 0 && handle_metrics(gw, &rc)) goto done;
    if (plen < pfx || memcmp(path, API_PREFIX, pfx) != 0 || (plen > pfx && path[pfx] != '/')) {
        send_error(&rc, 404, "NOT_FOUND", "no such route", NULL);
        goto done;
    }
    const char *sub = plen == pfx ? "/" : path + pfx;
    switch (rp_routes_match(method, sub, strlen(sub), &route, &params, allow, sizeof allow)) {
    case RP_MATCH_NOT_FOUND: send_error(&rc, 404, "NOT_FOUND", "no such route", NULL); goto done;
    case RP_MATCH_BAD_METHOD:
        send_reply(&rc, 405,
                   json_pack("{s:{s:s, s:s, s:[]}}", "error", "code", "METHOD_NOT_ALLOWED", "message",
                             "this route does not accept that method", "details"),
                   0, allow, NULL);
        goto done;
    case RP_MATCH_OK: break;
    }
    rc.route_name = route->pattern;
    {
        size_t nroutes;
        rc.route_index = (size_t)(route - rp_routes_table(&nroutes));
    }
    if (route->component != RP_ROUTE_LOCAL) { /* health probes are never limited */
        int retry = 0;
        int64_t now_us = rp_mono_us();
        bool auth_route = route->component == RP_COMP_AUTH && route->is_public;
        if (!rp_ratelimit_take(gw->limit_all, rc.client.key, now_us, &retry) ||
            (auth_route && !rp_ratelimit_take(gw->limit_auth, rc.client.key, now_us, &retry))) {
            rp_reply_t rl;
            rp_reply_init(&rl);
            rp_reply_error(&rl, 429, "RATE_LIMITED", "too many requests from this address", NULL);
            send_reply(&rc, 429, rl.body, retry, NULL, NULL);
            goto done;
        }
    }
    if (!route->is_public && !authenticate(gw, &rc)) goto done;
    if (!rp_routes_allows(route, rc.who.authenticated, rc.who.roles)) {
        send_error(&rc, 403, "FORBIDDEN", "your roles do not allow this route", NULL);
        goto done;
    }
    if (route->body != RP_BODY_NONE && !read_json_body(gw, &rc, route, &body)) goto done;
    if (!rp_http_parse_query(rc.ri->query_string, &query)) {
        send_error(&rc, 400, "INVALID_QUERY", "the query string is malformed, too long or repeats a parameter", NULL);
        goto done;
    }
    const char *ik = mg_get_header(conn, "Idempotency-Key");
    if (ik && !valid_idempotency_key(ik)) {
        send_error(&rc, 400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1-128 printable ASCII characters",
                   NULL);
        goto done;
    }
    if (route->component == RP_ROUTE_LOCAL)
        handle_local(gw, &rc, route);
    else if (route->component == RP_ROUTE_EXPORT)
        rc.status = rp_export_serve(&(rp_export_call_t){.conn = conn,
                                                        .transport = gw->transport,
                                                        .cfg = gw->cfg,
                                                        .caller = &rc.who,
                                                        .query = query,
                                                        .request_id = rc.request_id});
    else
        forward(gw, &rc, route, params, query, body);
done:
    json_decref(params);
    json_decref(query);
    json_decref(body);
    double ms = (double)(rp_mono_us() - t0) / 1000.0;
    rp_metrics_observe(gw->metrics, rc.route_index, rc.status ? rc.status : 500, ms);
    rp_log_request(rc.request_id, rc.who.authenticated ? rc.who.id : NULL, method, rc.route_name, rc.status, ms);
    return rc.status ? rc.status : 500;
}

static int log_message(const struct mg_connection *conn, const char *message) {
    (void)conn;
    rp_log(RP_LOG_WARN, "civetweb", "%s", message);
    return 1;
}

rp_gateway_t *rp_gateway_start(const rp_config_t *cfg, rp_transport_t *t, rp_body_validator_fn validate,
                               void *validate_ud, rp_err_t *err) {
    rp_gateway_t *gw = rp_calloc(1, sizeof *gw);
    gw->cfg = cfg;
    gw->transport = t;
    gw->validate = validate;
    gw->validate_ud = validate_ud;
    size_t max_clients =
        cfg->rate_limit_max_clients > 0 ? (size_t)cfg->rate_limit_max_clients : (size_t)RP_RATELIMIT_DEFAULT_KEYS;
    gw->limit_all = rp_ratelimit_new_sized(cfg->rate_limit_rps, cfg->rate_limit_burst, max_clients, 0);
    gw->limit_auth = rp_ratelimit_new_sized(cfg->rate_limit_auth_rps, cfg->rate_limit_auth_burst, max_clients, 0);
    gw->has_metrics_token = cfg->metrics_token[0] != '\0';
    if (gw->has_metrics_token)
        crypto_generichash(gw->metrics_digest, sizeof gw->metrics_digest, (const unsigned char *)cfg->metrics_token,
                           strlen(cfg->metrics_token), NULL, 0);
    if (cfg->client_ip_header[0] && cfg->trusted_proxies.n == 0)
        rp_log(RP_LOG_WARN, "gateway",
               "CLIENT_IP_HEADER=%s is ignored: TRUSTED_PROXIES is empty, so the peer address is the client",
               cfg->client_ip_header);
    size_t n;
    const rp_api_route_t *routes = rp_routes_table(&n);
    gw->metrics = rp_metrics_new(n);
    gw->sessions = rp_session_cache_new(t, cfg->session_cache_ms);
    for (size_t i = 0; i < n; i++)
        if (routes[i].component >= 0) gw->components[routes[i].component] = true;

    char ports[128], threads[16];
    snprintf(ports, sizeof ports, "%s:%d", cfg->bind_address, cfg->port);
    snprintf(threads, sizeof threads, "%d", cfg->http_threads);
    const char *options[] = RP_HTTP_OPTIONS(ports, threads);
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.log_message = log_message;
    char etext[256] = "";
    unsigned ecode = 0;
    struct mg_error_data edata = {.code = &ecode, .text = etext, .text_buffer_size = sizeof etext};
    struct mg_init_data init = {.callbacks = &cb, .user_data = gw, .configuration_options = options};
    gw->ctx = mg_start2(&init, &edata);
    if (!gw->ctx) {
        rp_err_set(err, RP_ERR_CONFIG, "HTTP_START", "cannot listen on %s: %s", ports,
                   etext[0] ? etext : "unknown error");
        rp_ratelimit_free(gw->limit_all);
        rp_ratelimit_free(gw->limit_auth);
        rp_metrics_free(gw->metrics);
        rp_session_cache_free(gw->sessions);
        free(gw);
        return NULL;
    }
    mg_set_request_handler(gw->ctx, "/", handle_request, gw);
    rp_log(RP_LOG_INFO, "gateway", "listening on %s with %d HTTP threads", ports, cfg->http_threads);
    return gw;
}

rp_gateway_t *rp_gateway_open(const rp_config_t *cfg, rp_transport_t *t, rp_err_t *err) {
    rp_schema_registry_t *schemas = rp_schema_registry_new(err);
    if (!schemas) return NULL;
    mg_init_library(0);
    rp_gateway_t *gw = rp_gateway_start(cfg, t, rp_schema_registry_validate, schemas, err);
    if (!gw) {
        mg_exit_library();
        rp_schema_registry_free(schemas);
        return NULL;
    }
    gw->owned_schemas = schemas;
    return gw;
}

void rp_gateway_stop(rp_gateway_t *gw) {
    if (!gw) return;
    mg_stop(gw->ctx);
    if (gw->owned_schemas) {
        rp_schema_registry_free(gw->owned_schemas);
        mg_exit_library();
    }
    rp_ratelimit_free(gw->limit_all);
    rp_ratelimit_free(gw->limit_auth);
    rp_metrics_free(gw->metrics);
    rp_session_cache_free(gw->sessions);
    free(gw);
}
