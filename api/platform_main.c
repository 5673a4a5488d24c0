/* platform_main.c - the embedded platform in one process: the gateway plus every worker on the
 * in-process transport and the SQLite stores. Started by `make run`. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_service.h"
#include "event/event_worker.h"
#include "reward/reward_service.h"
#include "config.h"
#include "process.h"
#include "gateway.h"
#include "roles.h"
#include "routes.h"
#include "rpc.h"
#include "transport.h"

/* --routes: the route table as JSON, so tests can derive the access matrix from the one place
 * where access rules live instead of restating them. */
static int print_routes(void) {
    size_t n;
    const rp_api_route_t *t = rp_routes_table(&n);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:s, s:b, s:o}", "method", t[i].method, "pattern", t[i].pattern, "component",
                           t[i].component < 0 ? "api" : rp_component_name((rp_component_t)t[i].component), "public",
                           t[i].is_public, "roles", t[i].roles ? rp_roles_to_json(t[i].roles) : json_null()));
    char *text = json_dumps(arr, JSON_INDENT(1));
    printf("%s\n", text);
    free(text);
    json_decref(arr);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--routes") == 0) return print_routes();
    rp_process_t proc;
    rp_err_t err;
    rp_auth_worker_t *auth = NULL;
    rp_event_worker_t *events = NULL;
    rp_reward_worker_t *rewards = NULL;
    rp_gateway_t *gw = NULL;
    int rc = 1;
    if (!rp_process_start(&proc, "reward-platform", true, false)) return 1;
    const rp_config_t *cfg = &proc.cfg;
    rp_err_clear(&err);
    if (!(auth = rp_auth_worker_new(cfg, &err)) ||
        !rp_process_serve(&proc, RP_COMP_AUTH, rp_auth_worker_service(auth), &err) ||
        !rp_process_serve(&proc, RP_COMP_ACCOUNTS, rp_auth_worker_accounts_service(auth), &err) ||
        !rp_process_serve(&proc, RP_COMP_LOGIN, rp_auth_worker_login_service(auth), &err)) {
        rc = rp_process_fail(&proc, "auth worker", &err);
        goto done;
    }
    if (!(events = rp_event_worker_new(cfg, proc.transport, &err)) ||
        !rp_process_serve(&proc, RP_COMP_EVENT, rp_event_worker_service(events), &err)) {
        rc = rp_process_fail(&proc, "event worker", &err);
        goto done;
    }
    if (!(rewards = rp_reward_worker_new(cfg, rp_event_worker_repo(events), &err)) ||
        !rp_process_serve(&proc, RP_COMP_REWARD, rp_reward_worker_service(rewards), &err) ||
        !rp_reward_worker_run_batches(rewards, proc.transport, &err)) {
        rc = rp_process_fail(&proc, "reward worker", &err);
        goto done;
    }
    if (!(gw = rp_gateway_open(cfg, proc.transport, &err))) {
        rc = rp_process_fail(&proc, "gateway", &err);
        goto done;
    }
    rp_process_wait(&proc);
    rc = 0;
done:
    rp_gateway_stop(gw);
    rp_transport_stop(proc.transport);
    rp_gateway_free(gw);
    rp_reward_worker_free(rewards);
    rp_event_worker_free(events);
    rp_auth_worker_free(auth);
    rp_process_end(&proc);
    return rc;
}
