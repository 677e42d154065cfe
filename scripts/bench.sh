#!/usr/bin/env bash
# Measures Kiln's figures side by side with their baselines and prints Markdown tables:
# warm invocation overhead vs direct socket calls, cold invocations vs raw youki
# create+start, image uploads and cold starts of the Python example image vs raw youki,
# kilnd's idle memory and its memory per warm container, durable checkpoint round trips,
# wake-ups of many sleeping instances, streamed responses (chunk lag, kilnd's memory under a
# 1 GiB stream), WebSocket live-event subscribers under load, and warm calls while PostgreSQL is stopped or frozen
# (on a PostgreSQL cluster of the bench's own). `profile` (not part of `all`) records kilnd with perf
# under warm calls and draws the warm path as a flame graph in target/profiles/, with tables of
# its top frames and of where the time goes.
# Usage: scripts/bench.sh [warm|cold|images|rss|stream|events|checkpoints|wakes|outage|profile|all]   (needs root; builds in release mode)
# Knobs: BENCH_REQUESTS, BENCH_CONCURRENCY, BENCH_SECONDS, BENCH_RUNS, BENCH_CHECKPOINT_INSTANCES,
# BENCH_CHECKPOINTS, BENCH_SLEEPERS, BENCH_LEAD_SECONDS, BENCH_SPREAD_SECONDS, BENCH_IMAGE_MB,
# BENCH_IMAGE_REQUESTS, BENCH_OUTAGE_SECONDS, BENCH_STREAM_MIB, BENCH_SUBSCRIBERS, BENCH_EVENT_TENANTS,
# BENCH_EVENT_RATE, BENCH_PROFILE_SECONDS (load), BENCH_PROFILE_RECORD (recorded part of it).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KILN_ROOT"

which="${1:-all}"
kiln_install_packages
[ "$which" != profile ] || kiln_apt_install linux-perf
database_url="$(kiln_database_url)"
say "building (release)"
cargo build --release -p kilnd -p bench >&2
testbed="$(scripts/build-function.sh testbed)"
if [ "$which" = images ] || [ "$which" = all ]; then
  say "building the example images"
  built_images="$(scripts/build-image.sh python-hello node-hello)"
  cold_image="$(grep python-hello <<<"$built_images")"
  upload_image="$(grep node-hello <<<"$built_images")"
fi
kilnd="$KILN_ROOT/target/release/kilnd"
bench="$KILN_ROOT/target/release/kiln-bench"

bench_db="kiln_bench_$$"
bench_url="${database_url%/*}/$bench_db"
data_dir="/tmp/kiln-bench-$$"
psql -q "$database_url" -c "CREATE DATABASE $bench_db" >&2
secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
DATABASE_URL="$bench_url" "$kilnd" tenant create bench --secret "$secret" >/dev/null
token="$("$kilnd" token mint --tenant bench --secret "$secret" --ttl 7200)"

# Starts kilnd on database $1 with data folder $2 (further arguments: variables for it);
# sets started_pid and started_url.
start_kilnd() {
  local database="$1" folder="$2"
  shift 2
  mkdir -p "$folder"
  env DATABASE_URL="$database" KILN_PORT=0 KILN_DATA_DIR="$folder" RUST_LOG="${BENCH_LOG:-warn}" "$@" \
    "$kilnd" >"$folder/stdout" 2>"$folder/kilnd.log" &
  started_pid=$!
  for _ in $(seq 1 100); do
    grep -q "listening on" "$folder/stdout" 2>/dev/null && break
    sleep 0.1
  done
  started_url="$(sed -n 's/^kilnd listening on //p' "$folder/stdout")"
  [ -n "$started_url" ] || { cat "$folder/kilnd.log" >&2; exit 1; }
}
outage_pid="" outage_dir="" pg_dir=""
cleanup() {
  for pid in "$kilnd_pid" "$outage_pid"; do
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  [ -n "${BENCH_KEEP_DB:-}" ] || psql -q "$database_url" -c "DROP DATABASE IF EXISTS $bench_db WITH (FORCE)" >&2 || true
  cp "$data_dir/kilnd.log" /tmp/kiln-bench-last.log 2>/dev/null || true
  rm -rf "$data_dir" "$outage_dir"
  if [ -n "$pg_dir" ]; then
    # A cluster left frozen by a failed run cannot stop: wake it first.
    pm="$(head -n 1 "$pg_dir/postmaster.pid" 2>/dev/null || true)"
    [ -n "$pm" ] && { kill -CONT "$pm"; pkill -CONT -P "$pm"; } 2>/dev/null || true
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_dir" stop -m immediate >/dev/null 2>&1 || true
    rm -rf "$pg_dir" "$pg_dir.log"
  fi
}
kilnd_pid=""
trap cleanup EXIT
start_kilnd "$bench_url" "$data_dir"
kilnd_pid="$started_pid" url="$started_url"
target=(--url "$url" --token "$token" --tenant bench --testbed "$testbed")

echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
if [ "$which" = rss ] || [ "$which" = all ]; then
  sleep 1
  echo "### Memory"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  "$bench" rss --pid "$kilnd_pid" | sed 's/^| kilnd RSS/| kilnd RSS, idle/; s/^| sandbox process RSS/| sandbox process RSS, idle/'
  rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$kilnd_pid/status"; }
  # Warm containers in three steps: the last step's growth is the cost of more containers,
  # without the one-time growth (thread stacks, allocator arenas) the first steps pay.
  warm_up() {
    curl -fsS -X PUT -H "Authorization: Bearer $token" --data-binary "@$testbed" \
      "$url/v1/functions/$1?min_warm=$2&max_concurrency=$2" >/dev/null
    for _ in $(seq 1 300); do
      [ "$(curl -fsS "$url/api/health/detailed" | sed -n 's/.*"warm":\([0-9]*\).*/\1/p')" = "$3" ] && break
      sleep 0.1
    done
    sleep 1
  }
  step=20
  warm_up bench-rss-a "$step" "$step"
  warm_up bench-rss-b "$step" "$((2 * step))"
  second_kib="$(rss_kib)"
  warm_up bench-rss-c "$step" "$((3 * step))"
  third_kib="$(rss_kib)"
  echo "| kilnd RSS with $((3 * step)) warm containers | $(awk -v k="$third_kib" 'BEGIN {printf "%.1f MB", k/1024}') |"
  echo "| kilnd memory per warm container (growth from $((2 * step)) to $((3 * step))) | $(awk -v a="$third_kib" -v b="$second_kib" -v n="$step" 'BEGIN {printf "%.1f KB", (a-b)/n}') |"
  for function in bench-rss-a bench-rss-b bench-rss-c; do
    curl -fsS -X DELETE -H "Authorization: Bearer $token" "$url/v1/functions/$function" >/dev/null
  done
  echo
fi
if [ "$which" = warm ] || [ "$which" = all ]; then
  echo "### Warm invocations"
  echo
  "$bench" warm "${target[@]}" --requests "${BENCH_REQUESTS:-5000}" --concurrency "${BENCH_CONCURRENCY:-4}" --seconds "${BENCH_SECONDS:-10}"
  echo
fi
if [ "$which" = cold ] || [ "$which" = all ]; then
  echo "### Cold invocations"
  echo
  "$bench" cold "${target[@]}" --kilnd "$kilnd" --runs "${BENCH_RUNS:-30}"
  echo
fi
if [ "$which" = images ] || [ "$which" = all ]; then
  echo "### Container images"
  echo
  "$bench" images "${target[@]}" --kilnd "$kilnd" --pid "$kilnd_pid" --runs "${BENCH_RUNS:-30}" \
    --upload-image "$upload_image" --cold-image "$cold_image" --synthetic-mb "${BENCH_IMAGE_MB:-100,500}" \
    --python-handler functions/python-hello/handler.py --python-sdk functions/sdk-python \
    --requests "${BENCH_IMAGE_REQUESTS:-2000}"
  echo
fi
if [ "$which" = stream ] || [ "$which" = all ]; then
  echo "### Streamed responses"
  echo
  "$bench" stream "${target[@]}" --pid "$kilnd_pid" --runs "${BENCH_RUNS:-200}" --mib "${BENCH_STREAM_MIB:-1024}"
  echo
fi
if [ "$which" = events ] || [ "$which" = all ]; then
  # Subscribers are spread over tenants, as consoles are: each tenant's events wake only its own.
  tenants_file="$data_dir/event-tenants"
  for i in $(seq 1 "${BENCH_EVENT_TENANTS:-100}"); do
    DATABASE_URL="$bench_url" "$kilnd" tenant create "bench-ev-$i" --secret "$secret" >/dev/null
    echo "bench-ev-$i $("$kilnd" token mint --tenant "bench-ev-$i" --secret "$secret" --ttl 7200)"
  done >"$tenants_file"
  echo "### Live events over WebSockets"
  echo
  "$bench" events --url "$url" --tenants-file "$tenants_file" --testbed "$testbed" --pid "$kilnd_pid" \
    --subscribers "${BENCH_SUBSCRIBERS:-1000}" --rate "${BENCH_EVENT_RATE:-2000}" --seconds "${BENCH_SECONDS:-10}"
  echo
fi
if [ "$which" = checkpoints ] || [ "$which" = all ]; then
  echo "### Checkpoint round trips"
  echo
  "$bench" checkpoints "${target[@]}" --instances "${BENCH_CHECKPOINT_INSTANCES:-8}" --count "${BENCH_CHECKPOINTS:-2000}"
  echo
