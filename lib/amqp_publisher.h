/* amqp_publisher.h - persistent publishes with publisher confirms over one AMQP connection
 * (librabbitmq-c 0.11 has no confirm-wait helper). Not thread-safe: one publisher per thread.
 * The connection is opened lazily and dropped after any failure; the next send reconnects. A
 * connection idle for longer than the idle limit (RP_AMQP_PUBLISHER_IDLE_MS) is replaced before
 * the next send: librabbitmq answers heartbeats only inside its calls, so the broker closes a
 * publisher that sat idle for two heartbeat intervals (60 s), and the first publish on it failed
 * (the batch sweeper then put a whole batch off by a minute). */
#ifndef RP_LIB_AMQP_PUBLISHER_H
#define RP_LIB_AMQP_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

typedef struct rp_amqp_publisher rp_amqp_publisher_t;

/* A publisher for the broker at url (copied); conn_name shows in the management UI. When
 * exchange_type is not NULL, every new connection declares `exchange` (durable) of that type
 * first. NULL with err when the URL is invalid; nothing is connected yet. */
rp_amqp_publisher_t *rp_amqp_publisher_new(const char *url, const char *conn_name, const char *exchange,
                                           const char *exchange_type, rp_err_t *err);
/* Publishes one persistent JSON message to the publisher's exchange with routing_key;
 * message_id may be NULL. With mandatory, a message no queue takes fails the next confirm. */
bool rp_amqp_publisher_send(rp_amqp_publisher_t *p, const char *routing_key, const char *message_id, const char *body,
                            size_t len, bool mandatory, rp_err_t *err);
/* Waits until the broker confirmed every message sent since the last confirm, up to
 * timeout_ms. False (503 UNAVAILABLE) on a nack, a returned message, a timeout or a lost
 * connection: then none of them may be taken as delivered. */
bool rp_amqp_publisher_confirm(rp_amqp_publisher_t *p, int timeout_ms, rp_err_t *err);
/* The idle limit: half the heartbeat interval the publisher asks for (30 s). */
#define RP_AMQP_PUBLISHER_IDLE_MS 15000
/* Sets p's idle limit; 0 replaces the connection before every send with nothing awaiting a
 * confirm (tests). */
void rp_amqp_publisher_set_idle_ms(rp_amqp_publisher_t *p, int idle_ms);
/* Closes the connection and frees; accepts NULL. */
void rp_amqp_publisher_free(rp_amqp_publisher_t *p);

#endif
