/* event_worker.c - the event worker's operations (see event_worker.h): input validation, status
 * and visibility rules, audit entries; the repository only stores and fetches. Every error record
 * starts cleared, so a callee that fails without filling it yields 500 INTERNAL, never stack
 * garbage in a reply. */
#include "event_worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "details.h"
#include "event.h"
#include "ids.h"
#include "log.h"
#include "mem.h"
#include "page_cache.h"
#include "paging.h"
#include "progress_ingest.h"
#include "roles.h"
#include "rules/request_state.h"
#include "service.h"
#include "timeutil.h"

struct rp_event_worker {
    const rp_config_t *cfg;
    rp_event_repo_t *repo;
    rp_transport_t *transport; /* borrowed: account lookups go to the auth worker through it */
    rp_service_t service;
    rp_page_cache_t *pages; /* rendered event list pages (GET /events), EVENTS_CACHE_MS */
};

#define STAFF_WRITE (RP_ROLE_OPERATOR | RP_ROLE_ADMIN)
#define STAFF_READ (RP_ROLE_OPERATOR | RP_ROLE_AUDITOR | RP_ROLE_ADMIN)
#define MAX_FACTS 1000
#define DEF_NOT_FOUND "REWARD_DEFINITION_NOT_FOUND"
#define PAGE_SLOTS 64               /* distinct list pages kept (status x limit x cursor x staff) */
#define PAGE_MAX_BYTES (512 * 1024) /* a larger page is not kept */

/* the service hooks (rpc.h) */
static bool ping(void *ctx, rp_err_t *err) {
    rp_event_worker_t *w = ctx;
    return w->repo->ops->ping(w->repo, err);
}

static void free_ctx(void *ctx) {
    rp_event_worker_free(ctx);
}

/* The definition (def) or event id as a new document; NULL with rep set when the read failed or
 * found nothing. */
static json_t *fetch(rp_event_worker_t *w, bool def, const char *id, rp_reply_t *rep) {
    rp_err_t err = {.kind = RP_ERR_NONE};
    json_t *doc = NULL;
    bool read = def ? w->repo->ops->def_get(w->repo, id, &doc, &err) : w->repo->ops->event_get(w->repo, id, &doc, &err);
    if (rp_service_found(rep, read, doc != NULL, &err, def ? DEF_NOT_FOUND : "EVENT_NOT_FOUND",
                         def ? "no such reward definition" : "no such event"))
        return doc;
    json_decref(doc);
    return NULL;
}

/* The {id} path parameter of a definition or event route; NULL with a 404 set when malformed. */
static const char *path_id(const rp_envelope_t *env, bool def, rp_reply_t *rep) {
    return def ? rp_service_path_id(env, "id", DEF_NOT_FOUND, "no such reward definition", rep)
               : rp_service_path_id(env, "id", "EVENT_NOT_FOUND", "no such event", rep);
}

/* Gives a new document its id (written to id) and its creation stamps; returns the time. */
static int64_t stamp_created(json_t *doc, const rp_envelope_t *env, char id[RP_OID_LEN]) {
    char now_s[RP_ISO_LEN];
    int64_t now = rp_now_ms();
    rp_oid_new(id);
    rp_time_iso(now, now_s);
    json_object_set_new(doc, "id", json_string(id));
    json_object_set_new(doc, "createdBy", json_string(env->caller.id));
    json_object_set_new(doc, "createdAt", json_string(now_s));
    json_object_set_new(doc, "updatedAt", json_string(now_s));
    return now;
}

/* Stamps doc as updated now; returns the time. */
static int64_t stamp_updated(json_t *doc) {
    char now_s[RP_ISO_LEN];
    int64_t now = rp_now_ms();
    rp_time_iso(now, now_s);
    json_object_set_new(doc, "updatedAt", json_string(now_s));
    return now;
}

static rp_event_audit_t audit_of(const rp_envelope_t *env, const char *action, const char *type, const char *id,
                                 json_t *before, json_t *after, int64_t now) {
    rp_event_audit_t a = {env->caller.id, env->caller.username, action, type, id, before, after, now};
    return a;
}

/* Checks that every reward references an existing, active definition. */
static bool check_definitions(rp_event_worker_t *w, const json_t *doc, json_t *details, rp_err_t *err) {
    size_t i;
    json_t *rw;
    json_array_foreach(json_object_get(doc, "rewards"), i, rw) {
        json_t *def = NULL;
        char ptr[64];
        snprintf(ptr, sizeof ptr, "/rewards/%zu/rewardDefinitionId", i);
        if (!w->repo->ops->def_get(w->repo, json_string_value(json_object_get(rw, "rewardDefinitionId")), &def, err))
            return false;
        if (!def)
            rp_details_add(details, ptr, "unknown reward definition");
        else if (!json_is_true(json_object_get(def, "isActive")))
            rp_details_add(details, ptr, "reward definition is inactive");
        json_decref(def);
    }
    return true;
}

/* A document being created, with its audit entry (which borrows doc and id). */
typedef struct new_doc {
    json_t *doc; /* owned by the caller once new_doc succeeded */
    char id[RP_OID_LEN];
    int64_t now;
    rp_event_audit_t audit;
} new_doc_t;

