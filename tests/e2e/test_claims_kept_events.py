"""Claims judged on kept events: a reward worker keeps the events it judged claims on for
EVENTS_CACHE_MS (10 s here, so that every step below runs while the event is kept), yet an edit
or a cancellation that committed before a claim decides that claim at once: the grant checks the
event's version in its own unit of work, and a refusal is judged again on a fresh read."""
import pytest

from conftest import MODE, Client, World
import invariants
from platform_proc import Cluster, Platform


@pytest.fixture(scope="module")
def kept_platform():
    env = {"RATE_LIMIT_AUTH_RPS": "0", "RATE_LIMIT_RPS": "0", "LOGIN_GLOBAL_RPS": "0", "EVENTS_CACHE_MS": "10000",
           "PASSWORD_HASH": "min"}
    p = (Cluster(env) if MODE == "cluster" else Platform(env)).start()
    yield p
    code = p.stop()
    assert code == 0, "platform exited with %s:\n%s" % (code, p.log_tail())


@pytest.fixture(scope="module")
def kw(kept_platform):
    return World(Client(kept_platform))


def patch(w, ev, body):
    r = w.api.call("PATCH", "/events/%s" % ev["id"], token=w.operator, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_edits_and_cancel_decide_the_next_claim(kw, kept_platform):
    ev = kw.event()
    first, _ = kw.player()
    assert kw.claim(first, ev["id"]).status_code == 201  # the worker keeps the event now

    # a condition added after: judged SUCCESS on the kept copy, the grant sees a newer version
    patch(kw, ev, {"conditions": [{"type": "LEVEL_ACHIEVE", "value": 50}]})
    second, uid = kw.player()
    r = kw.claim(second, ev["id"])
    assert r.status_code == 422 and r.json()["error"]["code"] == "CONDITION_NOT_MET", r.text

    # the condition dropped again: refused on the kept copy, judged again on the store's
    patch(kw, ev, {"conditions": []})
    r = kw.claim(second, ev["id"])
    assert r.status_code == 201, r.text

    # canceled: no claim pays after the cancel answered
    c = kw.api.post("/events/%s/cancel" % ev["id"], token=kw.operator, json={"reason": "wrong reward"})
    assert c.status_code == 200, c.text
    third, _ = kw.player()
    r = kw.claim(third, ev["id"])
    assert r.status_code == 422 and r.json()["error"]["code"] == "EVENT_NOT_ACTIVE", r.text
    assert r.json()["request"]["status"] == "FAILED"

    granted = kw.api.get("/events/ledger?eventId=%s" % ev["id"], token=kw.auditor).json()["items"]
    assert len(granted) == 2, "paid to the first and second players only"
    assert invariants.check(kept_platform.data_dir) == []


def test_an_edit_decides_the_next_claim_on_a_kept_event(kw):
    ev = kw.event()
    first, _ = kw.player()
    assert kw.claim(first, ev["id"]).json()["status"] == "SUCCESS"  # the worker keeps the event now
    patch(kw, ev, {"requiresApproval": True})
    second, _ = kw.player()
    r = kw.claim(second, ev["id"])
    assert r.status_code == 201 and r.json()["status"] == "AWAITING_REVIEW", r.text
