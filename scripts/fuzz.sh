#!/usr/bin/env bash
# Fuzzes every parser of untrusted input with libFuzzer (cargo-fuzz, on the stable
# toolchain, without a sanitizer: Kiln's parsers are safe Rust, so the fuzzer looks for
# panics, overflows, hangs and broken promises). Each target runs FUZZ_SECONDS, starting
# from its committed corpus in tests/fuzz/corpus/<target>/; what it finds goes to
# target/fuzz/. A crash stops the script and names the input: fix the code, then add the
# input to the target's corpus, where `cargo test -p kiln-fuzz` replays it from then on.
# Usage: scripts/fuzz.sh [target...]   (knobs: FUZZ_SECONDS=60; FUZZ_KEEP=1 merges inputs
# that reach new code into the committed corpus)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KILN_ROOT"

CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  say "installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# Its own target folder: instrumented builds must not replace the workspace's artifacts.
fuzz=(--fuzz-dir tests/fuzz --features libfuzzer --sanitizer none --debug-assertions --target-dir target/fuzz)
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list --fuzz-dir tests/fuzz)
fi
say "building ${#targets[@]} fuzz targets"
cargo fuzz build "${fuzz[@]}"

seconds="${FUZZ_SECONDS:-60}"
for target in "${targets[@]}"; do
  found="target/fuzz/corpus/$target"
  artifacts="target/fuzz/artifacts/$target/"
  mkdir -p "$found" "$artifacts"
  say "fuzzing $target for ${seconds}s"
  if ! cargo fuzz run "${fuzz[@]}" "$target" "$found" "tests/fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$artifacts" \
    -print_final_stats=1 2> "target/fuzz/$target.log"; then
    grep -E -A4 'panicked at|ERROR: libFuzzer|Test unit written' "target/fuzz/$target.log" >&2 ||
      tail -n 40 "target/fuzz/$target.log" >&2
    say "$target failed: the input is in $artifacts (replay: cargo fuzz run ${fuzz[*]} $target <input>)"
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^Done' "target/fuzz/$target.log" >&2 || true
  if [ "${FUZZ_KEEP:-0}" = 1 ]; then
    cargo fuzz run "${fuzz[@]}" "$target" "tests/fuzz/corpus/$target" "$found" -- -merge=1 \
      2>> "target/fuzz/$target.log"
  fi
done
say "fuzzing found nothing in ${#targets[@]} targets (${seconds}s each)"
