"""Memory figures (issue 10, the soak's verdict): every process answers SIGUSR1 with one "memory"
line in its log, whatever LOG_LEVEL says (the heap in use now and its highest since the previous
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
FIELDS = ["heapInUseBytes", "heapInUsePeakBytes", "heapMmappedBytes", "heapFreeBytes", "residentBytes",
          "sqliteCacheBoundBytes"] + SQLITE


def memory_lines(p, pid, offset=0):
    """The memory lines pid wrote to p's log from byte offset on (the session's log holds every
    access line of the run: only the lines that name the module are parsed)."""
    out = []
    with open(p.log_path, "rb") as f:
        f.seek(offset)
        for raw in f:
            if b'"module":"memory"' not in raw:
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
    # and the platform serves on
    r = requests.get(platform.url("/health/ready"), timeout=10)
    assert r.status_code == 200, r.text


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


@pytest.mark.skipif(MODE == "cluster", reason="runs in the embedded pass: it starts its own platform")
def test_the_report_is_written_at_log_level_warn_and_the_process_stops_cleanly():
    p = Platform({"LOG_LEVEL": "warn"}).start()
    try:
        rss_before = vm_rss_bytes(p.proc.pid)
        line = ask(p, p.proc)
        check_report(line, rss_before, vm_rss_bytes(p.proc.pid))
        # nothing else of level info was written: the report alone passes the level
        with open(p.log_path, "rb") as f:
            infos = [json.loads(raw) for raw in f if raw.startswith(b"{") and b'"level":"info"' in raw]
        assert infos and all(i["module"] == "memory" for i in infos), infos
    finally:
        code = p.stop()
    assert code == 0, p.log_tail()
