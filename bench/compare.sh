#!/usr/bin/env bash
# Compares the platform with anchors in one sitting on one machine, and checks the targets of
# issue 10. Usage: bench/compare.sh [seconds per measured run, default 10]
#
# Phases (PHASES="anchors embedded amqp" by default; any subset, in that order):
#   anchors   bare civetweb, civetweb + libjwt HS256 (bench/anchors/*.c, built into build/bench/),
#             and the original NestJS design: a JWT gateway proxying GET /events over HTTP to an
#             event service (bench/anchors/nestjs, `npm ci` and `tsc` when out of date)
#   embedded  build/bin/reward-platform (built with `make` first): GET /events, GET /auth/me and
#             claims that grant, at 64 connections; invariants; a 100,000-player batch; invariants
#   amqp      reward-api + auth + event + 2 grant workers on RabbitMQ (started if it is not
#             running, stopped afterwards if this script started it and nobody else uses it), in a
#             virtual host of its own: GET /events at 64, GET /auth/me at 1 connection, claims at
#             64; invariants; the batch; invariants
# Each wrk run (2 threads, 1 for 1 connection) follows a warm-up run of WARMUP seconds (default 3).
# Other knobs: CONNS (64), CLAIM_PLAYERS (400: the players set up, times 1,000 events, is the
# fresh pairs the claims runs can take), BATCH_N (100000; 0 skips the batches), BATCH_TIMEOUT (600 s),
# GRANT_WORKERS (2), BIN (the embedded binary; the cluster binaries are found beside it),
# BROKER_SCHEDULERS (1): the Erlang schedulers of a broker this script starts (`+S N:N`; empty
# for Erlang's default, one per core). On one 2-core machine with the platform, one scheduler
# cost the broker about a third less CPU per claim (bench/README.md, "Broker schedulers"). A
# broker already running is used as it is; the report says how many schedulers it runs.
# OWN_SESSIONS (0): 1 starts each amqp process in a session of its own (bench/start.sh); the
# report says which. The targets were set with one session.
# Prints the results table, the batches, every process's peak RSS (VmHWM) and the targets with
# PASS/FAIL; a copy of the report goes to bench/results/ (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
warm=${WARMUP:-3}
conns=${CONNS:-64}
CLAIM_PLAYERS=${CLAIM_PLAYERS:-400}
phases=${PHASES:-anchors embedded amqp}
batch_n=${BATCH_N:-100000}
batch_timeout=${BATCH_TIMEOUT:-600}
grant_workers=${GRANT_WORKERS:-2}
anchor_threads=96 # the HTTP_THREADS bench/start.sh gives the platform
py=/usr/bin/python3
node=/usr/bin/node
[ -x "$node" ] || node=$(command -v node || true)

work=$(mktemp -d)
started=()       # pids of every process this script started and has not stopped yet
rabbit_state=$work/rabbitmq.started
vhost=""
declare -A R_RPS=() R_P50=() R_P99=() R_BAD=() R_ERR=() R_CONNS=() R_OTHERS=() # measured runs, by key
declare -A B_ACCEPT=() B_TOTAL=() B_RATE=() B_OK=() B_FAILED=() # batches, by mode
declare -A INV=() # invariants after claims / batch, by mode
declare -A RSS=() # "process|phase" -> VmHWM kB
declare -A OTHERS=() # mode -> share of the cores other processes used meanwhile
others_order=()
rss_procs=()
rss_phases=()
notes=()

log() { printf '%s\n' "$*" >&2; }
has_phase() { [[ " $phases " == *" $1 "* ]]; }

stop_pids() { # pid...: TERM, up to 10 s for each to end, then KILL
    local p
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    local keep=() s q
    for s in "${started[@]}"; do
        for q in "$@"; do [ "$s" = "$q" ] && continue 2; done
        keep+=("$s")
    done
    started=("${keep[@]}")
}

