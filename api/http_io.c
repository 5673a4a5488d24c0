/* http_io.c - request bodies, responses and header helpers (see http_io.h). */
#include "http_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_options.h"
#include "ids.h"
#include "mem.h"

long rp_http_read_body(struct mg_connection *conn, size_t cap, char **out) {
    const struct mg_request_info *ri = mg_get_request_info(conn);
    long long want = ri->content_length;
    size_t got = 0;
    *out = NULL;
    if (want > (long long)cap) return RP_HTTP_BODY_TOO_LARGE;
    char *buf = rp_malloc(cap + 1);
    for (;;) {
        if (got == cap) {
            char extra;
            if (mg_read(conn, &extra, 1) > 0) {
                free(buf);
                return RP_HTTP_BODY_TOO_LARGE;
            }
            break;
        }
        int n = mg_read(conn, buf + got, cap - got);
        if (n < 0) {
            free(buf);
            return RP_HTTP_BODY_SHORT;
        }
        if (n == 0) break;
        got += (size_t)n;
    }
    if (want >= 0 && (long long)got != want) {
        free(buf);
        return RP_HTTP_BODY_SHORT;
    }
    buf[got] = '\0';
    *out = buf;
    return (long)got;
}

static const char *reason(int status) {
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
    }
}

const char *rp_http_hsts(const struct mg_connection *conn) {
    const struct mg_request_info *ri = mg_get_request_info(conn);
    return ri && ri->is_ssl ? "Strict-Transport-Security: max-age=" RP_HTTP_STR(RP_HSTS_MAX_AGE_S) "\r\n" : "";
}

bool rp_http_send_json(struct mg_connection *conn, int status, const json_t *body, const rp_http_extra_t *extra) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    bool ok = rp_http_send_json_text(conn, status, text, text ? strlen(text) : 0, extra);
    free(text);
    return ok;
}

bool rp_http_send_json_text(struct mg_connection *conn, int status, const char *text, size_t blen,
                            const rp_http_extra_t *extra) {
    char head[1024];
    char opt[512] = "";
    size_t used = 0;
    if (extra && extra->retry_after_s > 0)
        used += (size_t)snprintf(opt + used, sizeof opt - used, "Retry-After: %d\r\n", extra->retry_after_s);
    if (extra && extra->allow && used < sizeof opt)
        used += (size_t)snprintf(opt + used, sizeof opt - used, "Allow: %s\r\n", extra->allow);
    if (extra && extra->www_authenticate && used < sizeof opt)
        used += (size_t)snprintf(opt + used, sizeof opt - used, "WWW-Authenticate: %s\r\n", extra->www_authenticate);
    if (extra && extra->close && used < sizeof opt) snprintf(opt + used, sizeof opt - used, "Connection: close\r\n");
    int hlen = snprintf(head, sizeof head,
                        "HTTP/1.1 %d %s\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: %zu\r\n"
                        "X-Request-Id: %s\r\n"
                        "X-Content-Type-Options: nosniff\r\n"
                        "X-Frame-Options: DENY\r\n"
                        "Referrer-Policy: no-referrer\r\n"
                        "Cache-Control: no-store\r\n"
                        "%s%s\r\n",
                        status, reason(status), blen, extra && extra->request_id ? extra->request_id : "-",
                        rp_http_hsts(conn), opt);
    if (hlen < 0 || (size_t)hlen >= sizeof head) return false;
    /* one write: headers and body leave in the same segment (see the Nagle note) */
    char *all = rp_malloc((size_t)hlen + blen);
    memcpy(all, head, (size_t)hlen);
    if (blen) memcpy(all + hlen, text, blen);
    int w = mg_write(conn, all, (size_t)hlen + blen);
    free(all);
    return w == (int)((size_t)hlen + blen);
}

bool rp_http_is_json_type(const char *value) {
    static const char want[] = "application/json";
    if (!value) return false;
    while (*value == ' ' || *value == '\t')
        value++;
    if (strncasecmp(value, want, sizeof want - 1) != 0) return false;
    const char *rest = value + sizeof want - 1;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    return *rest == '\0' || *rest == ';';
}

void rp_http_request_id(const char *incoming, char out[72]) {
    size_t n = incoming ? strlen(incoming) : 0;
    bool ok = n > 0 && n <= 64;
    for (size_t i = 0; ok && i < n; i++) {
        char c = incoming[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
             c == '-';
    }
    if (ok) {
        memcpy(out, incoming, n + 1);
        return;
    }
    rp_random_hex(out, 16);
}

static bool decode_part(const char *p, size_t n, char *dst, size_t cap) {
    if (n >= cap) return false;
    int w = mg_url_decode(p, (int)n, dst, (int)cap, 1);
    return w >= 0 && (size_t)w < cap && memchr(dst, '\0', (size_t)w) == NULL;
}

bool rp_http_parse_query(const char *qs, json_t **out) {
    json_t *o = json_object();
    char name[513], value[513];
    int count = 0;
    *out = NULL;
    while (qs && *qs) {
        const char *amp = strchr(qs, '&');
        size_t len = amp ? (size_t)(amp - qs) : strlen(qs);
        if (len > 0) {
            const char *eq = memchr(qs, '=', len);
            size_t nlen = eq ? (size_t)(eq - qs) : len;
            const char *v = eq ? eq + 1 : qs + len;
            size_t vlen = eq ? len - nlen - 1 : 0;
            json_t *js;
            if (++count > 32 || !decode_part(qs, nlen, name, sizeof name) ||
                !decode_part(v, vlen, value, sizeof value) || !name[0] || json_object_get(o, name) ||
                !(js = json_string(value)) || json_object_set_new(o, name, js) != 0) {
                json_decref(o);
                return false;
            }
        }
        qs = amp ? amp + 1 : qs + len;
    }
    *out = o;
    return true;
}
