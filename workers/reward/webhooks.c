/* webhooks.c - webhook endpoints, the fan-out relay and the senders (see webhooks.h). The rules
 * live here: who gets which message, what its body says, when an attempt is retried, when an
 * endpoint is disabled. The store only stores and fetches. */
#include "webhooks.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ids.h"
#include "log.h"
#include "loop.h"
#include "mem.h"
#include "paging.h"
#include "roles.h"
#include "rpc.h"
#include "service.h"
#include "timeutil.h"
#include "webhook_http.h"
#include "webhook_sign.h"
#include "webhook_store.h"

#define STAFF_READ (RP_ROLE_OPERATOR | RP_ROLE_AUDITOR | RP_ROLE_ADMIN)
#define STAFF_WRITE (RP_ROLE_OPERATOR | RP_ROLE_ADMIN)
#define FANOUT_BATCH 200
#define SEND_BATCH 4
#define IDLE_MS 100
#define NOTICE_MS 1000

/* Attempt results counted by the metrics. */
enum { RES_2XX, RES_3XX, RES_4XX, RES_5XX, RES_TIMEOUT, RES_ERROR, NRESULTS };
static const char *const result_names[] = {"2xx", "3xx", "4xx", "5xx", "timeout", "error"};
static const double latency_bounds_ms[] = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000};
#define NBOUNDS (sizeof latency_bounds_ms / sizeof latency_bounds_ms[0])

struct rp_webhooks {
    const rp_config_t *cfg;
    rp_webhook_store_t *store;
    rp_webhook_policy_t policy;
    char owner[48]; /* names this process in leases; each sender adds its number */
    rp_loop_t *fanout;
    rp_loop_t **senders;
    struct sender *sender_ctx;
    int nsenders;
    int64_t last_notice; /* when the fan-out thread last looked for events and batches to notice */
    /* this process's attempts, for /metrics */
    atomic_ullong attempts[RP_WEBHOOK_NTYPES][NRESULTS];
    atomic_ullong latency[NBOUNDS + 1];
    atomic_ullong latency_count, latency_sum_ms;
};

/* One sender thread: its lease owner name is its own, so two senders never hold one delivery. */
typedef struct sender {
    rp_webhooks_t *w;
    char owner[64];
} sender_t;

/* ---- the fan-out relay ---- */

/* Who gets message m: every enabled endpoint subscribed to its type that existed when it was
 * written (an endpoint does not receive what happened before it was made). The body is rendered
 * once, here, so every attempt sends the same bytes. */
static void plan(void *ctx, const rp_outbox_message_t *m, const rp_webhook_endpoint_t *eps, size_t n,
                 rp_webhook_delivery_t *out, size_t *nout) {
    rp_webhooks_t *w = ctx;
    unsigned type = rp_webhook_type_parse(m->routing_key);
    int64_t now = rp_now_ms();
    char *body = NULL;
    *nout = 0;
    if (!type) return;
    for (size_t i = 0; i < n; i++) {
        if (!eps[i].enabled || !(eps[i].types & type) || eps[i].created_at > m->created_at) continue;
        if (!body && !(body = rp_webhook_body(m->routing_key, m->created_at, m->payload))) return;
        rp_webhook_delivery_t *d = &out[(*nout)++];
        memset(d, 0, sizeof *d);
        rp_oid_new(d->id);
        memcpy(d->endpoint_id, eps[i].id, sizeof d->endpoint_id);
        snprintf(d->webhook_id, sizeof d->webhook_id, "%s", m->message_id);
        snprintf(d->type, sizeof d->type, "%s", m->routing_key);
        d->body = rp_strdup(body);
        d->created_at = now;
        d->next_at = now + w->cfg->webhook_schedule_ms[0];
    }
    free(body);
}

