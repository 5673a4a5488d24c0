/* transport_inproc.c - the embedded transport. An RPC call runs its handler on the caller's own
 * thread: a component has as many slots as it was served with threads, a call takes a free slot
 * (an atomic compare-and-swap, no lock, no thread hand-off) or waits for one, at most
 * queue_capacity callers wait per component, and a call whose deadline passes while it waits or
 * runs gets 504 with its reply dropped. Work queues are bounded FIFO lists with their own threads.
 * Nothing here survives the process: whoever enqueues work keeps it durably elsewhere (batch
 * items live in the store, and the batch sweeper enqueues them again after a restart). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mem.h"
#include "timeutil.h"
#include "transport.h"

/* Threads that wait for work on one condition under one mutex, and stop together. */
typedef struct crew {
    pthread_mutex_t mu;
    pthread_cond_t nonempty;
    pthread_t *threads;
    int nthreads;
    bool stopping;
} crew_t;

/* One component's slots. running and waiting are atomics so that a call with a free slot takes
 * it without the mutex; the mutex and freed serve only callers that wait, and stop. */
typedef struct comp {
    pthread_mutex_t mu;
    pthread_cond_t freed; /* a slot was given back, or the component stops */
    atomic_int running;   /* calls holding a slot */
    atomic_int waiting;   /* calls waiting for a slot */
    atomic_bool serving, stopping;
    int slots;
    rp_rpc_handler_fn fn;
    void *ctx;
} comp_t;

#define MAX_WORK_QUEUES 4
#define WORK_QUEUE_CAP 100000

typedef struct work_msg {
    struct work_msg *next;
    size_t len;
    char body[];
} work_msg_t;

typedef struct work_queue {
    char name[64];
    crew_t crew;
    work_msg_t *head, *tail;
    size_t count;
    rp_work_fn fn;
    void *ctx;
} work_queue_t;

typedef struct inproc {
    rp_transport_t base;
    int capacity;
    comp_t comps[RP_COMP_COUNT];
    pthread_mutex_t wq_mu; /* guards nwq and the names */
    work_queue_t wqs[MAX_WORK_QUEUES];
    int nwq;
} inproc_t;

static bool inproc_serve(rp_transport_t *base, rp_component_t comp, rp_rpc_handler_fn fn, void *ctx, int threads,
                         rp_err_t *err) {
    inproc_t *t = (inproc_t *)base;
    comp_t *c = &t->comps[comp];
    pthread_mutex_lock(&c->mu);
    bool refused = atomic_load(&c->serving) || atomic_load(&c->stopping);
    if (!refused) {
        c->fn = fn;
        c->ctx = ctx;
        c->slots = threads > 0 ? threads : 1;
        atomic_store(&c->serving, true);
    }
    pthread_mutex_unlock(&c->mu);
    if (refused)
        rp_err_set(err, RP_ERR_INTERNAL, "TRANSPORT", "component %s is already served", rp_component_name(comp));
    return !refused;
}

static bool take_free_slot(comp_t *c) {
    int r = atomic_load(&c->running);
    while (r < c->slots)
        if (atomic_compare_exchange_weak(&c->running, &r, r + 1)) return true;
    return false;
}

/* Gives a slot back and wakes a waiting caller, or stop, when there is one. Every access is
 * sequentially consistent: a caller that counted itself waiting before this read either sees the
 * freed slot when it tries again, or is already waiting for the signal (it tries under mu). */
static void give_slot(comp_t *c) {
    atomic_fetch_sub(&c->running, 1);
    if (atomic_load(&c->stopping)) {
        pthread_mutex_lock(&c->mu);
        pthread_cond_broadcast(&c->freed);
        pthread_mutex_unlock(&c->mu);
    } else if (atomic_load(&c->waiting) > 0) { /* one slot: wake one waiter, not the herd */
        pthread_mutex_lock(&c->mu);
        pthread_cond_signal(&c->freed);
        pthread_mutex_unlock(&c->mu);
    }
}

