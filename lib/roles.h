/* roles.h - the platform's roles as a bit set, with JSON conversion; pure functions, thread-safe. */
#ifndef RP_LIB_ROLES_H
#define RP_LIB_ROLES_H

#include <jansson.h>
#include <stdbool.h>

#include "err.h"

typedef enum {
    RP_ROLE_USER = 1u << 0,
    RP_ROLE_OPERATOR = 1u << 1,
    RP_ROLE_AUDITOR = 1u << 2,
    RP_ROLE_ADMIN = 1u << 3,
    RP_ROLE_GAME_SERVER = 1u << 4,
} rp_role_t;

#define RP_ROLE_ALL (RP_ROLE_USER | RP_ROLE_OPERATOR | RP_ROLE_AUDITOR | RP_ROLE_ADMIN | RP_ROLE_GAME_SERVER)

/* Returns the bit of an exact role name ("ADMIN"), or 0 when unknown. */
unsigned rp_role_from_name(const char *name);
/* Returns the name of one role bit, or NULL. */
const char *rp_role_name(unsigned role);
/* Returns a new JSON array of role names in a fixed order; caller decrefs. */
json_t *rp_roles_to_json(unsigned roles);
/* Parses a JSON array of role names into *out. Fails (status 400, INVALID_ROLE) on a non-array,
 * a non-string, an unknown name, or an empty array. Duplicates are tolerated. */
bool rp_roles_from_json(const json_t *arr, unsigned *out, rp_err_t *err);

#endif
