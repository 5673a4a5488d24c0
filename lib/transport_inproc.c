/* transport_inproc.c - the embedded transport: per component a bounded ring of pending calls and a
 * pool of worker threads; one mutex per component guards the ring and the state of its calls.
 * Work queues are bounded FIFO lists with their own threads. Nothing here survives the process:
 * whoever enqueues work keeps it durably elsewhere (batch items live in the store, and the
 * batch sweeper enqueues them again after a restart). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mem.h"
#include "timeutil.h"
#include "transport.h"

typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_REFUSED } job_state_t;

typedef struct job {
    char *req;
    size_t len;
    int64_t deadline_mono_ms;
    char *reply;
    size_t reply_len;
    job_state_t state;
    int refs; /* the caller and the queue/worker each hold one */
    pthread_cond_t done;
} job_t;

/* Threads that wait for work on one condition under one mutex, and stop together. */
typedef struct crew {
    pthread_mutex_t mu;
    pthread_cond_t nonempty;
    pthread_t *threads;
    int nthreads;
    bool stopping;
} crew_t;

typedef struct comp {
    crew_t crew;
    job_t **ring;
    int cap, head, count;
    bool serving;
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

typedef struct worker_arg {
    inproc_t *t;
    comp_t *c;
} worker_arg_t;

static void job_release(job_t *j) {
    if (--j->refs > 0) return;
    pthread_cond_destroy(&j->done);
    free(j->req);
    free(j->reply);
    free(j);
}

static void *worker_main(void *arg) {
    comp_t *c = arg;
    pthread_mutex_lock(&c->crew.mu);
    for (;;) {
        while (c->count == 0 && !c->crew.stopping)
            pthread_cond_wait(&c->crew.nonempty, &c->crew.mu);
        if (c->crew.stopping) break;
        job_t *j = c->ring[c->head];
        c->head = (c->head + 1) % c->cap;
        c->count--;
        if (j->refs == 1 || rp_mono_ms() > j->deadline_mono_ms) {
            /* the caller has gone (504 already sent): do not run work nobody waits for */
            j->state = JOB_REFUSED;
            pthread_cond_signal(&j->done);
            job_release(j);
            continue;
        }
        j->state = JOB_RUNNING;
        pthread_mutex_unlock(&c->crew.mu);
        size_t out_len = 0;
        char *out = c->fn(c->ctx, j->req, j->len, &out_len);
        pthread_mutex_lock(&c->crew.mu);
        j->reply = out;
        j->reply_len = out_len;
        j->state = JOB_DONE;
        pthread_cond_signal(&j->done);
        job_release(j);
    }
    pthread_mutex_unlock(&c->crew.mu);
    return NULL;
}

static bool inproc_serve(rp_transport_t *base, rp_component_t comp, rp_rpc_handler_fn fn, void *ctx, int threads,
                         rp_err_t *err) {
    inproc_t *t = (inproc_t *)base;
    comp_t *c = &t->comps[comp];
    pthread_mutex_lock(&c->crew.mu);
    if (c->serving || c->crew.stopping) {
        pthread_mutex_unlock(&c->crew.mu);
        rp_err_set(err, RP_ERR_INTERNAL, "TRANSPORT", "component %s is already served", rp_component_name(comp));
        return false;
    }
    c->fn = fn;
    c->ctx = ctx;
    c->crew.threads = rp_calloc((size_t)threads, sizeof *c->crew.threads);
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&c->crew.threads[i], NULL, worker_main, c) != 0) {
            rp_log(RP_LOG_ERROR, "transport", "cannot start worker thread %d of %s", i, rp_component_name(comp));
            break;
        }
        c->crew.nthreads++;
    }
    c->serving = c->crew.nthreads > 0;
    pthread_mutex_unlock(&c->crew.mu);
    if (!c->serving) rp_err_set(err, RP_ERR_INTERNAL, "TRANSPORT", "no worker thread could be started");
    return c->serving;
}

static struct timespec mono_abs(int64_t mono_ms) {
    struct timespec ts = {.tv_sec = mono_ms / 1000, .tv_nsec = (long)(mono_ms % 1000) * 1000000L};
    return ts;
}

