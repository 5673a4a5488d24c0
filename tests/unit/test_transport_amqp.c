/* Tests lib/transport_amqp.c against a real RabbitMQ (`make test` starts Debian's
 * rabbitmq-server; AMQP_URL overrides the address). One sequential test: the RPC queues are
 * shared, so scenarios must not run in parallel. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "amqp_broker.h"
#include "amqp_transport_fixture.h"
#include "amqp_publisher.h"
#include "amqp_util.h"
#include "memory.h"
#include "timeutil.h"
#include "transport.h"
#include "work_counter.h"

static atomic_int slow_started; /* slow requests a handler has begun */

static char *slow_echo(void *ctx, const char *req, size_t len, size_t *out_len) {
    if (len >= 6 && memcmp(req, "{\"slow", 6) == 0) {
        atomic_fetch_add(&slow_started, 1);
        usleep(400000);
    }
    return echo_handler(ctx, req, len, out_len);
}

/* Publishes raw bytes to a queue and reads one message back from another, with a plain
 * connection, to see what the transport did with a poison message. */
static int dlq_depth_after_poison(void) {
    amqp_connection_state_t c = plain();
    amqp_queue_purge(c, 1, amqp_cstring_bytes("event.requests.dlq"));
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes("event.requests"), 0, 0, &p,
                       amqp_cstring_bytes("this is not json"));
    int d = depth_once_filled(c, "event.requests.dlq");
    broker_close(c);
    return d;
}

Test(amqp, rpc_round_trip_timeouts_and_dead_letters, .timeout = 60) {
    rp_err_t err;
    rp_transport_t *t = transport_or_skip(4);
    cr_assert(rp_transport_serve(t, RP_COMP_EVENT, slow_echo, NULL, 1, &err), "%s", err.message);

    char *rep = NULL;
    size_t n = 0;
    first_round_trip(t);

    /* a deadline shorter than the handler: 504, and the late reply never reaches the next call */
    cr_assert_not(rp_transport_call(t, RP_COMP_EVENT, "{\"slow\":1}", 10, rp_now_ms() + 100, &rep, &n, &err));
    cr_assert_eq(err.kind, RP_ERR_TIMEOUT);
    cr_assert(rp_transport_call(t, RP_COMP_EVENT, "{\"next\":2}", 10, rp_now_ms() + 5000, &rep, &n, &err), "%s",
              err.message);
    cr_assert(memcmp(rep, "{\"next\":2}", 10) == 0, "got %.*s", (int)n, rep);
    free(rep);

    /* a message that is not an envelope goes to the dead-letter queue, not round and round */
    cr_assert_eq(dlq_depth_after_poison(), 1);

    /* nobody serves reward.requests here: the call waits out its deadline (the message expires) */
    cr_assert_not(rp_transport_call(t, RP_COMP_REWARD, "{}", 2, rp_now_ms() + 300, &rep, &n, &err));
    cr_assert(err.kind == RP_ERR_TIMEOUT || err.kind == RP_ERR_UNAVAILABLE);
    rp_transport_free(t);

    /* a wrong address is a clear 503, quickly */
    rp_transport_t *bad = rp_transport_amqp_new("amqp://guest:guest@127.0.0.1:1/", 4, 4, 0, &err);
    cr_assert_not(rp_transport_ready(bad, &err));
    cr_assert_eq(err.kind, RP_ERR_UNAVAILABLE);
    rp_transport_free(bad);
}

/* Publishes body to the account lookups' exchange as the api would, with an expiration. */
static void publish_request(amqp_connection_state_t c, const char *body, const char *expiration_ms) {
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_EXPIRATION_FLAG | AMQP_BASIC_REPLY_TO_FLAG;
    p.delivery_mode = 1;
    p.expiration = amqp_cstring_bytes(expiration_ms);
    p.reply_to = amqp_cstring_bytes("nobody-listens");
    cr_assert_eq(amqp_basic_publish(c, 1, amqp_cstring_bytes("rp.accounts"), amqp_cstring_bytes("accounts"), 0, 0, &p,
                                    amqp_cstring_bytes(body)),
                 AMQP_STATUS_OK);
}

/* Takes one message from queue on a connection of its own and closes it without an ack, as a
 * worker that dies on the message would; true when a message came within 2 s. */
static bool receive_and_die(const char *queue) {
    amqp_connection_state_t c = plain();
    amqp_basic_qos(c, 1, 0, 1, 0);
    amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    amqp_envelope_t env;
    struct timeval tv = {2, 0};
    bool got = amqp_consume_message(c, &env, &tv, 0).reply_type == AMQP_RESPONSE_NORMAL;
    if (got) amqp_destroy_envelope(&env);
    broker_close(c);
    return got;
}

/* The x-first-death-reason of the message at the head of queue ("" when none), taken off it. */
static void first_death_reason(amqp_connection_state_t c, const char *queue, char *out, size_t cap) {
    out[0] = 0;
    amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(queue), 1);
    if (r.reply_type != AMQP_RESPONSE_NORMAL || r.reply.id != AMQP_BASIC_GET_OK_METHOD) return;
    amqp_message_t m;
    if (amqp_read_message(c, 1, &m, 0).reply_type != AMQP_RESPONSE_NORMAL) return;
    const amqp_table_t *h = &m.properties.headers;
    for (int i = 0; (m.properties._flags & AMQP_BASIC_HEADERS_FLAG) && i < h->num_entries; i++) {
        const amqp_table_entry_t *e = &h->entries[i];
        if (e->key.len == 20 && memcmp(e->key.bytes, "x-first-death-reason", 20) == 0 &&
            e->value.kind == AMQP_FIELD_KIND_UTF8)
            snprintf(out, cap, "%.*s", (int)e->value.value.bytes.len, (const char *)e->value.value.bytes.bytes);
    }
    amqp_destroy_message(&m);
}

/* RPC requests are transient and short-lived, so their queue is a classic one (no fsync before
 * delivery, unlike a quorum queue); a consumer thread holds one request at a time; and with no
 * delivery limit, a request a worker dies on comes back only until its expiration, then lands in
 * the dead-letter queue. Uses accounts.requests, which no other test here serves. */
