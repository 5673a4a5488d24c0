/* work_counter.h - shared by the work-queue tests of both transports (test_transport.c,
 * test_transport_amqp.c): a consumer that counts what it is handed, so a test can tell that
 * every message arrived once and a malformed one was refused. Static state; include once per
 * test file. */
#ifndef RP_TESTS_WORK_COUNTER_H
#define RP_TESTS_WORK_COUNTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

static atomic_int work_seen, work_bad;

/* An rp_transport_consume consumer: a message that starts with the string ctx is refused (as
 * malformed) and counted in work_bad; any other is accepted and counted in work_seen. */
static inline bool count_work(void *ctx, const char *msg, size_t len) {
    const char *bad = ctx;
    size_t n = strlen(bad);
    if (len >= n && memcmp(msg, bad, n) == 0) {
        atomic_fetch_add(&work_bad, 1);
        return false;
    }
    atomic_fetch_add(&work_seen, 1);
    return true;
}

static inline void work_reset(void) {
    atomic_store(&work_seen, 0);
    atomic_store(&work_bad, 0);
}

/* Waits, polling up to tries times pause_us apart, until at least seen messages were accepted
 * and bad refused; the caller then asserts the exact counts. */
static inline void work_wait(int seen, int bad, int tries, useconds_t pause_us) {
    for (int i = 0; i < tries && (atomic_load(&work_seen) < seen || atomic_load(&work_bad) < bad); i++)
        usleep(pause_us);
}

#endif
