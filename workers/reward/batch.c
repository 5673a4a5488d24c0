/* batch.c - batch grants: creation, the sweeper and the item consumer (see batch.h). */
#include "batch.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "event/event.h"
#include "grant_txn.h"
#include "ids.h"
#include "json_util.h"
#include "log.h"
#include "loop.h"
#include "mem.h"
#include "paging.h"
#include "service.h"
#include "timeutil.h"

/* A chunk (BATCH_CHUNK items) is settled in one unit of work (rp_grant_batch_chunk), so bigger
 * chunks share the transaction's fixed costs over more items; it also holds the store's write
 * lock longer, which a claim made meanwhile waits for (bench/README.md has both sides). A sweep
 * leases five chunks at most. */
#define CHUNK_MAX 1000 /* BATCH_CHUNK's bound: a message of more seqs is malformed */
#define LEASES_PER_SWEEP 5
#define CHUNK_DEFAULT 500 /* for a configuration made without rp_config_load (tests) */
#define IDLE_MS 250       /* sweep period when there is nothing to send */

struct rp_batches {
    const rp_config_t *cfg;
    rp_reward_store_t *store;
    rp_event_repo_t *events;
    rp_claims_t *claims;
    rp_transport_t *transport;
    rp_loop_t *sweeper; /* kicked by a new batch: sweep now */
    /* One chunk's unit of work at a time in this process: the consumer threads read, look up
     * accounts and build their chunks in parallel, and queue here for the store's write lock
     * instead of sleeping in SQLite's busy handler (steps of up to 100 ms) behind each other. */
    pthread_mutex_t settling;
};

static rp_loop_next_t sweep(void *arg, int backoff_ms);

rp_batches_t *rp_batches_new(const rp_config_t *cfg, rp_reward_store_t *store, rp_event_repo_t *events,
                             rp_claims_t *claims) {
    rp_batches_t *b = rp_calloc(1, sizeof *b);
    b->cfg = cfg;
    b->store = store;
    b->events = events;
    b->claims = claims;
    b->sweeper = rp_loop_new(sweep, b, IDLE_MS);
    pthread_mutex_init(&b->settling, NULL);
    return b;
}

/* ---- creation and reads ---- */

typedef struct user_ref {
    const char *id;
    size_t index;
} user_ref_t;

static int cmp_user_ref(const void *a, const void *b) {
    const user_ref_t *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->index < y->index ? -1 : x->index > y->index);
}

/* The user ids of the body in their order, each once; *n and *dups receive the counts. The
 * strings are borrowed from ids. */
static const char **unique_users(const json_t *ids, size_t *n, int64_t *dups) {
    size_t total = json_array_size(ids);
    user_ref_t *refs = rp_calloc(total ? total : 1, sizeof *refs);
    bool *drop = rp_calloc(total ? total : 1, sizeof *drop);
    for (size_t i = 0; i < total; i++)
        refs[i] = (user_ref_t){json_string_value(json_array_get(ids, i)), i};
    qsort(refs, total, sizeof *refs, cmp_user_ref);
    for (size_t i = 1; i < total; i++)
        if (strcmp(refs[i].id, refs[i - 1].id) == 0) drop[refs[i].index] = true;
    const char **out = rp_calloc(total ? total : 1, sizeof *out);
    *n = 0;
    for (size_t i = 0; i < total; i++)
        if (!drop[i]) out[(*n)++] = json_string_value(json_array_get(ids, i));
    *dups = (int64_t)(total - *n);
    free(refs);
    free(drop);
    return out;
}

static void reply_batch(rp_batches_t *b, const char *id, int status, rp_reply_t *rep) {
    rp_err_t err;
    rp_batch_t batch;
    bool found = false;
    memset(&batch, 0, sizeof batch);
    bool read = b->store->ops->batch_get(b->store, id, true, &batch, &found, &err);
    if (rp_service_found(rep, read, found, &err, "BATCH_NOT_FOUND", "no such batch"))
        rp_reply_set(rep, status, rp_batch_to_json(&batch, true));
    rp_batch_clear(&batch);
}

/* The accounts of users[0..n) into states (a new array of n, free()); false with a 503 reply
 * when the auth worker cannot say: then nothing may be concluded about any of them. */
static bool lookup_accounts(rp_batches_t *b, const char *const *users, size_t n, int64_t deadline_ms,
                            const char *request_id, rp_account_state_t **states, rp_reply_t *rep) {
    rp_err_t err;
    *states = rp_calloc(n ? n : 1, sizeof **states);
    if (rp_accounts_lookup(b->transport, users, n, deadline_ms, request_id, *states, &err)) return true;
    rp_log(RP_LOG_WARN, "batch", "account lookup failed: %s", err.message);
    rp_reply_error(rep, 503, "AUTH_UNAVAILABLE", "cannot tell which players have accounts now; try again", NULL);
    free(*states);
    *states = NULL;
    return false;
}

