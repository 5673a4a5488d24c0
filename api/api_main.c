/* api_main.c - the HTTP front end as a process of its own (TRANSPORT=amqp): it owns no business
 * data and sends every request to the worker queues on RabbitMQ. */
#include "gateway.h"
#include "process.h"

int main(void) {
    rp_process_t proc;
    rp_err_t err;
    if (!rp_process_start(&proc, "reward-api", false, true)) return 1;
    rp_gateway_t *gw = rp_gateway_open(&proc.cfg, proc.transport, &err);
    if (!gw) {
        int rc = rp_process_fail(&proc, "gateway", &err);
        rp_process_end(&proc);
        return rc;
    }
    rp_process_wait(&proc);
    rp_gateway_stop(gw);
    rp_process_end(&proc);
    return 0;
}
