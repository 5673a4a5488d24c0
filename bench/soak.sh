#!/usr/bin/env bash
# Soak: SOAK_SECONDS (default 1200) of mixed traffic against the platform in each mode of
# SOAK_MODES (default "embedded cluster", one after the other), sampling every SOAK_INTERVAL (10) s
# into a CSV every process's resident set (VmRSS), its peak since the previous sample (VmHWM,
# reset after each sample through clear_refs), its open file descriptors, and its heap in use and
# that heap's peak (the process's answer to SIGUSR1: a "memory" log line; it samples its heap
# every second). Fails when a process's heap in use (its level: the median of the run's last
# window against that of the warm-up's last, bench/soak_driver.py) or its descriptors grow beyond
# SOAK_MAX_GROWTH (10) % (memory: and beyond SOAK_ALLOW_KIB, below), its resident set goes above
# SOAK_MAX_RSS_MIB (64) at any time, it dies or exits non-zero, or the invariant checker
# (tests/e2e/invariants.py) finds a violation. Usage: bench/soak.sh
#
# Leaks are judged on the heap in use, not on the resident set: RSS also holds what glibc keeps
# free in its arenas, which on the 16-40 MiB workers swings by up to 5 MiB with the batch in
# flight while the heap in use stays level (mallinfo2 every 10 s in a 15-minute cluster soak,
# 2026-12-03), and RSS peaks failed grant workers that leaked nothing. Nor on the heap's peaks:
# a batch lifts one grant worker's heap by 2-5 MiB for a second, on whichever worker takes it.
#
# Traffic, at once: wrk (1 thread, SOAK_CONNS=8 connections, bench/soak.lua) sends reads (GET
# /events, /events/{id}, /auth/me, own history), claims (fresh (player, event) pairs while they
# last) and progress reports; bench/soak_driver.py sends logins, refreshes and registrations (a
# few per second, each an argon2id hash) and a batch grant of SOAK_BATCH_N (5000) players every
# SOAK_BATCH_EVERY (120) s, the first after 20 s.
#
# Warm-up, before the samples that count: first SOAK_PREWARM (20) s of the same HTTP mix at
# HTTP_THREADS (96, bench/start.sh) connections, so that every HTTP thread serves (each touches its
# stack and its malloc arena); then the first SOAK_WARMUP (600) s of the measured traffic, which
# include the first five batches and fill the SQLite page caches of the pooled connections
# (SQLITE_CACHE_KIB each at most; the pools open every connection at start and use them in turn)
# as the files grow. Ten minutes, because the grant workers' highs during batches climb for about
# eight (heap and caches settling: 35.0 -> 38.7 MiB over the batch periods of a 10-minute soak
# with a 180 s warm-up, level after 8 minutes in 20-minute ones); judged sooner, that climb
# decided the verdict. Growth is the highest peak after the warm-up against the highest of the
# warm-up's last minute, or of its last SOAK_BATCH_EVERY seconds when that is longer, so that the
# baseline holds a batch as the later windows do (a process's memory breathes with the work in
# flight: highs are compared with highs); the last sample is reported too. The heap is judged net
# of SQLite's page caches, which are judged against their bound instead (each process reports
# what its caches may fill to, SQLITE_CACHE_KIB per pooled connection and 8 times that per
# writer): a cache fills as the files outgrow what the warm-up touched, a bounded step that alone
# made the event worker's heap +33 % after the warm-up of the hour's soak of 2026-12-04 (its
# events.db writer's, 1.4 -> 3.4 MiB). A process fails when its caches end above their bound by
# more than a quarter (each page's header), or when the bound grew (the pools open every
# connection at start). Memory that grew by at most SOAK_ALLOW_KIB (default 1024) passes whatever
# its share: the statements a rarely taken path compiles on each connection of a pool the first
# time, about 0.8 MiB of an event worker's heap when all are compiled. A leak outgrows it. (Before
# the processes reported the bound, the allowance was 2048 KiB, one writer's cache, and the
# caches counted as growth.) Each sample's peak covers its whole interval,
# so a batch's transient high counts wherever it falls; instant samples caught one only when they
# fell during it, and compared a later batch's high with a warm-up that had none.
#
# Passwords are hashed at PASSWORD_HASH=min here: at the standard cost each hash in progress maps
# 12 MiB for its duration (up to PASSWORD_HASH_CONCURRENCY at once), so a sample would show 0, 12
# or 24 MiB more depending on the instant it falls on. The login path runs the same code.
#
# Modes: embedded = build/bin/reward-platform (BIN); cluster = reward-api + auth + event +
# SOAK_GRANT_WORKERS (2) grant workers on RabbitMQ (the running broker, in a virtual host of this
# run; started from Debian's package and stopped again if none runs), as bench/start.sh starts
# them. The CSV and a markdown report go to bench/results/ (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SOAK_SECONDS:-1200}
warm=${SOAK_WARMUP:-600}
prewarm=${SOAK_PREWARM:-20}
interval=${SOAK_INTERVAL:-10}
max_growth=${SOAK_MAX_GROWTH:-10}
max_rss_mib=${SOAK_MAX_RSS_MIB:-64}
allow_kib=${SOAK_ALLOW_KIB:-1024}
modes=${SOAK_MODES:-embedded cluster}
conns=${SOAK_CONNS:-8}
nplayers=${SOAK_PLAYERS:-200}
nevents=${SOAK_EVENTS:-1000}
grant_workers=${SOAK_GRANT_WORKERS:-2}
py=/usr/bin/python3
if [ "$warm" -ge "$secs" ]; then
    echo "soak: SOAK_WARMUP ($warm) must be shorter than SOAK_SECONDS ($secs)" >&2
    exit 2
