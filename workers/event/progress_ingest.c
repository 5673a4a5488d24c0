/* progress_ingest.c - the ingest body over the event repository's primitives (see
 * progress_ingest.h). */
#include "progress_ingest.h"

typedef struct ingest {
    const rp_event_repo_ops_t *ops;
    const rp_fact_t *facts;
    size_t n;
    const char *reported_by;
    int64_t now, accepted, duplicates, reused; /* outcome of the last attempt */
} ingest_t;

/* Per fact: keep its key once (a reused key refuses the whole report), then read, fold and write back its aggregate.
 * Facts of one batch may hit the same aggregate (two logins of one day): each read sees the previous fact's write,
 * since it is the same transaction. */
static rp_txn_end_t ingest_body(rp_event_txn_t *tx, void *arg) {
    ingest_t *in = arg;
    in->accepted = in->duplicates = 0;
    in->reused = -1;
    for (size_t i = 0; i < in->n; i++) {
        const rp_fact_t *f = &in->facts[i];
        rp_aggregate_t agg;
        rp_stored_fact_t stored = {.value = NULL};
        bool is_new = false, found = false;
        if (!in->ops->tx_fact_record(tx, f, in->reported_by, in->now, &is_new, &stored)) {
            rp_stored_fact_clear(&stored);
            return RP_TXN_FAILED;
        }
        bool same = is_new || rp_fact_same(f, stored.type_name, stored.value, stored.occurred_at);
        rp_stored_fact_clear(&stored);
        if (!same) {
            in->accepted = in->duplicates = 0;
            in->reused = (int64_t)i;
            return RP_TXN_ROLLBACK;
        }
        if (!is_new) {
            in->duplicates++;
            continue;
        }
        rp_progress_target(f, &agg);
        if (!in->ops->tx_aggregate_get(tx, f->user_id, &agg, &found)) return RP_TXN_FAILED;
        if (rp_progress_fold(&agg, found, f, in->now) && !in->ops->tx_aggregate_put(tx, f->user_id, &agg))
            return RP_TXN_FAILED;
        in->accepted++;
    }
    return RP_TXN_COMMIT;
}

bool rp_progress_ingest(rp_event_repo_t *r, const rp_fact_t *facts, size_t n, const char *reported_by, int64_t now,
                        int64_t *accepted, int64_t *duplicates, int64_t *reused, rp_err_t *err) {
    ingest_t in = {r->ops, facts, n, reported_by, now, 0, 0, -1};
    bool ok = r->ops->transact(r, "record progress", ingest_body, &in, err);
    *accepted = ok ? in.accepted : 0;
    *duplicates = ok ? in.duplicates : 0;
    if (reused) *reused = ok ? in.reused : -1;
    return ok;
}