static rp_loop_next_t fanout_pass(void *arg, int backoff_ms) {
    rp_webhooks_t *w = arg;
    rp_err_t err;
    size_t messages = 0, made = 0, things = 0, made2 = 0;
    int64_t now = rp_now_ms();
    if (!w->store->ops->fanout(w->store, FANOUT_BATCH, plan, w, &messages, &made, &err)) {
        rp_log(RP_LOG_WARN, "webhooks", "fan-out: %s; retrying in %d ms", err.message, backoff_ms);
        return RP_LOOP_FAILED;
    }
    /* events canceled or ended and batches completed: looked for once a second (a write
     * transaction), not at every pass */
    if (now - w->last_notice >= NOTICE_MS) {
        if (!w->store->ops->notice(w->store, now, FANOUT_BATCH, plan, w, &things, &made2, &err)) {
            rp_log(RP_LOG_WARN, "webhooks", "notices: %s; retrying in %d ms", err.message, backoff_ms);
            return RP_LOOP_FAILED;
        }
        if (things < FANOUT_BATCH) w->last_notice = now;
        made += made2;
    }
    if (made)
        for (int i = 0; i < w->nsenders; i++)
            rp_loop_kick(w->senders[i]);
    return messages == FANOUT_BATCH || things >= FANOUT_BATCH ? RP_LOOP_MORE : RP_LOOP_IDLE;
}

/* ---- the senders ---- */

static void audit_disable(rp_webhooks_t *w, rp_webhook_endpoint_t *e, const char *reason, int64_t now) {
    json_t *before = rp_webhook_endpoint_to_json(e, false);
    int64_t expect = e->updated_at;
    bool found = false;
    rp_err_t err;
    e->enabled = false;
    e->disabled_at = now;
    e->updated_at = now;
    snprintf(e->disabled_reason, sizeof e->disabled_reason, "%s", reason);
    json_t *after = rp_webhook_endpoint_to_json(e, false);
    rp_audit_entry_t a = {NULL, NULL, "webhook.disable", "webhook", e->id, before, after, now};
    if (!w->store->ops->endpoint_update(w->store, e, expect, &a, &found, &err))
        rp_log(RP_LOG_WARN, "webhooks", "disabling endpoint %s: %s", e->id, err.message);
    else if (found)
        rp_log(RP_LOG_WARN, "webhooks", "endpoint %s disabled: %s", e->id, reason);
    json_decref(before);
    json_decref(after);
}

static int type_index(const char *type) {
    unsigned bit = rp_webhook_type_parse(type);
    int i = 0;
    if (!bit) return -1;
    while (!(bit & 1u)) {
        bit >>= 1;
        i++;
    }
    return i;
}

static void count_attempt(rp_webhooks_t *w, const rp_webhook_delivery_t *d, const rp_webhook_attempt_t *a) {
    int t = type_index(d->type), r;
    if (strncmp(a->error, "TIMEOUT", 7) == 0)
        r = RES_TIMEOUT;
    else if (a->error[0] || a->http_status < 200 || a->http_status > 599)
        r = RES_ERROR;
    else
        r = a->http_status / 100 - 2;
    if (t >= 0) atomic_fetch_add(&w->attempts[t][r], 1);
    size_t b = 0;
    while (b < NBOUNDS && (double)a->latency_ms > latency_bounds_ms[b])
        b++;
    atomic_fetch_add(&w->latency[b], 1);
    atomic_fetch_add(&w->latency_count, 1);
    atomic_fetch_add(&w->latency_sum_ms, (unsigned long long)(a->latency_ms > 0 ? a->latency_ms : 0));
}

/* One delivery: post it (unless its endpoint is gone or disabled), then record the attempt and
 * what follows from it. */
