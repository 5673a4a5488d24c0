/* Tests the shared calls of lib/transport_amqp.c against a real RabbitMQ: calls that wait
 * together travel as one bundle, each is answered its own, a call gives up at its own deadline,
 * and a malformed bundle is dead-lettered. One test, its scenarios in turn: they hold
 * event.requests, and a scenario must know which worker serves it. test_transport_amqp.c's tests
 * use the same queues, and run_unit.sh runs one binary at a time. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amqp_broker.h"
#include "amqp_transport_fixture.h"
#include "timeutil.h"
#include "transport.h"

/* Echoes; a request {"gate":K} is first held until gate_open reaches K. */
static atomic_int gate_started, gate_open;

static char *gate_echo(void *ctx, const char *req, size_t len, size_t *out_len) {
    if (len > 8 && memcmp(req, "{\"gate\":", 8) == 0) {
        int k = req[8] - '0'; /* one digit; the bytes are not NUL-terminated */
        atomic_fetch_add(&gate_started, 1);
        while (atomic_load(&gate_open) < k)
            usleep(1000);
    }
    return echo_handler(ctx, req, len, out_len);
}

typedef struct shared_arg {
    rp_transport_t *t;
    char req[32];
    int64_t deadline_ms; /* epoch */
    bool ok;
    rp_err_t err;
    char *reply;
    size_t len;
    int64_t ended_ms; /* epoch */
} shared_arg_t;

static void *shared_main(void *arg) {
    shared_arg_t *a = arg;
    a->ok = rp_transport_call_shared(a->t, RP_COMP_EVENT, a->req, strlen(a->req), a->deadline_ms, &a->reply, &a->len,
                                     &a->err);
    a->ended_ms = rp_now_ms();
    return NULL;
}

static void start_shared(pthread_t *th, shared_arg_t *a, rp_transport_t *t, const char *req, int64_t deadline_ms) {
    *a = (shared_arg_t){.t = t, .deadline_ms = deadline_ms};
    snprintf(a->req, sizeof a->req, "%s", req);
    cr_assert_eq(pthread_create(th, NULL, shared_main, a), 0);
}

static rp_amqp_stats_t stats_of(rp_transport_t *t) {
    rp_amqp_stats_t s;
    cr_assert(rp_transport_amqp_stats(t, &s));
    return s;
}

/* Waits up to 10 s until n shared calls of t wait for a lane. */
static void await_shared_waiting(rp_transport_t *t, int n) {
    for (int i = 0; i < 1000 && stats_of(t).shared_waiting != n; i++)
        usleep(10000);
    cr_assert_eq(stats_of(t).shared_waiting, n, "shared calls waiting");
}

static void await_gate_started(int n) {
    for (int i = 0; i < 1000 && atomic_load(&gate_started) < n; i++)
        usleep(10000);
    cr_assert_geq(atomic_load(&gate_started), n, "the gated request never reached the worker");
}

static void assert_echoed(const shared_arg_t *a) {
    cr_assert(a->ok, "%s: %s", a->req, a->err.message);
    cr_assert_eq(a->len, strlen(a->req), "%s got %.*s", a->req, (int)a->len, a->reply);
    cr_assert(memcmp(a->reply, a->req, a->len) == 0, "%s got %.*s", a->req, (int)a->len, a->reply);
}

#define COMPANY 20

/* A worker serving gate_echo on event.requests, the gate closed, and a caller whose shared calls
 * bundle up to 64 at a time on one lane. */
static void gated_pair(rp_transport_t **worker, rp_transport_t **caller) {
    rp_err_t err;
    atomic_store(&gate_started, 0);
    atomic_store(&gate_open, 0);
    *worker = transport_or_skip(4);
    *caller = transport_or_skip(4);
    cr_assert(rp_transport_serve(*worker, RP_COMP_EVENT, gate_echo, NULL, 2, &err), "%s", err.message);
    first_round_trip(*caller);
    rp_transport_amqp_bundle(*caller, 64, 1);
}

/* One round on caller with one lane: a call {"gate":k} goes alone and is held at the worker,
 * COMPANY calls {"<key>":i} wait for the lane meanwhile, then the gate opens and every call must
 * be answered its own. */
