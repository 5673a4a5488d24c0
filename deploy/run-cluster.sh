#!/usr/bin/env bash
# The production shape on one machine, in the foreground: RabbitMQ (started from Debian's package
# if it is not running), reward-api, one auth worker, one event worker and REWARD_WORKERS (default
# 2) grant workers, all with TRANSPORT=amqp and the SQLite store under SQLITE_DIR. Ctrl-C or
# SIGTERM stops every process (and RabbitMQ, if it was started here).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN_DIR:-build/bin}
workers=${REWARD_WORKERS:-2}
export TRANSPORT=amqp SQLITE_DIR=${SQLITE_DIR:-./data} PORT=${PORT:-8080}
mkdir -p "$SQLITE_DIR"
if [ -z "${JWT_SECRET:-}" ]; then
  if [ ! -s "$SQLITE_DIR/jwt_secret" ]; then
    (umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n=+/' > "$SQLITE_DIR/jwt_secret")
    echo "run-cluster: generated a random JWT_SECRET for local use in $SQLITE_DIR/jwt_secret"
  fi
  JWT_SECRET=$(cat "$SQLITE_DIR/jwt_secret")
  export JWT_SECRET
fi
state=$(mktemp)
rm -f "$state"
tests/rabbitmq.sh start "$state"
pids=()
stop() {
  trap - INT TERM EXIT
  echo "run-cluster: stopping ${#pids[@]} processes"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  tests/rabbitmq.sh stop "$state"
}
trap stop INT TERM EXIT
# Each process in a session of its own, as services in cgroups of their own would be: the
# kernel shares the cores among sessions (autogroups) before threads, so a busy api's HTTP
# threads cannot starve the workers its calls wait for (one session: a renewal of the events
# page through the broker took up to a second under load; bench/README.md).
setsid "$bin/reward-auth-worker" & pids+=($!)
setsid "$bin/reward-event-worker" & pids+=($!)
for _ in $(seq 1 "$workers"); do setsid "$bin/reward-grant-worker" & pids+=($!); done
setsid "$bin/reward-api" & pids+=($!)
echo "run-cluster: api on :$PORT, 1 auth, 1 event and $workers grant workers on RabbitMQ (Ctrl-C stops all)"
# any process that dies takes the cluster down with it, so a broken start is not hidden
wait -n "${pids[@]}" || true
