"""Starting and talking to the platform binary, for the black-box tests and the benchmarks.

The binary comes from $BIN (default build/bin/reward-platform). It is started on a free
loopback port with a fresh data directory, exactly as `make run` starts it, and stopped with
SIGTERM; a non-zero exit (for example a LeakSanitizer report of the ASan build) is an error.
"""
import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    """pid's resident set (VmRSS) in KiB; 0 when /proc no longer shows it."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def ready(p, token=None, headers=None):
    """GET /health/ready on platform p (a bearer token, or other headers, if given)."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    return requests.get(p.url("/health/ready"), headers=h, timeout=30)


def not_ready_lines(p):
    """The "not ready: ..." warnings in p's log, parsed."""
    with open(p.log_path, "rb") as f:
        lines = [json.loads(line) for line in f.read().splitlines() if line.startswith(b"{")]
    return [line for line in lines if line.get("msg", "").startswith("not ready: ")]


def session_metrics(p, port=None):
    """The api's rp_session_* and rp_token_* lines of /metrics (of the api process on port, the
    first by default) as {name with labels: value}."""
    r = requests.get("http://127.0.0.1:%d/metrics" % (port or p.port),
                     headers={"Authorization": "Bearer " + p.metrics_token}, timeout=10)
    assert r.status_code == 200, r.text
    out = {}
    for line in r.text.splitlines():
        if line.startswith(("rp_session_", "rp_token_")):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def wait_for(predicate, timeout, what):
    """Polls predicate until it returns a truthy value; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


class Vhosts:
    """Virtual hosts for clusters, made and removed in batches: each rabbitmqctl call boots an
    Erlang VM (about a second), and three of them per cluster (add, set permissions, delete) took
    most of the cluster pass's time. A batch of BATCH is made with one import_definitions; used
    ones are deleted BATCH at a time with one eval, and the rest when the process exits."""

    BATCH = 8

    def __init__(self):
        self.free = []
        self.used = []
        atexit.register(self.close)

    def take(self):
        if not self.free:
            names = ["rp-e2e-" + secrets.token_hex(4) for _ in range(self.BATCH)]
            defs = {"vhosts": [{"name": n} for n in names],
                    "permissions": [{"user": "guest", "vhost": n, "configure": ".*", "write": ".*", "read": ".*"}
                                    for n in names]}
            subprocess.run(["rabbitmqctl", "-q", "import_definitions"], input=json.dumps(defs).encode(),
                           check=True, capture_output=True, timeout=60)
            self.free = names
        return self.free.pop()

    def give_back(self, name):
        self.used.append(name)
        if len(self.used) >= self.BATCH:
            self._delete(self.used)
            self.used = []

    def close(self):
        self._delete(self.used + self.free)
        self.used, self.free = [], []

    @staticmethod
    def _delete(names):
        if not names:
            return
        expr = "lists:foreach(fun(V) -> rabbit_vhost:delete(V, <<\"tests\">>) end, [%s])." % ", ".join(
            '<<"%s">>' % n for n in names)
        r = subprocess.run(["rabbitmqctl", "-q", "eval", expr], capture_output=True, timeout=120)
        if r.returncode == 69:  # the broker is gone (stopped by the run that started it): nothing to delete
            return
        if r.returncode != 0:  # an internal function of the broker: the public command one by one
            for n in names:
                subprocess.run(["rabbitmqctl", "-q", "delete_vhost", n], capture_output=True, timeout=60)


VHOSTS = Vhosts()


OWN_DATA_DIRS = []


def own_data_dir():
    """A fresh data directory, removed when the test process exits (tests read a platform's files
    after stopping it, so not at stop); E2E_KEEP_DATA=1 keeps them. A full make test left some 330
    of them behind, 200 MB and more."""
    d = tempfile.mkdtemp(prefix="rp-e2e-")
    OWN_DATA_DIRS.append(d)
    return d


@atexit.register
def _remove_own_data_dirs():
    if os.environ.get("E2E_KEEP_DATA") == "1":
        return
    for d in OWN_DATA_DIRS:
        shutil.rmtree(d, ignore_errors=True)


class Platform:
    """One running platform process."""

    def __init__(self, extra_env=None, data_dir=None, binary=None):
        self.binary = binary or os.environ.get("BIN") or os.path.join(ROOT, "build/bin/reward-platform")
        if not os.path.isabs(self.binary):
            self.binary = os.path.join(ROOT, self.binary)
        self.port = free_port()
        self.data_dir = data_dir or own_data_dir()
        self.secret = secrets.token_urlsafe(48)
        self.admin = ("admin_e2e", "admin-password-" + secrets.token_hex(4))
        # /metrics and the readiness detail need it (METRICS_TOKEN, at least 32 bytes)
        self.metrics_token = secrets.token_hex(24)
        self.env = dict(os.environ)
        self.env.update({
            "PORT": str(self.port),
            "BIND_ADDRESS": "127.0.0.1",
            "SQLITE_DIR": self.data_dir,
            "JWT_SECRET": self.secret,
            "ADMIN_USERNAME": self.admin[0],
            "ADMIN_PASSWORD": self.admin[1],
            "LOG_LEVEL": "info",
            "METRICS_TOKEN": self.metrics_token,
            # the tests sign in by the hundred; test_login_defences.py sets the global budget itself
            "LOGIN_GLOBAL_RPS": "0",
        })
        self.env.update(extra_env or {})
        self.base = "http://127.0.0.1:%d/api/v1" % self.port
        self.proc = None
        self.log_path = os.path.join(self.data_dir, "platform.log")

    def start(self, wait=True):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary], env=self.env, stdout=self.log, stderr=self.log, cwd=ROOT)
        if wait:
            self._ready_or_stop(60, "the platform to become ready")
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("platform exited with %s:\n%s" % (self.proc.returncode, self.log_tail()))
        try:
            return requests.get(self.base + "/health/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def _ready_or_stop(self, timeout, what):
        """Waits until ready; a start that fails stops what it started, or its processes would
        outlive the test and hold their broker connections (a cluster that failed to start once
        left its workers running, and later tests met the broker's file descriptor alarm)."""
        try:
            wait_for(self._ready, timeout, what)
        except BaseException:
            self.stop(signal.SIGKILL, timeout=10)
            raise

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Stops the process; returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        return code

    def url(self, path):
        return self.base + path

    def urls(self, path):
        """path on every api process (one here)."""
        return [self.url(path)]


class Cluster(Platform):
    """The production shape on one machine: reward-api plus one auth, one event and `grant_workers`
    reward-grant worker processes on RabbitMQ (TRANSPORT=amqp), sharing one SQLite directory.
    With api_processes > 1, further reward-api processes serve the same cluster, each on a free
    port of its own (urls() names the path on each)."""

    WORKERS = ["reward-auth-worker", "reward-event-worker"]

    def __init__(self, extra_env=None, data_dir=None, binary=None, grant_workers=2, vhost=None, process_env=None,
                 api_processes=1):
        super().__init__(extra_env, data_dir, binary)
        self.extra_ports = [free_port() for _ in range(api_processes - 1)]
        self.bin_dir = os.path.dirname(self.binary)
        # a virtual host of its own: clusters of different tests (or runs) never share queues
        self.vhost = vhost or VHOSTS.take()
        self.own_vhost = not vhost
        self.env["AMQP_URL"] = "amqp://guest:guest@127.0.0.1:5672/" + self.vhost
        # per binary: extra environment (for example a RabbitMQ user of its own)
        self.process_env = process_env or {}
        self.env["TRANSPORT"] = "amqp"
        self.env.update(extra_env or {})
        self.names = ["reward-api"] + self.WORKERS + ["reward-grant-worker"] * grant_workers
        self.procs = []

    def spawn(self, name, port=None):
        env = dict(self.env, **self.process_env.get(name, {}))
        if port:
            env["PORT"] = str(port)
        p = subprocess.Popen([os.path.join(self.bin_dir, name)], env=env, stdout=self.log, stderr=self.log, cwd=ROOT)
        self.procs.append(p)
        return p

    def start(self, wait=True):
        self.log = open(self.log_path, "ab")
        # workers first, so the api finds consumers on its first call
        for name in self.names[1:]:
            self.spawn(name)
        self.proc = self.spawn("reward-api")
        for port in self.extra_ports:
            self.spawn("reward-api", port)
        if wait:
            self._ready_or_stop(90, "the cluster to become ready")
        return self

    def urls(self, path):
        return [self.url(path)] + ["http://127.0.0.1:%d/api/v1%s" % (port, path) for port in self.extra_ports]

    def _ready(self):
        for p in self.procs:
            if p.poll() is not None and not getattr(p, "killed_on_purpose", False):
                raise AssertionError("a cluster process exited with %s:\n%s" % (p.returncode, self.log_tail()))
        try:
            return all(requests.get(u, timeout=3).status_code == 200 for u in self.urls("/health/ready"))
        except requests.RequestException:
            return False

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Stops every process (the api first); returns the first non-zero exit code, else 0."""
        worst = 0
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(sig)
        for p in reversed(self.procs):
            try:
                code = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                code = p.wait()
            if not getattr(p, "killed_on_purpose", False):
                worst = worst or code
        self.log.close()
        if self.own_vhost:
            VHOSTS.give_back(self.vhost)
            self.own_vhost = False
        return worst

    def kill9(self, proc):
        """SIGKILLs one process of the cluster (a crash); its exit code is not held against stop()."""
        proc.killed_on_purpose = True
        proc.kill()
        proc.wait()
