/* driver_event.c - the event store scenarios of the MongoDB wire-contract driver (see
 * mongo_driver.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mongo_driver.h"
#include "event/event.h"
#include "event/event_repo_mongo.h"
#include "event/progress_ingest.h"

/* The validated event document event_worker.c hands to event_create / event_update: reward 0
 * limited (stock 10), reward 1 unlimited with customData. */
static json_t *sample_event(void) {
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[], s:s, s:s, s:i, s:b, s:i, s:s, s:s, s:s, s:[{s:s, s:i, s:i, "
                     "s:n}, {s:s, s:i, s:n, s:{s:s}}]}",
                     "id", EVENT_ID, "title", "Launch", "description", "", "startDate", "2026-01-01T03:04:05.000Z",
                     "endDate", "2026-01-03T03:04:05.000Z", "conditions", "conditionLogic", "ALL", "claimPeriod",
                     "ONCE", "maxClaims", 3, "requiresApproval", 0, "dayOffsetMinutes", 540, "createdBy", OPERATOR_ID,
                     "createdAt", NOW_ISO, "updatedAt", NOW_ISO, "rewards", "rewardDefinitionId", DEF0_ID, "quantity",
                     2, "stock", 10, "customData", "rewardDefinitionId", DEF1_ID, "quantity", 1, "stock", "customData",
                     "color", "red");
}

/* The bounds event_worker.c would build for the variant, at NOW. */
static json_t *run_event_list(rp_event_repo_t *r, const char *variant) {
    rp_err_t err;
    json_t *items = NULL;
    bool more = false;
    rp_event_filter_t f = {.limit = 2};
    rp_err_clear(&err);
    rp_event_bounds_init(&f.bounds);
    static const char *const statuses[] = {"upcoming", "active", "finished", "canceled"};
    for (int s = RP_EVENT_UPCOMING; s <= RP_EVENT_CANCELED; s++)
        if (strncmp(variant, statuses[s], strlen(statuses[s])) == 0)
            rp_event_bounds_status(&f.bounds, (rp_event_status_t)s, NOW_MS);
    if (strcmp(variant, "open") == 0 || strstr(variant, "-open")) rp_event_bounds_open(&f.bounds, NOW_MS);
    if (strcmp(variant, "at") == 0 || strcmp(variant, "canceled-at") == 0)
        rp_event_bounds_active_at(&f.bounds, NOW_MS - 3600000);
    if (strcmp(variant, "cursor") == 0) f.cursor = EVENT_ID;
    bool ok = r->ops->event_list(r, &f, &items, &more, &err);
    return page(ok, &err, items, more);
}

/* The facts an ingest might carry: one of each type, the level fact reported twice (same key).
 * reused: only the level fact, for a store that holds another fact under its key. */
static json_t *run_progress_ingest(rp_event_repo_t *r, bool reused_only) {
    rp_err_t err;
    int64_t accepted = -1, duplicates = -1;
    json_t *level = json_integer(7), *quest = json_string("q.1"), *invitee = json_string(USER2_ID),
           *counter = json_pack("{s:s, s:i}", "key", "kills.total", "delta", 3);
    const rp_fact_t facts[] = {
        {USER_ID, RP_FACT_LOGIN, "LOGIN", NULL, NOW_MS, "k-login"},
        {USER_ID, RP_FACT_LEVEL, "LEVEL", level, NOW_MS, "k-level"},
        {USER_ID, RP_FACT_QUEST, "QUEST", quest, NOW_MS, "k-quest"},
        {USER_ID, RP_FACT_INVITE, "INVITE", invitee, NOW_MS, "k-invite"},
        {USER_ID, RP_FACT_COUNTER, "COUNTER", counter, NOW_MS, "k-counter"},
        {USER_ID, RP_FACT_LEVEL, "LEVEL", level, NOW_MS, "k-level"},
    };
    int64_t reused = -2;
    rp_err_clear(&err);
    bool ok = rp_progress_ingest(r, reused_only ? facts + 1 : facts, reused_only ? 1 : sizeof facts / sizeof facts[0],
                                 OPERATOR_ID, NOW_MS + 1000, &accepted, &duplicates, &reused, &err);
    json_decref(level);
    json_decref(quest);
    json_decref(invitee);
    json_decref(counter);
    return result(ok, &err,
                  json_pack("{s:I, s:I, s:I}", "accepted", (json_int_t)accepted, "duplicates", (json_int_t)duplicates,
                            "reused", (json_int_t)reused));
}

/* {maxLevel, invites, quests, counters, logins: [{day, minutes: [set minute numbers]}]}; releases p. */
static json_t *progress_json(rp_progress_t *p) {
    json_t *logins = json_array();
    for (size_t i = 0; i < p->nlogins; i++) {
        json_t *minutes = json_array();
        for (int m = 0; m < 1440; m++)
            if (p->logins[i].minutes[m / 8] & (1u << (m % 8))) json_array_append_new(minutes, json_integer(m));
        json_array_append_new(logins,
                              json_pack("{s:I, s:o}", "day", (json_int_t)p->logins[i].utc_day, "minutes", minutes));
    }
    json_t *out = json_pack("{s:I, s:I, s:O, s:O, s:o}", "maxLevel", (json_int_t)p->max_level, "invites",
                            (json_int_t)p->invites, "quests", p->quests, "counters", p->counters, "logins", logins);
    rp_progress_release(p);
    return out;
}

static json_t *run_progress_read(rp_event_repo_t *r, bool summary) {
    rp_err_t err;
    rp_progress_t p;
    int64_t days = -1;
    rp_err_clear(&err);
    bool ok = summary ? r->ops->progress_summary(r, USER_ID, &p, &days, &err)
                      : r->ops->progress_load(r, USER_ID, NOW_DAY - 6, NOW_DAY, &p, &err);
    if (!ok) return result(false, &err, NULL);
    json_t *out = progress_json(&p);
    if (summary) json_object_set_new(out, "loginDays", json_integer(days));
    return result(true, &err, out);
}

static json_t *run_event(rp_event_repo_t *r, const char *scenario) {
    rp_err_t err;
    json_t *doc = NULL, *items = NULL;
    bool ok, more = false, flag = false, flag2 = false;
    json_t *before = json_pack("{s:s}", "title", "Old"), *after = json_pack("{s:s, s:s}", "title", "New", "$k", "x");
    rp_event_audit_t audit = {OPERATOR_ID, "op", "event.x", "event", EVENT_ID, before, after, NOW_MS};
    json_t *out = NULL;
    rp_err_clear(&err);
    if (strcmp(scenario, "open-event") == 0)
        out = result(true, &err, NULL);
    else if (strcmp(scenario, "event-get") == 0) {
        ok = r->ops->event_get(r, EVENT_ID, &doc, &err);
        out = result(ok, &err, ok ? json_pack("{s:o}", "event", doc ? doc : json_null()) : NULL);
    } else if (strcmp(scenario, "event-create") == 0) {
        doc = sample_event();
        out = result(r->ops->event_create(r, doc, &audit, &err), &err, NULL);
        json_decref(doc);
    } else if (strncmp(scenario, "event-update", 12) == 0) {
        /* -rewards: what the worker sends for a rewards change (replace, guarded); -guard: the
         * guard alone */
        bool rewards = strcmp(scenario, "event-update-rewards") == 0;
        doc = sample_event();
        json_object_set_new(doc, "title", json_string("New"));
        ok = r->ops->event_update(r, doc, rewards, rewards || strcmp(scenario, "event-update-guard") == 0, &audit,
                                  &flag, &err);
        out = result(ok, &err, ok ? json_pack("{s:b}", "conflict", flag) : NULL);
        json_decref(doc);
    } else if (strcmp(scenario, "event-cancel") == 0) {
        /* what event_worker.c settles with a cancel */
        const rp_event_settle_t settle = {"AWAITING_REVIEW", "FAILED", "EVENT_CANCELED", OPERATOR_ID};
        int64_t settled = -1;
        ok = r->ops->event_cancel(r, EVENT_ID, NOW_MS, &settle, &audit, &flag, &settled, &err);
        out = result(ok, &err, ok ? json_pack("{s:b, s:I}", "already", flag, "settled", (json_int_t)settled) : NULL);
    } else if (strcmp(scenario, "event-end") == 0 || strcmp(scenario, "event-start") == 0) {
        /* what event_worker.c asks for /end (an ACTIVE event ends at NOW) and /start */
        bool end = strcmp(scenario, "event-end") == 0;
        rp_event_bounds_t guard;
        rp_event_bounds_init(&guard);
        rp_event_bounds_status(&guard, end ? RP_EVENT_ACTIVE : RP_EVENT_UPCOMING, NOW_MS);
        ok = r->ops->event_set_window(r, EVENT_ID, end ? NOW_MS - 3600000 : NOW_MS, end ? NOW_MS : NOW_MS + 86400000,
                                      NOW_MS, &guard, &audit, &flag, &err);
        out = result(ok, &err, ok ? json_pack("{s:b}", "moved", flag) : NULL);
    } else if (strncmp(scenario, "event-list-", 11) == 0) {
        out = run_event_list(r, scenario + 11);
    } else if (strcmp(scenario, "event-audit-list") == 0) {
        ok = r->ops->audit_list(r, "event", EVENT_ID, OPERATOR_ID, NULL, 5, &items, &more, &err);
        out = page(ok, &err, items, more);
    } else if (strcmp(scenario, "def-create") == 0) {
        doc = json_pack("{s:s, s:s, s:s, s:{s:i}, s:s, s:b, s:s, s:s, s:s}", "id", DEF0_ID, "name", "Gold", "type",
                        "CURRENCY", "value", "amount", 100, "description", "gold", "isActive", 1, "createdBy",
                        OPERATOR_ID, "createdAt", NOW_ISO, "updatedAt", NOW_ISO);
        out = result(r->ops->def_create(r, doc, &audit, &err), &err, NULL);
        json_decref(doc);
    } else if (strcmp(scenario, "def-get") == 0) {
        ok = r->ops->def_get(r, DEF0_ID, &doc, &err);
        out = result(ok, &err, ok ? json_pack("{s:o}", "definition", doc ? doc : json_null()) : NULL);
    } else if (strcmp(scenario, "def-list") == 0) {
        ok = r->ops->def_list(r, "CURRENCY", 1, DEF1_ID, 2, &items, &more, &err);
        out = page(ok, &err, items, more);
    } else if (strcmp(scenario, "def-delete") == 0) {
        ok = r->ops->def_delete(r, DEF0_ID, &audit, &flag, &flag2, &err);
        out = result(ok, &err, ok ? json_pack("{s:b, s:b}", "found", flag, "referenced", flag2) : NULL);
    } else if (strcmp(scenario, "progress-ingest") == 0 || strcmp(scenario, "progress-ingest-one") == 0) {
        out = run_progress_ingest(r, strcmp(scenario, "progress-ingest-one") == 0);
    } else if (strcmp(scenario, "progress-load") == 0 || strcmp(scenario, "progress-summary") == 0) {
        out = run_progress_read(r, strcmp(scenario, "progress-summary") == 0);
    }
    json_decref(before);
    json_decref(after);
    return out;
}

json_t *contract_event(const char *uri, const char *scenario) {
    rp_err_t err;
    rp_err_clear(&err);
    if (!(strcmp(scenario, "open-event") == 0 || strncmp(scenario, "event-", 6) == 0 ||
          strncmp(scenario, "def-", 4) == 0 || strncmp(scenario, "progress-", 9) == 0))
        return NULL;
    rp_event_repo_t *s = rp_event_repo_mongo_open(uri, DB_NAME, &err);
    json_t *out = s ? run_event(s, scenario) : result(false, &err, NULL);
    if (s) s->ops->free(s);
    return out;
}
