/* webhook_sign.c - webhook secrets and signatures (see webhook_sign.h). */
#include "webhook_sign.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define PREFIX "whsec_"
#define KEY_BYTES 32

void rp_webhook_secret_new(char out[RP_WEBHOOK_SECRET_LEN]) {
    unsigned char key[KEY_BYTES];
    randombytes_buf(key, sizeof key);
    memcpy(out, PREFIX, sizeof PREFIX - 1);
    sodium_bin2base64(out + sizeof PREFIX - 1, RP_WEBHOOK_SECRET_LEN - (sizeof PREFIX - 1), key, sizeof key,
                      sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(key, sizeof key);
}

bool rp_webhook_sign(const char *secret, const char *webhook_id, int64_t ts, const char *body, size_t len,
                     char out[RP_WEBHOOK_SIGNATURE_LEN]) {
    unsigned char key[64], mac[crypto_auth_hmacsha256_BYTES];
    size_t keylen = 0;
    char stamp[24];
    crypto_auth_hmacsha256_state st;
    out[0] = '\0';
    if (strncmp(secret, PREFIX, sizeof PREFIX - 1) != 0) return false;
    const char *b64 = secret + sizeof PREFIX - 1;
    if (sodium_base642bin(key, sizeof key, b64, strlen(b64), NULL, &keylen, NULL, sodium_base64_VARIANT_ORIGINAL) !=
            0 ||
        keylen == 0)
        return false;
    snprintf(stamp, sizeof stamp, "%" PRId64, ts);
    crypto_auth_hmacsha256_init(&st, key, keylen);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)webhook_id, strlen(webhook_id));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)stamp, strlen(stamp));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    memcpy(out, "v1,", 3);
    sodium_bin2base64(out + 3, RP_WEBHOOK_SIGNATURE_LEN - 3, mac, sizeof mac, sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(key, sizeof key);
    return true;
}
