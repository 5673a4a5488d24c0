/* platform_main.c - the embedded platform in one process: the gateway plus every worker on the
 * in-process transport and the SQLite stores. Started by `make run`. */
#include <civetweb.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/auth_service.h"
#include "event/event_worker.h"
#include "reward/reward_service.h"
#include "config.h"
#include "gateway.h"
#include "log.h"
#include "roles.h"
#include "routes.h"
#include "rpc.h"
#include "schema_registry.h"
#include "transport.h"

static int fail(const char *what, const rp_err_t *err) {
    fprintf(stderr, "reward-platform: %s: %s\n", what, err->message);
    return 1;
}

/* --routes: the route table as JSON, so tests can derive the access matrix from the one place
 * where access rules live instead of restating them. */
static int print_routes(void) {
    size_t n;
    const rp_api_route_t *t = rp_routes_table(&n);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:b, s:o}", "method", t[i].method, "pattern",
                                             t[i].pattern, "component",
                                             t[i].component < 0 ? "api" : rp_component_name((rp_component_t)t[i].component),
                                             "public", t[i].is_public, "roles",
                                             t[i].roles ? rp_roles_to_json(t[i].roles) : json_null()));
    char *text = json_dumps(arr, JSON_INDENT(1));
    printf("%s\n", text);
    free(text);
    json_decref(arr);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--routes") == 0) return print_routes();
    rp_config_t cfg;
    rp_err_t err;
    rp_transport_t *transport = NULL;
    rp_auth_worker_t *auth = NULL;
    rp_event_worker_t *events = NULL;
    rp_reward_worker_t *rewards = NULL;
    rp_gateway_t *gw = NULL;
    rp_schema_registry_t *schemas = NULL;
    int rc = 1;
    sigset_t stop_signals;

    rp_err_clear(&err);
    if (!rp_config_load_env(&cfg, &err)) return fail("refusing to start", &err);
    if (sodium_init() < 0) {
        fprintf(stderr, "reward-platform: libsodium failed to initialise\n");
        return 1;
    }
    rp_log_set_level((rp_log_level_t)cfg.log_level);
    rp_log_set_component("platform");
    if (strcmp(cfg.transport, "inproc") != 0) {
        fprintf(stderr, "reward-platform: the all-in-one binary runs TRANSPORT=inproc only\n");
        return 1;
    }
    if (mkdir(cfg.sqlite_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "reward-platform: cannot create SQLITE_DIR %s: %s\n", cfg.sqlite_dir, strerror(errno));
        return 1;
    }

    /* civetweb and worker threads inherit this mask; signals are taken by sigwait below */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    mg_init_library(0);

    schemas = rp_schema_registry_new(&err);
    if (!schemas) {
        rc = fail("schemas", &err);
        goto done;
    }
    transport = rp_transport_inproc_new(cfg.queue_capacity);
    auth = rp_auth_worker_new(&cfg, &err);
    if (!auth) {
        rc = fail("auth worker", &err);
        goto done;
    }
    if (!rp_transport_serve(transport, RP_COMP_AUTH, rp_rpc_service_handler, (void *)rp_auth_worker_service(auth),
                            cfg.worker_threads, &err)) {
        rc = fail("auth worker", &err);
        goto done;
    }
    events = rp_event_worker_new(&cfg, &err);
    if (!events || !rp_transport_serve(transport, RP_COMP_EVENT, rp_rpc_service_handler,
                                       (void *)rp_event_worker_service(events), cfg.worker_threads, &err)) {
        rc = fail("event worker", &err);
        goto done;
    }
    rewards = rp_reward_worker_new(&cfg, rp_event_worker_repo(events), &err);
    if (!rewards || !rp_transport_serve(transport, RP_COMP_REWARD, rp_rpc_service_handler,
                                        (void *)rp_reward_worker_service(rewards), cfg.worker_threads, &err)) {
        rc = fail("reward worker", &err);
        goto done;
    }
    gw = rp_gateway_start(&cfg, transport, rp_schema_registry_validate, schemas, &err);
    if (!gw) {
        rc = fail("gateway", &err);
        goto done;
    }
    rp_log(RP_LOG_INFO, "main", "platform ready (embedded: inproc transport, %s store in %s)", cfg.store,
           cfg.sqlite_dir);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    rp_log(RP_LOG_INFO, "main", "signal %d: shutting down", sig);
    rc = 0;
done:
    rp_gateway_stop(gw);
    rp_transport_stop(transport);
    rp_reward_worker_free(rewards);
    rp_event_worker_free(events);
    rp_auth_worker_free(auth);
    rp_transport_free(transport);
    rp_schema_registry_free(schemas);
    mg_exit_library();
    return rc;
}
