/* Tests lib/envelope.c: envelope and reply round trips and refusal of malformed messages. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "envelope_fixture.h"
#include "roles.h"

/* Serializes a and parses the text back into b (initialised here; clear it). */
static void round_trip(const rp_envelope_t *a, rp_envelope_t *b) {
    rp_err_t err;
    size_t len;
    char *text = rp_envelope_serialize(a, &len);
    cr_assert_not_null(text);
    cr_assert(rp_envelope_parse(b, text, len, &err), "%s", err.message);
    free(text);
}

Test(envelope, round_trip_keeps_every_member) {
    rp_envelope_t a, b;
    rp_identity_t bob = signed_in("65f0a1b2c3d4e5f601234568", "bob", RP_ROLE_USER | RP_ROLE_GAME_SERVER);
    envelope_call(&a, "POST", "/events/{id}/reward-requests", &bob);
    json_object_set_new(a.params, "id", json_string("65f0a1b2c3d4e5f601234567"));
    json_object_set_new(a.query, "limit", json_string("10"));
    a.body = json_pack("{s:s, s:[i,i]}", "reason", "weekly", "xs", 1, 2);
    strcpy(a.request_id, "req-1");
    strcpy(a.idempotency_key, "claim-42");
    a.deadline_ms = 1800000000123;
    round_trip(&a, &b);
    cr_assert_str_eq(b.method, "POST");
    cr_assert_str_eq(b.route, a.route);
    cr_assert_str_eq(rp_envelope_param(&b, "id"), "65f0a1b2c3d4e5f601234567");
    cr_assert_str_eq(rp_envelope_query(&b, "limit"), "10");
    cr_assert(json_equal(a.body, b.body));
    cr_assert(b.caller.authenticated);
    cr_assert_str_eq(b.caller.id, a.caller.id);
    cr_assert_str_eq(b.caller.username, "bob");
    cr_assert_eq(b.caller.roles, RP_ROLE_USER | RP_ROLE_GAME_SERVER);
    cr_assert_str_eq(b.request_id, "req-1");
    cr_assert_str_eq(b.idempotency_key, "claim-42");
    cr_assert_eq(b.deadline_ms, 1800000000123);
    rp_envelope_clear(&a);
    rp_envelope_clear(&b);
}

Test(envelope, anonymous_caller_and_no_body) {
    rp_envelope_t a, b;
    envelope_call(&a, "GET", "/", NULL);
    round_trip(&a, &b);
    cr_assert_not(b.caller.authenticated);
    cr_assert_null(b.body);
    rp_envelope_clear(&a);
    rp_envelope_clear(&b);
}

static void expect_bad(const char *text) {
    rp_envelope_t e;
    rp_err_t err;
    cr_assert_not(rp_envelope_parse(&e, text, strlen(text), &err), "accepted: %s", text);
    cr_assert_eq(err.kind, RP_ERR_INVALID);
    cr_assert_str_eq(err.code, "BAD_MESSAGE");
    rp_envelope_clear(&e);
}

#define OK_CALLER "\"caller\":{\"authenticated\":false}"
#define REST "\"requestId\":\"r\",\"idempotencyKey\":\"\",\"deadline\":0"

Test(envelope, rejects_malformed) {
    expect_bad("");
    expect_bad("[]");
    expect_bad("{\"method\":\"GET\"}");
    expect_bad("{\"method\":1,\"route\":\"/\",\"params\":{},\"query\":{}," OK_CALLER "," REST "}");
    expect_bad("{\"method\":\"GET\",\"route\":\"/\",\"params\":{\"id\":1},\"query\":{}," OK_CALLER "," REST "}");
    expect_bad("{\"method\":\"GETTTTTTTTTT\",\"route\":\"/\",\"params\":{},\"query\":{}," OK_CALLER "," REST "}");
    expect_bad("{\"method\":\"GET\",\"route\":\"/\",\"params\":{},\"query\":{}," OK_CALLER "," REST ",\"extra\":1}");
    expect_bad("{\"method\":\"GET\",\"route\":\"/\",\"params\":{},\"query\":{},\"caller\":{\"authenticated\":true,"
               "\"id\":\"zz\",\"username\":\"u\",\"roles\":[\"USER\"]}," REST "}");
    expect_bad("{\"method\":\"GET\",\"route\":\"/\",\"params\":{},\"query\":{},\"caller\":{\"authenticated\":true,"
               "\"id\":\"65f0a1b2c3d4e5f601234567\",\"username\":\"u\",\"roles\":[\"GOD\"]}," REST "}");
    expect_bad("{\"method\":\"GET\",\"method\":\"GET\",\"route\":\"/\",\"params\":{},\"query\":{}," OK_CALLER "," REST
               "}");
}

