"""Slow and idle clients cannot starve the front end (civetweb serves one connection per thread,
waits included): the header and keep-alive timeouts cut them off, one address cannot hold more
than MAX_CONNECTIONS_PER_ADDRESS connections, and with the defaults a health check answers in
under a second while 200 clients trickle header bytes from ten addresses. Loopback answers on
every 127.0.0.x address, so each client below picks its own source address."""
import http.client
import json
import os
import socket
import threading
import time

import pytest
import requests

from platform_proc import Cluster, Platform, not_ready_lines, ready, rss_kib, wait_for

MODE = os.environ.get("E2E_MODE", "embedded")


def start(env):
    env = dict({"RATE_LIMIT_RPS": "0", "RATE_LIMIT_AUTH_RPS": "0"}, **env)
    return (Cluster(env) if MODE == "cluster" else Platform(env)).start()


def connect(p, source):
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", p.port))
    return s


def closed_by_server(s):
    """True once the server has closed s (EOF or reset); reads and drops what came before."""
    s.setblocking(False)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def get_health(p, source, timeout=10):
    """GET /health/live from source over a fresh connection: (status, seconds)."""
    c = http.client.HTTPConnection("127.0.0.1", p.port, timeout=timeout, source_address=(source, 0))
    t0 = time.monotonic()
    try:
        c.request("GET", "/api/v1/health/live")
        r = c.getresponse()
        r.read()
        return r.status, time.monotonic() - t0
    finally:
        c.close()


