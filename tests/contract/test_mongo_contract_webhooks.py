"""Wire-level contract tests of the MongoDB webhook store (workers/reward/webhook_store_mongo.c),
without a server: the same scripted replica-set primary as test_mongo_contract.py answers
tests/contract/mongo_driver.c (driver_webhook.c), which opens rp_webhook_store_mongo_open on the
mock's URI and runs one operation with fixed ids. The tests pin what webhook_store.h promises
and webhook_store_sqlite.c does: the fan-out reads unmarked outbox messages, upserts one delivery
per planned endpoint and marks each message in one transaction (so nothing is skipped or made
twice, and a rerun starts over); a lease is a guarded update_many; an attempt is recorded only
by the lease's holder, with the endpoint's failure clock, in one transaction.

Scripted replies are beliefs about a MongoDB server (wire version 17); those not shared with
test_mongo_contract.py are marked ASSUMPTION."""
import datetime

import pytest

from test_mongo_contract import (  # noqa: F401 (driver, mock and primary are fixtures)
    MOCKUPDB_ERROR,
    NO_MATCH,
    NOW,
    OPERATOR,
    WRITE_CONFLICT,
    assert_one_transaction,
    coll_of,
    cursor,
    driver,
    first_update,
    in_txn,
    mock,
    primary,
    run,
    steps_of,
    transaction_of,
    txn_numbers,
    writes,
)

pytestmark = pytest.mark.skipif(MOCKUPDB_ERROR is not None, reason="mockupdb not importable (see test_mongo_contract)")

AT = NOW.replace(tzinfo=None)
ENDPOINT = "5f00000000000000000000f1"
DELIVERY = "5f00000000000000000000f2"
OWNER = "sender-1"
REQ_A, REQ_B = "5f00000000000000000000a1", "5f00000000000000000000a2"
# ASSUMPTION: an upsert that inserted answers n: 1, nModified: 0 and the upserted entry.
UPSERTED = {"ok": 1, "n": 1, "nModified": 0, "upserted": [{"index": 0, "_id": "x"}]}
MATCHED_UNCHANGED = {"ok": 1, "n": 1, "nModified": 0}


def outbox_doc(seq, request, routing="reward.granted"):
    return {"_id": seq, "messageId": request, "routingKey": routing, "requestId": request, "createdAt": AT,
            "publishedAt": None, "hooked": False, "payload": {"type": routing, "messageId": request}}


def endpoint_doc(types=("reward.granted",), enabled=True):
    return {"_id": ENDPOINT, "url": "https://hooks.example/rp", "secret": "whsec_c2VjcmV0", "createdBy": OPERATOR,
            "createdAt": AT, "updatedAt": AT, "failingSince": None, "disabledAt": None, "disabledReason": None,
            "enabled": enabled, "types": list(types)}


def delivery_doc(status="PENDING"):
    return {"_id": DELIVERY, "endpointId": ENDPOINT, "webhookId": REQ_A, "type": "reward.granted",
            "body": '{"type":"reward.granted"}', "status": status, "attempts": 1, "round": 1, "nextAt": AT,
            "createdAt": AT, "settledAt": None, "log": [{"at": "2026-01-02T03:04:05.000Z", "status": 500}],
            "leaseOwner": OWNER, "leaseUntil": AT}


def script_fanout(mock, messages, endpoints):
    mock.on("find", [cursor("outbox", messages)], coll="outbox")
    mock.on("find", [cursor("webhook_endpoints", endpoints)], coll="webhook_endpoints")
    mock.on("update", [UPSERTED], coll="webhook_deliveries")


def test_open_creates_the_delivery_indexes_outside_transactions(driver, mock):
    assert run(driver, mock, "hook-open") == {"ok": True}
    specs = {}
    for e in mock.commands("createIndexes"):
        for ix in e["doc"]["indexes"]:
            specs[ix["name"]] = ix
    key = specs["webhook_deliveries_key"]
    assert key["unique"] is True and list(key["key"].items()) == [("endpointId", 1), ("webhookId", 1)]
    assert list(specs["webhook_deliveries_due"]["key"].items()) == [("status", 1), ("nextAt", 1), ("_id", 1)]
    assert list(specs["outbox_unhooked"]["key"].items()) == [("hooked", 1), ("_id", 1)]
    assert not in_txn(mock.commands())


