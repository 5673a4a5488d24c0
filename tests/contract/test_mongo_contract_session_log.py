"""Wire-level contract tests of the log of session changes on the MongoDB auth store.

The same scripted replica-set primary as test_mongo_contract.py answers tests/contract/mongo_driver.c:
auth-log-session-change runs one unit of work that calls rp_auth_tx_log_session_change(USER, NOW, NOW - 10
min); auth-session-changes calls session_changes(after 5, limit 2), auth-session-changes-latest
session_changes(after -1). The tests pin what auth_store_sqlite.c does and auth_store.h promises:
the counter document {_id: "sessionLog", latest, forgottenThrough} in auth_guards is incremented
first in the appending transaction (so that two appends write-conflict and numbers follow commit
order), the entry and the prune share that transaction, and the reader's three reads come in the
order newest number, entries up to it, forgotten mark.

Scripted replies are beliefs about a MongoDB server (wire version 17); those not shared with
test_mongo_contract.py are marked ASSUMPTION.
"""

import datetime

import pytest

from test_mongo_contract import (  # noqa: F401 (driver, mock and primary are fixtures)
    MOCKUPDB_ERROR,
    NOW,
    USER,
    WRITE_CONFLICT,
    assert_one_transaction,
    cursor,
    driver,
    first_update,
    in_txn,
    lsid_of,
    mock,
    primary,
    run,
    steps_of,
    txn_numbers,
    writes,
)

try:
    from bson.int64 import Int64
except ImportError:  # then every test skips (MOCKUPDB_ERROR)
    Int64 = int

pytestmark = pytest.mark.skipif(MOCKUPDB_ERROR is not None, reason="mockupdb not importable (see test_mongo_contract)")

AT = NOW.replace(tzinfo=None)  # BSON dates decode naive
KEEP = datetime.timedelta(minutes=10)  # driver_auth.c's SESSION_LOG_KEEP_MS
USER2 = "5f0000000000000000000002"
USER3 = "5f0000000000000000000003"

APPEND_STEPS = [("update", "auth_guards"), ("find", "auth_guards"), ("insert", "session_changes"),
                ("find", "session_changes")]
PRUNE_STEPS = [("update", "auth_guards"), ("delete", "session_changes")]


def in_a_transaction(doc):
    return "autocommit" in doc


def counter(latest, forgotten):
    """ASSUMPTION: the counter document reads back as stored, its numbers int64."""
    return cursor("auth_guards", [{"_id": "sessionLog", "latest": Int64(latest), "forgottenThrough": Int64(forgotten)}])


def entries(*seqs_and_users):
    """ASSUMPTION: the server answers a find on session_changes with what its filter, sort and limit
    select (the mock answers what the test scripts: the tests script exactly that)."""
    return cursor("session_changes", [{"_id": Int64(seq), "userId": user} for seq, user in seqs_and_users])


def committed_append(mock, steps):
    txn = assert_one_transaction(mock.commands())
    assert steps_of(txn) == steps + [("commitTransaction", None)], steps_of(txn)
    commits = mock.commands("commitTransaction")
    assert commits == [txn[-1]] and commits[0]["doc"]["writeConcern"]["w"] == "majority"
    assert not mock.commands("abortTransaction")
    return txn


def assert_numbered(txn, seq):
    inc = first_update(txn[0])
    # the write two appends conflict on, before anything else
    assert inc["q"] == {"_id": "sessionLog"} and inc["u"] == {"$inc": {"latest": 1}} and inc["upsert"] is True
    assert isinstance(inc["u"]["$inc"]["latest"], Int64) and not inc.get("multi")
    assert txn[1]["doc"]["filter"] == {"_id": "sessionLog"}  # the number just taken, read in the transaction
    doc = txn[2]["doc"]["documents"][0]
    assert doc == {"_id": seq, "userId": USER, "at": AT} and isinstance(doc["_id"], Int64)
    old = txn[3]["doc"]
    # the newest entry written before the window
    assert old["filter"] == {"at": {"$lt": AT - KEEP}} and old["sort"] == {"_id": -1} and old["limit"] == 1


