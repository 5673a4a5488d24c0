#!/bin/sh
# `make test-deploy`: builds the Docker images and runs the compose stack of deploy/ for real on
# this machine, then removes everything it started. Steps:
#   1. dockerd up (started here if none runs) and the Debian base image (debootstrap, cached);
#   2. `docker-compose config` on the compose files: refused without the secrets, valid with them;
#   3. the platform and RabbitMQ images built (classic builder, as docker-compose 1.29 builds);
#   4. the stack up on the SQLite store in a shared volume, host networking, free ports (another
#      RabbitMQ may hold 5672, 25672 and 4369), random secrets;
#   5. the black-box smoke test through the api (tests/deploy/test_smoke.py);
#   6. containers, volumes and dangling build layers of this run removed, dockerd stopped if it
#      was started here. The images reward-platform:local, reward-rabbitmq:local and the base
#      image stay cached (DEPLOY_KEEP_CACHE=1 also keeps the build stage's layers).
set -u
cd "$(dirname "$0")/../.."
python=${PYTHON:-/usr/bin/python3}
state=$(mktemp -d)
project=rp-deploy-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
export COMPOSE_PROJECT_NAME=$project BASE_IMAGE=${BASE_IMAGE:-debian:bookworm}
compose="docker-compose -f deploy/docker-compose.yml"
started=0

cleanup() {
  trap - EXIT INT TERM
  if [ "$started" = 1 ]; then
    echo "test-deploy: removing the stack $project (containers, volumes)"
    $compose logs --no-color --tail 30 >"$state/stack.log" 2>&1 || true
    $compose down -v --remove-orphans --timeout 20 >/dev/null 2>&1 || true
  fi
  if [ "${DEPLOY_KEEP_CACHE:-0}" != 1 ]; then
    docker image prune -f --filter label=reward-platform.build >/dev/null 2>&1 || true
  fi
  tests/deploy/docker_env.sh down "$state/docker"
  rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tests/deploy/docker_env.sh up "$state/docker" || exit 1

# random secrets: nothing of the repository is a credential of the stack
secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
JWT_SECRET=$(secret) ADMIN_PASSWORD=$(secret) ADMIN_USERNAME=deploy_admin
RP_AMQP_PASSWORD_ADMIN=$(secret) RP_AMQP_PASSWORD_API=$(secret) RP_AMQP_PASSWORD_AUTH=$(secret)
RP_AMQP_PASSWORD_EVENT=$(secret) RP_AMQP_PASSWORD_REWARD=$(secret)
export JWT_SECRET ADMIN_PASSWORD ADMIN_USERNAME RP_AMQP_PASSWORD_ADMIN RP_AMQP_PASSWORD_API RP_AMQP_PASSWORD_AUTH \
  RP_AMQP_PASSWORD_EVENT RP_AMQP_PASSWORD_REWARD
# four distinct free loopback ports, held open together while chosen
set -- $("$python" -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
API_PORT=$1 AMQP_PORT=$2 AMQP_DIST_PORT=$3 EPMD_PORT=$4 API_BIND=127.0.0.1
export API_PORT AMQP_PORT AMQP_DIST_PORT EPMD_PORT API_BIND

echo "== test-deploy: compose files (docker-compose config)"
DEPLOY_PROJECT=$project "$python" -m pytest -q -p no:cacheprovider tests/deploy/test_compose_config.py || exit 1

echo "== test-deploy: building the images (base $BASE_IMAGE)"
t0=$(date +%s)
$compose build >"$state/build.log" 2>&1 || { tail -40 "$state/build.log"; exit 1; }
echo "test-deploy: images built in $(($(date +%s) - t0)) s"

echo "== test-deploy: starting the stack $project (api :$API_PORT, RabbitMQ :$AMQP_PORT, host network)"
started=1
$compose up -d >"$state/up.log" 2>&1 || { cat "$state/up.log"; $compose logs --no-color --tail 40; exit 1; }

echo "== test-deploy: smoke test through the api"
status=0
DEPLOY_PROJECT=$project DEPLOY_API_URL="http://127.0.0.1:$API_PORT/api/v1" \
  "$python" -m pytest -q -p no:cacheprovider tests/deploy/test_smoke.py || status=1
if [ $status -ne 0 ]; then
  echo "test-deploy: FAILED; the stack's last log lines:"
  $compose logs --no-color --tail 40 || true
fi
exit $status
