#!/usr/bin/env bash
# The RPC round trip at 1 connection with and without the reply spin (AMQP_REPLY_SPIN_US), paired
# in one sitting: the cluster bench/start.sh starts (auth, event and 2 grant workers and a
# reward-api with AMQP_REPLY_SPIN_US=0, on the running RabbitMQ in a virtual host of its own) and
# a second reward-api beside it with SPIN (default 500); ROUNDS (6) rounds of `wrk -t1 -c1 -d5s
# --latency` GET /auth/me against each in turn, with each api's CPU per request.
# Usage: [SPIN=500] [ROUNDS=6] [BIN=...] bench/reply_spin.sh
set -euo pipefail
cd "$(dirname "$0")/.."
spin=${SPIN:-500}
if [ -z "${BIN:-}" ]; then make -s all >&2; fi
timeout 60 rabbitmqctl -q status >/dev/null 2>&1 || { echo "reply_spin: RabbitMQ is not running" >&2; exit 1; }
vhost=rp-spin-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
rabbitmqctl -q add_vhost "$vhost"
rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*'
export AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost" AMQP_REPLY_SPIN_US=0
CLUSTER=1 # read by bench/start.sh: the workers, and a reward-api without the spin, the last of pids
# shellcheck source=bench/start.sh
. bench/start.sh # sets dir, base, port, pids
api0=${pids[-1]} p0=$port
p1=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PORT=$p1 AMQP_REPLY_SPIN_US=$spin "$(dirname "$bin")/reward-api" 2>>"$dir/log" &
api1=$!
pids+=("$api1")
trap 'kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; rm -rf "$dir"; rabbitmqctl -q delete_vhost "$vhost" || true' EXIT
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$p1/api/v1/health/ready" >/dev/null && break; sleep 0.1; done
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, in clock ticks
user=spin$$
login="{\"username\":\"$user\",\"password\":\"spin-password-1\"}"
curl -sf -XPOST -H 'Content-Type: application/json' -d "${login%\}},\"email\":\"$user@example.com\"}" \
    "http://127.0.0.1:$p0/api/v1/auth/register" >/dev/null
BENCH_TOKEN=$(curl -sf -XPOST -H 'Content-Type: application/json' -d "$login" "http://127.0.0.1:$p0/api/v1/auth/login" |
    /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["accessToken"])')
export BENCH_TOKEN
for p in $p0 $p1; do wrk -t1 -c1 -d2s -s bench/me.lua "http://127.0.0.1:$p/api/v1/auth/me" >/dev/null; done
hz=$(getconf CLK_TCK)
echo "| round | AMQP_REPLY_SPIN_US | req/s | p50 | p99 | the api's CPU per request |"
echo "|---|---|---|---|---|---|"
for i in $(seq 1 "${ROUNDS:-6}"); do
    for p in $p0 $p1; do
        api=$([ "$p" = "$p0" ] && echo "$api0" || echo "$api1")
        c0=$(cpu_ticks "$api")
        out=$(wrk -t1 -c1 -d5s --latency -s bench/me.lua "http://127.0.0.1:$p/api/v1/auth/me")
        c1=$(cpu_ticks "$api")
        n=$(awk '/requests in/ {print $1}' <<<"$out")
        echo "| $i | $([ "$p" = "$p0" ] && echo 0 || echo "$spin") | $(awk '/Requests\/sec/ {print $2}' <<<"$out") |" \
            "$(awk '$1 == "50%" {print $2}' <<<"$out") | $(awk '$1 == "99%" {print $2}' <<<"$out") |" \
            "$(awk -v c="$((c1 - c0))" -v hz="$hz" -v n="$n" 'BEGIN{printf "%.0f us", c * 1e6 / hz / n}') |"
    done
done
