/* mongo_driver.c - the C side of the MongoDB wire-contract tests (test_mongo_contract*.py): opens
 * the real MongoDB stores on a URI, runs one named scenario (one store operation, or one grant
 * body over the store) and prints the outcome as one JSON line on stdout. Single-threaded; logs
 * (rp_log) go to stderr.
 *
 *   mongo_driver <mongodb://...> <scenario>
 *
 * Exit status 0 when the scenario ran (whatever the store answered), 2 on bad usage. The ids in
 * mongo_driver.h are fixed so that the Python side can script replies and check filters. */
#include "mongo_driver.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

static json_t *error_json(const rp_err_t *e) {
    return json_pack("{s:i, s:s, s:s}", "status", rp_err_http_status(e->kind), "code", e->code, "message", e->message);
}

/* {ok: true, ...fields} or {ok: false, error}; takes ownership of fields. */
json_t *result(bool ok, const rp_err_t *e, json_t *fields) {
    json_t *out = fields ? fields : json_object();
    json_object_set_new(out, "ok", json_boolean(ok));
    if (!ok) json_object_set_new(out, "error", error_json(e));
    return out;
}

/* A list result {items, more}. */
json_t *page(bool ok, const rp_err_t *err, json_t *items, bool more) {
    return result(ok, err, ok ? json_pack("{s:o, s:b}", "items", items, "more", more) : NULL);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s <mongodb-uri> <scenario>\n", argv[0]);
        return 2;
    }
    const char *uri = argv[1], *scenario = argv[2];
    json_t *out = NULL;
    rp_log_set_component("mongo-contract");
    if (sodium_init() < 0) {
        fprintf(stderr, "sodium_init failed\n");
        return 1;
    }
    if (!(out = contract_event(uri, scenario)) && !(out = contract_auth(uri, scenario)) &&
        !(out = contract_webhook(uri, scenario)))
        out = contract_reward(uri, scenario);
    if (!out) {
        fprintf(stderr, "unknown scenario: %s\n", scenario);
        return 2;
    }
    char *line = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    printf("%s\n", line ? line : "{\"ok\":false}");
    free(line);
    json_decref(out);
    return 0;
}
