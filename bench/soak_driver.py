"""The Python parts of bench/soak.sh, one subcommand each:

    soak_driver.py setup BASE DATA_DIR PLAYERS EVENTS
        an operator's definition and EVENTS events (no conditions, unlimited stock), PLAYERS
        registered and logged-in players and a GAME_SERVER account; writes DATA_DIR/soak/
        {tokens,ids,events,gs_token,players.json}
    soak_driver.py side BASE DATA_DIR SECONDS
        the traffic wrk does not send, for SECONDS: logins (and a refresh after each) of the
        players, a registration now and then, and a batch grant every SOAK_BATCH_EVERY seconds
        (default 120, the first after 20 s) of SOAK_BATCH_N (default 5000) fresh accounts made
        straight in auth.db; prints one RESULT line
    soak_driver.py report CSV WARMUP MAX_GROWTH_PCT [ALLOW_KIB]
        the per-process table of the samples (RSS kB and open fds every 10 s) and the verdict:
        exits 1 when a process's highest peak after the warm-up exceeds the highest of the
        warm-up's last batch period by more than MAX_GROWTH_PCT, and its memory by more than
        ALLOW_KIB too (see bench/soak.sh)
"""
import csv
import datetime
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections import OrderedDict

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import players  # noqa: E402

ADMIN = ("bench_admin", "bench-admin-pw")  # bench/start.sh's bootstrap admin
PASSWORD = "soak-password-1"


def post_retrying(sess, url, body, headers=None):
    """Password hashing is bounded (a few at a time): on a busy machine a login may time out
    (504) or find the queue full (503); try again a few times."""
    r = None
    for attempt in range(6):
        r = sess.post(url, json=body, headers=headers, timeout=60)
        if r.status_code not in (503, 504):
            return r
        time.sleep(0.5 * (attempt + 1))
    return r


def iso(dt):
    return dt.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def event_body(definition, title):
    now = datetime.datetime.now(datetime.timezone.utc)
    return {"title": title, "startDate": iso(now - datetime.timedelta(hours=1)),
            "endDate": iso(now + datetime.timedelta(days=1)),
            "rewards": [{"rewardDefinitionId": definition, "quantity": 1}]}


def admin_session(base):
    s = requests.Session()
    r = post_retrying(s, base + "/auth/login", {"username": ADMIN[0], "password": ADMIN[1]})
    r.raise_for_status()
    s.headers["Authorization"] = "Bearer " + r.json()["accessToken"]
    return s


def register_and_login(base, sess, name):
    r = post_retrying(sess, base + "/auth/register",
                      {"username": name, "email": name + "@soak.invalid", "password": PASSWORD})
    if r.status_code not in (201, 409):  # 409: a retried registration whose first try got through
        r.raise_for_status()
    r = post_retrying(sess, base + "/auth/login", {"username": name, "password": PASSWORD})
    r.raise_for_status()
    return r.json()


def setup(base, data_dir, nplayers, nevents):
    out = os.path.join(data_dir, "soak")
    os.makedirs(out, exist_ok=True)
    s = admin_session(base)
    d = s.post(base + "/events/reward-definitions", timeout=60,
               json={"name": "Gold", "type": "CURRENCY", "value": 100}).json()["id"]
    events = []
    for i in range(nevents):
        r = s.post(base + "/events", json=event_body(d, "soak %d" % i), timeout=60)
        r.raise_for_status()
        events.append(r.json()["id"])
    sess = requests.Session()
    people = []
    for _ in range(nplayers):
        name = "soak_" + uuid.uuid4().hex[:12]
        body = register_and_login(base, sess, name)
        people.append({"name": name, "id": body["user"]["id"], "token": body["accessToken"]})
    gs_name = "soak_gs_" + uuid.uuid4().hex[:8]
    gs = register_and_login(base, sess, gs_name)
    r = s.put(base + "/auth/users/%s/roles" % gs["user"]["id"], json={"roles": ["GAME_SERVER"]}, timeout=60)
    r.raise_for_status()
    gs = register_and_login(base, sess, gs_name)  # a token that carries the new role
    for name, lines in (("tokens", [p["token"] for p in people]), ("ids", [p["id"] for p in people]),
                        ("events", events), ("gs_token", [gs["accessToken"]])):
        with open(os.path.join(out, name), "w") as f:
            f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "players.json"), "w") as f:
        json.dump({"definition": d, "players": [{"name": p["name"]} for p in people]}, f)


