/* Tests workers/reward/webhook_sign.c: secrets and the Standard Webhooks signature, against a
 * vector computed independently (Python: base64(hmac.new(key, b"id.ts.body", sha256))). */
#include <criterion/criterion.h>
#include <sodium.h>
#include <string.h>

#include "reward/webhook_sign.h"

static void init(void) {
    cr_assert(sodium_init() >= 0);
}

TestSuite(webhook_sign, .init = init);

Test(webhook_sign, secrets_are_whsec_and_32_random_bytes) {
    char a[RP_WEBHOOK_SECRET_LEN], b[RP_WEBHOOK_SECRET_LEN];
    unsigned char key[64];
    size_t len = 0;
    rp_webhook_secret_new(a);
    rp_webhook_secret_new(b);
    cr_assert_eq(strncmp(a, "whsec_", 6), 0);
    cr_assert_eq(strlen(a), 50u);
    cr_assert_str_neq(a, b);
    cr_assert_eq(
        sodium_base642bin(key, sizeof key, a + 6, strlen(a + 6), NULL, &len, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
    cr_assert_eq(len, 32u);
}

Test(webhook_sign, matches_an_independent_hmac) {
    /* key = b"0123456789abcdef0123456789abcdef"; python3 -c 'import base64,hmac,hashlib;
     * print(base64.b64encode(hmac.new(b"0123456789abcdef0123456789abcdef",
     * b"msg_1.1767323045.{\"a\":1}", hashlib.sha256).digest()).decode())' */
    const char *secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const char *body = "{\"a\":1}";
    char sig[RP_WEBHOOK_SIGNATURE_LEN];
    cr_assert(rp_webhook_sign(secret, "msg_1", 1767323045, body, strlen(body), sig));
    cr_assert_str_eq(sig, "v1,2AV5a/rt7u2dR1gX4dMyQGqwPnbYFQlvYOuCGmJS4nU=");
}

Test(webhook_sign, the_signature_covers_id_time_and_body) {
    const char *secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    char s0[RP_WEBHOOK_SIGNATURE_LEN], s1[RP_WEBHOOK_SIGNATURE_LEN], s2[RP_WEBHOOK_SIGNATURE_LEN],
        s3[RP_WEBHOOK_SIGNATURE_LEN];
    cr_assert(rp_webhook_sign(secret, "msg_1", 100, "{}", 2, s0));
    cr_assert(rp_webhook_sign(secret, "msg_2", 100, "{}", 2, s1));
    cr_assert(rp_webhook_sign(secret, "msg_1", 101, "{}", 2, s2));
    cr_assert(rp_webhook_sign(secret, "msg_1", 100, "[]", 2, s3));
    cr_assert_str_neq(s0, s1);
    cr_assert_str_neq(s0, s2);
    cr_assert_str_neq(s0, s3);
}

Test(webhook_sign, refuses_what_is_not_a_secret) {
    char sig[RP_WEBHOOK_SIGNATURE_LEN];
    cr_assert_not(rp_webhook_sign("sk_live_abc", "id", 1, "{}", 2, sig));
    cr_assert_str_eq(sig, "");
    cr_assert_not(rp_webhook_sign("whsec_", "id", 1, "{}", 2, sig));
    cr_assert_not(rp_webhook_sign("whsec_!!!notbase64", "id", 1, "{}", 2, sig));
}