static void send_one(rp_webhooks_t *w, const char *owner, rp_webhook_delivery_t *d) {
    rp_webhook_endpoint_t e;
    rp_webhook_attempt_t a;
    rp_webhook_outcome_t o = {0};
    rp_err_t err;
    bool found = false, applied = false;
    if (!w->store->ops->endpoint_get(w->store, d->endpoint_id, &e, &found, &err)) {
        rp_log(RP_LOG_WARN, "webhooks", "reading endpoint %s: %s", d->endpoint_id, err.message);
        return; /* the lease runs out and the delivery is taken again */
    }
    if (!found) return; /* deleted with its deliveries */
    int64_t now;
    if (!e.enabled) {
        memset(&a, 0, sizeof a);
        a.at = now = rp_now_ms();
        snprintf(a.error, sizeof a.error, "ENDPOINT_DISABLED: not sent");
    } else {
        rp_webhook_http_post(e.url, d->webhook_id, e.secret, d->body, strlen(d->body), &w->policy, &a);
        now = rp_now_ms();
        count_attempt(w, d, &a);
    }
    bool ok = e.enabled && a.http_status >= 200 && a.http_status < 300 && !a.error[0];
    bool gone = a.http_status == 410;
    o.round = d->round + 1;
    if (ok) {
        o.status = RP_DELIVERY_DELIVERED;
        o.settled_at = now;
    } else if (e.enabled && !gone && o.round < w->cfg->webhook_attempts) {
        o.status = RP_DELIVERY_PENDING;
        o.next_at = now + w->cfg->webhook_schedule_ms[o.round];
    } else {
        o.status = RP_DELIVERY_FAILED;
        o.settled_at = now;
    }
    o.failing_since = ok ? 0 : (e.enabled ? a.at : e.failing_since);
    if (!w->store->ops->delivery_record(w->store, d->id, owner, &a, &o, &applied, &err)) {
        rp_log(RP_LOG_WARN, "webhooks", "recording delivery %s: %s", d->id, err.message);
        return;
    }
    if (!applied || ok || !e.enabled) return;
    int64_t since = e.failing_since ? e.failing_since : a.at;
    if (gone)
        audit_disable(w, &e, "GONE", now);
    else if (now - since >= w->cfg->webhook_disable_after_s * 1000)
        audit_disable(w, &e, "FAILING", now);
}

static rp_loop_next_t send_pass(void *arg, int backoff_ms) {
    sender_t *me = arg;
    rp_webhooks_t *w = me->w;
    rp_webhook_delivery_t *items = NULL;
    size_t n = 0;
    rp_err_t err;
    int64_t now = rp_now_ms();
    /* a lease outlives the slowest attempt, so only a dead sender's deliveries are taken over */
    int64_t until = now + w->cfg->webhook_timeout_ms + w->cfg->webhook_connect_timeout_ms + 5000;
    if (!w->store->ops->delivery_lease(w->store, me->owner, now, until, SEND_BATCH, &items, &n, &err)) {
        rp_log(RP_LOG_WARN, "webhooks", "leasing deliveries: %s; retrying in %d ms", err.message, backoff_ms);
        return RP_LOOP_FAILED;
    }
    for (size_t i = 0; i < n; i++) {
        send_one(w, me->owner, &items[i]);
        rp_webhook_delivery_clear(&items[i]);
    }
    free(items);
    return n == SEND_BATCH ? RP_LOOP_MORE : RP_LOOP_IDLE;
}

/* ---- life cycle ---- */

rp_webhooks_t *rp_webhooks_new(const rp_config_t *cfg, rp_err_t *err) {
    if (!rp_webhook_http_init()) {
        rp_err_set(err, RP_ERR_INTERNAL, "INTERNAL", "libcurl could not be initialised");
        return NULL;
    }
    rp_webhook_store_t *store = strcmp(cfg->store, "mongodb") == 0
                                    ? rp_webhook_store_mongo_open(cfg->mongodb_uri, cfg->mongodb_db_name, err)
                                    : rp_webhook_store_sqlite_open(cfg->sqlite_dir, cfg->webhook_senders + 2, err);
    if (!store) return NULL;
    rp_webhooks_t *w = rp_calloc(1, sizeof *w);
    char rnd[9];
    rp_random_hex(rnd, 4);
    w->cfg = cfg;
    w->store = store;
    w->policy = (rp_webhook_policy_t){cfg->webhook_allow_private != 0, cfg->webhook_allow_http != 0,
                                      cfg->webhook_timeout_ms, cfg->webhook_connect_timeout_ms};
    snprintf(w->owner, sizeof w->owner, "webhooks-%ld-%s", (long)getpid(), rnd);
    return w;
}

