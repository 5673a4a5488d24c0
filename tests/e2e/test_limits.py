"""Per-address rate limits, on a platform of their own with a tight auth limit."""
import uuid

import pytest
import requests

from platform_proc import Platform


@pytest.fixture(scope="module")
def limited():
    p = Platform({"RATE_LIMIT_AUTH_RPS": "1", "RATE_LIMIT_AUTH_BURST": "3"}).start()
    yield p
    assert p.stop() == 0, p.log_tail()


def test_auth_routes_are_rate_limited(limited):
    codes = []
    for _ in range(8):
        r = requests.post(limited.url("/auth/login"), json={"username": "nobody_" + uuid.uuid4().hex[:6],
                                                              "password": "whatever-123"}, timeout=30)
        codes.append(r.status_code)
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "RATE_LIMITED"
            assert int(r.headers["Retry-After"]) >= 1
    assert 429 in codes
    # health is never limited
    assert requests.get(limited.url("/health/live"), timeout=10).status_code == 200


@pytest.fixture(scope="module")
def proxied():
    # the header is believed only from TRUSTED_PROXIES: the test's own peer and the hop it names
    p = Platform({"RATE_LIMIT_AUTH_RPS": "1", "RATE_LIMIT_AUTH_BURST": "2", "CLIENT_IP_HEADER": "X-Forwarded-For",
                  "TRUSTED_PROXIES": "127.0.0.1, 10.9.9.9"}).start()
    yield p
    assert p.stop() == 0, p.log_tail()


def test_limits_follow_the_forwarded_client_behind_a_proxy(proxied):
    def login(ip):
        return requests.post(proxied.url("/auth/login"), json={"username": "nobody_x", "password": "whatever-123"},
                             headers={"X-Forwarded-For": ip + ", 10.9.9.9"}, timeout=30).status_code

    first = [login("198.51.100.7") for _ in range(4)]
    assert 429 in first
    # another client behind the same proxy (same socket peer) has its own budget
    assert login("198.51.100.8") == 401
