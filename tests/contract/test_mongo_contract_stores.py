"""Wire-level contract tests of the MongoDB auth store and event repository, without a server.

The same scripted replica-set primary as test_mongo_contract.py (its fixtures and helpers are
imported from there) answers tests/contract/mongo_driver.c, which opens rp_auth_store_mongo_open /
rp_event_repo_mongo_open on the mock's URI and runs one operation with fixed ids (the login
scenarios run the whole auth worker on the MongoDB store instead, for the lockout's reservation
body in auth_service.c). The tests pin
what auth_store_sqlite.c / event_repo_sqlite.c do and auth_store.h / event_repo.h promise: the
filters, which writes share one transaction, what the store answers for each server reply, and
that transient errors rerun a body whose counters then come from the last attempt only.

Scripted replies are beliefs about a MongoDB server (wire version 17 unless said otherwise); each
one not shared with test_mongo_contract.py is marked ASSUMPTION.

Run (from the repository root, Debian's interpreter):
    MONGO_DRIVER=build/tests/mongo_driver /usr/bin/python3 -m pytest -q tests/contract
"""

import datetime

import pytest

from test_mongo_contract import (  # noqa: F401 (driver, mock and primary are fixtures)
    COMMIT_WC_TIMEOUT,
    DB,
    DEF0,
    DEF1,
    EVENT,
    MOCKUPDB_ERROR,
    NO_MATCH,
    NOW,
    OPERATOR,
    USER,
    WRITE_CONFLICT,
    assert_one_transaction,
    coll_of,
    cursor,
    driver,
    first_update,
    in_txn,
    lsid_of,
    mock,
    primary,
    run,
    steps_of,
    transaction_of,
    transactions,
    txn_numbers,
    writes,
)

pytestmark = pytest.mark.skipif(MOCKUPDB_ERROR is not None, reason="mockupdb not importable (see test_mongo_contract)")

AT = NOW.replace(tzinfo=None)  # BSON dates decode naive
DAY_MS = 86400000
NOW_MS = 1767323045000
NOW_DAY = NOW_MS // DAY_MS
NOW_MINUTE = (NOW_MS - NOW_DAY * DAY_MS) // 60000  # 03:04 UTC
USER2 = "5f0000000000000000000002"
FAMILY = "5f00000000000000000000fa"
TOKEN0, TOKEN1 = "5f00000000000000000000c0", "5f00000000000000000000c1"
TOKEN1_HASH = "1" * 62 + "aa"


def dup_key(coll, index, field, value, with_field=True):
    """ASSUMPTION: a duplicate key is a write error inside ok: 1. MongoDB 4.2+ names the field in
    errmsg and adds keyPattern/keyValue; 4.0 (the first with transactions) writes `{ : "v" }`."""
    shown = field if with_field else ""
    err = {"index": 0, "code": 11000, "codeName": "DuplicateKey",
           "errmsg": 'E11000 duplicate key error collection: %s.%s index: %s dup key: { %s: "%s" }'
                     % (DB, coll, index, shown, value)}
    if with_field:
        err.update({"keyPattern": {field: 1}, "keyValue": {field: value}})
    return {"ok": 1, "n": 0, "writeErrors": [err]}


# ASSUMPTION: an upsert that inserted answers n: 1, nModified: 0 and the upserted entry; one that
# matched an existing document (a $setOnInsert-only update changes nothing) n: 1, nModified: 0.
UPSERTED = {"ok": 1, "n": 1, "nModified": 0, "upserted": [{"index": 0, "_id": "x"}]}
MATCHED_UNCHANGED = {"ok": 1, "n": 1, "nModified": 0}
# ASSUMPTION: a snapshot read inside a transaction can fail with a transient label.
SNAPSHOT_UNAVAILABLE = {"ok": 0, "code": 246, "codeName": "SnapshotUnavailable",
                        "errmsg": "Unable to read from a snapshot", "errorLabels": ["TransientTransactionError"]}


def is_facts_backfill(entry):
    """The start-up copy of old facts' keys (event repository open), outside any transaction."""
    return entry["cmd"] == "update" and coll_of(entry) == "progress_facts" and "autocommit" not in entry["doc"]


def only_writes(entries):
    return [e for e in entries if e["cmd"] in ("insert", "update", "delete") and not is_facts_backfill(e)]


def assert_committed(mock, txn):
    commits = mock.commands("commitTransaction")
    assert len(commits) == 1 and txn[-1] is commits[0]
    assert commits[0]["doc"]["$db"] == "admin" and commits[0]["doc"]["writeConcern"]["w"] == "majority"
    assert not mock.commands("abortTransaction")


def committed_transaction(mock, steps):
    """transaction_of, and that the transaction committed (to admin, w: majority) with nothing
    aborted."""
    txn = transaction_of(mock, steps)
    assert_committed(mock, txn)
    return txn


def audit_doc(entry, log, target_type, target_id):
    doc = entry["doc"]["documents"][0]
    assert doc["log"] == log and doc["targetType"] == target_type and doc["targetId"] == target_id
    assert doc["actorId"] == OPERATOR and doc["at"] == AT and len(doc["_id"]) == 24
    return doc


# ---- start-up: indexes the queries need, created outside transactions ----

def index_specs(mock):
    specs = {}
    for e in mock.commands("createIndexes"):
        assert "txnNumber" not in e["doc"] and "autocommit" not in e["doc"]
        for ix in e["doc"]["indexes"]:
            specs.setdefault(e["doc"]["createIndexes"], {})[ix["name"]] = ix
    return specs


def test_auth_store_open_creates_its_indexes(driver, mock):
    assert run(driver, mock, "open-auth") == {"ok": True}
    specs = index_specs(mock)
    users = specs["users"]
    assert users["users_username_lower"]["key"] == {"usernameLower": 1} and users["users_username_lower"]["unique"]
    assert users["users_email_lower"]["key"] == {"emailLower": 1} and users["users_email_lower"]["unique"]
    tokens = specs["refresh_tokens"]
    assert tokens["refresh_tokens_hash"]["key"] == {"tokenHash": 1} and tokens["refresh_tokens_hash"]["unique"]
    assert tokens["refresh_tokens_family"]["key"] == {"familyId": 1}
    assert list(specs["login_failures"]["login_failures_user"]["key"]) == ["userId", "at"]
    assert list(specs["revoked_access"]["revoked_access_user"]["key"]) == ["userId", "expiresAt"]
    assert specs["refresh_tokens"]["refresh_tokens_user"]["key"] == {"userId": 1}
    # the admins guard and the session log's counter exist before any transaction writes them
    # (older servers cannot create a collection inside one), and seeding them again keeps their
    # values
    seeds = [e for e in mock.commands("update") if coll_of(e) == "auth_guards"]
    assert len(seeds) == 2 and all("autocommit" not in e["doc"] for e in seeds)
    seed = first_update(seeds[0])
    assert seed["q"] == {"_id": "admins"} and seed["u"] == {"$setOnInsert": {"n": 0}} and seed["upsert"] is True
    seed = first_update(seeds[1])
    assert seed["q"] == {"_id": "sessionLog"} and seed["upsert"] is True
    assert seed["u"] == {"$setOnInsert": {"latest": 0, "forgottenThrough": 0}}
    assert specs["session_changes"]["session_changes_at"]["key"] == {"at": 1}
    audit = specs["audit_logs"]
    assert list(audit["audit_logs_target"]["key"])[:2] == ["log", "targetId"]
    assert list(audit["audit_logs_actor"]["key"])[:2] == ["log", "actorId"]


def test_event_repo_open_creates_indexes_and_the_facts_collection(driver, mock):
    # before 4.4 a transaction cannot create a collection, and no index creates progress_facts:
    # every ingest would fail. ASSUMPTION: create on an existing collection answers NamespaceExists
    # (code 48) up to 6.0; it must not stop the start-up.
    mock.on("create", [{"ok": 0, "code": 48, "codeName": "NamespaceExists",
                        "errmsg": "Collection %s.progress_facts already exists." % DB}])
    assert run(driver, mock, "open-event") == {"ok": True}
    creates = mock.commands("create")
    assert [e["doc"]["create"] for e in creates] == ["progress_facts"]
    assert "txnNumber" not in creates[0]["doc"] and "autocommit" not in creates[0]["doc"]
    # keys are scoped to their player: facts stored before (the key was their _id) get it copied
    # into idempotencyKey by an update pipeline, outside any transaction, before the unique index
    # on (userId, idempotencyKey) is built (it would refuse two old facts of one player otherwise)
    log = mock.commands()
    backfill = [e for e in log if e["cmd"] == "update" and coll_of(e) == "progress_facts"]
    assert len(backfill) == 1 and "autocommit" not in backfill[0]["doc"]
    u = first_update(backfill[0])
    assert u["q"] == {"idempotencyKey": {"$exists": False}} and u["multi"] is True
    assert u["u"] == [{"$set": {"idempotencyKey": "$_id"}}]
    facts_index = [e for e in log if e["cmd"] == "createIndexes" and e["doc"]["createIndexes"] == "progress_facts"]
    assert len(facts_index) == 1 and log.index(backfill[0]) < log.index(facts_index[0])
    specs = index_specs(mock)
    key = specs["progress_facts"]["progress_facts_key"]
    assert list(key["key"]) == ["userId", "idempotencyKey"] and key["unique"] is True
    assert list(specs["events"]["events_created"]["key"].items()) == [("createdAt", -1), ("_id", -1)]
    assert list(specs["reward_definitions"]["reward_definitions_created"]["key"]) == ["createdAt", "_id"]
    progress = specs["user_progress"]["user_progress_key"]
    assert list(progress["key"]) == ["userId", "kind", "key"] and progress["unique"] is True
    assert "audit_logs_at" in specs["audit_logs"]


