/* webhook_store.h - where webhook endpoints and their deliveries live, beside the reward store's
 * outbox (SQLite: events.db; MongoDB: the same database). A store only stores and fetches: which
 * endpoint gets which message, what a body says, when to retry and when to disable an endpoint
 * are decided in webhooks.c. Backends: webhook_store_sqlite.c, webhook_store_mongo.c. A store is
 * thread-safe.
 *
 * Errors carry a kind (lib/err.h), never an HTTP status. */
#ifndef RP_WORKERS_REWARD_WEBHOOK_STORE_H
#define RP_WORKERS_REWARD_WEBHOOK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "err.h"
#include "request.h"
#include "webhook.h"

typedef struct rp_webhook_store rp_webhook_store_t;

/* The fan-out's decision about one outbox message: given the message and every enabled endpoint
 * (borrowed for the call), fills out[0..*n) (room for nendpoints) with the deliveries to make:
 * id, endpoint_id, webhook_id, type, body (a new string the store frees), next_at, created_at.
 * ctx is the caller's. */
typedef void (*rp_webhook_plan_fn)(void *ctx, const rp_outbox_message_t *m, const rp_webhook_endpoint_t *endpoints,
                                   size_t nendpoints, rp_webhook_delivery_t *out, size_t *n);

/* What an attempt changes: the delivery's new status, round, next_at and settled_at, and the
 * endpoint's failing_since (0 clears it). */
typedef struct rp_webhook_outcome {
    rp_delivery_status_t status;
    int64_t round, next_at, settled_at;
    int64_t failing_since;
} rp_webhook_outcome_t;

/* What the metrics show of the store: deliveries per type and status, and the PENDING ones'
 * oldest creation time. */
#define RP_WEBHOOK_NTYPES 7
typedef struct rp_webhook_stats {
    int64_t count[RP_WEBHOOK_NTYPES][3];        /* by type bit index, rp_delivery_status_t */
    int64_t pending, oldest_pending_created_at; /* 0 when none is pending */
} rp_webhook_stats_t;

