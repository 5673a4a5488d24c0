#!/usr/bin/env bash
# Benchmarks a batch grant: one POST /events/{id}/batch-grants with N distinct players (default
# 100,000), timed from the request to the 202 and to the batch's COMPLETED, in embedded mode or
# with CLUSTER=1 (see bench/start.sh; REWARD_WORKERS grant workers). Usage: bench/batch.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
. bench/start.sh
/usr/bin/python3 bench/batch.py "$base" bench_admin bench-admin-pw "$n" "$dir"
/usr/bin/python3 tests/e2e/invariants.py "$dir" | tail -1
