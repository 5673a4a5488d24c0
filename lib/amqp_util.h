/* amqp_util.h - librabbitmq plumbing both AMQP users (amqp_publisher.c, transport_amqp.c) need.
 * Functions work on a connection the calling thread owns. */
#ifndef RP_LIB_AMQP_UTIL_H
#define RP_LIB_AMQP_UTIL_H

#include <sys/time.h> /* amqp.h needs struct timeval */

#include <amqp.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"

/* A broker address from an amqp:// URL: info points into copy, which the address owns. */
typedef struct rp_amqp_url {
    char *copy;
    struct amqp_connection_info info;
} rp_amqp_url_t;

/* Parses url (copied) into u; false with err (CONFIG_INVALID) when it is not an amqp:// URL, u
 * then holding nothing. Release with rp_amqp_url_clear. */
bool rp_amqp_url_parse(rp_amqp_url_t *u, const char *url, rp_err_t *err);
/* The URL's virtual host, "/" when it names none; borrowed from u. */
const char *rp_amqp_url_vhost(const rp_amqp_url_t *u);
/* Frees what u owns. */
void rp_amqp_url_clear(rp_amqp_url_t *u);

/* How long a synchronous method (a declare, basic.consume, channel.close, ...) waits for the
 * broker's answer before the connection is given up. librabbitmq waits forever by default, and a
 * RabbitMQ restarted after kill -9 was seen never to answer a basic.consume on a quorum queue: the
 * consumer thread stayed blocked, serving nothing, and held up the process's stop. The caller's
 * reconnect loop retries on a new connection. */
#define RP_AMQP_RPC_TIMEOUT_MS 5000

/* The largest frame a connection asks for (librabbitmq's default is 128 KiB). librabbitmq sizes a
 * connection's outbound buffer and every page of its decoding pools by the frame, so with 128 KiB
 * each of a grant worker's 20 consumer connections held about 0.45 MiB (heaptrack), 13 MiB of a
 * worker's heap. Our messages are a few KiB (an RPC envelope, an outbox message, a batch chunk);
 * a longer body travels as several frames, which librabbitmq splits and joins. 16 KiB took a
 * cluster's resident set down by 5-10 MiB with no loss of claims/s (bench/README.md, 2026-12-04
 * third sitting). RabbitMQ accepts 4 KiB at least. */
#define RP_AMQP_FRAME_MAX 16384

/* librabbitmq reads each frame of a message into a pool of its connection's channel, and between
 * messages only recycles that pool: its pages stay allocated, one per frame of the longest message
 * the connection ever read. Nothing public frees them but closing the connection. So a connection
 * that read a message longer than this is closed and opened again (lib/transport_amqp.c), and
 * none keeps more than about this much. Without that, every RPC consumer of a grant worker that
 * once took a 100,000-player batch (a 2.7 MB request) kept 2.7 MB for good, and an api call
 * connection that carried an export page kept that page: a grant worker's heap rose whenever a
 * batch first landed on one of its consumers (heaptrack in a 25-minute soak; bench/README.md,
 * 2026-12-04, fifth sitting). This bound is for what a consumer reads: requests other than a
 * batch's are at most MAX_BODY_BYTES (64 KiB) of body and keep their connection; a batch of about
 * 4,800 players or more goes over. */
#define RP_AMQP_KEEP_BYTES (128 * 1024)
/* The same for a reply on a call connection. A page of a player's history (100 requests) is 54 KiB
 * with one reward each, an export page (EXPORT_PAGE_SIZE, 1,000 rows) about 0.5 MB. A reply longer
 * than this always reopens its connection; a larger EXPORT_PAGE_SIZE goes over. */
#define RP_AMQP_KEEP_REPLY_BYTES (1024 * 1024)
/* A reply between RP_AMQP_KEEP_BYTES and RP_AMQP_KEEP_REPLY_BYTES keeps its connection's pages only
 * while fewer than this many of the process's call connections keep such pages; any other
 * connection is opened again. An api spreads its calls over up to RPC_CONNECTIONS (64) connections,
 * and without a bound each would in time keep an export page: up to 64 MB. Opening the connection
 * again after every export page made an export over RabbitMQ 8-18 % slower (bench/export.sh), so
 * the keepers serve the long replies: a thread's next call takes the connection that kept its last
 * long reply (an export's pages come one after another on one thread), a thread whose long reply
 * could not be kept takes an idle keeper next, and other calls take the keepers last. So up to
 * this many exports at once keep their connections. Under a read load of 32 connections, three
 * exports of 100,000 rows left the api's heap 19.6 MiB larger without this bound and 2.2 MiB
 * larger with it (bench/README.md, 2026-12-04, sixth sitting). */
#define RP_AMQP_LONG_REPLY_CONNS 4

/* A new connection to addr, logged in (connection_name: name, shown by rabbitmqctl; heartbeat_s
 * 0 asks for no heartbeats; frames of RP_AMQP_FRAME_MAX at most) with channel 1 open, its
 * synchronous methods bounded by RP_AMQP_RPC_TIMEOUT_MS (librabbitmq closes the connection when
 * one times out); NULL with err (UNAVAILABLE) when the broker cannot be reached, refuses the
 * login or the channel. */
amqp_connection_state_t rp_amqp_open(const rp_amqp_url_t *addr, const char *name, int heartbeat_s, rp_err_t *err);

/* True when the last synchronous method on conn succeeded; else false with err (UNAVAILABLE)
 * saying what failed and, when the broker closed the channel or connection, its reply. */
bool rp_amqp_reply_ok(amqp_connection_state_t conn, const char *what, rp_err_t *err);

/* Waits up to left_ms for the next frame on conn, after releasing what earlier frames hold.
 * Returns AMQP_STATUS_OK with a method frame in *f, AMQP_STATUS_TIMEOUT when none came in time,
 * or another status when the connection is lost or sent something other than a method (a
 * caller waiting for a method takes both as a broken connection). */
int rp_amqp_wait_method(amqp_connection_state_t conn, int64_t left_ms, amqp_frame_t *f);

#endif
