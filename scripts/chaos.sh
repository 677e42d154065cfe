#!/usr/bin/env bash
# The chaos suite at full scale: faulty functions beside a neighbour (KILN_CHAOS_FAULT_ROUNDS
# rounds of crash, segfault, OOM, a closed runtime socket, a timeout and a stdout flood),
# KILN_CHAOS_COLD_STARTS cold starts checked for leaks, kilnd killed under load with durable
# instances running, PostgreSQL stopped and frozen under load, kilnd and its sandbox killed
# and restarted; CHAOS_ROUNDS times, stopping after CHAOS_MINUTES. CI runs the same tests in
# their short form (part of scripts/test.sh). Needs root.
# Usage: scripts/chaos.sh   (knobs: KILN_CHAOS_COLD_STARTS=10000, KILN_CHAOS_FAULT_ROUNDS=20,
# CHAOS_ROUNDS=3, CHAOS_MINUTES=45)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KILN_ROOT"

kiln_install_packages
DATABASE_URL="$(kiln_database_url)"
export DATABASE_URL
export KILN_TESTBED
KILN_TESTBED="$(scripts/build-function.sh testbed)"
cargo build -p kilnd >&2
export KILND_BIN="$KILN_ROOT/target/debug/kilnd"
export KILN_CHAOS_COLD_STARTS="${KILN_CHAOS_COLD_STARTS:-10000}"
export KILN_CHAOS_FAULT_ROUNDS="${KILN_CHAOS_FAULT_ROUNDS:-20}"

deadline=$(($(date +%s) + ${CHAOS_MINUTES:-45} * 60))
for round in $(seq 1 "${CHAOS_ROUNDS:-3}"); do
  left=$((deadline - $(date +%s)))
  if [ "$left" -le 60 ]; then
    say "out of time before round $round"
    break
  fi
  say "round $round: chaos, outage, crash and recovery tests (at most ${left}s left)"
  timeout "$left" cargo test -p e2e --test chaos --test outage --test crash --test recovery -- --nocapture
done
say "chaos suite passed"
