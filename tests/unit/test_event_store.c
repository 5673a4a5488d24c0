/* The event store conformance suite (workers/event/event_repo.h) on every backend, with the
 * ingest body (workers/event/progress_ingest.c) run by each backend's unit of work. */
#include "store_backends.h"

#include "event/event.h"
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
    cr_assert(S.events->ops->event_cancel(S.events, event_id, 123, NULL, &a, &already, NULL, &err));
    cr_assert_not(already);
    cr_assert(S.events->ops->event_cancel(S.events, event_id, 124, NULL, &a, &already, NULL, &err));
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

/* An event with window [start, end), canceled at `canceled` (0 = not). */
typedef struct window {
    int64_t start, end, canceled;
    char id[RP_OID_LEN];
} window_t;

static void store_window(const char *def_id, window_t *w) {
    rp_err_t err;
    char iso[RP_ISO_LEN];
    bool already;
    json_t *e = event(def_id, -1, "2026-01-01T00:00:00.000Z");
    snprintf(w->id, sizeof w->id, "%s", json_string_value(json_object_get(e, "id")));
    rp_time_iso(w->start, iso);
    json_object_set_new(e, "startDate", json_string(iso));
    rp_time_iso(w->end, iso);
    json_object_set_new(e, "endDate", json_string(iso));
    rp_event_audit_t a = audit("CREATE", "EVENT", w->id);
    cr_assert(S.events->ops->event_create(S.events, e, &a, &err), "%s", err.message);
    if (w->canceled)
        cr_assert(S.events->ops->event_cancel(S.events, w->id, w->canceled, NULL, &a, &already, NULL, &err));
    json_decref(e);
}

/* For each status, visibility and instant filter (and combinations, contradicting ones too),
 * over events around now including the boundaries, the store returns exactly the events
 * rp_event_bounds_match accepts: the store's comparisons and the rules cannot disagree. */
BACKENDS(events, list_returns_exactly_what_the_bounds_accept) {
    open_stores(*backend);
    rp_err_t err;
    const int64_t now = T0 + 10 * 24 * HOUR, day = 24 * HOUR;
    window_t w[] = {
        {now - 2 * day, now - day, 0, ""}, /* finished */
        {now - day, now, 0, ""},           /* finished at exactly now */
        {now - day, now + day, 0, ""},     /* active */
        {now, now + day, 0, ""},           /* active from exactly now */
        {now + 1, now + day, 0, ""},       /* upcoming by a millisecond */
        {now + day, now + 2 * day, 0, ""}, /* upcoming */
        {now - day, now + day, now, ""},   /* canceled while active */
        {now + day, now + 2 * day, now, ""},
    };
    const size_t nw = sizeof w / sizeof w[0];
    json_t *d = definition();
    rp_event_audit_t a = audit("CREATE", "REWARD_DEFINITION", json_string_value(json_object_get(d, "id")));
    cr_assert(S.events->ops->def_create(S.events, d, &a, &err));
    for (size_t i = 0; i < nw; i++)
        store_window(json_string_value(json_object_get(d, "id")), &w[i]);
    /* filters: -1 none, 0..3 a status; open; an instant (0 = none) */
    const struct {
        int status;
        bool open;
        int64_t at;
    } filters[] = {
        {-1, false, 0},     {0, false, 0},        {1, false, 0},    {2, false, 0},          {3, false, 0},
        {-1, true, 0},      {-1, false, now - 1}, {-1, false, now}, {-1, false, now + day}, {1, true, 0},
        {0, true, now + 2}, {2, true, 0},         {3, false, now},
    };
    int empty_seen = 0;
    for (size_t k = 0; k < sizeof filters / sizeof filters[0]; k++) {
        rp_event_filter_t f = {.limit = 50};
        rp_event_bounds_init(&f.bounds);
        if (filters[k].status >= 0) rp_event_bounds_status(&f.bounds, (rp_event_status_t)filters[k].status, now);
        if (filters[k].open) rp_event_bounds_open(&f.bounds, now);
        if (filters[k].at) rp_event_bounds_active_at(&f.bounds, filters[k].at);
        empty_seen += f.bounds.empty;
        json_t *items = NULL;
        bool more = true;
        cr_assert(S.events->ops->event_list(S.events, &f, &items, &more, &err), "%s", err.message);
        cr_assert_not(more);
        size_t want = 0;
        for (size_t i = 0; i < nw; i++) {
            bool expected = rp_event_bounds_match(&f.bounds, w[i].start, w[i].end, w[i].canceled), got = false;
            size_t j;
            json_t *ev;
            json_array_foreach(items, j, ev) got =
                got || strcmp(json_string_value(json_object_get(ev, "id")), w[i].id) == 0;
            cr_assert_eq(got, expected, "filter %zu, event %zu: listed %d, the bounds say %d", k, i, got, expected);
            want += expected;
        }
        cr_assert_eq(json_array_size(items), want, "filter %zu lists nothing else", k);
        json_decref(items);
    }
    /* CANCELED at an instant is flagged empty; FINISHED and open contradict only in numbers, which
     * the store's comparisons must then get right */
    cr_assert_geq(empty_seen, 1, "a filter flagged empty was tried");
    json_decref(d);
}