def test_event_repo_open_fails_when_the_facts_collection_cannot_be_made(driver, mock):
    mock.on("create", [{"ok": 0, "code": 13, "codeName": "Unauthorized", "errmsg": "not authorized"}])
    out = run(driver, mock, "open-event")
    assert out["ok"] is False and out["error"]["status"] == 500


# ---- auth: create_user ----

def test_create_user_stores_lower_cased_keys_outside_a_transaction(driver, mock):
    assert run(driver, mock, "auth-create-user") == {"ok": True}
    ins = writes(mock.commands(), "insert", "users")
    assert len(ins) == 1 and "autocommit" not in ins[0]["doc"]
    doc = ins[0]["doc"]["documents"][0]
    assert doc == {"_id": USER, "username": "Alice", "usernameLower": "alice", "email": "Alice@Example.COM",
                   "emailLower": "alice@example.com", "passwordHash": "$argon2id$hash", "roles": 1,
                   "createdAt": AT, "updatedAt": AT, "tokenVersion": 0, "disabled": False}


@pytest.mark.parametrize("with_field", [True, False], ids=["mongodb-4.2+", "mongodb-4.0"])
def test_create_user_duplicate_email_is_email_taken(driver, mock, with_field):
    mock.on("insert", [dup_key("users", "users_email_lower", "emailLower", "alice@example.com", with_field)],
            coll="users")
    out = run(driver, mock, "auth-create-user")
    assert out["ok"] is False
    assert (out["error"]["status"], out["error"]["code"]) == (409, "EMAIL_TAKEN")


@pytest.mark.parametrize("value", ["alice", "users_email_lower"])
@pytest.mark.parametrize("with_field", [True, False], ids=["mongodb-4.2+", "mongodb-4.0"])
def test_create_user_duplicate_username_is_username_taken(driver, mock, with_field, value):
    # the key value never decides: a username may look like the other index's name
    mock.on("insert", [dup_key("users", "users_username_lower", "usernameLower", value, with_field)], coll="users")
    out = run(driver, mock, "auth-create-user")
    assert out["ok"] is False
    assert (out["error"]["status"], out["error"]["code"]) == (409, "USERNAME_TAKEN")


def test_create_user_other_write_error_is_a_store_error(driver, mock):
    # ASSUMPTION: a validation failure is a write error inside ok: 1
    invalid = {"index": 0, "code": 121, "codeName": "DocumentValidationFailure", "errmsg": "Document failed validation"}
    mock.on("insert", [{"ok": 1, "n": 0, "writeErrors": [invalid]}], coll="users")
    out = run(driver, mock, "auth-create-user")
    assert out["ok"] is False and out["error"]["status"] == 500 and out["error"]["code"] == "STORE_ERROR"


# ---- auth: reads ----

def user_doc(_id, name):
    return {"_id": _id, "username": name, "usernameLower": name.lower(), "email": name + "@x.io",
            "emailLower": name.lower() + "@x.io", "passwordHash": "h", "roles": 9, "createdAt": NOW, "updatedAt": NOW}


def test_list_users_pages_by_id_after_the_cursor(driver, mock):
    ids = ["5f0000000000000000000002", "5f0000000000000000000003", "5f0000000000000000000004"]
    mock.on("find", [cursor("users", [user_doc(i, "u%d" % n) for n, i in enumerate(ids)])], coll="users")
    out = run(driver, mock, "auth-list-users")
    finds = mock.commands("find")
    assert len(finds) == 1
    f = finds[0]["doc"]
    assert f["filter"] == {"_id": {"$gt": USER}} and f["sort"] == {"_id": 1} and f["limit"] == 3
    assert out["ok"] and out["more"] is True
    assert [u["id"] for u in out["items"]] == ids[:2]
    # accounts from before token versions and disabling lack those fields: they read as defaults
    assert out["items"][0] == {"id": ids[0], "username": "u0", "email": "u0@x.io", "passwordHash": "h", "roles": 9,
                               "createdAt": NOW_MS, "updatedAt": NOW_MS, "tokenVersion": 0, "disabled": False,
                               "disabledReason": "", "disabledAt": 0}


def test_list_users_first_page_has_no_filter(driver, mock):
    mock.on("find", [cursor("users", [user_doc(USER, "alice")])], coll="users")
    out = run(driver, mock, "auth-list-users-start")
    f = mock.commands("find")[0]["doc"]
    assert f["filter"] == {} and f["sort"] == {"_id": 1} and f["limit"] == 3
    assert out["ok"] and out["more"] is False and [u["id"] for u in out["items"]] == [USER]


def test_find_by_email_matches_the_lower_cased_email(driver, mock):
    mock.on("find", [cursor("users", [user_doc(USER, "Alice")])], coll="users")
    out = run(driver, mock, "auth-find-email")
    assert mock.commands("find")[0]["doc"]["filter"] == {"emailLower": "alice@example.com"}
    assert out["ok"] and out["account"]["id"] == USER and out["account"]["roles"] == 9


def test_find_refresh_reads_null_times_as_zero(driver, mock):
    token = {"_id": TOKEN1, "userId": USER, "familyId": FAMILY, "tokenHash": TOKEN1_HASH, "createdAt": NOW,
             "expiresAt": NOW + datetime.timedelta(days=1), "usedAt": None, "revokedAt": NOW}
    mock.on("find", [cursor("refresh_tokens", [token])], coll="refresh_tokens")
    out = run(driver, mock, "auth-find-refresh")
    assert mock.commands("find")[0]["doc"]["filter"] == {"tokenHash": TOKEN1_HASH}
    assert out["token"] == {"id": TOKEN1, "userId": USER, "familyId": FAMILY, "tokenHash": TOKEN1_HASH,
                            "createdAt": NOW_MS, "expiresAt": NOW_MS + DAY_MS, "usedAt": 0, "revokedAt": NOW_MS}


def test_failures_count_and_nth_most_recent(driver, mock):
    mock.on("aggregate", [cursor("login_failures", [{"_id": 1, "n": 7}])], coll="login_failures")
    mock.on("find", [cursor("login_failures", [{"_id": "f", "at": NOW}])], coll="login_failures")
    out = run(driver, mock, "auth-failures")
    assert out == {"ok": True, "count": 7, "nthAt": NOW_MS}
    since = {"userId": USER, "at": {"$gt": AT - datetime.timedelta(minutes=15)}}
    assert mock.commands("aggregate")[0]["doc"]["pipeline"][0] == {"$match": since}
    f = mock.commands("find")[0]["doc"]
    assert f["filter"] == since and f["sort"] == {"at": -1} and f["skip"] == 4 and f["limit"] == 1


def test_find_by_id_reads_version_and_disabled_state(driver, mock):
    doc = dict(user_doc(USER, "alice"), tokenVersion=7, disabled=True, disabledReason="fraud", disabledAt=NOW)
    mock.on("find", [cursor("users", [doc])], coll="users")
    out = run(driver, mock, "auth-find-id")
    assert mock.commands("find")[0]["doc"]["filter"] == {"_id": USER}
    acc = out["account"]
    assert (acc["tokenVersion"], acc["disabled"], acc["disabledReason"], acc["disabledAt"]) == (7, True, "fraud", NOW_MS)


def test_revoked_access_lists_the_users_unexpired_jtis(driver, mock):
    mock.on("find", [cursor("revoked_access", [{"_id": "j1"}, {"_id": "j2"}, {"_id": "j3"}])], coll="revoked_access")
    out = run(driver, mock, "auth-revoked-access")
    f = mock.commands("find")[0]["doc"]
    assert f["filter"] == {"userId": USER, "expiresAt": {"$gt": AT}} and f["sort"] == {"expiresAt": 1} and f["limit"] == 3
    assert "txnNumber" not in f
    assert out == {"ok": True, "items": ["j1", "j2"], "more": True}


