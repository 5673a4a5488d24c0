/* process.c - process start-up and shutdown shared by every executable (see process.h). */
#include "process.h"

#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "memory.h"
#include "sqlite_util.h"
#include "timeutil.h"

/* glibc raises its mmap threshold to the size of every large block freed (up to 32 MiB): after one
 * login's 12 MiB argon2id area, a batch's multi-megabyte bodies and dumps were carved from the
 * thread arenas and stayed there, fragmented, after they were freed (the embedded process held
 * 89 MiB after a 100,000-player batch against a 40 MiB heap peak). A fixed threshold sends every
 * block of 128 KiB or more to mmap, so freeing it gives the memory back. */
#define MMAP_THRESHOLD (128 * 1024)

/* glibc gives threads up to 8 arenas per core (16 here), and each keeps the free memory of what
 * its threads allocated. With 64 grant slots and 16 consumer threads per grant worker, a
 * 100,000-player batch peaked at 62-65 MiB in the embedded process and 72-76 MiB in a grant
 * worker; with 4 arenas at 53-55 MiB embedded, for 5-14 % of claims and about 10 % of GET
 * /auth/me (2 arenas: 50 MiB, claims 16 % slower from contention on the arenas' locks;
 * bench/README.md). MALLOC_ARENA_MAX in the environment still decides when set. */
#define MALLOC_ARENAS 4

bool rp_process_start(rp_process_t *p, const char *name, bool allow_inproc, bool allow_amqp) {
    rp_err_t err;
    memset(p, 0, sizeof *p);
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    if (!getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, MALLOC_ARENAS);
    p->name = name;
    rp_err_clear(&err);
    if (!rp_config_load_env(&p->cfg, &err)) {
        fprintf(stderr, "%s: refusing to start: %s\n", name, err.message);
        return false;
    }
    bool amqp = strcmp(p->cfg.transport, "amqp") == 0;
    if ((amqp && !allow_amqp) || (!amqp && !allow_inproc)) {
        fprintf(stderr, "%s: refusing to start: this executable runs TRANSPORT=%s only\n", name,
                allow_amqp ? "amqp" : "inproc");
        return false;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "%s: libsodium failed to initialise\n", name);
        return false;
    }
    rp_log_set_level((rp_log_level_t)p->cfg.log_level);
    rp_sqlite_set_cache_kib(p->cfg.sqlite_cache_kib);
    rp_log_set_component(name);
    if (strcmp(p->cfg.store, "sqlite") == 0 && mkdir(p->cfg.sqlite_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: cannot create SQLITE_DIR %s: %s\n", name, p->cfg.sqlite_dir, strerror(errno));
        return false;
    }
    /* every thread started from here on inherits the mask; the signals are taken by the main
     * thread's sigtimedwait (rp_process_wait) */
    sigemptyset(&p->signals);
    sigaddset(&p->signals, SIGINT);
    sigaddset(&p->signals, SIGTERM);
    sigaddset(&p->signals, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &p->signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    p->transport = amqp ? rp_transport_amqp_new(p->cfg.amqp_url, p->cfg.amqp_prefetch, p->cfg.rpc_connections,
                                                p->cfg.amqp_reply_spin_us, &err)
                        : rp_transport_inproc_new(p->cfg.queue_capacity);
    if (!p->transport) {
        fprintf(stderr, "%s: transport: %s\n", name, err.message);
        return false;
    }
    if (amqp) rp_transport_amqp_bundle(p->transport, p->cfg.rpc_bundle_max, p->cfg.rpc_bundle_lanes);
    return true;
}

int rp_process_fail(const rp_process_t *p, const char *what, const rp_err_t *err) {
    fprintf(stderr, "%s: %s: %s\n", p->name, what, err->message);
    return 1;
}

bool rp_process_serve(rp_process_t *p, rp_component_t comp, const rp_service_t *svc, rp_err_t *err) {
    /* A claim spends most of its call waiting for its group commit, and the more claims wait
     * together the more share one commit (bench/README.md), so the reward component takes more
     * calls at once than the others; its SQLite readers stay WORKER_THREADS-sized. */
    int threads = comp == RP_COMP_REWARD ? p->cfg.grant_concurrency : p->cfg.worker_threads;
    return rp_transport_serve(p->transport, comp, rp_rpc_service_handler, (void *)svc, threads, err);
}

void rp_process_open_calls(rp_process_t *p, int n) {
    rp_err_t err;
    if (!rp_transport_amqp_connect(p->transport, n, &err)) /* it stops at RPC_CONNECTIONS itself */
        rp_log(RP_LOG_WARN, "main", "the broker's call connections open on first use: %s", err.message);
}

int rp_process_run_worker(const char *name, const char *what, rp_worker_open_fn open) {
    rp_process_t proc;
    rp_err_t err;
    rp_worker_services_t w = {{NULL, NULL}, {RP_COMP_AUTH, RP_COMP_AUTH}, 0};
    if (!rp_process_start(&proc, name, false, true)) return 1;
    rp_err_clear(&err);
    /* A worker calls out (account look-ups) from its RPC and batch consumer threads, at most
     * two per worker thread at once: those connections are opened now, like the pools', so that
     * the first moment that many calls overlap does not add a connection and its buffers (the
     * soak saw grant workers grow in such steps, one descriptor each). */
    rp_process_open_calls(&proc, 2 * proc.cfg.worker_threads + 2);
    bool ok = open(&proc.cfg, proc.transport, &w, &err);
    for (size_t i = 0; ok && i < w.n; i++)
        ok = rp_process_serve(&proc, w.comps[i], w.services[i], &err);
    int rc = ok ? 0 : rp_process_fail(&proc, what, &err);
    if (ok) rp_process_wait(&proc);
    rp_transport_stop(proc.transport); /* no handler runs past this: the worker can go */
    rp_service_free(w.services[0]);
    rp_process_end(&proc);
    return rc;
}

/* How often the main thread hands freed heap memory back to the system. Blocks under the mmap
 * threshold are carved from the arena of the thread that asked, and glibc returns an arena's free
 * pages only from its top: after each 5,000-player batch a grant worker's arenas held 10 MiB more
 * free memory (measured with mallinfo2 every 5 s in a cluster soak: in use 7-8 MiB throughout,
 * free 2.9 -> 10 -> 20 MiB at the batches), which the soak saw as growth. malloc_trim(0) releases
 * every whole free page of every arena (MADV_DONTNEED); it takes each arena's lock for about a
 * millisecond. */
#define TRIM_EVERY_S 10

/* SIGUSR1: one "memory" line in the log, whatever LOG_LEVEL says: the heap in use now and its
 * highest since the previous report (sampled every second), the arenas' free memory, the
 * resident set, and what SQLite holds of that heap (page caches, statements, schemas) with what
 * its page caches may fill to. What a leak shows is the heap in use; the resident set also holds
 * the arenas' free memory, which swings with the work in flight, and SQLite's page caches fill up
 * to their bound as the files grow (bench/README.md, the soak). Over RabbitMQ, also what the
 * broker connections did with long messages, whose pages a connection keeps until it is opened
 * again (lib/amqp_util.h). */
static void report_memory(const rp_transport_t *t, const rp_memory_t *now, size_t peak) {
    rp_sqlite_memory_t sq;
    rp_sqlite_memory_read(&sq);
    json_t *line =
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "pid", (json_int_t)getpid(), "heapInUseBytes",
                  (json_int_t)now->heap_in_use, "heapInUsePeakBytes", (json_int_t)peak, "heapMmappedBytes",
                  (json_int_t)now->heap_mmapped, "heapFreeBytes", (json_int_t)now->heap_free, "residentBytes",
                  (json_int_t)now->resident, "sqliteCacheBytes", (json_int_t)sq.cache, "sqliteStatementBytes",
                  (json_int_t)sq.statements, "sqliteSchemaBytes", (json_int_t)sq.schemas, "sqliteCacheBoundBytes",
                  (json_int_t)sq.cache_bound);
    rp_amqp_stats_t amqp;
    if (rp_transport_amqp_stats(t, &amqp)) {
        json_object_set_new(line, "amqpReopenedCalls", json_integer(amqp.reopened_calls));
        json_object_set_new(line, "amqpReopenedConsumers", json_integer(amqp.reopened_consumers));
        json_object_set_new(line, "amqpLongReplyConnections", json_integer(amqp.long_reply_conns));
    }
    rp_log_report("memory", line);
}