/* The freeze guard is the caller's decision; the store checks "no request of the event" in the
 * same transaction. Without requests an update with the guard goes through and restarts the
 * stock. (The refusal once a request exists needs the reward store to make one: it is
 * test_reward_store.c's the_event_freeze_guard_sees_stored_requests.) */
BACKENDS(events, update_with_the_guard_goes_through_without_claims) {
    open_stores(*backend);
    rp_err_t err;
    char id[RP_OID_LEN];
    json_t *doc = NULL;
    bool claimed = true;
    make_event(10, id);
    cr_assert(S.events->ops->event_get(S.events, id, &doc, &err) && doc);
    json_object_set_new(doc, "title", json_string("Renamed"));
    json_object_set_new(json_array_get(json_object_get(doc, "rewards"), 0), "stock", json_integer(4));
    rp_event_audit_t a = audit("UPDATE", "EVENT", id);
    cr_assert(S.events->ops->event_update(S.events, doc, true, true, &a, &claimed, &err), "%s", err.message);
    cr_assert_not(claimed);
    json_decref(doc);
    cr_assert(S.events->ops->event_get(S.events, id, &doc, &err) && doc);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "title")), "Renamed");
    json_t *rw = json_array_get(json_object_get(doc, "rewards"), 0);
    cr_assert_eq(json_integer_value(json_object_get(rw, "stock")), 4);
    cr_assert_eq(json_integer_value(json_object_get(rw, "stockLeft")), 4, "replaced rewards restart their stock");
    /* without replace_rewards the rewards stay as they are */
    json_object_set_new(doc, "title", json_string("Again"));
    json_object_set_new(rw, "stock", json_integer(99));
    cr_assert(S.events->ops->event_update(S.events, doc, false, false, &a, &claimed, &err), "%s", err.message);
    cr_assert_not(claimed);
    json_decref(doc);
    cr_assert(S.events->ops->event_get(S.events, id, &doc, &err) && doc);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "title")), "Again");
    rw = json_array_get(json_object_get(doc, "rewards"), 0);
    cr_assert_eq(json_integer_value(json_object_get(rw, "stockLeft")), 4);
    json_decref(doc);
    cr_assert_eq(audit_entries(id), 3u, "create and both updates, each with its audit entry");
}

/* ---- the unit of work's primitives ---- */

typedef struct prim {
    const rp_event_repo_ops_t *ops;
    rp_aggregate_t put[5], got[5];
    bool found[5], is_new[3], stored_type_ok;
    int64_t stored_at;
    rp_txn_end_t end;
} prim_t;

static const rp_fact_t prim_fact = {USER, RP_FACT_LOGIN, "LOGIN", NULL, T0, "prim-key"};

/* Records prim_fact twice, reads every kind (absent the first time), writes every kind. */
static rp_txn_end_t prim_body(rp_event_txn_t *tx, void *arg) {
    prim_t *p = arg;
    memset(p->found, 0, sizeof p->found);
    rp_stored_fact_t stored = {.value = NULL};
    bool ok = p->ops->tx_fact_record(tx, &prim_fact, "gs", T0, &p->is_new[0], NULL) &&
              p->ops->tx_fact_record(tx, &prim_fact, "gs", T0, &p->is_new[1], &stored);
    p->stored_type_ok = !ok || strcmp(stored.type_name, "LOGIN") == 0;
    p->stored_at = stored.occurred_at;
    rp_stored_fact_clear(&stored);
    if (!ok) return RP_TXN_FAILED;
    for (int k = 0; k < 5; k++) {
        p->got[k] = p->put[k];
        if (!p->ops->tx_aggregate_get(tx, USER, &p->got[k], &p->found[k]) ||
            !p->ops->tx_aggregate_put(tx, USER, &p->put[k]))
            return RP_TXN_FAILED;
    }
    return p->end;
}

