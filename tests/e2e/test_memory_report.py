"""Memory figures (issue 10, the soak's verdict): every process answers SIGUSR1 with one "memory"
line in its log (and one "sqlite_writes" line after it), whatever LOG_LEVEL says (the heap in use now and its highest since the previous
report, the arenas' free memory, the resident set, and what SQLite holds of the heap); the api's
/metrics gauges of the same are tested in test_edge_metrics.py. The soak judges leaks on the heap
in use: the resident set also holds memory glibc keeps free for reuse, which swings with the work
in flight, and SQLite's share says how much of a rise is page caches filling to their bound."""
import json
import os
import signal

import pytest
import requests

from platform_proc import Platform, rss_kib, wait_for

MODE = os.environ.get("E2E_MODE", "embedded")
SQLITE = ["sqliteCacheBytes", "sqliteStatementBytes", "sqliteSchemaBytes"]
AMQP = ["amqpReopenedCalls", "amqpReopenedConsumers", "amqpLongReplyConnections"]
LONG_REPLY_CONNS = 4  # RP_AMQP_LONG_REPLY_CONNS, lib/amqp_util.h
FIELDS = ["heapInUseBytes", "heapInUsePeakBytes", "heapMmappedBytes", "heapFreeBytes", "residentBytes",
          "sqliteCacheBoundBytes"] + SQLITE


def memory_lines(p, pid, offset=0, module="memory"):
    """The memory lines (or another module's) pid wrote to p's log from byte offset on (the
    session's log holds every access line of the run: only the lines that name the module are
    parsed)."""
    out = []
    tag = b'"module":"%s"' % module.encode()
    with open(p.log_path, "rb") as f:
        f.seek(offset)
        for raw in f:
            if tag not in raw:
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # a line another process was writing at the same moment is whole later
            if line.get("pid") == pid:
                out.append(line)
    return out


def vm_rss_bytes(pid):
    return rss_kib(pid) * 1024


def ask(p, proc):
    """Sends SIGUSR1 to proc and returns its report: its first memory line written after."""
    offset = os.path.getsize(p.log_path)
    proc.send_signal(signal.SIGUSR1)
    lines = wait_for(lambda: memory_lines(p, proc.pid, offset), 30, "the memory line of pid %d" % proc.pid)
    return lines[0]


def check_report(line, rss_before, rss_after):
    assert line["level"] == "info"
    for k in FIELDS:
        assert isinstance(line[k], int) and line[k] >= 0, line
    # every process holds its tables, pools and transport: megabytes of heap, never nothing
    # (a build whose mallinfo2 counted nothing, as under AddressSanitizer, would say 0)
    assert line["heapInUseBytes"] >= 1 << 20, line
    assert line["heapInUsePeakBytes"] >= line["heapInUseBytes"], line
    assert line["heapMmappedBytes"] <= line["heapInUseBytes"], line
    # the resident set is read from /proc/self/statm: between what /proc/PID/status said just
    # before and just after, with a margin for what the process did in between
    lo, hi = min(rss_before, rss_after), max(rss_before, rss_after)
    assert lo * 0.8 <= line["residentBytes"] <= hi * 1.25, (line, rss_before, rss_after)


def processes(p):
    return p.procs if MODE == "cluster" else [p.proc]


def test_every_process_reports_its_memory_on_sigusr1(platform):
    for proc in processes(platform):
        rss_before = vm_rss_bytes(proc.pid)
        first = ask(platform, proc)
        check_report(first, rss_before, vm_rss_bytes(proc.pid))
        # a second report: the signal is taken again, and the peak starts over from the heap in
        # use at the first (it can only be at least that second's heap in use)
        second = ask(platform, proc)
        check_report(second, rss_before, vm_rss_bytes(proc.pid))
        assert proc.poll() is None, "pid %d ended on SIGUSR1" % proc.pid
        # over RabbitMQ, what the broker connections did with long messages (lib/amqp_util.h);
        # the embedded transport has no connections and says nothing of them
        for line in (first, second):
            if MODE == "cluster":
                for k in AMQP:
                    assert isinstance(line[k], int) and line[k] >= 0, line
                assert line["amqpLongReplyConnections"] <= LONG_REPLY_CONNS, line
            else:
                assert not [k for k in line if k.startswith("amqp")], line
    # and the platform serves on
    r = requests.get(platform.url("/health/ready"), timeout=10)
    assert r.status_code == 200, r.text


def binary(proc):
    return os.path.basename(os.readlink("/proc/%d/exe" % proc.pid))


