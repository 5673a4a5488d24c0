"""Claims judged on kept events: a reward worker keeps the events it judged claims on for
EVENTS_CACHE_MS (10 s here, so that every step below runs while the event is kept), yet an edit
or a cancellation that committed before a claim decides that claim at once: the grant checks the
event's version in its own unit of work, and a refusal is judged again on a fresh read."""
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import MODE, Client, World
import invariants
from platform_proc import Cluster, Platform, wait_for


@pytest.fixture(scope="module")
def hold_file(tmp_path_factory):
    return str(tmp_path_factory.mktemp("hold") / "hold")


@pytest.fixture(scope="module")
def kept_platform(hold_file):
    # a claim waits between its judgement and its grant while hold_file exists (failpoint)
    env = {"RATE_LIMIT_AUTH_RPS": "0", "RATE_LIMIT_RPS": "0", "LOGIN_GLOBAL_RPS": "0", "EVENTS_CACHE_MS": "10000",
           "PASSWORD_HASH": "min", "RP_FAILPOINT": "claim.judged", "RP_FAILPOINT_HOLD": hold_file}
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


def test_an_edit_between_the_judgement_and_the_grant_decides_the_claim(kw, kept_platform, hold_file):
    """The window every claim has, kept copy or not: judged SUCCESS, then the operator adds a
    condition before the grant commits. The grant sees another version, and the claim is judged
    again on the event as it is now."""
    ev = kw.event()
    player, _ = kw.player()
    reached = "failpoint claim.judged reached"
    before = kept_platform.log_tail(100000).count(reached)
    open(hold_file, "w").close()
    with ThreadPoolExecutor(1) as pool:
        try:
            claim = pool.submit(kw.claim, player, ev["id"])
            wait_for(lambda: kept_platform.log_tail(100000).count(reached) > before, 30, "the claim to be judged")
            patch(kw, ev, {"conditions": [{"type": "LEVEL_ACHIEVE", "value": 50}]})
        finally:
            os.unlink(hold_file)
        r = claim.result(timeout=60)
    assert r.status_code == 422 and r.json()["error"]["code"] == "CONDITION_NOT_MET", r.text
    paid = kw.api.get("/events/ledger?eventId=%s" % ev["id"], token=kw.auditor).json()["items"]
    assert paid == [], "nothing paid against the version the claim was first judged on"
