#!/usr/bin/env bash
# Uploads a static executable or an image archive (oci-archive, docker-archive) as a new
# version of a function: upload-function.sh NAME PATH [SETTINGS]; the file is streamed.
# Needs KILN_URL (default http://127.0.0.1:3001) and KILN_TOKEN (a JWT of your tenant).
# SETTINGS is a query string such as 'memory_mb=64&timeout_ms=2000&env=GREETING=hi'.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 NAME PATH [SETTINGS]" >&2
  exit 2
fi
name="$1"
path="$2"
settings="${3:-}"
url="${KILN_URL:-http://127.0.0.1:3001}"
if [ -z "${KILN_TOKEN:-}" ]; then
  echo "KILN_TOKEN is not set: export a JWT of your tenant (kilnd token mint --tenant ... --secret ...)" >&2
  exit 2
fi
if [ ! -f "$path" ]; then
  echo "no such file: $path" >&2
  exit 2
fi
response="$(mktemp)"
trap 'rm -f "$response"' EXIT
status="$(curl -sS -o "$response" -w '%{http_code}' -X PUT \
  -H "Authorization: Bearer $KILN_TOKEN" -H 'Content-Type: application/octet-stream' \
  --upload-file "$path" "$url/v1/functions/$name${settings:+?$settings}")"
cat "$response"
echo
if [ "$status" != 201 ]; then
  echo "upload failed with HTTP $status" >&2
  exit 1
fi
