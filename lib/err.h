/* err.h - the error record every fallible function can fill; plain data, thread-safe to use per thread. */
#ifndef RP_LIB_ERR_H
#define RP_LIB_ERR_H

#include <stdarg.h>
#include <stdbool.h>

/*
 * What failed, in the terms of the domain, never of a protocol: a store reports
 * RP_ERR_STORE_UNAVAILABLE or RP_ERR_CONFLICT, and only the service edge turns a kind into an
 * HTTP status (rp_err_http_status). Refusals by a business rule are outcomes, not errors.
 */
typedef enum rp_err_kind {
    RP_ERR_NONE = 0,
    RP_ERR_INVALID,           /* the input is malformed */
    RP_ERR_UNAUTHENTICATED,   /* no credentials, or bad or expired ones */
    RP_ERR_FORBIDDEN,         /* the caller may not do this */
    RP_ERR_NOT_FOUND,         /* no such thing */
    RP_ERR_CONFLICT,          /* a unique key is taken, or the thing is not in the expected state */
    RP_ERR_BAD_REPLY,         /* a peer (a worker) answered something unusable */
    RP_ERR_UNAVAILABLE,       /* a dependency other than the store (broker, worker queue) is down or full */
    RP_ERR_STORE_UNAVAILABLE, /* the store cannot be reached */
    RP_ERR_STORE_BUSY,        /* the store is there but contended (locks, write conflicts, time limits) */
    RP_ERR_TIMEOUT,           /* a worker did not answer in time */
    RP_ERR_STORE,             /* the store failed in a way nobody expected */
    RP_ERR_CONFIG,            /* the configuration or a start-up resource is unusable */
    RP_ERR_INTERNAL,          /* a bug or an exhausted resource in this process */
} rp_err_kind_t;

/*
 * An error carries its kind, a machine-readable UPPER_SNAKE code (what the API shows) and a
 * bounded human message. Functions take an optional trailing `rp_err_t *err`; NULL means
 * "don't care".
 */
typedef struct rp_err {
    rp_err_kind_t kind;
    char code[48];     /* UPPER_SNAKE machine code, e.g. "VALIDATION_FAILED" */
    char message[256]; /* human text, always NUL-terminated, truncated if long */
} rp_err_t;

/* Clears err (RP_ERR_NONE, empty code and message). Accepts NULL. */
void rp_err_clear(rp_err_t *err);

/* Sets err to (kind, code, printf-style message); tolerates err == NULL; never overflows. */
void rp_err_set(rp_err_t *err, rp_err_kind_t kind, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* As rp_err_set with a va_list. */
void rp_err_vset(rp_err_t *err, rp_err_kind_t kind, const char *code, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* The HTTP status an error of this kind is answered with (400 ... 504; 500 for NONE). The one
 * place a kind meets HTTP. */
int rp_err_http_status(rp_err_kind_t kind);

/* True for the kinds a client may retry later (the dependency is down, busy or slow). */
bool rp_err_transient(rp_err_kind_t kind);

#endif
