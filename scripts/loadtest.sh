#!/usr/bin/env bash
# Load-tests Kiln with k6 (loadtest/*.js) and prints each scenario's figures: starts a kilnd
# of its own on a free port with a fresh database and data folder, creates tenants, uploads
# the testbed function, runs the scenario, and stops kilnd on exit. The k6 summaries and
# logs stay in .kiln/loadtest/.
# Usage: scripts/loadtest.sh warm|burst|tenants|instances|all   (needs root: kilnd creates containers)
# Knobs: SMOKE=1 (a few seconds per scenario, for CI); the scenarios' own (RATE, DURATION,
# PEAK, HOLD, P95_MS, P99_MS, ...: see loadtest/*.js); INSTANCE_INPUT (default
# {"scenario":"replay","sleep_ms":100}); LOADTEST_TENANTS (3, for tenants and all);
# LOADTEST_MAX_CONCURRENCY (4) and LOADTEST_MIN_WARM (same) for the uploaded functions;
# LOADTEST_LOG (kilnd's RUST_LOG, warn); LOADTEST_KEEP_DB=1 keeps the database;
# KILN_SKIP_BUILD=1 uses the kilnd and testbed already built instead of building them
# (KILND_BIN and KILN_TESTBED point at other builds; scripts/test.sh runs its smoke run so).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KILN_ROOT"

case "${1:-}" in
  warm | burst | tenants | instances) scenarios=("$1") ;;
  all) scenarios=(warm burst tenants instances) ;;
  *)
    echo "usage: $0 warm|burst|tenants|instances|all" >&2
    exit 2
    ;;
esac

kiln_install_k6

