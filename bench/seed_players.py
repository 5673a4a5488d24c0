"""Adds N players to a running platform's auth.db and writes an access token for each
(bench/many_players.sh): registering a player through the API hashes its password (argon2id, a
few at a time, by design), so 20,000 of them would take most of an hour.

Usage: seed_players.py AUTH_DB TEMPLATE_TOKEN N OUT
Each new player is a copy of the account TEMPLATE_TOKEN belongs to (a player registered through
the API: same password hash, roles and token version) under a new id, username and e-mail. Its
token is TEMPLATE_TOKEN's claims with the new id, username and a new jti, signed HS256 with
JWT_SECRET from the environment, as the auth worker signs them."""
import base64
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import sys


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def main():
    path, template, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    secret = os.environ["JWT_SECRET"].encode()
    header, payload, _ = template.split(".")
    claims = json.loads(unb64(payload))
    db = sqlite3.connect(path, timeout=60)
    cols = [r[1] for r in db.execute("PRAGMA table_info(users)")]
    row = dict(zip(cols, db.execute("SELECT * FROM users WHERE id = ?", (claims["sub"],)).fetchone()))
    tokens = []
    with db:
        for _ in range(n):
            uid, name = secrets.token_hex(12), "s_" + secrets.token_hex(8)
            row.update(id=uid, username=name, username_lower=name, email=name + "@bench.invalid",
                       email_lower=name + "@bench.invalid")
            db.execute("INSERT INTO users (%s) VALUES (%s)" % (",".join(cols), ",".join("?" * len(cols))),
                       [row[c] for c in cols])
            claims.update(sub=uid, username=name, jti=secrets.token_hex(16))
            signing = header + "." + b64(json.dumps(claims, separators=(",", ":")).encode())
            tokens.append(signing + "." + b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest()))
    with open(out, "w") as f:
        f.write("\n".join(tokens) + "\n")


if __name__ == "__main__":
    main()
