#!/usr/bin/env bash
# What exports leave in the api's memory over RabbitMQ: seeds ROWS (default 100,000) requests
# into events.db, then runs ROUNDS (default 2) rounds of PARALLEL (default 1) CSV exports of
# everything at once, and after each round prints the exports' times and the api's memory line
# (SIGUSR1: heap in use, resident set, and the broker connections' figures: how many were opened
# again after a long message, how many keep a long reply's pages). With LOAD=1, wrk reads
# GET /events/reward-requests?limit=5 at 32 connections for the whole run, so that the api's
# calls spread over its connections as in production. Usage (RabbitMQ running):
#   CLUSTER=1 [LOAD=1] [ROUNDS=n] bench/export_memory.sh [rows] [parallel]
# Run the builds to compare alternately, each with BIN pointing at its reward-platform.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-100000}
par=${2:-1}
export METRICS_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
. bench/start.sh
api_pid=${pids[-1]} # reward-api, started last in the cluster shape
/usr/bin/python3 bench/seed_requests.py "$dir/events.db" "$rows" >/dev/null
token=$(curl -sf "$base/auth/login" -H 'Content-Type: application/json' \
  -d '{"username":"bench_admin","password":"bench-admin-pw"}' |
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
memory() { # the api's next memory line, summarised
  local before
  before=$(grep -c '"module":"memory"' "$dir/log" || true)
  kill -USR1 "$api_pid"
  for _ in $(seq 1 100); do
    [ "$(grep -c '"module":"memory"' "$dir/log" || true)" -gt "$before" ] && break
    sleep 0.05
  done
  grep '"module":"memory"' "$dir/log" | grep "\"pid\":$api_pid," | tail -1 | /usr/bin/python3 -c '
import json, sys
l = json.loads(sys.stdin.read())
print("heap %.1f MiB, RSS %.1f MiB" % (l["heapInUseBytes"] / 2**20, l["residentBytes"] / 2**20),
      {k: v for k, v in l.items() if k.startswith("amqp")})'
}
echo "idle: $(memory)"
if [ "${LOAD:-0}" = 1 ]; then
  BENCH_TOKEN=$token wrk -t2 -c32 -d3600s -s bench/history.lua "$base/events/reward-requests?limit=5" \
    >"$dir/wrk.out" 2>&1 &
  wrk_pid=$!
fi
for round in $(seq 1 "${ROUNDS:-2}"); do
  cps=()
  for _ in $(seq 1 "$par"); do
    curl -sf -o /dev/null -w '%{time_total} ' -H "Authorization: Bearer $token" \
      "$base/events/reward-requests/export?format=csv" >>"$dir/times.$round" &
    cps+=($!)
  done
  wait "${cps[@]}"
  echo "round $round: exports took $(cat "$dir/times.$round")s; $(memory)"
done
if [ "${LOAD:-0}" = 1 ]; then
  kill -INT "$wrk_pid"
  wait "$wrk_pid" || true
  echo "load: $(grep -E 'requests in|Requests/sec' "$dir/wrk.out" | tr -s ' \n' ' ')"
fi
