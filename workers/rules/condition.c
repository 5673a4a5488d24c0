/* condition.c - condition validation and evaluation (see condition.h). */
#include "condition.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {"LOGIN_STREAK",   "LOGIN_DAYS",     "LEVEL_ACHIEVE",
                                         "QUEST_COMPLETE", "INVITE_FRIENDS", "COUNTER"};

static void add(json_t *details, size_t i, const char *member, const char *reason) {
    char ptr[128];
    snprintf(ptr, sizeof ptr, "/conditions/%zu%.80s", i, member);
    json_array_append_new(details, json_pack("{s:s, s:s}", "field", ptr, "reason", reason));
}

static bool positive_int(const json_t *v, int64_t max, int64_t *out) {
    if (!json_is_integer(v)) return false;
    *out = json_integer_value(v);
    return *out >= 1 && *out <= max;
}

bool rp_conditions_parse(const json_t *conditions, rp_condition_t out[RP_MAX_CONDITIONS], size_t *n, json_t *details) {
    size_t before = json_array_size(details), i;
    json_t *c;
    *n = 0;
    if (!json_is_array(conditions)) {
        json_array_append_new(details, json_pack("{s:s, s:s}", "field", "/conditions", "reason", "must be an array"));
        return false;
    }
    if (json_array_size(conditions) > RP_MAX_CONDITIONS) {
        json_array_append_new(details,
                              json_pack("{s:s, s:s}", "field", "/conditions", "reason", "at most 20 conditions"));
        return false;
    }
    json_array_foreach(conditions, i, c) {
        rp_condition_t *cond = &out[*n];
        memset(cond, 0, sizeof *cond);
        if (!json_is_object(c)) {
            add(details, i, "", "must be an object {type, value, description}");
            continue;
        }
        const char *k;
        json_t *v;
        json_object_foreach(c, k, v) {
            if (strcmp(k, "type") != 0 && strcmp(k, "value") != 0 && strcmp(k, "description") != 0) {
                char m[80];
                snprintf(m, sizeof m, "/%.60s", k);
                add(details, i, m, "unknown field");
            }
        }
        json_t *desc = json_object_get(c, "description");
        if (desc && !(json_is_string(desc) && json_string_length(desc) <= 500))
            add(details, i, "/description", "must be a string of at most 500 characters");
        const char *type = json_string_value(json_object_get(c, "type"));
        int t = -1;
        for (int k2 = 0; type && k2 < 6; k2++)
            if (strcmp(type, type_names[k2]) == 0) t = k2;
        if (t < 0) {
            add(details, i, "/type",
                "must be one of LOGIN_STREAK, LOGIN_DAYS, LEVEL_ACHIEVE, QUEST_COMPLETE, INVITE_FRIENDS, COUNTER");
            continue;
        }
        cond->type = (rp_cond_type_t)t;
        cond->source = c;
        json_t *val = json_object_get(c, "value");
        switch (cond->type) {
        case RP_COND_LOGIN_STREAK:
        case RP_COND_LOGIN_DAYS:
            if (!positive_int(val, 3660, &cond->amount))
                add(details, i, "/value", "must be an integer number of days from 1 to 3660");
            break;
        case RP_COND_LEVEL_ACHIEVE:
            if (!positive_int(val, 100000, &cond->amount))
                add(details, i, "/value", "must be an integer level from 1 to 100000");
            break;
        case RP_COND_INVITE_FRIENDS:
            if (!positive_int(val, 100000, &cond->amount))
                add(details, i, "/value", "must be an integer count from 1 to 100000");
            break;
        case RP_COND_QUEST_COMPLETE:
            if (!json_is_string(val) || json_string_length(val) < 1 || json_string_length(val) > 128)
                add(details, i, "/value", "must be a quest id string of 1 to 128 characters");
            else
                snprintf(cond->text, sizeof cond->text, "%s", json_string_value(val));
            break;
        case RP_COND_COUNTER: {
            json_t *key = json_object_get(val, "key"), *min = json_object_get(val, "min");
            if (!json_is_object(val) || json_object_size(val) != 2 || !json_is_string(key) ||
                !rp_counter_key_valid(json_string_value(key), json_string_length(key)) || !json_is_integer(min) ||
                json_integer_value(min) < -1000000000000LL || json_integer_value(min) > 1000000000000LL) {
                add(details, i, "/value", "must be {key: 1-64 chars of [A-Za-z0-9_.:-], min: integer}");
            } else {
                snprintf(cond->text, sizeof cond->text, "%s", json_string_value(key));
                cond->amount = json_integer_value(min);
            }
            break;
        }
        }
        (*n)++;
    }
    return json_array_size(details) == before;
}

bool rp_conditions_evaluate(const rp_condition_t *c, size_t n, rp_logic_t logic, const rp_progress_t *p,
                            int64_t start_ms, int64_t end_ms, int day_offset_minutes, json_t **unmet) {
    int64_t days = -1, streak = -1;
    size_t met = 0;
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        bool ok = false;
        json_t *required = json_incref(json_object_get(c[i].source, "value")), *current = NULL;
        switch (c[i].type) {
        case RP_COND_LOGIN_STREAK:
        case RP_COND_LOGIN_DAYS:
            if (days < 0) rp_login_count(p->logins, p->nlogins, start_ms, end_ms, day_offset_minutes, &days, &streak);
            current = json_integer(c[i].type == RP_COND_LOGIN_STREAK ? streak : days);
            ok = json_integer_value(current) >= c[i].amount;
            break;
        case RP_COND_LEVEL_ACHIEVE:
            current = json_integer(p->max_level);
            ok = p->max_level >= c[i].amount;
            break;
        case RP_COND_QUEST_COMPLETE:
            ok = json_object_get(p->quests, c[i].text) != NULL;
            current = json_boolean(ok);
            break;
        case RP_COND_INVITE_FRIENDS:
            current = json_integer(p->invites);
            ok = p->invites >= c[i].amount;
            break;
        case RP_COND_COUNTER: {
            int64_t total = json_integer_value(json_object_get(p->counters, c[i].text));
            current = json_integer(total);
            ok = total >= c[i].amount;
            break;
        }
        }
        if (ok) {
            met++;
            json_decref(required);
            json_decref(current);
            continue;
        }
        json_t *desc = json_object_get(c[i].source, "description");
        json_array_append_new(list, json_pack("{s:s, s:o, s:o, s:O}", "type", type_names[c[i].type], "required",
                                              required ? required : json_null(), "current", current, "description",
                                              desc ? desc : json_null()));
    }
    bool result = n == 0 || (logic == RP_LOGIC_ALL ? met == n : met > 0);
    if (unmet && !result)
        *unmet = list;
    else
        json_decref(list);
    if (unmet && result) *unmet = NULL;
    return result;
}
