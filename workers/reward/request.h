/* request.h - the records of the grant as plain C: reward requests, ledger entries, outbox
 * messages, batches and batch items, with enums for every status and int64 ms for every time.
 * The stores store and fetch these; the grant bodies (grant_txn.c) decide on them; JSON is made
 * from them here, at the service edge, and nowhere below it. Functions are pure; a record
 * belongs to one thread at a time. */
#ifndef RP_WORKERS_REWARD_REQUEST_H
#define RP_WORKERS_REWARD_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "rules/event_rules.h"
#include "rules/period.h"
#include "rules/request_state.h"

#define RP_ACTIVE_KEY_LEN 96      /* "<userId>:<eventId>:<periodKey>" */
#define RP_REASON_LEN 48          /* failure reason codes: UPPER_SNAKE */
#define RP_MESSAGE_ID_LEN 40      /* "<requestId>" or "<requestId>:revoked" */
#define RP_IDEM_KEY_LEN 136       /* an Idempotency-Key header */
#define RP_MAX_FAILURE_REASONS 16 /* distinct failure reasons counted per batch */

typedef enum rp_req_source { RP_SOURCE_CLAIM = 0, RP_SOURCE_BATCH } rp_req_source_t;

/* "CLAIM" or "BATCH", as the API and the stores spell it. */
const char *rp_req_source_name(rp_req_source_t s);
/* The source named s; CLAIM for anything else (what the stores wrote before sources existed). */
rp_req_source_t rp_req_source_parse(const char *s);

/* One reward line of a request: a snapshot of the event reward and its definition at claim time. */
typedef struct rp_claimed_reward {
    int reward_index; /* the event reward (and stock) it was paid from */
    char definition_id[RP_OID_LEN];
    char name[104];
    char type[16];
    json_t *value; /* owned: the definition's value, any JSON */
    int64_t quantity;
} rp_claimed_reward_t;

typedef struct rp_request {
    char id[RP_OID_LEN], user_id[RP_OID_LEN], event_id[RP_OID_LEN];
    char period_key[RP_PERIOD_KEY_LEN];
    char active_key[RP_ACTIVE_KEY_LEN]; /* set exactly while the status holds the slot; "" when FAILED */
    rp_req_status_t status;
    rp_req_source_t source;
    rp_claimed_reward_t rewards[RP_MAX_EVENT_REWARDS];
    size_t nrewards;
    int64_t requested_at, processed_at, created_at, updated_at; /* processed_at 0 = not processed */
    char processor_id[RP_OID_LEN];                              /* "" = the system */
    char failure_reason[RP_REASON_LEN];                         /* "" = none */
    json_t *failure_details;                                    /* owned; NULL = none */
    char *notes;                                                /* owned; NULL = none */
    char batch_id[RP_OID_LEN];                                  /* "" unless source BATCH */
} rp_request_t;

/* Zeroes r (an empty PENDING claim). */
void rp_request_init(rp_request_t *r);
/* Frees what r owns and zeroes it. Accepts NULL. */
void rp_request_clear(rp_request_t *r);
/* dst (initialised or cleared) becomes a deep copy of src. */
void rp_request_copy(rp_request_t *dst, const rp_request_t *src);
/* Replaces r's notes with a copy of notes (NULL = none). */
void rp_request_set_notes(rp_request_t *r, const char *notes);
/* Takes ownership of details (NULL = none) as r's failure details. */
void rp_request_set_details(rp_request_t *r, json_t *details);

/* The API shape of a request: {id, userId, eventId, periodKey, status, claimedRewards,
 * requestedAt, processedAt, processorId, failureReason, failureDetails, notes, source, batchId,
 * createdAt, updatedAt}; times ISO-8601, absent values null. A new object. */
json_t *rp_request_to_json(const rp_request_t *r);
/* The same shape printed as compact JSON, byte for byte what json_dumps(rp_request_to_json(r),
 * JSON_COMPACT) prints, without building the object: a claim's answer, where building, printing
 * and freeing the object was 15 % of an embedded claim's CPU (bench/README.md). Returns a new
 * malloc'd text (free with free) and its length in *len, or NULL when a text of r is not valid
 * UTF-8 (rp_request_to_json then leaves that key out; use it). */
char *rp_request_print(const rp_request_t *r, size_t *len);
/* claimedRewards alone: [{rewardIndex, rewardDefinitionId, name, type, value, quantity}]. */
json_t *rp_claimed_to_json(const rp_request_t *r);
/* The same array printed compactly, as json_dumps prints it; NULL when a text in it is not UTF-8.
 * Free it. */
char *rp_claimed_print(const rp_request_t *r);
/* Fills r->rewards from that array (replacing them); false when it is malformed. For stores
 * that keep the lines as one JSON value. */
bool rp_claimed_from_json(rp_request_t *r, const json_t *claimed);

/* ---- ledger ---- */

typedef enum rp_ledger_kind { RP_LEDGER_GRANT = 0, RP_LEDGER_REVERSAL } rp_ledger_kind_t;

