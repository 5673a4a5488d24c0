/* Tests lib/config.c: defaults, the JWT_SECRET rule and refusal of bad values. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http_options.h"

typedef struct kv {
    const char *k, *v;
} kv_t;

static const char *getter(const char *name, void *ud) {
    for (const kv_t *p = ud; p->k; p++)
        if (strcmp(p->k, name) == 0) return p->v;
    return NULL;
}

#define SECRET "0123456789abcdef0123456789abcdef"

/* Loads the configuration of JWT_SECRET and k=v alone. */
static bool load1(const char *k, const char *v, rp_config_t *c, rp_err_t *err) {
    kv_t env[] = {{"JWT_SECRET", SECRET}, {k, v}, {NULL, NULL}};
    return rp_config_load(c, getter, env, err);
}

/* Each of the n name=value pairs alone (beside JWT_SECRET) is refused, with the name in the error. */
static void refuses_each(const char *(*bad)[2], size_t n) {
    for (size_t i = 0; i < n; i++) {
        rp_config_t c;
        rp_err_t err;
        cr_assert_not(load1(bad[i][0], bad[i][1], &c, &err), "%s=%s accepted", bad[i][0], bad[i][1]);
        cr_assert(strstr(err.message, bad[i][0]), "%s", err.message);
    }
}

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
    cr_assert_eq(c.sqlite_cache_kib, 256);
    cr_assert_eq(c.rpc_connections, 64);
    cr_assert_eq(c.rpc_bundle_max, 64);
    cr_assert_eq(c.rpc_bundle_lanes, 2);
    cr_assert_eq(c.worker_threads, 4);
    cr_assert_eq(c.grant_concurrency, 64);
    kv_t amqp[] = {{"JWT_SECRET", SECRET}, {"TRANSPORT", "amqp"}, {NULL, NULL}};
    cr_assert(rp_config_load(&c, getter, amqp, &err), "%s", err.message);
    cr_assert_eq(c.grant_concurrency, 16, "a consumer thread per call over RabbitMQ: fewer by default");
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
    const char *bad[][2] = {{"PORT", "70000"},
                            {"PORT", "80x"},
                            {"STORE", "postgres"},
                            {"TRANSPORT", "zmq"},
                            {"JWT_EXPIRES_IN", "-5m"},
                            {"JWT_EXPIRES_IN", "10y"},
                            {"RPC_TIMEOUT_MS", "0"},
                            {"LOG_LEVEL", "loud"},
                            {"PASSWORD_HASH", "none"},
                            {"MAX_BODY_BYTES", "1"},
                            {"WORKER_THREADS", "0"},
                            {"ADMIN_USERNAME", "root"},
                            {"EVENTS_CACHE_MS", "-1"},
                            {"EVENTS_CACHE_MS", "20000"},
                            {"EVENTS_CACHE_MS", "1s"},
                            {"SQLITE_CACHE_KIB", "63"},
                            {"SQLITE_CACHE_KIB", "2G"},
                            {"RPC_CONNECTIONS", "0"},
                            {"RPC_CONNECTIONS", "1025"},
                            {"GRANT_CONCURRENCY", "0"},
                            {"GRANT_CONCURRENCY", "257"},
                            {"RPC_BUNDLE_MAX", "0"},
                            {"RPC_BUNDLE_MAX", "257"},
                            {"RPC_BUNDLE_LANES", "0"}};
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

Test(config, batch_chunk_is_10_to_1000_and_500_by_default) {
    const char *values[] = {"9", "1001", "0", "x"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        kv_t env[] = {{"JWT_SECRET", SECRET}, {"BATCH_CHUNK", values[i]}, {NULL, NULL}};
        rp_config_t c;
        rp_err_t err;
        cr_assert_not(rp_config_load(&c, getter, env, &err), "%s accepted", values[i]);
        cr_assert(strstr(err.message, "BATCH_CHUNK"), "%s", err.message);
    }
    kv_t none[] = {{"JWT_SECRET", SECRET}, {NULL, NULL}},
         ten[] = {{"JWT_SECRET", SECRET}, {"BATCH_CHUNK", "10"}, {NULL, NULL}};
    rp_config_t c;
    rp_err_t err;
    cr_assert(rp_config_load(&c, getter, none, &err), "%s", err.message);
    cr_assert_eq(c.batch_chunk, 500);
    cr_assert(rp_config_load(&c, getter, ten, &err), "%s", err.message);
    cr_assert_eq(c.batch_chunk, 10);
}

