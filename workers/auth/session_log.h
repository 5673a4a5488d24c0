/* session_log.h - the auth store's log of session changes (auth_store.h), written and read once
 * for every backend: when entries are forgotten, and what a reader is told of the log
 * (session.h's RP_SESSION_CHANGES_ROUTE). */
#ifndef RP_WORKERS_AUTH_SESSION_LOG_H
#define RP_WORKERS_AUTH_SESSION_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth_store.h"

/* Inside a unit of work that changes user_id's session state (roles, token version, disabled,
 * revoked access tokens): appends user_id to the log under the next sequence number, at now, and
 * forgets the entries written before forget_before. Entries are deleted only when the forgotten
 * mark rises: every entry at or below the mark went when it was raised, and a new entry is always
 * numbered above it. */
bool rp_auth_tx_log_session_change(const rp_auth_store_ops_t *o, rp_auth_txn_t *tx, const char *user_id, int64_t now,
                                   int64_t forget_before);

/* The log after sequence number after: up to limit user ids in sequence order into user_ids (*n,
 * duplicates kept); *last = the number the reader has seen everything up to (that of the last id
 * returned when *more, `after` when none was, else the newest in the log, 0 for a log never
 * written); *complete false when entries after `after` were forgotten (the reader must then
 * forget everything it holds). after < 0 asks for *last alone (*n 0, *complete true). It reads
 * the newest number first, then the entries up to it, then how far the log was forgotten, so an
 * entry committed or forgotten meanwhile is never skipped unseen. */
bool rp_auth_session_changes(rp_auth_store_t *s, int64_t after, int limit, char (*user_ids)[RP_OID_LEN], size_t *n,
                             int64_t *last, bool *more, bool *complete, rp_err_t *err);

#endif
