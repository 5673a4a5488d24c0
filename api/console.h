/* console.h - the web console: its assets, compiled into the api binaries at build time by
 * console/embed.sh, and the handler that serves them under /console/. The asset table is constant
 * data; the handler keeps no state, so any civetweb thread may call it. */
#ifndef RP_API_CONSOLE_H
#define RP_API_CONSOLE_H

#include <civetweb.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct rp_console_asset {
    const char *path;         /* below /console/, e.g. "app.js" */
    const char *content_type; /* the Content-Type header's value */
    const char *data;         /* the file's bytes, NUL-terminated */
    size_t len;
    const char *etag; /* strong ETag with its quotes, from the file's SHA-256 */
} rp_console_asset_t;

/* Terminated by an entry whose path is NULL. */
extern const rp_console_asset_t rp_console_assets[];

/* The Content-Security-Policy every console response carries: scripts, styles and connections
 * only from this origin, no inline code, no framing. Static storage. */
extern const char rp_console_csp[];

/* The asset named path (below /console/, "" meaning index.html), or NULL when there is none.
 * path is untrusted bytes: only exact names of the table match, so "..", encoded or not, never
 * reaches anything but a 404. Borrowed, static storage. */
const rp_console_asset_t *rp_console_find(const char *path, size_t len);

/* Answers a request whose path is /console or below it: GET and HEAD of an asset (200, or 304
 * when If-None-Match names its ETag), /console redirected to /console/, 404 NOT_FOUND for any
 * other name and 405 for any other method. Returns false, having written nothing, when path is
 * not /console or below it; otherwise true with the status written in *status. request_id is
 * borrowed. */
bool rp_console_serve(struct mg_connection *conn, const char *method, const char *path, const char *request_id,
                      int *status);

#endif