class Tricklers:
    """n clients, spread over source addresses, that send a request line and then one header byte
    per client every `every` seconds, never finishing their headers."""

    def __init__(self, p, n, sources, every=0.25):
        self.socks = []
        for i in range(n):
            s = connect(p, sources[i % len(sources)])
            s.sendall(b"GET /api/v1/health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            self.socks.append(s)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self.thread.start()

    def _run(self, every):
        while not self.stop.wait(every):
            for s in self.socks:
                try:
                    s.send(b"a")
                except OSError:
                    pass

    def open_count(self):
        return sum(1 for s in self.socks if not closed_by_server(s))

    def wait_counted(self, p):
        """Waits until the api logged every one of these connections as counted by the per-address
        cap (LOG_LEVEL=debug). civetweb's threads take accepted connections in any order, so a
        connection opened after these could otherwise be counted first and one of these refused."""
        names = ["connection from %s:%d counted" % s.getsockname() for s in self.socks]
        try:
            wait_for(lambda: all(n in p.log_tail(100000) for n in names), 30, "the api to count %d connections" % len(names))
        except AssertionError as e:
            raise AssertionError("%s; the gateway's log:\n%s" % (e, gateway_log(p))) from None

    def close(self):
        self.stop.set()
        self.thread.join()
        for s in self.socks:
            s.close()


def sanitized(p):
    with open("/proc/%d/maps" % p.proc.pid) as f:
        return "libasan" in f.read()


@pytest.fixture(scope="module")
def defaults():
    p = start({})
    yield p
    assert p.stop() == 0, p.log_tail()


def test_health_answers_within_a_second_while_200_clients_trickle_headers(defaults):
    slow = Tricklers(defaults, 200, ["127.0.0.%d" % (10 + i) for i in range(10)])
    try:
        # give the server time to hand every slow connection a thread, as an attack would
        time.sleep(0.5)
        latencies = []
        for _ in range(3):
            status, seconds = get_health(defaults, "127.0.0.250")
            assert status == 200
            latencies.append(seconds)
        held = slow.open_count()
        assert held == 200, "the slow clients should still be connected, %d are" % held
        assert max(latencies) < 1.0, "health took %s s with 200 slow clients" % latencies
        if not sanitized(defaults):
            # every HTTP thread exists from the start; 200 of them hold a connection now
            assert rss_kib(defaults.proc.pid) < 64 * 1024
    finally:
        slow.close()


@pytest.fixture(scope="module")
def short():
    p = start({"HTTP_REQUEST_TIMEOUT_MS": "1000", "HTTP_KEEPALIVE_TIMEOUT_MS": "200"})
    yield p
    assert p.stop() == 0, p.log_tail()


def test_a_client_trickling_its_headers_is_cut_off_by_the_request_timeout(short):
    slow = Tricklers(short, 1, ["127.0.0.40"], every=0.1)
    try:
        t0 = time.monotonic()
        # the timeout counts from the first byte: bytes every 0.1 s do not extend it
        wait_for(lambda: slow.open_count() == 0, 8, "the server to close the trickling client")
        elapsed = time.monotonic() - t0
        assert 0.8 <= elapsed < 4, "closed after %.2f s with HTTP_REQUEST_TIMEOUT_MS=1000" % elapsed
    finally:
        slow.close()


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(short):
    s = connect(short, "127.0.0.41")
    try:
        s.sendall(b"GET /api/v1/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        t0 = time.monotonic()
        wait_for(lambda: closed_by_server(s), 8, "the server to close the idle keep-alive connection")
        # well under the former fixed 2 s
        assert time.monotonic() - t0 < 1.5
    finally:
        s.close()


@pytest.fixture(scope="module")
def capped():
    # at debug level the api logs each connection it counts and releases: a failure shows them
    p = start({"MAX_CONNECTIONS_PER_ADDRESS": "4", "HTTP_REQUEST_TIMEOUT_MS": "30000", "LOG_LEVEL": "debug"})
    yield p
    assert p.stop() == 0, p.log_tail()


def gateway_log(p, n=60):
    """The last n lines the api's gateway logged (the other processes log at debug too)."""
    lines = [ln for ln in p.log_tail(100000).splitlines() if '"module":"gateway"' in ln]
    return "\n".join(lines[-n:])


def refused_quickly(p, source):
    """Opens a connection from source; returns its first bytes when the server closed it within a
    second without a request having been sent, else None (connection left closed)."""
    s = connect(p, source)
    try:
        s.settimeout(1.0)
        got = b""
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:
            try:
                data = s.recv(4096)
            except socket.timeout:
                return None
            except OSError:
                return got or b"(reset)"
            if not data:
                return got or b"(closed)"
            got += data
        return None
    finally:
        s.close()


def test_connections_over_the_per_address_cap_are_refused_at_once(capped):
    held = Tricklers(capped, 4, ["127.0.0.50"], every=1.0)
    try:
        # the four are counted once workers took them (microseconds, in any order): wait for that,
        # then poll until a fifth is refused
        held.wait_counted(capped)
        try:
            answer = wait_for(lambda: refused_quickly(capped, "127.0.0.50"), 15, "a fifth connection to be refused")
        except AssertionError as e:
            raise AssertionError("%s (%d of the 4 still open); the gateway's log:\n%s" % (
                e, held.open_count(), gateway_log(capped))) from None
        if answer.startswith(b"HTTP/"):
            assert answer.startswith(b"HTTP/1.1 429"), answer
            assert b"TOO_MANY_CONNECTIONS" in answer
        assert held.open_count() == 4, "the connections under the cap are kept"
        # another address is not affected
        assert get_health(capped, "127.0.0.51")[0] == 200
        # a closed connection frees its place
        held.socks.pop().close()
        wait_for(lambda: served(capped, "127.0.0.50"), 15, "the address to be served again")
    finally:
        held.close()


def test_the_cap_applies_from_the_first_connection_after_start():
    # the cap learns civetweb's connection layout from a connection of its own at start-up: the
    # first clients are counted too, not only those after some connection has closed
    p = start({"MAX_CONNECTIONS_PER_ADDRESS": "2", "HTTP_REQUEST_TIMEOUT_MS": "30000",
               "HTTP_KEEPALIVE_TIMEOUT_MS": "30000", "LOG_LEVEL": "debug"})
    held = Tricklers(p, 2, ["127.0.0.60"], every=1.0)
    try:
        held.wait_counted(p)
        answer = wait_for(lambda: refused_quickly(p, "127.0.0.60"), 15, "a third connection to be refused")
        assert answer.startswith(b"HTTP/1.1 429") or not answer.startswith(b"HTTP/"), answer
        assert held.open_count() == 2
    finally:
        held.close()
        assert p.stop() == 0, p.log_tail()


def ready_answer(p):
    """/health/ready's (status, checks), or None while nothing answers (loopback callers see the
    checks with METRICS_ALLOW_LOOPBACK=1)."""
    try:
        r = ready(p)
    except requests.RequestException:
        return None
    return r.status_code, r.json().get("checks", {})


def test_not_ready_until_the_cap_has_learnt_the_connection_layout(tmp_path):
    # the cap learns civetweb's layout when start-up's own connection closes; a client taken
    # before that is never counted (a make test once saw a third connection admitted, its two
    # tricklers taken while the lesson's close waited for a core). So /health/ready says not
    # ready until then: held here at that close, it names the cap while every other check is ok
    hold = tmp_path / "hold"
    hold.write_text("")
    env = {"RATE_LIMIT_RPS": "0", "RATE_LIMIT_AUTH_RPS": "0", "MAX_CONNECTIONS_PER_ADDRESS": "2",
           "HTTP_REQUEST_TIMEOUT_MS": "30000", "HTTP_KEEPALIVE_TIMEOUT_MS": "30000",
           "METRICS_ALLOW_LOOPBACK": "1", "RP_FAILPOINT": "gateway.layout", "RP_FAILPOINT_HOLD": str(hold),
           "LOG_LEVEL": "debug"}
    p = (Cluster(env) if MODE == "cluster" else Platform(env)).start(wait=False)
    held = None
    try:
        def only_the_cap_starting():
            a = ready_answer(p)
            others = a and {k: v for k, v in a[1].items() if k != "connectionCap"}
            return a if a and a[1].get("connectionCap") == "starting" and others and \
                all(v == "ok" for v in others.values()) else None
        status, checks = wait_for(only_the_cap_starting, 90, "every check but the cap's to pass")
        assert status == 503, checks
        hold.unlink()
        wait_for(lambda: (ready_answer(p) or (0,))[0] == 200, 60, "ready once the layout is learnt")
        assert ready_answer(p)[1]["connectionCap"] == "ok"
        held = Tricklers(p, 2, ["127.0.0.61"], every=1.0)
        # civetweb's threads take the three in any order: the probe waits until the two are counted
        held.wait_counted(p)
        answer = wait_for(lambda: refused_quickly(p, "127.0.0.61"), 15, "a third connection to be refused")
        assert answer.startswith(b"HTTP/1.1 429") or not answer.startswith(b"HTTP/"), answer
        # the lesson is a moment of every start, not a failure: no "not ready" warning names it alone
        for line in not_ready_lines(p):
            checks = json.loads(line["msg"][len("not ready: "):].rsplit(" (", 1)[0])
            assert any(v != "ok" for k, v in checks.items() if k != "connectionCap"), line
    finally:
        if hold.exists():
            hold.unlink()
        if held:
            held.close()
        assert p.stop() == 0, p.log_tail()


def served(p, source):
    try:
        return get_health(p, source, timeout=5)[0] == 200
    except OSError:
        return False
