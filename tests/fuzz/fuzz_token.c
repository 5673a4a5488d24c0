/* fuzz_token.c - libFuzzer target for the access-token parser (rp_token_verify) with a fixed
 * secret. Input: a mode byte, then either the token as a client sends it (even mode byte) or, so
 * that mutations reach the claim checks behind the signature, a header JSON, a newline and a
 * payload JSON that this target encodes and signs with the secret (odd mode byte). */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "ids.h"
#include "roles.h"
#include "token.h"

static const unsigned char secret[] = "fuzz-secret-0123456789abcdef-0123456789abcdef";
#define SECRET_LEN (sizeof secret - 1)
#define NOW 1800000000

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (sodium_init() < 0) abort();
    return 0;
}

/* Appends the unpadded base64url of n bytes at out + *used. */
static void put_b64(char *out, size_t cap, size_t *used, const void *bytes, size_t n) {
    sodium_bin2base64(out + *used, cap - *used, bytes, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    *used += strlen(out + *used);
}

/* header.payload.signature, HS256 with the secret; malloc'd, length in *len. */
static char *sign(const char *header, size_t hlen, const char *payload, size_t plen, size_t *len) {
    size_t cap = sodium_base64_ENCODED_LEN(hlen, sodium_base64_VARIANT_URLSAFE_NO_PADDING) +
                 sodium_base64_ENCODED_LEN(plen, sodium_base64_VARIANT_URLSAFE_NO_PADDING) +
                 sodium_base64_ENCODED_LEN(crypto_auth_hmacsha256_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING) + 3;
    char *out = malloc(cap);
    size_t used = 0;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    put_b64(out, cap, &used, header, hlen);
    out[used++] = '.';
    put_b64(out, cap, &used, payload, plen);
    crypto_auth_hmacsha256_init(&st, secret, SECRET_LEN);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)out, used);
    crypto_auth_hmacsha256_final(&st, mac);
    out[used++] = '.';
    put_b64(out, cap, &used, mac, sizeof mac);
    *len = used;
    return out;
}

/* A token that verifies says what the contract promises, and issuing it again gives the same. */
static void check_accepted(const rp_identity_t *who, const rp_token_claims_t *claims) {
    FUZZ_CHECK(who->authenticated && rp_oid_valid(who->id, strlen(who->id)));
    FUZZ_CHECK((who->roles & ~(unsigned)RP_ROLE_ALL) == 0);
    FUZZ_CHECK(claims->exp > NOW && claims->ver >= 0);
    FUZZ_CHECK(claims->jti[0] && strlen(claims->jti) < RP_JTI_LEN);
    rp_err_t err;
    char *again = rp_token_issue(secret, SECRET_LEN, who, claims->ver, NOW, 60, &err);
    FUZZ_CHECK(again != NULL);
    rp_identity_t who2;
    rp_token_claims_t c2;
    FUZZ_CHECK(rp_token_verify(secret, SECRET_LEN, again, strlen(again), NOW, &who2, &c2, &err));
    FUZZ_CHECK(strcmp(who2.id, who->id) == 0 && strcmp(who2.username, who->username) == 0);
    FUZZ_CHECK(who2.roles == who->roles && c2.ver == claims->ver);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 2 * RP_TOKEN_MAX_LEN) return 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    char *token = NULL;
    size_t len = 0;
    if (data[0] & 1) {
        const char *nl = memchr(in, '\n', n);
        if (!nl) return 0;
        token = sign(in, (size_t)(nl - in), nl + 1, n - (size_t)(nl - in) - 1, &len);
    } else {
        token = malloc(n ? n : 1);
        memcpy(token, in, n);
        len = n;
    }
    rp_identity_t who;
    rp_token_claims_t claims;
    rp_err_t err;
    rp_err_clear(&err);
    if (rp_token_verify(secret, SECRET_LEN, token, len, NOW, &who, &claims, &err)) {
        check_accepted(&who, &claims);
    } else {
        FUZZ_CHECK(!who.authenticated && claims.jti[0] == '\0');
        FUZZ_CHECK(strcmp(err.code, "INVALID_TOKEN") == 0 || strcmp(err.code, "TOKEN_EXPIRED") == 0);
    }
    free(token);
    return 0;
}
