/* session_cache.c - the gateway's session check through a striped, fixed-size cache (see
 * session_cache.h). */
#include "session_cache.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "failpoint.h"
#include "hash.h"
#include "log.h"
#include "loop.h"
#include "ids.h"
#include "mem.h"
#include "roles.h"
#include "timeutil.h"

#define STRIPES 64 /* locks; set i is guarded by lock i % STRIPES */

/* An account's state as kept: the revoked token ids apart, since most accounts have none (a slot
 * is 72 bytes, where the whole rp_session_state_t is 600). */
typedef struct slot {
    char user_id[RP_OID_LEN]; /* "" = empty */
    bool found, disabled;
    uint8_t n_revoked;
    unsigned roles;
    int64_t token_version;
    int64_t fetched_ms;          /* monotonic */
    int64_t forgot_ms;           /* when the account last changed here: older answers are stale */
    int64_t refresh_ms;          /* when a caller last took on renewing this entry ahead of its end */
    char (*revoked)[RP_JTI_LEN]; /* n_revoked ids (malloc'd), NULL when none */
} slot_t;

/* A caller that missed, queued for the next fetch (see fetch). */
typedef struct waiter {
    const char *user_id;
    int64_t deadline_ms;
    bool lead; /* woken to lead the next fetch rather than with its answer */
    bool ok, found;
    rp_session_state_t state;
    rp_err_t err;
    sem_t woken;
    struct waiter *next;
} waiter_t;

struct rp_session_cache {
    rp_transport_t *transport;
    int64_t ttl_ms, keep_ms, poll_ms;
    bool batch;
    /* the change log (rp_session_cache_read_log): entries fetched at or before forgot_all_ms are
     * stale; those fetched from covered_ms on (0: not yet) may be kept keep_ms while the last
     * complete read of the log was sent less than ttl_ms ago (read_ms) */
    _Atomic int64_t forgot_all_ms, covered_ms, read_ms;
    /* the latest change of an account whose slot another account then took (the slot forgot
     * what it knew of the change): an answer for an account its slot does not hold is kept only
     * when asked after it */
    _Atomic int64_t evicted_forgot_ms;
    pthread_mutex_t logmu; /* one reader of the log at a time; guards after */
    int64_t after;         /* the log's number read up to; -1 before the first read */
    atomic_ullong log_reads, log_failures, log_forgotten, log_gaps;
    rp_loop_t *poller; /* reads the log every poll_ms (NULL: not read) */
    bool failing;      /* the poller's last read failed (its thread's alone) */
    pthread_mutex_t locks[STRIPES];
    size_t nsets;  /* of RP_SESSION_CACHE_WAYS slots each */
    slot_t *slots; /* nsets * RP_SESSION_CACHE_WAYS */
    /* the callers waiting for a fetch, and whether one of them leads it (batch only) */
    pthread_mutex_t qmu;
    waiter_t *head, *tail;
    bool leading;
    atomic_ullong single_calls, batch_calls, accounts; /* rp_session_cache_stats */
};

static rp_loop_next_t poll_log(void *ctx, int backoff_ms);

rp_session_cache_t *rp_session_cache_new(rp_transport_t *t, int ttl_ms, bool batch, int keep_ms, int poll_ms,
                                         size_t slots) {
    rp_session_cache_t *c = rp_calloc(1, sizeof *c);
    c->nsets = slots / RP_SESSION_CACHE_WAYS ? slots / RP_SESSION_CACHE_WAYS : 1;
    c->slots = rp_calloc(c->nsets * RP_SESSION_CACHE_WAYS, sizeof *c->slots);
    c->transport = t;
    c->ttl_ms = ttl_ms;
    c->keep_ms = keep_ms > ttl_ms ? keep_ms : 0;
    c->poll_ms = poll_ms;
    c->batch = batch;
    c->after = -1;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    pthread_mutex_init(&c->qmu, NULL);
    pthread_mutex_init(&c->logmu, NULL);
    if (c->keep_ms && poll_ms > 0 && poll_ms < ttl_ms) {
        rp_err_t err;
        c->poller = rp_loop_new(poll_log, c, poll_ms);
        if (!rp_loop_start(c->poller, "session change log reader", &err)) { /* states kept ttl_ms then */
            rp_log(RP_LOG_WARN, "api", "%s", err.message);
            rp_loop_free(c->poller);
            c->poller = NULL;
        }
    }
    return c;
}

