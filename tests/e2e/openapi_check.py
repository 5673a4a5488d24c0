"""Every HTTP response the black-box tests receive, checked against the OpenAPI document.

conftest.py installs this module's hooks for the whole session: requests (sessions and the
module-level functions, which go through Session.send) and raw http.client connections. Each
response to a path below /api/v1 must be documented for its route and method (status, media
type) and its JSON body must validate against the documented schema (Draft 2020-12, Debian's
python3-jsonschema). A path no route has must answer the document's x-unmatched-responses 404,
a route called with a method it lacks the 405 there. Paths outside /api/v1 (/metrics, the
console) are not part of the document and are not checked.

A mismatch raises OpenApiMismatch in the code that received the response and is also recorded,
so that a test whose thread swallowed the exception still fails (conftest's autouse fixture).
With OPENAPI_SURVEY=FILE nothing fails: every mismatch of the run is appended to FILE, to fix the
document (or the code) in one go.

The document is the one the build made for the binary under test: $OPENAPI_DOC, else
gen/openapi.json beside the bin/ directory of $BIN, else build/gen/openapi.json.
"""
import http.client
import io
import json
import os
import posixpath
import threading
import urllib.parse

import jsonschema
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PREFIX = "/api/v1"


class OpenApiMismatch(AssertionError):
    """A response the OpenAPI document does not allow."""


def document_path():
    if os.environ.get("OPENAPI_DOC"):
        return os.environ["OPENAPI_DOC"]
    binary = os.environ.get("BIN")
    if binary:
        if not os.path.isabs(binary):
            binary = os.path.join(ROOT, binary)
        beside = os.path.join(os.path.dirname(os.path.dirname(binary)), "gen", "openapi.json")
        if os.path.exists(beside):
            return beside
    return os.path.join(ROOT, "build", "gen", "openapi.json")


def load_document(path=None):
    path = path or document_path()
    if not os.path.exists(path):
        raise RuntimeError("no OpenAPI document at %s: build it first (make all)" % path)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _segments(path):
    """The path's segments, or None when the router refuses it (empty segment, trailing slash)."""
    if path == "/":
        return []
    parts = path.split("/")[1:]
    return None if any(p == "" for p in parts) else parts


def _is_param(seg):
    return len(seg) >= 2 and seg[0] == "{" and seg[-1] == "}"