def test_fanout_makes_deliveries_and_marks_messages_in_one_transaction(driver, mock):
    script_fanout(mock, [outbox_doc(7, REQ_A), outbox_doc(8, REQ_B, "reward.revoked")], [endpoint_doc()])
    out = run(driver, mock, "hook-fanout")
    assert out == {"ok": True, "messages": 2, "made": 1}, out
    txn = transaction_of(mock, [("find", "outbox"), ("find", "webhook_endpoints"), ("update", "webhook_deliveries"),
                                ("update", "outbox"), ("update", "outbox"), ("commitTransaction", None)])
    # chosen by the mark, never by a position: a message committed late is not skipped
    assert txn[0]["doc"]["filter"] == {"hooked": False}
    assert txn[0]["doc"]["sort"] == {"_id": 1} and txn[0]["doc"]["limit"] == 50
    assert txn[1]["doc"]["filter"] == {"enabled": True}
    up = first_update(txn[2])
    assert up["q"] == {"endpointId": ENDPOINT, "webhookId": REQ_A} and up.get("upsert") is True
    made = up["u"]["$setOnInsert"]
    assert list(up["u"]) == ["$setOnInsert"]  # an existing delivery is left as it is
    assert made["status"] == "PENDING" and made["type"] == "reward.granted" and made["log"] == []
    assert made["body"].startswith('{"type":"reward.granted","timestamp":"2026-01-02T03:04:05.000Z","data":')
    assert made["nextAt"] == AT and made["leaseOwner"] is None
    # the revocation had no subscriber: it is marked all the same, so it is never looked at again
    marks = [first_update(e) for e in txn[3:5]]
    assert [m["q"] for m in marks] == [{"_id": 7, "hooked": False}, {"_id": 8, "hooked": False}]
    assert all(m["u"] == {"$set": {"hooked": True}} for m in marks)


def test_fanout_with_nothing_to_do_polls_with_a_read_and_starts_no_transaction(driver, mock):
    script_fanout(mock, [], [endpoint_doc()])
    assert run(driver, mock, "hook-fanout") == {"ok": True, "messages": 0, "made": 0}
    assert not in_txn(mock.commands())
    poll = writes(mock.commands(), "find", "outbox")
    assert len(poll) == 1 and poll[0]["doc"]["filter"] == {"hooked": False} and poll[0]["doc"]["limit"] == 1
    assert not writes(mock.commands(), "update", "outbox")


def test_fanout_of_a_delivery_that_exists_counts_nothing_made(driver, mock):
    script_fanout(mock, [outbox_doc(7, REQ_A)], [endpoint_doc()])
    mock.on("update", [MATCHED_UNCHANGED], coll="webhook_deliveries")
    mock.rules.reverse()  # the later rule first
    assert run(driver, mock, "hook-fanout") == {"ok": True, "messages": 1, "made": 0}


def test_fanout_rerun_after_a_write_conflict_starts_over(driver, mock):
    script_fanout(mock, [outbox_doc(7, REQ_A)], [endpoint_doc()])
    mock.on("update", [WRITE_CONFLICT, {"ok": 1, "n": 1, "nModified": 1}], coll="outbox")
    mock.rules.reverse()
    out = run(driver, mock, "hook-fanout")
    assert out == {"ok": True, "messages": 1, "made": 1}, out  # counts of the last attempt only
    numbers = txn_numbers(mock.commands())
    assert len(numbers) == 2
    assert len(mock.commands("abortTransaction")) == 1 and len(mock.commands("commitTransaction")) == 1


def test_lease_is_a_guarded_update_many_then_a_read_of_ones_own(driver, mock):
    mock.on("find", [cursor("webhook_deliveries", [{"_id": DELIVERY}]), cursor("webhook_deliveries",
                                                                               [delivery_doc()])],
            coll="webhook_deliveries")
    out = run(driver, mock, "hook-lease")
    assert out["ok"] and [d["id"] for d in out["items"]] == [DELIVERY], out
    assert out["items"][0]["attempts"] == [{"at": "2026-01-02T03:04:05.000Z", "status": 500}]
    finds = writes(mock.commands(), "find", "webhook_deliveries")
    upd = writes(mock.commands(), "update", "webhook_deliveries")
    assert len(finds) == 2 and len(upd) == 1 and not in_txn(mock.commands())
    leasable = {"status": "PENDING", "nextAt": {"$lte": AT},
                "$or": [{"leaseUntil": None}, {"leaseUntil": {"$lt": AT}}, {"leaseOwner": OWNER}]}
    assert finds[0]["doc"]["filter"] == leasable
    assert finds[0]["doc"]["sort"] == {"nextAt": 1, "_id": 1} and finds[0]["doc"]["limit"] == 4
    guard = first_update(upd[0])
    assert guard["q"] == dict(leasable, _id={"$in": [DELIVERY]}) and guard.get("multi") is True
    until = AT + datetime.timedelta(seconds=20)
    assert guard["u"] == {"$set": {"leaseOwner": OWNER, "leaseUntil": until}}
    assert finds[1]["doc"]["filter"] == {"status": "PENDING", "leaseOwner": OWNER, "leaseUntil": until}


