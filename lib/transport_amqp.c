/* transport_amqp.c - RPC and work queues over RabbitMQ (see transport.h). librabbitmq
 * connections are not thread-safe, so every calling thread owns one connection (thread-local,
 * opened lazily and reopened after a failure) and every consumer thread owns its own.
 *
 * Topology (deploy/rabbitmq/definitions.json holds the same, with per-component users):
 *   rp.rpc   direct  auth|event|reward -> auth.requests|event.requests|reward.requests (only the api writes)
 *   rp.rpc   direct  login -> login.requests (register, login, password change: the hashing operations)
 *   rp.accounts direct accounts -> accounts.requests  (account lookups: the event and reward workers write)
 *   rp.reply direct  <reply queue name> -> the api connection's exclusive reply queue
 *   rp.work  direct  reward.grant -> reward.grant                         (batch items)
 *   rp.dlx   direct  <queue>.dlq -> <queue>.dlq                           (dead letters)
 * Shared calls (the claims) travel as bundles: several envelopes in one message of type rp.bundle
 * (lib/rpc_bundle.h), served side by side by the consumer that takes it and the helper threads,
 * answered in one reply (rp_transport_amqp_bundle).
 * Replies go through rp.reply rather than direct reply-to: direct reply-to needs write
 * permission on the default exchange, which would let every worker publish to every queue, and
 * measured no faster (bench/rpc_rtt.c).
 *
 * Queue types. An RPC request lives only as long as its caller waits: it carries an expiration
 * equal to the caller's budget, and after a broker restart nobody waits for it any more. So the
 * RPC queues are classic queues (durable, so the topology survives a restart) holding transient
 * messages, which the broker keeps in memory: a quorum queue appends every message and every ack
 * to its Raft log and fsyncs before delivering, which made the round trip ten times slower. The
 * batch work queue reward.grant holds the only messages that must survive a restart, and stays a
 * quorum queue. A classic queue has no delivery limit; an RPC request a worker keeps dying on is
 * redelivered only until it expires, then the broker dead-letters it (reason "expired"). */
#include <sys/time.h> /* amqp.h needs struct timeval */

#include <amqp.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "amqp_publisher.h"
#include "amqp_util.h"
#include "log.h"
#include "mem.h"
#include "rpc_bundle.h"
#include "timeutil.h"
#include "transport.h"

#define DLX "rp.dlx"
#define RPC_EXCHANGE "rp.rpc"
#define ACCOUNTS_EXCHANGE "rp.accounts"

/* The exchange a component's calls go through: one of its own for the account lookups, so that a
 * broker user may be allowed those calls and no other. */
static const char *exchange_of(rp_component_t comp) {
    return comp == RP_COMP_ACCOUNTS ? ACCOUNTS_EXCHANGE : RPC_EXCHANGE;
}
#define REPLY_EXCHANGE "rp.reply"
#define WORK_EXCHANGE "rp.work"
#define CONFIRM_WAIT_MS 10000
#define DELIVERY_LIMIT 5
#define HEARTBEAT_S 30
/* A thread waiting for input (an idle consumer, a call waiting for its reply) hands over to
 * librabbitmq at least this often: librabbitmq sends our heartbeats only from inside its calls, so
 * this bounds how late one leaves (HEARTBEAT_S apart; the broker gives up after two missed). A
 * stop does not wait for it: the stop wakes every such thread (await_input). */
#define IDLE_WAIT_MS 5000
#define READY_WAIT_MS 2000 /* a readiness probe or a start-up connect waits this long for a client */
/* An RPC consumer thread handles one request at a time, so it holds one: a request waits in the
 * queue for whichever thread of whichever worker process is free, never in the buffer of a busy
 * one (with 16, measured slower at 64 connections, and one worker could hoard the requests). */
#define RPC_PREFETCH 1
/* Bundles (rp_transport_amqp_bundle). The type that marks one; how much later than its leader's
 * deadline a call's may be for it to join (the leader waits for the bundle's reply until the
 * latest of them, so its own answer may come this much past its deadline, when the worker is
 * that slow); the most request bytes a bundle gathers, so that it stays a few frames; the
 * serving side's helper threads per RPC consumer thread, and at most. */
#define BUNDLE_TYPE "rp.bundle"
#define BUNDLE_SKEW_MS 50
#define BUNDLE_BYTES (64 * 1024)
#define HELPERS_PER_CONSUMER 2
#define MAX_HELPERS 64

typedef struct amqp_tp amqp_tp_t;

/* A shared call of this process (rp_transport_call_shared) from the moment it waits for a bundle to
 * its answer. WAITING: queued on its component's gather; LEADING: it sends the next bundle; SENT:
 * in a bundle on its way, its leader holding it at *seat; ANSWERED: ok, reply or err are set.
 * States change under the gather's mutex. Whoever makes a waiting call LEADING or ANSWERED posts
 * its semaphore once, after letting the mutex go, and the call waits for that post before it
 * returns, so that its semaphore outlives the post. (With a condition variable each call woke
 * into the mutex its leader still held: at 64 connections, a sixth of the api's samples were
 * that mutex's waits and wakes.) */
typedef enum { SHARE_WAITING, SHARE_LEADING, SHARE_SENT, SHARE_ANSWERED } share_state_t;

typedef struct shared_call {
    const char *req;
    size_t len;
    int64_t deadline_ms;
    share_state_t state;
    sem_t woken;
    struct shared_call *next;  /* the queue, while WAITING */
    struct shared_call **seat; /* the leader's hold on it, while SENT: cleared when it gives up */
    bool ok;
    char *reply;
    size_t reply_len;
    rp_err_t err;
} shared_call_t;

/* The shared calls to one component: how many bundles are on their way (lanes_busy, at most
 * t->bundle_lanes) and the calls waiting for one. */
typedef struct gather {
    pthread_mutex_t mu;
    shared_call_t *head;
    int lanes_busy;
} gather_t;

/* A bundle being served: its parts are run by the consumer that took it and by helper threads
 * (next: the first part nobody took; done: parts answered; both under the helpers' mutex). */
typedef struct bundle_run {
    const struct consumer *cs;
    const rp_bundle_part_t *parts;
    rp_bundle_part_t *answers; /* each part's reply, malloc'd (NULL, 0 when its handler gave none) */
    size_t n, next, done;
    pthread_cond_t finished;
    struct bundle_run *queued; /* the helpers' queue, while parts are left to take */
} bundle_run_t;

/* A consumer thread: of an RPC queue (fn set, replies) or of a work queue (work set). */
typedef struct consumer {
    amqp_tp_t *t;
    char queue[64], exchange[16], key[64];
    rp_rpc_handler_fn fn;
    rp_work_fn work;
    void *ctx;
    pthread_t thread;
} consumer_t;

