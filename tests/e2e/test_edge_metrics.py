"""/metrics (issue 12): METRICS_TOKEN (at least 32 bytes) or, with METRICS_ALLOW_LOOPBACK=1, a
loopback client; anyone else gets the 404 of an unknown path. Loopback is off by default: behind
a same-host proxy every client is loopback."""
import os

import pytest
import requests

from platform_proc import Platform, rss_kib

# these start platforms of their own, whatever E2E_MODE says, and the gateway's edge is the same
# code in reward-platform and reward-api: the embedded pass runs them once
pytestmark = pytest.mark.skipif(os.environ.get("E2E_MODE", "embedded") == "cluster",
                                reason="runs in the embedded pass: it starts its own platforms")


def metrics(p, token=None, headers=None, method="GET"):
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = "Bearer " + token
    return requests.request(method, "http://127.0.0.1:%d/metrics" % p.port, headers=h, timeout=10)


def values_of(text):
    """The samples of a /metrics page, by name with its labels."""
    values = {}
    for row in text.splitlines():
        if row and not row.startswith("#"):
            name, _, value = row.rpartition(" ")
            values[name] = float(value)
    return values


def assert_unknown_path(r):
    assert r.status_code == 404
    assert r.json()["error"] == {"code": "NOT_FOUND", "message": "no such route", "details": []}


@pytest.fixture(scope="module")
def tokened():
    p = Platform().start()  # Platform sets a random METRICS_TOKEN; loopback is not let in
    yield p
    assert p.stop() == 0, p.log_tail()


def test_the_token_opens_metrics(tokened):
    r = metrics(tokened, tokened.metrics_token)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert "rp_http_requests_total" in r.text


def test_metrics_carries_the_apis_memory(tokened):
    # the api's own memory (lib/memory.c), as the SIGUSR1 report has it (test_memory_report.py)
    rss_before = rss_kib(tokened.proc.pid) * 1024
    r = metrics(tokened, tokened.metrics_token)
    rss_after = rss_kib(tokened.proc.pid) * 1024
    assert r.status_code == 200
    values = values_of(r.text)
    for name in ["process_resident_memory_bytes", "rp_heap_in_use_bytes", "rp_heap_free_bytes"]:
        assert name in values, r.text
        assert "# TYPE %s gauge" % name in r.text
    assert values["rp_heap_in_use_bytes"] >= 1 << 20
    assert values["rp_heap_free_bytes"] >= 0
    rss = values["process_resident_memory_bytes"]
    assert min(rss_before, rss_after) * 0.8 <= rss <= max(rss_before, rss_after) * 1.25, (rss, rss_before)
    # SQLite's part of the heap (the embedded process's stores; the SIGUSR1 report has the same)
    assert "# TYPE rp_sqlite_memory_bytes gauge" in r.text
    sqlite = [values['rp_sqlite_memory_bytes{kind="%s"}' % k] for k in ("cache", "statements", "schemas")]
    assert sqlite[0] > 0 and sqlite[2] > 0, r.text
    assert sum(sqlite) < values["rp_heap_in_use_bytes"], r.text
    # and what the page caches may fill to: a writer's 4 MiB and the readers' 256 KiB each
    assert "# TYPE rp_sqlite_cache_bound_bytes gauge" in r.text
    assert values["rp_sqlite_cache_bound_bytes"] >= 9 * 256 * 1024, r.text
    assert sqlite[0] <= values["rp_sqlite_cache_bound_bytes"] * 5 / 4, r.text
    # no broker connections in process: their figures are the cluster's (test_memory_report.py)
    assert "rp_amqp_" not in r.text


