/* Tests lib/ids.c: random hex is well-formed, distinct across draws and threads, and evenly
 * spread. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"

enum { DRAWS = 20000, BYTES = 8 };

static int by_str(const void *a, const void *b) {
    return strcmp(a, b);
}

/* DRAWS draws of BYTES bytes into arg (DRAWS rows of 2 * BYTES + 1 characters). */
static void *draw(void *arg) {
    char(*out)[2 * BYTES + 1] = arg;
    for (int i = 0; i < DRAWS; i++)
        rp_random_hex(out[i], BYTES);
    return NULL;
}

Test(ids, random_hex_is_lower_case_hex_of_the_asked_length) {
    char out[2 * 64 + 1];
    for (size_t n = 1; n <= 64; n++) {
        memset(out, 'x', sizeof out);
        rp_random_hex(out, n);
        cr_assert_eq(strlen(out), 2 * n);
        for (size_t i = 0; i < 2 * n; i++)
            cr_assert(strchr("0123456789abcdef", out[i]) != NULL, "%s", out);
    }
}

Test(ids, random_hex_never_repeats_within_or_across_threads) {
    enum { THREADS = 4 };
    char(*all)[2 * BYTES + 1] = calloc((size_t)THREADS * DRAWS, sizeof *all);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        cr_assert_eq(pthread_create(&th[t], NULL, draw, all + (size_t)t * DRAWS), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    qsort(all, (size_t)THREADS * DRAWS, sizeof *all, by_str);
    for (size_t i = 1; i < (size_t)THREADS * DRAWS; i++)
        cr_assert_str_neq(all[i - 1], all[i], "a draw came twice");
    free(all);
}

Test(ids, random_hex_digits_are_evenly_spread) {
    /* 16 digits over 320,000 characters: 20,000 each expected; a stream stuck on a value, or
     * a key of zeros reused, fails this (chi-square with 15 degrees of freedom, far beyond
     * the 0.001 level of 37.7) */
    char(*out)[2 * BYTES + 1] = calloc(DRAWS, sizeof *out);
    draw(out);
    long count[16] = {0};
    for (int i = 0; i < DRAWS; i++)
        for (int j = 0; j < 2 * BYTES; j++)
            count[strchr("0123456789abcdef", out[i][j]) - "0123456789abcdef"]++;
    double expected = DRAWS * 2.0 * BYTES / 16, chi2 = 0;
    for (int d = 0; d < 16; d++)
        chi2 += (count[d] - expected) * (count[d] - expected) / expected;
    cr_assert_lt(chi2, 60.0, "chi-square %.1f", chi2);
    free(out);
}