# ---- auth: writes ----

def test_add_failure_forgets_old_ones_in_the_same_transaction(driver, mock):
    assert run(driver, mock, "auth-add-failure") == {"ok": True}
    txn = transaction_of(mock, [("delete", "login_failures"), ("insert", "login_failures"),
                                ("commitTransaction", None)])
    old = txn[0]["doc"]["deletes"][0]
    assert old["q"] == {"userId": USER, "at": {"$lt": AT - datetime.timedelta(minutes=15)}} and old["limit"] == 0
    doc = txn[1]["doc"]["documents"][0]
    assert doc["userId"] == USER and doc["at"] == AT


def test_revoke_family_revokes_only_unrevoked_tokens(driver, mock):
    assert run(driver, mock, "auth-revoke-family") == {"ok": True}
    upd = writes(mock.commands(), "update", "refresh_tokens")
    assert len(upd) == 1 and "autocommit" not in upd[0]["doc"]
    u = first_update(upd[0])
    assert u["q"] == {"familyId": FAMILY, "revokedAt": None} and u["multi"] is True
    assert u["u"] == {"$set": {"revokedAt": AT}}


def test_rotate_refresh_is_compare_and_set_and_insert_in_one_transaction(driver, mock):
    assert run(driver, mock, "auth-rotate") == {"ok": True, "rotated": True}
    txn = committed_transaction(mock, [("update", "refresh_tokens"), ("insert", "refresh_tokens"),
                                       ("commitTransaction", None)])
    cas = first_update(txn[0])
    assert cas["q"] == {"_id": TOKEN0, "usedAt": None, "revokedAt": None}  # neither used nor revoked
    assert cas["u"] == {"$set": {"usedAt": AT}} and not cas.get("multi") and not cas.get("upsert")
    assert txn[1]["doc"]["documents"][0] == {
        "_id": TOKEN1, "userId": USER, "familyId": FAMILY, "tokenHash": TOKEN1_HASH, "createdAt": AT,
        "expiresAt": AT + datetime.timedelta(days=1), "usedAt": None, "revokedAt": None}
    assert len(only_writes(in_txn(mock.commands()))) == 2


def test_rotate_refresh_of_a_used_token_inserts_nothing(driver, mock):
    mock.on("update", [NO_MATCH], coll="refresh_tokens")
    out = run(driver, mock, "auth-rotate")
    assert out == {"ok": True, "rotated": False}  # auth_service revokes the family: reuse
    assert not writes(mock.commands(), "insert", "refresh_tokens")


def test_rotate_refresh_reruns_on_a_write_conflict(driver, mock):
    # a concurrent rotation of the same token: the rerun's compare-and-set then decides
    mock.on("update", [WRITE_CONFLICT, {"ok": 1, "n": 1, "nModified": 1}], coll="refresh_tokens")
    out = run(driver, mock, "auth-rotate")
    assert out == {"ok": True, "rotated": True}
    log = mock.commands()
    numbers = txn_numbers(log)
    assert len(numbers) == 2 and len({lsid_of(e) for e in in_txn(log)}) == 1
    first = [e for e in in_txn(log) if e["doc"]["txnNumber"] == numbers[0]]
    assert [e["cmd"] for e in first] == ["update", "abortTransaction"]
    ins = writes(log, "insert", "refresh_tokens")
    assert len(ins) == 1 and ins[0]["doc"]["txnNumber"] == numbers[1]


def test_rotate_refresh_duplicate_hash_is_a_store_error(driver, mock):
    mock.on("insert", [dup_key("refresh_tokens", "refresh_tokens_hash", "tokenHash", TOKEN1_HASH)],
            coll="refresh_tokens")
    out = run(driver, mock, "auth-rotate")
    assert out["ok"] is False and (out["error"]["status"], out["error"]["code"]) == (500, "STORE_ERROR")
    assert len(mock.commands("abortTransaction")) == 1 and not mock.commands("commitTransaction")


# ---- auth: the unit of work of administrator changes ----

def admins_counted(n):
    return cursor("users", [{"_id": 1, "n": n}])


def test_demotion_writes_the_guard_counts_and_updates_in_one_transaction(driver, mock):
    mock.on("find", [cursor("users", [user_doc(USER, "alice")])], coll="users")
    mock.on("aggregate", [admins_counted(2)], coll="users")
    assert run(driver, mock, "auth-demote-admin") == {"ok": True, "found": True, "admins": 2}
    txn = committed_transaction(mock, [("find", "users"), ("update", "auth_guards"), ("aggregate", "users"),
                                       ("update", "users"), ("insert", "audit_logs"), ("commitTransaction", None)])
    guard = first_update(txn[1])
    # every admin-changing transaction writes this one document: two of them conflict
    assert guard["q"] == {"_id": "admins"} and guard["u"] == {"$inc": {"n": 1}} and guard["upsert"] is True
    match = txn[2]["doc"]["pipeline"][0]["$match"]
    assert match == {"roles": {"$bitsAnySet": 8}, "disabled": {"$ne": True}}  # enabled admins only
    upd = first_update(txn[3])
    assert upd["q"] == {"_id": USER}
    assert upd["u"] == {"$set": {"passwordHash": "h", "roles": 1, "tokenVersion": 1, "disabled": False,
                                 "updatedAt": AT, "disabledReason": None, "disabledAt": None}}
    entry = audit_doc(txn[4], "auth", "user", USER)
    assert entry["before"] == {"roles": ["USER", "ADMIN"]} and entry["after"] == {"roles": ["USER"]}


def test_disabling_revokes_refresh_tokens_in_the_same_transaction(driver, mock):
    mock.on("find", [cursor("users", [user_doc(USER, "alice")])], coll="users")
    mock.on("aggregate", [admins_counted(3)], coll="users")
    assert run(driver, mock, "auth-disable-admin") == {"ok": True, "found": True, "admins": 3}
    txn = committed_transaction(mock, [("find", "users"), ("update", "auth_guards"), ("aggregate", "users"),
                                       ("update", "users"), ("update", "refresh_tokens"), ("insert", "audit_logs"),
                                       ("commitTransaction", None)])
    upd = first_update(txn[3])["u"]["$set"]
    assert (upd["disabled"], upd["disabledReason"], upd["disabledAt"], upd["tokenVersion"]) == (True, "fraud", AT, 1)
    rev = first_update(txn[4])
    assert rev["q"] == {"userId": USER, "revokedAt": None} and rev["multi"] is True
    assert rev["u"] == {"$set": {"revokedAt": AT}}


def test_the_last_admin_is_kept_and_nothing_is_written(driver, mock):
    mock.on("find", [cursor("users", [user_doc(USER, "alice")])], coll="users")
    mock.on("aggregate", [admins_counted(1)], coll="users")
    assert run(driver, mock, "auth-demote-admin") == {"ok": True, "found": True, "admins": 1}
    assert not writes(mock.commands(), "update", "users") and not mock.commands("insert")
    assert len(mock.commands("abortTransaction")) == 1 and not mock.commands("commitTransaction")


def test_a_concurrent_admin_change_reruns_the_whole_unit_of_work(driver, mock):
    # the other transaction wrote the guard first: WriteConflict, and the rerun counts again,
    # now seeing that the other demotion left one admin
    mock.on("find", [cursor("users", [user_doc(USER, "alice")])], coll="users")
    # (the guards seeded at start-up, outside any transaction, get the default answer)
    mock.on("update", [WRITE_CONFLICT, MATCHED_UNCHANGED], coll="auth_guards", match=lambda doc: "autocommit" in doc)
    mock.on("aggregate", [admins_counted(1)], coll="users")
    assert run(driver, mock, "auth-demote-admin") == {"ok": True, "found": True, "admins": 1}
    log = mock.commands()
    numbers = txn_numbers(log)
    assert len(numbers) == 2
    first = [e for e in in_txn(log) if e["doc"]["txnNumber"] == numbers[0]]
    assert steps_of(first) == [("find", "users"), ("update", "auth_guards"), ("abortTransaction", None)]
    second = [e for e in in_txn(log) if e["doc"]["txnNumber"] == numbers[1]]
    assert steps_of(second)[:3] == [("find", "users"), ("update", "auth_guards"), ("aggregate", "users")]
    assert not writes(log, "update", "users")


def test_an_unknown_target_writes_nothing(driver, mock):
    mock.on("find", [cursor("users", [])], coll="users")
    assert run(driver, mock, "auth-demote-admin") == {"ok": True, "found": False, "admins": -1}
    assert not only_writes(in_txn(mock.commands()))


