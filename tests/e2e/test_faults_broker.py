"""Fault: the RabbitMQ server process is killed with SIGKILL (no clean stop_app) while players
claim and a batch is being paid, then started again on the same data. Nothing is lost (every
claim answered 201 is in the ledger, the batch completes), nothing is paid twice, and the
invariants hold. The broker is a private node of this test (tests/e2e/private_broker.py): the
machine's default node serves everyone else and is never killed."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlite3

import invariants
import players
import private_broker
from conftest import MODE, Client, World
from platform_proc import Cluster, wait_for

pytestmark = pytest.mark.skipif(MODE != "cluster", reason="the broker fault needs the cluster shape (RabbitMQ)")

N_BATCH = 2000
N_CLAIMS = 24


@pytest.fixture(scope="module")
def broker():
    reason = private_broker.available()
    if reason:
        pytest.skip(reason)
    b = private_broker.PrivateBroker().start()
    yield b
    b.stop()


def ledger_request_ids(data_dir, event_id):
    db = sqlite3.connect("file:%s/events.db?mode=ro" % data_dir, uri=True, timeout=30)
    try:
        return {r for (r,) in db.execute("SELECT request_id FROM reward_ledger WHERE event_id = ?", (event_id,))}
    finally:
        db.close()


def test_kill9_of_the_broker_during_claims_and_a_batch(broker):
    cluster = Cluster({"RATE_LIMIT_AUTH_RPS": "0", "RATE_LIMIT_RPS": "0", "PASSWORD_HASH": "min",
                       "RPC_TIMEOUT_MS": "3000", "BATCH_REDELIVER_MS": "5000", "AMQP_URL": broker.url},
                      vhost="/").start()
    try:
        world = World(Client(cluster))
        ev = world.event()
        tokens = [world.player()[0] for _ in range(N_CLAIMS)]
        batch_ev = world.event()
        users = players.seed(cluster.data_dir, N_BATCH)
        r = world.api.post("/events/%s/batch-grants" % batch_ev["id"], token=world.operator,
                           json={"userIds": users, "reason": "broker kill"})
        assert r.status_code == 202, r.text
        batch_id = r.json()["id"]

        def counts():
            try:
                b = world.api.get("/events/batches/" + batch_id, token=world.operator)
            except requests.RequestException:
                return None
            return b.json()["counts"] if b.status_code == 200 else None
        wait_for(lambda: (counts() or {}).get("SUCCESS", 0) >= 100, 120, "the batch to be under way")

        # the claims go out together; the broker dies as they do
        go = threading.Barrier(N_CLAIMS + 1)

        def claim(token):
            go.wait()
            try:
                r = requests.post(cluster.url("/events/%s/reward-requests" % ev["id"]), timeout=30,
                                  headers={"Authorization": "Bearer " + token, "Idempotency-Key": "k9-" + token[-16:]})
                return r.status_code, r.json() if r.status_code == 201 else None
            except (requests.RequestException, ValueError):
                return "connection error", None

        before = counts()
        assert before and before["QUEUED"] > 0, "the batch must still be running when the broker dies: %s" % before
        with ThreadPoolExecutor(N_CLAIMS) as pool:
            futures = [pool.submit(claim, t) for t in tokens]
            go.wait()
            broker.kill9()
            results = [f.result() for f in futures]
        # while it is down: answers or clear errors, never a hang
        assert all(s in (201, 503, 504, "connection error") for s, _ in results), results
        broker.start()
        wait_for(cluster._ready, 120, "the cluster to reconnect to the restarted broker")

        # nothing lost: every claim answered 201 is in the ledger
        paid = ledger_request_ids(cluster.data_dir, ev["id"])
        for status, body in results:
            if status == 201:
                assert body["id"] in paid, body
        # a client that saw an error retries with its key and gets one definite answer
        # (503/504 while the workers catch up with the redelivered batch: try again, same key)
        for t in tokens:
            def definite(token=t):
                r = world.claim(token, ev["id"], headers={"Idempotency-Key": "k9-" + token[-16:]})
                assert r.status_code in (201, 503, 504), r.text
                return r.status_code == 201
            wait_for(definite, 120, "a definite answer to a retried claim")
        # the batch completes, every item paid once
        done = wait_for(lambda: (c := counts()) and c["QUEUED"] == 0 and c, 240, "the batch to complete")
        assert done == {"QUEUED": 0, "SUCCESS": N_BATCH, "FAILED": 0}, done
        assert invariants.status_counts(cluster.data_dir, ev["id"]) == {"SUCCESS": N_CLAIMS}
        assert invariants.status_counts(cluster.data_dir, batch_ev["id"]) == {"SUCCESS": N_BATCH}
        assert len(ledger_request_ids(cluster.data_dir, ev["id"])) == N_CLAIMS
        assert invariants.check(cluster.data_dir) == []
    finally:
        code = cluster.stop()
    assert code == 0, "a cluster process exited with %s:\n%s" % (code, cluster.log_tail())
