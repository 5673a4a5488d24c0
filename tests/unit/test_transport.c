/* Tests lib/transport_inproc.c and lib/rpc.c: delivery, bounded waiting (503), deadlines (504),
 * that a late reply never reaches another caller, and stop. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envelope_fixture.h"
#include "process.h"
#include "rpc.h"
#include "timeutil.h"
#include "transport.h"
#include "work_counter.h"

static char *echo(void *ctx, const char *req, size_t len, size_t *out_len) {
    (void)ctx;
    char *out = malloc(len + 1);
    memcpy(out, req, len);
    *out_len = len;
    return out;
}

Test(inproc, echo_round_trip) {
    rp_transport_t *t = rp_transport_inproc_new(4);
    rp_err_t err;
    cr_assert(rp_transport_serve(t, RP_COMP_AUTH, echo, NULL, 2, &err));
    char *rep;
    size_t n;
    cr_assert(rp_transport_call(t, RP_COMP_AUTH, "hello", 5, rp_now_ms() + 2000, &rep, &n, &err), "%s", err.message);
    cr_assert_eq(n, 5u);
    cr_assert(memcmp(rep, "hello", 5) == 0);
    free(rep);
    /* the amqp transport's figures are not this one's to give */
    rp_amqp_stats_t s = {.reopened_calls = 7, .long_reply_conns = 7};
    cr_assert_not(rp_transport_amqp_stats(t, &s));
    cr_assert_eq(s.reopened_calls + s.reopened_consumers + s.long_reply_conns, 0);
    rp_transport_free(t);
}

Test(inproc, unserved_component_is_503) {
    rp_transport_t *t = rp_transport_inproc_new(4);
    rp_err_t err;
    char *rep;
    size_t n;
    cr_assert_not(rp_transport_call(t, RP_COMP_EVENT, "x", 1, rp_now_ms() + 1000, &rep, &n, &err));
    cr_assert_eq(err.kind, RP_ERR_UNAVAILABLE);
    cr_assert(rp_transport_ready(t, &err));
    rp_transport_stop(t);
    cr_assert_not(rp_transport_ready(t, &err));
    rp_transport_free(t);
}

/* A handler that blocks until released, to fill the queue deterministically. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static atomic_int entered;

static char *gated(void *ctx, const char *req, size_t len, size_t *out_len) {
    atomic_fetch_add(&entered, 1);
    pthread_mutex_lock(&gate_mu);
    while (!gate_open)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    return echo(ctx, req, len, out_len);
}

typedef struct call_arg {
    rp_transport_t *t;
    const char *msg;
    int64_t deadline;
    bool ok;
    int status;
    char reply[32];
} call_arg_t;

static void *caller(void *p) {
    call_arg_t *a = p;
    char *rep = NULL;
    size_t n = 0;
    rp_err_t err;
    a->ok = rp_transport_call(a->t, RP_COMP_REWARD, a->msg, strlen(a->msg), a->deadline, &rep, &n, &err);
    a->status = a->ok ? 200 : rp_err_http_status(err.kind);
    if (rep) snprintf(a->reply, sizeof a->reply, "%.*s", (int)n, rep);
    free(rep);
    return NULL;
}

static void open_gate(void) {
    pthread_mutex_lock(&gate_mu);
    gate_open = true;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

/* Opens the gate once the transport (arg) has begun to stop, so that nothing waiting can run. */
static void *open_gate_later(void *arg) {
    rp_err_t err;
    while (rp_transport_ready(arg, &err))
        usleep(1000);
    open_gate();
    return NULL;
}

/* One slot and one waiting place: while "first" holds the slot (its handler runs on its caller's
 * thread and blocks), of three more callers one waits and two are refused at once with
 * OVERLOADED; when the slot frees, the waiting one runs and gets its own reply. */
static atomic_int finished;

static void *counted_caller(void *p) {
    caller(p);
    atomic_fetch_add(&finished, 1);
    return NULL;
}

