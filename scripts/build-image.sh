#!/usr/bin/env bash
# Builds OCI images of the examples under functions/ from their image.conf, without a daemon,
# into target/images/EXAMPLE.oci.tar (and EXAMPLE.docker.tar with --docker-archive); prints the
# written paths, one per line.
#
# An image is two gzip layers: a Debian bookworm base of the example's IMAGE_PACKAGES (made by
# mmdebstrap and cached under .kiln/image-cache/, so examples with the same packages share a
# byte-identical base layer and rebuilds skip it), then an app layer with IMAGE_FILES (owned by
# root, world-readable) and, for IMAGE_USER, /etc/passwd and /etc/group naming uid/gid 1000.
set -euo pipefail
shopt -s inherit_errexit

# Bump when the base layer's recipe changes: it is part of the cache key.
BASE_RECIPE_VERSION=1
SUITE=bookworm
MIRROR=${KILN_IMAGE_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${KILN_IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# What dpkg and the maintainer scripts of the packages need to install at all.
BASE_TOOLS=(base-files base-passwd dash coreutils diffutils findutils grep sed mawk libc-bin)
# Every timestamp the script sets itself (file mtimes, image creation): fixed, so rebuilds of
# unchanged files give the same app layer.
FIXED_EPOCH=0
FIXED_DATE=1970-01-01T00:00:00Z
APP_UID=1000
APP_GID=1000

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  echo "usage: $0 EXAMPLE... [--docker-archive]   (folders under functions/ with an image.conf)" >&2
  exit 2
}

main() {
  local docker_archive=false examples=()
  for argument in "$@"; do
    case $argument in
      --docker-archive) docker_archive=true ;;
      -*) usage ;;
      *) examples+=("$argument") ;;
    esac
  done
  ((${#examples[@]})) || usage
  for example in "${examples[@]}"; do
    [[ -f $KILN_ROOT/functions/$example/image.conf ]] || {
      echo "build-image: functions/$example/image.conf not found" >&2
      exit 1
    }
  done
  kiln_install_image_tools

  work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-build-image.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$KILN_ROOT/target/images"
  for example in "${examples[@]}"; do
    build_example "$example" "$docker_archive"
  done
}

# Builds one example's archives and prints their paths.
build_example() {
  local example=$1 docker_archive=$2
  local IMAGE_PACKAGES="" IMAGE_FILES="" IMAGE_ENTRYPOINT="" IMAGE_CMD="" IMAGE_WORKDIR="" IMAGE_ENV="" IMAGE_USER=""
  # shellcheck disable=SC1090
  source "$KILN_ROOT/functions/$example/image.conf"
  say "building image $example"

  local base layout=$work/$example/layout
  base=$(base_layer "$IMAGE_PACKAGES")
  mkdir -p "$work/$example"
  cp -a "$base/layout" "$layout"

  app_layer "$example" "$base" >"$work/$example/app.tar"
  umoci raw add-layer --image "$layout:latest" --history.created "$FIXED_DATE" \
    --history.created_by "scripts/build-image.sh: files of functions/$example" "$work/$example/app.tar" >&2
  configure "$layout"
  umoci gc --layout "$layout" >&2
  name_ref "$layout" "$example:latest"

  local oci=$KILN_ROOT/target/images/$example.oci.tar
  deterministic_tar "$layout" >"$oci.partial"
  mv "$oci.partial" "$oci"
  printf '%s\n' "$oci"
  if [[ $docker_archive == true ]]; then
    local docker=$KILN_ROOT/target/images/$example.docker.tar
    rm -f "$docker"
    skopeo copy --quiet "oci-archive:$oci" "docker-archive:$docker:$example:latest" >&2
    printf '%s\n' "$docker"
  fi
}

# Prints the cache folder of the base image for `packages`, building it when missing: an OCI
# layout tagged `latest` with the base layer, and the layer's /etc/passwd and /etc/group.
base_layer() {
  local packages sources key cache
  packages=$(printf '%s\n' "${BASE_TOOLS[@]}" $1 | sort -u | paste -sd, -)
  sources="deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main"
  key=$(printf '%s\n' "$BASE_RECIPE_VERSION" "$packages" "$sources" | sha256sum | cut -c1-16)
  cache=$KILN_STATE/image-cache/base-$key
  if [[ -f $cache/done ]]; then
    say "base layer $key cached ($packages)"
    printf '%s\n' "$cache"
    return
  fi
  say "making base layer $key with mmdebstrap ($packages)"
  local fresh=$work/base-$key
  mkdir -p "$fresh"
  mmdebstrap --quiet --variant=custom --include="$packages" --skip=output/dev \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --customize-hook='rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/usr/share/locale/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old "$1"/var/lib/apt/lists/* "$1"/var/lib/dpkg/*-old "$1"/var/log/*' \
    "$SUITE" "$fresh/rootfs.tar" - <<<"$sources" >&2
  tar -xOf "$fresh/rootfs.tar" ./etc/passwd >"$fresh/passwd"
  tar -xOf "$fresh/rootfs.tar" ./etc/group >"$fresh/group"
  umoci init --layout "$fresh/layout" >&2
  umoci new --image "$fresh/layout:latest" >&2
  umoci raw add-layer --image "$fresh/layout:latest" --history.created "$FIXED_DATE" \
    --history.created_by "scripts/build-image.sh: mmdebstrap $SUITE $packages" "$fresh/rootfs.tar" >&2
  rm "$fresh/rootfs.tar"
  touch "$fresh/done"
  mkdir -p "$KILN_STATE/image-cache"
  rm -rf "$cache"
  mv "$fresh" "$cache"
  printf '%s\n' "$cache"
}

# Writes the app layer of `example` (an uncompressed tar) on stdout: IMAGE_FILES, and the user.
app_layer() {
  local example=$1 base=$2 staging=$work/$example/app pair pairs
  mkdir -p "$staging"
  read -r -a pairs <<<"$IMAGE_FILES"
  for pair in "${pairs[@]}"; do
    local source=${pair%%:*} target=${pair#*:}
    [[ $pair == *:* && $target == /* ]] || {
      echo "build-image: $example: IMAGE_FILES entry '$pair' is not src:/absolute/dst" >&2
      return 1
    }
    [[ -f $KILN_ROOT/functions/$example/$source ]] || {
      echo "build-image: $example: $source not found in functions/$example" >&2
      return 1
    }
    mkdir -p "$staging$(dirname "$target")"
    cp "$KILN_ROOT/functions/$example/$source" "$staging$target"
  done
  if [[ -n $IMAGE_USER ]]; then
    mkdir -p "$staging/etc"
    { cat "$base/passwd"; echo "$IMAGE_USER:x:$APP_UID:$APP_GID::/nonexistent:/usr/sbin/nologin"; } >"$staging/etc/passwd"
    { cat "$base/group"; echo "$IMAGE_USER:x:$APP_GID:"; } >"$staging/etc/group"
  fi
  # World-readable, executable only where the source was; directories as in the base.
  chmod -R u=rwX,go=rX "$staging"
  deterministic_tar "$staging"
}

# Sets the image config from the image.conf variables.
configure() {
  local layout=$1 options=() element variable variables
  while IFS= read -r element; do options+=(--config.entrypoint "$element"); done < <(json_elements "$IMAGE_ENTRYPOINT")
  while IFS= read -r element; do options+=(--config.cmd "$element"); done < <(json_elements "$IMAGE_CMD")
  read -r -a variables <<<"$IMAGE_ENV"
  for variable in "${variables[@]}"; do options+=(--config.env "$variable"); done
  [[ -z $IMAGE_WORKDIR ]] || options+=(--config.workingdir "$IMAGE_WORKDIR")
  [[ -z $IMAGE_USER ]] || options+=(--config.user "$IMAGE_USER")
  umoci config --image "$layout:latest" --created "$FIXED_DATE" --os linux --architecture amd64 \
    --history.created "$FIXED_DATE" --history.created_by "scripts/build-image.sh: config" "${options[@]}" >&2
}

# The elements of a JSON array of strings, one per line (nothing for an empty value).
json_elements() {
  [[ -n $1 ]] || return 0
  jq -er 'if type == "array" and all(type == "string") then .[] else error("not an array of strings") end' <<<"$1"
}

# Names the layout's one manifest `ref` (annotation org.opencontainers.image.ref.name).
name_ref() {
  local layout=$1 ref=$2
  jq -c --arg ref "$ref" '.manifests |= map(.annotations["org.opencontainers.image.ref.name"] = $ref)' \
    "$layout/index.json" >"$layout/index.json.new"
  mv "$layout/index.json.new" "$layout/index.json"
}

# Writes a tar of `folder`'s contents on stdout: sorted names, fixed mtime, numeric root owner.
deterministic_tar() {
  chmod -R a+rX "$1"
  tar --create --format=gnu --sort=name --mtime="@$FIXED_EPOCH" --owner=0 --group=0 --numeric-owner \
    --directory "$1" .
}

main "$@"
