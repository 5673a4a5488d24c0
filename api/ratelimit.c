/* ratelimit.c - per-key token buckets in a fixed hash table (see ratelimit.h). A slot whose key
 * changes starts a fresh bucket: the table stays bounded whatever the number of clients. */
#include "ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define SLOTS 8192
#define STRIPES 64

typedef struct bucket {
    uint64_t key_hash;
    double tokens;
    int64_t last_us;
} bucket_t;

struct rp_ratelimit {
    int rate, burst;
    pthread_mutex_t locks[STRIPES];
    bucket_t slots[SLOTS];
};

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h | 1; /* 0 marks an empty slot */
}

rp_ratelimit_t *rp_ratelimit_new(int rate, int burst) {
    rp_ratelimit_t *rl = rp_calloc(1, sizeof *rl);
    rl->rate = rate;
    rl->burst = burst > 0 ? burst : 1;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&rl->locks[i], NULL);
    return rl;
}

void rp_ratelimit_free(rp_ratelimit_t *rl) {
    if (!rl) return;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&rl->locks[i]);
    free(rl);
}

bool rp_ratelimit_take(rp_ratelimit_t *rl, const char *key, int64_t now_us, int *retry_after_s) {
    *retry_after_s = 0;
    if (!rl || rl->rate <= 0) return true;
    uint64_t h = fnv1a(key ? key : "");
    size_t slot = (size_t)(h % SLOTS);
    pthread_mutex_t *mu = &rl->locks[slot % STRIPES];
    bool ok;
    pthread_mutex_lock(mu);
    bucket_t *b = &rl->slots[slot];
    if (b->key_hash != h) {
        b->key_hash = h;
        b->tokens = rl->burst;
        b->last_us = now_us;
    }
    double refill = (double)(now_us - b->last_us) / 1e6 * rl->rate;
    if (refill > 0) {
        b->tokens = b->tokens + refill > rl->burst ? rl->burst : b->tokens + refill;
        b->last_us = now_us;
    }
    ok = b->tokens >= 1.0;
    if (ok) {
        b->tokens -= 1.0;
    } else {
        double wait_s = (1.0 - b->tokens) / rl->rate;
        *retry_after_s = (int)wait_s + 1;
    }
    pthread_mutex_unlock(mu);
    return ok;
}
