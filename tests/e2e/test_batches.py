"""Batch grants (DESIGN.md section 7): stored first, settled by the same grant transaction with
the operator as processor, counted per status and failure reason, idempotent by key, and
resumed after a crash."""
import os
import secrets
import signal

import pytest

import invariants
import players
from conftest import MODE, Client, World
from platform_proc import Platform, wait_for


def oid():
    return secrets.token_hex(12)


def batch(world, event_id, users, reason="compensation", headers=None, token=None):
    return world.api.post("/events/%s/batch-grants" % event_id, token=token or world.operator,
                          json={"userIds": users, "reason": reason}, headers=headers)


def settled(world, batch_id, timeout=120):
    def done():
        r = world.api.get("/events/batches/" + batch_id, token=world.operator)
        assert r.status_code == 200, r.text
        return r.json() if r.json()["status"] == "COMPLETED" else None
    return wait_for(done, timeout, "batch %s to complete" % batch_id)


def test_a_batch_pays_every_player_once_with_the_operator_as_processor(world, platform):
    ev = world.event()
    users = players.seed(platform.data_dir, 300)
    r = batch(world, ev["id"], users + users[:10])
    assert r.status_code == 202, r.text
    b = r.json()
    assert b["batchId"] == b["id"] and b["eventId"] == ev["id"]
    assert b["total"] == 300 and b["duplicates"] == 10
    assert b["counts"]["QUEUED"] + b["counts"]["SUCCESS"] == 300
    done = settled(world, b["id"])
    assert done["counts"] == {"QUEUED": 0, "SUCCESS": 300, "FAILED": 0}
    assert done["failures"] == {} and done["lastSettledAt"]
    reqs = world.api.get("/events/reward-requests", token=world.auditor,
                         params={"eventId": ev["id"], "userId": users[0]}).json()["items"]
    assert len(reqs) == 1
    assert reqs[0]["status"] == "SUCCESS" and reqs[0]["source"] == "BATCH"
    assert reqs[0]["batchId"] == b["id"] and reqs[0]["processorId"] == world.operator_id
    assert reqs[0]["notes"] == "compensation"
    ledger = world.api.get("/events/ledger", token=world.auditor,
                           params={"eventId": ev["id"], "limit": 100}).json()
    assert len(ledger["items"]) == 100 and ledger["nextCursor"]
    items = world.api.get("/events/batches/%s/items" % b["id"], token=world.auditor, params={"limit": 100}).json()
    assert [i["seq"] for i in items["items"]] == list(range(1, 101)) and items["nextCursor"] == "100"
    assert items["items"][0]["userId"] == users[0] and items["items"][0]["status"] == "SUCCESS"
    assert items["items"][0]["requestId"]
    nxt = world.api.get("/events/batches/%s/items" % b["id"], token=world.auditor,
                        params={"limit": 100, "cursor": items["nextCursor"]}).json()
    assert nxt["items"][0]["seq"] == 101
    assert invariants.check(platform.data_dir) == []


def test_refusals_are_counted_by_reason(world, platform):
    d = world.definition()
    ev = world.event(rewards=[{"rewardDefinitionId": d["id"], "quantity": 1, "stock": 5}])
    token, claimer = world.player()
    assert world.claim(token, ev["id"]).status_code == 201  # no conditions: the player may claim
    users = [claimer] + players.seed(platform.data_dir, 7)
    b = batch(world, ev["id"], users).json()
    done = settled(world, b["id"])
    # the claimer already holds the period's grant; 4 of the 5 units of stock were left
    assert done["counts"] == {"QUEUED": 0, "SUCCESS": 4, "FAILED": 4}, done
    assert done["failures"] == {"ALREADY_CLAIMED": 1, "OUT_OF_STOCK": 3}, done
    failed = world.api.get("/events/batches/%s/items" % b["id"], token=world.operator,
                           params={"status": "FAILED"}).json()["items"]
    assert len(failed) == 4
    first = next(i for i in failed if i["userId"] == claimer)
    assert first["failureReason"] == "ALREADY_CLAIMED" and first["requestId"]
    assert world.api.get("/events/%s" % ev["id"], token=world.operator).json()["rewards"][0]["stockLeft"] == 0
    assert invariants.check(platform.data_dir) == []


