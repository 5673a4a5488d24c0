/* json_util.c - JSON parsing guards and request digests (see json_util.h). */
#include "json_util.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"

bool rp_json_depth_ok(const char *buf, size_t len, int max_depth) {
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) return false;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return true;
}

static int hash_text(const char *buffer, size_t size, void *data) {
    crypto_hash_sha256_update(data, (const unsigned char *)buffer, size);
    return 0;
}

/* The body's text is fed to the hash as jansson prints it, never held whole: a 100,000-player
 * batch body prints as 2.7 MB, which json_dumps built in a buffer doubled up to 4 MiB. */
void rp_json_request_hash(const char *scope, const json_t *body, char out[65]) {
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)scope, strlen(scope));
    crypto_hash_sha256_update(&st, (const unsigned char *)"\n", 1);
    if (body) json_dump_callback(body, hash_text, &st, JSON_COMPACT | JSON_SORT_KEYS);
    crypto_hash_sha256_final(&st, d);
    sodium_bin2hex(out, 65, d, sizeof d);
}

json_t *rp_json_str_or_null(const char *s) {
    return s && s[0] ? json_string(s) : json_null();
}

json_t *rp_json_time_or_null(int64_t ms) {
    char b[RP_ISO_LEN];
    if (!ms) return json_null();
    rp_time_iso(ms, b);
    return json_string(b);
}
