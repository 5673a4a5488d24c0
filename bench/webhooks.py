"""Webhook delivery throughput and delay, against a local receiver that answers at once.

    /usr/bin/python3 bench/webhooks.py [--cluster] [--items N] [--claims N] [--senders N]

Starts its own platform (the embedded binary, or with --cluster reward-api + workers on the
RabbitMQ on this machine, in a vhost of its own) from $BIN (default build/bin/reward-platform)
with WEBHOOK_ALLOW_PRIVATE=1 and WEBHOOK_ALLOW_HTTP=1, and a receiver on 127.0.0.1. Then:
- throughput: one endpoint subscribed to reward.granted, a batch grant of N real players (seeded
  in auth.db): deliveries per second from the first webhook received to the last;
- delay: N claims one after the other (5 a second), each from the grant's commit (the message's
  `timestamp`, written in the grant's transaction) to its arrival at the receiver, p50 and p99;
  and the same delay over the batch's grants (under load).
Prints a markdown table."""
import argparse
import datetime
import http.server
import json
import os
import socketserver
import statistics
import sys
import threading
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import players  # noqa: E402
from platform_proc import Cluster, Platform, wait_for  # noqa: E402


def iso_ms(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000


class Receiver:
    """Answers 204 at once and notes, per webhook-id, when it first arrived and the message's time."""

    def __init__(self):
        self.first = {}
        self.lock = threading.Lock()
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                now = time.time() * 1000
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
                wid = self.headers["webhook-id"]
                with rec.lock:
                    if wid not in rec.first:
                        rec.first[wid] = (now, iso_ms(json.loads(body)["timestamp"]))

        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            request_queue_size = 256

        self.server = S(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]

    def count(self):
        with self.lock:
            return len(self.first)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cluster", action="store_true")
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--claims", type=int, default=200)
    ap.add_argument("--senders", type=int, default=4)
    a = ap.parse_args()
    env = {"RATE_LIMIT_AUTH_RPS": "0", "RATE_LIMIT_RPS": "0", "PASSWORD_HASH": "min", "LOG_LEVEL": "warn",
           "WEBHOOK_ALLOW_PRIVATE": "1", "WEBHOOK_ALLOW_HTTP": "1", "WEBHOOK_SENDERS": str(a.senders)}
    p = (Cluster(env) if a.cluster else Platform(env)).start()
    rec = Receiver()
    try:
        s = requests.Session()
        tok = s.post(p.url("/auth/login"), json={"username": p.admin[0], "password": p.admin[1]},
                     timeout=30).json()["accessToken"]
        h = {"Authorization": "Bearer " + tok}
        d = s.post(p.url("/events/reward-definitions"), headers=h, timeout=30,
                   json={"name": "Gold", "type": "CURRENCY", "value": 1}).json()["id"]
        now = datetime.datetime.now(datetime.timezone.utc)

        def event():
            return s.post(p.url("/events"), headers=h, timeout=30, json={
                "title": "webhook bench", "startDate": (now - datetime.timedelta(hours=1)).isoformat(),
                "endDate": (now + datetime.timedelta(days=1)).isoformat(),
                "rewards": [{"rewardDefinitionId": d, "quantity": 1}]}).json()["id"]
        r = s.post(p.url("/events/webhooks"), headers=h, json={"url": rec.url, "types": ["reward.granted"]},
                   timeout=30)
        assert r.status_code == 201, r.text
        # delay at low load: one claim at a time
        ev = event()
        tokens = []
        for i in range(a.claims):
            name = "wb_%d_%d" % (os.getpid(), i)
            s.post(p.url("/auth/register"), json={"username": name, "email": name + "@x.example",
                                                  "password": "password-123"}, timeout=30)
            tokens.append(s.post(p.url("/auth/login"), json={"username": name, "password": "password-123"},
                                 timeout=30).json()["accessToken"])
        ids = []
        for t in tokens:
            r = s.post(p.url("/events/%s/reward-requests" % ev), headers={"Authorization": "Bearer " + t}, timeout=30)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
            time.sleep(0.2)
        wait_for(lambda: all(i in rec.first for i in ids), 120, "the claims' webhooks")
        quiet = [rec.first[i][0] - rec.first[i][1] for i in ids]
        # throughput: a batch
        ev = event()
        users = players.seed(p.data_dir, a.items)
        before = rec.count()
        b = s.post(p.url("/events/%s/batch-grants" % ev), headers=h, json={"userIds": users, "reason": "bench"},
                   timeout=120).json()
        wait_for(lambda: rec.count() >= before + a.items, 600, "the batch's webhooks")
        with rec.lock:
            batch = [v for k, v in rec.first.items() if k not in set(ids)]
        arrivals = sorted(x[0] for x in batch)
        span = (arrivals[-1] - arrivals[0]) / 1000.0
        loaded = [x[0] - x[1] for x in batch]
        b = s.get(p.url("/events/batches/" + b["id"]), headers=h, timeout=30).json()
        mode = "cluster (2 grant workers)" if a.cluster else "embedded"
        print("| mode | senders/process | batch items | deliveries/s | claim→delivery p50 / p99 ms (5 claims/s) "
              "| batch grant→delivery p50 / p99 ms |")
        print("|---|---|---|---|---|---|")
        print("| %s | %d | %d (%s) | %.0f | %.0f / %.0f | %.0f / %.0f |" % (
            mode, a.senders, a.items, b["status"], len(batch) / span if span > 0 else float("nan"),
            statistics.median(quiet), pct(quiet, 99), statistics.median(loaded), pct(loaded, 99)))
    finally:
        rec.server.shutdown()
        code = p.stop()
        if code:
            print("platform exited with %s:\n%s" % (code, p.log_tail()), file=sys.stderr)


if __name__ == "__main__":
    main()