struct amqp_tp {
    rp_transport_t base;
    rp_amqp_url_t addr;
    int prefetch;
    char *url;
    pthread_key_t pub_key; /* per-thread confirmed publisher (work queues) */
    /* the calling side: up to max_clients connections, shared by every calling thread, one call
     * at a time each. The idle ones are a stack: the most recently used is taken first, since a
     * warm connection answers sooner (at 1 connection, p50 0.37-0.42 ms against 0.51-0.69 ms when
     * every call took the longest idle one); but those that keep a long reply's pages are kept
     * for the long replies (pick_idle). */
    pthread_mutex_t cmu;
    pthread_cond_t cfreed;
    struct client **clients, **idle;
    int nclients, nidle, max_clients;
    /* The stop ends the consumers first: each finishes the message in hand, and the calls its
     * handler makes go on as usual. Then the calls still waiting give up: those of the process's
     * background loops, whose worker may already be gone (an api's session cache asking a stopped
     * auth worker used to hold the api's stop for its 1 s budget). Each eventfd becomes readable
     * at its step and stays so, waking every thread that polls it. */
    atomic_bool stopping;
    int stop_fd, calls_stop_fd;
    /* calls of this process waiting for their reply. One waiting alone polls its connection for
     * up to spin_us before it sleeps (AMQP_REPLY_SPIN_US): a thread that sleeps is woken by the
     * reply, and on a virtual machine whose idle cores halt that wake-up took about half of the
     * round trip (bench/README.md); with other calls waiting the cores have work, and every call
     * sleeps at once. */
    atomic_int waiting;
    int spin_us;
    /* connections opened again after a long message (lib/amqp_util.h): call connections, consumers */
    atomic_long reopened_calls, reopened_consumers;
    /* call connections keeping the pages of a reply over RP_AMQP_KEEP_BYTES: at most
     * RP_AMQP_LONG_REPLY_CONNS */
    atomic_int keeping_long;
    pthread_mutex_t mu;
    consumer_t **consumers; /* each owned here; a consumer thread holds its pointer until stop */
    size_t nconsumers, capconsumers;
    /* bundles: the calling side (bundle_max 1: none) */
    int bundle_max, bundle_lanes;
    gather_t gather[RP_COMP_COUNT];
    atomic_long bundles_sent, bundled_calls, bundles_served;
    atomic_int shared_waiting; /* shared calls queued for a lane */
    /* bundles: the serving side's helper threads, started by the first bundle served */
    pthread_mutex_t hmu;
    pthread_cond_t hwork;
    bundle_run_t *hqueue;
    pthread_t *helpers;
    int nhelpers;
    atomic_int rpc_consumers; /* RPC consumer threads started (the helpers' count follows it) */
    bool helpers_stop;
};

typedef struct client {
    amqp_connection_state_t conn;
    bool ok;
    bool keeps_long; /* counted in keeping_long until the connection is opened again */
    uint64_t counter;
    char tag[24];
    char reply_queue[128]; /* the exclusive queue replies reach this connection on */
} client_t;

/* ---- connections and topology ---- */

static amqp_table_entry_t str_entry(const char *k, const char *v) {
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(k);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(v);
    return e;
}

/* A consumer declares what it reads from, with the same arguments in every process (a mismatch
 * closes the channel with 406): `exchange` (direct) routing `key` to `queue`, which dead-letters
 * into <queue>.dlq. An RPC queue (rpc) is a durable classic queue; a work queue is a quorum queue
 * that also dead-letters a message after DELIVERY_LIMIT deliveries. */
static bool declare_queue(amqp_connection_state_t c, const char *exchange, const char *queue, const char *key, bool rpc,
                          rp_err_t *err) {
    char dlq[80];
    snprintf(dlq, sizeof dlq, "%s.dlq", queue);
    amqp_exchange_declare(c, 1, amqp_cstring_bytes(DLX), amqp_cstring_bytes("direct"), 0, 1, 0, 0, amqp_empty_table);
    if (!rp_amqp_reply_ok(c, "declare " DLX, err)) return false;
    amqp_queue_declare(c, 1, amqp_cstring_bytes(dlq), 0, 1, 0, 0, amqp_empty_table);
    if (!rp_amqp_reply_ok(c, "declare dlq", err)) return false;
    amqp_queue_bind(c, 1, amqp_cstring_bytes(dlq), amqp_cstring_bytes(DLX), amqp_cstring_bytes(dlq), amqp_empty_table);
    if (!rp_amqp_reply_ok(c, "bind dlq", err)) return false;
    amqp_table_entry_t a[4];
    a[0] = str_entry("x-queue-type", rpc ? "classic" : "quorum");
    a[1] = str_entry("x-dead-letter-exchange", DLX);
    a[2] = str_entry("x-dead-letter-routing-key", dlq);
    a[3].key = amqp_cstring_bytes("x-delivery-limit");
    a[3].value.kind = AMQP_FIELD_KIND_I32;
    a[3].value.value.i32 = DELIVERY_LIMIT;
    amqp_table_t args = {.num_entries = rpc ? 3 : 4, .entries = a};
    amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
    if (!rp_amqp_reply_ok(c, "declare queue", err)) return false;
    amqp_exchange_declare(c, 1, amqp_cstring_bytes(exchange), amqp_cstring_bytes("direct"), 0, 1, 0, 0,
                          amqp_empty_table);
    if (!rp_amqp_reply_ok(c, "declare exchange", err)) return false;
    amqp_queue_bind(c, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange), amqp_cstring_bytes(key),
                    amqp_empty_table);
    return rp_amqp_reply_ok(c, "bind queue", err);
}