target_dir="${CARGO_TARGET_DIR:-target}"
[[ $target_dir == /* ]] || target_dir="$KILN_ROOT/$target_dir"
kilnd="${KILND_BIN:-$target_dir/release/kilnd}"
testbed="${KILN_TESTBED:-$target_dir/x86_64-unknown-linux-gnu/release/testbed}"
if [ "${KILN_SKIP_BUILD:-}" = 1 ]; then
  for built in "$kilnd" "$testbed"; do
    [ -x "$built" ] || { echo "loadtest: KILN_SKIP_BUILD=1 but $built is not built" >&2; exit 1; }
  done
else
  kiln_install_packages
  say "building kilnd (release)"
  cargo build --release -p kilnd >&2
  testbed="$(scripts/build-function.sh testbed)"
fi
database_url="$(kiln_database_url)"

out="$KILN_STATE/loadtest"
mkdir -p "$out"
# Container sockets live below the data folder, which kilnd limits to 60 bytes.
data_dir="$out/data"
((${#data_dir} <= 60)) || data_dir="/tmp/kiln-loadtest-$$"
test_db="kiln_loadtest_$$"
kilnd_pid=""
cleanup() {
  if [ -n "$kilnd_pid" ]; then
    kill -TERM "$kilnd_pid" 2>/dev/null || true
    wait "$kilnd_pid" 2>/dev/null || true
  fi
  [ -n "${LOADTEST_KEEP_DB:-}" ] || psql -q "$database_url" -c "DROP DATABASE IF EXISTS $test_db WITH (FORCE)" >&2 || true
  rm -rf "$data_dir"
}
trap cleanup EXIT

psql -q "$database_url" -c "CREATE DATABASE $test_db" >&2
rm -rf "$data_dir"
mkdir -p "$data_dir"
admin_token="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
say "starting kilnd (log: $out/kilnd.log)"
DATABASE_URL="${database_url%/*}/$test_db" KILN_HOST=127.0.0.1 KILN_PORT=0 KILN_DATA_DIR="$data_dir" \
  KILN_ADMIN_TOKEN="$admin_token" RUST_LOG="${LOADTEST_LOG:-warn}" \
  "$kilnd" >"$out/kilnd.stdout" 2>"$out/kilnd.log" </dev/null &
kilnd_pid=$!
url=""
for _ in $(seq 1 300); do
  url="$(sed -n 's/^kilnd listening on //p' "$out/kilnd.stdout")"
  [ -n "$url" ] && break
  kill -0 "$kilnd_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "loadtest: kilnd did not start; its log:" >&2
  cat "$out/kilnd.log" >&2
  exit 1
fi

# PUTs the testbed as function $2 of tenant $1 with the settings $3.
upload() {
  local status
  status="$(curl -sS -o "$out/upload.json" -w '%{http_code}' -X PUT \
    -H "Authorization: Bearer ${tokens[$1]}" -H 'Content-Type: application/octet-stream' \
    --data-binary "@$testbed" "$url/v1/functions/$2?$3")"
  if [ "$status" != 201 ]; then
    echo "loadtest: uploading $2 for $1 failed with HTTP $status: $(cat "$out/upload.json")" >&2
    exit 1
  fi
}

tenant_count=1
[[ " ${scenarios[*]} " == *" tenants "* ]] && tenant_count="${LOADTEST_TENANTS:-3}"
max_concurrency="${LOADTEST_MAX_CONCURRENCY:-4}"
min_warm="${LOADTEST_MIN_WARM:-$max_concurrency}"
declare -A tokens
tokens_json=""
say "creating $tenant_count tenant(s) and uploading the testbed with min_warm=$min_warm"
for i in $(seq 1 "$tenant_count"); do
  tenant="load-$i"
  secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  status="$(curl -sS -o "$out/tenant.json" -w '%{http_code}' -X POST "$url/v1/admin/tenants" \
    -H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' \
    -d "{\"name\":\"$tenant\",\"keys\":[{\"kid\":\"k1\",\"algorithm\":\"HS256\",\"secret\":\"$secret\"}]}")"
  if [ "$status" != 201 ]; then
    echo "loadtest: creating tenant $tenant failed with HTTP $status: $(cat "$out/tenant.json")" >&2
    exit 1
  fi
  tokens[$tenant]="$("$kilnd" token mint --tenant "$tenant" --secret "$secret" --ttl 7200)"
  tokens_json+="${tokens_json:+,}\"$tenant\":\"${tokens[$tenant]}\""
  upload "$tenant" testbed "max_concurrency=$max_concurrency&min_warm=$min_warm"
done
tokens_json="{$tokens_json}"

# The warm figures mean something only once min_warm containers are up in every tenant.
want=$((tenant_count * min_warm))
warm=0
for _ in $(seq 1 300); do
  warm="$(curl -fsS "$url/api/health/detailed" | python3 -c 'import json, sys; print(json.load(sys.stdin)["containers"]["warm"])')" || warm=0
  ((warm >= want)) && break
  sleep 0.1
done
((warm >= want)) || say "only $warm of $want containers warm after 30 s; going on"

# Prints one scenario's figures from its k6 summary export.
report() {
  python3 - "$1" "$2" <<'PY'
import json, sys

name, path = sys.argv[1], sys.argv[2]
metrics = json.load(open(path))["metrics"]

def get(metric, field, default=0.0):
    return metrics.get(metric, {}).get(field, default)

requests = metrics.get("http_reqs", {})
print(f"{name}: {requests.get('count', 0)} requests, {requests.get('rate', 0):.1f}/s; "
      f"latency p50 {get('http_req_duration', 'med'):.2f} ms, p95 {get('http_req_duration', 'p(95)'):.2f} ms, "
      f"p99 {get('http_req_duration', 'p(99)'):.2f} ms; failed {100 * get('http_req_failed', 'value'):.2f}%; "
      f"checks {100 * get('checks', 'value', 1.0):.2f}%")
extras = []
# Latency per scenario or tenant, where the script set thresholds on those.
for metric, figures in sorted(metrics.items()):
    if metric.startswith("http_req_duration{") and "expected_response" not in metric:
        extras.append(f"{metric[len('http_req_duration'):]} latency p95 {figures['p(95)']:.2f} ms, p99 {figures['p(99)']:.2f} ms")
if "dropped_iterations" in metrics:
    extras.append(f"dropped iterations {int(get('dropped_iterations', 'count'))} (k6 lacked VUs: Kiln fell behind the rate)")
if "function_busy" in metrics:
    extras.append(f"429 function_busy {100 * get('function_busy', 'value'):.2f}%")
if "instance_completed" in metrics:
    extras.append(f"sampled instances completed {100 * get('instance_completed', 'value'):.2f}% "
                  f"({int(get('instance_completed', 'passes'))} of {int(get('instance_completed', 'passes') + get('instance_completed', 'fails'))})")
if "instance_duration_ms" in metrics:
    extras.append(f"creation to completion p50 {get('instance_duration_ms', 'med'):.0f} ms, "
                  f"p95 {get('instance_duration_ms', 'p(95)'):.0f} ms")
for extra in extras:
    print(f"  {extra}")
# In this export a threshold's value is true when it was crossed.
crossed = [f"{metric} {threshold}" for metric, figures in sorted(metrics.items())
           for threshold, failed in figures.get("thresholds", {}).items() if failed]
print("  thresholds: " + ("crossed: " + "; ".join(crossed) if crossed else "all met"))
PY
}

# A real testbed scenario: a checkpoint, a 100 ms sleep (the instance leaves its container
# and a timer wakes it), another checkpoint.
default_input='{"scenario":"replay","sleep_ms":100}'
instance_input="${INSTANCE_INPUT:-$default_input}"
failed=()
for scenario in "${scenarios[@]}"; do
  function=testbed
  if [ "$scenario" = burst ]; then
    # A function never invoked before: the burst meets no warm container.
    function="burst-$(date +%s)"
    upload load-1 "$function" "max_concurrency=$max_concurrency&min_warm=0"
  fi
  say "k6 run loadtest/$scenario.js${SMOKE:+ (SMOKE=$SMOKE)}"
  rm -f "$out/$scenario-summary.json"
  status=0
  KILN_URL="$url" KILN_TOKENS="$tokens_json" TENANT=load-1 FUNCTION="$function" INSTANCE_INPUT="$instance_input" \
    k6 run --quiet --no-usage-report --summary-export "$out/$scenario-summary.json" "loadtest/$scenario.js" \
    >"$out/$scenario-k6.log" 2>&1 || status=$?
  if [ ! -s "$out/$scenario-summary.json" ]; then
    echo "loadtest: k6 failed on $scenario (exit $status); the end of its log:" >&2
    tail -n 20 "$out/$scenario-k6.log" >&2
    failed+=("$scenario")
    continue
  fi
  report "$scenario" "$out/$scenario-summary.json"
  # 99: thresholds crossed; anything else non-zero: k6 itself failed.
  ((status == 0)) || failed+=("$scenario")
done

if ((${#failed[@]})); then
  echo "loadtest: failed: ${failed[*]} (k6 logs in $out)" >&2
  exit 1
fi