/* POST ...?dryRun=true: the counts of what the batch would settle, run right now. */
static void dry_run(rp_batches_t *b, const rp_envelope_t *env, const json_t *event, const rp_batch_t *batch,
                    const char **users, size_t n, rp_reply_t *rep) {
    rp_err_t err;
    rp_batch_expect_t x;
    rp_account_state_t *states = NULL;
    int64_t deadline = env->deadline_ms ? env->deadline_ms : rp_now_ms() + b->cfg->rpc_timeout_ms;
    if (!lookup_accounts(b, users, n, deadline, env->request_id, &states, rep)) return;
    if (!rp_claims_batch_dry_run(b->claims, event, batch, users, states, n, &x, &err)) {
        rp_reply_from_err(rep, &err);
    } else {
        json_t *expected =
            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "SUCCESS", (json_int_t)x.success, "ALREADY_CLAIMED",
                      (json_int_t)x.already_claimed, "UNKNOWN_PLAYER", (json_int_t)x.unknown_player, "OUT_OF_STOCK",
                      (json_int_t)x.out_of_stock, "MAX_CLAIMS_REACHED", (json_int_t)x.max_claims_reached,
                      "ACCOUNT_DISABLED", (json_int_t)x.account_disabled);
        rp_reply_set(rep, 200,
                     json_pack("{s:b, s:I, s:o}", "dryRun", true, "items", (json_int_t)x.items, "expected", expected));
    }
    free(states);
}

void rp_batches_create(rp_batches_t *b, const rp_envelope_t *env, const char *event_id, rp_reply_t *rep) {
    rp_err_t err;
    json_t *event = NULL, *ids = json_object_get(env->body, "userIds");
    const char *reason = json_string_value(json_object_get(env->body, "reason"));
    const char *dry = rp_envelope_query(env, "dryRun");
    if (dry && strcmp(dry, "true") != 0 && strcmp(dry, "false") != 0) {
        rp_reply_error(rep, 400, "VALIDATION_FAILED", "dryRun must be true or false", NULL);
        return;
    }
    /* the api validated the body against batch.create; a worker trusts no sender */
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > RP_BATCH_MAX_USERS || !reason ||
        !reason[0]) {
        rp_reply_error(rep, 400, "VALIDATION_FAILED", "userIds (1 to 100000 ids) and reason are required", NULL);
        return;
    }
    for (size_t i = 0; i < json_array_size(ids); i++) {
        const char *u = json_string_value(json_array_get(ids, i));
        if (!u || !rp_oid_valid(u, strlen(u))) {
            char ptr[40];
            snprintf(ptr, sizeof ptr, "/userIds/%zu", i);
            rp_service_reject_field(rep, "the request body is invalid", ptr, "must be a 24-hex user id");
            return;
        }
    }
    bool read = b->events->ops->event_get(b->events, event_id, &event, &err);
    if (!rp_service_found(rep, read, event != NULL, &err, "EVENT_NOT_FOUND", "no such event")) return;
    int64_t now = rp_now_ms();
    if (rp_event_doc_status(event, now) == RP_EVENT_CANCELED) {
        rp_reply_error(rep, 422, "EVENT_CANCELED", "the event is canceled", NULL);
        json_decref(event);
        return;
    }
    rp_batch_t batch;
    memset(&batch, 0, sizeof batch);
    rp_oid_new(batch.id);
    snprintf(batch.event_id, sizeof batch.event_id, "%s", event_id);
    snprintf(batch.created_by, sizeof batch.created_by, "%s", env->caller.id);
    snprintf(batch.idem_key, sizeof batch.idem_key, "%s", env->idempotency_key);
    rp_json_request_hash(event_id, env->body, batch.request_hash);
    batch.reason = rp_strdup(reason);
    batch.created_at = now;
    size_t n = 0;
    const char **users = unique_users(ids, &n, &batch.duplicates);
    batch.total = (int64_t)n;
    if (dry && strcmp(dry, "true") == 0 && n > RP_DRY_RUN_MAX_USERS) {
        rp_reply_error(rep, 422, "DRY_RUN_TOO_LARGE",
                       "a dry run rehearses at most 10000 distinct players; rehearse the batch in parts", NULL);
    } else if (dry && strcmp(dry, "true") == 0) {
        dry_run(b, env, event, &batch, users, n, rep);
    }
    if (dry && strcmp(dry, "true") == 0) {
        free(users);
        json_decref(event);
        rp_batch_clear(&batch);
        return;
    }
    json_decref(event);
    rp_batch_created_t outcome;
    char answered[RP_OID_LEN];
    bool ok = rp_grant_batch_create(b->store, &batch, users, n, &outcome, answered, &err);
    free(users);
    if (!ok) {
        rp_reply_from_err(rep, &err);
    } else if (outcome == RP_BATCH_KEY_REUSED) {
        rp_reply_error(rep, 422, "IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used for a different batch", NULL);
    } else {
        if (outcome == RP_BATCH_CREATED) {
            rp_log(RP_LOG_INFO, "batch", "batch %s: %zu items for event %s by %s", batch.id, n, event_id,
                   env->caller.id);
            rp_loop_kick(b->sweeper);
        }
        reply_batch(b, answered, 202, rep);
    }
    rp_batch_clear(&batch);
}

