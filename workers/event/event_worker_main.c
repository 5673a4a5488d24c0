/* event_worker_main.c - the event worker as a process of its own: consumes event.rpc and asks the
 * auth worker, over the same transport, whether reported players have accounts. Run any number. */
#include "event_worker.h"
#include "process.h"

int main(void) {
    rp_process_t proc;
    rp_err_t err;
    int rc = 0;
    if (!rp_process_start(&proc, "reward-event-worker", false, true)) return 1;
    rp_err_clear(&err);
    rp_event_worker_t *w = rp_event_worker_new(&proc.cfg, proc.transport, &err);
    if (!w || !rp_process_serve(&proc, RP_COMP_EVENT, rp_event_worker_service(w), &err))
        rc = rp_process_fail(&proc, "event worker", &err);
    else
        rp_process_wait(&proc);
    rp_transport_stop(proc.transport); /* no handler runs past this: the worker can go */
    rp_event_worker_free(w);
    rp_process_end(&proc);
    return rc;
}
