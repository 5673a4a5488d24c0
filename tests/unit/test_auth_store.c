/* The auth store conformance suite (workers/auth/auth_store.h) on every backend. */
#include "auth/session_log.h"
#include "session.h"
#include "store_backends.h"

BACKENDS(auth, users_are_unique_case_insensitively) {
    open_stores(*backend);
    rp_err_t err;
    rp_account_t a = account("Alice_1", "Alice@Example.com"), out;
    bool found;
    cr_assert(S.auth->ops->create_user(S.auth, &a, &err), "%s", err.message);
    rp_account_t same_name = account("ALICE_1", "other@example.com");
    cr_assert_not(S.auth->ops->create_user(S.auth, &same_name, &err));
    cr_assert_eq(err.kind, RP_ERR_CONFLICT);
    cr_assert_str_eq(err.code, "USERNAME_TAKEN");
    rp_account_t same_mail = account("bob_1", "alice@example.COM");
    cr_assert_not(S.auth->ops->create_user(S.auth, &same_mail, &err));
    cr_assert_str_eq(err.code, "EMAIL_TAKEN");
    cr_assert(S.auth->ops->find_by_login(S.auth, "alice_1", false, &out, &found, &err), "found by its key");
    cr_assert(found);
    cr_assert_str_eq(out.id, a.id);
    cr_assert_str_eq(out.username, "Alice_1", "stored as given");
    cr_assert(S.auth->ops->find_by_login(S.auth, "alice@example.com", true, &out, &found, &err));
    cr_assert(found);
    cr_assert(S.auth->ops->find_by_login(S.auth, "ALICE@example.com", true, &out, &found, &err));
    cr_assert_not(found, "the store matches keys exactly: folding is the service's (identity.c)");
    cr_assert(S.auth->ops->find_by_id(S.auth, a.id, &out, &found, &err));
    cr_assert(found);
    cr_assert_eq(out.roles, (unsigned)RP_ROLE_USER);
    cr_assert(S.auth->ops->find_by_id(S.auth, "ffffffffffffffffffffffff", &out, &found, &err));
    cr_assert_not(found);
}

typedef struct set_roles_arg {
    const char *id;
    unsigned roles;
    rp_audit_entry_t audit;
    bool found;
} set_roles_arg_t;

/* The roles and their audit entry in one unit of work; nothing when there is no such account. */
static rp_txn_end_t set_roles_txn(rp_auth_txn_t *tx, void *p) {
    set_roles_arg_t *a = p;
    rp_account_t acc;
    bool written = false;
    a->found = false;
    if (!S.auth->ops->tx_find_by_id(tx, a->id, &acc, &a->found)) return RP_TXN_FAILED;
    if (!a->found) return RP_TXN_ROLLBACK;
    acc.roles = a->roles;
    return S.auth->ops->tx_update_account(tx, &acc, &written) && S.auth->ops->tx_append_audit(tx, &a->audit)
               ? RP_TXN_COMMIT
               : RP_TXN_FAILED;
}

