/* amqp_util.c - shared librabbitmq plumbing (see amqp_util.h); no state. */
#include "amqp_util.h"

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

void rp_amqp_bound_rpcs(amqp_connection_state_t conn) {
    struct timeval tv = {RP_AMQP_RPC_TIMEOUT_MS / 1000, (RP_AMQP_RPC_TIMEOUT_MS % 1000) * 1000};
    amqp_set_rpc_timeout(conn, &tv);
}

int rp_amqp_wait_method(amqp_connection_state_t conn, int64_t left_ms, amqp_frame_t *f) {
    struct timeval tv = {(time_t)(left_ms / 1000), (suseconds_t)((left_ms % 1000) * 1000)};
    amqp_maybe_release_buffers(conn);
    int rc = amqp_simple_wait_frame_noblock(conn, f, &tv);
    if (rc == AMQP_STATUS_OK && f->frame_type != AMQP_FRAME_METHOD) return AMQP_STATUS_UNEXPECTED_STATE;
    return rc;
}