static void close_conn(amqp_connection_state_t c) {
    if (!c) return;
    amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

/* ---- the calling side ---- */

static void client_free(client_t *cl) {
    if (!cl) return;
    close_conn(cl->conn);
    free(cl);
}

static bool setup_reply_queue(client_t *cl, rp_err_t *err) {
    amqp_exchange_declare(cl->conn, 1, amqp_cstring_bytes(REPLY_EXCHANGE), amqp_cstring_bytes("direct"), 0, 1, 0, 0,
                          amqp_empty_table);
    if (!rp_amqp_reply_ok(cl->conn, "declare " REPLY_EXCHANGE, err)) return false;
    amqp_queue_declare_ok_t *q = amqp_queue_declare(cl->conn, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    if (!rp_amqp_reply_ok(cl->conn, "declare reply queue", err)) return false;
    if (!q || q->queue.len >= sizeof cl->reply_queue) {
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "the broker gave no usable reply queue name");
        return false;
    }
    memcpy(cl->reply_queue, q->queue.bytes, q->queue.len);
    cl->reply_queue[q->queue.len] = 0;
    amqp_queue_bind(cl->conn, 1, amqp_cstring_bytes(cl->reply_queue), amqp_cstring_bytes(REPLY_EXCHANGE),
                    amqp_cstring_bytes(cl->reply_queue), amqp_empty_table);
    if (!rp_amqp_reply_ok(cl->conn, "bind reply queue", err)) return false;
    amqp_basic_consume(cl->conn, 1, amqp_cstring_bytes(cl->reply_queue), amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
    return rp_amqp_reply_ok(cl->conn, "consume replies", err);
}

/* Connects cl (again) when it is not connected. */
static bool client_connect(amqp_tp_t *t, client_t *cl, rp_err_t *err) {
    if (cl->ok) return true;
    if (cl->conn) amqp_destroy_connection(cl->conn);
    if (cl->keeps_long) { /* its pages go with the connection */
        cl->keeps_long = false;
        atomic_fetch_sub(&t->keeping_long, 1);
    }
    /* no heartbeats: librabbitmq answers them only inside its own calls, so the broker would
     * close a call connection that sat idle for two intervals, and the next burst would reopen
     * it while its call waits. A broker that went away shows as a closed socket at the next use
     * (the drain in call_on reconnects); a silent network loss costs that call its deadline. */
    cl->conn = rp_amqp_open(&t->addr, "reward-rpc", 0, err);
    if (!cl->conn) return false;
    /* an exclusive server-named queue, bound to rp.reply under its own name, consumed no-ack;
     * it dies with the connection, so a reply to a call from a broken connection is dropped */
    if (!setup_reply_queue(cl, err)) {
        amqp_destroy_connection(cl->conn);
        cl->conn = NULL;
        return false;
    }
    cl->ok = true;
    return true;
}

/* The call connection that kept this thread's last long reply (may_keep), which its next call
 * takes when it is idle: long replies come in runs from one thread (an export's pages). Only
 * compared with the idle connections' addresses, never followed. */
static __thread const client_t *tl_keeper;

static void client_give(amqp_tp_t *t, client_t *cl) {
    pthread_mutex_lock(&t->cmu);
    t->idle[t->nidle++] = cl;
    pthread_cond_signal(&t->cfreed);
    pthread_mutex_unlock(&t->cmu);
}

/* The idle connection a call of this thread takes (t->cmu held), as an index into t->idle, or -1
 * for a new one: the one that kept this thread's last long reply; else the most recently used of
 * those that keep none, so that the keepers stay free for the runs of long replies; else a new one
 * while fewer than max_clients exist; else the most recently used. */
static int pick_idle(const amqp_tp_t *t) {
    for (int i = t->nidle - 1; i >= 0; i--)
        if (t->idle[i] == tl_keeper) return i;
    for (int i = t->nidle - 1; i >= 0; i--)
        if (!t->idle[i]->keeps_long) return i;
    return t->nclients < t->max_clients ? -1 : t->nidle - 1;
}

/* Takes a client for one call: an idle one or a new one (pick_idle), else waits for one until
 * deadline_ms (epoch ms): 503 OVERLOADED then, since every connection carries a call. The client
 * is connected; give it back with client_give whatever happens. */
static client_t *client_take(amqp_tp_t *t, int64_t deadline_ms, rp_err_t *err) {
    client_t *cl = NULL;
    struct timespec until = rp_ms_timespec(deadline_ms);
    pthread_mutex_lock(&t->cmu);
    while (t->nidle == 0 && t->nclients >= t->max_clients)
        if (pthread_cond_timedwait(&t->cfreed, &t->cmu, &until) == ETIMEDOUT) break;
    int i = t->nidle > 0 ? pick_idle(t) : -1;
    if (i >= 0) {
        cl = t->idle[i];
        memmove(&t->idle[i], &t->idle[i + 1], (size_t)(t->nidle - 1 - i) * sizeof *t->idle); /* the stack's order */
        t->nidle--;
    } else if (t->nclients < t->max_clients) {
        cl = rp_calloc(1, sizeof *cl);
        snprintf(cl->tag, sizeof cl->tag, "%lx", (unsigned long)rp_mono_us() ^ (unsigned long)(uintptr_t)cl);
        t->clients[t->nclients++] = cl;
    }
    pthread_mutex_unlock(&t->cmu);
    if (!cl) {
        rp_err_set(err, RP_ERR_UNAVAILABLE, "OVERLOADED",
                   "all %d broker connections of this process are carrying calls; try again shortly", t->max_clients);
        return NULL;
    }
    if (client_connect(t, cl, err)) return cl;
    client_give(t, cl); /* unconnected: the next taker tries again */
    return NULL;
}

static void client_broken(client_t *cl) {
    cl->ok = false;
    if (cl->conn) amqp_destroy_connection(cl->conn);
    cl->conn = NULL;
}

/* Closes cl's connection in order, so that the broker logs no lost client; the next taker opens
 * one again. A reply still on its way is set aside by librabbitmq while it waits for the close. */
static void client_close(client_t *cl) {
    close_conn(cl->conn);
    cl->conn = NULL;
    cl->ok = false;
}

static bool await_reply(amqp_tp_t *t, client_t *cl, rp_component_t comp, const char *corr, int64_t deadline_ms,
                        int spin_us, char **reply, size_t *reply_len, rp_err_t *err);
static bool await_input(amqp_connection_state_t c, int wake_fd, int wait_ms);

/* One call on cl, which the caller took and gives back; a bundle (req holds several) when bundle. */
static bool call_on(amqp_tp_t *t, client_t *cl, rp_component_t comp, const char *req, size_t len, int64_t deadline_ms,
                    bool bundle, char **reply, size_t *reply_len, rp_err_t *err) {
    /* A connection idle since the broker went away still accepts a publish (the bytes only go
     * to the socket). Read what is pending first: a connection.close or a socket error means
     * reconnect before publishing; late replies to earlier calls are dropped here too. */
    for (;;) {
        amqp_frame_t f;
        struct timeval zero = {0, 0};
        int rc = amqp_simple_wait_frame_noblock(cl->conn, &f, &zero);
        if (rc == AMQP_STATUS_TIMEOUT) break;
        bool dead = rc != AMQP_STATUS_OK ||
                    (f.frame_type == AMQP_FRAME_METHOD && (f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
                                                           f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD));
        if (!dead && f.frame_type == AMQP_FRAME_METHOD &&
            (f.payload.method.id == AMQP_BASIC_DELIVER_METHOD || f.payload.method.id == AMQP_BASIC_RETURN_METHOD)) {
            amqp_message_t m;
            dead = amqp_read_message(cl->conn, f.channel, &m, 0).reply_type != AMQP_RESPONSE_NORMAL;
            if (!dead) amqp_destroy_message(&m);
        }
        if (dead) {
            client_broken(cl);
            if (!client_connect(t, cl, err)) return false;
        }
    }
    char corr[64], expiration[24];
    int64_t budget = deadline_ms - rp_now_ms();
    if (budget <= 0) {
        rp_err_set(err, RP_ERR_TIMEOUT, "WORKER_TIMEOUT", "the %s worker did not answer in time",
                   rp_component_name(comp));
        return false;
    }
    snprintf(corr, sizeof corr, "%s-%llu", cl->tag, (unsigned long long)++cl->counter);
    snprintf(expiration, sizeof expiration, "%lld", (long long)budget); /* abandoned requests expire unprocessed */
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
               AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_EXPIRATION_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.delivery_mode = 1;
    p.correlation_id = amqp_cstring_bytes(corr);
    p.reply_to = amqp_cstring_bytes(cl->reply_queue);
    p.expiration = amqp_cstring_bytes(expiration);
    if (bundle) {
        p._flags |= AMQP_BASIC_TYPE_FLAG;
        p.type = amqp_cstring_bytes(BUNDLE_TYPE);
    }
    amqp_bytes_t body = {.len = len, .bytes = (void *)req};
    if (amqp_basic_publish(cl->conn, 1, amqp_cstring_bytes(exchange_of(comp)),
                           amqp_cstring_bytes(rp_component_name(comp)), 1, 0, &p, body) != AMQP_STATUS_OK) {
        client_broken(cl);
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "the message broker is unavailable");
        return false;
    }
    /* a bundle never spins: it leaves only when calls queued, so the cores have work, and its
     * reply takes its worker's group commit, far longer than a spin */
    bool alone = atomic_fetch_add(&t->waiting, 1) == 0 && !bundle;
    bool ok = await_reply(t, cl, comp, corr, deadline_ms, alone ? t->spin_us : 0, reply, reply_len, err);
    atomic_fetch_sub(&t->waiting, 1);
    return ok;
}

/* Waits on cl for the reply to call corr, polling the socket without sleeping for the first
 * spin_us microseconds (see amqp_tp.spin_us). */
static bool await_reply(amqp_tp_t *t, client_t *cl, rp_component_t comp, const char *corr, int64_t deadline_ms,
                        int spin_us, char **reply, size_t *reply_len, rp_err_t *err) {
    int64_t spin_until = spin_us > 0 ? rp_mono_us() + spin_us : 0;
    for (;;) {
        int64_t left = deadline_ms - rp_now_ms();
        if (left <= 0) {
            rp_err_set(err, RP_ERR_TIMEOUT, "WORKER_TIMEOUT", "the %s worker did not answer in time",
                       rp_component_name(comp));
            return false;
        }
        amqp_frame_t f;
        bool spinning = spin_until && rp_mono_us() < spin_until;
        /* a long wait comes back to librabbitmq now and then too, for the heartbeats */
        if (!spinning && !await_input(cl->conn, t->calls_stop_fd, left < IDLE_WAIT_MS ? (int)left : IDLE_WAIT_MS)) {
            client_close(cl); /* the reply may still come: this connection must not carry another call */
            rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "this process is stopping");
            return false;
        }
        int rc = rp_amqp_wait_method(cl->conn, 0, &f);
        if (rc == AMQP_STATUS_TIMEOUT) {
            /* a worker or the broker woken on this core runs at once, not after the poll: the
             * round trip's p99 at 1 connection was lower in 11 of 12 pairs (bench/README.md) */
            if (spinning) sched_yield();
            continue;
        }
        if (rc != AMQP_STATUS_OK) {
            client_broken(cl);
            rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE",
                       "lost the message broker while waiting for the %s worker", rp_component_name(comp));
            return false;
        }
        if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD || f.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
            bool returned = f.payload.method.id == AMQP_BASIC_RETURN_METHOD;
            amqp_message_t m;
            if (amqp_read_message(cl->conn, f.channel, &m, 0).reply_type != AMQP_RESPONSE_NORMAL) {
                client_broken(cl);
                rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "lost the message broker while reading a reply");
                return false;
            }
            bool mine = (m.properties._flags & AMQP_BASIC_CORRELATION_ID_FLAG) &&
                        m.properties.correlation_id.len == strlen(corr) &&
                        memcmp(m.properties.correlation_id.bytes, corr, strlen(corr)) == 0;
            if (mine && returned) {
                amqp_destroy_message(&m);
                rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "nobody serves the %s queue",
                           rp_component_name(comp));
                return false;
            }
            if (mine) {
                *reply = rp_strndup(m.body.bytes, m.body.len);
                *reply_len = m.body.len;
                amqp_destroy_message(&m);
                return true;
            }
            amqp_destroy_message(&m); /* a late reply to an earlier call that timed out: dropped */
            continue;
        }
        if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD || f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
            client_broken(cl);
            rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "the broker closed the channel");
            return false;
        }
    }
}

