/* accounts.c - account lookups over the transport (see accounts.h); no state of its own. */
#include "accounts.h"

#include <jansson.h>
#include <string.h>

#include "rpc.h"

/* Asks for ids[0..n) (n <= RP_ACCOUNTS_MAX) and fills out[0..n). */
static bool lookup_chunk(rp_transport_t *t, const char *const *ids, size_t n, int64_t deadline_ms,
                         const char *request_id, rp_account_state_t *out, rp_err_t *err) {
    rp_reply_t rep;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(ids[i]));
    rp_rpc_call_internal(t, RP_COMP_ACCOUNTS, "POST", RP_ACCOUNTS_ROUTE, json_pack("{s:o}", "ids", arr), deadline_ms,
                         request_id, &rep);
    json_t *states = json_object_get(rep.body, "states");
    if (rep.status != 200 || !json_is_array(states) || json_array_size(states) != n) {
        rp_rpc_internal_err(&rep, "cannot look accounts up", err);
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
