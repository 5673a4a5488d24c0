/* Tests workers/auth/service_accounts.c on the SQLite store: the rules above the store (roles a
 * service account may hold, rotation's grace and the live-key limit, revocation, deletion, when a
 * key's last use is written) called as the auth worker calls them. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikey.h"
#include "auth/service_accounts.h"
#include "envelope_fixture.h"
#include "roles.h"

#define ADMIN_ID "5f000000000000000000000f"
#define T0 1767323045000LL

static char dir[64];
static rp_auth_store_t *store;
static rp_identity_t admin;

static void setup(void) {
    rp_err_t err;
    cr_assert(sodium_init() >= 0);
    snprintf(dir, sizeof dir, "/tmp/rp-sa-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    store = rp_auth_store_sqlite_open(dir, 4, &err);
    cr_assert_not_null(store, "%s", err.message);
    admin = signed_in(ADMIN_ID, "root", RP_ROLE_ADMIN);
}

static void teardown(void) {
    char cmd[96];
    store->ops->free(store);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(service_accounts, .init = setup, .fini = teardown, .timeout = 30);

typedef void (*op_fn)(rp_auth_store_t *, int64_t, const rp_envelope_t *, rp_reply_t *);

/* Runs op at now with params and body (both taken, may be NULL); returns the reply (clear it). */
static rp_reply_t call(op_fn op, int64_t now, json_t *params, json_t *body) {
    rp_envelope_t env;
    rp_reply_t rep;
    envelope_call(&env, "POST", "/auth/service-accounts", &admin);
    if (params) {
        json_decref(env.params);
        env.params = params;
    }
    env.body = body;
    rp_reply_init(&rep);
    op(store, now, &env, &rep);
    rp_envelope_clear(&env);
    return rep;
}

static const char *code_of(const rp_reply_t *rep) {
    return json_string_value(json_object_get(json_object_get(rep->body, "error"), "code"));
}

/* A fresh key hash, as the api would send. */
static const char *fresh_hash(char out[RP_APIKEY_HASH_LEN]) {
    rp_apikey_secret_t s;
    char key[RP_APIKEY_LEN + 1];
    rp_apikey_secret_init(&s, (const unsigned char *)"0123456789abcdef0123456789abcdef", 32);
    rp_apikey_mint(&s, key, out);
    return out;
}

/* Creates a service account; returns its id into id. */
static void create(const char *name, const char *role, char id[RP_OID_LEN], char hash[RP_APIKEY_HASH_LEN]) {
    rp_reply_t rep = call(rp_service_accounts_create, T0, NULL,
                          json_pack("{s:s, s:[s], s:s}", "name", name, "roles", role, "keyHash", fresh_hash(hash)));
    cr_assert_eq(rep.status, 201, "%d %s", rep.status, code_of(&rep));
    snprintf(id, RP_OID_LEN, "%s", json_string_value(json_object_get(rep.body, "id")));
    rp_reply_clear(&rep);
}

static int lookup(const char *hash, int64_t now, const char **code) {
    static char last[32];
    rp_reply_t rep = call(rp_service_accounts_lookup, now, NULL, json_pack("{s:s}", "keyHash", hash));
    int status = rep.status;
    snprintf(last, sizeof last, "%s", code_of(&rep) ? code_of(&rep) : "");
    if (code) *code = last;
    rp_reply_clear(&rep);
    return status;
}

Test(service_accounts, only_game_server_operator_and_auditor_roles) {
    char h[RP_APIKEY_HASH_LEN];
    const char *bad[] = {"ADMIN", "USER", "NOPE"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rp_reply_t rep =
            call(rp_service_accounts_create, T0, NULL,
                 json_pack("{s:s, s:[s], s:s}", "name", "svc_1", "roles", bad[i], "keyHash", fresh_hash(h)));
        cr_assert_eq(rep.status, 400, "%s accepted", bad[i]);
        cr_assert_str_eq(code_of(&rep), "VALIDATION_FAILED");
        rp_reply_clear(&rep);
    }
    rp_reply_t rep = call(rp_service_accounts_create, T0, NULL,
                          json_pack("{s:s, s:[s], s:s}", "name", "svc_1", "roles", "OPERATOR", "keyHash", "abc"));
    cr_assert_eq(rep.status, 400, "a keyHash that is no hash");
    rp_reply_clear(&rep);
    rp_service_account_t *page = NULL;
    size_t n = 1;
    bool more;
    rp_err_t err;
    cr_assert(store->ops->list_services(store, NULL, 10, &page, &n, &more, &err));
    cr_assert_eq(n, 0u, "nothing was created");
    free(page);
}