/* Whether cl may keep the pages of a reply of len bytes (over RP_AMQP_KEEP_BYTES): up to
 * RP_AMQP_KEEP_REPLY_BYTES, on a connection that already keeps such pages or as one of the first
 * RP_AMQP_LONG_REPLY_CONNS that do. */
static bool may_keep(amqp_tp_t *t, client_t *cl, size_t len) {
    if (len > RP_AMQP_KEEP_REPLY_BYTES) return false;
    if (cl->keeps_long) return true;
    int n = atomic_load(&t->keeping_long);
    while (n < RP_AMQP_LONG_REPLY_CONNS)
        if (atomic_compare_exchange_weak(&t->keeping_long, &n, n + 1)) return cl->keeps_long = true;
    return false;
}

/* Makes an idle keeper this thread's (tl_keeper), after a long reply that its connection could not
 * keep: a thread that was not the one that made the keeper (an export on another HTTP thread than
 * the last) then takes it for its next long reply instead of opening a connection again for
 * every one. */
static void adopt_keeper(amqp_tp_t *t) {
    pthread_mutex_lock(&t->cmu);
    for (int i = t->nidle - 1; i >= 0; i--)
        if (t->idle[i]->keeps_long) {
            tl_keeper = t->idle[i];
            break;
        }
    pthread_mutex_unlock(&t->cmu);
}

static bool call_with(amqp_tp_t *t, rp_component_t comp, const char *req, size_t len, int64_t deadline_ms, bool bundle,
                      char **reply, size_t *reply_len, rp_err_t *err) {
    client_t *cl = client_take(t, deadline_ms, err);
    if (!cl) return false;
    bool ok = call_on(t, cl, comp, req, len, deadline_ms, bundle, reply, reply_len, err);
    if (ok && *reply_len > RP_AMQP_KEEP_BYTES && may_keep(t, cl, *reply_len)) {
        tl_keeper = cl;
    } else if (ok && *reply_len > RP_AMQP_KEEP_BYTES) {
        /* a long reply left its pages in the connection's pool, and it may not keep them
         * (may_keep): this caller, whose answer is in hand, opens the connection again, so the
         * next need not */
        rp_err_t ignored;
        client_close(cl);
        (void)client_connect(t, cl, &ignored); /* unconnected, the next taker tries again */
        atomic_fetch_add(&t->reopened_calls, 1);
        if (*reply_len <= RP_AMQP_KEEP_REPLY_BYTES) adopt_keeper(t);
    }
    client_give(t, cl);
    return ok;
}

static bool amqp_call(rp_transport_t *base, rp_component_t comp, const char *req, size_t len, int64_t deadline_ms,
                      char **reply, size_t *reply_len, rp_err_t *err) {
    return call_with((amqp_tp_t *)base, comp, req, len, deadline_ms, false, reply, reply_len, err);
}

/* ---- shared calls: bundles on the calling side ---- */

/* Takes from g's queue (g->mu held) the calls that may go with lead's, up to the bundle's limits,
 * into seats[1..]; returns how many seats are filled, lead's included, and the latest deadline
 * in *until. Those taken are SENT, each knowing its seat. */
static int take_company(amqp_tp_t *t, gather_t *g, shared_call_t *lead, shared_call_t **seats, int64_t *until) {
    int n = 1;
    size_t bytes = lead->len;
    seats[0] = lead;
    *until = lead->deadline_ms;
    for (shared_call_t **pp = &g->head; *pp && n < t->bundle_max;) {
        shared_call_t *c = *pp;
        if (c->deadline_ms > lead->deadline_ms + BUNDLE_SKEW_MS || bytes + c->len > BUNDLE_BYTES) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        atomic_fetch_sub(&t->shared_waiting, 1);
        c->state = SHARE_SENT;
        c->seat = &seats[n];
        seats[n++] = c;
        bytes += c->len;
        if (c->deadline_ms > *until) *until = c->deadline_ms;
    }
    return n;
}

static void unqueue(gather_t *g, shared_call_t *c) {
    for (shared_call_t **pp = &g->head; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            return;
        }
}

/* Hands each call of seats[1..n) still waiting (its seat not cleared) its part of the bundle's
 * reply (dups[i], taken here; those of calls that gave up stay in dups for the caller to free), or
 * err when the bundle failed; then the lane passes to the first call queued, if any. Returns the
 * calls to wake, in wake[] (g->mu held; post them once it is let go). */
