/* accounts.h - what the event and reward workers know of accounts: whether an id names an
 * account and whether it is disabled. They do not own accounts; they ask the auth worker over
 * the same transport as every other RPC (route RP_ACCOUNTS_ROUTE, not reachable from HTTP: the
 * gateway forwards only its route table). Batched: one call answers up to RP_ACCOUNTS_MAX ids.
 * Thread-safe. */
#ifndef RP_LIB_ACCOUNTS_H
#define RP_LIB_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "transport.h"

/* POST, body {"ids": [24-hex, ...]} (1..RP_ACCOUNTS_MAX, each an ObjectId) -> 200
 * {"states": ["ACTIVE" | "DISABLED" | "UNKNOWN", ...]}, one per id, in the order of ids.
 * 400 VALIDATION_FAILED on a bad body. */
#define RP_ACCOUNTS_ROUTE "/_internal/accounts"
#define RP_ACCOUNTS_MAX 1000

typedef enum rp_account_state {
    RP_ACCOUNT_UNKNOWN = 0, /* no account has this id */
    RP_ACCOUNT_ACTIVE,
    RP_ACCOUNT_DISABLED,
} rp_account_state_t;

/* Fills out[i] with the state of ids[i] (ObjectIds; duplicates allowed) for i < n, asking the
 * auth worker in calls of up to RP_ACCOUNTS_MAX ids, each answering before deadline_ms (epoch
 * ms). False with err (UNAVAILABLE, TIMEOUT, BAD_REPLY kinds) when an answer is missing: then
 * nothing may be concluded about any id. request_id (may be NULL) follows the calls in logs. */
bool rp_accounts_lookup(rp_transport_t *t, const char *const *ids, size_t n, int64_t deadline_ms,
                        const char *request_id, rp_account_state_t *out, rp_err_t *err);

#endif
