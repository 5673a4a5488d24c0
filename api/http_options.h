/* http_options.h - the civetweb options the gateway serves with, in one place, so that the
 * benchmark anchors (bench/anchors/) measure the very server configuration the platform runs:
 * keep-alive, Nagle off, the request timeouts and the header size limit. */
#ifndef RP_API_HTTP_OPTIONS_H
#define RP_API_HTTP_OPTIONS_H

/* An initialiser for civetweb's NULL-terminated option array; ports and threads are strings. */
#define RP_HTTP_OPTIONS(ports, threads)                                                                                \
    {                                                                                                                  \
        "listening_ports", (ports), "num_threads", (threads), "tcp_nodelay", "1", "enable_keep_alive", "yes",          \
            "keep_alive_timeout_ms", "2000", "request_timeout_ms", "10000", "max_request_size", "16384", NULL          \
    }

#endif