Test(amqp, rpc_queue_classic_one_request_per_thread_and_poison_expires, .timeout = 60) {
    rp_err_t err;
    rp_transport_t *t = transport_or_skip(16);
    cr_assert(rp_transport_serve(t, RP_COMP_ACCOUNTS, slow_echo, NULL, 1, &err), "%s", err.message);
    amqp_connection_state_t c = plain();
    amqp_queue_purge(c, 1, amqp_cstring_bytes("accounts.requests.dlq"));

    /* the declaration deploy/rabbitmq/definitions.py writes is the one the transport made: a
     * classic queue (a quorum one would close the channel with 406 here) */
    amqp_table_entry_t a[3] = {
        {.key = amqp_cstring_bytes("x-queue-type"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("classic")}},
        {.key = amqp_cstring_bytes("x-dead-letter-exchange"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("rp.dlx")}},
        {.key = amqp_cstring_bytes("x-dead-letter-routing-key"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("accounts.requests.dlq")}}};
    amqp_table_t args = {.num_entries = 3, .entries = a};
    cr_assert_not_null(amqp_queue_declare(c, 1, amqp_cstring_bytes("accounts.requests"), 0, 1, 0, 0, args),
                       "accounts.requests is not the classic queue definitions.py declares");

    /* one consumer thread, busy with a slow request: the next request waits in the queue (for any
     * free worker), not in the busy thread's prefetch buffer */
    publish_request(c, "{\"slow\":1}", "5000");
    publish_request(c, "{\"fast\":1}", "5000");
    int d = 2;
    for (int i = 0; i < 100 && (d = depth(c, "accounts.requests")) != 1; i++)
        usleep(10000);
    cr_assert_eq(d, 1, "the slow request was not taken");
    usleep(150000); /* within the slow handler's 400 ms: nothing more may be delivered meanwhile */
    cr_assert_eq(depth(c, "accounts.requests"), 1, "a busy consumer thread took a second request");
    for (int i = 0; i < 200 && (d = depth(c, "accounts.requests")) != 0; i++)
        usleep(10000);
    cr_assert_eq(d, 0);
    rp_transport_free(t); /* no consumer left: this test plays the worker now */

    /* a request every worker dies on: redelivered, then dead-lettered once its 800 ms pass */
    publish_request(c, "{\"poison\":1}", "800");
    int deliveries = 0;
    while (receive_and_die("accounts.requests"))
        deliveries++;
    cr_assert_geq(deliveries, 2, "the request was not redelivered after the worker died");
    cr_assert_eq(depth_once_filled(c, "accounts.requests.dlq"), 1);
    cr_assert_eq(depth(c, "accounts.requests"), 0);
    char reason[32];
    first_death_reason(c, "accounts.requests.dlq", reason, sizeof reason);
    cr_assert_str_eq(reason, "expired");
    broker_close(c);
}

/* ---- work queues ---- */

Test(amqp, work_queue_confirms_delivers_and_dead_letters, .timeout = 60) {
    rp_err_t err;
    rp_transport_t *t = transport_or_skip(8);
    char queue[64], dlq[80];
    snprintf(queue, sizeof queue, "test.work.%ld", (long)getpid());
    snprintf(dlq, sizeof dlq, "%s.dlq", queue);
    const char *one[] = {"{\"x\":0}"};
    size_t one_len[] = {7};
    /* no queue bound yet: the mandatory publish comes back, so the batch counts as unsent */
    cr_assert_not(rp_transport_enqueue(t, queue, one, one_len, 1, &err));
    cr_assert_eq(err.kind, RP_ERR_UNAVAILABLE);

    work_reset();
    cr_assert(rp_transport_consume(t, queue, count_work, "{\"bad\":", 2, &err), "%s", err.message);
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
    work_wait(N, 1, 600, 50000);
    cr_assert_eq(atomic_load(&work_seen), N);
    cr_assert_eq(atomic_load(&work_bad), 1);
    amqp_connection_state_t c = plain();
    cr_assert_eq(depth_once_filled(c, dlq), 1, "the malformed message is dead-lettered, not redelivered");
    rp_transport_free(t);
    amqp_queue_delete(c, 1, amqp_cstring_bytes(queue), 0, 0);
    amqp_queue_delete(c, 1, amqp_cstring_bytes(dlq), 0, 0);
    broker_close(c);
    for (int i = 0; i <= N; i++)
        free(msgs[i]);
}

/* ---- messages longer than a frame ---- */

/* A JSON document of exactly n bytes whose filler changes with its position, so that frames
 * joined out of order or cut short would not compare equal. */
static char *long_body(size_t n) {
    char *b = malloc(n);
    memcpy(b, "{\"big\":\"", 8);
    for (size_t i = 8; i < n - 2; i++)
        b[i] = (char)('a' + i % 26);
    memcpy(b + n - 2, "\"}", 2);
    return b;
}

static const char *long_expected;
static size_t long_expected_len;
static atomic_int long_whole, long_other;

/* An rp_transport_consume consumer counting messages equal to long_expected and any others. */
static bool check_long(void *ctx, const char *msg, size_t len) {
    (void)ctx;
    bool same = len == long_expected_len && memcmp(msg, long_expected, len) == 0;
    atomic_fetch_add(same ? &long_whole : &long_other, 1);
    return true;
}

/* Connections ask for frames of RP_AMQP_FRAME_MAX, and a body several frames long reaches the
 * other side whole and in order: an RPC request, its reply, and a work-queue message. */
Test(amqp, messages_longer_than_a_frame_travel_whole, .timeout = 60) {
    rp_err_t err;
    rp_amqp_url_t u;
    cr_assert(rp_amqp_url_parse(&u, broker_url(), &err), "%s", err.message);
    amqp_connection_state_t c = rp_amqp_open(&u, "test-frames", 0, &err);
    rp_amqp_url_clear(&u);
    if (!c) cr_skip_test("no RabbitMQ at %s: %s", broker_url(), err.message);
    cr_assert_eq(amqp_get_frame_max(c), RP_AMQP_FRAME_MAX);
    broker_close(c);

    size_t n = 5 * RP_AMQP_FRAME_MAX + 123;
    char *body = long_body(n);
    rp_transport_t *t = transport_or_skip(4);
    cr_assert(rp_transport_serve(t, RP_COMP_EVENT, slow_echo, NULL, 1, &err), "%s", err.message);
    first_round_trip(t);
    char *rep = NULL;
    size_t rn = 0;
    cr_assert(rp_transport_call(t, RP_COMP_EVENT, body, n, rp_now_ms() + 5000, &rep, &rn, &err), "%s", err.message);
    cr_assert_eq(rn, n);
    cr_assert(memcmp(rep, body, n) == 0, "the reply differs from the request");
    free(rep);

    char queue[64], dlq[80];
    snprintf(queue, sizeof queue, "test.long.%ld", (long)getpid());
    snprintf(dlq, sizeof dlq, "%s.dlq", queue);
    long_expected = body;
    long_expected_len = n;
    cr_assert(rp_transport_consume(t, queue, check_long, NULL, 1, &err), "%s", err.message);
    const char *one[] = {body};
    size_t one_len[] = {n};
    cr_assert(rp_transport_enqueue(t, queue, one, one_len, 1, &err), "%s", err.message);
    for (int i = 0; i < 200 && atomic_load(&long_whole) + atomic_load(&long_other) < 1; i++)
        usleep(50000);
    cr_assert_eq(atomic_load(&long_whole), 1);
    cr_assert_eq(atomic_load(&long_other), 0);
    rp_transport_free(t);
    c = plain();
    amqp_queue_delete(c, 1, amqp_cstring_bytes(queue), 0, 0);
    amqp_queue_delete(c, 1, amqp_cstring_bytes(dlq), 0, 0);
    broker_close(c);
    free(body);
}

