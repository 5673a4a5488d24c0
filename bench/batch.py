"""Runs one batch grant against a running platform (bench/batch.sh) and prints its timings.

    batch.py BASE ADMIN PASSWORD N DATA_DIR

The N players are real accounts, made straight in DATA_DIR's auth.db (tests/e2e/players.py):
items of ids that name no account settle FAILED UNKNOWN_PLAYER without a grant, which would
measure nothing."""
import datetime
import os
import sys
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import players  # noqa: E402

base, user, pw, n, data_dir = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
s = requests.Session()
# BENCH_ADMIN_TOKEN, when set, saves the login (bench/compare.sh: the argon2id hash then counts
# in the setup's memory, not in the batch's)
tok = os.environ.get("BENCH_ADMIN_TOKEN") or \
    s.post(base + "/auth/login", json={"username": user, "password": pw}, timeout=60).json()["accessToken"]
h = {"Authorization": "Bearer " + tok}
d = s.post(base + "/events/reward-definitions", headers=h, json={"name": "Gold", "type": "CURRENCY", "value": 100},
           timeout=60).json()["id"]
now = datetime.datetime.now(datetime.timezone.utc)
ev = s.post(base + "/events", headers=h, timeout=60, json={
    "title": "batch bench", "startDate": (now - datetime.timedelta(hours=1)).isoformat(),
    "endDate": (now + datetime.timedelta(days=1)).isoformat(),
    "rewards": [{"rewardDefinitionId": d, "quantity": 1}]}).json()["id"]
users = players.seed(data_dir, n)
t0 = time.monotonic()
r = s.post(base + "/events/%s/batch-grants" % ev, headers=h, json={"userIds": users, "reason": "bench"}, timeout=120)
t_accept = time.monotonic() - t0
assert r.status_code == 202, r.text[:300]
bid = r.json()["id"]
while True:
    # a poll answered 503/504 (a worker busy past the RPC deadline, a broker restarting) or not at
    # all says nothing about the batch: ask again (bench/compare.sh bounds the whole wait)
    try:
        r = s.get(base + "/events/batches/" + bid, headers=h, timeout=60)
        b = r.json() if r.status_code == 200 else None
    except (requests.RequestException, ValueError):
        b = None
    if b is not None and b["status"] == "COMPLETED":
        break
    time.sleep(0.5)
total = time.monotonic() - t0
print("| items | 202 after s | completed after s | items/s | SUCCESS | FAILED |")
print("|---|---|---|---|---|---|")
print("| %d | %.2f | %.1f | %.0f | %d | %d |" % (n, t_accept, total, n / total, b["counts"]["SUCCESS"],
                                                b["counts"]["FAILED"]))
