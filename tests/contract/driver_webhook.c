/* driver_webhook.c - the webhook store's scenarios of the MongoDB wire-contract tests
 * (test_mongo_contract_webhooks.py): each runs one operation of rp_webhook_store_mongo_open's
 * store with the fixed ids of mongo_driver.h and prints its outcome. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mongo_driver.h"
#include "reward/webhook_store.h"

#define ENDPOINT_ID "5f00000000000000000000f1"
#define DELIVERY_ID "5f00000000000000000000f2"
#define OWNER "sender-1"

/* The fan-out's plan for the contract: one delivery per endpoint subscribed to the message's
 * type, ids made from the message's seq so the test can name them. */
static void plan(void *ctx, const rp_outbox_message_t *m, const rp_webhook_endpoint_t *eps, size_t n,
                 rp_webhook_delivery_t *out, size_t *nout) {
    (void)ctx;
    *nout = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(eps[i].types & rp_webhook_type_parse(m->routing_key))) continue;
        rp_webhook_delivery_t *d = &out[(*nout)++];
        memset(d, 0, sizeof *d);
        snprintf(d->id, sizeof d->id, "5f00000000000000000000%02x", (unsigned)(m->seq & 0xff));
        memcpy(d->endpoint_id, eps[i].id, sizeof d->endpoint_id);
        snprintf(d->webhook_id, sizeof d->webhook_id, "%s", m->message_id);
        snprintf(d->type, sizeof d->type, "%s", m->routing_key);
        d->body = rp_webhook_body(m->routing_key, m->created_at, m->payload);
        d->created_at = d->next_at = NOW_MS;
    }
}

static void sample_endpoint(rp_webhook_endpoint_t *e) {
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, ENDPOINT_ID);
    snprintf(e->url, sizeof e->url, "https://hooks.example/rp");
    snprintf(e->secret, sizeof e->secret, "whsec_c2VjcmV0");
    snprintf(e->created_by, sizeof e->created_by, OPERATOR_ID);
    e->types = RP_HOOK_REWARD_GRANTED | RP_HOOK_EVENT_ENDED;
    e->enabled = true;
    e->created_at = e->updated_at = NOW_MS;
}

static json_t *deliveries_json(bool ok, const rp_err_t *err, rp_webhook_delivery_t *items, size_t n, bool more) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, rp_webhook_delivery_to_json(&items[i]));
        rp_webhook_delivery_clear(&items[i]);
    }
    free(items);
    return page(ok, err, ok ? a : (json_decref(a), NULL), more);
}

