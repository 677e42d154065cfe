#!/usr/bin/env bash
# Runs every Kiln test: unit tests, the sandbox's container tests and the end-to-end tests
# against real PostgreSQL, real youki containers and the real nginx, a short fuzzing run,
# then the packaging checks and a k6 smoke run. Installs what is missing first.
# Needs root (containers). Uses $DATABASE_URL if set, else sets up the local PostgreSQL.
# `scripts/test.sh --unit`: only the unit tests and the SDKs' tests, as any user, with no
# database and no container (needs cargo, libseccomp-dev, python3 and node).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KILN_ROOT"

if [ "${1:-}" = --unit ]; then
  say "unit tests: no root, no database, no containers"
  cargo test --workspace --lib --bins
  python3 -m unittest discover -s functions/sdk-python/tests -t functions/sdk-python
  node --test functions/sdk-node/test/
  exit 0
fi

kiln_install_packages
# A real OCI registry (and its htpasswd tool) for the image pull tests; a real browser and
# its WebDriver for the console test.
kiln_apt_install --no-install-recommends docker-registry apache2-utils skopeo
kiln_apt_install chromium chromium-driver
DATABASE_URL="$(kiln_database_url)"
export DATABASE_URL

say "building test functions"
scripts/build-function.sh testbed hello order-workflow >/dev/null
export KILN_TESTBED="$KILN_ROOT/target/x86_64-unknown-linux-gnu/release/testbed"

say "function SDKs for Python and Node: unit tests against a fake runtime socket"
python3 -m unittest discover -s functions/sdk-python/tests -t functions/sdk-python
node --test functions/sdk-node/test/

say "building the example images (oci-archive and docker-archive)"
scripts/build-image.sh python-hello node-hello python-workflow --docker-archive >/dev/null
export KILN_IMAGES="$KILN_ROOT/target/images"

say "building kilnd, kiln and the embedding example"
cargo build -p kilnd -p kiln-cli
cargo build -p kiln --example embed
export KILND_BIN="$KILN_ROOT/target/debug/kilnd"
export KILN_CLI_BIN="$KILN_ROOT/target/debug/kiln"

say "running tests"
cargo test --workspace "$@"

say "fuzzing every parser of untrusted input briefly (full runs: scripts/fuzz.sh)"
FUZZ_SECONDS=10 scripts/fuzz.sh

say "packaging: the Dockerfile's release build and the systemd unit"
release_kilnd="$(scripts/check-packaging.sh)"

say "k6 smoke run through the release kilnd (full runs: scripts/loadtest.sh)"
SMOKE=1 KILN_SKIP_BUILD=1 KILND_BIN="$release_kilnd" scripts/loadtest.sh warm
