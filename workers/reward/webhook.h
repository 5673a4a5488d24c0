/* webhook.h - the records of signed webhooks (DESIGN.md section 10) as plain C: endpoints,
 * deliveries and their attempts, the message types an endpoint subscribes to, and their JSON at
 * the service edge. Functions are pure; a record belongs to one thread at a time. */
#ifndef RP_WORKERS_REWARD_WEBHOOK_H
#define RP_WORKERS_REWARD_WEBHOOK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"

#define RP_WEBHOOK_URL_LEN 2049    /* at most 2048 bytes of URL */
#define RP_WEBHOOK_SECRET_LEN 64   /* "whsec_" + base64 of 32 bytes (44) + NUL */
#define RP_WEBHOOK_ID_LEN 64       /* a webhook-id: an outbox message id ("<id>:revoked", ...) */
#define RP_WEBHOOK_TYPE_LEN 32     /* "reward.awaiting_review" */
#define RP_WEBHOOK_ERROR_LEN 160   /* an attempt's error text */
#define RP_WEBHOOK_EXCERPT_LEN 257 /* the first 256 bytes of a receiver's answer */
#define RP_WEBHOOK_MAX_ATTEMPTS 64 /* attempts a delivery keeps in its log (the newest) */

/* The message types, as bits of an endpoint's subscription. */
typedef enum rp_webhook_type {
    RP_HOOK_REWARD_GRANTED = 1u << 0,
    RP_HOOK_REWARD_REVOKED = 1u << 1,
    RP_HOOK_REWARD_AWAITING_REVIEW = 1u << 2,
    RP_HOOK_BATCH_COMPLETED = 1u << 3,
    RP_HOOK_EVENT_CANCELED = 1u << 4,
    RP_HOOK_EVENT_ENDED = 1u << 5,
    RP_HOOK_PING = 1u << 6,
} rp_webhook_type_t;

#define RP_HOOK_ALL_TYPES 0x7fu

/* The type named s ("reward.granted", ...); 0 when it names none. */
unsigned rp_webhook_type_parse(const char *s);
/* The name of the one type bit t; NULL when t is not one type. */
const char *rp_webhook_type_name(unsigned t);
/* The names of the bits of mask as a new JSON array, in the order of the bits. */
json_t *rp_webhook_types_to_json(unsigned mask);

typedef struct rp_webhook_endpoint {
    char id[RP_OID_LEN];
    char url[RP_WEBHOOK_URL_LEN];
    unsigned types; /* rp_webhook_type_t bits */
    bool enabled;
    char secret[RP_WEBHOOK_SECRET_LEN];
    char created_by[RP_OID_LEN];
    int64_t created_at, updated_at;
    int64_t failing_since;    /* first failed attempt since the last delivered one; 0 = none */
    int64_t disabled_at;      /* 0 = not disabled by the platform */
    char disabled_reason[48]; /* "" = none; GONE (410), FAILING (WEBHOOK_DISABLE_AFTER) */
} rp_webhook_endpoint_t;

/* {id, url, types, enabled, createdBy, createdAt, updatedAt, failingSince, disabledAt,
 * disabledReason}; with_secret adds secret (only the answer to a creation). A new object. */
json_t *rp_webhook_endpoint_to_json(const rp_webhook_endpoint_t *e, bool with_secret);

typedef enum rp_delivery_status {
    RP_DELIVERY_PENDING = 0,
    RP_DELIVERY_DELIVERED,
    RP_DELIVERY_FAILED,
} rp_delivery_status_t;

const char *rp_delivery_status_name(rp_delivery_status_t s);
bool rp_delivery_status_parse(const char *s, rp_delivery_status_t *out);

/* One POST of a delivery. */
typedef struct rp_webhook_attempt {
    int64_t at;
    int http_status;                  /* 0 = no answer */
    char error[RP_WEBHOOK_ERROR_LEN]; /* "" when the receiver answered */
    int64_t latency_ms;
    char excerpt[RP_WEBHOOK_EXCERPT_LEN]; /* the start of the answer's body */
} rp_webhook_attempt_t;

/* {at, status, error, latencyMs, responseExcerpt}; a new object. */
json_t *rp_webhook_attempt_to_json(const rp_webhook_attempt_t *a);

/* One message for one endpoint. The body is fixed when the delivery is made, so every attempt
 * and every redelivery sends the same bytes under the same webhook-id. */
typedef struct rp_webhook_delivery {
    char id[RP_OID_LEN];
    char endpoint_id[RP_OID_LEN];
    char webhook_id[RP_WEBHOOK_ID_LEN];
    char type[RP_WEBHOOK_TYPE_LEN];
    char *body; /* owned */
    rp_delivery_status_t status;
    int64_t attempts;               /* attempts made in all */
    int64_t round;                  /* attempts since it was made or redelivered by hand: the retry schedule's place */
    int64_t next_at;                /* when a PENDING delivery is due */
    int64_t created_at, settled_at; /* settled_at 0 = PENDING */
    json_t *log; /* owned: array of attempts as rp_webhook_attempt_to_json, oldest first; NULL = [] */
} rp_webhook_delivery_t;

/* Frees what d owns and zeroes it. Accepts NULL. */
void rp_webhook_delivery_clear(rp_webhook_delivery_t *d);
/* {id, endpointId, webhookId, type, status, attemptCount, attempts, nextAttemptAt, createdAt,
 * settledAt, payload}; payload is the body as JSON. A new object. */
json_t *rp_webhook_delivery_to_json(const rp_webhook_delivery_t *d);

/* ---- the message ---- */

/* The body of a message: {"type": type, "timestamp": ISO of at, "data": data} as compact JSON
 * text (new, free()). data is borrowed. */
char *rp_webhook_body(const char *type, int64_t at, const json_t *data);

#endif
