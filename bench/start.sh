# Sourced by the benchmark scripts: starts the platform on a free port with a fresh data
# directory, in embedded mode, or with CLUSTER=1 as reward-api + auth + event + REWARD_WORKERS
# grant-worker processes on RabbitMQ (which must be running); stops it on exit.
# Sets: dir (data directory), base (API base URL), pids.
bin=${BIN:-build/bin/reward-platform}
dir=$(mktemp -d)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port/api/v1"
export JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n') PORT=$port BIND_ADDRESS=127.0.0.1 SQLITE_DIR=$dir \
  ADMIN_USERNAME=bench_admin ADMIN_PASSWORD=bench-admin-pw RATE_LIMIT_RPS=0 RATE_LIMIT_AUTH_RPS=0 LOGIN_GLOBAL_RPS=0 LOG_LEVEL=warn \
  HTTP_THREADS=96 PASSWORD_HASH_CONCURRENCY=2 METRICS_ALLOW_LOOPBACK=1
pids=()
# OWN_SESSIONS=1 starts each cluster process in a session of its own (setsid): the kernel's
# autogroups then share the cores among the processes as it would among services in cgroups of
# their own, instead of among all their threads and wrk's (bench/README.md, 2026-12-05 second
# sitting)
own=()
[ "${OWN_SESSIONS:-0}" = 1 ] && own=(setsid)
if [ "${CLUSTER:-0}" = 1 ]; then
  export TRANSPORT=amqp
  bindir=$(dirname "$bin")
  "${own[@]}" "$bindir/reward-auth-worker" 2>>"$dir/log" & pids+=($!)
  "${own[@]}" "$bindir/reward-event-worker" 2>>"$dir/log" & pids+=($!)
  for _ in $(seq 1 "${REWARD_WORKERS:-2}"); do "${own[@]}" "$bindir/reward-grant-worker" 2>>"$dir/log" & pids+=($!); done
  "${own[@]}" "$bindir/reward-api" 2>>"$dir/log" & pids+=($!)
else
  "$bin" 2>"$dir/log" & pids+=($!)
fi
trap 'kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 300); do curl -sf "$base/health/ready" >/dev/null && break; sleep 0.1; done
