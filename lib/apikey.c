/* apikey.c - API key text, minting, hashing and the look-up over the transport (see apikey.h). */
#include "apikey.h"

#include <stdio.h>
#include <string.h>

#include "roles.h"
#include "rpc.h"

#define LABEL "rp-api-key-hash-v1"

void rp_apikey_secret_init(rp_apikey_secret_t *s, const unsigned char *jwt_secret, size_t len) {
    crypto_generichash(s->key, sizeof s->key, jwt_secret, len, (const unsigned char *)LABEL, sizeof LABEL - 1);
}

void rp_apikey_secret_clear(rp_apikey_secret_t *s) {
    sodium_memzero(s->key, sizeof s->key);
}

bool rp_apikey_claims(const char *text, size_t len) {
    return len >= RP_APIKEY_PREFIX_LEN && memcmp(text, RP_APIKEY_PREFIX, RP_APIKEY_PREFIX_LEN) == 0;
}

bool rp_apikey_well_formed(const char *text, size_t len) {
    if (len != RP_APIKEY_LEN || !rp_apikey_claims(text, len)) return false;
    for (size_t i = RP_APIKEY_PREFIX_LEN; i < len; i++) {
        char c = text[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

void rp_apikey_hash(const rp_apikey_secret_t *s, const char *key, size_t len, char hash[RP_APIKEY_HASH_LEN]) {
    unsigned char d[32];
    crypto_generichash(d, sizeof d, (const unsigned char *)key, len, s->key, sizeof s->key);
    sodium_bin2hex(hash, RP_APIKEY_HASH_LEN, d, sizeof d);
}

void rp_apikey_mint(const rp_apikey_secret_t *s, char key[RP_APIKEY_LEN + 1], char hash[RP_APIKEY_HASH_LEN]) {
    unsigned char raw[RP_APIKEY_BYTES];
    randombytes_buf(raw, sizeof raw);
    memcpy(key, RP_APIKEY_PREFIX, RP_APIKEY_PREFIX_LEN);
    sodium_bin2base64(key + RP_APIKEY_PREFIX_LEN, RP_APIKEY_LEN + 1 - RP_APIKEY_PREFIX_LEN, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    rp_apikey_hash(s, key, RP_APIKEY_LEN, hash);
}

bool rp_apikey_hash_valid(const char *text, size_t len) {
    if (len != RP_APIKEY_HASH_LEN - 1) return false;
    for (size_t i = 0; i < len; i++)
        if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f'))) return false;
    return true;
}

json_t *rp_apikey_state_to_json(const rp_apikey_state_t *s) {
    return json_pack("{s:s, s:s, s:o, s:s, s:o}", "serviceAccountId", s->account_id, "name", s->name, "roles",
                     rp_roles_to_json(s->roles), "keyId", s->key_id, "expiresAt",
                     s->expires_at ? json_integer(s->expires_at) : json_null());
}

/* Reads a 200 reply into out; false when it is malformed. */
static bool from_json(json_t *body, rp_apikey_state_t *out) {
    const char *id = NULL, *name = NULL, *key_id = NULL;
    json_t *roles = NULL, *expires = NULL;
    memset(out, 0, sizeof *out);
    if (json_unpack(body, "{s:s, s:s, s:o, s:s, s:o}", "serviceAccountId", &id, "name", &name, "roles", &roles, "keyId",
                    &key_id, "expiresAt", &expires) != 0 ||
        !rp_oid_valid(id, strlen(id)) || !rp_oid_valid(key_id, strlen(key_id)) || strlen(name) >= sizeof out->name ||
        !rp_roles_from_json(roles, &out->roles, NULL) || !(json_is_null(expires) || json_is_integer(expires)))
        return false;
    snprintf(out->account_id, sizeof out->account_id, "%s", id);
    snprintf(out->name, sizeof out->name, "%s", name);
    snprintf(out->key_id, sizeof out->key_id, "%s", key_id);
    out->expires_at = json_is_integer(expires) ? json_integer_value(expires) : 0;
    return true;
}

bool rp_apikey_fetch(rp_transport_t *t, const char *hash, int64_t deadline_ms, const char *request_id,
                     rp_apikey_state_t *out, bool *found, char code[RP_APIKEY_CODE_LEN], rp_err_t *err) {
    rp_reply_t rep;
    rp_rpc_call_internal(t, RP_COMP_AUTH, "POST", RP_APIKEY_ROUTE, json_pack("{s:s}", "keyHash", hash), deadline_ms,
                         request_id, &rep);
    *found = false;
    code[0] = '\0';
    const char *refusal = json_string_value(json_object_get(json_object_get(rep.body, "error"), "code"));
    bool refused = rep.status == 404 && refusal &&
                   (strcmp(refusal, "INVALID_API_KEY") == 0 || strcmp(refusal, "API_KEY_REVOKED") == 0);
    bool ok = refused || (rep.status == 200 && from_json(rep.body, out));
    if (refused)
        snprintf(code, RP_APIKEY_CODE_LEN, "%s", refusal);
    else if (ok)
        *found = true;
    else
        rp_rpc_internal_err(&rep, "cannot check the API key", err);
    rp_reply_clear(&rep);
    return ok;
}
