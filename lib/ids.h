/* ids.h - ObjectId-style identifiers and random tokens; thread-safe (atomic counter, libsodium RNG). */
#ifndef RP_LIB_IDS_H
#define RP_LIB_IDS_H

#include <stdbool.h>
#include <stddef.h>

#define RP_OID_LEN 25 /* 24 hex characters + NUL */

/* Writes a new 24-hex ObjectId (4-byte seconds, 5 random process bytes, 3-byte counter) into out.
 * Ids created later in the same process sort after earlier ones. Needs sodium_init() first. */
void rp_oid_new(char out[RP_OID_LEN]);
/* True when s (len bytes) is exactly 24 lower- or upper-case hex characters. */
bool rp_oid_valid(const char *s, size_t len);
/* Writes nbytes (at most 64) random bytes as 2*nbytes lower-case hex characters plus NUL into
 * out. The bytes come from the kernel through a small per-thread pool, each used once. */
void rp_random_hex(char *out, size_t nbytes);

#endif