rabbit_others() { # true when the broker has vhosts or connections besides "/" and ours
    local v
    v=$(timeout 60 rabbitmqctl -q list_vhosts name 2>/dev/null | grep -vxF -e / -e name -e "$vhost" | grep -c . || true)
    [ "${v:-0}" -gt 0 ] && return 0
    v=$(timeout 60 rabbitmqctl -q list_connections vhost 2>/dev/null | grep -vxF -e vhost -e "$vhost" | grep -c . || true)
    [ "${v:-0}" -gt 0 ]
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ ${#started[@]} -gt 0 ] && stop_pids "${started[@]}"
    if [ -n "$vhost" ]; then timeout 60 rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1 || true; fi
    if [ -f "$rabbit_state" ]; then
        if rabbit_others; then
            log "compare: leaving RabbitMQ running (started here, but others use it now)"
        else
            tests/rabbitmq.sh stop "$rabbit_state" >&2 || true
        fi
    fi
    rm -rf "$work" ${plat_dirs[@]+"${plat_dirs[@]}"}
    exit $rc
}
plat_dirs=()
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The machine is shared: the CPU time every process used (/proc/stat) minus this run's own is
# what other processes took from the cores, printed for every measured run and every mode. This
# run's own: this script and what it reaped (utime, stime, cutime, cstime), the processes it
# started and still runs, and RabbitMQ's time (amqp mode drives it; other users of the broker are
# then not seen).
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
proc_ticks() { # pid [with children 1/0]
    [ -r "/proc/$1/stat" ] || {
        echo 0
        return 0
    }
    sed 's/.*) //' "/proc/$1/stat" | awk -v c="${2:-0}" '{print $12 + $13 + (c ? $14 + $15 : 0)}'
}
own_ticks() {
    local t p
    t=$(proc_ticks $$ 1)
    for p in ${started[@]+"${started[@]}"} $broker_pid; do t=$((t + $(proc_ticks "$p"))); done
    echo "$t"
}
broker_pid=""
broker_schedulers=""
snapshot() { echo "$(busy_ticks) $(own_ticks) $(date +%s.%N)"; }
others_since() { # a snapshot: the share of all cores that other processes used since
    local b0 o0 t0 b1 o1 t1
    read -r b0 o0 t0 <<<"$1"
    read -r b1 o1 t1 <<<"$(snapshot)"
    awk -v b="$((b1 - b0))" -v o="$((o1 - o0))" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" -v n="$(nproc)" \
        'BEGIN { v = (b - o) / hz / ((t1 - t0) * n) * 100; printf "%.0f%%", (v < 0 ? 0 : v) }'
}
watch_others() { # mode fn args...: runs fn, then records the other processes' share of the cores
    local mode=$1 snap
    shift
    snap=$(snapshot)
    "$@"
    OTHERS[$mode]=$(others_since "$snap")
    others_order+=("$mode")
    log "compare: $mode: other processes used ${OTHERS[$mode]} of the cores meanwhile"
}

free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # url seconds [bearer token]: polls until the url answers 2xx
    local url=$1 n=$(($2 * 10)) tok=${3:-}
    for _ in $(seq 1 "$n"); do
        if [ -n "$tok" ]; then
            curl -sf -o /dev/null -H "Authorization: Bearer $tok" "$url" && return 0
        else
            curl -sf -o /dev/null "$url" && return 0
        fi
        sleep 0.1
    done
    log "compare: $url did not answer within $2 s"
    return 1
}

field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" <<<"$2"; }

