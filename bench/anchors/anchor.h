/* anchor.h - the civetweb server both C anchors share (bench/anchors/bare.c, hs256.c): the options
 * the platform's gateway starts civetweb with (api/http_options.h, included from there, not
 * copied, so the two cannot drift apart), one handler on
 * "/", a port from argv[1] or PORT, HTTP_THREADS worker threads, and a clean stop on SIGINT or
 * SIGTERM. Included by exactly one .c file per binary. */
#ifndef ANCHOR_H
#define ANCHOR_H

#include <civetweb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../api/http_options.h"

/* the body every anchor answers: a small JSON list, about the size of a short API answer */
static const char anchor_body[] = "{\"status\":\"ok\",\"items\":[],\"nextCursor\":null,"
                                  "\"message\":\"a fixed answer of the benchmark anchor\"}";

/* one write, headers and body together, as the platform's rp_http_send_json does */
static int anchor_send(struct mg_connection *conn, int status, const char *reason, const char *body) {
    char buf[1024];
    size_t blen = strlen(body);
    int n =
        snprintf(buf, sizeof buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 status, reason, blen, body);
    if (n < 0 || (size_t)n >= sizeof buf) return 500;
    mg_write(conn, buf, (size_t)n);
    return status;
}

static int anchor_serve(int argc, char **argv, mg_request_handler handler) {
    const char *port = argc > 1 ? argv[1] : getenv("PORT");
    const char *threads = getenv("HTTP_THREADS");
    const char *bind = getenv("BIND_ADDRESS");
    if (!port || !*port) {
        fprintf(stderr, "usage: %s PORT (or PORT in the environment)\n", argv[0]);
        return 2;
    }
    char ports[128];
    snprintf(ports, sizeof ports, "%s:%s", bind && *bind ? bind : "127.0.0.1", port);
    const char *options[] = RP_HTTP_OPTIONS(ports, threads && *threads ? threads : "64");
    /* block the stop signals before civetweb starts its threads, so only sigwait below sees them */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    mg_init_library(0);
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    char etext[256] = "";
    unsigned ecode = 0;
    struct mg_error_data edata = {.code = &ecode, .text = etext, .text_buffer_size = sizeof etext};
    struct mg_init_data init = {.callbacks = &cb, .user_data = NULL, .configuration_options = options};
    struct mg_context *ctx = mg_start2(&init, &edata);
    if (!ctx) {
        fprintf(stderr, "%s: cannot listen on %s: %s\n", argv[0], ports, etext[0] ? etext : "unknown error");
        mg_exit_library();
        return 1;
    }
    mg_set_request_handler(ctx, "/", handler, NULL);
    int sig = 0;
    sigwait(&stop, &sig);
    mg_stop(ctx);
    mg_exit_library();
    return 0;
}

#endif
