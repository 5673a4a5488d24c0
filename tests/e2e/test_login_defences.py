"""Login defences over HTTP: the bounded hashing queue, the atomic lockout, the global login
budget and the bootstrap admin name, each on a platform of its own (embedded, or a cluster with
E2E_MODE=cluster)."""
import http.client
import json
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import MODE
from platform_proc import Cluster, Platform, wait_for

NO_LIMITS = {"RATE_LIMIT_AUTH_RPS": "0", "RATE_LIMIT_RPS": "0", "LOGIN_GLOBAL_RPS": "0", "PASSWORD_HASH": "min"}


@pytest.fixture
def make():
    started = []

    def start(env, data_dir=None):
        p = (Cluster(env, data_dir=data_dir) if MODE == "cluster" else Platform(env, data_dir=data_dir)).start()
        started.append(p)
        return p

    yield start
    for p in started:
        assert p.stop() == 0, p.log_tail()


def register(p, prefix, password="password-123"):
    name = "%s_%s" % (prefix, uuid.uuid4().hex[:10])
    r = requests.post(p.url("/auth/register"), json={"username": name, "email": name + "@example.com",
                                                      "password": password}, timeout=30)
    assert r.status_code == 201, r.text
    return name, password


def login(p, name, password, timeout=60):
    return requests.post(p.url("/auth/login"), json={"username": name, "password": password}, timeout=timeout)


def test_a_full_hashing_queue_answers_overloaded_at_once_and_me_is_still_served(make, tmp_path):
    """One hash thread held busy (failpoint hash.hold) and the one queue place taken: every
    further login is refused at once with 503 OVERLOADED, while GET /auth/me is answered; let go,
    the two waiting logins get their answer."""
    hold = str(tmp_path / "hold")
    p = make(dict(NO_LIMITS, PASSWORD_HASH_CONCURRENCY="1", PASSWORD_HASH_QUEUE="1", WORKER_THREADS="4",
                  RP_FAILPOINT="hash.hold", RP_FAILPOINT_HOLD=hold))
    name, pw = register(p, "held")
    token = login(p, name, pw).json()["accessToken"]
    open(hold, "w").close()
    pool = ThreadPoolExecutor(8)
    try:
        held = pool.submit(login, p, name, "wrong-password-1")
        wait_for(lambda: "failpoint hash.hold reached" in p.log_tail(200), 30, "the hash thread to be held")
        # seven more logins race for the one queue place: one waits in it, every other is refused
        # at once (nothing else can finish while the hash thread is held)
        rest = [pool.submit(login, p, name, "wrong-password-2") for _ in range(7)]
        wait_for(lambda: sum(f.done() for f in rest) == 6, 60, "six refusals")
        for f in (f for f in rest if f.done()):
            r = f.result()
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "OVERLOADED"
            assert int(r.headers["Retry-After"]) >= 1
        # calls that need no hash still find a thread
        for _ in range(5):
            r = requests.get(p.url("/auth/me"), headers={"Authorization": "Bearer " + token}, timeout=10)
            assert r.status_code == 200, r.text
        r = requests.post(p.url("/auth/register"), json={"username": "late_" + uuid.uuid4().hex[:8],
                                                         "email": "late@example.com", "password": "password-123"},
                          timeout=30)
        assert r.status_code == 503 and r.json()["error"]["code"] == "OVERLOADED", r.text
        assert not held.done()
    finally:
        os.unlink(hold)
    assert held.result().status_code == 401
    assert [f.result().status_code for f in rest].count(401) == 1
    pool.shutdown()
    assert login(p, name, pw).status_code == 200


def test_sixteen_parallel_wrong_passwords_check_at_most_the_limit(make):
    p = make(dict(NO_LIMITS, WORKER_THREADS="20", PASSWORD_HASH_CONCURRENCY="2", PASSWORD_HASH_QUEUE="16",
                  LOGIN_MAX_FAILURES="5"))
    name, pw = register(p, "race")
    barrier = threading.Barrier(16)

    def wrong(_):
        barrier.wait()
        return login(p, name, "wrong-password")

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(wrong, range(16)))
    codes = sorted((r.status_code, r.json()["error"]["code"]) for r in responses)
    invalid = codes.count((401, "INVALID_CREDENTIALS"))
    locked = codes.count((429, "ACCOUNT_LOCKED"))
    assert invalid <= 5 and invalid + locked == 16, codes
    assert invalid == 5, codes  # every one of them ran: exactly the limit was checked
    r = login(p, name, pw)
    assert r.status_code == 429 and r.json()["error"]["code"] == "ACCOUNT_LOCKED"


def login_from(p, source, name):
    """A login sent from the loopback address source (its own client address)."""
    c = http.client.HTTPConnection("127.0.0.1", p.port, timeout=30, source_address=(source, 0))
    try:
        c.request("POST", "/api/v1/auth/login", body=json.dumps({"username": name, "password": "wrong-password"}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"{}"), r.getheader("Retry-After")
    finally:
        c.close()


def test_the_global_login_budget_holds_whatever_the_address(make):
    p = make(dict(NO_LIMITS, RATE_LIMIT_AUTH_RPS="100", RATE_LIMIT_AUTH_BURST="100", LOGIN_GLOBAL_RPS="1",
                  LOGIN_GLOBAL_BURST="4"))
    answers = [login_from(p, "127.0.0.%d" % (2 + i), "nobody_global") for i in range(8)]
    codes = [a[0] for a in answers]
    assert codes.count(401) <= 5 and 429 in codes, codes
    for status, body, retry in answers:
        if status == 429:
            assert body["error"]["code"] == "TOO_MANY_LOGINS"
            assert int(retry) >= 1
    # token refresh is no login: it is not held back by the budget
    r = requests.post(p.url("/auth/refresh"), json={"refreshToken": "x" * 43}, timeout=30)
    assert r.status_code == 401 and r.json()["error"]["code"] == "INVALID_REFRESH_TOKEN"


def test_a_bootstrap_admin_name_held_by_a_non_admin_refuses_start(tmp_path):
    first = Platform(dict(NO_LIMITS), data_dir=str(tmp_path)).start()
    try:
        name, _ = register(first, "squatter")
    finally:
        assert first.stop() == 0, first.log_tail()
    second = Platform(dict(NO_LIMITS, ADMIN_USERNAME=name.upper()), data_dir=str(tmp_path))
    second.start(wait=False)
    code = second.proc.wait(timeout=60)
    second.log.close()
    assert code != 0
    assert "ADMIN_USERNAME %s is held by an account that is not an administrator" % name in second.log_tail()
