#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit and end-to-end tests on SQLite,
# MariaDB and PostgreSQL, and the SQLite-only build. Installs what it needs on Debian.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
dpkg -s libmariadb-dev >/dev/null 2>&1 || need_pkgs+=(libmariadb-dev)
dpkg -s libpq-dev >/dev/null 2>&1 || need_pkgs+=(libpq-dev)
dpkg -s libssl-dev >/dev/null 2>&1 || need_pkgs+=(libssl-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
command -v mysql >/dev/null 2>&1 || need_pkgs+=(mariadb-client)
command -v psql >/dev/null 2>&1 || need_pkgs+=(postgresql-client)
# The HA test runs a real HAProxy in front of two api nodes.
[ -x /usr/sbin/haproxy ] || need_pkgs+=(haproxy)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "== installing ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# Test databases on the local servers (MariaDB root without password, PostgreSQL trust).
MYSQL_HOST=${GLANCE_TEST_MYSQL_HOST:-127.0.0.1}
PG_HOST=${GLANCE_TEST_POSTGRES_HOST:-127.0.0.1}
if mysql -uroot -h"$MYSQL_HOST" -P3306 -e 'CREATE DATABASE IF NOT EXISTS glance_test' 2>/dev/null; then
  export GLANCE_TEST_MYSQL_URL="mysql://root@$MYSQL_HOST:3306/glance_test"
else
  echo "warning: MariaDB at $MYSQL_HOST:3306 not reachable; the MySQL backend tests will not run" >&2
fi
pg_user=postgres
psql -h "$PG_HOST" -U "$pg_user" -d postgres -tAc 'select 1' >/dev/null 2>&1 || pg_user=root
if psql -h "$PG_HOST" -U "$pg_user" -d postgres -tAc 'select 1' >/dev/null 2>&1; then
  psql -h "$PG_HOST" -U "$pg_user" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'glance_test'" | grep -q 1 \
    || psql -h "$PG_HOST" -U "$pg_user" -d postgres -qc 'CREATE DATABASE glance_test'
  export GLANCE_TEST_POSTGRES_URL="postgresql://$pg_user@$PG_HOST:5432/glance_test"
else
  echo "warning: PostgreSQL at $PG_HOST:5432 not reachable; the PostgreSQL backend tests will not run" >&2
fi
# In CI the harness refuses to run without both servers, so nothing is silently skipped.

# A real Keystone on loopback for the auth tests (tokens live 20 s so expiry is tested).
ks_state=$(mktemp -d)
cleanup() { ./scripts/keystone.sh stop "$ks_state" >/dev/null 2>&1 || true; rm -rf "$ks_state"; }
trap cleanup EXIT
echo "== starting Keystone (scripts/keystone.sh)"
if KEYSTONE_TOKEN_EXPIRATION=20 ./scripts/keystone.sh start "$ks_state" 0 >"$ks_state.log" 2>&1; then
  export GLANCE_TEST_KEYSTONE="$ks_state/keystone.json"
else
  cat "$ks_state.log" >&2
  echo "warning: Keystone did not start; the Keystone tests will not run" >&2
fi
rm -f "$ks_state.log"

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --features glance-registry/sqlite,glance-registry/mysql,glance-registry/postgres -- -D warnings
echo "== SQLite-only build"
cargo check -p glance-registry --no-default-features --features sqlite
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"; cleanup' EXIT
set +e
cargo test --workspace --all-targets 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run, summed over every test binary.
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "${passed} passed, ${failed} failed"
[ "$status" = 0 ] || exit "$status"

# The benchmark itself must keep working: a short run of every section on SQLite (and on
# MariaDB when reachable), failing on any failed request. Its figures are printed, never
# checked: speed is judged from full runs of scripts/bench.sh on a quiet machine.
echo "== benchmark smoke run (glance-bench --quick; figures not checked)"
bench_db=()
[ -n "${GLANCE_TEST_MYSQL_URL:-}" ] && bench_db=(--mysql-url "mysql://root@$MYSQL_HOST:3306")
cargo build --workspace --bins
./target/debug/glance-bench --quick --fail-on-errors "${bench_db[@]}"

echo "== interop: the real openstack, glance and openstacksdk clients (scripts/interop.sh)"
./scripts/interop.sh

echo "== fuzz: schemathesis against every route of glance-api, SQLite, MariaDB and PostgreSQL (scripts/fuzz.sh)"
GLANCE_FUZZ_POSTGRES_URL="postgresql://$pg_user@$PG_HOST:5432/glance_fuzz" ./scripts/fuzz.sh

echo "== systemd units (systemd-analyze verify, readiness probe)"
./scripts/check-systemd.sh
