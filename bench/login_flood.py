#!/usr/bin/python3
"""GET /auth/me latency while a login flood runs (issue 12): 120 wrong-password logins from 6
loopback addresses (20 each, inside the per-address burst), 24 at a time, while one client asks
GET /auth/me on a keep-alive connection as fast as it can. Prints p50/p99/max of /auth/me alone,
then during the flood (five floods pooled), and what the logins were answered.

    BIN=build/bin/reward-platform /usr/bin/python3 bench/login_flood.py [--global-budget]

The platform runs with the README's defaults (PASSWORD_HASH=standard, WORKER_THREADS=4,
PASSWORD_HASH_CONCURRENCY=2, PASSWORD_HASH_QUEUE=1); without --global-budget the global login
budget is off, so that the hashing queue alone is measured. Set MODE=cluster for the cluster.
The logins are sent from a child process, so that the timing client never waits for the GIL."""
import http.client
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from platform_proc import Cluster, Platform  # noqa: E402

PER_ADDRESS = 20
ROUNDS = 5


def addresses(rnd):
    """Six loopback addresses of their own for each round, so that each stays inside its burst."""
    return ["127.0.%d.%d" % (10 + rnd, i) for i in range(11, 17)]


def post(port, path, body, source="127.0.0.1"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
    try:
        c.request("POST", "/api/v1" + path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        c.close()


def me_loop(port, token, stop, out):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=("127.0.0.2", 0))
    while not stop.is_set():
        t0 = time.perf_counter()
        c.request("GET", "/api/v1/auth/me", headers={"Authorization": "Bearer " + token})
        r = c.getresponse()
        r.read()
        out.append(((time.perf_counter() - t0) * 1000, r.status))
    c.close()


def flood_main(port, rnd, results):
    def one(addr):
        return post(port, "/auth/login", {"username": "nobody_" + uuid.uuid4().hex[:6],
                                          "password": "wrong-password"}, addr)

    answers = {}
    jobs = [a for a in addresses(rnd) for _ in range(PER_ADDRESS)]
    with ThreadPoolExecutor(24) as pool:
        for st, body in pool.map(one, jobs):
            key = "%d %s" % (st, body.get("error", {}).get("code", ""))
            answers[key] = answers.get(key, 0) + 1
    results.put(answers)


def summary(samples):
    ms = sorted(s[0] for s in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    bad = sum(1 for s in samples if s[1] != 200)
    return "n=%d p50=%.2f ms p99=%.2f ms max=%.2f ms non-200=%d" % (len(ms), statistics.median(ms), p99, ms[-1], bad)


def main():
    env = {"LOGIN_GLOBAL_RPS": "20" if "--global-budget" in sys.argv else "0", "RATE_LIMIT_RPS": "0"}
    p = (Cluster(env) if os.environ.get("MODE") == "cluster" else Platform(env)).start()
    try:
        name = "bench_" + uuid.uuid4().hex[:8]
        st, _ = post(p.port, "/auth/register", {"username": name, "email": name + "@example.com",
                                                "password": "password-123"}, "127.0.0.3")
        assert st == 201
        st, body = post(p.port, "/auth/login", {"username": name, "password": "password-123"}, "127.0.0.3")
        assert st == 200, body
        token = body["accessToken"]
        # a flood lasts about half a second (some 200 samples, whose p99 is their second
        # highest): ROUNDS floods, a second apart, are pooled for the figure
        for phase in ("alone", "during the flood"):
            stop, samples = threading.Event(), []
            answers = {}
            elapsed = 0.0
            for rnd in range(1 if phase == "alone" else ROUNDS):
                stop.clear()
                t = threading.Thread(target=me_loop, args=(p.port, token, stop, samples))
                t.start()
                t0 = time.monotonic()
                if phase == "alone":
                    time.sleep(3)
                else:
                    # the flood runs in a process of its own: its 24 threads would otherwise hold
                    # the GIL the timing thread needs, and the client's waits would count as the
                    # server's
                    results = multiprocessing.Queue()
                    flood = multiprocessing.Process(target=flood_main, args=(p.port, rnd, results))
                    flood.start()
                    for k, v in results.get().items():
                        answers[k] = answers.get(k, 0) + v
                    flood.join()
                stop.set()
                t.join()
                elapsed += time.monotonic() - t0
                if phase != "alone":
                    time.sleep(1)
            rounds = "" if phase == "alone" else ", %d floods" % ROUNDS
            print("GET /auth/me %s (%.1f s%s): %s" % (phase, elapsed, rounds, summary(samples)))
            if answers:
                print("  logins: %s" % ", ".join("%s x%d" % kv for kv in sorted(answers.items())))
    finally:
        code = p.stop()
        if code:
            print("platform exited with %s" % code)


if __name__ == "__main__":
    main()
