/* config.c - environment configuration (see config.h); no global state. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export_page.h"
#include "log.h"
#include "sqlite_util.h"

bool rp_config_parse_duration(const char *s, int64_t *out_s) {
    *out_s = 0;
    if (!s || !*s || *s < '0' || *s > '9') return false;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno || v <= 0) return false;
    int64_t mult = 1;
    if (*end == 's')
        mult = 1, end++;
    else if (*end == 'm')
        mult = 60, end++;
    else if (*end == 'h')
        mult = 3600, end++;
    else if (*end == 'd')
        mult = 86400, end++;
    if (*end != '\0' || v > INT64_MAX / mult / 1000) return false;
    *out_s = (int64_t)v * mult;
    return true;
}

bool rp_config_parse_schedule(const char *s, int64_t out[RP_WEBHOOK_SCHEDULE_MAX], int *n) {
    *n = 0;
    if (!s || !*s) return false;
    for (;;) {
        while (*s == ' ')
            s++;
        if (*s < '0' || *s > '9' || *n == RP_WEBHOOK_SCHEDULE_MAX) goto bad;
        errno = 0;
        char *end = NULL;
        long long v = strtoll(s, &end, 10);
        int64_t mult = 0;
        if (errno || v > 86400000LL) goto bad;
        if (strncmp(end, "ms", 2) == 0)
            mult = 1, end += 2;
        else if (*end == 's')
            mult = 1000, end++;
        else if (*end == 'm')
            mult = 60000, end++;
        else if (*end == 'h')
            mult = 3600000, end++;
        else if (*end == 'd')
            mult = 86400000, end++;
        else if (v == 0)
            mult = 1;
        if (!mult || v * mult > 86400000LL) goto bad;
        out[(*n)++] = v * mult;
        while (*end == ' ')
            end++;
        if (*end == '\0') return true;
        if (*end != ',') goto bad;
        s = end + 1;
    }
bad:
    *n = 0;
    return false;
}

static bool copy_str(char *dst, size_t cap, const char *val, const char *name, rp_err_t *err) {
    if (strlen(val) >= cap) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "%s is too long (at most %zu bytes)", name, cap - 1);
        return false;
    }
    memcpy(dst, val, strlen(val) + 1);
    return true;
}

static bool get_int(rp_config_getter_fn get, void *ud, const char *name, int def, int lo, int hi, int *out,
                    rp_err_t *err) {
    const char *v = get(name, ud);
    *out = def;
    if (!v || !*v) return true;
    errno = 0;
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    if (errno || *end != '\0' || n < lo || n > hi) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "%s must be an integer between %d and %d", name, lo, hi);
        return false;
    }
    *out = (int)n;
    return true;
}

static bool get_str(rp_config_getter_fn get, void *ud, const char *name, const char *def, char *dst, size_t cap,
                    rp_err_t *err) {
    const char *v = get(name, ud);
    return copy_str(dst, cap, v && *v ? v : def, name, err);
}

static bool get_duration(rp_config_getter_fn get, void *ud, const char *name, const char *def, int64_t *out,
                         rp_err_t *err) {
    const char *v = get(name, ud);
    if (!rp_config_parse_duration(v && *v ? v : def, out)) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "%s must be a duration such as 30s, 60m, 12h or 14d", name);
        return false;
    }
    return true;
}

/* A file the process can open for reading, so that a wrong TLS path stops the start, not the first
 * handshake. */
static bool readable_file(const char *path, const char *name, rp_err_t *err) {
    FILE *f = fopen(path, "r");
    if (!f) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "%s cannot be read: %s", name, strerror(errno));
        return false;
    }
    fclose(f);
    return true;
}

/* The front end's limits against slow and idle clients, and HTTPS. The timeout defaults are
 * api/http_options.h's RP_HTTP_*_TIMEOUT_MS_DEFAULT, the benchmark anchors' values (test_config
 * checks that they agree). */
static bool get_http_limits(rp_config_t *cfg, rp_config_getter_fn get, void *ud, rp_err_t *err) {
    if (!get_int(get, ud, "HTTP_REQUEST_TIMEOUT_MS", 5000, 500, 60000, &cfg->http_request_timeout_ms, err) ||
        !get_int(get, ud, "HTTP_KEEPALIVE_TIMEOUT_MS", 2000, 100, 30000, &cfg->http_keepalive_timeout_ms, err) ||
        !get_int(get, ud, "MAX_CONNECTIONS_PER_ADDRESS", 128, 0, 100000, &cfg->max_connections_per_address, err) ||
        !get_int(get, ud, "SHUTDOWN_GRACE_MS", 8000, 0, 600000, &cfg->shutdown_grace_ms, err) ||
        !get_str(get, ud, "TLS_CERT_FILE", "", cfg->tls_cert_file, sizeof cfg->tls_cert_file, err) ||
        !get_str(get, ud, "TLS_KEY_FILE", "", cfg->tls_key_file, sizeof cfg->tls_key_file, err))
        return false;
    if (!cfg->tls_cert_file[0] != !cfg->tls_key_file[0]) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "TLS_CERT_FILE and TLS_KEY_FILE must be set together");
        return false;
    }
    if (cfg->tls_cert_file[0] && (!readable_file(cfg->tls_cert_file, "TLS_CERT_FILE", err) ||
                                  !readable_file(cfg->tls_key_file, "TLS_KEY_FILE", err)))
        return false;
    return true;
}

