/* reward_store.h - the reward worker's store: where requests, the ledger, the outbox, claim
 * idempotency keys, batches and batch items live. A store only stores and fetches: it offers a
 * unit of work (transact) and small primitive operations valid inside it, plus reads and a few
 * single writes outside. Every rule - the grant order, maxClaims, stock, state transitions,
 * revocation, batch settling, back-pressure, idempotency - is in grant_txn.c, written once and
 * run by any backend. Backends: SQLite (reward_store_sqlite.c) and MongoDB
 * (reward_store_mongo.c). A store is thread-safe; a unit of work belongs to the thread that runs
 * it.
 *
 * Errors carry a kind (lib/err.h): RP_ERR_STORE_UNAVAILABLE, RP_ERR_STORE_BUSY, RP_ERR_STORE,
 * RP_ERR_CONFLICT (a unique key), never an HTTP status. A duplicate that an operation reports
 * through an out-parameter (duplicate, moved, settled, taken) is an outcome, not an error. */
#ifndef RP_WORKERS_REWARD_STORE_H
#define RP_WORKERS_REWARD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "request.h"
#include "txn.h"

typedef struct rp_reward_store rp_reward_store_t;
/* A unit of work in progress; each backend defines its own. Valid only inside the body. */
typedef struct rp_reward_txn rp_reward_txn_t;

/* The body of a unit of work. It touches the store only through the tx_* operations, so that
 * every read and write is in the transaction. On MongoDB the runner may call it again from the
 * start (a transient error): it must reset, at its start, everything it reports through arg,
 * and have no other side effects. It returns RP_TXN_COMMIT to keep what it wrote,
 * RP_TXN_ROLLBACK to keep nothing (a refusal), RP_TXN_FAILED right after a tx_* operation
 * returned false. */
typedef rp_txn_end_t (*rp_reward_txn_fn)(rp_reward_txn_t *tx, void *arg);

/* One stock movement: event reward reward_index, quantity units. */
typedef struct rp_stock_line {
    int reward_index;
    int64_t quantity;
} rp_stock_line_t;

/* A batch item handed out by a lease. */
typedef struct rp_item_ref {
    char batch_id[RP_OID_LEN];
    int64_t seq;
} rp_item_ref_t;

/* What a unit of work reads of an event the event store keeps: when it was canceled, when it was
 * last written (its version: a claim judged on the event checks it at commit), and the stock
 * left of each reward. */
typedef struct rp_event_state {
    int64_t canceled_at;                      /* 0 = not canceled */
    int64_t updated_at;                       /* the event's updatedAt, ms */
    size_t nrewards;                          /* reward indexes 0..nrewards-1 */
    int64_t stock_left[RP_MAX_EVENT_REWARDS]; /* by reward index; -1 = unlimited (or no such reward) */
} rp_event_state_t;

/* The history filter; NULL / -1 / 0 mean "any". */
typedef struct rp_request_filter {
    const char *user_id, *event_id;
    int status;             /* -1 any, else an rp_req_status_t */
    int64_t from_ms, to_ms; /* requestedAt in [from, to); 0 = open */
    const char *cursor;     /* id of the last request of the previous page, or NULL */
    int limit;
} rp_request_filter_t;

/* The ops table of a backend that names each of its functions <prefix><op> (s_ping, s_transact, ...):
 *     static const rp_reward_store_ops_t ops = RP_REWARD_STORE_OPS(s_);
 * so that no backend can leave an op out (it would not compile). */
