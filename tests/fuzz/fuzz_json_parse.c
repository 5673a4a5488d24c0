/* fuzz_json_parse.c - libFuzzer target for the depth-guarded JSON parse every untrusted body goes
 * through (rp_json_depth_ok, then jansson): the guard must never read outside its buffer, and on
 * text jansson accepts it must agree with the real nesting depth, so it neither lets a stack-
 * exhausting document through nor refuses a legitimate one. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "fuzz_util.h"
#include "json_util.h"

/* jansson refuses documents nested deeper than this itself, so parsing is safe up to it. */
#define JANSSON_LIMIT 2048

static int depth_of(const json_t *v) {
    int deepest = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m) {
            int d = depth_of(m);
            if (d > deepest) deepest = d;
        }
        return deepest + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m) {
            int d = depth_of(m);
            if (d > deepest) deepest = d;
        }
        return deepest + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    bool ok = rp_json_depth_ok(buf, size, RP_JSON_MAX_DEPTH);
    /* what the gateway does: measure first, parse only what passed */
    json_t *doc = NULL;
    if (ok || rp_json_depth_ok(buf, size, JANSSON_LIMIT))
        doc = json_loadb(buf, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    if (doc) {
        int depth = depth_of(doc);
        FUZZ_CHECK(ok == (depth <= RP_JSON_MAX_DEPTH));
        FUZZ_CHECK(rp_json_depth_ok(buf, size, depth));
        if (depth > 0) FUZZ_CHECK(!rp_json_depth_ok(buf, size, depth - 1));
        /* what is parsed is printed again (responses, digests): that must not fail either */
        char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
        FUZZ_CHECK(text != NULL);
        json_t *again = json_loads(text, JSON_DECODE_ANY, NULL);
        FUZZ_CHECK(again && json_equal(doc, again));
        json_decref(again);
        free(text);
        char hash[65];
        rp_json_request_hash("fuzz", doc, hash);
        FUZZ_CHECK(hash[64] == '\0');
        json_decref(doc);
    }
    return 0;
}
