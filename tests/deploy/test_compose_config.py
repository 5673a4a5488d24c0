"""Debian's docker-compose (1.29) accepts the compose files of deploy/ only with every secret
set, and what it resolves is the stack `make test-deploy` starts: host networking everywhere,
three grant workers by `scale`, a healthcheck on every service, the api checked on its own port."""
import os
import shutil
import subprocess

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE = os.path.join(ROOT, "deploy", "docker-compose.yml")
MONGO = os.path.join(ROOT, "deploy", "docker-compose.mongodb.yml")
SECRETS = ["JWT_SECRET", "ADMIN_PASSWORD", "RP_AMQP_PASSWORD_ADMIN", "RP_AMQP_PASSWORD_API", "RP_AMQP_PASSWORD_AUTH",
           "RP_AMQP_PASSWORD_EVENT", "RP_AMQP_PASSWORD_REWARD"]

pytestmark = pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose is not installed")


def config(files, env):
    args = ["docker-compose"] + [a for f in files for a in ("-f", f)] + ["config"]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)


def with_secrets(**over):
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env.update({k: "s3cret-" + k.lower() + "-0123456789abcdef0123456789" for k in SECRETS})
    env.update(over)
    return env


# one of each kind (docker-compose 1.29 takes seconds per call; every `:?` is checked statically
# in tests/e2e/test_deploy_files.py)
@pytest.mark.parametrize("missing", ["JWT_SECRET", "ADMIN_PASSWORD", "RP_AMQP_PASSWORD_REWARD"])
def test_compose_refuses_to_start_without_a_secret(missing):
    env = with_secrets()
    del env[missing]
    r = config([BASE], env)
    assert r.returncode != 0
    assert "set " + missing in r.stderr, r.stderr


@pytest.mark.parametrize("files", [[BASE], [BASE, MONGO]], ids=["sqlite", "mongodb"])
def test_the_resolved_stack_is_host_networked_healthchecked_and_scaled(files):
    r = config(files, with_secrets(API_PORT="18123", AMQP_PORT="18124"))
    assert r.returncode == 0, r.stderr
    svc = yaml.safe_load(r.stdout)["services"]
    assert {"rabbitmq", "api", "auth", "event", "reward"} <= set(svc)
    for name, s in svc.items():
        assert s.get("network_mode") == "host", name
        assert "ports" not in s, name
        assert s.get("healthcheck", {}).get("test") or name == "mongo-init", name
    assert svc["reward"]["scale"] == 3 and "deploy" not in svc["reward"]
    assert svc["api"]["environment"]["PORT"] == "18123"
    assert svc["api"]["healthcheck"]["test"] == ["CMD", "reward-healthcheck", "api"]
    for name in ("auth", "event", "reward"):
        assert svc[name]["healthcheck"]["test"] == ["CMD", "reward-healthcheck", "worker"], name
    for name in ("api", "auth", "event", "reward"):
        env = svc[name]["environment"]
        assert env["AMQP_URL"].endswith("@127.0.0.1:18124/"), name
        assert "change-me" not in str(env), name
    assert svc["rabbitmq"]["environment"]["RABBITMQ_NODE_PORT"] == "18124"
    if MONGO in files:
        assert all(svc[n]["environment"]["STORE"] == "mongodb" for n in ("api", "auth", "event", "reward"))
        assert "replicaSet=rs0" in svc["api"]["environment"]["MONGODB_URI"]
    else:
        assert all(svc[n]["environment"]["STORE"] == "sqlite" for n in ("api", "auth", "event", "reward"))
        assert all("app-data:/var/lib/reward/data:rw" in svc[n]["volumes"] for n in ("api", "auth", "event", "reward"))