typedef struct rp_webhook_store_ops {
    bool (*ping)(rp_webhook_store_t *s, rp_err_t *err);

    /* ---- endpoints ---- */

    /* Stores e and, in the same unit of work, the audit entry a (NULL: none). */
    bool (*endpoint_insert)(rp_webhook_store_t *s, const rp_webhook_endpoint_t *e, const rp_audit_entry_t *a,
                            rp_err_t *err);
    /* The endpoint with this id: *found and *out. */
    bool (*endpoint_get)(rp_webhook_store_t *s, const char *id, rp_webhook_endpoint_t *out, bool *found, rp_err_t *err);
    /* Endpoints by id ascending after cursor (NULL = from the start): *items a new array of *n
     * (free()), *more when another follows. */
    bool (*endpoint_list)(rp_webhook_store_t *s, const char *cursor, int limit, rp_webhook_endpoint_t **items,
                          size_t *n, bool *more, rp_err_t *err);
    /* Writes e's url, types, enabled, updated_at, disabled_at and disabled_reason where the
     * endpoint e->id exists and, when expect_updated_at is not 0, is still at that updated_at
     * (a compare-and-set against a concurrent change), with the audit entry a in the same unit
     * of work. *found false: nothing written. */
    bool (*endpoint_update)(rp_webhook_store_t *s, const rp_webhook_endpoint_t *e, int64_t expect_updated_at,
                            const rp_audit_entry_t *a, bool *found, rp_err_t *err);
    /* Deletes the endpoint and its deliveries, with the audit entry a. */
    bool (*endpoint_delete)(rp_webhook_store_t *s, const char *id, const rp_audit_entry_t *a, bool *found,
                            rp_err_t *err);

    /* ---- deliveries ---- */

    /* The fan-out relay: in one unit of work, takes up to limit outbox messages not yet fanned
     * out (oldest first), asks plan for each one's deliveries, stores them (a delivery whose
     * (endpoint, webhook-id) exists already is skipped) and marks the messages fanned out.
     * Messages are chosen by that mark, never by a position, so none is skipped, and the mark and
     * the deliveries commit together, so none is made twice. *messages / *made: how many. */
    bool (*fanout)(rp_webhook_store_t *s, int limit, rp_webhook_plan_fn plan, void *ctx, size_t *messages, size_t *made,
                   rp_err_t *err);
    /* The relay of what the outbox does not carry, in one unit of work: up to limit of each kind
     * of thing not yet noticed - events canceled by now, events whose window closed by now (by
     * the clock or POST /events/{id}/end; canceled ones excepted), batches none of whose items is
     * still QUEUED - each handed to plan as a message (message_id "<id>:canceled", "<id>:ended"
     * or "<id>:completed"; routing_key its webhook type; payload {eventId, title, endDate,
     * canceledAt} or {batchId, eventId, total, createdBy, counts: {SUCCESS, FAILED}}; created_at
     * when it happened), its deliveries stored as fanout stores them, and the thing marked
     * noticed for that type in the same unit of work, so each is noticed exactly once.
     * *things / *made: how many. */
    bool (*notice)(rp_webhook_store_t *s, int64_t now, int limit, rp_webhook_plan_fn plan, void *ctx, size_t *things,
                   size_t *made, rp_err_t *err);
    /* Stores one delivery (a ping). *duplicate when its (endpoint, webhook-id) exists. */
    bool (*delivery_insert)(rp_webhook_store_t *s, const rp_webhook_delivery_t *d, bool *duplicate, rp_err_t *err);
    /* Leases up to limit PENDING deliveries due by now (oldest due first) whose lease is free
     * (never leased, expired, or owner's own) to owner until `until`. *items a new array of *n
     * (rp_webhook_delivery_clear each, then free()). */
    bool (*delivery_lease)(rp_webhook_store_t *s, const char *owner, int64_t now, int64_t until, int limit,
                           rp_webhook_delivery_t **items, size_t *n, rp_err_t *err);
    /* Records attempt a of delivery id held by owner, in one unit of work: appends a to its log
     * (keeping the newest RP_WEBHOOK_MAX_ATTEMPTS), counts it, applies o and frees the lease; and
     * sets the endpoint's failing_since to o->failing_since, except that a failure never moves an
     * earlier failing_since. *applied false when owner no longer holds the lease (it expired and
     * another sender took it): nothing written. a NULL: no attempt was made (o alone). */
    bool (*delivery_record)(rp_webhook_store_t *s, const char *id, const char *owner, const rp_webhook_attempt_t *a,
                            const rp_webhook_outcome_t *o, bool *applied, rp_err_t *err);
    /* The delivery id of endpoint endpoint_id: *found and *out. */
    bool (*delivery_get)(rp_webhook_store_t *s, const char *endpoint_id, const char *id, rp_webhook_delivery_t *out,
                         bool *found, rp_err_t *err);
    /* An endpoint's deliveries newest first by id, optionally of one status (-1 any), after
     * cursor: *items a new array of *n, *more when another follows. */
    bool (*delivery_list)(rp_webhook_store_t *s, const char *endpoint_id, int status, const char *cursor, int limit,
                          rp_webhook_delivery_t **items, size_t *n, bool *more, rp_err_t *err);
    /* Makes delivery id of endpoint_id PENDING again, due at now, round 0, lease freed: a manual
     * redelivery (same webhook-id, same body). *found false: no such delivery. */
    bool (*delivery_redeliver)(rp_webhook_store_t *s, const char *endpoint_id, const char *id, int64_t now, bool *found,
                               rp_err_t *err);
    /* For the metrics: deliveries counted by type and status, and the oldest PENDING one's
     * creation time (*out zeroed first). */
    bool (*delivery_stats)(rp_webhook_store_t *s, rp_webhook_stats_t *out, rp_err_t *err);

    void (*free)(rp_webhook_store_t *s);
} rp_webhook_store_ops_t;

struct rp_webhook_store {
    const rp_webhook_store_ops_t *ops;
};

/* Opens the SQLite webhook store on <dir>/events.db. NULL with err on failure. */
rp_webhook_store_t *rp_webhook_store_sqlite_open(const char *dir, int max_conns, rp_err_t *err);
/* Opens the MongoDB webhook store (collections webhook_endpoints, webhook_deliveries; the
 * outbox's `hooked` mark). NULL with err on failure. */
rp_webhook_store_t *rp_webhook_store_mongo_open(const char *uri, const char *db_name, rp_err_t *err);

#endif
