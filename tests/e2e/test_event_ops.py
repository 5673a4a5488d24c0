"""Event operations over HTTP: end and start now, clone, the fields that freeze once players hold a
claim, a cancel that settles pending reviews, progress keys scoped to their player, and progress
refused for players without an account."""
import datetime
import secrets
import sqlite3
import uuid

from conftest import iso, now_utc


def count_rows(platform, table):
    db = sqlite3.connect("file:%s/events.db?mode=ro" % platform.data_dir, uri=True, timeout=30)
    try:
        return db.execute("SELECT count(*) FROM %s" % table).fetchone()[0]
    finally:
        db.close()


def audit_of(world, event_id):
    r = world.api.get("/events/audit-log", token=world.auditor, params={"targetId": event_id})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def parse(ts):
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))


# ---- end and start ----

def test_end_an_active_event_now(world):
    ev = world.event()
    before = now_utc()
    r = world.api.post("/events/%s/end" % ev["id"], token=world.operator)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "FINISHED" and body["id"] == ev["id"]
    assert before - datetime.timedelta(seconds=1) <= parse(body["endDate"]) <= now_utc()
    assert body["startDate"] == ev["startDate"]
    token, _ = world.player()
    assert world.claim(token, ev["id"]).json()["error"]["code"] == "EVENT_NOT_ACTIVE"
    again = world.api.post("/events/%s/end" % ev["id"], token=world.operator)
    assert again.status_code == 422 and again.json()["error"]["code"] == "EVENT_NOT_ACTIVE"
    start = world.api.post("/events/%s/start" % ev["id"], token=world.operator)
    assert start.status_code == 422 and start.json()["error"]["code"] == "EVENT_NOT_UPCOMING"
    log = audit_of(world, ev["id"])
    assert [e["action"] for e in log] == ["event.end", "event.create"]
    assert log[0]["before"]["endDate"] == ev["endDate"] and log[0]["after"]["endDate"] == body["endDate"]
    assert log[0]["actor"]["id"] == world.operator_id