bool rp_webhooks_start(rp_webhooks_t *w, rp_err_t *err) {
    w->nsenders = w->cfg->webhook_senders;
    w->senders = rp_calloc((size_t)w->nsenders, sizeof *w->senders);
    w->sender_ctx = rp_calloc((size_t)w->nsenders, sizeof *w->sender_ctx);
    for (int i = 0; i < w->nsenders; i++) {
        w->sender_ctx[i].w = w;
        snprintf(w->sender_ctx[i].owner, sizeof w->sender_ctx[i].owner, "%s-%d", w->owner, i);
        w->senders[i] = rp_loop_new(send_pass, &w->sender_ctx[i], IDLE_MS);
    }
    w->fanout = rp_loop_new(fanout_pass, w, IDLE_MS);
    for (int i = 0; i < w->nsenders; i++)
        if (!rp_loop_start(w->senders[i], "webhook sender thread", err)) return false;
    return rp_loop_start(w->fanout, "webhook fan-out thread", err);
}

void rp_webhooks_kick(rp_webhooks_t *w) {
    if (w && w->fanout) rp_loop_kick(w->fanout);
}

bool rp_webhooks_ping(rp_webhooks_t *w, rp_err_t *err) {
    return w->store->ops->ping(w->store, err);
}

void rp_webhooks_free(rp_webhooks_t *w) {
    if (!w) return;
    rp_loop_free(w->fanout);
    for (int i = 0; i < w->nsenders; i++)
        rp_loop_free(w->senders[i]);
    free(w->senders);
    free(w->sender_ctx);
    w->store->ops->free(w->store);
    free(w);
}

/* ---- metrics ---- */

typedef struct text {
    char *p;
    size_t len, cap;
} text_t;

static void put(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text_t *t, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap = t->cap * 2 + (size_t)n;
        t->p = rp_realloc(t->p, t->cap);
    }
}

