/* token.c - JWT issue/verify (see token.h); libjwt 1.10 checks only the signature, so the
 * algorithm and every claim are checked here. */
#include "token.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "mem.h"
#include "roles.h"

char *rp_token_issue(const unsigned char *secret, size_t secret_len, const rp_identity_t *who, int64_t ver,
                     int64_t now_s, int64_t ttl_s, rp_err_t *err) {
    jwt_t *j = NULL;
    char *out = NULL, *roles_text = NULL;
    char jti[RP_JTI_LEN];
    json_t *extra = NULL;
    if (secret_len < 32 || jwt_new(&j) != 0) {
        rp_err_set(err, RP_ERR_INTERNAL, "INTERNAL", "cannot create a token");
        goto done;
    }
    rp_random_hex(jti, 16);
    /* jwt_add_grant_int takes a long: the version goes in as JSON, so it keeps all 64 bits */
    extra = json_pack("{s:o, s:I}", "roles", rp_roles_to_json(who->roles), "ver", (json_int_t)ver);
    roles_text = json_dumps(extra, JSON_COMPACT);
    if (!roles_text || jwt_add_grant(j, "sub", who->id) || jwt_add_grant(j, "username", who->username) ||
        jwt_add_grant(j, "jti", jti) || jwt_add_grant_int(j, "iat", (long)now_s) ||
        jwt_add_grant_int(j, "exp", (long)(now_s + ttl_s)) || jwt_add_grants_json(j, roles_text) ||
        jwt_set_alg(j, JWT_ALG_HS256, secret, (int)secret_len)) {
        rp_err_set(err, RP_ERR_INTERNAL, "INTERNAL", "cannot build the token");
        goto done;
    }
    out = jwt_encode_str(j);
    if (!out) rp_err_set(err, RP_ERR_INTERNAL, "INTERNAL", "cannot sign the token");
done:
    free(roles_text);
    json_decref(extra);
    jwt_free(j);
    return out;
}

/* The header is decoded here as well: a token must name HS256 itself, whatever libjwt infers. */
static bool header_is_hs256(const char *token, size_t len) {
    const char *dot = memchr(token, '.', len);
    if (!dot || dot == token) return false;
    size_t n = (size_t)(dot - token);
    unsigned char *raw = rp_malloc(n);
    size_t rawlen = 0;
    bool ok = false;
    if (sodium_base642bin(raw, n, token, n, NULL, &rawlen, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0) {
        json_t *h = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, NULL);
        const char *alg = json_string_value(json_object_get(h, "alg"));
        ok = alg && strcmp(alg, "HS256") == 0;
        json_decref(h);
    }
    free(raw);
    return ok;
}

/* The claim ver: a non-negative integer; false when missing or anything else. */
static bool version_claim(jwt_t *j, int64_t *ver) {
    char *text = jwt_get_grants_json(j, "ver");
    json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    bool ok = json_is_integer(v) && json_integer_value(v) >= 0;
    *ver = ok ? (int64_t)json_integer_value(v) : 0;
    json_decref(v);
    free(text);
    return ok;
}

bool rp_token_verify(const unsigned char *secret, size_t secret_len, const char *token, size_t len, int64_t now_s,
                     rp_identity_t *who, rp_token_claims_t *claims, rp_err_t *err) {
    jwt_t *j = NULL;
    char *copy = NULL, *roles_text = NULL;
    json_t *roles = NULL;
    bool ok = false;
    int64_t ver = 0;
    memset(who, 0, sizeof *who);
    if (claims) memset(claims, 0, sizeof *claims);
    if (!secret || secret_len < 32 || len == 0 || len > RP_TOKEN_MAX_LEN || memchr(token, '\0', len)) {
        rp_err_set(err, RP_ERR_UNAUTHENTICATED, "INVALID_TOKEN", "the access token is malformed");
        goto done;
    }
    if (!header_is_hs256(token, len)) {
        rp_err_set(err, RP_ERR_UNAUTHENTICATED, "INVALID_TOKEN", "the access token must be signed with HS256");
        goto done;
    }
    copy = rp_strndup(token, len);
    if (jwt_decode(&j, copy, secret, (int)secret_len) != 0 || !j || jwt_get_alg(j) != JWT_ALG_HS256) {
        rp_err_set(err, RP_ERR_UNAUTHENTICATED, "INVALID_TOKEN", "the access token signature is invalid");
        goto done;
    }
    errno = 0;
    long exp = jwt_get_grant_int(j, "exp");
    if (errno != 0) {
        rp_err_set(err, RP_ERR_UNAUTHENTICATED, "INVALID_TOKEN", "the access token has no expiry");
        goto done;
    }
    if ((int64_t)exp <= now_s) {
        rp_err_set(err, RP_ERR_UNAUTHENTICATED, "TOKEN_EXPIRED", "the access token has expired");
        goto done;
    }
    const char *sub = jwt_get_grant(j, "sub");
    const char *username = jwt_get_grant(j, "username");
    const char *jti = jwt_get_grant(j, "jti");
    roles_text = jwt_get_grants_json(j, "roles");
    roles = roles_text ? json_loads(roles_text, 0, NULL) : NULL;
    if (!sub || !username || !rp_oid_valid(sub, strlen(sub)) || strlen(username) >= sizeof who->username ||
        !rp_roles_from_json(roles, &who->roles, NULL) || !jti || !jti[0] || strlen(jti) >= RP_JTI_LEN ||
        !version_claim(j, &ver)) {
        rp_err_set(err, RP_ERR_UNAUTHENTICATED, "INVALID_TOKEN", "the access token claims are invalid");
        goto done;
    }
    memcpy(who->id, sub, RP_OID_LEN);
    memcpy(who->username, username, strlen(username) + 1);
    who->authenticated = true;
    if (claims) {
        claims->ver = ver;
        claims->exp = (int64_t)exp;
        memcpy(claims->jti, jti, strlen(jti) + 1);
    }
    ok = true;
done:
    if (!ok) memset(who, 0, sizeof *who);
    if (!ok && claims) memset(claims, 0, sizeof *claims);
    json_decref(roles);
    free(roles_text);
    free(copy);
    jwt_free(j);
    return ok;
}
