"""GET /events/reward-requests/export: the whole filtered history streamed as CSV or NDJSON, page
by page (pages of 3 rows here, so every export crosses pages), equal to the list's items for the
same filter, formula-safe, and cut short visibly when a page cannot be read."""
import csv
import io
import json
import os
import secrets
import sqlite3
import threading
import time

import pytest
import requests

from conftest import MODE, Client, World
from platform_proc import Cluster, Platform, wait_for

COLUMNS = ["id", "userId", "eventId", "status", "source", "periodKey", "requestedAt", "processedAt", "processorId",
           "failureReason", "notes", "batchId", "createdAt", "updatedAt", "failureDetails", "claimedRewards"]
JSON_COLUMNS = {"failureDetails", "claimedRewards"}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EVIL_NAME = '=HYPERLINK("http://evil.example","click")'


def start(env, data_dir=None):
    env = dict({"RATE_LIMIT_AUTH_RPS": "0", "RATE_LIMIT_RPS": "0"}, **env)
    return (Cluster(env, data_dir=data_dir) if MODE == "cluster" else Platform(env, data_dir=data_dir)).start()


@pytest.fixture(scope="module")
def small_pages():
    p = start({"EXPORT_PAGE_SIZE": "3"})
    yield p
    code = p.stop()
    assert code == 0, "platform exited with %s:\n%s" % (code, p.log_tail())


@pytest.fixture(scope="module")
def seeded(small_pages):
    """Requests of every kind: claims paid, awaiting review, approved and rejected with notes that
    look like formulas, and batch grants whose reason does; a reward named like a formula."""
    w = World(Client(small_pages))
    evil = w.definition(name=EVIL_NAME)
    ev_paid = w.event(rewards=[{"rewardDefinitionId": evil["id"], "quantity": 2}])
    ev_review = w.event(requiresApproval=True)
    ev_batch = w.event()
    players = [w.player() for _ in range(5)]
    for token, _ in players:
        assert w.claim(token, ev_paid["id"]).status_code == 201
    review = []
    for token, _ in players[:4]:
        r = w.claim(token, ev_review["id"])
        assert r.status_code == 201 and r.json()["status"] == "AWAITING_REVIEW", r.text
        review.append(r.json()["id"])
    r = w.api.post("/events/reward-requests/%s/approve" % review[0], token=w.operator, json={"notes": "=1+1"})
    assert r.status_code == 200, r.text
    r = w.api.post("/events/reward-requests/%s/reject" % review[1], token=w.operator, json={"notes": "-2+3, \"no\""})
    assert r.status_code == 200, r.text
    r = w.api.post("/events/%s/batch-grants" % ev_batch["id"], token=w.operator,
                   json={"userIds": [uid for _, uid in players], "reason": "@SUM(A1)\r\nline two"})
    assert r.status_code == 202, r.text
    batch_id = r.json()["id"]

    def settled():
        b = w.api.get("/events/batches/" + batch_id, token=w.operator).json()
        return b["status"] == "COMPLETED"
    wait_for(settled, 120, "the batch to settle")
    return {"world": w, "players": players, "events": (ev_paid, ev_review, ev_batch), "total": 14}


def list_all(w, params=None):
    items, cursor = [], None
    while True:
        q = dict(params or {}, limit=100)
        if cursor:
            q["cursor"] = cursor
        r = w.api.get("/events/reward-requests", token=w.auditor, params=q)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["nextCursor"]
        if not cursor:
            return items


def export(w, fmt, params=None, token=None):
    q = dict(params or {})
    if fmt:
        q["format"] = fmt
    return w.api.get("/events/reward-requests/export", token=token or w.auditor, params=q)


def csv_rows(r):
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in r.headers
    disp = r.headers["Content-Disposition"]
    assert disp.startswith('attachment; filename="reward-requests-') and disp.endswith('.csv"'), disp
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Cache-Control"] == "no-store"
    text = r.content.decode("utf-8")
    assert text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == COLUMNS
    return rows[1:]


def expected_cell(col, value):
    if value is None:
        return ""
    if col in JSON_COLUMNS:
        return value  # compared parsed
    return "'" + value if value.startswith(FORMULA_START) else value


def assert_csv_equals(rows, items):
    assert len(rows) == len(items)
    for row, item in zip(rows, items):
        assert set(item) <= set(COLUMNS), "a list field the export does not carry: %s" % (set(item) - set(COLUMNS))
        for col, cell in zip(COLUMNS, row):
            want = expected_cell(col, item.get(col))
            if col in JSON_COLUMNS and want != "":
                assert json.loads(cell) == want, (col, cell)
            else:
                assert cell == want, (col, cell, item.get(col))