def test_logout_records_the_jti_and_forgets_expired_ones_in_one_transaction(driver, mock):
    mock.on("aggregate", [cursor("revoked_access", [{"_id": 1, "n": 4}])], coll="revoked_access")
    assert run(driver, mock, "auth-logout-access") == {"ok": True, "count": 4}
    txn = committed_transaction(mock, [("delete", "revoked_access"), ("update", "revoked_access"),
                                       ("aggregate", "revoked_access"), ("commitTransaction", None)])
    old = txn[0]["doc"]["deletes"][0]
    assert old["q"] == {"userId": USER, "expiresAt": {"$lte": AT}} and old["limit"] == 0
    up = first_update(txn[1])
    # an upsert: the same token revoked twice is no duplicate key (which would abort)
    assert up["q"] == {"_id": "abc123"} and up["upsert"] is True
    assert up["u"] == {"$setOnInsert": {"userId": USER, "expiresAt": AT + datetime.timedelta(hours=1)}}
    assert txn[2]["doc"]["pipeline"][0]["$match"] == {"userId": USER, "expiresAt": {"$gt": AT}}


# ---- auth: the login lockout, reserved atomically before the hash (issue 12) ----
#
# auth-login-wrong / auth-login-right run POST /auth/login for alice through the whole auth worker
# on the MongoDB store (rp_auth_worker_new with STORE=mongodb, the clock at NOW): the reservation
# body of auth_service.c over m_tx_guard_failures, m_tx_failures and m_tx_add_failure. The limit
# is the default LOGIN_MAX_FAILURES=5 in a LOGIN_LOCKOUT_WINDOW of 15 min.

# libsodium's crypto_pwhash_str("right-password") at the "min" cost PASSWORD_HASH=min uses
ALICE_HASH = "$argon2id$v=19$m=8,t=1,p=1$GXt5xwlt3UZjI7jPlVZQqQ$eoaD6gmCWclzN/8499k3za3m7dpHGC1sZrqg+9F2LDY"
LOGIN_MAX = 5
WINDOW_START = AT - datetime.timedelta(minutes=15)
RESERVED_STEPS = [("update", "users"), ("aggregate", "login_failures"), ("find", "login_failures"),
                  ("delete", "login_failures"), ("insert", "login_failures"), ("commitTransaction", None)]
LOCKED_STEPS = [("update", "users"), ("aggregate", "login_failures"), ("find", "login_failures"),
                ("abortTransaction", None)]
WRONG = {"ok": True, "status": 401, "code": "INVALID_CREDENTIALS", "retryAfter": 0}
# ASSUMPTION: a transaction the server dropped (a failover, transactionLifetimeLimitSeconds)
# answers commit with NoSuchTransaction and the transient label.
NO_SUCH_TRANSACTION = {"ok": 0, "code": 251, "codeName": "NoSuchTransaction",
                       "errmsg": "Transaction 2 has been aborted.", "errorLabels": ["TransientTransactionError"]}


def script_login(mock, failures, nth_at=None):
    """alice (password right-password) exists; the window holds `failures` of hers, the
    LOGIN_MAX-th most recent at nth_at (a list: one count per attempt)."""
    mock.on("find", [cursor("users", [dict(user_doc(USER, "alice"), passwordHash=ALICE_HASH, roles=1)])],
            coll="users")
    counts = failures if isinstance(failures, list) else [failures]
    mock.on("aggregate", [cursor("login_failures", [{"_id": 1, "n": n}]) for n in counts], coll="login_failures")
    mock.on("find", [cursor("login_failures", [{"_id": "f", "at": nth_at}] if nth_at else [])],
            coll="login_failures")


def failure_rows(entries):
    return [d for e in writes(entries, "insert", "login_failures") for d in e["doc"]["documents"]]


def assert_reservation(txn):
    """The commands of one reservation attempt, in its order: the guard on the account's own
    document, the count and the n-th most recent in the window, and (when under the limit) the
    old failures forgotten and this one recorded."""
    guard = first_update(txn[0])
    # an increment of the account's document: two reservations of one account write the same
    # document and conflict, where two snapshots would otherwise both count 4 and both record a 5th
    assert guard["q"] == {"_id": USER} and guard["u"] == {"$inc": {"failureGuard": 1}}
    assert not guard.get("upsert") and not guard.get("multi")
    since = {"userId": USER, "at": {"$gt": WINDOW_START}}
    assert txn[1]["doc"]["pipeline"][0] == {"$match": since}
    nth = txn[2]["doc"]
    assert nth["filter"] == since and nth["sort"] == {"at": -1} and nth["skip"] == LOGIN_MAX - 1 and nth["limit"] == 1
    if txn[-1]["cmd"] == "commitTransaction":
        old = txn[3]["doc"]["deletes"][0]
        assert old["q"] == {"userId": USER, "at": {"$lt": WINDOW_START}} and old["limit"] == 0
        (row,) = txn[4]["doc"]["documents"]
        assert set(row) == {"_id", "userId", "at"} and len(row["_id"]) == 24
        assert (row["userId"], row["at"]) == (USER, AT)


@pytest.mark.parametrize("failures", [0, LOGIN_MAX - 1])
def test_login_reserves_a_wrong_password_as_a_failure_in_one_transaction(driver, mock, failures):
    script_login(mock, failures)
    assert run(driver, mock, "auth-login-wrong") == WRONG
    log = mock.commands()
    txn = committed_transaction(mock, RESERVED_STEPS)
    assert_reservation(txn)
    # the account is read before, outside; the reservation is the failure recorded: nothing after
    reads = [e for e in log if e["cmd"] == "find" and coll_of(e) == "users"]
    assert len(reads) == 1 and "autocommit" not in reads[0]["doc"] and log.index(reads[0]) < log.index(txn[0])
    assert log.index(txn[-1]) == max(i for i, e in enumerate(log) if e["cmd"] != "endSessions")
    assert len(failure_rows(log)) == 1


def test_login_with_the_right_password_forgets_the_reserved_failure_after_the_commit(driver, mock):
    script_login(mock, LOGIN_MAX - 1)
    out = run(driver, mock, "auth-login-right")
    assert out == {"ok": True, "status": 200, "code": None, "retryAfter": 0}
    log = mock.commands()
    txn = committed_transaction(mock, RESERVED_STEPS)
    assert_reservation(txn)
    # the match clears every failure of the account, the reserved one included, once committed
    clears = [e for e in writes(log, "delete", "login_failures") if "autocommit" not in e["doc"]]
    assert len(clears) == 1 and log.index(clears[0]) > log.index(txn[-1])
    assert clears[0]["doc"]["deletes"][0] == {"q": {"userId": USER}, "limit": 0}
    assert len(writes(log, "insert", "refresh_tokens")) == 1


@pytest.mark.parametrize("scenario", ["auth-login-wrong", "auth-login-right"])
@pytest.mark.parametrize("failures", [LOGIN_MAX, LOGIN_MAX + 2])
def test_login_at_the_limit_records_nothing_and_aborts(driver, mock, scenario, failures):
    # the LOGIN_MAX-th most recent failure was 10 min ago: it leaves the window in 5 min
    script_login(mock, failures, nth_at=NOW - datetime.timedelta(minutes=10))
    out = run(driver, mock, scenario)
    # locked before the hash: even the right password is not checked
    assert out == {"ok": True, "status": 429, "code": "ACCOUNT_LOCKED", "retryAfter": 300}
    log = mock.commands()
    txn = transaction_of(mock, LOCKED_STEPS)
    assert_reservation(txn)
    # the body's refusal aborts the transaction: the guard's increment is not kept either
    assert txn[-1]["doc"]["$db"] == "admin" and not mock.commands("commitTransaction")
    assert not failure_rows(log) and not writes(log, "delete", "login_failures")
    assert not writes(log, "insert", "refresh_tokens")


def attempts(log):
    """The reservation attempts (one per transaction number), in order; one session for all."""
    txns = transactions(log)
    assert len({lsid_of(e) for e in in_txn(log)}) == 1
    for txn in txns:
        assert txn[0]["doc"].get("startTransaction") is True and txn[0]["doc"]["readConcern"] == {"level": "snapshot"}
        assert all("startTransaction" not in e["doc"] for e in txn[1:])
        assert all(e["doc"]["autocommit"] is False for e in txn)
        assert all("readConcern" not in e["doc"] and "writeConcern" not in e["doc"]
                   for e in txn[1:] if e["cmd"] not in ("commitTransaction", "abortTransaction"))
    numbers = [t[0]["doc"]["txnNumber"] for t in txns]
    assert numbers == sorted(set(numbers)), numbers
    return txns


