/* details.h - the details of a VALIDATION_FAILED answer: a JSON array of {field, reason}, field a
 * JSON Pointer into the body. Every validator of operator and player input fills one the same
 * way. Pure functions on a caller-owned array; thread-safe. */
#ifndef RP_LIB_DETAILS_H
#define RP_LIB_DETAILS_H

#include <jansson.h>

/* Appends {field, reason} to details (both borrowed, copied). */
void rp_details_add(json_t *details, const char *field, const char *reason);

/* Appends {prefix + "/" + member, "unknown field"} for every member of the object body not named
 * in allowed (a NULL-terminated list). The member name is cut at 80 bytes in the pointer. */
void rp_details_unknown(const json_t *body, const char *const *allowed, const char *prefix, json_t *details);

/* The number of members of the object body not named in allowed (a NULL-terminated list). */
size_t rp_details_count_unknown(const json_t *body, const char *const *allowed);

#endif
