"""Seeds N paid reward requests straight into an events.db the platform has created (bench/export.sh):
a million rows through the API would measure the claim path, not the export.

Usage: seed_requests.py EVENTS_DB N [USERS]
Rows: SUCCESS claims of one event by USERS players (default 1000), one reward line each, one
request per millisecond up to now. Prints the first player's id."""
import json
import secrets
import sqlite3
import sys
import time


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    users = [secrets.token_hex(12) for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 1000)]
    event, definition, processor = secrets.token_hex(12), secrets.token_hex(12), secrets.token_hex(12)
    rewards = json.dumps([{"rewardIndex": 0, "rewardDefinitionId": definition, "name": "Gold x100",
                           "type": "CURRENCY", "value": {"gold": 100}, "quantity": 1}], separators=(",", ":"))
    now = int(time.time() * 1000)
    base = int(secrets.token_hex(4), 16) << 64
    db = sqlite3.connect(path, timeout=60)

    def rows():
        for i in range(n):
            at, user = now - n + i, users[i % len(users)]
            yield ("%024x" % (base + i), user, event, "R%d" % i, "%s:%s:R%d" % (user, event, i), rewards, at, at,
                   processor, at, at)

    with db:
        db.executemany(
            "INSERT INTO reward_requests (id, user_id, event_id, period_key, active_key, status, claimed_rewards, "
            "requested_at, processed_at, processor_id, source, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, 'SUCCESS', ?, ?, ?, ?, 'CLAIM', ?, ?)", rows())
    db.close()
    print(users[0])


if __name__ == "__main__":
    main()
