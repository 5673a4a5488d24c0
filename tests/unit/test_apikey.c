/* Tests lib/apikey.c: the key's text form, minting and the keyed hash it is stored by. */
#include <criterion/criterion.h>
#include <string.h>

#include "apikey.h"

static const unsigned char secret[] = "0123456789abcdef0123456789abcdef";

Test(apikey, minted_keys_are_rpk_and_43_base64url_characters) {
    rp_apikey_secret_t s;
    char k1[RP_APIKEY_LEN + 1], k2[RP_APIKEY_LEN + 1], h1[RP_APIKEY_HASH_LEN], h2[RP_APIKEY_HASH_LEN];
    cr_assert_geq(sodium_init(), 0);
    rp_apikey_secret_init(&s, secret, sizeof secret - 1);
    rp_apikey_mint(&s, k1, h1);
    rp_apikey_mint(&s, k2, h2);
    cr_assert_eq(strlen(k1), 47u);
    cr_assert(rp_apikey_well_formed(k1, strlen(k1)), "%s", k1);
    cr_assert(rp_apikey_claims(k1, strlen(k1)));
    cr_assert_str_neq(k1, k2, "256 random bits each");
    cr_assert(rp_apikey_hash_valid(h1, strlen(h1)));
    char again[RP_APIKEY_HASH_LEN];
    rp_apikey_hash(&s, k1, strlen(k1), again);
    cr_assert_str_eq(again, h1, "the hash of a presented key finds the stored one");
    cr_assert_str_neq(h1, h2);
}

Test(apikey, the_hash_is_keyed_by_the_secret) {
    rp_apikey_secret_t a, b;
    char ha[RP_APIKEY_HASH_LEN], hb[RP_APIKEY_HASH_LEN];
    const char *key = "rpk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    rp_apikey_secret_init(&a, secret, sizeof secret - 1);
    rp_apikey_secret_init(&b, (const unsigned char *)"another-secret-of-32-bytes-or-more", 34);
    rp_apikey_hash(&a, key, strlen(key), ha);
    rp_apikey_hash(&b, key, strlen(key), hb);
    cr_assert_str_neq(ha, hb);
    cr_assert(strstr(ha, "AAAA") == NULL);
    rp_apikey_secret_clear(&a);
    static const unsigned char zero[sizeof a.key];
    cr_assert_eq(memcmp(a.key, zero, sizeof zero), 0, "wiped");
}

Test(apikey, malformed_keys_are_not_keys) {
    const char *bad[] = {"",
                         "rpk_",
                         "rpk_short",
                         "RPK_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                         "rpk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",   /* 42 */
                         "rpk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* 44 */
                         "rpk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",
                         "rpk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(rp_apikey_well_formed(bad[i], strlen(bad[i])), "%s", bad[i]);
    cr_assert_not(rp_apikey_claims("eyJhbGciOi", 10), "a JWT is no key");
    const char nul[] = "rpk_AAAAAAAAAAAAAAAAAAAAA\0AAAAAAAAAAAAAAAAAAAAA";
    cr_assert_not(rp_apikey_well_formed(nul, sizeof nul - 1));
    cr_assert_not(rp_apikey_hash_valid("ABCD", 4));
    cr_assert_not(rp_apikey_hash_valid("gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg", 64));
}
