#!/usr/bin/env bash
# Checks what of Kiln's packaging can be checked without a Docker engine or a running
# systemd: the systemd unit (systemd-analyze verify, against a real kilnd binary) and the
# release build the Dockerfile runs (scripts/build-release.sh), whose kilnd must start.
# Usage: scripts/check-packaging.sh [OUTPUT_DIR]   (default .kiln/dist)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KILN_ROOT"

output="${1:-$KILN_STATE/dist}"
say "release build, as infra/docker/Dockerfile runs it"
kilnd="$(scripts/build-release.sh "$output")"
version="$("$kilnd" --version)"
grep -q "^kilnd " <<<"$version" || { echo "check-packaging: $kilnd does not run" >&2; exit 1; }

say "systemd unit: systemd-analyze verify"
if ! command -v systemd-analyze >/dev/null; then
  echo "check-packaging: systemd-analyze is missing; the unit was not verified" >&2
  exit 1
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# The unit as installed, but pointing at the binary just built and a copy of the example
# settings (verify checks that both exist).
cp infra/systemd/kilnd.env.example "$scratch/kilnd.env"
sed -e "s|^ExecStart=/usr/local/bin/kilnd|ExecStart=$kilnd|" \
  -e "s|^EnvironmentFile=/etc/kiln/kilnd.env|EnvironmentFile=$scratch/kilnd.env|" \
  infra/systemd/kilnd.service >"$scratch/kilnd.service"
grep -q "^ExecStart=$kilnd" "$scratch/kilnd.service" || { echo "check-packaging: ExecStart not found in the unit" >&2; exit 1; }
# verify prints warnings and still exits 0 on some of them: any output is a failure.
report="$(systemd-analyze verify "$scratch/kilnd.service" 2>&1 || echo "systemd-analyze exited with $?")"
if [ -n "$report" ]; then
  echo "check-packaging: the systemd unit does not verify:" >&2
  echo "$report" >&2
  exit 1
fi
echo "$kilnd"
