/* outbox_relay.c - outbox to RabbitMQ with publisher confirms (see outbox_relay.h). */
#include "outbox_relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp_publisher.h"
#include "log.h"
#include "loop.h"
#include "mem.h"
#include "timeutil.h"

#define EXCHANGE "rewards.events"
#define BATCH 500
#define LEASE_MS 30000
#define CONFIRM_WAIT_MS 10000
#define IDLE_MS 200

struct rp_outbox_relay {
    rp_reward_store_t *store;
    rp_amqp_publisher_t *pub;
    char owner[64];
    rp_loop_t *loop;
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
        const rp_outbox_message_t *m = &items[i];
        char *printed = m->payload_text ? NULL : json_dumps(m->payload, JSON_COMPACT);
        const char *body = m->payload_text ? m->payload_text : printed;
        bool sent =
            body && rp_amqp_publisher_send(r->pub, m->routing_key, m->message_id, body, strlen(body), false, err);
        free(printed);
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

static rp_loop_next_t relay_pass(void *arg, int backoff_ms) {
    rp_err_t err;
    int n = 0;
    /* Again at once only after a full page: after a partial one the rows of the next IDLE_MS
     * wait and go together. Going again at once after every pass leased the few rows committed
     * meanwhile, two writes for each few grants (16 % of a grant worker under claims); a
     * message now waits at most IDLE_MS under load, as it always did when idle. */
    if (rp_outbox_relay_pass(arg, &n, &err)) return n >= BATCH ? RP_LOOP_MORE : RP_LOOP_IDLE;
    rp_log(RP_LOG_WARN, "outbox", "%s; retrying in %d ms", err.message, backoff_ms);
    return RP_LOOP_FAILED;
}

rp_outbox_relay_t *rp_outbox_relay_new(rp_reward_store_t *store, const char *url, const char *owner, rp_err_t *err) {
    rp_amqp_publisher_t *pub = rp_amqp_publisher_new(url, "reward-outbox-relay", EXCHANGE, "topic", err);
    if (!pub) return NULL;
    rp_outbox_relay_t *r = rp_calloc(1, sizeof *r);
    r->store = store;
    r->pub = pub;
    snprintf(r->owner, sizeof r->owner, "%s", owner);
    r->loop = rp_loop_new(relay_pass, r, IDLE_MS);
    return r;
}

bool rp_outbox_relay_start(rp_outbox_relay_t *r, rp_err_t *err) {
    return rp_loop_start(r->loop, "outbox relay thread", err);
}

void rp_outbox_relay_free(rp_outbox_relay_t *r) {
    if (!r) return;
    rp_loop_free(r->loop);
    rp_amqp_publisher_free(r->pub);
    free(r);
}