/* librabbitmq keeps the pool pages a message's frames were read into for as long as the connection
 * lives, one per frame of the longest message it ever read. A connection that read a long message
 * is therefore opened again: the consumer that read a request longer than RP_AMQP_KEEP_BYTES, the
 * call connection that read a reply longer than RP_AMQP_KEEP_REPLY_BYTES. Eight 2 MiB round trips
 * over four consumers and one call connection leave the heap where it was; each connection used
 * to keep 2 MiB. A message below its bound keeps its connection. */
/* How many of t's call connections and consumers were opened again after a long message. */
static void reopened(rp_transport_t *t, long *calls, long *consumers) {
    rp_amqp_stats_t s;
    cr_assert(rp_transport_amqp_stats(t, &s));
    *calls = s.reopened_calls;
    *consumers = s.reopened_consumers;
}

/* How many of t's call connections keep the pages of a reply over RP_AMQP_KEEP_BYTES. */
static int keeping_long(rp_transport_t *t) {
    rp_amqp_stats_t s;
    cr_assert(rp_transport_amqp_stats(t, &s));
    return s.long_reply_conns;
}

/* Echoes once `gather_target` requests are in its handlers at once (or after 5 s), so that the
 * calls that sent them are in flight together, each on a call connection of its own. */
static atomic_int gathered, gather_target;

static char *gathered_echo(void *ctx, const char *req, size_t len, size_t *out_len) {
    atomic_fetch_add(&gathered, 1);
    for (int i = 0; i < 500 && atomic_load(&gathered) < atomic_load(&gather_target); i++)
        usleep(10000);
    return slow_echo(ctx, req, len, out_len);
}

typedef struct {
    rp_transport_t *t;
    size_t n;
    bool ok;
} long_call_t;

static void *long_call(void *arg) {
    long_call_t *c = arg;
    char *body = long_body(c->n), *rep = NULL;
    size_t rn = 0;
    rp_err_t err;
    c->ok = rp_transport_call(c->t, RP_COMP_LOGIN, body, c->n, rp_now_ms() + 20000, &rep, &rn, &err) && rn == c->n &&
            memcmp(rep, body, rn) == 0;
    free(rep);
    free(body);
    return NULL;
}

/* Five long calls in a row on one thread (c->n bytes each); c->ok when all were answered whole. */
static void *long_calls_in_a_row(void *arg) {
    long_call_t *c = arg;
    bool ok = true;
    for (int i = 0; i < 5; i++) {
        long_call(c);
        ok = ok && c->ok;
    }
    c->ok = ok;
    return NULL;
}

/* Rounds of `conns` calls in flight at once on t, each with a reply of n bytes; returns how many
 * call connections were opened again after the last round. */
static long long_rounds(rp_transport_t *t, int conns, size_t n, int rounds) {
    long calls = 0, consumers;
    for (int r = 0; r < rounds; r++) {
        atomic_store(&gathered, 0);
        atomic_store(&gather_target, conns);
        pthread_t th[8];
        long_call_t c[8];
        cr_assert_leq(conns, 8);
        for (int i = 0; i < conns; i++) {
            c[i] = (long_call_t){.t = t, .n = n};
            cr_assert_eq(pthread_create(&th[i], NULL, long_call, &c[i]), 0);
        }
        for (int i = 0; i < conns; i++) {
            pthread_join(th[i], NULL);
            cr_assert(c[i].ok, "a long call of round %d failed", r);
        }
        cr_assert_eq(atomic_load(&gathered), conns, "round %d: the calls were not in flight together", r);
        reopened(t, &calls, &consumers);
    }
    return calls;
}

/* A thread making long calls (256 KiB) in steps the test drives through `phase`: one (then phase 1),
 * five once phase is 2 (then 3), one once phase is 4. */
typedef struct {
    rp_transport_t *t;
    atomic_int phase;
    bool ok;
} keeper_run_t;

static bool one_long_call(rp_transport_t *t) {
    long_call_t c = {.t = t, .n = 256 << 10};
    long_call(&c);
    return c.ok;
}

static void await_phase(keeper_run_t *run, int phase) {
    for (int i = 0; i < 2000 && atomic_load(&run->phase) < phase; i++)
        usleep(5000);
}

static void *keeper_run(void *arg) {
    keeper_run_t *run = arg;
    run->ok = one_long_call(run->t);
    atomic_store(&run->phase, 1);
    await_phase(run, 2);
    for (int i = 0; i < 5; i++)
        run->ok = one_long_call(run->t) && run->ok;
    atomic_store(&run->phase, 3);
    await_phase(run, 4);
    run->ok = one_long_call(run->t) && run->ok;
    return NULL;
}

static void wait_phase(keeper_run_t *run, int phase) {
    await_phase(run, phase);
    cr_assert_geq(atomic_load(&run->phase), phase, "the run of long calls did not reach step %d", phase);
}

static void *slow_login_call(void *arg) {
    long_call_t *c = arg;
    char *rep = NULL;
    size_t rn = 0;
    rp_err_t err;
    c->ok =
        rp_transport_call(c->t, RP_COMP_LOGIN, "{\"slow\":1}", 10, rp_now_ms() + 10000, &rep, &rn, &err) && rn == 10;
    free(rep);
    return NULL;
}

