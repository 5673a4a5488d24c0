/* auth_worker_main.c - the auth worker as a process of its own: consumes auth.rpc (the api's
 * calls) and accounts.rpc (the other workers' account lookups). Run any number. */
#include "auth_service.h"
#include "process.h"

int main(void) {
    rp_process_t proc;
    rp_err_t err;
    int rc = 0;
    if (!rp_process_start(&proc, "reward-auth-worker", false, true)) return 1;
    rp_err_clear(&err);
    rp_auth_worker_t *w = rp_auth_worker_new(&proc.cfg, &err);
    if (!w || !rp_process_serve(&proc, RP_COMP_AUTH, rp_auth_worker_service(w), &err) ||
        !rp_process_serve(&proc, RP_COMP_ACCOUNTS, rp_auth_worker_accounts_service(w), &err))
        rc = rp_process_fail(&proc, "auth worker", &err);
    else
        rp_process_wait(&proc);
    rp_transport_stop(proc.transport); /* no handler runs past this: the worker can go */
    rp_auth_worker_free(w);
    rp_process_end(&proc);
    return rc;
}
