"""Wire-level contract tests of service accounts and API keys on the MongoDB auth store.

The same scripted replica-set primary as test_mongo_contract.py answers tests/contract/mongo_driver.c,
whose auth-sa-* scenarios send one request through the whole auth worker on the MongoDB store
(rp_auth_worker_new with STORE=mongodb, the clock at NOW, an ADMIN caller): the rules of
workers/auth/service_accounts.c over auth_store_mongo.c's service account operations. The tests pin
what auth_store_sqlite.c does and auth_store.h promises: which writes share one transaction, the
filters of "live" keys, what a duplicate name answers, and that the key look-up writes lastUsedAt
only when the stored one is older than a minute.

Scripted replies are beliefs about a MongoDB server (wire version 17); those not shared with
test_mongo_contract.py are marked ASSUMPTION.
"""

import datetime

import pytest

from test_mongo_contract import (  # noqa: F401 (driver, mock and primary are fixtures)
    MOCKUPDB_ERROR,
    NO_MATCH,
    NOW,
    OPERATOR,
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
)

pytestmark = pytest.mark.skipif(MOCKUPDB_ERROR is not None, reason="mockupdb not importable (see test_mongo_contract)")

AT = NOW.replace(tzinfo=None)  # BSON dates decode naive
SA = "5f0000000000000000000051"
KEY = "5f0000000000000000000061"
HASH = "ab" + "0" * 62
ADMIN_DOC = {"_id": OPERATOR, "username": "root", "usernameLower": "root", "email": "r@x.io", "emailLower": "r@x.io",
             "passwordHash": "h", "roles": 9, "createdAt": NOW, "updatedAt": NOW}


def sa_doc():
    return {"_id": SA, "name": "Game_1", "nameLower": "game_1", "roles": 16, "createdBy": OPERATOR, "createdAt": NOW}


def key_doc(**over):
    doc = {"_id": KEY, "accountId": SA, "keyHash": HASH, "createdAt": NOW, "expiresAt": None, "revokedAt": None,
           "lastUsedAt": None}
    doc.update(over)
    return doc


def counted(coll, n):
    return cursor(coll, [{"_id": 1, "n": n}])


def key_updates(mock):
    """Writes to service_keys (the start-up seed of the admins guard is an update too)."""
    return [e for e in mock.commands("update") if coll_of(e) == "service_keys"]


def as_admin(mock):
    """The caller is an enabled ADMIN in the store (every service account route reads it first)."""
    mock.on("find", [cursor("users", [ADMIN_DOC])], coll="users")


def committed(mock, steps):
    txn = transaction_of(mock, steps)
    commits = mock.commands("commitTransaction")
    assert len(commits) == 1 and commits[0]["doc"]["writeConcern"]["w"] == "majority"
    assert not mock.commands("abortTransaction")
    return txn


def audit_of(entry, action):
    doc = entry["doc"]["documents"][0]
    assert doc["log"] == "auth" and doc["action"] == action and doc["targetType"] == "service_account"
    assert doc["actorId"] == OPERATOR and doc["at"] == AT
    return doc


# the live keys of SA at NOW: not revoked, no expiry or a later one (KEY_LIVE in SQLite)
LIVE = {"accountId": SA, "revokedAt": None, "$or": [{"expiresAt": None}, {"expiresAt": {"$gt": AT}}]}


def test_open_creates_the_name_and_key_hash_indexes(driver, mock):
    assert run(driver, mock, "open-auth") == {"ok": True}
    specs = {}
    for e in mock.commands("createIndexes"):
        for ix in e["doc"]["indexes"]:
            specs.setdefault(e["doc"]["createIndexes"], {})[ix["name"]] = ix
    names = specs["service_accounts"]["service_accounts_name_lower"]
    assert names["key"] == {"nameLower": 1} and names["unique"]
    hashes = specs["service_keys"]["service_keys_hash"]
    assert hashes["key"] == {"keyHash": 1} and hashes["unique"]
    assert list(specs["service_keys"]["service_keys_account"]["key"]) == ["accountId", "createdAt"]


