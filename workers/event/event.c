/* event.c - event and reward-definition documents (see event.h). */
#include "event.h"

#include <stdio.h>
#include <string.h>

#include "details.h"
#include "ids.h"
#include "timeutil.h"

static bool string_len(const json_t *v, size_t lo, size_t hi) {
    return json_is_string(v) && json_string_length(v) >= lo && json_string_length(v) <= hi;
}

static const char *const def_types[] = {"CURRENCY", "ITEM", "BUFF", "COUPON", "POINT", NULL};

static bool one_of(const char *s, const char *const *set) {
    for (size_t i = 0; s && set[i]; i++)
        if (strcmp(s, set[i]) == 0) return true;
    return false;
}

bool rp_definition_validate(const json_t *body, bool partial, json_t *details, json_t **out) {
    static const char *const allowed[] = {"name", "type", "value", "description", "isActive", NULL};
    size_t before = json_array_size(details);
    if (out) *out = NULL;
    rp_details_unknown(body, allowed, "", details);
    json_t *name = json_object_get(body, "name"), *type = json_object_get(body, "type"),
           *value = json_object_get(body, "value"), *desc = json_object_get(body, "description"),
           *active = json_object_get(body, "isActive");
    if (partial && json_object_size(body) == 0) rp_details_add(details, "", "at least one field is required");
    if (name ? !string_len(name, 1, 100) : !partial)
        rp_details_add(details, "/name", "must be a string of 1 to 100 characters");
    if (type ? !one_of(json_string_value(type), def_types) : !partial)
        rp_details_add(details, "/type", "must be one of CURRENCY, ITEM, BUFF, COUPON, POINT");
    if (!value && !partial) rp_details_add(details, "/value", "is required");
    if (value) {
        char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text || strlen(text) > 4096) rp_details_add(details, "/value", "must encode to at most 4096 bytes");
        free(text);
    }
    if (desc && !string_len(desc, 0, 1000))
        rp_details_add(details, "/description", "must be a string of at most 1000 characters");
    if (active && !json_is_boolean(active)) rp_details_add(details, "/isActive", "must be a boolean");
    if (json_array_size(details) != before) return false;
    if (out && !partial)
        *out = json_pack("{s:O, s:O, s:O, s:o, s:b}", "name", name, "type", type, "value", value, "description",
                         desc ? json_incref(desc) : json_string(""), "isActive", active ? json_is_true(active) : 1);
    return true;
}

static bool parse_time(const json_t *v, int64_t *ms) {
    return json_is_string(v) && rp_time_parse_iso(json_string_value(v), json_string_length(v), ms);
}

static bool int_in(const json_t *v, int64_t lo, int64_t hi) {
    return json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi;
}

static json_t *rewards_validate(const json_t *rewards, json_t *details) {
    static const char *const allowed[] = {"rewardDefinitionId", "quantity", "stock", "customData", NULL};
    size_t i;
    json_t *r, *out = json_array();
    if (!json_is_array(rewards) || json_array_size(rewards) < 1 || json_array_size(rewards) > RP_MAX_EVENT_REWARDS) {
        rp_details_add(details, "/rewards", "must be an array of 1 to 20 rewards");
        return out;
    }
    json_array_foreach(rewards, i, r) {
        char p[64];
        if (!json_is_object(r)) {
            snprintf(p, sizeof p, "/rewards/%zu", i);
            rp_details_add(details, p, "must be an object");
            continue;
        }
        snprintf(p, sizeof p, "/rewards/%zu", i);
        rp_details_unknown(r, allowed, p, details);
        json_t *def = json_object_get(r, "rewardDefinitionId"), *qty = json_object_get(r, "quantity"),
               *stock = json_object_get(r, "stock"), *custom = json_object_get(r, "customData");
        if (!json_is_string(def) || !rp_oid_valid(json_string_value(def), json_string_length(def))) {
            snprintf(p, sizeof p, "/rewards/%zu/rewardDefinitionId", i);
            rp_details_add(details, p, "must be a 24-character hex id");
        }
        if (!int_in(qty, 1, 1000000)) {
            snprintf(p, sizeof p, "/rewards/%zu/quantity", i);
            rp_details_add(details, p, "must be an integer from 1 to 1000000");
        }
        if (stock && !json_is_null(stock) && !int_in(stock, 0, 1000000000)) {
            snprintf(p, sizeof p, "/rewards/%zu/stock", i);
            rp_details_add(details, p, "must be null (unlimited) or an integer from 0 to 1000000000");
        }
        json_array_append_new(out, json_pack("{s:O, s:O, s:O, s:O}", "rewardDefinitionId", def ? def : json_null(),
                                             "quantity", qty ? qty : json_null(), "stock", stock ? stock : json_null(),
                                             "customData", custom ? custom : json_null()));
    }
    return out;
}

