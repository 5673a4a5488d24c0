/* names.c - enum value names (see names.h). */
#include "names.h"

#include <string.h>

const char *rp_name_of(const char *const *names, size_t n, int value) {
    return value >= 0 && (size_t)value < n ? names[value] : "?";
}

bool rp_name_parse(const char *const *names, size_t n, const char *s, int *out) {
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(names[i], s) == 0) {
            *out = (int)i;
            return true;
        }
    return false;
}
