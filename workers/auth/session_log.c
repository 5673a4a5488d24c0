/* session_log.c - writing and reading the log of session changes (see session_log.h). */
#include "session_log.h"

#include <stdlib.h>
#include <string.h>

#include "mem.h"

bool rp_auth_tx_log_session_change(const rp_auth_store_ops_t *o, rp_auth_txn_t *tx, const char *user_id, int64_t now,
                                   int64_t forget_before) {
    int64_t seq = 0, forgotten = 0, newest_old = 0;
    if (!o->tx_session_log_next(tx, &seq, &forgotten) || !o->tx_session_log_append(tx, seq, user_id, now) ||
        !o->tx_session_log_newest_before(tx, forget_before, &newest_old))
        return false;
    return newest_old <= forgotten || o->tx_session_log_forget(tx, newest_old);
}

bool rp_auth_session_changes(rp_auth_store_t *s, int64_t after, int limit, char (*user_ids)[RP_OID_LEN], size_t *n,
                             int64_t *last, bool *more, bool *complete, rp_err_t *err) {
    int64_t latest = 0, forgotten = 0, ignored = 0;
    *n = 0;
    *last = 0;
    *more = false;
    *complete = true;
    if (limit < 0) limit = 0;
    /* each read is a snapshot of its own: the newest number first, so that the entries read next
     * are all there up to it (numbers are given in commit order), and the forgotten mark last,
     * so that an entry forgotten before the entries were read shows as a gap */
    if (!s->ops->session_log_counter(s, &latest, &ignored, err)) return false;
    if (after < 0) {
        *last = latest;
        return true;
    }
    /* one entry past the page says whether more follow */
    int64_t *seqs = rp_calloc((size_t)limit + 1, sizeof *seqs);
    char(*ids)[RP_OID_LEN] = rp_calloc((size_t)limit + 1, sizeof *ids);
    size_t got = 0;
    bool ok = s->ops->session_changes_between(s, after, latest, limit + 1, seqs, ids, &got, err) &&
              s->ops->session_log_counter(s, &ignored, &forgotten, err);
    if (ok) {
        *more = got > (size_t)limit;
        *n = *more ? (size_t)limit : got;
        memcpy(user_ids, ids, *n * sizeof *ids);
        *last = !*more ? latest : *n ? seqs[*n - 1] : after; /* a page of none (limit 0) moves nothing */
        *complete = after >= forgotten;
    }
    free(seqs);
    free(ids);
    return ok;
}
