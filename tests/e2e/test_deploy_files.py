"""The deploy files agree with each other and with the code: every app service of
docker-compose.yml logs in to RabbitMQ as a user that deploy/rabbitmq defines, with the
permissions its component needs; compose ships no secret and refuses to start without them; the
images build without a registry or BuildKit; make test-mongo-live wires MONGODB_URI through.
(make test-deploy builds and runs all of it: tests/deploy.)"""
import os
import subprocess
import sys
import time

import pytest

from conftest import MODE
from platform_proc import ROOT, free_port

yaml = pytest.importorskip("yaml")
pytestmark = pytest.mark.skipif(MODE != "embedded", reason="static checks run once")
sys.path.insert(0, os.path.join(ROOT, "deploy", "rabbitmq"))
import definitions as rabbit_definitions  # noqa: E402

COMPOSE = os.path.join(ROOT, "deploy", "docker-compose.yml")
MONGO_OVERLAY = os.path.join(ROOT, "deploy", "docker-compose.mongodb.yml")


def compose(path=COMPOSE):
    with open(path) as f:
        return yaml.safe_load(f)


def test_the_stack_is_the_single_host_shape_with_mongodb_as_an_overlay():
    svc = compose()["services"]
    assert set(svc) == {"rabbitmq", "api", "auth", "event", "reward"}
    # docker-compose 1.29 (Debian 12's) ignores deploy.replicas
    assert svc["reward"]["scale"] == 3 and "deploy" not in svc["reward"]
    assert svc["rabbitmq"]["build"]["context"] == "rabbitmq"
    mongo = compose(MONGO_OVERLAY)["services"]
    assert "--replSet" in mongo["mongo"]["command"]
    for name, binary in [("api", "reward-api"), ("auth", "reward-auth-worker"), ("event", "reward-event-worker"),
                         ("reward", "reward-grant-worker")]:
        s = svc[name]
        assert s["command"] == [binary]
        assert s["network_mode"] == "host" and "ports" not in s
        env = s["environment"]
        assert env["STORE"] == "${STORE:-sqlite}" and env["TRANSPORT"] == "amqp"
        assert s["volumes"] == ["app-data:/var/lib/reward/data"]
        assert "service_healthy" in str(s["depends_on"])
        assert mongo[name]["environment"]["STORE"] == "mongodb"
        assert "replicaSet=" in mongo[name]["environment"]["MONGODB_URI"]
        assert "service_completed_successfully" in str(mongo[name]["depends_on"])
        # a healthcheck on every service, the api's on its own port (deploy/healthcheck.sh reads PORT)
        assert s["healthcheck"]["test"] == ["CMD", "reward-healthcheck", "api" if name == "api" else "worker"]
    assert svc["api"]["environment"]["PORT"] == "${API_PORT:-8080}"
    assert "8080" not in str(svc["api"]["healthcheck"])
    # ping passes before the listeners accept connections; the check connects and authenticates
    assert svc["rabbitmq"]["healthcheck"]["test"] == ["CMD", "rabbitmq-healthcheck"]
    with open(os.path.join(ROOT, "deploy", "rabbitmq", "healthcheck.sh")) as f:
        check = f.read()
    assert "check_port_connectivity" in check and "authenticate_user" in check


def test_compose_passes_erlang_flags_to_the_broker_and_sets_none():
    # RABBITMQ_ERL_ARGS reaches the broker's VM (rabbitmq-server reads
    # RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS); unset, the broker keeps Erlang's defaults
    env = compose()["services"]["rabbitmq"]["environment"]
    assert env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] == "${RABBITMQ_ERL_ARGS:-}"


