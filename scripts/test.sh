#!/usr/bin/env bash
# The full test suite: formatting, lints, unit and integration tests against
# real Postgres, Redis and a Kafka-protocol broker (started here if needed).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/dev-stack.sh up

# Test databases and Redis keys that runs at least 3 hours old left behind
# (tests name theirs orderly_test_<unix seconds>_<id>); younger ones may
# belong to a run still in progress.
cutoff=$(($(date +%s) - 3 * 3600))
stale() { # prints the names whose embedded time is before the cutoff
  sed -n 's/.*orderly_test_\([0-9]\{1,\}\)_.*/\1 &/p' | while read -r t name; do
    if [ "$t" -lt "$cutoff" ]; then echo "$name"; fi
  done
}
psql -h 127.0.0.1 -U postgres -d postgres -Atc \
  "SELECT datname FROM pg_database WHERE datname LIKE 'orderly\_test\_%'" | stale |
  while read -r db; do
    psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
  done
if command -v redis-cli >/dev/null; then
  redis-cli -h 127.0.0.1 --scan --pattern '*orderly_test_*' | stale |
    xargs -r -n 500 redis-cli -h 127.0.0.1 del >/dev/null
fi

echo "== buf lint (proto/)"
BUF_DIR=${ORDERLY_STACK_DIR:-$HOME/.cache/orderly}/buf
if [ ! -x "$BUF_DIR/node_modules/.bin/buf" ]; then
  command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq npm >/dev/null; }
  mkdir -p "$BUF_DIR"
  (cd "$BUF_DIR" && npm install --silent --no-save @bufbuild/buf@1.75.0 >/dev/null)
fi
"$BUF_DIR/node_modules/.bin/buf" lint
echo "== buf breaking (proto/, events included)"
scripts/buf-breaking.sh "$BUF_DIR/node_modules/.bin/buf"

echo "== helm chart (lint, render, schema-validate)"
scripts/helm-check.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --profile "${NEXTEST_PROFILE:-default}"
else
  # cargo test runs a binary's tests in one process; the tracing test sets
  # the global tracer and subscriber, so it runs alone (nextest gives every
  # test a process of its own).
  only=tracing::one_order_is_one_trace_from_create_to_confirmation
  cargo test --workspace --locked -- --skip "$only"
  cargo test -p orderly-integration-tests --test it --locked -- --exact "$only"
fi
