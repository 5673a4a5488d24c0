"""Malformed and hostile requests get a JSON 4xx and change nothing."""
import json
import socket
import time
import uuid


def raw(platform, data, read_timeout=10):
    """Sends raw bytes and returns (status, headers, body) of the response."""
    with socket.create_connection(("127.0.0.1", platform.port), timeout=read_timeout) as s:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, headers, body


def register_body():
    n = "bad_" + uuid.uuid4().hex[:10]
    return {"username": n, "email": n + "@example.com", "password": "password-123"}


def test_body_too_large(api):
    big = {"username": "x", "email": "y", "password": "z" * (70 * 1024)}
    r = api.post("/auth/register", json=big)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_body_too_large_chunked(platform):
    # a chunked body has no declared length: the server must stop reading past the limit. The
    # client sends just over 64 KiB and then waits for the answer (sending more after the 413
    # would only race the server's close).
    head = (b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"a" * 1000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(67))
    status, _, payload = raw(platform, head + body)
    assert status == 413
    assert json.loads(payload)["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_wrong_media_type(api):
    body = json.dumps(register_body())
    r = api.call("POST", "/auth/register", data=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    r = api.call("POST", "/auth/register", data=body)
    assert r.status_code == 415
    # a charset parameter is fine
    r = api.call("POST", "/auth/register", data=body, headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 201


def test_invalid_json(api):
    cases = ['{"username": "abc", ', '{"a":1,"a":2}', "[]", "42", '"str"', "null", "{'a':1}", '{"a":1} x']
    for text in cases:
        r = api.call("POST", "/auth/register", data=text, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, text
        assert r.json()["error"]["code"] == "INVALID_JSON", text


def test_empty_body(api):
    r = api.call("POST", "/auth/login", data=b"", headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_invalid_utf8_and_nul(api):
    r = api.call("POST", "/auth/register", data=b'{"username":"\xff\xfe"}', headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = api.call("POST", "/auth/register", data=b'{"username":"a\\u0000b","email":"a@b.co","password":"password-123"}',
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_deep_nesting(api):
    text = "[" * 5000 + "]" * 5000
    r = api.call("POST", "/auth/register", data=text, headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_unknown_route_and_wrong_method(api):
    r = api.get("/auth/nothing-here")
    assert r.status_code == 404
    r = api.get("/auth/login")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert r.headers["Allow"] == "POST"
    r = api.call("DELETE", "/auth/me")
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET"


def test_bad_query_string(api):
    token, _ = api.user("query")
    r = api.get("/auth/me?a=1&a=2", token=token)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "INVALID_QUERY"


def test_expect_100_continue_does_not_stall(platform):
    body = json.dumps(register_body()).encode()
    req = (b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
    with socket.create_connection(("127.0.0.1", platform.port), timeout=10) as s:
        s.sendall(req)
        interim = s.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        t0 = time.monotonic()
        s.sendall(body)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(4096)
        assert buf.split(b" ")[1] == b"201", buf
        assert time.monotonic() - t0 < 5


def test_short_body_then_close(platform, api):
    # Content-Length promises more than is sent, then the client goes away
    with socket.create_connection(("127.0.0.1", platform.port), timeout=10) as s:
        s.sendall(b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 500\r\n\r\n{\"username\":")
    assert api.get("/").status_code == 200


def test_garbage_request_line(platform, api):
    for data in [b"HELLO\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\x00\x01\x02\r\n\r\n"]:
        try:
            with socket.create_connection(("127.0.0.1", platform.port), timeout=10) as s:
                s.sendall(data)
                s.recv(4096)
        except OSError:
            pass
    assert api.get("/").status_code == 200


def test_oversized_headers(platform, api):
    status, _, _ = raw(platform, b"GET /api/v1/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert status in (400, 413, 431)
    assert api.get("/").status_code == 200


def test_bad_idempotency_key(api):
    token, _ = api.user("idem")
    r = api.get("/auth/me", token=token, headers={"Idempotency-Key": "x" * 200})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "INVALID_IDEMPOTENCY_KEY"


def test_post_without_any_length_has_no_body(platform, api):
    # no Content-Length and no Transfer-Encoding: an empty body, not an unknown one
    token, _ = api.user("nolen")
    req = (b"POST /api/v1/auth/logout HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() +
           b"\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
    status, _, body = raw(platform, req)
    assert status == 400
    assert json.loads(body)["error"]["code"] == "INVALID_JSON"