Test(amqp, a_connection_that_read_a_long_message_is_opened_again, .timeout = 60) {
    /* the login queue, which no other test here serves: tests run side by side, and its
     * consumers must be the ones that read its messages */
    rp_err_t err;
    long calls, consumers;
    rp_transport_t *t = transport_or_skip_with(4, 1);
    cr_assert(rp_transport_serve(t, RP_COMP_LOGIN, slow_echo, NULL, 4, &err), "%s", err.message);
    first_round_trip_on(t, RP_COMP_LOGIN);
    char *rep = NULL;
    size_t rn = 0;
    size_t short_n = RP_AMQP_KEEP_BYTES - 100;
    char *short_body = long_body(short_n);
    for (int i = 0; i < 4; i++) {
        cr_assert(rp_transport_call(t, RP_COMP_LOGIN, short_body, short_n, rp_now_ms() + 10000, &rep, &rn, &err), "%s",
                  err.message);
        cr_assert_eq(rn, short_n);
        free(rep);
    }
    free(short_body);
    /* a consumer counts after its reply; a stray count would also show in the counts below */
    first_round_trip_on(t, RP_COMP_LOGIN);
    reopened(t, &calls, &consumers);
    cr_assert_eq(calls + consumers, 0, "a message within the bounds keeps its connection");

    /* between the two bounds: the consumer is opened again, the call connection is not */
    size_t mid_n = RP_AMQP_KEEP_REPLY_BYTES - 100;
    char *mid_body = long_body(mid_n);
    cr_assert(rp_transport_call(t, RP_COMP_LOGIN, mid_body, mid_n, rp_now_ms() + 10000, &rep, &rn, &err), "%s",
              err.message);
    free(rep);
    free(mid_body);
    reopened(t, &calls, &consumers);
    cr_assert_eq(calls, 0, "a reply within its bound keeps the call connection");
    for (int i = 0; i < 200 && consumers < 1; i++, reopened(t, &calls, &consumers))
        usleep(50000);
    cr_assert_eq(consumers, 1);

    enum { CALLS = 8 };
    size_t n = 2 << 20;
    rp_memory_t before, after;
    rp_memory_read_heap(&before); /* without the body, freed before the heap is read again */
    char *body = long_body(n);
    for (int i = 0; i < CALLS; i++) {
        cr_assert(rp_transport_call(t, RP_COMP_LOGIN, body, n, rp_now_ms() + 10000, &rep, &rn, &err), "%s",
                  err.message);
        cr_assert_eq(rn, n);
        cr_assert(memcmp(rep, body, n) == 0, "the reply differs from the request");
        free(rep);
    }
    free(body);
    /* the call connection is opened again before its call returns; a consumer after it replied */
    reopened(t, &calls, &consumers);
    cr_assert_eq(calls, CALLS);
    for (int i = 0; i < 200 && consumers < 1 + CALLS; i++, reopened(t, &calls, &consumers))
        usleep(50000);
    cr_assert_eq(consumers, 1 + CALLS);
    rp_memory_read_heap(&after);
    cr_assert_lt(after.heap_in_use, before.heap_in_use + (512 << 10), "heap in use %zu before, %zu after",
                 before.heap_in_use, after.heap_in_use);
    /* and the connections opened again serve: a call, answered by whichever consumer takes it */
    for (int i = 0; i < 4; i++) {
        cr_assert(rp_transport_call(t, RP_COMP_LOGIN, "{\"again\":1}", 11, rp_now_ms() + 10000, &rep, &rn, &err), "%s",
                  err.message);
        cr_assert_eq(rn, 11u);
        free(rep);
    }
    rp_transport_free(t);

    /* Replies between the bounds on four call connections at once: only RP_AMQP_LONG_REPLY_CONNS
     * of them keep their pages, the others are opened again, round after round; the ones that
     * keep them keep them. (The same queue, served anew: tests here run side by side.) */
    enum { CONNS = 6 };
    cr_assert_lt(RP_AMQP_LONG_REPLY_CONNS, CONNS);
    t = transport_or_skip_with(CONNS, CONNS);
    cr_assert(rp_transport_serve(t, RP_COMP_LOGIN, gathered_echo, NULL, CONNS, &err), "%s", err.message);
    first_round_trip_on(t, RP_COMP_LOGIN);
    cr_assert_eq(keeping_long(t), 0);
    cr_assert_eq(long_rounds(t, CONNS, 256 << 10, 1), CONNS - RP_AMQP_LONG_REPLY_CONNS);
    cr_assert_eq(keeping_long(t), RP_AMQP_LONG_REPLY_CONNS);
    cr_assert_eq(long_rounds(t, CONNS, 256 << 10, 3), 4 * (CONNS - RP_AMQP_LONG_REPLY_CONNS));
    /* replies within RP_AMQP_KEEP_BYTES open nothing again, on whichever connection */
    long renewed = 4 * (CONNS - RP_AMQP_LONG_REPLY_CONNS);
    cr_assert_eq(long_rounds(t, CONNS, RP_AMQP_KEEP_BYTES - 100, 2), renewed);
    cr_assert_eq(keeping_long(t), RP_AMQP_LONG_REPLY_CONNS);
    /* a reply over RP_AMQP_KEEP_REPLY_BYTES opens every connection again, and those that kept
     * pages free their places: the next long replies take them */
    cr_assert_eq(long_rounds(t, CONNS, RP_AMQP_KEEP_REPLY_BYTES + 100, 1), renewed + CONNS);
    cr_assert_eq(keeping_long(t), 0);
    cr_assert_eq(long_rounds(t, CONNS, 256 << 10, 1), renewed + CONNS + (CONNS - RP_AMQP_LONG_REPLY_CONNS));
    cr_assert_eq(keeping_long(t), RP_AMQP_LONG_REPLY_CONNS);
    /* a thread that made no keeper, with every keeper made: its first long reply opens its
     * connection again, and it takes an idle keeper for the rest of its run */
    reopened(t, &calls, &consumers);
    long calls_before = calls;
    long_call_t in_a_row = {.t = t, .n = 256 << 10};
    pthread_t row_thread;
    cr_assert_eq(pthread_create(&row_thread, NULL, long_calls_in_a_row, &in_a_row), 0);
    pthread_join(row_thread, NULL);
    cr_assert(in_a_row.ok);
    reopened(t, &calls, &consumers);
    cr_assert_eq(calls, calls_before + 1, "%ld of its 5 long replies opened a connection again", calls - calls_before);
    cr_assert_eq(keeping_long(t), RP_AMQP_LONG_REPLY_CONNS);
    rp_transport_free(t);

    /* A run of long replies on one thread keeps to one connection, and other calls leave it free */
    t = transport_or_skip_with(CONNS, CONNS);
    cr_assert(rp_transport_serve(t, RP_COMP_LOGIN, gathered_echo, NULL, CONNS, &err), "%s", err.message);
    atomic_store(&gather_target, 0);
    first_round_trip_on(t, RP_COMP_LOGIN);
    cr_assert(rp_transport_amqp_connect(t, CONNS, &err), "%s", err.message);
    keeper_run_t run = {.t = t};
    pthread_t runner;
    cr_assert_eq(pthread_create(&runner, NULL, keeper_run, &run), 0);
    wait_phase(&run, 1); /* its first long reply kept; that connection was the last given back */
    cr_assert_eq(keeping_long(t), 1);
    /* a call that holds its connection for 400 ms takes another than the keeper... */
    int slow_before = atomic_load(&slow_started);
    long_call_t slow = {.t = t, .n = 0};
    pthread_t slow_thread;
    cr_assert_eq(pthread_create(&slow_thread, NULL, slow_login_call, &slow), 0);
    for (int i = 0; i < 500 && atomic_load(&slow_started) == slow_before; i++)
        usleep(10000);
    cr_assert_gt(atomic_load(&slow_started), slow_before);
    atomic_store(&run.phase, 2); /* ...so the run's long calls find their keeper free meanwhile */
    wait_phase(&run, 3);
    pthread_join(slow_thread, NULL);
    cr_assert(slow.ok);
    /* a short call takes a connection that keeps nothing and gives it back on top of the stack;
     * the run's next long call still takes its keeper */
    cr_assert(rp_transport_call(t, RP_COMP_LOGIN, "{\"short\":1}", 11, rp_now_ms() + 10000, &rep, &rn, &err), "%s",
              err.message);
    free(rep);
    atomic_store(&run.phase, 4);
    pthread_join(runner, NULL);
    cr_assert(run.ok, "a long call of the run failed");
    cr_assert_eq(keeping_long(t), 1, "the run's long replies spread over %d connections", keeping_long(t));
    reopened(t, &calls, &consumers);
    cr_assert_eq(calls, 0);
    rp_transport_free(t);
}

