#!/bin/sh
# Container healthcheck of the reward-platform image: `reward-healthcheck api` or
# `reward-healthcheck worker`. It runs inside the container (PID 1 is the component) and exits 0
# when healthy.
#   api     GET /api/v1/health/ready on the container's own PORT (https when TLS_CERT_FILE is set):
#           the transport and every worker's store answer.
#   worker  PID 1 holds an established TCP connection to the broker port of its AMQP_URL. A worker
#           has no HTTP port; a worker that lost its broker cannot take calls, and one that is up
#           and connected is the one RabbitMQ delivers to. (Port only: with host networking the
#           broker's address may be any local one.)
set -eu
case "${1:-}" in
api)
  scheme=http
  [ -n "${TLS_CERT_FILE:-}" ] && scheme=https
  exec curl -fsS -k -o /dev/null --max-time 4 "$scheme://127.0.0.1:${PORT:-8080}/api/v1/health/ready"
  ;;
worker)
  url=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}
  hostport=${url#*://}
  hostport=${hostport#*@}
  hostport=${hostport%%/*}
  case "$hostport" in
  *:*) port=${hostport##*:} ;;
  *) port=5672 ;;
  esac
  # the socket inodes PID 1 holds, then an ESTABLISHED (01) row of /proc/net/tcp{,6} with one of
  # them whose remote port is the broker's
  inodes=$(ls -l /proc/1/fd 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\].*/\1/p')
  [ -n "$inodes" ] || { echo "worker: PID 1 holds no socket"; exit 1; }
  hex=$(printf '%04X' "$port")
  for f in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$f" ] || continue
    # columns: sl local rem st ... inode(10th)
    if awk -v p=":$hex" -v list=" $(echo $inodes) " \
         'NR > 1 && $4 == "01" && substr($3, length($3) - 4) == p && index(list, " " $10 " ") { found = 1 }
          END { exit !found }' "$f"; then
      exit 0
    fi
  done
  echo "worker: no connection to the broker port $port"
  exit 1
  ;;
*)
  echo "usage: reward-healthcheck api|worker" >&2
  exit 2
  ;;
esac
