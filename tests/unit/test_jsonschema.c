/* Tests lib/jsonschema.c beyond the official suite: failure details, bounds, compile errors,
 * concurrent use, and the project's own schemas. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "embedded.h"
#include "jsonschema.h"
#include "schema_registry.h"

static rp_schema_t *compile_text(const char *text) {
    json_t *doc = json_loads(text, 0, NULL);
    rp_err_t err;
    cr_assert_not_null(doc, "%s", text);
    rp_schema_t *s = rp_schema_compile(doc, &err);
    json_decref(doc);
    cr_assert_not_null(s, "%s: %s", text, err.message);
    return s;
}

static json_t *fail_details(const rp_schema_t *s, const char *instance) {
    json_t *doc = json_loads(instance, JSON_DECODE_ANY, NULL), *details = NULL;
    cr_assert_not(rp_schema_validate(s, doc, &details), "accepted %s", instance);
    cr_assert_not_null(details);
    json_decref(doc);
    return details;
}

static bool has(json_t *details, const char *field, const char *reason_part) {
    size_t i;
    json_t *d;
    json_array_foreach(details, i, d) {
        if (strcmp(json_string_value(json_object_get(d, "field")), field) == 0 &&
            strstr(json_string_value(json_object_get(d, "reason")), reason_part))
            return true;
    }
    return false;
}

Test(jsonschema, details_name_each_failing_field) {
    rp_schema_t *s =
        compile_text("{\"type\":\"object\",\"required\":[\"name\",\"rewards\"],\"additionalProperties\":false,"
                     "\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":2},"
                     "\"rewards\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/reward\"}}},"
                     "\"$defs\":{\"reward\":{\"type\":\"object\",\"properties\":{\"quantity\":{\"type\":\"integer\","
                     "\"minimum\":1}}}}}");
    json_t *d = fail_details(s, "{\"name\":\"x\",\"rewards\":[{\"quantity\":0},{\"quantity\":\"2\"}],\"evil\":1}");
    cr_assert(has(d, "/name", "at least 2"));
    cr_assert(has(d, "/rewards/0/quantity", ">= 1"));
    cr_assert(has(d, "/rewards/1/quantity", "integer"));
    cr_assert(has(d, "/evil", "unknown field"));
    json_decref(d);
    d = fail_details(s, "{}");
    cr_assert(has(d, "/name", "required") && has(d, "/rewards", "required"));
    json_decref(d);
    json_t *ok = json_loads("{\"name\":\"ab\",\"rewards\":[{\"quantity\":1.0}]}", 0, NULL), *none = (json_t *)1;
    cr_assert(rp_schema_validate(s, ok, &none));
    cr_assert_null(none);
    json_decref(ok);
    rp_schema_free(s);
}

Test(jsonschema, pointer_escaping_in_details) {
    rp_schema_t *s = compile_text("{\"additionalProperties\":false}");
    json_t *d = fail_details(s, "{\"a/b~c\":1}");
    cr_assert(has(d, "/a~1b~0c", "unknown field"));
    json_decref(d);
    rp_schema_free(s);
}

Test(jsonschema, one_of_reports_once) {
    rp_schema_t *s = compile_text("{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}");
    json_t *d = fail_details(s, "[1]");
    cr_assert_eq(json_array_size(d), 1u);
    cr_assert(has(d, "", "exactly one"));
    json_decref(d);
    rp_schema_free(s);
}

Test(jsonschema, depth_is_bounded) {
    rp_schema_t *s = compile_text("{\"$defs\":{\"n\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/n\"}}},"
                                  "\"$ref\":\"#/$defs/n\"}");
    char deep[401];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 200);
    deep[400] = '\0';
    json_t *d = fail_details(s, deep);
    cr_assert(json_array_size(d) >= 1);
    json_decref(d);
    json_t *shallow = json_loads("[[[]]]", 0, NULL);
    cr_assert(rp_schema_validate(s, shallow, NULL));
    json_decref(shallow);
    rp_schema_free(s);
    /* a schema that only refers to itself terminates too */
    s = compile_text("{\"$ref\":\"#\"}");
    json_t *one = json_integer(1);
    cr_assert_not(rp_schema_validate(s, one, NULL));
    json_decref(one);
    rp_schema_free(s);
}

