/* amqp_broker.h - shared by the tests that run against a real RabbitMQ (test_transport_amqp.c,
 * test_outbox_relay.c): the broker's address, and a plain connection beside the code under test
 * to look at the broker directly. Static functions; include once per test file. */
#ifndef RP_TESTS_AMQP_BROKER_H
#define RP_TESTS_AMQP_BROKER_H

#include <sys/time.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <criterion/criterion.h>
#include <stdlib.h>

/* The broker the code under test connects to: AMQP_URL, else the local guest account. */
static inline const char *broker_url(void) {
    const char *u = getenv("AMQP_URL");
    return u ? u : "amqp://guest:guest@127.0.0.1:5672/";
}

/* A plain guest connection to 127.0.0.1:5672 with channel 1 open, or NULL when nothing listens
 * there (the caller skips). A broker that refuses the login fails the test. Close it with
 * broker_close. */
static inline amqp_connection_state_t broker_connect(void) {
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    struct timeval tv = {3, 0};
    if (amqp_socket_open_noblock(s, "127.0.0.1", 5672, &tv) != AMQP_STATUS_OK) {
        amqp_destroy_connection(c);
        return NULL;
    }
    cr_assert_eq(amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest").reply_type,
                 AMQP_RESPONSE_NORMAL);
    amqp_channel_open(c, 1);
    return c;
}

/* Closes channel 1 and the connection, and frees it. */
static inline void broker_close(amqp_connection_state_t c) {
    amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

#endif
