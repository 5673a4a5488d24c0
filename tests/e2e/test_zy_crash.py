"""Crash safety in the production shape: a process killed with SIGKILL in the middle of claims
or of a batch leaves no half-applied grant, nothing is paid twice, and the platform goes on
once it is back."""
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import invariants
import players
from conftest import MODE, Client, World
from platform_proc import Cluster, wait_for

pytestmark = pytest.mark.skipif(MODE != "cluster", reason="crash tests need the cluster shape (RabbitMQ)")


@pytest.fixture(scope="module")
def cluster():
    c = Cluster({"RATE_LIMIT_AUTH_RPS": "0", "RATE_LIMIT_RPS": "0", "RPC_TIMEOUT_MS": "3000",
                 "BATCH_REDELIVER_MS": "5000"}).start()
    yield c
    assert c.stop() == 0, c.log_tail()


def claim_all(cluster, world, event_id, tokens, on_started):
    started = threading.Barrier(len(tokens) + 1)

    def one(token):
        started.wait()
        try:
            r = requests.post(cluster.url("/events/%s/reward-requests" % event_id),
                              headers={"Authorization": "Bearer " + token, "Idempotency-Key": "crash-" + token[-16:]},
                              timeout=30)
            return r.status_code
        except requests.RequestException:
            return "connection error"

    with ThreadPoolExecutor(len(tokens)) as pool:
        futures = [pool.submit(one, t) for t in tokens]
        started.wait()
        on_started()
        return [f.result() for f in futures]


def test_kill_the_api_while_clients_claim(cluster):
    world = World(Client(cluster))
    d = world.definition()
    ev = world.event(rewards=[{"rewardDefinitionId": d["id"], "quantity": 1, "stock": 20}])
    tokens = [world.player()[0] for _ in range(40)]
    api = cluster.proc
    results = claim_all(cluster, world, ev["id"], tokens, lambda: cluster.kill9(api))
    # clients see answers or errors, never a hang; the store holds no half-applied grant
    assert all(r in (201, 422, "connection error") or (isinstance(r, int) and r >= 500) for r in results), results
    assert invariants.check(cluster.data_dir) == []
    cluster.proc = cluster.spawn("reward-api")
    wait_for(cluster._ready, 60, "the restarted api")
    # a client that saw an error retries with the same Idempotency-Key and gets a definite answer
    retry = [world.claim(t, ev["id"], headers={"Idempotency-Key": "crash-" + t[-16:]}).status_code for t in tokens]
    assert all(code in (201, 409, 422) for code in retry), retry
    counts = invariants.status_counts(cluster.data_dir, ev["id"])
    assert counts.get("SUCCESS", 0) == 20, counts
    assert invariants.check(cluster.data_dir) == []


def test_kill_a_grant_worker_while_clients_claim(cluster):
    world = World(Client(cluster))
    ev = world.event()
    tokens = [world.player()[0] for _ in range(30)]
    victim = next(p for p in cluster.procs if p.args[0].endswith("reward-grant-worker") and p.poll() is None)
    results = claim_all(cluster, world, ev["id"], tokens, lambda: cluster.kill9(victim))
    # the other grant worker takes over (redelivered messages are idempotent): every claim ends
    # SUCCESS exactly once, whether the first answer made it back or timed out
    assert all(r in (201, 504, 503) for r in results), results
    for t in tokens:
        r = world.claim(t, ev["id"], headers={"Idempotency-Key": "crash-" + t[-16:]})
        assert r.status_code in (201, 409), r.text
    assert invariants.status_counts(cluster.data_dir, ev["id"]) == {"SUCCESS": 30}
    assert invariants.check(cluster.data_dir) == []


def test_broker_restart_is_survived(cluster):
    world = World(Client(cluster))
    ev = world.event()
    token, _ = world.player()
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True, timeout=120)
    try:
        r = world.claim(token, ev["id"])
        assert r.status_code in (503, 504), r.text  # the broker is gone: a clear error, no hang
    finally:
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True, timeout=120)
    # workers reconnect with backoff, the api on its next call
    wait_for(cluster._ready, 90, "the cluster to reconnect after the broker restart")
    r = world.claim(token, ev["id"])
    assert r.status_code == 201, r.text
    assert invariants.check(cluster.data_dir) == []


def start_batch(world, n):
    ev = world.event()
    users = players.seed(world.api.p.data_dir, n)
    r = world.api.post("/events/%s/batch-grants" % ev["id"], token=world.operator,
                       json={"userIds": users, "reason": "crash test"})
    assert r.status_code == 202, r.text
    return ev, r.json()["id"]


def batch_counts(world, batch_id):
    r = world.api.get("/events/batches/" + batch_id, token=world.operator)
    return r.json()["counts"] if r.status_code == 200 else None


def finish_batch(cluster, world, ev, batch_id, n):
    def done():
        c = batch_counts(world, batch_id)
        return c if c and c["QUEUED"] == 0 else None
    counts = wait_for(done, 240, "the batch to complete")
    assert counts == {"QUEUED": 0, "SUCCESS": n, "FAILED": 0}, counts
    assert invariants.status_counts(cluster.data_dir, ev["id"]) == {"SUCCESS": n}
    assert invariants.check(cluster.data_dir) == []


def test_kill_reward_workers_repeatedly_during_a_batch(cluster):
    world = World(Client(cluster))
    n = 5000
    ev, batch_id = start_batch(world, n)
    for round_ in range(3):
        # let the batch move on, then kill one of the two grant workers and start a new one
        target = (round_ + 1) * 800
        wait_for(lambda: (batch_counts(world, batch_id) or {}).get("SUCCESS", 0) >= target, 120,
                 "%d items settled" % target)
        victim = next(p for p in cluster.procs if p.args[0].endswith("reward-grant-worker") and p.poll() is None)
        cluster.kill9(victim)
        cluster.spawn("reward-grant-worker")
    finish_batch(cluster, world, ev, batch_id, n)


def test_broker_restart_during_a_batch(cluster):
    world = World(Client(cluster))
    n = 3000
    ev, batch_id = start_batch(world, n)
    wait_for(lambda: (batch_counts(world, batch_id) or {}).get("SUCCESS", 0) >= 300, 120, "the batch to be under way")
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True, timeout=120)
    subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True, timeout=120)
    wait_for(cluster._ready, 90, "the cluster to reconnect after the broker restart")
    finish_batch(cluster, world, ev, batch_id, n)
