"""Per-address rate limits, on a platform of their own with a tight auth limit. Logins are sent
at once (threads) and hashed at the cheapest cost: one at a time, each slower than the bucket's
refill of 1 a second on a loaded machine, they never met the limit."""
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from platform_proc import Platform


@pytest.fixture(scope="module")
def limited():
    p = Platform({"RATE_LIMIT_AUTH_RPS": "1", "RATE_LIMIT_AUTH_BURST": "3", "PASSWORD_HASH": "min"}).start()
    yield p
    assert p.stop() == 0, p.log_tail()


def test_auth_routes_are_rate_limited(limited):
    def login(_):
        return requests.post(limited.url("/auth/login"), json={"username": "nobody_" + uuid.uuid4().hex[:6],
                                                                "password": "whatever-123"}, timeout=30)

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(login, range(10)))
    limited_answers = [r for r in answers if r.status_code == 429]
    assert limited_answers, [r.status_code for r in answers]
    for r in limited_answers:
        assert r.json()["error"]["code"] == "RATE_LIMITED"
        assert int(r.headers["Retry-After"]) >= 1
    # health is never limited
    assert requests.get(limited.url("/health/live"), timeout=10).status_code == 200


@pytest.fixture(scope="module")
def proxied():
    # the header is believed only from TRUSTED_PROXIES: the test's own peer and the hop it names
    p = Platform({"RATE_LIMIT_AUTH_RPS": "1", "RATE_LIMIT_AUTH_BURST": "2", "CLIENT_IP_HEADER": "X-Forwarded-For",
                  "TRUSTED_PROXIES": "127.0.0.1, 10.9.9.9", "PASSWORD_HASH": "min"}).start()
    yield p
    assert p.stop() == 0, p.log_tail()


def test_limits_follow_the_forwarded_client_behind_a_proxy(proxied):
    def login(ip):
        return requests.post(proxied.url("/auth/login"), json={"username": "nobody_x", "password": "whatever-123"},
                             headers={"X-Forwarded-For": ip + ", 10.9.9.9"}, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda _: login("198.51.100.7"), range(8)))
    assert 429 in first, first
    # another client behind the same proxy (same socket peer) has its own budget
    assert login("198.51.100.8") == 401
