/* names.h - the names of an enum's values, as the API and the stores spell them: one lookup in
 * each direction for every enum of the domain (request and item statuses, event statuses,
 * ledger kinds, request sources). Pure functions; thread-safe. */
#ifndef RP_LIB_NAMES_H
#define RP_LIB_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* names[value] for 0 <= value < n, else "?". names is borrowed; so is the result. */
const char *rp_name_of(const char *const *names, size_t n, int value);

/* The value whose name is s (exact, case-sensitive) into *out; false (and *out untouched) when s
 * is NULL or no name matches. */
bool rp_name_parse(const char *const *names, size_t n, const char *s, int *out);

#endif