Test(config, password_hash_queue_and_global_login_budget) {
    kv_t env[] = {{"JWT_SECRET", SECRET}, {NULL, NULL}};
    rp_config_t c;
    rp_err_t err;
    cr_assert(rp_config_load(&c, getter, env, &err), "%s", err.message);
    cr_assert_eq(c.password_hash_concurrency, 2);
    cr_assert_eq(c.password_hash_queue, 1);
    cr_assert_eq(c.login_global_rps, 20);
    cr_assert_eq(c.login_global_burst, 60);
    const char *bad[][2] = {{"PASSWORD_HASH_QUEUE", "-1"}, {"PASSWORD_HASH_QUEUE", "2000"},
                            {"PASSWORD_HASH_QUEUE", "x"},  {"LOGIN_GLOBAL_RPS", "-1"},
                            {"LOGIN_GLOBAL_RPS", "1.5"},   {"LOGIN_GLOBAL_BURST", "0"}};
    refuses_each(bad, sizeof bad / sizeof bad[0]);
    /* hashes running and waiting must leave an RPC thread free for the calls that need none */
    kv_t full[] = {{"JWT_SECRET", SECRET}, {"WORKER_THREADS", "3"}, {NULL, NULL}};
    cr_assert_not(rp_config_load(&c, getter, full, &err));
    cr_assert(strstr(err.message, "PASSWORD_HASH_CONCURRENCY + PASSWORD_HASH_QUEUE must be below WORKER_THREADS"), "%s",
              err.message);
    kv_t fits[] = {{"JWT_SECRET", SECRET}, {"WORKER_THREADS", "3"}, {"PASSWORD_HASH_QUEUE", "0"}, {NULL, NULL}};
    cr_assert(rp_config_load(&c, getter, fits, &err), "%s", err.message);
    kv_t off[] = {{"JWT_SECRET", SECRET}, {"LOGIN_GLOBAL_RPS", "0"}, {NULL, NULL}};
    cr_assert(rp_config_load(&c, getter, off, &err), "%s", err.message);
    cr_assert_eq(c.login_global_rps, 0);
}

Test(config, http_limits_defaults_and_bounds) {
    kv_t env[] = {{"JWT_SECRET", SECRET}, {NULL, NULL}};
    rp_config_t c;
    rp_err_t err;
    cr_assert(rp_config_load(&c, getter, env, &err), "%s", err.message);
    cr_assert_eq(c.http_threads, 512);
    cr_assert_eq(c.http_request_timeout_ms, RP_HTTP_REQUEST_TIMEOUT_MS_DEFAULT, "the anchors' value");
    cr_assert_eq(c.http_keepalive_timeout_ms, RP_HTTP_KEEPALIVE_TIMEOUT_MS_DEFAULT, "the anchors' value");
    cr_assert_eq(c.max_connections_per_address, 128);
    cr_assert_eq(c.shutdown_grace_ms, 8000, "under Docker's 10 s between SIGTERM and SIGKILL");
    cr_assert_str_eq(c.tls_cert_file, "");
    const char *bad[][2] = {{"HTTP_REQUEST_TIMEOUT_MS", "499"},
                            {"HTTP_REQUEST_TIMEOUT_MS", "60001"},
                            {"HTTP_REQUEST_TIMEOUT_MS", "5s"},
                            {"HTTP_KEEPALIVE_TIMEOUT_MS", "99"},
                            {"HTTP_KEEPALIVE_TIMEOUT_MS", "30001"},
                            {"MAX_CONNECTIONS_PER_ADDRESS", "-1"},
                            {"MAX_CONNECTIONS_PER_ADDRESS", "100001"},
                            {"MAX_CONNECTIONS_PER_ADDRESS", "many"},
                            {"SHUTDOWN_GRACE_MS", "-1"},
                            {"SHUTDOWN_GRACE_MS", "600001"},
                            {"HTTP_THREADS", "1025"}};
    refuses_each(bad, sizeof bad / sizeof bad[0]);
    kv_t off[] = {{"JWT_SECRET", SECRET},
                  {"MAX_CONNECTIONS_PER_ADDRESS", "0"},
                  {"HTTP_REQUEST_TIMEOUT_MS", "500"},
                  {"HTTP_KEEPALIVE_TIMEOUT_MS", "30000"},
                  {"SHUTDOWN_GRACE_MS", "0"},
                  {NULL, NULL}};
    cr_assert(rp_config_load(&c, getter, off, &err), "%s", err.message);
    cr_assert_eq(c.max_connections_per_address, 0);
    cr_assert_eq(c.shutdown_grace_ms, 0);
    cr_assert_eq(c.http_request_timeout_ms, 500);
    cr_assert_eq(c.http_keepalive_timeout_ms, 30000);
}