void rp_webhooks_op_metrics(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_webhooks_t *w = ctx;
    rp_webhook_stats_t st;
    rp_err_t err;
    (void)env;
    if (!w->store->ops->delivery_stats(w->store, &st, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    text_t t = {rp_malloc(2048), 0, 2048};
    t.p[0] = '\0';
    put(&t, "# HELP rp_webhook_deliveries Webhook deliveries in the store by type and status.\n"
            "# TYPE rp_webhook_deliveries gauge\n");
    for (int i = 0; i < RP_WEBHOOK_NTYPES; i++)
        for (int k = 0; k < 3; k++)
            if (st.count[i][k])
                put(&t, "rp_webhook_deliveries{type=\"%s\",status=\"%s\"} %lld\n", rp_webhook_type_name(1u << i),
                    rp_delivery_status_name((rp_delivery_status_t)k), (long long)st.count[i][k]);
    int64_t age = st.oldest_pending_created_at ? rp_now_ms() - st.oldest_pending_created_at : 0;
    put(&t,
        "# HELP rp_webhook_queue_depth Webhook deliveries waiting to be delivered (PENDING).\n"
        "# TYPE rp_webhook_queue_depth gauge\nrp_webhook_queue_depth %lld\n"
        "# HELP rp_webhook_oldest_pending_age_seconds Age of the oldest PENDING delivery (0 when none).\n"
        "# TYPE rp_webhook_oldest_pending_age_seconds gauge\nrp_webhook_oldest_pending_age_seconds %.3f\n",
        (long long)st.pending, age > 0 ? (double)age / 1000.0 : 0.0);
    put(&t, "# HELP rp_webhook_attempts_total Webhook POSTs made by the answering process, by type and result.\n"
            "# TYPE rp_webhook_attempts_total counter\n");
    for (int i = 0; i < RP_WEBHOOK_NTYPES; i++)
        for (int r = 0; r < NRESULTS; r++) {
            unsigned long long v = atomic_load(&w->attempts[i][r]);
            if (v)
                put(&t, "rp_webhook_attempts_total{type=\"%s\",result=\"%s\"} %llu\n", rp_webhook_type_name(1u << i),
                    result_names[r], v);
        }
    put(&t, "# HELP rp_webhook_attempt_duration_seconds Webhook POST latency in the answering process.\n"
            "# TYPE rp_webhook_attempt_duration_seconds histogram\n");
    unsigned long long cum = 0;
    for (size_t b = 0; b <= NBOUNDS; b++) {
        cum += atomic_load(&w->latency[b]);
        if (b < NBOUNDS)
            put(&t, "rp_webhook_attempt_duration_seconds_bucket{le=\"%g\"} %llu\n", latency_bounds_ms[b] / 1000.0, cum);
        else
            put(&t, "rp_webhook_attempt_duration_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
    }
    put(&t, "rp_webhook_attempt_duration_seconds_sum %.3f\nrp_webhook_attempt_duration_seconds_count %llu\n",
        (double)atomic_load(&w->latency_sum_ms) / 1000.0, atomic_load(&w->latency_count));
    rp_reply_set(rep, 200, json_pack("{s:s%}", "text", t.p, t.len));
    free(t.p);
}

/* ---- operations ---- */

static const char *endpoint_id(const rp_envelope_t *env, rp_reply_t *rep) {
    return rp_service_path_id(env, "id", "WEBHOOK_NOT_FOUND", "no such webhook endpoint", rep);
}

/* Reads the optional url, types and enabled of a body into e; required ones must be there. The
 * body passed the JSON Schema at the gateway; this checks what it cannot (the URL's scheme by
 * this platform's settings, the type names). False with rep set. */
static bool read_fields(rp_webhooks_t *w, const json_t *body, bool create, rp_webhook_endpoint_t *e, rp_reply_t *rep) {
    json_t *url = json_object_get(body, "url"), *types = json_object_get(body, "types");
    json_t *enabled = json_object_get(body, "enabled");
    char why[96];
    if (create && (!url || !types)) {
        rp_service_reject_field(rep, "the request body is invalid", url ? "/types" : "/url", "is required");
        return false;
    }
    if (url) {
        if (!json_is_string(url) || json_string_length(url) == 0 || json_string_length(url) >= sizeof e->url) {
            rp_service_reject_field(rep, "the request body is invalid", "/url", "must be a URL of at most 2048 bytes");
            return false;
        }
        if (!rp_webhook_url_ok(json_string_value(url), w->cfg->webhook_allow_http, why, sizeof why)) {
            rp_service_reject_field(rep, "the request body is invalid", "/url", why);
            return false;
        }
        snprintf(e->url, sizeof e->url, "%s", json_string_value(url));
    }
    if (types) {
        size_t i;
        json_t *t;
        unsigned mask = 0;
        if (!json_is_array(types) || json_array_size(types) == 0) {
            rp_service_reject_field(rep, "the request body is invalid", "/types", "must list at least one type");
            return false;
        }
        json_array_foreach(types, i, t) {
            unsigned bit = rp_webhook_type_parse(json_string_value(t));
            if (!bit) {
                char ptr[32];
                snprintf(ptr, sizeof ptr, "/types/%zu", i);
                rp_service_reject_field(rep, "the request body is invalid", ptr, "is not a webhook type");
                return false;
            }
            mask |= bit;
        }
        e->types = mask;
    }
    if (enabled) {
        if (!json_is_boolean(enabled)) {
            rp_service_reject_field(rep, "the request body is invalid", "/enabled", "must be a boolean");
            return false;
        }
        e->enabled = json_is_true(enabled);
    }
    return true;
}

void rp_webhooks_op_create(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_webhooks_t *w = ctx;
    rp_webhook_endpoint_t e;
    rp_err_t err;
    if (!rp_service_require_roles(env, STAFF_WRITE, NULL, rep) || !rp_service_need_body(env, rep)) return;
    memset(&e, 0, sizeof e);
    e.enabled = true;
    if (!read_fields(w, env->body, true, &e, rep)) return;
    rp_oid_new(e.id);
    rp_webhook_secret_new(e.secret);
    snprintf(e.created_by, sizeof e.created_by, "%s", env->caller.id);
    e.created_at = e.updated_at = rp_now_ms();
    json_t *after = rp_webhook_endpoint_to_json(&e, false);
    rp_audit_entry_t a = {env->caller.id, env->caller.username, "webhook.create", "webhook", e.id, NULL,
                          after,          e.created_at};
    if (w->store->ops->endpoint_insert(w->store, &e, &a, &err))
        rp_reply_set(rep, 201, rp_webhook_endpoint_to_json(&e, true)); /* the secret, this once */
    else
        rp_reply_from_err(rep, &err);
    json_decref(after);
    sodium_memzero(e.secret, sizeof e.secret);
}

void rp_webhooks_op_list(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_webhooks_t *w = ctx;
    rp_webhook_endpoint_t *items = NULL;
    size_t n = 0;
    bool more = false;
    int limit;
    const char *cursor;
    rp_err_t err;
    if (!rp_service_require_roles(env, STAFF_READ, NULL, rep)) return;
    if (!rp_paging_parse(env, &limit, &cursor, &err) ||
        !w->store->ops->endpoint_list(w->store, cursor, limit, &items, &n, &more, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, rp_webhook_endpoint_to_json(&items[i], false));
    free(items);
    rp_reply_set(rep, 200, rp_service_page(list, more));
}

/* The endpoint of the {id} path parameter; false with rep set (404, or the store's error). */
static bool load_endpoint(rp_webhooks_t *w, const rp_envelope_t *env, rp_webhook_endpoint_t *e, rp_reply_t *rep) {
    rp_err_t err;
    bool found = false;
    const char *id = endpoint_id(env, rep);
    if (!id) return false;
    bool read = w->store->ops->endpoint_get(w->store, id, e, &found, &err);
    return rp_service_found(rep, read, found, &err, "WEBHOOK_NOT_FOUND", "no such webhook endpoint");
}

void rp_webhooks_op_get(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_webhook_endpoint_t e;
    if (!rp_service_require_roles(env, STAFF_READ, NULL, rep)) return;
    if (load_endpoint(ctx, env, &e, rep)) rp_reply_set(rep, 200, rp_webhook_endpoint_to_json(&e, false));
}

void rp_webhooks_op_update(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_webhooks_t *w = ctx;
    rp_webhook_endpoint_t e;
    rp_err_t err;
    bool found = false;
    if (!rp_service_require_roles(env, STAFF_WRITE, NULL, rep) || !rp_service_need_body(env, rep)) return;
    if (!load_endpoint(w, env, &e, rep)) return;
    json_t *before = rp_webhook_endpoint_to_json(&e, false);
    int64_t expect = e.updated_at;
    bool was_enabled = e.enabled;
    if (!read_fields(w, env->body, false, &e, rep)) {
        json_decref(before);
        return;
    }
    if (e.enabled && !was_enabled) { /* enabled again by hand: the platform's reason is history */
        e.disabled_at = 0;
        e.disabled_reason[0] = '\0';
    }
    e.updated_at = rp_now_ms();
    if (e.updated_at <= expect) e.updated_at = expect + 1;
    json_t *after = rp_webhook_endpoint_to_json(&e, false);
    rp_audit_entry_t a = {env->caller.id, env->caller.username, "webhook.update", "webhook", e.id, before,
                          after,          e.updated_at};
    if (!w->store->ops->endpoint_update(w->store, &e, expect, &a, &found, &err))
        rp_reply_from_err(rep, &err);
    else if (!found)
        rp_reply_error(rep, 409, "CONCURRENT_UPDATE", "the endpoint changed meanwhile; read it and try again", NULL);
    else
        rp_reply_set(rep, 200, json_incref(after));
    json_decref(before);
    json_decref(after);
}

void rp_webhooks_op_delete(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_webhooks_t *w = ctx;
    rp_webhook_endpoint_t e;
    rp_err_t err;
    bool found = false;
    if (!rp_service_require_roles(env, STAFF_WRITE, NULL, rep)) return;
    if (!load_endpoint(w, env, &e, rep)) return;
    json_t *before = rp_webhook_endpoint_to_json(&e, false);
    rp_audit_entry_t a = {env->caller.id, env->caller.username, "webhook.delete", "webhook", e.id, before,
                          NULL,           rp_now_ms()};
    if (!w->store->ops->endpoint_delete(w->store, e.id, &a, &found, &err))
        rp_reply_from_err(rep, &err);
    else if (!found)
        rp_reply_error(rep, 404, "WEBHOOK_NOT_FOUND", "no such webhook endpoint", NULL);
    else
        rp_reply_set(rep, 200, json_pack("{s:s, s:b}", "id", e.id, "deleted", 1));
    json_decref(before);
}

void rp_webhooks_op_deliveries(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_webhooks_t *w = ctx;
    rp_webhook_endpoint_t e;
    rp_webhook_delivery_t *items = NULL;
    size_t n = 0;
    bool more = false;
    int limit, status = -1;
    const char *cursor, *st;
    rp_err_t err;
    if (!rp_service_require_roles(env, STAFF_WRITE, NULL, rep)) return;
    if (!rp_paging_parse(env, &limit, &cursor, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    if ((st = rp_envelope_query(env, "status"))) {
        rp_delivery_status_t s;
        if (!rp_delivery_status_parse(st, &s)) {
            rp_service_reject_field(rep, "status must be one of PENDING, DELIVERED, FAILED", "status",
                                    "is not a delivery status");
            return;
        }
        status = (int)s;
    }
    if (!load_endpoint(w, env, &e, rep)) return;
    if (!w->store->ops->delivery_list(w->store, e.id, status, cursor, limit, &items, &n, &more, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(list, rp_webhook_delivery_to_json(&items[i]));
        rp_webhook_delivery_clear(&items[i]);
    }
    free(items);
    rp_reply_set(rep, 200, rp_service_page(list, more));
}

/* The delivery deliveryId of the endpoint, answered with status (after a write). */
static void reply_delivery(rp_webhooks_t *w, const char *endpoint, const char *id, int status, rp_reply_t *rep) {
    rp_webhook_delivery_t d;
    rp_err_t err;
    bool found = false;
    bool read = w->store->ops->delivery_get(w->store, endpoint, id, &d, &found, &err);
    if (rp_service_found(rep, read, found, &err, "DELIVERY_NOT_FOUND", "no such delivery"))
        rp_reply_set(rep, status, rp_webhook_delivery_to_json(&d));
    rp_webhook_delivery_clear(&d);
}

void rp_webhooks_op_redeliver(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_webhooks_t *w = ctx;
    rp_webhook_endpoint_t e;
    rp_err_t err;
    bool found = false;
    if (!rp_service_require_roles(env, STAFF_WRITE, NULL, rep) || !load_endpoint(w, env, &e, rep)) return;
    const char *id = rp_service_path_id(env, "deliveryId", "DELIVERY_NOT_FOUND", "no such delivery", rep);
    if (!id) return;
    if (!w->store->ops->delivery_redeliver(w->store, e.id, id, rp_now_ms(), &found, &err))
        rp_reply_from_err(rep, &err);
    else if (!found)
        rp_reply_error(rep, 404, "DELIVERY_NOT_FOUND", "no such delivery", NULL);
    else {
        reply_delivery(w, e.id, id, 202, rep);
        for (int i = 0; i < w->nsenders; i++)
            rp_loop_kick(w->senders[i]);
    }
}

void rp_webhooks_op_ping(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_webhooks_t *w = ctx;
    rp_webhook_endpoint_t e;
    rp_webhook_delivery_t d;
    rp_err_t err;
    bool dup = false;
    if (!rp_service_require_roles(env, STAFF_WRITE, NULL, rep) || !load_endpoint(w, env, &e, rep)) return;
    if (!e.enabled) {
        rp_reply_error(rep, 409, "WEBHOOK_DISABLED", "the endpoint is disabled; enable it first", NULL);
        return;
    }
    memset(&d, 0, sizeof d);
    rp_oid_new(d.id);
    memcpy(d.endpoint_id, e.id, sizeof d.endpoint_id);
    snprintf(d.webhook_id, sizeof d.webhook_id, "%s", d.id); /* a ping is a message of its own */
    snprintf(d.type, sizeof d.type, "webhook.ping");
    d.created_at = d.next_at = rp_now_ms();
    json_t *data = json_pack("{s:s, s:s}", "endpointId", e.id, "requestedBy", env->caller.id);
    d.body = rp_webhook_body(d.type, d.created_at, data);
    json_decref(data);
    if (!w->store->ops->delivery_insert(w->store, &d, &dup, &err))
        rp_reply_from_err(rep, &err);
    else {
        reply_delivery(w, e.id, d.id, 202, rep);
        for (int i = 0; i < w->nsenders; i++)
            rp_loop_kick(w->senders[i]);
    }
    rp_webhook_delivery_clear(&d);
}