/* Checks a creation (staff, a valid body: a reward definition when def, else an event whose
 * rewards name active definitions) and makes the stamped document and its audit entry in n.
 * False with rep set when refused. */
static bool new_doc(rp_event_worker_t *w, const rp_envelope_t *env, bool def, new_doc_t *n, rp_reply_t *rep) {
    rp_err_t err = {.kind = RP_ERR_NONE};
    memset(n, 0, sizeof *n);
    if (!rp_service_require_roles(env, STAFF_WRITE, NULL, rep) || !rp_service_need_body(env, rep)) return false;
    json_t *details = json_array();
    if (def) {
        rp_definition_validate(env->body, false, details, &n->doc);
    } else if (rp_event_validate(env->body, details, &n->doc) && !check_definitions(w, n->doc, details, &err)) {
        json_decref(details);
        details = NULL;
        rp_reply_from_err(rep, &err);
    }
    if (!details || rp_service_reject_invalid(rep, details)) {
        json_decref(n->doc);
        n->doc = NULL;
        return false;
    }
    n->now = stamp_created(n->doc, env, n->id);
    n->audit = def ? audit_of(env, "reward_definition.create", "reward_definition", n->id, NULL, n->doc, n->now)
                   : audit_of(env, "event.create", "event", n->id, NULL, n->doc, n->now);
    return true;
}

/* ---- reward definitions ---- */

static json_t *def_public(json_t *doc) {
    json_object_del(doc, "referenced");
    return doc;
}

static void op_def_create(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_event_worker_t *w = ctx;
    rp_err_t err = {.kind = RP_ERR_NONE};
    new_doc_t n;
    if (!new_doc(w, env, true, &n, rep)) return;
    if (!w->repo->ops->def_create(w->repo, n.doc, &n.audit, &err)) {
        json_decref(n.doc);
        rp_reply_from_err(rep, &err);
        return;
    }
    rp_reply_set(rep, 201, n.doc);
}

static void op_def_get(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_event_worker_t *w = ctx;
    if (!rp_service_require_roles(env, STAFF_READ, NULL, rep)) return;
    const char *id = path_id(env, true, rep);
    json_t *doc = id ? fetch(w, true, id, rep) : NULL;
    if (doc) rp_reply_set(rep, 200, def_public(doc));
}

