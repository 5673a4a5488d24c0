#!/usr/bin/python3
"""Writes the RabbitMQ definitions of the platform (users, permissions, exchanges, queues,
bindings) as JSON, for `load_definitions` or `rabbitmqctl import_definitions`.

Each component has its own user with least privilege: only the api may publish RPC requests
(write on rp.rpc); a worker may only read its own queue and publish replies (rp.reply); the
reward worker may also send batch items (rp.work) and grant events (rewards.events). The event
and reward workers may ask the auth worker one thing, whether ids name accounts, through an
exchange of its own (rp.accounts -> accounts.requests, served only by the account lookup), with a
reply queue of their own; they can never reach auth.requests, whose operations trust the caller
identity in the envelope. Queue
arguments match what the processes declare (lib/transport_amqp.c), so their declarations agree:
the RPC request queues (*.requests) are durable classic queues, because a request is transient
and lives only as long as its caller waits; the batch work queue reward.grant is a quorum queue.

    deploy/rabbitmq/definitions.py [--vhost V] [--user-suffix S] > definitions.json

Passwords come from RP_AMQP_PASSWORD_API, _AUTH, _EVENT, _REWARD and _ADMIN (the development
defaults of deploy/.env.docker otherwise); only salted SHA-256 hashes are written.
"""
import argparse
import base64
import hashlib
import json
import os
import sys

RPC = {"auth": "auth.requests", "login": "login.requests", "event": "event.requests", "reward": "reward.requests"}
ACCOUNTS = "accounts.requests"
WORK_QUEUE = "reward.grant"


def password_hash(password):
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def rpc_args(queue):
    """An RPC request queue: classic, kept in memory; a request a worker dies on is redelivered until
    its expiration (the caller's budget), then dead-lettered as expired."""
    return {"x-queue-type": "classic", "x-dead-letter-exchange": "rp.dlx", "x-dead-letter-routing-key": queue + ".dlq"}


def quorum_args(queue):
    """The batch work queue: replicated and fsynced; a message delivered 5 times is dead-lettered."""
    return {"x-queue-type": "quorum", "x-dead-letter-exchange": "rp.dlx",
            "x-dead-letter-routing-key": queue + ".dlq", "x-delivery-limit": 5}


def alt(*names, patterns=()):
    """A permission regex matching exactly the names, or any of the raw patterns."""
    return "^(" + "|".join([n.replace(".", r"\.") for n in names] + list(patterns)) + ")$"


def definitions(vhost, suffix, passwords):
    users, perms = [], []

    def user(name, tags, configure, write, read):
        users.append({"name": name + suffix, "password_hash": password_hash(passwords[name]),
                      "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": tags})
        if configure is not None:
            perms.append({"user": name + suffix, "vhost": vhost, "configure": configure, "write": write,
                          "read": read})

    user("rp-admin", ["administrator"], ".*", ".*", ".*")
    # the api: publishes RPCs, owns one exclusive server-named reply queue per connection
    user("rp-api", [], r"^(rp\.reply|amq\.gen-.*)$", r"^(rp\.rpc|amq\.gen-.*)$", r"^(rp\.reply|amq\.gen-.*)$")
    # a worker that asks for accounts: publishes on rp.accounts, owns a server-named reply queue
    reply = [r"amq\.gen-.*"]
    a = ACCOUNTS
    q, lq = RPC["auth"], RPC["login"]
    user("rp-auth", [], alt("rp.dlx", "rp.rpc", "rp.accounts", q, q + ".dlq", lq, lq + ".dlq", a, a + ".dlq"),
         alt("rp.reply", q, q + ".dlq", lq, lq + ".dlq", a, a + ".dlq"), alt("rp.dlx", "rp.rpc", "rp.accounts", q, lq, a))
    q = RPC["event"]
    user("rp-event", [], alt("rp.dlx", "rp.rpc", "rp.reply", q, q + ".dlq", patterns=reply),
         alt("rp.reply", "rp.accounts", q, q + ".dlq", patterns=reply),
         alt("rp.dlx", "rp.rpc", "rp.reply", q, patterns=reply))
    q, w = RPC["reward"], WORK_QUEUE
    user("rp-reward", [],
         alt("rp.dlx", "rp.rpc", "rp.reply", "rp.work", "rewards.events", q, q + ".dlq", w, w + ".dlq", patterns=reply),
         alt("rp.reply", "rp.accounts", "rp.work", "rewards.events", q, q + ".dlq", w, w + ".dlq", patterns=reply),
         alt("rp.dlx", "rp.rpc", "rp.reply", "rp.work", q, w, patterns=reply))

    exchanges = [{"name": n, "vhost": vhost, "type": t, "durable": True, "auto_delete": False, "internal": False,
                  "arguments": {}}
                 for n, t in (("rp.rpc", "direct"), ("rp.accounts", "direct"), ("rp.reply", "direct"),
                              ("rp.work", "direct"),
                              ("rp.dlx", "direct"), ("rewards.events", "topic"))]
    queues, bindings = [], []
    for comp, queue, exchange, key in [("auth", RPC["auth"], "rp.rpc", "auth"),
                                       ("auth", RPC["login"], "rp.rpc", "login"),
                                       ("event", RPC["event"], "rp.rpc", "event"),
                                       ("reward", RPC["reward"], "rp.rpc", "reward"),
                                       ("auth", ACCOUNTS, "rp.accounts", "accounts"),
                                       ("reward", WORK_QUEUE, "rp.work", WORK_QUEUE)]:
        queues.append({"name": queue, "vhost": vhost, "durable": True, "auto_delete": False,
                       "arguments": quorum_args(queue) if queue == WORK_QUEUE else rpc_args(queue)})
        queues.append({"name": queue + ".dlq", "vhost": vhost, "durable": True, "auto_delete": False,
                       "arguments": {}})
        bindings.append({"source": exchange, "vhost": vhost, "destination": queue, "destination_type": "queue",
                         "routing_key": key, "arguments": {}})
        bindings.append({"source": "rp.dlx", "vhost": vhost, "destination": queue + ".dlq",
                         "destination_type": "queue", "routing_key": queue + ".dlq", "arguments": {}})
    return {"rabbit_version": "3.10.8", "users": users, "vhosts": [{"name": vhost}], "permissions": perms,
            "exchanges": exchanges, "queues": queues, "bindings": bindings}


DEV_PASSWORDS = {"rp-admin": "admin-dev-password", "rp-api": "api-dev-password", "rp-auth": "auth-dev-password",
                 "rp-event": "event-dev-password", "rp-reward": "reward-dev-password"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vhost", default="/")
    ap.add_argument("--user-suffix", default="")
    args = ap.parse_args()
    passwords = {name: os.environ.get("RP_AMQP_PASSWORD_" + name[3:].upper(), default)
                 for name, default in DEV_PASSWORDS.items()}
    json.dump(definitions(args.vhost, args.user_suffix, passwords), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
