"""Eligibility, batch dry runs, unknown players in batches, no self-decision and no payout for a
canceled event's approval (issue 11). Eligibility and dry runs write nothing and must agree with
the claim or batch that follows them: every case asks first, then does it, and compares."""
import datetime
import secrets
import sqlite3
import time


import invariants
import players
from conftest import now_utc


def oid():
    return secrets.token_hex(12)


def eligibility(world, event_id, token, user_id=None):
    params = {"userId": user_id} if user_id else None
    return world.api.get("/events/%s/eligibility" % event_id, token=token, params=params)


def footprint(world, platform, event_id):
    """What a read must leave as it is: the event's requests and stock, the ledger's length."""
    ev = world.api.get("/events/%s" % event_id, token=world.operator).json()
    ledger = world.api.get("/events/ledger", token=world.auditor, params={"eventId": event_id, "limit": 100}).json()
    batches = world.api.get("/events/batches", token=world.operator, params={"eventId": event_id}).json()
    return (invariants.status_counts(platform.data_dir, event_id), [r.get("stockLeft") for r in ev["rewards"]],
            len(ledger["items"]), [b["id"] for b in batches["items"]])


def earlier_claim(platform, user_id, event_id):
    """A request of user_id held in an earlier period of the event (AWAITING_REVIEW, so nothing is
    paid): made in the store, since a test cannot wait for the next game day."""
    now = int(time.time() * 1000)
    period = "D:2000-01-01"
    db = sqlite3.connect("%s/events.db" % platform.data_dir, timeout=30)
    try:
        with db:
            db.execute("INSERT INTO reward_requests (id, user_id, event_id, period_key, active_key, status, "
                       "claimed_rewards, requested_at, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?, ?, 'AWAITING_REVIEW', '[]', ?, ?, ?)",
                       (oid(), user_id, event_id, period, "%s:%s:%s" % (user_id, event_id, period), now, now, now))
    finally:
        db.close()


def agree(world, platform, event_id, token, user_id, reason, status):
    """Eligibility says reason, writes nothing, and the claim that follows answers status with the
    same code; returns (eligibility body, claim response)."""
    before = footprint(world, platform, event_id)
    r = eligibility(world, event_id, token)
    assert r.status_code == 200, r.text
    e = r.json()
    assert e["eventId"] == event_id and e["userId"] == user_id
    assert e["reason"] == reason and e["eligible"] == (reason is None), e
    by_staff = eligibility(world, event_id, world.auditor, user_id)
    assert by_staff.status_code == 200 and by_staff.json() == e
    assert footprint(world, platform, event_id) == before, "an eligibility check wrote something"
    c = world.claim(token, event_id)
    assert c.status_code == status, c.text
    if reason is not None:
        assert c.json()["error"]["code"] == reason
    return e, c


def test_eligibility_agrees_with_the_claim_for_every_reason(world, platform):
    t = now_utc()
    d = world.definition()
    token, uid = world.player()

    ev = world.event(rewards=[{"rewardDefinitionId": d["id"], "quantity": 1, "stock": 5}])
    e, c = agree(world, platform, ev["id"], token, uid, None, 201)
    assert e["unmet"] == [] and e["existingRequestId"] is None and e["stockLeft"] == 5
    assert e["periodKey"] == "ONCE"
    e, c2 = agree(world, platform, ev["id"], token, uid, "ALREADY_CLAIMED", 409)
    assert e["existingRequestId"] == c.json()["id"] == c2.json()["request"]["id"]
    assert e["stockLeft"] == 4

    upcoming = world.event(start=t + datetime.timedelta(days=1), end=t + datetime.timedelta(days=2))
    agree(world, platform, upcoming["id"], token, uid, "EVENT_NOT_ACTIVE", 422)
    finished = world.event(start=t - datetime.timedelta(days=3), end=t - datetime.timedelta(days=1))
    agree(world, platform, finished["id"], token, uid, "EVENT_NOT_ACTIVE", 422)

    cond = world.event(conditions=[{"type": "LEVEL_ACHIEVE", "value": 10}, {"type": "QUEST_COMPLETE", "value": "q1"}])
    world.report({"userId": uid, "type": "LEVEL", "value": 3})
    e, c = agree(world, platform, cond["id"], token, uid, "CONDITION_NOT_MET", 422)
    assert e["unmet"] and e["unmet"] == c.json()["error"]["details"]
    assert e["stockLeft"] is None, "no limited reward"

    scarce = world.event(rewards=[{"rewardDefinitionId": d["id"], "quantity": 1, "stock": 1}])
    other, _ = world.player()
    assert world.claim(other, scarce["id"]).status_code == 201
    e, _ = agree(world, platform, scarce["id"], token, uid, "OUT_OF_STOCK", 422)
    assert e["stockLeft"] == 0

    capped = world.event(claimPeriod="DAILY", maxClaims=1)
    earlier_claim(platform, uid, capped["id"])
    e, _ = agree(world, platform, capped["id"], token, uid, "MAX_CLAIMS_REACHED", 422)
    assert e["periodKey"].startswith("D:")
    assert invariants.check(platform.data_dir) == []


