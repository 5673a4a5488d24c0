/* grant_worker_main.c - the reward-grant worker as a process of its own: consumes reward.requests and
 * the batch items on reward.grant, sweeps unsettled batch items and relays the outbox.
 * Run any number: exactly-once comes from the store's transaction, not from having one worker. */
#include <stdio.h>
#include <unistd.h>

#include "process.h"
#include "reward_service.h"

int main(void) {
    rp_process_t proc;
    rp_err_t err;
    int rc = 0;
    if (!rp_process_start(&proc, "reward-grant-worker", false, true)) return 1;
    char owner[64];
    snprintf(owner, sizeof owner, "grant-worker-%ld", (long)getpid());
    rp_reward_worker_t *w = rp_reward_worker_new(&proc.cfg, NULL, &err);
    if (!w || !rp_process_serve(&proc, RP_COMP_REWARD, rp_reward_worker_service(w), &err) ||
        !rp_reward_worker_run_batches(w, proc.transport, &err))
        rc = rp_process_fail(&proc, "reward worker", &err);
    else if (!rp_reward_worker_run_relay(w, owner, &err))
        rc = rp_process_fail(&proc, "outbox relay", &err);
    else
        rp_process_wait(&proc);
    rp_transport_stop(proc.transport);
    rp_reward_worker_free(w);
    rp_process_end(&proc);
    return rc;
}
