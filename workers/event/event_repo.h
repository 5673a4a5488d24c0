/* event_repo.h - the event worker's repository: reward definitions, events with their reward
 * stock, the operator audit log, and player progress. A repository only stores and fetches: it
 * keeps documents in the API's shape and progress as the facts and aggregates it is given.
 * Validation, event status, which fields freeze once players hold a claim, which requests a
 * cancel settles, what makes two facts the same and progress folding live above it (event_worker.c, progress_ingest.c,
 * rules/). Backends: SQLite (event_repo_sqlite.c) and MongoDB (event_repo_mongo.c). Thread-safe; a unit of work belongs
 * to the thread running it.
 *
 * Errors carry a kind (lib/err.h): RP_ERR_STORE_UNAVAILABLE, RP_ERR_STORE_BUSY, RP_ERR_STORE,
 * RP_ERR_CONFLICT, never an HTTP status. */
#ifndef RP_WORKERS_EVENT_REPO_H
#define RP_WORKERS_EVENT_REPO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "err.h"
#include "json_fields.h"
#include "rules/event_rules.h"
#include "rules/progress.h"
#include "txn.h"

/* The entry a write appends to the operator audit log (NULL: none). */
typedef rp_audit_entry_t rp_event_audit_t;

/* Event list filter: the time bounds the caller derived from a status, visibility or instant
 * (rules/event_rules.h). The store runs each bound as a plain comparison on the stored window
 * and cancel time and knows nothing of statuses; bounds.empty matches nothing. */
typedef struct rp_event_filter {
    rp_event_bounds_t bounds;
    const char *cursor; /* id of the last event of the previous page, or NULL */
    int limit;
} rp_event_filter_t;

/* What a cancel does to the event's reward requests, in its own transaction: every request of
 * the event in status `from` moves to `to` with failure_reason, processed at the cancel time by
 * processor_id, its active key released (the store's request columns, see
 * reward/reward_schema_sqlite.c). Status names as the API spells them; borrowed. */
typedef struct rp_event_settle {
    const char *from, *to, *failure_reason, *processor_id;
} rp_event_settle_t;

/* A fact as the store keeps it, for the caller to compare with a new one under the same key. */
typedef struct rp_stored_fact {
    char type_name[32];
    json_t *value; /* owned: NULL or JSON null when none; release with rp_stored_fact_clear */
    int64_t occurred_at;
} rp_stored_fact_t;

/* Releases what s owns and zeroes it; accepts NULL. */
void rp_stored_fact_clear(rp_stored_fact_t *s);

typedef struct rp_event_repo rp_event_repo_t;
/* A unit of work in progress; each backend defines its own. Valid only inside the body. */
typedef struct rp_event_txn rp_event_txn_t;

/* The body of a unit of work. It touches the store only through the tx_* operations. On MongoDB
 * the runner may call it again from the start (a transient error): it must reset, at its start,
 * everything it reports through arg, and have no other side effects. It returns RP_TXN_COMMIT
 * to keep what it wrote, RP_TXN_ROLLBACK to keep nothing (a refusal), RP_TXN_FAILED right after
 * a tx_* operation returned false. */
typedef rp_txn_end_t (*rp_event_txn_fn)(rp_event_txn_t *tx, void *arg);

/* The ops table of a backend that names each of its functions <prefix><op> (r_ping, r_transact, ...):
 *     static const rp_event_repo_ops_t ops = RP_EVENT_REPO_OPS(r_);
 * so that no backend can leave an op out (it would not compile). */
#define RP_EVENT_REPO_OPS(p)                                                                                           \
    {                                                                                                                  \
        .ping = p##ping, .transact = p##transact, .tx_fact_record = p##tx_fact_record,                                 \
        .tx_aggregate_get = p##tx_aggregate_get, .tx_aggregate_put = p##tx_aggregate_put, .def_create = p##def_create, \
        .def_get = p##def_get, .def_list = p##def_list, .def_update = p##def_update, .def_delete = p##def_delete,      \
        .event_create = p##event_create, .event_get = p##event_get, .event_list = p##event_list,                       \
        .event_update = p##event_update, .event_cancel = p##event_cancel, .event_set_window = p##event_set_window,     \
        .audit_list = p##audit_list, .progress_load = p##progress_load, .progress_summary = p##progress_summary,       \
        .free = p##free                                                                                                \
    }

