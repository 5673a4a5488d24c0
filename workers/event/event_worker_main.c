/* event_worker_main.c - the event worker as a process of its own: consumes event.requests and asks the
 * auth worker, over the same transport, whether reported players have accounts. Run any number. */
#include "event_worker.h"
#include "process.h"

static bool open_worker(const rp_config_t *cfg, rp_transport_t *t, rp_worker_services_t *out, rp_err_t *err) {
    rp_event_worker_t *w = rp_event_worker_new(cfg, t, err);
    if (!w) return false;
    *out = (rp_worker_services_t){{rp_event_worker_service(w), NULL}, {RP_COMP_EVENT, RP_COMP_EVENT}, 1};
    return true;
}

int main(void) {
    return rp_process_run_worker("reward-event-worker", "event worker", open_worker);
}
