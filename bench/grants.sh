#!/usr/bin/env bash
# Benchmarks successful grants (POST /events/{id}/reward-requests, no conditions, unlimited
# stock, every request a fresh (player, event) pair) and GET /events, at 16 and 64 connections,
# in embedded mode, or with CLUSTER=1 as reward-api + auth + event + REWARD_WORKERS grant-worker
# processes on RabbitMQ (which must be running). Also GET /auth/me at 1 connection: the bare
# HTTP -> RPC -> HTTP round trip. Usage: bench/grants.sh [seconds per run, default 10].
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
bin=${BIN:-build/bin/reward-platform}
dir=$(mktemp -d)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port/api/v1"
export JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n') PORT=$port BIND_ADDRESS=127.0.0.1 SQLITE_DIR=$dir \
  ADMIN_USERNAME=bench_admin ADMIN_PASSWORD=bench-admin-pw RATE_LIMIT_RPS=0 RATE_LIMIT_AUTH_RPS=0 LOG_LEVEL=warn \
  HTTP_THREADS=96 PASSWORD_HASH_CONCURRENCY=2
pids=()
if [ "${CLUSTER:-0}" = 1 ]; then
  export TRANSPORT=amqp
  bindir=$(dirname "$bin")
  "$bindir/reward-auth-worker" 2>>"$dir/log" & pids+=($!)
  "$bindir/reward-event-worker" 2>>"$dir/log" & pids+=($!)
  for _ in $(seq 1 "${REWARD_WORKERS:-2}"); do "$bindir/reward-grant-worker" 2>>"$dir/log" & pids+=($!); done
  "$bindir/reward-api" 2>>"$dir/log" & pids+=($!)
else
  "$bin" 2>"$dir/log" & pids+=($!)
fi
trap 'kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 300); do curl -sf "$base/health/ready" >/dev/null && break; sleep 0.1; done
/usr/bin/python3 bench/setup_grants.py "$base" bench_admin bench-admin-pw 200 1000 "$dir"
export BENCH_TOKENS=$dir/tokens BENCH_EVENTS=$dir/events BENCH_TOKEN=$(head -1 "$dir/tokens")
run() { # script url connections [pair offset]
  local threads=2
  cat "bench/$1" bench/report.lua > "$dir/script.lua"
  BENCH_OFFSET=${4:-0} BENCH_THREADS=$threads wrk -t$threads -c$3 -d${secs}s --timeout 10s -s "$dir/script.lua" "$2" | grep RESULT
}
echo "| what | connections | req/s | p50 ms | p99 ms | non-2xx |"
echo "|---|---|---|---|---|---|"
for c in 16 64; do
  out=$(run claims.lua "$base/events" $c $(( c == 16 ? 0 : 50000 )))
  echo "| grant (201 SUCCESS) | $c | $(sed 's/.*rps=\([^ ]*\).*/\1/' <<<"$out") | $(sed 's/.*p50_ms=\([^ ]*\).*/\1/' <<<"$out") | $(sed 's/.*p99_ms=\([^ ]*\).*/\1/' <<<"$out") | $(sed 's/.*non2xx=\([^ ]*\).*/\1/' <<<"$out") |"
done
out=$(run me.lua "$base/auth/me" 2)
echo "| GET /auth/me (HTTP->RPC round trip) | 2 | $(sed 's/.*rps=\([^ ]*\).*/\1/' <<<"$out") | $(sed 's/.*p50_ms=\([^ ]*\).*/\1/' <<<"$out") | $(sed 's/.*p99_ms=\([^ ]*\).*/\1/' <<<"$out") | $(sed 's/.*non2xx=\([^ ]*\).*/\1/' <<<"$out") |"
for c in 16 64; do
  out=$(run list_events.lua "$base/events" $c)
  echo "| GET /events | $c | $(sed 's/.*rps=\([^ ]*\).*/\1/' <<<"$out") | $(sed 's/.*p50_ms=\([^ ]*\).*/\1/' <<<"$out") | $(sed 's/.*p99_ms=\([^ ]*\).*/\1/' <<<"$out") | $(sed 's/.*non2xx=\([^ ]*\).*/\1/' <<<"$out") |"
done
/usr/bin/python3 tests/e2e/invariants.py "$dir" | tail -1
