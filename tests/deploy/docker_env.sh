#!/bin/sh
# The Docker engine for `make test-deploy`, on a Debian 12 machine that cannot pull images.
#   docker_env.sh up STATE_DIR     start dockerd if none answers (remembered in STATE_DIR), then make
#                                  the base image from Debian with debootstrap when it is missing
#   docker_env.sh down STATE_DIR   stop dockerd again if `up` started it
# A daemon started here has no bridge and leaves iptables alone: the test stack uses host
# networking only, so nothing else on the machine is rewired.
set -eu
cmd=${1:?up|down}
state=${2:?state directory}
base=${BASE_IMAGE:-debian:bookworm}
mkdir -p "$state"

case "$cmd" in
up)
  if docker info >/dev/null 2>&1; then
    echo "docker: a daemon is already running, using it"
  else
    echo "docker: starting dockerd"
    dockerd --bridge=none --iptables=false --ip-masq=false \
      --pidfile "$state/dockerd.pid" >"$state/dockerd.log" 2>&1 &
    echo $! >"$state/dockerd.started"
    tries=0
    until docker info >/dev/null 2>&1; do
      tries=$((tries + 1))
      if [ "$tries" -gt 120 ] || ! kill -0 "$(cat "$state/dockerd.started")" 2>/dev/null; then
        echo "docker: dockerd did not answer within 60 s:" >&2
        tail -20 "$state/dockerd.log" >&2
        exit 1
      fi
      sleep 0.5
    done
  fi
  if docker image inspect "$base" >/dev/null 2>&1; then
    echo "docker: base image $base present (cached)"
  else
    # no registry can be reached: the base image is Debian itself, imported as a root tree
    echo "docker: making the base image $base with debootstrap (about a minute)"
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$state/debootstrap.log" 2>&1 ||
      { tail -20 "$state/debootstrap.log" >&2; exit 1; }
    tar -C "$root" -c . | docker import - "$base" >/dev/null
    echo "docker: base image $base imported"
  fi
  ;;
down)
  if [ -f "$state/dockerd.started" ]; then
    pid=$(cat "$state/dockerd.started")
    echo "docker: stopping the dockerd this run started (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    tries=0
    while kill -0 "$pid" 2>/dev/null && [ "$tries" -lt 120 ]; do
      tries=$((tries + 1))
      sleep 0.5
    done
    rm -f "$state/dockerd.started"
  fi
  ;;
*)
  echo "usage: docker_env.sh up|down STATE_DIR" >&2
  exit 2
  ;;
esac