static bool inproc_call(rp_transport_t *base, rp_component_t comp, const char *req, size_t len, int64_t deadline_ms,
                        char **reply, size_t *reply_len, rp_err_t *err) {
    inproc_t *t = (inproc_t *)base;
    comp_t *c = &t->comps[comp];
    int64_t budget = deadline_ms - rp_now_ms();
    bool ok = false;
    if (budget <= 0) {
        rp_err_set(err, RP_ERR_TIMEOUT, "WORKER_TIMEOUT", "the %s worker did not answer in time",
                   rp_component_name(comp));
        return false;
    }
    job_t *j = rp_calloc(1, sizeof *j);
    j->req = rp_strndup(req, len);
    j->len = len;
    j->deadline_mono_ms = rp_mono_ms() + budget;
    j->refs = 2;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&j->done, &attr);
    pthread_condattr_destroy(&attr);

    pthread_mutex_lock(&c->crew.mu);
    if (!c->serving || c->crew.stopping) {
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "the %s worker is not running", rp_component_name(comp));
        j->refs = 1;
        goto done;
    }
    if (c->count == c->cap) {
        rp_err_set(err, RP_ERR_UNAVAILABLE, "OVERLOADED", "the %s worker queue is full", rp_component_name(comp));
        j->refs = 1;
        goto done;
    }
    c->ring[(c->head + c->count) % c->cap] = j;
    c->count++;
    pthread_cond_signal(&c->crew.nonempty);
    struct timespec until = mono_abs(j->deadline_mono_ms);
    while (j->state == JOB_QUEUED || j->state == JOB_RUNNING) {
        if (pthread_cond_timedwait(&j->done, &c->crew.mu, &until) == ETIMEDOUT) break;
    }
    if (j->state == JOB_DONE && j->reply) {
        *reply = j->reply;
        *reply_len = j->reply_len;
        j->reply = NULL;
        ok = true;
    } else if (j->state == JOB_DONE) {
        rp_err_set(err, RP_ERR_INTERNAL, "INTERNAL", "the %s worker produced no reply", rp_component_name(comp));
    } else if (j->state == JOB_REFUSED && c->crew.stopping) {
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "the %s worker is shutting down", rp_component_name(comp));
    } else {
        rp_err_set(err, RP_ERR_TIMEOUT, "WORKER_TIMEOUT", "the %s worker did not answer in time",
                   rp_component_name(comp));
    }
done:
    job_release(j);
    pthread_mutex_unlock(&c->crew.mu);
    return ok;
}

/* In process there is no broker to lose: the transport is ready until it stops. Whether each
 * component answers is checked by the caller with a health RPC. */
static bool inproc_ready(rp_transport_t *base, rp_err_t *err) {
    inproc_t *t = (inproc_t *)base;
    for (int i = 0; i < RP_COMP_COUNT; i++) {
        comp_t *c = &t->comps[i];
        pthread_mutex_lock(&c->crew.mu);
        bool stopping = c->crew.stopping;
        pthread_mutex_unlock(&c->crew.mu);
        if (stopping) {
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

static void inproc_stop(rp_transport_t *base) {
    inproc_t *t = (inproc_t *)base;
    stop_work_queues(t);
    for (int i = 0; i < RP_COMP_COUNT; i++) {
        comp_t *c = &t->comps[i];
        crew_stop(&c->crew);
        pthread_mutex_lock(&c->crew.mu);
        while (c->count > 0) {
            job_t *j = c->ring[c->head];
            c->head = (c->head + 1) % c->cap;
            c->count--;
            j->state = JOB_REFUSED;
            pthread_cond_signal(&j->done);
            job_release(j);
        }
        pthread_mutex_unlock(&c->crew.mu);
    }
}

static void inproc_free(rp_transport_t *base) {
    inproc_t *t = (inproc_t *)base;
    inproc_stop(base);
    for (int i = 0; i < RP_COMP_COUNT; i++) {
        crew_destroy(&t->comps[i].crew);
        free(t->comps[i].ring);
    }
    for (int i = 0; i < MAX_WORK_QUEUES; i++)
        crew_destroy(&t->wqs[i].crew);
    pthread_mutex_destroy(&t->wq_mu);
    free(t);
}

static const rp_transport_ops_t inproc_ops = {.serve = inproc_serve,
                                              .call = inproc_call,
                                              .ready = inproc_ready,
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
        crew_init(&c->crew);
        c->cap = t->capacity;
        c->ring = rp_calloc((size_t)c->cap, sizeof *c->ring);
    }
    return &t->base;
}
