#!/usr/bin/env bash
# Builds the named function packages as static x86-64 Linux executables and prints their paths, one per line.
set -euo pipefail

target=x86_64-unknown-linux-gnu

if (($# == 0)); then
    echo "usage: $0 NAME [NAME...]   (function packages, e.g. hello testbed)" >&2
    exit 2
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

packages=()
for name in "$@"; do
    packages+=(-p "$name")
done

# crt-static links the C runtime in, so the executable runs in a container with nothing but itself.
RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
    cargo build --release --target "$target" "${packages[@]}" >&2

target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir=$root/$target_dir

for name in "$@"; do
    executable=$target_dir/$target/release/$name
    if [[ ! -x $executable ]]; then
        echo "build-function: $name did not produce an executable at $executable" >&2
        exit 1
    fi
    if command -v file >/dev/null; then
        description=$(file -bL "$executable")
        if [[ $description != *"statically linked"* && $description != *"static-pie linked"* ]]; then
            echo "build-function: $executable is not static: $description" >&2
            exit 1
        fi
    else
        echo "build-function: 'file' not found; not checking that $name is static" >&2
    fi
    echo "$executable"
done
