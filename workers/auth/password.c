/* password.c - bounded argon2id hashing (see password.h): a mutex + condition variable semaphore
 * guards the number of hashes in flight. */
#include "password.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

struct rp_hasher {
    unsigned long long ops;
    size_t mem;
    int limit, running, peak;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char dummy[RP_HASH_LEN];
};

static void acquire(rp_hasher_t *h) {
    pthread_mutex_lock(&h->mu);
    while (h->running >= h->limit)
        pthread_cond_wait(&h->cv, &h->mu);
    h->running++;
    if (h->running > h->peak) h->peak = h->running;
    pthread_mutex_unlock(&h->mu);
}

static void release(rp_hasher_t *h) {
    pthread_mutex_lock(&h->mu);
    h->running--;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

rp_hasher_t *rp_hasher_new(const char *cost, int concurrency) {
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
    rp_hasher_t *h = rp_calloc(1, sizeof *h);
    h->ops = ops;
    h->mem = mem;
    h->limit = concurrency > 0 ? concurrency : 1;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if (crypto_pwhash_str(h->dummy, "dummy-password-for-timing", 25, ops, mem) != 0) h->dummy[0] = '\0';
    return h;
}

void rp_hasher_free(rp_hasher_t *h) {
    if (!h) return;
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}

bool rp_hasher_hash(rp_hasher_t *h, const char *pw, size_t len, char out[RP_HASH_LEN], rp_err_t *err) {
    acquire(h);
    int rc = crypto_pwhash_str(out, pw, len, h->ops, h->mem);
    release(h);
    if (rc != 0) {
        rp_err_set(err, RP_ERR_UNAVAILABLE, "OVERLOADED", "not enough memory to hash the password now");
        return false;
    }
    return true;
}

bool rp_hasher_verify(rp_hasher_t *h, const char *stored, const char *pw, size_t len) {
    acquire(h);
    int rc = crypto_pwhash_str_verify(stored, pw, len);
    release(h);
    return rc == 0;
}

void rp_hasher_verify_dummy(rp_hasher_t *h, const char *pw, size_t len) {
    if (h->dummy[0]) (void)rp_hasher_verify(h, h->dummy, pw, len);
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
