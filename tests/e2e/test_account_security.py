"""Account security that takes effect at once: a role change, password change, disable and
logout kill existing access tokens within 5 s on every api process (two of them in the cluster
run); a demoted admin loses admin power at once; the last enabled admin stays under concurrency.
"""
import threading
import time

import pytest
import requests

from conftest import MODE, Client
from platform_proc import Cluster, Platform

LIMIT_S = 5.0


@pytest.fixture(scope="module")
def sec_platform():
    # 30 rounds of logins: the cheapest password hash (tests only)
    env = {"RATE_LIMIT_AUTH_RPS": "0", "RATE_LIMIT_RPS": "0", "PASSWORD_HASH": "min"}
    p = (Cluster(env, api_processes=2) if MODE == "cluster" else Platform(env)).start()
    yield p
    code = p.stop()
    assert code == 0, "platform exited with %s:\n%s" % (code, p.log_tail())


@pytest.fixture
def sec(sec_platform):
    return Client(sec_platform)


def me_status(url, token):
    return requests.get(url, headers={"Authorization": "Bearer " + token}, timeout=10)


def assert_dies_within(urls, token, codes=("TOKEN_REVOKED",)):
    """Polls GET /auth/me with token on every url until each answers 401; fails unless all do
    within LIMIT_S of the call. Returns the seconds it took."""
    start = time.monotonic()
    pending = list(urls)
    while pending:
        for url in list(pending):
            r = me_status(url, token)
            if r.status_code == 401:
                assert r.json()["error"]["code"] in codes, r.text
                pending.remove(url)
            else:
                assert r.status_code == 200, r.text
        elapsed = time.monotonic() - start
        assert not pending or elapsed <= LIMIT_S, "still accepted after %.1f s on %s" % (elapsed, pending)
        if pending:
            time.sleep(0.05)
    return time.monotonic() - start


def warm(urls, token):
    """Every api process has checked token (and cached its account's state)."""
    for url in urls:
        assert me_status(url, token).status_code == 200


def me_urls(platform):
    return platform.urls("/auth/me")


def promote(api, admin_token, user_id, roles):
    r = api.call("PUT", "/auth/users/%s/roles" % user_id, token=admin_token, json={"roles": roles})
    assert r.status_code == 200, r.text
    return r.json()


def test_logout_kills_the_access_token_on_every_api(sec, sec_platform):
    name, pw, _ = sec.register("lo")
    body = sec.login(name, pw)
    other = sec.login(name, pw)["accessToken"]
    urls = me_urls(sec_platform)
    warm(urls, body["accessToken"])
    # logged out through the first api process; every one must refuse the token
    r = sec.post("/auth/logout", token=body["accessToken"], json={"refreshToken": body["refreshToken"]})
    assert r.status_code == 200, r.text
    assert_dies_within(urls, body["accessToken"])
    assert sec.post("/auth/refresh", json={"refreshToken": body["refreshToken"]}).status_code == 401
    warm(urls, other)  # the account's other session lives on


def test_password_change_kills_every_token_and_refresh(sec, sec_platform):
    name, pw, _ = sec.register("pw")
    first = sec.login(name, pw)
    second = sec.login(name, pw)
    urls = me_urls(sec_platform)
    warm(urls, first["accessToken"])
    bad = sec.post("/auth/password", token=first["accessToken"],
                   json={"currentPassword": "not-it-at-all", "newPassword": "new-password-1"})
    assert bad.status_code == 403 and bad.json()["error"]["code"] == "INVALID_CREDENTIALS"
    short = sec.post("/auth/password", token=first["accessToken"], json={"currentPassword": pw, "newPassword": "x"})
    assert short.status_code == 400 and short.json()["error"]["code"] == "VALIDATION_FAILED"
    warm(urls, first["accessToken"])  # refusals changed nothing
    r = sec.post("/auth/password", token=first["accessToken"],
                 json={"currentPassword": pw, "newPassword": "new-password-1"})
    assert r.status_code == 200 and r.json() == {"status": "password_changed"}
    for token in (first["accessToken"], second["accessToken"]):
        assert_dies_within(urls, token)
    for b in (first, second):
        assert sec.post("/auth/refresh", json={"refreshToken": b["refreshToken"]}).status_code == 401
    assert sec.post("/auth/login", json={"username": name, "password": pw}).status_code == 401
    fresh = sec.login(name, "new-password-1")["accessToken"]
    warm(urls, fresh)  # a token issued after the change works at once, whatever the caches hold


