/* Tests workers/auth (auth_service.c, auth_store_sqlite.c, password.c) through the RPC handler,
 * the way the api reaches them: serialized envelopes in, serialized replies out. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth_service.h"
#include "accounts.h"
#include "auth/password.h"
#include "envelope_fixture.h"
#include "roles.h"
#include "run_together.h"
#include "session.h"
#include "timeutil.h"
#include "token.h"

typedef struct kv {
    const char *k, *v;
} kv_t;
static kv_t env_vars[16];
static char dir[64];
static rp_config_t cfg;
static rp_auth_worker_t *worker;
static int64_t fake_now;
static int64_t clock_fn(void) {
    return fake_now;
}

static const char *getter(const char *name, void *ud) {
    (void)ud;
    for (kv_t *p = env_vars; p->k; p++)
        if (strcmp(p->k, name) == 0) return p->v;
    return NULL;
}

static void start(void) {
    rp_err_t err;
    cr_assert(rp_config_load(&cfg, getter, NULL, &err), "%s", err.message);
    worker = rp_auth_worker_new(&cfg, &err);
    cr_assert_not_null(worker, "%s", err.message);
    rp_auth_worker_set_clock(worker, clock_fn);
}

static void setup(void) {
    cr_assert(sodium_init() >= 0);
    snprintf(dir, sizeof dir, "/tmp/rp-auth-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    kv_t vars[] = {{"JWT_SECRET", "0123456789abcdef0123456789abcdef-unit"},
                   {"SQLITE_DIR", dir},
                   {"PASSWORD_HASH", "min"},
                   {"ADMIN_USERNAME", "root_admin"},
                   {"ADMIN_PASSWORD", "rootpassword"},
                   {NULL, NULL}};
    memcpy(env_vars, vars, sizeof vars);
    fake_now = rp_now_ms();
    start();
}

static void teardown(void) {
    rp_auth_worker_free(worker);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(auth, .init = setup, .fini = teardown, .timeout = 30);

/* The service the api sends route to: the hashing operations have a queue of their own. */
static const rp_service_t *service_for(const char *route) {
    bool hashes = strcmp(route, "/auth/register") == 0 || strcmp(route, "/auth/login") == 0 ||
                  strcmp(route, "/auth/password") == 0;
    return hashes ? rp_auth_worker_login_service(worker) : rp_auth_worker_service(worker);
}

/* Sends env through the service handler, serialized the way the api sends it; returns the
 * reply (clear it). No reply may carry a password hash. */
static rp_reply_t handle(const rp_envelope_t *env) {
    rp_reply_t rep;
    rp_err_t err;
    size_t len, out_len;
    char *req = rp_envelope_serialize(env, &len);
    char *out = rp_rpc_service_handler((void *)service_for(env->route), req, len, &out_len);
    cr_assert(rp_reply_parse(&rep, out, out_len, &err));
    cr_assert_null(strstr(out, "argon2"), "a reply leaked a password hash: %s", out);
    free(req);
    free(out);
    return rep;
}

/* Sends one operation through the service handler; returns the reply (clear it). */
static rp_reply_t call(const char *method, const char *route, const char *body, const rp_identity_t *who,
                       const char *param_id) {
    rp_envelope_t env;
    envelope_call(&env, method, route, who);
    snprintf(env.request_id, sizeof env.request_id, "test");
    if (body) env.body = json_loads(body, 0, NULL);
    if (param_id) json_object_set_new(env.params, "id", json_string(param_id));
    env.deadline_ms = rp_now_ms() + 10000;
    rp_reply_t rep = handle(&env);
    rp_envelope_clear(&env);
    return rep;
}

/* A registration of body by an anonymous caller; returns the reply (clear it). */
static rp_reply_t registration(const char *body) {
    return call("POST", "/auth/register", body, NULL, NULL);
}

static const char *code_of(const rp_reply_t *r) {
    return json_string_value(json_object_get(json_object_get(r->body, "error"), "code"));
}

static int status_of(const char *method, const char *route, const char *body, const rp_identity_t *who) {
    rp_reply_t r = call(method, route, body, who, NULL);
    int s = r.status;
    rp_reply_clear(&r);
    return s;
}

static int64_t last_version; /* the ver claim of the last login's access token */

static rp_identity_t identity_from_login(const char *user, const char *pw, char *refresh, size_t cap) {
    char body[256];
    snprintf(body, sizeof body, "{\"username\":\"%s\",\"password\":\"%s\"}", user, pw);
    rp_reply_t r = call("POST", "/auth/login", body, NULL, NULL);
    cr_assert_eq(r.status, 200, "login %s: %d", user, r.status);
    rp_identity_t who = {.authenticated = true};
    json_t *u = json_object_get(r.body, "user");
    snprintf(who.id, sizeof who.id, "%s", json_string_value(json_object_get(u, "id")));
    snprintf(who.username, sizeof who.username, "%s", json_string_value(json_object_get(u, "username")));
    cr_assert(rp_roles_from_json(json_object_get(u, "roles"), &who.roles, NULL));
    /* as the gateway sends it: with the access token's id and expiry */
    const char *access = json_string_value(json_object_get(r.body, "accessToken"));
    rp_identity_t checked;
    rp_token_claims_t claims;
    rp_err_t err;
    cr_assert(rp_token_verify(cfg.jwt_secret, cfg.jwt_secret_len, access, strlen(access), fake_now / 1000, &checked,
                              &claims, &err),
              "%s", err.message);
    snprintf(who.jti, sizeof who.jti, "%s", claims.jti);
    who.token_exp = claims.exp;
    last_version = claims.ver;
    if (refresh) snprintf(refresh, cap, "%s", json_string_value(json_object_get(r.body, "refreshToken")));
    rp_reply_clear(&r);
    return who;
}

static void register_user(const char *name, const char *email) {
    char body[256];
    snprintf(body, sizeof body, "{\"username\":\"%s\",\"email\":\"%s\",\"password\":\"password123\"}", name, email);
    rp_reply_t r = registration(body);
    cr_assert_eq(r.status, 201, "register %s: %d %s", name, r.status, code_of(&r));
    rp_reply_clear(&r);
}

Test(auth, register_and_duplicates_case_insensitive) {
    rp_reply_t r =
        registration("{\"username\":\"Alice\",\"email\":\"Alice@Example.com\",\"password\":\"password123\"}");
    cr_assert_eq(r.status, 201);
    cr_assert_str_eq(json_string_value(json_object_get(r.body, "username")), "Alice");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(r.body, "roles"), 0)), "USER");
    cr_assert_eq(json_string_length(json_object_get(r.body, "id")), 24u);
    rp_reply_clear(&r);
    r = registration("{\"username\":\"ALICE\",\"email\":\"other@example.com\",\"password\":\"password123\"}");
    cr_assert_eq(r.status, 409);
    cr_assert_str_eq(code_of(&r), "USERNAME_TAKEN");
    rp_reply_clear(&r);
    r = registration("{\"username\":\"bob\",\"email\":\"alice@EXAMPLE.com\",\"password\":\"password123\"}");
    cr_assert_eq(r.status, 409);
    cr_assert_str_eq(code_of(&r), "EMAIL_TAKEN");
    rp_reply_clear(&r);
}