static json_t *run_webhook(rp_webhook_store_t *s, const char *scenario) {
    rp_err_t err;
    rp_webhook_endpoint_t e;
    bool ok, found = false, more = false;
    size_t n = 0;
    rp_err_clear(&err);
    sample_endpoint(&e);
    rp_audit_entry_t a = {OPERATOR_ID, "op", "webhook.update", "webhook", ENDPOINT_ID, NULL, NULL, NOW_MS};
    if (strcmp(scenario, "hook-open") == 0) return result(true, &err, NULL);
    if (strcmp(scenario, "hook-fanout") == 0) {
        size_t messages = 0, made = 0;
        ok = s->ops->fanout(s, 50, plan, NULL, &messages, &made, &err);
        return result(ok, &err,
                      ok ? json_pack("{s:I, s:I}", "messages", (json_int_t)messages, "made", (json_int_t)made) : NULL);
    }
    if (strcmp(scenario, "hook-notice") == 0) {
        size_t things = 0, made = 0;
        ok = s->ops->notice(s, NOW_MS, 50, plan, NULL, &things, &made, &err);
        return result(ok, &err,
                      ok ? json_pack("{s:I, s:I}", "things", (json_int_t)things, "made", (json_int_t)made) : NULL);
    }
    if (strcmp(scenario, "hook-endpoint-insert") == 0) {
        a.action = "webhook.create";
        return result(s->ops->endpoint_insert(s, &e, &a, &err), &err, NULL);
    }
    if (strcmp(scenario, "hook-endpoint-update") == 0) {
        e.enabled = false;
        e.updated_at = NOW_MS + 1;
        snprintf(e.disabled_reason, sizeof e.disabled_reason, "FAILING");
        e.disabled_at = NOW_MS + 1;
        ok = s->ops->endpoint_update(s, &e, NOW_MS, &a, &found, &err);
        return result(ok, &err, ok ? json_pack("{s:b}", "found", found) : NULL);
    }
    if (strcmp(scenario, "hook-endpoint-delete") == 0) {
        a.action = "webhook.delete";
        ok = s->ops->endpoint_delete(s, ENDPOINT_ID, &a, &found, &err);
        return result(ok, &err, ok ? json_pack("{s:b}", "found", found) : NULL);
    }
    if (strcmp(scenario, "hook-endpoint-get") == 0) {
        ok = s->ops->endpoint_get(s, ENDPOINT_ID, &e, &found, &err);
        return result(ok, &err,
                      ok ? json_pack("{s:o}", "endpoint", found ? rp_webhook_endpoint_to_json(&e, false) : json_null())
                         : NULL);
    }
    if (strcmp(scenario, "hook-lease") == 0) {
        rp_webhook_delivery_t *items = NULL;
        ok = s->ops->delivery_lease(s, OWNER, NOW_MS, NOW_MS + 20000, 4, &items, &n, &err);
        return deliveries_json(ok, &err, items, n, false);
    }
    if (strcmp(scenario, "hook-record-failure") == 0 || strcmp(scenario, "hook-record-success") == 0) {
        bool success = strcmp(scenario, "hook-record-success") == 0;
        rp_webhook_attempt_t at = {NOW_MS, success ? 200 : 503, "", 12, "busy"};
        rp_webhook_outcome_t o = {success ? RP_DELIVERY_DELIVERED : RP_DELIVERY_PENDING, 2, success ? 0 : NOW_MS + 5000,
                                  success ? NOW_MS : 0, success ? 0 : NOW_MS};
        ok = s->ops->delivery_record(s, DELIVERY_ID, OWNER, &at, &o, &found, &err);
        return result(ok, &err, ok ? json_pack("{s:b}", "applied", found) : NULL);
    }
    if (strcmp(scenario, "hook-list-deliveries") == 0) {
        rp_webhook_delivery_t *items = NULL;
        ok = s->ops->delivery_list(s, ENDPOINT_ID, RP_DELIVERY_FAILED, DELIVERY_ID, 2, &items, &n, &more, &err);
        return deliveries_json(ok, &err, items, n, more);
    }
    if (strcmp(scenario, "hook-redeliver") == 0) {
        ok = s->ops->delivery_redeliver(s, ENDPOINT_ID, DELIVERY_ID, NOW_MS, &found, &err);
        return result(ok, &err, ok ? json_pack("{s:b}", "found", found) : NULL);
    }
    if (strcmp(scenario, "hook-stats") == 0) {
        rp_webhook_stats_t st;
        ok = s->ops->delivery_stats(s, &st, &err);
        return result(ok, &err,
                      ok ? json_pack("{s:I, s:I, s:I, s:I}", "pending", (json_int_t)st.pending, "oldest",
                                     (json_int_t)st.oldest_pending_created_at, "granted_pending",
                                     (json_int_t)st.count[0][RP_DELIVERY_PENDING], "ping_delivered",
                                     (json_int_t)st.count[6][RP_DELIVERY_DELIVERED])
                         : NULL);
    }
    if (strcmp(scenario, "hook-ping-insert") == 0) {
        rp_webhook_delivery_t d;
        memset(&d, 0, sizeof d);
        snprintf(d.id, sizeof d.id, DELIVERY_ID);
        snprintf(d.endpoint_id, sizeof d.endpoint_id, ENDPOINT_ID);
        snprintf(d.webhook_id, sizeof d.webhook_id, DELIVERY_ID);
        snprintf(d.type, sizeof d.type, "webhook.ping");
        d.body = rp_webhook_body("webhook.ping", NOW_MS, NULL);
        d.created_at = d.next_at = NOW_MS;
        ok = s->ops->delivery_insert(s, &d, &found, &err);
        rp_webhook_delivery_clear(&d);
        return result(ok, &err, ok ? json_pack("{s:b}", "duplicate", found) : NULL);
    }
    return NULL;
}

json_t *contract_webhook(const char *uri, const char *scenario) {
    rp_err_t err;
    if (strncmp(scenario, "hook-", 5) != 0) return NULL;
    rp_err_clear(&err);
    rp_webhook_store_t *s = rp_webhook_store_mongo_open(uri, DB_NAME, &err);
    json_t *out = s ? run_webhook(s, scenario) : result(false, &err, NULL);
    if (s) s->ops->free(s);
    return out ? out : json_pack("{s:b, s:s}", "ok", 0, "unknown", scenario);
}
