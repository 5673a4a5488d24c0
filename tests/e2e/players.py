"""Player accounts for the batch tests, made straight in the auth store (auth.db).

Batch items of ids that name no account settle FAILED UNKNOWN_PLAYER, so a batch test needs real
accounts; registering thousands through POST /auth/register (argon2id, two hashes at a time)
would take minutes. These accounts exist for every worker that asks the auth worker about them,
but nobody can log in with them (their password hash is not a hash)."""
import secrets
import sqlite3
import time


def seed(data_dir, n):
    """Creates n USER accounts in data_dir's auth store; returns their ids in order."""
    ids = [secrets.token_hex(12) for _ in range(n)]
    now = int(time.time() * 1000)
    db = sqlite3.connect("%s/auth.db" % data_dir, timeout=30)
    try:
        with db:
            db.executemany(
                "INSERT INTO users (id, username, username_lower, email, email_lower, password_hash, roles, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'seeded: no login', 1, ?, ?)",
                [(i, "seed_" + i, "seed_" + i, i + "@seed.example", i + "@seed.example", now, now) for i in ids])
    finally:
        db.close()
    return ids