def test_create_inserts_account_key_and_audit_in_one_transaction(driver, mock):
    as_admin(mock)
    out = run(driver, mock, "auth-sa-create")
    assert out["ok"] and out["status"] == 201, out
    body = out["body"]
    assert body["name"] == "Game_1" and body["roles"] == ["GAME_SERVER"] and set(body) == {"id", "name", "roles",
                                                                                          "keyId"}
    txn = committed(mock, [("insert", "service_accounts"), ("insert", "service_keys"), ("insert", "audit_logs"),
                           ("commitTransaction", None)])
    acc = txn[0]["doc"]["documents"][0]
    assert acc == {"_id": body["id"], "name": "Game_1", "nameLower": "game_1", "roles": 16, "createdAt": AT,
                   "createdBy": OPERATOR}
    key = txn[1]["doc"]["documents"][0]
    assert key == {"_id": body["keyId"], "accountId": body["id"], "keyHash": HASH, "createdAt": AT,
                   "revokedAt": None, "lastUsedAt": None, "expiresAt": None}
    entry = audit_of(txn[2], "service_account.create")
    assert entry["targetId"] == body["id"] and entry["after"]["keyId"] == body["keyId"]


def dup_name():
    """ASSUMPTION: a duplicate key is a write error inside ok: 1, as in test_mongo_contract_stores."""
    return {"ok": 1, "n": 0, "writeErrors": [{
        "index": 0, "code": 11000, "codeName": "DuplicateKey", "keyPattern": {"nameLower": 1},
        "keyValue": {"nameLower": "game_1"},
        "errmsg": 'E11000 duplicate key error collection: rp_contract.service_accounts index: '
                  'service_accounts_name_lower dup key: { nameLower: "game_1" }'}]}


def test_a_taken_name_is_409_and_nothing_is_kept(driver, mock):
    as_admin(mock)
    mock.on("insert", [dup_name()], coll="service_accounts")
    out = run(driver, mock, "auth-sa-create")
    assert out["ok"] and (out["status"], out["code"]) == (409, "NAME_TAKEN"), out
    assert not [e for e in mock.commands("insert") if coll_of(e) in ("service_keys", "audit_logs")]
    assert not mock.commands("commitTransaction")


def test_a_caller_who_is_no_longer_admin_changes_nothing(driver, mock):
    mock.on("find", [cursor("users", [dict(ADMIN_DOC, roles=1)])], coll="users")
    out = run(driver, mock, "auth-sa-create")
    assert (out["status"], out["code"]) == (403, "FORBIDDEN"), out
    assert not mock.commands("insert") and not in_txn(mock.commands())


@pytest.mark.parametrize("grace", [False, True])
def test_rotation_retires_the_live_keys_counts_and_inserts_in_one_transaction(driver, mock, grace):
    as_admin(mock)
    mock.on("find", [cursor("service_accounts", [sa_doc()])], coll="service_accounts")
    mock.on("aggregate", [counted("service_keys", 1 if grace else 0)], coll="service_keys")
    out = run(driver, mock, "auth-sa-rotate-grace" if grace else "auth-sa-rotate")
    assert out["ok"] and out["status"] == 201, out
    assert out["body"]["id"] == SA and out["body"]["name"] == "Game_1"
    txn = committed(mock, [("find", "service_accounts"), ("update", "service_keys"), ("aggregate", "service_keys"),
                           ("insert", "service_keys"), ("insert", "audit_logs"), ("commitTransaction", None)])
    upd = first_update(txn[1])
    assert upd["multi"] is True
    if grace:  # live keys that would outlive the grace get its end; sooner ones keep theirs
        until = AT + datetime.timedelta(seconds=60)
        assert upd["q"] == {"accountId": SA, "revokedAt": None,
                            "$or": [{"expiresAt": None}, {"expiresAt": {"$gt": until}}]}
        assert upd["u"] == {"$set": {"expiresAt": until}}
    else:
        assert upd["q"] == LIVE and upd["u"] == {"$set": {"revokedAt": AT}}
    assert txn[2]["doc"]["pipeline"][0]["$match"] == LIVE
    assert txn[3]["doc"]["documents"][0]["keyHash"] == HASH
    entry = audit_of(txn[4], "service_account.key.rotate")
    assert entry["after"] == {"keyId": out["body"]["keyId"], "graceSeconds": 60 if grace else 0}


