"""A crash between a grant's commit and its answer: the client retries with the same
Idempotency-Key and gets the first answer (201, the request that was paid), never a 409, because
the answer is stored in the grant's own transaction. The failpoint claim.after_commit ends the
platform right after the commit, before the answer leaves; the platform is then restarted on the
same data directory."""
import signal
import uuid

import invariants
import pytest
import requests
from conftest import MODE, Client, World
from platform_proc import Platform


def restart(old, env):
    p = Platform(env, data_dir=old.data_dir)
    p.secret, p.env["JWT_SECRET"] = old.secret, old.secret
    p.admin = old.admin
    p.env["ADMIN_USERNAME"], p.env["ADMIN_PASSWORD"] = p.admin
    return p.start()


@pytest.mark.skipif(MODE != "embedded", reason="runs its own embedded platform, twice")
def test_retry_after_a_crash_between_commit_and_answer_gets_the_first_answer(tmp_path):
    env = {"RATE_LIMIT_AUTH_RPS": "0", "RATE_LIMIT_RPS": "0"}
    p = Platform(dict(env, RP_FAILPOINT="claim.after_commit"), data_dir=str(tmp_path)).start()
    try:
        world = World(Client(p))
        ev = world.event()
        token, user_id = world.player()
        key = {"Idempotency-Key": "crash-" + uuid.uuid4().hex}
        with pytest.raises(requests.RequestException):
            world.claim(token, ev["id"], headers=key)  # the platform dies before it answers
        assert p.proc.wait(timeout=60) == 70, p.log_tail()
        p.log.close()
        assert "failpoint claim.after_commit reached" in p.log_tail()

        p = restart(p, env)
        world.api = Client(p)
        r = world.claim(token, ev["id"], headers=key)
        assert r.status_code == 201, r.text
        paid = r.json()
        assert paid["status"] == "SUCCESS" and paid["userId"] == user_id
        again = world.claim(token, ev["id"], headers=key)
        assert again.status_code == 201 and again.json() == paid, "every retry gets the same first answer"
        other = world.claim(token, ev["id"], headers={"Idempotency-Key": "other-" + uuid.uuid4().hex})
        assert other.status_code == 409 and other.json()["request"]["id"] == paid["id"]
        mine = world.api.get("/events/reward-requests/me", token=token).json()["items"]
        assert [m["id"] for m in mine] == [paid["id"]], "paid once, nothing recorded twice"
        assert invariants.check(p.data_dir) == []
    finally:
        code = p.stop(sig=signal.SIGTERM)
    assert code == 0, p.log_tail()
