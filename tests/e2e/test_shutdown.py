"""SIGTERM to an api process (the platform, or reward-api in a cluster): new requests are refused
(503 SHUTTING_DOWN) while the requests in flight are answered, for up to SHUTDOWN_GRACE_MS; then
the connections that wait for a client (an idle kept-alive one, one whose headers trickle in) are
ended at once, not when civetweb next looks at its stop flag (up to 2 s later). A stop in the
middle of claims pays every claim answered 201 once and the refused ones not at all. The request
in flight is held at a failpoint (session.fetch, or hash.hold for a login that claims do not
share), so the order of events does not depend on timing."""
import contextlib
import os
import signal
import socket
import threading
import time

import requests

import invariants
from conftest import Client, World
from platform_proc import Cluster, Platform, wait_for

MODE = os.environ.get("E2E_MODE", "embedded")

# civetweb 1.15 looks at its stop flag every 2 s of a wait; ended by the api, these connections
# close within milliseconds, so a second is far from both
ENDED_WITHIN_S = 1.0


def held(p):
    return sum(1 for ln in p.log_tail(100000).splitlines() if "failpoint session.fetch reached" in ln)


def eof_within(s, seconds):
    """Seconds until the server ended s (EOF or reset), reading what came before; None if it did
    not within `seconds`."""
    t0 = time.monotonic()
    s.settimeout(0.05)
    while time.monotonic() - t0 < seconds:
        try:
            if not s.recv(65536):
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - t0
    return None


@contextlib.contextmanager
def running(tmp_path, **env):
    """A platform (a cluster in the cluster pass) and the file that holds its failpoint while it
    exists; the file goes and everything still running is stopped at the end."""
    hold = tmp_path / "hold"
    # long client timeouts: only the stop can end a waiting connection within the test's bounds
    env = dict({"RATE_LIMIT_RPS": "0", "RATE_LIMIT_AUTH_RPS": "0", "HTTP_KEEPALIVE_TIMEOUT_MS": "30000",
                "HTTP_REQUEST_TIMEOUT_MS": "60000", "RP_FAILPOINT": "session.fetch",
                "RP_FAILPOINT_HOLD": str(hold)}, **env)
    p = (Cluster(env) if MODE == "cluster" else Platform(env)).start()
    try:
        yield p, hold
    finally:
        if hold.exists():
            hold.unlink()
        assert p.stop() == 0, p.log_tail()


def hold_a_request(p, hold):
    """A player's GET /auth/me, held in the api at its session fetch: (thread, answers, username)."""
    api = Client(p)
    name, pw, _ = api.register("stop")
    token = api.login(name, pw)["accessToken"]
    hold.write_text("")
    answers = []

    def me():
        try:
            answers.append(Client(p).get("/auth/me", token=token))
        except requests.RequestException as e:
            answers.append(e)

    t = threading.Thread(target=me)
    t.start()
    wait_for(lambda: held(p) == 1, 60, "the request's session fetch to be held")
    return t, answers, name


def refused_while_stopping(p):
    """A new request's answer once the stop has begun: 503 SHUTTING_DOWN, else None."""
    try:
        r = requests.get(p.url("/health/live"), timeout=10)
    except requests.RequestException:
        return None
    return r if r.status_code == 503 else None


