"""Reads the event store (events.db) directly and checks the grant invariants of DESIGN.md
section 6. Used by the black-box tests after concurrency and crash runs; also runnable by hand:

    /usr/bin/python3 tests/e2e/invariants.py DATA_DIR
"""
import json
import sqlite3
import sys
from collections import defaultdict


def check(data_dir):
    """Returns a list of violations (empty when every invariant holds)."""
    db = sqlite3.connect("file:%s/events.db?mode=ro" % data_dir, uri=True, timeout=30)
    problems = []
    try:
        # SUCCESS requests x quantity, per event reward
        paid = defaultdict(int)
        for event_id, claimed in db.execute(
                "SELECT event_id, claimed_rewards FROM reward_requests WHERE status = 'SUCCESS'"):
            for r in json.loads(claimed):
                paid[(event_id, r["rewardIndex"])] += r["quantity"]
        # ledger quantity (grants minus reversals of requests no longer SUCCESS)
        ledger = defaultdict(int)
        for event_id, idx, qty in db.execute(
                "SELECT event_id, reward_idx, sum(quantity) FROM reward_ledger GROUP BY event_id, reward_idx"):
            ledger[(event_id, idx)] = qty
        # stock consumed
        consumed = {}
        for event_id, idx, stock, left in db.execute(
                "SELECT event_id, idx, stock, stock_left FROM event_rewards"):
            if stock is not None:
                if left is None or left < 0 or left > stock:
                    problems.append("event %s reward %d: stock_left %r outside [0, %d]" % (event_id, idx, left, stock))
                else:
                    consumed[(event_id, idx)] = stock - left
        for key in set(paid) | set(ledger):
            if paid.get(key, 0) != ledger.get(key, 0):
                problems.append("event %s reward %d: SUCCESS quantity %d != ledger quantity %d"
                                % (key[0], key[1], paid.get(key, 0), ledger.get(key, 0)))
        for key, used in consumed.items():
            if used != paid.get(key, 0):
                problems.append("event %s reward %d: stock consumed %d != SUCCESS quantity %d"
                                % (key[0], key[1], used, paid.get(key, 0)))
        # no two non-FAILED requests share an active key
        for key, n in db.execute(
                "SELECT active_key, count(*) FROM reward_requests WHERE status <> 'FAILED' "
                "GROUP BY active_key HAVING count(*) > 1 OR active_key IS NULL"):
            problems.append("active key %r held by %d non-FAILED requests" % (key, n))
        for (n,) in db.execute("SELECT count(*) FROM reward_requests WHERE status = 'FAILED' AND active_key IS NOT NULL"):
            if n:
                problems.append("%d FAILED requests still hold an active key" % n)
        # an active key is its slot's: the store holds the slot unique as (event, period, user)
        for (n,) in db.execute("SELECT count(*) FROM reward_requests WHERE active_key IS NOT NULL "
                               "AND active_key <> user_id || ':' || event_id || ':' || period_key"):
            if n:
                problems.append("%d requests hold an active key other than their slot's" % n)
        # exactly one grant outbox message per SUCCESS (and per request ever granted)
        granted = dict(db.execute(
            "SELECT request_id, count(*) FROM outbox WHERE routing_key = 'reward.granted' GROUP BY request_id"))
        for (rid,) in db.execute("SELECT id FROM reward_requests WHERE status IN ('SUCCESS', 'REVOKED')"):
            if granted.get(rid, 0) != 1:
                problems.append("request %s has %d reward.granted outbox messages" % (rid, granted.get(rid, 0)))
        for (n,) in db.execute(
                "SELECT count(*) FROM outbox o JOIN reward_requests r ON r.id = o.request_id "
                "WHERE o.routing_key = 'reward.granted' AND r.status NOT IN ('SUCCESS', 'REVOKED')"):
            if n:
                problems.append("%d outbox messages for requests that were never granted" % n)
        # batch grants: a SUCCESS item names its one request, and a batch paid no one twice
        has_batches = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'batch_items'").fetchone()
        if has_batches:
            for batch_id, seq, n in db.execute(
                    "SELECT i.batch_id, i.seq, count(r.id) FROM batch_items i LEFT JOIN reward_requests r "
                    "ON r.id = i.request_id AND r.batch_id = i.batch_id AND r.user_id = i.user_id "
                    "WHERE i.status = 'SUCCESS' GROUP BY i.batch_id, i.seq"):
                if n != 1:
                    problems.append("batch %s item %d: SUCCESS without its request" % (batch_id, seq))
            for batch_id, requests, items in db.execute(
                    "SELECT r.batch_id, count(*), (SELECT count(*) FROM batch_items i WHERE i.batch_id = r.batch_id "
                    "AND i.status = 'SUCCESS') FROM reward_requests r WHERE r.batch_id IS NOT NULL "
                    "GROUP BY r.batch_id"):
                if requests != items:
                    problems.append("batch %s: %d requests but %d SUCCESS items" % (batch_id, requests, items))
    finally:
        db.close()
    return problems


def status_counts(data_dir, event_id):
    db = sqlite3.connect("file:%s/events.db?mode=ro" % data_dir, uri=True, timeout=30)
    try:
        return dict(db.execute(
            "SELECT status, count(*) FROM reward_requests WHERE event_id = ? GROUP BY status", (event_id,)))
    finally:
        db.close()


if __name__ == "__main__":
    found = check(sys.argv[1])
    for p in found:
        print(p)
    print("invariants: %s" % ("OK" if not found else "%d violations" % len(found)))
    sys.exit(1 if found else 0)