static void prim_aggregates(rp_aggregate_t a[5], int64_t base) {
    memset(a, 0, 5 * sizeof *a);
    for (int k = 0; k < 5; k++) {
        a[k].kind = (rp_fact_type_t)k;
        a[k].at = T0 + base + k;
    }
    a[RP_FACT_LOGIN].day = T0 / RP_DAY_MS;
    a[RP_FACT_LOGIN].minutes[0] = (unsigned char)(1 + base);
    a[RP_FACT_LOGIN].minutes[179] = 0x80;
    a[RP_FACT_LOGIN].at = 0;
    a[RP_FACT_LEVEL].number = 40 + base;
    snprintf(a[RP_FACT_QUEST].key, sizeof a[RP_FACT_QUEST].key, "q.1");
    snprintf(a[RP_FACT_INVITE].key, sizeof a[RP_FACT_INVITE].key, "bbbbbbbbbbbbbbbbbbbbbbbb");
    snprintf(a[RP_FACT_COUNTER].key, sizeof a[RP_FACT_COUNTER].key, "kills");
    a[RP_FACT_COUNTER].number = -7 + base;
}

/* The store returns exactly what was put, nothing computed. */
static void assert_same_aggregate(const rp_aggregate_t *got, const rp_aggregate_t *put) {
    cr_assert_eq(got->kind, put->kind);
    cr_assert_str_eq(got->key, put->key);
    cr_assert_eq(got->day, put->day);
    cr_assert_eq(got->number, put->number, "kind %d", (int)put->kind);
    cr_assert_eq(got->at, put->at, "kind %d", (int)put->kind);
    cr_assert_eq(memcmp(got->minutes, put->minutes, RP_LOGIN_DAY_BYTES), 0, "kind %d", (int)put->kind);
}

BACKENDS(events, primitives_record_facts_once_and_keep_aggregates_as_given) {
    open_stores(*backend);
    rp_err_t err;
    prim_t p = {.ops = S.events->ops, .end = RP_TXN_COMMIT};
    prim_aggregates(p.put, 0);
    cr_assert(S.events->ops->transact(S.events, "primitives", prim_body, &p, &err), "%s", err.message);
    cr_assert(p.is_new[0], "a new key is recorded");
    cr_assert_not(p.is_new[1], "the same key again, in the same unit of work, is not");
    cr_assert(p.stored_type_ok && p.stored_at == T0, "and the fact kept under the key comes back");
    for (int k = 0; k < 5; k++) {
        cr_assert_not(p.found[k], "kind %d absent at first", k);
        cr_assert_eq(p.got[k].number, p.put[k].number, "a read that finds nothing leaves the aggregate alone");
    }
    /* a second unit of work reads back what the first wrote, and a smaller level or a negative
     * total is stored as given: folding is not the store's business */
    rp_aggregate_t first[5];
    memcpy(first, p.put, sizeof first);
    prim_aggregates(p.put, -30);
    cr_assert(S.events->ops->transact(S.events, "primitives", prim_body, &p, &err), "%s", err.message);
    cr_assert_not(p.is_new[0], "a key recorded earlier is not new");
    for (int k = 0; k < 5; k++) {
        cr_assert(p.found[k], "kind %d found", k);
        assert_same_aggregate(&p.got[k], &first[k]);
    }
    rp_progress_t prog;
    cr_assert(S.events->ops->progress_load(S.events, USER, T0 / RP_DAY_MS, T0 / RP_DAY_MS, &prog, &err));
    cr_assert_eq(prog.max_level, 10, "the level put last, though lower");
    cr_assert_eq(json_integer_value(json_object_get(prog.counters, "kills")), -37);
    cr_assert_eq(prog.invites, 1);
    cr_assert_eq(prog.nlogins, 1u);
    cr_assert_eq(prog.logins[0].minutes[0], (unsigned char)(1 - 30));
    rp_progress_release(&prog);
}

