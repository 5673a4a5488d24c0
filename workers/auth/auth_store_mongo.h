/* auth_store_mongo.h - the auth repository (auth_store.h) on MongoDB; thread-safe.
 *
 * Collections (ids as string _id, times as BSON dates, see lib/mongo_util.h):
 *   users           {_id, username, usernameLower, email, emailLower, passwordHash, roles, createdAt,
 *                    updatedAt, tokenVersion, disabled, disabledReason, disabledAt}; unique
 *                    usernameLower, unique emailLower; the last four may be absent (0, false)
 *   refresh_tokens  {_id, userId, familyId, tokenHash, createdAt, expiresAt, usedAt, revokedAt};
 *                    unique tokenHash, familyId, userId
 *   login_failures  {_id, userId, at}; (userId, at)
 *   revoked_access  {_id: jti, userId, expiresAt}; (userId, expiresAt)
 *   auth_guards     {_id: "admins", n}: written by every transaction that changes who is an
 *                    enabled ADMIN, so that two of them conflict (no write skew)
 *   audit_logs      shared with the event store, entries tagged log: "auth"
 * Units of work, refresh rotation and failure bookkeeping run in multi-document transactions,
 * so the server must be a replica set. */
#ifndef RP_WORKERS_AUTH_STORE_MONGO_H
#define RP_WORKERS_AUTH_STORE_MONGO_H

#include "auth_store.h"
#include "err.h"

/* Connects a client pool to uri (a MongoDB connection string; its options such as maxPoolSize,
 * serverSelectionTimeoutMS and credentials apply), checks that the server is a replica set and
 * creates the indexes. Returns a new store, free with its ops->free; NULL with err on failure:
 * 500 CONFIG_INVALID (bad URI), 503 STORE_UNAVAILABLE (no server, not a replica set), 500
 * STORE_ERROR (index creation refused). */
rp_auth_store_t *rp_auth_store_mongo_open(const char *uri, const char *db_name, rp_err_t *err);

#endif
