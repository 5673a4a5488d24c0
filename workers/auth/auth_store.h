/* auth_store.h - the auth worker's repository: accounts, login failures, refresh tokens and the
 * role audit log. Backend-neutral (SQLite now, MongoDB later): a backend only stores and
 * fetches; lockout, rotation and role rules live in auth_service.c. Thread-safe. */
#ifndef RP_WORKERS_AUTH_STORE_H
#define RP_WORKERS_AUTH_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "err.h"
#include "ids.h"

typedef struct rp_account {
    char id[RP_OID_LEN];
    char username[64];
    char email[256];
    char username_key[64], email_key[256]; /* what they are unique and found by (identity.h) */
    char password_hash[160];
    unsigned roles;
    int64_t created_at, updated_at;
} rp_account_t;

typedef struct rp_refresh_token {
    char id[RP_OID_LEN];
    char user_id[RP_OID_LEN];
    char family_id[RP_OID_LEN];
    char token_hash[65]; /* hex of a keyed BLAKE2b-256 of the token; the token itself is never stored */
    int64_t created_at, expires_at;
    int64_t used_at, revoked_at; /* 0 = not yet */
} rp_refresh_token_t;

typedef struct rp_auth_store rp_auth_store_t;

/* The ops table of a backend that names each of its functions <prefix><op> (s_ping, s_create_user, ...):
 *     static const rp_auth_store_ops_t ops = RP_AUTH_STORE_OPS(s_);
 * so that no backend can leave an op out (it would not compile). */
#define RP_AUTH_STORE_OPS(p)                                                                                           \
    {                                                                                                                  \
        .ping = p##ping, .create_user = p##create_user, .find_by_id = p##find_by_id,                                   \
        .find_by_login = p##find_by_login, .list_users = p##list_users, .set_roles = p##set_roles,                     \
        .count_with_role = p##count_with_role, .add_failure = p##add_failure, .failures = p##failures,                 \
        .clear_failures = p##clear_failures, .insert_refresh = p##insert_refresh, .find_refresh = p##find_refresh,     \
        .rotate_refresh = p##rotate_refresh, .revoke_family = p##revoke_family, .list_audit = p##list_audit,           \
        .free = p##free                                                                                                \
    }

typedef struct rp_auth_store_ops {
    bool (*ping)(rp_auth_store_t *s, rp_err_t *err);
    /* Inserts a; its username_key and email_key are unique: RP_ERR_CONFLICT USERNAME_TAKEN or
     * EMAIL_TAKEN. */
    bool (*create_user)(rp_auth_store_t *s, const rp_account_t *a, rp_err_t *err);
    bool (*find_by_id)(rp_auth_store_t *s, const char *id, rp_account_t *out, bool *found, rp_err_t *err);
    /* The account whose username_key (email_key when by_email) equals key. */
    bool (*find_by_login)(rp_auth_store_t *s, const char *key, bool by_email, rp_account_t *out, bool *found,
                          rp_err_t *err);
    /* Up to limit accounts with id > after (NULL = from the start) in id order; *out is malloc'd
     * (free()), *more tells whether more follow. */
    bool (*list_users)(rp_auth_store_t *s, const char *after, int limit, rp_account_t **out, size_t *n, bool *more,
                       rp_err_t *err);
    /* Sets roles and appends the audit entry in one transaction; *found false when no such id. */
    bool (*set_roles)(rp_auth_store_t *s, const char *id, unsigned roles, int64_t now, const rp_audit_entry_t *audit,
                      bool *found, rp_err_t *err);
    bool (*count_with_role)(rp_auth_store_t *s, unsigned role, int64_t *count, rp_err_t *err);
    /* Records a failed login at `at` and forgets failures older than `forget_before`. */
    bool (*add_failure)(rp_auth_store_t *s, const char *user_id, int64_t at, int64_t forget_before, rp_err_t *err);
    /* Counts failures after `since`; *nth_at = time of the n-th most recent of them (0 if fewer). */
    bool (*failures)(rp_auth_store_t *s, const char *user_id, int64_t since, int n, int64_t *count, int64_t *nth_at,
                     rp_err_t *err);
    bool (*clear_failures)(rp_auth_store_t *s, const char *user_id, rp_err_t *err);
    bool (*insert_refresh)(rp_auth_store_t *s, const rp_refresh_token_t *t, rp_err_t *err);
    bool (*find_refresh)(rp_auth_store_t *s, const char *token_hash, rp_refresh_token_t *out, bool *found,
                         rp_err_t *err);
    /* Compare-and-set rotation: marks old_id used at now only if it is neither used nor revoked,
     * and inserts next, atomically. *rotated false when old_id was already used or revoked. */
    bool (*rotate_refresh)(rp_auth_store_t *s, const char *old_id, int64_t now, const rp_refresh_token_t *next,
                           bool *rotated, rp_err_t *err);
    bool (*revoke_family)(rp_auth_store_t *s, const char *family_id, int64_t now, rp_err_t *err);
    /* Audit entries newest first (id < cursor when set), optional target/actor filters; *items is
     * a new array of {id, actor: {id, username}, action, target: {type, id}, before, after, at}. */
    bool (*list_audit)(rp_auth_store_t *s, const char *target_id, const char *actor_id, const char *cursor, int limit,
                       json_t **items, bool *more, rp_err_t *err);
    void (*free)(rp_auth_store_t *s);
} rp_auth_store_ops_t;

struct rp_auth_store {
    const rp_auth_store_ops_t *ops;
};

/* Opens (creating and migrating) <dir>/auth.db. Returns NULL with err on failure. */
rp_auth_store_t *rp_auth_store_sqlite_open(const char *dir, int max_conns, rp_err_t *err);

#endif
