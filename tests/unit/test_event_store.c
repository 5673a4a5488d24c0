/* The event store conformance suite (workers/event/event_repo.h) on every backend, with the
 * ingest body (workers/event/progress_ingest.c) run by each backend's unit of work. */
#include "store_backends.h"

#include "event/progress_ingest.h"

#define T0 INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */
#define HOUR INT64_C(3600000)
#define USER "aaaaaaaaaaaaaaaaaaaaaaaa"

/* ---- definitions and events ---- */

/* How many audit entries name event id. */
static size_t audit_entries(const char *id) {
    rp_err_t err;
    json_t *items = NULL;
    bool more;
    cr_assert(S.events->ops->audit_list(S.events, "EVENT", id, NULL, NULL, 10, &items, &more, &err), "%s", err.message);
    size_t n = json_array_size(items);
    json_decref(items);
    return n;
}

BACKENDS(events, definitions_and_events_round_trip) {
    open_stores(*backend);
    rp_err_t err;
    json_t *d = definition(), *got = NULL;
    const char *def_id = json_string_value(json_object_get(d, "id"));
    rp_event_audit_t a = audit("CREATE", "REWARD_DEFINITION", def_id);
    cr_assert(S.events->ops->def_create(S.events, d, &a, &err), "%s", err.message);
    cr_assert(S.events->ops->def_get(S.events, def_id, &got, &err));
    cr_assert_not_null(got);
    cr_assert(json_equal(json_object_get(got, "value"), json_object_get(d, "value")));
    cr_assert(json_is_false(json_object_get(got, "referenced")));
    json_decref(got);
    json_t *e = event(def_id, 10, "2026-01-01T00:00:00.000Z");
    const char *event_id = json_string_value(json_object_get(e, "id"));
    a = audit("CREATE", "EVENT", event_id);
    cr_assert(S.events->ops->event_create(S.events, e, &a, &err), "%s", err.message);
    cr_assert(S.events->ops->event_get(S.events, event_id, &got, &err));
    cr_assert_not_null(got);
    json_t *rw = json_array_get(json_object_get(got, "rewards"), 0);
    cr_assert_eq(json_integer_value(json_object_get(rw, "stockLeft")), 10);
    cr_assert_str_eq(json_string_value(json_object_get(rw, "name")), "Gold", "joined with its definition");
    json_decref(got);
    bool found = false, referenced = false;
    a = audit("DELETE", "REWARD_DEFINITION", def_id);
    cr_assert(S.events->ops->def_delete(S.events, def_id, &a, &found, &referenced, &err));
    cr_assert(found && referenced, "a definition an event uses is never deleted");
    bool already = true;
    a = audit("CANCEL", "EVENT", event_id);
    cr_assert(S.events->ops->event_cancel(S.events, event_id, 123, &a, &already, &err));
    cr_assert_not(already);
    cr_assert(S.events->ops->event_cancel(S.events, event_id, 124, &a, &already, &err));
    cr_assert(already);
    cr_assert_eq(audit_entries(event_id), 2u, "create and the one real cancel");
    json_decref(d);
    json_decref(e);
}

BACKENDS(events, lists_newest_first_with_cursor) {
    open_stores(*backend);
    rp_err_t err;
    json_t *d = definition();
    rp_event_audit_t a = audit("CREATE", "REWARD_DEFINITION", json_string_value(json_object_get(d, "id")));
    cr_assert(S.events->ops->def_create(S.events, d, &a, &err));
    char ids[5][RP_OID_LEN];
    for (int i = 0; i < 5; i++) {
        char at[48];
        snprintf(at, sizeof at, "2026-01-0%dT00:00:00.000Z", i + 1);
        json_t *e = event(json_string_value(json_object_get(d, "id")), -1, at);
        strcpy(ids[i], json_string_value(json_object_get(e, "id")));
        a = audit("CREATE", "EVENT", ids[i]);
        cr_assert(S.events->ops->event_create(S.events, e, &a, &err), "%s", err.message);
        json_decref(e);
    }
    rp_event_filter_t f = {.limit = 2};
    rp_event_bounds_init(&f.bounds);
    json_t *items = NULL;
    bool more = false;
    cr_assert(S.events->ops->event_list(S.events, &f, &items, &more, &err), "%s", err.message);
    cr_assert_eq(json_array_size(items), 2u);
    cr_assert(more);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "id")), ids[4]);
    char cursor[RP_OID_LEN];
    strcpy(cursor, json_string_value(json_object_get(json_array_get(items, 1), "id")));
    json_decref(items);
    f.cursor = cursor;
    f.limit = 10;
    cr_assert(S.events->ops->event_list(S.events, &f, &items, &more, &err));
    cr_assert_eq(json_array_size(items), 3u);
    cr_assert_not(more);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "id")), ids[2]);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 2), "id")), ids[0]);
    json_decref(items);
    json_decref(d);
}

/* ---- progress through the ingest body ---- */

static void ingest(const rp_fact_t *facts, size_t n, int64_t want_accepted, int64_t want_dups) {
    rp_err_t err;
    int64_t accepted = -1, dups = -1;
    cr_assert(rp_progress_ingest(S.events, facts, n, "gs", T0 + HOUR, &accepted, &dups, &err), "%s", err.message);
    cr_assert_eq(accepted, want_accepted);
    cr_assert_eq(dups, want_dups);
}

BACKENDS(events, progress_counts_each_key_once) {
    open_stores(*backend);
    rp_err_t err;
    json_t *lvl = json_integer(7), *quest = json_string("q1"),
           *ctr = json_pack("{s:s, s:i}", "key", "kills", "delta", 5);
    int64_t t = T0;
    rp_fact_t facts[] = {
        {USER, RP_FACT_LOGIN, "LOGIN", NULL, t, "k-login"},
        {USER, RP_FACT_LEVEL, "LEVEL", lvl, t, "k-level"},
        {USER, RP_FACT_QUEST, "QUEST_COMPLETE", quest, t, "k-quest"},
        {USER, RP_FACT_COUNTER, "COUNTER", ctr, t, "k-c1"},
        {USER, RP_FACT_COUNTER, "COUNTER", ctr, t, "k-c1"},
    };
    ingest(facts, 5, 4, 1);
    ingest(facts, 4, 0, 4); /* a retried report counts nothing twice */
    rp_progress_t p;
    memset(&p, 0, sizeof p);
    cr_assert(S.events->ops->progress_load(S.events, USER, t / 86400000 - 1, t / 86400000 + 1, &p, &err));
    cr_assert_eq(p.max_level, 7);
    cr_assert_eq(json_integer_value(json_object_get(p.counters, "kills")), 5);
    cr_assert_not_null(json_object_get(p.quests, "q1"));
    cr_assert_eq(p.nlogins, 1u);
    rp_progress_release(&p);
    json_decref(lvl);
    json_decref(quest);
    json_decref(ctr);
}
