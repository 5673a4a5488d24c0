"""Exactly once under contention, checked over HTTP and then in the store itself."""
import threading
from concurrent.futures import ThreadPoolExecutor

import requests

import invariants


def fire(platform, jobs):
    """Runs (token, event_id) claims all at once from separate connections; returns the responses."""
    barrier = threading.Barrier(len(jobs))

    def one(job):
        token, event_id = job
        barrier.wait()
        return requests.post(platform.url("/events/%s/reward-requests" % event_id),
                             headers={"Authorization": "Bearer " + token}, timeout=60)

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(one, jobs))


def test_64_parallel_claims_by_one_player(world, platform):
    ev = world.event()
    token, uid = world.player()
    responses = fire(platform, [(token, ev["id"])] * 64)
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1, codes
    assert codes.count(409) == 63, codes
    winner = next(r.json() for r in responses if r.status_code == 201)
    for r in responses:
        if r.status_code == 409:
            assert r.json()["request"]["id"] == winner["id"]
    assert invariants.status_counts(platform.data_dir, ev["id"]) == {"SUCCESS": 1}
    assert invariants.check(platform.data_dir) == []


def test_80_players_race_for_stock_25(world, platform):
    d = world.definition(name="Limited sword", type="ITEM", value={"itemId": "sword_001"})
    ev = world.event(rewards=[{"rewardDefinitionId": d["id"], "quantity": 1, "stock": 25}])
    players = [world.player()[0] for _ in range(80)]
    responses = fire(platform, [(t, ev["id"]) for t in players])
    codes = [r.status_code for r in responses]
    assert codes.count(201) == 25, sorted(codes)
    assert codes.count(422) == 55, sorted(codes)
    assert all(r.json()["error"]["code"] == "OUT_OF_STOCK" for r in responses if r.status_code == 422)
    assert invariants.status_counts(platform.data_dir, ev["id"]) == {"SUCCESS": 25, "FAILED": 55}
    stock = world.api.get("/events/%s" % ev["id"], token=world.operator).json()["rewards"][0]["stockLeft"]
    assert stock == 0
    assert invariants.check(platform.data_dir) == []
