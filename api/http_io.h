/* http_io.h - bounded request reading and single-write JSON responses on a civetweb connection;
 * each function works on one connection, which belongs to one thread. */
#ifndef RP_API_HTTP_IO_H
#define RP_API_HTTP_IO_H

#include <civetweb.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define RP_HTTP_BODY_TOO_LARGE (-2)
#define RP_HTTP_BODY_SHORT (-1)

/* Reads the whole request body into a new buffer of at most cap bytes (*out, free()). Returns
 * the length, RP_HTTP_BODY_TOO_LARGE when it exceeds cap (chunked bodies included), or
 * RP_HTTP_BODY_SHORT when the connection failed or delivered fewer bytes than Content-Length. */
long rp_http_read_body(struct mg_connection *conn, size_t cap, char **out);

/* Extra response headers; NULL members are left out. */
typedef struct rp_http_extra {
    const char *request_id;
    int retry_after_s;
    const char *allow;
    const char *www_authenticate;
    bool close;
} rp_http_extra_t;

/* Writes status, the JSON body (may be NULL: empty body), Content-Length, the security headers
 * and the extras in a single write. Returns false when the client has gone. */
bool rp_http_send_json(struct mg_connection *conn, int status, const json_t *body, const rp_http_extra_t *extra);
/* As rp_http_send_json with the body already printed: len bytes of JSON text (text may be NULL
 * when len is 0). */
bool rp_http_send_json_text(struct mg_connection *conn, int status, const char *text, size_t len,
                            const rp_http_extra_t *extra);

/* The Strict-Transport-Security header line (with its CRLF) that every response on conn carries
 * when conn came over TLS, else "". Static storage. Every response the gateway writes itself
 * includes it; civetweb's own error answers get it from strict_transport_security_max_age. */
const char *rp_http_hsts(const struct mg_connection *conn);

/* True when value is a JSON media type: "application/json", optionally with parameters. */
bool rp_http_is_json_type(const char *value);

/* Copies an incoming request id when it is 1..64 chars of [A-Za-z0-9._-]; otherwise writes a
 * fresh random one. out must hold 72 bytes. */
void rp_http_request_id(const char *incoming, char out[72]);

/* Parses an URL query string into a new JSON object of name -> value strings (decoded). Fails on
 * more than 32 parameters, a name or value over 512 bytes, invalid UTF-8 or a repeated name. */
bool rp_http_parse_query(const char *qs, json_t **out);

#endif
