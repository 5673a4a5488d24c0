/* envelope.c - RPC envelope and reply (see envelope.h); no shared state. */
#include "envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"
#include "log.h"
#include "mem.h"
#include "roles.h"

void rp_envelope_init(rp_envelope_t *env) {
    memset(env, 0, sizeof *env);
    env->params = json_object();
    env->query = json_object();
}

void rp_envelope_clear(rp_envelope_t *env) {
    if (!env) return;
    json_decref(env->params);
    json_decref(env->query);
    json_decref(env->body);
    env->params = env->query = env->body = NULL;
}

char *rp_envelope_serialize(const rp_envelope_t *env, size_t *len) {
    json_t *caller = json_pack("{s:b}", "authenticated", env->caller.authenticated);
    if (env->caller.authenticated) {
        json_object_set_new(caller, "id", json_string(env->caller.id));
        json_object_set_new(caller, "username", json_string(env->caller.username));
        json_object_set_new(caller, "roles", rp_roles_to_json(env->caller.roles));
        if (env->caller.jti[0]) {
            json_object_set_new(caller, "jti", json_string(env->caller.jti));
            json_object_set_new(caller, "tokenExp", json_integer((json_int_t)env->caller.token_exp));
        }
    }
    json_t *o = json_pack("{s:s, s:s, s:O, s:O, s:o, s:s, s:s, s:I}", "method", env->method, "route", env->route,
                          "params", env->params, "query", env->query, "caller", caller, "requestId", env->request_id,
                          "idempotencyKey", env->idempotency_key, "deadline", (json_int_t)env->deadline_ms);
    if (env->body) json_object_set(o, "body", env->body);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    *len = s ? strlen(s) : 0;
    return s;
}

static bool copy_field(char *dst, size_t cap, const char *src, size_t srclen) {
    if (srclen >= cap || memchr(src, '\0', srclen)) return false;
    memcpy(dst, src, srclen);
    dst[srclen] = '\0';
    return true;
}

static bool strings_only(const json_t *obj) {
    const char *k;
    json_t *v;
    if (!json_is_object(obj)) return false;
    json_object_foreach((json_t *)obj, k, v) if (!json_is_string(v)) return false;
    return true;
}

bool rp_envelope_parse(rp_envelope_t *env, const char *buf, size_t len, rp_err_t *err) {
    json_error_t je;
    bool ok = false;
    rp_envelope_init(env);
    /* the body is nested a few levels down inside the envelope */
    json_t *o = NULL;
    if (rp_json_depth_ok(buf, len, RP_JSON_MAX_DEPTH + 4))
        o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    else
        snprintf(je.text, sizeof je.text, "too deeply nested");
    const char *method, *route, *rid, *ikey;
    size_t mlen, rlen, ridlen, iklen;
    json_int_t deadline = 0;
    json_t *params, *query, *caller, *body = NULL;
    if (!o || json_unpack_ex(o, &je, JSON_STRICT, "{s:s%, s:s%, s:o, s:o, s:o, s:s%, s:s%, s:I, s?o}", "method",
                             &method, &mlen, "route", &route, &rlen, "params", &params, "query", &query, "caller",
                             &caller, "requestId", &rid, &ridlen, "idempotencyKey", &ikey, &iklen, "deadline",
                             &deadline, "body", &body) != 0) {
        rp_err_set(err, RP_ERR_INVALID, "BAD_MESSAGE", "malformed envelope: %s", je.text);
        goto done;
    }
    if (!copy_field(env->method, sizeof env->method, method, mlen) ||
        !copy_field(env->route, sizeof env->route, route, rlen) ||
        !copy_field(env->request_id, sizeof env->request_id, rid, ridlen) ||
        !copy_field(env->idempotency_key, sizeof env->idempotency_key, ikey, iklen) || !strings_only(params) ||
        !strings_only(query)) {
        rp_err_set(err, RP_ERR_INVALID, "BAD_MESSAGE", "malformed envelope: bad field");
        goto done;
    }
    int authed = 0;
    const char *uid = NULL, *uname = NULL, *jti = NULL;
    size_t uidlen = 0, unamelen = 0, jtilen = 0;
    json_int_t token_exp = 0;
    json_t *roles = NULL;
    if (json_unpack_ex(caller, &je, 0, "{s:b, s?s%, s?s%, s?o, s?s%, s?I}", "authenticated", &authed, "id", &uid,
                       &uidlen, "username", &uname, &unamelen, "roles", &roles, "jti", &jti, &jtilen, "tokenExp",
                       &token_exp) != 0) {
        rp_err_set(err, RP_ERR_INVALID, "BAD_MESSAGE", "malformed envelope caller: %s", je.text);
        goto done;
    }
    if (authed) {
        if (!uid || !uname || !roles || !rp_oid_valid(uid, uidlen) ||
            !copy_field(env->caller.id, sizeof env->caller.id, uid, uidlen) ||
            !copy_field(env->caller.username, sizeof env->caller.username, uname, unamelen) ||
            !rp_roles_from_json(roles, &env->caller.roles, NULL) ||
            (jti && !copy_field(env->caller.jti, sizeof env->caller.jti, jti, jtilen))) {
            rp_err_set(err, RP_ERR_INVALID, "BAD_MESSAGE", "malformed envelope caller identity");
            goto done;
        }
        env->caller.authenticated = true;
        env->caller.token_exp = token_exp;
    }
    json_decref(env->params);
    json_decref(env->query);
    env->params = json_incref(params);
    env->query = json_incref(query);
    env->body = json_incref(body);
    env->deadline_ms = deadline;
    ok = true;
done:
    json_decref(o);
    return ok;
}

