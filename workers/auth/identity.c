/* identity.c - account keys (see identity.h). */
#include "identity.h"

void rp_identity_key(const char *in, char *out, size_t cap) {
    size_t i = 0;
    if (cap == 0) return;
    for (; in && in[i] && i + 1 < cap; i++)
        out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] + ('a' - 'A')) : in[i];
    out[i] = '\0';
}

bool rp_identity_valid_name(const char *name) {
    size_t n = 0;
    for (; name && name[n]; n++) {
        char c = name[n];
        if (n == 32 || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return n >= 3;
}
