/* gateway.c - the HTTP pipeline (see gateway.h): route → authenticate → authorise → bounded body
 * → media type → JSON → schema → RPC → reply. civetweb runs it on its worker threads; the gateway
 * state is read-only after start, but for the rate limiters (locked inside) and the readiness
 * log's throttle (atomics). */
#include "gateway.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "apidoc.h"
#include "apikey_cache.h"
#include "conn_limit.h"
#include "console.h"
#include "envelope.h"
#include "export.h"
#include "failpoint.h"
#include "http_io.h"
#include "http_options.h"
#include "ipnet.h"
#include "json_util.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "page_cache.h"
#include "ratelimit.h"
#include "roles.h"
#include "routes.h"
#include "rpc.h"
#include "schema_registry.h"
#include "session_cache.h"
#include "timeutil.h"
#include "token.h"
#include "token_cache.h"

#define API_PREFIX "/api/v1"
#define READY_TIMEOUT_MS 2000
/* At most one log line of /health/ready's failing checks per this long: a probe every 100 ms
 * (or an attacker) must not flood the log. */
#define READY_LOG_EVERY_MS 10000
/* More lines of CLIENT_IP_HEADER than this are not a proxy's doing: treated as malformed. */
#define FORWARDED_LINES_MAX 8
/* Worker replies kept for callers alike (see keep_key): distinct pages and the largest kept. */
#define REPLY_SLOTS 64
#define REPLY_MAX_BYTES (512 * 1024)
/* A longer query string is not worth a key: such a request goes to the worker. */
#define REPLY_QUERY_MAX 256

