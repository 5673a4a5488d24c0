/* Tests api/conn_limit.c: the per-address cap, release, independence of addresses, no cap. */
#include <criterion/criterion.h>

#include "conn_limit.h"

Test(conn_limit, caps_each_address_and_releases) {
    rp_conn_limit_t *cl = rp_conn_limit_new(3, 8);
    for (int i = 0; i < 3; i++)
        cr_assert(rp_conn_limit_acquire(cl, "127.0.0.5"));
    cr_assert_not(rp_conn_limit_acquire(cl, "127.0.0.5"), "a fourth connection must be refused");
    cr_assert_eq(rp_conn_limit_count(cl, "127.0.0.5"), 3, "a refusal counts nothing");
    cr_assert(rp_conn_limit_acquire(cl, "127.0.0.6"), "another address has its own count");
    rp_conn_limit_release(cl, "127.0.0.5");
    cr_assert(rp_conn_limit_acquire(cl, "127.0.0.5"), "a release frees a place");
    for (int i = 0; i < 3; i++)
        rp_conn_limit_release(cl, "127.0.0.5");
    rp_conn_limit_release(cl, "127.0.0.6");
    cr_assert_eq(rp_conn_limit_count(cl, "127.0.0.5"), 0);
    cr_assert_eq(rp_conn_limit_count(cl, "127.0.0.6"), 0);
    rp_conn_limit_free(cl);
}

Test(conn_limit, a_freed_slot_serves_another_address) {
    rp_conn_limit_t *cl = rp_conn_limit_new(1, 2);
    cr_assert(rp_conn_limit_acquire(cl, "10.0.0.1"));
    cr_assert(rp_conn_limit_acquire(cl, "10.0.0.2"));
    rp_conn_limit_release(cl, "10.0.0.1");
    cr_assert(rp_conn_limit_acquire(cl, "10.0.0.3"));
    cr_assert_not(rp_conn_limit_acquire(cl, "10.0.0.3"));
    cr_assert_not(rp_conn_limit_acquire(cl, "10.0.0.2"));
    rp_conn_limit_free(cl);
}

Test(conn_limit, zero_means_no_cap) {
    rp_conn_limit_t *cl = rp_conn_limit_new(0, 4);
    for (int i = 0; i < 100; i++)
        cr_assert(rp_conn_limit_acquire(cl, "127.0.0.1"));
    cr_assert_eq(rp_conn_limit_count(cl, "127.0.0.1"), 0);
    rp_conn_limit_free(cl);
    rp_conn_limit_free(NULL);
}
