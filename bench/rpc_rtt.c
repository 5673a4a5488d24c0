/* rpc_rtt.c - the bare RabbitMQ RPC round trip, for choosing the RPC queue type and reply path
 * (issue 10): one requester and one echoing worker, each on its own connection and thread, make
 * N calls one at a time through each variant and print p50/p99/mean per variant. Nothing of the
 * platform is involved, so the figures bound what lib/transport_amqp.c can reach.
 *
 *   build/bench/rpc_rtt [calls per variant, default 2000] [amqp URL, default the local guest]
 *   SPIN_CLIENT_US=500 build/bench/rpc_rtt 3000   (the requester polls for its reply first)
 *
 * Variants: the request queue is a quorum queue (persistent messages, the old declaration), a
 * durable classic queue with transient messages, or a non-durable classic queue; the reply
 * comes through an exclusive reply queue bound to a direct exchange, or through direct reply-to
 * (amq.rabbitmq.reply-to). Queues are named bench.rtt.<pid>.* and deleted afterwards. */
#include <sys/time.h> /* amqp.h needs struct timeval */

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REPLY_EXCHANGE "bench.rtt.reply"

typedef enum { Q_QUORUM, Q_CLASSIC_DURABLE, Q_CLASSIC_TRANSIENT } queue_kind_t;
static const char *const queue_kind_name[] = {"quorum, persistent messages", "classic durable, transient messages",
                                              "classic non-durable"};

static struct amqp_connection_info info;
static char queue[96];
static atomic_bool worker_stop;

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die_on(amqp_connection_state_t c, const char *what) {
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return;
    fprintf(stderr, "rpc_rtt: %s failed (reply type %d)\n", what, (int)r.reply_type);
    exit(1);
}

static amqp_connection_state_t connect_broker(void) {
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    struct timeval tv = {3, 0};
    if (!s || amqp_socket_open_noblock(s, info.host, info.port, &tv) != AMQP_STATUS_OK) {
        fprintf(stderr, "rpc_rtt: cannot reach the broker at %s:%d\n", info.host, info.port);
        exit(1);
    }
    const char *vhost = info.vhost && info.vhost[0] ? info.vhost : "/";
    if (amqp_login(c, vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password)
            .reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "rpc_rtt: login refused\n");
        exit(1);
    }
    amqp_channel_open(c, 1);
    die_on(c, "channel open");
    return c;
}