Test(service_accounts, grace_keeps_the_old_key_until_it_ends_and_live_keys_are_bounded) {
    char id[RP_OID_LEN], h0[RP_APIKEY_HASH_LEN], h[RP_APIKEY_HASH_LEN];
    const char *code;
    create("game_1", "GAME_SERVER", id, h0);
    cr_assert_eq(lookup(h0, T0, NULL), 200);
    /* a rotation with 60 s of grace: both keys live until T0 + 61 s */
    rp_reply_t rep = call(rp_service_accounts_rotate, T0 + 1000, json_pack("{s:s}", "id", id),
                          json_pack("{s:I, s:s}", "graceSeconds", (json_int_t)60, "keyHash", fresh_hash(h)));
    cr_assert_eq(rep.status, 201);
    rp_reply_clear(&rep);
    cr_assert_eq(lookup(h0, T0 + 60000, NULL), 200);
    cr_assert_eq(lookup(h, T0 + 60000, NULL), 200);
    cr_assert_eq(lookup(h0, T0 + 61000, &code), 404);
    cr_assert_str_eq(code, "API_KEY_REVOKED");
    /* keys rotated with grace pile up to RP_SERVICE_KEYS_MAX live ones (two now), then 409 */
    int live = 2;
    for (;; live++) {
        rep = call(rp_service_accounts_rotate, T0 + 2000, json_pack("{s:s}", "id", id),
                   json_pack("{s:I, s:s}", "graceSeconds", (json_int_t)3600, "keyHash", fresh_hash(h)));
        int status = rep.status;
        if (status != 201) cr_assert_str_eq(code_of(&rep), "TOO_MANY_KEYS");
        rp_reply_clear(&rep);
        if (status != 201) break;
        cr_assert_lt(live, RP_SERVICE_KEYS_MAX, "more live keys than the limit");
    }
    cr_assert_eq(live, RP_SERVICE_KEYS_MAX);
    rp_service_key_t keys[RP_SERVICE_KEYS_MAX];
    size_t n = 0;
    rp_err_t err;
    cr_assert(store->ops->service_keys(store, id, T0 + 2000, keys, RP_SERVICE_KEYS_MAX, &n, &err));
    cr_assert_eq(n, (size_t)RP_SERVICE_KEYS_MAX);
    /* without grace every live key dies at once and the new one is alone */
    rep = call(rp_service_accounts_rotate, T0 + 3000, json_pack("{s:s}", "id", id),
               json_pack("{s:s}", "keyHash", fresh_hash(h)));
    cr_assert_eq(rep.status, 201);
    rp_reply_clear(&rep);
    cr_assert(store->ops->service_keys(store, id, T0 + 3000, keys, RP_SERVICE_KEYS_MAX, &n, &err));
    cr_assert_eq(n, 1u);
    cr_assert_str_eq(keys[0].key_hash, h);
}

Test(service_accounts, the_last_use_is_written_at_most_once_a_minute) {
    char id[RP_OID_LEN], h[RP_APIKEY_HASH_LEN];
    rp_service_key_t k;
    rp_service_account_t a;
    bool found;
    rp_err_t err;
    create("tool_1", "AUDITOR", id, h);
    cr_assert_eq(lookup(h, T0 + 1000, NULL), 200);
    cr_assert_eq(lookup(h, T0 + 30000, NULL), 200);
    cr_assert(store->ops->find_key(store, h, &k, &a, &found, &err));
    cr_assert_eq(k.last_used_at, T0 + 1000, "not rewritten within the minute");
    cr_assert_eq(lookup(h, T0 + 62000, NULL), 200);
    cr_assert(store->ops->find_key(store, h, &k, &a, &found, &err));
    cr_assert_eq(k.last_used_at, T0 + 62000);
}

Test(service_accounts, revoke_and_delete) {
    char id[RP_OID_LEN], h[RP_APIKEY_HASH_LEN];
    const char *code;
    create("ops_1", "OPERATOR", id, h);
    rp_service_key_t k;
    rp_service_account_t a;
    bool found;
    rp_err_t err;
    cr_assert(store->ops->find_key(store, h, &k, &a, &found, &err));
    rp_reply_t rep =
        call(rp_service_accounts_revoke, T0 + 1000, json_pack("{s:s, s:s}", "id", id, "keyId", k.id), NULL);
    cr_assert_eq(rep.status, 200);
    rp_reply_clear(&rep);
    cr_assert_eq(lookup(h, T0 + 1000, &code), 404);
    cr_assert_str_eq(code, "API_KEY_REVOKED");
    rep = call(rp_service_accounts_revoke, T0 + 1000, json_pack("{s:s, s:s}", "id", id, "keyId", "bad"), NULL);
    cr_assert_eq(rep.status, 404);
    rp_reply_clear(&rep);
    rep = call(rp_service_accounts_delete, T0 + 2000, json_pack("{s:s}", "id", id), NULL);
    cr_assert_eq(rep.status, 200);
    rp_reply_clear(&rep);
    cr_assert_eq(lookup(h, T0 + 2000, &code), 404);
    cr_assert_str_eq(code, "INVALID_API_KEY");
    rep = call(rp_service_accounts_delete, T0 + 2000, json_pack("{s:s}", "id", id), NULL);
    cr_assert_eq(rep.status, 404);
    cr_assert_str_eq(code_of(&rep), "SERVICE_ACCOUNT_NOT_FOUND");
    rp_reply_clear(&rep);
    /* its name is free again */
    create("OPS_1", "OPERATOR", id, h);
}