def batch_every():
    """SOAK_BATCH_EVERY: seconds between the side driver's batches (and so the report's baseline)."""
    return float(os.environ.get("SOAK_BATCH_EVERY", "120"))


def side(base, data_dir, seconds):
    out = os.path.join(data_dir, "soak")
    with open(os.path.join(out, "players.json")) as f:
        meta = json.load(f)
    names = [p["name"] for p in meta["players"]]
    every = batch_every()
    batch_n = int(os.environ.get("SOAK_BATCH_N", "5000"))
    admin = admin_session(base)
    sess = requests.Session()
    stats = OrderedDict(logins=0, login_fail=0, refreshes=0, registrations=0, batches=0, batch_items=0,
                        batch_success=0, batch_unfinished=0)
    start = time.monotonic()
    deadline = start + seconds
    next_batch = start + min(20.0, seconds / 4)
    batch = None  # (id, items, started) of the batch in progress
    i = 0
    while time.monotonic() < deadline:
        i += 1
        try:
            if i % 10 == 0:
                register_and_login(base, sess, "soak_r_" + uuid.uuid4().hex[:12])
                stats["registrations"] += 1
            r = post_retrying(sess, base + "/auth/login", {"username": random.choice(names), "password": PASSWORD})
            if r.status_code == 200:
                stats["logins"] += 1
                r = sess.post(base + "/auth/refresh", json={"refreshToken": r.json()["refreshToken"]}, timeout=60)
                stats["refreshes"] += r.status_code == 200
            else:
                stats["login_fail"] += 1
            now = time.monotonic()
            if batch is None and now >= next_batch and now + 30 < deadline:
                ev = admin.post(base + "/events", json=event_body(meta["definition"], "soak batch"), timeout=60)
                ev.raise_for_status()
                users = players.seed(data_dir, batch_n)
                r = admin.post(base + "/events/%s/batch-grants" % ev.json()["id"],
                               json={"userIds": users, "reason": "soak"}, timeout=120)
                r.raise_for_status()
                batch = (r.json()["id"], batch_n)
                stats["batches"] += 1
                stats["batch_items"] += batch_n
                next_batch = now + every
            elif batch is not None:
                r = admin.get(base + "/events/batches/" + batch[0], timeout=60)
                if r.status_code == 200 and r.json()["status"] == "COMPLETED":
                    stats["batch_success"] += r.json()["counts"]["SUCCESS"]
                    batch = None
        except requests.RequestException as e:
            stats["login_fail"] += 1
            print("soak side: %s" % e, file=sys.stderr)
        time.sleep(0.2)  # a steady trickle of logins (each an argon2id hash), not a flood
    if batch is not None:  # the last batch settles after the traffic stops; wait for it, bounded
        end = time.monotonic() + 300
        while time.monotonic() < end:
            r = admin.get(base + "/events/batches/" + batch[0], timeout=60)
            if r.status_code == 200 and r.json()["status"] == "COMPLETED":
                stats["batch_success"] += r.json()["counts"]["SUCCESS"]
                batch = None
                break
            time.sleep(0.5)
        stats["batch_unfinished"] = 0 if batch is None else 1
    print("RESULT " + " ".join("%s=%d" % kv for kv in stats.items()))