void rp_session_cache_free(rp_session_cache_t *c) {
    if (!c) return;
    rp_loop_free(c->poller);
    for (size_t i = 0; i < c->nsets * RP_SESSION_CACHE_WAYS; i++)
        free(c->slots[i].revoked);
    free(c->slots);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&c->locks[i]);
    pthread_mutex_destroy(&c->qmu);
    pthread_mutex_destroy(&c->logmu);
    free(c);
}

static size_t set_of(const rp_session_cache_t *c, const char *user_id) {
    return (size_t)(rp_hash_str(user_id) % c->nsets);
}

/* The way of set i (locked) holding user_id, or NULL. */
static slot_t *held(rp_session_cache_t *c, size_t i, const char *user_id) {
    slot_t *set = &c->slots[i * RP_SESSION_CACHE_WAYS];
    for (int w = 0; w < RP_SESSION_CACHE_WAYS; w++)
        if (strcmp(set[w].user_id, user_id) == 0) return &set[w];
    return NULL;
}

/* Whether states may be kept keep_ms at now: the log has been read, and completely less than
 * ttl_ms ago. */
static bool log_current(rp_session_cache_t *c, int64_t now) {
    return c->keep_ms && atomic_load(&c->covered_ms) && now - atomic_load(&c->read_ms) < c->ttl_ms;
}

/* How long an entry fetched at `fetched` may be used at now: keep_ms when the change log covers
 * it (every change since it was fetched has been read, or was committed less than ttl_ms ago),
 * else ttl_ms. */
static int64_t life_of(rp_session_cache_t *c, int64_t fetched, int64_t now) {
    return log_current(c, now) && fetched > atomic_load(&c->covered_ms) ? c->keep_ms : c->ttl_ms;
}

/* Copies the cached state of user_id when it is younger than its life; false on a miss, and for
 * one caller once the entry is in the last quarter of its life (it renews it). */
static bool lookup(rp_session_cache_t *c, const char *user_id, int64_t now, rp_session_state_t *out, bool *found) {
    size_t i = set_of(c, user_id);
    bool hit = false;
    pthread_mutex_lock(&c->locks[i % STRIPES]);
    slot_t *s = held(c, i, user_id);
    int64_t life = s ? life_of(c, s->fetched_ms, now) : 0;
    if (s && s->fetched_ms > s->forgot_ms && s->fetched_ms > atomic_load(&c->forgot_all_ms) &&
        now - s->fetched_ms < life) {
        /* in the last quarter of its life, one caller (at most one per quarter) renews the entry
         * while the others still use it: no crowd of RPCs the moment it ends */
        int64_t ahead = life / 4;
        if (now - s->fetched_ms >= life - ahead && now - s->refresh_ms >= ahead) {
            s->refresh_ms = now;
        } else {
            out->roles = s->roles;
            out->token_version = s->token_version;
            out->disabled = s->disabled;
            out->n_revoked = s->n_revoked;
            if (s->n_revoked) memcpy(out->revoked, s->revoked, s->n_revoked * sizeof *s->revoked);
            *found = s->found;
            hit = true;
        }
    }
    pthread_mutex_unlock(&c->locks[i % STRIPES]);
    return hit;
}

/* The way of set i (locked) to give another account: an empty one, else the one fetched longest
 * ago (a forgotten account's mark counts as fetched never). What it knew of its account's last
 * change goes into the watermark every answer for an account not held is judged by. */
static slot_t *evict(rp_session_cache_t *c, size_t i) {
    slot_t *set = &c->slots[i * RP_SESSION_CACHE_WAYS], *s = &set[0];
    for (int w = 0; w < RP_SESSION_CACHE_WAYS && s->user_id[0]; w++)
        if (!set[w].user_id[0] || set[w].fetched_ms < s->fetched_ms) s = &set[w];
    int64_t mark = atomic_load(&c->evicted_forgot_ms);
    while (s->forgot_ms > mark && !atomic_compare_exchange_weak(&c->evicted_forgot_ms, &mark, s->forgot_ms)) {
    }
    return s;
}

