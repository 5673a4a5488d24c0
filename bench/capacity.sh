#!/usr/bin/env bash
# The CPU each component spends per request under load, and a capacity model checked against a
# measurement. Usage: bench/capacity.sh [seconds per run, default 10]
#
# Starts the platform in amqp mode (reward-api + auth + event + N grant workers on RabbitMQ,
# which must be running: tests/rabbitmq.sh start FILE, with RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S
# 1:1" in its environment for the one Erlang scheduler bench/compare.sh starts a broker with) for
# N = 1 and then 2 grant workers, and runs two mixes at 64 connections with wrk: "read" (GET
# /events, the open events page every player loads) and "grant" (claims that grant, a fresh
# player/event pair each). For each run it reads utime+stime of every platform process, of the
# broker (beam.smp) and of wrk from /proc before and after, and prints per component the CPU
# microseconds per request.
#
# The model: a request costs C = sum of the components' CPU per request; M cores serve at most
# M / C requests a second, less what the load generator takes (wrk here, CPU_wrk per request:
# predicted = M / (C + C_wrk) on this machine). Grants meet a second limit, the store's writer:
# SQLite commits one write transaction at a time, so grants are capped by the single writer's
# rate however many grant workers run. Printed: predicted from the N=1 run's costs, and the
# measured req/s of both runs, so that the N=1 → N=2 step shows whether workers scale.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
cores=$(nproc)
py=/usr/bin/python3
tick=$(getconf CLK_TCK)
rabbitmqctl -q status >/dev/null 2>&1 || {
    echo "capacity: RabbitMQ is not running (tests/rabbitmq.sh start FILE)" >&2
    exit 1
}
broker=$(pgrep -f beam.smp | head -1)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

run_mode() { # workers
    local workers=$1
    (
        export CLUSTER=1 REWARD_WORKERS=$workers
        # shellcheck source=bench/start.sh
        . bench/start.sh
        $py bench/setup_grants.py "$base" bench_admin bench-admin-pw 200 1000 "$dir" >/dev/null
        export BENCH_TOKENS=$dir/tokens BENCH_EVENTS=$dir/events BENCH_TOKEN
        BENCH_TOKEN=$(head -1 "$dir/tokens")
        local labels=(auth event)
        for i in $(seq 1 "$workers"); do labels+=("grant$i"); done
        labels+=(api)
        local offset=0
        for mix in read grant; do
            local script=list_events.lua
            [ "$mix" = grant ] && script=claims.lua
            cat "bench/$script" bench/report.lua >"$dir/s.lua"
            local w
            w=$(BENCH_OFFSET=$offset BENCH_THREADS=2 wrk -t2 -c64 -d3s --timeout 10s -s "$dir/s.lua" "$base/events" |
                grep RESULT || true)
            [ "$mix" = grant ] && offset=$(($(echo "$w" | sed -n 's/.*requests=\([0-9]*\).*/\1/p') + 1))
            local before=() after=() i
            for i in "${!pids[@]}"; do before[i]=$(cpu_ticks "${pids[$i]}"); done
            local b0 wk0
            b0=$(cpu_ticks "$broker")
            BENCH_OFFSET=$offset BENCH_THREADS=2 wrk -t2 -c64 -d"${secs}s" --timeout 10s -s "$dir/s.lua" \
                "$base/events" >"$dir/wrk.out" &
            local wrk_pid=$!
            sleep 0.2
            wk0=$(cpu_ticks "$wrk_pid")
            local wk1
            wk1=$wk0
            while kill -0 "$wrk_pid" 2>/dev/null; do
                wk1=$(cpu_ticks "$wrk_pid")
                [ "$wk1" = 0 ] && wk1=$wk0
                sleep 0.5
            done
            wait "$wrk_pid" || true
            for i in "${!pids[@]}"; do after[i]=$(cpu_ticks "${pids[$i]}"); done
            local b1 out n rps line
            b1=$(cpu_ticks "$broker")
            out=$(grep RESULT "$dir/wrk.out" || true)
            n=$(echo "$out" | sed -n 's/.*requests=\([0-9]*\).*/\1/p')
            rps=$(echo "$out" | sed -n 's/.*rps=\([0-9.]*\).*/\1/p')
            line="workers=$workers mix=$mix rps=$rps requests=$n"
            for i in "${!pids[@]}"; do
                line+=" ${labels[$i]}=$(((after[i] - before[i]) * 1000000 / tick / (n > 0 ? n : 1)))"
            done
            line+=" broker=$(((b1 - b0) * 1000000 / tick / (n > 0 ? n : 1)))"
            line+=" wrk=$(((wk1 - wk0) * 1000000 / tick / (n > 0 ? n : 1)))"
            echo "$line"
        done
        $py tests/e2e/invariants.py "$dir" | tail -1 >&2
    )
}

results=$(
    run_mode 1
    run_mode 2
)
echo "$results"
echo
schedulers=$(rabbitmqctl -q eval 'erlang:system_info(schedulers_online).' 2>/dev/null | tr -dc '0-9' || true)
echo "## CPU per request (us) and the model, $cores cores, $(date -u '+%Y-%m-%d %H:%M UTC'), broker with ${schedulers:-?} Erlang scheduler(s)"
echo
echo "$results" | awk -v cores="$cores" '
{
    delete f
    for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    key = f["workers"] "|" f["mix"]
    sum = 0; grants = 0
    for (k in f) if (k != "workers" && k != "mix" && k != "rps" && k != "requests" && k != "wrk") {
        sum += f[k]; if (k ~ /^grant/) grants += f[k]
    }
    C[key] = sum; W[key] = f["wrk"]; RPS[key] = f["rps"]
    printf "| %s grant worker(s), %s | api %s | auth %s | event %s | grant workers %s | broker %s | platform total %s | wrk %s | measured %s req/s |\n",
        f["workers"], f["mix"], f["api"], f["auth"], f["event"], grants, f["broker"], sum, f["wrk"], f["rps"]
}
END {
    print ""
    for (m = 0; m < 2; m++) {
        mix = m == 0 ? "read" : "grant"
        c1 = C["1|" mix]; w1 = W["1|" mix]
        if (c1 + w1 == 0) continue
        printf "%s: predicted from the 1-worker costs on %d cores with wrk beside: %.0f req/s; measured 1 worker %s, 2 workers %s; without wrk, per core: %.0f req/s\n",
            mix, cores, cores * 1e6 / (c1 + w1), RPS["1|" mix], RPS["2|" mix], 1e6 / c1
    }
}'
