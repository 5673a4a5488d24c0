"""Prepares a running platform for bench/grants.sh: an operator, events without conditions and
with unlimited stock, and many players. Writes player tokens and event ids one per line."""
import datetime
import os
import random
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

base, admin_user, admin_pw, players, nevents, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), \
    int(sys.argv[5]), sys.argv[6]
s = requests.Session()


def post_retrying(sess, path, body):
    """Registration and login hash a password (argon2id, a few at a time): on a busy machine a
    worker may answer after the RPC deadline (504) or the hashing queue may be full (503
    OVERLOADED); try again, as a client would, for up to two minutes."""
    deadline = time.monotonic() + 120
    attempt = 0
    while True:
        r = sess.post(base + path, json=body, timeout=60)
        if r.status_code not in (503, 504) or time.monotonic() > deadline:
            return r, attempt
        attempt += 1
        time.sleep(min(2.0, 0.1 * attempt) * (0.5 + random.random()))


def login(u, p):
    r, _ = post_retrying(s, "/auth/login", {"username": u, "password": p})
    r.raise_for_status()
    return r.json()


admin = login(admin_user, admin_pw)["accessToken"]
h = {"Authorization": "Bearer " + admin}
d = s.post(base + "/events/reward-definitions", headers=h,
           json={"name": "Gold", "type": "CURRENCY", "value": 100}, timeout=60).json()["id"]
now = datetime.datetime.now(datetime.timezone.utc)
with open(os.path.join(out, "events"), "w") as f:
    for _ in range(nevents):
        r = s.post(base + "/events", headers=h, timeout=60, json={
            "title": "bench", "startDate": (now - datetime.timedelta(hours=1)).isoformat(),
            "endDate": (now + datetime.timedelta(days=1)).isoformat(),
            "rewards": [{"rewardDefinitionId": d, "quantity": 1}]})
        r.raise_for_status()
        f.write(r.json()["id"] + "\n")


def player(_):
    name = "p_" + uuid.uuid4().hex[:12]
    sess = requests.Session()
    r, attempt = post_retrying(sess, "/auth/register", {"username": name, "email": name + "@bench.invalid",
                                                        "password": "bench-password"})
    if not (r.status_code == 409 and attempt > 0):  # 409 after a retry: the first try got through
        r.raise_for_status()
    r, _ = post_retrying(sess, "/auth/login", {"username": name, "password": "bench-password"})
    r.raise_for_status()
    return r.json()["accessToken"]


# three at a time: the places of the platform's hashing queue as bench/start.sh sets it
# (PASSWORD_HASH_CONCURRENCY=2 threads and PASSWORD_HASH_QUEUE=1)
with ThreadPoolExecutor(3) as pool:
    tokens = list(pool.map(player, range(players)))
with open(os.path.join(out, "tokens"), "w") as f:
    f.write("\n".join(tokens) + "\n")
