/* auth_worker_main.c - the auth worker as a process of its own: consumes auth.requests and
 * login.requests (the api's calls; login.requests those that hash a password) and
 * accounts.requests (the other workers' account lookups). Run any number. */
#include "auth_service.h"
#include "process.h"

static bool open_worker(const rp_config_t *cfg, rp_transport_t *t, rp_worker_services_t *out, rp_err_t *err) {
    (void)t;
    rp_auth_worker_t *w = rp_auth_worker_new(cfg, err);
    if (!w) return false;
    *out = (rp_worker_services_t){
        {rp_auth_worker_service(w), rp_auth_worker_accounts_service(w), rp_auth_worker_login_service(w)},
        {RP_COMP_AUTH, RP_COMP_ACCOUNTS, RP_COMP_LOGIN},
        3};
    return true;
}

int main(void) {
    return rp_process_run_worker("reward-auth-worker", "auth worker", open_worker);
}
