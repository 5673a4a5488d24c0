"""Crash safety in the production shape: a process killed with SIGKILL in the middle of claims
leaves no half-applied grant, and the platform goes on once it is back."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import invariants
from conftest import MODE, Client, World
from platform_proc import Cluster, wait_for

pytestmark = pytest.mark.skipif(MODE != "cluster", reason="crash tests need the cluster shape (RabbitMQ)")


@pytest.fixture(scope="module")
def cluster():
    c = Cluster({"RATE_LIMIT_AUTH_RPS": "0", "RATE_LIMIT_RPS": "0", "RPC_TIMEOUT_MS": "3000"}).start()
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
    import subprocess
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
