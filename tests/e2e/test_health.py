"""Gateway basics: health, headers, request ids, unknown routes, metrics."""
import re

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def assert_common_headers(r):
    for k, v in SECURITY_HEADERS.items():
        assert r.headers.get(k) == v, (k, r.headers)
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers.get("X-Request-Id")


def test_root(api):
    r = api.get("/")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "message": "Gateway is running"}
    assert_common_headers(r)


def test_live_and_ready(api, platform):
    assert api.get("/health/live").json()["status"] == "ok"
    r = api.get("/health/ready")
    assert r.status_code == 200
    assert r.json() == {"status": "ready"}
    # the checks are shown to holders of the metrics token only
    body = api.get("/health/ready", token=platform.metrics_token).json()
    assert body["status"] == "ready"
    assert body["checks"]["auth"] == "ok"
    assert body["checks"]["transport"] == "ok"


def test_request_id_echoed_or_generated(api):
    r = api.get("/", headers={"X-Request-Id": "abc-123.DEF_x"})
    assert r.headers["X-Request-Id"] == "abc-123.DEF_x"
    generated = api.get("/").headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    # unsafe or oversized ids are replaced, never reflected
    for bad in ["a b", "x" * 65, "<script>", "id\u00e9"]:
        r = api.get("/", headers={"X-Request-Id": bad.encode("utf-8")})
        assert r.headers["X-Request-Id"] != bad
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-Id"])


def test_errors_carry_request_id_and_shape(api):
    r = api.get("/no/such/route", headers={"X-Request-Id": "trace-404"})
    assert r.status_code == 404
    body = r.json()
    assert body["error"]["code"] == "NOT_FOUND"
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["details"] == []
    assert body["requestId"] == "trace-404"
    assert_common_headers(r)


def test_outside_the_prefix_is_json_404(api, platform):
    import requests
    r = requests.get("http://127.0.0.1:%d/index.html" % platform.port, timeout=10)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "NOT_FOUND"


def test_metrics_with_the_token(api, platform):
    import requests
    api.get("/")
    r = requests.get("http://127.0.0.1:%d/metrics" % platform.port, timeout=10,
                     headers={"Authorization": "Bearer " + platform.metrics_token})
    assert r.status_code == 200
    assert 'rp_http_requests_total{method="GET",route="/",status="2xx"}' in r.text
    assert "rp_http_request_duration_seconds_bucket" in r.text
