/* event_repo.h - the event worker's repository: reward definitions, events with their reward
 * stock, the operator audit log, and player progress. Backend-neutral (SQLite now, MongoDB
 * later): it stores and fetches documents in the API's shape; validation, status and
 * visibility rules live in event_worker.c. Thread-safe. */
#ifndef RP_WORKERS_EVENT_REPO_H
#define RP_WORKERS_EVENT_REPO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rules/progress.h"
#include "err.h"

typedef struct rp_event_audit {
    const char *actor_id, *actor_username, *action, *target_type, *target_id;
    json_t *before, *after; /* borrowed, may be NULL */
    int64_t at;
} rp_event_audit_t;

/* Event list filter. status_sql: 0 any, else one of the RP_EVENT_* + 1 (see event.h). */
typedef struct rp_event_filter {
    int status;        /* -1 any, else rp_event_status_t */
    bool open_only;    /* only UPCOMING and ACTIVE (what players see) */
    int64_t active_at; /* 0 = none; else start <= t < end and not canceled */
    int64_t now_ms;
    const char *cursor; /* last id of the previous page */
    int limit;
} rp_event_filter_t;

typedef struct rp_event_repo rp_event_repo_t;

typedef struct rp_event_repo_ops {
    bool (*ping)(rp_event_repo_t *r, rp_err_t *err);
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
    bool (*event_list)(rp_event_repo_t *r, const rp_event_filter_t *f, json_t **items, bool *more, rp_err_t *err);
    /* Replaces the editable fields. When replace_rewards, the reward rows are rewritten, which
     * is refused (*conflict = true, nothing written) once any reward request exists. */
    bool (*event_update)(rp_event_repo_t *r, const json_t *doc, bool replace_rewards, const rp_event_audit_t *audit,
                         bool *conflict, rp_err_t *err);
    /* Sets canceledAt if not yet set; *already when it was. */
    bool (*event_cancel)(rp_event_repo_t *r, const char *id, int64_t now, const rp_event_audit_t *audit, bool *already,
                         rp_err_t *err);
    bool (*audit_list)(rp_event_repo_t *r, const char *target_type, const char *target_id, const char *actor_id,
                       const char *cursor, int limit, json_t **items, bool *more, rp_err_t *err);
    /* Applies facts in one transaction: each idempotency key counts once. */
    bool (*progress_ingest)(rp_event_repo_t *r, const rp_fact_t *facts, size_t n, const char *reported_by, int64_t now,
                            int64_t *accepted, int64_t *duplicates, rp_err_t *err);
    /* Loads what condition evaluation needs: aggregates and the login rows of UTC days
     * [day_from, day_to]. Release with rp_progress_release. */
    bool (*progress_load)(rp_event_repo_t *r, const char *user_id, int64_t day_from, int64_t day_to, rp_progress_t *p,
                          rp_err_t *err);
    bool (*progress_summary)(rp_event_repo_t *r, const char *user_id, json_t **doc, rp_err_t *err);
    void (*free)(rp_event_repo_t *r);
} rp_event_repo_ops_t;

struct rp_event_repo {
    const rp_event_repo_ops_t *ops;
};

/* Opens the repository cfg names: STORE=mongodb → MONGODB_URI / MONGODB_DB_NAME, else
 * SQLITE_DIR/events.db with up to sqlite_conns connections. cfg is only read. */
struct rp_config;
rp_event_repo_t *rp_event_repo_open(const struct rp_config *cfg, int sqlite_conns, rp_err_t *err);

/* Opens <dir>/events.db. */
rp_event_repo_t *rp_event_repo_sqlite_open(const char *dir, int max_conns, rp_err_t *err);

#endif