class Contract:
    """The document's routes, matched as the gateway matches them (api/routes.c)."""

    def __init__(self, doc):
        self.doc = doc
        self.resolver = jsonschema.RefResolver.from_schema(doc)
        self.routes = [(p, _segments(p)) for p in doc.get("paths", {})]
        self.validators = {}
        self.lock = threading.Lock()

    def match(self, sub):
        """The best path template for sub (a decoded path below the prefix), or None: at the first
        segment where two templates differ, a literal beats a parameter."""
        segs = _segments(sub)
        if segs is None:
            return None
        best, best_key = None, None
        for template, tsegs in self.routes:
            if len(tsegs) != len(segs):
                continue
            key = []
            for t, s in zip(tsegs, segs):
                if _is_param(t):
                    key.append(0)
                elif t == s:
                    key.append(1)
                else:
                    break
            else:
                if best_key is None or key > best_key:
                    best, best_key = template, key
        return best

    def _validator(self, key, schema):
        with self.lock:
            v = self.validators.get(key)
            if v is None:
                v = jsonschema.Draft202012Validator(schema, resolver=self.resolver)
                self.validators[key] = v
        return v

    def _resolve(self, obj):
        if isinstance(obj, dict) and "$ref" in obj:
            _, resolved = self.resolver.resolve(obj["$ref"])
            return resolved
        return obj

    def check(self, method, url, status, content_type, body):
        """None when the response is documented, else a message naming route, status and why.
        body is the raw bytes, or None when the test streamed it (not read here)."""
        parsed = urllib.parse.urlsplit(url)
        path = urllib.parse.unquote(parsed.path)
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            return None
        sub = path[len(PREFIX):] or "/"
        # civetweb removes dot segments before routing
        if "/." in sub:
            sub = posixpath.normpath(sub) + ("/" if sub.endswith("/") and sub != "/" else "")
        method = method.upper()
        template = self.match(sub)
        unmatched = self.doc.get("x-unmatched-responses", {})
        where = "%s %s" % (method, path)
        if template is None:
            response, route = unmatched.get("404"), "unmatched path %s" % sub
            if status != 404:
                return "%s: %s answered %d; a path no route has must answer 404" % (where, route, status)
        else:
            op = self.doc["paths"][template].get(method.lower())
            if op is None:
                response, route = unmatched.get("405"), "%s (no %s)" % (template, method)
                if status != 405:
                    return "%s: route %s answered %d; a method the path lacks must answer 405" % (where, route, status)
            else:
                route = "%s %s" % (method, template)
                responses = op.get("responses", {})
                response = responses.get(str(status)) or responses.get("%dXX" % (status // 100)) or \
                    responses.get("default")
                if response is None:
                    return "%s: route %s answered %d, which the document does not list (it lists %s)" % (
                        where, route, status, ", ".join(sorted(responses)))
        response = self._resolve(response)
        content = response.get("content")
        media = (content_type or "").split(";")[0].strip().lower()
        if not content:
            if body:
                return "%s: route %s answered %d with a body of %s, but the document gives that answer none" % (
                    where, route, status, media or "no type")
            return None
        if media not in content:
            return "%s: route %s answered %d as %r; the document says %s" % (
                where, route, status, media, ", ".join(sorted(content)))
        if body is None or not (media == "application/json" or media.endswith("+json")):
            return None
        schema = content[media].get("schema")
        if schema is None:
            return None
        try:
            value = json.loads(body.decode("utf-8"))
        except ValueError as e:
            return "%s: route %s answered %d with invalid JSON (%s)" % (where, route, status, e)
        validator = self._validator((route, status, media), schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is not None:
            at = "/" + "/".join(str(p) for p in error.absolute_path)
            return "%s: route %s answered %d; the body does not match its schema at %s: %s\nbody: %s" % (
                where, route, status, at, error.message, body[:600].decode("utf-8", "replace"))
        return None


_contract = None
_failures = []
_failures_lock = threading.Lock()
_installed = False


def _report(message):
    if message is None:
        return
    survey = os.environ.get("OPENAPI_SURVEY")
    if survey:  # collect every mismatch of a whole run into a file instead of failing
        with _failures_lock, open(survey, "a", encoding="utf-8") as f:
            f.write(message.replace("\n", " | ") + "\n")
        return
    with _failures_lock:
        _failures.append(message)
    raise OpenApiMismatch(message)


def take_failures():
    """The mismatches recorded since the last call (and forgets them)."""
    with _failures_lock:
        out = list(_failures)
        _failures.clear()
    return out


def contract():
    return _contract


def install(doc=None):
    """Loads the document and hooks requests and http.client for the rest of the process."""
    global _contract, _installed
    _contract = Contract(doc or load_document())
    if _installed:
        return _contract
    _installed = True

    original_send = requests.Session.send

    def send(self, request, **kwargs):
        r = original_send(self, request, **kwargs)
        body = None if kwargs.get("stream") else r.content
        _report(_contract.check(request.method, request.url, r.status_code, r.headers.get("Content-Type"), body))
        return r

    requests.Session.send = send

    # raw http.client, as a few hostile-client tests use it; urllib3 (requests) subclasses
    # HTTPConnection and is checked above, so only the class itself is hooked here
    original_request = http.client.HTTPConnection.request
    original_getresponse = http.client.HTTPConnection.getresponse

    def request(self, method, url, *args, **kwargs):
        if type(self) is http.client.HTTPConnection:
            self._openapi_call = (method, url)
        return original_request(self, method, url, *args, **kwargs)

    def getresponse(self):
        r = original_getresponse(self)
        call = getattr(self, "_openapi_call", None)
        if type(self) is not http.client.HTTPConnection or call is None:
            return r
        self._openapi_call = None
        body = r.read()
        # hand the body back to the test as if unread
        r.fp, r.length, r.chunked = io.BytesIO(body), len(body), False
        url = "http://%s:%s%s" % (self.host, self.port, call[1])
        _report(_contract.check(call[0], url, r.status, r.getheader("Content-Type"), body))
        return r

    http.client.HTTPConnection.request = request
    http.client.HTTPConnection.getresponse = getresponse
    return _contract