Test(reply, round_trip_and_errors) {
    rp_reply_t a, b;
    rp_err_t err;
    rp_reply_init(&a);
    rp_reply_error(&a, 429, "ACCOUNT_LOCKED", "locked", json_pack("[{s:s}]", "field", "/x"));
    a.retry_after_s = 17;
    size_t len;
    char *text = rp_reply_serialize(&a, &len);
    cr_assert(rp_reply_parse(&b, text, len, &err));
    cr_assert_eq(b.status, 429);
    cr_assert_eq(b.retry_after_s, 17);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(b.body, "error"), "code")), "ACCOUNT_LOCKED");
    cr_assert_eq(json_array_size(json_object_get(json_object_get(b.body, "error"), "details")), 1);
    free(text);
    rp_reply_clear(&a);
    rp_reply_clear(&b);
    cr_assert_not(rp_reply_parse(&b, "{\"status\":99,\"retryAfter\":0}", 28, &err));
    cr_assert_eq(err.kind, RP_ERR_BAD_REPLY);
    cr_assert_not(rp_reply_parse(&b, "nope", 4, &err));
}

/* A success keeps the worker's text as it is (raw) through rp_reply_parse_raw; an error is parsed
 * (the api adds requestId to it); a reply of another layout is parsed whole; both forms print as
 * a valid rpc.reply. */
Test(reply, a_store_that_is_down_busy_or_full_asks_for_a_retry) {
    static const rp_err_kind_t kinds[] = {RP_ERR_STORE_UNAVAILABLE, RP_ERR_STORE_BUSY, RP_ERR_UNAVAILABLE};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        rp_reply_t r;
        rp_err_t err;
        rp_reply_init(&r);
        rp_err_set(&err, kinds[i], "STORE_FULL", "full");
        rp_reply_from_err(&r, &err);
        cr_assert_eq(r.status, 503);
        cr_assert_eq(r.retry_after_s, 1, "a 503 says when to try again");
        rp_reply_clear(&r);
    }
    rp_reply_t r;
    rp_err_t err;
    rp_reply_init(&r);
    rp_err_set(&err, RP_ERR_STORE, "STORE_ERROR", "broken");
    rp_reply_from_err(&r, &err);
    cr_assert_eq(r.status, 500);
    cr_assert_eq(r.retry_after_s, 0, "a store error is not worth retrying");
    rp_reply_clear(&r);
}

/* An operation whose callee failed without filling its error record (issue 12 found one in the
 * event worker) answers a plain 500, never an empty or stale message. */
Test(reply, a_cleared_error_is_a_500_with_a_message) {
    rp_err_t err;
    rp_err_clear(&err);
    rp_reply_t rep;
    rp_reply_init(&rep);
    rp_reply_from_err(&rep, &err);
    cr_assert_eq(rep.status, 500);
    json_t *e = json_object_get(rep.body, "error");
    cr_assert_str_eq(json_string_value(json_object_get(e, "code")), "INTERNAL");
    cr_assert_str_eq(json_string_value(json_object_get(e, "message")), "the operation failed without saying why");
    rp_reply_clear(&rep);
}

Test(reply, raw_bodies_pass_through_and_errors_are_parsed) {
    rp_reply_t a, b;
    rp_err_t err;
    size_t len;
    rp_reply_init(&a);
    const char *page = "{\"items\":[{\"id\":\"x\"}],\"nextCursor\":null}";
    rp_reply_set_raw(&a, 200, strdup(page), strlen(page));
    char *text = rp_reply_serialize(&a, &len);
    cr_assert_str_eq(text,
                     "{\"status\":200,\"retryAfter\":0,\"body\":{\"items\":[{\"id\":\"x\"}],\"nextCursor\":null}}");
    cr_assert(rp_reply_parse_raw(&b, text, len, &err));
    cr_assert_eq(b.status, 200);
    cr_assert_null(b.body);
    cr_assert_eq(b.raw_len, strlen(page));
    cr_assert_eq(memcmp(b.raw, page, b.raw_len), 0);
    rp_reply_clear(&b);
    cr_assert(rp_reply_parse(&b, text, len, &err)); /* the plain parse reads the same bytes as JSON */
    cr_assert_null(b.raw);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(b.body, "items"), 0), "id")),
                     "x");
    rp_reply_clear(&b);
    free(text);
    rp_reply_clear(&a);

    rp_reply_error(&a, 409, "CONFLICT", "no", NULL);
    text = rp_reply_serialize(&a, &len);
    cr_assert(rp_reply_parse_raw(&b, text, len, &err));
    cr_assert_eq(b.status, 409);
    cr_assert_null(b.raw);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(b.body, "error"), "code")), "CONFLICT");
    rp_reply_clear(&b);
    free(text);
    rp_reply_clear(&a);

    const char *other = "{ \"retryAfter\": 0, \"status\": 201, \"body\": {\"a\": 1} }"; /* another writer's layout */
    cr_assert(rp_reply_parse_raw(&b, other, strlen(other), &err));
    cr_assert_eq(b.status, 201);
    cr_assert_null(b.raw);
    cr_assert_eq(json_integer_value(json_object_get(b.body, "a")), 1);
    rp_reply_clear(&b);
    const char *empty = "{\"status\":204,\"retryAfter\":0}";
    cr_assert(rp_reply_parse_raw(&b, empty, strlen(empty), &err));
    cr_assert_eq(b.status, 204);
    cr_assert_null(b.raw);
    cr_assert_null(b.body);
    const char *cut = "{\"status\":200,\"retryAfter\":0,\"body\":";
    cr_assert_not(rp_reply_parse_raw(&b, cut, strlen(cut), &err));
    cr_assert_eq(err.kind, RP_ERR_BAD_REPLY);
    const char *huge = "{\"status\":2000000000000,\"retryAfter\":0}";
    cr_assert_not(rp_reply_parse_raw(&b, huge, strlen(huge), &err));
}

