"""The deploy files agree with each other and with the code: every app service of
docker-compose.yml logs in to RabbitMQ as a user that deploy/rabbitmq defines, with the
permissions its component needs, and the compose stack is the production shape."""
import os
import sys

import pytest

from conftest import MODE
from platform_proc import ROOT

yaml = pytest.importorskip("yaml")
pytestmark = pytest.mark.skipif(MODE != "embedded", reason="static checks run once")
sys.path.insert(0, os.path.join(ROOT, "deploy", "rabbitmq"))
import definitions as rabbit_definitions  # noqa: E402

COMPOSE = os.path.join(ROOT, "deploy", "docker-compose.yml")


def compose():
    with open(COMPOSE) as f:
        return yaml.safe_load(f)


def test_the_stack_is_the_production_shape():
    svc = compose()["services"]
    assert {"mongo", "mongo-init", "rabbitmq", "api", "auth", "event", "reward"} <= set(svc)
    assert svc["reward"]["deploy"]["replicas"] == 3
    assert "--replSet" in svc["mongo"]["command"]
    for name, binary in [("api", "reward-api"), ("auth", "reward-auth-worker"), ("event", "reward-event-worker"),
                         ("reward", "reward-grant-worker")]:
        s = svc[name]
        assert s["command"] == [binary]
        assert os.path.exists(os.path.join(ROOT, "api" if name == "api" else "workers/" + {
            "auth": "auth", "event": "event", "reward": "reward"}[name]))
        env = s["environment"]
        assert env["STORE"] == "mongodb" and env["TRANSPORT"] == "amqp"
        assert "replicaSet=" in env["MONGODB_URI"]
        assert "service_healthy" in str(s["depends_on"]) and "healthcheck" in svc["rabbitmq"]
    assert "healthcheck" in svc["api"] and "healthcheck" in svc["mongo"]


def test_each_service_uses_its_own_rabbitmq_user_from_the_definitions():
    svc = compose()["services"]
    defs = rabbit_definitions.definitions("/", "", dict(rabbit_definitions.DEV_PASSWORDS))
    users = {u["name"] for u in defs["users"]}
    perms = {p["user"]: p for p in defs["permissions"]}
    seen = set()
    for name in ("api", "auth", "event", "reward"):
        url = svc[name]["environment"]["AMQP_URL"]
        user = url.split("//", 1)[1].split(":", 1)[0]
        assert user in users, (name, user)
        seen.add(user)
        # the password default in the compose file is the one definitions.json was made with
        assert rabbit_definitions.DEV_PASSWORDS[user] in url
    assert len(seen) == 4, "one user per component"
    assert r"rp\.rpc" in perms["rp-api"]["write"] and r"rp\.rpc" not in perms["rp-reward"]["write"]


def test_the_checked_in_definitions_match_the_generator():
    import json
    with open(os.path.join(ROOT, "deploy", "rabbitmq", "definitions.json")) as f:
        checked_in = json.load(f)
    fresh = rabbit_definitions.definitions("/", "", dict(rabbit_definitions.DEV_PASSWORDS))
    strip = lambda d: {k: v for k, v in d.items() if k != "users"}  # noqa: E731 (hashes are salted)
    assert strip(checked_in) == strip(fresh)
    assert [u["name"] for u in checked_in["users"]] == [u["name"] for u in fresh["users"]]


def test_the_env_file_placeholder_secret_is_refused_by_the_platform():
    with open(os.path.join(ROOT, "deploy", ".env.docker")) as f:
        env = dict(line.strip().split("=", 1) for line in f if "=" in line and not line.startswith("#"))
    assert "change-me" in env["JWT_SECRET"]  # lib/config.c refuses such a secret (tests/unit/test_config.c)


def test_rpc_request_queues_are_classic_and_the_work_queue_quorum():
    # an RPC request lives as long as its caller waits: no fsync before delivery (bench/rpc_rtt.c);
    # batch items must survive a broker restart
    defs = rabbit_definitions.definitions("/", "", dict(rabbit_definitions.DEV_PASSWORDS))
    types = {q["name"]: q["arguments"].get("x-queue-type") for q in defs["queues"]}
    for q in ("auth.requests", "login.requests", "event.requests", "reward.requests", "accounts.requests"):
        assert types[q] == "classic", q
        assert q + ".dlq" in types
    assert types["reward.grant"] == "quorum"
    assert not any(n.endswith(".rpc") for n in types), "the old quorum RPC queue names are gone"
