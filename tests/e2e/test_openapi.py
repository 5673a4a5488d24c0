"""GET /api/v1/openapi.json and the reference page GET /api/v1/docs, and the response check
(openapi_check.py) that every other test relies on."""
import copy
import json
import re
import subprocess

import pytest

import openapi_check
from platform_proc import Platform


@pytest.fixture(scope="module")
def built():
    with open(openapi_check.document_path(), "rb") as f:
        return f.read()


def test_the_document_is_served_as_built(api, built):
    r = api.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.content == built
    assert r.headers["Cache-Control"] == "no-cache"
    assert re.fullmatch(r'"[0-9a-f]{16}"', r.headers["ETag"])
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    doc = r.json()
    assert doc["openapi"].startswith("3.1.")
    assert doc["paths"]["/openapi.json"]["get"]["security"] == []


def test_an_unchanged_document_is_304(api):
    etag = api.get("/openapi.json").headers["ETag"]
    r = api.get("/openapi.json", headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""
    assert r.headers["ETag"] == etag
    assert api.get("/openapi.json", headers={"If-None-Match": '"0000000000000000"'}).status_code == 200


def test_every_route_of_the_binary_is_documented(built):
    out = subprocess.run([Platform().binary, "--routes"], capture_output=True, check=True, timeout=30)
    table = {(r["method"].lower(), r["pattern"]) for r in json.loads(out.stdout)}
    doc = json.loads(built)
    documented = {(m, p) for p, item in doc["paths"].items() for m in item}
    assert table == documented
    for method, path in table:
        op = doc["paths"][path][method]
        assert op["summary"] and op["x-roles"] and "Roles: " in op["description"], (method, path)
        assert any(s.startswith("2") for s in op["responses"]), (method, path)


def strict_csp(value):
    policy = dict(p.strip().split(" ", 1) for p in value.split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in value and "http" not in value
    return policy


def test_the_reference_page_and_its_assets_are_served_under_a_strict_csp(api):
    r = api.get("/docs")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    strict_csp(r.headers["Content-Security-Policy"])
    page = r.text
    # no inline script or style, nothing from another origin: the CSP would block it anyway
    assert re.findall(r"<script[^>]*>", page) == ['<script src="docs/apidoc.js" defer>']
    assert "<style" not in page and " style=" not in page and " on" not in page.replace(" one", "")
    assert "//" not in re.sub(r"<!doctype[^>]*>", "", page, flags=re.I)
    for asset, media in (("apidoc.js", "text/javascript"), ("apidoc.css", "text/css")):
        assert 'docs/%s"' % asset in page
        a = api.get("/docs/" + asset)
        assert a.status_code == 200, asset
        assert a.headers["Content-Type"].startswith(media)
        assert a.headers["X-Content-Type-Options"] == "nosniff"
        strict_csp(a.headers["Content-Security-Policy"])
        assert "http://" not in a.text and "https://" not in a.text, asset
    js = api.get("/docs/apidoc.js").text
    assert ".innerHTML" not in js and "eval(" not in js and "new Function" not in js
    assert 'fetch("openapi.json"' in js


def test_only_the_page_assets_are_served_below_docs(api):
    for name in ("nothing.js", "openapi.json", "index.html", "apidoc.js.map"):
        r = api.get("/docs/" + name)
        assert r.status_code == 404, name
        assert r.json()["error"]["code"] == "NOT_FOUND"


# ---- the check itself: it must fail what the document does not allow ----

def contract():
    return openapi_check.Contract(copy.deepcopy(openapi_check.contract().doc))


URL = "http://127.0.0.1:1/api/v1"
ERR = json.dumps({"error": {"code": "EVENT_NOT_FOUND", "message": "x", "details": []}, "requestId": "r"}).encode()


def test_the_check_passes_a_documented_answer():
    c = contract()
    assert c.check("GET", URL + "/events/0123456789abcdef01234567", 404, "application/json", ERR) is None
    assert c.check("GET", URL + "/health/live", 200, "application/json", b'{"status":"ok"}') is None


def test_the_check_fails_an_undocumented_status():
    msg = contract().check("GET", URL + "/events/0123456789abcdef01234567", 418, "application/json", ERR)
    assert "route GET /events/{id} answered 418, which the document does not list" in msg


def test_the_check_fails_an_undocumented_error_code():
    body = ERR.replace(b"EVENT_NOT_FOUND", b"USER_NOT_FOUND")
    msg = contract().check("GET", URL + "/events/0123456789abcdef01234567", 404, "application/json", body)
    assert "does not match its schema" in msg and "USER_NOT_FOUND" in msg


def test_the_check_fails_a_body_off_its_schema():
    msg = contract().check("GET", URL + "/health/live", 200, "application/json", b'{"state":"ok"}')
    assert "route GET /health/live answered 200; the body does not match its schema" in msg
    msg = contract().check("GET", URL + "/health/live", 200, "text/plain", b"ok")
    assert "as 'text/plain'" in msg


def test_the_check_matches_literal_segments_first_and_knows_unmatched_paths():
    c = contract()
    assert c.match("/events/reward-requests/me") == "/events/reward-requests/me"
    assert c.match("/events/0123456789abcdef01234567") == "/events/{id}"
    assert c.match("/events/") is None and c.match("/nothing") is None
    nf = json.dumps({"error": {"code": "NOT_FOUND", "message": "x", "details": []}, "requestId": "r"}).encode()
    assert c.check("GET", URL + "/nothing", 404, "application/json", nf) is None
    assert "must answer 404" in c.check("GET", URL + "/nothing", 200, "application/json", b"{}")
    na = nf.replace(b"NOT_FOUND", b"METHOD_NOT_ALLOWED")
    assert c.check("DELETE", URL + "/auth/me", 405, "application/json", na) is None
    assert "must answer 405" in c.check("DELETE", URL + "/auth/me", 200, "application/json", b"{}")
    assert c.check("GET", "http://127.0.0.1:1/metrics", 200, "text/plain", b"x") is None


def test_a_received_mismatch_fails_the_test_that_received_it(api):
    """The hook on requests raises in the receiving code and records the mismatch for the
    autouse fixture; here the document is narrowed so that a real answer breaks it."""
    real = openapi_check.contract().doc
    narrowed = copy.deepcopy(real)
    del narrowed["paths"]["/health/live"]["get"]["responses"]["200"]
    openapi_check._contract = openapi_check.Contract(narrowed)
    try:
        with pytest.raises(openapi_check.OpenApiMismatch, match="GET /health/live answered 200"):
            api.get("/health/live")
    finally:
        openapi_check._contract = openapi_check.Contract(real)
        recorded = openapi_check.take_failures()
    assert len(recorded) == 1 and "/health/live" in recorded[0]
