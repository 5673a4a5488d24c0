/* service.h - the edge every worker's RPC operations share (rp_op_fn, rpc.h): who may call, the
 * body, the {id} path parameter, the answers to a failed or empty read and to invalid input, and
 * the page of a list. So that every worker answers these cases with the same status, code and
 * shape. Pure functions over a borrowed envelope and the reply being built; thread-safe. */
#ifndef RP_LIB_SERVICE_H
#define RP_LIB_SERVICE_H

#include <jansson.h>
#include <stdbool.h>

#include "envelope.h"
#include "err.h"

/* True when the caller is authenticated and holds at least one of roles (rp_role_t bits).
 * Otherwise false with rep set to 403 FORBIDDEN saying message (borrowed), or "your roles do not
 * allow this operation" when message is NULL. */
bool rp_service_require_roles(const rp_envelope_t *env, unsigned roles, const char *message, rp_reply_t *rep);

/* True when the caller is authenticated; otherwise false with rep set to 401 UNAUTHORIZED. */
bool rp_service_require_caller(const rp_envelope_t *env, rp_reply_t *rep);

/* True when the body is a JSON object; otherwise false with rep set to 400 INVALID_JSON. */
bool rp_service_need_body(const rp_envelope_t *env, rp_reply_t *rep);

/* The path parameter `name` when it is an ObjectId (borrowed, valid while env lives). Otherwise
 * NULL with rep set to 404 code and message: a malformed id names nothing, like an unknown one. */
const char *rp_service_path_id(const rp_envelope_t *env, const char *name, const char *code, const char *message,
                               rp_reply_t *rep);

/* The answer to a read of one thing, once it has run: true when it succeeded (read) and found the
 * thing. Otherwise false with rep set to err's answer (the read failed; err borrowed) or to 404
 * code and message (nothing found). */
bool rp_service_found(rp_reply_t *rep, bool read, bool found, const rp_err_t *err, const char *code,
                      const char *message);

/* Takes details (a {field, reason} array). False, with nothing set, when it is empty; otherwise
 * true with rep set to 400 VALIDATION_FAILED carrying details. */
bool rp_service_reject_invalid(rp_reply_t *rep, json_t *details);

/* Sets rep to 400 VALIDATION_FAILED saying message, with one detail {field, reason}. */
void rp_service_reject_field(rp_reply_t *rep, const char *message, const char *field, const char *reason);

/* A page of a list paged by id: {items, nextCursor}, nextCursor the "id" of the last item when
 * there is more, else null. Takes items; returns a new object. */
json_t *rp_service_page(json_t *items, bool more);

#endif