static void close_broker(amqp_connection_state_t c) {
    amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

/* SPIN_CLIENT_US / SPIN_WORKER_US (environment, default 0): how long the requester waiting for a
 * reply, or the worker waiting for a request, polls its connection without sleeping before it
 * sleeps (the platform's AMQP_REPLY_SPIN_US is the requester's). */
static long spin_client_us, spin_worker_us;

/* amqp_consume_message, polling without blocking for the first spin_us */
static amqp_rpc_reply_t consume_spin(amqp_connection_state_t c, amqp_envelope_t *env, struct timeval *tv,
                                     long spin_us) {
    int64_t end = now_us() + spin_us;
    while (spin_us > 0 && now_us() < end) {
        struct timeval zero = {0, 0};
        amqp_rpc_reply_t r = amqp_consume_message(c, env, &zero, 0);
        if (r.reply_type != AMQP_RESPONSE_LIBRARY_EXCEPTION || r.library_error != AMQP_STATUS_TIMEOUT) return r;
    }
    return amqp_consume_message(c, env, tv, 0);
}

/* The echoing worker: replies to reply_to through the reply exchange, or through the default
 * exchange when reply_to names direct reply-to, then acks. */
static void *worker_main(void *arg) {
    amqp_connection_state_t c = arg;
    while (!atomic_load(&worker_stop)) {
        amqp_envelope_t env;
        struct timeval tv = {0, 100000};
        amqp_maybe_release_buffers(c);
        amqp_rpc_reply_t r = consume_spin(c, &env, &tv, spin_worker_us);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) continue;
        amqp_basic_properties_t p;
        memset(&p, 0, sizeof p);
        p._flags = AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
        p.delivery_mode = 1;
        p.correlation_id = env.message.properties.correlation_id;
        amqp_bytes_t to = env.message.properties.reply_to;
        bool direct = to.len > 14 && memcmp(to.bytes, "amq.rabbitmq.", 13) == 0;
        amqp_basic_publish(c, 1, direct ? amqp_empty_bytes : amqp_cstring_bytes(REPLY_EXCHANGE), to, 0, 0, &p,
                           env.message.body);
        amqp_basic_ack(c, 1, env.delivery_tag, 0);
        amqp_destroy_envelope(&env);
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void declare_request_queue(amqp_connection_state_t c, queue_kind_t kind) {
    amqp_table_entry_t a[1];
    a[0].key = amqp_cstring_bytes("x-queue-type");
    a[0].value.kind = AMQP_FIELD_KIND_UTF8;
    a[0].value.value.bytes = amqp_cstring_bytes(kind == Q_QUORUM ? "quorum" : "classic");
    amqp_table_t args = {.num_entries = 1, .entries = a};
    amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 0, kind != Q_CLASSIC_TRANSIENT, 0, 0, args);
    die_on(c, "queue declare");
}

/* Runs n calls through one variant and prints a line. */
static void run_variant(queue_kind_t kind, bool direct, int n) {
    snprintf(queue, sizeof queue, "bench.rtt.%ld.%d", (long)getpid(), (int)kind);
    amqp_connection_state_t req = connect_broker(), wrk = connect_broker();
    declare_request_queue(req, kind);
    amqp_basic_qos(wrk, 1, 0, 16, 0);
    die_on(wrk, "qos");
    amqp_basic_consume(wrk, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    die_on(wrk, "worker consume");
    char reply_to[128] = "amq.rabbitmq.reply-to";
    if (!direct) {
        amqp_exchange_declare(req, 1, amqp_cstring_bytes(REPLY_EXCHANGE), amqp_cstring_bytes("direct"), 0, 0, 0, 0,
                              amqp_empty_table);
        die_on(req, "reply exchange declare");
        amqp_queue_declare_ok_t *q = amqp_queue_declare(req, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
        die_on(req, "reply queue declare");
        snprintf(reply_to, sizeof reply_to, "%.*s", (int)q->queue.len, (const char *)q->queue.bytes);
        amqp_queue_bind(req, 1, amqp_cstring_bytes(reply_to), amqp_cstring_bytes(REPLY_EXCHANGE),
                        amqp_cstring_bytes(reply_to), amqp_empty_table);
        die_on(req, "reply queue bind");
    }
    amqp_basic_consume(req, 1, amqp_cstring_bytes(reply_to), amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
    die_on(req, "reply consume");

    atomic_store(&worker_stop, false);
    pthread_t th;
    pthread_create(&th, NULL, worker_main, wrk);
    int64_t *lat = calloc((size_t)n, sizeof *lat);
    char body[256], corr[32];
    memset(body, 'x', sizeof body);
    body[0] = '{';
    int warm = n / 10, lost = 0;
    for (int i = -warm; i < n; i++) {
        snprintf(corr, sizeof corr, "c%d", i + warm);
        amqp_basic_properties_t p;
        memset(&p, 0, sizeof p);
        p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_REPLY_TO_FLAG |
                   AMQP_BASIC_EXPIRATION_FLAG;
        p.delivery_mode = kind == Q_QUORUM ? 2 : 1;
        p.correlation_id = amqp_cstring_bytes(corr);
        p.reply_to = amqp_cstring_bytes(reply_to);
        p.expiration = amqp_cstring_bytes("5000");
        amqp_bytes_t b = {.len = sizeof body, .bytes = body};
        int64_t t0 = now_us();
        amqp_basic_publish(req, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0, &p, b);
        for (;;) {
            amqp_envelope_t env;
            struct timeval tv = {5, 0};
            amqp_maybe_release_buffers(req);
            amqp_rpc_reply_t r = consume_spin(req, &env, &tv, spin_client_us);
            if (r.reply_type != AMQP_RESPONSE_NORMAL) {
                lost++;
                break;
            }
            bool mine = env.message.properties.correlation_id.len == strlen(corr) &&
                        memcmp(env.message.properties.correlation_id.bytes, corr, strlen(corr)) == 0;
            amqp_destroy_envelope(&env);
            if (mine) break;
        }
        if (i >= 0) lat[i] = now_us() - t0;
    }
    atomic_store(&worker_stop, true);
    pthread_join(th, NULL);
    qsort(lat, (size_t)n, sizeof *lat, cmp_i64);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += (double)lat[i];
    printf("| %s | %s | %d | %.3f | %.3f | %.3f | %d |\n", queue_kind_name[kind],
           direct ? "direct reply-to" : "exclusive reply queue", n, (double)lat[n / 2] / 1000.0,
           (double)lat[(size_t)n * 99 / 100] / 1000.0, sum / n / 1000.0, lost);
    fflush(stdout);
    free(lat);
    amqp_queue_delete(req, 1, amqp_cstring_bytes(queue), 0, 0);
    close_broker(wrk);
    close_broker(req);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    char *url = strdup(argc > 2 ? argv[2] : "amqp://guest:guest@127.0.0.1:5672/");
    amqp_default_connection_info(&info);
    if (n < 10 || amqp_parse_url(url, &info) != AMQP_STATUS_OK) {
        fprintf(stderr, "usage: rpc_rtt [calls >= 10] [amqp URL]\n");
        return 2;
    }
    spin_client_us = getenv("SPIN_CLIENT_US") ? atol(getenv("SPIN_CLIENT_US")) : 0;
    spin_worker_us = getenv("SPIN_WORKER_US") ? atol(getenv("SPIN_WORKER_US")) : 0;
    printf(
        "| request queue | reply path | calls | p50 ms | p99 ms | mean ms | lost |\n|---|---|---|---|---|---|---|\n");
    for (int kind = Q_QUORUM; kind <= Q_CLASSIC_TRANSIENT; kind++)
        for (int direct = 0; direct <= 1; direct++)
            run_variant((queue_kind_t)kind, direct, n);
    free(url);
    return 0;
}