/* CLIENT_IP_HEADER is a header name; TRUSTED_PROXIES a strict list of addresses and CIDRs;
 * METRICS_TOKEN, when set, is long enough not to be guessed. */
static bool get_edge(rp_config_getter_fn get, void *ud, rp_config_t *cfg, rp_err_t *err) {
    char bad[96];
    for (const char *c = cfg->client_ip_header; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-')) {
            rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID",
                       "CLIENT_IP_HEADER must be a header name (letters, digits, '-')");
            return false;
        }
    if (!rp_ipnet_list_parse(get("TRUSTED_PROXIES", ud), &cfg->trusted_proxies, bad, sizeof bad)) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID",
                   "TRUSTED_PROXIES must be comma-separated IPv4/IPv6 addresses or CIDRs: %s", bad);
        return false;
    }
    size_t tlen = strlen(cfg->metrics_token);
    if (tlen > 0 && tlen < 32) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "METRICS_TOKEN must be at least 32 bytes (got %zu)", tlen);
        return false;
    }
    return true;
}

/* Webhook delivery: timeouts, the retry schedule, which targets are allowed, auto-disable. */
static bool get_webhooks(rp_config_t *cfg, rp_config_getter_fn get, void *ud, rp_err_t *err) {
    const char *sched = get("WEBHOOK_RETRY_SCHEDULE", ud);
    if (!get_int(get, ud, "WEBHOOK_TIMEOUT_MS", 10000, 100, 120000, &cfg->webhook_timeout_ms, err) ||
        !get_int(get, ud, "WEBHOOK_CONNECT_TIMEOUT_MS", 5000, 100, 60000, &cfg->webhook_connect_timeout_ms, err) ||
        !get_int(get, ud, "WEBHOOK_ALLOW_PRIVATE", 0, 0, 1, &cfg->webhook_allow_private, err) ||
        !get_int(get, ud, "WEBHOOK_ALLOW_HTTP", 0, 0, 1, &cfg->webhook_allow_http, err) ||
        !get_int(get, ud, "WEBHOOK_SENDERS", 4, 1, 64, &cfg->webhook_senders, err) ||
        !get_duration(get, ud, "WEBHOOK_DISABLE_AFTER", "5d", &cfg->webhook_disable_after_s, err))
        return false;
    if (!rp_config_parse_schedule(sched && *sched ? sched : "0,5s,5m,30m,2h,5h,10h,10h", cfg->webhook_schedule_ms,
                                  &cfg->webhook_attempts)) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID",
                   "WEBHOOK_RETRY_SCHEDULE must be 1 to %d comma-separated waits such as 0,5s,5m,2h (units ms, s, m, "
                   "h, d; each at most 1d)",
                   RP_WEBHOOK_SCHEDULE_MAX);
        return false;
    }
    return true;
}

