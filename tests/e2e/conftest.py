"""Fixtures of the black-box HTTP tests: one platform for the session, plus helpers."""
import datetime
import os
import sys
import uuid

import pytest
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from platform_proc import Cluster, Platform  # noqa: E402
import openapi_check  # noqa: E402

MODE = os.environ.get("E2E_MODE", "embedded")

# every response any test receives is checked against the OpenAPI document (openapi_check.py)
openapi_check.install()


@pytest.fixture(autouse=True)
def openapi_responses():
    """Fails the test if a response it received broke the OpenAPI document, even one whose
    exception a thread or a retry loop swallowed."""
    openapi_check.take_failures()
    yield
    failures = openapi_check.take_failures()
    assert not failures, "responses the OpenAPI document does not allow:\n" + "\n".join(failures)


class Client:
    """A thin HTTP client bound to one platform."""

    def __init__(self, platform):
        self.p = platform
        self.s = requests.Session()

    def call(self, method, path, token=None, json=None, headers=None, data=None, params=None):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        return self.s.request(method, self.p.url(path), json=json, data=data, headers=h, params=params, timeout=30)

    def get(self, path, token=None, **kw):
        return self.call("GET", path, token=token, **kw)

    def post(self, path, token=None, json=None, **kw):
        return self.call("POST", path, token=token, json=json, **kw)

    def register(self, prefix="u", password="password-123"):
        name = "%s_%s" % (prefix, uuid.uuid4().hex[:12])
        r = self.post("/auth/register", json={"username": name, "email": name + "@example.com", "password": password})
        assert r.status_code == 201, r.text
        return name, password, r.json()

    def login(self, username, password):
        r = self.post("/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return r.json()

    def user(self, prefix="u"):
        """A fresh USER account: returns (token, login response)."""
        name, pw, _ = self.register(prefix)
        body = self.login(name, pw)
        return body["accessToken"], body

    def admin_token(self):
        return self.login(*self.p.admin)["accessToken"]

    def with_roles(self, roles, prefix="r"):
        """A fresh account holding roles (set by the admin): returns (token, user id)."""
        name, pw, acc = self.register(prefix)
        r = self.call("PUT", "/auth/users/%s/roles" % acc["id"], token=self.admin_token(), json={"roles": roles})
        assert r.status_code == 200, r.text
        return self.login(name, pw)["accessToken"], acc["id"]


def iso(dt):
    return dt.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


class World:
    """Staff accounts and builders for definitions, events and progress."""

    def __init__(self, api):
        self.api = api
        self.admin = api.admin_token()
        self.operator, self.operator_id = api.with_roles(["OPERATOR"], "op")
        self.auditor, _ = api.with_roles(["AUDITOR"], "aud")
        self.game_server, _ = api.with_roles(["GAME_SERVER"], "gs")

    def definition(self, **over):
        body = {"name": "Gold x100", "type": "CURRENCY", "value": {"gold": 100}}
        body.update(over)
        r = self.api.post("/events/reward-definitions", token=self.operator, json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def event(self, rewards=None, start=None, end=None, **over):
        if rewards is None:
            rewards = [{"rewardDefinitionId": self.definition()["id"], "quantity": 1}]
        t = now_utc()
        body = {"title": "Event " + uuid.uuid4().hex[:6],
                "startDate": iso(start or t - datetime.timedelta(days=1)),
                "endDate": iso(end or t + datetime.timedelta(days=7)),
                "rewards": rewards}
        body.update(over)
        r = self.api.post("/events", token=self.operator, json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def report(self, *facts):
        body = {"facts": [dict(f, idempotencyKey=f.get("idempotencyKey") or uuid.uuid4().hex,
                               occurredAt=f.get("occurredAt") or iso(now_utc())) for f in facts]}
        r = self.api.post("/events/progress", token=self.game_server, json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def player(self):
        token, login = self.api.user("player")
        return token, login["user"]["id"]

    def claim(self, token, event_id, headers=None):
        return self.api.post("/events/%s/reward-requests" % event_id, token=token, headers=headers)


@pytest.fixture(scope="session")
def platform():
    # auth routes are rate-limited per address; the suite comes from one address, so the auth
    # limiter is off here and tested on its own platform in test_limits.py (the global login
    # budget likewise, in test_login_defences.py). A batch item whose account lookup was lost (a
    # saturated machine) is taken again after BATCH_REDELIVER_MS: 10 s here, not the default 60 s,
    # so that a test waiting 120 s for a batch survives one loss
    env = {"RATE_LIMIT_AUTH_RPS": "0", "RATE_LIMIT_RPS": "0", "LOGIN_GLOBAL_RPS": "0", "BATCH_REDELIVER_MS": "10000"}
    p = (Cluster(env) if MODE == "cluster" else Platform(env)).start()
    yield p
    code = p.stop()
    assert code == 0, "platform exited with %s:\n%s" % (code, p.log_tail())


@pytest.fixture
def api(platform):
    return Client(platform)


@pytest.fixture(scope="session")
def world(platform):
    return World(Client(platform))
