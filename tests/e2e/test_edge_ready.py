"""/health/ready (issue 12): anonymous callers learn only ready / not ready; which check failed and
why goes to the log (at most one line each 10 s, so a probe cannot flood it) and to holders of
METRICS_TOKEN (or loopback clients with METRICS_ALLOW_LOOPBACK=1).

Not ready on purpose: a reward-api process pointed at a broker port where nothing listens answers
at once, with the broker's error text in every check."""
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from platform_proc import Platform, free_port, not_ready_lines, ready, wait_for

# these start platforms of their own, whatever E2E_MODE says, and the gateway's edge is the same
# code in reward-platform and reward-api: the embedded pass runs them once
pytestmark = pytest.mark.skipif(os.environ.get("E2E_MODE", "embedded") == "cluster",
                                reason="runs in the embedded pass: it starts its own platforms")


@pytest.fixture(scope="module")
def broken():
    p = Platform({"TRANSPORT": "amqp", "AMQP_URL": "amqp://guest:guest@127.0.0.1:%d/" % free_port()})
    p.binary = os.path.join(os.path.dirname(p.binary), "reward-api")
    p.start(wait=False)

    def answered():
        if p.proc.poll() is not None:
            raise AssertionError("reward-api exited:\n" + p.log_tail())
        try:
            return ready(p).status_code
        except requests.ConnectionError:
            return None

    assert wait_for(answered, 60, "reward-api to answer") == 503
    yield p
    assert p.stop() == 0, p.log_tail()


def test_public_answer_is_only_the_status(broken):
    r = ready(broken)
    assert r.status_code == 503
    assert r.json() == {"status": "not_ready"}
    assert "broker" not in r.text
    assert r.headers["Retry-After"] == "1"
    # a wrong token, a JWT-looking bearer or a forwarded loopback address change nothing
    assert ready(broken, "x" * 48).json() == {"status": "not_ready"}
    assert ready(broken, headers={"X-Forwarded-For": "127.0.0.1"}).json() == {"status": "not_ready"}


def test_the_token_shows_which_check_failed_and_why(broken):
    r = ready(broken, broken.metrics_token)
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not_ready"
    assert "cannot reach the broker" in body["checks"]["transport"]
    assert set(body["checks"]) >= {"transport", "auth", "event", "reward"}


def test_the_detail_is_logged_at_most_once_per_interval(broken):
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: ready(broken).status_code, range(40)))
    assert codes == [503] * 40
    lines = not_ready_lines(broken)
    # the fixture's probe and the earlier tests' fall in the same 10 s: one line, or two when the
    # interval turned over during the module
    assert 1 <= len(lines) <= 2, lines
    assert "cannot reach the broker" in lines[0]["msg"]
    assert lines[0]["level"] == "warn"


def test_loopback_flag_shows_the_detail_to_local_callers():
    p = Platform({"METRICS_TOKEN": "", "METRICS_ALLOW_LOOPBACK": "1"}).start()
    try:
        # with no token configured, loopback (when allowed) sees the detail
        body = ready(p).json()
        assert body["status"] == "ready" and body["checks"]["transport"] == "ok"
    finally:
        assert p.stop() == 0, p.log_tail()
    assert not_ready_lines(p) == []
