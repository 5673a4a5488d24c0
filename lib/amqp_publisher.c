/* amqp_publisher.c - confirmed publishing (see amqp_publisher.h). */
#include <sys/time.h> /* amqp.h needs struct timeval */

#include "amqp_publisher.h"

#include <amqp.h>
#include <stdlib.h>
#include <string.h>

#include "amqp_util.h"
#include "mem.h"
#include "timeutil.h"

struct rp_amqp_publisher {
    rp_amqp_url_t addr;
    char *name, *exchange, *exchange_type;
    amqp_connection_state_t conn;
    uint64_t next_tag;    /* delivery tag of the next publish on this channel */
    uint64_t first_tag;   /* first tag not yet confirmed */
    int64_t last_used_ms; /* monotonic: when the connection last carried a publish or a confirm */
    int idle_ms;          /* replaced before a send when idle longer than this */
};

static void drop_conn(rp_amqp_publisher_t *p) {
    if (p->conn) amqp_destroy_connection(p->conn);
    p->conn = NULL;
}

static bool ok_reply(rp_amqp_publisher_t *p, const char *what, rp_err_t *err) {
    amqp_rpc_reply_t rep = amqp_get_rpc_reply(p->conn);
    if (rep.reply_type == AMQP_RESPONSE_NORMAL) return true;
    if (rep.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        (rep.reply.id == AMQP_CHANNEL_CLOSE_METHOD || rep.reply.id == AMQP_CONNECTION_CLOSE_METHOD)) {
        amqp_channel_close_t *m = rep.reply.decoded;
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "%s: %s: broker said %u %.*s", p->name, what, m->reply_code,
                   (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    } else
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "%s: %s failed", p->name, what);
    drop_conn(p);
    return false;
}

static bool connect_broker(rp_amqp_publisher_t *p, rp_err_t *err) {
    if (p->conn) return true;
    if (!(p->conn = rp_amqp_open(&p->addr, p->name, 30, err))) {
        if (err) { /* which publisher could not connect */
            rp_err_t e = *err;
            rp_err_set(err, e.kind, e.code, "%s: %s", p->name, e.message);
        }
        return false;
    }
    if (p->exchange_type) {
        amqp_exchange_declare(p->conn, 1, amqp_cstring_bytes(p->exchange), amqp_cstring_bytes(p->exchange_type), 0, 1,
                              0, 0, amqp_empty_table);
        if (!ok_reply(p, "exchange declare", err)) return false;
    }
    amqp_confirm_select(p->conn, 1);
    if (!ok_reply(p, "confirm select", err)) return false;
    p->next_tag = p->first_tag = 1; /* confirm delivery tags start at 1 on a new channel */
    p->last_used_ms = rp_mono_ms();
    return true;
}

bool rp_amqp_publisher_send(rp_amqp_publisher_t *p, const char *routing_key, const char *message_id, const char *body,
                            size_t len, bool mandatory, rp_err_t *err) {
    /* idle past the limit with nothing awaiting a confirm: the broker may have closed it */
    if (p->conn && p->first_tag == p->next_tag && rp_mono_ms() - p->last_used_ms >= p->idle_ms) drop_conn(p);
    if (!connect_broker(p, err)) return false;
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = 2;
    if (message_id) {
        props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        props.message_id = amqp_cstring_bytes(message_id);
    }
    amqp_bytes_t b = {.len = len, .bytes = (void *)body};
    if (amqp_basic_publish(p->conn, 1, amqp_cstring_bytes(p->exchange), amqp_cstring_bytes(routing_key),
                           mandatory ? 1 : 0, 0, &props, b) != AMQP_STATUS_OK) {
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "%s: publish failed", p->name);
        drop_conn(p);
        return false;
    }
    p->next_tag++;
    p->last_used_ms = rp_mono_ms();
    return true;
}

bool rp_amqp_publisher_confirm(rp_amqp_publisher_t *p, int timeout_ms, rp_err_t *err) {
    if (!p->conn) {
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "%s: not connected", p->name);
        return false;
    }
    uint64_t first = p->first_tag;
    size_t n = (size_t)(p->next_tag - first), open = n;
    bool *acked = rp_calloc(n ? n : 1, sizeof *acked), ok = false, returned = false;
    int64_t deadline = rp_mono_ms() + timeout_ms;
    while (open > 0) {
        int64_t left = deadline - rp_mono_ms();
        if (left <= 0) {
            rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "%s: confirms timed out", p->name);
            goto done;
        }
        amqp_frame_t f;
        int rc = rp_amqp_wait_method(p->conn, left, &f);
        if (rc == AMQP_STATUS_TIMEOUT) continue;
        if (rc != AMQP_STATUS_OK) {
            rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "%s: lost the broker while waiting for confirms",
                       p->name);
            goto done;
        }
        switch (f.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
            /* acks may cover several tags ("multiple") and need not come in order */
            amqp_basic_ack_t *a = f.payload.method.decoded;
            uint64_t lo = a->multiple ? first : a->delivery_tag;
            for (uint64_t tag = lo; tag <= a->delivery_tag && tag < p->next_tag; tag++) {
                if (tag < first || acked[tag - first]) continue;
                acked[tag - first] = true;
                open--;
            }
            break;
        }
        case AMQP_BASIC_RETURN_METHOD: {
            /* a mandatory message no queue took: the broker still acks it, so remember */
            amqp_message_t m;
            if (amqp_read_message(p->conn, f.channel, &m, 0).reply_type != AMQP_RESPONSE_NORMAL) {
                rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "%s: lost the broker while reading a return",
                           p->name);
                goto done;
            }
            amqp_destroy_message(&m);
            returned = true;
            break;
        }
        case AMQP_BASIC_NACK_METHOD:
            rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "%s: the broker refused a message", p->name);
            goto done;
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
            rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "%s: the broker closed the channel", p->name);
            goto done;
        default: break;
        }
    }
    if (returned) {
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "%s: no queue is bound for a message", p->name);
        goto done;
    }
    ok = true;
    p->first_tag = p->next_tag;
    p->last_used_ms = rp_mono_ms();
done:
    free(acked);
    if (!ok) drop_conn(p);
    return ok;
}

rp_amqp_publisher_t *rp_amqp_publisher_new(const char *url, const char *conn_name, const char *exchange,
                                           const char *exchange_type, rp_err_t *err) {
    rp_amqp_publisher_t *p = rp_calloc(1, sizeof *p);
    if (!rp_amqp_url_parse(&p->addr, url, err)) {
        free(p);
        return NULL;
    }
    p->name = rp_strdup(conn_name);
    p->exchange = rp_strdup(exchange);
    p->exchange_type = exchange_type ? rp_strdup(exchange_type) : NULL;
    p->idle_ms = RP_AMQP_PUBLISHER_IDLE_MS;
    return p;
}

void rp_amqp_publisher_set_idle_ms(rp_amqp_publisher_t *p, int idle_ms) {
    p->idle_ms = idle_ms;
}

void rp_amqp_publisher_free(rp_amqp_publisher_t *p) {
    if (!p) return;
    drop_conn(p);
    rp_amqp_url_clear(&p->addr);
    free(p->name);
    free(p->exchange);
    free(p->exchange_type);
    free(p);
}
