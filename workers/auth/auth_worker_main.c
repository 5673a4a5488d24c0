/* auth_worker_main.c - the auth worker as a process of its own: consumes auth.rpc. Run any number. */
#include "auth_service.h"
#include "process.h"

static const rp_service_t *open_worker(const rp_config_t *cfg, rp_err_t *err) {
    rp_auth_worker_t *w = rp_auth_worker_new(cfg, err);
    return w ? rp_auth_worker_service(w) : NULL;
}

int main(void) {
    return rp_process_run_worker("reward-auth-worker", "auth worker", RP_COMP_AUTH, open_worker);
}
