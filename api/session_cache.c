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
#include "ids.h"
#include "mem.h"
#include "roles.h"
#include "timeutil.h"

#define STRIPES 64 /* locks; slot i is guarded by lock i % STRIPES */

typedef struct slot {
    char user_id[RP_OID_LEN]; /* "" = empty */
    int64_t fetched_ms;       /* monotonic */
    int64_t forgot_ms;        /* when the account last changed here: older answers are stale */
    bool found;
    rp_session_state_t state;
    int64_t refresh_ms; /* when a caller last took on renewing this entry ahead of its end */
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
    int64_t ttl_ms;
    bool batch;
    pthread_mutex_t locks[STRIPES];
    slot_t slots[RP_SESSION_CACHE_SLOTS];
    /* the callers waiting for a fetch, and whether one of them leads it (batch only) */
    pthread_mutex_t qmu;
    waiter_t *head, *tail;
    bool leading;
    atomic_ullong single_calls, batch_calls, accounts; /* rp_session_cache_stats */
};

rp_session_cache_t *rp_session_cache_new(rp_transport_t *t, int ttl_ms, bool batch) {
    rp_session_cache_t *c = rp_calloc(1, sizeof *c);
    c->transport = t;
    c->ttl_ms = ttl_ms;
    c->batch = batch;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    pthread_mutex_init(&c->qmu, NULL);
    return c;
}

void rp_session_cache_free(rp_session_cache_t *c) {
    if (!c) return;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&c->locks[i]);
    pthread_mutex_destroy(&c->qmu);
    free(c);
}

static size_t slot_of(const char *user_id) {
    return (size_t)(rp_hash_str(user_id) % RP_SESSION_CACHE_SLOTS);
}

/* Copies the cached state of user_id when it is younger than the ttl; false on a miss, and for
 * one caller once the entry is in the last quarter of its life (it renews it). */
static bool lookup(rp_session_cache_t *c, const char *user_id, int64_t now, rp_session_state_t *out, bool *found) {
    size_t i = slot_of(user_id);
    bool hit = false;
    pthread_mutex_lock(&c->locks[i % STRIPES]);
    slot_t *s = &c->slots[i];
    if (strcmp(s->user_id, user_id) == 0 && s->fetched_ms > s->forgot_ms && now - s->fetched_ms < c->ttl_ms) {
        /* in the last quarter of its life, one caller (at most one per quarter) renews the entry
         * while the others still use it: no crowd of RPCs the moment it ends */
        int64_t ahead = c->ttl_ms / 4;
        if (now - s->fetched_ms >= c->ttl_ms - ahead && now - s->refresh_ms >= ahead) {
            s->refresh_ms = now;
        } else {
            *out = s->state;
            *found = s->found;
            hit = true;
        }
    }
    pthread_mutex_unlock(&c->locks[i % STRIPES]);
    return hit;
}

static void store(rp_session_cache_t *c, const char *user_id, int64_t fetched, const rp_session_state_t *st,
                  bool found) {
    size_t i = slot_of(user_id);
    pthread_mutex_lock(&c->locks[i % STRIPES]);
    slot_t *s = &c->slots[i];
    bool other = strcmp(s->user_id, user_id) != 0;
    /* an answer asked for before the one already held, or before the account changed, must not
     * replace it */
    if (other || (fetched >= s->fetched_ms && fetched > s->forgot_ms)) {
        memcpy(s->user_id, user_id, RP_OID_LEN);
        s->fetched_ms = fetched;
        if (other) s->forgot_ms = 0;
        s->found = found;
        s->state = *st;
    }
    pthread_mutex_unlock(&c->locks[i % STRIPES]);
}

void rp_session_cache_stats(rp_session_cache_t *c, rp_session_stats_t *out) {
    out->single_calls = atomic_load(&c->single_calls);
    out->batch_calls = atomic_load(&c->batch_calls);
    out->accounts = atomic_load(&c->accounts);
    out->waiting = 0;
    pthread_mutex_lock(&c->qmu);
    for (const waiter_t *w = c->head; w; w = w->next)
        out->waiting++;
    pthread_mutex_unlock(&c->qmu);
}

void rp_session_cache_forget(rp_session_cache_t *c, const char *user_id) {
    size_t i = slot_of(user_id);
    pthread_mutex_lock(&c->locks[i % STRIPES]);
    slot_t *s = &c->slots[i];
    /* the slot keeps the id, so that an answer already on its way (asked before now) is dropped */
    if (strcmp(s->user_id, user_id) != 0) {
        memcpy(s->user_id, user_id, RP_OID_LEN);
        s->fetched_ms = 0;
    }
    s->forgot_ms = rp_mono_ms();
    pthread_mutex_unlock(&c->locks[i % STRIPES]);
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