Test(inproc, full_queue_answers_503_at_once) {
    rp_transport_t *t = rp_transport_inproc_new(1);
    rp_err_t err;
    cr_assert(rp_transport_serve(t, RP_COMP_REWARD, gated, NULL, 1, &err));
    call_arg_t a = {t, "first", rp_now_ms() + 20000, false, 0, ""};
    pthread_t ta, tb[3];
    pthread_create(&ta, NULL, caller, &a);
    while (atomic_load(&entered) < 1)
        usleep(1000); /* "first" now holds the slot */
    call_arg_t b[3] = {{t, "b0", rp_now_ms() + 20000, false, 0, ""},
                       {t, "b1", rp_now_ms() + 20000, false, 0, ""},
                       {t, "b2", rp_now_ms() + 20000, false, 0, ""}};
    for (int i = 0; i < 3; i++)
        pthread_create(&tb[i], NULL, counted_caller, &b[i]);
    while (atomic_load(&finished) < 2)
        usleep(1000); /* two are refused while the gate is still shut */
    open_gate();
    pthread_join(ta, NULL);
    for (int i = 0; i < 3; i++)
        pthread_join(tb[i], NULL);
    cr_assert(a.ok);
    cr_assert_str_eq(a.reply, "first");
    int ok = 0, overloaded = 0;
    for (int i = 0; i < 3; i++) {
        if (b[i].ok) {
            ok++;
            cr_assert_str_eq(b[i].reply, b[i].msg, "a caller got another's reply");
        } else if (b[i].status == 503) {
            overloaded++;
        }
    }
    cr_assert_eq(ok, 1);
    cr_assert_eq(overloaded, 2);
    cr_assert_eq(atomic_load(&entered), 2);
    rp_transport_free(t);
}

/* A call that waits for a slot past its deadline gets 504 and never runs. */
Test(inproc, expired_waiting_call_never_runs) {
    rp_transport_t *t = rp_transport_inproc_new(8);
    rp_err_t err;
    cr_assert(rp_transport_serve(t, RP_COMP_REWARD, gated, NULL, 1, &err));
    call_arg_t a = {t, "first", rp_now_ms() + 20000, false, 0, ""};
    pthread_t ta;
    pthread_create(&ta, NULL, caller, &a);
    while (atomic_load(&entered) < 1)
        usleep(1000);
    call_arg_t b = {t, "late", rp_now_ms() + 200, false, 0, ""};
    caller(&b);
    cr_assert_eq(b.status, 504);
    open_gate();
    pthread_join(ta, NULL);
    cr_assert(a.ok);
    cr_assert_eq(atomic_load(&entered), 1, "the expired call must not have run");
    rp_transport_free(t);
}

/* The handler runs on the caller's thread; when it ends after the deadline, the caller gets 504
 * and the late reply is dropped, never handed to the next call. */
Test(inproc, deadline_gives_504_and_late_reply_is_dropped) {
    rp_transport_t *t = rp_transport_inproc_new(8);
    rp_err_t err;
    cr_assert(rp_transport_serve(t, RP_COMP_REWARD, gated, NULL, 1, &err));
    call_arg_t a = {t, "slow", rp_now_ms() + 200, false, 0, ""};
    pthread_t ta;
    pthread_create(&ta, NULL, caller, &a);
    while (atomic_load(&entered) < 1)
        usleep(1000);
    while (rp_now_ms() <= a.deadline + 5)
        usleep(1000);
    open_gate();
    pthread_join(ta, NULL);
    cr_assert_not(a.ok);
    cr_assert_eq(a.status, 504);
    call_arg_t b = {t, "fresh", rp_now_ms() + 5000, false, 0, ""};
    caller(&b);
    cr_assert(b.ok);
    cr_assert_str_eq(b.reply, "fresh");
    rp_transport_free(t);
}

/* Stop answers waiting calls 503 and lets the running one finish. */
Test(inproc, stop_refuses_waiting_calls_and_waits_for_running_ones) {
    rp_transport_t *t = rp_transport_inproc_new(8);
    rp_err_t err;
    cr_assert(rp_transport_serve(t, RP_COMP_REWARD, gated, NULL, 1, &err));
    call_arg_t a = {t, "running", rp_now_ms() + 20000, false, 0, ""};
    call_arg_t b = {t, "waiting", rp_now_ms() + 20000, false, 0, ""};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, caller, &a);
    while (atomic_load(&entered) < 1)
        usleep(1000);
    pthread_create(&tb, NULL, caller, &b);
    pthread_t opener; /* "waiting" may or may not wait yet: either way it must not run */
    pthread_create(&opener, NULL, open_gate_later, t);
    rp_transport_stop(t); /* returns once "running" has finished */
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_join(opener, NULL);
    cr_assert(a.ok);
    cr_assert_not(b.ok);
    cr_assert_eq(b.status, 503);
    cr_assert_eq(atomic_load(&entered), 1);
    rp_transport_free(t);
}

