#!/usr/bin/env bash
# Stops the kilnd that scripts/run.sh started (SIGTERM: drains requests, deletes containers).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pid_file="$KILN_STATE/kilnd.pid"
if [ ! -s "$pid_file" ] || ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
  say "kilnd is not running"
  rm -f "$pid_file"
  exit 0
fi
pid="$(cat "$pid_file")"
kill -TERM "$pid"
for _ in $(seq 1 400); do
  kill -0 "$pid" 2>/dev/null || { rm -f "$pid_file"; say "kilnd stopped"; exit 0; }
  sleep 0.1
done
echo "kilnd (pid $pid) did not stop within 40 s" >&2
exit 1