static void store(rp_session_cache_t *c, const char *user_id, int64_t fetched, const rp_session_state_t *st,
                  bool found) {
    size_t i = set_of(c, user_id);
    pthread_mutex_lock(&c->locks[i % STRIPES]);
    slot_t *s = held(c, i, user_id);
    bool other = !s;
    if (other) s = evict(c, i);
    /* an answer asked for before the one already held, or before the account changed (as its
     * slot knows it, or, for an account no slot holds, as the watermark does), must not be
     * kept */
    if (other ? fetched > atomic_load(&c->evicted_forgot_ms) : (fetched >= s->fetched_ms && fetched > s->forgot_ms)) {
        memcpy(s->user_id, user_id, RP_OID_LEN);
        s->fetched_ms = fetched;
        if (other) s->forgot_ms = 0;
        s->found = found;
        s->roles = st->roles;
        s->token_version = st->token_version;
        s->disabled = st->disabled;
        if (st->n_revoked != s->n_revoked) {
            free(s->revoked);
            s->revoked = st->n_revoked ? rp_malloc(st->n_revoked * sizeof *s->revoked) : NULL;
            s->n_revoked = (uint8_t)st->n_revoked;
        }
        if (st->n_revoked) memcpy(s->revoked, st->revoked, st->n_revoked * sizeof *s->revoked);
    }
    pthread_mutex_unlock(&c->locks[i % STRIPES]);
}

void rp_session_cache_stats(rp_session_cache_t *c, rp_session_stats_t *out) {
    out->single_calls = atomic_load(&c->single_calls);
    out->batch_calls = atomic_load(&c->batch_calls);
    out->accounts = atomic_load(&c->accounts);
    out->log_reads = atomic_load(&c->log_reads);
    out->log_failures = atomic_load(&c->log_failures);
    out->log_forgotten = atomic_load(&c->log_forgotten);
    out->log_gaps = atomic_load(&c->log_gaps);
    out->log_current = log_current(c, rp_mono_ms());
    out->waiting = 0;
    pthread_mutex_lock(&c->qmu);
    for (const waiter_t *w = c->head; w; w = w->next)
        out->waiting++;
    pthread_mutex_unlock(&c->qmu);
}

void rp_session_cache_forget(rp_session_cache_t *c, const char *user_id) {
    size_t i = set_of(c, user_id);
    pthread_mutex_lock(&c->locks[i % STRIPES]);
    slot_t *s = held(c, i, user_id);
    /* a slot keeps the id, so that an answer already on its way (asked before now) is dropped;
     * the account it took the slot from leaves its mark in the watermark (evict) */
    if (!s) {
        s = evict(c, i);
        memcpy(s->user_id, user_id, RP_OID_LEN);
        s->fetched_ms = 0;
    }
    s->forgot_ms = rp_mono_ms();
    pthread_mutex_unlock(&c->locks[i % STRIPES]);
}

bool rp_session_cache_read_log(rp_session_cache_t *c, int64_t deadline_ms, bool *unsupported, rp_err_t *err) {
    rp_session_changes_t *ch = rp_malloc(sizeof *ch); /* 6 KiB: not on the poller's stack */
    bool ok;
    *unsupported = false;
    pthread_mutex_lock(&c->logmu);
    int64_t sent = rp_mono_ms();
    bool first = c->after < 0;
    do {
        ok = rp_session_read_changes(c->transport, c->after, deadline_ms, ch, unsupported, err);
        if (!ok) break;
        if (!ch->complete) { /* changes were forgotten unread: so is every state held */
            atomic_store(&c->forgot_all_ms, rp_mono_ms());
            atomic_fetch_add(&c->log_gaps, 1);
        }
        for (size_t i = 0; i < ch->n; i++)
            rp_session_cache_forget(c, ch->user_ids[i]);
        atomic_fetch_add(&c->log_forgotten, ch->n);
        c->after = ch->last;
    } while (ch->more);
    if (ok) {
        /* the first read only learns where the log stands: a change committed before it may be
         * missing from what the states fetched before it say, so only those fetched after it
         * are covered (after its millisecond: the clock counts whole ones) */
        if (first) atomic_store(&c->covered_ms, rp_mono_ms());
        atomic_store(&c->read_ms, sent);
        atomic_fetch_add(&c->log_reads, 1);
    } else {
        atomic_fetch_add(&c->log_failures, 1);
    }
    pthread_mutex_unlock(&c->logmu);
    free(ch);
    return ok;
}

