"""A webhook receiver on 127.0.0.1 for the black-box tests, and an independent check of the
Standard Webhooks signature (Python's hmac, not the platform's code).

The receiver records every POST (path, headers, body, time) and answers as its `behave` function
says, so a test can make it fail, hang or redirect. It can be stopped (connections refused) and
started again on the same port."""
import base64
import hashlib
import hmac
import http.server
import socketserver
import threading
import time


def verify(secret, headers, body, now=None, tolerance=300):
    """True when headers/body carry a valid signature of secret made within tolerance seconds of now
    (the check a receiver must do: the signature, and the timestamp against replays)."""
    key = base64.b64decode(secret.split("_", 1)[1])
    msg_id, ts = headers.get("webhook-id"), headers.get("webhook-timestamp")
    if not msg_id or not ts or not ts.isdigit():
        return False
    if abs((now if now is not None else time.time()) - int(ts)) > tolerance:
        return False
    signed = b"%s.%s.%s" % (msg_id.encode(), ts.encode(), body)
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest("v1," + expected, s) for s in headers.get("webhook-signature", "").split())


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Receiver:
    def __init__(self, port=0, behave=None):
        self.port = port
        self.behave = behave or (lambda req, n: (200, {}, b"ok"))
        self.requests = []  # dicts: path, headers (lower-case names), body, at
        self.lock = threading.Lock()
        self.in_flight = 0
        self.server = None

    def start(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                req = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                       "at": time.time()}
                with receiver.lock:
                    receiver.requests.append(req)
                    n = sum(1 for r in receiver.requests if r["headers"].get("webhook-id") == req["headers"].get(
                        "webhook-id"))
                    receiver.in_flight += 1
                try:
                    status, headers, out = receiver.behave(req, n)
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with receiver.lock:
                        receiver.in_flight -= 1

        self.server = _Server(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self):
        return "http://127.0.0.1:%d/hook" % self.port

    def by_id(self):
        with self.lock:
            out = {}
            for r in self.requests:
                out.setdefault(r["headers"].get("webhook-id"), []).append(r)
            return out

    def of_type(self, type_):
        with self.lock:
            return [r for r in self.requests if b'"type":"%s"' % type_.encode() in r["body"][:40]]
