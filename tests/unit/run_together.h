/* run_together.h - shared by the tests that race threads on one resource (test_auth.c,
 * test_grant_txn.c, test_reward_store.c): n threads running the same body on the same argument.
 * Static functions; include once per test file. */
#ifndef RP_TESTS_RUN_TOGETHER_H
#define RP_TESTS_RUN_TOGETHER_H

#include <criterion/criterion.h>
#include <pthread.h>

enum { RUN_TOGETHER_MAX = 16 };

/* Starts n (at most RUN_TOGETHER_MAX) threads running body(arg) and waits for all of them; body
 * reports through arg, which it must guard itself. */
static inline void run_together(int n, void *(*body)(void *), void *arg) {
    pthread_t th[RUN_TOGETHER_MAX];
    cr_assert(n > 0 && n <= RUN_TOGETHER_MAX, "%d threads", n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, body, arg), 0);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

#endif
