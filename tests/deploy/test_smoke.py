"""The compose stack of deploy/ as `make test-deploy` starts it (tests/deploy/run.sh): every
container healthy on the host's network, three grant workers consuming, the placeholder secrets
refused by the images, one pass through the api of what a game does: register, login, an
event, progress, a claim, a batch grant and the grant feed, and at the end `docker stop` of each
app container, which must exit on its own with status 0."""
import datetime
import json
import os
import subprocess
import sys
import uuid

import pytest
import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from platform_proc import wait_for  # noqa: E402  (the e2e suite's poller, not a copy)

API = os.environ.get("DEPLOY_API_URL")
PROJECT = os.environ.get("DEPLOY_PROJECT")
pytestmark = pytest.mark.skipif(not (API and PROJECT), reason="run by make test-deploy (tests/deploy/run.sh)")
SERVICES = {"rabbitmq": 1, "api": 1, "auth": 1, "event": 1, "reward": 3}


def docker(*args, check=True, timeout=120):
    return subprocess.run(["docker"] + list(args), capture_output=True, text=True, timeout=timeout, check=check)


def containers():
    """{service: [inspect dicts]} of this run's stack."""
    ids = docker("ps", "-aq", "--filter", "label=com.docker.compose.project=" + PROJECT).stdout.split()
    out = {}
    for c in json.loads(docker("inspect", *ids).stdout) if ids else []:
        out.setdefault(c["Config"]["Labels"]["com.docker.compose.service"], []).append(c)
    return out


def health():
    return {name: [c["State"].get("Health", {}).get("Status") for c in cs] for name, cs in containers().items()}


@pytest.fixture(scope="module")
def stack():
    def all_healthy():
        h = health()
        for c in [c for cs in containers().values() for c in cs]:
            assert c["State"]["Status"] != "exited" or c["State"]["ExitCode"] == 0, (c["Name"], c["State"])
        return all(len(h.get(s, [])) == n and all(x == "healthy" for x in h[s]) for s, n in SERVICES.items())
    wait_for(all_healthy, 300, "every container of the stack to turn healthy")
    return containers()


def test_every_service_is_healthy_on_the_host_network(stack):
    assert {s: len(cs) for s, cs in stack.items()} == SERVICES
    for cs in stack.values():
        for c in cs:
            assert c["HostConfig"]["NetworkMode"] == "host", c["Name"]
            assert c["State"]["Health"]["Status"] == "healthy", c["Name"]
            # the app containers share the SQLite volume
            if c["Config"]["Labels"]["com.docker.compose.service"] != "rabbitmq":
                assert [m["Destination"] for m in c["Mounts"]] == ["/var/lib/reward/data"], c["Name"]
    assert requests.get(API + "/health/ready", timeout=10).status_code == 200


def test_the_three_grant_workers_consume_the_work_queue(stack):
    rabbit = stack["rabbitmq"][0]["Id"]

    # a process consumes a work queue with WORKER_THREADS channels, and a grant worker its RPC queue
    # with GRANT_CONCURRENCY (16 over RabbitMQ; the stack does not set it): three grant workers hold
    # three times the one event worker's consumers on reward.grant, and 3 x 16 on reward.requests
    def consumers():
        out = docker("exec", rabbit, "rabbitmqctl", "-q", "list_queues", "name", "consumers").stdout
        rows = {}
        for line in out.strip().splitlines():
            parts = line.split("\t")
            if len(parts) == 2 and parts[1].isdigit():
                rows[parts[0]] = int(parts[1])
        one = rows.get("event.requests", 0)
        return rows if one and rows.get("reward.grant") == 3 * one and rows.get("reward.requests") == 3 * 16 else None
    wait_for(consumers, 60, "the three grant workers to consume reward.grant and reward.requests")


def test_a_worker_healthcheck_fails_without_a_broker_connection(stack):
    # PID 1 of a fresh container is the check itself, which holds no connection to the broker
    amqp = stack["reward"][0]["Config"]["Env"]
    url = [e for e in amqp if e.startswith("AMQP_URL=")][0]
    r = docker("run", "--rm", "--network", "host", "-e", url, "reward-platform:local", "reward-healthcheck", "worker",
               check=False)
    assert r.returncode == 1 and ("no connection to the broker port" in r.stdout or "holds no socket" in r.stdout), r
    for c in stack["auth"] + stack["event"] + stack["reward"]:
        assert docker("exec", c["Id"], "reward-healthcheck", "worker", check=False).returncode == 0, c["Name"]


