/* event_rules.c - event status, status bounds and the grant's view of an event (see
 * event_rules.h). */
#include "event_rules.h"

#include <stdio.h>
#include <string.h>

#include "names.h"
#include "timeutil.h"

static const char *const status_names[] = {"UPCOMING", "ACTIVE", "FINISHED", "CANCELED"};

rp_event_status_t rp_event_status_at(int64_t start, int64_t end, int64_t canceled_at, int64_t now) {
    if (canceled_at) return RP_EVENT_CANCELED;
    if (now < start) return RP_EVENT_UPCOMING;
    if (now < end) return RP_EVENT_ACTIVE;
    return RP_EVENT_FINISHED;
}

const char *rp_event_status_name(rp_event_status_t s) {
    return rp_name_of(status_names, 4, (int)s);
}

bool rp_event_status_parse(const char *s, rp_event_status_t *out) {
    int v;
    if (!rp_name_parse(status_names, 4, s, &v)) return false;
    *out = (rp_event_status_t)v;
    return true;
}

void rp_event_bounds_init(rp_event_bounds_t *b) {
    *b = (rp_event_bounds_t){-1, INT64_MAX, INT64_MIN, INT64_MIN, INT64_MAX, false};
}

static void need_canceled(rp_event_bounds_t *b, int canceled) {
    if (b->canceled >= 0 && b->canceled != canceled) b->empty = true;
    b->canceled = canceled;
}

static int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b) {
    return a > b ? a : b;
}

/* Mirrors rp_event_status_at: UPCOMING now < start, ACTIVE start <= now < end, FINISHED end <= now. */
void rp_event_bounds_status(rp_event_bounds_t *b, rp_event_status_t s, int64_t now) {
    switch (s) {
    case RP_EVENT_CANCELED: need_canceled(b, 1); return;
    case RP_EVENT_UPCOMING: b->start_gt = max64(b->start_gt, now); break;
    case RP_EVENT_ACTIVE:
        b->start_le = min64(b->start_le, now);
        b->end_gt = max64(b->end_gt, now);
        break;
    case RP_EVENT_FINISHED: b->end_le = min64(b->end_le, now); break;
    }
    need_canceled(b, 0);
}

void rp_event_bounds_open(rp_event_bounds_t *b, int64_t now) {
    b->end_gt = max64(b->end_gt, now); /* not yet finished: upcoming or active */
    need_canceled(b, 0);
}

void rp_event_bounds_active_at(rp_event_bounds_t *b, int64_t t) {
    b->start_le = min64(b->start_le, t);
    b->end_gt = max64(b->end_gt, t);
    need_canceled(b, 0);
}

bool rp_event_bounds_match(const rp_event_bounds_t *b, int64_t start, int64_t end, int64_t canceled_at) {
    if (b->empty) return false;
    if (b->canceled >= 0 && (canceled_at != 0) != (b->canceled == 1)) return false;
    return start <= b->start_le && start > b->start_gt && end > b->end_gt && end <= b->end_le;
}

static bool parse_time(const json_t *v, int64_t *ms) {
    *ms = 0;
    return json_is_string(v) && rp_time_parse_iso(json_string_value(v), json_string_length(v), ms);
}

static bool view_rewards(const json_t *rewards, rp_event_view_t *v) {
    size_t i;
    json_t *rw;
    if (!json_is_array(rewards) || json_array_size(rewards) > RP_MAX_EVENT_REWARDS) return false;
    json_array_foreach(rewards, i, rw) {
        rp_event_reward_t *r = &v->rewards[v->nrewards++];
        const char *def = json_string_value(json_object_get(rw, "rewardDefinitionId"));
        json_t *index = json_object_get(rw, "rewardIndex");
        r->index = json_is_integer(index) ? (int)json_integer_value(index) : (int)i;
        snprintf(r->definition_id, sizeof r->definition_id, "%s", def ? def : "");
        r->name = json_string_value(json_object_get(rw, "name"));
        r->type = json_string_value(json_object_get(rw, "type"));
        r->value = json_object_get(rw, "value");
        r->quantity = json_integer_value(json_object_get(rw, "quantity"));
        if (!def || r->quantity < 1) return false;
    }
    return true;
}

bool rp_event_view(const json_t *doc, rp_event_view_t *v) {
    memset(v, 0, sizeof *v);
    json_t *details = json_array();
    const char *id = json_string_value(json_object_get(doc, "id"));
    json_t *canceled = json_object_get(doc, "canceledAt");
    snprintf(v->id, sizeof v->id, "%s", id ? id : "");
    bool ok = id && parse_time(json_object_get(doc, "startDate"), &v->start_ms) &&
              parse_time(json_object_get(doc, "endDate"), &v->end_ms) &&
              (!canceled || json_is_null(canceled) || parse_time(canceled, &v->canceled_at)) &&
              rp_period_parse(json_string_value(json_object_get(doc, "claimPeriod")), &v->period) &&
              rp_conditions_parse(json_object_get(doc, "conditions"), v->conditions, &v->nconditions, details) &&
              view_rewards(json_object_get(doc, "rewards"), v);
    json_decref(details);
    if (!parse_time(json_object_get(doc, "updatedAt"), &v->updated_at) || v->updated_at < 0) v->updated_at = 0;
    const char *logic = json_string_value(json_object_get(doc, "conditionLogic"));
    v->logic = logic && strcmp(logic, "ANY") == 0 ? RP_LOGIC_ANY : RP_LOGIC_ALL;
    json_t *max = json_object_get(doc, "maxClaims");
    v->max_claims = json_is_integer(max) ? json_integer_value(max) : 0;
    v->requires_approval = json_is_true(json_object_get(doc, "requiresApproval"));
    v->day_offset_minutes = (int)json_integer_value(json_object_get(doc, "dayOffsetMinutes"));
    return ok;
}

rp_event_status_t rp_event_view_status(const rp_event_view_t *v, int64_t now) {
    return rp_event_status_at(v->start_ms, v->end_ms, v->canceled_at, now);
}
