/* conn_limit.c - open connections per client address (see conn_limit.h). The table holds only
 * addresses with an open connection, at most one per HTTP thread, so a linear scan under one
 * mutex costs about a microsecond per connection (not per request) and memory is fixed at start. */
#include "conn_limit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* civetweb's remote_addr is char[48] */
#define ADDR_MAX 48

typedef struct slot {
    uint32_t hash; /* compared before the text */
    int count;     /* 0 = free slot */
    char addr[ADDR_MAX];
} slot_t;

struct rp_conn_limit {
    pthread_mutex_t mu;
    int max_per_address;
    int capacity;
    slot_t *slots;
};

static uint32_t addr_hash(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The slot counting address, or NULL. Caller holds mu. */
static slot_t *find(rp_conn_limit_t *cl, const char *address, uint32_t h) {
    for (int i = 0; i < cl->capacity; i++) {
        slot_t *s = &cl->slots[i];
        if (s->count > 0 && s->hash == h && strcmp(s->addr, address) == 0) return s;
    }
    return NULL;
}

rp_conn_limit_t *rp_conn_limit_new(int max_per_address, int capacity) {
    rp_conn_limit_t *cl = rp_calloc(1, sizeof *cl);
    pthread_mutex_init(&cl->mu, NULL);
    cl->max_per_address = max_per_address;
    cl->capacity = capacity > 0 ? capacity : 1;
    cl->slots = rp_calloc((size_t)cl->capacity, sizeof *cl->slots);
    return cl;
}

void rp_conn_limit_free(rp_conn_limit_t *cl) {
    if (!cl) return;
    pthread_mutex_destroy(&cl->mu);
    free(cl->slots);
    free(cl);
}

bool rp_conn_limit_acquire(rp_conn_limit_t *cl, const char *address) {
    if (cl->max_per_address <= 0) return true;
    if (strlen(address) >= ADDR_MAX) return true; /* not an address civetweb writes: never counted */
    uint32_t h = addr_hash(address);
    bool ok = true;
    pthread_mutex_lock(&cl->mu);
    slot_t *s = find(cl, address, h);
    if (s) {
        if (s->count >= cl->max_per_address)
            ok = false;
        else
            s->count++;
        goto done;
    }
    for (int i = 0; i < cl->capacity; i++) {
        if (cl->slots[i].count == 0) {
            s = &cl->slots[i];
            s->hash = h;
            s->count = 1;
            memcpy(s->addr, address, strlen(address) + 1);
            break;
        }
    }
    /* no free slot: more open connections than threads, which civetweb does not do; admitting
     * keeps the release below balanced (it finds no slot and does nothing) */
done:
    pthread_mutex_unlock(&cl->mu);
    return ok;
}

void rp_conn_limit_release(rp_conn_limit_t *cl, const char *address) {
    if (cl->max_per_address <= 0 || strlen(address) >= ADDR_MAX) return;
    pthread_mutex_lock(&cl->mu);
    slot_t *s = find(cl, address, addr_hash(address));
    if (s) s->count--;
    pthread_mutex_unlock(&cl->mu);
}

int rp_conn_limit_count(rp_conn_limit_t *cl, const char *address) {
    if (strlen(address) >= ADDR_MAX) return 0;
    pthread_mutex_lock(&cl->mu);
    slot_t *s = find(cl, address, addr_hash(address));
    int n = s ? s->count : 0;
    pthread_mutex_unlock(&cl->mu);
    return n;
}