def test_eligibility_of_a_disabled_account(world, platform):
    ev = world.event()
    token, uid = world.player()
    r = world.api.call("PUT", "/auth/users/%s/status" % uid, token=world.admin,
                       json={"disabled": True, "reason": "eligibility test"})
    assert r.status_code == 200, r.text
    r = eligibility(world, ev["id"], world.operator, uid)
    assert r.status_code == 200 and r.json()["reason"] == "ACCOUNT_DISABLED" and not r.json()["eligible"]
    # and the claim that follows is refused too: the api process that disabled the account
    # forgets its state at once, so the player's token is dead (a claim through another api
    # process is refused within SESSION_CACHE_MS: test_account_security.py)
    r = world.claim(token, ev["id"])
    assert r.status_code == 401 and r.json()["error"]["code"] == "ACCOUNT_DISABLED", r.text
    assert invariants.check(platform.data_dir) == []


def test_eligibility_who_may_ask(world):
    ev = world.event()
    token, uid = world.player()
    assert eligibility(world, ev["id"], token, uid).status_code == 200, "a player may name himself"
    other, other_id = world.player()
    r = eligibility(world, ev["id"], token, other_id)
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    r = eligibility(world, ev["id"], world.operator)
    assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_FAILED"
    assert eligibility(world, ev["id"], world.game_server, uid).status_code == 403
    assert eligibility(world, ev["id"], None, uid).status_code == 401
    r = eligibility(world, ev["id"], world.operator, oid())
    assert r.status_code == 404 and r.json()["error"]["code"] == "USER_NOT_FOUND"
    assert eligibility(world, ev["id"], world.operator, "nope").status_code == 400
    r = eligibility(world, oid(), world.operator, uid)
    assert r.status_code == 404 and r.json()["error"]["code"] == "EVENT_NOT_FOUND"


def batch(world, event_id, users, dry=False):
    return world.api.post("/events/%s/batch-grants" % event_id, token=world.operator,
                          params={"dryRun": "true"} if dry else None, json={"userIds": users, "reason": "dry run test"})


def test_a_dry_run_counts_what_the_batch_then_settles_and_writes_nothing(world, platform):
    d = world.definition()
    ev = world.event(claimPeriod="DAILY", maxClaims=1,
                     rewards=[{"rewardDefinitionId": d["id"], "quantity": 1, "stock": 4}])
    token, claimer = world.player()
    assert world.claim(token, ev["id"]).status_code == 201  # 3 units left
    seeded = players.seed(platform.data_dir, 6)
    earlier_claim(platform, seeded[0], ev["id"])  # seeded[0] has used his one claim
    unknown = [oid(), oid()]
    users = [claimer, seeded[0]] + seeded[1:] + unknown + [seeded[1]]  # seeded[1] twice: counted once
    before = footprint(world, platform, ev["id"])
    r = batch(world, ev["id"], users, dry=True)
    assert r.status_code == 200, r.text
    assert r.json() == {"dryRun": True, "items": 9, "expected": {
        "SUCCESS": 3, "ALREADY_CLAIMED": 1, "UNKNOWN_PLAYER": 2, "OUT_OF_STOCK": 2, "MAX_CLAIMS_REACHED": 1,
        "ACCOUNT_DISABLED": 0}}, r.json()
    assert footprint(world, platform, ev["id"]) == before, "a dry run wrote something"

    real = batch(world, ev["id"], users)
    assert real.status_code == 202, real.text
    done = settled(world, real.json()["id"])
    failures = dict(done["failures"])
    assert done["counts"]["SUCCESS"] == 3
    assert failures == {"ALREADY_CLAIMED": 1, "UNKNOWN_PLAYER": 2, "OUT_OF_STOCK": 2, "MAX_CLAIMS_REACHED": 1}
    assert invariants.check(platform.data_dir) == []