#define RP_REWARD_STORE_OPS(p)                                                                                         \
    {                                                                                                                  \
        .ping = p##ping, .transact = p##transact, .transact_bulk = p##transact_bulk, .rehearse = p##rehearse,          \
        .tx_request_by_key = p##tx_request_by_key, .tx_request_by_id = p##tx_request_by_id,                            \
        .tx_count_slots = p##tx_count_slots, .tx_stock_take = p##tx_stock_take, .tx_stock_give = p##tx_stock_give,     \
        .tx_insert_request = p##tx_insert_request, .tx_update_request = p##tx_update_request,                          \
        .tx_append_ledger = p##tx_append_ledger, .tx_append_outbox = p##tx_append_outbox,                              \
        .tx_settle_item = p##tx_settle_item, .tx_idem_get = p##tx_idem_get, .tx_idem_put = p##tx_idem_put,             \
        .tx_items_in_flight = p##tx_items_in_flight, .tx_items_lease = p##tx_items_lease,                              \
        .tx_event_state = p##tx_event_state, .get_request = p##get_request, .find_active = p##find_active,             \
        .list_requests = p##list_requests, .list_ledger = p##list_ledger, .list_outbox = p##list_outbox,               \
        .idem_get = p##idem_get, .batch_get = p##batch_get, .batch_by_key = p##batch_by_key,                           \
        .batch_list = p##batch_list, .batch_items = p##batch_items, .batch_items_get = p##batch_items_get,             \
        .batch_any_due = p##batch_any_due, .batch_store = p##batch_store, .outbox_lease = p##outbox_lease,             \
        .outbox_published = p##outbox_published, .free = p##free                                                       \
    }

