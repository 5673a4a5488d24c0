/* progress_ingest.h - recording reported progress facts: the one body, run in the event
 * repository's unit of work on any backend, that keeps each idempotency key once and folds every
 * new fact into the aggregate it changes (rules/progress.h). Thread-safe. */
#ifndef RP_WORKERS_EVENT_PROGRESS_INGEST_H
#define RP_WORKERS_EVENT_PROGRESS_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "event_repo.h"

/* Records facts[0..n) (validated by the caller; borrowed) as reported by reported_by at now, all
 * in one transaction: a fact whose player has its idempotency key stored already with the same
 * fact (rp_fact_same) counts in *duplicates and changes nothing; every other one is stored and
 * folded into its aggregate, and counts in *accepted. When a fact's player has its key stored
 * with another fact (a reused key), nothing at all is kept, both counts are 0, *reused (may be
 * NULL) is the index of that fact and the call still succeeds; otherwise *reused is -1. On
 * failure nothing is kept, both counts are 0 and err says why. */
bool rp_progress_ingest(rp_event_repo_t *r, const rp_fact_t *facts, size_t n, const char *reported_by, int64_t now,
                        int64_t *accepted, int64_t *duplicates, int64_t *reused, rp_err_t *err);

#endif