Test(config, tls_files_both_or_neither_and_readable) {
    char dir[] = "/tmp/rp-test-config-XXXXXX";
    cr_assert(mkdtemp(dir));
    char cert[64], key[64];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    FILE *f = fopen(cert, "w");
    cr_assert(f);
    fputs("x\n", f);
    fclose(f);
    rp_config_t c;
    rp_err_t err;
    kv_t only_cert[] = {{"JWT_SECRET", SECRET}, {"TLS_CERT_FILE", cert}, {NULL, NULL}};
    cr_assert_not(rp_config_load(&c, getter, only_cert, &err));
    cr_assert(strstr(err.message, "TLS_CERT_FILE and TLS_KEY_FILE"), "%s", err.message);
    kv_t only_key[] = {{"JWT_SECRET", SECRET}, {"TLS_KEY_FILE", cert}, {NULL, NULL}};
    cr_assert_not(rp_config_load(&c, getter, only_key, &err));
    kv_t missing_key[] = {{"JWT_SECRET", SECRET}, {"TLS_CERT_FILE", cert}, {"TLS_KEY_FILE", key}, {NULL, NULL}};
    cr_assert_not(rp_config_load(&c, getter, missing_key, &err));
    cr_assert(strstr(err.message, "TLS_KEY_FILE cannot be read"), "%s", err.message);
    cr_assert_null(strchr(err.message, '\n'), "one line");
    f = fopen(key, "w");
    cr_assert(f);
    fputs("y\n", f);
    fclose(f);
    cr_assert(rp_config_load(&c, getter, missing_key, &err), "%s", err.message);
    cr_assert_str_eq(c.tls_cert_file, cert);
    cr_assert_str_eq(c.tls_key_file, key);
    remove(cert);
    remove(key);
    remove(dir);
}

/* The gateway's edge (issue 12): trusted proxies, the client address header, /metrics access and
 * the rate limiters' bound. */

Test(config, edge_defaults) {
    kv_t env[] = {{"JWT_SECRET", SECRET}, {NULL, NULL}};
    rp_config_t c;
    rp_err_t err;
    cr_assert(rp_config_load(&c, getter, env, &err), "%s", err.message);
    cr_assert_eq(c.trusted_proxies.n, 0u, "no proxy is trusted unless named");
    cr_assert_eq(c.metrics_allow_loopback, 0, "loopback is every client behind a same-host proxy");
    cr_assert_eq(c.rate_limit_max_clients, 65536);
    cr_assert_str_eq(c.metrics_token, "");
}

Test(config, trusted_proxies_parse_strictly) {
    rp_config_t c;
    rp_err_t err;
    cr_assert(load1("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8,fd00::/8", &c, &err), "%s", err.message);
    cr_assert_eq(c.trusted_proxies.n, 3u);
    const char *bad[] = {"10.0.0.0/33", "10.0.0.1/8", "proxy.local", "10.0.0.1,", "1.2.3", "::1/200", "10.0.0.01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_not(load1("TRUSTED_PROXIES", bad[i], &c, &err), "%s accepted", bad[i]);
        cr_assert_str_eq(err.code, "CONFIG_INVALID");
        cr_assert(strstr(err.message, "TRUSTED_PROXIES"), "%s", err.message);
        cr_assert_null(strchr(err.message, '\n'), "one line");
    }
}

Test(config, metrics_token_at_least_32_bytes) {
    rp_config_t c;
    rp_err_t err;
    cr_assert_not(load1("METRICS_TOKEN", "0123456789abcdef0123456789abcde", &c, &err));
    cr_assert(strstr(err.message, "METRICS_TOKEN must be at least 32 bytes"), "%s", err.message);
    cr_assert_not(load1("METRICS_TOKEN", "change-me", &c, &err));
    cr_assert(load1("METRICS_TOKEN", "0123456789abcdef0123456789abcdef", &c, &err), "%s", err.message);
    cr_assert_str_eq(c.metrics_token, "0123456789abcdef0123456789abcdef");
}