/* maxAgeMs (a 2xx a worker offers for keeping) travels through both parses; an error never carries
 * it, and a reply without it (an older worker's) reads as 0. */
Test(reply, max_age_travels_with_a_success_only) {
    rp_reply_t a, b;
    rp_err_t err;
    size_t len;
    rp_reply_init(&a);
    const char *page = "{\"items\":[],\"nextCursor\":null}";
    rp_reply_set_raw(&a, 200, strdup(page), strlen(page));
    a.max_age_ms = 750;
    char *text = rp_reply_serialize(&a, &len);
    cr_assert_str_eq(text,
                     "{\"status\":200,\"retryAfter\":0,\"maxAgeMs\":750,\"body\":{\"items\":[],\"nextCursor\":null}}");
    cr_assert(rp_reply_parse_raw(&b, text, len, &err));
    cr_assert_eq(b.max_age_ms, 750);
    cr_assert_not_null(b.raw);
    cr_assert_str_eq(b.raw, page);
    rp_reply_clear(&b);
    cr_assert(rp_reply_parse(&b, text, len, &err));
    cr_assert_eq(b.max_age_ms, 750);
    rp_reply_clear(&b);
    free(text);
    a.max_age_ms = 750;
    rp_reply_error(&a, 503, "BUSY", "later", NULL); /* an error set afterwards drops it */
    cr_assert_eq(a.max_age_ms, 0);
    a.max_age_ms = 750; /* and an error never sends it */
    text = rp_reply_serialize(&a, &len);
    cr_assert_null(strstr(text, "maxAgeMs"), "%s", text);
    free(text);
    rp_reply_clear(&a);
    const char *forged = "{\"status\":500,\"retryAfter\":0,\"maxAgeMs\":900,\"body\":{}}";
    cr_assert(rp_reply_parse_raw(&b, forged, strlen(forged), &err));
    cr_assert_eq(b.max_age_ms, 0, "an error is never kept");
    rp_reply_clear(&b);
    const char *old = "{\"status\":200,\"retryAfter\":0,\"body\":{}}";
    cr_assert(rp_reply_parse_raw(&b, old, strlen(old), &err));
    cr_assert_eq(b.max_age_ms, 0);
    rp_reply_clear(&b);
    const char *bad = "{\"status\":200,\"retryAfter\":0,\"maxAgeMs\":\"x\",\"body\":{}}";
    cr_assert_not(rp_reply_parse_raw(&b, bad, strlen(bad), &err));
}

/* Found by fuzzing (tests/fuzz/regressions/reply/): members after the body once made the raw path
 * relay them as the body (`0,"retryAfter":1`, invalid JSON to the client) with another status or
 * retry than the reply said. Such a reply is parsed whole now, as the plain parse reads it. */
Test(reply, members_after_the_body_are_not_relayed_raw) {
    static const char *const replies[] = {
        "{\"status\":200,\"retryAfter\":-0,\"body\":0,\"retryAfter\":1}",
        "{\"status\":200,\"retryAfter\":0,\"body\":{},\"status\":500}",
        "{\"status\":200,\"retryAfter\":0,\"body\":[1],\"body\":{\"x\":1}}",
    };
    for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++) {
        rp_reply_t raw, full;
        rp_err_t err;
        bool raw_ok = rp_reply_parse_raw(&raw, replies[i], strlen(replies[i]), &err);
        bool full_ok = rp_reply_parse(&full, replies[i], strlen(replies[i]), &err);
        cr_assert_eq(raw_ok, full_ok, "reply %zu", i);
        cr_assert_null(raw.raw, "reply %zu kept raw", i);
        cr_assert_eq(raw.status, full.status, "reply %zu", i);
        cr_assert_eq(raw.retry_after_s, full.retry_after_s, "reply %zu", i);
        cr_assert(raw.body == full.body || json_equal(raw.body, full.body), "reply %zu", i);
        rp_reply_clear(&raw);
        rp_reply_clear(&full);
    }
    /* a body whose strings hold brackets and quotes still passes through as text */
    const char *ok = "{\"status\":200,\"retryAfter\":0,\"body\":{\"a\":\"}]\\\"{\",\"b\":[{}]}}";
    rp_reply_t rep;
    rp_err_t err;
    cr_assert(rp_reply_parse_raw(&rep, ok, strlen(ok), &err));
    cr_assert_not_null(rep.raw);
    cr_assert_str_eq(rep.raw, "{\"a\":\"}]\\\"{\",\"b\":[{}]}");
    rp_reply_clear(&rep);
}

