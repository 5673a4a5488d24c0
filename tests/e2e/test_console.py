"""The web console's assets as the api serves them: headers (CSP, nosniff, ETag), 304, 404 and
path traversal, HEAD and other methods. The console's behaviour in a browser is tested in
tests/browser/."""
import re
import socket

import requests

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def root(platform):
    return "http://127.0.0.1:%d" % platform.port


def raw_get(platform, target):
    """Sends target as written (no client-side normalisation); returns (status, head, body)."""
    with socket.create_connection(("127.0.0.1", platform.port), timeout=10) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % target).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode("latin-1"), body


def raw_head_then_get(platform, head_target, get_target):
    """HEAD then GET pipelined on one connection; returns the first answer's status and head.
    The server must close after it (nothing else arrives)."""
    with socket.create_connection(("127.0.0.1", platform.port), timeout=10) as s:
        s.sendall(("HEAD %s HTTP/1.1\r\nHost: x\r\n\r\nGET %s HTTP/1.1\r\nHost: x\r\n\r\n"
                   % (head_target, get_target)).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"HTTP/1.1 200" not in rest
    return int(head.split()[1]), head.decode("latin-1")


def test_index_has_the_security_headers_and_no_inline_code(platform):
    r = requests.get(root(platform) + "/console/", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Content-Security-Policy"] == CSP
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Cache-Control"] == "no-cache"
    assert re.fullmatch(r'"[0-9a-f]{32}"', r.headers["ETag"])
    assert r.headers["X-Request-Id"]
    html = r.text
    assert '<script type="module" src="js/app.js"></script>' in html
    # no inline script or style: every <script> has a src, no style attribute or element
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "<style" not in html and "style=" not in html


def test_every_module_the_app_imports_is_served_with_its_type(platform):
    seen, todo = set(), ["js/app.js"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        r = requests.get(root(platform) + "/console/" + path, timeout=10)
        assert r.status_code == 200, path
        assert r.headers["Content-Type"] == "text/javascript; charset=utf-8", path
        assert r.headers["Content-Security-Policy"] == CSP
        base = path.rsplit("/", 1)[0]
        for imp in re.findall(r"from '(\.[^']+)'", r.text):
            parts = (base + "/" + imp).split("/")
            out = []
            for p in parts:
                if p == "..":
                    out.pop()
                elif p != ".":
                    out.append(p)
            todo.append("/".join(out))
    assert len(seen) >= 10
    css = requests.get(root(platform) + "/console/style.css", timeout=10)
    assert css.status_code == 200 and css.headers["Content-Type"] == "text/css; charset=utf-8"


def test_etag_gives_304_and_a_changed_one_the_body(platform):
    url = root(platform) + "/console/js/api.js"
    first = requests.get(url, timeout=10)
    etag = first.headers["ETag"]
    again = requests.get(url, headers={"If-None-Match": etag}, timeout=10)
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Content-Security-Policy"] == CSP
    listed = requests.get(url, headers={"If-None-Match": '"0000", W/%s' % etag}, timeout=10)
    assert listed.status_code == 304
    other = requests.get(url, headers={"If-None-Match": '"%s"' % ("0" * 32)}, timeout=10)
    assert other.status_code == 200 and other.content == first.content


def test_console_without_slash_redirects(platform):
    r = requests.get(root(platform) + "/console", allow_redirects=False, timeout=10)
    assert r.status_code == 301 and r.headers["Location"] == "/console/"


def test_unknown_asset_is_a_json_404(platform):
    for path in ["/console/nope.js", "/console/js/", "/console/index.html/x", "/console/embed.sh", "/consolex"]:
        r = requests.get(root(platform) + path, timeout=10)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "NOT_FOUND"
        assert r.json()["requestId"] == r.headers["X-Request-Id"]


def test_path_traversal_never_leaves_the_table(platform):
    # encoded dots and slashes are names, and no asset has such a name
    for target in ["/console/%2e%2e/%2e%2e/etc/passwd", "/console/..%2f..%2fMakefile", "/console/%2e%2e%2fMakefile",
                   "/console//etc/passwd", "/console/js%2f..%2f..%2fMakefile"]:
        status, head, body = raw_get(platform, target)
        assert status in (400, 404), (target, status)
        assert b"root:" not in body and b"CC      ?=" not in body
    # plain dot segments are removed before routing (as a browser would): what they reach is the
    # route they name, never a file
    status, _, body = raw_get(platform, "/console/js/../../Makefile")
    assert status == 404 and b"CC      ?=" not in body
    status, _, body = raw_get(platform, "/console/js/../index.html")
    assert status == 200 and body.startswith(b"<!doctype html>")
    # a NUL ends the decoded path: "/console/%00" is "/console/"
    status, _, body = raw_get(platform, "/console/%00")
    assert status in (200, 400, 404) and (status != 200 or body.startswith(b"<!doctype html>"))
    status, _, body = raw_get(platform, "/console/../api/v1/")
    assert status == 200 and b"Gateway is running" in body


def test_head_and_other_methods(platform):
    h = requests.head(root(platform) + "/console/", timeout=10)
    assert h.status_code == 200 and h.content == b"" and int(h.headers["Content-Length"]) > 100
    # a HEAD's 404 closes the connection: its body can never pass for the next response
    status, head = raw_head_then_get(platform, "/console/nope.js", "/console/")
    assert status == 404 and "Connection: close" in head
    r = requests.post(root(platform) + "/console/", data=b"x", timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    assert r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_console_needs_no_token_and_the_api_still_does(platform):
    assert requests.get(root(platform) + "/console/", timeout=10).status_code == 200
    assert requests.get(platform.url("/auth/me"), timeout=10).status_code == 401