def test_disable_kills_tokens_and_refuses_login_and_refresh(sec, sec_platform):
    admin = sec.admin_token()
    name, pw, acc = sec.register("ds")
    body = sec.login(name, pw)
    urls = me_urls(sec_platform)
    warm(urls, body["accessToken"])
    for bad in ({}, {"disabled": "yes"}, {"disabled": True, "reason": 5}, {"disabled": True, "x": 1}):
        r = sec.call("PUT", "/auth/users/%s/status" % acc["id"], token=admin, json=bad)
        assert r.status_code == 400, (bad, r.text)
    r = sec.call("PUT", "/auth/users/%s/status" % acc["id"], token=body["accessToken"], json={"disabled": True})
    assert r.status_code == 403
    r = sec.call("PUT", "/auth/users/%s/status" % acc["id"], token=admin,
                 json={"disabled": True, "reason": "chargeback fraud"})
    assert r.status_code == 200, r.text
    assert r.json()["disabled"] is True and r.json()["disabledReason"] == "chargeback fraud"
    assert_dies_within(urls, body["accessToken"], codes=("ACCOUNT_DISABLED",))
    login = sec.post("/auth/login", json={"username": name, "password": pw})
    assert login.status_code == 403 and login.json()["error"]["code"] == "ACCOUNT_DISABLED"
    refresh = sec.post("/auth/refresh", json={"refreshToken": body["refreshToken"]})
    assert refresh.status_code == 403 and refresh.json()["error"]["code"] == "ACCOUNT_DISABLED"
    audit = sec.get("/auth/audit-log", token=admin, params={"targetId": acc["id"]}).json()["items"]
    assert audit[0]["action"] == "user.status.update"
    assert audit[0]["before"] == {"disabled": False}
    assert audit[0]["after"] == {"disabled": True, "reason": "chargeback fraud"}
    r = sec.call("PUT", "/auth/users/%s/status" % acc["id"], token=admin, json={"disabled": False})
    assert r.status_code == 200 and r.json()["disabled"] is False
    warm(urls, sec.login(name, pw)["accessToken"])


def test_demoted_admin_loses_admin_power_at_once_and_the_token_within_5s(sec, sec_platform):
    admin = sec.admin_token()
    name, pw, acc = sec.register("dm")
    promote(sec, admin, acc["id"], ["USER", "ADMIN"])
    token = sec.login(name, pw)["accessToken"]
    urls = sec_platform.urls("/auth/users")
    for url in urls:  # admin power, and every api process has the account's state cached
        assert requests.get(url, headers={"Authorization": "Bearer " + token}, timeout=10).status_code == 200
    warm(me_urls(sec_platform), token)
    promote(sec, admin, acc["id"], ["USER"])
    for url in urls:
        r = requests.get(url, headers={"Authorization": "Bearer " + token}, timeout=10)
        assert r.status_code == 403, (url, r.text)
    r = sec.call("PUT", "/auth/users/%s/roles" % acc["id"], token=token, json={"roles": ["USER", "ADMIN"]})
    assert r.status_code == 403  # cannot give itself ADMIN back
    assert_dies_within(me_urls(sec_platform), token)
    assert sec.get("/auth/me", token=sec.login(name, pw)["accessToken"]).json()["roles"] == ["USER"]


def admins_enabled(api, admin_token):
    users, cursor = [], None
    while True:
        r = api.get("/auth/users", token=admin_token, params={"limit": 100, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        users += r.json()["items"]
        cursor = r.json()["nextCursor"]
        if not cursor:
            break
    return [u for u in users if "ADMIN" in u["roles"] and not u["disabled"]]


def test_two_concurrent_demotions_never_leave_no_admin(sec, sec_platform):
    root_name, root_pw = sec_platform.admin
    name, pw, acc = sec.register("la")
    promote(sec, sec.admin_token(), acc["id"], ["USER", "ADMIN"])
    accounts = [(root_name, root_pw), (name, pw)]
    # leave only these two enabled admins
    for u in admins_enabled(sec, sec.admin_token()):
        if u["username"] not in (root_name, name):
            promote(sec, sec.admin_token(), u["id"], ["USER"])
    for round_ in range(30):
        tokens = [sec.login(*a) for a in accounts]
        assert all("ADMIN" in t["user"]["roles"] for t in tokens), round_
        results = [None, None]
        barrier = threading.Barrier(2)

        def demote_self(i):
            s = requests.Session()
            barrier.wait()
            results[i] = s.put(sec_platform.url("/auth/users/%s/roles" % tokens[i]["user"]["id"]),
                               headers={"Authorization": "Bearer " + tokens[i]["accessToken"]},
                               json={"roles": ["USER"]}, timeout=30)

        threads = [threading.Thread(target=demote_self, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 409], (round_, [r.text for r in results])
        loser = next(r for r in results if r.status_code == 409)
        assert loser.json()["error"]["code"] == "LAST_ADMIN"
        # the admin that remains promotes the other back for the next round
        remaining = next(i for i, r in enumerate(results) if r.status_code == 409)
        survivor = sec.login(*accounts[remaining])["accessToken"]
        left = admins_enabled(sec, survivor)
        assert [u["username"] for u in left] == [accounts[remaining][0]], round_
        promote(sec, survivor, tokens[1 - remaining]["user"]["id"], ["USER", "ADMIN"])
