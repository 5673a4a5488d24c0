"""The platform refuses to start without a usable JWT secret or store. (That a MongoDB server
which is not a replica set is refused is a wire-contract test: tests/contract.)"""
import subprocess

from platform_proc import Platform


def run_until_exit(extra_env, drop=()):
    p = Platform(extra_env)
    for k in drop:
        p.env.pop(k, None)
    out = subprocess.run([p.binary], env=p.env, capture_output=True, timeout=60)
    return out.returncode, out.stderr.decode("utf-8", "replace")


def test_missing_secret():
    code, err = run_until_exit({}, drop=("JWT_SECRET",))
    assert code != 0
    assert "JWT_SECRET" in err
    assert len(err.strip().splitlines()) == 1


def test_short_secret():
    code, err = run_until_exit({"JWT_SECRET": "x" * 31})
    assert code != 0
    assert "JWT_SECRET" in err and "32" in err


def test_invalid_setting():
    code, err = run_until_exit({"STORE": "postgres"})
    assert code != 0
    assert "STORE" in err


def test_mongodb_store_without_a_server_is_refused_clearly():
    code, err = run_until_exit({"STORE": "mongodb",
                                "MONGODB_URI": "mongodb://127.0.0.1:1/?replicaSet=rs0&serverSelectionTimeoutMS=500"})
    assert code != 0
    assert "MongoDB" in err or "STORE_UNAVAILABLE" in err, err

