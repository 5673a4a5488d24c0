/* event_worker_main.c - the event worker as a process of its own: consumes event.rpc. Run any number. */
#include "event_worker.h"
#include "process.h"

static const rp_service_t *open_worker(const rp_config_t *cfg, rp_err_t *err) {
    rp_event_worker_t *w = rp_event_worker_new(cfg, err);
    return w ? rp_event_worker_service(w) : NULL;
}

int main(void) {
    return rp_process_run_worker("reward-event-worker", "event worker", RP_COMP_EVENT, open_worker);
}