def test_the_same_idempotency_key_never_makes_a_second_batch(world, platform):
    ev = world.event()
    users = players.seed(platform.data_dir, 20)
    key = {"Idempotency-Key": "batch-" + oid()}
    first = batch(world, ev["id"], users, headers=key)
    again = batch(world, ev["id"], users, headers=key)
    assert first.status_code == 202 and again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    other = batch(world, ev["id"], users[:5], headers=key)
    assert other.status_code == 422 and other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    settled(world, first.json()["id"])
    n = invariants.status_counts(platform.data_dir, ev["id"])
    assert n == {"SUCCESS": 20}, n
    # without a key, a second post is a second batch: its items find the grants already made
    second = batch(world, ev["id"], users).json()
    assert second["id"] != first.json()["id"]
    assert settled(world, second["id"])["failures"] == {"ALREADY_CLAIMED": 20}


def test_batches_are_listed_newest_first_per_event(world):
    ev = world.event()
    first = batch(world, ev["id"], [oid()]).json()
    second = batch(world, ev["id"], [oid()]).json()
    r = world.api.get("/events/batches", token=world.auditor, params={"eventId": ev["id"]})
    assert r.status_code == 200, r.text
    assert [b["id"] for b in r.json()["items"]] == [second["id"], first["id"]]
    page = world.api.get("/events/batches", token=world.operator, params={"eventId": ev["id"], "limit": 1}).json()
    assert [b["id"] for b in page["items"]] == [second["id"]] and page["nextCursor"] == second["id"]
    rest = world.api.get("/events/batches", token=world.operator,
                         params={"eventId": ev["id"], "cursor": page["nextCursor"]}).json()
    assert [b["id"] for b in rest["items"]] == [first["id"]] and rest["nextCursor"] is None
    assert world.api.get("/events/batches", token=world.operator, params={"eventId": "x"}).status_code == 400
    player, _ = world.player()
    assert world.api.get("/events/batches", token=player).status_code == 403


