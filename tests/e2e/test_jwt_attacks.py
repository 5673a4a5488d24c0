"""The JWT guard refuses every forged, expired or malformed token with a JSON 401."""
import base64
import hashlib
import hmac
import json
import time

import pytest


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(secret, header, claims, digest=hashlib.sha256, signature=None):
    h = b64(json.dumps(header).encode())
    p = b64(json.dumps(claims).encode())
    if signature is None:
        signature = b64(hmac.new(secret.encode(), ("%s.%s" % (h, p)).encode(), digest).digest())
    return "%s.%s.%s" % (h, p, signature)


@pytest.fixture
def victim(api):
    token, login = api.user("jwt")
    return login["user"]


def claims_for(user, **over):
    now = int(time.time())
    c = {"sub": user["id"], "username": user["username"], "roles": ["ADMIN"], "iat": now, "exp": now + 600,
         "jti": "x", "ver": 0}
    c.update(over)
    return c


def assert_401(api, token):
    r = api.get("/auth/me", token=token)
    assert r.status_code == 401, (token, r.status_code, r.text)
    assert r.json()["error"]["code"] in ("INVALID_TOKEN", "TOKEN_EXPIRED", "UNAUTHORIZED")
    assert r.headers["Content-Type"].startswith("application/json")


def test_correctly_signed_token_works(api, platform, victim):
    # proves the forging helper is right, so the refusals below are about the attack only
    token = forge(platform.secret, {"alg": "HS256", "typ": "JWT"}, claims_for(victim, roles=["USER"]))
    assert api.get("/auth/me", token=token).status_code == 200


def test_alg_none(api, victim):
    for alg in ["none", "None", "NONE"]:
        assert_401(api, forge("", {"alg": alg, "typ": "JWT"}, claims_for(victim), signature=""))


def test_hs384_with_the_same_secret(api, platform, victim):
    assert_401(api, forge(platform.secret, {"alg": "HS384", "typ": "JWT"}, claims_for(victim), hashlib.sha384))


def test_hs512_with_the_same_secret(api, platform, victim):
    assert_401(api, forge(platform.secret, {"alg": "HS512", "typ": "JWT"}, claims_for(victim), hashlib.sha512))


def test_wrong_secret(api, victim):
    assert_401(api, forge("an-attacker-guess-of-the-secret-000000", {"alg": "HS256"}, claims_for(victim)))


def test_expired(api, platform, victim):
    now = int(time.time())
    assert_401(api, forge(platform.secret, {"alg": "HS256"}, claims_for(victim, iat=now - 7200, exp=now - 3600)))


def test_without_exp(api, platform, victim):
    c = claims_for(victim)
    del c["exp"]
    assert_401(api, forge(platform.secret, {"alg": "HS256"}, c))


def test_exp_not_a_number(api, platform, victim):
    assert_401(api, forge(platform.secret, {"alg": "HS256"}, claims_for(victim, exp="never")))


def test_tampered_payload(api, platform, victim):
    good = forge(platform.secret, {"alg": "HS256"}, claims_for(victim, roles=["USER"]))
    h, _, s = good.split(".")
    evil = b64(json.dumps(claims_for(victim, roles=["ADMIN"])).encode())
    assert_401(api, "%s.%s.%s" % (h, evil, s))


def test_unknown_role_and_bad_subject(api, platform, victim):
    assert_401(api, forge(platform.secret, {"alg": "HS256"}, claims_for(victim, roles=["ROOT"])))
    assert_401(api, forge(platform.secret, {"alg": "HS256"}, claims_for(victim, sub="../../etc")))


def test_garbage(api):
    for t in ["", "x", "a.b.c", "....", "e30.e30.", "A" * 5000]:
        r = api.get("/auth/me", headers={"Authorization": "Bearer " + t})
        assert r.status_code == 401, t
    r = api.get("/auth/me", headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    assert r.status_code == 401
