/* webhook_sign.h - the Standard Webhooks signature (DESIGN.md section 10): secrets
 * "whsec_<base64 of 32 random bytes>" and webhook-signature "v1,<base64 HMAC-SHA256(key,
 * "<webhook-id>.<webhook-timestamp>.<body>")>", the key being the bytes the secret's base64
 * decodes to. Pure functions over libsodium (sodium_init first); thread-safe. */
#ifndef RP_WORKERS_REWARD_WEBHOOK_SIGN_H
#define RP_WORKERS_REWARD_WEBHOOK_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "webhook.h"

/* "v1," + base64 of 32 bytes (44) + NUL */
#define RP_WEBHOOK_SIGNATURE_LEN 48

/* Writes a new random secret into out. */
void rp_webhook_secret_new(char out[RP_WEBHOOK_SECRET_LEN]);

/* Signs body (len bytes, untrusted text travels with its length) sent as webhook_id at unix
 * seconds ts with secret into out ("v1,..."). False when secret is not a whsec_ secret. */
bool rp_webhook_sign(const char *secret, const char *webhook_id, int64_t ts, const char *body, size_t len,
                     char out[RP_WEBHOOK_SIGNATURE_LEN]);

#endif
