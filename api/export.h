/* export.h - GET /events/reward-requests/export: the reward-request history, filtered like the
 * list, streamed as CSV or NDJSON with chunked transfer encoding, page by page as the reward
 * worker reads them (lib/export_page.h), so the api holds one page at a time whatever the number
 * of rows. The encoders are pure; rp_export_serve works on one connection, on its civetweb
 * thread, and is thread-safe otherwise. */
#ifndef RP_API_EXPORT_H
#define RP_API_EXPORT_H

#include <civetweb.h>
#include <jansson.h>
#include <stddef.h>

#include "config.h"
#include "envelope.h"
#include "transport.h"

/* A growable byte buffer the encoders append to. Zero-initialise it; release with
 * rp_export_buf_free. data is not NUL-terminated. */
typedef struct rp_export_buf {
    char *data;
    size_t len, cap;
} rp_export_buf_t;

/* Releases b's bytes and empties it. Accepts NULL. */
void rp_export_buf_free(rp_export_buf_t *b);

/* Appends one CSV cell, the n bytes of s (UTF-8 and any other byte pass through unchanged; no
 * separator is written). RFC 4180: a cell holding a comma, a double quote, CR or LF is enclosed in
 * double quotes and its double quotes are doubled. Formula injection (OWASP "CSV injection"): a
 * cell starting with '=', '+', '-', '@', TAB or CR gets a leading apostrophe and is quoted, so a
 * spreadsheet shows it as text instead of evaluating it. */
void rp_export_csv_cell(rp_export_buf_t *b, const char *s, size_t n);

/* Appends the header row, CRLF-terminated: the column names, which are the names of the list
 * item's fields. */
void rp_export_csv_header(rp_export_buf_t *b);

/* Appends one request (a list item, borrowed) as a CSV row, CRLF-terminated, one cell per header
 * column: a string as it is, null or a missing field as an empty cell, anything else (the
 * claimedRewards array, failureDetails) as compact JSON. */
void rp_export_csv_row(rp_export_buf_t *b, const json_t *item);

/* Appends one request (borrowed) as one line of compact JSON, LF-terminated: the list's shape. */
void rp_export_ndjson_line(rp_export_buf_t *b, const json_t *item);

/* An export request the gateway has authenticated and authorised; every member is borrowed for
 * the call. */
typedef struct rp_export_call {
    struct mg_connection *conn;
    rp_transport_t *transport;
    const rp_config_t *cfg; /* rpc_timeout_ms (per page), export_page_size */
    const rp_identity_t *caller;
    const json_t *query; /* the parsed query string: name -> string */
    const char *request_id;
} rp_export_call_t;

/* Serves the export on call->conn. Before anything is sent: ?format= must be csv (the default)
 * or ndjson and every other parameter one of the list's filters (else 400 VALIDATION_FAILED),
 * and the first page is read, so a bad filter (the worker's 400), a worker down (503) or late
 * (504) is an ordinary JSON error. Then 200 with Transfer-Encoding: chunked, one chunk per page,
 * and the terminating zero-length chunk. A failure after the status line (a page that cannot be
 * read) is logged and the connection is closed without the terminating chunk, so the client sees
 * a truncated transfer, never a short file that looks whole. Returns the status sent. */
int rp_export_serve(const rp_export_call_t *call);

#endif
