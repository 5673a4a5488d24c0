/* apidoc.c - serves the OpenAPI document and the reference page from the binary (see apidoc.h);
 * reads only constant data, thread-safe. */
#include "apidoc.h"

#include <stdio.h>
#include <string.h>

#include "envelope.h"
#include "http_io.h"

const rp_apidoc_file_t *rp_apidoc_find(const char *name) {
    for (const rp_apidoc_file_t *f = rp_apidoc_files; name && f->name; f++)
        if (strcmp(f->name, name) == 0) return f;
    return NULL;
}

/* True when the If-None-Match header lists etag (or is "*"). */
static bool not_modified(const char *if_none_match, const char *etag) {
    if (!if_none_match) return false;
    if (strcmp(if_none_match, "*") == 0) return true;
    size_t n = strlen(etag);
    for (const char *p = strstr(if_none_match, etag); p; p = strstr(p + 1, etag)) {
        char after = p[n];
        if (after == '\0' || after == ',' || after == ' ') return true;
    }
    return false;
}

int rp_apidoc_serve(struct mg_connection *conn, const char *pattern, const json_t *params, const char *request_id) {
    const rp_apidoc_file_t *f = NULL;
    bool document = strcmp(pattern, "/openapi.json") == 0;
    if (document) {
        f = rp_apidoc_find("openapi.json");
    } else if (strcmp(pattern, "/docs") == 0) {
        f = rp_apidoc_find("index.html");
    } else {
        const char *asset = json_string_value(json_object_get(params, "asset"));
        /* the page's own assets only: the document has its own route */
        if (asset && strcmp(asset, "openapi.json") != 0 && strcmp(asset, "index.html") != 0) f = rp_apidoc_find(asset);
    }
    if (!f) {
        json_t *body = rp_error_body("NOT_FOUND", "no such file of the API reference", NULL);
        json_object_set_new(body, "requestId", json_string(request_id));
        rp_http_extra_t extra = {.request_id = request_id};
        rp_http_send_json(conn, 404, body, &extra);
        json_decref(body);
        return 404;
    }
    bool unchanged = not_modified(mg_get_header(conn, "If-None-Match"), f->etag);
    int status = unchanged ? 304 : 200;
    char length[48] = ""; /* a 304 has no body, and no length that could be taken for one */
    if (!unchanged) snprintf(length, sizeof length, "Content-Length: %zu\r\n", f->len);
    /* no-cache: a client may keep a copy but asks again (and gets 304) after an upgrade */
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\n"
              "Content-Type: %s\r\n"
              "%s"
              "ETag: %s\r\n"
              "Cache-Control: no-cache\r\n"
              "X-Request-Id: %s\r\n"
              "X-Content-Type-Options: nosniff\r\n"
              "X-Frame-Options: DENY\r\n"
              "Referrer-Policy: no-referrer\r\n"
              "Content-Security-Policy: %s\r\n"
              "%s%s\r\n",
              status, unchanged ? "Not Modified" : "OK", f->type, length, f->etag, request_id, RP_APIDOC_CSP,
              document ? "Access-Control-Allow-Origin: *\r\n" : "", rp_http_hsts(conn));
    if (!unchanged) mg_write(conn, f->data, f->len);
    return status;
}
