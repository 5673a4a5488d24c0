"""The log of session changes (api/session_cache.c, the auth worker's RP_SESSION_CHANGES_ROUTE):
each api process reads it every SESSION_POLL_MS, so it may keep an account's state far longer
than SESSION_CACHE_MS, yet a change made through another api process still reaches it. The
cluster run has two api processes: the account is disabled through the first, and the second,
which would otherwise keep the state for SESSION_KEEP_MS (ten minutes here), refuses the token."""
import time

import requests

from conftest import MODE, Client
from platform_proc import Cluster, Platform, session_metrics, wait_for

TTL_MS = 2000


def test_a_state_is_kept_past_the_ttl_and_a_change_through_another_api_still_reaches_it():
    env = {"RATE_LIMIT_RPS": "0", "RATE_LIMIT_AUTH_RPS": "0", "PASSWORD_HASH": "min",
           "SESSION_CACHE_MS": str(TTL_MS), "SESSION_KEEP_MS": "600000", "SESSION_POLL_MS": "50"}
    p = (Cluster(env, api_processes=2) if MODE == "cluster" else Platform(env)).start()
    try:
        api = Client(p)
        ports = [p.port] + list(getattr(p, "extra_ports", []))
        other = ports[-1]  # the second api process in the cluster; the only one in process
        for port in ports:
            wait_for(lambda: session_metrics(p, port)["rp_session_log_current"] == 1, 60,
                     "api on %d to read the session log" % port)
        name, pw, acc = api.register("sl")
        token = api.login(name, pw)["accessToken"]
        me = "http://127.0.0.1:%d/api/v1/auth/me" % other
        headers = {"Authorization": "Bearer " + token}
        assert requests.get(me, headers=headers, timeout=10).status_code == 200
        fetched = session_metrics(p, other)["rp_session_accounts_fetched_total"]
        kept_from = time.monotonic()
        # past twice the ttl the state is still the one fetched: the log covers it
        while time.monotonic() - kept_from < 2 * TTL_MS / 1000:
            r = requests.get(me, headers=headers, timeout=10)
            assert r.status_code == 200, r.text
            time.sleep(0.2)
        after = session_metrics(p, other)
        assert after["rp_session_log_current"] == 1
        assert after["rp_session_accounts_fetched_total"] == fetched, "asked again within SESSION_KEEP_MS"
        forgotten = after["rp_session_log_forgotten_total"]

        # disabled through the first api process: the second reads it in the log
        r = api.call("PUT", "/auth/users/%s/status" % acc["id"], token=api.admin_token(),
                     json={"disabled": True, "reason": "session log test"})
        assert r.status_code == 200, r.text
        wait_for(lambda: requests.get(me, headers=headers, timeout=10).status_code == 401, 30,
                 "the api on %d to refuse the disabled account's token" % other)
        r = requests.get(me, headers=headers, timeout=10)
        assert r.json()["error"]["code"] == "ACCOUNT_DISABLED", r.text
        wait_for(lambda: session_metrics(p, other)["rp_session_log_forgotten_total"] > forgotten, 30,
                 "the log's entry to be read")
    finally:
        assert p.stop() == 0, p.log_tail()


def test_the_session_log_is_not_reachable_over_http(api):
    token, _ = api.user("slh")
    for tok in (token, api.admin_token()):
        r = api.post("/_internal/session_changes", token=tok, json={"after": -1})
        assert r.status_code == 404, r.text
        assert "userIds" not in r.json(), r.text