static void op_echo_route(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    (void)ctx;
    rp_reply_set(rep, 200, json_pack("{s:s, s:s}", "route", env->route, "user", env->caller.username));
}

Test(rpc, service_dispatch_and_errors) {
    static const rp_route_op_t ops[] = {{"GET", "/x", op_echo_route}};
    rp_service_t svc = {"test", ops, 1, NULL, NULL, NULL, NULL};
    rp_transport_t *t = rp_transport_inproc_new(8);
    rp_err_t err;
    cr_assert(rp_transport_serve(t, RP_COMP_EVENT, rp_rpc_service_handler, &svc, 2, &err));
    rp_envelope_t env;
    rp_reply_t rep;
    rp_identity_t carol = signed_in("65f0a1b2c3d4e5f601234567", "carol", 1);
    envelope_call(&env, "GET", "/x", &carol);
    env.deadline_ms = rp_now_ms() + 5000;
    rp_rpc_call(t, RP_COMP_EVENT, &env, &rep);
    cr_assert_eq(rep.status, 200);
    cr_assert_str_eq(json_string_value(json_object_get(rep.body, "user")), "carol");
    rp_reply_clear(&rep);
    strcpy(env.route, "/nope");
    rp_rpc_call(t, RP_COMP_EVENT, &env, &rep);
    cr_assert_eq(rep.status, 404);
    rp_reply_clear(&rep);
    env.deadline_ms = rp_now_ms() - 1; /* already expired: never executed */
    strcpy(env.route, "/x");
    rp_rpc_call(t, RP_COMP_EVENT, &env, &rep);
    cr_assert_eq(rep.status, 504);
    rp_reply_clear(&rep);
    /* garbage bytes straight at the handler: a 400 reply, no crash */
    size_t n;
    char *out = rp_rpc_service_handler(&svc, "{\"method\":", 10, &n);
    cr_assert(strstr(out, "BAD_MESSAGE"));
    free(out);
    rp_envelope_clear(&env);
    rp_transport_free(t);
}

static void op_body_size(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    (void)ctx;
    rp_reply_set(rep, 201, json_pack("{s:I}", "ids", (json_int_t)json_array_size(json_object_get(env->body, "ids"))));
}

/* The api's call: the worker gets the whole body, the success comes back (in process as the
 * worker's own reply), and the caller's body is released (a 100,000-id batch is not held
 * twice). */
Test(rpc, raw_call_takes_the_body_and_keeps_the_reply_text) {
    static const rp_route_op_t ops[] = {{"POST", "/b", op_body_size}};
    rp_service_t svc = {"test", ops, 1, NULL, NULL, NULL, NULL};
    rp_transport_t *t = rp_transport_inproc_new(8);
    rp_err_t err;
    cr_assert(rp_transport_serve(t, RP_COMP_REWARD, rp_rpc_service_handler, &svc, 2, &err));
    rp_envelope_t env;
    rp_reply_t rep;
    rp_identity_t carol = signed_in("65f0a1b2c3d4e5f601234567", "carol", 1);
    envelope_call(&env, "POST", "/b", &carol);
    env.deadline_ms = rp_now_ms() + 5000;
    json_t *ids = json_array();
    for (int i = 0; i < 1000; i++)
        json_array_append_new(ids, json_sprintf("%024d", i));
    json_t *body = json_pack("{s:o}", "ids", ids);
    env.body = json_incref(body); /* a second reference, to watch the call let go of its own */
    rp_rpc_call_raw(t, RP_COMP_REWARD, &env, &rep);
    cr_assert_null(env.body, "the call releases the body it took");
    cr_assert_eq(body->refcount, 1, "only the test's own reference is left");
    cr_assert_eq(rep.status, 201);
    cr_assert_eq(json_integer_value(json_object_get(rep.body, "ids")), 1000);
    json_decref(body);
    rp_reply_clear(&rep);
    rp_envelope_clear(&env);
    rp_transport_free(t);
}

/* ---- work queues ---- */

