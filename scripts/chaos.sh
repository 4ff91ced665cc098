#!/usr/bin/env bash
# The chaos run: the real `orderly` binary as a process per replica (two of
# order, payment, query and the relay) against a Postgres, Redis and broker
# of its own, under kill -9 of replicas, a frozen broker and restarted Redis
# and Postgres; then the checks (every
# acknowledged order exists and is final, stock adds up and was never
# oversold, no dead letters, `orderly verify` clean) and the figures.
#
#   scripts/chaos.sh                   the reduced run: 2 000 orders, debug build
#   scripts/chaos.sh --full            20 000 orders, every fault three times, release build
#   scripts/chaos.sh --seed 42 ...     replay a run's order mix and fault schedule
#
# Other flags go to the run (--orders, --concurrency, --load-secs, --replicas;
# see --help).
# ORDERLY_KEEP_SCRATCH=1 keeps the processes' logs and data under /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs Postgres, Redis and the tansu broker if missing (the run starts
# its own instances of each; the shared ones are left alone).
scripts/dev-stack.sh up >/dev/null

profile=debug
build=()
for arg in "$@"; do
  if [ "$arg" = --full ]; then profile=release; build=(--release); fi
done
cargo build "${build[@]}" -p orderly-bin -p orderly-integration-tests --bin orderly --bin chaos
exec "${CARGO_TARGET_DIR:-target}/$profile/chaos" "$@"