/* SIGUSR1 too: one "sqlite_writes" line, what this process's SQLite writers did since it started
 * (rp_sqlite_writes_read): a grant worker serves no /metrics, where the api shows the same. */
static void report_writes(void) {
    rp_sqlite_writes_t w;
    rp_sqlite_writes_read(&w);
    json_t *line = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "pid", (json_int_t)getpid(), "groups",
                             (json_int_t)w.groups, "writes", (json_int_t)w.writes, "waitUs", (json_int_t)w.wait_us,
                             "checkpointsByCheckpointer", (json_int_t)w.checkpoints_thread, "checkpointsByWriter",
                             (json_int_t)w.checkpoints_writer, "writerCheckpointUs", (json_int_t)w.checkpoint_us);
    json_t *buckets = json_array();
    for (int k = 0; k < RP_SQLITE_WAIT_BUCKETS; k++)
        json_array_append_new(buckets, json_integer((json_int_t)w.wait_buckets[k]));
    json_object_set_new(line, "waitBuckets", buckets); /* per bucket of RP_SQLITE_WAIT_BOUNDS_MS, the last unbounded */
    rp_log_report("sqlite_writes", line);
}

void rp_process_wait(rp_process_t *p) {
    rp_log(RP_LOG_INFO, "main", "%s ready (%s transport, %s store)", p->name, p->cfg.transport, p->cfg.store);
    rp_memory_t now;
    rp_memory_read(&now);
    size_t peak = now.heap_in_use;
    int64_t trimmed_ms = rp_mono_ms();
    for (;;) {
        struct timespec second = {1, 0};
        int sig = sigtimedwait(&p->signals, NULL, &second);
        if (sig == SIGINT || sig == SIGTERM) {
            rp_log(RP_LOG_INFO, "main", "signal %d: shutting down", sig);
            return;
        }
        /* a second passed (EAGAIN), an unrelated signal interrupted (EINTR), or SIGUSR1 */
        if (rp_mono_ms() - trimmed_ms >= TRIM_EVERY_S * 1000) {
            malloc_trim(0);
            trimmed_ms = rp_mono_ms();
        }
        if (sig == SIGUSR1)
            rp_memory_read(&now); /* the report gives the resident set too */
        else
            rp_memory_read_heap(&now);
        if (now.heap_in_use > peak) peak = now.heap_in_use;
        if (sig == SIGUSR1) {
            report_memory(p->transport, &now, peak);
            report_writes();
            peak = now.heap_in_use;
        }
    }
}

void rp_process_end(rp_process_t *p) {
    rp_transport_stop(p->transport);
    rp_transport_free(p->transport);
    p->transport = NULL;
}
