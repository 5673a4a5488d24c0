"""Service accounts and API keys (issue 13): an ADMIN creates a service account with roles among
GAME_SERVER, OPERATOR and AUDITOR; its key (rpk_ + 43 base64url characters) is shown once and
authenticates as `Authorization: Bearer rpk_...`; keys rotate (optionally with a grace period), are
revoked one by one within 5 s on every api process (two of them: two embedded processes on one
store, or two reward-api processes of one cluster), record lastUsedAt, are audited, never reach a
log line, and are rate-limited per key. A service account never signs in with a password and is
no player.
"""
import glob
import json
import os
import re
import time
import uuid

import jsonschema
import pytest
import requests

from conftest import MODE, Client, iso, now_utc
from platform_proc import Cluster, Platform

LIMIT_S = 5.0
KEY_RE = re.compile(r"^rpk_[A-Za-z0-9_-]{43}$")
OID_RE = re.compile(r"^[0-9a-f]{24}$")

# every key these tests were shown, to look for in the processes' logs at the end
SHOWN_KEYS = []

RESPONSES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "schemas",
                         "responses")


def _response_schemas():
    out = {}
    for path in glob.glob(os.path.join(RESPONSES, "*.json")):
        with open(path) as f:
            schema = json.load(f)
        out[schema["$id"]] = schema
        out[os.path.basename(path)] = schema  # how one file refers to another
    return out


SCHEMAS = _response_schemas()


def conforms(body, name):
    """body is valid against schemas/responses/<name>.json (draft 2020-12)."""
    schema = SCHEMAS[name]
    resolver = jsonschema.RefResolver("", schema, store=SCHEMAS)
    jsonschema.Draft202012Validator(schema, resolver=resolver,
                                    format_checker=jsonschema.FormatChecker()).validate(body)
    return body


class TwoApis:
    """Two api processes on one store: the cluster's reward-api twice, or two embedded platforms
    sharing the SQLite directory and the JWT secret (both derive the key hashes from it)."""

    def __init__(self, env):
        if MODE == "cluster":
            self.procs = [Cluster(env, api_processes=2).start()]
            self.urls_of = self.procs[0].urls
        else:
            first = Platform(env).start()
            second = Platform(dict(env, JWT_SECRET=first.secret, ADMIN_USERNAME=first.admin[0],
                                   ADMIN_PASSWORD=first.admin[1]), data_dir=first.data_dir)
            second.log_path = os.path.join(first.data_dir, "platform-2.log")
            second.start()
            self.procs = [first, second]
            self.urls_of = lambda path: [p.url(path) for p in self.procs]
        self.main = self.procs[0]

    def log_files(self):
        return sorted(set(glob.glob(os.path.join(self.main.data_dir, "*.log"))))

    def stop(self):
        codes = [p.stop() for p in reversed(self.procs)]
        return next((c for c in codes if c), 0)


@pytest.fixture(scope="module")
def apis():
    env = {"RATE_LIMIT_AUTH_RPS": "0", "RATE_LIMIT_RPS": "0", "PASSWORD_HASH": "min"}
    two = TwoApis(env)
    yield two
    code = two.stop()
    assert code == 0, "platform exited with %s:\n%s" % (code, two.main.log_tail())


@pytest.fixture(scope="module")
def admin(apis):
    return Client(apis.main).admin_token()


@pytest.fixture
def api(apis):
    return Client(apis.main)


def create(api, admin, roles, name=None):
    name = name or "svc_" + uuid.uuid4().hex[:10]
    r = api.post("/auth/service-accounts", token=admin, json={"name": name, "roles": roles})
    assert r.status_code == 201, r.text
    body = conforms(r.json(), "service-account.created")
    SHOWN_KEYS.append(body["key"])
    return body


def rotate(api, admin, sa_id, grace=None):
    r = api.post("/auth/service-accounts/%s/keys" % sa_id, token=admin,
                 json=None if grace is None else {"graceSeconds": grace})
    assert r.status_code == 201, r.text
    SHOWN_KEYS.append(r.json()["key"])
    return conforms(r.json(), "service-account.created")


def events_status(url, key):
    return requests.get(url, headers={"Authorization": "Bearer " + key}, timeout=10)


def assert_key_dies_within(urls, key, code="API_KEY_REVOKED"):
    """Polls GET /events with key on every url until each answers 401; fails unless all do within
    LIMIT_S. Returns the seconds it took."""
    start = time.monotonic()
    pending = list(urls)
    while pending:
        for url in list(pending):
            r = events_status(url, key)
            if r.status_code == 401:
                assert r.json()["error"]["code"] == code, r.text
                pending.remove(url)
            else:
                assert r.status_code == 200, r.text
        elapsed = time.monotonic() - start
        assert not pending or elapsed <= LIMIT_S, "key still accepted after %.1f s on %s" % (elapsed, pending)
        if pending:
            time.sleep(0.05)
    return time.monotonic() - start


