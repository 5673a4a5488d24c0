/* request.c - the grant's records and their JSON (see request.h). */
#include "request.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"
#include "mem.h"
#include "names.h"
#include "timeutil.h"

static void copy_str(char *dst, size_t cap, const char *s) {
    snprintf(dst, cap, "%s", s ? s : "");
}

void rp_request_init(rp_request_t *r) {
    memset(r, 0, sizeof *r);
}

static void clear_rewards(rp_request_t *r) {
    for (size_t i = 0; i < r->nrewards; i++)
        json_decref(r->rewards[i].value);
    memset(r->rewards, 0, sizeof r->rewards);
    r->nrewards = 0;
}

void rp_request_clear(rp_request_t *r) {
    if (!r) return;
    clear_rewards(r);
    json_decref(r->failure_details);
    free(r->notes);
    memset(r, 0, sizeof *r);
}

void rp_request_copy(rp_request_t *dst, const rp_request_t *src) {
    rp_request_clear(dst);
    memcpy(dst, src, sizeof *dst);
    for (size_t i = 0; i < dst->nrewards; i++)
        dst->rewards[i].value = json_deep_copy(src->rewards[i].value);
    dst->failure_details = src->failure_details ? json_deep_copy(src->failure_details) : NULL;
    dst->notes = src->notes ? rp_strdup(src->notes) : NULL;
}

void rp_request_set_notes(rp_request_t *r, const char *notes) {
    free(r->notes);
    r->notes = notes ? rp_strdup(notes) : NULL;
}

void rp_request_set_details(rp_request_t *r, json_t *details) {
    json_decref(r->failure_details);
    r->failure_details = details;
}

/* ---- the request printed without a JSON object (rp_request_print) ---- */

typedef struct text {
    char *s;
    size_t len, cap;
    bool bad; /* a text that is not valid UTF-8 */
} text_t;

