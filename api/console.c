/* console.c - serves the web console's embedded assets (see console.h); stateless, so any thread
 * may call it. */
#include "console.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http_io.h"

#define CONSOLE_PREFIX "/console"

const char rp_console_csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                              "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const rp_console_asset_t *rp_console_find(const char *path, size_t len) {
    if (len == 0) {
        path = "index.html";
        len = strlen(path);
    }
    for (const rp_console_asset_t *a = rp_console_assets; a->path; a++)
        if (strlen(a->path) == len && memcmp(a->path, path, len) == 0) return a;
    return NULL;
}

/* True when the If-None-Match header (a list, or "*") names etag. Weak validators compare by
 * their opaque part, as RFC 9110 asks of If-None-Match. */
static bool etag_matches(const char *header, const char *etag) {
    if (!header) return false;
    size_t elen = strlen(etag);
    const char *p = header;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*') return true;
        if (p[0] == 'W' && p[1] == '/') p += 2;
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == elen && memcmp(p, etag, elen) == 0) return true;
        if (!end) break;
        p = end + 1;
    }
    return false;
}

/* The headers every console response carries besides its status line and body headers. */
static int common_headers(char *buf, size_t cap, const struct mg_connection *conn, const char *request_id) {
    return snprintf(buf, cap,
                    "X-Request-Id: %s\r\n"
                    "Content-Security-Policy: %s\r\n"
                    "X-Content-Type-Options: nosniff\r\n"
                    "X-Frame-Options: DENY\r\n"
                    "Referrer-Policy: no-referrer\r\n"
                    "Cross-Origin-Opener-Policy: same-origin\r\n"
                    "Cross-Origin-Resource-Policy: same-origin\r\n"
                    "%s",
                    request_id, rp_console_csp, rp_http_hsts(conn));
}

/* An API-style JSON error. The body is written for HEAD too (the one writer sends both), so a
 * HEAD's error closes the connection: the body must not be read as the next response. */
static void send_error(struct mg_connection *conn, bool head, int status, const char *code, const char *message,
                       const char *allow, const char *request_id) {
    json_t *body = json_pack("{s:{s:s, s:s, s:[]}, s:s}", "error", "code", code, "message", message, "details",
                             "requestId", request_id);
    rp_http_extra_t extra = {.request_id = request_id, .allow = allow, .close = head};
    if (head) mg_disable_connection_keep_alive(conn);
    rp_http_send_json(conn, status, body, &extra);
    json_decref(body);
}

bool rp_console_serve(struct mg_connection *conn, const char *method, const char *path, const char *request_id,
                      int *status) {
    size_t pfx = sizeof CONSOLE_PREFIX - 1;
    size_t plen = strlen(path);
    if (plen < pfx || memcmp(path, CONSOLE_PREFIX, pfx) != 0 || (plen > pfx && path[pfx] != '/')) return false;
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        send_error(conn, false, 405, "METHOD_NOT_ALLOWED", "the console accepts GET and HEAD only", "GET, HEAD",
                   request_id);
        *status = 405;
        return true;
    }
    char common[1024];
    int clen = common_headers(common, sizeof common, conn, request_id);
    if (clen < 0 || (size_t)clen >= sizeof common) {
        send_error(conn, head, 500, "INTERNAL", "response headers too long", NULL, request_id);
        *status = 500;
        return true;
    }
    if (plen == pfx) { /* relative asset names resolve against /console/, so the slash matters */
        mg_printf(conn,
                  "HTTP/1.1 301 Moved Permanently\r\nLocation: /console/\r\nContent-Length: 0\r\n"
                  "Cache-Control: no-store\r\n%s\r\n",
                  common);
        *status = 301;
        return true;
    }
    const rp_console_asset_t *a = rp_console_find(path + pfx + 1, plen - pfx - 1);
    if (!a) {
        send_error(conn, head, 404, "NOT_FOUND", "no such console asset", NULL, request_id);
        *status = 404;
        return true;
    }
    /* no-cache: the names carry no version, so every use revalidates (a 304 costs a header) */
    if (etag_matches(mg_get_header(conn, "If-None-Match"), a->etag)) {
        mg_printf(conn, "HTTP/1.1 304 Not Modified\r\nETag: %s\r\nCache-Control: no-cache\r\n%s\r\n", a->etag, common);
        *status = 304;
        return true;
    }
    mg_printf(conn,
              "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\nETag: %s\r\n"
              "Cache-Control: no-cache\r\n%s\r\n",
              a->content_type, a->len, a->etag, common);
    if (!head) mg_write(conn, a->data, a->len);
    *status = 200;
    return true;
}
