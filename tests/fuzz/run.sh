#!/bin/sh
# Runs libFuzzer targets built in DIR/fuzz: first replays every saved crash of
# tests/fuzz/regressions/<target>/ once, then fuzzes for SECONDS from the seed corpus
# tests/fuzz/corpus/<target>/ (read-only; what is found is kept in DIR/corpus/<target>, crashes in
# DIR/crashes/<target>/). One summary line per target; exits non-zero when any target crashed,
# leaked, hit undefined behaviour or broke one of its properties.
# usage: run.sh DIR SECONDS [TARGET...]   (no TARGET: every target built in DIR/fuzz)
set -u
dir=${1:?usage: run.sh DIR SECONDS [TARGET...]}
secs=${2:?usage: run.sh DIR SECONDS [TARGET...]}
shift 2
here=$(dirname "$0")
targets="$*"
if [ -z "$targets" ]; then
  for b in "$dir"/fuzz/fuzz_*; do
    case "$b" in *.d) continue ;; esac
    [ -x "$b" ] && targets="$targets ${b##*/fuzz_}"
  done
fi
[ -n "$targets" ] || { echo "fuzz: no targets built in $dir/fuzz"; exit 1; }
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
log=$(mktemp)
trap 'rm -f "$log"' EXIT INT TERM
status=0
for t in $targets; do
  bin=$dir/fuzz/fuzz_$t
  if [ ! -x "$bin" ]; then echo "fuzz $t: FAILED, $bin is not built"; status=1; continue; fi
  regs=$(find "$here/regressions/$t" -type f 2>/dev/null | sort)
  if [ -n "$regs" ]; then
    # shellcheck disable=SC2086 # one argument per saved input (names have no spaces)
    if ! "$bin" $regs >"$log" 2>&1; then
      tail -40 "$log"
      echo "fuzz $t: FAILED replaying a saved regression input"
      status=1
      continue
    fi
  fi
  nregs=$(printf '%s' "$regs" | grep -c . || true)
  mkdir -p "$dir/corpus/$t" "$dir/crashes/$t"
  dict=
  [ -f "$here/$t.dict" ] && dict=-dict=$here/$t.dict
  if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$dir/crashes/$t/" $dict "$dir/corpus/$t" "$here/corpus/$t" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
    cov=$(echo "$done_line" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$done_line" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$done_line" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
    echo "fuzz $t: ok, ${secs}s, ${runs:-?} runs, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}, $nregs regressions replayed"
  else
    tail -60 "$log"
    echo "fuzz $t: FAILED (input saved in $dir/crashes/$t/)"
    status=1
  fi
done
exit $status