static void timeout_err(rp_component_t comp, rp_err_t *err) {
    rp_err_set(err, RP_ERR_TIMEOUT, "WORKER_TIMEOUT", "the %s worker did not answer in time", rp_component_name(comp));
}

/* Takes a slot of c for a call ending at mono deadline; false with err (503 or 504) when none. */
static bool take_slot(comp_t *c, rp_component_t comp, int capacity, int64_t deadline_mono_ms, rp_err_t *err) {
    if (take_free_slot(c)) return true;
    if (atomic_fetch_add(&c->waiting, 1) >= capacity) {
        atomic_fetch_sub(&c->waiting, 1);
        rp_err_set(err, RP_ERR_UNAVAILABLE, "OVERLOADED", "the %s worker queue is full", rp_component_name(comp));
        return false;
    }
    struct timespec until = rp_ms_timespec(deadline_mono_ms);
    bool got = false, timed_out = false;
    pthread_mutex_lock(&c->mu);
    while (!atomic_load(&c->stopping) && !(got = take_free_slot(c)) && !timed_out)
        timed_out = pthread_cond_timedwait(&c->freed, &c->mu, &until) == ETIMEDOUT;
    atomic_fetch_sub(&c->waiting, 1);
    if (atomic_load(&c->stopping)) pthread_cond_broadcast(&c->freed); /* stop waits for waiters to leave */
    pthread_mutex_unlock(&c->mu);
    if (got) return true;
    if (atomic_load(&c->stopping))
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "the %s worker is shutting down", rp_component_name(comp));
    else
        timeout_err(comp, err);
    return false;
}

/* The start of a call: a slot of c taken within the deadline (epoch ms), whose mono equivalent
 * goes to *deadline_mono; false with err (503, 504) when the call cannot run. */
static bool begin_call(inproc_t *t, comp_t *c, rp_component_t comp, int64_t deadline_ms, int64_t *deadline_mono,
                       rp_err_t *err) {
    int64_t budget = deadline_ms - rp_now_ms();
    if (budget <= 0) {
        timeout_err(comp, err);
        return false;
    }
    if (!atomic_load(&c->serving) || atomic_load(&c->stopping)) {
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "the %s worker is not running", rp_component_name(comp));
        return false;
    }
    *deadline_mono = rp_mono_ms() + budget;
    if (!take_slot(c, comp, t->capacity, *deadline_mono, err)) return false;
    if (atomic_load(&c->stopping)) { /* stop began after the check above: it waits for running calls */
        give_slot(c);
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "the %s worker is shutting down", rp_component_name(comp));
        return false;
    }
    if (rp_mono_ms() > *deadline_mono) { /* waited too long: nobody wants this work done any more */
        give_slot(c);
        timeout_err(comp, err);
        return false;
    }
    return true;
}

/* A call whose handler is run on structures (rp_transport_run_local): the same slot and deadline
 * rules as inproc_call, without the request and reply bytes. */
static int inproc_run_local(rp_transport_t *base, rp_component_t comp, rp_rpc_handler_fn served_by, int64_t deadline_ms,
                            rp_local_fn fn, void *arg, rp_err_t *err) {
    inproc_t *t = (inproc_t *)base;
    comp_t *c = &t->comps[comp];
    int64_t deadline_mono;
    if (!atomic_load(&c->serving) || c->fn != served_by) return 0;
    if (!begin_call(t, c, comp, deadline_ms, &deadline_mono, err)) return -1;
    fn(c->ctx, arg);
    give_slot(c);
    if (rp_mono_ms() > deadline_mono) { /* a late reply is dropped, as over a broker */
        timeout_err(comp, err);
        return -1;
    }
    return 1;
}

