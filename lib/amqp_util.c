/* amqp_util.c - shared librabbitmq plumbing (see amqp_util.h); no state. */
#include "amqp_util.h"

int rp_amqp_wait_method(amqp_connection_state_t conn, int64_t left_ms, amqp_frame_t *f) {
    struct timeval tv = {(time_t)(left_ms / 1000), (suseconds_t)((left_ms % 1000) * 1000)};
    amqp_maybe_release_buffers(conn);
    int rc = amqp_simple_wait_frame_noblock(conn, f, &tv);
    if (rc == AMQP_STATUS_OK && f->frame_type != AMQP_FRAME_METHOD) return AMQP_STATUS_UNEXPECTED_STATE;
    return rc;
}
