/* auth_service.h - the auth worker: registration, login with lockout, access and refresh tokens,
 * the caller's account, and account administration. Thread-safe: handlers run concurrently. */
#ifndef RP_WORKERS_AUTH_SERVICE_H
#define RP_WORKERS_AUTH_SERVICE_H

#include "config.h"
#include "err.h"
#include "rpc.h"

typedef struct rp_auth_worker rp_auth_worker_t;

/* Opens the store named by cfg (STORE=sqlite: SQLITE_DIR/auth.db), creates the bootstrap admin
 * from cfg->admin_username/admin_password when no account has that name (never overwriting one),
 * and returns the worker. cfg is borrowed and must outlive it. Free with rp_auth_worker_free. */
rp_auth_worker_t *rp_auth_worker_new(const rp_config_t *cfg, rp_err_t *err);
/* The worker's service (name "auth") for rp_rpc_service_handler; borrowed. */
const rp_service_t *rp_auth_worker_service(rp_auth_worker_t *w);
/* The account lookups of the other workers (accounts.h), to serve as RP_COMP_ACCOUNTS; borrowed,
 * valid while w lives. */
const rp_service_t *rp_auth_worker_accounts_service(rp_auth_worker_t *w);
/* Register, login and password change (the operations that hash a password), to serve as
 * RP_COMP_LOGIN; borrowed, valid while w lives. */
const rp_service_t *rp_auth_worker_login_service(rp_auth_worker_t *w);
void rp_auth_worker_free(rp_auth_worker_t *w);

/* Tests only: replaces the clock (epoch ms) the worker uses for lockout and token expiry. */
void rp_auth_worker_set_clock(rp_auth_worker_t *w, int64_t (*now_ms)(void));
/* Tests only: the worker's hasher (password.h), borrowed, valid while w lives. */
struct rp_hasher *rp_auth_worker_hasher(rp_auth_worker_t *w);

#endif
