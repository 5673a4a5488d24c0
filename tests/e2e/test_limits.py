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