static void put(text_t *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        while (t->len + n + 1 > t->cap)
            t->cap *= 2;
        t->s = rp_realloc(t->s, t->cap);
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void put_str(text_t *t, const char *s) {
    put(t, s, strlen(s));
}

static int put_cb(const char *buffer, size_t size, void *data) {
    put(data, buffer, size);
    return 0;
}

/* The length of the UTF-8 sequence at s (at most n bytes), 0 if it is not one that jansson accepts
 * (overlong, a surrogate, beyond U+10FFFF, cut short). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t k;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        k = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        k = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        k = 4, cp = c & 0x07;
    else
        return 0;
    if (k > n) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return k;
}

/* s as a JSON string, escaped as jansson's dump escapes it without flags: the quote, the backslash
 * and the control characters (\b \f \n \r \t by name, the others as \u00XX), nothing else. */
static void put_json_str(text_t *t, const char *s) {
    const unsigned char *p = (const unsigned char *)s, *run = p;
    size_t n = strlen(s);
    put(t, "\"", 1);
    while (n > 0) {
        size_t k = utf8_seq(p, n);
        if (k == 0) {
            t->bad = true;
            return;
        }
        if (k == 1 && (*p < 0x20 || *p == '"' || *p == '\\')) {
            put(t, (const char *)run, (size_t)(p - run));
            char esc[8];
            switch (*p) {
            case '"': put(t, "\\\"", 2); break;
            case '\\': put(t, "\\\\", 2); break;
            case '\b': put(t, "\\b", 2); break;
            case '\f': put(t, "\\f", 2); break;
            case '\n': put(t, "\\n", 2); break;
            case '\r': put(t, "\\r", 2); break;
            case '\t': put(t, "\\t", 2); break;
            default: put(t, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04X", *p));
            }
            run = p + 1;
        }
        p += k;
        n -= k;
    }
    put(t, (const char *)run, (size_t)(p - run));
    put(t, "\"", 1);
}

/* "key": then s as a string, or null when s is NULL or "" (rp_json_str_or_null). */
static void put_str_or_null(text_t *t, const char *key, const char *s) {
    put_str(t, key);
    if (s && s[0])
        put_json_str(t, s);
    else
        put(t, "null", 4);
}

static void put_time_or_null(text_t *t, const char *key, int64_t ms) {
    put_str(t, key);
    if (!ms) {
        put(t, "null", 4);
        return;
    }
    char iso[RP_ISO_LEN];
    rp_time_iso(ms, iso);
    put(t, "\"", 1);
    put_str(t, iso);
    put(t, "\"", 1);
}

/* "key": then v as jansson prints it, or null. */
static void put_json_or_null(text_t *t, const char *key, const json_t *v) {
    put_str(t, key);
    if (!v)
        put(t, "null", 4);
    else if (json_dump_callback(v, put_cb, t, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
        t->bad = true;
}

/* r's claimed rewards as rp_claimed_to_json's array, printed */
static void put_claimed(text_t *t, const rp_request_t *r) {
    char num[64];
    put(t, "[", 1);
    for (size_t i = 0; i < r->nrewards; i++) {
        const rp_claimed_reward_t *c = &r->rewards[i];
        put(t, num, (size_t)snprintf(num, sizeof num, "%s{\"rewardIndex\":%d", i ? "," : "", c->reward_index));
        put_str(t, ",\"rewardDefinitionId\":");
        put_json_str(t, c->definition_id);
        put_str_or_null(t, ",\"name\":", c->name);
        put_str_or_null(t, ",\"type\":", c->type);
        put_json_or_null(t, ",\"value\":", c->value);
        put(t, num,
            (size_t)snprintf(num, sizeof num, ",\"quantity\":%" JSON_INTEGER_FORMAT "}", (json_int_t)c->quantity));
    }
    put(t, "]", 1);
}

/* t's text (its length in *len), or NULL when something in it was not printable */
static char *finish(text_t *t, size_t *len) {
    if (t->bad) {
        free(t->s);
        return NULL;
    }
    if (len) *len = t->len;
    return t->s;
}

char *rp_request_print(const rp_request_t *r, size_t *len) {
    text_t t = {rp_malloc(1024), 0, 1024, false};
    put_str(&t, "{\"id\":");
    put_json_str(&t, r->id);
    put_str(&t, ",\"userId\":");
    put_json_str(&t, r->user_id);
    put_str(&t, ",\"eventId\":");
    put_json_str(&t, r->event_id);
    put_str(&t, ",\"periodKey\":");
    put_json_str(&t, r->period_key);
    put_str(&t, ",\"status\":");
    put_json_str(&t, rp_req_status_name(r->status));
    put_str(&t, ",\"claimedRewards\":");
    put_claimed(&t, r);
    put_time_or_null(&t, ",\"requestedAt\":", r->requested_at);
    put_time_or_null(&t, ",\"processedAt\":", r->processed_at);
    put_str_or_null(&t, ",\"processorId\":", r->processor_id);
    put_str_or_null(&t, ",\"failureReason\":", r->failure_reason);
    put_json_or_null(&t, ",\"failureDetails\":", r->failure_details);
    put_str_or_null(&t, ",\"notes\":", r->notes);
    put_str(&t, ",\"source\":");
    put_json_str(&t, rp_req_source_name(r->source));
    put_str_or_null(&t, ",\"batchId\":", r->batch_id);
    put_time_or_null(&t, ",\"createdAt\":", r->created_at);
    put_time_or_null(&t, ",\"updatedAt\":", r->updated_at);
    put(&t, "}", 1);
    return finish(&t, len);
}

char *rp_claimed_print(const rp_request_t *r) {
    text_t t = {rp_malloc(256), 0, 256, false};
    put_claimed(&t, r);
    return finish(&t, NULL);
}

char *rp_request_message_print(const rp_request_t *r, const char *type, const char *message_id, int64_t at,
                               const char *reason) {
    text_t t = {rp_malloc(512), 0, 512, false};
    put_str(&t, "{\"type\":");
    put_json_str(&t, type);
    put_str(&t, ",\"messageId\":");
    put_json_str(&t, message_id);
    put_str(&t, ",\"requestId\":");
    put_json_str(&t, r->id);
    put_str(&t, ",\"userId\":");
    put_json_str(&t, r->user_id);
    put_str(&t, ",\"eventId\":");
    put_json_str(&t, r->event_id);
    put_str(&t, ",\"rewards\":");
    put_claimed(&t, r);
    put_time_or_null(&t, ",\"at\":", at);
    put_str_or_null(&t, ",\"processorId\":", r->processor_id);
    if (reason) {
        put_str(&t, ",\"reason\":");
        put_json_str(&t, reason);
    }
    put(&t, "}", 1);
    return finish(&t, NULL);
}

json_t *rp_claimed_to_json(const rp_request_t *r) {
    json_t *out = json_array();
    for (size_t i = 0; i < r->nrewards; i++) {
        const rp_claimed_reward_t *c = &r->rewards[i];
        json_array_append_new(
            out, json_pack("{s:i, s:s, s:o, s:o, s:O, s:I}", "rewardIndex", c->reward_index, "rewardDefinitionId",
                           c->definition_id, "name", rp_json_str_or_null(c->name), "type", rp_json_str_or_null(c->type),
                           "value", c->value ? c->value : json_null(), "quantity", (json_int_t)c->quantity));
    }
    return out;
}

bool rp_claimed_from_json(rp_request_t *r, const json_t *claimed) {
    size_t i;
    json_t *c;
    clear_rewards(r);
    if (!json_is_array(claimed) || json_array_size(claimed) > RP_MAX_EVENT_REWARDS) return false;
    json_array_foreach(claimed, i, c) {
        rp_claimed_reward_t *line = &r->rewards[r->nrewards++];
        json_t *index = json_object_get(c, "rewardIndex"), *qty = json_object_get(c, "quantity");
        if (!json_is_integer(index) || !json_is_integer(qty)) return false;
        line->reward_index = (int)json_integer_value(index);
        line->quantity = json_integer_value(qty);
        copy_str(line->definition_id, sizeof line->definition_id,
                 json_string_value(json_object_get(c, "rewardDefinitionId")));
        copy_str(line->name, sizeof line->name, json_string_value(json_object_get(c, "name")));
        copy_str(line->type, sizeof line->type, json_string_value(json_object_get(c, "type")));
        json_t *value = json_object_get(c, "value");
        line->value = value ? json_deep_copy(value) : json_null();
    }
    return true;
}

static const char *const source_names[] = {"CLAIM", "BATCH"};

const char *rp_req_source_name(rp_req_source_t s) {
    return rp_name_of(source_names, 2, (int)s);
}

rp_req_source_t rp_req_source_parse(const char *s) {
    int v = RP_SOURCE_CLAIM;
    rp_name_parse(source_names, 2, s, &v);
    return (rp_req_source_t)v;
}

json_t *rp_request_to_json(const rp_request_t *r) {
    json_t *d = json_object();
    json_object_set_new(d, "id", json_string(r->id));
    json_object_set_new(d, "userId", json_string(r->user_id));
    json_object_set_new(d, "eventId", json_string(r->event_id));
    json_object_set_new(d, "periodKey", json_string(r->period_key));
    json_object_set_new(d, "status", json_string(rp_req_status_name(r->status)));
    json_object_set_new(d, "claimedRewards", rp_claimed_to_json(r));
    json_object_set_new(d, "requestedAt", rp_json_time_or_null(r->requested_at));
    json_object_set_new(d, "processedAt", rp_json_time_or_null(r->processed_at));
    json_object_set_new(d, "processorId", rp_json_str_or_null(r->processor_id));
    json_object_set_new(d, "failureReason", rp_json_str_or_null(r->failure_reason));
    json_object_set_new(d, "failureDetails", r->failure_details ? json_deep_copy(r->failure_details) : json_null());
    json_object_set_new(d, "notes", rp_json_str_or_null(r->notes));
    json_object_set_new(d, "source", json_string(rp_req_source_name(r->source)));
    json_object_set_new(d, "batchId", rp_json_str_or_null(r->batch_id));
    json_object_set_new(d, "createdAt", rp_json_time_or_null(r->created_at));
    json_object_set_new(d, "updatedAt", rp_json_time_or_null(r->updated_at));
    return d;
}

/* ---- ledger ---- */

static const char *const ledger_names[] = {"GRANT", "REVERSAL"};

const char *rp_ledger_kind_name(rp_ledger_kind_t k) {
    return rp_name_of(ledger_names, 2, (int)k);
}

bool rp_ledger_kind_parse(const char *s, rp_ledger_kind_t *out) {
    int v;
    if (!rp_name_parse(ledger_names, 2, s, &v)) return false;
    *out = (rp_ledger_kind_t)v;
    return true;
}

json_t *rp_ledger_entry_to_json(const rp_ledger_entry_t *e) {
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:i, s:s, s:I, s:s, s:o, s:o}", "seq", (json_int_t)e->seq, "id", e->id,
                     "requestId", e->request_id, "userId", e->user_id, "eventId", e->event_id, "rewardIndex",
                     e->reward_index, "rewardDefinitionId", e->definition_id, "quantity", (json_int_t)e->quantity,
                     "entryType", rp_ledger_kind_name(e->kind), "processorId", rp_json_str_or_null(e->processor_id),
                     "at", rp_json_time_or_null(e->at));
}

/* ---- outbox ---- */

void rp_outbox_message_clear(rp_outbox_message_t *m) {
    if (!m) return;
    json_decref(m->payload);
    free(m->payload_text);
    memset(m, 0, sizeof *m);
}

json_t *rp_request_message(const rp_request_t *r, const char *type, const char *message_id, int64_t at,
                           const char *reason) {
    json_t *m =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o}", "type", type, "messageId", message_id, "requestId", r->id,
                  "userId", r->user_id, "eventId", r->event_id, "rewards", rp_claimed_to_json(r), "at",
                  rp_json_time_or_null(at), "processorId", rp_json_str_or_null(r->processor_id));
    if (reason) json_object_set_new(m, "reason", json_string(reason));
    return m;
}

