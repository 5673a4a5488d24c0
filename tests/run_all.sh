#!/bin/sh
# Everything `make test` runs after building: RabbitMQ up (if needed), the Criterion unit tests
# under ASan+UBSan, the black-box HTTP tests against the ASan build; RabbitMQ down again if it
# was started here.
set -u
python=${PYTHON:-/usr/bin/python3}
state=build-asan/rabbitmq.started-by-tests
tests/rabbitmq.sh start "$state" || exit 1
trap 'tests/rabbitmq.sh stop "$state"' EXIT INT TERM
status=0
tests/run_unit.sh build-asan/tests || status=1
echo "== black-box tests, embedded (one process, inproc transport)"
BIN=build-asan/bin/reward-platform "$python" -m pytest -q tests/e2e || status=1
echo "== black-box tests, cluster (reward-api + auth, event and 2 grant worker processes on RabbitMQ)"
E2E_MODE=cluster BIN=build-asan/bin/reward-platform "$python" -m pytest -q tests/e2e || status=1
exit $status