Test(inproc, work_queue_delivers_every_message_once) {
    rp_transport_t *t = rp_transport_inproc_new(4);
    rp_err_t err;
    const char *msgs[] = {"{\"a\":1}", "{\"a\":2}", "bad", "{\"a\":3}"};
    size_t lens[] = {7, 7, 3, 7};
    work_reset();
    /* nobody consumes yet: refused, so the sender keeps the work */
    cr_assert_not(rp_transport_enqueue(t, "w", msgs, lens, 4, &err));
    cr_assert_eq(err.kind, RP_ERR_UNAVAILABLE);
    cr_assert(rp_transport_consume(t, "w", count_work, "bad", 2, &err), "%s", err.message);
    cr_assert_not(rp_transport_consume(t, "w", count_work, "bad", 1, &err), "one consumer set per queue");
    cr_assert(rp_transport_enqueue(t, "w", msgs, lens, 4, &err), "%s", err.message);
    work_wait(3, 1, 500, 10000);
    cr_assert_eq(atomic_load(&work_seen), 3);
    cr_assert_eq(atomic_load(&work_bad), 1);
    rp_transport_stop(t);
    cr_assert_not(rp_transport_enqueue(t, "w", msgs, lens, 1, &err), "a stopped transport takes no work");
    rp_transport_free(t);
}

/* ---- how many calls a component takes at once (lib/process.c) ---- */

static void op_gated(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    (void)ctx;
    (void)env;
    atomic_fetch_add(&entered, 1);
    pthread_mutex_lock(&gate_mu);
    while (!gate_open)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    rp_reply_set(rep, 200, json_object());
}

typedef struct route_call {
    rp_transport_t *t;
    int status;
} route_call_t;

static void *route_caller(void *p) {
    route_call_t *c = p;
    rp_envelope_t env;
    rp_reply_t rep;
    rp_identity_t dave = signed_in("65f0a1b2c3d4e5f601234568", "dave", 1);
    envelope_call(&env, "POST", "/g", &dave);
    env.deadline_ms = rp_now_ms() + 20000;
    rp_rpc_call(c->t, RP_COMP_REWARD, &env, &rep);
    c->status = rep.status;
    rp_reply_clear(&rep);
    rp_envelope_clear(&env);
    atomic_fetch_add(&finished, 1);
    return NULL;
}

/* The reward component runs GRANT_CONCURRENCY calls at once, not WORKER_THREADS: with 3 against
 * 1 and one waiting place, of five callers three run, one waits and one is refused at once. */
