/* fuzz_bundle.c - libFuzzer target for rp_bundle_split, which a worker runs on any message of type
 * rp.bundle and the api on a bundle's reply: any bytes are refused or split into parts that lie
 * inside them and join back into exactly the same bytes (a bundle has one spelling). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "rpc_bundle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *b = (const char *)data;
    rp_bundle_part_t parts[RP_BUNDLE_MAX_PARTS];
    size_t n = rp_bundle_split(b, size, parts, RP_BUNDLE_MAX_PARTS);
    FUZZ_CHECK(n <= RP_BUNDLE_MAX_PARTS);
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(parts[i].p >= b && parts[i].p + parts[i].n <= b + size);
    size_t len = 0;
    char *again = rp_bundle_join(parts, n, &len);
    FUZZ_CHECK(len == size && memcmp(again, b, size) == 0);
    /* room for fewer parts than it holds: refused, never cut short */
    if (n > 1) FUZZ_CHECK(rp_bundle_split(b, size, parts, n - 1) == 0);
    free(again);
    return 0;
}
