/* rpc_bundle.h - several RPC messages in one: the calls to a component that wait together travel
 * to a worker as one broker message, and their replies come back as one (lib/transport_amqp.c).
 * A bundle is the parts as netstrings, one after the other: "<length>:<bytes>," each, the length
 * in decimal without leading zeros (D. J. Bernstein's netstrings). The parts are the same bytes a
 * call would send alone (an envelope), and its replies the same bytes a reply alone would be. */
#ifndef RP_LIB_RPC_BUNDLE_H
#define RP_LIB_RPC_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>

/* The most parts a bundle may hold: a message with more is not a bundle. */
#define RP_BUNDLE_MAX_PARTS 256

/* A part of a bundle: bytes it does not own (borrowed from the bundle it was split from, or those
 * of a message to be joined into one). */
typedef struct rp_bundle_part {
    const char *p;
    size_t n;
} rp_bundle_part_t;

/* The n parts as one bundle (malloc'd, *out_len bytes, not NUL-terminated). */
char *rp_bundle_join(const rp_bundle_part_t *parts, size_t n, size_t *out_len);

/* Splits b (len bytes) into at most max parts (into parts[], borrowing from b). Returns how many,
 * or 0 when b is not a well-formed bundle of 1 to max parts (a length with a leading zero, over
 * ten digits or past the end, a missing ':' or ',', bytes after the last part). */
size_t rp_bundle_split(const char *b, size_t len, rp_bundle_part_t *parts, size_t max);

#endif
