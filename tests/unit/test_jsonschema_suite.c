/* Runs the official JSON-Schema-Test-Suite (Debian package json-schema-test-suite, which ships
 * drafts 3 to 7) against lib/jsonschema.c for every keyword the validator supports. A test group
 * is skipped only for a named reason: a keyword outside the subset, a remote or $id-based
 * $ref, draft-7 semantics that 2020-12 changed. Every case that runs must pass. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonschema.h"

/* The keywords of the subset lib/jsonschema.c supports, each also the name of the suite file
 * that tests it. */
static const char *const keyword_files[] = {"type",
                                            "properties",
                                            "required",
                                            "additionalProperties",
                                            "enum",
                                            "const",
                                            "minLength",
                                            "maxLength",
                                            "pattern",
                                            "minimum",
                                            "maximum",
                                            "exclusiveMinimum",
                                            "exclusiveMaximum",
                                            "items",
                                            "minItems",
                                            "maxItems",
                                            "uniqueItems",
                                            "minProperties",
                                            "maxProperties",
                                            "allOf",
                                            "anyOf",
                                            "oneOf",
                                            "not",
                                            "definitions",
                                            NULL};
/* The rest of the subset: $ref and format (their files are below), $defs and annotations. */
static const char *const other_keywords[] = {"$ref",        "format",  "$schema",  "$comment", "title",
                                             "description", "default", "examples", "$defs",    NULL};
/* The suite files, other than the keywords' own, that the subset must pass. */
static const char *const other_files[] = {"ref", "boolean_schema", "optional/format/date-time", NULL};

static bool listed(const char *const *list, const char *k) {
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], k) == 0) return true;
    return false;
}

static bool is_supported(const char *k) {
    return listed(keyword_files, k) || listed(other_keywords, k);
}

/* Why a group cannot run under the 2020-12 subset, or NULL when it can. */
static const char *skip_reason(const json_t *schema, char *buf, size_t cap) {
    if (!json_is_object(schema)) return NULL;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)schema, k, v) {
        if (strcmp(k, "$id") == 0) return "$id-based resolution";
        if (!is_supported(k)) {
            snprintf(buf, cap, "unsupported keyword %s", k);
            return buf;
        }
        if (strcmp(k, "$ref") == 0) {
            if (!json_is_string(v) || json_string_value(v)[0] != '#') return "remote $ref";
            if (json_object_size(schema) > 1 && !json_object_get(schema, "$defs") &&
                !json_object_get(schema, "definitions"))
                return "draft 7 ignores keywords beside $ref; 2020-12 applies them";
        }
        if (strcmp(k, "items") == 0 && json_is_array(v)) return "tuple items (2020-12 uses prefixItems)";
        const char *r = NULL;
        if (strcmp(k, "properties") == 0 || strcmp(k, "definitions") == 0 || strcmp(k, "$defs") == 0) {
            const char *k2;
            json_t *v2;
            json_object_foreach(v, k2, v2) if (!r) r = skip_reason(v2, buf, cap);
        } else if (strcmp(k, "allOf") == 0 || strcmp(k, "anyOf") == 0 || strcmp(k, "oneOf") == 0) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) if (!r) r = skip_reason(e, buf, cap);
        } else if (strcmp(k, "not") == 0 || strcmp(k, "additionalProperties") == 0 || strcmp(k, "items") == 0) {
            r = skip_reason(v, buf, cap);
        }
        if (r) return r;
    }
    return NULL;
}

typedef struct tally {
    int run, pass, skip, failures;
} tally_t;

/* Runs every group of the suite file dir/name.json that the subset can run; adds to *total. */
static void run_file(const char *dir, const char *name, tally_t *total) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    json_error_t je;
    json_t *groups = json_load_file(path, 0, &je);
    cr_assert_not_null(groups, "%s: %s", path, je.text);
    int run = 0, pass = 0, skip = 0;
    size_t g;
    json_t *group;
    json_array_foreach(groups, g, group) {
        json_t *schema = json_object_get(group, "schema"), *tests = json_object_get(group, "tests");
        char buf[128];
        const char *why = skip_reason(schema, buf, sizeof buf);
        if (why) {
            skip += (int)json_array_size(tests);
            fprintf(stderr, "  skip %s / %s: %s\n", name, json_string_value(json_object_get(group, "description")),
                    why);
            continue;
        }
        rp_err_t err;
        rp_schema_t *s = rp_schema_compile(schema, &err);
        size_t t;
        json_t *tc;
        json_array_foreach(tests, t, tc) {
            run++;
            bool want = json_is_true(json_object_get(tc, "valid"));
            json_t *details = NULL;
            bool got = s && rp_schema_validate(s, json_object_get(tc, "data"), &details);
            if (s && got == want && (got || json_array_size(details) > 0)) {
                pass++;
            } else {
                total->failures++;
                fprintf(stderr, "FAIL %s / %s / %s: expected %s%s\n", name,
                        json_string_value(json_object_get(group, "description")),
                        json_string_value(json_object_get(tc, "description")), want ? "valid" : "invalid",
                        s ? "" : " (schema did not compile)");
            }
            json_decref(details);
        }
        rp_schema_free(s);
    }
    fprintf(stderr, "json-schema-test-suite draft7 %-26s run %3d passed %3d skipped %3d\n", name, run, pass, skip);
    total->run += run;
    total->pass += pass;
    total->skip += skip;
    json_decref(groups);
}

Test(json_schema_test_suite, draft7_supported_keywords, .timeout = 60) {
    const char *dir = getenv("JSON_SCHEMA_SUITE_DIR");
    if (!dir) dir = "/usr/share/json-schema-test-suite/tests/draft7";
    DIR *probe = opendir(dir);
    if (!probe) cr_skip_test("json-schema-test-suite not installed at %s (make deps installs it)", dir);
    closedir(probe);
    tally_t total = {0, 0, 0, 0};
    for (size_t f = 0; keyword_files[f]; f++)
        run_file(dir, keyword_files[f], &total);
    for (size_t f = 0; other_files[f]; f++)
        run_file(dir, other_files[f], &total);
    fprintf(stderr, "json-schema-test-suite draft7: %d cases run, %d passed, %d skipped (named above)\n", total.run,
            total.pass, total.skip);
    cr_assert_eq(total.failures, 0, "%d suite cases failed", total.failures);
    cr_assert_gt(total.run, 250, "too few suite cases ran: %d", total.run);
}
