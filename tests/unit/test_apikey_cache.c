/* Tests api/apikey_cache.c: when the gateway trusts what it holds of an API key, when it asks the
 * auth worker again, that only the key's hash is sent, and that failed look-ups are limited per
 * client, against a stand-in auth worker on a real in-process transport. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "apikey_cache.h"
#include "roles.h"
#include "rpc.h"
#include "timeutil.h"

#define ACCOUNT "0123456789abcdef01234567"
#define KEY_ID "0123456789abcdef0123456f"
static const unsigned char secret[] = "0123456789abcdef0123456789abcdef";

static atomic_int asked;
static atomic_int saw_a_key; /* a request body that held key text */
static char live_hash[RP_APIKEY_HASH_LEN];
static int64_t live_expires;
static int answer_status; /* 0: answer by the hash; else this status */

static void op_key(void *ctx, const rp_envelope_t *env, rp_reply_t *rep) {
    (void)ctx;
    atomic_fetch_add(&asked, 1);
    char *text = json_dumps(env->body, JSON_COMPACT);
    if (!text || strstr(text, "rpk_")) atomic_store(&saw_a_key, 1);
    free(text);
    const char *hash = json_string_value(json_object_get(env->body, "keyHash"));
    if (answer_status) {
        rp_reply_error(rep, answer_status, "STORE_UNAVAILABLE", "down", NULL);
    } else if (hash && strcmp(hash, live_hash) == 0) {
        rp_apikey_state_t st = {ACCOUNT, "game_1", RP_ROLE_GAME_SERVER, KEY_ID, live_expires};
        rp_reply_set(rep, 200, rp_apikey_state_to_json(&st));
    } else {
        rp_reply_error(rep, 404, "INVALID_API_KEY", "the API key is not valid", NULL);
    }
}

static const rp_route_op_t ops[] = {{"POST", RP_APIKEY_ROUTE, op_key}};
static const rp_service_t auth = {"auth", ops, 1, NULL, NULL, NULL, NULL};

static rp_transport_t *t;
static rp_apikey_cache_t *cache;
static char live_key[RP_APIKEY_LEN + 1];

static void start(int ttl_ms, int fail_rps, int fail_burst) {
    rp_err_t err;
    atomic_store(&asked, 0);
    atomic_store(&saw_a_key, 0);
    answer_status = 0;
    live_expires = 0;
    t = rp_transport_inproc_new(16);
    cr_assert(rp_transport_serve(t, RP_COMP_AUTH, rp_rpc_service_handler, (void *)&auth, 2, &err), "%s", err.message);
    cache = rp_apikey_cache_new(t, secret, sizeof secret - 1, ttl_ms, fail_rps, fail_burst, 64);
    rp_apikey_cache_mint(cache, live_key, live_hash);
}

static void teardown(void) {
    rp_apikey_cache_free(cache);
    rp_transport_free(t);
}

TestSuite(apikey_cache, .fini = teardown, .timeout = 30);

static rp_apikey_verdict_t check(const char *key, const char *client, rp_identity_t *who, rp_err_t *err) {
    char key_id[RP_OID_LEN];
    int retry = 0;
    rp_err_clear(err);
    return rp_apikey_cache_check(cache, key, strlen(key), client, rp_now_ms() + 5000, "test", who, key_id, &retry, err);
}

Test(apikey_cache, a_live_key_is_asked_once_and_only_its_hash_travels) {
    rp_identity_t who;
    rp_err_t err;
    char key_id[RP_OID_LEN];
    int retry;
    start(60000, 5, 5);
    cr_assert_eq(rp_apikey_cache_check(cache, live_key, strlen(live_key), "1.2.3.4", rp_now_ms() + 5000, NULL, &who,
                                       key_id, &retry, &err),
                 RP_APIKEY_OK, "%s", err.message);
    cr_assert(who.authenticated);
    cr_assert_str_eq(who.id, ACCOUNT);
    cr_assert_str_eq(who.username, "game_1");
    cr_assert_eq(who.roles, (unsigned)RP_ROLE_GAME_SERVER);
    cr_assert_str_eq(who.jti, "", "no token id: logout has nothing to revoke");
    cr_assert_str_eq(key_id, KEY_ID);
    cr_assert_eq(check(live_key, "1.2.3.4", &who, &err), RP_APIKEY_OK);
    cr_assert_eq(atomic_load(&asked), 1, "the second check was answered from the cache");
    cr_assert_eq(atomic_load(&saw_a_key), 0, "the key never left this process");
    rp_apikey_cache_forget_all(cache);
    cr_assert_eq(check(live_key, "1.2.3.4", &who, &err), RP_APIKEY_OK);
    cr_assert_eq(atomic_load(&asked), 2, "a forgotten answer is asked for again");
}