def test_a_write_conflict_on_the_guard_reruns_the_whole_reservation(driver, mock):
    # a concurrent reservation on the same account wrote the guard first
    script_login(mock, 2)
    mock.on("update", [WRITE_CONFLICT, {"ok": 1, "n": 1, "nModified": 1}], coll="users")
    assert run(driver, mock, "auth-login-wrong") == WRONG
    log = mock.commands()
    first, second = attempts(log)
    assert steps_of(first) == [("update", "users"), ("abortTransaction", None)]
    assert steps_of(second) == RESERVED_STEPS
    assert_reservation(second)
    assert first_update(first[0]) == first_update(second[0])
    # one failure recorded, by the committed attempt; the aborted one counted nothing
    assert failure_rows(log) == failure_rows(second) and len(failure_rows(log)) == 1
    assert mock.commands("commitTransaction") == [second[-1]]


def test_a_rerun_reservation_is_judged_by_its_own_count(driver, mock):
    # attempt 1 counted 4 and recorded the 5th, but its commit was lost; meanwhile another
    # reservation took the 5th place, so the rerun counts 5: locked, and nothing is kept
    script_login(mock, [LOGIN_MAX - 1, LOGIN_MAX], nth_at=NOW - datetime.timedelta(minutes=10))
    mock.on("commitTransaction", [NO_SUCH_TRANSACTION, {"ok": 1}])  # never an endless rerun
    out = run(driver, mock, "auth-login-right")
    assert out == {"ok": True, "status": 429, "code": "ACCOUNT_LOCKED", "retryAfter": 300}
    log = mock.commands()
    first, second = attempts(log)
    assert steps_of(first) == RESERVED_STEPS and steps_of(second) == LOCKED_STEPS
    assert_reservation(first)
    assert_reservation(second)
    assert not failure_rows(second) and len(mock.commands("commitTransaction")) == 1
    assert not writes(log, "insert", "refresh_tokens")


def test_an_unknown_reservation_commit_result_retries_the_commit_alone(driver, mock):
    # the body is not rerun: a second reservation would record the failure twice
    script_login(mock, 2)
    mock.on("commitTransaction", [COMMIT_WC_TIMEOUT, {"ok": 1}])
    assert run(driver, mock, "auth-login-wrong") == WRONG
    log = mock.commands()
    (txn,) = attempts(log)
    commits = mock.commands("commitTransaction")
    assert steps_of(txn) == RESERVED_STEPS + [("commitTransaction", None)]
    assert len(commits) == 2 and commits[0]["doc"]["txnNumber"] == commits[1]["doc"]["txnNumber"]
    assert commits[1]["doc"]["writeConcern"]["w"] == "majority" and "wtimeout" in commits[1]["doc"]["writeConcern"]
    assert len(failure_rows(log)) == 1 and not mock.commands("abortTransaction")


def test_a_store_failure_in_the_reservation_fails_the_login_and_keeps_nothing(driver, mock):
    # ASSUMPTION: an aggregate the server refuses is a command error without labels
    mock.on("aggregate", [{"ok": 0, "code": 2, "codeName": "BadValue", "errmsg": "bad value"}], coll="login_failures")
    script_login(mock, 0)  # its count comes after the rule above: never used
    out = run(driver, mock, "auth-login-right")
    # not a lockout, and not a password check: the store's error, logged with what failed
    assert out == {"ok": True, "status": 500, "code": "STORE_ERROR", "retryAfter": 0}
    log = mock.commands()
    txn = transaction_of(mock, [("update", "users"), ("aggregate", "login_failures"), ("abortTransaction", None)])
    assert first_update(txn[0])["u"] == {"$inc": {"failureGuard": 1}}
    assert not mock.commands("commitTransaction") and not failure_rows(log)
    assert not writes(log, "delete", "login_failures") and not writes(log, "insert", "refresh_tokens")


# ---- events: create, update, cancel ----

def referenced_ok(n):
    return {"ok": 1, "n": n, "nModified": n}


def test_event_create_marks_definitions_and_audits_in_one_transaction(driver, mock):
    mock.on("update", [referenced_ok(2)], coll="reward_definitions")
    assert run(driver, mock, "event-create") == {"ok": True}
    txn = committed_transaction(mock, [("update", "events"), ("update", "reward_definitions"), ("insert", "audit_logs"),
                                       ("commitTransaction", None)])
    ev = first_update(txn[0])
    assert ev["q"] == {"_id": EVENT} and ev["upsert"] is True
    s = ev["u"]["$set"]
    assert s["startDate"] == AT - datetime.timedelta(days=1) and s["endDate"] == AT + datetime.timedelta(days=1)
    assert s["maxClaims"] == 3 and s["claimPeriod"] == "ONCE" and s["updatedAt"] == AT
    assert s["rewards"] == [
        {"rewardIndex": 0, "rewardDefinitionId": DEF0, "quantity": 2, "stock": 10, "stockLeft": 10, "customData": None},
        {"rewardIndex": 1, "rewardDefinitionId": DEF1, "quantity": 1, "stock": None, "stockLeft": None,
         "customData": {"color": "red"}}]
    assert ev["u"]["$setOnInsert"] == {"canceledAt": None, "createdBy": OPERATOR, "createdAt": AT}
    ref = first_update(txn[1])
    assert ref["q"] == {"_id": {"$in": [DEF0, DEF1]}} and ref["u"] == {"$set": {"referenced": True}}
    assert ref["multi"] is True
    entry = audit_doc(txn[2], "event", "event", EVENT)
    assert entry["before"] == {"title": "Old"}
    assert entry["after"] == {"_rpJson": '{"title":"New","$k":"x"}'}  # a "$" key: stored as JSON text


def test_event_create_refuses_a_definition_that_no_longer_exists(driver, mock):
    # deleted between event_worker.c's check and the transaction: SQLite's foreign key refuses the
    # reward row, so nothing is written; here the marking matches only one of the two definitions
    mock.on("update", [referenced_ok(1)], coll="reward_definitions")
    out = run(driver, mock, "event-create")
    assert out["ok"] is False and (out["error"]["status"], out["error"]["code"]) == (500, "STORE_ERROR")
    assert_one_transaction(mock.commands())
    assert len(mock.commands("abortTransaction")) == 1 and not mock.commands("commitTransaction")
    assert not writes(mock.commands(), "insert", "audit_logs")


def test_event_create_reruns_on_a_write_conflict(driver, mock):
    mock.on("update", [WRITE_CONFLICT, {"ok": 1, "n": 1, "nModified": 1}], coll="events")
    mock.on("update", [referenced_ok(2)], coll="reward_definitions")
    assert run(driver, mock, "event-create") == {"ok": True}
    log = mock.commands()
    numbers = txn_numbers(log)
    assert len(numbers) == 2
    assert len(writes(log, "insert", "audit_logs")) == 1
    assert writes(log, "insert", "audit_logs")[0]["doc"]["txnNumber"] == numbers[1]


HOLDS_SLOT = {"eventId": EVENT, "activeKey": {"$exists": True}}


def test_event_update_with_rewards_is_refused_once_a_request_exists(driver, mock):
    mock.on("find", [cursor("event_reward_requests", [{"_id": "5f00000000000000000000a1"}])],
            coll="event_reward_requests")
    out = run(driver, mock, "event-update-rewards")
    assert out == {"ok": True, "conflict": True}
    txn = assert_one_transaction(mock.commands())
    check = txn[0]["doc"]
    # only a request holding a slot freezes the event: FAILED requests carry no activeKey
    assert check["find"] == "event_reward_requests" and check["filter"] == HOLDS_SLOT
    assert check["limit"] == 1
    assert not only_writes(mock.commands()), "nothing is written once players have claimed"
    # a refusal keeps nothing: the transaction is aborted, not committed empty
    assert len(mock.commands("abortTransaction")) == 1 and not mock.commands("commitTransaction")


def test_event_update_guard_alone_checks_requests_and_keeps_the_rewards(driver, mock):
    # the guard is the caller's flag, independent of replacing the rewards
    out = run(driver, mock, "event-update-guard")
    assert out == {"ok": True, "conflict": False}
    txn = transaction_of(mock, [("find", "event_reward_requests"), ("update", "events"), ("insert", "audit_logs"),
                                ("commitTransaction", None)])
    assert txn[0]["doc"]["filter"] == HOLDS_SLOT
    assert "rewards" not in first_update(txn[1])["u"]["$set"]


