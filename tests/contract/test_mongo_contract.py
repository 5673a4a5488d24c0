"""Wire-level contract tests of the MongoDB stores, without a MongoDB server.

A scripted replica-set primary (python3-mockupdb, in this process) answers the C driver
tests/contract/mongo_driver.c, which opens the real stores (rp_reward_store_mongo_open,
rp_event_repo_mongo_open, rp_auth_store_mongo_open) on the mock's URI and runs one store
operation, or one of the backend-neutral grant bodies (workers/reward/grant_txn.h: claim, batch
item, decisions, lease, batch creation) over the MongoDB reward store. Every command the driver
sends is recorded, so the tests assert what goes over the wire: one session and transaction
number per unit of work, startTransaction / autocommit, commit to admin with w: majority, the
driver's retries on error labels, and the outcome the body derives from each server answer.

What this cannot show (it needs a real `mongod --replSet`): atomicity, that the unique indexes
really yield 11000, that the stock guard holds under concurrency, real server answer shapes. The
replies scripted below are our belief of what a MongoDB 6.0 server (wire version 17) sends;
each is marked ASSUMPTION.

Run (from the repository root; Debian's interpreter, which sees python3-mockupdb):
    make test-mongo-contract
    /usr/bin/python3 -m pytest -q -rs tests/contract
The driver is $MONGO_DRIVER, else build/tests/mongo_driver. Without mockupdb every test skips
with the reason; a missing driver binary fails (build it first).
"""

import copy
import datetime
import json
import os
import subprocess
import sys
import threading

import pytest

try:
    import bson
    import mockupdb
    from bson import ObjectId
    from mockupdb import MockupDB, OpMsg

    MOCKUPDB_ERROR = None
except ImportError as exc:  # the PATH python3 may be a pyenv shim without Debian's dist-packages
    MOCKUPDB_ERROR = exc

