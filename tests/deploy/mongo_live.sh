#!/bin/sh
# `make test-mongo-live`: the MongoDB path proved against a real replica set, MONGODB_URI.
#   1. the store conformance suites (tests/unit/test_*_store.c) with their MongoDB branch, under
#      ASan, each test in a database of its own; a MongoDB case that skips is a failure here;
#   2. the whole black-box suite with STORE=mongodb, embedded and then as the cluster on RabbitMQ,
#      each run in a fresh database (MONGODB_DB_NAME) dropped afterwards.
# Without MONGODB_URI it says so and exits 0 (nothing to prove against). An unreachable or
# non-replica-set URI fails at once with the reason, before anything is built or run.
set -u
cd "$(dirname "$0")/../.."
python=${PYTHON:-/usr/bin/python3}
make=${MAKE:-make}
uri=${MONGODB_URI:-}
if [ -z "$uri" ]; then
  echo "test-mongo-live: SKIPPED: MONGODB_URI is not set. Give it a MongoDB replica set, e.g."
  echo "  MONGODB_URI='mongodb://db1:27017,db2:27017/?replicaSet=rs0' make test-mongo-live"
  exit 0
fi
# the URI as printed: without the password
shown=$(printf '%s' "$uri" | sed 's#//\([^:@/]*\):[^@/]*@#//\1:***@#')
case "$uri" in
*replicaSet=*) ;;
*)
  echo "test-mongo-live: MONGODB_URI ($shown) names no replicaSet; the platform needs a replica set (transactions)" >&2
  exit 2
  ;;
esac

# one ping with a short server-selection budget, so a wrong URI fails in seconds instead of
# every test waiting out the driver's 30 s
"$python" - "$uri" "$shown" <<'PY' || exit 1
import sys
try:
    import pymongo
except ImportError:
    sys.exit("test-mongo-live: python3-pymongo is missing (make deps installs it)")
uri, shown = sys.argv[1], sys.argv[2]
try:
    c = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000)
    hello = c.admin.command("hello")
except Exception as e:  # noqa: BLE001 - any failure is the reason to print
    sys.exit("test-mongo-live: MongoDB at %s did not answer within 5 s: %s" % (shown, str(e).split(",")[0]))
if not hello.get("setName"):
    sys.exit("test-mongo-live: MongoDB at %s answers but is not a replica set member" % shown)
print("test-mongo-live: MongoDB at %s answers (replica set %s)" % (shown, hello["setName"]))
PY

$make deps >/dev/null || exit 1
$make -s BUILD=build-asan SAN=1 CFLAGS="-O1 -g" all build-asan/tests/test_auth_store build-asan/tests/test_event_store \
  build-asan/tests/test_reward_store || exit 1

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
log=$(mktemp)
state=build-asan/rabbitmq.started-by-mongo-live
dbs=""
cleanup() {
  tests/rabbitmq.sh stop "$state"
  [ -n "$dbs" ] && "$python" -c '
import sys, pymongo
c = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=5000)
for db in sys.argv[2:]:
    c.drop_database(db)' "$uri" $dbs 2>/dev/null
  rm -f "$log"
}
trap cleanup EXIT

echo "== store conformance suites, MongoDB branch"
for t in test_auth_store test_event_store test_reward_store; do
  if build-asan/tests/$t --jobs=2 --verbose >"$log" 2>&1; then rc=0; else rc=1; fi
  grep -v '^\[RUN \]\|^\[PASS\]' "$log" || true
  if [ $rc -ne 0 ]; then status=1; echo "FAILED: $t"; fi
  # store_backends.h skips the MongoDB branch when it cannot use the URI: here that is a failure
  if grep -q '^\[SKIP\]' "$log"; then status=1; echo "FAILED: $t skipped MongoDB cases"; fi
done

tests/rabbitmq.sh start "$state" || exit 1
for mode in embedded cluster; do
  db=rp_live_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
  dbs="$dbs $db"
  echo "== black-box tests, $mode, STORE=mongodb (database $db)"
  STORE=mongodb MONGODB_DB_NAME=$db E2E_MODE=$mode BIN=build-asan/bin/reward-platform \
    "$python" -m pytest -q tests/e2e || status=1
done
[ $status -eq 0 ] && echo "test-mongo-live: passed against $shown" || echo "test-mongo-live: FAILED against $shown"
exit $status
