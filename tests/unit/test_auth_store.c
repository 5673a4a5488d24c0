/* The auth store conformance suite (workers/auth/auth_store.h) on every backend. */
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

    bool found = false;
    json_t *before = json_pack("{s:[s]}", "roles", "USER"), *after_roles = json_pack("{s:[s]}", "roles", "OPERATOR");
    rp_audit_entry_t e = {"0123456789abcdef01234567", "admin", "SET_ROLES", "USER", ids[1], before, after_roles, 5};
    cr_assert(S.auth->ops->set_roles(S.auth, ids[1], RP_ROLE_OPERATOR, 10, &e, &found, &err), "%s", err.message);
    cr_assert(found);
    cr_assert(S.auth->ops->set_roles(S.auth, "ffffffffffffffffffffffff", RP_ROLE_OPERATOR, 10, &e, &found, &err));
    cr_assert_not(found);
    int64_t count = 0;
    cr_assert(S.auth->ops->count_with_role(S.auth, RP_ROLE_OPERATOR, &count, &err));
    cr_assert_eq(count, 1);
    json_t *items = NULL;
    cr_assert(S.auth->ops->list_audit(S.auth, ids[1], NULL, NULL, 10, &items, &more, &err), "%s", err.message);
    cr_assert_eq(json_array_size(items), 1u, "only the applied change is audited");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(items, 0), "target"), "id")),
                     ids[1]);
    json_decref(items);
    json_decref(before);
    json_decref(after_roles);
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
