#!/usr/bin/env bash
# The platform benchmark (docs/benchmarks.md): brings the local Postgres,
# Redis and broker up, builds the `orderly` binary in release (the
# per-component section runs it as separate processes), then runs
#   cargo bench -p orderly-integration-tests --bench platform
# ORDERLY_BENCH_SCALE=full for the full run; arguments go to the bench.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/dev-stack.sh up
cargo build --release -p orderly-bin
cargo bench -p orderly-integration-tests --bench platform "$@"
