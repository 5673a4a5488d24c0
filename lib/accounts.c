/* accounts.c - account lookups over the transport (see accounts.h); no state of its own. */
#include "accounts.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "envelope.h"
#include "ids.h"
#include "rpc.h"

/* Asks for ids[0..n) (n <= RP_ACCOUNTS_MAX) and fills out[0..n). */
static bool lookup_chunk(rp_transport_t *t, const char *const *ids, size_t n, int64_t deadline_ms,
                         const char *request_id, rp_account_state_t *out, rp_err_t *err) {
    rp_envelope_t env;
    rp_reply_t rep;
    rp_envelope_init(&env);
    snprintf(env.method, sizeof env.method, "POST");
    snprintf(env.route, sizeof env.route, "%s", RP_ACCOUNTS_ROUTE);
    if (request_id) snprintf(env.request_id, sizeof env.request_id, "%s", request_id);
    env.deadline_ms = deadline_ms;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(ids[i]));
    env.body = json_pack("{s:o}", "ids", arr);
    rp_rpc_call(t, RP_COMP_ACCOUNTS, &env, &rep);
    rp_envelope_clear(&env);
    json_t *states = json_object_get(rep.body, "states");
    if (rep.status != 200 || !json_is_array(states) || json_array_size(states) != n) {
        const char *msg = json_string_value(json_object_get(json_object_get(rep.body, "error"), "message"));
        rp_err_kind_t kind = rep.status == 504   ? RP_ERR_TIMEOUT
                             : rep.status == 503 ? RP_ERR_UNAVAILABLE
                                                 : RP_ERR_BAD_REPLY;
        rp_err_set(err, kind, kind == RP_ERR_TIMEOUT ? "WORKER_TIMEOUT" : "AUTH_UNAVAILABLE",
                   "cannot look accounts up: %s", msg ? msg : "no answer from the auth worker");
        rp_reply_clear(&rep);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(states, i));
        out[i] = s && strcmp(s, "ACTIVE") == 0     ? RP_ACCOUNT_ACTIVE
                 : s && strcmp(s, "DISABLED") == 0 ? RP_ACCOUNT_DISABLED
                                                   : RP_ACCOUNT_UNKNOWN;
    }
    rp_reply_clear(&rep);
    return true;
}

bool rp_accounts_lookup(rp_transport_t *t, const char *const *ids, size_t n, int64_t deadline_ms,
                        const char *request_id, rp_account_state_t *out, rp_err_t *err) {
    for (size_t at = 0; at < n; at += RP_ACCOUNTS_MAX) {
        size_t m = n - at < RP_ACCOUNTS_MAX ? n - at : RP_ACCOUNTS_MAX;
        if (!lookup_chunk(t, ids + at, m, deadline_ms, request_id, out + at, err)) return false;
    }
    return true;
}
