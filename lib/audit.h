/* audit.h - an entry of the operator audit log that the auth and the event stores keep, as both
 * backends' audit helpers (rp_sqlite_audit_*, rp_mongo_audit_*) take it. Constant data. */
#ifndef RP_LIB_AUDIT_H
#define RP_LIB_AUDIT_H

#include <jansson.h>
#include <stdint.h>

/* Who did what to which target, with the target's state before and after. Strings and JSON are
 * borrowed; a NULL string or JSON value is stored as null. */
typedef struct rp_audit_entry {
    const char *actor_id, *actor_username, *action, *target_type, *target_id;
    json_t *before, *after;
    int64_t at; /* epoch ms */
} rp_audit_entry_t;

#endif
