"""The platform refuses to start without a usable JWT secret."""
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
