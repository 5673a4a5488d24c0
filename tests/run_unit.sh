#!/bin/sh
# Runs every Criterion test binary in the given directory and stops at the first failure.
# Sanitizer reports (ASan/UBSan/LSan) make a binary exit non-zero, which fails the run.
set -eu
dir=${1:?usage: run_unit.sh DIR}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "$dir"/test_*; do
  [ -x "$t" ] || continue
  echo "== $(basename "$t")"
  # verbose for the [SKIP] lines and their reasons; the per-test RUN/PASS lines are dropped
  if "$t" --jobs=2 --verbose >"$log" 2>&1; then rc=0; else rc=1; fi
  grep -v '^\[RUN \]\|^\[PASS\]' "$log" || true
  if [ $rc -ne 0 ]; then status=1; echo "FAILED: $(basename "$t")"; fi
done
exit $status