static bool inproc_call(rp_transport_t *base, rp_component_t comp, const char *req, size_t len, int64_t deadline_ms,
                        char **reply, size_t *reply_len, rp_err_t *err) {
    inproc_t *t = (inproc_t *)base;
    comp_t *c = &t->comps[comp];
    int64_t deadline_mono;
    if (!begin_call(t, c, comp, deadline_ms, &deadline_mono, err)) return false;
    size_t out_len = 0;
    char *out = c->fn(c->ctx, req, len, &out_len);
    give_slot(c);
    if (!out) {
        rp_err_set(err, RP_ERR_INTERNAL, "INTERNAL", "the %s worker produced no reply", rp_component_name(comp));
        return false;
    }
    if (rp_mono_ms() > deadline_mono) { /* a late reply is dropped, as over a broker */
        free(out);
        timeout_err(comp, err);
        return false;
    }
    *reply = out;
    *reply_len = out_len;
    return true;
}

/* In process there is no broker to lose: the transport is ready until it stops. Whether each
 * component answers is checked by the caller with a health RPC. */
static bool inproc_ready(rp_transport_t *base, rp_err_t *err) {
    inproc_t *t = (inproc_t *)base;
    for (int i = 0; i < RP_COMP_COUNT; i++) {
        if (atomic_load(&t->comps[i].stopping)) {
            rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "the platform is shutting down");
            return false;
        }
    }
    return true;
}

/* ---- work queues ---- */

/* The queue named name, created on first use; NULL when all slots are taken. */
static work_queue_t *work_queue(inproc_t *t, const char *name) {
    work_queue_t *q = NULL;
    pthread_mutex_lock(&t->wq_mu);
    for (int i = 0; i < t->nwq && !q; i++)
        if (strcmp(t->wqs[i].name, name) == 0) q = &t->wqs[i];
    if (!q && t->nwq < MAX_WORK_QUEUES && strlen(name) < sizeof q->name) {
        q = &t->wqs[t->nwq++];
        strcpy(q->name, name);
    }
    pthread_mutex_unlock(&t->wq_mu);
    return q;
}

static void *work_main(void *arg) {
    work_queue_t *q = arg;
    pthread_mutex_lock(&q->crew.mu);
    for (;;) {
        while (!q->head && !q->crew.stopping)
            pthread_cond_wait(&q->crew.nonempty, &q->crew.mu);
        if (q->crew.stopping) break;
        work_msg_t *m = q->head;
        q->head = m->next;
        if (!q->head) q->tail = NULL;
        q->count--;
        pthread_mutex_unlock(&q->crew.mu);
        if (!q->fn(q->ctx, m->body, m->len))
            rp_log(RP_LOG_ERROR, "transport", "dropping a malformed message on %s", q->name);
        free(m);
        pthread_mutex_lock(&q->crew.mu);
    }
    pthread_mutex_unlock(&q->crew.mu);
    return NULL;
}

static bool inproc_consume(rp_transport_t *base, const char *queue, rp_work_fn fn, void *ctx, int threads,
                           rp_err_t *err) {
    work_queue_t *q = work_queue((inproc_t *)base, queue);
    if (!q) {
        rp_err_set(err, RP_ERR_INTERNAL, "TRANSPORT", "too many work queues");
        return false;
    }
    pthread_mutex_lock(&q->crew.mu);
    if (q->fn || q->crew.stopping) {
        pthread_mutex_unlock(&q->crew.mu);
        rp_err_set(err, RP_ERR_INTERNAL, "TRANSPORT", "queue %s is already consumed", queue);
        return false;
    }
    q->fn = fn;
    q->ctx = ctx;
    q->crew.threads = rp_calloc((size_t)threads, sizeof *q->crew.threads);
    for (int i = 0; i < threads; i++)
        if (pthread_create(&q->crew.threads[q->crew.nthreads], NULL, work_main, q) == 0) q->crew.nthreads++;
    bool ok = q->crew.nthreads > 0;
    pthread_mutex_unlock(&q->crew.mu);
    if (!ok) rp_err_set(err, RP_ERR_INTERNAL, "TRANSPORT", "no consumer thread could be started");
    return ok;
}

