#!/usr/bin/env bash
# Benchmarks successful grants (POST /events/{id}/reward-requests, no conditions, unlimited
# stock, every request a fresh (player, event) pair) and GET /events, at 16 and 64 connections,
# in embedded mode, or with CLUSTER=1 as reward-api + auth + event + REWARD_WORKERS grant-worker
# processes on RabbitMQ (which must be running). Also GET /auth/me at 1 connection: the bare
# HTTP -> RPC -> HTTP round trip. Usage: bench/grants.sh [seconds per run, default 10].
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
. bench/start.sh
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