Test(config, edge_bounds) {
    const char *bad[][2] = {{"METRICS_ALLOW_LOOPBACK", "2"},     {"METRICS_ALLOW_LOOPBACK", "yes"},
                            {"RATE_LIMIT_MAX_CLIENTS", "63"},    {"RATE_LIMIT_MAX_CLIENTS", "16777217"},
                            {"CLIENT_IP_HEADER", "X Forwarded"}, {"CLIENT_IP_HEADER", "X-Forwarded-For:"}};
    refuses_each(bad, sizeof bad / sizeof bad[0]);
    rp_config_t c;
    rp_err_t err;
    cr_assert(load1("METRICS_ALLOW_LOOPBACK", "1", &c, &err) && c.metrics_allow_loopback == 1);
    cr_assert(load1("RATE_LIMIT_MAX_CLIENTS", "64", &c, &err) && c.rate_limit_max_clients == 64);
    cr_assert(load1("CLIENT_IP_HEADER", "X-Real-IP", &c, &err));
}

Test(config, api_key_cache_ms_is_0_to_4000) {
    kv_t def[] = {{"JWT_SECRET", SECRET}, {NULL, NULL}};
    kv_t zero[] = {{"JWT_SECRET", SECRET}, {"API_KEY_CACHE_MS", "0"}, {NULL, NULL}};
    rp_config_t c;
    rp_err_t err;
    cr_assert(rp_config_load(&c, getter, def, &err), "%s", err.message);
    cr_assert_eq(c.api_key_cache_ms, 1000); /* revocation reaches every api process within 5 s */
    cr_assert(rp_config_load(&c, getter, zero, &err), "%s", err.message);
    cr_assert_eq(c.api_key_cache_ms, 0);
    const char *bad[] = {"-1", "4001", "1s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kv_t env[] = {{"JWT_SECRET", SECRET}, {"API_KEY_CACHE_MS", bad[i]}, {NULL, NULL}};
        cr_assert_not(rp_config_load(&c, getter, env, &err), "API_KEY_CACHE_MS=%s accepted", bad[i]);
        cr_assert(strstr(err.message, "API_KEY_CACHE_MS"), "%s", err.message);
    }
}

Test(config, webhook_defaults) {
    kv_t env[] = {{"JWT_SECRET", SECRET}, {NULL, NULL}};
    rp_config_t c;
    rp_err_t err;
    cr_assert(rp_config_load(&c, getter, env, &err), "%s", err.message);
    cr_assert_eq(c.webhook_timeout_ms, 10000);
    cr_assert_eq(c.webhook_connect_timeout_ms, 5000);
    cr_assert_eq(c.webhook_allow_private, 0);
    cr_assert_eq(c.webhook_allow_http, 0);
    cr_assert_eq(c.webhook_disable_after_s, 5 * 86400);
    cr_assert_eq(c.webhook_senders, 4);
    /* DESIGN.md section 10: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h */
    int64_t want[] = {0, 5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000};
    cr_assert_eq(c.webhook_attempts, 8);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(c.webhook_schedule_ms[i], want[i], "entry %d", i);
}

Test(config, webhook_schedule_parses_units_and_refuses_junk) {
    int64_t s[RP_WEBHOOK_SCHEDULE_MAX];
    int n = -1;
    cr_assert(rp_config_parse_schedule("0, 200ms,1s,2m,1h,1d", s, &n));
    cr_assert_eq(n, 6);
    cr_assert_eq(s[1], 200);
    cr_assert_eq(s[2], 1000);
    cr_assert_eq(s[3], 120000);
    cr_assert_eq(s[5], 86400000);
    const char *bad[] = {"", ",", "0,", "5", "1x", "-1s", "2d", "1s,,2s", "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0", "s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_not(rp_config_parse_schedule(bad[i], s, &n), "accepted \"%s\"", bad[i]);
        cr_assert_eq(n, 0);
    }
}

