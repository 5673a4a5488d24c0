/* identity.h - how accounts are told apart: usernames and emails are stored as given but unique,
 * and found, by their key, the ASCII lower-cased form. The stores only keep and match keys; the
 * folding happens here. Pure functions; thread-safe. */
#ifndef RP_WORKERS_AUTH_IDENTITY_H
#define RP_WORKERS_AUTH_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

/* Writes the key of a username or email into out (cap bytes, truncating, always
 * NUL-terminated): ASCII letters lower-cased, every other byte as it is. */
void rp_identity_key(const char *in, char *out, size_t cap);

/* Whether name is a valid username or service account name: 3 to 32 ASCII letters, digits or
 * underscores. */
bool rp_identity_valid_name(const char *name);

#endif