const char *rp_envelope_param(const rp_envelope_t *env, const char *name) {
    return json_string_value(json_object_get(env->params, name));
}

const char *rp_envelope_query(const rp_envelope_t *env, const char *name) {
    return json_string_value(json_object_get(env->query, name));
}

void rp_reply_init(rp_reply_t *rep) {
    memset(rep, 0, sizeof *rep);
}

void rp_reply_clear(rp_reply_t *rep) {
    if (!rep) return;
    json_decref(rep->body);
    free(rep->raw);
    rp_reply_init(rep);
}

void rp_reply_set(rp_reply_t *rep, int status, json_t *body) {
    json_decref(rep->body);
    free(rep->raw);
    rep->raw = NULL;
    rep->raw_len = 0;
    rep->max_age_ms = 0;
    rep->status = status;
    rep->body = body;
}

void rp_reply_set_raw(rp_reply_t *rep, int status, char *text, size_t len) {
    rp_reply_set(rep, status, NULL);
    rep->raw = text;
    rep->raw_len = len;
}

json_t *rp_error_body(const char *code, const char *message, json_t *details) {
    json_t *msg = json_string(message);
    if (!msg) msg = json_string("(invalid message)");
    return json_pack("{s:{s:s, s:o, s:o}}", "error", "code", code, "message", msg, "details",
                     details ? details : json_array());
}

void rp_reply_error(rp_reply_t *rep, int status, const char *code, const char *message, json_t *details) {
    rp_reply_set(rep, status, rp_error_body(code, message, details));
}

void rp_reply_from_err(rp_reply_t *rep, const rp_err_t *err) {
    if (err->kind == RP_ERR_NONE) { /* a callee failed without saying why: never stack bytes, never 200 */
        rp_log(RP_LOG_ERROR, "rpc", "an operation failed without an error record; answering 500");
        rp_reply_error(rep, 500, "INTERNAL", "the operation failed without saying why", NULL);
        return;
    }
    rp_reply_error(rep, rp_err_http_status(err->kind), err->code[0] ? err->code : "INTERNAL", err->message, NULL);
    /* a store that is down, busy or full answers 503: say when to try again, as the transport does */
    if (rep->status == 503 && rep->retry_after_s <= 0) rep->retry_after_s = 1;
}

/* A growing buffer for json_dump_callback. */
typedef struct outbuf {
    char *p;
    size_t len, cap;
} outbuf_t;

static int outbuf_add(const char *b, size_t n, void *data) {
    outbuf_t *o = data;
    if (o->len + n + 1 > o->cap) {
        while (o->len + n + 1 > o->cap)
            o->cap = o->cap ? o->cap * 2 : 256;
        o->p = rp_realloc(o->p, o->cap);
    }
    memcpy(o->p + o->len, b, n);
    o->len += n;
    return 0;
}

char *rp_reply_serialize(const rp_reply_t *rep, size_t *len) {
    outbuf_t o = {NULL, 0, 0};
    char head[64];
    int hl = snprintf(head, sizeof head, "{\"status\":%d,\"retryAfter\":%d", rep->status,
                      rep->retry_after_s > 0 ? rep->retry_after_s : 0);
    outbuf_add(head, (size_t)hl, &o);
    if (rep->max_age_ms > 0 && rep->status / 100 == 2) {
        hl = snprintf(head, sizeof head, ",\"maxAgeMs\":%d", rep->max_age_ms);
        outbuf_add(head, (size_t)hl, &o);
    }
    if (rep->raw || rep->body) {
        outbuf_add(",\"body\":", 8, &o);
        if (rep->raw)
            outbuf_add(rep->raw, rep->raw_len, &o);
        else if (json_dump_callback(rep->body, outbuf_add, &o, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
            free(o.p);
            *len = 0;
            return NULL;
        }
    }
    outbuf_add("}", 1, &o);
    o.p[o.len] = '\0';
    *len = o.len;
    return o.p;
}

/* Reads the decimal at *p (optionally negative) and moves past it; false when there is none. */
static bool read_int(const char **p, const char *end, int *out) {
    const char *s = *p;
    bool neg = s < end && *s == '-';
    long v = 0;
    if (neg) s++;
    const char *digits = s;
    while (s < end && *s >= '0' && *s <= '9' && s - digits < 9)
        v = v * 10 + (*s++ - '0');
    if (s == digits || (s < end && *s >= '0' && *s <= '9')) return false;
    *out = (int)(neg ? -v : v);
    *p = s;
    return true;
}

static bool skip_lit(const char **p, const char *end, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0) return false;
    *p += n;
    return true;
}