/* ---- the calling side's shared connections ---- */

/* The descriptors of this process's TCP connections to the broker's port, but skip (-1: none),
 * into fds (at most max); returns how many there are. */
static int broker_fds(int skip, int *fds, int max) {
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        int fd = atoi(e->d_name);
        if (fd > 2 && fd != skip && getpeername(fd, (struct sockaddr *)&peer, &len) == 0 &&
            peer.sin_family == AF_INET && ntohs(peer.sin_port) == 5672) {
            if (n < max) fds[n] = fd;
            n++;
        }
    }
    closedir(d);
    return n;
}

/* Open TCP connections of this process to the broker's port. */
static int broker_sockets(void) {
    int fds[64];
    return broker_fds(-1, fds, 64);
}

/* Polls, up to 10 s, until this process holds `want` connections to the broker (consumers connect
 * on threads of their own, after serve returns); returns the last count seen. */
static int broker_sockets_once(int want) {
    int n = 0;
    for (int i = 0; i < 200 && (n = broker_sockets()) != want; i++)
        usleep(50000);
    return n;
}

typedef struct {
    rp_transport_t *t;
    int64_t deadline_ms;
    bool ok;
    rp_err_t err;
    double cpu_ms; /* the calling thread's CPU time during the call */
} slow_call_t;

static double thread_cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *slow_call(void *arg) {
    slow_call_t *c = arg;
    char *rep = NULL;
    size_t n = 0;
    double cpu0 = thread_cpu_ms();
    c->ok = rp_transport_call(c->t, RP_COMP_EVENT, "{\"slow\":1}", 10, c->deadline_ms, &rep, &n, &c->err);
    c->cpu_ms = thread_cpu_ms() - cpu0;
    c->ok = c->ok && n == 10 && memcmp(rep, "{\"slow\":1}", 10) == 0;
    free(rep);
    return NULL;
}

/* A call waiting alone in the process polls its connection for its reply, up to the transport's
 * reply spin (100 ms here, of a 400 ms handler), before it sleeps: its thread spends CPU while
 * it waits. A call made while another waits sleeps at once. Both get their own answers. */
Test(amqp, a_call_waiting_alone_polls_for_its_reply_and_one_among_others_sleeps, .timeout = 60) {
    rp_err_t err;
    rp_transport_t *t = transport_or_skip_spinning(4, 4, 100000);
    cr_assert(rp_transport_serve(t, RP_COMP_EVENT, slow_echo, NULL, 2, &err), "%s", err.message);
    first_round_trip(t);
    slow_call_t lone = {.t = t, .deadline_ms = rp_now_ms() + 10000};
    slow_call(&lone);
    cr_assert(lone.ok, "%s", lone.err.message);
    /* it spun for up to 100 ms (29-41 ms of CPU with a soak beside it on 2 cores); a wait that
     * sleeps costs a few hundredths of a millisecond */
    cr_assert_gt(lone.cpu_ms, 5.0, "a lone call used %.2f ms of CPU: it slept", lone.cpu_ms);

    slow_call_t first = {.t = t, .deadline_ms = rp_now_ms() + 10000};
    slow_call_t second = {.t = t, .deadline_ms = rp_now_ms() + 10000};
    pthread_t th;
    int started = atomic_load(&slow_started);
    pthread_create(&th, NULL, slow_call, &first);
    while (atomic_load(&slow_started) == started) /* its request is being handled: it waits */
        usleep(1000);
    slow_call(&second);
    pthread_join(th, NULL);
    cr_assert(first.ok, "%s", first.err.message);
    cr_assert(second.ok, "%s", second.err.message);
    cr_assert_lt(second.cpu_ms, 10.0, "a call among others used %.2f ms of CPU: it spun", second.cpu_ms);
    rp_transport_free(t);
}

