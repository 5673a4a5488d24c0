#!/usr/bin/env bash
# Reads as many players: GET /events (the first page of 20 of 1,000) and GET /auth/me at 64
# connections, each request as the next of P players, for every P in PLAYERS (default
# "1 200 20000"), in embedded mode or with CLUSTER=1 (RabbitMQ must be running). The other read
# benchmarks use one token; a studio's players each call now and then, so most requests find
# neither their verified token nor their account's state (SESSION_CACHE_MS) in the api's caches.
# Players past the first are copies written into auth.db (bench/seed_players.py). The last two
# columns, from the api's /metrics: the share of token checks that verified a signature (the rest
# were answered from the tokens it keeps) and of requests that fetched their account's state.
# Usage: [CLUSTER=1] [PLAYERS="1 200 20000"] bench/many_players.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
players=${PLAYERS:-1 200 20000}
most=$(tr ' ' '\n' <<<"$players" | sort -n | tail -1)
. bench/start.sh
/usr/bin/python3 bench/setup_grants.py "$base" bench_admin bench-admin-pw 1 1000 "$dir"
template=$(head -1 "$dir/tokens")
/usr/bin/python3 bench/seed_players.py "$dir/auth.db" "$template" $((most - 1)) "$dir/seeded"
cat bench/players.lua bench/report.lua > "$dir/script.lua"
run() { # url tokens-file seconds
  BENCH_TOKENS=$2 BENCH_THREADS=2 wrk -t2 -c64 -d"$3"s --timeout 10s -s "$dir/script.lua" "$1" | grep RESULT
}
field() { sed "s/.*$1=\([^ ]*\).*/\1/" <<<"$2"; }
# the api's token checks (kept, verified) and account states fetched so far, from /metrics
counters() {
  { curl -sf "${base%/api/v1}/metrics" || true; } | awk '
    /^rp_token_checks_total\{how="kept"\}/ { k = $2 } /^rp_token_checks_total\{how="verified"\}/ { v = $2 }
    /^rp_session_accounts_fetched_total / { f = $2 } END { print k + 0, v + 0, f + 0 }'
}
share() { # before after: the % of token checks that verified, and of requests that fetched a state
  read -r k0 v0 f0 <<<"$1"; read -r k1 v1 f1 <<<"$2"
  awk -v k=$((k1 - k0)) -v v=$((v1 - v0)) -v f=$((f1 - f0)) \
    'BEGIN { n = k + v; if (n) printf "%.1f | %.1f", 100 * v / n, 100 * f / n; else printf "- | -" }'
}
echo "| players | route | req/s | p50 ms | p99 ms | non-2xx | tokens verified % | states fetched % |"
echo "|---|---|---|---|---|---|---|---|"
for p in $players; do
  { echo "$template"; head -n $((p - 1)) "$dir/seeded"; } > "$dir/tokens.$p"
  for route in events auth/me; do
    run "$base/$route" "$dir/tokens.$p" 3 >/dev/null
    before=$(counters)
    out=$(run "$base/$route" "$dir/tokens.$p" "$secs")
    after=$(counters)
    echo "| $p | GET /$route | $(field rps "$out") | $(field p50_ms "$out") | $(field p99_ms "$out") | $(field non2xx "$out") |" \
      "$(share "$before" "$after") |"
  done
done
