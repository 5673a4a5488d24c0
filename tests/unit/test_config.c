/* Tests lib/config.c: defaults, the JWT_SECRET rule and refusal of bad values. */
#include <criterion/criterion.h>
#include <string.h>

#include "config.h"

typedef struct kv {
    const char *k, *v;
} kv_t;

static const char *getter(const char *name, void *ud) {
    for (const kv_t *p = ud; p->k; p++)
        if (strcmp(p->k, name) == 0) return p->v;
    return NULL;
}

#define SECRET "0123456789abcdef0123456789abcdef"

Test(config, defaults) {
    kv_t env[] = {{"JWT_SECRET", SECRET}, {NULL, NULL}};
    rp_config_t c;
    rp_err_t err;
    cr_assert(rp_config_load(&c, getter, env, &err), "%s", err.message);
    cr_assert_eq(c.port, 8080);
    cr_assert_str_eq(c.store, "sqlite");
    cr_assert_str_eq(c.transport, "inproc");
    cr_assert_str_eq(c.sqlite_dir, "./data");
    cr_assert_eq(c.jwt_expires_s, 3600);
    cr_assert_eq(c.refresh_expires_s, 14 * 86400);
    cr_assert_eq(c.max_body_bytes, 65536u);
    cr_assert_eq(c.export_page_size, 1000);
    cr_assert_eq(c.login_max_failures, 5);
    cr_assert_eq(c.login_lockout_s, 900);
    cr_assert_eq(c.jwt_secret_len, 32u);
}

Test(config, secret_required_and_long_enough) {
    kv_t none[] = {{NULL, NULL}};
    kv_t empty[] = {{"JWT_SECRET", ""}, {NULL, NULL}};
    kv_t short31[] = {{"JWT_SECRET", "0123456789abcdef0123456789abcde"}, {NULL, NULL}};
    rp_config_t c;
    rp_err_t err;
    cr_assert_not(rp_config_load(&c, getter, none, &err));
    cr_assert(strstr(err.message, "JWT_SECRET"));
    cr_assert_not(rp_config_load(&c, getter, empty, &err));
    cr_assert_not(rp_config_load(&c, getter, short31, &err));
    cr_assert(strstr(err.message, "at least 32"));
    cr_assert_eq(c.jwt_secret_len, 0u, "config must be zeroed on failure");
    kv_t placeholder[] = {{"JWT_SECRET", "change-me-change-me-this-is-a-public-placeholder-secret"}, {NULL, NULL}};
    cr_assert_not(rp_config_load(&c, getter, placeholder, &err));
    cr_assert(strstr(err.message, "placeholder"));
}

/* the old deploy/.env.docker shipped ADMIN_PASSWORD=change-me-admin-password next to the
 * placeholder secret; a real secret must not let that published password through */
Test(config, refuses_the_placeholder_admin_password) {
    const char *secret = "0123456789abcdef0123456789abcdef-real";
    kv_t placeholder[] = {{"JWT_SECRET", secret},
                          {"ADMIN_USERNAME", "admin"},
                          {"ADMIN_PASSWORD", "change-me-admin-password"},
                          {NULL, NULL}};
    kv_t real[] = {
        {"JWT_SECRET", secret}, {"ADMIN_USERNAME", "admin"}, {"ADMIN_PASSWORD", "a-long-passphrase"}, {NULL, NULL}};
    rp_config_t c;
    rp_err_t err;
    cr_assert_not(rp_config_load(&c, getter, placeholder, &err));
    cr_assert(strstr(err.message, "ADMIN_PASSWORD") && strstr(err.message, "placeholder"), "%s", err.message);
    cr_assert(rp_config_load(&c, getter, real, &err), "%s", err.message);
    cr_assert_str_eq(c.admin_password, "a-long-passphrase");
}

Test(config, rejects_bad_values) {
    const char *bad[][2] = {{"PORT", "70000"},         {"PORT", "80x"},
                            {"STORE", "postgres"},     {"TRANSPORT", "zmq"},
                            {"JWT_EXPIRES_IN", "-5m"}, {"JWT_EXPIRES_IN", "10y"},
                            {"RPC_TIMEOUT_MS", "0"},   {"LOG_LEVEL", "loud"},
                            {"PASSWORD_HASH", "none"}, {"MAX_BODY_BYTES", "1"},
                            {"WORKER_THREADS", "0"},   {"ADMIN_USERNAME", "root"},
                            {"EVENTS_CACHE_MS", "-1"}, {"EVENTS_CACHE_MS", "20000"},
                            {"EVENTS_CACHE_MS", "1s"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kv_t env[] = {{"JWT_SECRET", SECRET}, {bad[i][0], bad[i][1]}, {NULL, NULL}};
        rp_config_t c;
        rp_err_t err;
        cr_assert_not(rp_config_load(&c, getter, env, &err), "%s=%s accepted", bad[i][0], bad[i][1]);
        cr_assert_str_eq(err.code, "CONFIG_INVALID");
        cr_assert(strstr(err.message, bad[i][0]) || strstr(err.message, "ADMIN_"), "%s", err.message);
    }
}

Test(config, mongodb_needs_uri) {
    kv_t env[] = {{"JWT_SECRET", SECRET}, {"STORE", "mongodb"}, {NULL, NULL}};
    rp_config_t c;
    rp_err_t err;
    cr_assert_not(rp_config_load(&c, getter, env, &err));
    cr_assert(strstr(err.message, "MONGODB_URI"));
}

Test(config, durations) {
    int64_t s;
    cr_assert(rp_config_parse_duration("90", &s) && s == 90);
    cr_assert(rp_config_parse_duration("30s", &s) && s == 30);
    cr_assert(rp_config_parse_duration("60m", &s) && s == 3600);
    cr_assert(rp_config_parse_duration("12h", &s) && s == 43200);
    cr_assert(rp_config_parse_duration("14d", &s) && s == 1209600);
    cr_assert_not(rp_config_parse_duration("", &s));
    cr_assert_not(rp_config_parse_duration("0", &s));
    cr_assert_not(rp_config_parse_duration("m", &s));
    cr_assert_not(rp_config_parse_duration("5mm", &s));
    cr_assert_not(rp_config_parse_duration("99999999999999999999d", &s));
}

Test(config, export_page_size_is_1_to_1000) {
    const char *values[] = {"0", "1001", "-1", "x"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        kv_t env[] = {{"JWT_SECRET", SECRET}, {"EXPORT_PAGE_SIZE", values[i]}, {NULL, NULL}};
        rp_config_t c;
        rp_err_t err;
        cr_assert_not(rp_config_load(&c, getter, env, &err), "%s accepted", values[i]);
        cr_assert(strstr(err.message, "EXPORT_PAGE_SIZE"), "%s", err.message);
    }
    kv_t one[] = {{"JWT_SECRET", SECRET}, {"EXPORT_PAGE_SIZE", "1"}, {NULL, NULL}};
    rp_config_t c;
    rp_err_t err;
    cr_assert(rp_config_load(&c, getter, one, &err), "%s", err.message);
    cr_assert_eq(c.export_page_size, 1);
}