@pytest.mark.parametrize("body, code", [
    ({"userIds": [], "reason": "x"}, "VALIDATION_FAILED"),
    ({"userIds": ["not-an-id"], "reason": "x"}, "VALIDATION_FAILED"),
    ({"userIds": ["ab" * 12]}, "VALIDATION_FAILED"),
    ({"userIds": ["ab" * 12], "reason": ""}, "VALIDATION_FAILED"),
    ({"userIds": ["ab" * 12], "reason": "x", "extra": 1}, "VALIDATION_FAILED"),
    ({"userIds": "ab" * 12, "reason": "x"}, "VALIDATION_FAILED"),
])
def test_bad_batches_are_refused_and_change_nothing(world, platform, body, code):
    ev = world.event()
    r = world.api.post("/events/%s/batch-grants" % ev["id"], token=world.operator, json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
    assert invariants.status_counts(platform.data_dir, ev["id"]) == {}


def test_batch_limits_roles_and_unknown_things(world):
    ev = world.event()
    too_many = ["%024x" % i for i in range(100001)]
    r = world.api.post("/events/%s/batch-grants" % ev["id"], token=world.operator,
                       json={"userIds": too_many, "reason": "x"})
    assert r.status_code == 400, r.text[:300]
    assert batch(world, oid(), [oid()]).status_code == 404
    assert batch(world, ev["id"], [oid()], token=world.auditor).status_code == 403
    player, _ = world.player()
    assert batch(world, ev["id"], [oid()], token=player).status_code == 403
    canceled = world.event()
    assert world.api.post("/events/%s/cancel" % canceled["id"], token=world.operator, json={}).status_code == 200
    r = batch(world, canceled["id"], [oid()])
    assert r.status_code == 422 and r.json()["error"]["code"] == "EVENT_CANCELED"
    r = world.api.get("/events/batches/" + oid(), token=world.auditor)
    assert r.status_code == 404 and r.json()["error"]["code"] == "BATCH_NOT_FOUND"
    assert world.api.get("/events/batches/" + oid(), token=player).status_code == 403
    assert world.api.get("/events/batches/nope/items", token=world.auditor).status_code == 404
    b = batch(world, ev["id"], [oid()]).json()
    r = world.api.get("/events/batches/%s/items" % b["id"], token=world.auditor, params={"status": "DONE"})
    assert r.status_code == 400
    r = world.api.get("/events/batches/%s/items" % b["id"], token=world.auditor, params={"cursor": "-1"})
    assert r.status_code == 400


def test_only_the_batch_route_takes_large_bodies(world):
    ev = world.event()
    ids = ["%024x" % i for i in range(100000)]
    body = {"userIds": ids, "reason": "x"}
    # 2.7 MB: too large for any other route (MAX_BODY_BYTES), within the batch route's 4 MiB
    r = world.api.post("/events", token=world.operator, json=body)
    assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    huge = world.api.call("POST", "/events/%s/batch-grants" % ev["id"], token=world.operator,
                          data=b'{"reason": "x", "userIds": [' + b'"' + b"a" * (5 * 1024 * 1024) + b'"]}',
                          headers={"Content-Type": "application/json"})
    assert huge.status_code == 413
    # the batch route reads and validates all 100,000 ids; a canceled event then refuses the batch
    # (so no 100,000 items are left running behind the other tests)
    assert world.api.post("/events/%s/cancel" % ev["id"], token=world.operator, json={}).status_code == 200
    r = batch(world, ev["id"], ids)
    assert r.status_code == 422 and r.json()["error"]["code"] == "EVENT_CANCELED", r.text[:300]


@pytest.mark.skipif(MODE != "embedded", reason="the embedded restart test runs its own platform once")
def test_sigkill_mid_batch_then_restart_resumes_exactly_once(tmp_path):
    # chunks of 50 (BATCH_CHUNK): a hundred units of work, so the kill lands between and inside them
    env = {"RATE_LIMIT_AUTH_RPS": "0", "RATE_LIMIT_RPS": "0", "BATCH_REDELIVER_MS": "3000", "BATCH_CHUNK": "50"}
    p = Platform(env, data_dir=str(tmp_path)).start()
    try:
        world = World(Client(p))
        ev = world.event()
        users = players.seed(p.data_dir, 5000)
        b = batch(world, ev["id"], users).json()

        def midway():
            c = world.api.get("/events/batches/" + b["id"], token=world.operator).json()["counts"]
            return c["SUCCESS"] > 200 and c["QUEUED"] > 0
        wait_for(midway, 120, "the batch to be under way")
        p.stop(sig=signal.SIGKILL)
        p = Platform(env, data_dir=str(tmp_path))
        p.secret, p.env["JWT_SECRET"] = world.api.p.secret, world.api.p.secret
        p.admin = world.api.p.admin
        p.env["ADMIN_USERNAME"], p.env["ADMIN_PASSWORD"] = p.admin
        p.start()
        world.api = Client(p)
        done = settled(world, b["id"], timeout=180)
        assert done["counts"] == {"QUEUED": 0, "SUCCESS": 5000, "FAILED": 0}, done
        assert invariants.status_counts(p.data_dir, ev["id"]) == {"SUCCESS": 5000}
        assert invariants.check(p.data_dir) == []
    finally:
        assert p.stop() == 0, p.log_tail()


@pytest.mark.skipif(MODE != "embedded", reason="runs its own embedded platform, twice")
def test_a_crash_in_the_middle_of_a_chunk_pays_nobody_twice(tmp_path):
    # a chunk of items is settled in one unit of work: the process dies inside it, after the
    # first item's grant was written and before the commit; the restart sends the chunk again
    env = {"RATE_LIMIT_AUTH_RPS": "0", "RATE_LIMIT_RPS": "0", "BATCH_REDELIVER_MS": "1000"}
    p = Platform(dict(env, RP_FAILPOINT="batch.mid_chunk"), data_dir=str(tmp_path)).start()
    try:
        world = World(Client(p))
        ev = world.event()
        users = players.seed(p.data_dir, 450)
        b = batch(world, ev["id"], users).json()
        assert p.proc.wait(timeout=60) == 70, p.log_tail()
        p.log.close()
        assert "failpoint batch.mid_chunk reached" in p.log_tail()
        assert invariants.status_counts(p.data_dir, ev["id"]) == {}, "the cut chunk left nothing behind"
        assert invariants.check(p.data_dir) == []
        p = Platform(env, data_dir=str(tmp_path))
        p.secret, p.env["JWT_SECRET"] = world.api.p.secret, world.api.p.secret
        p.admin = world.api.p.admin
        p.env["ADMIN_USERNAME"], p.env["ADMIN_PASSWORD"] = p.admin
        p.start()
        world.api = Client(p)
        done = settled(world, b["id"], timeout=120)
        assert done["counts"] == {"QUEUED": 0, "SUCCESS": 450, "FAILED": 0}, done
        assert invariants.status_counts(p.data_dir, ev["id"]) == {"SUCCESS": 450}
        assert invariants.check(p.data_dir) == []
    finally:
        assert p.stop() == 0, p.log_tail()
