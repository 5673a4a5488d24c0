/* export.c - the streamed reward-request export (see export.h). Pure encoders, and one serve
 * function that owns nothing beyond its call. */
#include "export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "export_page.h"
#include "http_io.h"
#include "log.h"
#include "mem.h"
#include "rpc.h"
#include "timeutil.h"

/* The CSV columns: every field of a list item, scalars first, JSON-valued fields last. */
static const char *const columns[] = {
    "id",          "userId",        "eventId", "status",  "source",    "periodKey", "requestedAt",    "processedAt",
    "processorId", "failureReason", "notes",   "batchId", "createdAt", "updatedAt", "failureDetails", "claimedRewards"};
#define NCOLUMNS (sizeof columns / sizeof columns[0])

/* The query parameters the export accepts: the list's filters and the format. A misspelt filter
 * would otherwise export everything without a word. */
static const char *const known_params[] = {"format", "userId", "eventId", "status", "from", "to"};

/* Bytes kept free in front of a page's buffer for the chunk-size line ("%zx\r\n"), so the size
 * line, the rows and the closing CRLF leave in one write. */
#define CHUNK_ROOM 18

void rp_export_buf_free(rp_export_buf_t *b) {
    if (!b) return;
    free(b->data);
    memset(b, 0, sizeof *b);
}

static void buf_reserve(rp_export_buf_t *b, size_t more) {
    if (b->cap - b->len >= more) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more)
        cap *= 2;
    b->data = rp_realloc(b->data, cap);
    b->cap = cap;
}

static void buf_add(rp_export_buf_t *b, const char *s, size_t n) {
    buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
}

static bool formula_start(char c) {
    return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r';
}

void rp_export_csv_cell(rp_export_buf_t *b, const char *s, size_t n) {
    bool prefix = n > 0 && formula_start(s[0]);
    bool quote = prefix;
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    buf_reserve(b, 2 * n + 3); /* every byte a doubled quote, plus the quotes and the apostrophe */
    char *out = b->data + b->len;
    if (quote) *out++ = '"';
    if (prefix) *out++ = '\'';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') *out++ = '"';
        *out++ = s[i];
    }
    if (quote) *out++ = '"';
    b->len = (size_t)(out - b->data);
}

void rp_export_csv_header(rp_export_buf_t *b) {
    for (size_t i = 0; i < NCOLUMNS; i++) {
        if (i) buf_add(b, ",", 1);
        rp_export_csv_cell(b, columns[i], strlen(columns[i]));
    }
    buf_add(b, "\r\n", 2);
}

void rp_export_csv_row(rp_export_buf_t *b, const json_t *item) {
    for (size_t i = 0; i < NCOLUMNS; i++) {
        const json_t *v = json_object_get(item, columns[i]);
        if (i) buf_add(b, ",", 1);
        if (json_is_string(v)) {
            rp_export_csv_cell(b, json_string_value(v), json_string_length(v));
        } else if (v && !json_is_null(v)) {
            char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            if (text) rp_export_csv_cell(b, text, strlen(text));
            free(text);
        }
    }
    buf_add(b, "\r\n", 2);
}

void rp_export_ndjson_line(rp_export_buf_t *b, const json_t *item) {
    char *text = json_dumps(item, JSON_COMPACT);
    if (text) buf_add(b, text, strlen(text));
    free(text);
    buf_add(b, "\n", 1);
}

/* ---- serving ---- */

typedef enum { FORMAT_CSV, FORMAT_NDJSON } format_t;

/* Sends a JSON error (or the worker's error reply, body borrowed) before anything else was sent. */
static int send_json(const rp_export_call_t *call, int status, json_t *body, int retry_after) {
    if (json_is_object(json_object_get(body, "error")))
        json_object_set_new(body, "requestId", json_string(call->request_id));
    rp_http_extra_t extra = {.request_id = call->request_id, .retry_after_s = retry_after};
    rp_http_send_json(call->conn, status, body, &extra);
    return status;
}

static int send_invalid(const rp_export_call_t *call, const char *param, const char *message) {
    rp_reply_t rep;
    rp_reply_init(&rep);
    rp_reply_error(&rep, 400, "VALIDATION_FAILED", message,
                   json_pack("[{s:s, s:s}]", "field", param, "reason", message));
    int status = send_json(call, 400, rep.body, 0);
    rp_reply_clear(&rep);
    return status;
}

/* Checks the query; false when a 400 was sent. */
static bool parse_query(const rp_export_call_t *call, format_t *format, int *status) {
    const char *key;
    json_t *value;
    *format = FORMAT_CSV;
    json_object_foreach((json_t *)call->query, key, value) {
        bool known = false;
        for (size_t i = 0; i < sizeof known_params / sizeof known_params[0] && !known; i++)
            known = strcmp(key, known_params[i]) == 0;
        if (!known) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "unknown query parameter %.60s: the export takes format, userId, eventId, "
                     "status, from and to",
                     key);
            *status = send_invalid(call, key, msg);
            return false;
        }
    }
    const char *f = json_string_value(json_object_get(call->query, "format"));
    if (f && strcmp(f, "ndjson") == 0) {
        *format = FORMAT_NDJSON;
    } else if (f && strcmp(f, "csv") != 0) {
        *status = send_invalid(call, "format", "format must be csv or ndjson");
        return false;
    }
    return true;
}