Test(config, webhook_bad_values_refuse_start) {
    const char *cases[][2] = {{"WEBHOOK_RETRY_SCHEDULE", "soon"},
                              {"WEBHOOK_TIMEOUT_MS", "50"},
                              {"WEBHOOK_CONNECT_TIMEOUT_MS", "0"},
                              {"WEBHOOK_ALLOW_PRIVATE", "yes"},
                              {"WEBHOOK_ALLOW_HTTP", "2"},
                              {"WEBHOOK_DISABLE_AFTER", "0"},
                              {"WEBHOOK_SENDERS", "0"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kv_t env[] = {{"JWT_SECRET", SECRET}, {cases[i][0], cases[i][1]}, {NULL, NULL}};
        rp_config_t c;
        rp_err_t err;
        cr_assert_not(rp_config_load(&c, getter, env, &err), "%s=%s accepted", cases[i][0], cases[i][1]);
        cr_assert(strstr(err.message, cases[i][0]), "%s", err.message);
    }
    kv_t ok[] = {{"JWT_SECRET", SECRET},
                 {"WEBHOOK_RETRY_SCHEDULE", "0,100ms,100ms"},
                 {"WEBHOOK_ALLOW_PRIVATE", "1"},
                 {"WEBHOOK_ALLOW_HTTP", "1"},
                 {"WEBHOOK_TIMEOUT_MS", "1500"},
                 {"WEBHOOK_DISABLE_AFTER", "2s"},
                 {NULL, NULL}};
    rp_config_t c;
    rp_err_t err;
    cr_assert(rp_config_load(&c, getter, ok, &err), "%s", err.message);
    cr_assert_eq(c.webhook_attempts, 3);
    cr_assert_eq(c.webhook_allow_private, 1);
    cr_assert_eq(c.webhook_disable_after_s, 2);
}

Test(config, session_log_keep_and_poll_defaults_and_bounds) {
    kv_t env[] = {{"JWT_SECRET", SECRET}, {NULL, NULL}};
    rp_config_t c;
    rp_err_t err;
    cr_assert(rp_config_load(&c, getter, env, &err), "%s", err.message);
    cr_assert_eq(c.session_cache_ms, 1000);
    cr_assert_eq(c.session_keep_ms, 60000);
    cr_assert_eq(c.session_poll_ms, 100);
    kv_t off[] = {{"JWT_SECRET", SECRET}, {"SESSION_KEEP_MS", "0"}, {"SESSION_POLL_MS", "10"}, {NULL, NULL}};
    cr_assert(rp_config_load(&c, getter, off, &err), "%s", err.message);
    cr_assert_eq(c.session_keep_ms, 0);
    cr_assert_eq(c.session_poll_ms, 10);
    const char *bad[][2] = {{"SESSION_KEEP_MS", "-1"}, {"SESSION_KEEP_MS", "3600001"}, {"SESSION_KEEP_MS", "1m"},
                            {"SESSION_POLL_MS", "9"},  {"SESSION_POLL_MS", "4000"},    {"SESSION_POLL_MS", "100x"}};
    refuses_each(bad, sizeof bad / sizeof bad[0]);
}

Test(config, cache_sizes_defaults_and_bounds) {
    kv_t env[] = {{"JWT_SECRET", SECRET}, {NULL, NULL}};
    rp_config_t c;
    rp_err_t err;
    cr_assert(rp_config_load(&c, getter, env, &err), "%s", err.message);
    cr_assert_eq(c.session_cache_slots, 65536);
    cr_assert_eq(c.token_cache_slots, 32768);
    kv_t set[] = {{"JWT_SECRET", SECRET}, {"SESSION_CACHE_SLOTS", "1048576"}, {"TOKEN_CACHE_SLOTS", "0"}, {NULL, NULL}};
    cr_assert(rp_config_load(&c, getter, set, &err), "%s", err.message);
    cr_assert_eq(c.session_cache_slots, 1048576);
    cr_assert_eq(c.token_cache_slots, 0, "0 keeps no token");
    const char *bad[][2] = {{"SESSION_CACHE_SLOTS", "7"},
                            {"SESSION_CACHE_SLOTS", "4194305"},
                            {"SESSION_CACHE_SLOTS", "64k"},
                            {"TOKEN_CACHE_SLOTS", "-1"},
                            {"TOKEN_CACHE_SLOTS", "4194305"}};
    refuses_each(bad, sizeof bad / sizeof bad[0]);
}