Test(apikey_cache, refusals_are_cached_and_malformed_keys_never_asked) {
    rp_identity_t who;
    rp_err_t err;
    start(60000, 5, 5);
    cr_assert_eq(check("rpk_nope", "1.2.3.4", &who, &err), RP_APIKEY_REFUSED);
    cr_assert_str_eq(err.code, "INVALID_API_KEY");
    cr_assert_eq(atomic_load(&asked), 0);
    const char *unknown = "rpk_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    cr_assert_eq(check(unknown, "1.2.3.4", &who, &err), RP_APIKEY_REFUSED);
    cr_assert_eq(check(unknown, "1.2.3.4", &who, &err), RP_APIKEY_REFUSED);
    cr_assert_str_eq(err.code, "INVALID_API_KEY");
    cr_assert_not(who.authenticated);
    cr_assert_eq(atomic_load(&asked), 1, "the refusal was cached");
}

Test(apikey_cache, failed_lookups_are_limited_per_client) {
    rp_identity_t who;
    rp_err_t err;
    char key[RP_APIKEY_LEN + 1], hash[RP_APIKEY_HASH_LEN];
    start(60000, 1, 2);
    for (int i = 0; i < 2; i++) {
        rp_apikey_cache_mint(cache, key, hash); /* unknown to the stand-in */
        cr_assert_eq(check(key, "6.6.6.6", &who, &err), RP_APIKEY_REFUSED);
    }
    rp_apikey_cache_mint(cache, key, hash);
    cr_assert_eq(check(key, "6.6.6.6", &who, &err), RP_APIKEY_LIMITED);
    cr_assert_str_eq(err.code, "RATE_LIMITED");
    cr_assert_eq(atomic_load(&asked), 2, "no look-up once the budget is spent");
    cr_assert_eq(check(live_key, "7.7.7.7", &who, &err), RP_APIKEY_OK, "another client is not held back");
}

Test(apikey_cache, a_grace_that_ends_while_cached_refuses_the_key) {
    rp_identity_t who;
    rp_err_t err;
    start(60000, 5, 5);
    live_expires = rp_now_ms() + 200;
    cr_assert_eq(check(live_key, "1.2.3.4", &who, &err), RP_APIKEY_OK);
    usleep(300 * 1000); /* the expiry itself is what is tested */
    cr_assert_eq(check(live_key, "1.2.3.4", &who, &err), RP_APIKEY_REFUSED);
    cr_assert_str_eq(err.code, "API_KEY_REVOKED");
    cr_assert_eq(atomic_load(&asked), 1, "judged from the cached expiry");
}

Test(apikey_cache, no_answer_is_unavailable_and_ttl_0_asks_every_time) {
    rp_identity_t who;
    rp_err_t err;
    start(0, 5, 5);
    cr_assert_eq(check(live_key, "1.2.3.4", &who, &err), RP_APIKEY_OK);
    cr_assert_eq(check(live_key, "1.2.3.4", &who, &err), RP_APIKEY_OK);
    cr_assert_eq(atomic_load(&asked), 2);
    answer_status = 503;
    cr_assert_eq(check(live_key, "1.2.3.4", &who, &err), RP_APIKEY_UNAVAILABLE);
    cr_assert_not(who.authenticated, "never admitted unchecked");
}

Test(apikey_cache, one_caller_renews_an_entry_ahead_of_its_end) {
    rp_identity_t who;
    rp_err_t err;
    start(400, 5, 5);
    cr_assert_eq(check(live_key, "1.2.3.4", &who, &err), RP_APIKEY_OK);
    usleep(320 * 1000); /* into the last quarter of the entry's 400 ms */
    cr_assert_eq(check(live_key, "1.2.3.4", &who, &err), RP_APIKEY_OK);
    cr_assert_eq(atomic_load(&asked), 2, "this caller renewed the entry");
    for (int i = 0; i < 10; i++)
        cr_assert_eq(check(live_key, "1.2.3.4", &who, &err), RP_APIKEY_OK);
    cr_assert_eq(atomic_load(&asked), 2, "the others used the renewed entry");
}