def test_sigterm_answers_the_request_in_flight_refuses_new_ones_and_then_ends_waiting_connections(tmp_path):
    with running(tmp_path) as (p, hold):
        in_flight, answers, name = hold_a_request(p, hold)
        idle = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        idle.sendall(b"GET /api/v1/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(65536).startswith(b"HTTP/1.1 200")

        p.proc.send_signal(signal.SIGTERM)
        # new requests are refused, with nothing done for them, while the one in flight is held
        wait_for(lambda: refused_while_stopping(p) is not None, 30, "the api to refuse new requests")
        r = refused_while_stopping(p)
        assert r is not None and r.json()["error"]["code"] == "SHUTTING_DOWN", r and r.text
        assert r.headers.get("Retry-After") == "1" and r.headers.get("Connection") == "close", r.headers
        assert r.json()["requestId"] == r.headers["X-Request-Id"]
        assert p.proc.poll() is None, "the api exited with a request in flight"

        # a client in the middle of its headers, made last, so that civetweb's own 2 s wait on it
        # has only begun when the stop comes
        slow = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        slow.sendall(b"GET /api/v1/health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        hold.unlink()
        in_flight.join(60)
        assert answers and not isinstance(answers[0], Exception), answers
        assert answers[0].status_code == 200 and answers[0].json()["username"] == name, answers[0].text

        # then the connections that wait for their clients are ended, not left to civetweb's 2 s
        slow_s = eof_within(slow, 10)
        idle_s = eof_within(idle, 10)
        assert slow_s is not None and slow_s < ENDED_WITHIN_S, "slow client's connection ended after %s s" % slow_s
        assert idle_s is not None and idle_s < ENDED_WITHIN_S, "idle kept-alive connection ended after %s s" % idle_s
        slow.close()
        idle.close()
        assert p.proc.wait(timeout=60) == 0, p.log_tail()
        refused = False
        try:
            socket.create_connection(("127.0.0.1", p.port), timeout=5).close()
        except ConnectionRefusedError:
            refused = True
        assert refused, "the api's port still takes connections after it stopped"


def test_a_request_held_past_the_grace_does_not_hold_the_stop(tmp_path):
    with running(tmp_path, SHUTDOWN_GRACE_MS="300") as (p, hold):
        in_flight, answers, _ = hold_a_request(p, hold)
        p.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "after SHUTDOWN_GRACE_MS (300 ms): they get no answer" in p.log_tail(200), 30,
                 "the stop to give up on the request in flight")
        # civetweb writes nothing once it stops: the held request's answer is lost, as the log said
        hold.unlink()
        in_flight.join(60)
        assert answers and isinstance(answers[0], requests.ConnectionError), answers
        assert p.proc.wait(timeout=60) == 0, p.log_tail()


def test_a_stop_during_claims_pays_each_answered_claim_once_and_nothing_for_the_refused(tmp_path):
    # the request held in flight is a login, held at its password hash (failpoint hash.hold):
    # claims hash nothing, so none of them is held with it
    with running(tmp_path, RP_FAILPOINT="hash.hold") as (p, hold):
        world = World(Client(p))
        events = [world.event()["id"] for _ in range(30)]
        tokens = [world.player()[0] for _ in range(12)]
        name, pw, _ = world.api.register("stop")
        answers, lock, signalled = {}, threading.Lock(), threading.Event()

        def claims(token):
            s = requests.Session()
            for i, ev in enumerate(events):
                if i == len(events) - 5:
                    signalled.wait(120)  # the last five of each player's claims come after SIGTERM
                try:
                    r = s.post(p.url("/events/%s/reward-requests" % ev), timeout=60,
                               headers={"Authorization": "Bearer " + token, "Idempotency-Key": "stop-" + ev})
                    out = (r.status_code, r.json()["error"]["code"] if r.status_code >= 400 else None)
                except requests.RequestException:
                    out = ("connection error", None)
                with lock:
                    answers[(token, ev)] = out

        threads = [threading.Thread(target=claims, args=(t,)) for t in tokens]
        for t in threads:
            t.start()
        wait_for(lambda: len(answers) >= 24, 120, "claims to be answered")
        # a request held in flight keeps the stop draining until it is let go, so claims made
        # meanwhile are refused whatever the timing
        hold.write_text("")
        login = []
        held_login = threading.Thread(target=lambda: login.append(requests.post(
            p.url("/auth/login"), json={"username": name, "password": pw}, timeout=60)))
        held_login.start()
        wait_for(lambda: "failpoint hash.hold reached" in p.log_tail(100000), 60, "the login to be held")
        p.proc.send_signal(signal.SIGTERM)
        signalled.set()
        wait_for(lambda: (503, "SHUTTING_DOWN") in set(answers.values()), 60, "a claim to be refused")
        hold.unlink()
        held_login.join(60)
        assert login and login[0].status_code == 200, login and login[0].text
        for t in threads:
            t.join(120)
        assert p.proc.wait(timeout=60) == 0, p.log_tail()

        kinds = set(answers.values())
        assert kinds <= {(201, None), (503, "SHUTTING_DOWN"), ("connection error", None)}, kinds
        granted = [k for k, v in answers.items() if v[0] == 201]
        # every claim answered 201 is paid once, and a refused one (503, or a refused connection
        # once the port closed) paid nothing
        for ev in events:
            paid = invariants.status_counts(p.data_dir, ev)
            assert paid == ({"SUCCESS": sum(1 for _, e in granted if e == ev)} if any(e == ev for _, e in granted)
                            else {}), (ev, paid)
        assert invariants.check(p.data_dir) == []
