/* amqp_util.c - shared librabbitmq plumbing (see amqp_util.h); no state. */
#include "amqp_util.h"

#include <amqp_tcp_socket.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

bool rp_amqp_url_parse(rp_amqp_url_t *u, const char *url, rp_err_t *err) {
    u->copy = rp_strdup(url);
    amqp_default_connection_info(&u->info);
    if (amqp_parse_url(u->copy, &u->info) == AMQP_STATUS_OK) return true;
    rp_amqp_url_clear(u);
    rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "AMQP_URL is not a valid amqp:// URL");
    return false;
}

const char *rp_amqp_url_vhost(const rp_amqp_url_t *u) {
    return u->info.vhost && u->info.vhost[0] ? u->info.vhost : "/";
}

void rp_amqp_url_clear(rp_amqp_url_t *u) {
    free(u->copy);
    memset(u, 0, sizeof *u);
}

bool rp_amqp_reply_ok(amqp_connection_state_t conn, const char *what, rp_err_t *err) {
    amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return true;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "%s: %s", what, amqp_error_string2(r.library_error));
    else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD || r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_channel_close_t *m = r.reply.decoded;
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "%s: broker said %u %.*s", what, m->reply_code,
                   (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    } else
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "%s: broker error", what);
    return false;
}

amqp_connection_state_t rp_amqp_open(const rp_amqp_url_t *addr, const char *name, int heartbeat_s, rp_err_t *err) {
    amqp_connection_state_t c = amqp_new_connection();
    struct timeval bound = {RP_AMQP_RPC_TIMEOUT_MS / 1000, (RP_AMQP_RPC_TIMEOUT_MS % 1000) * 1000};
    amqp_set_rpc_timeout(c, &bound);
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    struct timeval tv = {3, 0};
    const struct amqp_connection_info *info = &addr->info;
    if (!s || amqp_socket_open_noblock(s, info->host, info->port, &tv) != AMQP_STATUS_OK) {
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "cannot reach the broker at %s:%d", info->host, info->port);
        amqp_destroy_connection(c);
        return NULL;
    }
    amqp_table_entry_t prop;
    prop.key = amqp_cstring_bytes("connection_name");
    prop.value.kind = AMQP_FIELD_KIND_UTF8;
    prop.value.value.bytes = amqp_cstring_bytes(name);
    amqp_table_t props = {.num_entries = 1, .entries = &prop};
    amqp_rpc_reply_t r = amqp_login_with_properties(c, rp_amqp_url_vhost(addr), 0, RP_AMQP_FRAME_MAX, heartbeat_s,
                                                    &props, AMQP_SASL_METHOD_PLAIN, info->user, info->password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "broker login failed");
        amqp_destroy_connection(c);
        return NULL;
    }
    amqp_channel_open(c, 1);
    if (!rp_amqp_reply_ok(c, "open channel", err)) {
        amqp_destroy_connection(c);
        return NULL;
    }
    return c;
}

int rp_amqp_wait_method(amqp_connection_state_t conn, int64_t left_ms, amqp_frame_t *f) {
    struct timeval tv = {(time_t)(left_ms / 1000), (suseconds_t)((left_ms % 1000) * 1000)};
    amqp_maybe_release_buffers(conn);
    int rc = amqp_simple_wait_frame_noblock(conn, f, &tv);
    if (rc == AMQP_STATUS_OK && f->frame_type != AMQP_FRAME_METHOD) return AMQP_STATUS_UNEXPECTED_STATE;
    return rc;
}
