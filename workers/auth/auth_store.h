/* auth_store.h - the auth worker's repository: accounts, login failures, refresh tokens, revoked
 * access tokens and the account audit log. Backend-neutral (SQLite, MongoDB): a backend only
 * stores and fetches, through single operations and a unit of work (transact and the tx_*
 * primitives, as reward_store.h); lockout, rotation, token versions and the last-admin rule live
 * in auth_service.c. Thread-safe; a unit of work belongs to the thread that runs it. */
#ifndef RP_WORKERS_AUTH_STORE_H
#define RP_WORKERS_AUTH_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "err.h"
#include "ids.h"
#include "token.h"
#include "txn.h"

typedef struct rp_account {
    char id[RP_OID_LEN];
    char username[64];
    char email[256];
    char username_key[64], email_key[256]; /* what they are unique and found by (identity.h) */
    char password_hash[160];
    unsigned roles;
    int64_t created_at, updated_at;
    int64_t token_version;     /* bumped when every access token of the account must die */
    bool disabled;             /* a disabled account cannot sign in, refresh or use its tokens */
    char disabled_reason[256]; /* "" when enabled */
    int64_t disabled_at;       /* epoch ms, 0 when enabled */
} rp_account_t;

typedef struct rp_refresh_token {
    char id[RP_OID_LEN];
    char user_id[RP_OID_LEN];
    char family_id[RP_OID_LEN];
    char token_hash[65]; /* hex of a keyed BLAKE2b-256 of the token; the token itself is never stored */
    int64_t created_at, expires_at;
    int64_t used_at, revoked_at; /* 0 = not yet */
} rp_refresh_token_t;

/* A service account: a caller that is not a person (a game server, a tool). It signs in with API
 * keys only, never with a password, and is no player: it lives apart from the accounts above. */
typedef struct rp_service_account {
    char id[RP_OID_LEN];
    char name[64];
    char name_key[64]; /* what the name is unique by (identity.h) */
    unsigned roles;    /* among GAME_SERVER, OPERATOR, AUDITOR */
    char created_by[RP_OID_LEN];
    int64_t created_at;
} rp_service_account_t;

/* An API key of a service account, stored only as the keyed hash the api computed (apikey.h). */
typedef struct rp_service_key {
    char id[RP_OID_LEN];
    char account_id[RP_OID_LEN];
    char key_hash[65]; /* hex of the keyed BLAKE2b-256 of the key; the key itself is never stored */
    int64_t created_at;
    int64_t expires_at;   /* epoch ms when a rotation's grace ends; 0 = until revoked */
    int64_t revoked_at;   /* 0 = not revoked */
    int64_t last_used_at; /* 0 = never; written at most once per RP_APIKEY_TOUCH_MS */
} rp_service_key_t;

/* Live keys one service account may hold at once (a rotation with grace adds one). */
#define RP_SERVICE_KEYS_MAX 8

typedef struct rp_auth_store rp_auth_store_t;
/* A unit of work in progress; each backend defines its own. Valid only inside the body. */
typedef struct rp_auth_txn rp_auth_txn_t;

/* The body of a unit of work. It touches the store only through the tx_* operations. On MongoDB
 * the runner may call it again from the start (a transient error, a write conflict): it must
 * reset, at its start, everything it reports through arg. It returns RP_TXN_COMMIT to keep what
 * it wrote, RP_TXN_ROLLBACK to keep nothing (a refusal), RP_TXN_FAILED right after a tx_*
 * operation returned false. */
typedef rp_txn_end_t (*rp_auth_txn_fn)(rp_auth_txn_t *tx, void *arg);

/* The ops table of a backend that names each of its functions <prefix><op> (s_ping, s_create_user, ...):
 *     static const rp_auth_store_ops_t ops = RP_AUTH_STORE_OPS(s_);
 * so that no backend can leave an op out (it would not compile). */
