"""Fault: the SQLite directory runs out of space in the middle of claims, progress reports and a
batch. Writes are refused with 503 STORE_FULL (never a 500, never a crash), reads go on, nothing
is half-written, and once space returns the same requests succeed and the invariants hold.

The directory is a small tmpfs mounted here (root needed: the test skips, saying why, when the
mount is refused); a filler file takes every free byte, deleting it gives the space back."""
import os
import subprocess
import tempfile
import uuid

import pytest
import requests

import invariants
import players
from conftest import MODE, Client, World
from platform_proc import Platform, wait_for

DEADLINE = 60  # seconds for any awaited condition

# Every process runs the same SQLite store code, so the embedded pass covers it; the cluster pass
# would add a minute of start-up on a loaded machine for no other path.
pytestmark = pytest.mark.skipif(MODE == "cluster", reason="the full-disk test runs in the embedded pass")


@pytest.fixture
def small_disk():
    mnt = tempfile.mkdtemp(prefix="rp-full-")
    if os.geteuid() != 0:
        os.rmdir(mnt)
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs", mnt], capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        os.rmdir(mnt)
        pytest.skip("mount -t tmpfs refused: %s" % (r.stderr.strip() or r.returncode))
    yield mnt
    if subprocess.run(["umount", mnt], capture_output=True, timeout=60).returncode != 0:
        subprocess.run(["umount", "-l", mnt], capture_output=True, timeout=60)
    os.rmdir(mnt)


def fill(mnt):
    """Takes every free byte of the file system; returns the filler's path."""
    path = os.path.join(mnt, "filler")
    chunk = b"\0" * (1 << 16)
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        try:  # the last partial block
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    assert os.statvfs(mnt).f_bavail == 0
    return path


def code(r):
    try:
        return r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def refused_cleanly(r):
    """A write the full disk refused: 503 with the machine-readable code and a Retry-After."""
    return r.status_code == 503 and code(r) == "STORE_FULL" and r.headers.get("Retry-After")


def test_a_full_disk_refuses_writes_cleanly_and_recovers(small_disk):
    env = {"RATE_LIMIT_AUTH_RPS": "0", "RATE_LIMIT_RPS": "0", "PASSWORD_HASH": "min", "BATCH_REDELIVER_MS": "5000"}
    plat = Platform(env, data_dir=small_disk).start()
    try:
        api = Client(plat)
        world = World(api)
        d = world.definition()
        ev = world.event(rewards=[{"rewardDefinitionId": d["id"], "quantity": 1, "stock": 100}])
        batch_ev = world.event(rewards=[{"rewardDefinitionId": d["id"], "quantity": 1}])
        claimers = [world.player() for _ in range(8)]
        seeded = players.seed(small_disk, 300)
        # load before the disk fills: these land
        for token, _ in claimers[:3]:
            assert world.claim(token, ev["id"]).status_code == 201
        filler = fill(small_disk)

        # under a full disk: each kind of write until the disk refuses it (SQLite may still fit a
        # write in WAL pages it already has); each answer is a success or a clean 503, never a 500
        seen = {"claim": 0, "progress": 0, "batch": 0}
        landed = {}  # player token -> Idempotency-Key of a claim answered 201 while full
        refused = {}  # the same for claims answered 503
        batch_key = "full-" + uuid.uuid4().hex
        batch_answers = []
        waiting = iter(claimers[3:])

        def refused_each_kind():
            token, uid = next(waiting, (None, None))
            if token is not None:
                key = uuid.uuid4().hex
                r = world.claim(token, ev["id"], headers={"Idempotency-Key": key})
                assert r.status_code == 201 or refused_cleanly(r), (r.status_code, r.text)
                (landed if r.status_code == 201 else refused)[token] = key
                seen["claim"] += r.status_code == 503
            r = api.post("/events/progress", token=world.game_server, json={"facts": [
                {"userId": claimers[0][1], "type": "LOGIN", "occurredAt": "2026-01-01T00:00:00Z",
                 "idempotencyKey": uuid.uuid4().hex}]})
            assert r.status_code == 200 or refused_cleanly(r), (r.status_code, r.text)
            seen["progress"] += r.status_code == 503
            if not batch_answers or batch_answers[-1] == 503:
                r = api.post("/events/%s/batch-grants" % batch_ev["id"], token=world.operator,
                             headers={"Idempotency-Key": batch_key}, json={"userIds": seeded, "reason": "full"})
                assert r.status_code == 202 or refused_cleanly(r), (r.status_code, r.text)
                batch_answers.append(r.status_code)
                seen["batch"] += r.status_code == 503
            return all(seen.values()) or (token is None and batch_answers[-1] == 202)

        wait_for(refused_each_kind, DEADLINE, "the full disk to refuse a claim, a progress report and a batch")
        assert seen["claim"] and seen["progress"], seen
        # reads go on, and the process is alive
        assert api.get("/events/" + ev["id"], token=claimers[0][0]).status_code == 200
        assert requests.get(plat.url("/health/live"), timeout=10).status_code == 200

        # nothing half-written: a refused claim left no request, a refused batch no batch
        counts = invariants.status_counts(small_disk, ev["id"])
        assert counts == {"SUCCESS": 3 + len(landed)}, counts
        if batch_answers[-1] == 503:
            r = api.get("/events/batches", token=world.operator, params={"eventId": batch_ev["id"]})
            assert r.status_code == 200 and r.json()["items"] == [], r.text
        assert invariants.check(small_disk) == []

        # space returns: the same requests succeed (the refused ones were not recorded)
        os.unlink(filler)
        retry_token, retry_key = next(iter(refused.items()))
        wait_for(lambda: world.claim(retry_token, ev["id"], headers={"Idempotency-Key": retry_key}).status_code == 201,
                 DEADLINE, "a refused claim to succeed once space returned")
        for token, key in list(refused.items())[1:]:
            r = world.claim(token, ev["id"], headers={"Idempotency-Key": key})
            assert r.status_code == 201, r.text
        for token, key in landed.items():  # answered 201 while full: replayed, not paid again
            r = world.claim(token, ev["id"], headers={"Idempotency-Key": key})
            assert r.status_code == 201, r.text
        r = api.post("/events/%s/batch-grants" % batch_ev["id"], token=world.operator,
                     headers={"Idempotency-Key": batch_key}, json={"userIds": seeded, "reason": "full"})
        assert r.status_code == 202, r.text
        batch_id = r.json()["id"]

        def batch_done():
            b = api.get("/events/batches/" + batch_id, token=world.operator)
            return b.status_code == 200 and b.json()["status"] == "COMPLETED" and b.json()["counts"]
        assert wait_for(batch_done, DEADLINE, "the batch to complete") == {"QUEUED": 0, "SUCCESS": 300, "FAILED": 0}
        assert invariants.status_counts(small_disk, ev["id"]) == {"SUCCESS": 3 + len(landed) + len(refused)}
        assert invariants.status_counts(small_disk, batch_ev["id"]) == {"SUCCESS": 300}
        assert invariants.check(small_disk) == []
    finally:
        code_ = plat.stop()
    assert code_ == 0, "the platform exited with %s:\n%s" % (code_, plat.log_tail())