static void op_def_list(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_event_worker_t *w = ctx;
    rp_err_t err = {.kind = RP_ERR_NONE};
    int limit, active = -1;
    const char *cursor;
    json_t *items;
    bool more;
    if (!rp_service_require_roles(env, STAFF_READ, NULL, rep)) return;
    if (!rp_paging_parse(env, &limit, &cursor, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    const char *type = rp_envelope_query(env, "type"), *act = rp_envelope_query(env, "isActive");
    if (act) {
        if (strcmp(act, "true") == 0)
            active = 1;
        else if (strcmp(act, "false") == 0)
            active = 0;
        else {
            rp_reply_error(rep, 400, "VALIDATION_FAILED", "isActive must be true or false", NULL);
            return;
        }
    }
    if (!w->repo->ops->def_list(w->repo, type, active, cursor, limit, &items, &more, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    size_t i;
    json_t *d;
    json_array_foreach(items, i, d) def_public(d);
    rp_reply_set(rep, 200, rp_service_page(items, more));
}

static void op_def_update(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_event_worker_t *w = ctx;
    rp_err_t err = {.kind = RP_ERR_NONE};
    if (!rp_service_require_roles(env, STAFF_WRITE, NULL, rep) || !rp_service_need_body(env, rep)) return;
    const char *id = path_id(env, true, rep);
    if (!id) return;
    json_t *details = json_array(), *before;
    rp_definition_validate(env->body, true, details, NULL);
    if (rp_service_reject_invalid(rep, details) || !(before = fetch(w, true, id, rep))) return;
    const char *new_type = json_string_value(json_object_get(env->body, "type"));
    if (json_is_true(json_object_get(before, "referenced")) && new_type &&
        strcmp(new_type, json_string_value(json_object_get(before, "type"))) != 0) {
        json_decref(before);
        rp_reply_error(rep, 409, "DEFINITION_REFERENCED",
                       "an event uses this definition: its type cannot change (deactivate it instead)", NULL);
        return;
    }
    json_t *after = json_deep_copy(before);
    json_object_update(after, env->body);
    int64_t now = stamp_updated(after);
    def_public(before);
    def_public(after);
    rp_event_audit_t a = audit_of(env, "reward_definition.update", "reward_definition", id, before, after, now);
    bool ok = w->repo->ops->def_update(w->repo, after, &a, &err);
    json_decref(before);
    if (ok) {
        rp_reply_set(rep, 200, after);
    } else {
        json_decref(after);
        rp_reply_from_err(rep, &err);
    }
}

static void op_def_delete(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_event_worker_t *w = ctx;
    rp_err_t err = {.kind = RP_ERR_NONE};
    json_t *before = NULL;
    bool found = false, referenced = false;
    if (!rp_service_require_roles(env, STAFF_WRITE, NULL, rep)) return;
    const char *id = path_id(env, true, rep);
    if (!id || !(before = fetch(w, true, id, rep))) return;
    def_public(before);
    rp_event_audit_t a = audit_of(env, "reward_definition.delete", "reward_definition", id, before, NULL, rp_now_ms());
    bool ok = w->repo->ops->def_delete(w->repo, id, &a, &found, &referenced, &err);
    json_decref(before);
    if (!rp_service_found(rep, ok, found, &err, DEF_NOT_FOUND, "no such reward definition")) return;
    if (referenced) {
        rp_reply_error(rep, 409, "DEFINITION_REFERENCED",
                       "an event uses this definition: deactivate it (isActive: false) instead", NULL);
        return;
    }
    rp_reply_set(rep, 200, json_pack("{s:s, s:b}", "id", id, "deleted", 1));
}

/* ---- events ---- */

static json_t *with_status(json_t *doc, int64_t now) {
    json_object_set_new(doc, "status", json_string(rp_event_status_name(rp_event_doc_status(doc, now))));
    return doc;
}

/* Answers status with the event as stored after a write, and its status at now. */
static void reply_event(rp_event_worker_t *w, const char *id, int status, int64_t now, rp_reply_t *rep) {
    json_t *doc = fetch(w, false, id, rep);
    if (doc) rp_reply_set(rep, status, with_status(doc, now));
}

static void op_event_create(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_event_worker_t *w = ctx;
    rp_err_t err = {.kind = RP_ERR_NONE};
    new_doc_t n;
    if (!new_doc(w, env, false, &n, rep)) return;
    bool ok = w->repo->ops->event_create(w->repo, n.doc, &n.audit, &err);
    json_decref(n.doc);
    if (!ok) {
        rp_reply_from_err(rep, &err);
        return;
    }
    reply_event(w, n.id, 201, n.now, rep);
}

/* Players (no staff role) see only UPCOMING and ACTIVE events. */
static bool is_staff(const rp_envelope_t *env) {
    return env->caller.authenticated && (env->caller.roles & STAFF_READ);
}

static void op_event_get(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_event_worker_t *w = ctx;
    const char *id = path_id(env, false, rep);
    json_t *doc = id ? fetch(w, false, id, rep) : NULL;
    if (!doc) return;
    int64_t now = rp_now_ms();
    rp_event_status_t s = rp_event_doc_status(doc, now);
    if (!is_staff(env) && s != RP_EVENT_UPCOMING && s != RP_EVENT_ACTIVE) {
        json_decref(doc);
        rp_reply_error(rep, 404, "EVENT_NOT_FOUND", "no such event", NULL);
        return;
    }
    rp_reply_set(rep, 200, with_status(doc, now));
}

/* How long the api may keep a list page that holds until `until` (maxAgeMs, see envelope.h): no
 * longer than this worker keeps one, so that pages kept in two places are never staler together
 * than EVENTS_CACHE_MS. A page depends on the caller only through is_staff, a function of roles. */
static int max_age(const rp_event_worker_t *w, int64_t now, int64_t until) {
    int64_t left = until - now, ttl = w->cfg->events_cache_ms;
    if (left > ttl) left = ttl;
    return left > 0 ? (int)left : 0;
}

/* The status, visibility and activeAt filters become time bounds here; the store only compares.
 * Pages without activeAt are answered from the page cache while valid (see page_cache.h): every
 * player asks for the same first page. */
static void op_event_list(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_event_worker_t *w = ctx;
    rp_err_t err = {.kind = RP_ERR_NONE};
    rp_event_filter_t f = {.cursor = NULL};
    int64_t now = rp_now_ms(), active_at = 0;
    json_t *items = NULL;
    bool more = false;
    if (!rp_paging_parse(env, &f.limit, &f.cursor, &err) || !rp_query_time(env, "activeAt", &active_at, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    const char *status = rp_envelope_query(env, "status");
    rp_event_status_t s = RP_EVENT_UPCOMING;
    if (status && !rp_event_status_parse(status, &s)) {
        rp_reply_error(rep, 400, "VALIDATION_FAILED", "status must be UPCOMING, ACTIVE, FINISHED or CANCELED", NULL);
        return;
    }
    char key[160] = "";
    bool cacheable = !rp_envelope_query(env, "activeAt") && (!f.cursor || strlen(f.cursor) < 64);
    uint64_t gen = rp_page_cache_generation(w->pages);
    if (cacheable) {
        size_t len;
        snprintf(key, sizeof key, "%d|%s|%d|%s", is_staff(env), status ? status : "", f.limit,
                 f.cursor ? f.cursor : "");
        int64_t until = 0;
        char *text = rp_page_cache_get(w->pages, key, now, &len, &until);
        if (text) {
            rp_reply_set_raw(rep, 200, text, len);
            rep->max_age_ms = max_age(w, now, until);
            return;
        }
        now = rp_now_ms(); /* the look may have waited for another caller's renewal */
    }
    rp_event_bounds_init(&f.bounds);
    if (status) rp_event_bounds_status(&f.bounds, s, now);
    if (!is_staff(env)) rp_event_bounds_open(&f.bounds, now);
    if (rp_envelope_query(env, "activeAt")) rp_event_bounds_active_at(&f.bounds, active_at);
    if (f.bounds.empty) { /* e.g. a player asking for FINISHED events: nothing to ask the store */
        items = json_array();
    } else if (!w->repo->ops->event_list(w->repo, &f, &items, &more, &err)) {
        if (cacheable) rp_page_cache_done(w->pages, key); /* no page: whoever waits for one asks itself */
        rp_reply_from_err(rep, &err);
        return;
    }
    size_t i;
    json_t *d;
    int64_t until = INT64_MAX; /* the page holds until one of its events changes status */
    json_array_foreach(items, i, d) {
        int64_t next = rp_event_doc_next_change(with_status(d, now), now);
        if (next < until) until = next;
    }
    json_t *page = rp_service_page(items, more);
    char *text = json_dumps(page, JSON_COMPACT);
    json_decref(page);
    if (!text) {
        if (cacheable) rp_page_cache_done(w->pages, key);
        rp_reply_error(rep, 500, "INTERNAL", "cannot encode the page", NULL);
        return;
    }
    size_t len = strlen(text);
    if (cacheable) rp_page_cache_put(w->pages, key, gen, now, until, text, len);
    rp_reply_set_raw(rep, 200, text, len);
    /* a page read across one of this worker's writes is not kept here, nor offered for keeping */
    if (cacheable && rp_page_cache_generation(w->pages) == gen) rep->max_age_ms = max_age(w, now, until);
}

/* The fields a claim is judged and paid by (rewards, claimPeriod, dayOffsetMinutes) freeze once
 * a request holds a slot: a new claim period or game-day boundary would open new slots for the
 * same player, new rewards would pay differently for the same slot. Setting them to what they
 * are is no change. Both documents are validated, normalised bodies. */
static const char *const frozen_fields[] = {"rewards", "claimPeriod", "dayOffsetMinutes", NULL};

static bool frozen_field_changes(const json_t *current, const json_t *doc, bool *rewards_change) {
    bool change = false;
    for (size_t i = 0; frozen_fields[i]; i++) {
        bool differs = !json_equal(json_object_get(current, frozen_fields[i]), json_object_get(doc, frozen_fields[i]));
        if (i == 0) *rewards_change = differs;
        change = change || differs;
    }
    return change;
}

static void op_event_update(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_event_worker_t *w = ctx;
    rp_err_t err = {.kind = RP_ERR_NONE};
    json_t *before = NULL, *merged = NULL, *doc = NULL, *current_body = NULL, *current = NULL, *details = json_array();
    bool claimed = false;
    if (!rp_service_require_roles(env, STAFF_WRITE, NULL, rep) || !rp_service_need_body(env, rep)) goto done;
    const char *id = path_id(env, false, rep);
    if (!id || !(before = fetch(w, false, id, rep))) goto done;
    merged = rp_event_merge_patch(before, env->body, details);
    if (json_array_size(details) == 0 && rp_event_validate(merged, details, &doc) &&
        json_object_get(env->body, "rewards") && !check_definitions(w, doc, details, &err)) {
        rp_reply_from_err(rep, &err);
        goto done;
    }
    bool refused = rp_service_reject_invalid(rep, details); /* takes details either way */
    details = NULL;
    if (refused) goto done;
    /* the stored event as the same normalised body, to tell a change from a repetition */
    json_t *scratch = json_array();
    current_body = rp_event_body_of(before);
    rp_event_validate(current_body, scratch, &current);
    json_decref(scratch);
    bool replace_rewards = true;
    bool frozen_change = !current || frozen_field_changes(current, doc, &replace_rewards);
    json_object_set(doc, "id", json_object_get(before, "id"));
    json_object_set(doc, "createdBy", json_object_get(before, "createdBy"));
    json_object_set(doc, "createdAt", json_object_get(before, "createdAt"));
    int64_t now = stamp_updated(doc);
    rp_event_audit_t a = audit_of(env, "event.update", "event", id, before, doc, now);
    /* the guard goes with every change of a frozen field, checked by the store in the same
     * transaction as the write; unchanged rewards are not rewritten (their stock stays) */
    if (!w->repo->ops->event_update(w->repo, doc, replace_rewards, frozen_change, &a, &claimed, &err)) {
        rp_reply_from_err(rep, &err);
        goto done;
    }
    if (claimed) {
        rp_reply_error(rep, 409, "EVENT_HAS_CLAIMS",
                       "rewards, claimPeriod and dayOffsetMinutes cannot change once players hold a claim", NULL);
        goto done;
    }
    reply_event(w, id, 200, now, rep);
done:
    json_decref(details);
    json_decref(before);
    json_decref(merged);
    json_decref(doc);
    json_decref(current_body);
    json_decref(current);
}

static void op_event_cancel(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_event_worker_t *w = ctx;
    rp_err_t err = {.kind = RP_ERR_NONE};
    json_t *before = NULL;
    bool already = false;
    if (!rp_service_require_roles(env, STAFF_WRITE, NULL, rep)) return;
    const char *id = path_id(env, false, rep);
    if (!id) return;
    json_t *reason = env->body ? json_object_get(env->body, "reason") : NULL;
    if (env->body && (json_object_size(env->body) > (reason ? 1u : 0u) ||
                      (reason && !(json_is_string(reason) && json_string_length(reason) <= 1000)))) {
        rp_service_reject_field(rep, "the body may only hold {reason: string}", "/reason",
                                "must be a string of at most 1000 characters");
        return;
    }
    if (!(before = fetch(w, false, id, rep))) return;
    int64_t now = rp_now_ms();
    json_t *note = json_pack("{s:s, s:O}", "status", "CANCELED", "reason", reason ? reason : json_null());
    rp_event_audit_t a = audit_of(env, "event.cancel", "event", id, before, note, now);
    /* a claim waiting for review can no longer be paid: it fails with the cancel, in its
     * transaction, decided by the canceller; it took no stock, so none goes back */
    rp_event_settle_t settle = {rp_req_status_name(RP_REQ_AWAITING_REVIEW), rp_req_status_name(RP_REQ_FAILED),
                                "EVENT_CANCELED", env->caller.id};
    int64_t settled = 0;
    bool ok = w->repo->ops->event_cancel(w->repo, id, now, &settle, &a, &already, &settled, &err);
    json_decref(note);
    json_decref(before);
    if (!ok) {
        rp_reply_from_err(rep, &err);
        return;
    }
    if (already) {
        rp_reply_error(rep, 409, "ALREADY_CANCELED", "the event is already canceled", NULL);
        return;
    }
    reply_event(w, id, 200, now, rep);
    if (rep->status == 200) json_object_set_new(rep->body, "settledRequests", json_integer(settled));
}

/* A stored document's time member in epoch ms (0 when absent). */
static int64_t doc_ms(const json_t *doc, const char *key) {
    json_t *v = json_object_get(doc, key);
    int64_t ms = 0;
    if (json_is_string(v)) rp_time_parse_iso(json_string_value(v), json_string_length(v), &ms);
    return ms;
}

/* POST /events/{id}/end and /start: an ACTIVE event ends now, an UPCOMING one starts now. The
 * status is decided by the store's guard on the stored window (the bounds of the status at
 * now), in the write's transaction, so a concurrent cancel or edit cannot slip in between. */
static void set_window_now(rp_event_worker_t *w, const rp_envelope_t *env, bool end, rp_reply_t *rep) {
    rp_err_t err = {.kind = RP_ERR_NONE};
    json_t *before = NULL, *after = NULL;
    bool moved = false;
    int64_t start = 0, stop = 0, now = rp_now_ms();
    char iso[RP_ISO_LEN];
    if (!rp_service_require_roles(env, STAFF_WRITE, NULL, rep)) return;
    const char *id = path_id(env, false, rep);
    if (!id || !(before = fetch(w, false, id, rep))) return;
    start = doc_ms(before, "startDate");
    stop = doc_ms(before, "endDate");
    rp_event_bounds_t guard;
    rp_event_bounds_init(&guard);
    rp_event_bounds_status(&guard, end ? RP_EVENT_ACTIVE : RP_EVENT_UPCOMING, now);
    if (end)
        stop = now > start ? now : start + 1; /* a window is never empty */
    else
        start = now;
    after = json_deep_copy(before);
    rp_time_iso(start, iso);
    json_object_set_new(after, "startDate", json_string(iso));
    rp_time_iso(stop, iso);
    json_object_set_new(after, "endDate", json_string(iso));
    rp_time_iso(now, iso);
    json_object_set_new(after, "updatedAt", json_string(iso));
    rp_event_audit_t a = audit_of(env, end ? "event.end" : "event.start", "event", id, before, after, now);
    bool ok = w->repo->ops->event_set_window(w->repo, id, start, stop, now, &guard, &a, &moved, &err);
    const char *status = rp_event_status_name(rp_event_doc_status(before, now));
    json_decref(after);
    if (!ok) {
        rp_reply_from_err(rep, &err);
    } else if (!moved) {
        char msg[96];
        snprintf(msg, sizeof msg, "only %s events can %s now; this one is %s", end ? "ACTIVE" : "UPCOMING",
                 end ? "end" : "start", status);
        rp_reply_error(rep, 422, end ? "EVENT_NOT_ACTIVE" : "EVENT_NOT_UPCOMING", msg, NULL);
    } else {
        reply_event(w, id, 200, now, rep);
    }
    json_decref(before);
}

static void op_event_end(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    set_window_now(ctx, env, true, rep);
}

static void op_event_start(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    set_window_now(ctx, env, false, rep);
}

/* POST /events/{id}/clone {startDate, endDate, title}: a new event with the source's
 * description, conditions, rewards (full stock again) and claim rules, validated as a creation. */
static void op_event_clone(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    static const char *const members[] = {"startDate", "endDate", "title", NULL};
    rp_event_worker_t *w = ctx;
    rp_err_t err = {.kind = RP_ERR_NONE};
    json_t *source = NULL, *body = NULL, *doc = NULL, *after = NULL, *details = NULL;
    char new_id[RP_OID_LEN];
    if (!rp_service_require_roles(env, STAFF_WRITE, NULL, rep) || !rp_service_need_body(env, rep)) return;
    const char *id = path_id(env, false, rep);
    if (!id) return;
    details = json_array();
    rp_details_unknown(env->body, members, "", details);
    for (size_t i = 0; members[i]; i++)
        if (!json_object_get(env->body, members[i])) {
            char ptr[32];
            snprintf(ptr, sizeof ptr, "/%s", members[i]);
            rp_details_add(details, ptr, "is required");
        }
    if (json_array_size(details) == 0 && !(source = fetch(w, false, id, rep))) goto done;
    if (source) {
        body = rp_event_body_of(source);
        for (size_t i = 0; members[i]; i++)
            json_object_set(body, members[i], json_object_get(env->body, members[i]));
        if (rp_event_validate(body, details, &doc) && !check_definitions(w, doc, details, &err)) {
            rp_reply_from_err(rep, &err);
            goto done;
        }
    }
    bool refused = rp_service_reject_invalid(rep, details); /* takes details either way */
    details = NULL;
    if (refused) goto done;
    int64_t now = stamp_created(doc, env, new_id);
    after = json_deep_copy(doc);
    json_object_set_new(after, "clonedFrom", json_string(id));
    rp_event_audit_t a = audit_of(env, "event.clone", "event", new_id, NULL, after, now);
    if (!w->repo->ops->event_create(w->repo, doc, &a, &err)) {
        rp_reply_from_err(rep, &err);
        goto done;
    }
    reply_event(w, new_id, 201, now, rep);
done:
    json_decref(details);
    json_decref(source);
    json_decref(body);
    json_decref(doc);
    json_decref(after);
}

/* ---- progress ---- */

static void fact_detail(json_t *details, size_t i, const char *member, const char *reason) {
    char ptr[64];
    snprintf(ptr, sizeof ptr, "/facts/%zu%s", i, member);
    rp_details_add(details, ptr, reason);
}

static bool printable(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) return false;
    return true;
}

/* Every player the facts name must have an account: the auth worker is asked once for the
 * distinct ids. False with rep set (422 UNKNOWN_PLAYER with each unknown id, or 503 when the
 * answer is missing) when the report must be refused whole. */
static bool players_known(rp_event_worker_t *w, const rp_envelope_t *env, const rp_fact_t *facts, size_t n,
                          rp_reply_t *rep) {
    rp_err_t err = {.kind = RP_ERR_NONE};
    json_t *first = json_object(); /* id -> index of its first fact */
    const char **ids = rp_calloc(n, sizeof *ids);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!json_object_get(first, facts[i].user_id)) {
            json_object_set_new(first, facts[i].user_id, json_integer((json_int_t)i));
            ids[m++] = facts[i].user_id;
        }
    rp_account_state_t *states = rp_calloc(m, sizeof *states);
    bool ok = false;
    rp_err_clear(&err);
    if (!w->transport) {
        rp_err_set(&err, RP_ERR_UNAVAILABLE, "AUTH_UNAVAILABLE", "cannot look accounts up: no transport");
    } else if (rp_accounts_lookup(w->transport, ids, m, env->deadline_ms ? env->deadline_ms : rp_now_ms() + 5000,
                                  env->request_id, states, &err)) {
        json_t *unknown = json_array();
        for (size_t k = 0; k < m; k++) {
            if (states[k] != RP_ACCOUNT_UNKNOWN) continue;
            char ptr[64];
            snprintf(ptr, sizeof ptr, "/facts/%lld/userId",
                     (long long)json_integer_value(json_object_get(first, ids[k])));
            json_array_append_new(unknown, json_pack("{s:s, s:s, s:s}", "field", ptr, "reason",
                                                     "no account has this id", "userId", ids[k]));
        }
        ok = json_array_size(unknown) == 0;
        if (ok)
            json_decref(unknown);
        else
            rp_reply_error(rep, 422, "UNKNOWN_PLAYER",
                           "some facts name players without an account; nothing was recorded", unknown);
    }
    if (!ok && err.kind != RP_ERR_NONE) /* no answer: nothing may be concluded, nothing recorded */
        rp_reply_error(rep, 503, err.code[0] ? err.code : "AUTH_UNAVAILABLE", err.message, NULL);
    free(states);
    free(ids);
    json_decref(first);
    return ok;
}

static void op_progress_report(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    static const char *const types[] = {"LOGIN", "LEVEL", "QUEST_COMPLETE", "INVITE", "COUNTER"};
    rp_event_worker_t *w = ctx;
    rp_err_t err = {.kind = RP_ERR_NONE};
    if (!rp_service_require_roles(env, RP_ROLE_GAME_SERVER | STAFF_WRITE, NULL, rep) || !rp_service_need_body(env, rep))
        return;
    json_t *facts = json_object_get(env->body, "facts"), *details = json_array();
    if (json_object_size(env->body) != 1 || !json_is_array(facts) || json_array_size(facts) < 1 ||
        json_array_size(facts) > MAX_FACTS) {
        rp_details_add(details, "/facts", "the body must be {facts: [1..1000 facts]}");
        rp_service_reject_invalid(rep, details);
        return;
    }
    size_t n = json_array_size(facts), i;
    rp_fact_t *list = rp_calloc(n, sizeof *list);
    int64_t now = rp_now_ms();
    json_t *f;
    json_array_foreach(facts, i, f) {
        static const char *const members[] = {"userId", "type", "value", "occurredAt", "idempotencyKey", NULL};
        if (!json_is_object(f)) {
            fact_detail(details, i, "", "must be an object");
            continue;
        }
        for (size_t u = rp_details_count_unknown(f, members); u > 0; u--)
            fact_detail(details, i, "", "has an unknown field");
        rp_fact_t *x = &list[i];
        json_t *uid = json_object_get(f, "userId"), *type = json_object_get(f, "type"),
               *val = json_object_get(f, "value"), *when = json_object_get(f, "occurredAt"),
               *key = json_object_get(f, "idempotencyKey");
        if (!json_is_string(uid) || !rp_oid_valid(json_string_value(uid), json_string_length(uid)))
            fact_detail(details, i, "/userId", "must be a 24-character hex id");
        else
            x->user_id = json_string_value(uid);
        int t = -1;
        for (int k2 = 0; json_is_string(type) && k2 < 5; k2++)
            if (strcmp(json_string_value(type), types[k2]) == 0) t = k2;
        if (t < 0) fact_detail(details, i, "/type", "must be LOGIN, LEVEL, QUEST_COMPLETE, INVITE or COUNTER");
        x->type = (rp_fact_type_t)(t < 0 ? 0 : t);
        x->type_name = t < 0 ? "" : types[t];
        x->value = val;
        if (!json_is_string(when) ||
            !rp_time_parse_iso(json_string_value(when), json_string_length(when), &x->occurred_at))
            fact_detail(details, i, "/occurredAt", "must be an ISO-8601 date-time with a zone");
        else if (x->occurred_at > now + 5 * 60000)
            fact_detail(details, i, "/occurredAt", "must not be more than 5 minutes in the future");
        if (!json_is_string(key) || json_string_length(key) < 1 || json_string_length(key) > 128 ||
            !printable(json_string_value(key), json_string_length(key)))
            fact_detail(details, i, "/idempotencyKey", "must be 1 to 128 printable ASCII characters");
        else
            x->idempotency_key = json_string_value(key);
        switch (t) {
        case 0:
            if (val && !json_is_null(val)) fact_detail(details, i, "/value", "must be absent or null for LOGIN");
            x->value = NULL;
            break;
        case 1:
            if (!json_is_integer(val) || json_integer_value(val) < 1 || json_integer_value(val) > 100000)
                fact_detail(details, i, "/value", "must be an integer level from 1 to 100000");
            break;
        case 2:
            if (!json_is_string(val) || json_string_length(val) < 1 || json_string_length(val) > 128)
                fact_detail(details, i, "/value", "must be a quest id string of 1 to 128 characters");
            break;
        case 3:
            if (!json_is_string(val) || !rp_oid_valid(json_string_value(val), json_string_length(val)))
                fact_detail(details, i, "/value", "must be the invited player's 24-character hex id");
            break;
        case 4: {
            json_t *ck = json_object_get(val, "key"), *delta = json_object_get(val, "delta");
            bool key_ok = rp_counter_key_valid(json_string_value(ck), json_string_length(ck));
            if (!json_is_object(val) || json_object_size(val) != 2 || !key_ok || !json_is_integer(delta) ||
                json_integer_value(delta) < -1000000000 || json_integer_value(delta) > 1000000000)
                fact_detail(details, i, "/value", "must be {key: 1-64 chars of [A-Za-z0-9_.:-], delta: integer}");
            break;
        }
        default: break;
        }
        if (json_array_size(details) >= 50) break;
    }
    if (rp_service_reject_invalid(rep, details)) {
        free(list);
        return;
    }
    int64_t accepted = 0, dups = 0, reused = -1;
    if (!players_known(w, env, list, n, rep)) {
        free(list);
        return;
    }
    if (!rp_progress_ingest(w->repo, list, n, env->caller.id, now, &accepted, &dups, &reused, &err)) {
        rp_reply_from_err(rep, &err);
    } else if (reused >= 0) {
        json_t *d = json_array();
        fact_detail(d, (size_t)reused, "/idempotencyKey", "this player's key names another fact");
        rp_reply_error(rep, 422, "IDEMPOTENCY_KEY_REUSED",
                       "an idempotency key of this player was used for another fact; nothing was recorded", d);
    } else {
        rp_reply_set(rep, 200,
                     json_pack("{s:I, s:I}", "accepted", (json_int_t)accepted, "duplicates", (json_int_t)dups));
    }
    free(list);
}

/* The summary's JSON: quests in the store's key order, lastLoginAt the last minute of the latest
 * login day (null without logins). Returns a new object. */
static json_t *progress_summary_json(const char *user, const rp_progress_t *p, int64_t login_days) {
    json_t *quest_ids = json_array(), *v, *last = json_null();
    const char *k;
    json_object_foreach(p->quests, k, v) json_array_append_new(quest_ids, json_string(k));
    int64_t at = p->nlogins ? rp_login_last(&p->logins[0]) : -1;
    if (at >= 0) {
        char iso[RP_ISO_LEN];
        rp_time_iso(at, iso);
        last = json_string(iso);
    }
    return json_pack("{s:s, s:I, s:o, s:I, s:O, s:I, s:o}", "userId", user, "maxLevel", (json_int_t)p->max_level,
                     "questsCompleted", quest_ids, "invites", (json_int_t)p->invites, "counters", p->counters,
                     "loginDays", (json_int_t)login_days, "lastLoginAt", last);
}

static void op_progress_get(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_event_worker_t *w = ctx;
    rp_err_t err = {.kind = RP_ERR_NONE};
    rp_progress_t p;
    int64_t login_days = 0;
    const char *user = rp_service_path_id(env, "userId", "USER_NOT_FOUND", "no such player", rep);
    if (!user) return;
    bool self = env->caller.authenticated && strcmp(env->caller.id, user) == 0;
    if (!self && !is_staff(env)) {
        rp_reply_error(rep, 403, "FORBIDDEN", "only the player or staff may read this progress", NULL);
        return;
    }
    if (!w->repo->ops->progress_summary(w->repo, user, &p, &login_days, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    rp_reply_set(rep, 200, progress_summary_json(user, &p, login_days));
    rp_progress_release(&p);
}

static void op_audit_list(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    rp_event_worker_t *w = ctx;
    rp_err_t err = {.kind = RP_ERR_NONE};
    int limit;
    const char *cursor, *target_id, *actor_id;
    json_t *items;
    bool more;
    if (!rp_service_require_roles(env, RP_ROLE_AUDITOR | RP_ROLE_ADMIN, NULL, rep)) return;
    if (!rp_paging_parse(env, &limit, &cursor, &err) || !rp_query_oid(env, "targetId", &target_id, &err) ||
        !rp_query_oid(env, "actorId", &actor_id, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    if (!w->repo->ops->audit_list(w->repo, rp_envelope_query(env, "targetType"), target_id, actor_id, cursor, limit,
                                  &items, &more, &err)) {
        rp_reply_from_err(rep, &err);
        return;
    }
    rp_reply_set(rep, 200, rp_service_page(items, more));
}

/* A write that may change a list page has run (successfully or not): cached pages go. Progress
 * reports, the busiest write, change no page. */
static void after_op(void *ctx, const rp_envelope_t *env, const rp_reply_t *rep) {
    rp_event_worker_t *w = ctx;
    (void)rep;
    if (strcmp(env->method, "GET") != 0 && strcmp(env->route, "/events/progress") != 0) rp_page_cache_forget(w->pages);
}

static const rp_route_op_t ops[] = {
    {"POST", "/events/reward-definitions", op_def_create},
    {"GET", "/events/reward-definitions", op_def_list},
    {"GET", "/events/reward-definitions/{id}", op_def_get},
    {"PATCH", "/events/reward-definitions/{id}", op_def_update},
    {"DELETE", "/events/reward-definitions/{id}", op_def_delete},
    {"POST", "/events", op_event_create},
    {"GET", "/events", op_event_list},
    {"GET", "/events/{id}", op_event_get},
    {"PATCH", "/events/{id}", op_event_update},
    {"POST", "/events/{id}/cancel", op_event_cancel},
    {"POST", "/events/{id}/end", op_event_end},
    {"POST", "/events/{id}/start", op_event_start},
    {"POST", "/events/{id}/clone", op_event_clone},
    {"POST", "/events/progress", op_progress_report},
    {"GET", "/events/progress/{userId}", op_progress_get},
    {"GET", "/events/audit-log", op_audit_list},
};

rp_event_worker_t *rp_event_worker_new(const rp_config_t *cfg, rp_transport_t *transport, rp_err_t *err) {
    rp_event_repo_t *repo = rp_event_repo_open(cfg, cfg->worker_threads * 2 + 2, err);
    if (!repo) return NULL;
    rp_event_worker_t *w = rp_calloc(1, sizeof *w);
    w->cfg = cfg;
    w->repo = repo;
    w->transport = transport;
    w->pages = rp_page_cache_new(cfg->events_cache_ms, PAGE_SLOTS, PAGE_MAX_BYTES);
    w->service = (rp_service_t){"event", ops, sizeof ops / sizeof ops[0], w, ping, free_ctx, after_op};
    return w;
}

const rp_service_t *rp_event_worker_service(rp_event_worker_t *w) {
    return &w->service;
}
rp_event_repo_t *rp_event_worker_repo(rp_event_worker_t *w) {
    return w->repo;
}

void rp_event_worker_free(rp_event_worker_t *w) {
    if (!w) return;
    w->repo->ops->free(w->repo);
    rp_page_cache_free(w->pages);
    free(w);
}
