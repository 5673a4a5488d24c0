#!/usr/bin/env bash
# Benchmarks GET /auth/me and POST /auth/login of the embedded platform with wrk at 1, 16 and
# 64 connections. Usage: bench/auth.sh [seconds per run, default 10]. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
bin=${BIN:-build/bin/reward-platform}
dir=$(mktemp -d)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port/api/v1"
JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n') PORT=$port BIND_ADDRESS=127.0.0.1 SQLITE_DIR=$dir \
  RATE_LIMIT_RPS=0 RATE_LIMIT_AUTH_RPS=0 LOGIN_GLOBAL_RPS=0 LOG_LEVEL=warn HTTP_THREADS=96 "$bin" 2>"$dir/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 300); do curl -sf "$base/health/ready" >/dev/null && break; sleep 0.1; done
export BENCH_USER=bench_user BENCH_PASSWORD=bench-password-1
curl -sf -XPOST "$base/auth/register" -H 'Content-Type: application/json' \
  -d "{\"username\":\"$BENCH_USER\",\"email\":\"bench@example.com\",\"password\":\"$BENCH_PASSWORD\"}" >/dev/null
BENCH_TOKEN=$(curl -sf -XPOST "$base/auth/login" -H 'Content-Type: application/json' \
  -d "{\"username\":\"$BENCH_USER\",\"password\":\"$BENCH_PASSWORD\"}" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
export BENCH_TOKEN
echo "| route | connections | req/s | p50 ms | p99 ms | non-2xx |"
echo "|---|---|---|---|---|---|"
for route in me login; do
  path=/auth/$route
  for c in 1 16 64; do
    out=$(cat bench/$route.lua bench/report.lua > "$dir/script.lua"; wrk -t$(( c < 2 ? 1 : 2 )) -c$c -d${secs}s --timeout 10s -s "$dir/script.lua" "$base$path" | grep RESULT)
    rps=$(sed 's/.*rps=\([^ ]*\).*/\1/' <<<"$out"); p50=$(sed 's/.*p50_ms=\([^ ]*\).*/\1/' <<<"$out")
    p99=$(sed 's/.*p99_ms=\([^ ]*\).*/\1/' <<<"$out"); bad=$(sed 's/.*non2xx=\([^ ]*\).*/\1/' <<<"$out")
    echo "| ${route/me/GET \/auth\/me} | $c | $rps | $p50 | $p99 | $bad |" | sed 's/| login |/| POST \/auth\/login |/'
  done
done