BACKENDS(events, a_rolled_back_unit_of_work_keeps_nothing) {
    open_stores(*backend);
    rp_err_t err;
    prim_t p = {.ops = S.events->ops, .end = RP_TXN_ROLLBACK};
    prim_aggregates(p.put, 0);
    cr_assert(S.events->ops->transact(S.events, "primitives", prim_body, &p, &err), "a refusal is no error: %s",
              err.message);
    p.end = RP_TXN_COMMIT;
    cr_assert(S.events->ops->transact(S.events, "primitives", prim_body, &p, &err), "%s", err.message);
    cr_assert(p.is_new[0], "the rolled-back fact was not kept");
    for (int k = 0; k < 5; k++)
        cr_assert_not(p.found[k], "nor was aggregate %d", k);
}

/* ---- progress through the ingest body ---- */

static void ingest(const rp_fact_t *facts, size_t n, int64_t want_accepted, int64_t want_dups) {
    rp_err_t err;
    int64_t accepted = -1, dups = -1, reused = 0;
    cr_assert(rp_progress_ingest(S.events, facts, n, "gs", T0 + HOUR, &accepted, &dups, &reused, &err), "%s",
              err.message);
    cr_assert_eq(accepted, want_accepted);
    cr_assert_eq(dups, want_dups);
    cr_assert_eq(reused, -1);
}

/* A key belongs to its player: another player's fact under it is new; the same player's other
 * fact under it refuses the whole report (nothing of it kept); the same fact again is a
 * duplicate, whatever the JSON key order of its value. */
BACKENDS(events, progress_keys_are_scoped_to_their_player) {
    open_stores(*backend);
    rp_err_t err;
    const char *other = "bbbbbbbbbbbbbbbbbbbbbbbb";
    json_t *l7 = json_integer(7), *l8 = json_integer(8), *c1 = json_pack("{s:s, s:i}", "key", "k", "delta", 1),
           *c1b = json_pack("{s:i, s:s}", "delta", 1, "key", "k");
    rp_fact_t first[] = {{USER, RP_FACT_LEVEL, "LEVEL", l7, T0, "shared"},
                         {USER, RP_FACT_COUNTER, "COUNTER", c1, T0, "ctr"}};
    ingest(first, 2, 2, 0);
    rp_fact_t b[] = {{other, RP_FACT_LEVEL, "LEVEL", l8, T0, "shared"}};
    ingest(b, 1, 1, 0);
    rp_fact_t same[] = {{USER, RP_FACT_LEVEL, "LEVEL", l7, T0, "shared"},
                        {USER, RP_FACT_COUNTER, "COUNTER", c1b, T0, "ctr"}};
    ingest(same, 2, 0, 2);
    const rp_fact_t reuses[][2] = {
        {{USER, RP_FACT_LOGIN, "LOGIN", NULL, T0 + 1, "fresh"}, {USER, RP_FACT_LEVEL, "LEVEL", l8, T0, "shared"}},
        {{USER, RP_FACT_LOGIN, "LOGIN", NULL, T0 + 1, "fresh"}, {USER, RP_FACT_LEVEL, "LEVEL", l7, T0 + 1, "shared"}},
        {{USER, RP_FACT_LOGIN, "LOGIN", NULL, T0 + 1, "fresh"}, {USER, RP_FACT_LOGIN, "LOGIN", NULL, T0, "shared"}},
        {{USER, RP_FACT_LOGIN, "LOGIN", NULL, T0 + 1, "fresh"}, {USER, RP_FACT_LOGIN, "LOGIN", NULL, T0 + 2, "fresh"}},
    };
    for (size_t k = 0; k < sizeof reuses / sizeof reuses[0]; k++) {
        int64_t accepted = -1, dups = -1, reused = -1;
        cr_assert(rp_progress_ingest(S.events, reuses[k], 2, "gs", T0 + HOUR, &accepted, &dups, &reused, &err), "%s",
                  err.message);
        cr_assert_eq(reused, 1, "case %zu: the second fact reuses a key", k);
        cr_assert_eq(accepted + dups, 0);
    }
    rp_progress_t p;
    int64_t login_days = -1;
    cr_assert(S.events->ops->progress_summary(S.events, USER, &p, &login_days, &err), "%s", err.message);
    cr_assert_eq(p.max_level, 7, "player A's level stays");
    cr_assert_eq(login_days, 0, "no fact of a refused report was kept");
    rp_progress_release(&p);
    cr_assert(S.events->ops->progress_summary(S.events, other, &p, &login_days, &err), "%s", err.message);
    cr_assert_eq(p.max_level, 8, "player B used A's key for a fact of its own");
    rp_progress_release(&p);
    json_decref(l7);
    json_decref(l8);
    json_decref(c1);
    json_decref(c1b);
}