# ---- tx_log_session_change ----

@pytest.mark.parametrize("forgotten, old", [(2, []), (2, [(2, USER2)]), (3, [(2, USER2)])],
                         ids=["nothing-old", "old-at-the-mark", "old-below-the-mark"])
def test_an_append_numbers_and_inserts_in_one_transaction(driver, mock, forgotten, old):
    mock.on("find", [counter(8, forgotten)], coll="auth_guards")
    mock.on("find", [entries(*old)], coll="session_changes")
    assert run(driver, mock, "auth-log-session-change") == {"ok": True}
    txn = committed_append(mock, APPEND_STEPS)
    assert_numbered(txn, 8)
    # nothing older than the window above the mark: the mark stays (never lowered) and nothing
    # is deleted
    assert len(writes(in_txn(mock.commands()), "update", "auth_guards")) == 1
    assert not mock.commands("delete")


def test_an_append_forgets_the_entries_older_than_the_window_in_the_same_transaction(driver, mock):
    mock.on("find", [counter(8, 2)], coll="auth_guards")
    mock.on("find", [entries((5, USER2))], coll="session_changes")
    assert run(driver, mock, "auth-log-session-change") == {"ok": True}
    txn = committed_append(mock, APPEND_STEPS + PRUNE_STEPS)
    assert_numbered(txn, 8)
    mark = first_update(txn[4])
    assert mark["q"] == {"_id": "sessionLog"} and mark["u"] == {"$max": {"forgottenThrough": 5}}
    assert not mark.get("upsert") and not mark.get("multi")
    gone = txn[5]["doc"]["deletes"][0]
    assert gone["q"] == {"_id": {"$lte": 5}} and gone["limit"] == 0  # every entry up to the mark


def test_a_write_conflict_on_the_counter_reruns_the_append(driver, mock):
    # another append incremented the counter first: this one is rerun after it commits and
    # takes the next number, so numbers follow commit order.
    # ASSUMPTION: the rerun's $inc on the existing document answers n: 1, nModified: 1.
    mock.on("update", [WRITE_CONFLICT, {"ok": 1, "n": 1, "nModified": 1}], coll="auth_guards",
            match=in_a_transaction)
    mock.on("find", [counter(9, 2)], coll="auth_guards")
    assert run(driver, mock, "auth-log-session-change") == {"ok": True}
    log = mock.commands()
    numbers = txn_numbers(log)
    assert len(numbers) == 2 and len({lsid_of(e) for e in in_txn(log)}) == 1
    first = [e for e in in_txn(log) if e["doc"]["txnNumber"] == numbers[0]]
    second = [e for e in in_txn(log) if e["doc"]["txnNumber"] == numbers[1]]
    assert steps_of(first) == [("update", "auth_guards"), ("abortTransaction", None)]
    assert steps_of(second) == APPEND_STEPS + [("commitTransaction", None)]
    assert first_update(first[0]) == first_update(second[0])
    assert_numbered(second, 9)
    (ins,) = writes(log, "insert", "session_changes")
    assert ins is second[2]
    assert mock.commands("commitTransaction") == [second[-1]]


def test_an_append_without_a_counter_fails_and_keeps_nothing(driver, mock):
    # the counter was seeded at start-up and the upsert just wrote it, so not reading it back is
    # a store failure, not the number 0
    mock.on("find", [cursor("auth_guards", [])], coll="auth_guards")
    out = run(driver, mock, "auth-log-session-change")
    assert out["ok"] is False and (out["error"]["status"], out["error"]["code"]) == (500, "STORE_ERROR")
    assert not writes(mock.commands(), "insert", "session_changes")
    assert len(mock.commands("abortTransaction")) == 1 and not mock.commands("commitTransaction")


# ---- session_changes ----

