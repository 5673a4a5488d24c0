"""Claim flows over HTTP: conditions, duplicates, approval, expiry, idempotency, reads."""
import datetime
import uuid

from conftest import iso, now_utc
import invariants


def test_unmet_then_met_then_success_then_duplicate(world, platform):
    ev = world.event(conditions=[{"type": "LEVEL_ACHIEVE", "value": 10, "description": "reach level 10"},
                                 {"type": "QUEST_COMPLETE", "value": "q-intro"}])
    token, uid = world.player()
    r = world.claim(token, ev["id"])
    assert r.status_code == 422
    body = r.json()
    assert body["error"]["code"] == "CONDITION_NOT_MET"
    unmet = {d["type"]: d for d in body["error"]["details"]}
    assert unmet["LEVEL_ACHIEVE"]["required"] == 10 and unmet["LEVEL_ACHIEVE"]["current"] == 0
    assert unmet["QUEST_COMPLETE"]["current"] is False
    assert body["request"]["status"] == "FAILED"
    assert body["request"]["failureReason"] == "CONDITION_NOT_MET"

    world.report({"userId": uid, "type": "LEVEL", "value": 12})
    r = world.claim(token, ev["id"])
    assert r.status_code == 422
    assert [d["type"] for d in r.json()["error"]["details"]] == ["QUEST_COMPLETE"]

    world.report({"userId": uid, "type": "QUEST_COMPLETE", "value": "q-intro"})
    r = world.claim(token, ev["id"])
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["status"] == "SUCCESS"
    assert req["userId"] == uid and req["eventId"] == ev["id"]
    assert req["claimedRewards"][0]["name"] == "Gold x100"
    assert req["processorId"] is None

    r = world.claim(token, ev["id"])
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "ALREADY_CLAIMED"
    assert r.json()["request"]["id"] == req["id"]

    mine = world.api.get("/events/reward-requests/me", token=token).json()["items"]
    assert [m["status"] for m in mine] == ["SUCCESS", "FAILED", "FAILED"]
    assert world.api.get("/events/reward-requests/%s" % req["id"], token=token).status_code == 200
    other, _ = world.player()
    assert world.api.get("/events/reward-requests/%s" % req["id"], token=other).status_code == 404
    assert invariants.check(platform.data_dir) == []


def test_any_logic(world):
    ev = world.event(conditionLogic="ANY", conditions=[{"type": "LEVEL_ACHIEVE", "value": 50},
                                                       {"type": "INVITE_FRIENDS", "value": 1}])
    token, uid = world.player()
    world.report({"userId": uid, "type": "INVITE", "value": "a" * 24})
    assert world.claim(token, ev["id"]).status_code == 201


def test_login_streak_in_game_days(world):
    t = now_utc()
    ev = world.event(start=t - datetime.timedelta(days=5), conditions=[{"type": "LOGIN_STREAK", "value": 3}])
    token, uid = world.player()
    world.report(*[{"userId": uid, "type": "LOGIN", "occurredAt": iso(t - datetime.timedelta(days=d))} for d in (0, 1)])
    r = world.claim(token, ev["id"])
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["current"] == 2
    world.report({"userId": uid, "type": "LOGIN", "occurredAt": iso(t - datetime.timedelta(days=2))})
    assert world.claim(token, ev["id"]).status_code == 201


def test_approval_flow(world, platform):
    ev = world.event(requiresApproval=True)
    token, uid = world.player()
    r = world.claim(token, ev["id"])
    assert r.status_code == 201
    req = r.json()
    assert req["status"] == "AWAITING_REVIEW"
    assert world.claim(token, ev["id"]).status_code == 409
    # a player cannot approve, an auditor cannot either
    assert world.api.post("/events/reward-requests/%s/approve" % req["id"], token=token).status_code == 403
    assert world.api.post("/events/reward-requests/%s/approve" % req["id"], token=world.auditor).status_code == 403
    r = world.api.post("/events/reward-requests/%s/approve" % req["id"], token=world.operator,
                       json={"notes": "checked the logs"})
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "SUCCESS"
    assert done["processorId"] == world.operator_id
    assert done["notes"] == "checked the logs"
    r = world.api.post("/events/reward-requests/%s/reject" % req["id"], token=world.operator)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "ALREADY_DECIDED"
    assert invariants.check(platform.data_dir) == []


