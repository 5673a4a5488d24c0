/* amqp_transport_fixture.h - transports on a real RabbitMQ for the tests of lib/transport_amqp.c
 * (test_transport_amqp.c, test_transport_bundle.c), and a look at the broker beside them. Static
 * functions; include once per test file, after amqp_broker.h. */
#ifndef RP_TESTS_AMQP_TRANSPORT_FIXTURE_H
#define RP_TESTS_AMQP_TRANSPORT_FIXTURE_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amqp_broker.h"
#include "timeutil.h"
#include "transport.h"

/* An RPC handler answering the request's bytes. */
static inline char *echo_handler(void *ctx, const char *req, size_t len, size_t *out_len) {
    (void)ctx;
    char *out = malloc(len);
    memcpy(out, req, len);
    *out_len = len;
    return out;
}

/* A transport on the broker with the given prefetch, call connections and reply spin; skips the
 * test when no broker answers. */
static inline rp_transport_t *transport_or_skip_spinning(int workers, int connections, int spin_us) {
    rp_err_t err;
    rp_transport_t *t = rp_transport_amqp_new(broker_url(), workers, connections, spin_us, &err);
    cr_assert_not_null(t, "%s", err.message);
    if (!rp_transport_ready(t, &err)) {
        rp_transport_free(t);
        cr_skip_test("no RabbitMQ at %s: %s", broker_url(), err.message);
    }
    return t;
}

static inline rp_transport_t *transport_or_skip_with(int workers, int connections) {
    return transport_or_skip_spinning(workers, connections, 0);
}

static inline rp_transport_t *transport_or_skip(int workers) {
    return transport_or_skip_with(workers, 64);
}

/* The first call to comp's queue served on t, echoed back: retried until the consumer has
 * attached (it may need a moment). */
static inline void first_round_trip_on(rp_transport_t *t, rp_component_t comp) {
    char *rep = NULL;
    size_t n = 0;
    rp_err_t err;
    bool ok = false;
    for (int i = 0; i < 50 && !ok; i++) {
        ok = rp_transport_call(t, comp, "{\"hello\":1}", 11, rp_now_ms() + 2000, &rep, &n, &err);
        if (!ok) usleep(100000);
    }
    cr_assert(ok, "%s", err.message);
    cr_assert_eq(n, 11u);
    cr_assert(memcmp(rep, "{\"hello\":1}", 11) == 0);
    free(rep);
}

/* The same on the event queue, which most tests here serve. */
static inline void first_round_trip(rp_transport_t *t) {
    first_round_trip_on(t, RP_COMP_EVENT);
}

/* A plain connection beside the transport; the transport answered, so the broker is there. */
static inline amqp_connection_state_t plain(void) {
    amqp_connection_state_t c = broker_connect();
    cr_assert_not_null(c, "the broker stopped answering");
    return c;
}

/* The number of messages ready in queue (a passive declare), -1 when it cannot be looked at. */
static inline int depth(amqp_connection_state_t c, const char *queue) {
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    return ok ? (int)ok->message_count : -1;
}

/* Polls queue's depth, up to 5 s, until it holds a message; returns the last depth seen. */
static inline int depth_once_filled(amqp_connection_state_t c, const char *queue) {
    int d = 0;
    for (int i = 0; i < 100 && (d = depth(c, queue)) < 1; i++)
        usleep(50000);
    return d;
}

#endif