def test_compose_requires_every_secret_and_ships_none():
    with open(COMPOSE) as f:
        text = f.read()
    svc = compose()["services"]
    for name in ("api", "auth", "event", "reward"):
        assert svc[name]["environment"]["JWT_SECRET"].startswith("${JWT_SECRET:?"), name
    assert svc["auth"]["environment"]["ADMIN_PASSWORD"].startswith("${ADMIN_PASSWORD:?")
    for user in ("ADMIN", "API", "AUTH", "EVENT", "REWARD"):
        assert svc["rabbitmq"]["environment"]["RP_AMQP_PASSWORD_" + user].startswith("${RP_AMQP_PASSWORD_%s:?" % user)
    assert "change-me" not in text and "dev-password" not in text
    with open(os.path.join(ROOT, "deploy", ".env.docker")) as f:
        env = dict(line.strip().split("=", 1) for line in f if "=" in line and not line.startswith("#"))
    assert not {"JWT_SECRET", "ADMIN_PASSWORD", "ADMIN_USERNAME", "AMQP_URL"} & set(env), env
    # the RabbitMQ image loads definitions written from these passwords, never the dev ones
    with open(os.path.join(ROOT, "deploy", "rabbitmq", "entrypoint.sh")) as f:
        entry = f.read()
    assert "RP_AMQP_PASSWORD_$v" in entry and "definitions.py" in entry


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
        # the password is the one the rabbitmq container writes into its definitions for that user
        assert "${RP_AMQP_PASSWORD_%s:?" % user[3:].upper() in url, url
        assert "@127.0.0.1:${AMQP_PORT:-5672}/" in url
    assert len(seen) == 4, "one user per component"
    assert r"rp\.rpc" in perms["rp-api"]["write"] and r"rp\.rpc" not in perms["rp-reward"]["write"]


def test_env_example_amqp_password_is_the_one_of_the_checked_in_definitions():
    with open(os.path.join(ROOT, ".env.example")) as f:
        line = [x for x in f if "AMQP_URL=" in x][0]
    user, password = line.split("//", 1)[1].split("@", 1)[0].split(":", 1)
    assert rabbit_definitions.DEV_PASSWORDS[user] == password


def test_the_image_build_needs_no_registry_and_no_buildkit():
    with open(os.path.join(ROOT, "deploy", "Dockerfile")) as f:
        dockerfile = f.read()
    assert not dockerfile.startswith("# syntax="), "the syntax line makes BuildKit fetch a frontend"
    assert "ARG BASE_IMAGE=" in dockerfile
    assert [x for x in dockerfile.splitlines() if x.startswith("FROM")] == [
        "FROM ${BASE_IMAGE} AS build", "FROM ${BASE_IMAGE} AS runtime"]
    with open(os.path.join(ROOT, "deploy", "rabbitmq", "Dockerfile")) as f:
        assert "FROM ${BASE_IMAGE}" in f.read()
    # the classic builder reads only the context root's ignore file
    assert not os.path.exists(os.path.join(ROOT, "deploy", "Dockerfile.dockerignore"))
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        ignored = {x.strip() for x in f if x.strip() and not x.startswith("#")}
    assert {"build", "build-*", "data", ".git", "deploy/.env.docker"} <= ignored


def make_mongo_live(uri):
    env = dict(os.environ)
    env.pop("MONGODB_URI", None)
    if uri is not None:
        env["MONGODB_URI"] = uri
    return subprocess.run(["make", "-s", "test-mongo-live"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_mongo_live_skips_with_its_reason_without_a_uri():
    r = make_mongo_live(None)
    assert r.returncode == 0, r.stderr
    assert "SKIPPED: MONGODB_URI is not set" in r.stdout


def test_mongo_live_passes_the_uri_through_and_fails_fast_when_unreachable():
    port = free_port()
    t0 = time.monotonic()
    r = make_mongo_live("mongodb://live:secret-pw@127.0.0.1:%d/?replicaSet=rs0" % port)
    assert r.returncode != 0
    assert time.monotonic() - t0 < 60
    assert "127.0.0.1:%d" % port in r.stderr and "did not answer" in r.stderr, r.stderr
    assert "secret-pw" not in r.stdout + r.stderr, "the password is not printed"
    r = make_mongo_live("mongodb://127.0.0.1:%d/" % port)
    assert r.returncode != 0 and "names no replicaSet" in r.stderr, r.stderr


def test_the_checked_in_definitions_match_the_generator():
    import json
    with open(os.path.join(ROOT, "deploy", "rabbitmq", "definitions.json")) as f:
        checked_in = json.load(f)
    fresh = rabbit_definitions.definitions("/", "", dict(rabbit_definitions.DEV_PASSWORDS))
    strip = lambda d: {k: v for k, v in d.items() if k != "users"}  # noqa: E731 (hashes are salted)
    assert strip(checked_in) == strip(fresh)
    assert [u["name"] for u in checked_in["users"]] == [u["name"] for u in fresh["users"]]


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
