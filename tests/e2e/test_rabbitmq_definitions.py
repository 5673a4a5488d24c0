"""deploy/rabbitmq: the definitions load into RabbitMQ, the platform runs with one user per
component, and each user can do only its own part (only the api publishes RPC requests; the event
and reward workers may only ask the auth worker's account lookup, through rp.accounts)."""
import json
import os
import secrets
import subprocess
import sys
import urllib.parse

import pytest

import players
from conftest import MODE, Client, World
from platform_proc import ROOT, Cluster, wait_for

pytestmark = pytest.mark.skipif(MODE != "cluster", reason="needs RabbitMQ (cluster run)")
pika = pytest.importorskip("pika")

sys.path.insert(0, os.path.join(ROOT, "deploy", "rabbitmq"))
import definitions as rabbit_definitions  # noqa: E402

NAMES = ["rp-admin", "rp-api", "rp-auth", "rp-event", "rp-reward"]


@pytest.fixture(scope="module")
def setup():
    vhost = "rp-defs-" + secrets.token_hex(4)
    suffix = "-" + secrets.token_hex(3)
    passwords = {n: secrets.token_urlsafe(16) for n in NAMES}
    # from stdin: the broker process may not read the test's private temporary files
    text = json.dumps(rabbit_definitions.definitions(vhost, suffix, passwords))
    subprocess.run(["rabbitmqctl", "-q", "import_definitions"], input=text.encode(), check=True,
                   capture_output=True, timeout=120)
    # the import is asynchronous: wait until the last user exists
    wait_for(lambda: ("rp-reward" + suffix).encode() in subprocess.run(
        ["rabbitmqctl", "-q", "list_users"], capture_output=True, timeout=60).stdout, 60, "the definitions import")
    yield vhost, suffix, passwords
    for n in NAMES:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", n + suffix], capture_output=True, timeout=60)
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)


def url(setup, name):
    vhost, suffix, passwords = setup
    return "amqp://%s:%s@127.0.0.1:5672/%s" % (name + suffix, urllib.parse.quote(passwords[name], safe=""),
                                                urllib.parse.quote(vhost, safe=""))


def test_the_platform_runs_with_one_user_per_component(setup):
    per = {"reward-api": "rp-api", "reward-auth-worker": "rp-auth", "reward-event-worker": "rp-event",
           "reward-grant-worker": "rp-reward"}
    cluster = Cluster({"RATE_LIMIT_AUTH_RPS": "0", "RATE_LIMIT_RPS": "0"}, vhost=setup[0],
                      process_env={b: {"AMQP_URL": url(setup, u)} for b, u in per.items()})
    cluster.start()
    try:
        world = World(Client(cluster))
        ev = world.event()
        token, player = world.player()
        assert world.claim(token, ev["id"]).status_code == 201
        # the event worker asks the auth worker about players through its own narrow door
        fact = {"userId": player, "type": "LOGIN", "occurredAt": "2026-01-01T00:00:00Z",
                "idempotencyKey": "defs-" + secrets.token_hex(4)}
        assert world.api.post("/events/progress", token=world.operator, json={"facts": [fact]}).status_code == 200
        r = world.api.post("/events/progress", token=world.operator,
                           json={"facts": [dict(fact, userId=secrets.token_hex(12))]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "UNKNOWN_PLAYER", r.text
        users = players.seed(cluster.data_dir, 50)
        b = world.api.post("/events/%s/batch-grants" % ev["id"], token=world.operator,
                           json={"userIds": users, "reason": "definitions test"}).json()
        wait_for(lambda: world.api.get("/events/batches/" + b["id"], token=world.operator).json()["status"]
                 == "COMPLETED", 60, "the batch to complete")
        assert world.api.get("/events/batches/" + b["id"], token=world.operator).json()["counts"]["SUCCESS"] == 50
    finally:
        assert cluster.stop() == 0, cluster.log_tail()


def refused(setup, user, action):
    """Runs action(channel) as user; True when the broker refuses it with 403 ACCESS_REFUSED."""
    conn = pika.BlockingConnection(pika.URLParameters(url(setup, user)))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        action(ch)
        return False
    except pika.exceptions.ChannelClosedByBroker as e:
        return e.reply_code == 403
    finally:
        if conn.is_open:
            conn.close()


def publish(exchange, key):
    return lambda ch: ch.basic_publish(exchange, key, b"{}", mandatory=False)


def consume(queue):
    return lambda ch: ch.basic_get(queue)


@pytest.mark.parametrize("user", ["rp-auth", "rp-event", "rp-reward"])
def test_workers_cannot_publish_rpc_requests(setup, user):
    assert refused(setup, user, publish("rp.rpc", "auth"))
    assert refused(setup, user, publish("", "auth.requests"))  # nor through the default exchange
    assert refused(setup, user, publish("", "event.requests"))
    assert refused(setup, user, publish("", "accounts.requests"))
    assert refused(setup, user, publish("rp.rpc", "login"))
    assert refused(setup, user, publish("", "login.requests"))


def test_only_the_event_and_reward_workers_ask_for_accounts(setup):
    assert not refused(setup, "rp-event", publish("rp.accounts", "accounts"))
    assert not refused(setup, "rp-reward", publish("rp.accounts", "accounts"))
    assert refused(setup, "rp-api", publish("rp.accounts", "accounts"))
    assert refused(setup, "rp-auth", publish("rp.accounts", "accounts"))
    # the lookup's queue is the auth worker's alone
    assert refused(setup, "rp-event", consume("accounts.requests"))
    assert not refused(setup, "rp-auth", consume("accounts.requests"))


def test_each_user_reads_only_its_own_queues(setup):
    assert refused(setup, "rp-api", consume("auth.requests"))
    # the hashing operations' queue is the auth worker's alone
    assert not refused(setup, "rp-auth", consume("login.requests"))
    assert refused(setup, "rp-event", consume("login.requests"))
    assert refused(setup, "rp-reward", consume("login.requests"))
    assert refused(setup, "rp-auth", consume("reward.requests"))
    assert refused(setup, "rp-event", consume("reward.grant"))
    assert refused(setup, "rp-api", publish("rp.work", "reward.grant"))
    assert refused(setup, "rp-auth", publish("rewards.events", "reward.granted"))
    # what a user is allowed is not refused
    assert not refused(setup, "rp-api", publish("rp.rpc", "nobody"))
    assert not refused(setup, "rp-reward", publish("rewards.events", "reward.test"))
