"""The outbox: every grant has exactly one message; in the cluster the relay publishes it."""
import sqlite3

import pytest

from conftest import MODE
from platform_proc import wait_for


def published_at(platform, request_id):
    db = sqlite3.connect("file:%s/events.db?mode=ro" % platform.data_dir, uri=True, timeout=30)
    try:
        row = db.execute("SELECT published_at FROM outbox WHERE request_id = ? AND routing_key = 'reward.granted'",
                         (request_id,)).fetchall()
    finally:
        db.close()
    assert len(row) == 1, row
    return row[0][0]


def test_grant_has_one_outbox_message(world, platform):
    ev = world.event()
    token, _ = world.player()
    req = world.claim(token, ev["id"]).json()
    if MODE != "cluster":
        # embedded mode has no broker: the message waits in the outbox and the feed serves it
        assert published_at(platform, req["id"]) is None
        pytest.skip("publishing to rewards.events needs the cluster (RabbitMQ); checked in that run")
    wait_for(lambda: published_at(platform, req["id"]) is not None, 30, "the relay to publish the grant")