Test(amqp, calls_share_a_bounded_set_of_connections, .timeout = 60) {
    if (strstr(broker_url(), "127.0.0.1:5672") == NULL) cr_skip_test("counts sockets to 127.0.0.1:5672 only");
    rp_err_t err;
    rp_transport_t *t = transport_or_skip_with(4, 2);
    cr_assert(rp_transport_serve(t, RP_COMP_EVENT, slow_echo, NULL, 4, &err), "%s", err.message);
    char *rep = NULL;
    size_t n = 0;
    first_round_trip(t);
    /* the four consumers' connections and the one call connection used so far */
    int before = broker_sockets_once(4 + 1);
    cr_assert_eq(before, 4 + 1, "four consumers and one call connection");

    /* four calls at once on two connections: all answered, two of them after waiting their turn */
    enum { CALLS = 4 };
    slow_call_t calls[CALLS];
    pthread_t th[CALLS];
    for (int i = 0; i < CALLS; i++) {
        calls[i] = (slow_call_t){.t = t, .deadline_ms = rp_now_ms() + 10000};
        pthread_create(&th[i], NULL, slow_call, &calls[i]);
    }
    for (int i = 0; i < CALLS; i++) {
        pthread_join(th[i], NULL);
        cr_assert(calls[i].ok, "call %d: %s", i, calls[i].err.message);
    }
    cr_assert_eq(broker_sockets(), before + 1, "the second call connection was opened, and no more");

    /* both carrying a call: a call that cannot wait for one is told the process is overloaded */
    for (int i = 0; i < 2; i++) {
        calls[i] = (slow_call_t){.t = t, .deadline_ms = rp_now_ms() + 10000};
        pthread_create(&th[i], NULL, slow_call, &calls[i]);
    }
    usleep(100000); /* both slow calls have taken their connection (each is held 400 ms) */
    cr_assert_not(rp_transport_call(t, RP_COMP_EVENT, "{\"x\":1}", 7, rp_now_ms() + 50, &rep, &n, &err));
    cr_assert_str_eq(err.code, "OVERLOADED", "%s", err.message);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        cr_assert(calls[i].ok, "%s", calls[i].err.message);
    }
    /* opening ahead of time stops at the configured number */
    cr_assert(rp_transport_amqp_connect(t, 10, &err), "%s", err.message);
    cr_assert_eq(broker_sockets(), before + 1);
    rp_transport_free(t);
    cr_assert_eq(broker_sockets(), 0, "freeing the transport closes every connection");
}

Test(amqp, connecting_ahead_opens_the_connections_at_once, .timeout = 60) {
    if (strstr(broker_url(), "127.0.0.1:5672") == NULL) cr_skip_test("counts sockets to 127.0.0.1:5672 only");
    rp_err_t err;
    rp_transport_t *t = transport_or_skip_with(4, 8);
    int before = broker_sockets(); /* the readiness probe's connection */
    cr_assert(rp_transport_amqp_connect(t, 5, &err), "%s", err.message);
    cr_assert_eq(broker_sockets(), 5, "five connections open before any call, %d before", before);
    rp_transport_free(t);
    rp_transport_t *bad = rp_transport_amqp_new("amqp://guest:guest@127.0.0.1:1/", 4, 4, 0, &err);
    cr_assert_not(rp_transport_amqp_connect(bad, 2, &err));
    cr_assert_eq(err.kind, RP_ERR_UNAVAILABLE);
    rp_transport_free(bad);
}

/* ---- a publisher whose connection died while it was idle ---- */

/* Shuts down, under the publisher's feet, every connection of this process to the broker but
 * `keep` (the test's own): what the broker does to a publisher that missed its heartbeats. */
static int cut_others(amqp_connection_state_t keep) {
    int fds[64], cut = 0;
    int n = broker_fds(amqp_get_sockfd(keep), fds, 64);
    for (int i = 0; i < n && i < 64; i++)
        cut += shutdown(fds[i], SHUT_RDWR) == 0;
    return cut;
}

static bool publish_one(rp_amqp_publisher_t *p, const char *body, rp_err_t *err) {
    return rp_amqp_publisher_send(p, "k", NULL, body, strlen(body), true, err) &&
           rp_amqp_publisher_confirm(p, 5000, err);
}

Test(amqp, an_idle_publisher_replaces_its_connection_before_publishing, .timeout = 60) {
    if (strstr(broker_url(), "127.0.0.1:5672") == NULL) cr_skip_test("cuts connections to 127.0.0.1:5672 only");
    amqp_connection_state_t c = broker_connect();
    if (!c) cr_skip_test("no RabbitMQ at 127.0.0.1:5672");
    char ex[64], queue[64];
    snprintf(ex, sizeof ex, "test.idle.%d", (int)getpid());
    snprintf(queue, sizeof queue, "test.idle.q.%d", (int)getpid());
    amqp_exchange_declare(c, 1, amqp_cstring_bytes(ex), amqp_cstring_bytes("direct"), 0, 0, 1, 0, amqp_empty_table);
    amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 0, 0, 0, 1, amqp_empty_table);
    amqp_queue_bind(c, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes(ex), amqp_cstring_bytes("k"), amqp_empty_table);
    cr_assert_eq(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
    rp_err_t err;
    rp_amqp_publisher_t *p = rp_amqp_publisher_new(broker_url(), "test-idle-publisher", ex, NULL, &err);
    cr_assert_not_null(p, "%s", err.message);
    cr_assert(publish_one(p, "{\"n\":1}", &err), "%s", err.message);

    /* within the idle limit the connection is trusted: a dead one fails the publish (and is
     * dropped, so the next one reconnects) */
    cr_assert_eq(cut_others(c), 1, "the publisher holds one connection");
    cr_assert_not(publish_one(p, "{\"n\":2}", &err));
    cr_assert(publish_one(p, "{\"n\":3}", &err), "%s", err.message);

    /* past the limit it is replaced before the send, so a connection the broker closed while
     * the publisher sat idle costs nothing */
    rp_amqp_publisher_set_idle_ms(p, 0);
    cr_assert_eq(cut_others(c), 1);
    cr_assert(publish_one(p, "{\"n\":4}", &err), "%s", err.message);
    cr_assert_eq(depth(c, queue), 3, "messages 1, 3 and 4");
    rp_amqp_publisher_free(p);
    amqp_queue_delete(c, 1, amqp_cstring_bytes(queue), 0, 0);
    amqp_exchange_delete(c, 1, amqp_cstring_bytes(ex), 0);
    broker_close(c);
}

/* ---- a broker that never answers basic.consume ---- */

/* A TCP relay between the code under test and the broker that can drop the client's
 * basic.consume frames: the broker then never answers them, as a RabbitMQ restarted after
 * kill -9 was seen to do. One per test process (Criterion forks each test); its pump threads
 * use it until they end, so it is never freed. */
static struct {
    int lfd, port;
    atomic_int swallow;   /* basic.consume frames still to drop */
    atomic_int swallowed; /* dropped so far */
    atomic_int pumps;     /* pump threads running */
    pthread_mutex_t mu;
    int fds[64];
    int nfds;
} relay = {.mu = PTHREAD_MUTEX_INITIALIZER};

typedef struct {
    int from, to;
    bool parse; /* client to broker: look at the frames */
} pump_t;

static bool write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool take_swallow(void) {
    int left = atomic_load(&relay.swallow);
    while (left > 0)
        if (atomic_compare_exchange_weak(&relay.swallow, &left, left - 1)) return true;
    return false;
}

