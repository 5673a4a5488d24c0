#!/usr/bin/env bash
# Benchmarks GET /events/reward-requests/export: seeds ROWS (default 1,000,000) paid requests
# straight into events.db, then exports them all with curl as CSV and as NDJSON, and reports wall
# time, rows/s, bytes, and the peak RSS (VmHWM) of the process that streams (the platform, or
# reward-api with CLUSTER=1) when idle, after a one-player export and after each full export: a
# flat peak is the constant memory the paging promises. Usage: bench/export.sh [rows]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
. bench/start.sh
api_pid=${pids[-1]} # the platform, or reward-api (started last) in the cluster shape
hwm() { awk '/VmHWM/ {print $2 " kB"}' "/proc/$api_pid/status"; }
t0=$(date +%s.%N)
user=$(/usr/bin/python3 bench/seed_requests.py "$dir/events.db" "$rows")
echo "seeded $rows rows in $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s"
token=$(curl -sf "$base/auth/login" -H 'Content-Type: application/json' \
  -d '{"username":"bench_admin","password":"bench-admin-pw"}' |
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
get() { # query output -> "seconds bytes"
  curl -sf -o "$2" -w '%{time_total} %{size_download}\n' -H "Authorization: Bearer $token" \
    "$base/events/reward-requests/export?$1"
}
echo "| export | rows | wall s | rows/s | MB | streaming process VmHWM after |"
echo "|---|---|---|---|---|---|"
echo "| (idle, after seeding) | – | – | – | – | $(hwm) |"
read -r s b < <(get "format=csv&userId=$user" "$dir/small.csv")
n=$(($(wc -l <"$dir/small.csv") - 1))
echo "| CSV, one player | $n | $s | $(echo "$n / $s" | bc) | $(echo "scale=1; $b / 1000000" | bc) | $(hwm) |"
for fmt in csv ndjson; do
  read -r s b < <(get "format=$fmt" "$dir/all.$fmt")
  n=$(wc -l <"$dir/all.$fmt")
  [ "$fmt" = csv ] && n=$((n - 1))
  [ "$n" = "$rows" ] || { echo "the $fmt export has $n rows, expected $rows" >&2; exit 1; }
  echo "| ${fmt^^}, everything | $n | $s | $(echo "$n / $s" | bc) | $(echo "scale=1; $b / 1000000" | bc) | $(hwm) |"
  rm -f "$dir/all.$fmt"
done
