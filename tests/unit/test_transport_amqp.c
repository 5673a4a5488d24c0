/* Tests lib/transport_amqp.c against a real RabbitMQ (`make test` starts Debian's
 * rabbitmq-server; AMQP_URL overrides the address). One sequential test: the RPC queues are
 * shared, so scenarios must not run in parallel. */
#include <sys/time.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "timeutil.h"
#include "transport.h"

static char *slow_echo(void *ctx, const char *req, size_t len, size_t *out_len) {
    (void)ctx;
    if (len >= 6 && memcmp(req, "{\"slow", 6) == 0) usleep(400000);
    char *out = malloc(len);
    memcpy(out, req, len);
    *out_len = len;
    return out;
}

static const char *url(void) {
    const char *u = getenv("AMQP_URL");
    return u ? u : "amqp://guest:guest@127.0.0.1:5672/";
}

/* A plain guest connection with channel 1 open, to look at the broker beside the transport. */
static amqp_connection_state_t plain(void) {
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    struct timeval tv = {3, 0};
    cr_assert_eq(amqp_socket_open_noblock(s, "127.0.0.1", 5672, &tv), AMQP_STATUS_OK);
    cr_assert_eq(amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest").reply_type,
                 AMQP_RESPONSE_NORMAL);
    amqp_channel_open(c, 1);
    return c;
}

/* Publishes raw bytes to a queue and reads one message back from another, with a plain
 * connection, to see what the transport did with a poison message. */
static int dlq_depth_after_poison(void) {
    amqp_connection_state_t c = plain();
    amqp_queue_purge(c, 1, amqp_cstring_bytes("event.rpc.dlq"));
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes("event.rpc"), 0, 0, &p,
                       amqp_cstring_bytes("this is not json"));
    int depth = 0;
    for (int i = 0; i < 100 && depth == 0; i++) {
        usleep(50000);
        amqp_queue_declare_ok_t *ok =
            amqp_queue_declare(c, 1, amqp_cstring_bytes("event.rpc.dlq"), 1, 0, 0, 0, amqp_empty_table);
        if (ok) depth = (int)ok->message_count;
    }
    amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
    return depth;
}

Test(amqp, rpc_round_trip_timeouts_and_dead_letters, .timeout = 60) {
    rp_err_t err;
    rp_transport_t *t = rp_transport_amqp_new(url(), 4, &err);
    cr_assert_not_null(t, "%s", err.message);
    if (!rp_transport_ready(t, &err)) {
        rp_transport_free(t);
        cr_skip_test("no RabbitMQ at %s: %s", url(), err.message);
    }
    cr_assert(rp_transport_serve(t, RP_COMP_EVENT, slow_echo, NULL, 1, &err), "%s", err.message);

    char *rep = NULL;
    size_t n = 0;
    /* round trip (the consumer may need a moment to attach: retry until the deadline allows) */
    bool ok = false;
    for (int i = 0; i < 50 && !ok; i++) {
        ok = rp_transport_call(t, RP_COMP_EVENT, "{\"hello\":1}", 11, rp_now_ms() + 2000, &rep, &n, &err);
        if (!ok) usleep(100000);
    }
    cr_assert(ok, "%s", err.message);
    cr_assert_eq(n, 11u);
    cr_assert(memcmp(rep, "{\"hello\":1}", 11) == 0);
    free(rep);

    /* a deadline shorter than the handler: 504, and the late reply never reaches the next call */
    cr_assert_not(rp_transport_call(t, RP_COMP_EVENT, "{\"slow\":1}", 10, rp_now_ms() + 100, &rep, &n, &err));
    cr_assert_eq(err.kind, RP_ERR_TIMEOUT);
    cr_assert(rp_transport_call(t, RP_COMP_EVENT, "{\"next\":2}", 10, rp_now_ms() + 5000, &rep, &n, &err), "%s",
              err.message);
    cr_assert(memcmp(rep, "{\"next\":2}", 10) == 0, "got %.*s", (int)n, rep);
    free(rep);

    /* a message that is not an envelope goes to the dead-letter queue, not round and round */
    cr_assert_eq(dlq_depth_after_poison(), 1);

    /* nobody serves reward.rpc here: the call waits out its deadline (the message expires) */
    cr_assert_not(rp_transport_call(t, RP_COMP_REWARD, "{}", 2, rp_now_ms() + 300, &rep, &n, &err));
    cr_assert(err.kind == RP_ERR_TIMEOUT || err.kind == RP_ERR_UNAVAILABLE);
    rp_transport_free(t);

    /* a wrong address is a clear 503, quickly */
    rp_transport_t *bad = rp_transport_amqp_new("amqp://guest:guest@127.0.0.1:1/", 4, &err);
    cr_assert_not(rp_transport_ready(bad, &err));
    cr_assert_eq(err.kind, RP_ERR_UNAVAILABLE);
    rp_transport_free(bad);
}