Test(auth, register_rejects_each_invalid_field) {
    rp_reply_t r = registration("{\"username\":\"a-b\",\"email\":\"nope\",\"password\":\"short\",\"role\":\"ADMIN\"}");
    cr_assert_eq(r.status, 400);
    cr_assert_str_eq(code_of(&r), "VALIDATION_FAILED");
    json_t *d = json_object_get(json_object_get(r.body, "error"), "details");
    cr_assert_eq(json_array_size(d), 4u);
    const char *want[] = {"/role", "/username", "/email", "/password"};
    for (size_t i = 0; i < 4; i++) {
        bool seen = false;
        for (size_t k = 0; k < json_array_size(d); k++)
            seen = seen || strcmp(json_string_value(json_object_get(json_array_get(d, k), "field")), want[i]) == 0;
        cr_assert(seen, "no detail for %s", want[i]);
    }
    rp_reply_clear(&r);
    cr_assert_eq(
        status_of("POST", "/auth/register", "{\"username\":7,\"email\":\"a@b.co\",\"password\":\"password123\"}", NULL),
        400);
    cr_assert_eq(status_of("POST", "/auth/register", "{\"email\":\"a@b.co\",\"password\":\"password123\"}", NULL), 400);
    char big[300];
    memset(big, 'p', 129);
    big[129] = '\0';
    char body[400];
    snprintf(body, sizeof body, "{\"username\":\"longpw\",\"email\":\"l@b.co\",\"password\":\"%s\"}", big);
    cr_assert_eq(status_of("POST", "/auth/register", body, NULL), 400);
    /* nothing was written: the names are still free */
    register_user("longpw", "l@b.co");
}