def test_rotation_past_the_live_key_limit_is_409_and_inserts_nothing(driver, mock):
    as_admin(mock)
    mock.on("find", [cursor("service_accounts", [sa_doc()])], coll="service_accounts")
    mock.on("aggregate", [counted("service_keys", 8)], coll="service_keys")
    out = run(driver, mock, "auth-sa-rotate-grace")
    assert (out["status"], out["code"]) == (409, "TOO_MANY_KEYS"), out
    assert not mock.commands("insert") and not mock.commands("commitTransaction")
    assert len(mock.commands("abortTransaction")) == 1


def test_rotating_an_unknown_account_is_404(driver, mock):
    as_admin(mock)
    out = run(driver, mock, "auth-sa-rotate")
    assert (out["status"], out["code"]) == (404, "SERVICE_ACCOUNT_NOT_FOUND"), out
    assert not [e for e in mock.commands("update", "insert") if "autocommit" in e["doc"]]


def test_revoke_is_a_compare_and_set_on_an_unrevoked_key(driver, mock):
    as_admin(mock)
    mock.on("find", [cursor("service_accounts", [sa_doc()])], coll="service_accounts")
    out = run(driver, mock, "auth-sa-revoke")
    assert out["ok"] and out["status"] == 200 and out["body"] == {"id": SA, "keyId": KEY, "revoked": True}, out
    txn = committed(mock, [("find", "service_accounts"), ("update", "service_keys"), ("insert", "audit_logs"),
                           ("commitTransaction", None)])
    upd = first_update(txn[1])
    assert upd["q"] == {"_id": KEY, "accountId": SA, "revokedAt": None} and upd["u"] == {"$set": {"revokedAt": AT}}
    assert "multi" not in upd or upd["multi"] is False
    assert audit_of(txn[2], "service_account.key.revoke")["after"] == {"keyId": KEY}


def test_revoking_a_revoked_key_keeps_its_time_and_an_unknown_one_is_404(driver, mock):
    as_admin(mock)
    mock.on("find", [cursor("service_accounts", [sa_doc()])], coll="service_accounts")
    mock.on("update", [NO_MATCH], coll="service_keys")
    mock.on("find", [cursor("service_keys", [key_doc(revokedAt=NOW)])], coll="service_keys")
    out = run(driver, mock, "auth-sa-revoke")
    assert out["status"] == 200, out
    assert steps_of(in_txn(mock.commands()))[:3] == [("find", "service_accounts"), ("update", "service_keys"),
                                                     ("find", "service_keys")]
    mock.reset()
    as_admin(mock)
    mock.on("find", [cursor("service_accounts", [sa_doc()])], coll="service_accounts")
    mock.on("update", [NO_MATCH], coll="service_keys")
    out = run(driver, mock, "auth-sa-revoke")
    assert (out["status"], out["code"]) == (404, "KEY_NOT_FOUND"), out
    assert not mock.commands("commitTransaction") and not mock.commands("insert")


def test_delete_revokes_every_live_key_and_removes_the_account_in_one_transaction(driver, mock):
    as_admin(mock)
    mock.on("find", [cursor("service_accounts", [sa_doc()])], coll="service_accounts")
    out = run(driver, mock, "auth-sa-delete")
    assert out["ok"] and out["status"] == 200 and out["body"] == {"id": SA, "deleted": True}, out
    txn = committed(mock, [("find", "service_accounts"), ("update", "service_keys"), ("delete", "service_accounts"),
                           ("insert", "audit_logs"), ("commitTransaction", None)])
    upd = first_update(txn[1])
    assert upd["q"] == LIVE and upd["u"] == {"$set": {"revokedAt": AT}} and upd["multi"] is True
    assert txn[2]["doc"]["deletes"][0]["q"] == {"_id": SA}
    entry = audit_of(txn[3], "service_account.delete")
    assert entry["before"] == {"name": "Game_1", "roles": ["GAME_SERVER"]}


def test_list_reads_accounts_by_id_and_each_ones_live_keys(driver, mock):
    as_admin(mock)
    mock.on("find", [cursor("service_accounts", [sa_doc()])], coll="service_accounts")
    mock.on("find", [cursor("service_keys", [key_doc(lastUsedAt=NOW)])], coll="service_keys")
    out = run(driver, mock, "auth-sa-list")
    assert out["ok"] and out["status"] == 200, out
    item = out["body"]["items"][0]
    assert item["id"] == SA and item["roles"] == ["GAME_SERVER"] and item["createdBy"] == OPERATOR
    assert item["keys"] == [{"keyId": KEY, "createdAt": "2026-01-02T03:04:05.000Z", "expiresAt": None,
                             "lastUsedAt": "2026-01-02T03:04:05.000Z"}]
    finds = [e for e in mock.commands("find") if coll_of(e) in ("service_accounts", "service_keys")]
    assert finds[0]["doc"]["sort"] == {"_id": 1} and finds[0]["doc"]["limit"] == 21
    assert finds[1]["doc"]["filter"] == LIVE and finds[1]["doc"]["sort"] == {"createdAt": 1, "_id": 1}
    assert not in_txn(mock.commands())