/* The poller's pass (lib/loop.h): reads the change log, again after poll_ms, or after a growing
 * pause while reads fail; says in the log when reading starts or stops failing. */
static rp_loop_next_t poll_log(void *ctx, int backoff_ms) {
    rp_session_cache_t *c = ctx;
    bool unsupported = false;
    rp_err_t err;
    rp_err_clear(&err);
    bool ok = rp_session_cache_read_log(c, rp_now_ms() + c->ttl_ms, &unsupported, &err);
    if (ok == c->failing) {
        if (ok)
            rp_log(RP_LOG_INFO, "api", "the session change log is read again: states are kept up to %lld ms",
                   (long long)c->keep_ms);
        else
            rp_log(RP_LOG_WARN, "api",
                   "cannot read the session change log (%s): states are kept %lld ms, next try in %d ms", err.message,
                   (long long)c->ttl_ms, backoff_ms);
        c->failing = !ok;
    }
    return ok ? RP_LOOP_IDLE : RP_LOOP_FAILED;
}

/* Asks the auth worker for w's account and keeps the answer. */
static void ask_one(rp_session_cache_t *c, waiter_t *w, const char *request_id) {
    rp_failpoint_hold("session.fetch"); /* a test holds a fetch here while others queue behind it */
    atomic_fetch_add(&c->single_calls, 1);
    atomic_fetch_add(&c->accounts, 1);
    int64_t asked = rp_mono_ms();
    w->ok = rp_session_fetch(c->transport, w->user_id, w->deadline_ms, request_id, &w->state, &w->found, &w->err);
    if (!w->ok) return;
    if (!w->found) memset(&w->state, 0, sizeof w->state);
    store(c, w->user_id, asked, &w->state, w->found);
}

/* Asks the auth worker for the accounts of the n waiters of batch in one call (each alone when
 * the worker predates RP_SESSIONS_ROUTE), by the earliest of their deadlines, and keeps the
 * answers. A failed call fails every waiter of it. */
static void ask_many(rp_session_cache_t *c, waiter_t **batch, size_t n, const char *request_id) {
    const char *ids[RP_SESSIONS_MAX];
    bool found[RP_SESSIONS_MAX], unsupported = false;
    rp_session_state_t *states = rp_calloc(n, sizeof *states); /* 36 KiB for 64: not on the stack */
    int64_t deadline = batch[0]->deadline_ms, asked = rp_mono_ms();
    rp_err_t err;
    for (size_t i = 0; i < n; i++) {
        ids[i] = batch[i]->user_id;
        if (batch[i]->deadline_ms < deadline) deadline = batch[i]->deadline_ms;
    }
    atomic_fetch_add(&c->batch_calls, 1);
    atomic_fetch_add(&c->accounts, n);
    bool ok = rp_session_fetch_many(c->transport, ids, n, deadline, request_id, states, found, &unsupported, &err);
    for (size_t i = 0; i < n; i++) {
        waiter_t *w = batch[i];
        if (!ok && unsupported) {
            ask_one(c, w, request_id);
            continue;
        }
        w->ok = ok;
        if (!ok) {
            w->err = err;
            continue;
        }
        w->found = found[i];
        w->state = states[i];
        store(c, w->user_id, asked, &w->state, w->found);
    }
    free(states);
}

/* Queues me for the next fetch and returns once it has its answer: callers that miss while a
 * fetch is on its way queue for the next, which asks for all of them (RP_SESSIONS_MAX at most)
 * in one call. The queue works as the group commit's in lib/sqlite_util.c (transact_job): a lone
 * caller leads at once; the leader answers and wakes the waiters it asked for, then hands the
 * lead to the first caller still queued, each woken once by the one post meant for it. */
