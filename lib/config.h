/* config.h - platform configuration read from the environment (DESIGN.md section 8) and validated;
 * a loaded config is immutable and may be shared by all threads. */
#ifndef RP_LIB_CONFIG_H
#define RP_LIB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "ipnet.h"

#define RP_WEBHOOK_SCHEDULE_MAX 16 /* attempts in WEBHOOK_RETRY_SCHEDULE */

typedef struct rp_config {
    int port;                      /* PORT, default 8080 */
    char bind_address[64];         /* BIND_ADDRESS, default 0.0.0.0 */
    char store[16];                /* STORE: sqlite | mongodb */
    char sqlite_dir[512];          /* SQLITE_DIR, default ./data */
    char mongodb_uri[1024];        /* MONGODB_URI */
    char mongodb_db_name[64];      /* MONGODB_DB_NAME, default reward_platform */
    char transport[16];            /* TRANSPORT: inproc | amqp */
    char amqp_url[1024];           /* AMQP_URL */
    int amqp_prefetch;             /* AMQP_PREFETCH unacked messages per consumer, default 16 */
    int amqp_reply_spin_us;        /* AMQP_REPLY_SPIN_US a lone call polls for its reply, default 500 */
    unsigned char jwt_secret[512]; /* JWT_SECRET bytes (required, >= 32) */
    size_t jwt_secret_len;
    int64_t jwt_expires_s;         /* JWT_EXPIRES_IN, default 60m */
    int64_t refresh_expires_s;     /* REFRESH_EXPIRES_IN, default 14d */
    char admin_username[64];       /* ADMIN_USERNAME (optional, with ADMIN_PASSWORD) */
    char admin_password[256];      /* ADMIN_PASSWORD */
    int rpc_timeout_ms;            /* RPC_TIMEOUT_MS, default 5000 */
    int rpc_connections;           /* RPC_CONNECTIONS: a process's broker connections for calls, 64 */
    int rpc_bundle_max;            /* RPC_BUNDLE_MAX claims in one broker message, 64 (1: each alone) */
    int rpc_bundle_lanes;          /* RPC_BUNDLE_LANES: bundles of claims on their way at once, 2 */
    int worker_threads;            /* WORKER_THREADS per component, default 4 */
    int grant_concurrency;         /* GRANT_CONCURRENCY: the reward component's calls at once, 64 (16 on amqp) */
    int queue_capacity;            /* QUEUE_CAPACITY per component (inproc), default 1024 */
    int batch_redeliver_ms;        /* BATCH_REDELIVER_MS: a batch item not settled this long is sent again; 60000 */
    int batch_max_in_flight;       /* BATCH_MAX_IN_FLIGHT items sent and not yet settled, all batches; 2000 */
    int batch_chunk;               /* BATCH_CHUNK items settled in one unit of work, 10..1000; 500 */
    int http_threads;              /* HTTP_THREADS (civetweb workers), default 64 */
    size_t max_body_bytes;         /* MAX_BODY_BYTES, default 65536 */
    int export_page_size;          /* EXPORT_PAGE_SIZE rows the export asks the reward worker for at once; 1000 */
    int log_level;                 /* LOG_LEVEL as rp_log_level_t, default info */
    char client_ip_header[64];     /* CLIENT_IP_HEADER: header naming the client address behind a trusted proxy */
    char metrics_token[128];       /* METRICS_TOKEN: bearer token for /metrics from non-loopback clients */
    int rate_limit_rps;            /* RATE_LIMIT_RPS per client address, 0 = off; default 100 */
    int rate_limit_burst;          /* RATE_LIMIT_BURST, default 200 */
    int rate_limit_auth_rps;       /* RATE_LIMIT_AUTH_RPS for register/login/refresh per address, 0 = off; default 5 */
    int rate_limit_auth_burst;     /* RATE_LIMIT_AUTH_BURST, default 20 */
    char password_hash[16];        /* PASSWORD_HASH: interactive | moderate | min (min: tests only) */
    int password_hash_concurrency; /* PASSWORD_HASH_CONCURRENCY hash threads per auth worker, default 2 */
    int sqlite_cache_kib;          /* SQLITE_CACHE_KIB page cache per SQLite connection, default 256 */
    int password_hash_queue;       /* PASSWORD_HASH_QUEUE hashes waiting for a thread, default 1 (503 beyond) */
    int login_global_rps;          /* LOGIN_GLOBAL_RPS register/login per second over all addresses, 0 = off; 20 */
    int login_global_burst;        /* LOGIN_GLOBAL_BURST, default 60 */
    int login_max_failures;        /* LOGIN_MAX_FAILURES, default 5 */
    int64_t login_lockout_s;       /* LOGIN_LOCKOUT_WINDOW, default 15m */
    int events_cache_ms;           /* EVENTS_CACHE_MS an event worker keeps a rendered events page, 0..10000; 1000 */
    int session_cache_ms;          /* SESSION_CACHE_MS an api process trusts an account's state, 0..4000; 1000 */
    int session_keep_ms;           /* SESSION_KEEP_MS it keeps one while it reads the change log, 0..3600000 (0: never
                                    * beyond SESSION_CACHE_MS); 60000 */
    int session_poll_ms;           /* SESSION_POLL_MS between its reads of the log, 10..3999; 100 (each api process) */
    int session_cache_slots;       /* SESSION_CACHE_SLOTS account states an api process holds, 8..4194304; 65536 */
    int token_cache_slots;         /* TOKEN_CACHE_SLOTS verified tokens it keeps, 0..4194304 (0: none); 32768 */
    int api_key_cache_ms;        /* API_KEY_CACHE_MS an api process trusts what an API key stands for, 0..4000; 1000 */
    int http_request_timeout_ms; /* HTTP_REQUEST_TIMEOUT_MS to receive a request's headers, 500..60000; 5000 */
    int http_keepalive_timeout_ms;   /* HTTP_KEEPALIVE_TIMEOUT_MS idle between requests, 100..30000; 2000 */
    int max_connections_per_address; /* MAX_CONNECTIONS_PER_ADDRESS open at once, 0 = no cap; 128 */
    int shutdown_grace_ms; /* SHUTDOWN_GRACE_MS a stopping api process waits for requests in flight, 0..600000; 8000 */
    char tls_cert_file[512];         /* TLS_CERT_FILE: PEM certificate chain; set with TLS_KEY_FILE to serve HTTPS */
    char tls_key_file[512];          /* TLS_KEY_FILE: PEM private key of TLS_CERT_FILE */
    rp_ipnet_list_t trusted_proxies; /* TRUSTED_PROXIES: peers whose CLIENT_IP_HEADER is believed */
    int metrics_allow_loopback;      /* METRICS_ALLOW_LOOPBACK=1: loopback clients read /metrics without a token */
    int rate_limit_max_clients;      /* RATE_LIMIT_MAX_CLIENTS buckets per limiter, 64..16777216; 65536 */
    /* webhooks (DESIGN.md section 10) */
    int webhook_timeout_ms;         /* WEBHOOK_TIMEOUT_MS one attempt may take in all, 100..120000; 10000 */
    int webhook_connect_timeout_ms; /* WEBHOOK_CONNECT_TIMEOUT_MS to connect, 100..60000; 5000 */
    /* WEBHOOK_RETRY_SCHEDULE: the wait before each attempt, from the message (first) or the failed
     * attempt before; default 0,5s,5m,30m,2h,5h,10h,10h */
    int64_t webhook_schedule_ms[RP_WEBHOOK_SCHEDULE_MAX];
    int webhook_attempts;            /* entries of the schedule */
    int webhook_allow_private;       /* WEBHOOK_ALLOW_PRIVATE=1: targets on private addresses are allowed */
    int webhook_allow_http;          /* WEBHOOK_ALLOW_HTTP=1: http:// targets are allowed */
    int64_t webhook_disable_after_s; /* WEBHOOK_DISABLE_AFTER an endpoint may fail every delivery; 5d */
    int webhook_senders;             /* WEBHOOK_SENDERS delivering threads per grant-worker process, 1..64; 4 */
} rp_config_t;

/* Looks up one variable; returns NULL when unset. ud is passed through. */
typedef const char *(*rp_config_getter_fn)(const char *name, void *ud);

/* Fills cfg from the getter, applying defaults, and validates everything. Fails with status 500,
 * code CONFIG_INVALID and a one-line reason naming the variable (e.g. "JWT_SECRET must be at
 * least 32 bytes"). cfg is zeroed first, also on failure. */
bool rp_config_load(rp_config_t *cfg, rp_config_getter_fn get, void *ud, rp_err_t *err);
/* rp_config_load from the process environment. */
bool rp_config_load_env(rp_config_t *cfg, rp_err_t *err);

/* Parses a retry schedule: comma-separated waits, each an integer with a unit ms, s, m, h or d
 * (a bare 0 is "at once"), at most RP_WEBHOOK_SCHEDULE_MAX, each at most 1d, into out[] and *n.
 * False (with *n 0) when malformed. */
bool rp_config_parse_schedule(const char *s, int64_t out[RP_WEBHOOK_SCHEDULE_MAX], int *n);

/* Parses a duration such as "90", "30s", "60m", "12h", "14d" into seconds (> 0). */
bool rp_config_parse_duration(const char *s, int64_t *out_s);

#endif
