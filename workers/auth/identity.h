/* identity.h - how accounts are told apart: usernames and emails are stored as given but unique,
 * and found, by their key, the ASCII lower-cased form. The stores only keep and match keys; the
 * folding happens here. Pure functions; thread-safe. */
#ifndef RP_WORKERS_AUTH_IDENTITY_H
#define RP_WORKERS_AUTH_IDENTITY_H

#include <stddef.h>

/* Writes the key of a username or email into out (cap bytes, truncating, always
 * NUL-terminated): ASCII letters lower-cased, every other byte as it is. */
void rp_identity_key(const char *in, char *out, size_t cap);

#endif