# run_wrk key script url connections [claims]: a warm-up run, then the measured one; claims runs
# take fresh (player, event) pairs, the measured run past those of the warm-up
run_wrk() {
    local key=$1 script=$2 url=$3 c=$4 claims=${5:-}
    local t=$((c < 2 ? 1 : 2)) out wout offset=0
    cat "bench/$script" bench/report.lua >"$work/script.lua"
    log "compare: $key: warm-up ${warm}s, then ${secs}s at $c connections"
    wout=$(BENCH_OFFSET=0 BENCH_THREADS=$t wrk -t$t -c"$c" -d"${warm}s" --timeout 10s -s "$work/script.lua" "$url" |
        grep RESULT || true)
    [ -n "$claims" ] && offset=$(($(field requests "$wout") + 1))
    local snap
    snap=$(snapshot)
    out=$(BENCH_OFFSET=$offset BENCH_THREADS=$t wrk -t$t -c"$c" -d"${secs}s" --timeout 10s -s "$work/script.lua" "$url" |
        grep RESULT || true)
    R_OTHERS[$key]=$(others_since "$snap")
    if [ -z "$out" ]; then
        notes+=("$key: wrk printed no result")
        return 0
    fi
    R_RPS[$key]=$(field rps "$out")
    R_P50[$key]=$(field p50_ms "$out")
    R_P99[$key]=$(field p99_ms "$out")
    R_BAD[$key]=$(field non2xx "$out")
    R_ERR[$key]=$(field errors "$out")
    R_CONNS[$key]=$c
    log "compare: $key: ${R_RPS[$key]} req/s, p50 ${R_P50[$key]} ms, p99 ${R_P99[$key]} ms, non-2xx ${R_BAD[$key]}," \
        "others took ${R_OTHERS[$key]} of the cores"
}

