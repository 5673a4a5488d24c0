/* session.c - the session state over the transport (see session.h). */
#include "session.h"

#include <stdio.h>
#include <string.h>

#include "roles.h"
#include "rpc.h"

json_t *rp_session_to_json(const rp_session_state_t *s) {
    json_t *jtis = json_array();
    for (size_t i = 0; i < s->n_revoked; i++)
        json_array_append_new(jtis, json_string(s->revoked[i]));
    return json_pack("{s:o, s:I, s:b, s:o}", "roles", rp_roles_to_json(s->roles), "tokenVersion",
                     (json_int_t)s->token_version, "disabled", s->disabled, "revokedJtis", jtis);
}

/* Reads a 200 reply into out; false when it is malformed. */
static bool from_json(json_t *body, rp_session_state_t *out) {
    json_t *roles = NULL, *jtis = NULL;
    json_int_t version = 0;
    int disabled = 0;
    memset(out, 0, sizeof *out);
    if (json_unpack(body, "{s:o, s:I, s:b, s:o}", "roles", &roles, "tokenVersion", &version, "disabled", &disabled,
                    "revokedJtis", &jtis) != 0 ||
        !rp_roles_from_json(roles, &out->roles, NULL) || !json_is_array(jtis) ||
        json_array_size(jtis) > RP_SESSION_MAX_REVOKED)
        return false;
    out->token_version = version;
    out->disabled = disabled != 0;
    for (size_t i = 0; i < json_array_size(jtis); i++) {
        const char *j = json_string_value(json_array_get(jtis, i));
        if (!j || strlen(j) >= RP_JTI_LEN) return false;
        snprintf(out->revoked[i], RP_JTI_LEN, "%s", j);
    }
    out->n_revoked = json_array_size(jtis);
    return true;
}

/* True when rep is the answer of a worker that has no such route. */
static bool route_unknown(const rp_reply_t *rep) {
    const char *code = json_string_value(json_object_get(json_object_get(rep->body, "error"), "code"));
    return rep->status == 404 && code && strcmp(code, "ROUTE_NOT_FOUND") == 0;
}

bool rp_session_fetch(rp_transport_t *t, const char *user_id, int64_t deadline_ms, const char *request_id,
                      rp_session_state_t *out, bool *found, rp_err_t *err) {
    rp_reply_t rep;
    rp_rpc_call_internal(t, RP_COMP_AUTH, "POST", RP_SESSION_ROUTE, json_pack("{s:s}", "userId", user_id), deadline_ms,
                         request_id, &rep);
    *found = false;
    bool ok = rep.status == 404 || (rep.status == 200 && from_json(rep.body, out));
    if (ok) {
        *found = rep.status == 200;
    } else {
        rp_rpc_internal_err(&rep, "cannot check the session", err);
    }
    rp_reply_clear(&rep);
    return ok;
}

bool rp_session_fetch_many(rp_transport_t *t, const char *const *ids, size_t n, int64_t deadline_ms,
                           const char *request_id, rp_session_state_t *out, bool *found, bool *unsupported,
                           rp_err_t *err) {
    rp_reply_t rep;
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_string(ids[i]));
    rp_rpc_call_internal(t, RP_COMP_AUTH, "POST", RP_SESSIONS_ROUTE, json_pack("{s:o}", "userIds", list), deadline_ms,
                         request_id, &rep);
    json_t *sessions = rep.status == 200 ? json_object_get(rep.body, "sessions") : NULL;
    bool ok = json_is_array(sessions) && json_array_size(sessions) == n;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *s = json_array_get(sessions, i);
        found[i] = !json_is_null(s);
        if (found[i])
            ok = from_json(s, &out[i]);
        else
            memset(&out[i], 0, sizeof out[i]);
    }
    *unsupported = route_unknown(&rep);
    if (!ok) rp_rpc_internal_err(&rep, "cannot check the sessions", err);
    rp_reply_clear(&rep);
    return ok;
}

bool rp_session_read_changes(rp_transport_t *t, int64_t after, int64_t deadline_ms, rp_session_changes_t *out,
                             bool *unsupported, rp_err_t *err) {
    rp_reply_t rep;
    json_t *ids = NULL;
    json_int_t last = 0;
    int more = 0, complete = 0;
    rp_rpc_call_internal(t, RP_COMP_AUTH, "POST", RP_SESSION_CHANGES_ROUTE,
                         json_pack("{s:I}", "after", (json_int_t)after), deadline_ms, NULL, &rep);
    out->n = 0;
    bool ok = rep.status == 200 &&
              json_unpack(rep.body, "{s:I, s:o, s:b, s:b}", "last", &last, "userIds", &ids, "more", &more, "complete",
                          &complete) == 0 &&
              json_is_array(ids) && json_array_size(ids) <= RP_SESSION_CHANGES_MAX && last >= 0;
    for (size_t i = 0; ok && i < json_array_size(ids); i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        ok = id && rp_oid_valid(id, strlen(id));
        if (ok) memcpy(out->user_ids[i], id, RP_OID_LEN);
    }
    if (ok) {
        out->n = json_array_size(ids);
        out->last = last;
        out->more = more != 0;
        out->complete = complete != 0;
    }
    *unsupported = route_unknown(&rep);
    if (!ok) rp_rpc_internal_err(&rep, "cannot read the session changes", err);
    rp_reply_clear(&rep);
    return ok;
}

bool rp_session_admits(const rp_session_state_t *s, const rp_token_claims_t *claims, rp_err_t *err) {
    if (s->disabled) {
        rp_err_set(err, RP_ERR_UNAUTHENTICATED, "ACCOUNT_DISABLED", "the account is disabled");
        return false;
    }
    bool revoked = claims->ver != s->token_version;
    for (size_t i = 0; !revoked && i < s->n_revoked; i++)
        revoked = strcmp(s->revoked[i], claims->jti) == 0;
    if (revoked)
        rp_err_set(err, RP_ERR_UNAUTHENTICATED, "TOKEN_REVOKED", "the access token was revoked; sign in again");
    return !revoked;
}