struct rp_gateway {
    struct mg_context *ctx;
    const rp_config_t *cfg;
    rp_transport_t *transport;
    rp_body_validator_fn validate;
    void *validate_ud;
    bool components[RP_COMP_COUNT]; /* components some route sends to: checked by /health/ready */
    rp_ratelimit_t *limit_all;      /* every routed request, per client address */
    rp_ratelimit_t *limit_auth;     /* public auth routes (register, login, refresh): password hashing */
    rp_ratelimit_t *limit_hashing;  /* register and login over every address: one bucket, key "all" */
    rp_metrics_t *metrics;
    rp_schema_registry_t *owned_schemas; /* set by rp_gateway_open */
    rp_session_cache_t *sessions;        /* the accounts' current state, briefly cached */
    rp_apikey_cache_t *keys;             /* what API keys stand for, briefly cached */
    rp_page_cache_t *replies;            /* GET answers a worker offered for keeping (maxAgeMs) */
    rp_token_cache_t *tokens;            /* access tokens verified before, until they expire */
    rp_conn_limit_t *conns;              /* open connections per peer address (MAX_CONNECTIONS_PER_ADDRESS) */
    _Atomic int64_t refused_logged_s;    /* when a refused connection was last logged (one line a second) */
    _Atomic long info_offset;            /* see early_info: -1 unknown, -2 inconsistent (cap off) */
    atomic_bool cap_started;             /* teach_layout is over: /health/ready may say ready */
    atomic_int in_flight;                /* requests inside handle_request */
    atomic_bool draining;                /* stopping: new requests are refused (rp_gateway_stop) */
    char tls_error[256];                 /* why the certificate or key did not load (set by init_tls) */
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

static void send_rate_limited(req_ctx_t *rc, const char *message, int retry_after) {
    rp_reply_t rl;
    rp_reply_init(&rl);
    rp_reply_error(&rl, 429, "RATE_LIMITED", message, NULL);
    send_reply(rc, 429, rl.body, retry_after, NULL, NULL);
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
    /* a client taken before the per-address cap knows civetweb's layout is never counted: not
     * ready until start-up's own connection has taught it (teach_layout). A moment of every
     * start, so it alone is not logged as a failing check. */
    bool starting = false;
    if (gw->cfg->max_connections_per_address > 0) {
        starting = !atomic_load(&gw->cap_started);
        json_object_set_new(checks, "connectionCap", json_string(starting ? "starting" : "ok"));
    }
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
    all_ok = all_ok && !starting;
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

/* The API key in the Authorization header ("Bearer rpk_..."), or NULL when it holds none. */
static const char *bearer_key(struct mg_connection *conn) {
    const char *h = mg_get_header(conn, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return rp_apikey_claims(h, strlen(h)) ? h : NULL;
}

/* Authenticates a service account by its API key (apikey_cache.h) and counts the request against
 * the key's own rate limit, not the address's; a refused key counts against the address, as any
 * unauthenticated request does. False when a 401, 429 or 503 was sent. */
static bool authenticate_key(rp_gateway_t *gw, req_ctx_t *rc, const char *key) {
    rp_err_t err;
    char key_id[RP_OID_LEN], bucket[8 + RP_OID_LEN];
    int retry = 0;
    rp_apikey_verdict_t v =
        rp_apikey_cache_check(gw->keys, key, strlen(key), rc->client.key, rp_now_ms() + gw->cfg->rpc_timeout_ms,
                              rc->request_id, &rc->who, key_id, &retry, &err);
    switch (v) {
    case RP_APIKEY_OK:
        snprintf(bucket, sizeof bucket, "key:%s", key_id);
        if (rp_ratelimit_take(gw->limit_all, bucket, rp_mono_us(), &retry)) return true;
        memset(&rc->who, 0, sizeof rc->who);
        send_rate_limited(rc, "too many requests with this API key", retry);
        return false;
    case RP_APIKEY_REFUSED:
        if (!rp_ratelimit_take(gw->limit_all, rc->client.key, rp_mono_us(), &retry)) {
            send_rate_limited(rc, "too many requests from this address", retry);
            return false;
        }
        send_error(rc, 401, err.code, err.message, NULL);
        return false;
    case RP_APIKEY_LIMITED: send_rate_limited(rc, err.message, retry); return false;
    case RP_APIKEY_UNAVAILABLE: break;
    }
    send_error(rc, err.kind == RP_ERR_TIMEOUT ? 504 : 503, err.code, err.message, NULL);
    return false;
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
    if (rp_apikey_claims(tok, strlen(tok))) return authenticate_key(gw, rc, tok);
    if (!rp_token_cache_verify(gw->tokens, tok, strlen(tok), rp_now_ms() / 1000, &rc->who, &claims, &err)) {
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

/* The answer about to be sent is the connection's last: it says so (Connection: close) and
 * civetweb closes the connection after it. */
static void close_after(req_ctx_t *rc) {
    rc->close = true;
    mg_disable_connection_keep_alive(rc->conn);
}

/* Reads and checks the JSON body per the route's rule; false when an error was sent. */
static bool read_json_body(rp_gateway_t *gw, req_ctx_t *rc, const rp_api_route_t *route, json_t **out) {
    long long declared = rc->ri->content_length;
    size_t cap = route->max_body ? route->max_body : gw->cfg->max_body_bytes;
    char *buf = NULL;
    *out = NULL;
    if (declared > (long long)cap) {
        close_after(rc); /* do not drain an oversized body: close the connection instead */
        send_error(rc, 413, "PAYLOAD_TOO_LARGE", "the request body is larger than the limit", NULL);
        return false;
    }
    /* civetweb reports -1 both for chunked bodies and for requests without any length: only the
     * former carries a body (RFC 9112 section 6.3) */
    bool has_body = declared > 0 || (declared < 0 && mg_get_header(rc->conn, "Transfer-Encoding") != NULL);
    if (has_body && !rp_http_is_json_type(mg_get_header(rc->conn, "Content-Type"))) {
        if (declared < 0) close_after(rc);
        send_error(rc, 415, "UNSUPPORTED_MEDIA_TYPE", "the request body must be application/json", NULL);
        return false;
    }
    const char *expect = mg_get_header(rc->conn, "Expect");
    if (has_body && expect && strcasecmp(expect, "100-continue") == 0)
        mg_printf(rc->conn, "HTTP/1.1 100 Continue\r\n\r\n");
    long got = has_body ? rp_http_read_body(rc->conn, cap, &buf) : 0;
    if (got == RP_HTTP_BODY_TOO_LARGE) {
        close_after(rc);
        send_error(rc, 413, "PAYLOAD_TOO_LARGE", "the request body is larger than the limit", NULL);
        return false;
    }
    if (got == RP_HTTP_BODY_SHORT) {
        close_after(rc);
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

/* Sends a worker's answer to a route that minted key, with the key added: the one time it is
 * shown. */
static void send_minted(req_ctx_t *rc, const rp_reply_t *rep, const char *key) {
    /* a copy: in process the worker's own body comes here (lib/rpc.c), and the key is added to it */
    json_t *body = rep->raw ? json_loadb(rep->raw, rep->raw_len, 0, NULL) : json_deep_copy(rep->body);
    if (!json_is_object(body)) {
        json_decref(body);
        send_error(rc, 502, "BAD_REPLY", "the auth worker's answer could not be read", NULL);
        return;
    }
    json_object_set_new(body, "key", json_string(key));
    send_reply(rc, rep->status, body, 0, NULL, NULL);
}

/* The account whose session a successful call of route changed (the route table says), or NULL.
 * This process forgets what it cached of it at once; other api processes when they next read the
 * auth worker's change log (SESSION_POLL_MS), or when their entry expires (SESSION_CACHE_MS)
 * while they cannot read it. */
static const char *changed_account(const rp_api_route_t *route, const json_t *params, const rp_identity_t *who) {
    switch (route->session) {
    case RP_SESSION_OF_CALLER: return who->authenticated ? who->id : NULL;
    case RP_SESSION_OF_PARAM_ID: return json_string_value(json_object_get(params, "id"));
    case RP_SESSION_KEPT:
    case RP_SESSION_KEYS_MINT:
    case RP_SESSION_KEYS_CHANGED: break;
    }
    return NULL;
}

/* The key a GET's answer is kept under in gw->replies, or false when it is not to be looked up. A
 * worker offers an answer for keeping (maxAgeMs, lib/envelope.h) only when it depends on nothing
 * but the path, the query and the caller's roles, so those make the key: the open events page is
 * then one copy per set of roles, served here without a call. */
static bool keep_key(const req_ctx_t *rc, const rp_api_route_t *route, char *key, size_t cap) {
    if (strcmp(route->method, "GET") != 0 || !rc->who.authenticated) return false;
    const char *q = rc->ri->query_string ? rc->ri->query_string : "";
    if (strlen(q) > REPLY_QUERY_MAX) return false;
    int n = snprintf(key, cap, "%x|%s?%s", rc->who.roles, rc->ri->local_uri ? rc->ri->local_uri : "", q);
    return n > 0 && (size_t)n < cap;
}

/* True when a call of route may change what a kept answer says: the event worker's writes (event
 * and definition writes change list pages; progress reports change none), whatever their outcome,
 * as a timed-out write may have committed. This process forgets every kept answer after one;
 * writes through other api processes show when their answers expire (EVENTS_CACHE_MS). */
static bool changes_kept_replies(const rp_api_route_t *route) {
    return route->component == RP_COMP_EVENT && strcmp(route->method, "GET") != 0 &&
           strcmp(route->pattern, "/events/progress") != 0;
}

/* Sends the request to the route's worker and relays the reply. Takes *body (NULL after): the
 * call releases it once encoded, so a 100,000-id batch is not held here while the worker runs. */
static void forward(rp_gateway_t *gw, req_ctx_t *rc, const rp_api_route_t *route, json_t *params, json_t *query,
                    json_t **body) {
    rp_envelope_t env;
    rp_reply_t rep;
    char kkey[REPLY_QUERY_MAX + 320];
    bool keepable = keep_key(rc, route, kkey, sizeof kkey);
    uint64_t gen = rp_page_cache_generation(gw->replies); /* read before the worker reads its data */
    if (keepable) {
        size_t len;
        char *text = rp_page_cache_get(gw->replies, kkey, rp_now_ms(), &len, NULL);
        if (text) {
            rp_http_extra_t extra = extra_of(rc, 0, NULL, NULL);
            rp_http_send_json_text(rc->conn, 200, text, len, &extra);
            rc->status = 200;
            rp_metrics_kept(gw->metrics, rc->route_index);
            free(text);
            return;
        }
    }
    rp_envelope_init(&env);
    snprintf(env.method, sizeof env.method, "%s", route->method);
    snprintf(env.route, sizeof env.route, "%s", route->pattern);
    snprintf(env.request_id, sizeof env.request_id, "%s", rc->request_id);
    json_decref(env.params);
    json_decref(env.query);
    env.params = json_incref(params);
    env.query = json_incref(query);
    env.body = *body;
    *body = NULL;
    env.caller = rc->who;
    const char *ik = mg_get_header(rc->conn, "Idempotency-Key");
    if (ik) snprintf(env.idempotency_key, sizeof env.idempotency_key, "%s", ik);
    env.deadline_ms = rp_now_ms() + gw->cfg->rpc_timeout_ms;
    char key[RP_APIKEY_LEN + 1] = "";
    if (route->session == RP_SESSION_KEYS_MINT) { /* only the hash leaves this process */
        char hash[RP_APIKEY_HASH_LEN];
        rp_apikey_cache_mint(gw->keys, key, hash);
        if (!env.body) env.body = json_object();
        json_object_set_new(env.body, "keyHash", json_string(hash));
    }
    (route->shared_call ? rp_rpc_call_shared_raw : rp_rpc_call_raw)(gw->transport, (rp_component_t)route->component,
                                                                    &env, &rep);
    bool ok = rep.status / 100 == 2;
    if (changes_kept_replies(route)) rp_page_cache_forget(gw->replies);
    if (keepable && ok && rep.raw && rep.max_age_ms > 0) {
        int64_t now = rp_now_ms();
        rp_page_cache_put(gw->replies, kkey, gen, now, now + rep.max_age_ms, rep.raw, rep.raw_len);
    } else if (keepable) {
        rp_page_cache_done(gw->replies, kkey); /* no page: whoever waits for one asks itself */
    }
    const char *changed = ok ? changed_account(route, params, &rc->who) : NULL;
    if (changed) rp_session_cache_forget(gw->sessions, changed);
    if (ok && (route->session == RP_SESSION_KEYS_MINT || route->session == RP_SESSION_KEYS_CHANGED))
        rp_apikey_cache_forget_all(gw->keys);
    if (ok && key[0])
        send_minted(rc, &rep, key);
    else
        send_worker_reply(rc, &rep);
    sodium_memzero(key, sizeof key);
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
    rp_amqp_stats_t amqp;
    bool over_amqp = rp_transport_amqp_stats(gw->transport, &amqp);
    rp_session_stats_t sessions;
    rp_session_cache_stats(gw->sessions, &sessions);
    rp_token_stats_t tokens;
    rp_token_cache_stats(gw->tokens, &tokens);
    char *text = rp_metrics_render(gw->metrics, over_amqp ? &amqp : NULL, &sessions, &tokens);
    size_t n = strlen(text);
    /* the webhook dispatcher's metrics, from the reward worker (workers/reward/webhooks.h,
     * RP_WEBHOOKS_METRICS_ROUTE); left out when it does not answer within a second */
    rp_reply_t rep;
    rp_reply_init(&rep);
    rp_rpc_call_internal(gw->transport, RP_COMP_REWARD, "GET", "/_internal/webhooks/metrics", NULL, rp_now_ms() + 1000,
                         rc->request_id, &rep);
    const char *hooks = rep.status == 200 ? json_string_value(json_object_get(rep.body, "text")) : NULL;
    if (hooks) {
        size_t h = strlen(hooks);
        text = rp_realloc(text, n + h + 1);
        memcpy(text + n, hooks, h + 1);
        n += h;
    }
    rp_reply_clear(&rep);
    mg_printf(rc->conn,
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %zu\r\n"
              "X-Request-Id: %s\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s\r\n",
              n, rc->request_id, rp_http_hsts(rc->conn));
    mg_write(rc->conn, text, n);
    free(text);
    rc->status = 200;
    return true;
}

static int handle_request(struct mg_connection *conn, void *cbdata);

static int begin_request(struct mg_connection *conn) {
    return handle_request(conn, mg_get_user_data(mg_get_context(conn)));
}

static int handle_request(struct mg_connection *conn, void *cbdata) {
    rp_gateway_t *gw = cbdata;
    /* counted before draining is read: rp_gateway_stop sets draining, then waits for the count */
    atomic_fetch_add(&gw->in_flight, 1);
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
    if (atomic_load(&gw->draining)) {
        /* nothing is done for it, so the client may ask another api process at once */
        close_after(&rc);
        rp_reply_t off;
        rp_reply_init(&off);
        rp_reply_error(&off, 503, "SHUTTING_DOWN", "this api process is stopping; ask again", NULL);
        send_reply(&rc, 503, off.body, 1, NULL, NULL);
        goto done;
    }
    size_t plen = strlen(path);
    size_t pfx = sizeof API_PREFIX - 1;
    if (strcmp(path, "/metrics") == 0 && handle_metrics(gw, &rc)) goto done;
    if (rp_console_serve(conn, method, path, rc.request_id, &rc.status)) goto done; /* assets, no token */
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
        bool auth_route = (route->component == RP_COMP_AUTH || route->component == RP_COMP_LOGIN) && route->is_public;
        /* a request with an API key is counted against the key once it is known (authenticate_key) */
        bool by_key = !route->is_public && bearer_key(conn) != NULL;
        if ((!by_key && !rp_ratelimit_take(gw->limit_all, rc.client.key, now_us, &retry)) ||
            (auth_route && !rp_ratelimit_take(gw->limit_auth, rc.client.key, now_us, &retry))) {
            rp_reply_t rl;
            rp_reply_init(&rl);
            rp_reply_error(&rl, 429, "RATE_LIMITED", "too many requests from this address", NULL);
            send_reply(&rc, 429, rl.body, retry, NULL, NULL);
            goto done;
        }
        if (route->component == RP_COMP_LOGIN && route->is_public &&
            !rp_ratelimit_take(gw->limit_hashing, "all", now_us, &retry)) {
            rp_reply_t rl;
            rp_reply_init(&rl);
            rp_reply_error(&rl, 429, "TOO_MANY_LOGINS", "too many sign-ins on the platform right now", NULL);
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
    else if (route->component == RP_ROUTE_APIDOC)
        rc.status = rp_apidoc_serve(conn, route->pattern, params, rc.request_id);
    else
        forward(gw, &rc, route, params, query, &body);
done:
    json_decref(params);
    json_decref(query);
    json_decref(body);
    double ms = (double)(rp_mono_us() - t0) / 1000.0;
    rp_metrics_observe(gw->metrics, rc.route_index, rc.status ? rc.status : 500, ms);
    rp_log_request(rc.request_id, rc.who.authenticated ? rc.who.id : NULL, method, rc.route_name, rc.status, ms);
    atomic_fetch_sub(&gw->in_flight, 1);
    return rc.status ? rc.status : 500;
}

/* Calls fn for each IPv4 socket of this process that has a peer and whose local port is port (the
 * connections clients opened to a listening port: civetweb is built without IPv6), until fn
 * returns false. civetweb 1.15 hands out no descriptors, so they are found among all of the
 * process's (/proc/self/fd, Linux only). */
static void each_client_socket(int port, bool (*fn)(int fd, const struct sockaddr_in *peer, void *ud), void *ud) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return;
    struct dirent *e;
    bool more = true;
    while (more && (e = readdir(d)) != NULL) {
        char *end = NULL;
        long fd = strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end || fd < 0 || fd == dirfd(d)) continue;
        struct sockaddr_in peer, local;
        socklen_t plen = sizeof peer, llen = sizeof local;
        if (getsockname((int)fd, (struct sockaddr *)&local, &llen) != 0 || local.sin_family != AF_INET ||
            llen != sizeof local || ntohs(local.sin_port) != port ||
            getpeername((int)fd, (struct sockaddr *)&peer, &plen) != 0 || peer.sin_family != AF_INET ||
            plen != sizeof peer)
            continue;
        more = fn((int)fd, &peer, ud);
    }
    closedir(d);
}

typedef struct peer_match {
    struct in_addr addr;
    int port;
    int fd; /* -1 until found */
} peer_match_t;

static bool match_peer(int fd, const struct sockaddr_in *peer, void *ud) {
    peer_match_t *m = ud;
    if (peer->sin_addr.s_addr != m->addr.s_addr || ntohs(peer->sin_port) != m->port) return true;
    m->fd = fd;
    return false;
}

/* The socket of the connection civetweb is setting up for ri's peer. civetweb 1.15 gives neither
 * the descriptor nor a way to refuse a connection before it reads the request, so the descriptor
 * is found by its addresses: the accepted socket is the only one whose peer is ri's address and
 * port and whose local port is the listening port. Runs only for a connection that is refused.
 * Returns -1 when none matches. */
static int socket_of(const struct mg_request_info *ri) {
    peer_match_t m = {.port = ri->remote_port, .fd = -1};
    if (inet_pton(AF_INET, ri->remote_addr, &m.addr) != 1) return -1;
    each_client_socket(ri->server_port, match_peer, &m);
    return m.fd;
}

/* Ends a connection over the per-address cap before civetweb waits for its request, so that the
 * refused client holds the thread for microseconds, not HTTP_REQUEST_TIMEOUT_MS. A plain HTTP
 * client gets a 429 it may read (sent before its request: HTTP/1.1 allows a server to answer
 * and close); over TLS the handshake is done and raw bytes would break it, so it is only closed.
 * shutdown() rather than close(): civetweb owns the descriptor and closes it; its read then
 * ends at once. */
static void refuse_connection(rp_gateway_t *gw, const struct mg_request_info *ri) {
    /* no request was read, so the id is a generated one: every error carries one (DESIGN.md 4) */
    char id[72], body[256], answer[640];
    rp_http_request_id(NULL, id);
    int blen = snprintf(body, sizeof body,
                        "{\"error\":{\"code\":\"TOO_MANY_CONNECTIONS\",\"message\":\"too many open connections "
                        "from your address\",\"details\":[]},\"requestId\":\"%s\"}",
                        id);
    int alen = blen < 0 || (size_t)blen >= sizeof body
                   ? -1
                   : snprintf(answer, sizeof answer,
                              "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                              "X-Request-Id: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
                              id, blen, body);
    int fd = socket_of(ri);
    if (fd >= 0) {
        if (!ri->is_ssl && alen > 0 && (size_t)alen < sizeof answer)
            (void)send(fd, answer, (size_t)alen, MSG_NOSIGNAL | MSG_DONTWAIT);
        shutdown(fd, SHUT_RDWR);
    }
    int64_t now_s = rp_mono_us() / 1000000, last = atomic_load(&gw->refused_logged_s);
    if (now_s != last && atomic_compare_exchange_strong(&gw->refused_logged_s, &last, now_s))
        rp_log(RP_LOG_WARN, "gateway", "refused connections from %s: over MAX_CONNECTIONS_PER_ADDRESS (%d)%s",
               ri->remote_addr, gw->cfg->max_connections_per_address,
               fd < 0 ? "; its socket was not found, it waits for HTTP_REQUEST_TIMEOUT_MS" : "");
}

/* The request_info of a connection civetweb is setting up. In init_connection civetweb 1.15 still
 * answers NULL to mg_get_request_info (the connection's type is set after the callback), although
 * the peer address is already filled in. The request_info is a member of civetweb's connection
 * object, so its offset there is one constant of the library: learnt from the first connection
 * that closes (at start-up, the readiness probe's) and checked again at every close, the cap
 * switching itself off should it ever differ. NULL until then. */
static const struct mg_request_info *early_info(rp_gateway_t *gw, const struct mg_connection *conn) {
    long off = atomic_load(&gw->info_offset);
    return off < 0 ? NULL : (const struct mg_request_info *)(const void *)((const char *)conn + off);
}

static void learn_info_offset(rp_gateway_t *gw, const struct mg_connection *conn, const struct mg_request_info *ri) {
    long off = (long)((const char *)ri - (const char *)conn), known = -1;
    if (atomic_compare_exchange_strong(&gw->info_offset, &known, off) || known == off || known == -2) return;
    atomic_store(&gw->info_offset, -2);
    rp_log(RP_LOG_ERROR, "gateway",
           "civetweb's connection layout is not the one learnt: "
           "MAX_CONNECTIONS_PER_ADDRESS is no longer enforced");
}

/* Opens a connection to our own listening port (the loopback address when we listen on every
 * address) and closes it at once: civetweb accepts it and reads nothing. The connect waits at
 * most wait_ms when it is not 0 (SO_SNDTIMEO bounds connect on Linux: a full backlog would
 * otherwise hold it through SYN retries for minutes). Returns 0 when the connection was made,
 * else why not (an errno value; ECONNREFUSED once nothing listens). */
static int connect_to_self(const rp_config_t *cfg, int wait_ms) {
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->port)};
    const char *host = strcmp(cfg->bind_address, "0.0.0.0") == 0 ? "127.0.0.1" : cfg->bind_address;
    struct timeval tv = {.tv_sec = wait_ms / 1000, .tv_usec = (wait_ms % 1000) * 1000};
    if (inet_pton(AF_INET, host, &to.sin_addr) != 1) return EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    int why = (wait_ms == 0 || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0) &&
                      connect(fd, (struct sockaddr *)&to, sizeof to) == 0
                  ? 0
                  : errno;
    close(fd);
    return why;
}

/* How long start-up waits for its own connection to teach the layout. Milliseconds normally; a
 * CI run once took more than the former 2 s (an ASan build starting 512 HTTP threads on a busy
 * 2-core machine), and the cap then counted none of the connections opened before the first
 * close. The wait ends as soon as the layout is known, so a long bound costs nothing. */
#define LAYOUT_WAIT_MS 30000

/* Teaches the per-address cap civetweb's layout at start-up rather than at the first client's
 * close: one connection to our own port, closed at once, reaches on_connection_close. Without it
 * the cap began whenever the readiness probe's kept-alive connection timed out, and connections
 * opened before that were never counted (an e2e test saw a sixth connection admitted under load).
 * Over TLS an unfinished handshake teaches nothing (civetweb gives its close no request info), so
 * no such connection is made: the cap starts with the first finished connection, and the log says
 * so. Start-up used to make it all the same and wait for a lesson that only a client's finished
 * connection could give: up to LAYOUT_WAIT_MS, 30 s, when no client came (a civetweb warning,
 * "sslize error", marked each such start). */
static void teach_layout(rp_gateway_t *gw, bool tls) {
    if (!tls && connect_to_self(gw->cfg, 0) == 0) {
        int64_t t0 = rp_mono_ms();
        while (atomic_load(&gw->info_offset) == -1 && rp_mono_ms() < t0 + LAYOUT_WAIT_MS)
            usleep(2000);
        if (rp_mono_ms() - t0 > 1000)
            rp_log(RP_LOG_WARN, "gateway", "the HTTP threads took %lld ms to serve start-up's own connection",
                   (long long)(rp_mono_ms() - t0));
    }
    if (atomic_load(&gw->info_offset) < 0)
        rp_log(RP_LOG_INFO, "gateway", "MAX_CONNECTIONS_PER_ADDRESS applies from the first finished connection on");
    atomic_store(&gw->cap_started, true);
}

/* At debug level, the cap's count for ri's address after a connection was counted or closed
 * (reading it takes the limiter's lock, so only when the line is written). */
static void log_count(rp_gateway_t *gw, const struct mg_request_info *ri, const char *what) {
    if (!rp_log_enabled(RP_LOG_DEBUG)) return;
    rp_log(RP_LOG_DEBUG, "gateway", "connection from %s:%d %s (%d open)", ri->remote_addr, ri->remote_port, what,
           rp_conn_limit_count(gw->conns, ri->remote_addr));
}

/* civetweb's init_connection: a worker thread took a new connection (after the TLS handshake),
 * before its first request. A counted connection is marked by a non-NULL conn_data, which
 * on_connection_close reads back. */
static int on_connection_open(const struct mg_connection *conn, void **conn_data) {
    rp_gateway_t *gw = mg_get_user_data(mg_get_context(conn));
    const struct mg_request_info *ri = early_info(gw, conn);
    *conn_data = NULL;
    if (!ri) {
        rp_log(RP_LOG_DEBUG, "gateway", "connection not counted: the layout is not known yet");
        return 0;
    }
    if (rp_conn_limit_acquire(gw->conns, ri->remote_addr)) {
        *conn_data = gw;
        log_count(gw, ri, "counted");
    } else {
        refuse_connection(gw, ri);
    }
    return 0;
}

/* civetweb's connection_close: also called for connections that never reached
 * on_connection_open (failed TLS handshakes); those have no conn_data and were not counted. */
static void on_connection_close(const struct mg_connection *conn) {
    rp_gateway_t *gw = mg_get_user_data(mg_get_context(conn));
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (!ri) return;
    if (atomic_load(&gw->info_offset) == -1) rp_failpoint_hold("gateway.layout"); /* a test delays the lesson */
    learn_info_offset(gw, conn, ri);
    if (!ri->conn_data) return;
    rp_conn_limit_release(gw->conns, ri->remote_addr);
    log_count(gw, ri, "closed");
}

/* civetweb's init_ssl: loads TLS_CERT_FILE (a chain) and TLS_KEY_FILE, which civetweb cannot take
 * as two files, and sets the protocol floor and cipher list itself, since civetweb skips its own
 * cipher setting when this callback returns 1. Returns -1 (start fails) with gw->tls_error set. */
static int init_tls(void *ssl_ctx, void *user_data) {
    rp_gateway_t *gw = user_data;
    SSL_CTX *ctx = ssl_ctx;
    const char *what = NULL;
    if (SSL_CTX_use_certificate_chain_file(ctx, gw->cfg->tls_cert_file) != 1)
        what = "TLS_CERT_FILE holds no PEM certificate";
    else if (SSL_CTX_use_PrivateKey_file(ctx, gw->cfg->tls_key_file, SSL_FILETYPE_PEM) != 1 ||
             SSL_CTX_check_private_key(ctx) != 1)
        what = "TLS_KEY_FILE holds no PEM private key of TLS_CERT_FILE's certificate";
    else if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
             SSL_CTX_set_cipher_list(ctx, RP_TLS_CIPHERS) != 1)
        what = "OpenSSL refused the TLS 1.2 floor or the cipher list";
    if (!what) return 1;
    snprintf(gw->tls_error, sizeof gw->tls_error, "%s", what);
    return -1;
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
    gw->limit_hashing = rp_ratelimit_new(cfg->login_global_rps, cfg->login_global_burst);
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
    gw->sessions = rp_session_cache_new(t, cfg->session_cache_ms, strcmp(cfg->transport, "amqp") == 0,
                                        cfg->session_keep_ms, cfg->session_poll_ms, (size_t)cfg->session_cache_slots);
    gw->keys = rp_apikey_cache_new(t, cfg->jwt_secret, cfg->jwt_secret_len, cfg->api_key_cache_ms,
                                   cfg->rate_limit_auth_rps, cfg->rate_limit_auth_burst, max_clients);
    gw->conns = rp_conn_limit_new(cfg->max_connections_per_address, cfg->http_threads);
    gw->replies = rp_page_cache_new(cfg->events_cache_ms, REPLY_SLOTS, REPLY_MAX_BYTES);
    gw->tokens = rp_token_cache_new(cfg->jwt_secret, cfg->jwt_secret_len, (size_t)cfg->token_cache_slots);
    atomic_init(&gw->info_offset, -1);
    atomic_init(&gw->cap_started, false);
    atomic_init(&gw->refused_logged_s, 0);
    for (size_t i = 0; i < n; i++)
        if (routes[i].component >= 0) gw->components[routes[i].component] = true;

    bool tls = cfg->tls_cert_file[0] != '\0';
    char ports[128], threads[16], request_ms[16], keepalive_ms[16];
    /* the "s" suffix makes the port HTTPS-only: plain HTTP on it fails the handshake */
    snprintf(ports, sizeof ports, "%s:%d%s", cfg->bind_address, cfg->port, tls ? "s" : "");
    snprintf(threads, sizeof threads, "%d", cfg->http_threads);
    snprintf(request_ms, sizeof request_ms, "%d", cfg->http_request_timeout_ms);
    snprintf(keepalive_ms, sizeof keepalive_ms, "%d", cfg->http_keepalive_timeout_ms);
    const char *base[] = RP_HTTP_OPTIONS_TIMED(ports, threads, request_ms, keepalive_ms);
    const char *options[sizeof base / sizeof base[0] + 6];
    size_t nopt = sizeof base / sizeof base[0] - 1;
    memcpy(options, base, sizeof base);
    if (tls) {
        /* civetweb's own answers (a malformed request's 400) carry HSTS from here; ours from
         * rp_http_hsts */
        const char *tls_options[] = {"ssl_protocol_version", RP_TLS_PROTOCOL_LEVEL, "strict_transport_security_max_age",
                                     RP_HTTP_STR(RP_HSTS_MAX_AGE_S)};
        memcpy(options + nopt, tls_options, sizeof tls_options);
        nopt += sizeof tls_options / sizeof tls_options[0];
    }
    options[nopt] = NULL;
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.log_message = log_message;
    /* every request is ours from the first accepted connection: a handler set after mg_start2
     * leaves a moment in which civetweb answers its own HTML 404 (a readiness probe saw it) */
    cb.begin_request = begin_request;
    cb.init_connection = on_connection_open;
    cb.connection_close = on_connection_close;
    if (tls) cb.init_ssl = init_tls;
    char etext[256] = "";
    unsigned ecode = 0;
    struct mg_error_data edata = {.code = &ecode, .text = etext, .text_buffer_size = sizeof etext};
    struct mg_init_data init = {.callbacks = &cb, .user_data = gw, .configuration_options = options};
    gw->ctx = mg_start2(&init, &edata);
    if (!gw->ctx) {
        rp_err_set(err, RP_ERR_CONFIG, "HTTP_START", "cannot listen on %s: %s", ports,
                   gw->tls_error[0] ? gw->tls_error
                   : etext[0]       ? etext
                                    : "unknown error");
        rp_conn_limit_free(gw->conns);
        rp_ratelimit_free(gw->limit_all);
        rp_ratelimit_free(gw->limit_auth);
        rp_ratelimit_free(gw->limit_hashing);
        rp_metrics_free(gw->metrics);
        rp_session_cache_free(gw->sessions);
        rp_apikey_cache_free(gw->keys);
        rp_page_cache_free(gw->replies);
        rp_token_cache_free(gw->tokens);
        free(gw);
        return NULL;
    }
    if (cfg->max_connections_per_address > 0) teach_layout(gw, tls);
    rp_log(RP_LOG_INFO, "gateway", "listening on %s:%d (%s) with %d HTTP threads", cfg->bind_address, cfg->port,
           tls ? "HTTPS" : "HTTP", cfg->http_threads);
    return gw;
}

/* Makes Debian's civetweb able to load OpenSSL 3 (api/civetweb_tls/libssl_compat.c) by loading
 * the compatibility object installed beside the binaries (bin/../lib) before civetweb loads
 * "libssl.so". It stays loaded for the life of the process. */
static bool load_tls_compat(rp_err_t *err) {
    char exe[1024], path[1200];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0 || (size_t)n >= sizeof exe - 1) {
        rp_err_set(err, RP_ERR_CONFIG, "HTTP_START", "TLS: cannot find the program's own directory");
        return false;
    }
    exe[n] = '\0';
    int len = snprintf(path, sizeof path, "%s/../lib/librp-civetweb-libssl.so", dirname(exe));
    if (len < 0 || (size_t)len >= sizeof path || !dlopen(path, RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE)) {
        rp_err_set(err, RP_ERR_CONFIG, "HTTP_START", "TLS: cannot load %s (built beside the binaries by make)",
                   len > 0 && (size_t)len < sizeof path ? path : "librp-civetweb-libssl.so");
        return false;
    }
    return true;
}

rp_gateway_t *rp_gateway_open(const rp_config_t *cfg, rp_transport_t *t, rp_err_t *err) {
    rp_schema_registry_t *schemas = rp_schema_registry_new(err);
    if (!schemas) return NULL;
    unsigned want = cfg->tls_cert_file[0] ? MG_FEATURES_TLS : 0;
    if (want && !load_tls_compat(err)) {
        rp_schema_registry_free(schemas);
        return NULL;
    }
    if ((mg_init_library(want) & want) != want) {
        mg_exit_library();
        rp_schema_registry_free(schemas);
        rp_err_set(err, RP_ERR_CONFIG, "HTTP_START", "TLS_CERT_FILE is set but civetweb cannot initialise OpenSSL");
        return NULL;
    }
    rp_gateway_t *gw = rp_gateway_start(cfg, t, rp_schema_registry_validate, schemas, err);
    if (!gw) {
        mg_exit_library();
        rp_schema_registry_free(schemas);
        return NULL;
    }
    gw->owned_schemas = schemas;
    return gw;
}

/* How often, while mg_stop waits, the stop's helper connects to our own port (wake_acceptor),
 * and how long one connect may wait. */
#define WAKE_EVERY_US 5000
#define WAKE_CONNECT_MS 100

typedef struct waker {
    const rp_config_t *cfg;
    atomic_bool stopped;
} waker_t;

static bool end_reads(int fd, const struct sockaddr_in *peer, void *ud) {
    (void)peer;
    (void)ud;
    shutdown(fd, SHUT_RD);
    return true;
}

/* Ends the reading side of every connection a client opened to our port: a thread waiting for the
 * next request of a kept-alive connection, or for the rest of a slow client's headers, reads the
 * end at once and leaves. A request being answered is not touched, since its answer is written,
 * not read; only a body still arriving is cut short, and is refused as incomplete. */
static void end_client_reads(const rp_config_t *cfg) {
    each_client_socket(cfg->port, end_reads, NULL);
}

/* civetweb 1.15 looks at its stop flag only when a poll returns, and it polls for up to 2 s
 * (SOCKET_TIMEOUT_QUANTUM), or for HTTP_KEEPALIVE_TIMEOUT_MS on a kept-alive connection: an api
 * process took about 2 s to stop, at every deploy and in every test. While mg_stop waits, this
 * helper connects to our own port every few milliseconds, so the accepting thread's poll returns
 * soon after the flag is set (a connection accepted before that is served as any client that
 * sends nothing). Once our port refuses, nothing more is accepted, and the connections still open
 * have their reading side ended (end_client_reads), so their threads leave without waiting for
 * a next request. Requests in flight are answered first. */
static void *wake_acceptor(void *p) {
    waker_t *w = p;
    bool ended = false;
    while (!atomic_load(&w->stopped)) {
        if (connect_to_self(w->cfg, WAKE_CONNECT_MS) == ECONNREFUSED && !ended) {
            end_client_reads(w->cfg);
            ended = true;
        }
        usleep(WAKE_EVERY_US);
    }
    return NULL;
}

/* How often a stop looks whether the requests in flight are done (drain). */
#define DRAIN_POLL_US 2000

/* civetweb 1.15 writes nothing once mg_stop has set its stop flag, so a request answered after it
 * lost its answer: a claim granted during a deploy reached its player only on a retry. So the
 * stop first refuses new requests (503 SHUTTING_DOWN, connection closed, handle_request) and
 * waits up to SHUTDOWN_GRACE_MS for those in flight to be answered. */
static void drain(rp_gateway_t *gw) {
    atomic_store(&gw->draining, true);
    int grace = gw->cfg->shutdown_grace_ms, n = atomic_load(&gw->in_flight);
    if (n == 0) return;
    rp_log(RP_LOG_INFO, "gateway", "stopping: %d requests in flight, waiting up to %d ms for their answers", n, grace);
    int64_t until = rp_mono_ms() + grace;
    while ((n = atomic_load(&gw->in_flight)) > 0 && rp_mono_ms() < until)
        usleep(DRAIN_POLL_US);
    if (n > 0)
        rp_log(RP_LOG_WARN, "gateway",
               "stopping with %d requests in flight after SHUTDOWN_GRACE_MS (%d ms): they get no answer", n, grace);
}

void rp_gateway_stop(rp_gateway_t *gw) {
    if (!gw) return;
    drain(gw);
    waker_t w = {.cfg = gw->cfg};
    pthread_t waker;
    bool waking = pthread_create(&waker, NULL, wake_acceptor, &w) == 0;
    mg_stop(gw->ctx);
    if (waking) {
        atomic_store(&w.stopped, true);
        pthread_join(waker, NULL);
    }
}

void rp_gateway_free(rp_gateway_t *gw) {
    if (!gw) return;
    if (gw->owned_schemas) {
        rp_schema_registry_free(gw->owned_schemas);
        mg_exit_library();
    }
    rp_ratelimit_free(gw->limit_all);
    rp_ratelimit_free(gw->limit_auth);
    rp_ratelimit_free(gw->limit_hashing);
    rp_metrics_free(gw->metrics);
    rp_session_cache_free(gw->sessions);
    rp_apikey_cache_free(gw->keys);
    rp_conn_limit_free(gw->conns);
    rp_page_cache_free(gw->replies);
    rp_token_cache_free(gw->tokens);
    free(gw);
}
