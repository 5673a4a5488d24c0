"""Registration, login, tokens, lockout and account administration over HTTP."""
import uuid


def test_register_login_me_refresh_logout(api):
    name, pw, acc = api.register("flow")
    assert acc["username"] == name
    assert acc["roles"] == ["USER"]
    assert len(acc["id"]) == 24
    assert "password" not in acc and "passwordHash" not in acc

    login = api.login(name, pw)
    assert login["tokenType"] == "Bearer"
    assert login["expiresIn"] > 0
    assert login["user"] == {"id": acc["id"], "username": name, "roles": ["USER"]}

    me = api.get("/auth/me", token=login["accessToken"])
    assert me.status_code == 200
    assert me.json()["email"] == name + "@example.com"

    # login by email works too
    assert api.login(name + "@example.com", pw)["user"]["id"] == acc["id"]

    r = api.post("/auth/refresh", json={"refreshToken": login["refreshToken"]})
    assert r.status_code == 200
    rotated = r.json()
    assert rotated["refreshToken"] != login["refreshToken"]
    assert api.get("/auth/me", token=rotated["accessToken"]).status_code == 200

    # the old refresh token is dead, and presenting it kills the new one too
    r = api.post("/auth/refresh", json={"refreshToken": login["refreshToken"]})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "REFRESH_TOKEN_REUSED"
    assert api.post("/auth/refresh", json={"refreshToken": rotated["refreshToken"]}).status_code == 401

    # logout revokes a fresh session's refresh token
    fresh = api.login(name, pw)
    r = api.post("/auth/logout", token=fresh["accessToken"], json={"refreshToken": fresh["refreshToken"]})
    assert r.status_code == 200
    assert api.post("/auth/refresh", json={"refreshToken": fresh["refreshToken"]}).status_code == 401


def test_logout_needs_a_token(api):
    r = api.post("/auth/logout", json={"refreshToken": "x"})
    assert r.status_code == 401


def test_duplicates_are_case_insensitive(api):
    name, pw, _ = api.register("dup")
    r = api.post("/auth/register", json={"username": name.upper(), "email": "x" + name + "@example.com",
                                         "password": "password-123"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "USERNAME_TAKEN"
    r = api.post("/auth/register", json={"username": "o" + name[:20], "email": (name + "@EXAMPLE.com").upper(),
                                         "password": "password-123"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "EMAIL_TAKEN"


def test_invalid_fields_have_details(api):
    r = api.post("/auth/register", json={"username": "a!", "email": "not-an-email", "password": "short"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "VALIDATION_FAILED"
    fields = {d["field"] for d in err["details"]}
    assert {"/username", "/email", "/password"} <= fields
    for d in err["details"]:
        assert d["reason"]
    r = api.post("/auth/register", json={"username": "okname_" + uuid.uuid4().hex[:6], "email": "a@b.co",
                                         "password": "password-123", "roles": ["ADMIN"]})
    assert r.status_code == 400
    assert any(d["field"] == "/roles" for d in r.json()["error"]["details"])
    r = api.post("/auth/register", json={"username": 12, "password": "password-123"})
    assert r.status_code == 400
    fields = {d["field"] for d in r.json()["error"]["details"]}
    assert {"/username", "/email"} <= fields


def test_password_length_is_bytes(api):
    # 43 three-byte characters = 129 bytes: too long although only 43 characters
    r = api.post("/auth/register", json={"username": "pw_" + uuid.uuid4().hex[:8], "email": uuid.uuid4().hex + "@x.io",
                                         "password": "\u20ac" * 43})
    assert r.status_code == 400


def test_wrong_password_and_unknown_user_look_the_same(api):
    name, _, _ = api.register("wrong")
    a = api.post("/auth/login", json={"username": name, "password": "not-the-password"})
    b = api.post("/auth/login", json={"username": "nobody_" + uuid.uuid4().hex, "password": "whatever-123"})
    assert a.status_code == b.status_code == 401
    assert a.json()["error"]["code"] == b.json()["error"]["code"] == "INVALID_CREDENTIALS"
    assert a.json()["error"]["message"] == b.json()["error"]["message"]


def test_lockout_after_five_failures(api):
    name, pw, _ = api.register("lock")
    for _ in range(5):
        assert api.post("/auth/login", json={"username": name, "password": "bad-password"}).status_code == 401
    r = api.post("/auth/login", json={"username": name, "password": pw})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "ACCOUNT_LOCKED"
    retry = int(r.headers["Retry-After"])
    assert 0 < retry <= 15 * 60
    # other accounts are not affected
    other, opw, _ = api.register("notlocked")
    api.login(other, opw)


def test_roles_change_applies_at_next_login(api):
    name, pw, acc = api.register("promote")
    admin = api.admin_token()
    r = api.call("PUT", "/auth/users/%s/roles" % acc["id"], token=admin, json={"roles": ["USER", "OPERATOR"]})
    assert r.status_code == 200
    assert sorted(r.json()["roles"]) == ["OPERATOR", "USER"]
    assert sorted(api.login(name, pw)["user"]["roles"]) == ["OPERATOR", "USER"]
    r = api.call("PUT", "/auth/users/%s/roles" % acc["id"], token=admin, json={"roles": ["GOD"]})
    assert r.status_code == 400
    r = api.call("PUT", "/auth/users/%s/roles" % ("f" * 24), token=admin, json={"roles": ["USER"]})
    assert r.status_code == 404


def test_admin_lists_users_with_cursor(api):
    for _ in range(3):
        api.register("page")
    admin = api.admin_token()
    seen, cursor = [], None
    while True:
        params = {"limit": "2"}
        if cursor:
            params["cursor"] = cursor
        r = api.get("/auth/users", token=admin, params=params)
        assert r.status_code == 200
        body = r.json()
        assert len(body["items"]) <= 2
        seen += [u["id"] for u in body["items"]]
        cursor = body["nextCursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) >= 4
    assert api.get("/auth/users", token=admin, params={"limit": "0"}).status_code == 400
    assert api.get("/auth/users", token=admin, params={"cursor": "zz"}).status_code == 400


def test_role_changes_are_in_the_audit_log(api):
    name, pw, acc = api.register("audited")
    admin = api.admin_token()
    r = api.call("PUT", "/auth/users/%s/roles" % acc["id"], token=admin, json={"roles": ["USER", "AUDITOR"]})
    assert r.status_code == 200
    auditor = api.login(name, pw)["accessToken"]
    log = api.get("/auth/audit-log", token=auditor, params={"targetId": acc["id"]})
    assert log.status_code == 200
    entry = log.json()["items"][0]
    assert entry["action"] == "user.roles.update"
    assert entry["target"] == {"type": "user", "id": acc["id"]}
    assert entry["before"] == ["USER"] and entry["after"] == ["USER", "AUDITOR"]
    assert entry["actor"]["username"] == api.p.admin[0]
    user_token, _ = api.user("notauditor")
    assert api.get("/auth/audit-log", token=user_token).status_code == 403