static int answer_company(amqp_tp_t *t, gather_t *g, shared_call_t **seats, int n, bool ok, char **dups,
                          const rp_bundle_part_t *parts, const rp_err_t *err, shared_call_t **wake) {
    int w = 0;
    for (int i = 1; i < n; i++) {
        shared_call_t *c = seats[i];
        if (!c) continue; /* it gave up: its deadline passed */
        c->ok = ok;
        if (ok) {
            c->reply = dups[i];
            c->reply_len = parts[i].n;
            dups[i] = NULL;
        } else {
            c->err = *err;
        }
        c->state = SHARE_ANSWERED;
        wake[w++] = c;
    }
    shared_call_t *next = g->head;
    if (next) {
        g->head = next->next;
        atomic_fetch_sub(&t->shared_waiting, 1);
        next->state = SHARE_LEADING;
        wake[w++] = next;
    } else {
        g->lanes_busy--;
    }
    return w;
}

/* Sends the bundle led by me (g->mu held on entry, released here) and hands out the answers. */
static bool lead_bundle(amqp_tp_t *t, gather_t *g, rp_component_t comp, shared_call_t *me, char **reply,
                        size_t *reply_len, rp_err_t *err) {
    shared_call_t *seats[RP_BUNDLE_MAX_PARTS], *wake[RP_BUNDLE_MAX_PARTS + 1];
    char *dups[RP_BUNDLE_MAX_PARTS] = {NULL};
    int64_t until;
    int n = take_company(t, g, me, seats, &until);
    rp_bundle_part_t parts[RP_BUNDLE_MAX_PARTS];
    char *body = NULL;
    size_t blen = 0;
    if (n > 1) { /* joined now: a call that gives up takes its bytes with it */
        for (int i = 0; i < n; i++)
            parts[i] = (rp_bundle_part_t){seats[i]->req, seats[i]->len};
        body = rp_bundle_join(parts, (size_t)n, &blen);
    }
    pthread_mutex_unlock(&g->mu);
    char *rb = NULL;
    size_t rlen = 0;
    rp_err_t berr;
    rp_err_clear(&berr);
    bool ok;
    if (n == 1) {
        ok = call_with(t, comp, me->req, me->len, me->deadline_ms, false, &rb, &rlen, &berr);
    } else {
        atomic_fetch_add(&t->bundles_sent, 1);
        atomic_fetch_add(&t->bundled_calls, n);
        ok = call_with(t, comp, body, blen, until, true, &rb, &rlen, &berr);
        free(body);
        if (ok && rp_bundle_split(rb, rlen, parts, (size_t)n) != (size_t)n) {
            ok = false;
            rp_err_set(&berr, RP_ERR_INTERNAL, "BAD_REPLY", "the %s worker's bundled reply holds no reply per call",
                       rp_component_name(comp));
        }
        for (int i = 1; ok && i < n; i++) /* copied before the mutex is taken again */
            dups[i] = rp_strndup(parts[i].p, parts[i].n);
    }
    pthread_mutex_lock(&g->mu);
    int w = answer_company(t, g, seats, n, ok, dups, parts, &berr, wake);
    pthread_mutex_unlock(&g->mu);
    for (int i = 0; i < w; i++)
        sem_post(&wake[i]->woken);
    for (int i = 1; i < n; i++)
        free(dups[i]);                                  /* the parts of calls that gave up */
    if (ok && n > 1 && rp_now_ms() > me->deadline_ms) { /* its own answer came too late: dropped */
        ok = false;
        rp_err_set(&berr, RP_ERR_TIMEOUT, "WORKER_TIMEOUT", "the %s worker did not answer in time",
                   rp_component_name(comp));
    }
    if (!ok) {
        if (err) *err = berr;
        free(rb);
        return false;
    }
    if (n == 1) {
        *reply = rb;
        *reply_len = rlen;
    } else {
        *reply = rp_strndup(parts[0].p, parts[0].n);
        *reply_len = parts[0].n;
        free(rb);
    }
    return true;
}

/* Waits for c's post until its deadline: true when posted, false when the deadline passed. */
static bool await_post(shared_call_t *c) {
    struct timespec when = rp_ms_timespec(c->deadline_ms);
    for (;;) {
        if (sem_timedwait(&c->woken, &when) == 0) return true;
        if (errno != EINTR) return false;
    }
}

static bool amqp_call_shared(rp_transport_t *base, rp_component_t comp, const char *req, size_t len,
                             int64_t deadline_ms, char **reply, size_t *reply_len, rp_err_t *err) {
    amqp_tp_t *t = (amqp_tp_t *)base;
    if (t->bundle_max <= 1 || (unsigned)comp >= RP_COMP_COUNT)
        return call_with(t, comp, req, len, deadline_ms, false, reply, reply_len, err);
    gather_t *g = &t->gather[comp];
    shared_call_t me = {.req = req, .len = len, .deadline_ms = deadline_ms};
    pthread_mutex_lock(&g->mu);
    if (g->lanes_busy < t->bundle_lanes) {
        g->lanes_busy++;
        return lead_bundle(t, g, comp, &me, reply, reply_len, err);
    }
    sem_init(&me.woken, 0, 0);
    me.state = SHARE_WAITING;
    shared_call_t **pp = &g->head;
    while (*pp)
        pp = &(*pp)->next;
    *pp = &me;
    atomic_fetch_add(&t->shared_waiting, 1);
    pthread_mutex_unlock(&g->mu);
    if (!await_post(&me)) {
        pthread_mutex_lock(&g->mu);
        bool gave_up = true;
        if (me.state == SHARE_WAITING) {
            unqueue(g, &me);
            atomic_fetch_sub(&t->shared_waiting, 1);
            rp_err_set(&me.err, RP_ERR_UNAVAILABLE, "OVERLOADED",
                       "all %d bundles of calls to the %s worker were on their way until the deadline", t->bundle_lanes,
                       rp_component_name(comp));
        } else if (me.state == SHARE_SENT) {
            *me.seat = NULL; /* its leader hands it nothing and posts nothing */
            rp_err_set(&me.err, RP_ERR_TIMEOUT, "WORKER_TIMEOUT", "the %s worker did not answer in time",
                       rp_component_name(comp));
        } else {
            gave_up = false; /* answered or made leader as the wait ended: the post is on its way */
        }
        pthread_mutex_unlock(&g->mu);
        if (gave_up) {
            sem_destroy(&me.woken);
            if (err) *err = me.err;
            return false;
        }
        while (sem_wait(&me.woken) != 0)
            ; /* EINTR */
    }
    sem_destroy(&me.woken);
    if (me.state == SHARE_LEADING) {
        pthread_mutex_lock(&g->mu);
        return lead_bundle(t, g, comp, &me, reply, reply_len, err);
    }
    if (!me.ok) {
        if (err) *err = me.err;
        return false;
    }
    *reply = me.reply;
    *reply_len = me.reply_len;
    return true;
}

static bool amqp_ready(rp_transport_t *base, rp_err_t *err) {
    amqp_tp_t *t = (amqp_tp_t *)base;
    if (atomic_load(&t->stopping)) {
        rp_err_set(err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "shutting down");
        return false;
    }
    client_t *cl = client_take(t, rp_now_ms() + READY_WAIT_MS, err);
    if (!cl) return false;
    client_give(t, cl);
    return true;
}

#define CONNECT_THREADS 8 /* connections set up at once by rp_transport_amqp_connect */

typedef struct connect_share {
    amqp_tp_t *t;
    client_t **held; /* this thread's part: takes are held until every thread is done */
    int want, got;
    rp_err_t err;
} connect_share_t;