def listed(api, admin, sa_id):
    r = api.get("/auth/service-accounts", token=admin, params={"limit": 100})
    assert r.status_code == 200, r.text
    found = [a for a in conforms(r.json(), "service-account.list")["items"] if a["id"] == sa_id]
    return found[0] if found else None


def test_create_shows_the_key_once_and_lists_the_account_without_it(api, admin):
    sa = create(api, admin, ["GAME_SERVER"])
    assert set(sa) == {"id", "name", "roles", "keyId", "key"}
    assert OID_RE.match(sa["id"]) and OID_RE.match(sa["keyId"]) and KEY_RE.match(sa["key"])
    assert sa["roles"] == ["GAME_SERVER"]
    item = listed(api, admin, sa["id"])
    assert item["name"] == sa["name"] and item["roles"] == ["GAME_SERVER"]
    assert [k["keyId"] for k in item["keys"]] == [sa["keyId"]]
    assert item["keys"][0]["expiresAt"] is None and item["keys"][0]["lastUsedAt"] is None
    text = api.get("/auth/service-accounts", token=admin, params={"limit": 100}).text
    assert sa["key"] not in text and sa["key"][4:] not in text


def test_a_game_server_key_reports_progress_and_records_last_use(api, admin):
    sa = create(api, admin, ["GAME_SERVER"])
    _, _, player = api.register("player")
    facts = {"facts": [{"userId": player["id"], "type": "LEVEL", "value": 7, "occurredAt": iso(now_utc()),
                        "idempotencyKey": uuid.uuid4().hex}]}
    r = api.post("/events/progress", token=sa["key"], json=facts)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1
    r = api.get("/events/progress/%s" % player["id"], token=admin)
    assert r.status_code == 200 and "7" in r.text, r.text
    used = listed(api, admin, sa["id"])["keys"][0]["lastUsedAt"]
    assert used is not None
    # a service account is no player: it cannot claim, and its id is no account to report for
    r = api.post("/events/%s/reward-requests" % ("0" * 24), token=sa["key"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN", r.text
    facts["facts"][0].update(userId=sa["id"], idempotencyKey=uuid.uuid4().hex)
    r = api.post("/events/progress", token=sa["key"], json=facts)
    assert r.status_code == 422 and r.json()["error"]["code"] == "UNKNOWN_PLAYER", r.text


def test_an_operator_key_cannot_reach_admin_routes(api, admin):
    sa = create(api, admin, ["OPERATOR"])
    assert api.get("/events/reward-definitions", token=sa["key"]).status_code == 200
    for method, path, body in [("GET", "/auth/users", None), ("GET", "/auth/service-accounts", None),
                               ("POST", "/auth/service-accounts", {"name": "sneaky_op", "roles": ["OPERATOR"]}),
                               ("POST", "/auth/service-accounts/%s/keys" % sa["id"], None),
                               ("DELETE", "/auth/service-accounts/%s/keys/%s" % (sa["id"], sa["keyId"]), None),
                               ("GET", "/auth/audit-log", None)]:
        r = api.call(method, path, token=sa["key"], json=body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN", (path, r.text)
    assert events_status(api.p.url("/events"), sa["key"]).status_code == 200  # still alive
    me = api.get("/auth/me", token=sa["key"])
    assert me.status_code == 200, me.text
    assert conforms(me.json(), "service-account.me") == {"id": sa["id"], "name": sa["name"], "roles": ["OPERATOR"],
                                                         "createdAt": me.json()["createdAt"],
                                                         "type": "SERVICE_ACCOUNT"}


def test_a_revoked_key_gets_401_within_5s_on_every_api_process(api, admin, apis):
    sa = create(api, admin, ["GAME_SERVER"])
    urls = apis.urls_of("/events")
    assert len(urls) == 2
    for url in urls:  # both processes have looked the key up (and cached it)
        assert events_status(url, sa["key"]).status_code == 200
    r = api.call("DELETE", "/auth/service-accounts/%s/keys/%s" % (sa["id"], sa["keyId"]), token=admin)
    assert r.status_code == 200, r.text
    assert conforms(r.json(), "service-account.key-revoked") == {"id": sa["id"], "keyId": sa["keyId"], "revoked": True}
    assert_key_dies_within(urls, sa["key"])
    # revoking again changes nothing; an unknown key id is 404
    again = api.call("DELETE", "/auth/service-accounts/%s/keys/%s" % (sa["id"], sa["keyId"]), token=admin)
    assert again.status_code == 200
    r = api.call("DELETE", "/auth/service-accounts/%s/keys/%s" % (sa["id"], "0" * 24), token=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "KEY_NOT_FOUND"
    assert listed(api, admin, sa["id"])["keys"] == []


def test_rotation_without_grace_ends_the_old_key_and_with_grace_keeps_it_a_while(api, admin, apis):
    urls = apis.urls_of("/events")
    sa = create(api, admin, ["AUDITOR"])
    new = rotate(api, admin, sa["id"])
    assert new["id"] == sa["id"] and new["keyId"] != sa["keyId"] and KEY_RE.match(new["key"])
    assert set(new) == {"id", "name", "roles", "keyId", "key"}
    assert_key_dies_within(urls, sa["key"])
    for url in urls:
        assert events_status(url, new["key"]).status_code == 200
    # with grace: both keys work until the grace ends, then the old one dies everywhere
    newer = rotate(api, admin, sa["id"], grace=3)
    for url in urls:
        assert events_status(url, new["key"]).status_code == 200
        assert events_status(url, newer["key"]).status_code == 200
    keys = listed(api, admin, sa["id"])["keys"]
    assert [k["keyId"] for k in keys] == [new["keyId"], newer["keyId"]]
    assert keys[0]["expiresAt"] is not None and keys[1]["expiresAt"] is None
    time.sleep(3)  # the grace period itself is what is tested
    assert_key_dies_within(urls, new["key"])
    assert events_status(urls[0], newer["key"]).status_code == 200


def test_bad_requests_are_refused_and_change_nothing(api, admin):
    name = "svc_" + uuid.uuid4().hex[:10]
    cases = [({"name": name, "roles": ["ADMIN"]}, 400), ({"name": name, "roles": ["USER"]}, 400),
             ({"name": name, "roles": []}, 400), ({"name": "x", "roles": ["OPERATOR"]}, 400),
             ({"name": name + "!", "roles": ["OPERATOR"]}, 400), ({"roles": ["OPERATOR"]}, 400),
             ({"name": name, "roles": ["OPERATOR"], "keyHash": "ab" * 32}, 400),
             ({"name": name, "roles": ["OPERATOR"], "key": "rpk_" + "A" * 43}, 400)]
    for body, status in cases:
        r = api.post("/auth/service-accounts", token=admin, json=body)
        assert r.status_code == status and r.json()["error"]["code"] == "VALIDATION_FAILED", (body, r.text)
    names = [a["name"] for a in api.get("/auth/service-accounts", token=admin, params={"limit": 100}).json()["items"]]
    assert name not in names
    sa = create(api, admin, ["OPERATOR"], name=name)
    r = api.post("/auth/service-accounts", token=admin, json={"name": name.upper(), "roles": ["AUDITOR"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "NAME_TAKEN", r.text
    for body in [{"graceSeconds": -1}, {"graceSeconds": 604801}, {"graceSeconds": "5"}, {"keyHash": "00" * 32}]:
        r = api.post("/auth/service-accounts/%s/keys" % sa["id"], token=admin, json=body)
        assert r.status_code == 400, (body, r.text)
    r = api.post("/auth/service-accounts/%s/keys" % ("0" * 24), token=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "SERVICE_ACCOUNT_NOT_FOUND"
    r = api.post("/auth/service-accounts/not-an-id/keys", token=admin)
    assert r.status_code == 404
    assert [k["keyId"] for k in listed(api, admin, sa["id"])["keys"]] == [sa["keyId"]]
    # keys that are not keys
    for bad in ["rpk_", "rpk_short", "rpk_" + "A" * 42 + "!", "rpk_" + "A" * 44, "rpk_" + "B" * 43]:
        r = api.get("/events", token=bad)
        assert r.status_code == 401 and r.json()["error"]["code"] == "INVALID_API_KEY", (bad, r.text)
        assert r.headers.get("WWW-Authenticate") == "Bearer"


def test_a_service_account_cannot_sign_in_with_a_password(api, admin):
    sa = create(api, admin, ["GAME_SERVER"])
    for password in ["", "password-123", sa["key"]]:
        r = api.post("/auth/login", json={"username": sa["name"], "password": password})
        assert r.status_code in (400, 401), r.text
        if r.status_code == 401:
            assert r.json()["error"]["code"] == "INVALID_CREDENTIALS"
    # and it is not among the user accounts
    users = api.get("/auth/users", token=admin, params={"limit": 100}).json()["items"]
    assert sa["id"] not in [u["id"] for u in users]


def test_deleting_an_account_revokes_its_keys(api, admin, apis):
    urls = apis.urls_of("/events")
    sa = create(api, admin, ["OPERATOR"])
    second = rotate(api, admin, sa["id"], grace=600)
    for url in urls:
        assert events_status(url, sa["key"]).status_code == 200
    r = api.call("DELETE", "/auth/service-accounts/%s" % sa["id"], token=admin)
    assert r.status_code == 200 and conforms(r.json(), "service-account.deleted") == {"id": sa["id"], "deleted": True}
    assert_key_dies_within(urls, sa["key"], code="INVALID_API_KEY")
    assert_key_dies_within(urls, second["key"], code="INVALID_API_KEY")
    assert listed(api, admin, sa["id"]) is None
    r = api.call("DELETE", "/auth/service-accounts/%s" % sa["id"], token=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "SERVICE_ACCOUNT_NOT_FOUND"


def test_every_change_is_audited_with_its_actor_and_never_the_key(api, admin):
    admin_id = api.get("/auth/me", token=admin).json()["id"]
    sa = create(api, admin, ["GAME_SERVER"])
    new = rotate(api, admin, sa["id"], grace=60)
    assert api.call("DELETE", "/auth/service-accounts/%s/keys/%s" % (sa["id"], sa["keyId"]),
                    token=admin).status_code == 200
    assert api.call("DELETE", "/auth/service-accounts/%s" % sa["id"], token=admin).status_code == 200
    r = api.get("/auth/audit-log", token=admin, params={"targetId": sa["id"], "limit": 100})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [e["action"] for e in items] == ["service_account.delete", "service_account.key.revoke",
                                            "service_account.key.rotate", "service_account.create"]
    assert all(e["actor"]["id"] == admin_id and e["target"] == {"type": "service_account", "id": sa["id"]}
               for e in items)
    assert items[3]["after"]["keyId"] == sa["keyId"] and items[2]["after"]["keyId"] == new["keyId"]
    assert items[2]["after"]["graceSeconds"] == 60 and items[1]["after"] == {"keyId": sa["keyId"]}
    assert sa["key"] not in r.text and new["key"] not in r.text


def test_keys_are_rate_limited_per_key_and_failed_lookups_per_address():
    env = {"RATE_LIMIT_RPS": "1", "RATE_LIMIT_BURST": "10", "RATE_LIMIT_AUTH_RPS": "1",
           "RATE_LIMIT_AUTH_BURST": "3", "PASSWORD_HASH": "min"}
    p = (Cluster(env) if MODE == "cluster" else Platform(env)).start()
    try:
        api = Client(p)
        admin = api.admin_token()
        a = create(api, admin, ["OPERATOR"])
        b = create(api, admin, ["OPERATOR"])
        # key a's own budget: RATE_LIMIT_BURST requests, then 429; key b and the address (the
        # admin's token) are untouched by it
        codes = [api.get("/events", token=a["key"]).status_code for _ in range(20)]
        assert codes[0] == 200 and 429 in codes, codes
        r = api.get("/events", token=a["key"])
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["code"] == "RATE_LIMITED"
        assert api.get("/events", token=b["key"]).status_code == 200
        assert api.get("/events", token=admin).status_code == 200
        # unknown keys: each costs the auth worker a look-up until the address's failure budget
        # (RATE_LIMIT_AUTH_BURST) is spent, then 429 without one
        codes = [api.get("/events", token="rpk_" + uuid.uuid4().hex + "A" * 11).status_code for _ in range(8)]
        assert codes[:3] == [401, 401, 401] and 429 in codes[3:], codes
    finally:
        code = p.stop()
    assert code == 0, "platform exited with %s:\n%s" % (code, p.log_tail())
    with open(p.log_path, "rb") as f:
        log = f.read().decode("utf-8", "replace")
    for key in (a["key"], b["key"]):
        assert key not in log and key[4:] not in log


def test_no_key_ever_reaches_a_log_line(apis, api, admin):
    # one more of every path a key takes: minted, used, refused, rotated, revoked
    sa = create(api, admin, ["GAME_SERVER"])
    assert api.get("/events", token=sa["key"]).status_code == 200
    new = rotate(api, admin, sa["id"])
    assert_key_dies_within(apis.urls_of("/events"), sa["key"])
    assert api.call("DELETE", "/auth/service-accounts/%s" % sa["id"], token=admin).status_code == 200
    assert_key_dies_within(apis.urls_of("/events"), new["key"], code="INVALID_API_KEY")
    files = apis.log_files()
    assert files
    text = ""
    for path in files:
        with open(path, "rb") as f:
            text += f.read().decode("utf-8", "replace")
    assert "service account" in text  # the logs were written, and are the ones looked at
    assert len(SHOWN_KEYS) >= 10
    for key in SHOWN_KEYS:
        assert key not in text and key[4:] not in text, "a key is in the logs"