Test(auth, login_by_username_or_email_and_wrong_password) {
    register_user("carol", "carol@example.com");
    identity_from_login("carol", "password123", NULL, 0);
    identity_from_login("CAROL@example.com", "password123", NULL, 0);
    rp_reply_t r = call("POST", "/auth/login", "{\"username\":\"carol\",\"password\":\"wrong-password\"}", NULL, NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(code_of(&r), "INVALID_CREDENTIALS");
    rp_reply_clear(&r);
    r = call("POST", "/auth/login", "{\"username\":\"nobody\",\"password\":\"password123\"}", NULL, NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(code_of(&r), "INVALID_CREDENTIALS");
    rp_reply_clear(&r);
}

Test(auth, lockout_after_five_failures_until_the_window_passes) {
    register_user("dave", "dave@example.com");
    for (int i = 0; i < 5; i++) {
        fake_now += 1000;
        cr_assert_eq(status_of("POST", "/auth/login", "{\"username\":\"dave\",\"password\":\"bad-password\"}", NULL),
                     401);
    }
    fake_now += 1000;
    rp_reply_t r = call("POST", "/auth/login", "{\"username\":\"dave\",\"password\":\"password123\"}", NULL, NULL);
    cr_assert_eq(r.status, 429);
    cr_assert_str_eq(code_of(&r), "ACCOUNT_LOCKED");
    /* failures at +1..+5 s, now +6 s: locked until the first of them is 15 minutes old */
    cr_assert_eq(r.retry_after_s, 895);
    rp_reply_clear(&r);
    fake_now += 894 * 1000;
    cr_assert_eq(status_of("POST", "/auth/login", "{\"username\":\"dave\",\"password\":\"password123\"}", NULL), 429);
    fake_now += 2000;
    identity_from_login("dave", "password123", NULL, 0);
    /* a success clears the count: one new failure does not lock */
    cr_assert_eq(status_of("POST", "/auth/login", "{\"username\":\"dave\",\"password\":\"bad-password\"}", NULL), 401);
    identity_from_login("dave", "password123", NULL, 0);
}

Test(auth, refresh_rotates_and_reuse_revokes_the_family) {
    char r1[128], body[256];
    register_user("erin", "erin@example.com");
    identity_from_login("erin", "password123", r1, sizeof r1);
    snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", r1);
    rp_reply_t r = call("POST", "/auth/refresh", body, NULL, NULL);
    cr_assert_eq(r.status, 200);
    char r2[128];
    snprintf(r2, sizeof r2, "%s", json_string_value(json_object_get(r.body, "refreshToken")));
    cr_assert_str_neq(r1, r2);
    cr_assert_not_null(json_object_get(r.body, "accessToken"));
    rp_reply_clear(&r);
    /* the old one comes back: 401 and the newest one dies with it */
    r = call("POST", "/auth/refresh", body, NULL, NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(code_of(&r), "REFRESH_TOKEN_REUSED");
    rp_reply_clear(&r);
    snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", r2);
    cr_assert_eq(status_of("POST", "/auth/refresh", body, NULL), 401);
    cr_assert_eq(status_of("POST", "/auth/refresh", "{\"refreshToken\":\"made-up\"}", NULL), 401);
}

Test(auth, refresh_expires) {
    char r1[128], body[256];
    register_user("frank", "frank@example.com");
    identity_from_login("frank", "password123", r1, sizeof r1);
    fake_now += cfg.refresh_expires_s * 1000 + 1;
    snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", r1);
    rp_reply_t r = call("POST", "/auth/refresh", body, NULL, NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(code_of(&r), "INVALID_REFRESH_TOKEN");
    rp_reply_clear(&r);
}

Test(auth, logout_revokes_only_own_tokens) {
    char mine[128], theirs[128], body[256];
    register_user("gina", "gina@example.com");
    register_user("hank", "hank@example.com");
    rp_identity_t gina = identity_from_login("gina", "password123", mine, sizeof mine);
    identity_from_login("hank", "password123", theirs, sizeof theirs);
    snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", theirs);
    cr_assert_eq(status_of("POST", "/auth/logout", body, &gina), 200);
    cr_assert_eq(status_of("POST", "/auth/refresh", body, NULL), 200, "someone else's token must survive");
    snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", mine);
    cr_assert_eq(status_of("POST", "/auth/logout", body, &gina), 200);
    cr_assert_eq(status_of("POST", "/auth/refresh", body, NULL), 401);
}

Test(auth, me) {
    register_user("ivy", "ivy@example.com");
    rp_identity_t ivy = identity_from_login("ivy", "password123", NULL, 0);
    rp_reply_t r = call("GET", "/auth/me", NULL, &ivy, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(json_string_value(json_object_get(r.body, "email")), "ivy@example.com");
    cr_assert_null(json_object_get(r.body, "password"));
    cr_assert_null(json_object_get(r.body, "passwordHash"));
    rp_reply_clear(&r);
}

Test(auth, admin_lists_users_in_pages) {
    for (int i = 0; i < 5; i++) {
        char n[16], e[32];
        snprintf(n, sizeof n, "user%d", i);
        snprintf(e, sizeof e, "u%d@example.com", i);
        register_user(n, e);
    }
    rp_identity_t admin = identity_from_login("root_admin", "rootpassword", NULL, 0);
    cr_assert(admin.roles & RP_ROLE_ADMIN);
    rp_identity_t user = identity_from_login("user0", "password123", NULL, 0);
    cr_assert_eq(status_of("GET", "/auth/users", NULL, &user), 403);
    /* 6 accounts (admin + 5) in pages of 4 */
    size_t seen = 0;
    char cursor[32] = "";
    for (int page = 0; page < 3; page++) {
        rp_envelope_t env;
        envelope_call(&env, "GET", "/auth/users", &admin);
        env.deadline_ms = rp_now_ms() + 5000;
        json_object_set_new(env.query, "limit", json_string("4"));
        if (cursor[0]) json_object_set_new(env.query, "cursor", json_string(cursor));
        rp_reply_t rep = handle(&env);
        cr_assert_eq(rep.status, 200);
        seen += json_array_size(json_object_get(rep.body, "items"));
        json_t *next = json_object_get(rep.body, "nextCursor");
        if (json_is_string(next))
            snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        else
            cursor[0] = '\0';
        rp_reply_clear(&rep);
        rp_envelope_clear(&env);
        if (!cursor[0]) break;
    }
    cr_assert_eq(seen, 6u);
}

Test(auth, set_roles_audited_and_last_admin_kept) {
    register_user("jack", "jack@example.com");
    rp_identity_t admin = identity_from_login("root_admin", "rootpassword", NULL, 0);
    rp_identity_t jack = identity_from_login("jack", "password123", NULL, 0);
    rp_reply_t r = call("PUT", "/auth/users/{id}/roles", "{\"roles\":[\"USER\",\"GAME_SERVER\"]}", &admin, jack.id);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(json_object_get(r.body, "roles")), 2u);
    rp_reply_clear(&r);
    jack = identity_from_login("jack", "password123", NULL, 0);
    cr_assert_eq(jack.roles, RP_ROLE_USER | RP_ROLE_GAME_SERVER);
    r = call("PUT", "/auth/users/{id}/roles", "{\"roles\":[\"ROOT\"]}", &admin, jack.id);
    cr_assert_eq(r.status, 400);
    rp_reply_clear(&r);
    r = call("PUT", "/auth/users/{id}/roles", "{\"roles\":[\"USER\"]}", &admin, "65f0a1b2c3d4e5f601234567");
    cr_assert_eq(r.status, 404);
    rp_reply_clear(&r);
    r = call("PUT", "/auth/users/{id}/roles", "{\"roles\":[\"USER\"]}", &jack, admin.id);
    cr_assert_eq(r.status, 403);
    rp_reply_clear(&r);
    r = call("PUT", "/auth/users/{id}/roles", "{\"roles\":[\"USER\"]}", &admin, admin.id);
    cr_assert_eq(r.status, 409);
    cr_assert_str_eq(code_of(&r), "LAST_ADMIN");
    rp_reply_clear(&r);
    /* the audit row exists, with before and after */
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "test \"$(sqlite3 %s/auth.db \"SELECT before || '>' || after FROM audit_logs WHERE target_id = '%s' AND "
             "action = 'user.roles.update'\")\" = '[\"USER\"]>[\"USER\",\"GAME_SERVER\"]'",
             dir, jack.id);
    cr_assert_eq(system(cmd), 0, "audit entry missing or wrong");
}

Test(auth, bootstrap_admin_is_never_overwritten) {
    rp_auth_worker_free(worker);
    env_vars[4].v = "a-different-password";
    start();
    identity_from_login("root_admin", "rootpassword", NULL, 0);
    cr_assert_eq(
        status_of("POST", "/auth/login", "{\"username\":\"root_admin\",\"password\":\"a-different-password\"}", NULL),
        401);
}

/* ---- password.c ---- */

/* rp_hasher_check on a place of its own. */
static bool check(rp_hasher_t *h, const char *stored, const char *pw, size_t len) {
    cr_assert(rp_hasher_admit(h, NULL));
    return rp_hasher_check(h, stored, pw, len);
}

Test(password, hash_verify_and_rehash) {
    rp_hasher_t *h = rp_hasher_new("min", 2, 1);
    char out[RP_HASH_LEN];
    rp_err_t err;
    cr_assert(rp_hasher_hash(h, "correct horse", 13, out, &err));
    cr_assert(strncmp(out, "$argon2id$", 10) == 0);
    cr_assert(check(h, out, "correct horse", 13));
    cr_assert_not(check(h, out, "correct hors", 12));
    cr_assert_not(check(h, "$argon2id$garbage", "correct horse", 13));
    cr_assert_not(check(h, NULL, "correct horse", 13), "the dummy check never matches");
    cr_assert_not(rp_hasher_needs_rehash(h, out));
    rp_hasher_t *other = rp_hasher_new("interactive", 1, 0);
    cr_assert(rp_hasher_needs_rehash(other, out));
    cr_assert_null(rp_hasher_new("none", 1, 0));
    rp_hasher_free(other);
    rp_hasher_free(h);
}

/* The default cost is OWASP's argon2id m=12 MiB, t=3, p=1: the hash says so, and it keeps an auth
 * process's peak memory per concurrent hash at 12 MiB instead of the interactive 64 MiB. */
Test(password, standard_cost_is_argon2id_12_mib_3_passes) {
    rp_hasher_t *h = rp_hasher_new("standard", 1, 0);
    char out[RP_HASH_LEN];
    rp_err_t err;
    cr_assert_not_null(h);
    cr_assert(rp_hasher_hash(h, "correct horse", 13, out, &err));
    cr_assert(strstr(out, "$m=12288,t=3,p=1$") != NULL, "%s", out);
    cr_assert(check(h, out, "correct horse", 13));
    rp_hasher_t *interactive = rp_hasher_new("interactive", 1, 0);
    cr_assert(rp_hasher_needs_rehash(h, "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG"));
    cr_assert(rp_hasher_needs_rehash(interactive, out));
    rp_hasher_free(interactive);
    rp_hasher_free(h);
}

static void *hash_many(void *p) {
    rp_hasher_t *h = p;
    char out[RP_HASH_LEN];
    for (int i = 0; i < 5; i++)
        rp_hasher_hash(h, "pw-pw-pw-pw", 11, out, NULL);
    return NULL;
}

Test(password, concurrency_is_bounded) {
    rp_hasher_t *h = rp_hasher_new("min", 2, 4); /* 6 places: none of the 6 threads is refused */
    run_together(6, hash_many, h);
    cr_assert_leq(rp_hasher_peak(h), 2);
    cr_assert_geq(rp_hasher_peak(h), 1);
    rp_hasher_free(h);
}

/* threads + queue places, no more: the next hash is refused at once, and a place given back
 * (or a hash finished) lets the next one in. */
Test(password, a_full_queue_refuses_at_once) {
    rp_hasher_t *h = rp_hasher_new("min", 1, 1);
    char out[RP_HASH_LEN];
    rp_err_t err;
    cr_assert(rp_hasher_admit(h, &err));
    cr_assert(rp_hasher_admit(h, &err));
    cr_assert_not(rp_hasher_admit(h, &err));
    cr_assert_str_eq(err.code, "OVERLOADED");
    cr_assert_eq(rp_err_http_status(err.kind), 503);
    cr_assert_not(rp_hasher_hash(h, "pw-pw-pw-pw", 11, out, &err));
    cr_assert_str_eq(err.code, "OVERLOADED");
    rp_hasher_leave(h);
    cr_assert(rp_hasher_hash(h, "pw-pw-pw-pw", 11, out, &err), "%s", err.message);
    cr_assert(rp_hasher_hash(h, "pw-pw-pw-pw", 11, out, &err), "a finished hash gives its place back");
    cr_assert_not(rp_hasher_check(h, out, "other-pw", 8)); /* uses the place still held */
    cr_assert(check(h, out, "pw-pw-pw-pw", 11));
    cr_assert(check(h, out, "pw-pw-pw-pw", 11));
    rp_hasher_free(h);
}

/* Every place on the hashing queue taken (as by a login flood): register and login answer 503
 * OVERLOADED with Retry-After at once, while the calls that need no hash are still served. */
Test(auth, a_full_hashing_queue_answers_overloaded_and_me_still_works) {
    register_user("olga", "olga@example.com");
    rp_identity_t olga = identity_from_login("olga", "password123", NULL, 0);
    rp_hasher_t *h = rp_auth_worker_hasher(worker);
    int taken = 0;
    while (rp_hasher_admit(h, NULL))
        taken++;
    cr_assert_eq(taken, cfg.password_hash_concurrency + cfg.password_hash_queue);
    const char *calls[][2] = {{"/auth/login", "{\"username\":\"olga\",\"password\":\"password123\"}"},
                              {"/auth/login", "{\"username\":\"nobody\",\"password\":\"password123\"}"},
                              {"/auth/register", "{\"username\":\"pete\",\"email\":\"p@example.com\","
                                                 "\"password\":\"password123\"}"}};
    for (size_t i = 0; i < 3; i++) {
        rp_reply_t r = call("POST", calls[i][0], calls[i][1], NULL, NULL);
        cr_assert_eq(r.status, 503, "%s: %d", calls[i][0], r.status);
        cr_assert_str_eq(code_of(&r), "OVERLOADED");
        cr_assert_eq(r.retry_after_s, 1);
        rp_reply_clear(&r);
    }
    cr_assert_eq(status_of("GET", "/auth/me", NULL, &olga), 200);
    /* a refusal for a full queue is no failed password: nothing counts toward the lockout */
    for (int i = 0; i < taken; i++)
        rp_hasher_leave(h);
    for (int i = 0; i < cfg.login_max_failures - 1; i++)
        cr_assert_eq(status_of("POST", "/auth/login", "{\"username\":\"olga\",\"password\":\"bad-password\"}", NULL),
                     401);
    identity_from_login("olga", "password123", NULL, 0);
    cr_assert_eq(status_of("POST", "/auth/register", calls[2][1], NULL), 201);
}

typedef struct wrong_race {
    pthread_mutex_t mu;
    int invalid, locked, other;
} wrong_race_t;

static void *wrong_login(void *p) {
    wrong_race_t *w = p;
    rp_reply_t r = call("POST", "/auth/login", "{\"username\":\"rita\",\"password\":\"bad-password\"}", NULL, NULL);
    const char *code = r.status >= 400 ? code_of(&r) : "";
    pthread_mutex_lock(&w->mu);
    if (r.status == 401 && strcmp(code, "INVALID_CREDENTIALS") == 0)
        w->invalid++;
    else if (r.status == 429 && strcmp(code, "ACCOUNT_LOCKED") == 0)
        w->locked++;
    else
        w->other++;
    pthread_mutex_unlock(&w->mu);
    rp_reply_clear(&r);
    return NULL;
}

/* The lockout is counted atomically: 16 wrong passwords at once check exactly
 * LOGIN_MAX_FAILURES of them (once 8 were checked against a limit of 5); the rest are locked
 * out without a hash, and the store holds no more failures than the limit. */
Test(auth, sixteen_parallel_wrong_passwords_check_at_most_the_limit) {
    rp_auth_worker_free(worker);
    env_vars[5] = (kv_t){"WORKER_THREADS", "32"}; /* room for all 16 on the hashing queue */
    env_vars[6] = (kv_t){"PASSWORD_HASH_QUEUE", "16"};
    env_vars[7] = (kv_t){NULL, NULL};
    start();
    register_user("rita", "rita@example.com");
    wrong_race_t w = {.mu = PTHREAD_MUTEX_INITIALIZER};
    run_together(16, wrong_login, &w);
    cr_assert_eq(w.other, 0);
    cr_assert_eq(w.invalid, cfg.login_max_failures, "%d passwords checked, limit %d", w.invalid,
                 cfg.login_max_failures);
    cr_assert_eq(w.locked, 16 - cfg.login_max_failures);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "test \"$(sqlite3 %s/auth.db 'SELECT count(*) FROM login_failures')\" = %d", dir,
             cfg.login_max_failures);
    cr_assert_eq(system(cmd), 0, "the store holds another number of failures");
}

/* Someone registered the bootstrap admin's name first: the worker refuses to start, saying why,
 * rather than run with no administrator. */
Test(auth, a_bootstrap_name_held_by_a_non_admin_refuses_start) {
    register_user("early_bird", "bird@example.com");
    rp_auth_worker_free(worker);
    worker = NULL;
    env_vars[3].v = "early_bird";
    rp_err_t err;
    cr_assert(rp_config_load(&cfg, getter, NULL, &err), "%s", err.message);
    cr_assert_null(rp_auth_worker_new(&cfg, &err));
    cr_assert_str_eq(err.code, "CONFIG_INVALID");
    cr_assert(strstr(err.message, "ADMIN_USERNAME early_bird is held by an account that is not an administrator"), "%s",
              err.message);
    cr_assert_null(strchr(err.message, '\n'), "one line");
    /* the name in another case is the same account */
    env_vars[3].v = "EARLY_BIRD";
    cr_assert(rp_config_load(&cfg, getter, NULL, &err), "%s", err.message);
    cr_assert_null(rp_auth_worker_new(&cfg, &err));
    /* an administrator under that name is the bootstrap admin: start goes on */
    env_vars[3].v = "root_admin";
    start();
}

/* The status svc answers env with. */
static int handle_on(const rp_service_t *svc, const rp_envelope_t *env) {
    rp_reply_t rep;
    size_t len, out_len;
    char *req = rp_envelope_serialize(env, &len);
    char *out = rp_rpc_service_handler((void *)svc, req, len, &out_len);
    cr_assert(rp_reply_parse(&rep, out, out_len, NULL));
    int status = rep.status;
    rp_reply_clear(&rep);
    free(req);
    free(out);
    return status;
}

/* The status of an account lookup with body, on the accounts service. */
static int accounts_status(const char *body) {
    rp_envelope_t env;
    envelope_call(&env, "POST", RP_ACCOUNTS_ROUTE, NULL);
    env.body = json_loads(body, 0, NULL);
    env.deadline_ms = rp_now_ms() + 10000;
    int status = handle_on(rp_auth_worker_accounts_service(worker), &env);
    rp_envelope_clear(&env);
    return status;
}

/* The other workers' question (accounts.h), asked through a real transport the way they ask it:
 * answers follow the order of the ids, duplicates included, and bad bodies change nothing. */
Test(auth, accounts_lookup_tells_known_from_unknown_ids) {
    register_user("kim", "kim@example.com");
    rp_identity_t kim = identity_from_login("kim", "password123", NULL, 0);
    rp_err_t err;
    rp_transport_t *t = rp_transport_inproc_new(16);
    cr_assert(rp_transport_serve(t, RP_COMP_ACCOUNTS, rp_rpc_service_handler,
                                 (void *)rp_auth_worker_accounts_service(worker), 2, &err),
              "%s", err.message);
    const char *ids[] = {kim.id, "0123456789abcdef01234567", kim.id};
    rp_account_state_t st[3];
    cr_assert(rp_accounts_lookup(t, ids, 3, rp_now_ms() + 5000, "test", st, &err), "%s", err.message);
    cr_assert_eq(st[0], RP_ACCOUNT_ACTIVE);
    cr_assert_eq(st[1], RP_ACCOUNT_UNKNOWN);
    cr_assert_eq(st[2], RP_ACCOUNT_ACTIVE);
    rp_transport_free(t);

    const char *bad[] = {"{}", "{\"ids\":[]}", "{\"ids\":[\"nothex\"]}", "{\"ids\":[7]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(accounts_status(bad[i]), 400, "%s", bad[i]);
    /* the narrow door answers nothing else, and the api's door does not answer lookups */
    rp_envelope_t env;
    envelope_call(&env, "GET", "/auth/me", &kim);
    env.deadline_ms = rp_now_ms() + 10000;
    cr_assert_eq(handle_on(rp_auth_worker_accounts_service(worker), &env), 404);
    rp_envelope_clear(&env);
    cr_assert_eq(status_of("POST", RP_ACCOUNTS_ROUTE, "{\"ids\":[\"0123456789abcdef01234567\"]}", NULL), 404);
}

/* The hashing operations are served on their own queue (RP_COMP_LOGIN) and only there, so a
 * flood of them never waits in front of /auth/me; the api's door answers everything else. */
Test(auth, hashing_operations_have_a_door_of_their_own) {
    register_user("lena", "lena@example.com");
    rp_identity_t lena = identity_from_login("lena", "password123", NULL, 0);
    const rp_service_t *login = rp_auth_worker_login_service(worker), *api = rp_auth_worker_service(worker);
    static const char *const hashing[][2] = {{"/auth/login", "{\"username\":\"lena\",\"password\":\"x\"}"},
                                             {"/auth/register", "{}"},
                                             {"/auth/password", "{}"}};
    for (size_t i = 0; i < 3; i++) {
        rp_envelope_t env;
        envelope_call(&env, "POST", hashing[i][0], &lena);
        env.body = json_loads(hashing[i][1], 0, NULL);
        env.deadline_ms = rp_now_ms() + 10000;
        cr_assert_eq(handle_on(api, &env), 404, "%s is not on auth.requests", hashing[i][0]);
        cr_assert_neq(handle_on(login, &env), 404, "%s is on login.requests", hashing[i][0]);
        rp_envelope_clear(&env);
    }
    rp_envelope_t env;
    envelope_call(&env, "GET", "/auth/me", &lena);
    env.deadline_ms = rp_now_ms() + 10000;
    cr_assert_eq(handle_on(login, &env), 404, "login.requests answers nothing else");
    cr_assert_eq(handle_on(api, &env), 200);
    rp_envelope_clear(&env);
}

/* Nobody answering: the lookup fails and concludes nothing. */
Test(auth, accounts_lookup_fails_without_an_auth_worker) {
    rp_err_t err;
    rp_transport_t *t = rp_transport_inproc_new(16);
    const char *ids[] = {"0123456789abcdef01234567"};
    rp_account_state_t st[1];
    cr_assert_not(rp_accounts_lookup(t, ids, 1, rp_now_ms() + 2000, NULL, st, &err));
    cr_assert(err.kind == RP_ERR_UNAVAILABLE || err.kind == RP_ERR_TIMEOUT, "%d %s", err.kind, err.message);
    rp_transport_free(t);
}

/* ---- account security: sessions, logout, password, status, the last admin ---- */

/* The session state of id as the gateway asks for it; cr_asserts a 200. */
static rp_session_state_t session_of(const char *id) {
    char body[64];
    snprintf(body, sizeof body, "{\"userId\":\"%s\"}", id);
    rp_reply_t r = call("POST", RP_SESSION_ROUTE, body, NULL, NULL);
    cr_assert_eq(r.status, 200, "session of %s: %d", id, r.status);
    rp_session_state_t st;
    memset(&st, 0, sizeof st);
    json_t *jtis = json_object_get(r.body, "revokedJtis");
    cr_assert(rp_roles_from_json(json_object_get(r.body, "roles"), &st.roles, NULL));
    st.token_version = json_integer_value(json_object_get(r.body, "tokenVersion"));
    st.disabled = json_is_true(json_object_get(r.body, "disabled"));
    cr_assert_leq(json_array_size(jtis), RP_SESSION_MAX_REVOKED);
    st.n_revoked = json_array_size(jtis);
    for (size_t i = 0; i < st.n_revoked; i++)
        snprintf(st.revoked[i], RP_JTI_LEN, "%s", json_string_value(json_array_get(jtis, i)));
    rp_reply_clear(&r);
    return st;
}

/* Whether a token of who (version ver) is still admitted by the account's state. */
static bool admitted(const rp_identity_t *who, int64_t ver) {
    rp_token_claims_t c = {.ver = ver, .exp = who->token_exp};
    snprintf(c.jti, sizeof c.jti, "%s", who->jti);
    rp_session_state_t st = session_of(who->id);
    return rp_session_admits(&st, &c, NULL);
}

static rp_reply_t set_status(const rp_identity_t *admin, const char *id, const char *body) {
    return call("PUT", "/auth/users/{id}/status", body, admin, id);
}

Test(auth, session_route_reports_the_state_tokens_are_checked_against) {
    register_user("kate", "kate@example.com");
    rp_identity_t admin = identity_from_login("root_admin", "rootpassword", NULL, 0);
    rp_identity_t kate = identity_from_login("kate", "password123", NULL, 0);
    cr_assert_eq(last_version, 0);
    rp_session_state_t st = session_of(kate.id);
    cr_assert_eq(st.roles, (unsigned)RP_ROLE_USER);
    cr_assert_eq(st.token_version, 0);
    cr_assert_not(st.disabled);
    cr_assert_eq(st.n_revoked, 0u);
    cr_assert(admitted(&kate, 0));
    rp_reply_t r = call("PUT", "/auth/users/{id}/roles", "{\"roles\":[\"USER\",\"OPERATOR\"]}", &admin, kate.id);
    cr_assert_eq(r.status, 200);
    rp_reply_clear(&r);
    st = session_of(kate.id);
    cr_assert_eq(st.roles, (unsigned)(RP_ROLE_USER | RP_ROLE_OPERATOR));
    cr_assert_eq(st.token_version, 1, "a role change bumps the version");
    cr_assert_not(admitted(&kate, 0), "the token from before the change is dead");
    identity_from_login("kate", "password123", NULL, 0);
    cr_assert_eq(last_version, 1, "a new login carries the new version");
    /* the same roles again change nothing */
    r = call("PUT", "/auth/users/{id}/roles", "{\"roles\":[\"USER\",\"OPERATOR\"]}", &admin, kate.id);
    rp_reply_clear(&r);
    cr_assert_eq(session_of(kate.id).token_version, 1);
    cr_assert_eq(status_of("POST", RP_SESSION_ROUTE, "{\"userId\":\"0123456789abcdef01234567\"}", NULL), 404);
    cr_assert_eq(status_of("POST", RP_SESSION_ROUTE, "{\"userId\":\"nope\"}", NULL), 400);
    cr_assert_eq(status_of("POST", RP_SESSION_ROUTE, "{}", NULL), 400);

    /* several accounts at once: each state in the order asked, null for no such account */
    char body[160];
    snprintf(body, sizeof body, "{\"userIds\":[\"0123456789abcdef01234567\",\"%s\",\"%s\"]}", kate.id, admin.id);
    r = call("POST", RP_SESSIONS_ROUTE, body, NULL, NULL);
    cr_assert_eq(r.status, 200, "%d %s", r.status, json_dumps(r.body, 0));
    json_t *sessions = json_object_get(r.body, "sessions");
    cr_assert_eq(json_array_size(sessions), 3u);
    cr_assert(json_is_null(json_array_get(sessions, 0)));
    json_t *k = json_array_get(sessions, 1), *a = json_array_get(sessions, 2);
    cr_assert_eq(json_integer_value(json_object_get(k, "tokenVersion")), 1);
    cr_assert_eq(json_array_size(json_object_get(k, "roles")), 2u, "kate is USER and OPERATOR");
    cr_assert_eq(json_integer_value(json_object_get(a, "tokenVersion")), 0);
    cr_assert_eq(json_array_size(json_object_get(a, "revokedJtis")), 0u);
    rp_reply_clear(&r);
    cr_assert_eq(status_of("POST", RP_SESSIONS_ROUTE, "{\"userIds\":[]}", NULL), 400);
    cr_assert_eq(status_of("POST", RP_SESSIONS_ROUTE, "{\"userIds\":[\"nope\"]}", NULL), 400);
    cr_assert_eq(status_of("POST", RP_SESSIONS_ROUTE, "{\"userId\":\"0123456789abcdef01234567\"}", NULL), 400);
    char many[RP_SESSIONS_MAX * 27 + 64] = "{\"userIds\":[";
    for (int i = 0; i <= RP_SESSIONS_MAX; i++)
        strcat(many, i ? ",\"0123456789abcdef01234567\"" : "\"0123456789abcdef01234567\"");
    strcat(many, "]}");
    cr_assert_eq(status_of("POST", RP_SESSIONS_ROUTE, many, NULL), 400, "at most RP_SESSIONS_MAX ids");
}

Test(auth, logout_revokes_the_access_token_it_is_called_with) {
    char refresh[128], body[256];
    register_user("liam", "liam@example.com");
    rp_identity_t other = identity_from_login("liam", "password123", NULL, 0);
    rp_identity_t liam = identity_from_login("liam", "password123", refresh, sizeof refresh);
    snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", refresh);
    cr_assert_eq(status_of("POST", "/auth/logout", body, &liam), 200);
    cr_assert_not(admitted(&liam, 0), "the token logged out with");
    cr_assert(admitted(&other, 0), "another session of the account lives on");
    cr_assert_eq(status_of("POST", "/auth/refresh", body, NULL), 401);
    /* past RP_SESSION_MAX_REVOKED live revocations the version moves instead: the list stays bounded */
    for (int i = 0; i < RP_SESSION_MAX_REVOKED; i++) {
        rp_identity_t t = identity_from_login("liam", "password123", refresh, sizeof refresh);
        snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", refresh);
        cr_assert_eq(status_of("POST", "/auth/logout", body, &t), 200);
        cr_assert_not(admitted(&t, last_version));
    }
    rp_session_state_t st = session_of(liam.id);
    cr_assert_eq(st.token_version, 1);
    cr_assert_leq(st.n_revoked, RP_SESSION_MAX_REVOKED);
    cr_assert_not(admitted(&other, 0), "the bump killed every older token");
    identity_from_login("liam", "password123", NULL, 0);
    cr_assert_eq(last_version, 1);
}

Test(auth, password_change_kills_every_token_and_refresh_family) {
    char r1[128], r2[128], body[256];
    register_user("mia", "mia@example.com");
    identity_from_login("mia", "password123", r1, sizeof r1);
    rp_identity_t mia = identity_from_login("mia", "password123", r2, sizeof r2);
    rp_reply_t r = call("POST", "/auth/password",
                        "{\"currentPassword\":\"wrong-one\",\"newPassword\":\"newpassword1\"}", &mia, NULL);
    cr_assert_eq(r.status, 403);
    cr_assert_str_eq(code_of(&r), "INVALID_CREDENTIALS");
    rp_reply_clear(&r);
    const char *bad[] = {"{\"currentPassword\":\"password123\",\"newPassword\":\"short\"}",
                         "{\"currentPassword\":\"password123\"}", "{\"newPassword\":\"newpassword1\"}",
                         "{\"currentPassword\":\"password123\",\"newPassword\":7}",
                         "{\"currentPassword\":\"password123\",\"newPassword\":\"newpassword1\",\"x\":1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(status_of("POST", "/auth/password", bad[i], &mia), 400, "%s", bad[i]);
    cr_assert_eq(session_of(mia.id).token_version, 0, "refusals change nothing");
    cr_assert_eq(
        status_of("POST", "/auth/password", "{\"currentPassword\":\"a\",\"newPassword\":\"newpassword1\"}", NULL), 401);
    r = call("POST", "/auth/password", "{\"currentPassword\":\"password123\",\"newPassword\":\"newpassword1\"}", &mia,
             NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(json_string_value(json_object_get(r.body, "status")), "password_changed");
    rp_reply_clear(&r);
    cr_assert_not(admitted(&mia, 0));
    for (int i = 0; i < 2; i++) {
        snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", i ? r2 : r1);
        cr_assert_eq(status_of("POST", "/auth/refresh", body, NULL), 401, "refresh family %d", i);
    }
    cr_assert_eq(status_of("POST", "/auth/login", "{\"username\":\"mia\",\"password\":\"password123\"}", NULL), 401);
    identity_from_login("mia", "newpassword1", NULL, 0);
    cr_assert_eq(last_version, 1);
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "test \"$(sqlite3 %s/auth.db \"SELECT count(*) FROM audit_logs WHERE target_id = '%s' AND "
             "action = 'user.password.change'\")\" = 1",
             dir, mia.id);
    cr_assert_eq(system(cmd), 0, "the change is audited");
}

Test(auth, disabled_accounts_cannot_sign_in_refresh_or_use_tokens) {
    char refresh[128], body[256];
    register_user("noah", "noah@example.com");
    rp_identity_t admin = identity_from_login("root_admin", "rootpassword", NULL, 0);
    rp_identity_t noah = identity_from_login("noah", "password123", refresh, sizeof refresh);
    rp_reply_t r = set_status(&noah, noah.id, "{\"disabled\":true}");
    cr_assert_eq(r.status, 403, "administrators only");
    rp_reply_clear(&r);
    const char *bad[] = {"{}", "{\"disabled\":\"yes\"}", "{\"disabled\":true,\"reason\":7}",
                         "{\"disabled\":true,\"other\":1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = set_status(&admin, noah.id, bad[i]);
        cr_assert_eq(r.status, 400, "%s", bad[i]);
        rp_reply_clear(&r);
    }
    r = set_status(&admin, "0123456789abcdef01234567", "{\"disabled\":true}");
    cr_assert_eq(r.status, 404);
    rp_reply_clear(&r);
    cr_assert_not(session_of(noah.id).disabled, "refusals change nothing");

    r = set_status(&admin, noah.id, "{\"disabled\":true,\"reason\":\"chargeback fraud\"}");
    cr_assert_eq(r.status, 200);
    cr_assert(json_is_true(json_object_get(r.body, "disabled")));
    cr_assert_str_eq(json_string_value(json_object_get(r.body, "disabledReason")), "chargeback fraud");
    rp_reply_clear(&r);
    cr_assert(session_of(noah.id).disabled);
    cr_assert_not(admitted(&noah, 1));
    r = call("POST", "/auth/login", "{\"username\":\"noah\",\"password\":\"password123\"}", NULL, NULL);
    cr_assert_eq(r.status, 403);
    cr_assert_str_eq(code_of(&r), "ACCOUNT_DISABLED");
    rp_reply_clear(&r);
    r = call("POST", "/auth/login", "{\"username\":\"noah\",\"password\":\"wrong-password\"}", NULL, NULL);
    cr_assert_eq(r.status, 401, "only the password's holder learns the account is disabled");
    rp_reply_clear(&r);
    snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", refresh);
    r = call("POST", "/auth/refresh", body, NULL, NULL);
    cr_assert_eq(r.status, 403);
    cr_assert_str_eq(code_of(&r), "ACCOUNT_DISABLED");
    rp_reply_clear(&r);

    /* the other workers learn it too */
    rp_err_t err;
    rp_transport_t *t = rp_transport_inproc_new(16);
    cr_assert(rp_transport_serve(t, RP_COMP_ACCOUNTS, rp_rpc_service_handler,
                                 (void *)rp_auth_worker_accounts_service(worker), 2, &err));
    const char *ids[] = {noah.id, admin.id};
    rp_account_state_t st[2];
    cr_assert(rp_accounts_lookup(t, ids, 2, rp_now_ms() + 5000, "test", st, &err), "%s", err.message);
    cr_assert_eq(st[0], RP_ACCOUNT_DISABLED);
    cr_assert_eq(st[1], RP_ACCOUNT_ACTIVE);
    rp_transport_free(t);

    r = set_status(&admin, noah.id, "{\"disabled\":false}");
    cr_assert_eq(r.status, 200);
    cr_assert(json_is_false(json_object_get(r.body, "disabled")));
    cr_assert_null(json_object_get(r.body, "disabledReason"));
    rp_reply_clear(&r);
    identity_from_login("noah", "password123", NULL, 0);
    cr_assert_eq(status_of("POST", "/auth/refresh", body, NULL), 401, "its refresh families stay revoked");
    /* both changes audited, newest first, with before and after */
    rp_envelope_t env;
    envelope_call(&env, "GET", "/auth/audit-log", &admin);
    env.deadline_ms = rp_now_ms() + 5000;
    json_object_set_new(env.query, "targetId", json_string(noah.id));
    r = handle(&env);
    rp_envelope_clear(&env);
    cr_assert_eq(r.status, 200);
    json_t *items = json_object_get(r.body, "items");
    cr_assert_eq(json_array_size(items), 2u);
    json_t *enable = json_array_get(items, 0), *disable = json_array_get(items, 1);
    cr_assert_str_eq(json_string_value(json_object_get(disable, "action")), "user.status.update");
    json_t *want_before = json_pack("{s:b}", "disabled", false),
           *want_after = json_pack("{s:b, s:s}", "disabled", true, "reason", "chargeback fraud");
    cr_assert(json_equal(json_object_get(disable, "before"), want_before));
    cr_assert(json_equal(json_object_get(disable, "after"), want_after));
    cr_assert(json_equal(json_object_get(enable, "before"), want_after));
    cr_assert(json_equal(json_object_get(enable, "after"), want_before));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(disable, "actor"), "id")), admin.id);
    json_decref(want_before);
    json_decref(want_after);
    rp_reply_clear(&r);
}

Test(auth, admin_operations_read_the_callers_roles_from_the_store) {
    register_user("olga", "olga@example.com");
    rp_identity_t admin = identity_from_login("root_admin", "rootpassword", NULL, 0);
    rp_identity_t olga = identity_from_login("olga", "password123", NULL, 0);
    rp_reply_t r = call("PUT", "/auth/users/{id}/roles", "{\"roles\":[\"USER\",\"ADMIN\"]}", &admin, olga.id);
    cr_assert_eq(r.status, 200);
    rp_reply_clear(&r);
    rp_identity_t olga_admin = identity_from_login("olga", "password123", NULL, 0);
    r = call("PUT", "/auth/users/{id}/roles", "{\"roles\":[\"USER\"]}", &admin, olga.id);
    cr_assert_eq(r.status, 200);
    rp_reply_clear(&r);
    /* olga's identity still says ADMIN (an old token, a stale cache): the store says no */
    cr_assert_eq(status_of("GET", "/auth/users", NULL, &olga_admin), 403);
    r = call("PUT", "/auth/users/{id}/roles", "{\"roles\":[\"USER\",\"ADMIN\"]}", &olga_admin, olga.id);
    cr_assert_eq(r.status, 403);
    rp_reply_clear(&r);
    r = set_status(&olga_admin, admin.id, "{\"disabled\":true}");
    cr_assert_eq(r.status, 403);
    rp_reply_clear(&r);
    cr_assert_eq(session_of(olga.id).roles, (unsigned)RP_ROLE_USER);
    cr_assert_not(session_of(admin.id).disabled);
}

Test(auth, the_last_enabled_admin_stays) {
    register_user("pam", "pam@example.com");
    rp_identity_t root = identity_from_login("root_admin", "rootpassword", NULL, 0);
    rp_reply_t r = set_status(&root, root.id, "{\"disabled\":true}");
    cr_assert_eq(r.status, 409);
    cr_assert_str_eq(code_of(&r), "LAST_ADMIN");
    rp_reply_clear(&r);
    rp_identity_t pam = identity_from_login("pam", "password123", NULL, 0);
    r = call("PUT", "/auth/users/{id}/roles", "{\"roles\":[\"ADMIN\"]}", &root, pam.id);
    cr_assert_eq(r.status, 200);
    rp_reply_clear(&r);
    pam = identity_from_login("pam", "password123", NULL, 0);
    /* a disabled admin does not count: with pam disabled, root is the last one */
    r = set_status(&root, pam.id, "{\"disabled\":true}");
    cr_assert_eq(r.status, 200);
    rp_reply_clear(&r);
    r = call("PUT", "/auth/users/{id}/roles", "{\"roles\":[\"USER\"]}", &root, root.id);
    cr_assert_eq(r.status, 409);
    cr_assert_str_eq(code_of(&r), "LAST_ADMIN");
    rp_reply_clear(&r);
    r = set_status(&root, pam.id, "{\"disabled\":false}");
    cr_assert_eq(r.status, 200);
    rp_reply_clear(&r);
    r = set_status(&root, root.id, "{\"disabled\":true,\"reason\":\"handing over\"}");
    cr_assert_eq(r.status, 200, "two enabled admins: one may go");
    rp_reply_clear(&r);
    cr_assert_eq(status_of("POST", "/auth/login", "{\"username\":\"root_admin\",\"password\":\"rootpassword\"}", NULL),
                 403);
}

typedef struct demotion_race {
    rp_identity_t a, b;
    int turn, ok, last_admin;
    pthread_mutex_t mu;
} demotion_race_t;

/* Each thread demotes itself: both are admins when they start, so only the count inside the
 * unit of work can tell the second one that it holds the last admin. */
static void *demote_one(void *p) {
    demotion_race_t *d = p;
    pthread_mutex_lock(&d->mu);
    int me = d->turn++;
    pthread_mutex_unlock(&d->mu);
    const rp_identity_t *caller = me ? &d->b : &d->a;
    rp_reply_t r = call("PUT", "/auth/users/{id}/roles", "{\"roles\":[\"USER\"]}", caller, caller->id);
    pthread_mutex_lock(&d->mu);
    if (r.status == 200) d->ok++;
    if (r.status == 409) d->last_admin++;
    pthread_mutex_unlock(&d->mu);
    rp_reply_clear(&r);
    return NULL;
}

Test(auth, concurrent_demotions_never_leave_no_admin) {
    register_user("quin", "quin@example.com");
    rp_identity_t root = identity_from_login("root_admin", "rootpassword", NULL, 0);
    rp_identity_t quin = identity_from_login("quin", "password123", NULL, 0);
    for (int round = 0; round < 10; round++) {
        const char *who = session_of(root.id).roles & RP_ROLE_ADMIN ? quin.id : root.id;
        rp_identity_t *admin = who == quin.id ? &root : &quin;
        admin->roles = RP_ROLE_USER | RP_ROLE_ADMIN;
        rp_reply_t r = call("PUT", "/auth/users/{id}/roles", "{\"roles\":[\"USER\",\"ADMIN\"]}", admin, who);
        cr_assert_eq(r.status, 200, "round %d: %d", round, r.status);
        rp_reply_clear(&r);
        demotion_race_t d = {.a = root, .b = quin, .mu = PTHREAD_MUTEX_INITIALIZER};
        d.a.roles = d.b.roles = RP_ROLE_USER | RP_ROLE_ADMIN;
        run_together(2, demote_one, &d);
        cr_assert_eq(d.ok, 1, "round %d: exactly one demotion wins", round);
        cr_assert_eq(d.last_admin, 1, "round %d: the other is LAST_ADMIN", round);
        unsigned both = session_of(root.id).roles | session_of(quin.id).roles;
        cr_assert(both & RP_ROLE_ADMIN, "round %d: an admin remains", round);
    }
}

/* The log the api processes read (RP_SESSION_CHANGES_ROUTE) after number after: the ids in
 * order into ids (a JSON array, new), and the number read up to. */
static int64_t changes_after(int64_t after, json_t **ids) {
    char body[64];
    snprintf(body, sizeof body, "{\"after\":%lld}", (long long)after);
    rp_reply_t r = call("POST", RP_SESSION_CHANGES_ROUTE, body, NULL, NULL);
    cr_assert_eq(r.status, 200, "%d", r.status);
    cr_assert(json_is_true(json_object_get(r.body, "complete")));
    cr_assert(json_is_false(json_object_get(r.body, "more")));
    int64_t last = json_integer_value(json_object_get(r.body, "last"));
    if (ids) *ids = json_incref(json_object_get(r.body, "userIds"));
    rp_reply_clear(&r);
    return last;
}

/* Whether the log names exactly the accounts of want (n of them), in that order, after number
 * *at; moves *at to the end of the log. */
static void assert_logged(int64_t *at, const char *const *want, size_t n, const char *what) {
    json_t *ids = NULL;
    int64_t last = changes_after(*at, &ids);
    cr_assert_eq(json_array_size(ids), n, "%s: %zu logged", what, json_array_size(ids));
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(json_string_value(json_array_get(ids, i)), want[i], "%s", what);
    cr_assert_eq(last, *at + (int64_t)n, "%s: one number per change", what);
    json_decref(ids);
    *at = last;
}

Test(auth, every_change_of_a_session_is_logged_in_its_transaction_and_refusals_are_not) {
    char refresh[128], body[256];
    register_user("nina", "nina@example.com");
    rp_identity_t admin = identity_from_login("root_admin", "rootpassword", NULL, 0);
    rp_identity_t nina = identity_from_login("nina", "password123", refresh, sizeof refresh);
    int64_t at = changes_after(-1, NULL);
    cr_assert_eq(at, 0, "registration and sign-in change no session");
    const char *one[] = {nina.id};

    rp_reply_t r = call("PUT", "/auth/users/{id}/roles", "{\"roles\":[\"USER\",\"OPERATOR\"]}", &admin, nina.id);
    cr_assert_eq(r.status, 200);
    rp_reply_clear(&r);
    assert_logged(&at, one, 1, "a role change");
    r = call("PUT", "/auth/users/{id}/roles", "{\"roles\":[\"USER\",\"OPERATOR\"]}", &admin, nina.id);
    rp_reply_clear(&r);
    assert_logged(&at, one, 0, "the same roles again");
    r = call("PUT", "/auth/users/{id}/roles", "{\"roles\":[\"USER\"]}", &nina, nina.id);
    cr_assert_eq(r.status, 403);
    rp_reply_clear(&r);
    assert_logged(&at, one, 0, "a refused role change");

    r = set_status(&admin, nina.id, "{\"disabled\":true,\"reason\":\"cheating\"}");
    cr_assert_eq(r.status, 200);
    rp_reply_clear(&r);
    assert_logged(&at, one, 1, "a disable");
    r = set_status(&admin, nina.id, "{\"disabled\":false}");
    cr_assert_eq(r.status, 200);
    rp_reply_clear(&r);
    assert_logged(&at, one, 1, "an enable");

    nina = identity_from_login("nina", "password123", refresh, sizeof refresh);
    r = call("POST", "/auth/password", "{\"currentPassword\":\"wrong-one\",\"newPassword\":\"newpassword1\"}", &nina,
             NULL);
    cr_assert_eq(r.status, 403);
    rp_reply_clear(&r);
    assert_logged(&at, one, 0, "a refused password change");
    r = call("POST", "/auth/password", "{\"currentPassword\":\"password123\",\"newPassword\":\"newpassword1\"}", &nina,
             NULL);
    cr_assert_eq(r.status, 200);
    rp_reply_clear(&r);
    assert_logged(&at, one, 1, "a password change");

    nina = identity_from_login("nina", "newpassword1", refresh, sizeof refresh);
    snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", refresh);
    cr_assert_eq(status_of("POST", "/auth/logout", body, &nina), 200);
    assert_logged(&at, one, 1, "a logout");

    /* the route's body */
    cr_assert_eq(status_of("POST", RP_SESSION_CHANGES_ROUTE, "{}", NULL), 400);
    cr_assert_eq(status_of("POST", RP_SESSION_CHANGES_ROUTE, "{\"after\":-2}", NULL), 400);
    cr_assert_eq(status_of("POST", RP_SESSION_CHANGES_ROUTE, "{\"after\":\"1\"}", NULL), 400);
    cr_assert_eq(status_of("POST", RP_SESSION_CHANGES_ROUTE, "{\"after\":1.5}", NULL), 400);
}