Test(jsonschema, hostile_regex_input_is_bounded) {
    rp_schema_t *s = compile_text("{\"type\":\"string\",\"pattern\":\"^(a+)+$\"}");
    char input[64];
    memset(input, 'a', 40);
    strcpy(input + 40, "!");
    json_t *v = json_string(input);
    cr_assert_not(rp_schema_validate(s, v, NULL)); /* the match limit stops it, as a failure */
    json_decref(v);
    rp_schema_free(s);
}

Test(jsonschema, compile_errors) {
    const char *bad[] = {"{\"pattern\":\"(\"}",
                         "{\"$ref\":\"#/$defs/missing\"}",
                         "{\"type\":\"text\"}",
                         "{\"minLength\":-1}",
                         "{\"items\":[{}]}",
                         "{\"patternProperties\":{}}",
                         "{\"$ref\":\"http://x/y\"}",
                         "{\"required\":[1]}",
                         "{\"allOf\":[]}",
                         "7"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *doc = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        rp_err_t err;
        rp_schema_t *s = rp_schema_compile(doc, &err);
        cr_assert_null(s, "compiled %s", bad[i]);
        cr_assert_str_eq(err.code, "SCHEMA_INVALID");
        json_decref(doc);
    }
}

Test(jsonschema, datetime_format) {
    cr_assert(rp_schema_is_datetime("2026-11-24T12:00:00Z", 20));
    cr_assert(rp_schema_is_datetime("2026-11-24T12:00:00.123+09:00", 29));
    cr_assert(rp_schema_is_datetime("1998-12-31T23:59:60Z", 20));
    cr_assert_not(rp_schema_is_datetime("1998-12-31T23:58:60Z", 20));
    cr_assert_not(rp_schema_is_datetime("2026-02-29T00:00:00Z", 20));
    cr_assert_not(rp_schema_is_datetime("2026-11-24 12:00:00Z", 20));
}

static rp_schema_t *shared;

static void *validate_many(void *arg) {
    (void)arg;
    json_t *good = json_pack("{s:s}", "k", "abc"), *bad = json_pack("{s:s}", "k", "ABC");
    for (int i = 0; i < 2000; i++) {
        json_t *d = NULL;
        if (!rp_schema_validate(shared, good, NULL)) return (void *)1;
        if (rp_schema_validate(shared, bad, &d)) return (void *)1;
        json_decref(d);
    }
    json_decref(good);
    json_decref(bad);
    return NULL;
}

Test(jsonschema, concurrent_use) {
    shared = compile_text("{\"properties\":{\"k\":{\"type\":\"string\",\"pattern\":\"^[a-z]+$\"}}}");
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, validate_many, NULL);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        cr_assert_null(r);
    }
    rp_schema_free(shared);
}

Test(jsonschema, project_schemas_compile) {
    rp_err_t err;
    rp_schema_registry_t *r = rp_schema_registry_new(&err);
    cr_assert_not_null(r, "%s", err.message);
    size_t n = 0;
    while (rp_embedded_schemas[n].name)
        n++;
    cr_assert_gt(n, 5u);
    json_t *details = NULL;
    json_t *body = json_pack("{s:s, s:s, s:s}", "username", "ok_name", "email", "a@b.co", "password", "password-1");
    cr_assert(rp_schema_registry_validate(r, "auth.register", body, &details));
    cr_assert_not(rp_schema_registry_validate(r, "no.such.schema", body, &details));
    json_decref(details);
    json_decref(body);
    rp_schema_registry_free(r);
}