/* Forwards whole frames (after the 8-byte protocol header), dropping a basic.consume (method
 * frame of class 60, method 20) while take_swallow allows. */
static size_t forward_frames(const pump_t *p, const unsigned char *b, size_t have) {
    size_t off = 0;
    while (have - off >= 7) {
        size_t size = (size_t)b[off + 3] << 24 | (size_t)b[off + 4] << 16 | (size_t)b[off + 5] << 8 | b[off + 6];
        size_t len = 7 + size + 1;
        if (have - off < len) break;
        const unsigned char *m = b + off + 7;
        bool consume = b[off] == AMQP_FRAME_METHOD && size >= 4 && (m[0] << 8 | m[1]) == 60 && (m[2] << 8 | m[3]) == 20;
        if (consume && take_swallow())
            atomic_fetch_add(&relay.swallowed, 1);
        else if (!write_all(p->to, (const char *)b + off, len))
            return SIZE_MAX;
        off += len;
    }
    return off;
}

static void *pump_main(void *arg) {
    pump_t p = *(pump_t *)arg;
    free(arg);
    size_t cap = 300000, have = 0;
    unsigned char *b = malloc(cap);
    bool header = !p.parse;
    for (;;) {
        ssize_t n = read(p.from, b + have, cap - have);
        if (n <= 0) break;
        have += (size_t)n;
        size_t off = 0;
        if (!header) {
            if (have < 8) continue;
            if (!write_all(p.to, (const char *)b, 8)) break;
            header = true;
            off = 8;
        }
        size_t used = p.parse ? forward_frames(&p, b + off, have - off) : have - off;
        if (used == SIZE_MAX || (!p.parse && !write_all(p.to, (const char *)b + off, used))) break;
        off += used;
        memmove(b, b + off, have - off);
        have -= off;
    }
    free(b);
    shutdown(p.from, SHUT_RDWR);
    shutdown(p.to, SHUT_RDWR);
    atomic_fetch_sub(&relay.pumps, 1);
    return NULL;
}

static void start_pump(int from, int to, bool parse) {
    pump_t *p = malloc(sizeof *p);
    *p = (pump_t){.from = from, .to = to, .parse = parse};
    pthread_t th;
    atomic_fetch_add(&relay.pumps, 1);
    cr_assert_eq(pthread_create(&th, NULL, pump_main, p), 0);
    pthread_detach(th);
}

static void *accept_main(void *arg) {
    (void)arg;
    int cfd;
    while ((cfd = accept(relay.lfd, NULL, NULL)) >= 0) {
        int ufd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(5672)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(ufd, (struct sockaddr *)&a, sizeof a) != 0) {
            close(ufd);
            close(cfd);
            continue;
        }
        pthread_mutex_lock(&relay.mu);
        if (relay.nfds + 2 <= 64) {
            relay.fds[relay.nfds++] = cfd;
            relay.fds[relay.nfds++] = ufd;
        }
        pthread_mutex_unlock(&relay.mu);
        start_pump(cfd, ufd, true);
        start_pump(ufd, cfd, false);
    }
    return NULL;
}

/* Starts the relay on a free port of 127.0.0.1; url gets the broker's URL through it. */
static void relay_start(char *url, size_t cap) {
    relay.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    cr_assert_eq(bind(relay.lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(relay.lfd, 16), 0);
    cr_assert_eq(getsockname(relay.lfd, (struct sockaddr *)&a, &len), 0);
    relay.port = ntohs(a.sin_port);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, accept_main, NULL), 0);
    pthread_detach(th);
    const char *u = broker_url(), *at = strstr(u, "127.0.0.1:5672");
    snprintf(url, cap, "%.*s127.0.0.1:%d%s", (int)(at - u), u, relay.port, at + strlen("127.0.0.1:5672"));
}

/* Cuts every connection through the relay (the pumps end); with stop, the listener too, and
 * waits for the pumps. */
static void relay_cut(bool stop) {
    if (stop) shutdown(relay.lfd, SHUT_RDWR);
    pthread_mutex_lock(&relay.mu);
    for (int i = 0; i < relay.nfds; i++)
        shutdown(relay.fds[i], SHUT_RDWR);
    pthread_mutex_unlock(&relay.mu);
    if (!stop) return;
    for (int i = 0; i < 200 && atomic_load(&relay.pumps) > 0; i++)
        usleep(50000);
    pthread_mutex_lock(&relay.mu);
    for (int i = 0; i < relay.nfds; i++)
        close(relay.fds[i]);
    relay.nfds = 0;
    pthread_mutex_unlock(&relay.mu);
    close(relay.lfd);
}

/* Polls, up to 30 s, until the relay has dropped n basic.consume frames. */
static int swallowed_once(int n) {
    for (int i = 0; i < 600 && atomic_load(&relay.swallowed) < n; i++)
        usleep(50000);
    return atomic_load(&relay.swallowed);
}

Test(amqp, a_consumer_the_broker_never_answers_reconnects_and_stops, .timeout = 60) {
    if (strstr(broker_url(), "127.0.0.1:5672") == NULL) cr_skip_test("relays to 127.0.0.1:5672 only");
    amqp_connection_state_t c = broker_connect();
    if (!c) cr_skip_test("no RabbitMQ at 127.0.0.1:5672");
    char url[256], queue[64], dlq[80];
    relay_start(url, sizeof url);
    snprintf(queue, sizeof queue, "test.swallow.%ld", (long)getpid());
    snprintf(dlq, sizeof dlq, "%s.dlq", queue);
    rp_err_t err;
    rp_transport_t *t = rp_transport_amqp_new(url, 4, 4, 0, &err);
    cr_assert_not_null(t, "%s", err.message);

    /* the consumer's first basic.consume is never answered: it gives that connection up and
     * consumes on a new one, so the message is handled */
    work_reset();
    atomic_store(&relay.swallow, 1);
    cr_assert(rp_transport_consume(t, queue, count_work, "{\"bad\":", 1, &err), "%s", err.message);
    cr_assert_eq(swallowed_once(1), 1);
    const char *one[] = {"{\"x\":1}"};
    size_t one_len[] = {7};
    cr_assert(rp_transport_enqueue(t, queue, one, one_len, 1, &err), "%s", err.message);
    work_wait(1, 0, 600, 50000);
    cr_assert_eq(atomic_load(&work_seen), 1, "the consumer never consumed again");

    /* its connection lost, it reconnects, and no basic.consume is answered any more: stopping
     * the transport does not wait for an answer forever */
    atomic_store(&relay.swallow, 1000);
    relay_cut(false);
    cr_assert_eq(swallowed_once(2), 2);
    rp_transport_free(t);
    relay_cut(true);
    amqp_queue_delete(c, 1, amqp_cstring_bytes(queue), 0, 0);
    amqp_queue_delete(c, 1, amqp_cstring_bytes(dlq), 0, 0);
    broker_close(c);
}