fi

ts=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results
csv=bench/results/soak-$ts.csv
md=bench/results/soak-$ts.md
echo "t_s,mode,process,pid,rss_kb,peak_kb,fds,heap_kb,heap_peak_kb,sqlite_kb,sqlite_cache_kb,sqlite_bound_kb" >"$csv"
work=$(mktemp -d)
rabbit_state=$work/rabbitmq.started
vhost=""
helpers=() # sampler and side driver of the mode running
pids=()
dirs=()
status=0
lines=() # report lines, by mode

log() { printf 'soak: %s\n' "$*" >&2; }

stop_pids() { # pid...: TERM, up to 30 s for each to end, then KILL
    local p
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do
        for _ in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ ${#helpers[@]} -gt 0 ] && stop_pids "${helpers[@]}"
    [ ${#pids[@]} -gt 0 ] && stop_pids "${pids[@]}"
    if [ -n "$vhost" ]; then timeout 60 rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1 || true; fi
    [ -f "$rabbit_state" ] && tests/rabbitmq.sh stop "$rabbit_state" >&2
    rm -rf "$work" ${dirs[@]+"${dirs[@]}"}
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# sample t0 mode log label pid [label pid ...]: one CSV row per process every $interval s until
# killed: the resident set now and its peak since the previous row (VmHWM, then reset to the
# present by clear_refs 5), its descriptors, and its heap in use and that heap's peak from the
# newest "memory" line it wrote to log (the answer to the SIGUSR1 sent at the row before: the
# process samples its heap every second and reports the highest since its previous report), with
# what SQLite holds of that heap (page caches, statements and schemas; the page caches alone) and
# what its page caches may fill to; an empty rss_kb means the process is gone
sample() {
    local t0=$1 mode=$2 log=$3 t i rss peak fds st pid mem heap heap_peak sqlite cache stmts schemas bound
    shift 3
    local args=("$@")
    for ((i = 0; i < ${#args[@]}; i += 2)); do echo 5 >"/proc/${args[i + 1]}/clear_refs" 2>/dev/null || true; done
    while :; do
        t=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{printf "%.0f", a - b}')
        for ((i = 0; i < ${#args[@]}; i += 2)); do
            pid=${args[i + 1]}
            st=$(cat "/proc/$pid/status" 2>/dev/null || true)
            echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
            rss=$(awk '/^VmRSS:/ {print $2}' <<<"$st")
            peak=$(awk '/^VmHWM:/ {print $2}' <<<"$st")
            fds=""
            [ -n "$rss" ] && fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
            mem=$(grep -F "\"module\":\"memory\",\"pid\":$pid," "$log" 2>/dev/null | tail -1 || true)
            heap=$(sed -n 's/.*"heapInUseBytes":\([0-9]*\).*/\1/p' <<<"$mem")
            heap_peak=$(sed -n 's/.*"heapInUsePeakBytes":\([0-9]*\).*/\1/p' <<<"$mem")
            cache="" stmts="" schemas=""
            read -r cache stmts schemas < <(sed -n 's/.*"sqliteCacheBytes":\([0-9]*\),"sqliteStatementBytes":\([0-9]*\),"sqliteSchemaBytes":\([0-9]*\).*/\1 \2 \3/p' <<<"$mem") || true
            sqlite=${cache:+$((cache + stmts + schemas))}
            bound=$(sed -n 's/.*"sqliteCacheBoundBytes":\([0-9]*\).*/\1/p' <<<"$mem")
            echo "$t,$mode,${args[i]},$pid,$rss,$peak,$fds,${heap:+$((heap / 1024))},${heap_peak:+$((heap_peak / 1024))},${sqlite:+$((sqlite / 1024))},${cache:+$((cache / 1024))},${bound:+$((bound / 1024))}" >>"$csv"
            [ -n "$rss" ] && kill -USR1 "$pid" 2>/dev/null || true
        done
        sleep "$interval"
    done
}

field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" <<<"$2"; }
# The answers of wrk RESULT lines (bench/soak.lua) other than 2xx and 409, and socket errors.
unexpected_answers() {
    local r
    for r in "$@"; do
        [ "$(field errors "$r")" = 0 ] || echo -n "socket errors=$(field errors "$r") "
        tr ' ' '\n' <<<"${r#*errors=[0-9]* }" | grep -E '^[0-9x]+=[0-9]+$' | grep -Ev '^(2xx|409)=' | tr '\n' ' ' || true
    done
}

soak_mode() {
    local mode=$1 labels=() i rc
    if [ "$mode" = cluster ]; then
        if ! timeout 60 rabbitmqctl -q status >/dev/null 2>&1; then tests/rabbitmq.sh start "$rabbit_state" >&2; fi
        vhost=rp-soak-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
        timeout 60 rabbitmqctl -q add_vhost "$vhost" >/dev/null
        timeout 60 rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null
        export AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost"
        CLUSTER=1 # read by bench/start.sh
        labels=("auth worker" "event worker")
        for i in $(seq 1 "$grant_workers"); do labels+=("grant worker $i"); done
        labels+=("reward-api")
    else
        # shellcheck disable=SC2034 # read by bench/start.sh
        CLUSTER=0
        labels=("reward-platform")
    fi
    # shellcheck disable=SC2034 # read by bench/start.sh
    REWARD_WORKERS=$grant_workers
    unset TRANSPORT
    export PASSWORD_HASH=min
    # the players' tokens, issued at the setup, outlive the run: at the default 60 minutes an
    # hour's soak spent its last 3.5 minutes on 401s (601,482 of them, 2026-12-04)
    export JWT_EXPIRES_IN=$((secs + prewarm + 3600))s
    # shellcheck source=bench/start.sh
    . bench/start.sh # replaces the EXIT trap, set back at once; sets dir, base, pids
    trap cleanup EXIT
    dirs+=("$dir")
    if ! curl -sf -o /dev/null "$base/health/ready"; then
        tail -20 "$dir/log" >&2
        log "$mode: the platform did not become ready"
        return 1
    fi
    log "$mode: setting up $nplayers players, $nevents events"
    $py bench/soak_driver.py setup "$base" "$dir" "$nplayers" "$nevents"
    log "$mode: pre-warm: ${prewarm}s at $HTTP_THREADS connections"
    local pre
    pre=$(SOAK_TOKENS=$dir/soak/tokens SOAK_IDS=$dir/soak/ids SOAK_EVENTS=$dir/soak/events \
        SOAK_GS_TOKEN=$(cat "$dir/soak/gs_token") SOAK_RUN=pre-$mode-$ts SOAK_THREADS=1 \
        SOAK_CLAIM_OFFSET=$((nplayers * nevents / 2)) \
        wrk -t1 -c"$HTTP_THREADS" -d"${prewarm}s" --timeout 10s -s bench/soak.lua "$base" | grep RESULT || true)
    local sample_args=()
    for i in "${!pids[@]}"; do sample_args+=("${labels[$i]}" "${pids[$i]}"); done
    log "$mode: ${secs}s of traffic (warm-up ${warm}s), samples every ${interval}s into $csv"
    local t0
    t0=$(date +%s.%N)
    sample "$t0" "$mode" "$dir/log" "${sample_args[@]}" &
    helpers=($!)
    $py bench/soak_driver.py side "$base" "$dir" "$secs" >"$work/side.out" 2>"$work/side.err" &
    local side_pid=$!
    helpers+=("$side_pid")
    local out
    out=$(SOAK_TOKENS=$dir/soak/tokens SOAK_IDS=$dir/soak/ids SOAK_EVENTS=$dir/soak/events \
        SOAK_GS_TOKEN=$(cat "$dir/soak/gs_token") SOAK_RUN=$mode-$ts SOAK_THREADS=1 \
        wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s -s bench/soak.lua "$base" | grep RESULT || true)
    wait "$side_pid" || log "$mode: the side driver failed: $(tail -3 "$work/side.err")"
    local side_out
    side_out=$(grep RESULT "$work/side.out" || true)
    # one last sample once everything settled, then the sampler goes
    sleep "$interval"
    stop_pids "${helpers[@]}"
    helpers=()
    local gone=()
    for i in "${!pids[@]}"; do kill -0 "${pids[$i]}" 2>/dev/null || gone+=("${labels[$i]}"); done
    # stop the processes one by one: each must exit 0 on SIGTERM
    local bad_exit=()
    for i in "${!pids[@]}"; do
        kill "${pids[$i]}" 2>/dev/null || true
        rc=0
        wait "${pids[$i]}" || rc=$?
        [ "$rc" = 0 ] || bad_exit+=("${labels[$i]} exited $rc")
    done
    pids=()
    local inv
    inv=$($py tests/e2e/invariants.py "$dir" | tail -1 || true)
    lines+=("### $mode ($secs s, warm-up $warm s)" "")
    lines+=("- HTTP mix (wrk, $conns connections): $(field requests "$out") requests, $(field rps "$out") req/s,\
 p50 $(field p50_ms "$out") ms, p99 $(field p99_ms "$out") ms, socket errors $(field errors "$out");\
 answers by status: ${out#*errors=[0-9]* }")
    lines+=("- pre-warm (wrk, $HTTP_THREADS connections, ${prewarm}s): $(field requests "$pre") requests,\
 answers by status: ${pre#*errors=[0-9]* }")
    lines+=("- side driver: ${side_out#RESULT }")
    lines+=("- $inv")
    [ ${#gone[@]} -eq 0 ] || lines+=("- FAIL: gone before the end: ${gone[*]}")
    [ ${#bad_exit[@]} -eq 0 ] || lines+=("- FAIL: ${bad_exit[*]}")
    lines+=("")
    # the mix asks for nothing that may be refused but a pair already claimed (409)
    local odd
    odd=$(unexpected_answers "$out" "$pre")
    [ -z "$odd" ] || lines+=("- FAIL: answers other than 2xx and 409: $odd")
    [ "$inv" = "invariants: OK" ] && [ ${#gone[@]} -eq 0 ] && [ ${#bad_exit[@]} -eq 0 ] && [ -z "$odd" ] || status=1
    [ -n "$out" ] || {
        lines+=("- FAIL: wrk printed no result")
        status=1
    }
    if [ "$mode" = cluster ]; then
        timeout 60 rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1 || true
        vhost=""
        unset AMQP_URL TRANSPORT
    fi
    rm -rf "$dir"
}

if [ -z "${BIN:-}" ]; then make -s all >&2; fi
started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
for m in $modes; do soak_mode "$m" || status=1; done
rc=0
table=$($py bench/soak_driver.py report "$csv" "$warm" "$max_growth" "$allow_kib" "$max_rss_mib") || rc=$?
[ "$rc" = 0 ] || status=1
{
    echo "## bench/soak.sh — $started_at"
    echo
    echo "$(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; samples: $csv"
    echo
    echo "A process fails when its heap in use (net of SQLite's page caches where it reports their bound; for processes that do not report the heap, its RSS) or its descriptors grew beyond $max_growth % after the warm-up (memory: and beyond $allow_kib KiB), its SQLite page caches end above their bound by more than a quarter or their bound grew, or its RSS went above $max_rss_mib MiB."
    echo
    printf '%s\n' "${lines[@]}"
    echo "$table"
    echo
    if [ "$status" = 0 ]; then echo "soak: PASS"; else echo "soak: FAIL"; fi
} | tee "$md"
exit $status