def test_a_dry_run_is_validated_like_the_batch(world, platform):
    ev = world.event()
    before = footprint(world, platform, ev["id"])
    for body in ({"userIds": [], "reason": "x"}, {"userIds": ["nope"], "reason": "x"}, {"userIds": [oid()]}):
        dry = world.api.post("/events/%s/batch-grants" % ev["id"], token=world.operator,
                             params={"dryRun": "true"}, json=body)
        real = world.api.post("/events/%s/batch-grants" % ev["id"], token=world.operator, json=body)
        assert dry.status_code == real.status_code == 400, (dry.text, real.text)
        assert dry.json()["error"] == real.json()["error"]
    r = world.api.post("/events/%s/batch-grants" % ev["id"], token=world.operator, params={"dryRun": "maybe"},
                       json={"userIds": [oid()], "reason": "x"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_FAILED"
    r = world.api.post("/events/%s/batch-grants" % ev["id"], token=world.auditor, params={"dryRun": "true"},
                       json={"userIds": [oid()], "reason": "x"})
    assert r.status_code == 403
    # one rehearsal holds the store's write lock until it rolls back: it is bounded
    r = world.api.post("/events/%s/batch-grants" % ev["id"], token=world.operator, params={"dryRun": "true"},
                       json={"userIds": [oid() for _ in range(10001)], "reason": "x"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "DRY_RUN_TOO_LARGE", r.text
    assert footprint(world, platform, ev["id"]) == before


def settled(world, batch_id):
    from platform_proc import wait_for

    def done():
        b = world.api.get("/events/batches/" + batch_id, token=world.operator).json()
        return b if b["status"] == "COMPLETED" else None
    return wait_for(done, 120, "batch %s to complete" % batch_id)


def test_batch_items_of_unknown_players_fail_unknown_player(world, platform):
    ev = world.event()
    known = players.seed(platform.data_dir, 3)
    unknown = [oid() for _ in range(4)]
    r = batch(world, ev["id"], unknown[:2] + known + unknown[2:])
    assert r.status_code == 202, r.text
    done = settled(world, r.json()["id"])
    assert done["counts"] == {"QUEUED": 0, "SUCCESS": 3, "FAILED": 4}, done
    assert done["failures"] == {"UNKNOWN_PLAYER": 4}
    items = world.api.get("/events/batches/%s/items" % r.json()["id"], token=world.operator,
                          params={"status": "FAILED"}).json()["items"]
    assert sorted(i["userId"] for i in items) == sorted(unknown)
    assert all(i["failureReason"] == "UNKNOWN_PLAYER" and i["requestId"] is None for i in items)
    assert invariants.status_counts(platform.data_dir, ev["id"]) == {"SUCCESS": 3}


def test_nobody_approves_or_rejects_his_own_request(world, platform):
    ev = world.event(requiresApproval=True)
    token, uid = world.api.with_roles(["USER", "OPERATOR"], "selfop")
    req = world.claim(token, ev["id"])
    assert req.status_code == 201 and req.json()["status"] == "AWAITING_REVIEW", req.text
    rid = req.json()["id"]
    for action in ("approve", "reject"):
        r = world.api.post("/events/reward-requests/%s/%s" % (rid, action), token=token, json={})
        assert r.status_code == 403 and r.json()["error"]["code"] == "SELF_DECISION", r.text
    got = world.api.get("/events/reward-requests/%s" % rid, token=world.operator).json()
    assert got["status"] == "AWAITING_REVIEW" and got["processorId"] is None
    assert invariants.status_counts(platform.data_dir, ev["id"]) == {"AWAITING_REVIEW": 1}
    # someone else decides it
    r = world.api.post("/events/reward-requests/%s/approve" % rid, token=world.operator, json={})
    assert r.status_code == 200 and r.json()["status"] == "SUCCESS"


def test_approval_after_cancel_pays_nothing(world, platform):
    d = world.definition()
    ev = world.event(requiresApproval=True, rewards=[{"rewardDefinitionId": d["id"], "quantity": 1, "stock": 3}])
    token, _ = world.player()
    rid = world.claim(token, ev["id"]).json()["id"]
    assert world.api.post("/events/%s/cancel" % ev["id"], token=world.operator, json={}).status_code == 200
    r = world.api.post("/events/reward-requests/%s/approve" % rid, token=world.operator, json={})
    # refused: by the approval itself (422), or because the cancel already settled the request (409)
    assert (r.status_code, r.json()["error"]["code"]) in ((422, "EVENT_CANCELED"), (409, "ALREADY_DECIDED")), r.text
    got = world.api.get("/events/reward-requests/%s" % rid, token=world.operator).json()
    assert got["status"] == "FAILED" and got["failureReason"] == "EVENT_CANCELED"
    ledger = world.api.get("/events/ledger", token=world.auditor, params={"eventId": ev["id"]}).json()["items"]
    assert ledger == []
    assert world.api.get("/events/%s" % ev["id"], token=world.operator).json()["rewards"][0]["stockLeft"] == 3
    feed = world.api.get("/events/grants/feed", token=world.game_server, params={"after": "0", "limit": "1000"})
    assert rid not in [m["messageId"] for m in feed.json()["items"]]
    assert invariants.check(platform.data_dir) == []


def test_eligibility_answers_exactly_the_designed_keys(world):
    ev = world.event(start=now_utc() - datetime.timedelta(hours=1))
    token, uid = world.player()
    e = eligibility(world, ev["id"], token).json()
    assert set(e) == {"eventId", "userId", "eligible", "reason", "unmet", "periodKey", "existingRequestId",
                      "stockLeft"}