/* One append-only ledger row: a reward paid (positive quantity) or reversed (negative). */
typedef struct rp_ledger_entry {
    int64_t seq; /* commit order, assigned by the store */
    char id[RP_OID_LEN], request_id[RP_OID_LEN], user_id[RP_OID_LEN], event_id[RP_OID_LEN];
    int reward_index;
    char definition_id[RP_OID_LEN];
    int64_t quantity;
    rp_ledger_kind_t kind;
    char processor_id[RP_OID_LEN]; /* "" = the system */
    int64_t at;
} rp_ledger_entry_t;

const char *rp_ledger_kind_name(rp_ledger_kind_t k);
bool rp_ledger_kind_parse(const char *s, rp_ledger_kind_t *out);
/* {seq, id, requestId, userId, eventId, rewardIndex, rewardDefinitionId, quantity, entryType,
 * processorId, at}. */
json_t *rp_ledger_entry_to_json(const rp_ledger_entry_t *e);

/* ---- outbox ---- */

/* One message for game servers, written in the transaction that made it true. The message id
 * is the request id for a grant and "<requestId>:revoked" for a revocation; the payload carries
 * the same id as messageId. */
typedef struct rp_outbox_message {
    int64_t seq; /* commit order, assigned by the store */
    char message_id[RP_MESSAGE_ID_LEN];
    char routing_key[32]; /* reward.granted, reward.revoked */
    char request_id[RP_OID_LEN];
    json_t *payload;                  /* owned */
    char *payload_text;               /* owned, or NULL: payload printed compactly, which a store may write */
    int64_t created_at, published_at; /* published_at 0 = not yet */
} rp_outbox_message_t;

/* Frees the payload (and its text) and zeroes m. Accepts NULL. */
void rp_outbox_message_clear(rp_outbox_message_t *m);
/* The payload game servers receive about r: {type, messageId, requestId, userId, eventId,
 * rewards, at, processorId} and, when reason is not NULL, reason. A new object. */
json_t *rp_request_message(const rp_request_t *r, const char *type, const char *message_id, int64_t at,
                           const char *reason);
/* The same payload printed compactly, the bytes json_dumps(rp_request_message(...),
 * JSON_COMPACT) gives, without making the object; NULL when a text in it is not UTF-8. Free it. */
char *rp_request_message_print(const rp_request_t *r, const char *type, const char *message_id, int64_t at,
                               const char *reason);
/* {seq, messageId, routingKey, requestId, payload, createdAt, publishedAt}. */
json_t *rp_outbox_message_to_json(const rp_outbox_message_t *m);

/* ---- claim idempotency ---- */

/* A stored Idempotency-Key: the digest of the first request made with it and its answer. */
typedef struct rp_idem {
    char request_hash[65];
    int status;       /* the HTTP status first answered */
    json_t *response; /* owned: the body first answered */
    int64_t created_at;
} rp_idem_t;

/* Frees the response of v and zeroes it. Accepts NULL. */
void rp_idem_clear(rp_idem_t *v);

/* ---- batches ---- */

typedef enum rp_item_status { RP_ITEM_QUEUED = 0, RP_ITEM_SUCCESS, RP_ITEM_FAILED } rp_item_status_t;

const char *rp_item_status_name(rp_item_status_t s);
bool rp_item_status_parse(const char *s, rp_item_status_t *out);

typedef struct rp_batch {
    char id[RP_OID_LEN], event_id[RP_OID_LEN], created_by[RP_OID_LEN];
    char *reason;                   /* owned */
    char idem_key[RP_IDEM_KEY_LEN]; /* "" = created without an Idempotency-Key */
    char request_hash[65];          /* digest of the body the key was first used with */
    int64_t total, duplicates, created_at;
    bool open; /* false while its items are still being stored (a creation cut short) */
    /* counts, when asked for */
    int64_t counts[3]; /* by rp_item_status_t */
    struct {
        char reason[RP_REASON_LEN];
        int64_t n;
    } failures[RP_MAX_FAILURE_REASONS];
    size_t nfailures;
    int64_t last_settled_at; /* 0 = none settled yet */
} rp_batch_t;

/* Frees the reason and zeroes b. Accepts NULL. */
void rp_batch_clear(rp_batch_t *b);
/* Adds n items of status s with failure reason (NULL or "" for none) to b's counts. */
void rp_batch_count(rp_batch_t *b, rp_item_status_t s, const char *reason, int64_t n);
/* {id, batchId, eventId, reason, createdBy, total, duplicates, createdAt} and, with counts,
 * {counts: {QUEUED, SUCCESS, FAILED}, failures: {reason: n}, lastSettledAt, status: RUNNING |
 * COMPLETED}. */
json_t *rp_batch_to_json(const rp_batch_t *b, bool with_counts);

typedef struct rp_batch_item {
    char batch_id[RP_OID_LEN];
    int64_t seq;
    char user_id[RP_OID_LEN];
    rp_item_status_t status;
    char failure_reason[RP_REASON_LEN]; /* "" = none */
    char request_id[RP_OID_LEN];        /* "" = none */
    int64_t attempts, settled_at;       /* settled_at 0 = QUEUED */
} rp_batch_item_t;

/* {seq, userId, status, failureReason, requestId, attempts, settledAt}. */
json_t *rp_batch_item_to_json(const rp_batch_item_t *it);

#endif
