/* fuzz_envelope.c - libFuzzer target for the RPC envelope a worker receives (rp_envelope_parse)
 * and for the worker-side dispatcher around it (rp_rpc_service_handler): any bytes from the
 * broker must give a well-formed reply, and an envelope that parses must survive a round trip. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "fuzz_util.h"
#include "ids.h"
#include "log.h"
#include "roles.h"
#include "rpc.h"

/* An operation that reads everything an envelope carries, as real handlers do. */
static void op_echo(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    (void)ctx;
    json_t *o = json_pack("{s:s, s:s, s:O, s:O, s:b}", "method", env->method, "route", env->route, "params",
                          env->params, "query", env->query, "authenticated", env->caller.authenticated);
    if (env->body) json_object_set(o, "body", env->body);
    rp_reply_set(rep, 200, o);
}

/* An operation that leaves its reply empty: the dispatcher must still answer. */
static void op_silent(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    (void)ctx;
    (void)env;
    (void)rep;
}

static bool ping(void *ctx, rp_err_t *err) {
    (void)ctx;
    (void)err;
    return true;
}

static const rp_route_op_t ops[] = {
    {"POST", "/events/{id}/reward-requests", op_echo},
    {"GET", "/events", op_echo},
    {"DELETE", "/events/reward-definitions/{id}", op_silent},
};
static const rp_service_t service = {"fuzz", ops, sizeof ops / sizeof ops[0], NULL, ping, NULL, NULL};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    rp_log_set_level(RP_LOG_ERROR); /* a malformed envelope is logged as a warning: not noise here */
    return 0;
}

static void check_round_trip(const rp_envelope_t *a) {
    size_t len = 0;
    rp_envelope_t b;
    rp_err_t err;
    char *text = rp_envelope_serialize(a, &len);
    FUZZ_CHECK(text != NULL);
    FUZZ_CHECK(rp_envelope_parse(&b, text, len, &err));
    FUZZ_CHECK(strcmp(a->method, b.method) == 0 && strcmp(a->route, b.route) == 0);
    FUZZ_CHECK(json_equal(a->params, b.params) && json_equal(a->query, b.query));
    FUZZ_CHECK((a->body == NULL) == (b.body == NULL) && (!a->body || json_equal(a->body, b.body)));
    FUZZ_CHECK(a->caller.authenticated == b.caller.authenticated && a->caller.roles == b.caller.roles);
    FUZZ_CHECK(strcmp(a->caller.id, b.caller.id) == 0 && strcmp(a->caller.username, b.caller.username) == 0);
    FUZZ_CHECK(strcmp(a->caller.jti, b.caller.jti) == 0);
    FUZZ_CHECK(strcmp(a->request_id, b.request_id) == 0 && strcmp(a->idempotency_key, b.idempotency_key) == 0);
    FUZZ_CHECK(a->deadline_ms == b.deadline_ms);
    rp_envelope_clear(&b);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    rp_envelope_t env;
    rp_err_t err;
    rp_err_clear(&err);
    if (rp_envelope_parse(&env, buf, size, &err)) {
        FUZZ_CHECK(json_is_object(env.params) && json_is_object(env.query));
        FUZZ_CHECK(!env.caller.authenticated || rp_oid_valid(env.caller.id, strlen(env.caller.id)));
        FUZZ_CHECK((env.caller.roles & ~(unsigned)RP_ROLE_ALL) == 0);
        check_round_trip(&env);
    } else {
        FUZZ_CHECK(strcmp(err.code, "BAD_MESSAGE") == 0);
    }
    rp_envelope_clear(&env);

    /* the worker's side: whatever arrives, the answer is a reply the api can parse */
    size_t out_len = 0;
    char *out = rp_rpc_service_handler((void *)&service, buf, size, &out_len);
    FUZZ_CHECK(out != NULL);
    rp_reply_t rep;
    FUZZ_CHECK(rp_reply_parse(&rep, out, out_len, &err));
    FUZZ_CHECK(rep.status >= 200 && rep.status <= 599);
    rp_reply_clear(&rep);
    free(out);
    return 0;
}