/* ---- work queues ---- */

#include <stdatomic.h>
#include <stdio.h>

static atomic_int work_seen, work_bad;

static bool count_work(void *ctx, const char *msg, size_t len) {
    (void)ctx;
    if (len >= 8 && memcmp(msg, "{\"bad\":", 7) == 0) {
        atomic_fetch_add(&work_bad, 1);
        return false;
    }
    atomic_fetch_add(&work_seen, 1);
    return true;
}

static int depth(amqp_connection_state_t c, const char *queue) {
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    return ok ? (int)ok->message_count : -1;
}

Test(amqp, work_queue_confirms_delivers_and_dead_letters, .timeout = 60) {
    rp_err_t err;
    rp_transport_t *t = rp_transport_amqp_new(url(), 8, &err);
    cr_assert_not_null(t, "%s", err.message);
    if (!rp_transport_ready(t, &err)) {
        rp_transport_free(t);
        cr_skip_test("no RabbitMQ at %s: %s", url(), err.message);
    }
    char queue[64], dlq[80];
    snprintf(queue, sizeof queue, "test.work.%ld", (long)getpid());
    snprintf(dlq, sizeof dlq, "%s.dlq", queue);
    const char *one[] = {"{\"x\":0}"};
    size_t one_len[] = {7};
    /* no queue bound yet: the mandatory publish comes back, so the batch counts as unsent */
    cr_assert_not(rp_transport_enqueue(t, queue, one, one_len, 1, &err));
    cr_assert_eq(err.kind, RP_ERR_UNAVAILABLE);

    atomic_store(&work_seen, 0);
    atomic_store(&work_bad, 0);
    cr_assert(rp_transport_consume(t, queue, count_work, NULL, 2, &err), "%s", err.message);
    enum { N = 200 };
    char *msgs[N + 1];
    size_t lens[N + 1];
    for (int i = 0; i < N; i++) {
        msgs[i] = malloc(32);
        lens[i] = (size_t)snprintf(msgs[i], 32, "{\"n\":%d}", i);
    }
    msgs[N] = strdup("{\"bad\":1}");
    lens[N] = strlen(msgs[N]);
    cr_assert(rp_transport_enqueue(t, queue, (const char *const *)msgs, lens, N + 1, &err), "%s", err.message);
    for (int i = 0; i < 600 && (atomic_load(&work_seen) < N || atomic_load(&work_bad) < 1); i++)
        usleep(50000);
    cr_assert_eq(atomic_load(&work_seen), N);
    cr_assert_eq(atomic_load(&work_bad), 1);
    amqp_connection_state_t c = plain();
    int d = 0;
    for (int i = 0; i < 100 && (d = depth(c, dlq)) < 1; i++)
        usleep(50000);
    cr_assert_eq(d, 1, "the malformed message is dead-lettered, not redelivered");
    rp_transport_free(t);
    amqp_queue_delete(c, 1, amqp_cstring_bytes(queue), 0, 0);
    amqp_queue_delete(c, 1, amqp_cstring_bytes(dlq), 0, 0);
    amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
    for (int i = 0; i <= N; i++)
        free(msgs[i]);
}