@pytest.mark.parametrize("binary,env,reason", [
    ("reward-api", {"JWT_SECRET": "change-me-change-me-this-is-a-public-placeholder-secret"}, "JWT_SECRET"),
    ("reward-auth-worker", {"JWT_SECRET": "0123456789abcdef0123456789abcdef-test", "ADMIN_USERNAME": "admin",
                            "ADMIN_PASSWORD": "change-me-admin-password"}, "ADMIN_PASSWORD"),
])
def test_the_image_refuses_placeholder_secrets(stack, binary, env, reason):
    args = ["run", "--rm", "--network", "none"] + [a for k, v in env.items() for a in ("-e", "%s=%s" % (k, v))]
    r = docker(*(args + ["reward-platform:local", binary]), check=False)
    assert r.returncode != 0
    assert reason in r.stderr and "placeholder" in r.stderr, r.stderr


def test_the_rabbitmq_image_refuses_to_start_without_passwords(stack):
    r = docker("run", "--rm", "--network", "none", "reward-rabbitmq:local", check=False)
    assert r.returncode == 1 and "RP_AMQP_PASSWORD_ADMIN is not set" in r.stderr, r


# ---- the smoke test through the api ----

def iso(dt):
    return dt.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


class Api:
    def __init__(self):
        self.s = requests.Session()

    def call(self, method, path, token=None, **kw):
        h = kw.pop("headers", {})
        if token:
            h["Authorization"] = "Bearer " + token
        return self.s.request(method, API + path, headers=h, timeout=30, **kw)

    def register(self, prefix):
        name = "%s_%s" % (prefix, uuid.uuid4().hex[:12])
        r = self.call("POST", "/auth/register", json={"username": name, "email": name + "@example.com",
                                                      "password": "password-123"})
        assert r.status_code == 201, r.text
        return name, r.json()["id"]

    def login(self, name, password="password-123"):
        r = self.call("POST", "/auth/login", json={"username": name, "password": password})
        assert r.status_code == 200, r.text
        return r.json()["accessToken"]

    def staff(self, admin, roles):
        name, uid = self.register("staff")
        r = self.call("PUT", "/auth/users/%s/roles" % uid, token=admin, json={"roles": roles})
        assert r.status_code == 200, r.text
        return self.login(name), uid


def test_register_login_event_progress_claim_batch_feed(stack):
    api = Api()
    admin = api.login(os.environ["ADMIN_USERNAME"], os.environ["ADMIN_PASSWORD"])
    operator, _ = api.staff(admin, ["OPERATOR"])
    game_server, _ = api.staff(admin, ["GAME_SERVER"])
    name, player = api.register("player")
    token = api.login(name)
    assert api.call("GET", "/auth/me", token=token).json()["id"] == player

    r = api.call("POST", "/events/reward-definitions", token=operator,
                 json={"name": "Gold x100", "type": "CURRENCY", "value": {"gold": 100}})
    assert r.status_code == 201, r.text
    now = datetime.datetime.now(datetime.timezone.utc)
    r = api.call("POST", "/events", token=operator, json={
        "title": "Deploy smoke", "startDate": iso(now - datetime.timedelta(days=1)),
        "endDate": iso(now + datetime.timedelta(days=7)),
        "conditions": [{"type": "LEVEL_ACHIEVE", "value": 5}],
        "rewards": [{"rewardDefinitionId": r.json()["id"], "quantity": 1, "stock": 10}]})
    assert r.status_code == 201, r.text
    event = r.json()["id"]

    claim = api.call("POST", "/events/%s/reward-requests" % event, token=token)
    assert claim.status_code == 422 and claim.json()["error"]["code"] == "CONDITION_NOT_MET", claim.text
    r = api.call("POST", "/events/progress", token=game_server, json={"facts": [
        {"userId": player, "type": "LEVEL", "value": 7, "idempotencyKey": uuid.uuid4().hex, "occurredAt": iso(now)}]})
    assert r.status_code == 200, r.text
    claim = api.call("POST", "/events/%s/reward-requests" % event, token=token)
    assert claim.status_code == 201 and claim.json()["status"] == "SUCCESS", claim.text
    again = api.call("POST", "/events/%s/reward-requests" % event, token=token)
    assert again.status_code == 409 and again.json()["error"]["code"] == "ALREADY_CLAIMED", again.text

    others = [api.register("batch")[1] for _ in range(3)]
    r = api.call("POST", "/events/%s/batch-grants" % event, token=operator,
                 json={"userIds": others + [player], "reason": "deploy smoke"})
    assert r.status_code == 202, r.text
    batch = r.json()["id"]

    def settled():
        b = api.call("GET", "/events/batches/" + batch, token=operator).json()
        return b if b["status"] == "COMPLETED" else None
    done = wait_for(settled, 120, "the batch to complete on the grant workers")
    assert done["counts"] == {"QUEUED": 0, "SUCCESS": 3, "FAILED": 1}, done
    assert done["failures"] == {"ALREADY_CLAIMED": 1}, done

    feed = api.call("GET", "/events/grants/feed", token=game_server, params={"after": "0", "limit": "100"})
    assert feed.status_code == 200, feed.text
    granted = [m for m in feed.json()["items"] if m.get("eventId", event) == event]
    ids = {m["messageId"] for m in granted}
    assert claim.json()["id"] in ids
    items = api.call("GET", "/events/batches/%s/items" % batch, token=operator, params={"status": "SUCCESS"}).json()
    assert {i["requestId"] for i in items["items"]} <= ids and len(items["items"]) == 3