static void gated_round(rp_transport_t *caller, int k, const char *key) {
    pthread_t first_th, th[COMPANY];
    shared_arg_t first, company[COMPANY];
    int64_t deadline = rp_now_ms() + 30000;
    char req[32];
    atomic_store(&gate_started, 0);
    snprintf(req, sizeof req, "{\"gate\":%d}", k);
    start_shared(&first_th, &first, caller, req, deadline);
    await_gate_started(1);
    for (int i = 0; i < COMPANY; i++) {
        snprintf(req, sizeof req, "{\"%s\":%d}", key, i);
        start_shared(&th[i], &company[i], caller, req, deadline);
    }
    await_shared_waiting(caller, COMPANY);
    atomic_store(&gate_open, k);
    pthread_join(first_th, NULL);
    assert_echoed(&first);
    free(first.reply);
    for (int i = 0; i < COMPANY; i++) {
        pthread_join(th[i], NULL);
        assert_echoed(&company[i]);
        free(company[i].reply);
    }
    cr_assert_eq(stats_of(caller).shared_waiting, 0);
}

/* Calls that wait together for the lane travel as one bundle, each answered its own; a call alone
 * travels as a plain message; a bundle holds at most max calls. */
static void calls_that_wait_together_travel_as_one_bundle(void) {
    rp_transport_t *worker, *caller;
    gated_pair(&worker, &caller);
    gated_round(caller, 1, "n");
    rp_amqp_stats_t cs = stats_of(caller), ws = stats_of(worker);
    cr_assert_eq(cs.bundles_sent, 1, "the held call went alone, the others together");
    cr_assert_eq(cs.bundled_calls, COMPANY);
    cr_assert_eq(ws.bundles_served, 1);

    /* 20 waiting with a max of 8 leave as 8, 8 and 4 */
    rp_transport_amqp_bundle(caller, 8, 1);
    gated_round(caller, 2, "m");
    cs = stats_of(caller);
    cr_assert_eq(cs.bundles_sent, 1 + 3);
    cr_assert_eq(cs.bundled_calls, COMPANY + COMPANY);
    rp_transport_free(caller);
    rp_transport_free(worker);
}

/* A shared call gives up at its own deadline, waiting for the lane (503) or in a bundle held at
 * the worker (504), and the bundle goes on without it. */
static void a_call_gives_up_at_its_own_deadline(void) {
    rp_transport_t *worker, *caller;
    gated_pair(&worker, &caller);
    pthread_t first_th, lead_th, short_th, queued_th;
    shared_arg_t first, lead, short_one, queued;
    start_shared(&first_th, &first, caller, "{\"gate\":1}", rp_now_ms() + 30000);
    await_gate_started(1);

    /* waiting for the lane past its deadline: 503 OVERLOADED, and it leaves the queue */
    start_shared(&queued_th, &queued, caller, "{\"q\":1}", rp_now_ms() + 300);
    pthread_join(queued_th, NULL);
    cr_assert_not(queued.ok);
    cr_assert_str_eq(queued.err.code, "OVERLOADED", "%s", queued.err.message);
    cr_assert_geq(queued.ended_ms, queued.deadline_ms, "it gave up before its deadline");
    cr_assert_eq(stats_of(caller).shared_waiting, 0);

    /* a call whose deadline passes while its bundle is held at the worker: 504 at its deadline;
     * the bundle's other call is answered when the worker is done */
    start_shared(&lead_th, &lead, caller, "{\"gate\":2}", rp_now_ms() + 30000);
    await_shared_waiting(caller, 1);
    start_shared(&short_th, &short_one, caller, "{\"n\":7}", rp_now_ms() + 1500);
    await_shared_waiting(caller, 2);
    atomic_store(&gate_open, 1);
    pthread_join(first_th, NULL);
    assert_echoed(&first);
    free(first.reply);
    pthread_join(short_th, NULL);
    cr_assert_not(short_one.ok, "answered although its bundle is held");
    cr_assert_str_eq(short_one.err.code, "WORKER_TIMEOUT", "%s", short_one.err.message);
    cr_assert_geq(short_one.ended_ms, short_one.deadline_ms, "it gave up before its deadline");
    cr_assert_eq(stats_of(caller).bundled_calls, 2, "the two did not travel together");
    atomic_store(&gate_open, 2);
    pthread_join(lead_th, NULL);
    assert_echoed(&lead);
    free(lead.reply);
    cr_assert_eq(stats_of(worker).bundles_served, 1);
    rp_transport_free(caller);
    rp_transport_free(worker);
}