# sample_rss phase label pid [label pid ...]: the peak resident set (VmHWM) of each process since
# its start or its last sample, which then resets it (clear_refs 5), so every phase shows its own
# peak: the logins of the setup (argon2id) apart from the HTTP runs and the batch
rss_reset=1
sample_rss() {
    local phase=$1 kb
    shift
    [[ " ${rss_phases[*]} " == *" $phase "* ]] || rss_phases+=("$phase")
    while [ $# -ge 2 ]; do
        kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$2/status" 2>/dev/null || true)
        [[ " ${rss_procs[*]} " == *" $1 "* ]] || rss_procs+=("$1")
        RSS["$1|$phase"]=${kb:-gone}
        if ! { echo 5 >"/proc/$2/clear_refs"; } 2>/dev/null; then rss_reset=0; fi
        shift 2
    done
}

# ---------------------------------------------------------------------------------------------
anchors() {
    mkdir -p build/bench
    local f="-std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Werror -Wshadow -Wformat=2 -O2"
    local jwt_cflags jwt_libs
    jwt_cflags=$(pkg-config --cflags libjwt)
    jwt_libs=$(pkg-config --libs libjwt)
    # shellcheck disable=SC2086 # word splitting of the flags is wanted
    cc $f -o build/bench/bare bench/anchors/bare.c -lcivetweb -lpthread
    # shellcheck disable=SC2086
    cc $f $jwt_cflags -o build/bench/hs256 bench/anchors/hs256.c $jwt_libs -lcivetweb -lpthread
    local secret token p_bare p_hs p_ev p_gw pid_bare pid_hs pid_ev pid_gw
    secret=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
    token=$(JWT_SECRET=$secret build/bench/hs256 --issue 7200)

    p_bare=$(free_port)
    HTTP_THREADS=$anchor_threads build/bench/bare "$p_bare" 2>"$work/bare.log" &
    pid_bare=$!
    started+=("$pid_bare")
    wait_http "http://127.0.0.1:$p_bare/" 30
    BENCH_TOKEN=$token run_wrk bare list_events.lua "http://127.0.0.1:$p_bare/api/v1/events" "$conns"
    sample_rss anchors "anchor bare civetweb" "$pid_bare"
    stop_pids "$pid_bare"

    p_hs=$(free_port)
    JWT_SECRET=$secret HTTP_THREADS=$anchor_threads build/bench/hs256 "$p_hs" 2>"$work/hs256.log" &
    pid_hs=$!
    started+=("$pid_hs")
    wait_http "http://127.0.0.1:$p_hs/" 30 "$token"
    BENCH_TOKEN=$token run_wrk hs256 list_events.lua "http://127.0.0.1:$p_hs/api/v1/events" "$conns"
    sample_rss anchors "anchor civetweb+HS256" "$pid_hs"
    stop_pids "$pid_hs"

    if [ -z "$node" ]; then
        notes+=("anchors: no node on this machine, the NestJS anchor was not run")
        return 0
    fi
    local major
    major=$("$node" -p 'process.versions.node.split(".")[0]')
    if [ "$major" -lt 20 ]; then # NestJS 11's engines
        notes+=("anchors: $node is $("$node" --version), NestJS 11 needs Node 20 or later: the NestJS anchor was not run")
        return 0
    fi
    local nd=bench/anchors/nestjs npm_cmd stamp
    npm_cmd=$(dirname "$node")/npm
    [ -x "$npm_cmd" ] || npm_cmd=npm
    stamp="$("$node" --version) $(cat $nd/package.json $nd/package-lock.json | sha256sum | cut -c1-16)"
    if [ "$(cat $nd/node_modules/.bench-stamp 2>/dev/null)" != "$stamp" ]; then
        log "compare: npm ci in $nd ($("$node" --version))"
        (cd $nd && PATH="$(dirname "$node"):$PATH" "$npm_cmd" ci --no-audit --no-fund --loglevel=error >&2)
        echo "$stamp" >$nd/node_modules/.bench-stamp
    fi
    stamp="$stamp $(find $nd/tsconfig.json $nd/src -type f | sort | xargs cat | sha256sum | cut -c1-16)"
    if [ "$(cat $nd/dist/.bench-stamp 2>/dev/null)" != "$stamp" ]; then
        log "compare: tsc in $nd"
        rm -rf $nd/dist
        (cd $nd && "$node" node_modules/typescript/bin/tsc -p tsconfig.json)
        echo "$stamp" >$nd/dist/.bench-stamp
    fi
    p_ev=$(free_port)
    PORT=$p_ev NODE_ENV=production "$node" $nd/dist/events/main.js >"$work/nest-events.log" 2>&1 &
    pid_ev=$!
    started+=("$pid_ev")
    p_gw=$(free_port)
    PORT=$p_gw NODE_ENV=production JWT_SECRET=$secret EVENT_SERVICE_URL=http://127.0.0.1:$p_ev \
        "$node" $nd/dist/gateway/main.js >"$work/nest-gateway.log" 2>&1 &
    pid_gw=$!
    started+=("$pid_gw")
    if wait_http "http://127.0.0.1:$p_gw/api/v1/events" 60 "$token"; then
        BENCH_TOKEN=$token run_wrk nestjs list_events.lua "http://127.0.0.1:$p_gw/api/v1/events" "$conns"
    else
        tail -5 "$work/nest-gateway.log" >&2
        notes+=("anchors: the NestJS gateway did not answer")
    fi
    sample_rss anchors "anchor NestJS gateway" "$pid_gw" "anchor NestJS event service" "$pid_ev"
    stop_pids "$pid_gw" "$pid_ev"
}

# ---------------------------------------------------------------------------------------------
# platform MODE: embedded or amqp. bench/start.sh starts it (and replaces the EXIT trap, which is
# set back right after); its processes are stopped here, never left to a bare `wait`.
platform() {
    local mode=$1 m=$1 labels=() i
    if [ "$mode" = amqp ]; then CLUSTER=1; else CLUSTER=0; fi
    REWARD_WORKERS=$grant_workers
    unset TRANSPORT
    # shellcheck source=bench/start.sh
    . bench/start.sh
    trap cleanup EXIT
    started+=("${pids[@]}")
    plat_dirs+=("$dir")
    if [ "$mode" = amqp ]; then
        labels=("amqp auth worker" "amqp event worker")
        for i in $(seq 1 "$grant_workers"); do labels+=("amqp grant worker $i"); done
        labels+=("amqp reward-api")
    else
        labels=("embedded reward-platform")
    fi
    local rss_args=()
    for i in "${!pids[@]}"; do rss_args+=("${labels[$i]}" "${pids[$i]}"); done
    if ! curl -sf -o /dev/null "$base/health/ready"; then
        tail -20 "$dir/log" >&2
        notes+=("$mode: the platform did not become ready")
        stop_pids "${pids[@]}"
        return 0
    fi
    # every claim takes a fresh (player, event) pair: 400 x 1,000 pairs last a warm-up and a measured
    # run at up to 30,000 claims/s; at 200 players a run of 13,835/s ran out and counted refusals
    log "compare: $mode: setting up $CLAIM_PLAYERS players and 1,000 events"
    if ! $py bench/setup_grants.py "$base" bench_admin bench-admin-pw "$CLAIM_PLAYERS" 1000 "$dir"; then
        tail -20 "$dir/log" >&2
        notes+=("$mode: bench/setup_grants.py failed, $mode mode was not measured")
        stop_pids "${pids[@]}"
        return 0
    fi
    local admin
    admin=$(curl -sf -XPOST "$base/auth/login" -H 'Content-Type: application/json' \
        -d '{"username":"bench_admin","password":"bench-admin-pw"}' |
        $py -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])' || true)
    sample_rss "$mode setup" "${rss_args[@]}"
    local player
    player=$(head -1 "$dir/tokens")
    export BENCH_TOKENS=$dir/tokens BENCH_EVENTS=$dir/events
    BENCH_TOKEN=$player run_wrk "${m}_events" list_events.lua "$base/events" "$conns"
    if [ "$mode" = amqp ]; then
        BENCH_TOKEN=$player run_wrk "${m}_me" me.lua "$base/auth/me" 1
    else
        BENCH_TOKEN=$player run_wrk "${m}_me" me.lua "$base/auth/me" "$conns"
    fi
    run_wrk "${m}_claims" claims.lua "$base/events" "$conns" claims
    INV[${m}_claims]=$($py tests/e2e/invariants.py "$dir" | tail -1 || true)
    log "compare: $mode: after the claims, ${INV[${m}_claims]}"
    sample_rss "$mode HTTP runs" "${rss_args[@]}"
    if [ "$batch_n" -gt 0 ]; then
        log "compare: $mode: a batch of $batch_n players"
        local out line rc=0
        out=$(BENCH_ADMIN_TOKEN=$admin timeout "$batch_timeout" $py bench/batch.py "$base" bench_admin bench-admin-pw "$batch_n" "$dir" \
            2>"$work/batch.err") || rc=$?
        line=$(tail -1 <<<"$out")
        if [[ "$line" == "| $batch_n |"* ]]; then
            local accept total rate ok failed
            IFS='|' read -r _ _ accept total rate ok failed _ <<<"${line// /}"
            B_ACCEPT[$m]=$accept B_TOTAL[$m]=$total B_RATE[$m]=$rate B_OK[$m]=$ok B_FAILED[$m]=$failed
        elif [ "$rc" = 124 ]; then
            notes+=("$mode: the batch did not complete within ${batch_timeout} s (BATCH_TIMEOUT)")
        else
            notes+=("$mode: bench/batch.py failed: $(tail -1 "$work/batch.err")")
        fi
        sample_rss "$mode batch" "${rss_args[@]}"
    fi
    # the store is read once every process has stopped: a batch cut short is still settling, and
    # the checker's statements are not one snapshot
    stop_pids "${pids[@]}"
    if [ "$batch_n" -gt 0 ]; then
        INV[${m}_batch]=$($py tests/e2e/invariants.py "$dir" | tail -1 || true)
        log "compare: $mode: batch ${B_TOTAL[$m]:-?} s, ${INV[${m}_batch]}"
    fi
    unset BENCH_TOKENS BENCH_EVENTS TRANSPORT
}