#include "json_util.h"

Test(json_util, depth_guard) {
    cr_assert(rp_json_depth_ok("{\"a\":[1,{\"b\":2}]}", 17, 3));
    cr_assert_not(rp_json_depth_ok("{\"a\":[1,{\"b\":2}]}", 17, 2));
    /* brackets inside strings do not count, escaped quotes do not end strings */
    cr_assert(rp_json_depth_ok("[\"[[[[\\\"[[[[\"]", 14, 1));
    char deep[10001];
    memset(deep, '[', 5000);
    memset(deep + 5000, ']', 5000);
    deep[10000] = '\0';
    cr_assert_not(rp_json_depth_ok(deep, 10000, RP_JSON_MAX_DEPTH));
    /* an envelope around a deep body is refused, not parsed */
    rp_envelope_t e;
    rp_err_t err;
    cr_assert_not(rp_envelope_parse(&e, deep, 10000, &err));
    rp_envelope_clear(&e);
}

Test(json_util, nullable_text_and_times) {
    json_t *v = rp_json_str_or_null("abc");
    cr_assert_str_eq(json_string_value(v), "abc");
    json_decref(v);
    cr_assert(json_is_null(rp_json_str_or_null("")), "an unset text is null, not \"\"");
    cr_assert(json_is_null(rp_json_str_or_null(NULL)));
    v = rp_json_time_or_null(1764633600123);
    cr_assert_str_eq(json_string_value(v), "2025-12-02T00:00:00.123Z");
    json_decref(v);
    cr_assert(json_is_null(rp_json_time_or_null(0)), "a time that has not happened is null");
}

#include "embedded.h"
#include "jsonschema.h"

/* The envelope and reply this code produces are what schemas/rpc.*.json document. */
static rp_schema_t *embedded(const char *name) {
    for (size_t i = 0; rp_embedded_schemas[i].name; i++)
        if (strcmp(rp_embedded_schemas[i].name, name) == 0) {
            json_t *doc = json_loadb(rp_embedded_schemas[i].data, rp_embedded_schemas[i].len, 0, NULL);
            rp_schema_t *s = rp_schema_compile(doc, NULL);
            json_decref(doc);
            return s;
        }
    return NULL;
}

Test(envelope, serialized_forms_match_their_schemas) {
    rp_schema_t *env_schema = embedded("rpc.envelope"), *rep_schema = embedded("rpc.reply");
    cr_assert(env_schema && rep_schema);
    rp_envelope_t e;
    rp_identity_t admin = signed_in("65f0a1b2c3d4e5f601234567", "admin", RP_ROLE_ADMIN);
    envelope_call(&e, "PUT", "/auth/users/{id}/roles", &admin);
    e.body = json_pack("{s:[s]}", "roles", "USER");
    size_t len;
    char *text = rp_envelope_serialize(&e, &len);
    json_t *doc = json_loadb(text, len, 0, NULL), *details = NULL;
    cr_assert(rp_schema_validate(env_schema, doc, &details), "%s", text);
    json_decref(doc);
    free(text);
    rp_reply_t r;
    rp_reply_init(&r);
    rp_reply_error(&r, 409, "X", "y", NULL);
    text = rp_reply_serialize(&r, &len);
    doc = json_loadb(text, len, 0, NULL);
    cr_assert(rp_schema_validate(rep_schema, doc, NULL), "%s", text);
    json_decref(doc);
    free(text);
    rp_reply_set_raw(&r, 200, strdup("{}"), 2);
    r.max_age_ms = 1000;
    text = rp_reply_serialize(&r, &len);
    doc = json_loadb(text, len, 0, NULL);
    cr_assert(rp_schema_validate(rep_schema, doc, NULL), "%s", text);
    json_decref(doc);
    free(text);
    rp_reply_clear(&r);
    rp_envelope_clear(&e);
    rp_schema_free(env_schema);
    rp_schema_free(rep_schema);
}