def test_a_failed_attempt_is_recorded_by_the_lease_holder_with_the_failure_clock(driver, mock):
    mock.on("find", [cursor("webhook_deliveries", [{"_id": DELIVERY, "endpointId": ENDPOINT}])],
            coll="webhook_deliveries")
    assert run(driver, mock, "hook-record-failure") == {"ok": True, "applied": True}
    txn = transaction_of(mock, [("update", "webhook_deliveries"), ("find", "webhook_deliveries"),
                                ("update", "webhook_endpoints"), ("commitTransaction", None)])
    rec = first_update(txn[0])
    assert rec["q"] == {"_id": DELIVERY, "leaseOwner": OWNER}
    assert rec["u"]["$set"] == {"status": "PENDING", "round": 2, "nextAt": AT + datetime.timedelta(seconds=5),
                                "settledAt": None, "leaseOwner": None, "leaseUntil": None}
    assert rec["u"]["$inc"] == {"attempts": 1}
    push = rec["u"]["$push"]["log"]
    assert push["$slice"] == -64 and push["$each"][0]["status"] == 503 and push["$each"][0]["latencyMs"] == 12
    clock = first_update(txn[2])
    # a failure starts the clock only when it is not running: an earlier failingSince stays
    assert clock["q"] == {"_id": ENDPOINT, "failingSince": None}
    assert clock["u"] == {"$set": {"failingSince": AT}}


def test_a_success_stops_the_failure_clock(driver, mock):
    mock.on("find", [cursor("webhook_deliveries", [{"_id": DELIVERY, "endpointId": ENDPOINT}])],
            coll="webhook_deliveries")
    assert run(driver, mock, "hook-record-success") == {"ok": True, "applied": True}
    txn = assert_one_transaction(mock.commands())
    rec = first_update(txn[0])
    assert rec["u"]["$set"]["status"] == "DELIVERED" and rec["u"]["$set"]["settledAt"] == AT
    clock = first_update([e for e in txn if coll_of(e) == "webhook_endpoints"][0])
    assert clock["q"] == {"_id": ENDPOINT} and clock["u"] == {"$set": {"failingSince": None}}


def test_an_attempt_whose_lease_was_lost_writes_nothing(driver, mock):
    mock.on("update", [NO_MATCH], coll="webhook_deliveries")
    assert run(driver, mock, "hook-record-failure") == {"ok": True, "applied": False}
    assert not mock.commands("commitTransaction") and len(mock.commands("abortTransaction")) == 1
    assert not writes(mock.commands(), "update", "webhook_endpoints")


def test_endpoint_insert_and_its_audit_entry_share_one_transaction(driver, mock):
    assert run(driver, mock, "hook-endpoint-insert") == {"ok": True}
    txn = transaction_of(mock, [("insert", "webhook_endpoints"), ("insert", "audit_logs"),
                                ("commitTransaction", None)])
    doc = txn[0]["doc"]["documents"][0]
    assert doc["_id"] == ENDPOINT and doc["types"] == ["reward.granted", "event.ended"] and doc["enabled"] is True
    assert doc["secret"] == "whsec_c2VjcmV0" and doc["createdAt"] == AT
    audit = txn[1]["doc"]["documents"][0]
    assert audit["log"] == "event" and audit["action"] == "webhook.create" and audit["targetId"] == ENDPOINT


def test_endpoint_update_is_a_compare_and_set_on_updated_at(driver, mock):
    mock.on("find", [cursor("webhook_endpoints", [endpoint_doc()])], coll="webhook_endpoints")
    assert run(driver, mock, "hook-endpoint-update") == {"ok": True, "found": True}
    txn = transaction_of(mock, [("find", "webhook_endpoints"), ("update", "webhook_endpoints"),
                                ("insert", "audit_logs"), ("commitTransaction", None)])
    up = first_update(txn[1])
    assert up["q"] == {"_id": ENDPOINT, "updatedAt": AT}
    s = up["u"]["$set"]
    assert s["enabled"] is False and s["disabledReason"] == "FAILING" and s["failingSince"] is None