def test_a_key_a_webhook_the_console_and_the_api_document_in_the_images(stack):
    """What issues 13 and 14 add, in the images as compose runs them: a service account's key
    authenticates at the api container, a webhook endpoint is created and its ping attempted by a
    grant worker's libcurl and refused by the SSRF guard (the stack keeps WEBHOOK_ALLOW_PRIVATE off),
    and the console and the OpenAPI document are served from the binary."""
    api = Api()
    admin = api.login(os.environ["ADMIN_USERNAME"], os.environ["ADMIN_PASSWORD"])
    r = api.call("POST", "/auth/service-accounts", token=admin,
                 json={"name": "deploy_gs_" + uuid.uuid4().hex[:8], "roles": ["GAME_SERVER", "OPERATOR"]})
    assert r.status_code == 201 and r.json()["key"].startswith("rpk_"), r.text
    key = r.json()["key"]
    me = api.call("GET", "/auth/me", token=key)
    assert me.status_code == 200 and me.json()["type"] == "SERVICE_ACCOUNT", me.text

    plain = api.call("POST", "/events/webhooks", token=key,
                     json={"url": "http://game.example.com/hook", "types": ["reward.granted"]})
    assert plain.status_code == 400 and plain.json()["error"]["code"] == "VALIDATION_FAILED", plain.text
    r = api.call("POST", "/events/webhooks", token=key,
                 json={"url": "https://127.0.0.1:9/hook", "types": ["reward.granted", "webhook.ping"]})
    assert r.status_code == 201 and r.json()["secret"].startswith("whsec_"), r.text
    hook = r.json()["id"]
    ping = api.call("POST", "/events/webhooks/%s/ping" % hook, token=key)
    assert ping.status_code == 202, ping.text

    def refused():
        d = api.call("GET", "/events/webhooks/%s/deliveries" % hook, token=key).json()["items"]
        attempts = [a for x in d for a in x["attempts"]]
        return attempts if attempts else None
    attempts = wait_for(refused, 60, "a grant worker to attempt the ping")
    assert attempts[0]["error"].startswith("ADDRESS_NOT_ALLOWED"), attempts

    console = requests.get(API.replace("/api/v1", "") + "/console/", timeout=30)
    assert console.status_code == 200 and "frame-ancestors 'none'" in console.headers["Content-Security-Policy"]
    doc = api.call("GET", "/openapi.json")
    assert doc.status_code == 200 and doc.json()["openapi"].startswith("3.1")
    assert "/auth/service-accounts" in doc.json()["paths"] and "/events/webhooks" in doc.json()["paths"]


def test_docker_stop_ends_each_app_container_with_status_0(stack):
    # last in this file: it stops the stack. SIGTERM then, after 10 s, SIGKILL (status 137): each
    # process must drain and exit on its own well within that (the api answers what it is working
    # on, SHUTDOWN_GRACE_MS at most, and refuses the rest)
    for service in ("api", "reward", "event", "auth"):
        for c in stack[service]:
            t0 = datetime.datetime.now()
            docker("stop", "-t", "10", c["Id"], timeout=60)
            took = (datetime.datetime.now() - t0).total_seconds()
            state = json.loads(docker("inspect", c["Id"]).stdout)[0]["State"]
            assert state["Status"] == "exited" and state["ExitCode"] == 0, (c["Name"], state, took)
    api_log = docker("logs", stack["api"][0]["Id"]).stderr + docker("logs", stack["api"][0]["Id"]).stdout
    assert "signal 15: shutting down" in api_log, api_log[-2000:]