def test_reject_frees_the_slot(world):
    ev = world.event(requiresApproval=True)
    token, _ = world.player()
    req = world.claim(token, ev["id"]).json()
    r = world.api.post("/events/reward-requests/%s/reject" % req["id"], token=world.admin, json={"notes": "bot"})
    assert r.status_code == 200
    assert r.json()["status"] == "FAILED" and r.json()["failureReason"] == "REJECTED"
    # FAILED requests do not hold the slot: the player may claim again
    assert world.claim(token, ev["id"]).json()["status"] == "AWAITING_REVIEW"


def test_expired_and_upcoming_and_canceled(world):
    t = now_utc()
    token, _ = world.player()
    past = world.event(start=t - datetime.timedelta(days=3), end=t - datetime.timedelta(days=1))
    r = world.claim(token, past["id"])
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "EVENT_NOT_ACTIVE"
    assert r.json()["request"]["status"] == "FAILED"
    future = world.event(start=t + datetime.timedelta(days=1), end=t + datetime.timedelta(days=2))
    assert world.claim(token, future["id"]).json()["error"]["code"] == "EVENT_NOT_ACTIVE"
    ev = world.event()
    r = world.api.post("/events/%s/cancel" % ev["id"], token=world.operator, json={"reason": "typo"})
    assert r.status_code == 200 and r.json()["status"] == "CANCELED"
    assert world.api.post("/events/%s/cancel" % ev["id"], token=world.operator).status_code == 409
    assert world.claim(token, ev["id"]).json()["error"]["code"] == "EVENT_NOT_ACTIVE"
    assert world.claim(token, "0" * 24).status_code == 404


def test_idempotency_key_replay_and_reuse(world):
    ev = world.event()
    token, _ = world.player()
    key = {"Idempotency-Key": "claim-" + uuid.uuid4().hex}
    first = world.claim(token, ev["id"], headers=key)
    assert first.status_code == 201
    again = world.claim(token, ev["id"], headers=key)
    assert again.status_code == 201
    assert again.json() == first.json()
    other = world.event()
    r = world.claim(token, other["id"], headers=key)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    # without the key, the duplicate is a 409
    assert world.claim(token, ev["id"]).status_code == 409


def test_daily_period_and_max_claims(world):
    ev = world.event(claimPeriod="DAILY", maxClaims=1)
    token, _ = world.player()
    assert world.claim(token, ev["id"]).status_code == 201
    assert world.claim(token, ev["id"]).status_code == 409


def test_revoke(world, platform):
    d = world.definition()
    ev = world.event(rewards=[{"rewardDefinitionId": d["id"], "quantity": 3, "stock": 10}])
    token, uid = world.player()
    req = world.claim(token, ev["id"]).json()
    assert world.api.post("/events/reward-requests/%s/revoke" % req["id"], token=world.operator).status_code == 400
    r = world.api.post("/events/reward-requests/%s/revoke" % req["id"], token=world.operator,
                       json={"reason": "granted by mistake"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "REVOKED"
    assert world.api.post("/events/reward-requests/%s/revoke" % req["id"], token=world.operator,
                          json={"reason": "again"}).json()["error"]["code"] == "NOT_REVOCABLE"
    led = world.api.get("/events/ledger", token=world.auditor, params={"userId": uid}).json()["items"]
    assert [(e["entryType"], e["quantity"]) for e in led] == [("GRANT", 3), ("REVERSAL", -3)]
    stock = world.api.get("/events/%s" % ev["id"], token=world.operator).json()["rewards"][0]["stockLeft"]
    assert stock == 10
    assert invariants.check(platform.data_dir) == []


def test_history_filters_and_feed(world):
    ev = world.event()
    token, uid = world.player()
    req = world.claim(token, ev["id"]).json()
    r = world.api.get("/events/reward-requests", token=world.auditor, params={"userId": uid, "status": "SUCCESS"})
    assert r.status_code == 200
    assert [i["id"] for i in r.json()["items"]] == [req["id"]]
    assert world.api.get("/events/reward-requests", token=token).status_code == 403
    assert world.api.get("/events/reward-requests", token=world.auditor, params={"status": "NOPE"}).status_code == 400
    feed = world.api.get("/events/grants/feed", token=world.game_server, params={"after": "0", "limit": "1000"})
    assert feed.status_code == 200
    assert req["id"] in [m["messageId"] for m in feed.json()["items"]]
    cursor = feed.json()["nextCursor"]
    assert world.api.get("/events/grants/feed", token=world.game_server, params={"after": cursor}).json()["items"] == []
