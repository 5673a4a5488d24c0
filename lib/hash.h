/* hash.h - the string hash the fixed-size caches pick their slots with (page, session, API key
 * and event caches): 64-bit FNV-1a over every byte, so that keys sharing long prefixes (ObjectIds
 * share their leading time bytes) still spread. Not keyed: where clients choose keys, the
 * caller hashes a secret-keyed digest instead (apikey_cache.c). Constant data only. */
#ifndef RP_LIB_HASH_H
#define RP_LIB_HASH_H

#include <stdint.h>

static inline uint64_t rp_hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

#endif
