/* service.c - the workers' RPC edge (see service.h); no state. */
#include "service.h"

#include <string.h>

#include "ids.h"

bool rp_service_require_roles(const rp_envelope_t *env, unsigned roles, const char *message, rp_reply_t *rep) {
    if (env->caller.authenticated && (env->caller.roles & roles)) return true;
    rp_reply_error(rep, 403, "FORBIDDEN", message ? message : "your roles do not allow this operation", NULL);
    return false;
}

bool rp_service_require_caller(const rp_envelope_t *env, rp_reply_t *rep) {
    if (env->caller.authenticated) return true;
    rp_reply_error(rep, 401, "UNAUTHORIZED", "a bearer token is required", NULL);
    return false;
}

bool rp_service_need_body(const rp_envelope_t *env, rp_reply_t *rep) {
    if (json_is_object(env->body)) return true;
    rp_reply_error(rep, 400, "INVALID_JSON", "a JSON object body is required", NULL);
    return false;
}

const char *rp_service_path_id(const rp_envelope_t *env, const char *name, const char *code, const char *message,
                               rp_reply_t *rep) {
    const char *id = rp_envelope_param(env, name);
    if (id && rp_oid_valid(id, strlen(id))) return id;
    rp_reply_error(rep, 404, code, message, NULL);
    return NULL;
}

bool rp_service_found(rp_reply_t *rep, bool read, bool found, const rp_err_t *err, const char *code,
                      const char *message) {
    if (!read)
        rp_reply_from_err(rep, err);
    else if (!found)
        rp_reply_error(rep, 404, code, message, NULL);
    return read && found;
}

bool rp_service_reject_invalid(rp_reply_t *rep, json_t *details) {
    if (json_array_size(details) == 0) {
        json_decref(details);
        return false;
    }
    rp_reply_error(rep, 400, "VALIDATION_FAILED", "the request body is invalid", details);
    return true;
}

void rp_service_reject_field(rp_reply_t *rep, const char *message, const char *field, const char *reason) {
    rp_reply_error(rep, 400, "VALIDATION_FAILED", message, json_pack("[{s:s, s:s}]", "field", field, "reason", reason));
}

json_t *rp_service_page(json_t *items, bool more) {
    size_t n = json_array_size(items);
    json_t *next = more && n ? json_incref(json_object_get(json_array_get(items, n - 1), "id")) : json_null();
    return json_pack("{s:o, s:o}", "items", items, "nextCursor", next);
}