@pytest.mark.skipif(MODE != "cluster", reason="over RabbitMQ only: the embedded transport carries no frames")
def test_a_request_too_long_to_keep_reopens_the_consumer_that_read_it(platform, world):
    grant = [proc for proc in platform.procs if proc.poll() is None and binary(proc) == "reward-grant-worker"]
    assert len(grant) == 2, [binary(p) for p in platform.procs]

    def reopened():
        return sum(ask(platform, proc)["amqpReopenedConsumers"] for proc in grant)
    before = reopened()
    # a batch of 6,000 players is a request of about 170 KB, over RP_AMQP_KEEP_BYTES (128 KiB):
    # the grant worker's consumer that read it opens its connection again once it has replied
    # (nobody has these ids: every item settles FAILED, which is beside the point here)
    ev = world.event()
    users = ["%024x" % (0xfeed0000 + i) for i in range(6000)]
    r = world.api.post("/events/%s/batch-grants" % ev["id"], token=world.operator,
                       json={"userIds": users, "reason": "long request"})
    assert r.status_code == 202, r.text
    wait_for(lambda: reopened() > before, 60, "a grant worker's consumer to open its connection again")
    assert reopened() == before + 1  # the one consumer that read it, once
    batch_id = r.json()["id"]

    def settled():
        b = world.api.get("/events/batches/" + batch_id, token=world.operator).json()
        return b["status"] == "COMPLETED"
    wait_for(settled, 120, "the batch to settle")
    # the api's /metrics carries its own figures, as its memory line does
    r = requests.get("http://127.0.0.1:%d/metrics" % platform.port, headers={"Authorization": "Bearer " + platform.metrics_token},
                     timeout=10)
    assert r.status_code == 200, r.text
    assert "# TYPE rp_amqp_connections_reopened_total counter" in r.text
    values = dict(row.rsplit(" ", 1) for row in r.text.splitlines() if row.startswith("rp_amqp_"))
    api_line = ask(platform, platform.proc)
    assert int(values['rp_amqp_connections_reopened_total{side="calls"}']) == api_line["amqpReopenedCalls"], values
    assert int(values['rp_amqp_connections_reopened_total{side="consumers"}']) == 0, values  # it serves no queue
    assert int(values["rp_amqp_long_reply_connections"]) == api_line["amqpLongReplyConnections"], values


def test_the_report_counts_what_sqlite_holds(platform, world):
    # each store in use: an event (the event worker's), a player's login (the auth worker's), his
    # claim (the grant worker's group commit)
    event = world.event()
    token, _ = world.player()
    r = world.claim(token, event["id"])
    assert r.status_code in (200, 201), r.text
    for proc in processes(platform):
        line = ask(platform, proc)
        sqlite = sum(line[k] for k in SQLITE)
        if MODE == "cluster" and proc is platform.proc:
            assert sqlite == 0 and line["sqliteCacheBoundBytes"] == 0, ("the api opens no SQLite file", line)
            continue
        # every process with a store has read pages, kept statements and parsed its schema; all
        # of it is heap that SQLite allocated (a figure counted twice, or never cleared, would
        # outgrow the heap)
        for k in SQLITE:
            assert line[k] > 0, (k, line)
        assert sqlite < line["heapInUseBytes"], line
        # what the caches may fill to: each pooled connection's SQLITE_CACHE_KIB (256 KiB here), at
        # least a reader and a writer (8 times that) per process with a store; a full cache counts
        # each page's header beside it
        assert line["sqliteCacheBoundBytes"] >= 9 * 256 * 1024, line
        assert line["sqliteCacheBytes"] <= line["sqliteCacheBoundBytes"] * 5 // 4, line


def test_the_report_counts_what_the_sqlite_writers_did(platform, world):
    # SIGUSR1 also writes one "sqlite_writes" line (lib/process.c): a grant worker serves no
    # /metrics, where the api shows the same (test_edge_metrics.py). A claim goes through the
    # reward store's writer, so the process that holds it counts one write more after it.
    event = world.event()
    token, _ = world.player()

    def writes(proc):
        offset = os.path.getsize(platform.log_path)
        proc.send_signal(signal.SIGUSR1)
        lines = wait_for(lambda: memory_lines(platform, proc.pid, offset, "sqlite_writes"), 30,
                         "the sqlite_writes line of pid %d" % proc.pid)
        return lines[0]

    before = {proc.pid: writes(proc) for proc in processes(platform)}
    r = world.claim(token, event["id"])
    assert r.status_code in (200, 201), r.text
    grew = 0
    for proc in processes(platform):
        line = writes(proc)
        for k in ["groups", "writes", "waitUs", "checkpointsByCheckpointer", "checkpointsByWriter",
                  "writerCheckpointUs"]:
            assert isinstance(line[k], int) and line[k] >= 0, line
        assert len(line["waitBuckets"]) == 10 and sum(line["waitBuckets"]) == line["writes"], line
        assert line["groups"] <= line["writes"], line
        if MODE == "cluster" and proc is platform.proc:
            assert line["writes"] == 0 and line["groups"] == 0, ("the api opens no SQLite file", line)
            continue
        grew += line["writes"] - before[proc.pid]["writes"]
    assert grew >= 1, "the claim's write was counted where it ran"


@pytest.mark.skipif(MODE == "cluster", reason="runs in the embedded pass: it starts its own platform")
def test_the_report_is_written_at_log_level_warn_and_the_process_stops_cleanly():
    p = Platform({"LOG_LEVEL": "warn"}).start()
    try:
        rss_before = vm_rss_bytes(p.proc.pid)
        line = ask(p, p.proc)
        check_report(line, rss_before, vm_rss_bytes(p.proc.pid))
        # nothing else of level info was written: the reports alone pass the level (the memory
        # line and, after it, the SQLite writers' line)
        with open(p.log_path, "rb") as f:
            infos = [json.loads(raw) for raw in f if raw.startswith(b"{") and b'"level":"info"' in raw]
        assert infos and all(i["module"] in ("memory", "sqlite_writes") for i in infos), infos
        assert infos[0]["module"] == "memory", infos
    finally:
        code = p.stop()
    assert code == 0, p.log_tail()
