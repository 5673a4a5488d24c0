"""The client address behind proxies (issue 12): CLIENT_IP_HEADER is believed only from
TRUSTED_PROXIES and read from the right, so a client cannot pick its own rate-limit bucket.

Each test runs platforms of its own (embedded: the client address is the gateway's business, the
same in both modes), with a tight register/login limit: 1 a second, a burst of 3."""
import http.client
import json
import os
import uuid

import pytest
import requests

from platform_proc import Platform

# cheap password hashing: a request must take well under the second a token takes to come back
LIMITED = {"RATE_LIMIT_AUTH_RPS": "1", "RATE_LIMIT_AUTH_BURST": "3", "CLIENT_IP_HEADER": "X-Forwarded-For",
           "PASSWORD_HASH": "min"}

# these start platforms of their own, whatever E2E_MODE says, and the gateway's edge is the same
# code in reward-platform and reward-api: the embedded pass runs them once
pytestmark = pytest.mark.skipif(os.environ.get("E2E_MODE", "embedded") == "cluster",
                                reason="runs in the embedded pass: it starts its own platforms")


def login(p, xff):
    headers = {"X-Forwarded-For": xff} if xff is not None else {}
    return requests.post(p.url("/auth/login"), json={"username": "nobody_" + uuid.uuid4().hex[:8],
                                                     "password": "whatever-123"}, headers=headers, timeout=30)


def until_limited(p, xff_of, tries=30):
    """Logs in with X-Forwarded-For xff_of(i) until a 429; returns the codes seen. At 1 token a
    second, 30 tries meet a 429 unless every request takes over a second."""
    codes = []
    for i in range(tries):
        r = login(p, xff_of(i))
        codes.append(r.status_code)
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "RATE_LIMITED"
            assert int(r.headers["Retry-After"]) >= 1
            break
    return codes


@pytest.fixture(scope="module")
def untrusting():
    p = Platform(LIMITED).start()
    yield p
    assert p.stop() == 0, p.log_tail()


@pytest.fixture(scope="module")
def behind_proxy():
    p = Platform(dict(LIMITED, TRUSTED_PROXIES="127.0.0.1")).start()
    yield p
    assert p.stop() == 0, p.log_tail()


def test_without_trusted_proxies_the_header_is_ignored(untrusting):
    # issue 12: rotating the header gave a fresh budget each time; now the peer is the client
    codes = until_limited(untrusting, lambda i: "198.51.100.%d" % (i + 1))
    assert codes[-1] == 429, codes
    assert len(codes) <= 10, codes
    assert "CLIENT_IP_HEADER=X-Forwarded-For is ignored: TRUSTED_PROXIES is empty" in untrusting.log_tail(200)


def test_right_most_untrusted_address_is_the_client(behind_proxy):
    a = until_limited(behind_proxy, lambda i: "198.51.100.7")
    assert a[-1] == 429, a
    # another client behind the same proxy (same socket peer) has a budget of its own
    assert login(behind_proxy, "198.51.100.8").status_code == 401
    # a client writing its own left-most addresses is still the right-most one: no escape
    spoofed = until_limited(behind_proxy, lambda i: "203.0.113.%d, 198.51.100.7" % (i + 1))
    assert spoofed[-1] == 429 and len(spoofed) <= 10, spoofed


def login_lines(p, lines):
    """A login whose X-Forwarded-For comes as several header lines (requests folds them)."""
    body = json.dumps({"username": "nobody_" + uuid.uuid4().hex[:8], "password": "whatever-123"}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=30)
    try:
        conn.putrequest("POST", "/api/v1/auth/login")
        for line in lines:
            conn.putheader("X-Forwarded-For", line)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        return conn.getresponse().status
    finally:
        conn.close()


def test_several_header_lines_are_one_list(behind_proxy):
    # the last line's right-most entry is the nearest hop: rotating an earlier line does not escape
    codes = []
    for i in range(30):
        codes.append(login_lines(behind_proxy, ["203.0.113.%d" % (i + 1), "198.51.100.9"]))
        if codes[-1] == 429:
            break
    assert codes[-1] == 429 and len(codes) <= 10, codes
    assert login_lines(behind_proxy, ["198.51.100.9", "203.0.113.200"]) == 401


def test_malformed_client_entry_counts_against_the_peer(behind_proxy):
    # what cannot be parsed is not guessed at: all such requests share the proxy's own budget,
    # so rotating garbage does not escape either
    codes = until_limited(behind_proxy, lambda i: "garbage-%d" % i)
    assert codes[-1] == 429 and len(codes) <= 10, codes
    # and a real client behind it is not affected
    assert login(behind_proxy, "198.51.100.77").status_code == 401


def test_all_hops_trusted_the_left_most_is_the_client():
    p = Platform(dict(LIMITED, TRUSTED_PROXIES="127.0.0.1, 10.0.0.0/8")).start()
    try:
        codes = until_limited(p, lambda i: "10.1.1.1, 10.2.2.%d" % (i + 1))
        assert codes[-1] == 429 and len(codes) <= 10, codes
        assert login(p, "10.1.1.2, 10.2.2.2").status_code == 401
    finally:
        assert p.stop() == 0, p.log_tail()


@pytest.mark.parametrize("value", ["10.0.0.1/8", "10.0.0.0/33", "proxy.example", "127.0.0.1,", "1.2.3"])
def test_invalid_trusted_proxies_refuse_start(value):
    p = Platform({"TRUSTED_PROXIES": value}).start(wait=False)
    code = p.proc.wait(timeout=60)
    p.log.close()
    assert code != 0
    log = p.log_tail()
    assert "TRUSTED_PROXIES must be comma-separated IPv4/IPv6 addresses or CIDRs" in log, log