json_t *rp_outbox_message_to_json(const rp_outbox_message_t *m) {
    return json_pack("{s:I, s:s, s:s, s:s, s:O, s:o, s:o}", "seq", (json_int_t)m->seq, "messageId", m->message_id,
                     "routingKey", m->routing_key, "requestId", m->request_id, "payload",
                     m->payload ? m->payload : json_null(), "createdAt", rp_json_time_or_null(m->created_at),
                     "publishedAt", rp_json_time_or_null(m->published_at));
}

/* ---- idempotency ---- */

void rp_idem_clear(rp_idem_t *v) {
    if (!v) return;
    json_decref(v->response);
    memset(v, 0, sizeof *v);
}

/* ---- batches ---- */

static const char *const item_names[] = {"QUEUED", "SUCCESS", "FAILED"};

const char *rp_item_status_name(rp_item_status_t s) {
    return rp_name_of(item_names, 3, (int)s);
}

bool rp_item_status_parse(const char *s, rp_item_status_t *out) {
    int v;
    if (!rp_name_parse(item_names, 3, s, &v)) return false;
    *out = (rp_item_status_t)v;
    return true;
}

void rp_batch_clear(rp_batch_t *b) {
    if (!b) return;
    free(b->reason);
    memset(b, 0, sizeof *b);
}

