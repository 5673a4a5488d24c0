"""The api serves HTTPS itself when TLS_CERT_FILE and TLS_KEY_FILE are set: TLS 1.2 and 1.3 only,
plain HTTP on that port fails, every response carries Strict-Transport-Security; without them
no HSTS. Uses a self-signed certificate made by openssl in the test."""
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import pytest
import requests

from platform_proc import Cluster, Platform, wait_for

MODE = os.environ.get("E2E_MODE", "embedded")
HSTS = "max-age=31536000"


def make_cert(directory, name):
    """A self-signed certificate for 127.0.0.1 (EC P-256: fast to make): (cert path, key path)."""
    cert, key = os.path.join(directory, name + ".crt"), os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="rp-tls-")
    yield d, make_cert(d, "server"), make_cert(d, "other")
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def tls(certs):
    d, (cert, key), _ = certs
    env = {"TLS_CERT_FILE": cert, "TLS_KEY_FILE": key, "RATE_LIMIT_RPS": "0", "RATE_LIMIT_AUTH_RPS": "0"}
    p = Cluster(env) if MODE == "cluster" else Platform(env)
    p.base = "https://127.0.0.1:%d/api/v1" % p.port
    # the platform's own readiness poll goes through requests, which trusts this bundle
    saved = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = cert
    try:
        p.start()
        p.cert = cert
        yield p
        assert p.stop() == 0, p.log_tail()
    finally:
        if saved is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = saved


def handshake(p, minimum=None, maximum=None):
    """A TLS handshake with the platform: the negotiated (version, cipher)."""
    ctx = ssl.create_default_context(cafile=p.cert)
    # let the client offer old protocols, so that only the server can refuse them
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.version(), s.cipher()[0]


def test_an_https_start_waits_for_no_client(certs):
    # start-up teaches the per-address cap civetweb's layout with a connection to its own port;
    # over TLS its unfinished handshake teaches nothing, and start-up used to wait for a client's
    # finished connection to teach it, or 30 s (LAYOUT_WAIT_MS). Nothing connects here until the
    # api logs that it is ready
    _, (cert, key), _ = certs
    env = {"TLS_CERT_FILE": cert, "TLS_KEY_FILE": key}
    p = Cluster(env) if MODE == "cluster" else Platform(env)
    t0 = time.monotonic()
    p.start(wait=False)
    try:
        def ready_logged():
            with open(p.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            return text if ('"msg":"reward-api ready' in text or '"msg":"reward-platform ready' in text) else None
        text = wait_for(ready_logged, 90, "the api to log that it is ready")
        took = time.monotonic() - t0
        assert took < 20, "ready after %.1f s:\n%s" % (took, p.log_tail())
        assert "sslize" not in text, p.log_tail()
        assert "applies from the first finished connection on" in text
        # the address as a client writes it, not civetweb's port spec ("443s")
        assert re.search(r'"listening on [^" ]+:%d \(HTTPS\)' % p.port, text), p.log_tail()
    finally:
        assert p.stop() == 0, p.log_tail()


def test_https_works_and_every_response_carries_hsts(tls):
    r = requests.get(tls.url("/health/live"), verify=tls.cert, timeout=10)
    assert r.status_code == 200
    assert r.headers["Strict-Transport-Security"] == HSTS
    # errors too, the gateway's and civetweb's own
    r = requests.get(tls.url("/events"), verify=tls.cert, timeout=10)
    assert r.status_code == 401
    assert r.headers["Strict-Transport-Security"] == HSTS
    ctx = ssl.create_default_context(cafile=tls.cert)
    with socket.create_connection(("127.0.0.1", tls.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"GET /api/v1/health/live HTTP/9.9\r\n\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer:  # civetweb writes its header in pieces
                data = s.recv(65536)
                if not data:
                    break
                answer += data
    assert answer.split(b"\r\n")[0].split(b" ")[1] == b"505", answer
    assert b"Strict-Transport-Security: " + HSTS.encode() in answer


def test_plain_http_on_the_tls_port_fails(tls):
    with socket.create_connection(("127.0.0.1", tls.port), timeout=10) as s:
        s.sendall(b"GET /api/v1/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = s.recv(65536)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"HTTP/"), answer
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get("http://127.0.0.1:%d/api/v1/health/live" % tls.port, timeout=10)


def test_tls_1_2_and_1_3_are_served_with_forward_secret_aead_ciphers(tls):
    version, cipher = handshake(tls, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
    assert version == "TLSv1.2"
    assert cipher.startswith("ECDHE-") and ("GCM" in cipher or "CHACHA20" in cipher), cipher
    assert handshake(tls)[0] == "TLSv1.3"


@pytest.mark.parametrize("old", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_1_1_and_older_are_refused(tls, old):
    with pytest.raises(ssl.SSLError) as e:
        handshake(tls, old, old)
    # the server's alert, not a client that refused to offer the protocol
    assert "PROTOCOL_VERSION" in str(e.value).upper() or "UNSUPPORTED_PROTOCOL" in str(e.value).upper(), e.value


def test_no_hsts_without_tls(platform):
    r = requests.get(platform.url("/health/live"), timeout=10)
    assert r.status_code == 200
    assert "Strict-Transport-Security" not in r.headers


def run_until_exit(extra_env):
    p = Platform(extra_env)
    out = subprocess.run([p.binary], env=p.env, capture_output=True, timeout=60)
    return out.returncode, out.stderr.decode("utf-8", "replace")


def test_tls_settings_that_cannot_work_refuse_start_with_one_line(certs):
    d, (cert, key), (other_cert, other_key) = certs
    cases = [({"TLS_CERT_FILE": cert}, "TLS_CERT_FILE and TLS_KEY_FILE must be set together"),
             ({"TLS_CERT_FILE": cert, "TLS_KEY_FILE": os.path.join(d, "missing.key")}, "TLS_KEY_FILE cannot be read"),
             ({"TLS_CERT_FILE": os.path.join(d, "missing.crt"), "TLS_KEY_FILE": key}, "TLS_CERT_FILE cannot be read"),
             ({"TLS_CERT_FILE": cert, "TLS_KEY_FILE": other_key}, "TLS_KEY_FILE holds no PEM private key of"),
             ({"TLS_CERT_FILE": cert, "TLS_KEY_FILE": cert}, "TLS_KEY_FILE holds no PEM private key of"),
             ({"TLS_CERT_FILE": key, "TLS_KEY_FILE": key}, "TLS_CERT_FILE holds no PEM certificate")]
    for env, reason in cases:
        code, err = run_until_exit(env)
        assert code != 0, env
        assert reason in err, err
        lines = [line for line in err.strip().splitlines() if reason in line]
        assert len(lines) == 1, err