typedef struct rp_reward_store_ops {
    bool (*ping)(rp_reward_store_t *s, rp_err_t *err);

    /* ---- the unit of work ---- */

    /* Runs fn in one transaction (SQLite: BEGIN IMMEDIATE ... COMMIT on a pooled connection;
     * MongoDB: mongoc_client_session_with_transaction, majority, snapshot). True when the body
     * committed or rolled back; false with err when it failed (nothing it wrote stays). what
     * names the work in logs and errors. */
    bool (*transact)(rp_reward_store_t *s, const char *what, rp_reward_txn_fn fn, void *arg, rp_err_t *err);
    /* transact for a body that writes many records (a batch chunk): SQLite runs it as a
     * transaction of its own rather than in a savepoint of a group commit, which would keep a copy
     * of every page it touches in memory until the commit (rp_sqlite_transact_alone); MongoDB
     * runs it as transact does. */
    bool (*transact_bulk)(rp_reward_store_t *s, const char *what, rp_reward_txn_fn fn, void *arg, rp_err_t *err);
    /* transact for a rehearsal: a body that writes to see what would happen and always rolls
     * back (a claim's eligibility, a batch's dry run). SQLite runs it in a savepoint of a group
     * commit, as a body that may commit would not be (a refusal after writing makes a group of
     * those run again, rp_sqlite_transact_rerunnable); MongoDB runs it as transact does. */
    bool (*rehearse)(rp_reward_store_t *s, const char *what, rp_reward_txn_fn fn, void *arg, rp_err_t *err);

    /* The operations below are valid only inside a body and only on its tx. Each returns false
     * on a store failure, after which the body must return RP_TXN_FAILED; outcomes come back
     * through out-parameters. Records they fill are initialised first (rp_request_init, ...)
     * and owned by the caller. */

    /* The request holding the slot of `slot` (any status but FAILED): the request that is not
     * FAILED with slot's user_id, event_id and period_key, whose active key is slot->active_key
     * (rp_active_key of the three). *found and *out. Only those four fields of slot are read. */
    bool (*tx_request_by_key)(rp_reward_txn_t *tx, const rp_request_t *slot, rp_request_t *out, bool *found);
    /* The request with this id: *found and *out. */
    bool (*tx_request_by_id)(rp_reward_txn_t *tx, const char *id, rp_request_t *out, bool *found);
    /* How many of user_id's requests for event_id hold a slot (status other than FAILED); the
     * count may stop at at_most (> 0), which is all a limit check needs. */
    bool (*tx_count_slots)(rp_reward_txn_t *tx, const char *user_id, const char *event_id, int64_t at_most,
                           int64_t *count);
    /* Takes every line's quantity from the stock of its event reward, never below zero; a
     * reward with unlimited stock is left as it is. *taken false when a limited stock could not
     * cover its line, or the event or reward does not exist: earlier lines may have been taken
     * already, so the body must roll back. */
    bool (*tx_stock_take)(rp_reward_txn_t *tx, const char *event_id, const rp_stock_line_t *lines, size_t n,
                          bool *taken);
    /* Gives every line's quantity back to its limited stock (a revocation). */
    bool (*tx_stock_give)(rp_reward_txn_t *tx, const char *event_id, const rp_stock_line_t *lines, size_t n);
    /* Inserts r as it is, its active key unique among stored requests (r->active_key "" =
     * none; else rp_active_key of r's user_id, event_id and period_key, which SQLite holds
     * unique as those three columns). *duplicate when another request holds the key (or the
     * id): then nothing was written and, on MongoDB, the transaction is dead: the body must roll
     * back. Inserting a request of an event conflicts with a concurrent update of that event's
     * rewards. */
    bool (*tx_insert_request)(rp_reward_txn_t *tx, const rp_request_t *r, bool *duplicate);
    /* Compare-and-set: where the request r->id has status `from`, writes r's status,
     * active_key (released when ""), processed_at, processor_id, failure_reason, notes and
     * updated_at. *moved false when the request is not (or no longer) in `from`: nothing
     * written. */
    bool (*tx_update_request)(rp_reward_txn_t *tx, const rp_request_t *r, rp_req_status_t from, bool *moved);
    /* Appends the entries as they are (ids made by the caller), giving them consecutive
     * sequence numbers in commit order. */
    bool (*tx_append_ledger)(rp_reward_txn_t *tx, const rp_ledger_entry_t *entries, size_t n);
    /* Appends m (its seq assigned in commit order; published_at unset). A message id is
     * unique: appending one twice is a store failure. */
    bool (*tx_append_outbox)(rp_reward_txn_t *tx, const rp_outbox_message_t *m);
    /* Compare-and-set on a batch item: where item (batch_id, seq) is QUEUED, sets it to status
     * (SUCCESS or FAILED) with reason and request_id ("" = none) settled at `at`. *settled false
     * when the item is already settled (or unknown): nothing written. */
    bool (*tx_settle_item)(rp_reward_txn_t *tx, const char *batch_id, int64_t seq, rp_item_status_t status,
                           const char *reason, const char *request_id, int64_t at, bool *settled);
    /* The stored Idempotency-Key (user_id, key): *found and *out. */
    bool (*tx_idem_get)(rp_reward_txn_t *tx, const char *user_id, const char *key, rp_idem_t *out, bool *found);
    /* Stores (user_id, key) -> v. *duplicate when the key is stored already (then nothing was
     * written and, on MongoDB, the transaction is dead: roll back). */
    bool (*tx_idem_put)(rp_reward_txn_t *tx, const char *user_id, const char *key, const rp_idem_t *v, bool *duplicate);
    /* How many items are QUEUED and sent but not yet due again (due_at > now). Two units of work
     * that call this never run interleaved, so a count and the lease that follows hold together
     * across processes. */
    bool (*tx_items_in_flight)(rp_reward_txn_t *tx, int64_t now, int64_t *count);
    /* Leases up to limit QUEUED items due by now (oldest due first, then by batch and seq): each
     * becomes due again at `until` and counts one more attempt. *items is a new array of *n
     * (free()), NULL when none. */
    bool (*tx_items_lease)(rp_reward_txn_t *tx, int64_t now, int64_t until, int limit, rp_item_ref_t **items,
                           size_t *n);
    /* The event's cancel time, version and stock left per reward, as this unit of work sees them: *found
     * false when no event has this id. *out is filled first (no rewards, nothing canceled). */
    bool (*tx_event_state)(rp_reward_txn_t *tx, const char *event_id, rp_event_state_t *out, bool *found);

    /* ---- reads, each on its own ---- */

    bool (*get_request)(rp_reward_store_t *s, const char *id, rp_request_t *out, bool *found, rp_err_t *err);
    /* tx_request_by_key on its own */
    bool (*find_active)(rp_reward_store_t *s, const rp_request_t *slot, rp_request_t *out, bool *found, rp_err_t *err);
    /* Requests newest first by (requestedAt, id), after f->cursor; *items a new array of *n
     * (release each with rp_request_clear, then free()), *more when another page follows. */
    bool (*list_requests)(rp_reward_store_t *s, const rp_request_filter_t *f, rp_request_t **items, size_t *n,
                          bool *more, rp_err_t *err);
    /* Ledger entries by seq ascending after after_seq, optionally of one user / event. */
    bool (*list_ledger)(rp_reward_store_t *s, const char *user_id, const char *event_id, int64_t after_seq, int limit,
                        rp_ledger_entry_t **items, size_t *n, bool *more, rp_err_t *err);
    /* Outbox messages by seq ascending after after_seq (the grants feed); release each with
     * rp_outbox_message_clear, then free(). */
    bool (*list_outbox)(rp_reward_store_t *s, int64_t after_seq, int limit, rp_outbox_message_t **items, size_t *n,
                        bool *more, rp_err_t *err);
    bool (*idem_get)(rp_reward_store_t *s, const char *user_id, const char *key, rp_idem_t *out, bool *found,
                     rp_err_t *err);
    /* The batch; its counts (per status and per failure reason, last settled time) too when
     * counts is set. */
    bool (*batch_get)(rp_reward_store_t *s, const char *id, bool counts, rp_batch_t *out, bool *found, rp_err_t *err);
    /* The creator's batch made with Idempotency-Key key. */
    bool (*batch_by_key)(rp_reward_store_t *s, const char *created_by, const char *key, rp_batch_t *out, bool *found,
                         rp_err_t *err);
    /* Batches newest first by (createdAt, id), optionally of one event, after cursor (the id of
     * the previous page's last batch), without counts; release each with rp_batch_clear. */
    bool (*batch_list)(rp_reward_store_t *s, const char *event_id, const char *cursor, int limit, rp_batch_t **items,
                       size_t *n, bool *more, rp_err_t *err);
    /* Items by seq after after_seq, optionally of one status (-1 = any). */
    bool (*batch_items)(rp_reward_store_t *s, const char *batch_id, int status, int64_t after_seq, int limit,
                        rp_batch_item_t **items, size_t *n, bool *more, rp_err_t *err);
    /* The items seqs[0..n) of a batch, in that order; unknown seqs are skipped. */
    bool (*batch_items_get)(rp_reward_store_t *s, const char *batch_id, const int64_t *seqs, size_t n,
                            rp_batch_item_t **items, size_t *got, rp_err_t *err);
    /* Whether any item is QUEUED and due by now (lets a sweep skip its unit of work). */
    bool (*batch_any_due)(rp_reward_store_t *s, int64_t now, bool *any, rp_err_t *err);

    /* ---- single writes ---- */

    /* Stores batch b (b->open is not read: a batch is stored open once all its items are) with
     * one QUEUED item per user id (seq 1..n), all due at b->created_at, durably before it
     * returns. *key_taken when the creator's Idempotency-Key b->idem_key is held by another
     * batch: then nothing was written. With resume, b exists already (a creation cut short):
     * only its missing items are stored and it is opened. SQLite does it in one transaction;
     * MongoDB in repeatable steps (100,000 items exceed what one transaction should hold). */
    bool (*batch_store)(rp_reward_store_t *s, const rp_batch_t *b, const char *const *user_ids, size_t n, bool resume,
                        bool *key_taken, rp_err_t *err);
    /* The outbox relay: leases up to limit unpublished messages (commit order) to owner until
     * now + lease_ms, skipping messages another owner holds; release each with
     * rp_outbox_message_clear, then free(). A message carries its payload as stored: the printed
     * text (payload_text, payload NULL) where the store keeps text (SQLite), else payload. */
    bool (*outbox_lease)(rp_reward_store_t *s, const char *owner, int64_t now, int64_t lease_ms, int limit,
                         rp_outbox_message_t **items, size_t *n, rp_err_t *err);
    /* Marks the messages with these sequence numbers published at now. */
    bool (*outbox_published)(rp_reward_store_t *s, const int64_t *seqs, size_t n, int64_t now, rp_err_t *err);

    void (*free)(rp_reward_store_t *s);
} rp_reward_store_ops_t;

struct rp_reward_store {
    const rp_reward_store_ops_t *ops;
};

/* What the records a store fills own is released by rp_request_clear, rp_outbox_message_clear,
 * rp_batch_clear and rp_idem_clear; these are the same with the signature of lib's page and
 * record readers (rp_sqlite_use_t.clear, rp_mongo_find_page_into's release), for both backends. */
void rp_reward_release_request(void *r);
void rp_reward_release_outbox(void *m);
void rp_reward_release_batch(void *b);
void rp_reward_release_idem(void *v);

/* Opens the SQLite reward store on <dir>/events.db (the event store's file: a grant reads the
 * stock the event store keeps). Returns a new store (free with s->ops->free) or NULL with err. */
rp_reward_store_t *rp_reward_store_sqlite_open(const char *dir, int max_conns, rp_err_t *err);

#endif
