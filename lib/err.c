/* err.c - error records (see err.h); no shared state. */
#include "err.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void rp_err_clear(rp_err_t *err) {
    if (!err) return;
    err->kind = RP_ERR_NONE;
    err->code[0] = '\0';
    err->message[0] = '\0';
}

void rp_err_vset(rp_err_t *err, rp_err_kind_t kind, const char *code, const char *fmt, va_list ap) {
    if (!err) return;
    err->kind = kind;
    snprintf(err->code, sizeof err->code, "%s", code ? code : "INTERNAL");
    if (vsnprintf(err->message, sizeof err->message, fmt, ap) < 0) err->message[0] = '\0';
}

void rp_err_set(rp_err_t *err, rp_err_kind_t kind, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    rp_err_vset(err, kind, code, fmt, ap);
    va_end(ap);
}

int rp_err_http_status(rp_err_kind_t kind) {
    switch (kind) {
    case RP_ERR_INVALID: return 400;
    case RP_ERR_UNAUTHENTICATED: return 401;
    case RP_ERR_FORBIDDEN: return 403;
    case RP_ERR_NOT_FOUND: return 404;
    case RP_ERR_CONFLICT: return 409;
    case RP_ERR_BAD_REPLY: return 502;
    case RP_ERR_UNAVAILABLE:
    case RP_ERR_STORE_UNAVAILABLE:
    case RP_ERR_STORE_BUSY: return 503;
    case RP_ERR_TIMEOUT: return 504;
    case RP_ERR_NONE:
    case RP_ERR_STORE:
    case RP_ERR_CONFIG:
    case RP_ERR_INTERNAL: break;
    }
    return 500;
}

bool rp_err_transient(rp_err_kind_t kind) {
    return kind == RP_ERR_UNAVAILABLE || kind == RP_ERR_STORE_UNAVAILABLE || kind == RP_ERR_STORE_BUSY ||
           kind == RP_ERR_TIMEOUT;
}