fi
if [ "$which" = wakes ] || [ "$which" = all ]; then
  sleepers="${BENCH_SLEEPERS:-100000}"
  [ -n "${BENCH_KEEP_DB:-}" ] && echo "(database kept: $bench_url)"
  echo "### Wake-ups of $sleepers sleeping instances"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  "$bench" sleepers "${target[@]}" --pid "$kilnd_pid" --count "$sleepers" \
    --lead-seconds "${BENCH_LEAD_SECONDS:-$((sleepers / 400 + 30))}" --spread-seconds "${BENCH_SPREAD_SECONDS:-40}"
  while [ "$(psql -qtA "$bench_url" -c "SELECT count(*) FROM instances WHERE status IN ('pending', 'running', 'sleeping')")" != 0 ]; do
    sleep 2
  done
  # The wake is the second dispatch: its event records how late the claim was against the
  # wake time; the function itself reports when it ran against the stored wake time.
  psql -qtA -F ' ' "$bench_url" <<'SQL' | while read -r count seconds p50 p99 worst; do
SELECT count(*), round(extract(epoch FROM max(at) - min(at))::numeric, 1),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY (detail->>'late_ms')::float),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY (detail->>'late_ms')::float),
       max((detail->>'late_ms')::float)
FROM instance_events WHERE kind = 'dispatched' AND (detail->>'attempt')::int = 2
SQL
    echo "| wake-ups | $count over $seconds s ($(awk -v c="$count" -v s="$seconds" 'BEGIN {printf "%.0f", c / (s > 0 ? s : 1)}')/s) |"
    echo "| claim lateness p50 / p99 / max | $(printf '%.1f / %.1f / %.1f ms' "$p50" "$p99" "$worst") |"
  done
  psql -qtA -F ' ' "$bench_url" <<'SQL' | while read -r p50 p99 slept; do
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY late), percentile_cont(0.99) WITHIN GROUP (ORDER BY late), count(*)
FROM (SELECT (output->>'woke_at_ms')::bigint - (output->>'wake_at_ms')::bigint AS late
      FROM instances WHERE function = 'bench-sleepers' AND status = 'completed' AND attempt = 2) AS woken
SQL
    echo "| lateness seen by the function p50 / p99 | $(printf '%.0f / %.0f ms' "$p50" "$p99") ($slept instances) |"
  done
  echo
fi
if [ "$which" = outage ] || [ "$which" = all ]; then
  # A cluster of the bench's own, so stopping it disturbs nothing else.
  pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  pg_dir="/tmp/kiln-bench-pg-$$"
  pg_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  runuser -u postgres -- "$pg_bin/initdb" -D "$pg_dir" -A trust -U postgres --no-sync >/dev/null
  pg_start="runuser -u postgres -- $pg_bin/pg_ctl -D $pg_dir -l $pg_dir.log -w -o '-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1' start >/dev/null"
  eval "$pg_start"
  runuser -u postgres -- "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" kiln
  outage_url="postgres://postgres@127.0.0.1:$pg_port/kiln"
  DATABASE_URL="$outage_url" "$kilnd" tenant create bench --secret "$secret" >/dev/null
  outage_dir="/tmp/kiln-bench-outage-$$"
  start_kilnd "$outage_url" "$outage_dir" KILN_DB_TIMEOUT_MS="${BENCH_DB_TIMEOUT_MS:-1000}"
  outage_pid="$started_pid"
  # SIGSTOP the postmaster first, so it starts no process the second signal would miss.
  postmaster="head -n 1 $pg_dir/postmaster.pid"
  echo "### Warm calls while PostgreSQL is away (KILN_DB_TIMEOUT_MS=${BENCH_DB_TIMEOUT_MS:-1000})"
  echo
  "$bench" outage --url "$started_url" --token "$token" --tenant bench --testbed "$testbed" \
    --concurrency "${BENCH_CONCURRENCY:-4}" --seconds "${BENCH_OUTAGE_SECONDS:-10}" \
    --stop "runuser -u postgres -- $pg_bin/pg_ctl -D $pg_dir -m fast stop >/dev/null" --start "$pg_start" \
    --freeze "pm=\$($postmaster); kill -STOP \$pm; pkill -STOP -P \$pm" \
    --thaw "pm=\$($postmaster); kill -CONT \$pm; pkill -CONT -P \$pm"
  echo
fi
if [ "$which" = profile ]; then
  # perf records kilnd alone, past the load's warm-up, while warm calls run through it.
  out="$KILN_ROOT/target/profiles"
  mkdir -p "$out"
  echo "### Profile of the warm path"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  "$bench" load "${target[@]}" --concurrency "${BENCH_CONCURRENCY:-4}" --seconds "${BENCH_PROFILE_SECONDS:-12}" &
  load_pid=$!
  sleep 4
  perf record -F 999 --call-graph dwarf,16384 -p "$kilnd_pid" -o "$out/perf.data" -- sleep "${BENCH_PROFILE_RECORD:-5}" >&2
  wait "$load_pid"
  echo
  perf script -i "$out/perf.data" >"$out/perf.txt"
  "$bench" flame --perf-script "$out/perf.txt" --folded "$out/warm.folded" --svg "$out/warm-flame.svg"
  echo
  echo "Flame graph: $out/warm-flame.svg (folded stacks: $out/warm.folded)"
  echo
fi