/* True when s (n bytes) is one bracketed JSON value: an object or array whose closing bracket is
 * its last byte. A body span that is not (`0,"status":500`, `{},"body":{}`) carries more members
 * after the body, which only the full parse reads as it must; the raw path would relay them. */
static bool one_bracketed_value(const char *s, size_t n) {
    int depth = 0;
    bool in_string = false;
    if (n == 0 || (s[0] != '{' && s[0] != '[')) return false;
    for (size_t i = 0; i < n; i++) {
        if (in_string) {
            if (s[i] == '\\')
                i++;
            else if (s[i] == '"')
                in_string = false;
        } else if (s[i] == '"') {
            in_string = true;
        } else if (s[i] == '{' || s[i] == '[') {
            depth++;
        } else if ((s[i] == '}' || s[i] == ']') && --depth == 0) {
            return i == n - 1;
        }
    }
    return false;
}

/* The layout rp_reply_serialize writes: status, retry, the optional maxAgeMs (0 when absent) and
 * the body's span; false otherwise. */
static bool split_reply(const char *buf, size_t len, int *status, int *retry, int *max_age, const char **body,
                        size_t *blen) {
    const char *p = buf, *end = buf + len;
    if (!skip_lit(&p, end, "{\"status\":") || !read_int(&p, end, status) || !skip_lit(&p, end, ",\"retryAfter\":") ||
        !read_int(&p, end, retry))
        return false;
    *max_age = 0;
    if (skip_lit(&p, end, ",\"maxAgeMs\":") && !read_int(&p, end, max_age)) return false;
    if (skip_lit(&p, end, "}")) {
        *body = NULL;
        *blen = 0;
        return p == end;
    }
    if (!skip_lit(&p, end, ",\"body\":") || end - p < 2 || end[-1] != '}') return false;
    *body = p;
    *blen = (size_t)(end - 1 - p);
    return one_bracketed_value(*body, *blen);
}

static bool parse_reply(rp_reply_t *rep, const char *buf, size_t len, bool keep_raw, rp_err_t *err) {
    json_error_t je;
    json_t *body = NULL;
    int status = 0, retry = 0, max_age = 0;
    const char *span;
    size_t slen;
    rp_reply_init(rep);
    if (keep_raw && split_reply(buf, len, &status, &retry, &max_age, &span, &slen) && status >= 200 && status <= 299 &&
        retry >= 0) {
        rep->status = status;
        rep->retry_after_s = retry;
        rep->max_age_ms = max_age > 0 ? max_age : 0;
        if (span) {
            rep->raw = rp_malloc(slen + 1);
            memcpy(rep->raw, span, slen);
            rep->raw[slen] = '\0';
            rep->raw_len = slen;
        }
        return true;
    }
    json_t *o = json_loadb(buf, len, 0, &je);
    if (!o ||
        json_unpack_ex(o, &je, JSON_STRICT, "{s:i, s:i, s?i, s?o}", "status", &status, "retryAfter", &retry, "maxAgeMs",
                       &max_age, "body", &body) != 0 ||
        status < 100 || status > 599) {
        rp_err_set(err, RP_ERR_BAD_REPLY, "BAD_REPLY", "malformed worker reply");
        json_decref(o);
        return false;
    }
    rep->status = status;
    rep->retry_after_s = retry;
    rep->max_age_ms = max_age > 0 && status / 100 == 2 ? max_age : 0;
    rep->body = json_incref(body);
    json_decref(o);
    return true;
}

bool rp_reply_parse(rp_reply_t *rep, const char *buf, size_t len, rp_err_t *err) {
    return parse_reply(rep, buf, len, false, err);
}

bool rp_reply_parse_raw(rp_reply_t *rep, const char *buf, size_t len, rp_err_t *err) {
    return parse_reply(rep, buf, len, true, err);
}
