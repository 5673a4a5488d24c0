/* service_accounts.h - the auth worker's service accounts and their API keys: create, list,
 * delete, rotate and revoke (ADMIN routes; auth_service.c checks the caller against the store
 * first), and the gateway's key look-up (apikey.h). The rules live here, above the store: which
 * roles a service account may hold, what a rotation's grace does, how many keys may be live, when
 * a key's last use is written, what is audited. Keys arrive as the hashes the api computed; no key
 * ever reaches this worker. Thread-safe: no state but the store's. */
#ifndef RP_WORKERS_AUTH_SERVICE_ACCOUNTS_H
#define RP_WORKERS_AUTH_SERVICE_ACCOUNTS_H

#include "auth_store.h"
#include "envelope.h"

/* The roles a service account may hold: never ADMIN, never USER (it is no player). */
#define RP_SERVICE_ROLES (RP_ROLE_GAME_SERVER | RP_ROLE_OPERATOR | RP_ROLE_AUDITOR)
/* The longest grace a rotation may give the keys it replaces: 7 days. */
#define RP_SERVICE_GRACE_MAX_S 604800

/* Each fills rep (initialised, empty) for env (borrowed) on store s at now (epoch ms). */

/* POST /auth/service-accounts {name, roles, keyHash}: 201 {id, name, roles, keyId} (the api adds
 * the key); 409 NAME_TAKEN; 400 VALIDATION_FAILED. Audited with the caller as actor. */
void rp_service_accounts_create(rp_auth_store_t *s, int64_t now, const rp_envelope_t *env, rp_reply_t *rep);
/* GET /auth/service-accounts?limit&cursor: {items: [{id, name, roles, createdAt, createdBy, keys:
 * [{keyId, createdAt, expiresAt, lastUsedAt}]}], nextCursor}; only live keys are listed. */
void rp_service_accounts_list(rp_auth_store_t *s, int64_t now, const rp_envelope_t *env, rp_reply_t *rep);
/* DELETE /auth/service-accounts/{id}: every key revoked and the account gone, in one unit of work:
 * 200 {id, deleted: true}; 404 SERVICE_ACCOUNT_NOT_FOUND. Audited. */
void rp_service_accounts_delete(rp_auth_store_t *s, int64_t now, const rp_envelope_t *env, rp_reply_t *rep);
/* POST /auth/service-accounts/{id}/keys {graceSeconds?, keyHash}: a new key; the live ones die now,
 * or after graceSeconds (0..RP_SERVICE_GRACE_MAX_S): 201 {id, name, roles, keyId}; 409
 * TOO_MANY_KEYS past RP_SERVICE_KEYS_MAX live keys; 404. Audited. */
void rp_service_accounts_rotate(rp_auth_store_t *s, int64_t now, const rp_envelope_t *env, rp_reply_t *rep);
/* DELETE /auth/service-accounts/{id}/keys/{keyId}: 200 {id, keyId, revoked: true} (again for a
 * key already revoked); 404 SERVICE_ACCOUNT_NOT_FOUND, KEY_NOT_FOUND. Audited. */
void rp_service_accounts_revoke(rp_auth_store_t *s, int64_t now, const rp_envelope_t *env, rp_reply_t *rep);
/* GET /auth/me of a caller that is a service account (signed in with a key): true with rep set to
 * 200 {id, name, roles, createdAt, type: "SERVICE_ACCOUNT"} (or the store's error); false, with
 * rep untouched, when id names no service account. */
bool rp_service_accounts_me(rp_auth_store_t *s, const char *id, rp_reply_t *rep);
/* RP_APIKEY_ROUTE (apikey.h): what a key hash stands for. Writes the key's last use when the
 * stored one is older than RP_APIKEY_TOUCH_MS. */
void rp_service_accounts_lookup(rp_auth_store_t *s, int64_t now, const rp_envelope_t *env, rp_reply_t *rep);

#endif
