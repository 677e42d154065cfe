#!/usr/bin/env bash
# Builds kilnd for release from the committed Cargo.lock and copies the binary into a
# folder (default dist/), printing its path. Installs nothing: the image build
# (infra/docker/Dockerfile) and release jobs provide Rust, libseccomp-dev and pkg-config.
# Usage: scripts/build-release.sh [OUTPUT_DIR]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
output=${1:-dist}
[[ $output == /* ]] || output=$root/$output

# --locked: a release is built from exactly the dependency versions that were tested.
cargo build --release -p kilnd --locked >&2

target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir=$root/$target_dir
mkdir -p "$output"
cp "$target_dir/release/kilnd" "$output/kilnd"
echo "$output/kilnd"
