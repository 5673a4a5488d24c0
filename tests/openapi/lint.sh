#!/bin/sh
# Lints the generated OpenAPI document with Redocly CLI, pinned in tests/openapi/package.json and
# package-lock.json. It is installed with npm into build/openapi-lint/ only when missing or when
# the lock file changed; the document is build/gen/openapi.json unless given.
# Usage: tests/openapi/lint.sh [DOCUMENT]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
doc=${1:-$root/build/gen/openapi.json}
dir=$root/build/openapi-lint
if ! command -v npm >/dev/null 2>&1; then
  echo "lint.sh: npm is missing (make deps-test installs nodejs and npm)" >&2
  exit 1
fi
if [ ! -x "$dir/node_modules/.bin/redocly" ] || ! cmp -s "$here/package-lock.json" "$dir/package-lock.json"; then
  echo "lint.sh: installing the pinned @redocly/cli into $dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$here/package.json" "$here/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >"$dir/npm.log" 2>&1) || {
    cat "$dir/npm.log" >&2
    rm -rf "$dir"
    exit 1
  }
fi
# no telemetry, no update check: the lint must not depend on anything but the installed package
REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
  "$dir/node_modules/.bin/redocly" lint --config "$here/redocly.yaml" "$doc"