bool rp_event_validate(const json_t *body, json_t *details, json_t **out) {
    static const char *const allowed[] = {"title",      "description",      "startDate",        "endDate",
                                          "conditions", "conditionLogic",   "rewards",          "claimPeriod",
                                          "maxClaims",  "requiresApproval", "dayOffsetMinutes", NULL};
    size_t before = json_array_size(details);
    *out = NULL;
    rp_details_unknown(body, allowed, "", details);
    json_t *title = json_object_get(body, "title"), *desc = json_object_get(body, "description"),
           *start = json_object_get(body, "startDate"), *end = json_object_get(body, "endDate"),
           *conds = json_object_get(body, "conditions"), *logic = json_object_get(body, "conditionLogic"),
           *period = json_object_get(body, "claimPeriod"), *max = json_object_get(body, "maxClaims"),
           *approval = json_object_get(body, "requiresApproval"), *offset = json_object_get(body, "dayOffsetMinutes");
    int64_t s = 0, e = 0;
    if (!string_len(title, 1, 200)) rp_details_add(details, "/title", "must be a string of 1 to 200 characters");
    if (desc && !string_len(desc, 0, 5000))
        rp_details_add(details, "/description", "must be a string of at most 5000 characters");
    bool times = true;
    if (!parse_time(start, &s))
        rp_details_add(details, "/startDate", "must be an ISO-8601 date-time with a zone"), times = false;
    if (!parse_time(end, &e))
        rp_details_add(details, "/endDate", "must be an ISO-8601 date-time with a zone"), times = false;
    if (times && e <= s) rp_details_add(details, "/endDate", "must be after startDate");
    if (times && e - s > 3660LL * 86400000) rp_details_add(details, "/endDate", "an event lasts at most 10 years");
    rp_condition_t parsed[RP_MAX_CONDITIONS];
    size_t n;
    if (conds) rp_conditions_parse(conds, parsed, &n, details);
    static const char *const logics[] = {"ALL", "ANY", NULL}, *const periods[] = {"ONCE", "DAILY", "WEEKLY", NULL};
    if (logic && !one_of(json_string_value(logic), logics))
        rp_details_add(details, "/conditionLogic", "must be ALL or ANY");
    if (period && !one_of(json_string_value(period), periods))
        rp_details_add(details, "/claimPeriod", "must be ONCE, DAILY or WEEKLY");
    if (max && !json_is_null(max) && !int_in(max, 1, 1000000))
        rp_details_add(details, "/maxClaims", "must be null (unlimited) or an integer from 1 to 1000000");
    if (approval && !json_is_boolean(approval)) rp_details_add(details, "/requiresApproval", "must be a boolean");
    if (offset && !int_in(offset, -720, 840))
        rp_details_add(details, "/dayOffsetMinutes", "must be an integer from -720 to 840");
    json_t *rewards = rewards_validate(json_object_get(body, "rewards"), details);
    if (json_array_size(details) != before) {
        json_decref(rewards);
        return false;
    }
    char sbuf[RP_ISO_LEN], ebuf[RP_ISO_LEN];
    rp_time_iso(s, sbuf);
    rp_time_iso(e, ebuf);
    *out = json_pack("{s:O, s:o, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:b, s:I}", "title", title, "description",
                     desc ? json_incref(desc) : json_string(""), "startDate", sbuf, "endDate", ebuf, "conditions",
                     conds ? json_incref(conds) : json_array(), "conditionLogic",
                     logic ? json_incref(logic) : json_string("ALL"), "rewards", rewards, "claimPeriod",
                     period ? json_incref(period) : json_string("ONCE"), "maxClaims",
                     max ? json_incref(max) : json_null(), "requiresApproval", approval ? json_is_true(approval) : 0,
                     "dayOffsetMinutes", (json_int_t)(offset ? json_integer_value(offset) : 540));
    return true;
}

static const char *const editable[] = {"title",      "description",      "startDate",        "endDate",
                                       "conditions", "conditionLogic",   "rewards",          "claimPeriod",
                                       "maxClaims",  "requiresApproval", "dayOffsetMinutes", NULL};

json_t *rp_event_body_of(const json_t *stored) {
    json_t *body = json_object();
    for (size_t i = 0; editable[i]; i++) {
        json_t *v = json_object_get(stored, editable[i]);
        if (!v) continue;
        if (strcmp(editable[i], "rewards") == 0) {
            size_t k;
            json_t *r, *arr = json_array();
            json_array_foreach(v, k, r) json_array_append_new(
                arr, json_pack("{s:O, s:O, s:O, s:O}", "rewardDefinitionId", json_object_get(r, "rewardDefinitionId"),
                               "quantity", json_object_get(r, "quantity"), "stock", json_object_get(r, "stock"),
                               "customData", json_object_get(r, "customData")));
            json_object_set_new(body, "rewards", arr);
        } else {
            json_object_set(body, editable[i], v);
        }
    }
    return body;
}

json_t *rp_event_merge_patch(const json_t *stored, const json_t *patch, json_t *details) {
    json_t *body = rp_event_body_of(stored);
    if (json_object_size(patch) == 0) rp_details_add(details, "", "at least one field is required");
    rp_details_unknown(patch, editable, "", details);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v) if (one_of(k, editable)) json_object_set(body, k, v);
    return body;
}

rp_event_status_t rp_event_doc_status(const json_t *doc, int64_t now_ms) {
    int64_t s = 0, e = 0, c = 0;
    json_t *canceled = json_object_get(doc, "canceledAt");
    parse_time(json_object_get(doc, "startDate"), &s);
    parse_time(json_object_get(doc, "endDate"), &e);
    if (canceled && !json_is_null(canceled) && !parse_time(canceled, &c)) c = 1;
    return rp_event_status_at(s, e, c, now_ms);
}

int64_t rp_event_doc_next_change(const json_t *doc, int64_t now_ms) {
    static const char *const bounds[] = {"startDate", "endDate"};
    int64_t next = INT64_MAX, t;
    for (int k = 0; k < 2; k++)
        if (parse_time(json_object_get(doc, bounds[k]), &t) && t > now_ms && t < next) next = t;
    return next;
}
