/* identity.c - account keys (see identity.h). */
#include "identity.h"

void rp_identity_key(const char *in, char *out, size_t cap) {
    size_t i = 0;
    if (cap == 0) return;
    for (; in && in[i] && i + 1 < cap; i++)
        out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] + ('a' - 'A')) : in[i];
    out[i] = '\0';
}
