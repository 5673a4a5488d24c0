/* roles.c - role names and bit sets (see roles.h); constant tables only. */
#include "roles.h"

#include <string.h>

static const struct {
    unsigned bit;
    const char *name;
} roles[] = {{RP_ROLE_USER, "USER"},
             {RP_ROLE_OPERATOR, "OPERATOR"},
             {RP_ROLE_AUDITOR, "AUDITOR"},
             {RP_ROLE_ADMIN, "ADMIN"},
             {RP_ROLE_GAME_SERVER, "GAME_SERVER"}};

#define NROLES (sizeof roles / sizeof roles[0])

unsigned rp_role_from_name(const char *name) {
    for (size_t i = 0; name && i < NROLES; i++)
        if (strcmp(name, roles[i].name) == 0) return roles[i].bit;
    return 0;
}

const char *rp_role_name(unsigned role) {
    for (size_t i = 0; i < NROLES; i++)
        if (roles[i].bit == role) return roles[i].name;
    return NULL;
}

json_t *rp_roles_to_json(unsigned set) {
    json_t *arr = json_array();
    for (size_t i = 0; i < NROLES; i++)
        if (set & roles[i].bit) json_array_append_new(arr, json_string(roles[i].name));
    return arr;
}

bool rp_roles_from_json(const json_t *arr, unsigned *out, rp_err_t *err) {
    *out = 0;
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        rp_err_set(err, RP_ERR_INVALID, "INVALID_ROLE", "roles must be a non-empty array of role names");
        return false;
    }
    size_t i;
    json_t *v;
    unsigned set = 0;
    json_array_foreach(arr, i, v) {
        unsigned bit = json_is_string(v) ? rp_role_from_name(json_string_value(v)) : 0;
        if (!bit) {
            rp_err_set(err, RP_ERR_INVALID, "INVALID_ROLE",
                       "roles[%zu] is not one of USER, OPERATOR, AUDITOR, ADMIN, GAME_SERVER", i);
            return false;
        }
        set |= bit;
    }
    *out = set;
    return true;
}
