"""Role rules of the auth routes (the full route x role matrix comes with the event routes)."""


def test_user_is_refused_admin_routes(api):
    token, login = api.user("rbac")
    assert api.get("/auth/users", token=token).status_code == 403
    r = api.call("PUT", "/auth/users/%s/roles" % login["user"]["id"], token=token, json={"roles": ["ADMIN"]})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "FORBIDDEN"
    # and nothing changed
    assert api.get("/auth/me", token=token).json()["roles"] == ["USER"]


def test_other_roles_are_refused_admin_routes(api):
    for role in ["OPERATOR", "AUDITOR", "GAME_SERVER"]:
        token, _ = api.with_roles([role])
        assert api.get("/auth/users", token=token).status_code == 403, role


def test_admin_is_allowed(api):
    assert api.get("/auth/users", token=api.admin_token()).status_code == 200


def test_no_token_is_401(api):
    for method, path in [("GET", "/auth/me"), ("GET", "/auth/users"), ("PUT", "/auth/users/%s/roles" % ("a" * 24))]:
        r = api.call(method, path, json={"roles": ["USER"]} if method == "PUT" else None)
        assert r.status_code == 401, path
        assert r.headers.get("WWW-Authenticate") == "Bearer"
