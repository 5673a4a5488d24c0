/* process.h - what every executable of the platform does around its real work: configuration
 * (refusing to start with a one-line reason), libsodium, logging, the data directory, signal
 * handling for a clean stop, and the transport named by TRANSPORT. One per process. */
#ifndef RP_LIB_PROCESS_H
#define RP_LIB_PROCESS_H

#include <signal.h>
#include <stdbool.h>

#include "config.h"
#include "err.h"
#include "rpc.h"
#include "transport.h"

typedef struct rp_process {
    const char *name; /* e.g. "reward-api", used in messages and logs */
    rp_config_t cfg;
    sigset_t signals;          /* blocked in every thread, taken by rp_process_wait */
    rp_transport_t *transport; /* owned */
} rp_process_t;

/* Starts the process. allow_inproc / allow_amqp say which TRANSPORT values the executable
 * supports. On failure prints "<name>: <reason>" to stderr and returns false. Must run before
 * any thread is created (the signal mask is inherited). */
bool rp_process_start(rp_process_t *p, const char *name, bool allow_inproc, bool allow_amqp);
/* Prints "<name>: <what>: <reason>" and returns 1 (an exit status). */
int rp_process_fail(const rp_process_t *p, const char *what, const rp_err_t *err);
/* amqp: opens n of the process's call connections (at most RPC_CONNECTIONS) before it serves, so
 * that the first burst of calls does not wait for them to be set up; a broker that cannot be
 * reached is logged and the connections open on first use. */
void rp_process_open_calls(rp_process_t *p, int n);
/* Serves svc (borrowed until the transport stops) as component comp on the process's transport,
 * with WORKER_THREADS threads. */
bool rp_process_serve(rp_process_t *p, rp_component_t comp, const rp_service_t *svc, rp_err_t *err);
/* What a worker process serves: services[i] as comps[i]. services[0] owns the worker (freed with
 * rp_service_free); the others are borrowed from it. */
typedef struct rp_worker_services {
    const rp_service_t *services[3];
    rp_component_t comps[3];
    size_t n;
} rp_worker_services_t;
/* Opens a worker from cfg (borrowed, outlives it) with the process's transport t (for its calls
 * to other workers) and fills out; false with err when it cannot open. */
typedef bool (*rp_worker_open_fn)(const rp_config_t *cfg, rp_transport_t *t, rp_worker_services_t *out, rp_err_t *err);
/* The whole life of a process that runs one worker (TRANSPORT=amqp): starts as name, opens the
 * worker (what names it in messages), serves what it offers until SIGINT or SIGTERM, then stops
 * the transport and frees the worker. Returns the exit status. */
int rp_process_run_worker(const char *name, const char *what, rp_worker_open_fn open);
/* Blocks until SIGINT or SIGTERM. Meanwhile, every second, samples the heap in use (its peak is
 * reported on SIGUSR1: a "memory" line in the log) and every 10 s hands whole free pages of the
 * malloc arenas back to the system. */
void rp_process_wait(rp_process_t *p);
/* Stops and frees the transport. */
void rp_process_end(rp_process_t *p);

#endif
