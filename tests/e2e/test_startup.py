"""The platform refuses to start without a usable JWT secret or store. (That a MongoDB server
which is not a replica set is refused is a wire-contract test: tests/contract.)"""
import os
import shutil
import subprocess

import pytest

from platform_proc import Platform


def run_until_exit(extra_env, drop=()):
    p = Platform(extra_env)
    for k in drop:
        p.env.pop(k, None)
    out = subprocess.run([p.binary], env=p.env, capture_output=True, timeout=60)
    return out.returncode, out.stderr.decode("utf-8", "replace")


def ours(err):
    """The lines the platform wrote. libmongoc initialises itself when the binary is loaded,
    before main, and where /dev/shm cannot be written (CI's sandbox) its default log handler
    prints "mongoc: Falling back to malloc for counters." first; nothing in the process can
    stop that except MONGOC_DISABLE_SHM=1 in the environment (the Docker image sets it)."""
    return [line for line in err.strip().splitlines()
            if not line.endswith("mongoc: Falling back to malloc for counters.")]


def test_missing_secret():
    code, err = run_until_exit({}, drop=("JWT_SECRET",))
    assert code != 0
    assert "JWT_SECRET" in err
    assert len(ours(err)) == 1, err


def can_mount_privately():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o ro,size=4k none /dev/shm"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not can_mount_privately(),
                    reason="needs to mount a read-only /dev/shm in a private mount namespace")
def test_with_mongoc_disable_shm_the_refusal_is_one_line_where_dev_shm_is_read_only():
    """What the Docker image's MONGOC_DISABLE_SHM=1 is for: with /dev/shm read-only, the
    driver's line appears without it and not with it."""
    p = Platform({})
    p.env.pop("JWT_SECRET", None)
    script = 'mount -t tmpfs -o ro,size=4k none /dev/shm && exec "$0"'

    def run(env):
        out = subprocess.run(["unshare", "-m", "sh", "-c", script, p.binary], env=env,
                             capture_output=True, timeout=60)
        return out.returncode, out.stderr.decode("utf-8", "replace")

    code, err = run(p.env)
    assert code != 0 and len(ours(err)) == 1, err
    assert len(err.strip().splitlines()) == 2, err
    code, err = run(dict(p.env, MONGOC_DISABLE_SHM="1"))
    assert code != 0
    assert err.strip().splitlines() == ours(err) and len(ours(err)) == 1, err


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

