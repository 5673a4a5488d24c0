"""Signed webhooks (DESIGN.md section 10) against a local receiver on 127.0.0.1: endpoints, the
signature checked by an independent implementation (Python's hmac), at-least-once delivery
through a receiver that is down, failing, hanging or redirecting, a dispatcher killed with
SIGKILL mid-delivery, and the SSRF guard. Each module platform runs with short timeouts and a
short retry schedule, so no test waits for the production schedule."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

import players
from conftest import MODE, Client, World
from platform_proc import ROOT, Cluster, Platform, free_port, wait_for
from webhook_receiver import Receiver, verify

# 16 attempts spread over about 14 s: long enough for a receiver that is down for a while
SCHEDULE = "0,100ms,250ms,500ms,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,2s"
HOOK_ENV = {"RATE_LIMIT_AUTH_RPS": "0", "RATE_LIMIT_RPS": "0", "WEBHOOK_ALLOW_PRIVATE": "1", "WEBHOOK_ALLOW_HTTP": "1",
            "WEBHOOK_TIMEOUT_MS": "1500", "WEBHOOK_CONNECT_TIMEOUT_MS": "500", "WEBHOOK_RETRY_SCHEDULE": SCHEDULE,
            "BATCH_REDELIVER_MS": "5000", "PASSWORD_HASH": "min"}
ALL_TYPES = ["reward.granted", "reward.revoked", "reward.awaiting_review", "batch.completed", "event.canceled",
             "event.ended", "webhook.ping"]


def start_platform(env):
    return (Cluster(env) if MODE == "cluster" else Platform(env)).start()


@pytest.fixture(scope="module")
def hp():
    p = start_platform(HOOK_ENV)
    yield p
    code = p.stop()
    assert code == 0, "platform exited with %s:\n%s" % (code, p.log_tail())


@pytest.fixture(scope="module")
def hw(hp):
    return World(Client(hp))


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def create(world, url, types=("reward.granted",), token=None):
    r = world.api.post("/events/webhooks", token=token or world.operator, json={"url": url, "types": list(types)})
    assert r.status_code == 201, r.text
    return r.json()


def deliveries(world, hook_id, **params):
    r = world.api.get("/events/webhooks/%s/deliveries" % hook_id, token=world.operator, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def grant(world, event_id):
    token, uid = world.player()
    r = world.claim(token, event_id)
    assert r.status_code == 201, r.text
    return r.json()


# ---- endpoints ----

def test_endpoints_crud_secret_shown_once_and_audited(hw, receiver):
    ep = create(hw, receiver.url, ["reward.granted", "reward.revoked"])
    assert ep["secret"].startswith("whsec_") and len(ep["secret"]) == 50
    assert ep["types"] == ["reward.granted", "reward.revoked"] and ep["enabled"] is True
    got = hw.api.get("/events/webhooks/" + ep["id"], token=hw.auditor)
    assert got.status_code == 200 and "secret" not in got.json(), got.text
    listed = hw.api.get("/events/webhooks", token=hw.operator, params={"limit": 100}).json()
    assert ep["id"] in [e["id"] for e in listed["items"]]
    assert all("secret" not in e for e in listed["items"])
    r = hw.api.call("PATCH", "/events/webhooks/" + ep["id"], token=hw.operator,
                    json={"types": ["reward.granted"], "enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["types"] == ["reward.granted"], r.text
    r = hw.api.call("DELETE", "/events/webhooks/" + ep["id"], token=hw.operator)
    assert r.status_code == 200 and r.json() == {"id": ep["id"], "deleted": True}, r.text
    assert hw.api.get("/events/webhooks/" + ep["id"], token=hw.operator).status_code == 404
    actions = [e["action"] for e in hw.api.get("/events/audit-log", token=hw.auditor,
                                                 params={"limit": 100}).json()["items"]
               if e["target"]["id"] == ep["id"]]
    if MODE == "embedded" or actions:  # the audit log is read from the event store's file
        assert set(actions) >= {"webhook.create", "webhook.update", "webhook.delete"}, actions


@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://example.com/x", "types": ["reward.granted"]}, "/url"),
    ({"url": "https://example.com/x", "types": []}, "/types"),
    ({"url": "https://example.com/x", "types": ["reward.nope"]}, "/types/0"),
    ({"url": "https://example.com/x"}, ""),
    ({"url": "https://", "types": ["reward.granted"]}, "/url"),
    ({"url": "https://example.com/x", "types": ["reward.granted"], "secret": "mine"}, ""),
])
def test_bad_endpoints_are_refused(hw, body, field):
    before = hw.api.get("/events/webhooks", token=hw.operator, params={"limit": 100}).json()["items"]
    r = hw.api.post("/events/webhooks", token=hw.operator, json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_FAILED", r.text
    assert any(d["field"].startswith(field) for d in r.json()["error"]["details"]), r.text
    assert hw.api.get("/events/webhooks", token=hw.operator, params={"limit": 100}).json()["items"] == before


def test_roles_and_unknown_ids(hw, receiver):
    token, _ = hw.player()
    assert hw.api.post("/events/webhooks", token=token, json={"url": receiver.url, "types": ["reward.granted"]}) \
        .status_code == 403
    assert hw.api.post("/events/webhooks", token=hw.auditor, json={"url": receiver.url, "types": ["reward.granted"]}) \
        .status_code == 403
    assert hw.api.get("/events/webhooks", token=hw.game_server).status_code == 403
    ep = create(hw, receiver.url)
    assert hw.api.get("/events/webhooks/%s/deliveries" % ep["id"], token=hw.auditor).status_code == 403
    missing = "0" * 24
    for method, path in [("GET", "/events/webhooks/" + missing), ("PATCH", "/events/webhooks/" + missing),
                         ("DELETE", "/events/webhooks/" + missing), ("POST", "/events/webhooks/%s/ping" % missing),
                         ("GET", "/events/webhooks/%s/deliveries" % missing)]:
        r = hw.api.call(method, path, token=hw.operator, json={"enabled": True} if method == "PATCH" else None)
        assert r.status_code == 404 and r.json()["error"]["code"] == "WEBHOOK_NOT_FOUND", (method, path, r.text)
    r = hw.api.post("/events/webhooks/%s/deliveries/%s/redeliver" % (ep["id"], missing), token=hw.operator)
    assert r.status_code == 404 and r.json()["error"]["code"] == "DELIVERY_NOT_FOUND", r.text
    r = hw.api.get("/events/webhooks/%s/deliveries" % ep["id"], token=hw.operator, params={"status": "LOST"})
    assert r.status_code == 400, r.text
    hw.api.call("DELETE", "/events/webhooks/" + ep["id"], token=hw.operator)


def _validate(name, instance):
    jsonschema = pytest.importorskip("jsonschema", reason="python3-jsonschema is needed to check response shapes")
    base = os.path.join(ROOT, "schemas", "responses")
    store = {}
    for f in os.listdir(base):  # every response schema by its $id, which the others $ref
        with open(os.path.join(base, f)) as fh:
            schema = json.load(fh)
        store[schema["$id"]] = schema
        store[f] = schema  # how one file refers to another
    schema = store[name]
    resolver = jsonschema.RefResolver(base_uri=name, referrer=schema, store=store)
    jsonschema.Draft202012Validator(schema, resolver=resolver,
                                    format_checker=jsonschema.FormatChecker()).validate(instance)


def test_responses_follow_the_response_schemas(hw, receiver):
    r = hw.api.post("/events/webhooks", token=hw.operator, json={"url": receiver.url, "types": ["webhook.ping"]})
    _validate("webhook-endpoint-created", r.json())
    ep = r.json()
    _validate("webhook-endpoint", hw.api.get("/events/webhooks/" + ep["id"], token=hw.operator).json())
    _validate("webhook-endpoint-page", hw.api.get("/events/webhooks", token=hw.operator).json())
    ping = hw.api.post("/events/webhooks/%s/ping" % ep["id"], token=hw.operator).json()
    _validate("webhook-delivery", ping)
    wait_for(lambda: deliveries(hw, ep["id"], status="DELIVERED")["items"], 30, "the ping")
    _validate("webhook-delivery-page", deliveries(hw, ep["id"]))
    _validate("webhook-message", json.loads(receiver.requests[0]["body"]))
    _validate("webhook-delivery", hw.api.post("/events/webhooks/%s/deliveries/%s/redeliver" % (ep["id"], ping["id"]),
                                              token=hw.operator).json())
    _validate("webhook-endpoint-deleted", hw.api.call("DELETE", "/events/webhooks/" + ep["id"],
                                                      token=hw.operator).json())


# ---- signing ----

def test_signature_verifies_independently_and_rejects_wrong_secret_and_replay(hw, receiver):
    ep = create(hw, receiver.url)
    ev = hw.event()
    req = grant(hw, ev["id"])
    got = wait_for(lambda: receiver.by_id().get(req["id"]), 30, "the grant's webhook")[0]
    h, body = got["headers"], got["body"]
    assert h["content-type"] == "application/json"
    assert verify(ep["secret"], h, body)
    payload = json.loads(body)
    assert payload["type"] == "reward.granted" and payload["data"]["requestId"] == req["id"]
    assert payload["data"]["messageId"] == h["webhook-id"] == req["id"]
    # an independent check refuses what it must
    other = create(hw, receiver.url)
    assert not verify(other["secret"], h, body), "a wrong secret verified"
    assert not verify(ep["secret"], h, body.replace(b"reward.granted", b"reward.revoked")), "a changed body verified"
    assert not verify(ep["secret"], h, body, now=int(h["webhook-timestamp"]) + 600), "a replayed old message verified"
    for e in (ep, other):
        hw.api.call("DELETE", "/events/webhooks/" + e["id"], token=hw.operator)


def test_ping_redelivery_and_delivery_log(hw, receiver):
    ep = create(hw, receiver.url, ["reward.granted"])
    r = hw.api.post("/events/webhooks/%s/ping" % ep["id"], token=hw.operator)
    assert r.status_code == 202 and r.json()["type"] == "webhook.ping", r.text
    ping = r.json()
    wait_for(lambda: receiver.by_id().get(ping["webhookId"]), 30, "the ping")
    done = wait_for(lambda: [d for d in deliveries(hw, ep["id"], status="DELIVERED")["items"] if d["id"] == ping["id"]],
                    30, "the ping to be DELIVERED")[0]
    assert done["attemptCount"] == 1 and done["attempts"][0]["status"] == 200
    assert done["attempts"][0]["responseExcerpt"] == "ok" and done["attempts"][0]["latencyMs"] >= 0
    r = hw.api.post("/events/webhooks/%s/deliveries/%s/redeliver" % (ep["id"], ping["id"]), token=hw.operator)
    assert r.status_code == 202 and r.json()["status"] == "PENDING", r.text
    copies = wait_for(lambda: len(receiver.by_id()[ping["webhookId"]]) == 2 and receiver.by_id()[ping["webhookId"]],
                      30, "the redelivery")
    assert copies[0]["body"] == copies[1]["body"], "a redelivery sent other bytes"
    assert all(verify(ep["secret"], c["headers"], c["body"]) for c in copies)
    # status filter and cursor pages
    for _ in range(3):
        hw.api.post("/events/webhooks/%s/ping" % ep["id"], token=hw.operator)
    wait_for(lambda: len(deliveries(hw, ep["id"], status="DELIVERED", limit=100)["items"]) == 4, 30, "4 pings")
    page1 = deliveries(hw, ep["id"], limit=3)
    assert len(page1["items"]) == 3 and page1["nextCursor"]
    page2 = deliveries(hw, ep["id"], limit=3, cursor=page1["nextCursor"])
    ids = [d["id"] for d in page1["items"] + page2["items"]]
    assert len(ids) == len(set(ids)) == 4
    assert deliveries(hw, ep["id"], status="FAILED")["items"] == []
    hw.api.call("DELETE", "/events/webhooks/" + ep["id"], token=hw.operator)


def test_review_cancel_end_and_batch_completion_are_sent(hw, hp, receiver):
    ep = create(hw, receiver.url, ["reward.awaiting_review", "event.canceled", "event.ended", "batch.completed"])
    reviewed = hw.event(requiresApproval=True)
    token, _ = hw.player()
    req = hw.claim(token, reviewed["id"]).json()
    assert req["status"] == "AWAITING_REVIEW"
    assert hw.api.post("/events/%s/cancel" % reviewed["id"], token=hw.operator, json={}).status_code == 200
    ended = hw.event()
    assert hw.api.post("/events/%s/end" % ended["id"], token=hw.operator).status_code == 200
    paid = hw.event()
    users = players.seed(hp.data_dir, 3)
    b = hw.api.post("/events/%s/batch-grants" % paid["id"], token=hw.operator,
                    json={"userIds": users + ["0" * 24], "reason": "webhook types"}).json()
    want = {req["id"] + ":review": "reward.awaiting_review", reviewed["id"] + ":canceled": "event.canceled",
            ended["id"] + ":ended": "event.ended", b["id"] + ":completed": "batch.completed"}
    seen = wait_for(lambda: (lambda got: got if set(want) <= set(got) else None)(receiver.by_id()), 60,
                    "the four webhook types")
    for wid, type_ in want.items():
        body = json.loads(seen[wid][0]["body"])
        assert body["type"] == type_ and verify(ep["secret"], seen[wid][0]["headers"], seen[wid][0]["body"])
    data = {t: json.loads(seen[w][0]["body"])["data"] for w, t in want.items()}
    assert data["reward.awaiting_review"]["requestId"] == req["id"]
    assert data["event.canceled"]["eventId"] == reviewed["id"] and data["event.canceled"]["canceledAt"]
    assert data["event.ended"]["eventId"] == ended["id"] and data["event.ended"]["canceledAt"] is None
    assert data["batch.completed"]["counts"] == {"SUCCESS": 3, "FAILED": 1}
    # each once: a later pass notices nothing again, and the canceled event does not also "end"
    time.sleep(1.5)
    ids = [r["headers"]["webhook-id"] for r in receiver.requests]
    assert all(ids.count(w) == 1 for w in want), ids
    assert reviewed["id"] + ":ended" not in ids
    # not subscribed: no reward.granted for the batch's grants
    assert not receiver.of_type("reward.granted")
    hw.api.call("DELETE", "/events/webhooks/" + ep["id"], token=hw.operator)


# ---- failures and retries ----

def test_500_three_times_then_200(hw):
    rec = Receiver(behave=lambda req, n: (500, {}, b"boom") if n <= 3 else (200, {}, b"fine")).start()
    try:
        ep = create(hw, rec.url)
        req = grant(hw, hw.event()["id"])
        d = wait_for(lambda: [x for x in deliveries(hw, ep["id"], status="DELIVERED")["items"]
                              if x["webhookId"] == req["id"]], 60, "the delivery after three 500s")[0]
        assert [a["status"] for a in d["attempts"]] == [500, 500, 500, 200], d
        assert d["attempts"][0]["responseExcerpt"] == "boom"
        copies = rec.by_id()[req["id"]]
        assert len(copies) == 4 and len({c["body"] for c in copies}) == 1
        assert len({c["headers"]["webhook-id"] for c in copies}) == 1
        hw.api.call("DELETE", "/events/webhooks/" + ep["id"], token=hw.operator)
    finally:
        rec.stop()


def test_a_receiver_that_hangs_past_the_timeout_is_retried(hw):
    def behave(req, n):
        if n == 1:
            time.sleep(3)  # WEBHOOK_TIMEOUT_MS is 1.5 s
        return 200, {}, b"late"
    rec = Receiver(behave=behave).start()
    try:
        ep = create(hw, rec.url)
        req = grant(hw, hw.event()["id"])
        d = wait_for(lambda: [x for x in deliveries(hw, ep["id"], status="DELIVERED")["items"]
                              if x["webhookId"] == req["id"]], 60, "the delivery after a timeout")[0]
        first = d["attempts"][0]
        assert first["error"].startswith("TIMEOUT") and first["status"] is None, d
        assert 1400 <= first["latencyMs"] < 2900, first
        assert d["attempts"][-1]["status"] == 200
        hw.api.call("DELETE", "/events/webhooks/" + ep["id"], token=hw.operator)
    finally:
        rec.stop()


def test_a_redirect_is_not_followed(hw):
    rec = Receiver(behave=lambda req, n: (302, {"Location": "/elsewhere"}, b"") if req["path"] == "/hook"
                   else (200, {}, b"followed")).start()
    try:
        ep = create(hw, rec.url)
        r = hw.api.post("/events/webhooks/%s/ping" % ep["id"], token=hw.operator)
        d = wait_for(lambda: (lambda x: x if x["attemptCount"] >= 2 else None)(
            [x for x in deliveries(hw, ep["id"])["items"] if x["id"] == r.json()["id"]][0]), 30, "two attempts")
        assert all(a["status"] == 302 for a in d["attempts"]), d
        assert d["status"] != "DELIVERED"
        assert all(q["path"] == "/hook" for q in rec.requests), "the redirect was followed"
        hw.api.call("DELETE", "/events/webhooks/" + ep["id"], token=hw.operator)
    finally:
        rec.stop()


def test_410_gone_disables_the_endpoint_with_an_audit_entry(hw):
    rec = Receiver(behave=lambda req, n: (410, {}, b"gone")).start()
    try:
        ep = create(hw, rec.url)
        hw.api.post("/events/webhooks/%s/ping" % ep["id"], token=hw.operator)
        got = wait_for(lambda: (lambda e: e if not e["enabled"] else None)(
            hw.api.get("/events/webhooks/" + ep["id"], token=hw.operator).json()), 30, "the endpoint to be disabled")
        assert got["disabledReason"] == "GONE" and got["disabledAt"]
        assert len(rec.requests) == 1, "a 410 was retried"
        r = hw.api.post("/events/webhooks/%s/ping" % ep["id"], token=hw.operator)
        assert r.status_code == 409 and r.json()["error"]["code"] == "WEBHOOK_DISABLED"
        if MODE == "embedded":
            actions = [e["action"] for e in hw.api.get("/events/audit-log", token=hw.auditor,
                                                         params={"limit": 100}).json()["items"]
                       if e["target"]["id"] == ep["id"]]
            assert "webhook.disable" in actions, actions
        hw.api.call("DELETE", "/events/webhooks/" + ep["id"], token=hw.operator)
    finally:
        rec.stop()


def test_receiver_down_during_200_grants_then_up_gets_every_grant(hw, hp):
    port = free_port()  # nothing listens there yet: connections are refused
    rec = Receiver(port=port)
    ep = create(hw, "http://127.0.0.1:%d/hook" % port)
    try:
        ev = hw.event()
        users = players.seed(hp.data_dir, 200)
        r = hw.api.post("/events/%s/batch-grants" % ev["id"], token=hw.operator,
                        json={"userIds": users, "reason": "webhook test"})
        assert r.status_code == 202, r.text
        wait_for(lambda: hw.api.get("/events/batches/" + r.json()["id"], token=hw.operator).json()["status"]
                 == "COMPLETED", 120, "the 200 grants")
        granted = {q["id"] for q in hw.api.get("/events/reward-requests", token=hw.operator,
                                               params={"eventId": ev["id"], "limit": 100}).json()["items"]}
        wait_for(lambda: sum(len(d["attempts"]) > 0 for d in deliveries(hw, ep["id"], limit=100)["items"]) >= 50, 30,
                 "attempts against the closed port")
        rec.start()
        seen = wait_for(lambda: (lambda b: b if len(b) >= 200 else None)(rec.by_id()), 90, "all 200 webhooks")
        assert granted <= set(seen)
        assert len(seen) == 200
        for wid, copies in seen.items():
            assert len({c["body"] for c in copies}) == 1, "copies of %s differ" % wid
            assert all(verify(ep["secret"], c["headers"], c["body"]) for c in copies)
        failed = [d for d in deliveries(hw, ep["id"], limit=100)["items"] if d["attempts"]
                  and d["attempts"][0]["error"] and d["attempts"][0]["error"].startswith("CONNECT_FAILED")]
        assert failed, "no attempt met the closed port"
    finally:
        hw.api.call("DELETE", "/events/webhooks/" + ep["id"], token=hw.operator)
        rec.stop()


def test_a_dispatcher_killed_mid_delivery_loses_nothing(hw, hp):
    release = threading.Event()

    def behave(req, n):
        release.wait(1.2)  # in flight for a while, inside WEBHOOK_TIMEOUT_MS
        return 200, {}, b"ok"
    rec = Receiver(behave=behave).start()
    ep = create(hw, rec.url)
    try:
        ev = hw.event()
        ids = [grant(hw, ev["id"])["id"] for _ in range(12)]
        wait_for(lambda: rec.in_flight > 0, 30, "a delivery in flight")
        if MODE == "cluster":
            workers = [p for p in hp.procs if p.args[0].endswith("reward-grant-worker")]
            for p in workers:
                hp.kill9(p)
            for _ in workers:
                hp.spawn("reward-grant-worker")
        else:
            hp.stop(sig=signal.SIGKILL)
            hp.start()
        wait_for(lambda: set(ids) <= set(rec.by_id()), 120, "every grant delivered after the kill")
        for wid in ids:
            assert len({c["body"] for c in rec.by_id()[wid]}) == 1
    finally:
        release.set()
        hw.api.call("DELETE", "/events/webhooks/" + ep["id"], token=hw.operator)
        rec.stop()


# ---- the SSRF guard ----

@pytest.fixture(scope="module")
def guarded():
    env = dict(HOOK_ENV, WEBHOOK_ALLOW_PRIVATE="0", WEBHOOK_DISABLE_AFTER="2s")
    p = start_platform(env)
    yield p
    assert p.stop() == 0, p.log_tail()


def test_ssrf_a_url_resolving_to_loopback_is_refused(guarded, receiver):
    w = World(Client(guarded))
    for url in ("http://localhost:%d/hook" % receiver.port, receiver.url):
        ep = create(w, url)
        r = w.api.post("/events/webhooks/%s/ping" % ep["id"], token=w.operator)
        assert r.status_code == 202, r.text
        d = wait_for(lambda: (lambda x: x if x["attempts"] else None)(
            deliveries(w, ep["id"])["items"][0]), 30, "the refused attempt")
        assert d["attempts"][0]["error"].startswith("ADDRESS_NOT_ALLOWED"), d
        assert d["attempts"][0]["status"] is None
    time.sleep(0.5)
    assert receiver.requests == [], "a private address was reached"


def test_an_endpoint_failing_every_delivery_for_the_disable_period_is_disabled(guarded, receiver):
    w = World(Client(guarded))
    ep = create(w, receiver.url)  # every attempt fails here: the address is private
    t0 = time.time()
    w.api.post("/events/webhooks/%s/ping" % ep["id"], token=w.operator)
    got = wait_for(lambda: (lambda e: e if not e["enabled"] else None)(
        w.api.get("/events/webhooks/" + ep["id"], token=w.operator).json()), 30, "the endpoint to be disabled")
    assert got["disabledReason"] == "FAILING" and got["failingSince"] is None
    assert time.time() - t0 >= 2, "disabled before WEBHOOK_DISABLE_AFTER"
    if MODE == "embedded":
        entries = [e for e in w.api.get("/events/audit-log", token=w.auditor, params={"limit": 100}).json()["items"]
                   if e["target"]["id"] == ep["id"] and e["action"] == "webhook.disable"]
        assert entries and entries[0]["actor"]["id"] is None and entries[0]["after"]["enabled"] is False
    # enabled again by hand: the reason goes, the failure clock starts afresh
    r = w.api.call("PATCH", "/events/webhooks/" + ep["id"], token=w.operator, json={"enabled": True})
    assert r.status_code == 200 and r.json()["enabled"] and r.json()["disabledReason"] is None, r.text


def test_https_only_unless_allowed():
    # WEBHOOK_ALLOW_HTTP off: an http:// endpoint is refused at creation
    p = Platform({"RATE_LIMIT_AUTH_RPS": "0", "PASSWORD_HASH": "min"}).start()
    try:
        w = Client(p)
        admin = w.admin_token()
        r = w.post("/events/webhooks", token=admin, json={"url": "http://example.com/hook",
                                                           "types": ["reward.granted"]})
        assert r.status_code == 400 and "https" in r.text, r.text
        r = w.post("/events/webhooks", token=admin, json={"url": "https://example.com/hook",
                                                           "types": ["reward.granted"]})
        assert r.status_code == 201, r.text
    finally:
        assert p.stop() == 0, p.log_tail()


# ---- metrics ----

def test_metrics_show_deliveries_queue_and_latency(hw, hp, receiver):
    ep = create(hw, receiver.url)
    r = hw.api.post("/events/webhooks/%s/ping" % ep["id"], token=hw.operator).json()
    wait_for(lambda: [d for d in deliveries(hw, ep["id"], status="DELIVERED")["items"] if d["id"] == r["id"]], 30,
             "the ping")
    text = requests.get("http://127.0.0.1:%d/metrics" % hp.port, timeout=10,
                        headers={"Authorization": "Bearer " + hp.metrics_token}).text
    lines = {ln.split(" ")[0]: float(ln.split(" ")[1]) for ln in text.splitlines() if ln and not ln.startswith("#")}
    assert lines['rp_webhook_deliveries{type="webhook.ping",status="DELIVERED"}'] >= 1
    assert "rp_webhook_queue_depth" in lines and "rp_webhook_oldest_pending_age_seconds" in lines
    assert "rp_webhook_attempt_duration_seconds_count" in lines
    if MODE == "embedded":  # in the cluster, attempts are the answering grant worker's own
        assert lines['rp_webhook_attempts_total{type="webhook.ping",result="2xx"}'] >= 1
        assert lines['rp_webhook_attempt_duration_seconds_bucket{le="+Inf"}'] >= 1
    hw.api.call("DELETE", "/events/webhooks/" + ep["id"], token=hw.operator)


# ---- the README's receiver ----

def test_the_readme_receiver_example_verifies_real_deliveries(hw):
    port = free_port()
    example = os.path.join(ROOT, "docs", "examples", "webhook_receiver.py")
    ep = create(hw, "http://127.0.0.1:%d/hook" % port)
    env = dict(os.environ, WEBHOOK_SECRET=ep["secret"], PORT=str(port))
    proc = subprocess.Popen([sys.executable, example], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _listening(port), 30, "the example receiver")
        req = grant(hw, hw.event()["id"])
        d = wait_for(lambda: [x for x in deliveries(hw, ep["id"], status="DELIVERED")["items"]
                              if x["webhookId"] == req["id"]], 30, "the example to accept the grant")[0]
        assert d["attempts"][-1]["status"] == 204
        # a forged message is refused by the example with 400
        forged = requests.post("http://127.0.0.1:%d/hook" % port, data=b'{"type":"reward.granted"}', timeout=10,
                               headers={"webhook-id": "x", "webhook-timestamp": str(int(time.time())),
                                        "webhook-signature": "v1,AAAA"})
        assert forged.status_code == 400
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode()
        hw.api.call("DELETE", "/events/webhooks/" + ep["id"], token=hw.operator)
    assert "reward.granted %s" % req["id"] in out, out


def _listening(port):
    try:
        requests.get("http://127.0.0.1:%d/" % port, timeout=1)
        return True
    except requests.RequestException:
        return False


def unhooked(data_dir):
    """Outbox messages not yet fanned out to webhook deliveries (read from the SQLite file)."""
    import sqlite3
    db = sqlite3.connect("%s/events.db" % data_dir, timeout=30)
    try:
        return db.execute("SELECT count(*) FROM outbox WHERE hooked = 0").fetchone()[0]
    finally:
        db.close()


def test_messages_from_before_any_endpoint_existed_are_never_delivered():
    # with no enabled endpoint the relay marks messages fanned out in one statement; an endpoint
    # created afterwards receives only what happens after it
    p = start_platform(HOOK_ENV)
    rec = Receiver().start()
    try:
        w = World(Client(p))
        ev = w.event()
        before = [grant(w, ev["id"])["id"] for _ in range(3)]
        wait_for(lambda: unhooked(p.data_dir) == 0, 30, "the relay to mark the first grants")
        ep = create(w, rec.url)
        after = grant(w, ev["id"])["id"]
        wait_for(lambda: unhooked(p.data_dir) == 0, 30, "the relay to fan out the last grant")
        items = deliveries(w, ep["id"], limit=100)["items"]
        assert [d["payload"]["data"]["requestId"] for d in items] == [after], items
        seen = wait_for(lambda: rec.by_id() or None, 30, "the delivery")
        sent = {json.loads(c["body"])["data"]["requestId"] for copies in seen.values() for c in copies}
        assert sent == {after} and not set(before) & sent
    finally:
        rec.stop()
        code = p.stop()
        assert code == 0, "platform exited with %s:\n%s" % (code, p.log_tail())
