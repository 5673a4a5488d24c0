/* err.c - error records (see err.h); no shared state. */
#include "err.h"

#include <stdio.h>
#include <string.h>

void rp_err_clear(rp_err_t *err) {
    if (!err) return;
    err->status = 0;
    err->code[0] = '\0';
    err->message[0] = '\0';
}

void rp_err_vset(rp_err_t *err, int status, const char *code, const char *fmt, va_list ap) {
    if (!err) return;
    err->status = status;
    snprintf(err->code, sizeof err->code, "%s", code ? code : "INTERNAL");
    if (vsnprintf(err->message, sizeof err->message, fmt, ap) < 0) err->message[0] = '\0';
}

void rp_err_set(rp_err_t *err, int status, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    rp_err_vset(err, status, code, fmt, ap);
    va_end(ap);
}
