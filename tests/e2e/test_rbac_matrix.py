"""Every route with every role, derived from the route table the binary itself prints."""
import json
import subprocess

import pytest

from platform_proc import Platform

ROLES = ["USER", "OPERATOR", "AUDITOR", "ADMIN", "GAME_SERVER"]
SAMPLE_ID = "0123456789abcdef01234567"


def route_table():
    out = subprocess.run([Platform().binary, "--routes"], capture_output=True, check=True, timeout=30)
    return json.loads(out.stdout)


ROUTES = route_table()


def concrete(pattern):
    return pattern.replace("{id}", SAMPLE_ID).replace("{userId}", SAMPLE_ID).replace("{asset}", "apidoc.js")


# routes open to any caller where the worker then allows only the owner or staff: a caller
# asking about someone else gets 403 there, which the route table cannot express
OWNER_ONLY = {"/events/progress/{userId}": {"USER", "GAME_SERVER"}}


@pytest.fixture(scope="module")
def tokens(world):
    out = {}
    for role in ROLES:
        out[role], _ = world.api.with_roles([role], "m" + role.lower()[:3])
    return out


@pytest.mark.parametrize("route", [r for r in ROUTES if not r["public"]], ids=lambda r: r["method"] + " " + r["pattern"])
def test_route_against_every_role(api, tokens, route):
    path = concrete(route["pattern"])
    body = {} if route["method"] in ("POST", "PUT", "PATCH") else None
    r = api.call(route["method"], path, json=body)
    assert r.status_code == 401, (path, r.status_code)
    for role in ROLES:
        r = api.call(route["method"], path, token=tokens[role], json=body)
        allowed = route["roles"] is None or role in route["roles"]
        if allowed and role in OWNER_ONLY.get(route["pattern"], ()):
            assert r.status_code == 403, (role, path, r.status_code, r.text)
        elif allowed:
            assert r.status_code not in (401, 403), (role, path, r.status_code, r.text)
            assert r.status_code < 500, (role, path, r.status_code, r.text)
        else:
            assert r.status_code == 403, (role, path, r.status_code, r.text)
            assert r.json()["error"]["code"] == "FORBIDDEN"


def test_public_routes_need_no_token(api):
    for route in ROUTES:
        if route["public"] and route["method"] == "GET":
            assert api.call("GET", concrete(route["pattern"])).status_code == 200, route


def test_auditor_writes_nothing(api, tokens):
    for route in ROUTES:
        if route["method"] in ("POST", "PUT", "PATCH", "DELETE") and not route["public"]:
            if route["roles"] is not None:
                assert "AUDITOR" not in route["roles"], route