BACKENDS(auth, users_page_in_id_order_and_roles_are_audited) {
    open_stores(*backend);
    rp_err_t err;
    char ids[5][RP_OID_LEN];
    for (int i = 0; i < 5; i++) {
        char name[32], mail[48];
        snprintf(name, sizeof name, "user_%d", i);
        snprintf(mail, sizeof mail, "u%d@example.com", i);
        rp_account_t a = account(name, mail);
        strcpy(ids[i], a.id);
        cr_assert(S.auth->ops->create_user(S.auth, &a, &err), "%s", err.message);
    }
    rp_account_t *page = NULL;
    size_t n = 0;
    bool more = false;
    cr_assert(S.auth->ops->list_users(S.auth, NULL, 3, &page, &n, &more, &err));
    cr_assert_eq(n, 3u);
    cr_assert(more);
    cr_assert_str_eq(page[0].id, ids[0]);
    char after[RP_OID_LEN];
    strcpy(after, page[2].id);
    free(page);
    cr_assert(S.auth->ops->list_users(S.auth, after, 3, &page, &n, &more, &err));
    cr_assert_eq(n, 2u);
    cr_assert_not(more);
    cr_assert_str_eq(page[1].id, ids[4]);
    free(page);

    json_t *before = json_pack("{s:[s]}", "roles", "USER"), *after_roles = json_pack("{s:[s]}", "roles", "OPERATOR");
    set_roles_arg_t arg = {ids[1],
                           RP_ROLE_OPERATOR,
                           {"0123456789abcdef01234567", "admin", "SET_ROLES", "USER", ids[1], before, after_roles, 5},
                           false};
    cr_assert(S.auth->ops->transact(S.auth, "set roles", set_roles_txn, &arg, &err), "%s", err.message);
    cr_assert(arg.found);
    arg.id = "ffffffffffffffffffffffff";
    cr_assert(S.auth->ops->transact(S.auth, "set roles", set_roles_txn, &arg, &err), "%s", err.message);
    cr_assert_not(arg.found);
    rp_account_t out;
    bool found = false;
    cr_assert(S.auth->ops->find_by_id(S.auth, ids[1], &out, &found, &err));
    cr_assert_eq(out.roles, (unsigned)RP_ROLE_OPERATOR);
    json_t *items = NULL;
    cr_assert(S.auth->ops->list_audit(S.auth, ids[1], NULL, NULL, 10, &items, &more, &err), "%s", err.message);
    cr_assert_eq(json_array_size(items), 1u, "only the applied change is audited");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(items, 0), "target"), "id")),
                     ids[1]);
    json_decref(items);
    json_decref(before);
    json_decref(after_roles);
}

/* ---- the unit of work: accounts' security state, admins, revocations ---- */

static int64_t counted;

