/* apidoc.h - the API's own description, served from the binary: GET /api/v1/openapi.json (the
 * OpenAPI 3.1 document generated at build time by api/openapi/openapi_gen.c) and the reference
 * page GET /api/v1/docs with its assets (api/apidoc/), rendered in the browser from that document
 * with no network beyond this server. Constant data; thread-safe. */
#ifndef RP_API_APIDOC_H
#define RP_API_APIDOC_H

#include <civetweb.h>
#include <jansson.h>
#include <stddef.h>

/* One embedded file (generated into build/gen/openapi_embedded.c). */
typedef struct rp_apidoc_file {
    const char *name; /* "openapi.json", "index.html", "apidoc.js", ... */
    const char *type; /* its Content-Type */
    const char *data; /* its bytes, NUL-terminated */
    size_t len;
    const char *etag; /* a quoted strong validator of the bytes */
} rp_apidoc_file_t;

/* Terminated by an entry whose name is NULL; the first is openapi.json. */
extern const rp_apidoc_file_t rp_apidoc_files[];

/* The Content-Security-Policy of the reference page and its assets: scripts, styles and fetches
 * from this origin only, no inline code, no frames. */
#define RP_APIDOC_CSP                                                                                                  \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "                    \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* The embedded file called name, or NULL. */
const rp_apidoc_file_t *rp_apidoc_find(const char *name);

/* Answers a GET of one of the routes "/openapi.json", "/docs" and "/docs/{asset}" (pattern, with
 * params holding "asset"; both borrowed): 200 with the file, 304 when If-None-Match names its
 * ETag, 404 NOT_FOUND for an asset that does not exist. Returns the status sent. */
int rp_apidoc_serve(struct mg_connection *conn, const char *pattern, const json_t *params, const char *request_id);

#endif
