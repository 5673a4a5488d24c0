/* api_main.c - the HTTP front end as a process of its own (TRANSPORT=amqp): it owns no business
 * data and sends every request to the worker queues on RabbitMQ. */
#include "gateway.h"
#include "process.h"

int main(void) {
    rp_process_t proc;
    rp_err_t err;
    if (!rp_process_start(&proc, "reward-api", false, true)) return 1;
    /* every call connection opened before the first request: a burst would otherwise open them
     * (several broker round trips and a queue each) while its calls wait */
    rp_process_open_calls(&proc, proc.cfg.rpc_connections);
    rp_gateway_t *gw = rp_gateway_open(&proc.cfg, proc.transport, &err);
    if (!gw) {
        int rc = rp_process_fail(&proc, "gateway", &err);
        rp_process_end(&proc);
        return rc;
    }
    rp_process_wait(&proc);
    rp_gateway_stop(gw);
    rp_transport_stop(proc.transport); /* the caches' calls still waiting give up */
    rp_gateway_free(gw);
    rp_process_end(&proc);
    return 0;
}