static void *connect_part(void *arg) {
    connect_share_t *c = arg;
    while (c->got < c->want && (c->held[c->got] = client_take(c->t, rp_now_ms() + READY_WAIT_MS, &c->err)) != NULL)
        c->got++;
    return NULL;
}

bool rp_transport_amqp_connect(rp_transport_t *base, int n, rp_err_t *err) {
    amqp_tp_t *t = (amqp_tp_t *)base;
    if (n > t->max_clients) n = t->max_clients;
    if (n < 1) return true;
    int parts = n < CONNECT_THREADS ? n : CONNECT_THREADS;
    client_t **held = rp_calloc((size_t)n, sizeof *held);
    connect_share_t share[CONNECT_THREADS];
    pthread_t th[CONNECT_THREADS];
    bool started[CONNECT_THREADS] = {false};
    /* every take is held until all are done, so that each opens a connection of its own; each
     * takes several broker round trips, so a few threads set them up side by side */
    for (int i = 0, from = 0; i < parts; i++) {
        int want = n / parts + (i < n % parts);
        share[i] = (connect_share_t){.t = t, .held = held + from, .want = want};
        rp_err_clear(&share[i].err);
        from += want;
        started[i] = pthread_create(&th[i], NULL, connect_part, &share[i]) == 0;
        if (!started[i]) connect_part(&share[i]);
    }
    bool ok = true;
    for (int i = 0; i < parts; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        if (share[i].got < share[i].want && ok) {
            ok = false;
            if (err) *err = share[i].err;
        }
    }
    for (int i = 0; i < parts; i++)
        while (share[i].got > 0)
            client_give(t, share[i].held[--share[i].got]);
    free(held);
    return ok;
}

/* ---- the serving side ---- */

static bool send_reply(amqp_connection_state_t c, const amqp_envelope_t *env, const char *out, size_t n) {
    if (!(env->message.properties._flags & AMQP_BASIC_REPLY_TO_FLAG)) return true; /* nobody to answer */
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.delivery_mode = 1;
    if (env->message.properties._flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
        p._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        p.correlation_id = env->message.properties.correlation_id;
    }
    amqp_bytes_t body = {.len = n, .bytes = (void *)out};
    return amqp_basic_publish(c, 1, amqp_cstring_bytes(REPLY_EXCHANGE), env->message.properties.reply_to, 0, 0, &p,
                              body) == AMQP_STATUS_OK;
}

static bool parseable(const amqp_envelope_t *env) {
    const char *b = env->message.body.bytes;
    size_t n = env->message.body.len;
    return n >= 2 && b[0] == '{';
}

static bool is_bundle(const amqp_envelope_t *env) {
    const amqp_basic_properties_t *p = &env->message.properties;
    return (p->_flags & AMQP_BASIC_TYPE_FLAG) && p->type.len == strlen(BUNDLE_TYPE) &&
           memcmp(p->type.bytes, BUNDLE_TYPE, p->type.len) == 0;
}

/* Runs part i of run (t->hmu not held) and counts it done. */
static void run_part(amqp_tp_t *t, bundle_run_t *run, size_t i) {
    size_t n = 0;
    char *out = run->cs->fn(run->cs->ctx, run->parts[i].p, run->parts[i].n, &n);
    run->answers[i] = (rp_bundle_part_t){out, out ? n : 0}; /* none: the caller reads an empty reply */
    pthread_mutex_lock(&t->hmu);
    if (++run->done == run->n) pthread_cond_signal(&run->finished);
    pthread_mutex_unlock(&t->hmu);
}

/* Takes the next part of run (t->hmu held): its index, or run->n when none is left; the run
 * leaves the queue with its last part. */
static size_t take_part(amqp_tp_t *t, bundle_run_t *run) {
    if (run->next == run->n) return run->n;
    size_t i = run->next++;
    if (run->next == run->n)
        for (bundle_run_t **pp = &t->hqueue; *pp; pp = &(*pp)->queued)
            if (*pp == run) {
                *pp = run->queued;
                break;
            }
    return i;
}

static void *helper_main(void *arg) {
    amqp_tp_t *t = arg;
    pthread_mutex_lock(&t->hmu);
    while (!t->helpers_stop) {
        bundle_run_t *run = t->hqueue;
        if (!run) {
            pthread_cond_wait(&t->hwork, &t->hmu);
            continue;
        }
        size_t i = take_part(t, run);
        pthread_mutex_unlock(&t->hmu);
        run_part(t, run, i);
        pthread_mutex_lock(&t->hmu);
    }
    pthread_mutex_unlock(&t->hmu);
    return NULL;
}

/* Starts the helper threads once (t->hmu held): HELPERS_PER_CONSUMER per RPC consumer thread of
 * this process, at most MAX_HELPERS. None started: the consumers run every part themselves. */
static void start_helpers(amqp_tp_t *t) {
    if (t->helpers || t->helpers_stop) return;
    int want = atomic_load(&t->rpc_consumers) * HELPERS_PER_CONSUMER;
    if (want > MAX_HELPERS) want = MAX_HELPERS;
    t->helpers = rp_calloc((size_t)(want > 0 ? want : 1), sizeof *t->helpers);
    for (int i = 0; i < want; i++) {
        if (pthread_create(&t->helpers[t->nhelpers], NULL, helper_main, t) != 0) {
            rp_log(RP_LOG_WARN, "amqp", "started %d of %d bundle helper threads", t->nhelpers, want);
            break;
        }
        t->nhelpers++;
    }
}

static void stop_helpers(amqp_tp_t *t) {
    pthread_mutex_lock(&t->hmu);
    t->helpers_stop = true;
    pthread_cond_broadcast(&t->hwork);
    pthread_mutex_unlock(&t->hmu);
    for (int i = 0; i < t->nhelpers; i++)
        pthread_join(t->helpers[i], NULL);
    t->nhelpers = 0;
    free(t->helpers);
    t->helpers = NULL;
}

/* Serves a bundle: its parts side by side (this thread and the helpers), then one reply holding
 * theirs in order, then the ack, as for one call. A bundle that does not split is dead-lettered.
 * False when the connection broke. */
static bool serve_bundle(consumer_t *cs, amqp_connection_state_t c, amqp_envelope_t *env) {
    amqp_tp_t *t = cs->t;
    rp_bundle_part_t *parts = rp_malloc(RP_BUNDLE_MAX_PARTS * sizeof *parts);
    size_t n = rp_bundle_split(env->message.body.bytes, env->message.body.len, parts, RP_BUNDLE_MAX_PARTS);
    if (n == 0) {
        free(parts);
        rp_log(RP_LOG_ERROR, "amqp", "dead-lettering a malformed bundle on %s (%zu bytes)", cs->queue,
               env->message.body.len);
        return amqp_basic_nack(c, 1, env->delivery_tag, 0, 0) == AMQP_STATUS_OK;
    }
    bundle_run_t run = {.cs = cs, .parts = parts, .answers = rp_calloc(n, sizeof *run.answers), .n = n};
    pthread_cond_init(&run.finished, NULL);
    pthread_mutex_lock(&t->hmu);
    start_helpers(t);
    if (n > 1 && t->nhelpers > 0) {
        run.queued = t->hqueue;
        t->hqueue = &run;
        /* one helper woken per part left to others, not all: a broadcast woke every helper for a
         * bundle of two, and they fought over this mutex */
        for (size_t k = 1; k < n && k <= (size_t)t->nhelpers; k++)
            pthread_cond_signal(&t->hwork);
    } /* else not queued: this thread takes every part */
    for (;;) {
        size_t i = take_part(t, &run);
        if (i == n) break;
        pthread_mutex_unlock(&t->hmu);
        run_part(t, &run, i);
        pthread_mutex_lock(&t->hmu);
    }
    while (run.done < n)
        pthread_cond_wait(&run.finished, &t->hmu);
    pthread_mutex_unlock(&t->hmu);
    pthread_cond_destroy(&run.finished);
    atomic_fetch_add(&t->bundles_served, 1);
    size_t rlen = 0;
    char *reply = rp_bundle_join(run.answers, n, &rlen);
    for (size_t i = 0; i < n; i++)
        free((char *)run.answers[i].p);
    free(run.answers);
    free(parts);
    bool sent = send_reply(c, env, reply, rlen);
    free(reply);
    return sent && amqp_basic_ack(c, 1, env->delivery_tag, 0) == AMQP_STATUS_OK;
}