def reads_of(mock):
    finds = mock.commands("find")
    assert not in_txn(mock.commands()), "the reader runs no transaction"
    return finds


def assert_three_reads(finds):
    assert steps_of(finds) == [("find", "auth_guards"), ("find", "session_changes"), ("find", "auth_guards")]
    assert finds[0]["doc"]["filter"] == {"_id": "sessionLog"} and finds[2]["doc"]["filter"] == {"_id": "sessionLog"}
    f = finds[1]["doc"]
    assert f["sort"] == {"_id": 1} and f["limit"] == 3  # limit + 1, to know whether more follow
    return f["filter"]


def test_the_reader_reads_the_newest_number_then_the_entries_up_to_it_then_the_mark(driver, mock):
    # the counter's two reads answer differently, so that each value shows which read it came
    # from: the newest number from the first (9, not 12), the mark from the last (5, not 7)
    mock.on("find", [counter(9, 7), counter(12, 5)], coll="auth_guards")
    mock.on("find", [entries((6, USER), (7, USER2))], coll="session_changes")
    out = run(driver, mock, "auth-session-changes")
    assert out == {"ok": True, "items": [USER, USER2], "more": False, "last": 9, "complete": True}
    assert assert_three_reads(reads_of(mock)) == {"_id": {"$gt": 5, "$lte": 9}}


def test_a_full_page_ends_at_the_last_entry_returned(driver, mock):
    mock.on("find", [counter(9, 0)], coll="auth_guards")
    mock.on("find", [entries((6, USER), (7, USER2), (8, USER3))], coll="session_changes")
    out = run(driver, mock, "auth-session-changes")
    assert out == {"ok": True, "items": [USER, USER2], "more": True, "last": 7, "complete": True}
    assert_three_reads(reads_of(mock))


def test_entries_forgotten_after_the_readers_number_make_the_page_incomplete(driver, mock):
    # entry 6 was forgotten before the entries were read (or meanwhile): the reader missed it
    mock.on("find", [counter(9, 0), counter(9, 6)], coll="auth_guards")
    mock.on("find", [entries((7, USER2))], coll="session_changes")
    out = run(driver, mock, "auth-session-changes")
    assert out == {"ok": True, "items": [USER2], "more": False, "last": 9, "complete": False}
    assert_three_reads(reads_of(mock))


def test_the_newest_number_alone_reads_only_the_counter(driver, mock):
    mock.on("find", [counter(9, 6)], coll="auth_guards")
    out = run(driver, mock, "auth-session-changes-latest")
    assert out == {"ok": True, "items": [], "more": False, "last": 9, "complete": True}
    finds = reads_of(mock)
    assert steps_of(finds) == [("find", "auth_guards")] and finds[0]["doc"]["filter"] == {"_id": "sessionLog"}


@pytest.mark.parametrize("scenario", ["auth-session-changes", "auth-session-changes-latest"])
def test_a_log_never_written_reads_as_number_0(driver, mock, scenario):
    # ASSUMPTION: a find of a document that does not exist answers an empty first batch
    mock.on("find", [cursor("auth_guards", [])], coll="auth_guards")
    out = run(driver, mock, scenario)
    assert out == {"ok": True, "items": [], "more": False, "last": 0, "complete": True}
    if scenario == "auth-session-changes":
        assert assert_three_reads(reads_of(mock)) == {"_id": {"$gt": 5, "$lte": 0}}


def test_a_failed_read_of_the_entries_fails_and_reads_no_further(driver, mock):
    # ASSUMPTION: a find the server refuses is a command error without labels (not retried)
    mock.on("find", [counter(9, 0)], coll="auth_guards")
    mock.on("find", [{"ok": 0, "code": 2, "codeName": "BadValue", "errmsg": "bad value"}], coll="session_changes")
    out = run(driver, mock, "auth-session-changes")
    assert out["ok"] is False and out["error"]["status"] == 500
    assert steps_of(reads_of(mock)) == [("find", "auth_guards"), ("find", "session_changes")]
