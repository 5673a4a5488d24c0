/* fuzz_jsonschema.c - libFuzzer target for the JSON Schema validator with the embedded schemas
 * of schemas/, fed as the gateway and the workers feed it. Input: a schema name (e.g.
 * "event.create"), a newline, then the instance's JSON text; an unknown name still picks a schema,
 * from its bytes, so every mutation reaches the validator. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "embedded.h"
#include "fuzz_util.h"
#include "json_util.h"
#include "schema_registry.h"

static rp_schema_registry_t *registry;
static size_t nschemas;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    rp_err_t err;
    registry = rp_schema_registry_new(&err);
    if (!registry) {
        fprintf(stderr, "fuzz_jsonschema: %s\n", err.message);
        abort();
    }
    while (rp_embedded_schemas[nschemas].name)
        nschemas++;
    return 0;
}

/* The schema named by the first line, or one picked from its bytes. */
static const rp_schema_t *pick(const char *name, size_t n) {
    char want[64];
    if (n < sizeof want) {
        memcpy(want, name, n);
        want[n] = '\0';
        const rp_schema_t *s = rp_schema_registry_get(registry, want);
        if (s) return s;
    }
    size_t h = 0;
    for (size_t i = 0; i < n; i++)
        h = h * 31 + (unsigned char)name[i];
    return rp_schema_registry_get(registry, rp_embedded_schemas[h % nschemas].name);
}

/* What the validator promises about its details: 1..50 entries of {field, reason} strings,
 * fields being JSON pointers. */
static void check_details(const json_t *details) {
    FUZZ_CHECK(json_is_array(details));
    FUZZ_CHECK(json_array_size(details) >= 1 && json_array_size(details) <= 50);
    size_t i;
    json_t *d;
    json_array_foreach(details, i, d) {
        const char *field = json_string_value(json_object_get(d, "field"));
        FUZZ_CHECK(field != NULL && (field[0] == '\0' || field[0] == '/'));
        FUZZ_CHECK(json_is_string(json_object_get(d, "reason")));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    const char *nl = memchr(buf, '\n', size);
    size_t nlen = nl ? (size_t)(nl - buf) : 0;
    const char *text = nl ? nl + 1 : buf;
    size_t tlen = size - (size_t)(text - buf);
    const rp_schema_t *s = pick(buf, nlen);
    /* deeper than the gateway lets through, so the validator's own depth bound is exercised too */
    if (!rp_json_depth_ok(text, tlen, 2 * RP_JSON_MAX_DEPTH)) return 0;
    json_t *doc = json_loadb(text, tlen, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    if (!doc) return 0;
    json_t *details = NULL;
    bool valid = rp_schema_validate(s, doc, &details);
    FUZZ_CHECK(valid == (details == NULL));
    if (!valid) check_details(details);
    FUZZ_CHECK(rp_schema_validate(s, doc, NULL) == valid);
    json_decref(details);
    json_decref(doc);
    return 0;
}
