/* event_worker_main.c - the event worker as a process of its own: consumes event.rpc. Run any number. */
#include "event_worker.h"
#include "process.h"

int main(void) {
    rp_process_t proc;
    rp_err_t err;
    int rc = 0;
    if (!rp_process_start(&proc, "reward-event-worker", false, true)) return 1;
    rp_event_worker_t *w = rp_event_worker_new(&proc.cfg, &err);
    if (!w || !rp_transport_serve(proc.transport, RP_COMP_EVENT, rp_rpc_service_handler,
                                  (void *)rp_event_worker_service(w), proc.cfg.worker_threads, &err))
        rc = rp_process_fail(&proc, "event worker", &err);
    else
        rp_process_wait(&proc);
    rp_transport_stop(proc.transport);
    rp_event_worker_free(w);
    rp_process_end(&proc);
    return rc;
}