/* Publishes body as a bundle to event.requests with a plain connection. */
static void publish_bundle(amqp_connection_state_t c, const char *body) {
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_TYPE_FLAG;
    p.type = amqp_cstring_bytes("rp.bundle");
    amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes("event.requests"), 0, 0, &p,
                       amqp_cstring_bytes(body));
}

/* A malformed bundle is dead-lettered and the consumer goes on. */
static void a_malformed_bundle_is_dead_lettered(void) {
    rp_err_t err;
    rp_transport_t *worker = transport_or_skip(4), *caller = transport_or_skip(4);
    cr_assert(rp_transport_serve(worker, RP_COMP_EVENT, echo_handler, NULL, 2, &err), "%s", err.message);
    first_round_trip(caller);
    amqp_connection_state_t c = plain();
    const char *bad[] = {"3:ab,", "2:{}", "02:{},", "2:{},x", "x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        amqp_queue_purge(c, 1, amqp_cstring_bytes("event.requests.dlq"));
        publish_bundle(c, bad[i]);
        cr_assert_eq(depth_once_filled(c, "event.requests.dlq"), 1, "%s was not dead-lettered", bad[i]);
    }
    /* a well-formed one with nobody to answer is served and acknowledged */
    amqp_queue_purge(c, 1, amqp_cstring_bytes("event.requests.dlq"));
    publish_bundle(c, "2:{},2:{},");
    for (int i = 0; i < 500 && stats_of(worker).bundles_served < 1; i++)
        usleep(10000);
    cr_assert_eq(stats_of(worker).bundles_served, 1);
    cr_assert_eq(depth(c, "event.requests.dlq"), 0);
    broker_close(c);
    first_round_trip(caller); /* the consumers still answer */
    rp_transport_free(caller);
    rp_transport_free(worker);
}

/* A process that stops ends its shared calls at once, the one on its way and those queued for
 * the lane, each 503 UNAVAILABLE, not at the end of their 30 s. */
static void a_stop_ends_the_shared_calls_at_once(void) {
    rp_transport_t *worker, *caller;
    gated_pair(&worker, &caller);
    enum { QUEUED = 5 };
    pthread_t th[1 + QUEUED];
    shared_arg_t calls[1 + QUEUED];
    int64_t deadline = rp_now_ms() + 30000;
    start_shared(&th[0], &calls[0], caller, "{\"gate\":1}", deadline);
    await_gate_started(1);
    for (int i = 1; i <= QUEUED; i++) {
        char req[32];
        snprintf(req, sizeof req, "{\"s\":%d}", i);
        start_shared(&th[i], &calls[i], caller, req, deadline);
    }
    await_shared_waiting(caller, QUEUED);
    int64_t stopped_at = rp_now_ms();
    rp_transport_stop(caller);
    for (int i = 0; i <= QUEUED; i++) {
        pthread_join(th[i], NULL);
        cr_assert_not(calls[i].ok, "%s was answered", calls[i].req);
        cr_assert_str_eq(calls[i].err.code, "UNAVAILABLE", "%s: %s", calls[i].req, calls[i].err.message);
        cr_assert_lt(calls[i].ended_ms - stopped_at, 5000, "%s waited %lld ms after the stop", calls[i].req,
                     (long long)(calls[i].ended_ms - stopped_at));
    }
    cr_assert_eq(stats_of(caller).shared_waiting, 0);
    atomic_store(&gate_open, 1);
    rp_transport_free(caller);
    rp_transport_free(worker);
}

Test(amqp_bundle, shared_calls_travel_in_bundles_and_give_up_at_their_own_deadlines, .timeout = 120) {
    calls_that_wait_together_travel_as_one_bundle();
    a_call_gives_up_at_its_own_deadline();
    a_malformed_bundle_is_dead_lettered();
    a_stop_ends_the_shared_calls_at_once();
}