#define RP_AUTH_STORE_OPS(p)                                                                                           \
    {                                                                                                                  \
        .ping = p##ping, .create_user = p##create_user, .find_by_id = p##find_by_id,                                   \
        .find_by_login = p##find_by_login, .list_users = p##list_users, .add_failure = p##add_failure,                 \
        .failures = p##failures, .clear_failures = p##clear_failures, .insert_refresh = p##insert_refresh,             \
        .find_refresh = p##find_refresh, .rotate_refresh = p##rotate_refresh, .revoke_family = p##revoke_family,       \
        .list_audit = p##list_audit, .revoked_access = p##revoked_access, .transact = p##transact,                     \
        .tx_find_by_id = p##tx_find_by_id, .tx_count_admins = p##tx_count_admins,                                      \
        .tx_guard_admins = p##tx_guard_admins, .tx_update_account = p##tx_update_account,                              \
        .tx_revoke_refresh_of = p##tx_revoke_refresh_of, .tx_revoke_access = p##tx_revoke_access,                      \
        .tx_count_revoked = p##tx_count_revoked, .tx_append_audit = p##tx_append_audit,                                \
        .tx_guard_failures = p##tx_guard_failures, .tx_failures = p##tx_failures, .tx_add_failure = p##tx_add_failure, \
        .list_services = p##list_services, .find_service = p##find_service, .service_keys = p##service_keys,           \
        .find_key = p##find_key, .touch_key = p##touch_key, .tx_find_service = p##tx_find_service,                     \
        .tx_insert_service = p##tx_insert_service, .tx_delete_service = p##tx_delete_service,                          \
        .tx_insert_key = p##tx_insert_key, .tx_retire_keys = p##tx_retire_keys, .tx_revoke_key = p##tx_revoke_key,     \
        .tx_count_keys = p##tx_count_keys, .tx_session_log_next = p##tx_session_log_next,                              \
        .tx_session_log_append = p##tx_session_log_append,                                                             \
        .tx_session_log_newest_before = p##tx_session_log_newest_before,                                               \
        .tx_session_log_forget = p##tx_session_log_forget, .session_log_counter = p##session_log_counter,              \
        .session_changes_between = p##session_changes_between, .free = p##free                                         \
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
    /* The ids of user_id's revoked access tokens that expire after now (epoch ms), soonest to
     * expire first, up to limit of them into jtis (*n); *more when there were more. In the order
     * of the index on (user, expiry), so that the store sorts nothing: a session check asks it
     * for every account whose state the api does not hold. */
    bool (*revoked_access)(rp_auth_store_t *s, const char *user_id, int64_t now, int limit, char (*jtis)[RP_JTI_LEN],
                           size_t *n, bool *more, rp_err_t *err);

    /* ---- the unit of work ---- */

    /* Runs fn in one transaction (SQLite: BEGIN IMMEDIATE on a pooled connection, so units of
     * work never interleave; MongoDB: a snapshot transaction, majority, rerun on a write
     * conflict). True when the body committed or rolled back; false with err when it failed
     * (nothing it wrote stays). what names the work in logs and errors. */
    bool (*transact)(rp_auth_store_t *s, const char *what, rp_auth_txn_fn fn, void *arg, rp_err_t *err);

    /* Valid only inside a body, on its tx; false on a store failure (the body then returns
     * RP_TXN_FAILED). */
    bool (*tx_find_by_id)(rp_auth_txn_t *tx, const char *id, rp_account_t *out, bool *found);
    /* How many enabled accounts hold ADMIN. */
    bool (*tx_count_admins)(rp_auth_txn_t *tx, int64_t *count);
    /* Writes the one guard every unit of work that changes who is an enabled ADMIN must write,
     * so that any two of them conflict: MongoDB's snapshot isolation would otherwise let two
     * demotions of different admins both count 2 (write skew). SQLite's writers never
     * interleave, so there it writes nothing. */
    bool (*tx_guard_admins)(rp_auth_txn_t *tx);
    /* Writes a's password hash, roles, token version, disabled state (flag, reason, time) and
     * updated_at to the account a->id; *found false when there is none. */
    bool (*tx_update_account)(rp_auth_txn_t *tx, const rp_account_t *a, bool *found);
    /* Revokes, at now, every refresh token of user_id not revoked yet (all its families). */
    bool (*tx_revoke_refresh_of)(rp_auth_txn_t *tx, const char *user_id, int64_t now);
    /* Records access token jti of user_id as revoked until expires_at (epoch ms; recording it
     * again changes nothing) and forgets user_id's revoked tokens that expired by now. */
    bool (*tx_revoke_access)(rp_auth_txn_t *tx, const char *user_id, const char *jti, int64_t expires_at, int64_t now);
    /* How many of user_id's revoked access tokens expire after now. */
    bool (*tx_count_revoked)(rp_auth_txn_t *tx, const char *user_id, int64_t now, int64_t *count);
    /* Appends the audit entry (its id made by the store). */
    bool (*tx_append_audit)(rp_auth_txn_t *tx, const rp_audit_entry_t *entry);
    /* Writes the guard every unit of work that counts and records user_id's login failures writes
     * first, so that two of them on one account conflict (MongoDB: a write to the account's
     * document; without it two snapshots could both count 4 and both record a 5th). SQLite's
     * writers never interleave, so there it writes nothing. */
    bool (*tx_guard_failures)(rp_auth_txn_t *tx, const char *user_id);
    /* As failures, inside the unit of work. */
    bool (*tx_failures)(rp_auth_txn_t *tx, const char *user_id, int64_t since, int n, int64_t *count, int64_t *nth_at);
    /* As add_failure, inside the unit of work. */
    bool (*tx_add_failure)(rp_auth_txn_t *tx, const char *user_id, int64_t at, int64_t forget_before);

    /* ---- service accounts and their keys ---- */

    /* Up to limit service accounts with id > after (NULL = from the start) in id order; *out is
     * malloc'd (free()), *more tells whether more follow. */
    bool (*list_services)(rp_auth_store_t *s, const char *after, int limit, rp_service_account_t **out, size_t *n,
                          bool *more, rp_err_t *err);
    bool (*find_service)(rp_auth_store_t *s, const char *id, rp_service_account_t *out, bool *found, rp_err_t *err);
    /* The keys of account_id that are live at now (not revoked, no expiry or one after now), oldest
     * first, up to cap of them into keys (*n). */
    bool (*service_keys)(rp_auth_store_t *s, const char *account_id, int64_t now, rp_service_key_t *keys, size_t cap,
                         size_t *n, rp_err_t *err);
    /* The key whose hash is key_hash and its account: *found only when both exist (whatever the
     * key's revocation and expiry, which the caller judges). */
    bool (*find_key)(rp_auth_store_t *s, const char *key_hash, rp_service_key_t *key, rp_service_account_t *account,
                     bool *found, rp_err_t *err);
    /* Sets key_id's last use to now, only when it has none or one before `before` (so that a key
     * in steady use is written once per interval, not per look-up). */
    bool (*touch_key)(rp_auth_store_t *s, const char *key_id, int64_t now, int64_t before, rp_err_t *err);

    /* Inside a unit of work: */
    bool (*tx_find_service)(rp_auth_txn_t *tx, const char *id, rp_service_account_t *out, bool *found);
    /* Inserts a; its name_key is unique: *taken (nothing inserted; the body can only roll back). */
    bool (*tx_insert_service)(rp_auth_txn_t *tx, const rp_service_account_t *a, bool *taken);
    /* Deletes the account id (not its keys: tx_retire_keys revokes them); *found when it existed. */
    bool (*tx_delete_service)(rp_auth_txn_t *tx, const char *id, bool *found);
    bool (*tx_insert_key)(rp_auth_txn_t *tx, const rp_service_key_t *k);
    /* Ends account_id's keys that are live at now: revoked at now when until <= now, else given
     * the expiry until (a key that expires sooner keeps its own). */
    bool (*tx_retire_keys)(rp_auth_txn_t *tx, const char *account_id, int64_t now, int64_t until);
    /* Revokes key_id of account_id at now (one already revoked keeps its time); *found when the
     * account has that key. */
    bool (*tx_revoke_key)(rp_auth_txn_t *tx, const char *account_id, const char *key_id, int64_t now, bool *found);
    /* How many of account_id's keys are live at now. */
    bool (*tx_count_keys)(rp_auth_txn_t *tx, const char *account_id, int64_t now, int64_t *count);

    /* ---- the log of session changes, which the api processes read (session.h) ---- */

    /* Inside a unit of work that changes a session state, the four steps of an append, in the
     * order session_log.h's rp_auth_tx_log_session_change takes them (the rule of when to forget
     * is there, written once). Takes the log's next sequence number (*seq) and reads how far it
     * is forgotten (*forgotten). Numbers are given in commit order, from 1: SQLite's writers
     * never interleave; on MongoDB every append writes one counter document first, so two
     * appends conflict and one waits for the other. */
    bool (*tx_session_log_next)(rp_auth_txn_t *tx, int64_t *seq, int64_t *forgotten);
    /* Writes the entry seq: user_id's session state changed at `at`. */
    bool (*tx_session_log_append)(rp_auth_txn_t *tx, int64_t seq, const char *user_id, int64_t at);
    /* The number of the newest entry written before `before` (*seq), 0 when there is none. */
    bool (*tx_session_log_newest_before)(rp_auth_txn_t *tx, int64_t before, int64_t *seq);
    /* Raises the forgotten mark to through (never lowers it) and deletes the entries numbered up
     * to it. */
    bool (*tx_session_log_forget)(rp_auth_txn_t *tx, int64_t through);
    /* The log's counter, in one read of its own: the newest sequence number given (*latest) and
     * the highest forgotten (*forgotten), both 0 for a log never written. What a reader makes of
     * it and of the entries is session_log.h's. */
    bool (*session_log_counter)(rp_auth_store_t *s, int64_t *latest, int64_t *forgotten, rp_err_t *err);
    /* The log's entries numbered above after and up to upto, in sequence order, at most limit:
     * their numbers into seqs and user ids into user_ids, *n of them. */
    bool (*session_changes_between)(rp_auth_store_t *s, int64_t after, int64_t upto, int limit, int64_t *seqs,
                                    char (*user_ids)[RP_OID_LEN], size_t *n, rp_err_t *err);

    void (*free)(rp_auth_store_t *s);
} rp_auth_store_ops_t;

struct rp_auth_store {
    const rp_auth_store_ops_t *ops;
};

/* Opens (creating and migrating) <dir>/auth.db. Returns NULL with err on failure. */
rp_auth_store_t *rp_auth_store_sqlite_open(const char *dir, int max_conns, rp_err_t *err);

#endif
