/* password.c - argon2id on a bounded pool of hash threads (see password.h). One mutex guards the
 * FIFO of jobs and the count of places taken; a caller's job lives on its own stack and the
 * caller sleeps on the job's condition variable until a hash thread has run it. */
#include "password.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "failpoint.h"
#include "log.h"
#include "mem.h"

/* How much less CPU a hash thread is worth than a request thread: at nice +10 the kernel gives
 * it about a tenth of a nice-0 thread's share when both want the core. */
#define HASH_NICE 10

typedef struct job {
    struct job *next;
    const char *stored; /* verify against this; NULL with out NULL: the dummy hash */
    const char *pw;
    size_t len;
    char *out; /* hash into this when not NULL */
    int rc;    /* crypto_pwhash_str(_verify)'s result */
    bool done;
    pthread_cond_t cv;
} job_t;

struct rp_hasher {
    unsigned long long ops;
    size_t mem;
    int places;   /* threads + queue */
    int admitted; /* places taken (jobs queued or running, or admitted and not yet submitted) */
    int running, peak;
    bool stopping;
    pthread_mutex_t mu;
    pthread_cond_t nonempty;
    job_t *head, *tail;
    pthread_t *threads;
    int nthreads;
    char dummy[RP_HASH_LEN];
};

static void run_job(rp_hasher_t *h, job_t *j) {
    if (j->out)
        j->rc = crypto_pwhash_str(j->out, j->pw, j->len, h->ops, h->mem);
    else
        j->rc = crypto_pwhash_str_verify(j->stored ? j->stored : h->dummy, j->pw, j->len);
}

static void *hash_main(void *arg) {
    rp_hasher_t *h = arg;
    /* per thread on Linux: the process's request threads keep their priority */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), HASH_NICE) != 0)
        rp_log(RP_LOG_DEBUG, "auth", "hash thread keeps its priority: setpriority refused");
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->head && !h->stopping)
            pthread_cond_wait(&h->nonempty, &h->mu);
        if (!h->head) break; /* stopping with nothing left: no caller waits */
        job_t *j = h->head;
        h->head = j->next;
        if (!h->head) h->tail = NULL;
        if (++h->running > h->peak) h->peak = h->running;
        pthread_mutex_unlock(&h->mu);
        rp_failpoint_hold("hash.hold");
        run_job(h, j);
        pthread_mutex_lock(&h->mu);
        h->running--;
        h->admitted--;
        j->done = true;
        pthread_cond_signal(&j->cv);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

rp_hasher_t *rp_hasher_new(const char *cost, int threads, int queue) {
    unsigned long long ops;
    size_t mem;
    if (strcmp(cost, "standard") == 0) { /* OWASP's argon2id m=12 MiB, t=3, p=1 */
        ops = 3;
        mem = 12 * 1024 * 1024;
    } else if (strcmp(cost, "interactive") == 0) {
        ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
        mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
    } else if (strcmp(cost, "moderate") == 0) {
        ops = crypto_pwhash_OPSLIMIT_MODERATE;
        mem = crypto_pwhash_MEMLIMIT_MODERATE;
    } else if (strcmp(cost, "min") == 0) {
        ops = crypto_pwhash_OPSLIMIT_MIN;
        mem = crypto_pwhash_MEMLIMIT_MIN;
    } else {
        return NULL;
    }
    if (threads < 1) threads = 1;
    if (queue < 0) queue = 0;
    rp_hasher_t *h = rp_calloc(1, sizeof *h);
    h->ops = ops;
    h->mem = mem;
    h->places = threads + queue;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->nonempty, NULL);
    if (crypto_pwhash_str(h->dummy, "dummy-password-for-timing", 25, ops, mem) != 0) h->dummy[0] = '\0';
    h->threads = rp_calloc((size_t)threads, sizeof *h->threads);
    for (int i = 0; i < threads; i++)
        if (pthread_create(&h->threads[h->nthreads], NULL, hash_main, h) == 0) h->nthreads++;
    if (h->nthreads == 0) {
        rp_hasher_free(h);
        return NULL;
    }
    return h;
}

void rp_hasher_free(rp_hasher_t *h) {
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_cond_broadcast(&h->nonempty);
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < h->nthreads; i++)
        pthread_join(h->threads[i], NULL);
    free(h->threads);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->nonempty);
    sodium_memzero(h->dummy, sizeof h->dummy);
    free(h);
}

bool rp_hasher_admit(rp_hasher_t *h, rp_err_t *err) {
    pthread_mutex_lock(&h->mu);
    bool ok = h->admitted < h->places && !h->stopping;
    if (ok) h->admitted++;
    pthread_mutex_unlock(&h->mu);
    if (!ok) rp_err_set(err, RP_ERR_UNAVAILABLE, "OVERLOADED", "too many password checks at once; try again shortly");
    return ok;
}

void rp_hasher_leave(rp_hasher_t *h) {
    pthread_mutex_lock(&h->mu);
    h->admitted--;
    pthread_mutex_unlock(&h->mu);
}

/* Queues j (its place already taken) and sleeps until a hash thread has run it. */
static void submit(rp_hasher_t *h, job_t *j) {
    j->next = NULL;
    j->done = false;
    pthread_cond_init(&j->cv, NULL);
    pthread_mutex_lock(&h->mu);
    if (h->tail)
        h->tail->next = j;
    else
        h->head = j;
    h->tail = j;
    pthread_cond_signal(&h->nonempty);
    while (!j->done)
        pthread_cond_wait(&j->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    pthread_cond_destroy(&j->cv);
}

bool rp_hasher_hash(rp_hasher_t *h, const char *pw, size_t len, char out[RP_HASH_LEN], rp_err_t *err) {
    if (!rp_hasher_admit(h, err)) return false;
    job_t j = {.pw = pw, .len = len, .out = out};
    submit(h, &j);
    if (j.rc != 0) {
        rp_err_set(err, RP_ERR_UNAVAILABLE, "OVERLOADED", "not enough memory to hash the password now");
        return false;
    }
    return true;
}

bool rp_hasher_check(rp_hasher_t *h, const char *stored, const char *pw, size_t len) {
    job_t j = {.stored = stored, .pw = pw, .len = len};
    if (!stored && !h->dummy[0]) { /* no dummy to burn time on: nothing to run */
        rp_hasher_leave(h);
        return false;
    }
    submit(h, &j);
    return stored && j.rc == 0;
}

bool rp_hasher_needs_rehash(rp_hasher_t *h, const char *stored) {
    return crypto_pwhash_str_needs_rehash(stored, h->ops, h->mem) != 0;
}

int rp_hasher_peak(rp_hasher_t *h) {
    pthread_mutex_lock(&h->mu);
    int p = h->peak;
    pthread_mutex_unlock(&h->mu);
    return p;
}
