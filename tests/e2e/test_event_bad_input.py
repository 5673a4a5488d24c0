"""Hostile and malformed bodies on every event and reward route: 400 and nothing written."""
import sqlite3

import pytest

from conftest import iso, now_utc

TABLES = ["reward_definitions", "events", "event_rewards", "audit_logs", "progress_facts", "reward_requests",
          "reward_ledger", "outbox"]


def snapshot(platform):
    db = sqlite3.connect("file:%s/events.db?mode=ro" % platform.data_dir, uri=True, timeout=30)
    try:
        return {t: db.execute("SELECT count(*) FROM %s" % t).fetchone()[0] for t in TABLES}
    finally:
        db.close()


HUGE = ["x"] * 5000

CASES = [
    ("POST", "/events/reward-definitions", {"name": 5, "type": "CURRENCY", "value": 1}),
    ("POST", "/events/reward-definitions", {"type": "CURRENCY", "value": 1}),
    ("POST", "/events/reward-definitions", {"name": "a", "type": "GEM", "value": 1}),
    ("POST", "/events/reward-definitions", {"name": "a", "type": "ITEM", "value": 1, "admin": True}),
    ("POST", "/events/reward-definitions", {"name": {"$gt": ""}, "type": "ITEM", "value": 1}),
    ("POST", "/events/reward-definitions", {"name": "a", "type": "ITEM", "value": HUGE}),
    ("POST", "/events", {"title": "t"}),
    ("POST", "/events", {"title": "t", "startDate": 1, "endDate": 2, "rewards": HUGE}),
    ("POST", "/events", {"title": ["t"], "startDate": {"$gte": 0}, "endDate": None, "rewards": "all"}),
    ("POST", "/events/progress", {"facts": [{"userId": {"$ne": None}, "type": "LOGIN"}]}),
    ("POST", "/events/progress", {"facts": HUGE}),
    ("POST", "/events/progress", {"facts": "LOGIN"}),
    ("POST", "/events/progress", {"fact": []}),
]


@pytest.mark.parametrize("method,path,body", CASES, ids=[c[1] + "#" + str(i) for i, c in enumerate(CASES)])
def test_rejected_without_writes(world, platform, method, path, body):
    before = snapshot(platform)
    token = world.game_server if path == "/events/progress" else world.operator
    r = world.api.call(method, path, token=token, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] in ("VALIDATION_FAILED", "INVALID_JSON")
    assert snapshot(platform) == before


def test_bad_ids_and_bodies_on_item_routes(world, platform):
    ev = world.event()
    before = snapshot(platform)
    tok = world.operator
    checks = [
        ("PATCH", "/events/not-an-id", {"title": "x"}, 404),
        ("PATCH", "/events/%s" % ev["id"], {"title": 7}, 400),
        ("PATCH", "/events/%s" % ev["id"], {}, 400),
        ("PATCH", "/events/%s" % ev["id"], {"createdBy": "me"}, 400),
        ("POST", "/events/%s/cancel" % ev["id"], {"reason": {"$where": "1"}}, 400),
        ("PATCH", "/events/reward-definitions/%s" % ("f" * 24), {"name": "x"}, 404),
        ("POST", "/events/reward-requests/%s/approve" % ("f" * 24), None, 404),
        ("POST", "/events/reward-requests/zzz/reject", None, 404),
        ("POST", "/events/reward-requests/%s/approve" % ("f" * 24), {"notes": 5}, 400),
    ]
    for method, path, body, want in checks:
        r = world.api.call(method, path, token=tok, json=body)
        assert r.status_code == want, (path, body, r.status_code, r.text)
    player, _ = world.player()
    r = world.claim(player, ev["id"], headers=None)
    assert r.status_code == 201
    after_claim = snapshot(platform)
    r = world.api.post("/events/%s/reward-requests" % ev["id"], token=player, json={"userId": "someone-else"})
    assert r.status_code == 400
    assert snapshot(platform) == after_claim
    for q in [{"limit": "0"}, {"limit": "abc"}, {"cursor": "../../"}, {"from": "yesterday"}]:
        r = world.api.get("/events/reward-requests", token=world.auditor, params=q)
        assert r.status_code == 400, q
    assert before["events"] == snapshot(platform)["events"]