def test_endpoint_update_that_lost_the_race_writes_nothing(driver, mock):
    later = dict(endpoint_doc(), updatedAt=AT + datetime.timedelta(seconds=1))
    mock.on("find", [cursor("webhook_endpoints", [later])], coll="webhook_endpoints")
    assert run(driver, mock, "hook-endpoint-update") == {"ok": True, "found": False}
    assert not writes(mock.commands(), "update", "webhook_endpoints")
    assert not writes(mock.commands(), "insert", "audit_logs")
    assert not mock.commands("commitTransaction")


def test_endpoint_delete_takes_its_deliveries_in_the_same_transaction(driver, mock):
    assert run(driver, mock, "hook-endpoint-delete") == {"ok": True, "found": True}
    txn = transaction_of(mock, [("delete", "webhook_endpoints"), ("delete", "webhook_deliveries"),
                                ("insert", "audit_logs"), ("commitTransaction", None)])
    assert txn[0]["doc"]["deletes"][0]["q"] == {"_id": ENDPOINT} and txn[0]["doc"]["deletes"][0]["limit"] == 1
    assert txn[1]["doc"]["deletes"][0]["q"] == {"endpointId": ENDPOINT} and txn[1]["doc"]["deletes"][0]["limit"] == 0


def test_endpoint_read_maps_the_document(driver, mock):
    mock.on("find", [cursor("webhook_endpoints", [endpoint_doc(("event.ended", "reward.granted"))])],
            coll="webhook_endpoints")
    out = run(driver, mock, "hook-endpoint-get")
    ep = out["endpoint"]
    assert ep["id"] == ENDPOINT and ep["types"] == ["reward.granted", "event.ended"] and ep["enabled"] is True
    assert "secret" not in ep and ep["createdAt"] == "2026-01-02T03:04:05.000Z"


def test_delivery_list_filters_by_endpoint_status_and_cursor(driver, mock):
    mock.on("find", [cursor("webhook_deliveries", [delivery_doc("FAILED")] * 3)], coll="webhook_deliveries")
    out = run(driver, mock, "hook-list-deliveries")
    assert out["ok"] and len(out["items"]) == 2 and out["more"] is True
    f = writes(mock.commands(), "find", "webhook_deliveries")[0]["doc"]
    assert f["filter"] == {"endpointId": ENDPOINT, "status": "FAILED", "_id": {"$lt": DELIVERY}}
    assert f["sort"] == {"_id": -1} and f["limit"] == 3


def test_redeliver_resets_the_round_and_frees_the_lease(driver, mock):
    assert run(driver, mock, "hook-redeliver") == {"ok": True, "found": True}
    up = first_update(writes(mock.commands(), "update", "webhook_deliveries")[0])
    assert up["q"] == {"_id": DELIVERY, "endpointId": ENDPOINT}
    assert up["u"] == {"$set": {"status": "PENDING", "round": 0, "nextAt": AT, "settledAt": None, "leaseOwner": None,
                                "leaseUntil": None}}


def test_a_ping_with_an_existing_webhook_id_is_a_duplicate(driver, mock):
    dup = {"ok": 1, "n": 0, "writeErrors": [{"index": 0, "code": 11000, "codeName": "DuplicateKey",
                                             "errmsg": "E11000 duplicate key error", "keyPattern": {"endpointId": 1,
                                                                                                    "webhookId": 1}}]}
    mock.on("insert", [dup], coll="webhook_deliveries")
    assert run(driver, mock, "hook-ping-insert") == {"ok": True, "duplicate": True}


def test_stats_group_deliveries_by_type_and_status(driver, mock):
    rows = [{"_id": {"type": "reward.granted", "status": "PENDING"}, "n": 3, "oldest": AT},
            {"_id": {"type": "webhook.ping", "status": "DELIVERED"}, "n": 2, "oldest": AT}]
    mock.on("aggregate", [cursor("webhook_deliveries", rows)], coll="webhook_deliveries")
    out = run(driver, mock, "hook-stats")
    assert out == {"ok": True, "pending": 3, "oldest": 1767323045000, "granted_pending": 3, "ping_delivered": 2}, out
    agg = writes(mock.commands(), "aggregate", "webhook_deliveries")[0]["doc"]
    assert agg["pipeline"] == [{"$group": {"_id": {"type": "$type", "status": "$status"}, "n": {"$sum": 1},
                                           "oldest": {"$min": "$createdAt"}}}]