static bool inproc_enqueue(rp_transport_t *base, const char *queue, const char *const *msgs, const size_t *lens,
                           size_t n, rp_err_t *err) {
    work_queue_t *q = work_queue((inproc_t *)base, queue);
    if (!q) {
        rp_err_set(err, RP_ERR_INTERNAL, "TRANSPORT", "too many work queues");
        return false;
    }
    pthread_mutex_lock(&q->crew.mu);
    bool ok = false;
    if (!q->fn || q->crew.stopping)
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "nobody consumes %s", queue);
    else if (q->count + n > WORK_QUEUE_CAP)
        rp_err_set(err, RP_ERR_UNAVAILABLE, "OVERLOADED", "queue %s is full", queue);
    else {
        for (size_t i = 0; i < n; i++) {
            work_msg_t *m = rp_malloc(sizeof *m + lens[i]);
            m->next = NULL;
            m->len = lens[i];
            memcpy(m->body, msgs[i], lens[i]);
            if (q->tail)
                q->tail->next = m;
            else
                q->head = m;
            q->tail = m;
            q->count++;
        }
        pthread_cond_broadcast(&q->crew.nonempty);
        ok = true;
    }
    pthread_mutex_unlock(&q->crew.mu);
    return ok;
}

static void crew_init(crew_t *w) {
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->nonempty, NULL);
}

/* Wakes every thread of w to see it stopping and joins them; w can still be locked afterwards. */
static void crew_stop(crew_t *w) {
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->nonempty);
    pthread_mutex_unlock(&w->mu);
    for (int k = 0; k < w->nthreads; k++)
        pthread_join(w->threads[k], NULL);
    w->nthreads = 0;
}

static void crew_destroy(crew_t *w) {
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->nonempty);
    free(w->threads);
}

static void stop_work_queues(inproc_t *t) {
    for (int i = 0; i < MAX_WORK_QUEUES; i++) {
        work_queue_t *q = &t->wqs[i];
        crew_stop(&q->crew);
        while (q->head) {
            work_msg_t *m = q->head;
            q->head = m->next;
            free(m);
        }
        q->tail = NULL;
        q->count = 0;
    }
}

/* Refuses new calls, wakes the waiting ones (they answer 503) and waits for the running ones. */
static void stop_comp(comp_t *c) {
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->stopping, true);
    pthread_cond_broadcast(&c->freed);
    while (atomic_load(&c->running) > 0 || atomic_load(&c->waiting) > 0)
        pthread_cond_wait(&c->freed, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static void inproc_stop(rp_transport_t *base) {
    inproc_t *t = (inproc_t *)base;
    stop_work_queues(t);
    for (int i = 0; i < RP_COMP_COUNT; i++)
        stop_comp(&t->comps[i]);
}

static void inproc_free(rp_transport_t *base) {
    inproc_t *t = (inproc_t *)base;
    inproc_stop(base);
    for (int i = 0; i < RP_COMP_COUNT; i++) {
        pthread_mutex_destroy(&t->comps[i].mu);
        pthread_cond_destroy(&t->comps[i].freed);
    }
    for (int i = 0; i < MAX_WORK_QUEUES; i++)
        crew_destroy(&t->wqs[i].crew);
    pthread_mutex_destroy(&t->wq_mu);
    free(t);
}

static const rp_transport_ops_t inproc_ops = {.serve = inproc_serve,
                                              .call = inproc_call,
                                              .ready = inproc_ready,
                                              .run_local = inproc_run_local,
                                              .enqueue = inproc_enqueue,
                                              .consume = inproc_consume,
                                              .stop = inproc_stop,
                                              .free = inproc_free};

rp_transport_t *rp_transport_inproc_new(int queue_capacity) {
    inproc_t *t = rp_calloc(1, sizeof *t);
    t->base.ops = &inproc_ops;
    t->capacity = queue_capacity > 0 ? queue_capacity : 1;
    pthread_mutex_init(&t->wq_mu, NULL);
    for (int i = 0; i < MAX_WORK_QUEUES; i++)
        crew_init(&t->wqs[i].crew);
    for (int i = 0; i < RP_COMP_COUNT; i++) {
        comp_t *c = &t->comps[i];
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_mutex_init(&c->mu, NULL);
        pthread_cond_init(&c->freed, &attr);
        pthread_condattr_destroy(&attr);
    }
    return &t->base;
}
