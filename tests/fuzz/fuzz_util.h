/* fuzz_util.h - what every libFuzzer target of tests/fuzz shares: a property check that aborts
 * (so libFuzzer saves the input as a crash) and quiet logging. Single-threaded use. */
#ifndef RP_TESTS_FUZZ_FUZZ_UTIL_H
#define RP_TESTS_FUZZ_FUZZ_UTIL_H

#include <stdio.h>
#include <stdlib.h>

/* A property the code under test promises; a violation is a finding like a crash is. */
#define FUZZ_CHECK(cond)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "fuzz property violated: %s (%s:%d)\n", #cond, __FILE__, __LINE__);                        \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

#endif
