/* progress.c - folding facts into aggregates, and the evaluation view (see progress.h). */
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

bool rp_counter_key_valid(const char *s, size_t len) {
    if (!s || len < 1 || len > 64) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == ':' || c == '-'))
            return false;
    }
    return true;
}

bool rp_fact_same(const rp_fact_t *f, const char *type_name, const json_t *value, int64_t occurred_at) {
    bool none = !f->value || json_is_null(f->value), stored_none = !value || json_is_null(value);
    return strcmp(f->type_name ? f->type_name : "", type_name ? type_name : "") == 0 && f->occurred_at == occurred_at &&
           (none || stored_none ? none == stored_none : json_equal(f->value, value));
}

void rp_progress_target(const rp_fact_t *f, rp_aggregate_t *a) {
    memset(a, 0, sizeof *a);
    a->kind = f->type;
    const char *key = NULL;
    switch (f->type) {
    case RP_FACT_LOGIN: a->day = rp_login_utc_day(f->occurred_at); break;
    case RP_FACT_LEVEL: break;
    case RP_FACT_QUEST:
    case RP_FACT_INVITE: key = json_string_value(f->value); break;
    case RP_FACT_COUNTER: key = json_string_value(json_object_get(f->value, "key")); break;
    }
    snprintf(a->key, sizeof a->key, "%s", key ? key : "");
}

bool rp_progress_fold(rp_aggregate_t *a, bool found, const rp_fact_t *f, int64_t now) {
    switch (f->type) {
    case RP_FACT_LOGIN: rp_login_mark(a->minutes, f->occurred_at); return true;
    case RP_FACT_LEVEL: {
        int64_t level = json_integer_value(f->value);
        if (!found || level > a->number) a->number = level;
        a->at = now;
        return true;
    }
    case RP_FACT_COUNTER:
        a->number = (found ? a->number : 0) + json_integer_value(json_object_get(f->value, "delta"));
        a->at = now;
        return true;
    case RP_FACT_QUEST:
    case RP_FACT_INVITE:
        if (found) return false; /* the first report wins */
        a->at = f->occurred_at;
        return true;
    }
    return false;
}

void rp_progress_init(rp_progress_t *p) {
    memset(p, 0, sizeof *p);
    p->quests = json_object();
    p->counters = json_object();
}

void rp_progress_add_login(rp_progress_t *p, int64_t utc_day, const unsigned char minutes[RP_LOGIN_DAY_BYTES]) {
    if (p->nlogins % 16 == 0) p->logins = rp_realloc(p->logins, (p->nlogins + 16) * sizeof *p->logins);
    rp_login_day_t *d = &p->logins[p->nlogins++];
    d->utc_day = utc_day;
    memcpy(d->minutes, minutes, RP_LOGIN_DAY_BYTES);
}

void rp_progress_release(rp_progress_t *p) {
    if (!p) return;
    json_decref(p->quests);
    json_decref(p->counters);
    free(p->logins);
    memset(p, 0, sizeof *p);
}