def test_metrics_carries_the_sqlite_writers(tokened):
    # what the SQLite writers did (lib/sqlite_util.h, rp_sqlite_writes_read): a login writes its
    # refresh token through the auth store's writer, so the counts grow by it
    def read():
        r = metrics(tokened, tokened.metrics_token)
        assert r.status_code == 200
        return r.text, values_of(r.text)

    _, before = read()
    base = "http://127.0.0.1:%d/api/v1" % tokened.port
    login = requests.post(base + "/auth/login", json={"username": tokened.admin[0], "password": tokened.admin[1]},
                          timeout=30)
    assert login.status_code == 200, login.text
    text, after = read()
    assert "# TYPE rp_sqlite_group_commits_total counter" in text
    assert "# TYPE rp_sqlite_write_wait_seconds histogram" in text
    assert after["rp_sqlite_group_commits_total"] > before["rp_sqlite_group_commits_total"], text
    assert after["rp_sqlite_write_wait_seconds_count"] > before["rp_sqlite_write_wait_seconds_count"], text
    assert after["rp_sqlite_write_wait_seconds_sum"] > before["rp_sqlite_write_wait_seconds_sum"], text
    # a histogram: cumulative buckets, the last one every write
    bounds = ["0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.25", "1", "+Inf"]
    counts = [after['rp_sqlite_write_wait_seconds_bucket{le="%s"}' % b] for b in bounds]
    assert counts == sorted(counts), text
    assert counts[-1] == after["rp_sqlite_write_wait_seconds_count"], text
    assert after["rp_sqlite_write_wait_seconds_count"] >= after["rp_sqlite_group_commits_total"], text
    # a fresh platform has written too little for a checkpoint
    assert after['rp_sqlite_checkpoints_total{by="checkpointer"}'] == 0, text
    assert after['rp_sqlite_checkpoints_total{by="writer"}'] == 0, text
    assert after["rp_sqlite_writer_checkpoint_seconds_total"] == 0, text


def test_loopback_without_the_token_is_an_unknown_path(tokened):
    # issue 12: any loopback peer read /metrics
    assert_unknown_path(metrics(tokened))


@pytest.mark.parametrize("bad", ["", "x", "wrong", "a" * 48, "b" * 47, "c" * 49, "d" * 4000],
                         ids=["empty", "x", "wrong", "48", "47", "49", "4000"])
def test_wrong_tokens_are_an_unknown_path(tokened, bad):
    assert_unknown_path(metrics(tokened, bad))


def test_near_misses_are_refused(tokened):
    t = tokened.metrics_token
    for bad in [t[:-1], t + "x", t.upper(), " " + t, t[:-1] + ("0" if t[-1] != "0" else "1")]:
        assert_unknown_path(metrics(tokened, bad))
    # the token is a bearer credential in Authorization, not a basic one nor a query parameter
    assert_unknown_path(requests.get("http://127.0.0.1:%d/metrics?token=%s" % (tokened.port, t), timeout=10))
    assert_unknown_path(metrics(tokened, headers={"Authorization": "Basic " + t}))
    # and it opens GET only
    assert metrics(tokened, t, method="POST").status_code == 404


def test_loopback_flag_lets_local_scrapers_in_but_not_proxied_clients():
    p = Platform({"METRICS_TOKEN": "", "METRICS_ALLOW_LOOPBACK": "1", "CLIENT_IP_HEADER": "X-Forwarded-For",
                  "TRUSTED_PROXIES": "127.0.0.1"}).start()
    try:
        assert metrics(p).status_code == 200
        # behind the same-host proxy, a remote client is not loopback: the forwarded address counts
        assert_unknown_path(metrics(p, headers={"X-Forwarded-For": "198.51.100.7"}))
        # nor is a client whose address the proxy wrote as garbage
        assert_unknown_path(metrics(p, headers={"X-Forwarded-For": "127.0.0.1 garbage"}))
        assert metrics(p, headers={"X-Forwarded-For": "198.51.100.7, 127.0.0.1"}).status_code == 404
        # without a token configured, no bearer opens it
        assert_unknown_path(metrics(p, "", headers={"X-Forwarded-For": "198.51.100.7"}))
    finally:
        assert p.stop() == 0, p.log_tail()


@pytest.mark.parametrize("token", ["short", "0123456789abcdef0123456789abcde"])
def test_short_token_refuses_start(token):
    p = Platform({"METRICS_TOKEN": token}).start(wait=False)
    code = p.proc.wait(timeout=60)
    p.log.close()
    assert code != 0
    assert "METRICS_TOKEN must be at least 32 bytes" in p.log_tail()
