"""Fixtures of the browser tests: the platform started as `make run` starts it (embedded), a
headless Debian chromium driven by chromedriver through python3-selenium, and a check after each
test that the page logged no JavaScript error and no Content-Security-Policy violation.

Screenshots go to $TEST_OUTPUT_DIR/browser (default build/test-output/browser)."""
import json
import os
import re
import shutil
import sys
import uuid

import pytest
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from platform_proc import Platform, wait_for  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
OUT = os.path.join(os.environ.get("TEST_OUTPUT_DIR") or os.path.join(ROOT, "build", "test-output"), "browser")


def _missing():
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "python3-selenium is not installed (make deps-test installs it)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return "%s is missing (make deps-test installs chromium and chromium-driver)" % path
    return None


class Api:
    """Setting the scene through the public API, as the other tests do."""

    def __init__(self, platform):
        self.p = platform
        self.s = requests.Session()

    def call(self, method, path, token=None, json=None, params=None, headers=None):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        return self.s.request(method, self.p.url(path), json=json, params=params, headers=h, timeout=30)

    def login(self, username, password):
        r = self.call("POST", "/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return r.json()["accessToken"]

    def account(self, prefix, roles=None):
        """A fresh account (with roles set by the admin): returns (username, password, id)."""
        name = "%s_%s" % (prefix, uuid.uuid4().hex[:10])
        password = "pw-" + uuid.uuid4().hex
        r = self.call("POST", "/auth/register", json={"username": name, "email": name + "@example.com",
                                                        "password": password})
        assert r.status_code == 201, r.text
        uid = r.json()["id"]
        if roles:
            admin = self.login(*self.p.admin)
            r = self.call("PUT", "/auth/users/%s/roles" % uid, token=admin, json={"roles": roles})
            assert r.status_code == 200, r.text
        return name, password, uid


@pytest.fixture(scope="session")
def platform():
    reason = _missing()
    if reason:
        pytest.skip(reason)
    # short access tokens, so that the console's refresh runs during a test (it renews 30 s early);
    # the setup signs in many times from one address, so that budget is off; a dry run of 1,000
    # players on the sanitizer build of a loaded machine may take longer than the default 5 s
    p = Platform({"JWT_EXPIRES_IN": "40s", "RATE_LIMIT_AUTH_RPS": "0", "LOGIN_GLOBAL_RPS": "0",
                  "RPC_TIMEOUT_MS": "30000"}).start()
    yield p
    code = p.stop()
    assert code == 0, "platform exited with %s:\n%s" % (code, p.log_tail())


@pytest.fixture(scope="session")
def api(platform):
    return Api(platform)


@pytest.fixture(scope="session")
def out_dir():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT, exist_ok=True)
    return OUT


class Browser:
    """One headless chromium window on the console."""

    def __init__(self, driver, platform, out_dir, name):
        self.d = driver
        self.platform = platform
        self.out_dir = out_dir
        self.name = name
        self.shots = 0
        self.expected_http = set()  # statuses a test provokes on purpose (logged by chromium as errors)
        self.seen = []  # console entries read so far (chromium hands each out once)

    @property
    def root(self):
        return "http://127.0.0.1:%d/console/" % self.platform.port

    def open(self, hash_=""):
        self.d.get(self.root + hash_)

    def shot(self, what):
        self.shots += 1
        path = os.path.join(self.out_dir, "%s-%02d-%s.png" % (self.name, self.shots, what))
        self.d.save_screenshot(path)
        return path

    def logs(self):
        """Every console entry of the page so far."""
        self.seen.extend(self.d.get_log("browser"))
        return list(self.seen)

    def problems(self):
        """Console entries that fail a test: errors, and any CSP report at any level."""
        bad = []
        for e in self.logs():
            msg = e.get("message", "")
            if "Content Security Policy" in msg or "Content-Security-Policy" in msg:
                bad.append(e)
            elif e.get("level") == "SEVERE":
                m = re.search(r"status of (\d{3})", msg)
                if e.get("source") == "network" and m and int(m.group(1)) in self.expected_http:
                    continue
                bad.append(e)
        return bad


@pytest.fixture
def browser(platform, out_dir, request):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    o = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800",
              "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"):
        o.add_argument(a)
    o.binary_location = CHROMIUM
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    downloads = os.path.join(out_dir, "downloads")
    os.makedirs(downloads, exist_ok=True)
    o.add_experimental_option("prefs", {"download.default_directory": downloads,
                                        "download.prompt_for_download": False})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
    d.set_page_load_timeout(30)
    b = Browser(d, platform, out_dir, request.node.name.replace("test_", ""))
    b.downloads = downloads
    try:
        yield b
        b.shot("end")
        bad = b.problems()
        assert not bad, "the console logged errors or CSP violations:\n" + json.dumps(bad, indent=1)
    finally:
        d.quit()