def test_only_auditors_and_admins_export(seeded):
    w = seeded["world"]
    assert export(w, "csv", token="x").status_code == 401
    r = w.api.get("/events/reward-requests/export")
    assert r.status_code == 401
    user = seeded["players"][0][0]
    for token in (user, w.operator, w.game_server):
        r = export(w, "csv", token=token)
        assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN", r.text
    for token in (w.auditor, w.admin):
        assert export(w, "csv", token=token).status_code == 200


@pytest.mark.parametrize("params", [
    {"format": "xml"}, {"format": ""}, {"format": "CSV"}, {"userId": "nope"}, {"eventId": "0123"},
    {"status": "DONE"}, {"from": "yesterday"}, {"to": "2026-13-01T00:00:00Z"}, {"limit": "5"},
    {"cursor": "0123456789abcdef01234567"}, {"userid": "0123456789abcdef01234567"},
])
def test_bad_format_or_filter_is_400_and_nothing_is_streamed(seeded, params):
    w = seeded["world"]
    r = w.api.get("/events/reward-requests/export", token=w.auditor, params=params)
    assert r.status_code == 400, (params, r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert body["error"]["code"] == "VALIDATION_FAILED" and body["requestId"] == r.headers["X-Request-Id"]


def test_csv_is_the_list_across_pages(seeded):
    w = seeded["world"]
    items = list_all(w)
    assert len(items) == seeded["total"] > 3 * 4  # at least five pages of three
    rows = csv_rows(export(w, "csv"))
    assert_csv_equals(rows, items)
    assert len({row[0] for row in rows}) == len(rows)
    # no format: CSV
    assert csv_rows(export(w, None)) == rows


def test_ndjson_is_the_list_across_pages(seeded):
    w = seeded["world"]
    r = export(w, "ndjson")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/x-ndjson"
    assert r.headers["Transfer-Encoding"] == "chunked"
    assert r.headers["Content-Disposition"].endswith('.ndjson"')
    assert r.content.endswith(b"\n")
    lines = r.content.decode("utf-8").split("\n")[:-1]
    assert [json.loads(line) for line in lines] == list_all(w)


def test_filters_apply_as_in_the_list(seeded):
    w = seeded["world"]
    ev_paid, ev_review, ev_batch = seeded["events"]
    user = seeded["players"][0][1]
    everything = list_all(w)
    middle = everything[len(everything) // 2]["requestedAt"]
    for params in ({"eventId": ev_paid["id"]}, {"eventId": ev_batch["id"], "userId": user}, {"userId": user},
                   {"status": "AWAITING_REVIEW"}, {"status": "FAILED", "eventId": ev_review["id"]},
                   {"from": middle}, {"to": middle}):
        items = list_all(w, params)
        assert 0 < len(items) < len(everything), params
        assert_csv_equals(csv_rows(export(w, "csv", params)), items)
        lines = export(w, "ndjson", params).content.decode("utf-8").split("\n")[:-1]
        assert [json.loads(line) for line in lines] == items, params


def test_formula_looking_cells_are_prefixed(seeded):
    w = seeded["world"]
    r = export(w, "csv")
    raw = r.content.decode("utf-8")
    # the cells as bytes on the wire: quoted, apostrophe first, quotes doubled
    assert ",\"'=1+1\"," in raw
    assert ",\"'-2+3, \"\"no\"\"\"," in raw
    assert ",\"'@SUM(A1)\r\nline two\"," in raw
    notes = {row[COLUMNS.index("notes")] for row in csv_rows(r)}
    assert {"'=1+1", "'-2+3, \"no\"", "'@SUM(A1)\r\nline two"} <= notes
    # a reward's name is inside the claimedRewards JSON cell, which starts with '[': it is data
    cells = [row[-1] for row in csv_rows(r) if any(c["name"] == EVIL_NAME for c in json.loads(row[-1]))]
    assert len(cells) == 5 and all(cell.startswith("[") for cell in cells)
    # NDJSON carries the values as they are
    ndjson = [json.loads(line) for line in export(w, "ndjson").content.decode("utf-8").split("\n")[:-1]]
    assert "=1+1" in {item["notes"] for item in ndjson}


def test_an_empty_result_is_the_header_alone(seeded):
    w = seeded["world"]
    nobody = {"userId": secrets.token_hex(12)}
    r = export(w, "csv", nobody)
    assert r.status_code == 200 and r.headers["Transfer-Encoding"] == "chunked"
    assert r.content == (",".join(COLUMNS) + "\r\n").encode()
    r = export(w, "ndjson", nobody)
    assert r.status_code == 200 and r.headers["Transfer-Encoding"] == "chunked" and r.content == b""


def test_rows_written_while_paging_are_neither_skipped_nor_repeated(seeded):
    w = seeded["world"]
    ev = w.event()
    players = [w.player() for _ in range(6)]
    before = {item["id"] for item in list_all(w)}
    stop = threading.Event()

    def claim_all():
        for token, _ in players:
            if stop.is_set():
                return
            assert w.claim(token, ev["id"]).status_code == 201

    t = threading.Thread(target=claim_all)
    t.start()
    seen = []
    try:
        while t.is_alive():
            seen.append([row[0] for row in csv_rows(export(w, "csv"))])
    finally:
        stop.set()
        t.join()
    seen.append([row[0] for row in csv_rows(export(w, "csv"))])
    after = {item["id"] for item in list_all(w)}
    for ids in seen:
        assert len(ids) == len(set(ids)), "a row came twice"
        assert before <= set(ids) <= after, "a row that existed before the export is missing"
    assert set(seen[-1]) == after


def test_connection_is_reused_after_an_export(seeded):
    w = seeded["world"]
    s = requests.Session()
    h = {"Authorization": "Bearer " + w.auditor}
    url = w.api.p.url("/events/reward-requests/export")
    a = s.get(url, headers=h, params={"format": "csv"}, timeout=30)
    b = s.get(url, headers=h, params={"format": "ndjson"}, timeout=30)
    assert a.status_code == b.status_code == 200
    assert a.headers.get("Connection", "").lower() != "close"
    me = s.get(w.api.p.url("/auth/me"), headers=h, timeout=30)
    assert me.status_code == 200


def seed_rows(db_path, n):
    """n FAILED requests written straight into events.db (what bench/export.sh does for a million)."""
    now = int(time.time() * 1000)
    db = sqlite3.connect(db_path, timeout=30)
    user, event = secrets.token_hex(12), secrets.token_hex(12)
    with db:
        db.executemany(
            "INSERT INTO reward_requests (id, user_id, event_id, period_key, active_key, status, claimed_rewards, "
            "requested_at, processed_at, failure_reason, source, created_at, updated_at) "
            "VALUES (?, ?, ?, 'ONCE', NULL, 'FAILED', '[]', ?, ?, 'CONDITION_NOT_MET', 'CLAIM', ?, ?)",
            (("%024x" % (0x6500000000000000000000 + i), user, event, now - i, now - i, now - i, now - i)
             for i in range(n)))
    db.close()


def test_a_page_failing_mid_stream_truncates_the_transfer(tmp_path):
    """After the status line a failure cannot become an error status: the connection ends
    without the terminating chunk, so the client knows the file is incomplete."""
    p = start({}, data_dir=str(tmp_path))
    try:
        api = Client(p)
        auditor = api.admin_token()
        db_path = os.path.join(p.data_dir, "events.db")
        seed_rows(db_path, 100000)  # ~20 MB of CSV: more than the socket buffers hold
        r = requests.get(p.url("/events/reward-requests/export"), headers={"Authorization": "Bearer " + auditor},
                         params={"format": "csv"}, stream=True, timeout=60)
        assert r.status_code == 200 and r.headers["Transfer-Encoding"] == "chunked"
        chunks = r.iter_content(65536)
        got = len(next(chunks))
        db = sqlite3.connect(db_path, timeout=30)
        db.execute("ALTER TABLE reward_requests RENAME TO reward_requests_away")  # the next page fails
        db.commit()
        try:
            with pytest.raises(requests.exceptions.ChunkedEncodingError):
                for c in chunks:
                    got += len(c)
            assert got < 100000 * 150
        finally:
            db.execute("ALTER TABLE reward_requests_away RENAME TO reward_requests")
            db.commit()
            db.close()
        wait_for(lambda: "export ended without its last chunk" in p.log_tail(200), 30, "the log line")
        # the platform serves exports again once pages can be read
        r = requests.get(p.url("/events/reward-requests/export"), headers={"Authorization": "Bearer " + auditor},
                         params={"format": "csv", "status": "SUCCESS"}, timeout=60)
        assert r.status_code == 200 and r.content == (",".join(COLUMNS) + "\r\n").encode()
    finally:
        code = p.stop()
    assert code == 0, "platform exited with %s:\n%s" % (code, p.log_tail())
