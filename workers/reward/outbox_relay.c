/* outbox_relay.c - outbox to RabbitMQ with publisher confirms (see outbox_relay.h). */
#include <sys/time.h> /* amqp.h needs struct timeval */

#include "outbox_relay.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "timeutil.h"

#define EXCHANGE "rewards.events"
#define BATCH 500
#define LEASE_MS 30000
#define CONFIRM_WAIT_MS 10000

struct rp_outbox_relay {
    rp_reward_store_t *store;
    struct amqp_connection_info info;
    char *url_copy;
    char owner[64];
    amqp_connection_state_t conn;
    uint64_t next_tag; /* delivery tag of the next publish on this channel */
    pthread_t thread;
    bool started;
    atomic_bool stopping;
};

static void drop_conn(rp_outbox_relay_t *r) {
    if (r->conn) amqp_destroy_connection(r->conn);
    r->conn = NULL;
}

static bool ok_reply(amqp_connection_state_t c, const char *what, rp_err_t *err) {
    amqp_rpc_reply_t rep = amqp_get_rpc_reply(c);
    if (rep.reply_type == AMQP_RESPONSE_NORMAL) return true;
    rp_err_set(err, 503, "UNAVAILABLE", "outbox relay: %s failed", what);
    return false;
}

static bool connect_broker(rp_outbox_relay_t *r, rp_err_t *err) {
    if (r->conn) return true;
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    struct timeval tv = {3, 0};
    const char *vhost = r->info.vhost && r->info.vhost[0] ? r->info.vhost : "/";
    if (!s || amqp_socket_open_noblock(s, r->info.host, r->info.port, &tv) != AMQP_STATUS_OK ||
        amqp_login(c, vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 30, AMQP_SASL_METHOD_PLAIN, r->info.user, r->info.password)
                .reply_type != AMQP_RESPONSE_NORMAL) {
        rp_err_set(err, 503, "UNAVAILABLE", "outbox relay: cannot reach the broker");
        amqp_destroy_connection(c);
        return false;
    }
    amqp_channel_open(c, 1);
    bool ok = ok_reply(c, "channel open", err);
    if (ok) {
        amqp_exchange_declare(c, 1, amqp_cstring_bytes(EXCHANGE), amqp_cstring_bytes("topic"), 0, 1, 0, 0,
                              amqp_empty_table);
        ok = ok_reply(c, "exchange declare", err);
    }
    if (ok) {
        amqp_confirm_select(c, 1);
        ok = ok_reply(c, "confirm select", err);
    }
    if (!ok) {
        amqp_destroy_connection(c);
        return false;
    }
    r->conn = c;
    r->next_tag = 1; /* confirm delivery tags start at 1 on a new channel */
    return true;
}

/* Waits until every tag < r->next_tag is acked. False on a nack, a timeout or a lost broker. */
static bool wait_confirms(rp_outbox_relay_t *r, uint64_t first, rp_err_t *err) {
    size_t n = (size_t)(r->next_tag - first), open = n;
    bool *acked = rp_calloc(n ? n : 1, sizeof *acked), ok = false;
    int64_t deadline = rp_mono_ms() + CONFIRM_WAIT_MS;
    while (open > 0) {
        int64_t left = deadline - rp_mono_ms();
        if (left <= 0) {
            rp_err_set(err, 503, "UNAVAILABLE", "outbox relay: confirms timed out");
            goto done;
        }
        struct timeval tv = {(time_t)(left / 1000), (suseconds_t)((left % 1000) * 1000)};
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(r->conn, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT) continue;
        if (rc != AMQP_STATUS_OK || f.frame_type != AMQP_FRAME_METHOD) {
            rp_err_set(err, 503, "UNAVAILABLE", "outbox relay: lost the broker while waiting for confirms");
            goto done;
        }
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            /* acks may cover several tags ("multiple") and need not come in order */
            amqp_basic_ack_t *a = f.payload.method.decoded;
            uint64_t lo = a->multiple ? first : a->delivery_tag;
            for (uint64_t tag = lo; tag <= a->delivery_tag && tag < r->next_tag; tag++) {
                if (tag < first || acked[tag - first]) continue;
                acked[tag - first] = true;
                open--;
            }
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            rp_err_set(err, 503, "UNAVAILABLE", "outbox relay: the broker refused a message");
            goto done;
        } else if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                   f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
            rp_err_set(err, 503, "UNAVAILABLE", "outbox relay: the broker closed the channel");
            goto done;
        }
    }
    ok = true;
done:
    free(acked);
    return ok;
}

bool rp_outbox_relay_pass(rp_outbox_relay_t *r, int *published, rp_err_t *err) {
    json_t *items = NULL;
    int64_t *seqs = NULL;
    bool ok = false;
    *published = 0;
    if (!connect_broker(r, err)) return false;
    if (!r->store->ops->outbox_lease(r->store, r->owner, rp_now_ms(), LEASE_MS, BATCH, &items, err)) goto done;
    size_t n = json_array_size(items), i;
    if (n == 0) {
        ok = true;
        goto done;
    }
    seqs = rp_calloc(n, sizeof *seqs);
    uint64_t first = r->next_tag;
    json_t *m;
    json_array_foreach(items, i, m) {
        char *body = json_dumps(json_object_get(m, "payload"), JSON_COMPACT);
        amqp_basic_properties_t p;
        memset(&p, 0, sizeof p);
        p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
        p.content_type = amqp_cstring_bytes("application/json");
        p.delivery_mode = 2;
        p.message_id = amqp_cstring_bytes(json_string_value(json_object_get(m, "messageId")));
        int rc = amqp_basic_publish(r->conn, 1, amqp_cstring_bytes(EXCHANGE),
                                    amqp_cstring_bytes(json_string_value(json_object_get(m, "routingKey"))), 0, 0, &p,
                                    amqp_cstring_bytes(body ? body : "{}"));
        free(body);
        if (rc != AMQP_STATUS_OK) {
            rp_err_set(err, 503, "UNAVAILABLE", "outbox relay: publish failed");
            drop_conn(r);
            goto done;
        }
        r->next_tag++;
        seqs[i] = json_integer_value(json_object_get(m, "seq"));
    }
    if (!wait_confirms(r, first, err)) {
        drop_conn(r);
        goto done;
    }
    /* only confirmed messages are marked; a crash before this line republishes them (same id) */
    if (!r->store->ops->outbox_published(r->store, seqs, n, rp_now_ms(), err)) goto done;
    *published = (int)n;
    ok = true;
done:
    free(seqs);
    json_decref(items);
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
    rp_outbox_relay_t *r = rp_calloc(1, sizeof *r);
    r->store = store;
    r->url_copy = rp_strdup(url);
    amqp_default_connection_info(&r->info);
    if (amqp_parse_url(r->url_copy, &r->info) != AMQP_STATUS_OK) {
        rp_err_set(err, 500, "CONFIG_INVALID", "AMQP_URL is not a valid amqp:// URL");
        free(r->url_copy);
        free(r);
        return NULL;
    }
    snprintf(r->owner, sizeof r->owner, "%s", owner);
    return r;
}

bool rp_outbox_relay_start(rp_outbox_relay_t *r, rp_err_t *err) {
    if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        rp_err_set(err, 500, "INTERNAL", "cannot start the outbox relay thread");
        return false;
    }
    r->started = true;
    return true;
}

void rp_outbox_relay_free(rp_outbox_relay_t *r) {
    if (!r) return;
    atomic_store(&r->stopping, true);
    if (r->started) pthread_join(r->thread, NULL);
    drop_conn(r);
    free(r->url_copy);
    free(r);
}