EVENT_ID = "5f00000000000000000000e1"
BATCH_ID = "5f00000000000000000000b1"


def script_notices(mock, canceled, ended, batches, queued=0):
    mock.on("find", [cursor("events", canceled)], coll="events",
            match=lambda d: "canceledAt" in d["filter"] and d["filter"]["canceledAt"] is not None)
    mock.on("find", [cursor("events", ended)], coll="events", match=lambda d: d["filter"].get("canceledAt", 1) is None)
    mock.on("find", [cursor("batches", batches)], coll="batches")
    # ASSUMPTION: count_documents is an aggregate whose $group answers {n}; none when nothing matched
    mock.on("aggregate", [cursor("batch_items", [{"_id": 1, "n": queued}] if queued else [])], coll="batch_items",
            match=lambda d: d["pipeline"][0]["$match"].get("status") == "QUEUED")
    mock.on("aggregate", [cursor("batch_items", [{"_id": 1, "n": 4}])], coll="batch_items",
            match=lambda d: d["pipeline"][0]["$match"].get("status") == "SUCCESS")
    mock.on("find", [cursor("webhook_endpoints", [endpoint_doc(("event.canceled", "batch.completed"))])],
            coll="webhook_endpoints")
    mock.on("update", [UPSERTED], coll="webhook_deliveries")


def test_notices_make_deliveries_and_mark_each_thing_once_in_one_transaction(driver, mock):
    later = AT + datetime.timedelta(hours=1)
    script_notices(mock, [{"_id": EVENT_ID, "title": "Spring", "endDate": later, "canceledAt": later}], [],
                   [{"_id": BATCH_ID, "eventId": EVENT_ID, "total": 5, "createdBy": OPERATOR, "createdAt": later,
                     "state": "OPEN"}])
    out = run(driver, mock, "hook-notice")
    assert out == {"ok": True, "things": 2, "made": 2}, out
    txn = assert_one_transaction(mock.commands())
    finds = [e for e in txn if e["cmd"] == "find"]
    canceled, ended, batches = (f["doc"]["filter"] for f in finds[:3])
    assert canceled == {"canceledAt": {"$ne": None, "$lte": AT}, "webhookNotices": {"$ne": "event.canceled"}}
    assert ended == {"canceledAt": None, "endDate": {"$lte": AT}, "webhookNotices": {"$ne": "event.ended"}}
    assert batches == {"state": {"$ne": "CREATING"}, "webhookNotices": {"$ne": "batch.completed"}}
    ups = [first_update(e) for e in txn if coll_of(e) == "webhook_deliveries"]
    assert [u["q"]["webhookId"] for u in ups] == [EVENT_ID + ":canceled", BATCH_ID + ":completed"]
    body = ups[1]["u"]["$setOnInsert"]["body"]
    assert '"type":"batch.completed"' in body and '"counts":{"SUCCESS":4,"FAILED":0}' in body
    marks = [first_update(e) for e in txn if coll_of(e) in ("events", "batches") and e["cmd"] == "update"]
    assert marks == [
        {"q": {"_id": EVENT_ID, "webhookNotices": {"$ne": "event.canceled"}},
         "u": {"$addToSet": {"webhookNotices": "event.canceled"}}},
        {"q": {"_id": BATCH_ID, "webhookNotices": {"$ne": "batch.completed"}},
         "u": {"$addToSet": {"webhookNotices": "batch.completed"}}}]
    assert txn[-1]["cmd"] == "commitTransaction"


def test_a_batch_with_queued_items_is_not_noticed(driver, mock):
    script_notices(mock, [], [], [{"_id": BATCH_ID, "eventId": EVENT_ID, "total": 5, "createdBy": OPERATOR,
                                   "createdAt": AT, "state": "OPEN"}], queued=1)
    assert run(driver, mock, "hook-notice") == {"ok": True, "things": 0, "made": 0}
    assert not mock.commands("commitTransaction")
    assert not [e for e in mock.commands("update") if coll_of(e) in ("batches", "webhook_deliveries")]
