#!/bin/sh
# Runs every Criterion test binary in the given directory and stops at the first failure.
# Sanitizer reports (ASan/UBSan/LSan) make a binary exit non-zero, which fails the run.
set -eu
dir=${1:?usage: run_unit.sh DIR}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for t in "$dir"/test_*; do
  [ -x "$t" ] || continue
  echo "== $(basename "$t")"
  if ! "$t" --jobs=2 2>&1; then status=1; echo "FAILED: $(basename "$t")"; fi
done
exit $status