/* Handles one delivery: an RPC runs the handler, replies, then acks (the handler has committed;
 * a crash before the ack means redelivery, which the idempotent operations absorb); a work item
 * is acked when handled and dead-lettered when its handler calls it malformed. False when the
 * connection broke. */
static bool handle_delivery(consumer_t *cs, amqp_connection_state_t c, amqp_envelope_t *env) {
    if (cs->fn && is_bundle(env)) return serve_bundle(cs, c, env);
    if (!parseable(env)) {
        rp_log(RP_LOG_ERROR, "amqp", "dead-lettering an unparseable message on %s (%zu bytes)", cs->queue,
               env->message.body.len);
        return amqp_basic_nack(c, 1, env->delivery_tag, 0, 0) == AMQP_STATUS_OK;
    }
    if (cs->work) {
        if (cs->work(cs->ctx, env->message.body.bytes, env->message.body.len))
            return amqp_basic_ack(c, 1, env->delivery_tag, 0) == AMQP_STATUS_OK;
        rp_log(RP_LOG_ERROR, "amqp", "dead-lettering a malformed message on %s", cs->queue);
        return amqp_basic_nack(c, 1, env->delivery_tag, 0, 0) == AMQP_STATUS_OK;
    }
    size_t n = 0;
    char *out = cs->fn(cs->ctx, env->message.body.bytes, env->message.body.len, &n);
    bool sent = out && send_reply(c, env, out, n);
    free(out);
    return sent && amqp_basic_ack(c, 1, env->delivery_tag, 0) == AMQP_STATUS_OK;
}

/* Waits up to wait_ms until c has input, for librabbitmq to read without waiting; false, at once,
 * when wake_fd (one of the stop's eventfds) is readable. Waiting inside librabbitmq instead, a
 * thread could look at the stop only once its wait ended: consumers waited 1 s at a time, so a
 * worker took up to 1 s to stop. */
static bool await_input(amqp_connection_state_t c, int wake_fd, int wait_ms) {
    struct pollfd p[2] = {{.fd = wake_fd, .events = POLLIN}, {.fd = amqp_get_sockfd(c), .events = POLLIN}};
    bool buffered = amqp_frames_enqueued(c) || amqp_data_in_buffer(c);
    /* an error or a signal: librabbitmq finds out what it is */
    if (poll(p, 2, buffered ? 0 : wait_ms) > 0 && (p[0].revents & POLLIN)) return false;
    return true;
}

static void *consume_main(void *arg) {
    consumer_t *cs = arg;
    amqp_tp_t *t = cs->t;
    int backoff_ms = 100;
    char name[80];
    snprintf(name, sizeof name, "reward-worker %s", cs->queue);
    while (!atomic_load(&t->stopping)) {
        rp_err_t err;
        bool renew = false;
        amqp_connection_state_t c = rp_amqp_open(&t->addr, name, HEARTBEAT_S, &err);
        if (c && declare_queue(c, cs->exchange, cs->queue, cs->key, cs->fn != NULL, &err)) {
            amqp_basic_qos(c, 1, 0, (uint16_t)(cs->fn ? RPC_PREFETCH : t->prefetch), 0);
            if (rp_amqp_reply_ok(c, "qos", &err)) {
                amqp_basic_consume(c, 1, amqp_cstring_bytes(cs->queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
                if (rp_amqp_reply_ok(c, "consume", &err)) {
                    rp_log(RP_LOG_INFO, "amqp", "consuming %s", cs->queue);
                    backoff_ms = 100;
                    /* after IDLE_WAIT_MS without input, librabbitmq is called all the same, to
                     * send a heartbeat that is due; the stop's eventfd ends the loop */
                    while (await_input(c, t->stop_fd, IDLE_WAIT_MS)) {
                        amqp_envelope_t env;
                        struct timeval now = {0, 0}; /* what has come; the rest of a message is awaited */
                        amqp_maybe_release_buffers(c);
                        amqp_rpc_reply_t r = amqp_consume_message(c, &env, &now, 0);
                        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
                            continue;
                        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
                            rp_err_set(&err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "lost the broker");
                            break;
                        }
                        bool alive = handle_delivery(cs, c, &env);
                        /* a long message left its pages in the connection's pool: only a new
                         * connection gives them back (RP_AMQP_KEEP_BYTES). An RPC consumer holds
                         * one message at a time, so none waits unacknowledged on the old one;
                         * what the broker sent meanwhile goes back to the queue. */
                        renew = alive && cs->fn && env.message.body.len > RP_AMQP_KEEP_BYTES;
                        amqp_destroy_envelope(&env);
                        if (!alive) {
                            rp_err_set(&err, RP_ERR_UNAVAILABLE, "UNAVAILABLE", "lost the broker while acknowledging");
                            break;
                        }
                        if (renew) break;
                    }
                }
            }
        }
        if (c) close_conn(c);
        if (atomic_load(&t->stopping)) break;
        if (renew) {
            atomic_fetch_add(&t->reopened_consumers, 1);
            continue;
        }
        rp_log(RP_LOG_WARN, "amqp", "%s: %s; retrying in %d ms", cs->queue, err.message, backoff_ms);
        struct pollfd stop = {.fd = t->stop_fd, .events = POLLIN}; /* the stop ends the back-off too */
        (void)poll(&stop, 1, backoff_ms);
        backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
    }
    return NULL;
}

/* Declares the queue once (failing fast when the broker is unreachable or the topology
 * conflicts), then starts `threads` consumers of it. */
static bool start_consumers(amqp_tp_t *t, const char *exchange, const char *queue, const char *key,
                            rp_rpc_handler_fn fn, rp_work_fn work, void *ctx, int threads, rp_err_t *err) {
    amqp_connection_state_t c = rp_amqp_open(&t->addr, "reward-setup", HEARTBEAT_S, err);
    if (!c) return false;
    bool ok = declare_queue(c, exchange, queue, key, fn != NULL, err);
    close_conn(c);
    if (!ok) return false;
    pthread_mutex_lock(&t->mu);
    for (int i = 0; i < threads; i++) {
        if (t->nconsumers == t->capconsumers) {
            t->capconsumers = t->capconsumers ? t->capconsumers * 2 : 16;
            t->consumers = rp_realloc(t->consumers, t->capconsumers * sizeof *t->consumers);
        }
        consumer_t *cs = rp_calloc(1, sizeof *cs);
        cs->t = t;
        snprintf(cs->queue, sizeof cs->queue, "%s", queue);
        snprintf(cs->exchange, sizeof cs->exchange, "%s", exchange);
        snprintf(cs->key, sizeof cs->key, "%s", key);
        cs->fn = fn;
        cs->work = work;
        cs->ctx = ctx;
        if (pthread_create(&cs->thread, NULL, consume_main, cs) != 0) {
            free(cs);
            pthread_mutex_unlock(&t->mu);
            rp_err_set(err, RP_ERR_INTERNAL, "TRANSPORT", "cannot start a consumer thread");
            return false;
        }
        t->consumers[t->nconsumers++] = cs;
        if (fn) atomic_fetch_add(&t->rpc_consumers, 1);
    }
    pthread_mutex_unlock(&t->mu);
    return true;
}

static bool amqp_serve(rp_transport_t *base, rp_component_t comp, rp_rpc_handler_fn fn, void *ctx, int threads,
                       rp_err_t *err) {
    return start_consumers((amqp_tp_t *)base, exchange_of(comp), rp_component_queue(comp), rp_component_name(comp), fn,
                           NULL, ctx, threads, err);
}

static bool amqp_consume(rp_transport_t *base, const char *queue, rp_work_fn fn, void *ctx, int threads,
                         rp_err_t *err) {
    return start_consumers((amqp_tp_t *)base, WORK_EXCHANGE, queue, queue, NULL, fn, ctx, threads, err);
}

static void publisher_free(void *p) {
    rp_amqp_publisher_free(p);
}

static bool amqp_enqueue(rp_transport_t *base, const char *queue, const char *const *msgs, const size_t *lens, size_t n,
                         rp_err_t *err) {
    amqp_tp_t *t = (amqp_tp_t *)base;
    rp_amqp_publisher_t *p = pthread_getspecific(t->pub_key);
    if (!p) {
        if (!(p = rp_amqp_publisher_new(t->url, "reward-work-publisher", WORK_EXCHANGE, "direct", err))) return false;
        pthread_setspecific(t->pub_key, p);
    }
    for (size_t i = 0; i < n; i++)
        if (!rp_amqp_publisher_send(p, queue, NULL, msgs[i], lens[i], true, err)) return false;
    return rp_amqp_publisher_confirm(p, CONFIRM_WAIT_MS, err);
}

static void amqp_stop(rp_transport_t *base) {
    amqp_tp_t *t = (amqp_tp_t *)base;
    if (atomic_exchange(&t->stopping, true)) return;
    (void)eventfd_write(t->stop_fd, 1); /* cannot fail before the counter nears 2^64 */
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->nconsumers; i++) {
        pthread_join(t->consumers[i]->thread, NULL);
        free(t->consumers[i]);
    }
    t->nconsumers = 0;
    pthread_mutex_unlock(&t->mu);
    stop_helpers(t); /* no bundle is served any more */
    (void)eventfd_write(t->calls_stop_fd, 1);
}