typedef struct rp_event_repo_ops {
    bool (*ping)(rp_event_repo_t *r, rp_err_t *err);

    /* ---- the unit of work ---- */

    /* Runs fn in one transaction (SQLite: BEGIN IMMEDIATE ... COMMIT on a pooled connection;
     * MongoDB: with_transaction, majority, snapshot). True when the body committed or rolled
     * back; false with err when it failed (nothing it wrote stays). what names the work in logs
     * and errors. */
    bool (*transact)(rp_event_repo_t *r, const char *what, rp_event_txn_fn fn, void *arg, rp_err_t *err);

    /* Valid only inside a body, on its tx; false on a store failure (the body then returns
     * RP_TXN_FAILED). */

    /* Stores fact f (reported_by, received at now) unless the same player (f->user_id) has a
     * fact with its idempotency key stored already, whoever reported it: *is_new says whether it
     * was stored. Keys are unique per player, not across players. When it was not stored and
     * stored is not NULL, *stored (cleared first, in any case) holds the fact kept under the key. */
    bool (*tx_fact_record)(rp_event_txn_t *tx, const rp_fact_t *f, const char *reported_by, int64_t now, bool *is_new,
                           rp_stored_fact_t *stored);
    /* Reads user_id's aggregate that a names (kind, and key or day, as rp_progress_target set
     * them). *found: it exists, and a's number, at and minutes now hold what is stored (0 where
     * its kind keeps none); else a is left as it was. */
    bool (*tx_aggregate_get)(rp_event_txn_t *tx, const char *user_id, rp_aggregate_t *a, bool *found);
    /* Stores a as user_id's aggregate (kind, key or day), replacing what was there. */
    bool (*tx_aggregate_put)(rp_event_txn_t *tx, const char *user_id, const rp_aggregate_t *a);

    /* ---- definitions and events, each write with its audit entry in one transaction ---- */

    /* doc: {id, name, type, value, description, isActive, createdBy, createdAt, updatedAt} */
    bool (*def_create)(rp_event_repo_t *r, const json_t *doc, const rp_event_audit_t *audit, rp_err_t *err);
    /* *doc NULL when not found; otherwise it also carries "referenced": bool */
    bool (*def_get)(rp_event_repo_t *r, const char *id, json_t **doc, rp_err_t *err);
    bool (*def_list)(rp_event_repo_t *r, const char *type, int active, const char *cursor, int limit, json_t **items,
                     bool *more, rp_err_t *err);
    bool (*def_update)(rp_event_repo_t *r, const json_t *doc, const rp_event_audit_t *audit, rp_err_t *err);
    /* Deletes a definition no event references, with its audit entry, in one transaction.
     * *found false when there is none; *referenced true (nothing deleted) when an event uses it. */
    bool (*def_delete)(rp_event_repo_t *r, const char *id, const rp_event_audit_t *audit, bool *found, bool *referenced,
                       rp_err_t *err);
    /* doc: a validated event document with id, createdBy, createdAt, updatedAt; rewards get
     * stockLeft = stock; the definitions used are marked referenced. */
    bool (*event_create)(rp_event_repo_t *r, const json_t *doc, const rp_event_audit_t *audit, rp_err_t *err);
    /* *doc NULL when not found; rewards joined with their definitions (name, type, value,
     * isActive) and stockLeft. */
    bool (*event_get)(rp_event_repo_t *r, const char *id, json_t **doc, rp_err_t *err);
    /* Events newest first by (createdAt, id) inside f->bounds, after f->cursor. */
    bool (*event_list)(rp_event_repo_t *r, const rp_event_filter_t *f, json_t **items, bool *more, rp_err_t *err);
    /* Replaces the editable fields, and the reward rows (stock restarting at stock) when
     * replace_rewards. With only_if_no_slots the write happens only while no reward request of
     * the event holds a slot (carries an active key: every status but FAILED), checked in the
     * same transaction: otherwise *claimed is set and nothing is written. */
    bool (*event_update)(rp_event_repo_t *r, const json_t *doc, bool replace_rewards, bool only_if_no_slots,
                         const rp_event_audit_t *audit, bool *claimed, rp_err_t *err);
    /* Sets canceledAt (and updatedAt) to now if not yet set, and, in the same transaction, settles
     * the event's requests as settle says (NULL: none; *settled counts them, may be NULL). *already
     * when the event was canceled before (or does not exist): nothing written. */
    bool (*event_cancel)(rp_event_repo_t *r, const char *id, int64_t now, const rp_event_settle_t *settle,
                         const rp_event_audit_t *audit, bool *already, int64_t *settled, rp_err_t *err);
    /* Sets the window of event id to [start_ms, end_ms) and updatedAt to now, with its audit entry,
     * where its stored window and cancel time lie inside guard (the comparisons event_list runs),
     * checked in the same transaction. *moved false when they do not (or there is no such
     * event): nothing written. */
    bool (*event_set_window)(rp_event_repo_t *r, const char *id, int64_t start_ms, int64_t end_ms, int64_t now,
                             const rp_event_bounds_t *guard, const rp_event_audit_t *audit, bool *moved, rp_err_t *err);
    bool (*audit_list)(rp_event_repo_t *r, const char *target_type, const char *target_id, const char *actor_id,
                       const char *cursor, int limit, json_t **items, bool *more, rp_err_t *err);

    /* ---- progress reads (one snapshot each); release p with rp_progress_release ---- */

    /* What condition evaluation needs: the aggregates and the login rows of UTC days
     * [day_from, day_to]. */
    bool (*progress_load)(rp_event_repo_t *r, const char *user_id, int64_t day_from, int64_t day_to, rp_progress_t *p,
                          rp_err_t *err);
    /* The aggregates, at most one login row (the latest day's) and, in *login_days, the number of
     * days with a login. */
    bool (*progress_summary)(rp_event_repo_t *r, const char *user_id, rp_progress_t *p, int64_t *login_days,
                             rp_err_t *err);
    void (*free)(rp_event_repo_t *r);
} rp_event_repo_ops_t;

struct rp_event_repo {
    const rp_event_repo_ops_t *ops;
};

/* The documents the repository returns, member by member, for both backends' converters: a
 * reward definition; an event; an event's reward as stored; the definition fields joined into
 * each reward (name, type, value, isActive). The SQLite backend selects its columns in these
 * orders. */
extern const rp_json_table_t rp_event_def_json, rp_event_json, rp_event_reward_json, rp_event_reward_def_json;

/* Opens the repository cfg names: STORE=mongodb → MONGODB_URI / MONGODB_DB_NAME, else
 * SQLITE_DIR/events.db with up to sqlite_conns connections. cfg is only read. */
struct rp_config;
rp_event_repo_t *rp_event_repo_open(const struct rp_config *cfg, int sqlite_conns, rp_err_t *err);

/* Opens <dir>/events.db. */
rp_event_repo_t *rp_event_repo_sqlite_open(const char *dir, int max_conns, rp_err_t *err);

#endif
