/* routes.c - the route table and matcher (see routes.h); constant data, thread-safe. */
#include "routes.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "roles.h"

#define ADMIN RP_ROLE_ADMIN
#define ANY 0u
#define STAFF (RP_ROLE_OPERATOR | RP_ROLE_ADMIN)
#define READERS (RP_ROLE_OPERATOR | RP_ROLE_AUDITOR | RP_ROLE_ADMIN)
#define AUDIT (RP_ROLE_AUDITOR | RP_ROLE_ADMIN)
#define REPORTERS (RP_ROLE_GAME_SERVER | RP_ROLE_OPERATOR | RP_ROLE_ADMIN)

/* method, pattern, component, public, roles, body, schema, max body, session, shared call */
static const rp_api_route_t table[] = {
    {"GET", "/", RP_ROUTE_LOCAL, true, ANY, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/health/live", RP_ROUTE_LOCAL, true, ANY, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/health/ready", RP_ROUTE_LOCAL, true, ANY, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/openapi.json", RP_ROUTE_APIDOC, true, ANY, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/docs", RP_ROUTE_APIDOC, true, ANY, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/docs/{asset}", RP_ROUTE_APIDOC, true, ANY, RP_BODY_NONE, NULL, 0, 0, false},

    {"POST", "/auth/register", RP_COMP_LOGIN, true, ANY, RP_BODY_REQUIRED, "auth.register", 0, 0, false},
    {"POST", "/auth/login", RP_COMP_LOGIN, true, ANY, RP_BODY_REQUIRED, "auth.login", 0, 0, false},
    {"POST", "/auth/refresh", RP_COMP_AUTH, true, ANY, RP_BODY_REQUIRED, "auth.refresh", 0, 0, false},
    {"POST", "/auth/logout", RP_COMP_AUTH, false, ANY, RP_BODY_REQUIRED, "auth.logout", 0, RP_SESSION_OF_CALLER, false},
    {"GET", "/auth/me", RP_COMP_AUTH, false, ANY, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/auth/users", RP_COMP_AUTH, false, ADMIN, RP_BODY_NONE, NULL, 0, 0, false},
    {"PUT", "/auth/users/{id}/roles", RP_COMP_AUTH, false, ADMIN, RP_BODY_REQUIRED, "auth.set-roles", 0,
     RP_SESSION_OF_PARAM_ID, false},
    {"PUT", "/auth/users/{id}/status", RP_COMP_AUTH, false, ADMIN, RP_BODY_REQUIRED, "auth.set-status", 0,
     RP_SESSION_OF_PARAM_ID, false},
    {"POST", "/auth/password", RP_COMP_LOGIN, false, ANY, RP_BODY_REQUIRED, "auth.password", 0, RP_SESSION_OF_CALLER,
     false},
    {"GET", "/auth/audit-log", RP_COMP_AUTH, false, AUDIT, RP_BODY_NONE, NULL, 0, 0, false},
    {"POST", "/auth/service-accounts", RP_COMP_AUTH, false, ADMIN, RP_BODY_REQUIRED, "service-account.create", 0,
     RP_SESSION_KEYS_MINT, false},
    {"GET", "/auth/service-accounts", RP_COMP_AUTH, false, ADMIN, RP_BODY_NONE, NULL, 0, 0, false},
    {"DELETE", "/auth/service-accounts/{id}", RP_COMP_AUTH, false, ADMIN, RP_BODY_NONE, NULL, 0,
     RP_SESSION_KEYS_CHANGED, false},
    {"POST", "/auth/service-accounts/{id}/keys", RP_COMP_AUTH, false, ADMIN, RP_BODY_OPTIONAL, "service-account.rotate",
     0, RP_SESSION_KEYS_MINT, false},
    {"DELETE", "/auth/service-accounts/{id}/keys/{keyId}", RP_COMP_AUTH, false, ADMIN, RP_BODY_NONE, NULL, 0,
     RP_SESSION_KEYS_CHANGED, false},

    {"POST", "/events/reward-definitions", RP_COMP_EVENT, false, STAFF, RP_BODY_REQUIRED, "reward-definition.create", 0,
     0, false},
    {"GET", "/events/reward-definitions", RP_COMP_EVENT, false, READERS, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/events/reward-definitions/{id}", RP_COMP_EVENT, false, READERS, RP_BODY_NONE, NULL, 0, 0, false},
    {"PATCH", "/events/reward-definitions/{id}", RP_COMP_EVENT, false, STAFF, RP_BODY_REQUIRED,
     "reward-definition.update", 0, 0, false},
    {"DELETE", "/events/reward-definitions/{id}", RP_COMP_EVENT, false, STAFF, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/events", RP_COMP_EVENT, false, ANY, RP_BODY_NONE, NULL, 0, 0, false},
    {"POST", "/events", RP_COMP_EVENT, false, STAFF, RP_BODY_REQUIRED, "event.create", 0, 0, false},
    {"GET", "/events/{id}", RP_COMP_EVENT, false, ANY, RP_BODY_NONE, NULL, 0, 0, false},
    {"PATCH", "/events/{id}", RP_COMP_EVENT, false, STAFF, RP_BODY_REQUIRED, "event.update", 0, 0, false},
    {"POST", "/events/{id}/cancel", RP_COMP_EVENT, false, STAFF, RP_BODY_OPTIONAL, "event.cancel", 0, 0, false},
    {"POST", "/events/{id}/end", RP_COMP_EVENT, false, STAFF, RP_BODY_NONE, NULL, 0, 0, false},
    {"POST", "/events/{id}/start", RP_COMP_EVENT, false, STAFF, RP_BODY_NONE, NULL, 0, 0, false},
    {"POST", "/events/{id}/clone", RP_COMP_EVENT, false, STAFF, RP_BODY_REQUIRED, "event.clone", 0, 0, false},
    {"POST", "/events/progress", RP_COMP_EVENT, false, REPORTERS, RP_BODY_REQUIRED, "progress.report", 0, 0, false},
    {"GET", "/events/progress/{userId}", RP_COMP_EVENT, false, ANY, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/events/audit-log", RP_COMP_EVENT, false, AUDIT, RP_BODY_NONE, NULL, 0, 0, false},

    {"POST", "/events/{id}/reward-requests", RP_COMP_REWARD, false, RP_ROLE_USER, RP_BODY_OPTIONAL,
     "reward-request.claim", 0, 0, true},
    {"GET", "/events/reward-requests/me", RP_COMP_REWARD, false, ANY, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/events/reward-requests", RP_COMP_REWARD, false, READERS, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/events/reward-requests/export", RP_ROUTE_EXPORT, false, AUDIT, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/events/reward-requests/{id}", RP_COMP_REWARD, false, ANY, RP_BODY_NONE, NULL, 0, 0, false},
    {"POST", "/events/reward-requests/{id}/approve", RP_COMP_REWARD, false, STAFF, RP_BODY_OPTIONAL,
     "reward-request.decision", 0, 0, false},
    {"POST", "/events/reward-requests/{id}/reject", RP_COMP_REWARD, false, STAFF, RP_BODY_OPTIONAL,
     "reward-request.decision", 0, 0, false},
    {"POST", "/events/reward-requests/{id}/revoke", RP_COMP_REWARD, false, STAFF, RP_BODY_REQUIRED,
     "reward-request.revoke", 0, 0, false},
    {"GET", "/events/ledger", RP_COMP_REWARD, false, AUDIT, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/events/grants/feed", RP_COMP_REWARD, false, RP_ROLE_GAME_SERVER, RP_BODY_NONE, NULL, 0, 0, false},
    {"POST", "/events/{id}/batch-grants", RP_COMP_REWARD, false, STAFF, RP_BODY_REQUIRED, "batch.create",
     RP_BATCH_BODY_BYTES, 0, false},
    {"GET", "/events/{id}/eligibility", RP_COMP_REWARD, false, RP_ROLE_USER | READERS, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/events/batches", RP_COMP_REWARD, false, READERS, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/events/batches/{id}", RP_COMP_REWARD, false, READERS, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/events/batches/{id}/items", RP_COMP_REWARD, false, READERS, RP_BODY_NONE, NULL, 0, 0, false},

    {"POST", "/events/webhooks", RP_COMP_REWARD, false, STAFF, RP_BODY_REQUIRED, "webhook.create", 0, 0, false},
    {"GET", "/events/webhooks", RP_COMP_REWARD, false, READERS, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/events/webhooks/{id}", RP_COMP_REWARD, false, READERS, RP_BODY_NONE, NULL, 0, 0, false},
    {"PATCH", "/events/webhooks/{id}", RP_COMP_REWARD, false, STAFF, RP_BODY_REQUIRED, "webhook.update", 0, 0, false},
    {"DELETE", "/events/webhooks/{id}", RP_COMP_REWARD, false, STAFF, RP_BODY_NONE, NULL, 0, 0, false},
    {"GET", "/events/webhooks/{id}/deliveries", RP_COMP_REWARD, false, STAFF, RP_BODY_NONE, NULL, 0, 0, false},
    {"POST", "/events/webhooks/{id}/deliveries/{deliveryId}/redeliver", RP_COMP_REWARD, false, STAFF, RP_BODY_NONE,
     NULL, 0, 0, false},
    {"POST", "/events/webhooks/{id}/ping", RP_COMP_REWARD, false, STAFF, RP_BODY_NONE, NULL, 0, 0, false},
};

const rp_api_route_t *rp_routes_table(size_t *count) {
    *count = sizeof table / sizeof table[0];
    return table;
}

#define MAX_SEGS 16

typedef struct seg {
    const char *p;
    size_t n;
} seg_t;

/* Splits "/a/b/c" into segments; "/" has zero segments. Returns -1 on an empty inner segment,
 * a trailing slash or too many segments. */
static int split(const char *path, size_t len, seg_t *out) {
    int n = 0;
    size_t i = 0;
    if (len == 0 || path[0] != '/') return -1;
    if (len == 1) return 0;
    while (i < len) {
        size_t start = ++i;
        while (i < len && path[i] != '/')
            i++;
        if (i == start || n == MAX_SEGS) return -1;
        out[n].p = path + start;
        out[n].n = i - start;
        n++;
    }
    return n;
}

static bool is_param(const seg_t *s) {
    return s->n >= 2 && s->p[0] == '{' && s->p[s->n - 1] == '}';
}

/* Specificity key: bit set for each literal segment, most significant first. */
static unsigned long pattern_matches(const seg_t *ps, int pn, const seg_t *rs, int rn, bool *ok) {
    unsigned long key = 0;
    *ok = false;
    if (pn != rn) return 0;
    for (int i = 0; i < pn; i++) {
        key <<= 1;
        if (is_param(&ps[i])) continue;
        if (ps[i].n != rs[i].n || memcmp(ps[i].p, rs[i].p, rs[i].n) != 0) return 0;
        key |= 1;
    }
    *ok = true;
    return key;
}

#define NROUTES (sizeof table / sizeof table[0])

/* Each pattern of the table split once, and the first route of the table with the same pattern
 * (routes of one pattern differ by method). Splitting every pattern again for every request was
 * 3 % of the embedded process's CPU under GET /events (perf, bench/README.md). */
static struct {
    seg_t segs[MAX_SEGS];
    int n;
    size_t first;
} patterns[NROUTES];
static pthread_once_t patterns_once = PTHREAD_ONCE_INIT;

static void split_patterns(void) {
    for (size_t i = 0; i < NROUTES; i++) {
        patterns[i].n = split(table[i].pattern, strlen(table[i].pattern), patterns[i].segs);
        patterns[i].first = i;
        for (size_t j = 0; j < i; j++)
            if (strcmp(table[j].pattern, table[i].pattern) == 0) {
                patterns[i].first = j;
                break;
            }
    }
}

rp_match_result_t rp_routes_match(const char *method, const char *path, size_t len, const rp_api_route_t **route,
                                  json_t **params, char *allow, size_t cap) {
    seg_t rs[MAX_SEGS];
    size_t best = NROUTES;
    unsigned long best_key = 0;
    pthread_once(&patterns_once, split_patterns);
    *route = NULL;
    if (params) *params = NULL;
    if (allow && cap) allow[0] = '\0';
    int rn = split(path, len, rs);
    if (rn < 0) return RP_MATCH_NOT_FOUND;
    for (size_t i = 0; i < NROUTES; i++) {
        bool ok;
        unsigned long key = pattern_matches(patterns[i].segs, patterns[i].n, rs, rn, &ok);
        if (ok && (best == NROUTES || key > best_key)) {
            best = i;
            best_key = key;
        }
    }
    if (best == NROUTES) return RP_MATCH_NOT_FOUND;
    size_t used = 0;
    for (size_t i = 0; i < NROUTES; i++) {
        if (patterns[i].first != patterns[best].first) continue;
        if (strcmp(table[i].method, method) == 0) {
            *route = &table[i];
            break;
        }
        if (allow && used < cap) {
            int w = snprintf(allow + used, cap - used, "%s%s", used ? ", " : "", table[i].method);
            if (w > 0) used += (size_t)w < cap - used ? (size_t)w : cap - used - 1;
        }
    }
    if (!*route) return RP_MATCH_BAD_METHOD;
    if (params) {
        json_t *o = json_object();
        const seg_t *ps = patterns[*route - table].segs;
        int pn = patterns[*route - table].n;
        for (int i = 0; i < pn; i++) {
            if (!is_param(&ps[i])) continue;
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(ps[i].n - 2), ps[i].p + 1);
            json_t *v = json_stringn(rs[i].p, rs[i].n);
            if (!v) { /* not UTF-8: no route can use it */
                json_decref(o);
                *route = NULL;
                return RP_MATCH_NOT_FOUND;
            }
            json_object_set_new(o, name, v);
        }
        *params = o;
    }
    return RP_MATCH_OK;
}

bool rp_routes_allows(const rp_api_route_t *route, bool authenticated, unsigned roles) {
    if (route->is_public) return true;
    if (!authenticated) return false;
    return route->roles == 0 || (route->roles & roles) != 0;
}
