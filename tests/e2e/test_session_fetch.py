"""The api's session check (api/session_cache.c) for players whose account state it does not
hold: over RabbitMQ, requests that miss while a fetch is on its way share the next fetch; in
process each asks alone. Held at the failpoint session.fetch: the first fetch waits there while
the other requests queue behind it, so what happens next does not depend on timing."""
import json
import os
import threading

from conftest import Client
from platform_proc import Cluster, Platform, session_metrics, wait_for

MODE = os.environ.get("E2E_MODE", "embedded")
PLAYERS = 16


def held(p):
    """How many fetches wait at the failpoint (its log line, once per held fetch)."""
    return sum(1 for ln in p.log_tail(100000).splitlines()
               if "failpoint session.fetch reached" in ln)


def test_players_that_miss_together_are_answered_each_with_their_own_account(tmp_path):
    hold = tmp_path / "hold"
    env = {"RATE_LIMIT_RPS": "0", "RATE_LIMIT_AUTH_RPS": "0", "LOGIN_GLOBAL_RPS": "0",
           "RP_FAILPOINT": "session.fetch", "RP_FAILPOINT_HOLD": str(hold)}
    p = (Cluster(env) if MODE == "cluster" else Platform(env)).start()
    try:
        api = Client(p)
        players = []
        for _ in range(PLAYERS):
            name, pw, _ = api.register("sf")
            players.append((name, api.login(name, pw)["accessToken"]))
        before = session_metrics(p)
        hold.write_text("")
        answers = [None] * PLAYERS

        def me(i):
            answers[i] = Client(p).get("/auth/me", token=players[i][1])

        threads = [threading.Thread(target=me, args=(0,))]
        threads[0].start()
        wait_for(lambda: held(p) == 1, 60, "the first fetch to be held")
        threads += [threading.Thread(target=me, args=(i,)) for i in range(1, PLAYERS)]
        for t in threads[1:]:
            t.start()
        if MODE == "cluster":
            # the others queue behind the held fetch
            wait_for(lambda: session_metrics(p)['rp_session_fetch_waiting'] == PLAYERS - 1, 60,
                     "%d requests to wait for the next fetch" % (PLAYERS - 1))
        else:
            # in process each asks alone: all of them are held
            wait_for(lambda: held(p) == PLAYERS, 60, "every fetch to be held")
        hold.unlink()
        for t in threads:
            t.join(60)
        for i, (name, _) in enumerate(players):
            r = answers[i]
            assert r is not None and r.status_code == 200, r and r.text
            assert r.json()["username"] == name, "each request is answered with its own account"
        after = session_metrics(p)
        delta = {k: after[k] - before.get(k, 0) for k in after}
        assert delta['rp_session_accounts_fetched_total'] == PLAYERS, json.dumps(delta)
        assert after['rp_session_fetch_waiting'] == 0
        if MODE == "cluster":
            assert delta['rp_session_fetches_total{kind="single"}'] == 1, json.dumps(delta)
            assert delta['rp_session_fetches_total{kind="batch"}'] == 1, json.dumps(delta)
        else:
            assert delta['rp_session_fetches_total{kind="single"}'] == PLAYERS, json.dumps(delta)
            assert delta['rp_session_fetches_total{kind="batch"}'] == 0, json.dumps(delta)
        # each token verified on its first use, and kept: the second request of each player is
        # answered from the api's verified tokens
        assert delta['rp_token_checks_total{how="verified"}'] == PLAYERS, json.dumps(delta)
        for name, token in players:
            r = api.get("/auth/me", token=token)
            assert r.status_code == 200 and r.json()["username"] == name, r.text
        again = session_metrics(p)
        delta = {k: again[k] - after[k] for k in again}
        assert delta['rp_token_checks_total{how="kept"}'] == PLAYERS, json.dumps(delta)
        assert delta['rp_token_checks_total{how="verified"}'] == 0, json.dumps(delta)
    finally:
        if hold.exists():
            hold.unlink()
        assert p.stop() == 0, p.log_tail()


def test_the_session_routes_are_not_reachable_over_http(api):
    # the api's own questions to the auth worker: the gateway forwards only its route table
    token, body = api.user("sr")
    uid = body.get("user", {}).get("id") or api.get("/auth/me", token=token).json()["id"]
    for path, payload in (("/_internal/sessions", {"userIds": [uid]}), ("/_internal/session", {"userId": uid}),
                          ("/_internal/session_changes", {"after": -1})):
        for tok in (token, api.admin_token()):
            r = api.post(path, token=tok, json=payload)
            assert r.status_code == 404, (path, r.status_code, r.text)
            assert not {"sessions", "revokedJtis", "userIds"} & set(r.json()), r.text
            assert r.json()["error"]["code"], r.text


def test_the_caches_are_sized_by_configuration(tmp_path):
    # TOKEN_CACHE_SLOTS=0 keeps no verified token; SESSION_CACHE_SLOTS=8 (one set) holds eight
    # accounts, so nine players taking turns ask for their states again
    env = {"RATE_LIMIT_RPS": "0", "RATE_LIMIT_AUTH_RPS": "0", "LOGIN_GLOBAL_RPS": "0",
           "TOKEN_CACHE_SLOTS": "0", "SESSION_CACHE_SLOTS": "8"}
    p = (Cluster(env) if MODE == "cluster" else Platform(env)).start()
    try:
        api = Client(p)
        players = []
        for _ in range(9):
            name, pw, _ = api.register("cs")
            players.append((name, api.login(name, pw)["accessToken"]))
        before = session_metrics(p)
        for _ in range(2):
            for name, token in players:
                r = api.get("/auth/me", token=token)
                assert r.status_code == 200 and r.json()["username"] == name, r.text
        after = session_metrics(p)
        delta = {k: after[k] - before.get(k, 0) for k in after}
        assert delta['rp_token_checks_total{how="kept"}'] == 0, json.dumps(delta)
        assert delta['rp_token_checks_total{how="verified"}'] == 18, json.dumps(delta)
        assert delta['rp_session_accounts_fetched_total'] > 9, json.dumps(delta)
    finally:
        assert p.stop() == 0, p.log_tail()