/* end/start: the window changes only while the stored event lies inside the guard's bounds. */
BACKENDS(events, set_window_writes_only_inside_the_guard) {
    open_stores(*backend);
    rp_err_t err;
    const int64_t now = T0 + 10 * 24 * HOUR, day = 24 * HOUR;
    json_t *d = definition();
    rp_event_audit_t a = audit("CREATE", "REWARD_DEFINITION", json_string_value(json_object_get(d, "id")));
    cr_assert(S.events->ops->def_create(S.events, d, &a, &err));
    window_t active = {now - day, now + day, 0, ""}, upcoming = {now + day, now + 2 * day, 0, ""},
             canceled = {now - day, now + day, now - 1, ""};
    store_window(json_string_value(json_object_get(d, "id")), &active);
    store_window(json_string_value(json_object_get(d, "id")), &upcoming);
    store_window(json_string_value(json_object_get(d, "id")), &canceled);
    rp_event_bounds_t is_active;
    rp_event_bounds_init(&is_active);
    rp_event_bounds_status(&is_active, RP_EVENT_ACTIVE, now);
    bool moved = false;
    a = audit("END", "EVENT", active.id);
    cr_assert(
        S.events->ops->event_set_window(S.events, active.id, active.start, now, now, &is_active, &a, &moved, &err),
        "%s", err.message);
    cr_assert(moved);
    cr_assert(
        S.events->ops->event_set_window(S.events, active.id, active.start, now, now, &is_active, &a, &moved, &err));
    cr_assert_not(moved, "ended: no longer active");
    cr_assert(
        S.events->ops->event_set_window(S.events, upcoming.id, upcoming.start, now, now, &is_active, &a, &moved, &err));
    cr_assert_not(moved, "an upcoming event is not active");
    cr_assert(
        S.events->ops->event_set_window(S.events, canceled.id, canceled.start, now, now, &is_active, &a, &moved, &err));
    cr_assert_not(moved, "a canceled event is not active");
    json_t *doc = NULL;
    cr_assert(S.events->ops->event_get(S.events, active.id, &doc, &err) && doc);
    char iso[RP_ISO_LEN];
    rp_time_iso(now, iso);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "endDate")), iso);
    cr_assert_eq(rp_event_doc_status(doc, now), RP_EVENT_FINISHED);
    json_decref(doc);
    cr_assert(S.events->ops->event_get(S.events, canceled.id, &doc, &err) && doc);
    rp_time_iso(canceled.end, iso);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "endDate")), iso, "a refused write changes nothing");
    json_decref(doc);
    rp_event_bounds_t is_upcoming;
    rp_event_bounds_init(&is_upcoming);
    rp_event_bounds_status(&is_upcoming, RP_EVENT_UPCOMING, now);
    a = audit("START", "EVENT", upcoming.id);
    cr_assert(
        S.events->ops->event_set_window(S.events, upcoming.id, now, upcoming.end, now, &is_upcoming, &a, &moved, &err));
    cr_assert(moved);
    cr_assert(S.events->ops->event_get(S.events, upcoming.id, &doc, &err) && doc);
    cr_assert_eq(rp_event_doc_status(doc, now), RP_EVENT_ACTIVE);
    json_decref(doc);
    cr_assert_eq(audit_entries(active.id), 2u, "create and the one real end");
    cr_assert_eq(audit_entries(upcoming.id), 2u, "create and the start");
    json_decref(d);
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

/* Level: the highest; counter: the sum; quest and invite: the first report wins; logins: one row
 * per UTC day with the minutes' bits; the summary: counts and the latest login day. */
