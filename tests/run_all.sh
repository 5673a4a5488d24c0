#!/bin/sh
# Everything `make test` runs after building: RabbitMQ up (if needed), the Criterion unit tests
# under ASan+UBSan, the MongoDB wire-contract tests (ASan driver), the OpenAPI generator's checks
# and lint, the black-box HTTP tests against the ASan build, each response checked against the
# OpenAPI document (embedded, then the cluster on RabbitMQ), the console's browser tests
# (embedded pass only); RabbitMQ down again if it was started here. Ends with one summary line.
set -u
python=${PYTHON:-/usr/bin/python3}
state=build-asan/rabbitmq.started-by-tests
out=$(mktemp -d)
tests/rabbitmq.sh start "$state" || exit 1
trap 'tests/rabbitmq.sh stop "$state"; rm -rf "$out"' EXIT INT TERM
status=0
tests/run_unit.sh build-asan/tests 2>&1 | tee "$out/unit"
grep -q '^FAILED:' "$out/unit" && status=1
# the libFuzzer targets of tests/fuzz (built by make fuzz-build), a few seconds each after
# replaying every saved crash: make fuzz runs them longer
echo "== fuzz targets, briefly (saved crashes replayed, then ${FUZZ_SMOKE_SECONDS:-3}s each)"
tests/fuzz/run.sh build-fuzz "${FUZZ_SMOKE_SECONDS:-3}" >"$out/fuzz" 2>&1 || status=1
cat "$out/fuzz"
echo "== MongoDB wire-contract tests (the real stores against a scripted replica-set primary)"
MONGO_DRIVER=build-asan/tests/mongo_driver "$python" -m pytest -q -rs tests/contract 2>&1 | tee "$out/contract"
[ -s "$out/contract" ] && tail -1 "$out/contract" | grep -q ' passed' && ! tail -1 "$out/contract" | grep -qE 'failed|error' || status=1
echo "== OpenAPI document (the generator refuses drift; Redocly lint, pinned in tests/openapi/)"
"$python" -m pytest -q -p no:cacheprovider tests/openapi 2>&1 | tee "$out/openapi"
[ -s "$out/openapi" ] && tail -1 "$out/openapi" | grep -q ' passed' && ! tail -1 "$out/openapi" | grep -qE 'failed|error' || status=1
echo "== black-box tests, embedded (one process, inproc transport)"
BIN=build-asan/bin/reward-platform "$python" -m pytest -q tests/e2e 2>&1 | tee "$out/embedded"
[ -s "$out/embedded" ] && tail -1 "$out/embedded" | grep -q ' passed' && ! tail -1 "$out/embedded" | grep -qE 'failed|error' || status=1
echo "== browser tests of the console, embedded (headless chromium; screenshots in build/test-output/browser)"
BIN=build-asan/bin/reward-platform "$python" -m pytest -q -rs tests/browser 2>&1 | tee "$out/browser"
[ -s "$out/browser" ] && tail -1 "$out/browser" | grep -q ' passed' && ! tail -1 "$out/browser" | grep -qE 'failed|error' || status=1
echo "== black-box tests, cluster (reward-api + auth, event and 2 grant worker processes on RabbitMQ)"
E2E_MODE=cluster BIN=build-asan/bin/reward-platform "$python" -m pytest -q tests/e2e 2>&1 | tee "$out/cluster"
[ -s "$out/cluster" ] && tail -1 "$out/cluster" | grep -q ' passed' && ! tail -1 "$out/cluster" | grep -qE 'failed|error' || status=1
# one line for humans and CI: Criterion's per-binary syntheses plus both pytest runs
summary=$(cat "$out/unit" "$out/contract" "$out/openapi" "$out/embedded" "$out/browser" "$out/cluster" | awk '
  /^\[SKIP\]/ { s++ }
  /Synthesis: Tested:/ { for (i = 1; i <= NF; i++) { if ($i == "Passing:") p += $(i+1); if ($i == "Failing:") f += $(i+1) } }
  / passed| failed/ && /in [0-9.]+s/ { for (i = 1; i < NF; i++) { v = $i + 0; w = $(i+1); sub(/,$/, "", w);
      if (w == "passed") p += v; if (w == "failed" || w == "errors" || w == "error") f += v; if (w == "skipped") s += v } }
  END { printf "%d passed, %d failed, %d skipped\n", p, f, s }')
tests/rabbitmq.sh stop "$state"
trap - EXIT INT TERM
rm -rf "$out"
echo "tests: $summary"
exit $status
