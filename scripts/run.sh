#!/usr/bin/env bash
# Sets up and starts Kiln on this machine with a demo tenant and the example function:
# installs missing packages, gets a database, builds, starts kilnd in the background on
# 127.0.0.1:3001 (log: .kiln/kilnd.log, stop: scripts/stop.sh), uploads functions/hello,
# and prints a curl line that invokes it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KILN_ROOT"

kiln_install_packages
database_url="$(kiln_database_url)"
mkdir -p "$KILN_STATE"

say "building kilnd (release)"
cargo build --release -p kilnd >&2
hello="$(scripts/build-function.sh hello)"

[ -s "$KILN_STATE/admin-token" ] || head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$KILN_STATE/admin-token"
[ -s "$KILN_STATE/demo-secret" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$KILN_STATE/demo-secret"
chmod 600 "$KILN_STATE/admin-token" "$KILN_STATE/demo-secret"
admin_token="$(cat "$KILN_STATE/admin-token")"
demo_secret="$(cat "$KILN_STATE/demo-secret")"
host="${KILN_HOST:-127.0.0.1}"
port="${KILN_PORT:-3001}"
url="http://$host:$port"

if [ -s "$KILN_STATE/kilnd.pid" ] && kill -0 "$(cat "$KILN_STATE/kilnd.pid")" 2>/dev/null; then
  say "stopping the kilnd started earlier"
  scripts/stop.sh
fi
say "starting kilnd on $url"
DATABASE_URL="$database_url" KILN_HOST="$host" KILN_PORT="$port" \
  KILN_DATA_DIR="${KILN_DATA_DIR:-/var/lib/kiln}" KILN_ADMIN_TOKEN="$admin_token" \
  setsid target/release/kilnd >"$KILN_STATE/kilnd.log" 2>&1 </dev/null &
echo $! >"$KILN_STATE/kilnd.pid"
for _ in $(seq 1 100); do
  curl -fsS "$url/api/health" >/dev/null 2>&1 && break
  if ! kill -0 "$(cat "$KILN_STATE/kilnd.pid")" 2>/dev/null; then
    echo "kilnd exited; its log:" >&2
    cat "$KILN_STATE/kilnd.log" >&2
    exit 1
  fi
  sleep 0.1
done

say "creating the demo tenant"
status="$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$url/v1/admin/tenants" \
  -H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' \
  -d "{\"name\":\"demo\",\"keys\":[{\"kid\":\"k1\",\"algorithm\":\"HS256\",\"secret\":\"$demo_secret\"}]}")"
case "$status" in
  201) ;;
  409) say "demo tenant already exists" ;;
  *) echo "creating the demo tenant failed with HTTP $status" >&2; exit 1 ;;
esac
token="$(target/release/kilnd token mint --tenant demo --secret "$demo_secret" --ttl 86400)"

say "uploading functions/hello"
KILN_URL="$url" KILN_TOKEN="$token" scripts/upload-function.sh hello "$hello" >&2

cat <<DONE

Kiln is running at $url (pid $(cat "$KILN_STATE/kilnd.pid"), log .kiln/kilnd.log, stop with scripts/stop.sh).
Invoke the demo function:

  curl -sS -X POST '$url/fn/demo/hello/greet?name=kiln' -H 'Authorization: Bearer $token' -d 'hi'

Admin token (for /v1/admin): .kiln/admin-token. The demo token above is valid for 24 hours.
DONE