void rp_batches_get(rp_batches_t *b, const char *id, rp_reply_t *rep) {
    reply_batch(b, id, 200, rep);
}

void rp_batches_list(rp_batches_t *b, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_err_t err;
    int limit;
    const char *cursor, *event_id;
    rp_batch_t *items = NULL;
    size_t n = 0;
    bool more = false;
    if (!rp_paging_parse(env, &limit, &cursor, &err) || !rp_query_oid(env, "eventId", &event_id, &err) ||
        !b->store->ops->batch_list(b->store, event_id, cursor, limit, &items, &n, &more, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(list, rp_batch_to_json(&items[i], false));
        rp_batch_clear(&items[i]);
    }
    free(items);
    rp_reply_set(rep, 200, rp_service_page(list, more));
}

void rp_batches_items(rp_batches_t *b, const rp_envelope_t *env, const char *id, rp_reply_t *rep) {
    rp_err_t err;
    int limit;
    const char *status = rp_envelope_query(env, "status");
    rp_item_status_t st = RP_ITEM_QUEUED;
    rp_batch_t batch;
    rp_batch_item_t *items = NULL;
    size_t n = 0;
    bool more = false, found = false;
    int64_t after = 0;
    if (!rp_query_limit(env, RP_PAGE_DEFAULT, RP_PAGE_MAX, &limit, &err) ||
        !rp_query_seq(env, "cursor", &after, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    if (status && !rp_item_status_parse(status, &st)) {
        rp_reply_error(rep, 400, "VALIDATION_FAILED", "status must be one of QUEUED, SUCCESS, FAILED", NULL);
        return;
    }
    memset(&batch, 0, sizeof batch);
    if (!b->store->ops->batch_get(b->store, id, false, &batch, &found, &err) ||
        (found &&
         !b->store->ops->batch_items(b->store, id, status ? (int)st : -1, after, limit, &items, &n, &more, &err))) {
        rp_reply_from_err(rep, &err);
    } else if (!found) {
        rp_reply_error(rep, 404, "BATCH_NOT_FOUND", "no such batch", NULL);
    } else {
        json_t *list = json_array(), *next = json_null();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(list, rp_batch_item_to_json(&items[i]));
        if (more && n > 0) {
            char buf[24];
            snprintf(buf, sizeof buf, "%lld", (long long)items[n - 1].seq);
            next = json_string(buf);
        }
        rp_reply_set(rep, 200, json_pack("{s:o, s:o}", "items", list, "nextCursor", next));
    }
    free(items);
    rp_batch_clear(&batch);
}

/* ---- the consumer: one message = one chunk of items of one batch ---- */

static bool settle_chunk(void *ctx, const char *msg, size_t len) {
    rp_batches_t *b = ctx;
    rp_err_t err;
    json_error_t jerr;
    json_t *m = json_loadb(msg, len, JSON_REJECT_DUPLICATES, &jerr), *event = NULL;
    json_t *seqs = json_object_get(m, "seqs");
    const char *batch_id = json_string_value(json_object_get(m, "batchId"));
    size_t n = json_array_size(seqs), got = 0;
    rp_batch_t batch;
    rp_batch_item_t *items = NULL;
    const char **users = NULL;
    rp_account_state_t *states = NULL;
    bool found = false;
    memset(&batch, 0, sizeof batch);
    if (!batch_id || !rp_oid_valid(batch_id, strlen(batch_id)) || n == 0 || n > CHUNK_MAX) {
        json_decref(m);
        return false;
    }
    int64_t *v = rp_calloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_integer_value(json_array_get(seqs, i));
    if (!b->store->ops->batch_get(b->store, batch_id, false, &batch, &found, &err)) goto failed;
    if (!found) {
        rp_log(RP_LOG_WARN, "batch", "dropping items of unknown batch %s", batch_id);
        goto done;
    }
    if (!b->events->ops->event_get(b->events, batch.event_id, &event, &err) ||
        !b->store->ops->batch_items_get(b->store, batch_id, v, n, &items, &got, &err))
        goto failed;
    /* the items still QUEUED (the others were settled by an earlier delivery) and their players'
     * accounts, in one call per chunk: a lookup that fails leaves the items QUEUED */
    users = rp_calloc(got ? got : 1, sizeof *users);
    states = rp_calloc(got ? got : 1, sizeof *states);
    size_t queued = 0;
    for (size_t i = 0; i < got; i++)
        if (items[i].status == RP_ITEM_QUEUED) {
            v[queued] = items[i].seq;
            users[queued++] = items[i].user_id;
        }
    if (queued &&
        !rp_accounts_lookup(b->transport, users, queued, rp_now_ms() + b->cfg->rpc_timeout_ms, NULL, states, &err))
        goto failed;
    pthread_mutex_lock(&b->settling);
    bool settled = !queued || rp_claims_batch_chunk(b->claims, event, &batch, v, users, states, queued, &err);
    pthread_mutex_unlock(&b->settling);
    if (!settled) goto failed;
    /* room in flight again: lease the next items now rather than after an idle pause */
    rp_loop_kick(b->sweeper);
    goto done;
failed:
    rp_log(RP_LOG_WARN, "batch", "batch %s: %s; the sweeper sends these items again", batch_id, err.message);
done:
    free(v);
    free(users);
    free(states);
    free(items);
    rp_batch_clear(&batch);
    json_decref(event);
    json_decref(m);
    return true;
}

/* ---- the sweeper ---- */

static size_t chunk_of(const rp_batches_t *b) {
    int c = b->cfg->batch_chunk;
    return c > 0 && c <= CHUNK_MAX ? (size_t)c : CHUNK_DEFAULT;
}

/* Sends the leased items as chunk messages; false when the transport refused them (they are
 * then sent again once due). */
static bool send_items(rp_batches_t *b, const rp_item_ref_t *items, size_t n, rp_err_t *err) {
    size_t nmsg = 0;
    char **msgs = rp_calloc(n ? n : 1, sizeof *msgs);
    size_t *lens = rp_calloc(n ? n : 1, sizeof *lens);
    for (size_t i = 0; i < n;) {
        const char *batch_id = items[i].batch_id;
        json_t *seqs = json_array();
        while (i < n && json_array_size(seqs) < chunk_of(b) && strcmp(items[i].batch_id, batch_id) == 0)
            json_array_append_new(seqs, json_integer(items[i++].seq));
        json_t *m = json_pack("{s:s, s:o}", "batchId", batch_id, "seqs", seqs);
        msgs[nmsg] = json_dumps(m, JSON_COMPACT);
        lens[nmsg] = strlen(msgs[nmsg]);
        nmsg++;
        json_decref(m);
    }
    bool ok = rp_transport_enqueue(b->transport, RP_BATCH_QUEUE, (const char *const *)msgs, lens, nmsg, err);
    for (size_t i = 0; i < nmsg; i++)
        free(msgs[i]);
    free(msgs);
    free(lens);
    return ok;
}

/* One sweep: lease the items that are due and send them as chunk messages. */
static rp_loop_next_t sweep(void *arg, int backoff_ms) {
    rp_batches_t *b = arg;
    rp_err_t err;
    rp_item_ref_t *items = NULL;
    size_t n = 0;
    rp_loop_next_t next = RP_LOOP_IDLE;
    int limit = (int)chunk_of(b) * LEASES_PER_SWEEP;
    if (!rp_grant_lease_items(b->store, rp_now_ms(), b->cfg->batch_redeliver_ms, limit, b->cfg->batch_max_in_flight,
                              &items, &n, &err)) {
        rp_log(RP_LOG_WARN, "batch", "sweeper: %s; retrying in %d ms", err.message, backoff_ms);
        next = RP_LOOP_FAILED;
    } else if (n > 0 && !send_items(b, items, n, &err)) {
        rp_log(RP_LOG_WARN, "batch", "sweeper: %s; %zu items go again in %d ms", err.message, n,
               b->cfg->batch_redeliver_ms);
        next = RP_LOOP_FAILED;
    } else if (n == (size_t)limit) {
        next = RP_LOOP_MORE;
    }
    free(items);
    return next;
}

bool rp_batches_start(rp_batches_t *b, rp_transport_t *t, rp_err_t *err) {
    b->transport = t;
    if (!rp_transport_consume(t, RP_BATCH_QUEUE, settle_chunk, b, b->cfg->worker_threads, err)) return false;
    return rp_loop_start(b->sweeper, "batch sweeper", err);
}

void rp_batches_free(rp_batches_t *b) {
    if (!b) return;
    rp_loop_free(b->sweeper);
    pthread_mutex_destroy(&b->settling);
    free(b);
}