Test(rpc, the_reward_component_takes_grant_concurrency_calls_at_once) {
    static const rp_route_op_t ops[] = {{"POST", "/g", op_gated}};
    rp_service_t svc = {"test", ops, 1, NULL, NULL, NULL, NULL};
    rp_process_t p = {.name = "test"};
    p.cfg.worker_threads = 1;
    p.cfg.grant_concurrency = 3;
    p.transport = rp_transport_inproc_new(1);
    rp_err_t err;
    cr_assert(rp_process_serve(&p, RP_COMP_REWARD, &svc, &err), "%s", err.message);
    route_call_t calls[5];
    pthread_t th[5];
    for (int i = 0; i < 5; i++) {
        calls[i] = (route_call_t){p.transport, 0};
        pthread_create(&th[i], NULL, route_caller, &calls[i]);
    }
    for (int i = 0; i < 10000 && (atomic_load(&entered) < 3 || atomic_load(&finished) < 1); i++)
        usleep(1000);
    int running = atomic_load(&entered), refused = atomic_load(&finished);
    open_gate();
    for (int i = 0; i < 5; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(running, 3, "three calls run at once (WORKER_THREADS would allow one)");
    cr_assert_eq(refused, 1, "the fifth caller finds no place and is refused at once");
    int ok = 0, overloaded = 0;
    for (int i = 0; i < 5; i++) {
        ok += calls[i].status == 200;
        overloaded += calls[i].status == 503;
    }
    cr_assert_eq(ok, 4, "the three and the one that waited are answered");
    cr_assert_eq(overloaded, 1);
    rp_transport_free(p.transport);
}

/* ---- in process, a call hands the envelope and the reply over as they are ---- */

static json_t *seen_body; /* the body the op was given */
static json_t *made_body; /* the body the op answered with */
static const char page[] = "{\"items\":[],\"nextCursor\":null}";

static void op_remember(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    (void)ctx;
    seen_body = env->body;
    if (strcmp(env->method, "GET") == 0) {
        rp_reply_set_raw(rep, 200, strdup(page), strlen(page));
        rep->max_age_ms = 500;
        return;
    }
    made_body = json_pack("{s:b}", "ok", 1);
    rp_reply_set(rep, 201, made_body);
}

/* No envelope is printed and parsed in process: the op gets the caller's own body, the caller
 * gets the op's own reply (a raw page stays raw, with its maxAgeMs); a component served by
 * another handler is not run in place (0: the caller sends bytes). */
Test(rpc, a_service_of_this_process_gets_the_envelope_itself) {
    static const rp_route_op_t ops[] = {{"POST", "/r", op_remember}, {"GET", "/r", op_remember}};
    rp_service_t svc = {"test", ops, 2, NULL, NULL, NULL, NULL};
    rp_transport_t *t = rp_transport_inproc_new(8);
    rp_err_t err;
    cr_assert(rp_transport_serve(t, RP_COMP_EVENT, rp_rpc_service_handler, &svc, 2, &err));
    cr_assert(rp_transport_serve(t, RP_COMP_AUTH, echo, NULL, 2, &err));
    rp_envelope_t env;
    rp_reply_t rep;
    rp_identity_t carol = signed_in("65f0a1b2c3d4e5f601234567", "carol", 1);
    envelope_call(&env, "POST", "/r", &carol);
    env.deadline_ms = rp_now_ms() + 5000;
    json_t *body = json_pack("{s:i}", "n", 1);
    env.body = body;
    rp_rpc_call(t, RP_COMP_EVENT, &env, &rep);
    cr_assert_eq(rep.status, 201);
    cr_assert_eq(seen_body, body, "the op got the caller's body itself");
    cr_assert_eq(rep.body, made_body, "the caller got the op's reply itself");
    rp_reply_clear(&rep);
    strcpy(env.method, "GET");
    rp_rpc_call_raw(t, RP_COMP_EVENT, &env, &rep);
    cr_assert_eq(rep.status, 200);
    cr_assert_str_eq(rep.raw, page);
    cr_assert_eq(rep.max_age_ms, 500);
    rp_reply_clear(&rep);
    int ran = 0;
    cr_assert_eq(rp_transport_run_local(t, RP_COMP_AUTH, rp_rpc_service_handler, rp_now_ms() + 5000, NULL, &ran, &err),
                 0, "served by another handler: not run in place");
    rp_envelope_clear(&env);
    rp_transport_free(t);
}

static void count_run(void *ctx, void *arg) {
    (void)ctx;
    (*(int *)arg)++;
}

/* Run in place under a call's rules: a deadline already past is 504 and nothing runs; a component
 * that stopped is 503. */
Test(inproc, run_local_keeps_the_rules_of_a_call) {
    static const rp_route_op_t ops[] = {{"GET", "/x", op_echo_route}};
    rp_service_t svc = {"test", ops, 1, NULL, NULL, NULL, NULL};
    rp_transport_t *t = rp_transport_inproc_new(8);
    rp_err_t err;
    cr_assert(rp_transport_serve(t, RP_COMP_EVENT, rp_rpc_service_handler, &svc, 2, &err));
    int ran = 0;
    cr_assert_eq(
        rp_transport_run_local(t, RP_COMP_EVENT, rp_rpc_service_handler, rp_now_ms() + 5000, count_run, &ran, &err), 1);
    cr_assert_eq(ran, 1);
    cr_assert_eq(
        rp_transport_run_local(t, RP_COMP_EVENT, rp_rpc_service_handler, rp_now_ms() - 1, count_run, &ran, &err), -1);
    cr_assert_eq(err.kind, RP_ERR_TIMEOUT);
    cr_assert_eq(ran, 1, "an expired call never runs");
    rp_transport_stop(t);
    cr_assert_eq(
        rp_transport_run_local(t, RP_COMP_EVENT, rp_rpc_service_handler, rp_now_ms() + 5000, count_run, &ran, &err),
        -1);
    cr_assert_eq(rp_err_http_status(err.kind), 503);
    cr_assert_eq(ran, 1);
    rp_transport_free(t);
}