/* Asks the reward worker for the page after cursor (NULL: the first); rep is initialised. */
static void fetch_page(const rp_export_call_t *call, const char *cursor, rp_reply_t *rep) {
    rp_envelope_t env;
    rp_envelope_init(&env);
    snprintf(env.method, sizeof env.method, "GET");
    snprintf(env.route, sizeof env.route, "%s", RP_EXPORT_PAGE_ROUTE);
    snprintf(env.request_id, sizeof env.request_id, "%s", call->request_id);
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)call->query, key, value) {
        if (strcmp(key, "format") != 0) json_object_set(env.query, key, value);
    }
    char limit[16];
    snprintf(limit, sizeof limit, "%d", call->cfg->export_page_size);
    json_object_set_new(env.query, "limit", json_string(limit));
    if (cursor) json_object_set_new(env.query, "cursor", json_string(cursor));
    env.caller = *call->caller;
    env.deadline_ms = rp_now_ms() + call->cfg->rpc_timeout_ms;
    rp_rpc_call(call->transport, RP_COMP_REWARD, &env, rep);
    rp_envelope_clear(&env);
}

/* The rows of a page reply, or NULL when the reply is not a page. */
static const json_t *page_items(const rp_reply_t *rep) {
    const json_t *items = json_object_get(rep->body, "items");
    return rep->status == 200 && json_is_array(items) ? items : NULL;
}

/* Appends a page's rows to b. */
static void encode_rows(rp_export_buf_t *b, format_t format, const json_t *items) {
    size_t i;
    const json_t *item;
    json_array_foreach(items, i, item) {
        if (format == FORMAT_CSV)
            rp_export_csv_row(b, item);
        else
            rp_export_ndjson_line(b, item);
    }
}

/* Writes b (payload after CHUNK_ROOM) as one chunk, in one write; an empty payload writes nothing,
 * since a zero-length chunk would end the body. False when the client has gone. */
static bool write_chunk(struct mg_connection *conn, rp_export_buf_t *b) {
    size_t payload = b->len - CHUNK_ROOM;
    if (payload == 0) return true;
    char head[CHUNK_ROOM + 1];
    int hlen = snprintf(head, sizeof head, "%zx\r\n", payload);
    memcpy(b->data + CHUNK_ROOM - hlen, head, (size_t)hlen);
    buf_add(b, "\r\n", 2);
    size_t total = (size_t)hlen + payload + 2;
    return mg_write(conn, b->data + CHUNK_ROOM - hlen, total) == (int)total;
}

static bool send_head(const rp_export_call_t *call, format_t format) {
    char stamp[32], head[1024];
    time_t now = (time_t)(rp_now_ms() / 1000);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Disposition: attachment; filename=\"reward-requests-%s.%s\"\r\n"
                     "Transfer-Encoding: chunked\r\n"
                     "X-Request-Id: %s\r\n"
                     "X-Content-Type-Options: nosniff\r\n"
                     "X-Frame-Options: DENY\r\n"
                     "Referrer-Policy: no-referrer\r\n"
                     "Cache-Control: no-store\r\n%s\r\n",
                     format == FORMAT_CSV ? "text/csv; charset=utf-8" : "application/x-ndjson", stamp,
                     format == FORMAT_CSV ? "csv" : "ndjson", call->request_id, rp_http_hsts(call->conn));
    return n > 0 && (size_t)n < sizeof head && mg_write(call->conn, head, (size_t)n) == n;
}

int rp_export_serve(const rp_export_call_t *call) {
    format_t format;
    int status = 200;
    rp_reply_t rep;
    rp_export_buf_t b = {0};
    char cursor[64] = "";
    size_t rows = 0;
    const char *failure = NULL;
    rp_reply_init(&rep);
    if (!parse_query(call, &format, &status)) goto done;
    fetch_page(call, NULL, &rep);
    if (!page_items(&rep)) {
        if (rep.status == 200) rp_reply_error(&rep, 502, "BAD_REPLY", "the reward worker sent no page", NULL);
        status = send_json(call, rep.status, rep.body, rep.retry_after_s);
        goto done;
    }
    if (!send_head(call, format)) {
        failure = "the client has gone";
        goto done;
    }
    buf_reserve(&b, CHUNK_ROOM);
    b.len = CHUNK_ROOM;
    if (format == FORMAT_CSV) rp_export_csv_header(&b);
    for (;;) {
        const json_t *items = page_items(&rep);
        const char *next = json_string_value(json_object_get(rep.body, "nextCursor"));
        encode_rows(&b, format, items);
        rows += json_array_size(items);
        if (!write_chunk(call->conn, &b)) {
            failure = "the client has gone";
            goto done;
        }
        b.len = CHUNK_ROOM;
        if (!next || json_array_size(items) == 0) break;
        snprintf(cursor, sizeof cursor, "%s", next);
        rp_reply_clear(&rep);
        fetch_page(call, cursor, &rep);
        if (!page_items(&rep)) {
            const char *msg = json_string_value(json_object_get(json_object_get(rep.body, "error"), "message"));
            rp_log(RP_LOG_ERROR, "export", "request %s: export cut short after %zu rows, page after %s: %d %s",
                   call->request_id, rows, cursor, rep.status, msg ? msg : "no page");
            failure = "a page could not be read";
            goto done;
        }
    }
    if (mg_write(call->conn, "0\r\n\r\n", 5) != 5) failure = "the client has gone";
done:
    if (failure) {
        /* no terminating chunk: closing the connection tells the client the body is incomplete */
        mg_disable_connection_keep_alive(call->conn);
        rp_log(RP_LOG_WARN, "export", "request %s: export ended without its last chunk after %zu rows: %s",
               call->request_id, rows, failure);
    }
    rp_export_buf_free(&b);
    rp_reply_clear(&rep);
    return status;
}
