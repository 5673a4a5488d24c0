#!/bin/sh
# Starts Debian's RabbitMQ for the tests when it is not running (and remembers that it did), or
# stops it again if it was started here. Usage: tests/rabbitmq.sh start|stop STATE_FILE
set -eu
cmd=${1:?start|stop}
state=${2:?state file}
case "$cmd" in
start)
  if rabbitmqctl -q status >/dev/null 2>&1; then
    echo "rabbitmq: already running, leaving it alone"
    rm -f "$state"
    exit 0
  fi
  echo "rabbitmq: starting rabbitmq-server -detached"
  rabbitmq-server -detached
  # wait until the node answers, then until its applications are up (bounded polling)
  tries=0
  until rabbitmqctl -q ping >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 360 ]; then
      echo "rabbitmq: did not start within 180 s" >&2
      exit 1
    fi
    sleep 0.5
  done
  if ! timeout 180 rabbitmqctl -q await_startup; then
    echo "rabbitmq: did not finish starting" >&2
    exit 1
  fi
  touch "$state"
  echo "rabbitmq: up"
  ;;
stop)
  if [ -f "$state" ]; then
    echo "rabbitmq: stopping the broker this run started"
    rabbitmqctl -q stop >/dev/null 2>&1 || true
    rm -f "$state"
  fi
  ;;
esac