def test_event_update_with_rewards_rewrites_them_when_unclaimed(driver, mock):
    mock.on("update", [referenced_ok(2)], coll="reward_definitions")
    out = run(driver, mock, "event-update-rewards")
    assert out == {"ok": True, "conflict": False}
    txn = transaction_of(mock, [("find", "event_reward_requests"), ("update", "events"),
                                ("update", "reward_definitions"), ("insert", "audit_logs"),
                                ("commitTransaction", None)])
    s = first_update(txn[1])["u"]["$set"]
    assert s["title"] == "New" and [r["stockLeft"] for r in s["rewards"]] == [10, None]


def test_event_update_without_rewards_leaves_them_and_the_stock(driver, mock):
    out = run(driver, mock, "event-update")
    assert out == {"ok": True, "conflict": False}
    txn = transaction_of(mock, [("update", "events"), ("insert", "audit_logs"), ("commitTransaction", None)])
    u = first_update(txn[0])["u"]
    assert "rewards" not in u["$set"] and u["$set"]["title"] == "New"
    assert u["$setOnInsert"]["rewards"] == []
    assert not mock.commands("find")  # no claim check when the rewards stay


def test_event_cancel_sets_canceled_at_and_settles_reviews_in_one_transaction(driver, mock):
    mock.on("update", [{"ok": 1, "n": 2, "nModified": 2}], coll="event_reward_requests")
    out = run(driver, mock, "event-cancel")
    assert out == {"ok": True, "already": False, "settled": 2}
    txn = committed_transaction(mock, [("update", "events"), ("update", "event_reward_requests"),
                                       ("insert", "audit_logs"), ("commitTransaction", None)])
    u = first_update(txn[0])
    assert u["q"] == {"_id": EVENT, "canceledAt": None}
    assert u["u"] == {"$set": {"canceledAt": AT, "updatedAt": AT}}
    # every AWAITING_REVIEW request of the event fails with the cancel, decided by the canceller;
    # the slot goes (FAILED requests carry no activeKey); no stock: a review took none
    s = first_update(txn[1])
    assert s["q"] == {"eventId": EVENT, "status": "AWAITING_REVIEW"} and s["multi"] is True
    assert s["u"] == {"$set": {"status": "FAILED", "failureReason": "EVENT_CANCELED", "processorId": OPERATOR,
                               "processedAt": AT, "updatedAt": AT},
                      "$unset": {"activeKey": ""}}
    audit_doc(txn[2], "event", "event", EVENT)


def test_event_cancel_reruns_whole_when_settling_conflicts(driver, mock):
    mock.on("update", [WRITE_CONFLICT, {"ok": 1, "n": 1, "nModified": 1}], coll="event_reward_requests")
    assert run(driver, mock, "event-cancel") == {"ok": True, "already": False, "settled": 1}
    log = mock.commands()
    numbers = txn_numbers(log)
    assert len(numbers) == 2
    second = [e for e in in_txn(log) if e["doc"]["txnNumber"] == numbers[1]]
    assert steps_of(second) == [("update", "events"), ("update", "event_reward_requests"), ("insert", "audit_logs"),
                                ("commitTransaction", None)]


def test_event_cancel_of_a_canceled_event_is_already(driver, mock):
    mock.on("update", [NO_MATCH], coll="events")
    assert run(driver, mock, "event-cancel") == {"ok": True, "already": True, "settled": 0}
    assert not mock.commands("insert")
    assert not [e for e in mock.commands("update") if coll_of(e) == "event_reward_requests"]


# ---- events: end and start (the status decided by the update's guard) ----

@pytest.mark.parametrize("scenario,start,end,guard", [
    ("event-end", AT - datetime.timedelta(hours=1), AT,
     {"_id": EVENT, "canceledAt": None, "startDate": {"$lte": AT}, "endDate": {"$gt": AT}}),
    ("event-start", AT, AT + datetime.timedelta(days=1),
     {"_id": EVENT, "canceledAt": None, "startDate": {"$gt": AT}}),
])
def test_event_end_and_start_write_the_window_under_the_status_guard(driver, mock, scenario, start, end, guard):
    assert run(driver, mock, scenario) == {"ok": True, "moved": True}
    txn = committed_transaction(mock, [("update", "events"), ("insert", "audit_logs"), ("commitTransaction", None)])
    u = first_update(txn[0])
    assert u["q"] == guard
    assert u["u"] == {"$set": {"startDate": start, "endDate": end, "updatedAt": AT}}
    audit_doc(txn[1], "event", "event", EVENT)


@pytest.mark.parametrize("scenario", ["event-end", "event-start"])
def test_event_end_and_start_in_the_wrong_state_write_nothing(driver, mock, scenario):
    mock.on("update", [NO_MATCH], coll="events")
    assert run(driver, mock, scenario) == {"ok": True, "moved": False}
    assert not mock.commands("insert") and not mock.commands("commitTransaction")
    assert len(mock.commands("abortTransaction")) == 1


# ---- definitions: delete ----

def test_def_delete_refuses_a_referenced_definition(driver, mock):
    mock.on("find", [cursor("reward_definitions", [{"_id": DEF0, "referenced": True}])], coll="reward_definitions")
    assert run(driver, mock, "def-delete") == {"ok": True, "found": True, "referenced": True}
    txn = assert_one_transaction(mock.commands())
    assert txn[0]["doc"]["filter"] == {"_id": DEF0}
    assert not only_writes(mock.commands())


def test_def_delete_deletes_an_unreferenced_definition_with_a_guard(driver, mock):
    mock.on("find", [cursor("reward_definitions", [{"_id": DEF0, "referenced": False}])], coll="reward_definitions")
    assert run(driver, mock, "def-delete") == {"ok": True, "found": True, "referenced": False}
    txn = transaction_of(mock, [("find", "reward_definitions"), ("delete", "reward_definitions"),
                                ("insert", "audit_logs"), ("commitTransaction", None)])
    d = txn[1]["doc"]["deletes"][0]
    assert d["q"] == {"_id": DEF0, "referenced": False} and d["limit"] == 1  # conflicts with a concurrent marking
    audit_doc(txn[2], "event", "event", EVENT)


def test_def_delete_of_an_unknown_definition_is_not_found(driver, mock):
    assert run(driver, mock, "def-delete") == {"ok": True, "found": False, "referenced": False}
    assert not only_writes(mock.commands())


def test_def_delete_reruns_when_the_snapshot_read_fails_transiently(driver, mock):
    # the find's error reply is handed back to the driver, whose label makes it run the body again
    mock.on("find", [SNAPSHOT_UNAVAILABLE, cursor("reward_definitions", [{"_id": DEF0, "referenced": True}])],
            coll="reward_definitions")
    assert run(driver, mock, "def-delete") == {"ok": True, "found": True, "referenced": True}
    assert len(txn_numbers(mock.commands())) == 2
    assert len(mock.commands("abortTransaction")) == 1


# ---- progress ----

FACT_KEYS = ["k-login", "k-level", "k-quest", "k-invite", "k-counter", "k-level"]  # the driver's facts, in order


# what the driver's facts are stored as, for the reads of a fact already stored under its key
STORED_FACTS = {"k-login": ("LOGIN", None), "k-level": ("LEVEL", 7), "k-quest": ("QUEST", "q.1"),
                "k-invite": ("INVITE", USER2), "k-counter": ("COUNTER", {"key": "kills.total", "delta": 3})}


def script_facts(mock, known=(), stored=None):
    """progress_facts upserts: a key not yet seen in this transaction attempt (nor in known)
    inserts; a find of a stored key answers the driver's fact (or stored[key])."""
    seen = {}
    stored = dict(STORED_FACTS, **(stored or {}))

    def fresh(doc):
        q = doc["updates"][0]["q"]
        if "userId" not in q:  # the start-up backfill
            return False
        keys = seen.setdefault(doc.get("txnNumber"), set(known))
        if q["idempotencyKey"] in keys:
            return False
        keys.add(q["idempotencyKey"])
        return True

    mock.on("update", [UPSERTED], coll="progress_facts", match=fresh)
    mock.on("update", [MATCHED_UNCHANGED], coll="progress_facts")
    for key, (kind, value) in stored.items():
        mock.on("find", [cursor("progress_facts", [{"_id": "f-" + key, "userId": USER, "idempotencyKey": key,
                                                     "type": kind, "value": value, "occurredAt": NOW}])],
                coll="progress_facts", match=lambda d, key=key: d["filter"].get("idempotencyKey") == key)


def progress_writes(entries):
    return [first_update(e) for e in entries if e["cmd"] == "update" and coll_of(e) == "user_progress"]


def aggregate_key(kind, key):
    return {"userId": USER, "kind": kind, "key": key}


