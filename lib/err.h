/* err.h - the error record every fallible function can fill; plain data, thread-safe to use per thread. */
#ifndef RP_LIB_ERR_H
#define RP_LIB_ERR_H

#include <stdarg.h>

/*
 * An error carries the HTTP status it maps to, a machine-readable UPPER_SNAKE code and a bounded
 * human message. Functions take an optional trailing `rp_err_t *err`; NULL means "don't care".
 */
typedef struct rp_err {
    int status;        /* HTTP status this error maps to (e.g. 400, 409, 500) */
    char code[48];     /* UPPER_SNAKE machine code, e.g. "VALIDATION_FAILED" */
    char message[256]; /* human text, always NUL-terminated, truncated if long */
} rp_err_t;

/* Clears err (status 0, empty code and message). Accepts NULL. */
void rp_err_clear(rp_err_t *err);

/* Sets err to (status, code, printf-style message); tolerates err == NULL; never overflows. */
void rp_err_set(rp_err_t *err, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* As rp_err_set with a va_list. */
void rp_err_vset(rp_err_t *err, int status, const char *code, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

#endif