def report(path, warmup, max_growth, baseline=60, allow_kib=0, max_rss_mib=0):
    """Prints the growth table of a soak's CSV; 1 when a process died, grew beyond max_growth %,
    or (max_rss_mib > 0) its resident set went above max_rss_mib at any time.

    Memory, when the processes reported their heap (heap_kb, heap_peak_kb), is judged on the
    level of the heap in use: the median of its samples in the warm-up's last `baseline`
    seconds (soak.sh: a batch period) against the median in the run's last `baseline` seconds.
    A leak raises the level a process returns to between bursts; a batch in flight does not: in
    the 20-minute cluster soak of 2026-12-03, seventh sitting, each batch lifted one grant
    worker's heap by 2-5 MiB for about a second (+16 % over a baseline whose batch had gone to
    the other worker), while both levels grew by 0.8-1.0 MiB in ten minutes. The highest heap
    peak after the warm-up (heap_peak_kb: the process's own highest, sampled every second) is
    shown, not judged, and so is SQLite's share of the two levels (sqlite_kb: its page caches,
    statements and schemas). The resident set also holds what glibc keeps free in its arenas,
    which on the 16-40 MiB workers swings by 5 MiB with the work in flight while the heap in use
    stays level (the 15-minute cluster soak of 2026-12-03, sixth sitting): RSS failed processes
    that leaked nothing.

    Where the processes reported SQLite's page caches and what they may fill to (sqlite_cache_kb,
    sqlite_bound_kb), the levels are those of the heap net of the caches, and the caches are
    judged against their bound instead: a cache fills as the files outgrow what the warm-up
    touched, a step that alone made the event worker's heap +33 % after the warm-up of the hour's
    cluster soak of 2026-12-04 (its events.db writer's cache, 1.4 -> 3.4 MiB) and failed it. A
    process fails when its caches' level ends above a quarter more than their bound (a full cache
    also counts each page's header), or when the bound grew: the pools open every connection at
    start, so a bound that grew is a connection opened since.

    A CSV without heap columns (before the processes reported them) compares highs with highs:
    the highest RSS peak (peak_kb, VmHWM since the row before) after the warm-up against the
    highest of the warm-up's last `baseline` seconds, or instant samples in a CSV without peaks.

    Growth of at most allow_kib passes whatever its share (soak.sh says why). Descriptors are
    judged on max_growth alone."""
    rows = OrderedDict()

    def num(r, key):
        return int(r[key]) if r.get(key) else None

    with open(path) as f:
        for r in csv.DictReader(f):
            rss = num(r, "rss_kb")
            peak = num(r, "peak_kb") or rss
            heap_peak = num(r, "heap_peak_kb") or num(r, "heap_kb")
            rows.setdefault((r["mode"], r["process"]), []).append(
                (float(r["t_s"]), rss, num(r, "fds"), peak, num(r, "heap_kb"), heap_peak, num(r, "sqlite_kb"),
                 num(r, "sqlite_cache_kb"), num(r, "sqlite_bound_kb")))
    print("| mode | process | judged on | MiB warm-up's end / highest after / end (heap: levels, the last window's "
          "median; RSS: highest peaks) | growth % (highest, end) | of which SQLite MiB (warm-up's end / end) | "
          "SQLite's page caches MiB: end / their bound | RSS MiB start / peak / end | fds start / warm-up's last "
          "minute / peak after / end | growth % (peak, end) | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    failed = False

    def mib(kb):
        return "%.1f" % (kb / 1024.0)

    def growth(base, peak, end):
        return 100.0 * (peak - base) / base, 100.0 * (end - base) / base

    for (mode, proc), samples in rows.items():
        alive = [s for s in samples if s[1] is not None]
        after = [s for s in alive if s[0] >= warmup]
        verdict = "OK"
        if len(alive) < len(samples):
            verdict, failed = "FAIL (the process was gone)", True
        if not after:
            print("| %s | %s | | no sample after the warm-up | | | | | | | FAIL |" % (mode, proc))
            failed = True
            continue
        # highs against highs: the highest peak of the warm-up's last `baseline` seconds
        base_window = [s for s in alive if warmup - baseline <= s[0] < warmup] or after[:1]
        # a process's first row has no heap yet: its first report answers the signal that row sent
        heap_base = [s for s in base_window if s[5] is not None]
        on_heap = heap_base and all(s[5] is not None for s in after)
        caches, cache_fail = "", []
        if on_heap:  # levels: medians of the last windows; the highest peak shown
            judged, sqlite = "heap in use", ""
            end_window = [s for s in after if s[0] >= after[-1][0] - baseline]
            # net of SQLite's page caches where the process reported them with their bound: those
            # are judged against the bound, the rest of the heap on its growth
            net = all(s[7] is not None and s[8] is not None for s in heap_base + after)

            def level(s):
                return s[4] - (s[7] if net else 0)
            base_mem = statistics.median(level(s) for s in heap_base)
            peak_mem = max(s[5] - (s[7] if net else 0) for s in after)
            end_mem = statistics.median(level(s) for s in end_window)
            # SQLite's share of the heap's levels (page caches filling to their bound), where reported
            base_sq, end_sq = ([s[6] for s in w if s[6] is not None] for w in (heap_base, end_window))
            if base_sq and end_sq:
                sqlite = "%s / %s" % (mib(statistics.median(base_sq)), mib(statistics.median(end_sq)))
            if net:
                judged = "heap in use net of SQLite's page caches"
                end_cache = statistics.median(s[7] for s in end_window)
                base_bound, end_bound = max(s[8] for s in heap_base), max(s[8] for s in after)
                caches = "%s / %s" % (mib(end_cache), mib(end_bound))
                # a full cache counts each page's header too: up to about an eighth above its size
                if end_cache > end_bound * 5 / 4:
                    cache_fail.append("SQLite's page caches above their bound")
                # the pools open every connection at start: one opened later is a connection leaked
                if end_bound > base_bound:
                    cache_fail.append("SQLite connections opened after the warm-up")
        else:  # highs against highs
            judged, sqlite = "RSS", ""
            base_mem, peak_mem, end_mem = max(s[3] for s in base_window), max(s[3] for s in after), after[-1][1]
        base_fd, peak_fd, end_fd = max(s[2] for s in base_window), max(s[2] for s in after), after[-1][2]
        g_mem, g_fd = growth(base_mem, peak_mem, end_mem), growth(base_fd, peak_fd, end_fd)
        grown_kib = end_mem - base_mem if on_heap else peak_mem - base_mem
        rss_peak = max(s[3] for s in alive)
        grew = []
        if g_mem[1 if on_heap else 0] > max_growth and grown_kib > allow_kib:
            grew.append("%s beyond %g%%%s" % (judged, max_growth, " and %d KiB" % allow_kib if allow_kib else ""))
        grew += cache_fail
        if g_fd[0] > max_growth:
            grew.append("descriptors beyond %g%%" % max_growth)
        if max_rss_mib and rss_peak > max_rss_mib * 1024:
            grew.append("RSS above %g MiB" % max_rss_mib)
        if grew:
            verdict, failed = "FAIL (%s)" % ", ".join(grew), True
        print("| %s | %s | %s | %s / %s / %s | %+.1f, %+.1f | %s | %s | %s / %s / %s | %d / %d / %d / %d | %+.1f, %+.1f | %s |" % (
            mode, proc, judged, mib(base_mem), mib(peak_mem), mib(end_mem), g_mem[0], g_mem[1], sqlite, caches, mib(alive[0][1]),
            mib(rss_peak), mib(after[-1][1]), alive[0][2], base_fd, peak_fd, end_fd, g_fd[0], g_fd[1], verdict))
    return 1 if failed else 0


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "setup":
        setup(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "side":
        side(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif cmd == "report":
        allow = int(sys.argv[5]) if len(sys.argv) > 5 else 0
        max_rss = float(sys.argv[6]) if len(sys.argv) > 6 else 0
        # the baseline: the warm-up's last batch period, at least a minute
        sys.exit(report(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), max(60.0, batch_every()), allow,
                        max_rss))
    else:
        sys.exit("usage: soak_driver.py setup|side|report ...")