APPLIED_KEYS = [aggregate_key("login", NOW_DAY), aggregate_key("level", None), aggregate_key("quest", "q.1"),
                aggregate_key("invite", USER2), aggregate_key("counter", "kills.total")]
RECEIVED = AT + datetime.timedelta(seconds=1)  # the driver's ingest time


def test_progress_ingest_counts_each_key_once_in_one_transaction(driver, mock):
    script_facts(mock)
    out = run(driver, mock, "progress-ingest")
    assert out == {"ok": True, "accepted": 5, "duplicates": 1, "reused": -1}
    # per fact: insert-if-absent of the fact under (player, key), then (new facts only) read and
    # write its aggregate, all in the one transaction; the repeated level fact reads the fact kept
    # under its key (the same one: a duplicate)
    txn = committed_transaction(mock, [("update", "progress_facts"), ("find", "user_progress"),
                                       ("update", "user_progress")] * 5
                                + [("update", "progress_facts"), ("find", "progress_facts"),
                                   ("commitTransaction", None)])
    facts = [first_update(e) for e in txn if e["cmd"] == "update" and coll_of(e) == "progress_facts"]
    assert [f["q"] for f in facts] == [{"userId": USER, "idempotencyKey": k} for k in FACT_KEYS]
    assert all(f["upsert"] is True and list(f["u"]) == ["$setOnInsert"] for f in facts)
    assert facts[1]["u"]["$setOnInsert"] == {"type": "LEVEL", "value": 7, "occurredAt": AT,
                                             "reportedBy": OPERATOR, "receivedAt": RECEIVED}
    assert txn[-2]["doc"]["filter"] == {"userId": USER, "idempotencyKey": "k-level"}
    reads = [e["doc"] for e in txn if e["cmd"] == "find" and coll_of(e) == "user_progress"]
    assert [r["filter"] for r in reads] == APPLIED_KEYS
    applied = progress_writes(txn)
    assert [u["q"] for u in applied] == APPLIED_KEYS  # the repeated level fact is not applied
    assert all(u["upsert"] is True and list(u["u"]) == ["$set"] for u in applied)
    minutes = applied[0]["u"]["$set"]["minutes"]
    assert len(minutes) == 180 and minutes[NOW_MINUTE // 8] == 1 << (NOW_MINUTE % 8)
    assert sum(bin(b).count("1") for b in minutes) == 1
    # nothing stored yet: each aggregate is written whole, as the rules folded it
    assert applied[1]["u"] == {"$set": {"maxLevel": 7, "updatedAt": RECEIVED}}
    assert applied[2]["u"] == {"$set": {"completedAt": AT}}
    assert applied[3]["u"] == {"$set": {"invitedAt": AT}}
    assert applied[4]["u"] == {"$set": {"total": 3, "updatedAt": RECEIVED}}


def test_progress_ingest_folds_onto_what_is_stored(driver, mock):
    # the store hands back what it holds and writes what it is given: level max, counter sum,
    # quest first-wins and the login bit all happen above it (rules/progress.c)
    script_facts(mock)
    bits = bytearray(180)
    bits[0] = 0b1
    stored = {
        "login": {"_id": 1, **aggregate_key("login", NOW_DAY), "minutes": bytes(bits)},
        "level": {"_id": 2, **aggregate_key("level", None), "maxLevel": 9, "updatedAt": NOW},
        "quest": {"_id": 3, **aggregate_key("quest", "q.1"), "completedAt": NOW - datetime.timedelta(days=3)},
        "counter": {"_id": 4, **aggregate_key("counter", "kills.total"), "total": 12, "updatedAt": NOW},
    }
    for kind, doc in stored.items():
        mock.on("find", [cursor("user_progress", [doc])], coll="user_progress",
                match=lambda d, kind=kind: d["filter"].get("kind") == kind)
    out = run(driver, mock, "progress-ingest")
    assert out == {"ok": True, "accepted": 5, "duplicates": 1, "reused": -1}  # a quest already done still counts
    applied = {u["q"]["kind"]: u["u"] for u in progress_writes(mock.commands())}
    assert sorted(applied) == ["counter", "invite", "level", "login"], "the known quest is not written again"
    assert applied["level"] == {"$set": {"maxLevel": 9, "updatedAt": RECEIVED}}  # 7 does not lower 9
    assert applied["counter"] == {"$set": {"total": 15, "updatedAt": RECEIVED}}
    minutes = applied["login"]["$set"]["minutes"]
    assert minutes[0] == 0b1 and minutes[NOW_MINUTE // 8] == 1 << (NOW_MINUTE % 8)
    assert sum(bin(b).count("1") for b in minutes) == 2


def test_progress_ingest_known_keys_change_nothing(driver, mock):
    script_facts(mock, known={"k-login", "k-quest", "k-counter"})
    out = run(driver, mock, "progress-ingest")
    assert out == {"ok": True, "accepted": 2, "duplicates": 4, "reused": -1}
    kinds = [u["q"]["kind"] for u in progress_writes(mock.commands())]
    assert kinds == ["level", "invite"]
    # no aggregate read for a known fact
    assert [e["doc"]["filter"]["kind"] for e in mock.commands("find") if coll_of(e) == "user_progress"] == \
        ["level", "invite"]


def test_progress_ingest_a_reused_key_refuses_the_report_and_keeps_nothing(driver, mock):
    # the player's key holds a level 8 fact: the level 7 fact under it is not a retry
    script_facts(mock, known={"k-level"}, stored={"k-level": ("LEVEL", 8)})
    out = run(driver, mock, "progress-ingest-one")
    assert out == {"ok": True, "accepted": 0, "duplicates": 0, "reused": 0}
    txn = assert_one_transaction(mock.commands())
    assert steps_of(txn) == [("update", "progress_facts"), ("find", "progress_facts"), ("abortTransaction", None)]
    assert txn[1]["doc"]["filter"] == {"userId": USER, "idempotencyKey": "k-level"}
    assert not mock.commands("commitTransaction") and not progress_writes(mock.commands())


def test_progress_ingest_rerun_counts_only_the_last_attempt(driver, mock):
    script_facts(mock)
    mock.on("update", [WRITE_CONFLICT, {"ok": 1, "n": 1, "nModified": 1}], coll="user_progress",
            match=lambda d: d["updates"][0]["q"].get("kind") == "counter")
    out = run(driver, mock, "progress-ingest")
    assert out == {"ok": True, "accepted": 5, "duplicates": 1, "reused": -1}  # not 9 and 1: the first was aborted
    log = mock.commands()
    numbers = txn_numbers(log)
    assert len(numbers) == 2
    second = [e for e in in_txn(log) if e["doc"]["txnNumber"] == numbers[1]]
    assert len(progress_writes(second)) == 5 and second[-1]["cmd"] == "commitTransaction"
    assert len([e for e in second if e["cmd"] == "find" and coll_of(e) == "user_progress"]) == 5, \
        "the rerun reads every aggregate again"


def test_progress_load_reads_aggregates_and_the_login_window(driver, mock):
    bits_a, bits_b = bytearray(180), bytearray(180)
    bits_a[0] = 0b101  # minutes 0 and 2
    bits_b[NOW_MINUTE // 8] = 1 << (NOW_MINUTE % 8)
    docs = [
        {"_id": 1, "userId": USER, "kind": "counter", "key": "kills.total", "total": 12, "updatedAt": NOW},
        {"_id": 2, "userId": USER, "kind": "invite", "key": USER2, "invitedAt": NOW},
        {"_id": 3, "userId": USER, "kind": "invite", "key": "5f0000000000000000000003", "invitedAt": NOW},
        {"_id": 4, "userId": USER, "kind": "level", "key": None, "maxLevel": 9, "updatedAt": NOW},
        {"_id": 5, "userId": USER, "kind": "login", "key": NOW_DAY - 2, "minutes": bytes(bits_a)},
        {"_id": 6, "userId": USER, "kind": "login", "key": NOW_DAY, "minutes": bytes(bits_b)},
        {"_id": 7, "userId": USER, "kind": "quest", "key": "q.1", "completedAt": NOW},
    ]
    mock.on("find", [cursor("user_progress", docs)], coll="user_progress")
    out = run(driver, mock, "progress-load")
    finds = mock.commands("find")
    assert len(finds) == 1 and "txnNumber" not in finds[0]["doc"]
    f = finds[0]["doc"]
    assert f["filter"] == {"userId": USER, "$or": [{"kind": {"$ne": "login"}},
                                                   {"kind": "login", "key": {"$gte": NOW_DAY - 6, "$lte": NOW_DAY}}]}
    assert list(f["sort"].items()) == [("kind", 1), ("key", 1)]
    assert out == {"ok": True, "maxLevel": 9, "invites": 2, "quests": {"q.1": "2026-01-02T03:04:05.000Z"},
                   "counters": {"kills.total": 12},
                   "logins": [{"day": NOW_DAY - 2, "minutes": [0, 2]}, {"day": NOW_DAY, "minutes": [NOW_MINUTE]}]}


def test_progress_summary_reads_aggregates_the_login_count_and_the_latest_day(driver, mock):
    bits = bytearray(180)
    bits[NOW_MINUTE // 8] = 1 << (NOW_MINUTE % 8)
    aggregates = [
        {"_id": 1, "userId": USER, "kind": "counter", "key": "kills.total", "total": 12, "updatedAt": NOW},
        {"_id": 4, "userId": USER, "kind": "level", "key": None, "maxLevel": 9, "updatedAt": NOW},
        {"_id": 7, "userId": USER, "kind": "quest", "key": "q.1", "completedAt": NOW},
    ]
    latest = {"_id": 6, "userId": USER, "kind": "login", "key": NOW_DAY, "minutes": bytes(bits)}
    logins = {"userId": USER, "kind": "login"}
    mock.on("find", [cursor("user_progress", [latest])], coll="user_progress", match=lambda d: d["filter"] == logins)
    mock.on("find", [cursor("user_progress", aggregates)], coll="user_progress")
    mock.on("aggregate", [cursor("user_progress", [{"_id": 1, "n": 3}])], coll="user_progress")
    out = run(driver, mock, "progress-summary")
    assert out == {"ok": True, "maxLevel": 9, "invites": 0, "quests": {"q.1": "2026-01-02T03:04:05.000Z"},
                   "counters": {"kills.total": 12}, "loginDays": 3,
                   "logins": [{"day": NOW_DAY, "minutes": [NOW_MINUTE]}]}  # the bits as stored: nothing decoded
    finds = [e["doc"] for e in mock.commands("find")]
    assert finds[0]["filter"] == {"userId": USER, "kind": {"$ne": "login"}}
    newest = [f for f in finds if f["filter"] == logins]
    assert len(newest) == 1 and newest[0]["sort"] == {"key": -1} and newest[0]["limit"] == 1
    assert mock.commands("aggregate")[0]["doc"]["pipeline"][0] == {"$match": logins}
    assert not in_txn(mock.commands())


# ---- event lists ----

def list_query(mock):
    pages = [e["doc"] for e in mock.commands("find") if coll_of(e) == "events" and "projection" not in e["doc"]]
    assert len(pages) == 1
    assert list(pages[0]["sort"].items()) == [("createdAt", -1), ("_id", -1)] and pages[0]["limit"] == 3
    return pages[0]


@pytest.mark.parametrize("variant,clause", [
    ("upcoming", {"canceledAt": None, "startDate": {"$gt": AT}}),
    ("active", {"canceledAt": None, "startDate": {"$lte": AT}, "endDate": {"$gt": AT}}),
    ("finished", {"canceledAt": None, "endDate": {"$lte": AT}}),
    ("canceled", {"canceledAt": {"$ne": None}}),
    ("open", {"canceledAt": None, "endDate": {"$gt": AT}}),
    ("at", {"canceledAt": None, "startDate": {"$lte": AT - datetime.timedelta(hours=1)},
            "endDate": {"$gt": AT - datetime.timedelta(hours=1)}}),
    # combined filters narrow one set of bounds: still one clause, one comparison per bound
    ("active-open", {"canceledAt": None, "startDate": {"$lte": AT}, "endDate": {"$gt": AT}}),
    ("finished-open", {"canceledAt": None, "endDate": {"$gt": AT, "$lte": AT}}),
])
def test_event_list_filters(driver, mock, variant, clause):
    out = run(driver, mock, "event-list-" + variant)
    assert out["ok"], out
    assert list_query(mock)["filter"] == {"$and": [clause]}


def test_event_list_without_filters_sends_an_empty_filter(driver, mock):
    assert run(driver, mock, "event-list-any")["ok"]
    assert list_query(mock)["filter"] == {}


def test_event_list_of_contradicting_bounds_is_empty_without_a_query(driver, mock):
    # canceled and running at an instant: the bounds say empty, so nothing is asked
    assert run(driver, mock, "event-list-canceled-at") == {"ok": True, "items": [], "more": False}
    assert not mock.commands("find")


def test_event_list_pages_after_the_cursor_newest_first(driver, mock):
    older = [{"_id": i, "title": "e", "createdAt": NOW, "rewards": []}
             for i in ("5f00000000000000000000e0", "5f00000000000000000000df", "5f00000000000000000000de")]
    mock.on("find", [cursor("events", [{"_id": EVENT, "createdAt": NOW}])], coll="events",
            match=lambda d: d["filter"] == {"_id": EVENT})
    mock.on("find", [cursor("events", older)], coll="events")
    out = run(driver, mock, "event-list-cursor")
    lookup = [e["doc"] for e in mock.commands("find") if e["doc"]["filter"] == {"_id": EVENT}]
    assert len(lookup) == 1 and lookup[0]["projection"] == {"createdAt": 1}
    page = list_query(mock)
    assert page["filter"] == {"$and": [{"$or": [{"createdAt": {"$lt": AT}},
                                                {"createdAt": AT, "_id": {"$lt": EVENT}}]}]}
    assert out["more"] is True and [e["id"] for e in out["items"]] == [x["_id"] for x in older[:2]]


def test_event_list_with_an_unknown_cursor_is_empty(driver, mock):
    mock.on("find", [cursor("events", [])], coll="events", match=lambda d: d["filter"] == {"_id": EVENT})
    assert run(driver, mock, "event-list-cursor") == {"ok": True, "items": [], "more": False}
    assert len(mock.commands("find")) == 1


def test_event_list_joins_definitions_and_drops_missing_ones(driver, mock):
    defs = [{"_id": DEF0, "name": "Gold", "type": "CURRENCY", "value": {"amount": 100}, "isActive": True}]
    mock.on("find", [cursor("reward_definitions", defs)], coll="reward_definitions")
    out = run(driver, mock, "event-list-any")
    joins = [e["doc"] for e in mock.commands("find") if coll_of(e) == "reward_definitions"]
    assert len(joins) == 1 and sorted(joins[0]["filter"]["_id"]["$in"]) == [DEF0, DEF1]
    (ev,) = out["items"]
    assert [(r["rewardDefinitionId"], r["name"], r["stockLeft"]) for r in ev["rewards"]] == [(DEF0, "Gold", 10)]


def test_def_list_filters_by_type_and_state_after_the_cursor(driver, mock):
    mock.on("find", [cursor("reward_definitions", [{"_id": DEF1, "createdAt": NOW}])], coll="reward_definitions",
            match=lambda d: d["filter"] == {"_id": DEF1})
    mock.on("find", [cursor("reward_definitions", [{"_id": DEF0, "name": "Gold", "type": "CURRENCY",
                                                    "value": {"amount": 100}, "description": "", "isActive": True,
                                                    "referenced": True, "createdBy": OPERATOR, "createdAt": NOW,
                                                    "updatedAt": NOW}])], coll="reward_definitions")
    out = run(driver, mock, "def-list")
    page = [e["doc"] for e in mock.commands("find") if e["doc"]["filter"] != {"_id": DEF1}]
    assert len(page) == 1
    assert list(page[0]["sort"].items()) == [("createdAt", -1), ("_id", -1)] and page[0]["limit"] == 3
    assert page[0]["filter"] == {"$and": [{"type": "CURRENCY"}, {"isActive": True}, {
        "$or": [{"createdAt": {"$lt": AT}}, {"createdAt": AT, "_id": {"$lt": DEF1}}]}]}
    assert out["ok"] and out["more"] is False
    assert out["items"][0]["referenced"] is True and out["items"][0]["value"] == {"amount": 100}


@pytest.mark.parametrize("scenario", [
    "def-create", "def-get", "event-audit-list", "progress-summary", "auth-find-id", "auth-insert-refresh",
    "auth-clear-failures",
])
def test_other_store_operations_smoke(driver, mock, scenario):
    out = run(driver, mock, scenario)
    assert out["ok"], out
    writes_in_txn = [e for e in only_writes(mock.commands()) if "autocommit" in e["doc"]]
    if scenario == "def-create":  # an upsert keeping createdBy, createdAt and referenced, with its audit entry
        txn = transaction_of(mock, [("update", "reward_definitions"), ("insert", "audit_logs"),
                                    ("commitTransaction", None)])
        u = first_update(txn[0])
        assert u["upsert"] is True and u["u"]["$setOnInsert"] == {"referenced": False, "createdBy": OPERATOR,
                                                                  "createdAt": AT}
    else:
        assert not writes_in_txn
