/* outbox_relay.c - outbox to RabbitMQ with publisher confirms (see outbox_relay.h). */
#include "outbox_relay.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amqp_publisher.h"
#include "log.h"
#include "mem.h"
#include "timeutil.h"

#define EXCHANGE "rewards.events"
#define BATCH 500
#define LEASE_MS 30000
#define CONFIRM_WAIT_MS 10000

struct rp_outbox_relay {
    rp_reward_store_t *store;
    rp_amqp_publisher_t *pub;
    char owner[64];
    pthread_t thread;
    bool started;
    atomic_bool stopping;
};

bool rp_outbox_relay_pass(rp_outbox_relay_t *r, int *published, rp_err_t *err) {
    rp_outbox_message_t *items = NULL;
    int64_t *seqs = NULL;
    size_t n = 0;
    bool ok = false;
    *published = 0;
    if (!r->store->ops->outbox_lease(r->store, r->owner, rp_now_ms(), LEASE_MS, BATCH, &items, &n, err)) goto done;
    if (n == 0) {
        ok = true;
        goto done;
    }
    seqs = rp_calloc(n, sizeof *seqs);
    for (size_t i = 0; i < n; i++) {
        char *body = json_dumps(items[i].payload, JSON_COMPACT);
        bool sent = body && rp_amqp_publisher_send(r->pub, items[i].routing_key, items[i].message_id, body,
                                                   strlen(body), false, err);
        free(body);
        if (!sent) goto done;
        seqs[i] = items[i].seq;
    }
    if (!rp_amqp_publisher_confirm(r->pub, CONFIRM_WAIT_MS, err)) goto done;
    /* only confirmed messages are marked; a crash before this line republishes them (same id) */
    if (!r->store->ops->outbox_published(r->store, seqs, n, rp_now_ms(), err)) goto done;
    *published = (int)n;
    ok = true;
done:
    free(seqs);
    for (size_t i = 0; i < n; i++)
        rp_outbox_message_clear(&items[i]);
    free(items);
    return ok;
}

static void *relay_main(void *arg) {
    rp_outbox_relay_t *r = arg;
    int backoff_ms = 200;
    while (!atomic_load(&r->stopping)) {
        rp_err_t err;
        int n = 0;
        int wait_ms;
        if (rp_outbox_relay_pass(r, &n, &err)) {
            backoff_ms = 200;
            wait_ms = n > 0 ? 0 : 200;
        } else {
            rp_log(RP_LOG_WARN, "outbox", "%s; retrying in %d ms", err.message, backoff_ms);
            wait_ms = backoff_ms;
            backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
        }
        for (int waited = 0; waited < wait_ms && !atomic_load(&r->stopping); waited += 50)
            usleep(50000);
    }
    return NULL;
}

rp_outbox_relay_t *rp_outbox_relay_new(rp_reward_store_t *store, const char *url, const char *owner, rp_err_t *err) {
    rp_amqp_publisher_t *pub = rp_amqp_publisher_new(url, "reward-outbox-relay", EXCHANGE, "topic", err);
    if (!pub) return NULL;
    rp_outbox_relay_t *r = rp_calloc(1, sizeof *r);
    r->store = store;
    r->pub = pub;
    snprintf(r->owner, sizeof r->owner, "%s", owner);
    return r;
}

bool rp_outbox_relay_start(rp_outbox_relay_t *r, rp_err_t *err) {
    if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        rp_err_set(err, RP_ERR_INTERNAL, "INTERNAL", "cannot start the outbox relay thread");
        return false;
    }
    r->started = true;
    return true;
}

void rp_outbox_relay_free(rp_outbox_relay_t *r) {
    if (!r) return;
    atomic_store(&r->stopping, true);
    if (r->started) pthread_join(r->thread, NULL);
    rp_amqp_publisher_free(r->pub);
    free(r);
}