bool rp_config_load(rp_config_t *cfg, rp_config_getter_fn get, void *ud, rp_err_t *err) {
    memset(cfg, 0, sizeof *cfg);
    int body_bytes = 0;
    const char *secret = get("JWT_SECRET", ud);
    if (!secret || !*secret) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "JWT_SECRET is required (at least 32 bytes of random data)");
        return false;
    }
    size_t slen = strlen(secret);
    if (slen < 32) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "JWT_SECRET must be at least 32 bytes (got %zu)", slen);
        return false;
    }
    if (strstr(secret, "change-me")) {
        /* the placeholder of deploy/.env.docker is public: refuse to sign tokens with it */
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "JWT_SECRET is still a change-me placeholder");
        return false;
    }
    if (slen > sizeof cfg->jwt_secret) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "JWT_SECRET must be at most %zu bytes",
                   sizeof cfg->jwt_secret);
        return false;
    }
    memcpy(cfg->jwt_secret, secret, slen);
    cfg->jwt_secret_len = slen;

    if (!get_int(get, ud, "PORT", 8080, 0, 65535, &cfg->port, err) ||
        !get_str(get, ud, "BIND_ADDRESS", "0.0.0.0", cfg->bind_address, sizeof cfg->bind_address, err) ||
        !get_str(get, ud, "STORE", "sqlite", cfg->store, sizeof cfg->store, err) ||
        !get_str(get, ud, "SQLITE_DIR", "./data", cfg->sqlite_dir, sizeof cfg->sqlite_dir, err) ||
        !get_str(get, ud, "MONGODB_URI", "", cfg->mongodb_uri, sizeof cfg->mongodb_uri, err) ||
        !get_str(get, ud, "MONGODB_DB_NAME", "reward_platform", cfg->mongodb_db_name, sizeof cfg->mongodb_db_name,
                 err) ||
        !get_str(get, ud, "TRANSPORT", "inproc", cfg->transport, sizeof cfg->transport, err) ||
        !get_str(get, ud, "AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/", cfg->amqp_url, sizeof cfg->amqp_url, err) ||
        !get_int(get, ud, "AMQP_PREFETCH", 16, 1, 65535, &cfg->amqp_prefetch, err) ||
        !get_int(get, ud, "AMQP_REPLY_SPIN_US", 500, 0, 100000, &cfg->amqp_reply_spin_us, err) ||
        !get_duration(get, ud, "JWT_EXPIRES_IN", "60m", &cfg->jwt_expires_s, err) ||
        !get_duration(get, ud, "REFRESH_EXPIRES_IN", "14d", &cfg->refresh_expires_s, err) ||
        !get_str(get, ud, "ADMIN_USERNAME", "", cfg->admin_username, sizeof cfg->admin_username, err) ||
        !get_str(get, ud, "ADMIN_PASSWORD", "", cfg->admin_password, sizeof cfg->admin_password, err) ||
        !get_int(get, ud, "RPC_TIMEOUT_MS", 5000, 50, 600000, &cfg->rpc_timeout_ms, err) ||
        !get_int(get, ud, "RPC_CONNECTIONS", 64, 1, 1024, &cfg->rpc_connections, err) ||
        !get_int(get, ud, "RPC_BUNDLE_MAX", 64, 1, 256, &cfg->rpc_bundle_max, err) ||
        !get_int(get, ud, "RPC_BUNDLE_LANES", 2, 1, 1024, &cfg->rpc_bundle_lanes, err) ||
        !get_int(get, ud, "WORKER_THREADS", 4, 1, 256, &cfg->worker_threads, err) ||
        /* over RabbitMQ each call is a consumer thread with a broker connection of its own, and
         * 16 per grant worker grant as fast as 64 (bench/README.md) */
        !get_int(get, ud, "GRANT_CONCURRENCY", strcmp(cfg->transport, "amqp") == 0 ? 16 : 64, 1, 256,
                 &cfg->grant_concurrency, err) ||
        !get_int(get, ud, "QUEUE_CAPACITY", 1024, 1, 1000000, &cfg->queue_capacity, err) ||
        !get_int(get, ud, "BATCH_REDELIVER_MS", 60000, 1000, 3600000, &cfg->batch_redeliver_ms, err) ||
        !get_int(get, ud, "BATCH_MAX_IN_FLIGHT", 2000, 10, 1000000, &cfg->batch_max_in_flight, err) ||
        !get_int(get, ud, "BATCH_CHUNK", 500, 10, 1000, &cfg->batch_chunk, err) ||
        !get_int(get, ud, "HTTP_THREADS", 512, 2, 1024, &cfg->http_threads, err) ||
        !get_int(get, ud, "MAX_BODY_BYTES", 65536, 1024, 16 * 1024 * 1024, &body_bytes, err) ||
        !get_int(get, ud, "EXPORT_PAGE_SIZE", RP_EXPORT_PAGE_MAX, 1, RP_EXPORT_PAGE_MAX, &cfg->export_page_size, err) ||
        !get_str(get, ud, "PASSWORD_HASH", "standard", cfg->password_hash, sizeof cfg->password_hash, err) ||
        !get_int(get, ud, "PASSWORD_HASH_CONCURRENCY", 2, 1, 64, &cfg->password_hash_concurrency, err) ||
        !get_int(get, ud, "LOGIN_MAX_FAILURES", 5, 1, 1000, &cfg->login_max_failures, err) ||
        !get_duration(get, ud, "LOGIN_LOCKOUT_WINDOW", "15m", &cfg->login_lockout_s, err) ||
        !get_int(get, ud, "SESSION_CACHE_MS", 1000, 0, 4000, &cfg->session_cache_ms, err) ||
        !get_int(get, ud, "SESSION_KEEP_MS", 60000, 0, 3600000, &cfg->session_keep_ms, err) ||
        !get_int(get, ud, "SESSION_POLL_MS", 100, 10, 3999, &cfg->session_poll_ms, err) ||
        !get_int(get, ud, "SESSION_CACHE_SLOTS", 65536, 8, 4194304, &cfg->session_cache_slots, err) ||
        !get_int(get, ud, "TOKEN_CACHE_SLOTS", 32768, 0, 4194304, &cfg->token_cache_slots, err) ||
        !get_int(get, ud, "API_KEY_CACHE_MS", 1000, 0, 4000, &cfg->api_key_cache_ms, err) ||
        !get_int(get, ud, "EVENTS_CACHE_MS", 1000, 0, 10000, &cfg->events_cache_ms, err) ||
        !get_str(get, ud, "CLIENT_IP_HEADER", "", cfg->client_ip_header, sizeof cfg->client_ip_header, err) ||
        !get_str(get, ud, "METRICS_TOKEN", "", cfg->metrics_token, sizeof cfg->metrics_token, err) ||
        !get_int(get, ud, "RATE_LIMIT_RPS", 100, 0, 1000000, &cfg->rate_limit_rps, err) ||
        !get_int(get, ud, "RATE_LIMIT_BURST", 200, 1, 10000000, &cfg->rate_limit_burst, err) ||
        !get_int(get, ud, "RATE_LIMIT_AUTH_RPS", 5, 0, 1000000, &cfg->rate_limit_auth_rps, err) ||
        !get_int(get, ud, "RATE_LIMIT_AUTH_BURST", 20, 1, 10000000, &cfg->rate_limit_auth_burst, err) ||
        !get_int(get, ud, "METRICS_ALLOW_LOOPBACK", 0, 0, 1, &cfg->metrics_allow_loopback, err) ||
        !get_int(get, ud, "RATE_LIMIT_MAX_CLIENTS", 65536, 64, 16777216, &cfg->rate_limit_max_clients, err) ||
        !get_edge(get, ud, cfg, err))
        return false;
    if (!get_http_limits(cfg, get, ud, err) || !get_webhooks(cfg, get, ud, err)) return false;
    cfg->max_body_bytes = (size_t)body_bytes;
    if (!get_int(get, ud, "PASSWORD_HASH_QUEUE", 1, 0, 1024, &cfg->password_hash_queue, err) ||
        !get_int(get, ud, "SQLITE_CACHE_KIB", RP_SQLITE_CACHE_KIB_DEFAULT, 64, 1048576, &cfg->sqlite_cache_kib, err) ||
        !get_int(get, ud, "LOGIN_GLOBAL_RPS", 20, 0, 1000000, &cfg->login_global_rps, err) ||
        !get_int(get, ud, "LOGIN_GLOBAL_BURST", 60, 1, 10000000, &cfg->login_global_burst, err))
        return false;
    if (cfg->password_hash_concurrency + cfg->password_hash_queue >= cfg->worker_threads) {
        /* every RPC thread waiting for a hash would leave none for /auth/me and token refresh */
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID",
                   "PASSWORD_HASH_CONCURRENCY + PASSWORD_HASH_QUEUE must be below WORKER_THREADS (%d + %d >= %d)",
                   cfg->password_hash_concurrency, cfg->password_hash_queue, cfg->worker_threads);
        return false;
    }

    if (strcmp(cfg->store, "sqlite") != 0 && strcmp(cfg->store, "mongodb") != 0) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "STORE must be sqlite or mongodb");
        return false;
    }
    if (strcmp(cfg->store, "mongodb") == 0 && !cfg->mongodb_uri[0]) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "MONGODB_URI is required when STORE=mongodb");
        return false;
    }
    if (strcmp(cfg->transport, "inproc") != 0 && strcmp(cfg->transport, "amqp") != 0) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "TRANSPORT must be inproc or amqp");
        return false;
    }
    if (strcmp(cfg->password_hash, "standard") != 0 && strcmp(cfg->password_hash, "interactive") != 0 &&
        strcmp(cfg->password_hash, "moderate") != 0 && strcmp(cfg->password_hash, "min") != 0) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID",
                   "PASSWORD_HASH must be standard, interactive, moderate or min");
        return false;
    }
    if (!cfg->admin_username[0] != !cfg->admin_password[0]) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "ADMIN_USERNAME and ADMIN_PASSWORD must be set together");
        return false;
    }
    if (strstr(cfg->admin_password, "change-me")) {
        /* a change-me password is a published placeholder: an admin holding it is anyone's admin */
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "ADMIN_PASSWORD is still a change-me placeholder");
        return false;
    }
    const char *lvl = get("LOG_LEVEL", ud);
    cfg->log_level = rp_log_level_parse(lvl && *lvl ? lvl : "info");
    if (cfg->log_level < 0) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "LOG_LEVEL must be debug, info, warn or error");
        return false;
    }
    return true;
}

static const char *env_get(const char *name, void *ud) {
    (void)ud;
    return getenv(name);
}

bool rp_config_load_env(rp_config_t *cfg, rp_err_t *err) {
    return rp_config_load(cfg, env_get, NULL, err);
}