static rp_txn_end_t count_admins_txn(rp_auth_txn_t *tx, void *arg) {
    (void)arg;
    return S.auth->ops->tx_count_admins(tx, &counted) ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

static int64_t admins(void) {
    rp_err_t err;
    counted = -1;
    cr_assert(S.auth->ops->transact(S.auth, "count", count_admins_txn, NULL, &err), "%s", err.message);
    return counted;
}

typedef struct change_arg {
    const char *id;
    void (*change)(rp_account_t *a);
    rp_txn_end_t end;
    bool found;
} change_arg_t;

/* Reads the account, applies change, writes it under the admins guard, ends as told. */
static rp_txn_end_t change_txn(rp_auth_txn_t *tx, void *p) {
    change_arg_t *c = p;
    rp_account_t a;
    bool written = false;
    c->found = false;
    if (!S.auth->ops->tx_find_by_id(tx, c->id, &a, &c->found)) return RP_TXN_FAILED;
    if (!c->found) return RP_TXN_ROLLBACK;
    c->change(&a);
    if (!S.auth->ops->tx_guard_admins(tx) || !S.auth->ops->tx_update_account(tx, &a, &written)) return RP_TXN_FAILED;
    cr_assert(written);
    return c->end;
}

static void demote(rp_account_t *a) {
    a->roles = RP_ROLE_USER;
    a->token_version++;
    a->updated_at = 20;
}

static void disable(rp_account_t *a) {
    a->disabled = true;
    snprintf(a->disabled_reason, sizeof a->disabled_reason, "left the studio");
    a->disabled_at = 30;
    a->token_version++;
    snprintf(a->password_hash, sizeof a->password_hash, "$argon2id$new");
}

static void enable(rp_account_t *a) {
    a->disabled = false;
    a->disabled_reason[0] = '\0';
    a->disabled_at = 0;
}

BACKENDS(auth, security_state_changes_in_units_of_work) {
    open_stores(*backend);
    rp_err_t err;
    rp_account_t ann = account("ann_1", "ann@example.com"), bob = account("bob_1", "bob@example.com"), out;
    ann.roles = bob.roles = RP_ROLE_USER | RP_ROLE_ADMIN;
    cr_assert(S.auth->ops->create_user(S.auth, &ann, &err), "%s", err.message);
    cr_assert(S.auth->ops->create_user(S.auth, &bob, &err), "%s", err.message);
    bool found = false;
    cr_assert(S.auth->ops->find_by_id(S.auth, ann.id, &out, &found, &err));
    cr_assert(found);
    cr_assert_eq(out.token_version, 0);
    cr_assert_not(out.disabled, "a new account is enabled, version 0");
    cr_assert_eq(admins(), 2);

    change_arg_t c = {bob.id, demote, RP_TXN_COMMIT, false};
    cr_assert(S.auth->ops->transact(S.auth, "demote", change_txn, &c, &err), "%s", err.message);
    cr_assert(c.found);
    cr_assert(S.auth->ops->find_by_id(S.auth, bob.id, &out, &found, &err));
    cr_assert_eq(out.roles, (unsigned)RP_ROLE_USER);
    cr_assert_eq(out.token_version, 1);
    cr_assert_eq(out.updated_at, 20);
    cr_assert_eq(admins(), 1);

    /* a unit of work that rolls back leaves nothing */
    c = (change_arg_t){ann.id, disable, RP_TXN_ROLLBACK, false};
    cr_assert(S.auth->ops->transact(S.auth, "disable", change_txn, &c, &err), "%s", err.message);
    cr_assert(S.auth->ops->find_by_id(S.auth, ann.id, &out, &found, &err));
    cr_assert_not(out.disabled);
    cr_assert_eq(out.token_version, 0);

    c = (change_arg_t){ann.id, disable, RP_TXN_COMMIT, false};
    cr_assert(S.auth->ops->transact(S.auth, "disable", change_txn, &c, &err), "%s", err.message);
    cr_assert(S.auth->ops->find_by_id(S.auth, ann.id, &out, &found, &err));
    cr_assert(out.disabled);
    cr_assert_str_eq(out.disabled_reason, "left the studio");
    cr_assert_eq(out.disabled_at, 30);
    cr_assert_eq(out.token_version, 1);
    cr_assert_str_eq(out.password_hash, "$argon2id$new");
    cr_assert_eq(admins(), 0, "a disabled admin is not counted");
    cr_assert(S.auth->ops->find_by_login(S.auth, "ann_1", false, &out, &found, &err));
    cr_assert(out.disabled, "every read carries the state");

    c = (change_arg_t){ann.id, enable, RP_TXN_COMMIT, false};
    cr_assert(S.auth->ops->transact(S.auth, "enable", change_txn, &c, &err), "%s", err.message);
    cr_assert(S.auth->ops->find_by_id(S.auth, ann.id, &out, &found, &err));
    cr_assert_not(out.disabled);
    cr_assert_str_eq(out.disabled_reason, "");
    cr_assert_eq(out.disabled_at, 0);
    cr_assert_eq(admins(), 1);

    c = (change_arg_t){"ffffffffffffffffffffffff", enable, RP_TXN_COMMIT, true};
    cr_assert(S.auth->ops->transact(S.auth, "enable", change_txn, &c, &err), "%s", err.message);
    cr_assert_not(c.found);
}

typedef struct revoke_arg {
    const char *user_id, *jti;
    int64_t expires_at, now, count;
    bool refresh;
} revoke_arg_t;

static rp_txn_end_t revoke_txn(rp_auth_txn_t *tx, void *p) {
    revoke_arg_t *a = p;
    if (a->refresh) return S.auth->ops->tx_revoke_refresh_of(tx, a->user_id, a->now) ? RP_TXN_COMMIT : RP_TXN_FAILED;
    return S.auth->ops->tx_revoke_access(tx, a->user_id, a->jti, a->expires_at, a->now) &&
                   S.auth->ops->tx_count_revoked(tx, a->user_id, a->now, &a->count)
               ? RP_TXN_COMMIT
               : RP_TXN_FAILED;
}

static void revoke(const char *user, const char *jti, int64_t exp, int64_t now, int64_t want_count) {
    rp_err_t err;
    revoke_arg_t a = {user, jti, exp, now, -1, false};
    cr_assert(S.auth->ops->transact(S.auth, "revoke", revoke_txn, &a, &err), "%s", err.message);
    cr_assert_eq(a.count, want_count, "%s: %lld", jti, (long long)a.count);
}

BACKENDS(auth, revocations_of_access_and_refresh_tokens) {
    open_stores(*backend);
    rp_err_t err;
    rp_account_t u = account("cid_1", "cid@example.com"), v = account("dee_1", "dee@example.com");
    cr_assert(S.auth->ops->create_user(S.auth, &u, &err), "%s", err.message);
    cr_assert(S.auth->ops->create_user(S.auth, &v, &err), "%s", err.message);
    revoke(u.id, "j1", 100, 10, 1);
    revoke(u.id, "j2", 200, 10, 2);
    revoke(u.id, "j1", 100, 10, 2); /* again: no duplicate, no error */
    revoke(v.id, "k1", 500, 10, 1);
    char jtis[RP_SESSION_MAX_REVOKED][RP_JTI_LEN];
    size_t n = 0;
    bool more = true;
    cr_assert(S.auth->ops->revoked_access(S.auth, u.id, 150, RP_SESSION_MAX_REVOKED, jtis, &n, &more, &err), "%s",
              err.message);
    cr_assert_eq(n, 1u, "j1 expired by 150");
    cr_assert_str_eq(jtis[0], "j2");
    cr_assert_not(more);
    revoke(u.id, "j3", 300, 150, 2); /* forgets j1 */
    revoke(u.id, "a9", 400, 150, 3); /* first by its id, last to expire */
    cr_assert(S.auth->ops->revoked_access(S.auth, u.id, 0, RP_SESSION_MAX_REVOKED, jtis, &n, &more, &err));
    cr_assert_eq(n, 3u, "j1 is gone even for an earlier clock");
    cr_assert_str_eq(jtis[0], "j2", "soonest to expire first");
    cr_assert_str_eq(jtis[1], "j3");
    cr_assert_str_eq(jtis[2], "a9");
    cr_assert(S.auth->ops->revoked_access(S.auth, u.id, 0, 1, jtis, &n, &more, &err));
    cr_assert_eq(n, 1u);
    cr_assert_str_eq(jtis[0], "j2");
    cr_assert(more);

    /* every refresh family of one account, and only its */
    rp_refresh_token_t t[3];
    memset(t, 0, sizeof t);
    for (int i = 0; i < 3; i++) {
        rp_oid_new(t[i].id);
        strcpy(t[i].user_id, i < 2 ? u.id : v.id);
        rp_oid_new(t[i].family_id);
        memset(t[i].token_hash, 'a' + i, 64);
        t[i].created_at = 1;
        t[i].expires_at = 1000000;
        cr_assert(S.auth->ops->insert_refresh(S.auth, &t[i], &err), "%s", err.message);
    }
    revoke_arg_t a = {.user_id = u.id, .now = 77, .refresh = true};
    cr_assert(S.auth->ops->transact(S.auth, "revoke refresh", revoke_txn, &a, &err), "%s", err.message);
    for (int i = 0; i < 3; i++) {
        rp_refresh_token_t out;
        bool found = false;
        cr_assert(S.auth->ops->find_refresh(S.auth, t[i].token_hash, &out, &found, &err));
        cr_assert(found);
        cr_assert_eq(out.revoked_at, i < 2 ? 77 : 0, "token %d", i);
    }
}

BACKENDS(auth, login_failures_and_refresh_rotation) {
    open_stores(*backend);
    rp_err_t err;
    rp_account_t a = account("carol_1", "carol@example.com");
    cr_assert(S.auth->ops->create_user(S.auth, &a, &err));
    for (int i = 1; i <= 3; i++)
        cr_assert(S.auth->ops->add_failure(S.auth, a.id, i * 1000, 0, &err), "%s", err.message);
    int64_t count = 0, nth = 0;
    cr_assert(S.auth->ops->failures(S.auth, a.id, 1500, 2, &count, &nth, &err));
    cr_assert_eq(count, 2);
    cr_assert_eq(nth, 2000, "the 2nd most recent after 1500");
    cr_assert(S.auth->ops->clear_failures(S.auth, a.id, &err));
    cr_assert(S.auth->ops->failures(S.auth, a.id, 0, 1, &count, &nth, &err));
    cr_assert_eq(count, 0);

    rp_refresh_token_t t1 = {0}, t2 = {0}, t3 = {0}, out;
    rp_oid_new(t1.id);
    strcpy(t1.user_id, a.id);
    rp_oid_new(t1.family_id);
    memset(t1.token_hash, 'a', 64);
    t1.created_at = 1;
    t1.expires_at = 1000000;
    t2 = t1;
    rp_oid_new(t2.id);
    memset(t2.token_hash, 'b', 64);
    t3 = t1;
    rp_oid_new(t3.id);
    memset(t3.token_hash, 'c', 64);
    cr_assert(S.auth->ops->insert_refresh(S.auth, &t1, &err), "%s", err.message);
    bool found = false, rotated = false;
    cr_assert(S.auth->ops->find_refresh(S.auth, t1.token_hash, &out, &found, &err));
    cr_assert(found);
    cr_assert_str_eq(out.family_id, t1.family_id);
    cr_assert(S.auth->ops->rotate_refresh(S.auth, t1.id, 50, &t2, &rotated, &err), "%s", err.message);
    cr_assert(rotated);
    cr_assert(S.auth->ops->rotate_refresh(S.auth, t1.id, 60, &t3, &rotated, &err));
    cr_assert_not(rotated, "a used token never rotates twice");
    cr_assert(S.auth->ops->find_refresh(S.auth, t3.token_hash, &out, &found, &err));
    cr_assert_not(found, "nothing inserted by the refused rotation");
    cr_assert(S.auth->ops->revoke_family(S.auth, t1.family_id, 70, &err));
    cr_assert(S.auth->ops->find_refresh(S.auth, t2.token_hash, &out, &found, &err));
    cr_assert(found);
    cr_assert_eq(out.revoked_at, 70);
}

/* ---- service accounts and their keys ---- */

typedef struct sa_arg {
    rp_service_account_t account;
    rp_service_key_t key;
    bool taken;
} sa_arg_t;

static rp_txn_end_t create_service_txn(rp_auth_txn_t *tx, void *p) {
    sa_arg_t *a = p;
    a->taken = false;
    if (!S.auth->ops->tx_insert_service(tx, &a->account, &a->taken)) return RP_TXN_FAILED;
    if (a->taken) return RP_TXN_ROLLBACK;
    return S.auth->ops->tx_insert_key(tx, &a->key) ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

static sa_arg_t service(const char *name, const char *name_key, const char *hash, int64_t now) {
    sa_arg_t a;
    memset(&a, 0, sizeof a);
    rp_oid_new(a.account.id);
    snprintf(a.account.name, sizeof a.account.name, "%s", name);
    snprintf(a.account.name_key, sizeof a.account.name_key, "%s", name_key);
    a.account.roles = RP_ROLE_GAME_SERVER;
    a.account.created_at = now;
    rp_oid_new(a.key.id);
    strcpy(a.key.account_id, a.account.id);
    snprintf(a.key.key_hash, sizeof a.key.key_hash, "%s", hash);
    a.key.created_at = now;
    return a;
}

typedef struct keys_arg {
    const char *account_id, *key_id;
    int64_t now, until;
    rp_service_key_t next;
    int64_t live;
    bool found;
} keys_arg_t;

/* A rotation: the live keys retired (until), counted, the next one inserted. */
static rp_txn_end_t rotate_keys_txn(rp_auth_txn_t *tx, void *p) {
    keys_arg_t *a = p;
    return S.auth->ops->tx_retire_keys(tx, a->account_id, a->now, a->until) &&
                   S.auth->ops->tx_count_keys(tx, a->account_id, a->now, &a->live) &&
                   S.auth->ops->tx_insert_key(tx, &a->next)
               ? RP_TXN_COMMIT
               : RP_TXN_FAILED;
}

static rp_txn_end_t revoke_key_txn(rp_auth_txn_t *tx, void *p) {
    keys_arg_t *a = p;
    a->found = false;
    return S.auth->ops->tx_revoke_key(tx, a->account_id, a->key_id, a->now, &a->found) ? RP_TXN_COMMIT : RP_TXN_FAILED;
}

static rp_txn_end_t delete_service_txn(rp_auth_txn_t *tx, void *p) {
    keys_arg_t *a = p;
    a->found = false;
    return S.auth->ops->tx_retire_keys(tx, a->account_id, a->now, a->now) &&
                   S.auth->ops->tx_delete_service(tx, a->account_id, &a->found)
               ? RP_TXN_COMMIT
               : RP_TXN_FAILED;
}

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HASH_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

BACKENDS(auth, service_accounts_keys_rotate_revoke_and_delete) {
    open_stores(*backend);
    rp_err_t err;
    const int64_t t0 = 1767323045000LL;
    sa_arg_t gs = service("Game_1", "game_1", HASH_A, t0);
    cr_assert(S.auth->ops->transact(S.auth, "create", create_service_txn, &gs, &err), "%s", err.message);
    cr_assert_not(gs.taken);
    sa_arg_t same = service("GAME_1", "game_1", HASH_B, t0);
    cr_assert(S.auth->ops->transact(S.auth, "create", create_service_txn, &same, &err), "%s", err.message);
    cr_assert(same.taken, "the name key is unique");

    rp_service_key_t k;
    rp_service_account_t a;
    bool found = false;
    cr_assert(S.auth->ops->find_key(S.auth, HASH_A, &k, &a, &found, &err), "%s", err.message);
    cr_assert(found);
    cr_assert_str_eq(k.id, gs.key.id);
    cr_assert_str_eq(a.id, gs.account.id);
    cr_assert_str_eq(a.name, "Game_1");
    cr_assert_eq(a.roles, (unsigned)RP_ROLE_GAME_SERVER);
    cr_assert_eq(k.expires_at, 0);
    cr_assert_eq(k.revoked_at, 0);
    cr_assert_eq(k.last_used_at, 0);
    cr_assert(S.auth->ops->find_key(S.auth, HASH_B, &k, &a, &found, &err));
    cr_assert_not(found, "the refused account's key was not kept");
    cr_assert(S.auth->ops->find_service(S.auth, gs.account.id, &a, &found, &err), "%s", err.message);
    cr_assert(found);
    cr_assert_str_eq(a.name, "Game_1");
    cr_assert_eq(a.created_at, t0);
    cr_assert(S.auth->ops->find_service(S.auth, same.account.id, &a, &found, &err));
    cr_assert_not(found);

    /* the last use is written once per interval */
    cr_assert(S.auth->ops->touch_key(S.auth, gs.key.id, t0 + 10, t0 - 60000, &err));
    cr_assert(S.auth->ops->touch_key(S.auth, gs.key.id, t0 + 20, t0 + 20 - 60000, &err));
    cr_assert(S.auth->ops->find_key(S.auth, HASH_A, &k, &a, &found, &err));
    cr_assert_eq(k.last_used_at, t0 + 10);
    cr_assert(S.auth->ops->touch_key(S.auth, gs.key.id, t0 + 70000, t0 + 10000, &err));
    cr_assert(S.auth->ops->find_key(S.auth, HASH_A, &k, &a, &found, &err));
    cr_assert_eq(k.last_used_at, t0 + 70000);

    /* rotation with a grace: the old key gets an expiry, both are live until it */
    keys_arg_t r = {.account_id = gs.account.id, .now = t0 + 1000, .until = t0 + 61000};
    rp_oid_new(r.next.id);
    strcpy(r.next.account_id, gs.account.id);
    strcpy(r.next.key_hash, HASH_B);
    r.next.created_at = t0 + 1000;
    cr_assert(S.auth->ops->transact(S.auth, "rotate", rotate_keys_txn, &r, &err), "%s", err.message);
    cr_assert_eq(r.live, 1);
    rp_service_key_t keys[RP_SERVICE_KEYS_MAX];
    size_t n = 0;
    cr_assert(S.auth->ops->service_keys(S.auth, gs.account.id, t0 + 2000, keys, RP_SERVICE_KEYS_MAX, &n, &err));
    cr_assert_eq(n, 2u);
    cr_assert_str_eq(keys[0].id, gs.key.id, "oldest first");
    cr_assert_eq(keys[0].expires_at, t0 + 61000);
    cr_assert_eq(keys[1].expires_at, 0);
    cr_assert(S.auth->ops->service_keys(S.auth, gs.account.id, t0 + 61000, keys, RP_SERVICE_KEYS_MAX, &n, &err));
    cr_assert_eq(n, 1u, "an expired key is not live");
    cr_assert_str_eq(keys[0].key_hash, HASH_B);

    /* rotation without grace: every live key revoked now */
    keys_arg_t r2 = {.account_id = gs.account.id, .now = t0 + 2000, .until = t0 + 2000};
    rp_oid_new(r2.next.id);
    strcpy(r2.next.account_id, gs.account.id);
    strcpy(r2.next.key_hash, HASH_C);
    r2.next.created_at = t0 + 2000;
    cr_assert(S.auth->ops->transact(S.auth, "rotate", rotate_keys_txn, &r2, &err), "%s", err.message);
    cr_assert_eq(r2.live, 0);
    cr_assert(S.auth->ops->find_key(S.auth, HASH_B, &k, &a, &found, &err));
    cr_assert(found);
    cr_assert_eq(k.revoked_at, t0 + 2000);
    cr_assert(S.auth->ops->find_key(S.auth, HASH_A, &k, &a, &found, &err));
    cr_assert_eq(k.revoked_at, t0 + 2000);

    /* revoke one: again keeps the first time; another account's key is not found */
    keys_arg_t rv = {.account_id = gs.account.id, .key_id = r2.next.id, .now = t0 + 3000};
    cr_assert(S.auth->ops->transact(S.auth, "revoke", revoke_key_txn, &rv, &err), "%s", err.message);
    cr_assert(rv.found);
    rv.now = t0 + 4000;
    cr_assert(S.auth->ops->transact(S.auth, "revoke", revoke_key_txn, &rv, &err), "%s", err.message);
    cr_assert(rv.found);
    cr_assert(S.auth->ops->find_key(S.auth, HASH_C, &k, &a, &found, &err));
    cr_assert_eq(k.revoked_at, t0 + 3000);
    keys_arg_t other = {.account_id = "ffffffffffffffffffffffff", .key_id = r2.next.id, .now = t0};
    cr_assert(S.auth->ops->transact(S.auth, "revoke", revoke_key_txn, &other, &err), "%s", err.message);
    cr_assert_not(other.found);

    /* list, then delete */
    rp_service_account_t *page = NULL;
    bool more = true;
    cr_assert(S.auth->ops->list_services(S.auth, NULL, 10, &page, &n, &more, &err), "%s", err.message);
    cr_assert_eq(n, 1u);
    cr_assert_not(more);
    cr_assert_str_eq(page[0].name, "Game_1");
    free(page);
    keys_arg_t del = {.account_id = gs.account.id, .now = t0 + 5000};
    cr_assert(S.auth->ops->transact(S.auth, "delete", delete_service_txn, &del, &err), "%s", err.message);
    cr_assert(del.found);
    cr_assert(S.auth->ops->find_key(S.auth, HASH_C, &k, &a, &found, &err));
    cr_assert_not(found, "a deleted account's keys find nothing");
    cr_assert(S.auth->ops->list_services(S.auth, NULL, 10, &page, &n, &more, &err));
    cr_assert_eq(n, 0u);
    free(page);
    cr_assert(S.auth->ops->transact(S.auth, "delete", delete_service_txn, &del, &err));
    cr_assert_not(del.found);
}

/* ---- the log of session changes ---- */

typedef struct log_arg {
    const char *user_id;
    int64_t now, forget_before;
    bool roll_back;
} log_arg_t;

static rp_txn_end_t log_txn(rp_auth_txn_t *tx, void *p) {
    log_arg_t *a = p;
    if (!rp_auth_tx_log_session_change(S.auth->ops, tx, a->user_id, a->now, a->forget_before)) return RP_TXN_FAILED;
    return a->roll_back ? RP_TXN_ROLLBACK : RP_TXN_COMMIT;
}

static void log_change(const char *user_id, int64_t now, int64_t forget_before, bool roll_back) {
    rp_err_t err;
    log_arg_t a = {user_id, now, forget_before, roll_back};
    cr_assert(S.auth->ops->transact(S.auth, "log", log_txn, &a, &err), "%s", err.message);
}

typedef struct log_read {
    char ids[8][RP_OID_LEN];
    size_t n;
    int64_t last;
    bool more, complete;
} log_read_t;

static log_read_t read_changes(int64_t after, int limit) {
    rp_err_t err;
    log_read_t r;
    memset(&r, 0, sizeof r);
    r.complete = r.more = true;
    cr_assert(rp_auth_session_changes(S.auth, after, limit, r.ids, &r.n, &r.last, &r.more, &r.complete, &err), "%s",
              err.message);
    return r;
}

BACKENDS(auth, the_session_log_numbers_changes_in_commit_order_and_forgets_old_ones) {
    open_stores(*backend);
    log_read_t r = read_changes(-1, 8);
    cr_assert_eq(r.last, 0, "a log never written");
    cr_assert_eq(r.n, 0u);
    cr_assert(r.complete);
    r = read_changes(0, 8);
    cr_assert_eq(r.n, 0u);
    cr_assert_eq(r.last, 0);
    cr_assert_not(r.more);

    const char *a = "5f0000000000000000000001", *b = "5f0000000000000000000002";
    log_change(a, 1000, 0, false);
    log_change(b, 2000, 0, true); /* rolled back: neither the entry nor its number stays */
    log_change(b, 3000, 0, false);
    log_change(a, 4000, 0, false);
    r = read_changes(-1, 8);
    cr_assert_eq(r.last, 3, "the newest number alone");
    cr_assert_eq(r.n, 0u);
    r = read_changes(0, 8);
    cr_assert_eq(r.n, 3u);
    cr_assert_str_eq(r.ids[0], a);
    cr_assert_str_eq(r.ids[1], b);
    cr_assert_str_eq(r.ids[2], a, "in the log's order, repeats kept");
    cr_assert_eq(r.last, 3);
    cr_assert_not(r.more);
    cr_assert(r.complete);
    r = read_changes(0, 2);
    cr_assert_eq(r.n, 2u);
    cr_assert(r.more);
    cr_assert_eq(r.last, 2, "the number of the last id returned when more follow");
    r = read_changes(2, 2);
    cr_assert_eq(r.n, 1u);
    cr_assert_str_eq(r.ids[0], a);
    cr_assert_not(r.more);
    cr_assert_eq(r.last, 3);
    r = read_changes(3, 2);
    cr_assert_eq(r.n, 0u);
    cr_assert_eq(r.last, 3);

    /* the entries written before 3500 (numbers 1 and 2) are forgotten with the next change */
    log_change(b, 5000, 3500, false);
    r = read_changes(3, 8);
    cr_assert(r.complete, "a reader past the forgotten entries misses nothing");
    cr_assert_eq(r.n, 1u);
    cr_assert_str_eq(r.ids[0], b);
    cr_assert_eq(r.last, 4);
    r = read_changes(1, 8);
    cr_assert_not(r.complete, "entry 2 was forgotten unread");
    cr_assert_eq(r.n, 2u, "what is left is still read");
    r = read_changes(2, 8);
    cr_assert(r.complete);
    cr_assert_eq(r.n, 2u);
    cr_assert_str_eq(r.ids[0], a);
    cr_assert_eq(r.last, 4);
    /* a clock gone back does not bring the mark down */
    log_change(a, 6000, 100, false);
    r = read_changes(1, 8);
    cr_assert_not(r.complete);
    r = read_changes(2, 8);
    cr_assert(r.complete);
    cr_assert_eq(r.n, 3u);
    cr_assert_eq(r.last, 5);
}
