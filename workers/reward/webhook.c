/* webhook.c - webhook records and their JSON (see webhook.h). */
#include "webhook.h"

#include <stdlib.h>
#include <string.h>

#include "json_util.h"
#include "timeutil.h"

static const char *const type_names[] = {"reward.granted",  "reward.revoked", "reward.awaiting_review",
                                         "batch.completed", "event.canceled", "event.ended",
                                         "webhook.ping"};
#define NTYPES (sizeof type_names / sizeof type_names[0])

unsigned rp_webhook_type_parse(const char *s) {
    for (size_t i = 0; s && i < NTYPES; i++)
        if (strcmp(s, type_names[i]) == 0) return 1u << i;
    return 0;
}

const char *rp_webhook_type_name(unsigned t) {
    for (size_t i = 0; i < NTYPES; i++)
        if (t == 1u << i) return type_names[i];
    return NULL;
}

json_t *rp_webhook_types_to_json(unsigned mask) {
    json_t *a = json_array();
    for (size_t i = 0; i < NTYPES; i++)
        if (mask & (1u << i)) json_array_append_new(a, json_string(type_names[i]));
    return a;
}

json_t *rp_webhook_endpoint_to_json(const rp_webhook_endpoint_t *e, bool with_secret) {
    json_t *o = json_pack("{s:s, s:s, s:o, s:b, s:o, s:o, s:o, s:o, s:o, s:o}", "id", e->id, "url", e->url, "types",
                          rp_webhook_types_to_json(e->types), "enabled", e->enabled, "createdBy",
                          rp_json_str_or_null(e->created_by), "createdAt", rp_json_time_or_null(e->created_at),
                          "updatedAt", rp_json_time_or_null(e->updated_at), "failingSince",
                          rp_json_time_or_null(e->failing_since), "disabledAt", rp_json_time_or_null(e->disabled_at),
                          "disabledReason", rp_json_str_or_null(e->disabled_reason));
    if (o && with_secret) json_object_set_new(o, "secret", json_string(e->secret));
    return o;
}

static const char *const status_names[] = {"PENDING", "DELIVERED", "FAILED"};

const char *rp_delivery_status_name(rp_delivery_status_t s) {
    return (unsigned)s < 3 ? status_names[s] : "PENDING";
}

bool rp_delivery_status_parse(const char *s, rp_delivery_status_t *out) {
    for (int i = 0; s && i < 3; i++)
        if (strcmp(s, status_names[i]) == 0) {
            *out = (rp_delivery_status_t)i;
            return true;
        }
    return false;
}

json_t *rp_webhook_attempt_to_json(const rp_webhook_attempt_t *a) {
    /* an answer that is not UTF-8 is shown as null rather than lost with the record */
    json_t *excerpt = a->excerpt[0] ? json_string(a->excerpt) : NULL;
    return json_pack("{s:o, s:o, s:o, s:I, s:o}", "at", rp_json_time_or_null(a->at), "status",
                     a->http_status ? json_integer(a->http_status) : json_null(), "error",
                     rp_json_str_or_null(a->error), "latencyMs", (json_int_t)a->latency_ms, "responseExcerpt",
                     excerpt ? excerpt : json_null());
}

void rp_webhook_delivery_clear(rp_webhook_delivery_t *d) {
    if (!d) return;
    free(d->body);
    json_decref(d->log);
    memset(d, 0, sizeof *d);
}

json_t *rp_webhook_delivery_to_json(const rp_webhook_delivery_t *d) {
    json_t *payload = d->body ? json_loads(d->body, 0, NULL) : NULL;
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:o, s:o, s:o}", "id", d->id, "endpointId",
                     d->endpoint_id, "webhookId", d->webhook_id, "type", d->type, "status",
                     rp_delivery_status_name(d->status), "attemptCount", (json_int_t)d->attempts, "attempts",
                     d->log ? json_incref(d->log) : json_array(), "nextAttemptAt",
                     rp_json_time_or_null(d->status == RP_DELIVERY_PENDING ? d->next_at : 0), "createdAt",
                     rp_json_time_or_null(d->created_at), "settledAt", rp_json_time_or_null(d->settled_at), "payload",
                     payload ? payload : json_null());
}

char *rp_webhook_body(const char *type, int64_t at, const json_t *data) {
    char iso[RP_ISO_LEN];
    rp_time_iso(at, iso);
    json_t *o = json_pack("{s:s, s:s, s:O}", "type", type, "timestamp", iso, "data", data ? data : json_null());
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}
