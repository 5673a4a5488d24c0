/* session_cache.c - the gateway's session check through a striped, fixed-size cache (see
 * session_cache.h). */
#include "session_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

struct rp_session_cache {
    rp_transport_t *transport;
    int64_t ttl_ms;
    pthread_mutex_t locks[STRIPES];
    slot_t slots[RP_SESSION_CACHE_SLOTS];
};

rp_session_cache_t *rp_session_cache_new(rp_transport_t *t, int ttl_ms) {
    rp_session_cache_t *c = rp_calloc(1, sizeof *c);
    c->transport = t;
    c->ttl_ms = ttl_ms;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    return c;
}

void rp_session_cache_free(rp_session_cache_t *c) {
    if (!c) return;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&c->locks[i]);
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

/* Asks the auth worker and keeps the answer. */
static bool fetch(rp_session_cache_t *c, const char *user_id, int64_t deadline_ms, const char *request_id,
                  rp_session_state_t *out, bool *found, rp_err_t *err) {
    int64_t asked = rp_mono_ms();
    if (!rp_session_fetch(c->transport, user_id, deadline_ms, request_id, out, found, err)) return false;
    if (!*found) memset(out, 0, sizeof *out);
    store(c, user_id, asked, out, *found);
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