BACKENDS(events, progress_folds_and_summarises) {
    open_stores(*backend);
    rp_err_t err;
    json_t *l7 = json_integer(7), *l5 = json_integer(5), *l9 = json_integer(9), *q = json_string("q.1"),
           *inv = json_string("bbbbbbbbbbbbbbbbbbbbbbbb"), *c5 = json_pack("{s:s, s:i}", "key", "kills", "delta", 5),
           *cm2 = json_pack("{s:s, s:i}", "key", "kills", "delta", -2);
    const int64_t day1_late = T0 + 24 * HOUR - 60000, day2_early = T0 + 24 * HOUR + 30000; /* 23:59, 00:00:30 */
    rp_fact_t first[] = {
        {USER, RP_FACT_LEVEL, "LEVEL", l7, T0, "a1"},
        {USER, RP_FACT_LEVEL, "LEVEL", l5, T0, "a2"},
        {USER, RP_FACT_COUNTER, "COUNTER", c5, T0, "a3"},
        {USER, RP_FACT_COUNTER, "COUNTER", cm2, T0, "a4"},
        {USER, RP_FACT_QUEST, "QUEST_COMPLETE", q, T0 + 1000, "a5"},
        {USER, RP_FACT_QUEST, "QUEST_COMPLETE", q, T0 + 2000, "a6"},
        {USER, RP_FACT_INVITE, "INVITE", inv, T0, "a7"},
        {USER, RP_FACT_INVITE, "INVITE", inv, T0 + 5, "a8"},
        {USER, RP_FACT_LOGIN, "LOGIN", NULL, day1_late, "a9"},
        {USER, RP_FACT_LOGIN, "LOGIN", NULL, day2_early, "a10"},
        {USER, RP_FACT_LOGIN, "LOGIN", NULL, day2_early + 1000, "a11"},
        {USER, RP_FACT_LEVEL, "LEVEL", l7, T0, "a1"},
    };
    ingest(first, sizeof first / sizeof first[0], 11, 1);
    rp_fact_t later[] = {{USER, RP_FACT_LEVEL, "LEVEL", l9, T0, "b1"},
                         {USER, RP_FACT_COUNTER, "COUNTER", c5, T0, "b2"}};
    ingest(later, 2, 2, 0);

    rp_progress_t p;
    const int64_t d1 = T0 / RP_DAY_MS + 1;
    cr_assert(S.events->ops->progress_load(S.events, USER, d1, d1 + 1, &p, &err), "%s", err.message);
    cr_assert_eq(p.max_level, 9);
    cr_assert_eq(json_integer_value(json_object_get(p.counters, "kills")), 8);
    cr_assert_eq(p.invites, 1);
    cr_assert_str_eq(json_string_value(json_object_get(p.quests, "q.1")), "2026-01-01T00:00:01.000Z",
                     "the first completion stays");
    cr_assert_eq(p.nlogins, 1u, "only the day inside the window");
    cr_assert_eq(p.logins[0].utc_day, d1);
    rp_login_day_t want = {d1, {0}};
    rp_login_mark(want.minutes, day2_early);
    cr_assert_eq(memcmp(p.logins[0].minutes, want.minutes, RP_LOGIN_DAY_BYTES), 0, "two logins, one minute");
    rp_progress_release(&p);

    int64_t login_days = -1;
    cr_assert(S.events->ops->progress_summary(S.events, USER, &p, &login_days, &err), "%s", err.message);
    cr_assert_eq(login_days, 2, "logins on two UTC days");
    cr_assert_eq(p.max_level, 9);
    cr_assert_eq(p.invites, 1);
    cr_assert_eq(json_object_size(p.quests), 1u);
    cr_assert_eq(json_integer_value(json_object_get(p.counters, "kills")), 8);
    cr_assert_eq(p.nlogins, 1u, "the latest login day only");
    cr_assert_eq(rp_login_last(&p.logins[0]), T0 + 24 * HOUR, "the minute of the last login");
    rp_progress_release(&p);

    cr_assert(S.events->ops->progress_summary(S.events, "cccccccccccccccccccccccc", &p, &login_days, &err));
    cr_assert_eq(login_days, 0);
    cr_assert_eq(p.nlogins, 0u);
    cr_assert_eq(p.max_level, 0);
    cr_assert_eq(json_object_size(p.quests), 0u);
    rp_progress_release(&p);
    json_decref(l7);
    json_decref(l5);
    json_decref(l9);
    json_decref(q);
    json_decref(inv);
    json_decref(c5);
    json_decref(cm2);
}