/* ---- stopping ---- */

/* A handler held until the test lets it go; with a transport as ctx, it then asks the auth
 * component through that transport and answers with the auth reply, as a worker's handler asks
 * the account lookups. */
static atomic_int held_started, held_release;

static char *held_echo(void *ctx, const char *req, size_t len, size_t *out_len) {
    atomic_fetch_add(&held_started, 1);
    while (!atomic_load(&held_release))
        usleep(1000);
    if (!ctx) return slow_echo(NULL, req, len, out_len);
    char *rep = NULL;
    rp_err_t err;
    if (!rp_transport_call(ctx, RP_COMP_AUTH, req, len, rp_now_ms() + 10000, &rep, out_len, &err)) {
        char *out = strdup("{\"call\":\"failed\"}");
        *out_len = strlen(out);
        return out;
    }
    return rep;
}

static void held_reset(void) {
    atomic_store(&held_started, 0);
    atomic_store(&held_release, 0);
}

static void held_wait_started(int n) {
    for (int i = 0; i < 3000 && atomic_load(&held_started) < n; i++)
        usleep(10000);
    cr_assert_geq(atomic_load(&held_started), n, "the held handler never started");
}

typedef struct call_arg {
    rp_transport_t *t;
    rp_component_t comp;
    int64_t budget_ms;
    bool ok;
    rp_err_t err;
    char *reply;
    size_t len;
    int64_t ended_ms; /* monotonic */
} call_arg_t;

static void *call_main(void *arg) {
    call_arg_t *a = arg;
    a->ok =
        rp_transport_call(a->t, a->comp, "{\"held\":1}", 10, rp_now_ms() + a->budget_ms, &a->reply, &a->len, &a->err);
    a->ended_ms = rp_mono_ms();
    return NULL;
}

/* a ended with 503 UNAVAILABLE within 5 s of since_ms (monotonic), not at the end of its budget */
static void assert_gave_up(const call_arg_t *a, int64_t since_ms, const char *what) {
    cr_assert_not(a->ok, "%s was answered", what);
    cr_assert_str_eq(a->err.code, "UNAVAILABLE", "%s: %s", what, a->err.message);
    cr_assert_lt(a->ended_ms - since_ms, 5000, "%s waited %lld ms", what, (long long)(a->ended_ms - since_ms));
}

static void *stop_main(void *arg) {
    rp_transport_stop(arg);
    return NULL;
}

Test(amqp, a_stop_wakes_the_idle_consumers_at_once, .timeout = 60) {
    rp_err_t err;
    rp_transport_t *t = transport_or_skip(4);
    cr_assert(rp_transport_serve(t, RP_COMP_EVENT, slow_echo, NULL, 4, &err), "%s", err.message);
    first_round_trip(t);
    /* each consumer waits up to 5 s for input before it looks again (IDLE_WAIT_MS): the one that
     * just answered has begun such a wait, which only the stop's wake-up cuts short */
    int64_t t0 = rp_mono_ms();
    rp_transport_stop(t);
    int64_t took = rp_mono_ms() - t0;
    cr_assert_lt(took, 2500, "the stop waited %lld ms for its idle consumers", (long long)took);
    rp_transport_free(t);
}

Test(amqp, a_stop_lets_handlers_finish_their_calls_then_ends_the_calls_left_waiting, .timeout = 90) {
    rp_err_t err;
    held_reset();
    rp_transport_t *helper = transport_or_skip(4), *worker = transport_or_skip(4), *caller = transport_or_skip(4);
    cr_assert(rp_transport_serve(helper, RP_COMP_AUTH, slow_echo, NULL, 2, &err), "%s", err.message);
    first_round_trip_on(caller, RP_COMP_AUTH);
    cr_assert(rp_transport_serve(worker, RP_COMP_EVENT, held_echo, worker, 2, &err), "%s", err.message);

    /* a worker stops while its handler is held: the handler's own call, made after the stop
     * began, is answered, and so is the request it serves */
    call_arg_t served = {.t = caller, .comp = RP_COMP_EVENT, .budget_ms = 30000};
    pthread_t th, stopper;
    cr_assert_eq(pthread_create(&th, NULL, call_main, &served), 0);
    held_wait_started(1);
    cr_assert_eq(pthread_create(&stopper, NULL, stop_main, worker), 0);
    for (int i = 0; i < 3000 && rp_transport_ready(worker, &err); i++)
        usleep(1000);
    cr_assert_not(rp_transport_ready(worker, &err), "the stop never began");
    atomic_store(&held_release, 1);
    pthread_join(stopper, NULL);
    pthread_join(th, NULL);
    cr_assert(served.ok, "%s", served.err.message);
    cr_assert_eq(served.len, 10u);
    cr_assert(memcmp(served.reply, "{\"held\":1}", 10) == 0, "%.*s", (int)served.len, served.reply);
    free(served.reply);
    rp_transport_free(worker);

    /* a call whose handler is held, from a process that stops (an api's cache asking a worker
     * that is going away): it gives up at the stop, not at the end of its 30 s */
    held_reset();
    rp_transport_t *holder = transport_or_skip(4);
    cr_assert(rp_transport_serve(holder, RP_COMP_EVENT, held_echo, NULL, 1, &err), "%s", err.message);
    call_arg_t waiting = {.t = caller, .comp = RP_COMP_EVENT, .budget_ms = 30000};
    cr_assert_eq(pthread_create(&th, NULL, call_main, &waiting), 0);
    held_wait_started(1);
    int64_t stopped_at = rp_mono_ms();
    rp_transport_stop(caller);
    pthread_join(th, NULL);
    assert_gave_up(&waiting, stopped_at, "the call waiting at the stop");

    /* and a call made after the stop fails at once too */
    call_arg_t late = {.t = caller, .comp = RP_COMP_EVENT, .budget_ms = 30000};
    int64_t late_at = rp_mono_ms();
    call_main(&late);
    assert_gave_up(&late, late_at, "a call after the stop");
    atomic_store(&held_release, 1);
    rp_transport_free(holder);
    rp_transport_free(caller);
    rp_transport_free(helper);
}