pytestmark = pytest.mark.skipif(
    MOCKUPDB_ERROR is not None,
    reason="mockupdb not importable by %s (%s): apt-get install python3-mockupdb and run pytest with "
    "Debian's system python3 (the Makefile's PYTHON), not a pyenv shim" % (sys.executable, MOCKUPDB_ERROR),
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER_TIMEOUT_S = 20  # per driver run; the scripted errors never loop (see _transient_once)

DB = "rp_contract"
USER = "5f0000000000000000000001"
OPERATOR = "5f000000000000000000000f"
EVENT = "5f00000000000000000000e1"
REQUEST = "5f00000000000000000000a1"
BATCH = "5f00000000000000000000b1"
DEF0, DEF1 = "5f00000000000000000000d0", "5f00000000000000000000d1"
ACTIVE_KEY = "%s:%s:ONCE" % (USER, EVENT)
EXISTING = "5f00000000000000000000a9"
UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

# ---- server answers (ASSUMPTIONS about a 6.0 primary) ----

# ASSUMPTION: a write conflict inside a transaction is a command error with the transient label.
WRITE_CONFLICT = {
    "ok": 0,
    "code": 112,
    "codeName": "WriteConflict",
    "errmsg": "WriteConflict error: this operation conflicted with another operation.",
    "errorLabels": ["TransientTransactionError"],
}
# ASSUMPTION: a commit whose majority wait timed out answers ok: 1 with a writeConcernError; the
# driver labels that UnknownTransactionCommitResult and retries the commit alone.
COMMIT_WC_TIMEOUT = {
    "ok": 1,
    "writeConcernError": {
        "code": 64,
        "codeName": "WriteConcernFailed",
        "errmsg": "waiting for replication timed out",
        "errInfo": {"wtimeout": True},
    },
}
# ASSUMPTION: a duplicate key is a write error inside an ok: 1 reply, without error labels.
DUPLICATE_ACTIVE_KEY = {
    "ok": 1,
    "n": 0,
    "writeErrors": [
        {
            "index": 0,
            "code": 11000,
            "codeName": "DuplicateKey",
            "errmsg": "E11000 duplicate key error collection: %s.event_reward_requests index: "
            'event_reward_requests_active dup key: { activeKey: "%s" }' % (DB, ACTIVE_KEY),
            "keyPattern": {"activeKey": 1},
            "keyValue": {"activeKey": ACTIVE_KEY},
        }
    ],
}
# ASSUMPTION: an update whose filter matches nothing answers n: 0, nModified: 0.
NO_MATCH = {"ok": 1, "n": 0, "nModified": 0}


def event_doc():
    """The event as event_repo_mongo.c stores it: reward 0 limited, reward 1 unlimited."""
    return {
        "_id": EVENT,
        "title": "Launch",
        "description": "",
        "startDate": NOW - datetime.timedelta(days=1),
        "endDate": NOW + datetime.timedelta(days=1),
        "canceledAt": None,
        "conditions": [],
        "conditionLogic": "ALL",
        "claimPeriod": "ONCE",
        "maxClaims": 3,
        "requiresApproval": False,
        "dayOffsetMinutes": 540,
        "createdBy": OPERATOR,
        "createdAt": NOW,
        "updatedAt": NOW,
        "grants": 4,
        "rewards": [
            {"rewardIndex": 0, "rewardDefinitionId": DEF0, "quantity": 2, "stock": 10, "stockLeft": 10,
             "customData": None},
            {"rewardIndex": 1, "rewardDefinitionId": DEF1, "quantity": 1, "stock": None, "stockLeft": None,
             "customData": {"color": "red"}},
        ],
    }


def request_doc(_id=REQUEST, status="SUCCESS", active=True):
    """A request as reward_store_mongo.c stores it."""
    d = {
        "_id": _id,
        "userId": USER,
        "eventId": EVENT,
        "periodKey": "ONCE",
        "status": status,
        "claimedRewards": [
            {"rewardIndex": 0, "rewardDefinitionId": DEF0, "name": "Gold", "type": "CURRENCY",
             "value": {"amount": 100}, "quantity": 2},
            {"rewardIndex": 1, "rewardDefinitionId": DEF1, "name": "Badge", "type": "ITEM",
             "value": {"_rpJson": '{"$weird":1}'}, "quantity": 1},
        ],
        "requestedAt": NOW,
        "processedAt": NOW,
        "processorId": None,
        "failureReason": None,
        "failureDetails": {"_rpJson": '[{"$k":2}]'},
        "notes": None,
        "source": "CLAIM",
        "batchId": None,
        "createdAt": NOW,
        "updatedAt": NOW,
    }
    if active:
        d["activeKey"] = ACTIVE_KEY
    return d


# ---- BSON array keys ----
# pymongo decodes arrays into lists and forgets their keys, so a driver-side bug that writes
# {"1": ..., "3": ...} as an array (a libbson macro evaluating its key argument twice did that)
# would pass unseen. The mock's decoder is wrapped to check every array of every message.

_FIXED = {0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16, 0x7F: 0,
          0xFF: 0}


def array_key_errors(data):
    """Arrays in the concatenated BSON documents data whose keys are not "0", "1", ..."""
    data = bytes(data)
    errors = []

    def cstring(pos):
        end = data.index(b"\x00", pos)
        return data[pos:end].decode("utf-8", "replace"), end + 1

    def walk(pos, is_array):
        size = int.from_bytes(data[pos:pos + 4], "little")
        end, pos, i = pos + size - 1, pos + 4, 0
        while pos < end:
            t = data[pos]
            key, pos = cstring(pos + 1)
            if is_array and key != str(i):
                errors.append("array key %r at index %d" % (key, i))
            i += 1
            if t in (0x03, 0x04):
                pos = walk(pos, t == 0x04)
            elif t in (0x02, 0x0D, 0x0E):
                pos += 4 + int.from_bytes(data[pos:pos + 4], "little")
            elif t == 0x05:
                pos += 5 + int.from_bytes(data[pos:pos + 4], "little")
            elif t == 0x0B:
                pos = cstring(cstring(pos)[1])[1]
            elif t == 0x0C:
                pos += 4 + int.from_bytes(data[pos:pos + 4], "little") + 12
            elif t == 0x0F:
                pos += int.from_bytes(data[pos:pos + 4], "little")
            else:
                pos += _FIXED[t]
        return end + 1

    pos = 0
    while pos < len(data):
        pos = walk(pos, False)
    return errors


class _CheckingBson:
    """Stands in for the bson module inside mockupdb: decode_all checks array keys first."""

    def __init__(self, real):
        self._real = real
        self.sink = None

    def __getattr__(self, name):
        return getattr(self._real, name)

    def decode_all(self, data, *args, **kwargs):
        if self.sink is not None:
            self.sink(array_key_errors(data))
        return self._real.decode_all(data, *args, **kwargs)


COUNTER_VALUES = {"reward_ledger": 41, "outbox": 7, "batch_lease": 3}


class MockPrimary:
    """A single-node replica-set primary: answers the handshake itself, records every other
    command and replies from per-test rules, falling back to permissive defaults."""

    def __init__(self):
        self.lock = threading.Lock()
        self.log = []
        self.rules = []
        self.errors = []
        checker = _CheckingBson(bson)
        checker.sink = self._bad_arrays
        mockupdb.bson = checker
        self.server = MockupDB(port=None, auto_ismaster=False, request_timeout=3600)
        self.server._address = ("127.0.0.1", 0)  # the host the URI and `hosts` name
        self.server.autoresponds(self._handle)
        self.port = self.server.run()
        self.host = "127.0.0.1:%d" % self.port
        self.uri = "mongodb://%s/?replicaSet=rs0&serverSelectionTimeoutMS=3000&connectTimeoutMS=3000" % self.host

    def hello(self):
        # no topologyVersion (mockupdb 1.8 rejects the streaming protocol's exhaust flag), no
        # compression, no SASL: see notes/mongo-contract-tests.md
        return {
            "ismaster": True, "isWritablePrimary": True, "helloOk": True, "secondary": False,
            "setName": "rs0", "setVersion": 1, "hosts": [self.host], "primary": self.host, "me": self.host,
            "electionId": ObjectId("7fffffff0000000000000001"), "minWireVersion": 0, "maxWireVersion": 17,
            "logicalSessionTimeoutMinutes": 30, "maxBsonObjectSize": 16777216,
            "maxMessageSizeBytes": 48000000, "maxWriteBatchSize": 100000,
            "localTime": datetime.datetime.now(UTC),
        }

    def _bad_arrays(self, errors):
        if errors:
            with self.lock:
                self.errors.extend(errors)

    def reset(self):
        with self.lock:
            self.log = []
            self.rules = []
            self.errors = []

    def on(self, cmd, replies, coll=None, match=None):
        """Answers cmd (on coll, when match(doc)) with replies in order, the last one repeating."""
        with self.lock:
            self.rules.append({"cmd": cmd, "coll": coll, "match": match, "replies": list(replies)})

    def commands(self, *names):
        with self.lock:
            entries = list(self.log)
        return [e for e in entries if not names or e["cmd"] in names]

    def _handle(self, req):
        name = req.command_name or ""
        if name.lower() in ("ismaster", "hello") and not isinstance(req, OpMsg):
            return req.replies(self.hello())  # the handshake and heartbeats (OP_QUERY)
        doc = copy.deepcopy(dict(req.doc))
        with self.lock:
            self.log.append({"cmd": name, "doc": doc})
            try:
                reply = self._scripted(name, doc)
            except Exception as exc:  # a broken rule must show in the test, not kill the connection
                self.errors.append(repr(exc))
                reply = {"ok": 0, "code": 8, "errmsg": "mock rule failed: %r" % exc}
        if reply is None:
            reply = self._default(name, doc)
        return req.replies(copy.deepcopy(reply))

    def _scripted(self, name, doc):
        coll = doc.get(name) if isinstance(doc.get(name), str) else None
        for r in self.rules:
            if r["cmd"] == name and (r["coll"] is None or r["coll"] == coll) and (r["match"] is None or r["match"](doc)):
                return r["replies"].pop(0) if len(r["replies"]) > 1 else r["replies"][0]
        return None

    def _default(self, name, doc):
        if name.lower() in ("ismaster", "hello"):  # a command (OP_MSG), e.g. the replica-set check
            return self.hello()
        if name == "find":
            coll = doc["find"]
            batch = []
            if coll == "counters":
                batch = [{"_id": doc["filter"]["_id"], "seq": COUNTER_VALUES.get(doc["filter"]["_id"], 1)}]
            elif coll == "events":
                batch = [event_doc()]
            return cursor(coll, batch)
        if name == "aggregate":
            return cursor(doc["aggregate"], [])
        if name == "insert":
            return {"ok": 1, "n": len(doc.get("documents", []))}
        if name == "update":
            n = len(doc.get("updates", []))
            return {"ok": 1, "n": n, "nModified": n}
        if name == "delete":
            return {"ok": 1, "n": 1}
        return {"ok": 1}


def cursor(coll, batch):
    return {"ok": 1, "cursor": {"id": 0, "ns": "%s.%s" % (DB, coll), "firstBatch": batch}}


@pytest.fixture(scope="module")
def primary():
    # module-scoped: MockupDB.stop() always costs 1 s, and the mock's threads are daemons
    return MockPrimary()


@pytest.fixture
def mock(primary):
    primary.reset()
    yield primary
    errors = list(primary.errors)
    primary.reset()
    assert not errors, "mock rules raised or malformed BSON arrays arrived: %s" % errors


@pytest.fixture(scope="module")
def driver():
    path = os.environ.get("MONGO_DRIVER") or os.path.join(ROOT, "build", "tests", "mongo_driver")
    if not os.access(path, os.X_OK):
        pytest.fail("contract driver %s not found: build it with `make build/tests/mongo_driver` "
                    "(or run make test-mongo-contract), or point MONGO_DRIVER at it" % path)
    return path


def run(driver, mock, scenario):
    """Runs one scenario to completion (bounded by DRIVER_TIMEOUT_S) and returns its JSON line."""
    try:
        p = subprocess.run([driver, mock.uri, scenario], capture_output=True, text=True, timeout=DRIVER_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail("driver %s did not finish in %d s; stderr: %s" % (scenario, DRIVER_TIMEOUT_S, exc.stderr))
    lines = p.stdout.strip().splitlines()
    assert p.returncode == 0 and lines, "driver %s exited %d; stderr:\n%s" % (scenario, p.returncode, p.stderr)
    return json.loads(lines[-1])


# ---- helpers over the recorded commands ----

def coll_of(entry):
    v = entry["doc"].get(entry["cmd"])
    return v if isinstance(v, str) else None


def in_txn(entries):
    """Commands sent inside a transaction (autocommit: false), in order."""
    return [e for e in entries if "autocommit" in e["doc"]]


def lsid_of(entry):
    return str(entry["doc"]["lsid"]["id"])  # a UUID (binary subtype 4)


def txn_numbers(entries):
    return sorted({e["doc"]["txnNumber"] for e in in_txn(entries)})


def writes(entries, cmd, coll):
    return [e for e in entries if e["cmd"] == cmd and coll_of(e) == coll]


def first_update(entry):
    return entry["doc"]["updates"][0]


def is_seed(entry):
    """The counters upserts rp_reward_store_mongo_open sends, outside any transaction."""
    return entry["cmd"] == "update" and coll_of(entry) == "counters" and "$setOnInsert" in first_update(entry)["u"]


def assert_one_transaction(entries, number=None):
    """lsid, txnNumber, startTransaction only first, autocommit false everywhere."""
    txn = in_txn(entries)
    assert txn, "no command ran in a transaction"
    numbers = {e["doc"]["txnNumber"] for e in txn}
    assert len(numbers) == 1, numbers
    if number is not None:
        assert numbers == {number}
    assert len({lsid_of(e) for e in txn}) == 1, "commands of one transaction used different sessions"
    assert all(e["doc"]["autocommit"] is False for e in txn)
    assert txn[0]["doc"].get("startTransaction") is True
    assert all("startTransaction" not in e["doc"] for e in txn[1:])
    # transaction options go on the first command only, never per operation
    assert txn[0]["doc"].get("readConcern") == {"level": "snapshot"}
    assert all("readConcern" not in e["doc"] and "writeConcern" not in e["doc"]
               for e in txn[1:] if e["cmd"] not in ("commitTransaction", "abortTransaction"))
    return txn


def transactions(entries):
    """The commands of each transaction, (lsid, txnNumber) in order of appearance."""
    groups = {}
    for e in in_txn(entries):
        groups.setdefault((lsid_of(e), e["doc"]["txnNumber"]), []).append(e)
    return list(groups.values())


def steps_of(txn):
    return [(e["cmd"], coll_of(e)) for e in txn]


def transaction_of(mock, steps):
    """The one transaction the operation ran (assert_one_transaction), after asserting its
    (command, collection) steps."""
    txn = assert_one_transaction(mock.commands())
    assert steps_of(txn) == steps, steps_of(txn)
    return txn


def payload_of(outbox_doc):
    """An outbox payload as stored: native BSON, or wrapped as {_rpJson: text} when a client
    value inside it has keys BSON cannot store (see lib/mongo_util.h)."""
    p = outbox_doc["payload"]
    return json.loads(p["_rpJson"]) if set(p) == {"_rpJson"} else p


def status_updates(entries):
    """Every update of a request's document: what a status change sends."""
    return [u for e in entries if e["cmd"] == "update" and coll_of(e) == "event_reward_requests"
            for u in e["doc"]["updates"]]


GRANT_OK = {"ok": True, "outcome": "OK", "status": "SUCCESS", "holder": None, "replay": None}

# What rp_grant_claim sends for the sample claim (SUCCESS, maxClaims 3, reward 0 limited, reward 1
# not), in one transaction.
GRANT_STEPS = [
    ("find", "event_reward_requests"),  # the active key
    ("aggregate", "event_reward_requests"),  # max claims: count_documents, limited to maxClaims
    ("find", "events"),  # which lines are limited
    ("update", "events"),  # guarded decrement of reward 0 only (reward 1 is unlimited)
    ("update", "events"),  # touch: conflicts with a concurrent event_update
    ("insert", "event_reward_requests"),
    ("update", "counters"), ("find", "counters"), ("insert", "reward_ledger"), ("insert", "reward_ledger"),
    ("update", "counters"), ("find", "counters"), ("insert", "outbox"),
    ("commitTransaction", None),
]


# ---- the claim (rp_grant_claim / rp_grant_batch_item over the MongoDB store) ----

def test_grant_happy_path_is_one_transaction(driver, mock):
    out = run(driver, mock, "grant")
    assert out == GRANT_OK
    log = mock.commands()
    txn = assert_one_transaction(log)
    # every write but the counter seeding at open is in it
    for e in log:
        if e["cmd"] in ("insert", "update", "delete") and not is_seed(e):
            assert e in txn, "%s on %s ran outside the transaction" % (e["cmd"], coll_of(e))
    commit = [e for e in txn if e["cmd"] == "commitTransaction"]
    assert len(commit) == 1 and txn[-1] is commit[0]
    assert commit[0]["doc"]["$db"] == "admin"
    assert commit[0]["doc"]["writeConcern"]["w"] == "majority"
    assert not mock.commands("abortTransaction")

    steps = steps_of(txn)
    assert steps == GRANT_STEPS, steps
    assert txn[0]["doc"]["filter"] == {"activeKey": ACTIVE_KEY}
    claims = txn[1]["doc"]["pipeline"]
    assert claims[0] == {"$match": {"userId": USER, "eventId": EVENT, "status": {"$ne": "FAILED"}}}
    assert claims[1] == {"$limit": 3}  # counts up to maxClaims 3, all the check needs, in one round trip
    guard = first_update(txn[3])
    assert guard["q"] == {"_id": EVENT, "rewards.0.stockLeft": {"$gte": 2}}
    assert guard["u"] == {"$inc": {"rewards.0.stockLeft": -2}}
    assert not guard.get("multi") and not guard.get("upsert")
    assert first_update(txn[4])["u"] == {"$inc": {"grants": 1}}

    req = txn[5]["doc"]["documents"][0]
    assert req["_id"] == REQUEST and req["activeKey"] == ACTIVE_KEY and req["status"] == "SUCCESS"
    assert req["requestedAt"] == NOW.replace(tzinfo=None)
    assert req["claimedRewards"][0]["value"] == {"amount": 100}
    assert req["claimedRewards"][1]["value"] == {"_rpJson": '{"$weird":1}'}  # not storable natively
    ledger = [e["doc"]["documents"][0] for e in txn if coll_of(e) == "reward_ledger"]
    assert [(x["seq"], x["rewardIndex"], x["quantity"], x["entryType"]) for x in ledger] == [
        (40, 0, 2, "GRANT"), (41, 1, 1, "GRANT")]  # counter answered 41 after $inc 2
    assert first_update(txn[6])["u"] == {"$inc": {"seq": 2}}
    outbox = txn[12]["doc"]["documents"][0]
    assert outbox["_id"] == 7 and outbox["messageId"] == REQUEST and outbox["routingKey"] == "reward.granted"
    assert outbox["publishedAt"] is None
    assert payload_of(outbox)["messageId"] == REQUEST  # the id inside a payload is the message's id


def test_a_claim_judged_on_its_events_version_reads_it_in_the_grant_transaction(driver, mock):
    out = run(driver, mock, "grant-versioned")
    assert out == GRANT_OK
    txn = assert_one_transaction(mock.commands())
    # the version is read first, in the grant's own transaction, then the grant as ever
    assert steps_of(txn) == [("find", "events")] + GRANT_STEPS, steps_of(txn)
    assert txn[0]["doc"]["filter"] == {"_id": EVENT}
    assert txn[0]["doc"]["projection"] == {"canceledAt": 1, "updatedAt": 1, "rewards.stockLeft": 1}


def test_a_claim_judged_on_an_older_version_of_its_event_writes_nothing(driver, mock):
    out = run(driver, mock, "grant-stale")
    assert out["ok"] and out["outcome"] == "EVENT_CHANGED", out
    transaction_of(mock, [("find", "events"), ("abortTransaction", None)])
    assert not mock.commands("commitTransaction") and not mock.commands("insert")


def test_a_claim_on_a_canceled_event_of_the_same_version_writes_nothing(driver, mock):
    canceled = dict(event_doc(), canceledAt=NOW)
    mock.on("find", [cursor("events", [canceled])], coll="events", match=is_state_read)
    out = run(driver, mock, "grant-versioned")
    assert out["ok"] and out["outcome"] == "EVENT_CHANGED", out
    assert not mock.commands("commitTransaction") and not mock.commands("insert")


def test_grant_awaiting_review_touches_event_but_not_stock(driver, mock):
    out = run(driver, mock, "grant-review")
    assert out == dict(GRANT_OK, status="AWAITING_REVIEW")
    txn = transaction_of(mock, [("find", "event_reward_requests"), ("aggregate", "event_reward_requests"),
                                ("update", "events"), ("insert", "event_reward_requests"), ("update", "counters"),
                                ("find", "counters"), ("insert", "outbox"), ("commitTransaction", None)])
    # the request waiting for review has a message of its own (webhooks), in the same transaction
    msg = txn[6]["doc"]["documents"][0]
    assert msg["messageId"] == REQUEST + ":review" and msg["routingKey"] == "reward.awaiting_review"
    assert payload_of(msg)["messageId"] == REQUEST + ":review" and msg["hooked"] is False


def test_grant_batch_item_settles_in_the_same_transaction(driver, mock):
    out = run(driver, mock, "grant-batch")
    assert out == GRANT_OK
    txn = transaction_of(mock, [("update", "batch_items")] + GRANT_STEPS)
    settle = first_update(txn[0])
    assert settle["q"] == {"batchId": BATCH, "seq": 7, "status": "QUEUED"}  # a compare-and-set on QUEUED
    assert settle["u"]["$set"]["status"] == "SUCCESS" and settle["u"]["$set"]["requestId"] == REQUEST
    req = writes(txn, "insert", "event_reward_requests")[0]["doc"]["documents"][0]
    assert req["source"] == "BATCH" and req["batchId"] == BATCH and req["processorId"] == OPERATOR


def test_grant_batch_item_already_settled_aborts(driver, mock):
    mock.on("update", [NO_MATCH], coll="batch_items")
    out = run(driver, mock, "grant-batch")
    assert out == dict(GRANT_OK, outcome="ITEM_SETTLED")
    log = mock.commands()
    txn = assert_one_transaction(log)
    assert steps_of(txn) == [("update", "batch_items"), ("abortTransaction", None)]
    assert not mock.commands("commitTransaction")
    assert not writes(log, "insert", "event_reward_requests")


def test_a_batch_chunk_is_one_transaction_with_each_items_compare_and_set(driver, mock):
    out = run(driver, mock, "grant-chunk")
    assert out == {"ok": True, "outcomes": ["OK", "REFUSED"]}, out
    # the stock read once for the chunk, then each item: its reads, its compare-and-set from
    # QUEUED, its grant; the refused item only its compare-and-set; one commit for all
    txn = transaction_of(mock, [("find", "events"), ("find", "event_reward_requests"),
                                ("aggregate", "event_reward_requests"), ("update", "batch_items")]
                         + GRANT_STEPS[2:-1] + [("update", "batch_items"), ("commitTransaction", None)])
    paid, refused = [first_update(e) for e in txn if coll_of(e) == "batch_items"]
    assert paid["q"] == {"batchId": BATCH, "seq": 7, "status": "QUEUED"}
    assert paid["u"]["$set"]["status"] == "SUCCESS" and paid["u"]["$set"]["requestId"] == REQUEST
    assert refused["q"] == {"batchId": BATCH, "seq": 8, "status": "QUEUED"}
    assert refused["u"]["$set"]["status"] == "FAILED" and refused["u"]["$set"]["failureReason"] == "UNKNOWN_PLAYER"
    assert not mock.commands("abortTransaction")


def test_a_batch_chunk_item_settled_meanwhile_writes_nothing_of_its_own(driver, mock):
    mock.on("update", [NO_MATCH], coll="batch_items")
    out = run(driver, mock, "grant-chunk")
    assert out == {"ok": True, "outcomes": ["ITEM_SETTLED", "ITEM_SETTLED"]}, out
    log = mock.commands()
    assert not writes(log, "insert", "event_reward_requests") and not writes(log, "insert", "reward_ledger")
    assert not writes(log, "insert", "outbox")


def test_claim_with_idempotency_key_stores_the_answer_in_the_grant_transaction(driver, mock):
    out = run(driver, mock, "grant-idem")
    assert out == GRANT_OK
    txn = transaction_of(mock, [("find", "idempotency_keys")] + GRANT_STEPS[:-1] + [
        ("insert", "idempotency_keys"), ("commitTransaction", None)])
    assert txn[0]["doc"]["filter"] == {"userId": USER, "key": "claim-key-1"}
    stored = txn[-2]["doc"]["documents"][0]
    assert stored["userId"] == USER and stored["key"] == "claim-key-1" and stored["requestHash"] == "c1a1"
    assert stored["status"] == 201 and stored["response"] == {"outcome": "OK", "id": REQUEST}
    assert not mock.commands("abortTransaction")


def test_claim_with_a_used_idempotency_key_replays_and_writes_nothing(driver, mock):
    first = {"_id": EXISTING, "userId": USER, "key": "claim-key-1", "requestHash": "c1a1", "status": 201,
             "response": {"outcome": "OK", "id": EXISTING}, "createdAt": NOW}
    mock.on("find", [cursor("idempotency_keys", [first])], coll="idempotency_keys")
    out = run(driver, mock, "grant-idem")
    assert out == dict(GRANT_OK, outcome="REPLAYED", replay={"outcome": "OK", "id": EXISTING})
    transaction_of(mock, [("find", "idempotency_keys"), ("abortTransaction", None)])
    assert not mock.commands("insert") and not mock.commands("commitTransaction")


def _transient_once(mock):
    # the first request insert conflicts, the rerun succeeds: never an endless retry loop
    mock.on("insert", [WRITE_CONFLICT, {"ok": 1, "n": 1}], coll="event_reward_requests")


def test_transient_error_reruns_whole_transaction(driver, mock):
    _transient_once(mock)
    out = run(driver, mock, "grant")
    assert out == GRANT_OK
    log = mock.commands()
    txn = in_txn(log)
    numbers = txn_numbers(log)
    assert len(numbers) == 2 and numbers[0] < numbers[1], numbers
    assert len({lsid_of(e) for e in txn}) == 1
    first = [e for e in txn if e["doc"]["txnNumber"] == numbers[0]]
    second = [e for e in txn if e["doc"]["txnNumber"] == numbers[1]]
    # attempt 1 ends at the failed insert and is aborted; attempt 2 starts over from the top
    assert [e["cmd"] for e in first][-2:] == ["insert", "abortTransaction"]
    assert first[-1]["doc"]["$db"] == "admin"
    assert first[0]["doc"].get("startTransaction") is True
    assert second[0]["doc"].get("startTransaction") is True
    assert steps_of(second) == GRANT_STEPS
    assert [e["cmd"] for e in first].count("commitTransaction") == 0
    assert len(writes(second, "insert", "outbox")) == 1 and not writes(first, "insert", "outbox")
    assert all(e["doc"]["autocommit"] is False for e in txn)


def test_unknown_commit_result_retries_only_the_commit(driver, mock):
    mock.on("commitTransaction", [COMMIT_WC_TIMEOUT, {"ok": 1}])
    out = run(driver, mock, "grant")
    assert out == GRANT_OK
    log = mock.commands()
    commits = mock.commands("commitTransaction")
    assert len(commits) == 2
    assert txn_numbers(log) == [commits[0]["doc"]["txnNumber"]]  # the body ran once
    assert commits[0]["doc"]["txnNumber"] == commits[1]["doc"]["txnNumber"]
    assert lsid_of(commits[0]) == lsid_of(commits[1])
    assert commits[1]["doc"]["writeConcern"]["w"] == "majority"
    assert "wtimeout" in commits[1]["doc"]["writeConcern"]  # the spec's retry write concern
    assert len(writes(log, "insert", "event_reward_requests")) == 1
    assert not mock.commands("abortTransaction")


def test_duplicate_key_on_request_insert_is_already_claimed(driver, mock):
    mock.on("insert", [DUPLICATE_ACTIVE_KEY], coll="event_reward_requests")
    # the snapshot of the grant does not see the winner; the transaction after the abort does
    mock.on("find", [cursor("event_reward_requests", []), cursor("event_reward_requests", [request_doc(EXISTING)])],
            coll="event_reward_requests", match=lambda d: d["filter"] == {"activeKey": ACTIVE_KEY})
    out = run(driver, mock, "grant")
    assert out == dict(GRANT_OK, outcome="ALREADY_CLAIMED", holder=EXISTING)  # 409 ALREADY_CLAIMED
    log = mock.commands()
    grant, refusal = transactions(log)
    assert_one_transaction(grant)  # one txnNumber: the 11000 is not rerun
    assert_one_transaction(refusal)
    assert steps_of(grant)[-2:] == [("insert", "event_reward_requests"), ("abortTransaction", None)]
    assert grant[-1]["doc"]["$db"] == "admin"
    assert len(writes(log, "insert", "event_reward_requests")) == 1
    assert not mock.commands("commitTransaction")
    assert not writes(log, "insert", "reward_ledger") and not writes(log, "insert", "outbox")
    # the holder is read after the abort, in a transaction of its own that writes nothing
    assert log.index(grant[-1]) < log.index(refusal[0])
    assert steps_of(refusal) == [("find", "event_reward_requests"), ("abortTransaction", None)]
    assert refusal[0]["doc"]["filter"] == {"activeKey": ACTIVE_KEY}


def test_active_key_found_in_snapshot_is_already_claimed(driver, mock):
    mock.on("find", [cursor("event_reward_requests", [request_doc(EXISTING)])], coll="event_reward_requests",
            match=lambda d: d["filter"] == {"activeKey": ACTIVE_KEY})
    out = run(driver, mock, "grant")
    assert out == dict(GRANT_OK, outcome="ALREADY_CLAIMED", holder=EXISTING)
    transaction_of(mock, [("find", "event_reward_requests"), ("abortTransaction", None)])
    assert not mock.commands("commitTransaction")
    assert not mock.commands("insert")


# ASSUMPTION: a write the server refuses for a reason of its own is a command error without labels.
BAD_VALUE = {"ok": 0, "code": 2, "codeName": "BadValue", "errmsg": "bad value"}


def test_store_failure_in_the_body_fails_the_claim_and_keeps_nothing(driver, mock):
    mock.on("insert", [BAD_VALUE], coll="event_reward_requests")
    out = run(driver, mock, "grant")
    assert out["ok"] is False and out["error"]["code"] == "STORE_ERROR", out
    log = mock.commands()
    txn = assert_one_transaction(log)  # no label: not rerun, and no refusal recorded after it
    assert steps_of(txn)[-2:] == [("insert", "event_reward_requests"), ("abortTransaction", None)]
    assert not mock.commands("commitTransaction")


def test_a_failed_read_is_an_error_not_an_empty_page(driver, mock):
    mock.on("find", [BAD_VALUE], coll="reward_ledger")
    out = run(driver, mock, "list-ledger")
    assert out["ok"] is False and out["error"]["code"] == "STORE_ERROR" and "items" not in out, out


def _recorded_failure(log, reason):
    """The refusal's own transaction: the FAILED request, without an active key, and nothing else."""
    txns = transactions(log)
    assert len(txns) == 2, [steps_of(t) for t in txns]
    assert_one_transaction(txns[1])
    assert steps_of(txns[1]) == [("update", "events"), ("insert", "event_reward_requests"),
                                 ("commitTransaction", None)]
    req = txns[1][1]["doc"]["documents"][0]
    assert req["status"] == "FAILED" and req["failureReason"] == reason and "activeKey" not in req
    assert not writes(log, "insert", "reward_ledger") and not writes(log, "insert", "outbox")
    return txns[0]


def test_stock_guard_miss_is_out_of_stock_and_aborts(driver, mock):
    mock.on("update", [NO_MATCH], coll="events", match=lambda d: "rewards.0.stockLeft" in d["updates"][0]["q"])
    out = run(driver, mock, "grant")
    assert out == dict(GRANT_OK, outcome="OUT_OF_STOCK", status="FAILED")
    log = mock.commands()
    grant = _recorded_failure(log, "OUT_OF_STOCK")
    assert_one_transaction(grant)
    guard = [e for e in grant if e["cmd"] == "update" and "rewards.0.stockLeft" in first_update(e)["q"]]
    assert len(guard) == 1
    assert first_update(guard[0])["q"] == {"_id": EVENT, "rewards.0.stockLeft": {"$gte": 2}}
    assert grant[-1]["cmd"] == "abortTransaction" and len(mock.commands("abortTransaction")) == 1
    assert not [e for e in grant if e["cmd"] == "insert"]  # no request, ledger or outbox in the grant


def test_max_claims_reached_aborts(driver, mock):
    mock.on("aggregate", [cursor("event_reward_requests", [{"_id": 1, "n": 3}])], coll="event_reward_requests")
    out = run(driver, mock, "grant")
    assert out == dict(GRANT_OK, outcome="MAX_CLAIMS_REACHED", status="FAILED")
    grant = _recorded_failure(mock.commands(), "MAX_CLAIMS_REACHED")
    assert_one_transaction(grant)
    # maxClaims 3 reached: the count stopped there, and nothing is written
    assert steps_of(grant) == [("find", "event_reward_requests"), ("aggregate", "event_reward_requests"),
                               ("abortTransaction", None)]
    claims = grant[1]["doc"]["pipeline"]
    assert claims[:2] == [{"$match": {"userId": USER, "eventId": EVENT, "status": {"$ne": "FAILED"}}}, {"$limit": 3}]


def test_record_failed_has_no_active_key_and_touches_the_event(driver, mock):
    out = run(driver, mock, "record-failed")  # a claim judged FAILED (conditions unmet): recorded as given
    assert out == dict(GRANT_OK, outcome="REFUSED", status="FAILED")
    txn = transaction_of(mock, [("update", "events"), ("insert", "event_reward_requests"), ("commitTransaction", None)])
    assert first_update(txn[0])["u"] == {"$inc": {"grants": 1}}  # a concurrent reward edit conflicts
    req = txn[1]["doc"]["documents"][0]
    assert "activeKey" not in req and req["status"] == "FAILED" and req["failureReason"] == "CONDITION_NOT_MET"
    assert req["failureDetails"] == {"_rpJson": '[{"$k":2}]'}


# ---- decisions (rp_grant_decide) ----

def script_request(mock, status, match=None):
    """Scripts the request a decision reads: REQUEST, in status."""
    mock.on("find", [cursor("event_reward_requests", [request_doc(status=status)])], coll="event_reward_requests",
            match=match)


def decided(driver, mock, scenario, before, after):
    """Runs the decision scenario on REQUEST found in status before; asserts the request was
    DECIDED into status after, and returns the one transaction that did it."""
    script_request(mock, before)
    out = run(driver, mock, scenario)
    assert out["ok"] and out["outcome"] == "DECIDED" and out["request"]["status"] == after
    return assert_one_transaction(mock.commands())


def test_approve_out_of_stock_fails_the_request_in_a_second_transaction(driver, mock):
    script_request(mock, "AWAITING_REVIEW")
    mock.on("update", [NO_MATCH], coll="events", match=lambda d: "rewards.0.stockLeft" in d["updates"][0]["q"])
    out = run(driver, mock, "approve")
    assert out["ok"] and out["outcome"] == "OUT_OF_STOCK" and out["request"]["status"] == "FAILED"
    log = mock.commands()
    numbers = txn_numbers(log)
    assert len(numbers) == 2
    first = [e for e in in_txn(log) if e["doc"]["txnNumber"] == numbers[0]]
    second = [e for e in in_txn(log) if e["doc"]["txnNumber"] == numbers[1]]
    assert first[-1]["cmd"] == "abortTransaction" and second[-1]["cmd"] == "commitTransaction"
    assert not status_updates(first), "the short stock is found before the request changes"
    status = status_updates(second)
    assert len(status) == 1
    assert status[0]["q"] == {"_id": REQUEST, "status": "AWAITING_REVIEW"}  # a decision made meanwhile wins
    assert status[0]["u"]["$set"]["status"] == "FAILED"
    assert status[0]["u"]["$set"]["failureReason"] == "OUT_OF_STOCK"
    assert status[0]["u"]["$unset"] == {"activeKey": ""}  # FAILED requests carry no active key
    assert not writes(log, "insert", "reward_ledger") and not writes(log, "insert", "outbox")


def test_approve_pays_in_one_transaction(driver, mock):
    txn = decided(driver, mock, "approve", "AWAITING_REVIEW", "SUCCESS")
    # the event's cancel time is read in the approval's own transaction, before the stock
    assert steps_of(txn) == [("find", "event_reward_requests"), ("find", "events"), ("find", "events"),
                             ("update", "events"), ("update", "event_reward_requests")] + GRANT_STEPS[6:], steps_of(txn)
    assert txn[1]["doc"]["filter"] == {"_id": EVENT}
    assert txn[1]["doc"]["projection"] == {"canceledAt": 1, "updatedAt": 1, "rewards.stockLeft": 1}
    status = status_updates(txn)[0]
    assert status["q"] == {"_id": REQUEST, "status": "AWAITING_REVIEW"}
    assert status["u"]["$set"]["activeKey"] == ACTIVE_KEY and "$unset" not in status["u"]
    assert status["u"]["$set"]["processorId"] == OPERATOR and status["u"]["$set"]["notes"] == "checked"
    outbox = writes(txn, "insert", "outbox")[0]["doc"]["documents"][0]
    assert outbox["messageId"] == REQUEST and payload_of(outbox)["messageId"] == REQUEST


def is_state_read(doc):
    return doc.get("projection", {}).get("canceledAt") == 1


def test_approve_of_a_canceled_event_fails_the_request_and_pays_nothing(driver, mock):
    script_request(mock, "AWAITING_REVIEW")
    canceled = dict(event_doc(), canceledAt=NOW)
    mock.on("find", [cursor("events", [canceled])], coll="events", match=is_state_read)
    out = run(driver, mock, "approve")
    assert out["ok"] and out["outcome"] == "EVENT_CANCELED" and out["request"]["status"] == "FAILED"
    txn = transaction_of(mock, [("find", "event_reward_requests"), ("find", "events"),
                                ("update", "event_reward_requests"), ("commitTransaction", None)])
    status = status_updates(txn)[0]
    assert status["q"] == {"_id": REQUEST, "status": "AWAITING_REVIEW"}
    assert status["u"]["$set"]["failureReason"] == "EVENT_CANCELED" and status["u"]["$unset"] == {"activeKey": ""}
    log = mock.commands()
    assert not writes(log, "update", "events"), "no stock taken"
    assert not writes(log, "insert", "reward_ledger") and not writes(log, "insert", "outbox")


def test_approving_ones_own_request_writes_nothing(driver, mock):
    script_request(mock, "AWAITING_REVIEW")  # the request of USER, approved by USER
    out = run(driver, mock, "approve-self")
    assert out["ok"] and out["outcome"] == "SELF"
    transaction_of(mock, [("find", "event_reward_requests"), ("abortTransaction", None)])
    assert not mock.commands("commitTransaction") and not mock.commands("insert")


def test_eligibility_check_runs_the_grant_body_and_aborts(driver, mock):
    out = run(driver, mock, "grant-check")
    assert out == {"ok": True, "outcome": "OK", "stock0": 10, "stock1": -1}
    # the grant's own steps (state read first, nothing paid), then an abort: nothing committed
    transaction_of(mock, [("find", "events")] + GRANT_STEPS[:6] + [("abortTransaction", None)])
    assert not mock.commands("commitTransaction")


def test_eligibility_check_sees_the_slot_taken(driver, mock):
    mock.on("find", [cursor("event_reward_requests", [request_doc(_id=EXISTING)])], coll="event_reward_requests")
    out = run(driver, mock, "grant-check")
    assert out["ok"] and out["outcome"] == "ALREADY_CLAIMED"
    transaction_of(mock, [("find", "events"), ("find", "event_reward_requests"), ("abortTransaction", None)])
    assert not mock.commands("commitTransaction")


def test_batch_dry_run_is_one_transaction_that_aborts(driver, mock):
    out = run(driver, mock, "batch-dry-run")
    assert out == {"ok": True, "outcomes": ["OK", "OK"]}
    txn = transaction_of(mock, GRANT_STEPS[:6] * 2 + [("abortTransaction", None)])
    inserted = [e["doc"]["documents"][0] for e in txn if e["cmd"] == "insert"]
    assert [d["userId"] for d in inserted] == [USER, "5f0000000000000000000002"]
    assert inserted[0]["_id"] != inserted[1]["_id"], "each item its own request id"
    assert not mock.commands("commitTransaction")


def test_reject_unsets_active_key(driver, mock):
    txn = decided(driver, mock, "reject", "AWAITING_REVIEW", "FAILED")
    upd = [first_update(e) for e in txn if e["cmd"] == "update"]
    assert len(upd) == 1 and upd[0]["u"]["$unset"] == {"activeKey": ""}
    assert upd[0]["q"] == {"_id": REQUEST, "status": "AWAITING_REVIEW"}
    assert upd[0]["u"]["$set"]["failureReason"] == "REJECTED" and upd[0]["u"]["$set"]["notes"] == "checked"
    assert not mock.commands("insert")


def test_revoke_returns_stock_and_writes_reversals(driver, mock):
    txn = decided(driver, mock, "revoke", "SUCCESS", "REVOKED")
    back = [first_update(e) for e in txn if e["cmd"] == "update" and coll_of(e) == "events"]
    assert len(back) == 1 and back[0]["q"] == {"_id": EVENT} and back[0]["u"] == {"$inc": {"rewards.0.stockLeft": 2}}
    ledger = [e["doc"]["documents"][0] for e in txn if coll_of(e) == "reward_ledger" and e["cmd"] == "insert"]
    assert [(x["quantity"], x["entryType"]) for x in ledger] == [(-2, "REVERSAL"), (-1, "REVERSAL")]
    outbox = [e["doc"]["documents"][0] for e in txn if coll_of(e) == "outbox" and e["cmd"] == "insert"]
    assert [(x["messageId"], x["routingKey"]) for x in outbox] == [(REQUEST + ":revoked", "reward.revoked")]
    # the payload names the message it travels in, not the grant's message
    payload = payload_of(outbox[0])
    assert payload["messageId"] == REQUEST + ":revoked" and payload["requestId"] == REQUEST
    assert payload["reason"] == "oops"
    status = status_updates(txn)
    assert len(status) == 1 and status[0]["q"] == {"_id": REQUEST, "status": "SUCCESS"}
    assert status[0]["u"]["$set"]["status"] == "REVOKED" and "$unset" not in status[0]["u"]  # REVOKED keeps the slot


@pytest.mark.parametrize("scenario,found,expected", [
    ("approve", "AWAITING_REVIEW", "AWAITING_REVIEW"), ("reject", "AWAITING_REVIEW", "AWAITING_REVIEW"),
    ("revoke", "SUCCESS", "SUCCESS"), ("grant-batch", None, "QUEUED"), ("item-fail", None, "QUEUED"),
])
def test_every_status_change_names_the_status_it_expects(driver, mock, scenario, found, expected):
    if found:
        script_request(mock, found, match=lambda d: d["filter"] == {"_id": REQUEST})
    assert run(driver, mock, scenario)["ok"]
    changes = [u for e in mock.commands("update") if coll_of(e) in ("event_reward_requests", "batch_items")
               for u in e["doc"]["updates"]]
    assert changes and all(u["q"].get("status") == expected for u in changes), changes


def test_decision_on_a_request_decided_meanwhile_writes_nothing(driver, mock):
    # read as AWAITING_REVIEW, but the compare-and-set finds it moved: rolled back, nothing paid
    script_request(mock, "AWAITING_REVIEW")
    mock.on("update", [NO_MATCH], coll="event_reward_requests")
    out = run(driver, mock, "approve")
    assert out["ok"] and out["outcome"] == "WRONG_STATE"
    txn = assert_one_transaction(mock.commands())
    assert txn[-1]["cmd"] == "abortTransaction" and not mock.commands("commitTransaction")
    assert not mock.commands("insert")


# ---- read paths ----

def test_get_request_reads_by_id_and_maps_the_document(driver, mock):
    mock.on("find", [cursor("event_reward_requests", [request_doc()])], coll="event_reward_requests")
    out = run(driver, mock, "get-request")
    finds = mock.commands("find")
    assert len(finds) == 1
    f = finds[0]["doc"]
    assert f["find"] == "event_reward_requests" and f["$db"] == DB
    assert f["filter"] == {"_id": REQUEST} and f["limit"] == 1
    assert "txnNumber" not in f and "startTransaction" not in f
    req = out["request"]
    assert out["ok"] and req["id"] == REQUEST and req["status"] == "SUCCESS"
    assert req["requestedAt"] == "2026-01-02T03:04:05.000Z"
    assert req["claimedRewards"][0]["value"] == {"amount": 100}
    assert req["claimedRewards"][1]["value"] == {"$weird": 1}  # unwrapped from _rpJson
    assert req["claimedRewards"][0]["quantity"] == 2 and req["claimedRewards"][1]["rewardDefinitionId"] == DEF1
    assert req["failureDetails"] == [{"$k": 2}]
    assert "activeKey" not in req and req["processorId"] is None  # the API shape keeps the key inside
    assert out["activeKey"] == ACTIVE_KEY  # ... but the record read it


def test_find_active_reads_by_active_key_outside_transactions(driver, mock):
    out = run(driver, mock, "find-active")
    assert out == {"ok": True, "request": None, "activeKey": None}
    finds = mock.commands("find")
    assert len(finds) == 1 and finds[0]["doc"]["filter"] == {"activeKey": ACTIVE_KEY}
    assert not in_txn(mock.commands())


def test_event_get_reads_event_then_definitions(driver, mock):
    defs = [{"_id": DEF0, "name": "Gold", "type": "CURRENCY", "value": {"amount": 100}, "isActive": True},
            {"_id": DEF1, "name": "Badge", "type": "ITEM", "value": "b", "isActive": True}]
    mock.on("find", [cursor("reward_definitions", defs)], coll="reward_definitions")
    out = run(driver, mock, "event-get")
    finds = mock.commands("find")
    assert [coll_of(e) for e in finds] == ["events", "reward_definitions"]
    assert finds[0]["doc"]["filter"] == {"_id": EVENT}
    assert sorted(finds[1]["doc"]["filter"]["_id"]["$in"]) == [DEF0, DEF1]
    ev = out["event"]
    assert out["ok"] and ev["id"] == EVENT and ev["startDate"] == "2026-01-01T03:04:05.000Z"
    assert [r["stockLeft"] for r in ev["rewards"]] == [10, None]
    assert [r["name"] for r in ev["rewards"]] == ["Gold", "Badge"]
    assert "grants" not in ev


def test_list_requests_filter_and_cursor(driver, mock):
    mock.on("find", [cursor("event_reward_requests", [{"_id": REQUEST, "requestedAt": NOW}])],
            coll="event_reward_requests", match=lambda d: d["filter"] == {"_id": REQUEST})
    out = run(driver, mock, "list-requests")
    assert out["ok"]
    finds = [e["doc"] for e in mock.commands("find")]
    assert len(finds) == 2
    page = finds[1]
    assert page["sort"] == {"requestedAt": -1, "_id": -1} and page["limit"] == 3
    clauses = page["filter"]["$and"]
    assert clauses[:3] == [{"userId": USER}, {"eventId": EVENT}, {"status": "SUCCESS"}]
    assert clauses[5] == {"$or": [{"requestedAt": {"$lt": NOW.replace(tzinfo=None)}},
                                  {"requestedAt": NOW.replace(tzinfo=None), "_id": {"$lt": REQUEST}}]}


# ---- start-up ----

def index_specs(mock):
    specs = {}
    for e in mock.commands("createIndexes"):
        for ix in e["doc"]["indexes"]:
            specs.setdefault(e["doc"]["createIndexes"], {})[ix["name"]] = ix
    return specs


def test_reward_store_open_checks_replica_set_and_creates_indexes(driver, mock):
    out = run(driver, mock, "open-reward")
    assert out == {"ok": True}
    hello = mock.commands("hello")
    assert len(hello) == 1 and hello[0]["doc"]["$db"] == "admin"
    assert mock.log.index(hello[0]) < mock.log.index(mock.commands("createIndexes")[0])
    specs = index_specs(mock)
    active = specs["event_reward_requests"]["event_reward_requests_active"]
    assert active["key"] == {"activeKey": 1} and active["unique"] is True
    assert active["partialFilterExpression"] == {"activeKey": {"$exists": True}}
    idem = specs["idempotency_keys"]["idempotency_keys_user_key"]
    assert idem["key"] == {"userId": 1, "key": 1} and idem["unique"] is True
    msg = specs["outbox"]["outbox_message_id"]
    assert msg["key"] == {"messageId": 1} and msg["unique"] is True
    batches = specs["batches"]["batches_idem"]
    assert batches["key"] == {"createdBy": 1, "idemKey": 1} and batches["unique"] is True
    assert batches["partialFilterExpression"] == {"idemKey": {"$exists": True}}
    items = specs["batch_items"]["batch_items_seq"]
    assert items["key"] == {"batchId": 1, "seq": 1} and items["unique"] is True
    due = specs["batch_items"]["batch_items_due"]
    assert list(due["key"])[:2] == ["status", "dueAt"]
    seq = specs["reward_ledger"]["reward_ledger_seq"]
    assert seq["key"] == {"seq": 1} and seq["unique"] is True
    assert {"event_reward_requests_user_time", "event_reward_requests_event_time", "event_reward_requests_status_time",
            "event_reward_requests_time", "event_reward_requests_user_event"} <= set(specs["event_reward_requests"])
    assert {"reward_ledger_user", "reward_ledger_event"} <= set(specs["reward_ledger"])
    # no index is created inside a transaction, and the counters exist before the first grant
    assert all("txnNumber" not in e["doc"] for e in mock.commands("createIndexes"))
    seeds = [first_update(e) for e in mock.commands("update") if coll_of(e) == "counters"]
    assert sorted(s["q"]["_id"] for s in seeds) == ["batch_lease", "outbox", "reward_ledger"]
    assert all(s["upsert"] is True and s["u"] == {"$setOnInsert": {"seq": 0}} for s in seeds)


def test_reward_store_open_refuses_a_standalone(driver, mock):
    # hello answered without setName on the command path (the handshake still says rs0)
    mock.on("hello", [{"ok": 1, "ismaster": True, "isWritablePrimary": True, "maxWireVersion": 17}])
    out = run(driver, mock, "open-reward")
    assert out["ok"] is False and out["error"]["code"] == "STORE_UNAVAILABLE"
    assert "not a replica set" in out["error"]["message"]
    assert not mock.commands("createIndexes")


# ---- every other operation: runs against the mock and keeps its writes where they belong ----

@pytest.mark.parametrize("scenario", [
    "record-failed", "find-active", "list-ledger", "list-outbox", "outbox-lease", "outbox-published", "idem-get",
    "idem-put", "batch-create", "batch-get", "batch-by-key", "batch-items", "batch-lease", "batch-items-get",
    "batch-any-due", "item-fail", "open-event", "open-auth", "auth-find-login", "auth-list-audit",
])
def test_operation_smoke(driver, mock, scenario):
    out = run(driver, mock, scenario)
    assert out["ok"], out


def test_batch_list_reads_newest_first_after_the_cursor(driver, mock):
    # the cursor batch exists; the page is filtered by event, sorted (createdAt, _id) descending
    mock.on("find", [cursor("batches", [{"_id": BATCH, "createdAt": NOW}])], coll="batches",
            match=lambda d: d["filter"] == {"_id": BATCH})
    out = run(driver, mock, "batch-list")
    assert out["ok"], out
    finds = [e["doc"] for e in mock.commands("find") if e["doc"]["filter"] != {"_id": BATCH}]
    assert len(finds) == 1
    f = finds[0]
    assert f["find"] == "batches" and f["limit"] == 3
    assert list(f["sort"].items()) == [("createdAt", -1), ("_id", -1)]
    assert f["filter"]["$and"][0] == {"eventId": EVENT}
    at = NOW.replace(tzinfo=None)  # BSON dates decode naive
    assert f["filter"]["$and"][1] == {"$or": [{"createdAt": {"$lt": at}}, {"createdAt": at, "_id": {"$lt": BATCH}}]}


def test_audit_list_filters_are_well_formed_arrays(driver, mock):
    # the cursor names an existing entry; every clause lands in one $and (array keys checked by the mock)
    mock.on("find", [cursor("audit_logs", [{"_id": EVENT, "at": NOW}])], coll="audit_logs",
            match=lambda d: d["filter"] == {"_id": EVENT})
    assert run(driver, mock, "auth-list-audit")["ok"]
    page = [e["doc"] for e in mock.commands("find") if e["doc"]["filter"] != {"_id": EVENT}]
    assert len(page) == 1
    assert page[0]["filter"]["$and"][:3] == [{"log": "auth"}, {"targetId": USER}, {"actorId": OPERATOR}]
    assert "$or" in page[0]["filter"]["$and"][3]


def test_batch_get_reads_the_batch_and_counts_its_items(driver, mock):
    mock.on("find", [cursor("batches", [{"_id": BATCH, "eventId": EVENT, "reason": "launch", "createdBy": OPERATOR,
                                         "idemKey": "idem-1", "requestHash": "hash-1", "total": 3, "duplicates": 1,
                                         "createdAt": NOW, "state": "OPEN"}])], coll="batches")
    mock.on("aggregate", [cursor("batch_items", [
        {"_id": {"status": "QUEUED", "reason": None}, "n": 1, "last": None},
        {"_id": {"status": "FAILED", "reason": "OUT_OF_STOCK"}, "n": 2, "last": NOW}])], coll="batch_items")
    out = run(driver, mock, "batch-get")
    b = out["batch"]
    assert out["ok"] and b["id"] == BATCH and b["open"] is True and b["idemKey"] == "idem-1"
    assert b["counts"] == {"QUEUED": 1, "SUCCESS": 0, "FAILED": 2} and b["failures"] == {"OUT_OF_STOCK": 2}
    assert b["lastSettledAt"] == "2026-01-02T03:04:05.000Z" and b["status"] == "RUNNING"
    agg = mock.commands("aggregate")[0]["doc"]
    assert agg["pipeline"][0] == {"$match": {"batchId": BATCH}}
    assert agg["pipeline"][1]["$group"]["_id"] == {"status": "$status", "reason": "$failureReason"}
    assert not in_txn(mock.commands())


PARKED = datetime.datetime(9999, 12, 31, 23, 59, 59)


def majority(entry):
    return entry["doc"].get("writeConcern", {}).get("w") == "majority"


def test_batch_create_is_stepwise_durable_and_parks_items_until_open(driver, mock):
    out = run(driver, mock, "batch-create")
    assert out == {"ok": True, "outcome": "CREATED", "id": BATCH}
    steps = [e for e in mock.commands() if e["cmd"] in ("find", "insert", "update") and not is_seed(e)]
    assert [(e["cmd"], coll_of(e)) for e in steps] == [
        ("find", "batches"), ("insert", "batches"), ("insert", "batch_items"), ("update", "batch_items"),
        ("update", "batches")], steps
    assert not in_txn(mock.commands()), "100,000 items are not one transaction"
    assert steps[0]["doc"]["filter"] == {"createdBy": OPERATOR, "idemKey": "idem-1"}
    batch = steps[1]["doc"]["documents"][0]
    assert batch["_id"] == BATCH and batch["state"] == "CREATING" and batch["idemKey"] == "idem-1"
    items = steps[2]["doc"]["documents"]
    assert [(i["_id"], i["seq"], i["status"], i["dueAt"]) for i in items] == [
        (BATCH + ":1", 1, "QUEUED", PARKED), (BATCH + ":2", 2, "QUEUED", PARKED), (BATCH + ":3", 3, "QUEUED", PARKED)]
    assert [i["userId"] for i in items] == [USER, "5f0000000000000000000002", "5f0000000000000000000003"]
    assert steps[2]["doc"]["ordered"] is False
    unpark = first_update(steps[3])
    assert unpark["q"] == {"batchId": BATCH, "status": "QUEUED", "dueAt": PARKED} and unpark.get("multi") is True
    assert unpark["u"]["$set"]["dueAt"] == NOW.replace(tzinfo=None)
    assert first_update(steps[4])["q"] == {"_id": BATCH}
    assert first_update(steps[4])["u"] == {"$set": {"state": "OPEN"}}
    assert all(majority(e) for e in steps[1:]), "each step is durable before the 202"


def test_batch_create_finishes_a_creation_cut_short_by_a_crash(driver, mock):
    # the same key and body found CREATING: the items are inserted again (duplicates are fine),
    # then the batch opens; nothing new is created
    mock.on("find", [cursor("batches", [{"_id": EXISTING, "requestHash": "hash-1", "state": "CREATING",
                                         "createdAt": NOW}])], coll="batches")
    dup = {"ok": 1, "n": 2, "writeErrors": [{"index": 0, "code": 11000, "codeName": "DuplicateKey",
                                             "errmsg": "E11000 duplicate key error collection: %s.batch_items "
                                                       "index: _id_ dup key: { _id: \"%s:1\" }" % (DB, EXISTING)}]}
    mock.on("insert", [dup], coll="batch_items")
    out = run(driver, mock, "batch-create")
    assert out == {"ok": True, "outcome": "EXISTED", "id": EXISTING}, out
    assert not writes(mock.commands(), "insert", "batches")
    inserts = writes(mock.commands(), "insert", "batch_items")
    assert len(inserts) == 1 and inserts[0]["doc"]["documents"][0]["_id"] == EXISTING + ":1"  # the first batch's
    assert first_update(writes(mock.commands(), "update", "batches")[0])["q"] == {"_id": EXISTING}
    assert first_update(writes(mock.commands(), "update", "batches")[0])["u"] == {"$set": {"state": "OPEN"}}


def test_batch_create_stops_on_a_real_insert_error(driver, mock):
    mock.on("insert", [{"ok": 0, "code": 2, "codeName": "BadValue", "errmsg": "bad"}], coll="batch_items")
    out = run(driver, mock, "batch-create")
    assert out["ok"] is False and out["error"]["code"] == "STORE_ERROR"
    assert not writes(mock.commands(), "update", "batches"), "a batch with missing items never opens"


def test_batch_create_with_a_key_used_for_another_body_stores_nothing(driver, mock):
    mock.on("find", [cursor("batches", [{"_id": EXISTING, "requestHash": "hash-0", "state": "OPEN"}])], coll="batches")
    out = run(driver, mock, "batch-create")
    assert out == {"ok": True, "outcome": "KEY_REUSED", "id": EXISTING}
    assert not mock.commands("insert") and all(is_seed(e) for e in mock.commands("update"))


def test_batch_create_with_a_used_key_returns_the_first_batch(driver, mock):
    mock.on("find", [cursor("batches", [{"_id": EXISTING, "requestHash": "hash-1", "state": "OPEN"}])], coll="batches")
    out = run(driver, mock, "batch-create")
    assert out == {"ok": True, "outcome": "EXISTED", "id": EXISTING}
    assert not mock.commands("insert") and all(is_seed(e) for e in mock.commands("update"))


def test_batch_create_losing_the_key_race_answers_with_the_winner(driver, mock):
    # not found, then the insert of the batch meets the key a concurrent post stored first
    mock.on("find", [cursor("batches", []), cursor("batches", [{"_id": EXISTING, "requestHash": "hash-1",
                                                                "state": "OPEN"}])], coll="batches")
    dup = {"ok": 1, "n": 0, "writeErrors": [{"index": 0, "code": 11000, "codeName": "DuplicateKey",
                                             "errmsg": "E11000 duplicate key error collection: %s.batches index: "
                                                       "batches_idem" % DB}]}
    mock.on("insert", [dup], coll="batches")
    out = run(driver, mock, "batch-create")
    assert out == {"ok": True, "outcome": "EXISTED", "id": EXISTING}
    assert not writes(mock.commands(), "insert", "batch_items") and not writes(mock.commands(), "update", "batches")


def test_batch_lease_counts_and_leases_in_one_transaction(driver, mock):
    mock.on("aggregate", [cursor("batch_items", [{"_id": 1, "n": 95}])], coll="batch_items")
    mock.on("find", [cursor("batch_items", [{"_id": BATCH + ":1", "batchId": BATCH, "seq": 1},
                                            {"_id": BATCH + ":2", "batchId": BATCH, "seq": 2}])], coll="batch_items")
    out = run(driver, mock, "batch-lease")
    assert out["ok"] and out["items"] == [{"batchId": BATCH, "seq": 1}, {"batchId": BATCH, "seq": 2}]
    log = mock.commands()
    txn = assert_one_transaction(log)
    steps = steps_of(txn)
    assert steps == [("update", "counters"), ("aggregate", "batch_items"), ("find", "batch_items"),
                     ("update", "batch_items"), ("commitTransaction", None)], steps
    # whether anything is due is asked first, without a transaction
    due = [e for e in log if e["cmd"] == "find" and e not in txn]
    assert len(due) == 1 and log.index(due[0]) < log.index(txn[0])
    assert due[0]["doc"]["filter"] == {"status": "QUEUED", "dueAt": {"$lte": NOW.replace(tzinfo=None)}}
    assert first_update(txn[0])["q"] == {"_id": "batch_lease"} and first_update(txn[0])["u"] == {"$inc": {"seq": 1}}
    # in flight: sent and not yet due again; parked items (a creation not finished) were never sent
    assert txn[1]["doc"]["pipeline"][0] == {"$match": {"status": "QUEUED", "dueAt": {
        "$gt": NOW.replace(tzinfo=None), "$lt": PARKED}}}
    assert txn[2]["doc"]["limit"] == 5  # max_in_flight 100 - 95 in flight
    assert txn[2]["doc"]["sort"] == {"dueAt": 1, "batchId": 1, "seq": 1}
    lease = first_update(txn[3])
    assert lease["q"] == {"_id": {"$in": [BATCH + ":1", BATCH + ":2"]}, "status": "QUEUED"} and lease["multi"]
    assert lease["u"] == {"$set": {"dueAt": NOW.replace(tzinfo=None) + datetime.timedelta(minutes=1)},
                          "$inc": {"attempts": 1}}


def test_batch_lease_holds_back_when_enough_is_in_flight(driver, mock):
    mock.on("aggregate", [cursor("batch_items", [{"_id": 1, "n": 100}])], coll="batch_items")
    mock.on("find", [cursor("batch_items", [{"_id": BATCH + ":1", "batchId": BATCH, "seq": 1}])], coll="batch_items")
    out = run(driver, mock, "batch-lease")
    assert out == {"ok": True, "items": []}
    transaction_of(mock, [("update", "counters"), ("aggregate", "batch_items"), ("commitTransaction", None)])