void rp_batch_count(rp_batch_t *b, rp_item_status_t s, const char *reason, int64_t n) {
    if ((unsigned)s < 3) b->counts[s] += n;
    if (!reason || !reason[0]) return;
    size_t i = 0;
    while (i < b->nfailures && strcmp(b->failures[i].reason, reason) != 0)
        i++;
    if (i == b->nfailures) {
        if (i == RP_MAX_FAILURE_REASONS) return; /* more distinct reasons than the API names: counted above */
        copy_str(b->failures[i].reason, sizeof b->failures[i].reason, reason);
        b->nfailures++;
    }
    b->failures[i].n += n;
}

json_t *rp_batch_to_json(const rp_batch_t *b, bool with_counts) {
    json_t *d =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:o}", "id", b->id, "batchId", b->id, "eventId", b->event_id,
                  "reason", b->reason ? b->reason : "", "createdBy", b->created_by, "total", (json_int_t)b->total,
                  "duplicates", (json_int_t)b->duplicates, "createdAt", rp_json_time_or_null(b->created_at));
    if (!with_counts) return d;
    json_t *failures = json_object();
    for (size_t i = 0; i < b->nfailures; i++)
        json_object_set_new(failures, b->failures[i].reason, json_integer(b->failures[i].n));
    json_object_set_new(d, "counts",
                        json_pack("{s:I, s:I, s:I}", "QUEUED", (json_int_t)b->counts[RP_ITEM_QUEUED], "SUCCESS",
                                  (json_int_t)b->counts[RP_ITEM_SUCCESS], "FAILED",
                                  (json_int_t)b->counts[RP_ITEM_FAILED]));
    json_object_set_new(d, "failures", failures);
    json_object_set_new(d, "lastSettledAt", rp_json_time_or_null(b->last_settled_at));
    json_object_set_new(d, "status", json_string(b->counts[RP_ITEM_QUEUED] > 0 ? "RUNNING" : "COMPLETED"));
    return d;
}

json_t *rp_batch_item_to_json(const rp_batch_item_t *it) {
    return json_pack("{s:I, s:s, s:s, s:o, s:o, s:I, s:o}", "seq", (json_int_t)it->seq, "userId", it->user_id, "status",
                     rp_item_status_name(it->status), "failureReason", rp_json_str_or_null(it->failure_reason),
                     "requestId", rp_json_str_or_null(it->request_id), "attempts", (json_int_t)it->attempts,
                     "settledAt", rp_json_time_or_null(it->settled_at));
}