static void amqp_free(rp_transport_t *base) {
    amqp_tp_t *t = (amqp_tp_t *)base;
    amqp_stop(base);
    for (int i = 0; i < t->nclients; i++)
        client_free(t->clients[i]);
    free(t->clients);
    free(t->idle);
    pthread_mutex_destroy(&t->cmu);
    pthread_cond_destroy(&t->cfreed);
    publisher_free(pthread_getspecific(t->pub_key));
    pthread_setspecific(t->pub_key, NULL);
    pthread_key_delete(t->pub_key);
    free(t->url);
    pthread_mutex_destroy(&t->mu);
    for (int i = 0; i < RP_COMP_COUNT; i++)
        pthread_mutex_destroy(&t->gather[i].mu);
    pthread_mutex_destroy(&t->hmu);
    pthread_cond_destroy(&t->hwork);
    free(t->consumers);
    rp_amqp_url_clear(&t->addr);
    close(t->stop_fd);
    close(t->calls_stop_fd);
    free(t);
}

static const rp_transport_ops_t amqp_ops = {.serve = amqp_serve,
                                            .call = amqp_call,
                                            .call_shared = amqp_call_shared,
                                            .ready = amqp_ready,
                                            .enqueue = amqp_enqueue,
                                            .consume = amqp_consume,
                                            .stop = amqp_stop,
                                            .free = amqp_free};

rp_transport_t *rp_transport_amqp_new(const char *url, int prefetch, int connections, int reply_spin_us,
                                      rp_err_t *err) {
    rp_amqp_url_t addr;
    if (!rp_amqp_url_parse(&addr, url, err)) return NULL;
    int stop_fd = eventfd(0, EFD_CLOEXEC), calls_stop_fd = eventfd(0, EFD_CLOEXEC);
    if (stop_fd < 0 || calls_stop_fd < 0) {
        rp_err_set(err, RP_ERR_INTERNAL, "TRANSPORT", "cannot make the stop's wake-ups: %s", strerror(errno));
        if (stop_fd >= 0) close(stop_fd);
        if (calls_stop_fd >= 0) close(calls_stop_fd);
        rp_amqp_url_clear(&addr);
        return NULL;
    }
    amqp_tp_t *t = rp_calloc(1, sizeof *t);
    t->stop_fd = stop_fd;
    t->calls_stop_fd = calls_stop_fd;
    t->base.ops = &amqp_ops;
    t->addr = addr;
    t->prefetch = prefetch > 0 ? prefetch : 16;
    t->spin_us = reply_spin_us > 0 ? reply_spin_us : 0;
    t->url = rp_strdup(url);
    t->max_clients = connections > 0 ? connections : 1;
    t->clients = rp_calloc((size_t)t->max_clients, sizeof *t->clients);
    t->idle = rp_calloc((size_t)t->max_clients, sizeof *t->idle);
    pthread_mutex_init(&t->cmu, NULL);
    pthread_cond_init(&t->cfreed, NULL);
    pthread_key_create(&t->pub_key, publisher_free);
    pthread_mutex_init(&t->mu, NULL);
    t->bundle_max = 1;
    t->bundle_lanes = 1;
    for (int i = 0; i < RP_COMP_COUNT; i++)
        pthread_mutex_init(&t->gather[i].mu, NULL);
    pthread_mutex_init(&t->hmu, NULL);
    pthread_cond_init(&t->hwork, NULL);
    return &t->base;
}

void rp_transport_amqp_bundle(rp_transport_t *base, int max, int lanes) {
    if (!base || base->ops != &amqp_ops) return;
    amqp_tp_t *t = (amqp_tp_t *)base;
    t->bundle_max = max < 1 ? 1 : max > RP_BUNDLE_MAX_PARTS ? RP_BUNDLE_MAX_PARTS : max;
    t->bundle_lanes = lanes < 1 ? 1 : lanes;
}

bool rp_transport_amqp_stats(const rp_transport_t *base, rp_amqp_stats_t *out) {
    memset(out, 0, sizeof *out);
    if (!base || base->ops != &amqp_ops) return false;
    const amqp_tp_t *t = (const amqp_tp_t *)base;
    out->reopened_calls = atomic_load(&t->reopened_calls);
    out->reopened_consumers = atomic_load(&t->reopened_consumers);
    out->long_reply_conns = atomic_load(&t->keeping_long);
    out->bundles_sent = atomic_load(&t->bundles_sent);
    out->bundled_calls = atomic_load(&t->bundled_calls);
    out->bundles_served = atomic_load(&t->bundles_served);
    out->shared_waiting = atomic_load(&t->shared_waiting);
    return true;
}