def test_start_an_upcoming_event_now(world):
    t = now_utc()
    ev = world.event(start=t + datetime.timedelta(days=2), end=t + datetime.timedelta(days=4))
    assert ev["status"] == "UPCOMING"
    end = world.api.post("/events/%s/end" % ev["id"], token=world.operator)
    assert end.status_code == 422 and end.json()["error"]["code"] == "EVENT_NOT_ACTIVE"
    r = world.api.post("/events/%s/start" % ev["id"], token=world.admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ACTIVE" and body["endDate"] == ev["endDate"]
    assert parse(body["startDate"]) <= now_utc()
    token, _ = world.player()
    assert world.claim(token, ev["id"]).status_code == 201, "the event takes claims at once"
    log = audit_of(world, ev["id"])
    assert log[0]["action"] == "event.start"
    assert log[0]["before"]["startDate"] == ev["startDate"] and log[0]["after"]["startDate"] == body["startDate"]
    again = world.api.post("/events/%s/start" % ev["id"], token=world.operator)
    assert again.status_code == 422 and again.json()["error"]["code"] == "EVENT_NOT_UPCOMING"


def test_end_and_start_refuse_canceled_unknown_and_players(world):
    t = now_utc()
    active = world.event()
    upcoming = world.event(start=t + datetime.timedelta(days=1), end=t + datetime.timedelta(days=2))
    for ev in (active, upcoming):
        assert world.api.post("/events/%s/cancel" % ev["id"], token=world.operator).status_code == 200
    for ev, op, code in ((active, "end", "EVENT_NOT_ACTIVE"), (upcoming, "start", "EVENT_NOT_UPCOMING")):
        r = world.api.post("/events/%s/%s" % (ev["id"], op), token=world.operator)
        assert r.status_code == 422 and r.json()["error"]["code"] == code, r.text
        assert world.api.get("/events/%s" % ev["id"], token=world.operator).json()["status"] == "CANCELED"
        assert [e["action"] for e in audit_of(world, ev["id"])] == ["event.cancel", "event.create"]
    unknown = secrets.token_hex(12)
    for op in ("end", "start"):
        assert world.api.post("/events/%s/%s" % (unknown, op), token=world.operator).status_code == 404
    token, _ = world.player()
    assert world.api.post("/events/%s/end" % active["id"], token=token).status_code == 403


# ---- clone ----

def test_clone_copies_the_rules_with_full_stock_and_audits_the_source(world):
    d = world.definition()
    src = world.event(rewards=[{"rewardDefinitionId": d["id"], "quantity": 2, "stock": 5,
                                "customData": {"tier": "gold"}}],
                      description="week 1", conditions=[{"type": "LEVEL_ACHIEVE", "value": 3}],
                      conditionLogic="ANY", claimPeriod="DAILY", maxClaims=4, dayOffsetMinutes=0)
    token, uid = world.player()
    world.report({"userId": uid, "type": "LEVEL", "value": 3})
    assert world.claim(token, src["id"]).status_code == 201  # quantity 2: the source's stock goes down to 3
    t = now_utc().replace(microsecond=0)  # times are kept to the millisecond
    body = {"title": "Week 2", "startDate": iso(t + datetime.timedelta(days=7)),
            "endDate": iso(t + datetime.timedelta(days=14))}
    r = world.api.post("/events/%s/clone" % src["id"], token=world.admin, json=body)
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["id"] != src["id"] and c["title"] == "Week 2" and c["status"] == "UPCOMING"
    assert parse(c["startDate"]) == parse(body["startDate"]) and parse(c["endDate"]) == parse(body["endDate"])
    for k in ("description", "conditions", "conditionLogic", "claimPeriod", "maxClaims", "requiresApproval",
              "dayOffsetMinutes"):
        assert c[k] == src[k], k
    admin_id = world.api.get("/auth/me", token=world.admin).json()["id"]
    assert c["createdBy"] == admin_id
    rw = c["rewards"][0]
    assert rw["rewardDefinitionId"] == d["id"] and rw["quantity"] == 2 and rw["customData"] == {"tier": "gold"}
    assert rw["stock"] == 5 and rw["stockLeft"] == 5, "a clone starts with its full stock"
    got = world.api.get("/events/%s" % src["id"], token=world.operator).json()
    assert got["rewards"][0]["stockLeft"] == 3, "the source is untouched"
    log = audit_of(world, c["id"])
    assert [e["action"] for e in log] == ["event.clone"]
    assert log[0]["after"]["clonedFrom"] == src["id"] and log[0]["actor"]["id"] == admin_id


def test_clone_validates_like_a_creation(world, platform):
    src = world.event()
    t = now_utc()
    before = count_rows(platform, "events")
    bad = [({"title": "x", "startDate": iso(t), "endDate": iso(t - datetime.timedelta(days=1))}, 400),
           ({"title": "x", "startDate": iso(t)}, 400),
           ({"title": "", "startDate": iso(t), "endDate": iso(t + datetime.timedelta(days=1))}, 400),
           ({"title": "x", "startDate": "tomorrow", "endDate": iso(t + datetime.timedelta(days=1))}, 400),
           ({"title": "x", "startDate": iso(t), "endDate": iso(t + datetime.timedelta(days=1)), "rewards": []}, 400)]
    for body, status in bad:
        r = world.api.post("/events/%s/clone" % src["id"], token=world.operator, json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["code"] == "VALIDATION_FAILED"
    ok = {"title": "x", "startDate": iso(t), "endDate": iso(t + datetime.timedelta(days=1))}
    r = world.api.post("/events/%s/clone" % secrets.token_hex(12), token=world.operator, json=ok)
    assert r.status_code == 404 and r.json()["error"]["code"] == "EVENT_NOT_FOUND"
    token, _ = world.player()
    assert world.api.post("/events/%s/clone" % src["id"], token=token, json=ok).status_code == 403
    assert count_rows(platform, "events") == before, "no refused clone wrote an event"


# ---- frozen fields ----

FROZEN = [("claimPeriod", "DAILY"), ("dayOffsetMinutes", 0), ("rewards", None)]


def test_frozen_fields_only_after_a_request_that_holds_a_slot(world):
    d = world.definition()
    ev = world.event(conditions=[{"type": "LEVEL_ACHIEVE", "value": 5}],
                     rewards=[{"rewardDefinitionId": d["id"], "quantity": 1, "stock": 10}])
    token, uid = world.player()
    # a refused claim records a FAILED request, which holds no slot: nothing freezes
    assert world.claim(token, ev["id"]).json()["error"]["code"] == "CONDITION_NOT_MET"
    changes = {"claimPeriod": "WEEKLY", "dayOffsetMinutes": 60,
               "rewards": [{"rewardDefinitionId": d["id"], "quantity": 2, "stock": 20}]}
    for field, value in changes.items():
        r = world.api.call("PATCH", "/events/%s" % ev["id"], token=world.operator, json={field: value})
        assert r.status_code == 200, (field, r.text)
    world.report({"userId": uid, "type": "LEVEL", "value": 5})
    assert world.claim(token, ev["id"]).status_code == 201
    current = world.api.get("/events/%s" % ev["id"], token=world.operator).json()
    others = {"claimPeriod": "DAILY", "dayOffsetMinutes": 0,
              "rewards": [{"rewardDefinitionId": d["id"], "quantity": 3, "stock": 20}]}
    for field, value in others.items():
        r = world.api.call("PATCH", "/events/%s" % ev["id"], token=world.operator, json={field: value})
        assert r.status_code == 409 and r.json()["error"]["code"] == "EVENT_HAS_CLAIMS", (field, r.text)
    after = world.api.get("/events/%s" % ev["id"], token=world.operator).json()
    for field in others:
        assert after[field] == current[field], field
    # the current values again are no change; other fields stay editable
    same = {"claimPeriod": current["claimPeriod"], "dayOffsetMinutes": current["dayOffsetMinutes"],
            "rewards": [{"rewardDefinitionId": d["id"], "quantity": 2, "stock": 20}], "title": "Still editable"}
    r = world.api.call("PATCH", "/events/%s" % ev["id"], token=world.operator, json=same)
    assert r.status_code == 200, r.text
    assert r.json()["title"] == "Still editable"
    assert r.json()["rewards"][0]["stockLeft"] == 18, "unchanged rewards keep their stock (20 less the claim of 2)"


# ---- cancel settles reviews ----

def test_cancel_settles_pending_reviews(world):
    ev = world.event(requiresApproval=True)
    token, uid = world.player()
    r = world.claim(token, ev["id"])
    assert r.status_code == 201 and r.json()["status"] == "AWAITING_REVIEW", r.text
    req = r.json()
    c = world.api.post("/events/%s/cancel" % ev["id"], token=world.operator, json={"reason": "broken"})
    assert c.status_code == 200, c.text
    assert c.json()["status"] == "CANCELED" and c.json()["settledRequests"] == 1
    got = world.api.get("/events/reward-requests/%s" % req["id"], token=world.auditor).json()
    assert got["status"] == "FAILED" and got["failureReason"] == "EVENT_CANCELED"
    assert got["processorId"] == world.operator_id and got["processedAt"]
    a = world.api.post("/events/reward-requests/%s/approve" % req["id"], token=world.admin)
    assert a.status_code in (409, 422), a.text
    again = world.api.get("/events/reward-requests/%s" % req["id"], token=world.auditor).json()
    assert again["status"] == "FAILED"
    ledger = world.api.get("/events/ledger", token=world.auditor, params={"eventId": ev["id"]}).json()
    assert ledger["items"] == [], "nothing was paid"


# ---- progress keys scoped to their player ----

def test_progress_keys_belong_to_their_player(world):
    _, a = world.player()
    _, b = world.player()
    key, at = uuid.uuid4().hex, iso(now_utc())
    fact = {"userId": a, "type": "LEVEL", "value": 3, "idempotencyKey": key, "occurredAt": at}
    assert world.report(fact) == {"accepted": 1, "duplicates": 0}
    assert world.report(dict(fact, userId=b, value=4)) == {"accepted": 1, "duplicates": 0}, "B may use A's key"
    assert world.report(fact) == {"accepted": 0, "duplicates": 1}, "the same fact again is a duplicate"
    login = {"userId": a, "type": "LOGIN", "idempotencyKey": uuid.uuid4().hex, "occurredAt": at}
    for other in (dict(fact, value=9), dict(fact, occurredAt=iso(now_utc() - datetime.timedelta(hours=1))),
                  dict(fact, type="LOGIN", value=None)):
        r = world.api.post("/events/progress", token=world.game_server, json={"facts": [login, other]})
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["code"] == "IDEMPOTENCY_KEY_REUSED" and err["details"][0]["field"] == "/facts/1/idempotencyKey"
    pa = world.api.get("/events/progress/%s" % a, token=world.auditor).json()
    pb = world.api.get("/events/progress/%s" % b, token=world.auditor).json()
    assert pa["maxLevel"] == 3 and pa["loginDays"] == 0, "nothing of a refused report was recorded"
    assert pb["maxLevel"] == 4


# ---- unknown players ----

def test_progress_for_a_player_without_an_account_is_refused_whole(world, platform):
    _, known = world.player()
    ghost = secrets.token_hex(12)
    before = count_rows(platform, "progress_facts")
    facts = [{"userId": known, "type": "LEVEL", "value": 5},
             {"userId": ghost, "type": "LOGIN"},
             {"userId": ghost, "type": "LEVEL", "value": 2}]
    body = {"facts": [dict(f, idempotencyKey=uuid.uuid4().hex, occurredAt=iso(now_utc())) for f in facts]}
    r = world.api.post("/events/progress", token=world.game_server, json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "UNKNOWN_PLAYER"
    assert [d["userId"] for d in err["details"]] == [ghost], "each unknown id once, the known one not"
    assert err["details"][0]["field"] == "/facts/1/userId"
    assert count_rows(platform, "progress_facts") == before
    assert world.api.get("/events/progress/%s" % known, token=world.auditor).json()["maxLevel"] == 0
    # the known player alone goes through
    assert world.report(facts[0]) == {"accepted": 1, "duplicates": 0}
