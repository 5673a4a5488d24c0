/* http_options.h - the civetweb options the gateway serves with, in one place, so that the
 * benchmark anchors (bench/anchors/) measure the very server configuration the platform runs:
 * keep-alive, Nagle off, the request timeouts and the header size limit; and the TLS settings the
 * gateway adds when it serves HTTPS. */
#ifndef RP_API_HTTP_OPTIONS_H
#define RP_API_HTTP_OPTIONS_H

/* The defaults of HTTP_REQUEST_TIMEOUT_MS and HTTP_KEEPALIVE_TIMEOUT_MS (lib/config.c). civetweb
 * serves one connection per thread, waits included, so these bound how long a client that
 * trickles its headers, or idles between requests, holds a thread: civetweb measures the header
 * timeout from the request's first byte, not per read, so trickling does not extend it. */
#define RP_HTTP_REQUEST_TIMEOUT_MS_DEFAULT 5000
#define RP_HTTP_KEEPALIVE_TIMEOUT_MS_DEFAULT 2000

/* An initialiser for civetweb's NULL-terminated option array; every argument is a string. */
#define RP_HTTP_OPTIONS_TIMED(ports, threads, request_timeout_ms, keepalive_timeout_ms)                                \
    {                                                                                                                  \
        "listening_ports", (ports), "num_threads", (threads), "tcp_nodelay", "1", "enable_keep_alive", "yes",          \
            "keep_alive_timeout_ms", (keepalive_timeout_ms), "request_timeout_ms", (request_timeout_ms),               \
            "max_request_size", "16384", NULL                                                                          \
    }

#define RP_HTTP_STR_(x) #x
#define RP_HTTP_STR(x) RP_HTTP_STR_(x)

/* The options with the default timeouts (the benchmark anchors). */
#define RP_HTTP_OPTIONS(ports, threads)                                                                                \
    RP_HTTP_OPTIONS_TIMED(ports, threads, RP_HTTP_STR(RP_HTTP_REQUEST_TIMEOUT_MS_DEFAULT),                             \
                          RP_HTTP_STR(RP_HTTP_KEEPALIVE_TIMEOUT_MS_DEFAULT))

/* HTTPS: TLS 1.2 and 1.3 only (civetweb's protocol level 4 refuses SSLv3, TLS 1.0 and 1.1), and
 * for TLS 1.2 only forward-secret AEAD suites (Mozilla's "intermediate" list; TLS 1.3 suites are
 * all AEAD and stay OpenSSL's defaults). */
#define RP_TLS_PROTOCOL_LEVEL "4"
#define RP_TLS_CIPHERS                                                                                                 \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                         \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* Strict-Transport-Security max-age on every HTTPS response: one year, the value browsers' preload
 * lists ask for. Not sent over plain HTTP, where browsers ignore it anyway (RFC 6797 8.1). */
#define RP_HSTS_MAX_AGE_S 31536000

#endif