rabbit_up() { # true when the broker answers, after starting it here if it was not running
    if ! command -v rabbitmqctl >/dev/null; then
        notes+=("amqp: RabbitMQ is not installed, amqp mode was not run")
        return 1
    fi
    if ! timeout 60 rabbitmqctl -q status >/dev/null 2>&1; then
        local sched=${BROKER_SCHEDULERS-1}
        [ -n "$sched" ] && export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S $sched:$sched"
        tests/rabbitmq.sh start "$rabbit_state" >&2 || {
            notes+=("amqp: RabbitMQ did not start, amqp mode was not run")
            return 1
        }
    fi
    broker_pid=$(timeout 60 rabbitmqctl -q eval 'os:getpid().' 2>/dev/null | tr -dc '0-9' || true)
    broker_schedulers=$(timeout 60 rabbitmqctl -q eval 'erlang:system_info(schedulers_online).' 2>/dev/null |
        tr -dc '0-9' || true)
    vhost=rp-bench-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
    timeout 60 rabbitmqctl -q add_vhost "$vhost" >/dev/null
    timeout 60 rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null
    export AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost"
}

# ---------------------------------------------------------------------------------------------
started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
if has_phase embedded || has_phase amqp; then
    if [ -z "${BIN:-}" ]; then make -s all >&2; fi