static void fetch_together(rp_session_cache_t *c, waiter_t *me, const char *request_id) {
    sem_init(&me->woken, 0, 0);
    pthread_mutex_lock(&c->qmu);
    if (c->tail)
        c->tail->next = me;
    else
        c->head = me;
    c->tail = me;
    bool lead = !c->leading;
    c->leading = true;
    pthread_mutex_unlock(&c->qmu);
    if (!lead) {
        while (sem_wait(&me->woken) != 0 && errno == EINTR) {
        }
        lead = me->lead;
    }
    while (lead) {
        waiter_t *batch[RP_SESSIONS_MAX] = {NULL}; /* never empty: this caller waits in the queue */
        size_t n = 0;
        pthread_mutex_lock(&c->qmu);
        for (; c->head && n < RP_SESSIONS_MAX; c->head = c->head->next)
            batch[n++] = c->head;
        if (!c->head) c->tail = NULL;
        pthread_mutex_unlock(&c->qmu);
        if (n == 1)
            ask_one(c, batch[0], request_id);
        else
            ask_many(c, batch, n, request_id);
        bool mine = false;
        for (size_t i = 0; i < n; i++) {
            if (batch[i] == me)
                mine = true;
            else
                sem_post(&batch[i]->woken); /* its frame may be gone from here on */
        }
        if (!mine) continue; /* more than RP_SESSIONS_MAX were ahead of this caller */
        pthread_mutex_lock(&c->qmu);
        if (c->head) {
            c->head->lead = true;
            sem_post(&c->head->woken);
        } else {
            c->leading = false;
        }
        pthread_mutex_unlock(&c->qmu);
        lead = false;
    }
    sem_destroy(&me->woken);
}

/* Asks the auth worker for user_id's state and keeps the answer: alone, or with batch together
 * with the callers that miss at the same time (fetch_together): over RabbitMQ a round trip for
 * each of a studio's many players was most of a read's cost. */
static bool fetch(rp_session_cache_t *c, const char *user_id, int64_t deadline_ms, const char *request_id,
                  rp_session_state_t *out, bool *found, rp_err_t *err) {
    waiter_t me = {.user_id = user_id, .deadline_ms = deadline_ms};
    if (c->batch)
        fetch_together(c, &me, request_id);
    else
        ask_one(c, &me, request_id);
    if (!me.ok) {
        *err = me.err;
        return false;
    }
    *out = me.state;
    *found = me.found;
    return true;
}

/* Whether a caller with these roles may use route only because of ADMIN. */
static bool admin_dependent(const rp_api_route_t *route, unsigned roles) {
    return (route->roles & RP_ROLE_ADMIN) && (roles & RP_ROLE_ADMIN) &&
           !(route->roles & roles & ~(unsigned)RP_ROLE_ADMIN);
}

bool rp_session_cache_check(rp_session_cache_t *c, const rp_api_route_t *route, rp_identity_t *who,
                            const rp_token_claims_t *claims, int64_t deadline_ms, const char *request_id,
                            rp_err_t *err) {
    rp_session_state_t st;
    bool found = false;
    bool fresh = !lookup(c, who->id, rp_mono_ms(), &st, &found);
    if (fresh && !fetch(c, who->id, deadline_ms, request_id, &st, &found, err)) return false;
    /* a token newer than what the cache holds (issued after a change), or ADMIN power: ask now */
    if (!fresh && ((found && claims->ver > st.token_version) || (found && admin_dependent(route, st.roles)))) {
        if (!fetch(c, who->id, deadline_ms, request_id, &st, &found, err)) return false;
    }
    if (!found) {
        rp_err_set(err, RP_ERR_UNAUTHENTICATED, "INVALID_TOKEN", "the account no longer exists");
        return false;
    }
    if (!rp_session_admits(&st, claims, err)) {
        /* a demoted admin's old token on an admin route: what he may no longer do says more */
        if (!st.disabled && !rp_routes_allows(route, true, st.roles))
            rp_err_set(err, RP_ERR_FORBIDDEN, "FORBIDDEN", "your roles do not allow this route");
        return false;
    }
    who->roles = st.roles;
    return true;
}