def test_lookup_finds_the_key_by_hash_and_writes_its_last_use_once_a_minute(driver, mock):
    mock.on("find", [cursor("service_keys", [key_doc()])], coll="service_keys")
    mock.on("find", [cursor("service_accounts", [sa_doc()])], coll="service_accounts")
    out = run(driver, mock, "auth-sa-lookup")
    assert out["ok"] and out["status"] == 200, out
    assert out["body"] == {"serviceAccountId": SA, "name": "Game_1", "roles": ["GAME_SERVER"], "keyId": KEY,
                           "expiresAt": None}
    finds = [e for e in mock.commands("find") if coll_of(e) in ("service_keys", "service_accounts")]
    assert finds[0]["doc"]["filter"] == {"keyHash": HASH} and finds[1]["doc"]["filter"] == {"_id": SA}
    ups = [e for e in mock.commands("update") if coll_of(e) == "service_keys"]
    assert len(ups) == 1 and "autocommit" not in ups[0]["doc"]
    upd = first_update(ups[0])
    minute_ago = AT - datetime.timedelta(minutes=1)
    assert upd["q"] == {"_id": KEY, "$or": [{"lastUsedAt": None}, {"lastUsedAt": {"$lt": minute_ago}}]}
    assert upd["u"] == {"$set": {"lastUsedAt": AT}}


def test_lookup_of_a_key_used_within_the_minute_writes_nothing(driver, mock):
    recent = NOW - datetime.timedelta(seconds=30)
    mock.on("find", [cursor("service_keys", [key_doc(lastUsedAt=recent)])], coll="service_keys")
    mock.on("find", [cursor("service_accounts", [sa_doc()])], coll="service_accounts")
    assert run(driver, mock, "auth-sa-lookup")["status"] == 200
    assert not key_updates(mock)


@pytest.mark.parametrize("key, code", [
    (key_doc(revokedAt=NOW), "API_KEY_REVOKED"),
    (key_doc(expiresAt=NOW), "API_KEY_REVOKED"),  # the grace ended at NOW
    (None, "INVALID_API_KEY"),
])
def test_lookup_refuses_revoked_expired_and_unknown_keys_without_writing(driver, mock, key, code):
    mock.on("find", [cursor("service_keys", [key] if key else [])], coll="service_keys")
    mock.on("find", [cursor("service_accounts", [sa_doc()])], coll="service_accounts")
    out = run(driver, mock, "auth-sa-lookup")
    assert (out["status"], out["code"]) == (404, code), out
    assert not key_updates(mock)


def test_lookup_of_a_key_whose_account_is_gone_is_invalid(driver, mock):
    mock.on("find", [cursor("service_keys", [key_doc()])], coll="service_keys")
    out = run(driver, mock, "auth-sa-lookup")
    assert (out["status"], out["code"]) == (404, "INVALID_API_KEY"), out
    assert not key_updates(mock)


def test_me_of_a_key_caller_reads_the_service_account_when_no_user_has_the_id(driver, mock):
    mock.on("find", [cursor("users", [])], coll="users")
    mock.on("find", [cursor("service_accounts", [dict(sa_doc(), _id=OPERATOR)])], coll="service_accounts")
    out = run(driver, mock, "auth-sa-me")
    assert out["ok"] and out["status"] == 200, out
    assert out["body"] == {"id": OPERATOR, "name": "Game_1", "roles": ["GAME_SERVER"],
                           "createdAt": "2026-01-02T03:04:05.000Z", "type": "SERVICE_ACCOUNT"}
    finds = [e for e in mock.commands("find") if coll_of(e) == "service_accounts"]
    assert len(finds) == 1 and finds[0]["doc"]["filter"] == {"_id": OPERATOR}
    assert not in_txn(mock.commands())