fi
has_phase anchors && watch_others anchors anchors
has_phase embedded && watch_others embedded platform embedded
if has_phase amqp && rabbit_up; then watch_others amqp platform amqp; fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
num() { [[ "${1:-}" =~ ^[0-9.]+$ ]]; }
pct() { # a b: a as a percentage of b
    if num "${1:-}" && num "${2:-}" && [ "$2" != 0 ]; then awk -v a="$1" -v b="$2" 'BEGIN{printf "%.0f%%", 100*a/b}'; else echo "–"; fi
}
at_least() { num "${1:-}" && num "${2:-}" && awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN{exit !(a >= b * f)}'; }
below() { num "${1:-}" && awk -v a="$1" -v b="$2" 'BEGIN{exit !(a < b)}'; }
verdict() { if [ "$1" = 1 ]; then echo PASS; else echo FAIL; fi; }

report() {
    local rows=(bare "bare civetweb (anchor)"
        hs256 "civetweb + libjwt HS256 (anchor)"
        nestjs "NestJS gateway → event service, GET /events (anchor)"
        embedded_events "embedded GET /events (20 of 1,000)"
        embedded_me "embedded GET /auth/me"
        embedded_claims "embedded claims (201 grants)"
        amqp_events "amqp GET /events (20 of 1,000)"
        amqp_me "amqp GET /auth/me (RPC round trip)"
        amqp_claims "amqp claims (201 grants, $grant_workers grant workers)")
    echo "## bench/compare.sh — $started_at"
    echo
    echo "$(nproc) cores, load average $load_before before and $load_after after; ${secs} s measured runs after" \
        "${warm} s warm-ups; wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), 2 threads (1 at 1 connection);" \
        "node ${node:+$("$node" --version)}; phases: $phases${broker_schedulers:+; the broker ran $broker_schedulers Erlang scheduler(s)}$(
            [ "${OWN_SESSIONS:-0}" = 1 ] && echo "; each amqp process in a session of its own")."
    if [ ${#others_order[@]} -gt 0 ]; then
        local o
        o="Share of the $(nproc) cores that other processes (not this run, nor the broker) used meanwhile:"
        for k in "${others_order[@]}"; do o="$o $k ${OTHERS[$k]},"; done
        echo
        echo "${o%,}."
    fi
    echo
    echo "| what | connections | req/s | p50 ms | p99 ms | non-2xx | % of bare civetweb | cores others took |"
    echo "|---|---|---|---|---|---|---|---|"
    local i k bad
    for ((i = 0; i < ${#rows[@]}; i += 2)); do
        k=${rows[$i]}
        [ -n "${R_RPS[$k]:-}" ] || continue
        bad=${R_BAD[$k]}
        [ "${R_ERR[$k]:-0}" != 0 ] && bad="$bad (+${R_ERR[$k]} socket errors)"
        echo "| ${rows[$((i + 1))]} | ${R_CONNS[$k]} | ${R_RPS[$k]} | ${R_P50[$k]} | ${R_P99[$k]} | $bad |" \
            "$(pct "${R_RPS[$k]}" "${R_RPS[bare]:-}") | ${R_OTHERS[$k]} |"
    done
    if [ ${#B_TOTAL[@]} -gt 0 ]; then
        echo
        echo "| batch of $batch_n players | 202 after s | completed after s | items/s | SUCCESS | FAILED | invariants |"
        echo "|---|---|---|---|---|---|---|"
        for k in embedded amqp; do
            [ -n "${B_TOTAL[$k]:-}" ] || continue
            echo "| $k | ${B_ACCEPT[$k]} | ${B_TOTAL[$k]} | ${B_RATE[$k]} | ${B_OK[$k]} | ${B_FAILED[$k]} |" \
                "${INV[${k}_batch]#invariants: } |"
        done
    fi
    if [ ${#rss_procs[@]} -gt 0 ]; then
        echo
        local head="| process: peak RSS (VmHWM), MiB, during |" sep="|---|" p ph v
        for ph in "${rss_phases[@]}"; do head="$head $ph |"; sep="$sep---|"; done
        echo "$head"
        echo "$sep"
        for p in "${rss_procs[@]}"; do
            local line="| $p |"
            for ph in "${rss_phases[@]}"; do
                v=${RSS["$p|$ph"]:-}
                if num "$v"; then v=$(awk -v k="$v" 'BEGIN{printf "%.1f", k/1024}'); fi
                line="$line ${v:-} |"
            done
            echo "$line"
        done
        if [ "$rss_reset" = 0 ]; then
            echo
            echo "(/proc/PID/clear_refs could not be written: each column is the peak since the process started)"
        fi
    fi
    echo
    echo "| target (issue 10) | measured | result |"
    echo "|---|---|---|"
    target() { # text measured verdict (empty: not measured)
        echo "| $1 | $2 | ${3:-not measured} |"
    }
    local m v ok
    for k in events me; do
        m="–" v=""
        if [ -n "${R_RPS[embedded_$k]:-}" ] && [ -n "${R_RPS[bare]:-}" ]; then
            m="$(pct "${R_RPS[embedded_$k]}" "${R_RPS[bare]}") of bare, p99 ${R_P99[embedded_$k]} ms"
            ok=1
            at_least "${R_RPS[embedded_$k]}" "${R_RPS[bare]}" 0.5 || ok=0
            below "${R_P99[embedded_$k]}" 5 || ok=0
            v=$(verdict $ok)
        fi
        target "embedded GET /${k/me/auth\/me} ≥ 50% of bare, p99 < 5 ms" "$m" "$v"
    done
    m="–" v=""
    if [ -n "${R_RPS[embedded_claims]:-}" ] && [ -n "${R_RPS[bare]:-}" ]; then
        m="$(pct "${R_RPS[embedded_claims]}" "${R_RPS[bare]}") of bare, p99 ${R_P99[embedded_claims]} ms,"
        m="$m non-2xx ${R_BAD[embedded_claims]}, ${INV[embedded_claims]:-invariants: not checked}"
        ok=1
        at_least "${R_RPS[embedded_claims]}" "${R_RPS[bare]}" 0.25 || ok=0
        below "${R_P99[embedded_claims]}" 10 || ok=0
        [ "${INV[embedded_claims]:-}" = "invariants: OK" ] && [ "${R_BAD[embedded_claims]}" = 0 ] || ok=0
        v=$(verdict $ok)
    fi
    target "embedded claims ≥ 25% of bare, p99 < 10 ms, invariants OK" "$m" "$v"
    m="–" v=""
    if [ -n "${R_RPS[amqp_events]:-}" ] && [ -n "${R_RPS[nestjs]:-}" ]; then
        m="$(awk -v a="${R_RPS[amqp_events]}" -v b="${R_RPS[nestjs]}" 'BEGIN{printf "%.2f", (b > 0 ? a/b : 0)}')×"
        m="$m NestJS (${R_RPS[amqp_events]} vs ${R_RPS[nestjs]} req/s)"
        ok=1
        at_least "${R_RPS[amqp_events]}" "${R_RPS[nestjs]}" 5 || ok=0
        v=$(verdict $ok)
    fi
    target "amqp GET /events ≥ 5× the NestJS design" "$m" "$v"
    m="–" v=""
    if [ -n "${R_RPS[amqp_me]:-}" ]; then
        m="p50 ${R_P50[amqp_me]} ms, p99 ${R_P99[amqp_me]} ms"
        ok=1
        below "${R_P50[amqp_me]}" 0.5 || ok=0
        below "${R_P99[amqp_me]}" 1 || ok=0
        v=$(verdict $ok)
    fi
    target "amqp GET /auth/me at 1 connection: p50 < 0.5 ms, p99 < 1 ms" "$m" "$v"
    m="–" v=""
    if [ -n "${R_RPS[amqp_claims]:-}" ] && [ -n "${R_RPS[embedded_claims]:-}" ]; then
        m="$(pct "${R_RPS[amqp_claims]}" "${R_RPS[embedded_claims]}") of embedded, non-2xx ${R_BAD[amqp_claims]},"
        m="$m ${INV[amqp_claims]:-invariants: not checked}"
        ok=1
        at_least "${R_RPS[amqp_claims]}" "${R_RPS[embedded_claims]}" 0.4 || ok=0
        [ "${INV[amqp_claims]:-}" = "invariants: OK" ] && [ "${R_BAD[amqp_claims]}" = 0 ] || ok=0
        v=$(verdict $ok)
    fi
    target "amqp claims ($grant_workers grant workers) ≥ 40% of embedded claims" "$m" "$v"
    for k in embedded amqp; do
        m="–" v=""
        if [ -n "${B_TOTAL[$k]:-}" ]; then
            m="${B_TOTAL[$k]} s, ${B_OK[$k]} SUCCESS, ${INV[${k}_batch]:-invariants: not checked}"
            ok=1
            below "${B_TOTAL[$k]}" 20 || ok=0
            [ "${INV[${k}_batch]:-}" = "invariants: OK" ] && [ "${B_OK[$k]}" = "$batch_n" ] || ok=0
            v=$(verdict $ok)
            [ "$batch_n" = 100000 ] || v="$v (a batch of $batch_n, not 100,000)"
        fi
        target "100,000-player batch < 20 s, $k, invariants OK" "$m" "$v"
    done
    local worst="" worst_kb=0 worst_ph="" p ph kb run="" run_kb=0
    for p in "${rss_procs[@]}"; do
        [[ "$p" == anchor* ]] && continue
        for ph in "${rss_phases[@]}"; do
            kb=${RSS["$p|$ph"]:-}
            num "$kb" || continue
            if [ "$kb" -gt "$worst_kb" ]; then worst_kb=$kb worst=$p worst_ph=$ph; fi
            if [[ "$ph" != *setup ]] && [ "$kb" -gt "$run_kb" ]; then run_kb=$kb run=$p; fi
        done
    done
    m="–" v=""
    if [ -n "$worst" ]; then
        m="largest: $worst, $(awk -v k="$worst_kb" 'BEGIN{printf "%.1f", k/1024}') MiB ($worst_ph)"
        [ -n "$run" ] && m="$m; outside the setups' logins: $run, $(awk -v k="$run_kb" 'BEGIN{printf "%.1f", k/1024}') MiB"
        ok=1
        [ "$worst_kb" -lt 65536 ] || ok=0
        v=$(verdict $ok)
    fi
    target "every platform process peak RSS < 64 MiB" "$m" "$v"
    if [ ${#notes[@]} -gt 0 ]; then
        echo
        for k in "${notes[@]}"; do echo "- $k"; done
    fi
}

mkdir -p bench/results
report | tee "bench/results/compare-$(date -u +%Y%m%dT%H%M%SZ).md"
