#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit and end-to-end tests on SQLite,
# MariaDB and PostgreSQL, and the SQLite-only build. Installs what it needs on Debian.
# The last line it prints is one summary of every step, also when a step fails:
#   summary: setup ok; fmt ok; ...; rust N passed 0 failed; bench smoke ok (sqlite, mariadb); ...
set -euo pipefail
cd "$(dirname "$0")/.."

# --- the summary line ----------------------------------------------------------------------------
# Each step appends one "name result" line to $GLANCE_SUMMARY_FILE when it ends (interop.sh and
# fuzz.sh append their own, with counts); on exit, whatever the cause, the trap prints them on one
# line, the step that was running as FAILED if it wrote nothing, and the steps never reached.
STEPS=(setup fmt clippy "sqlite-only build" rust "bench smoke" interop fuzz systemd)
STEP=""
GLANCE_SUMMARY_FILE=$(mktemp)
export GLANCE_SUMMARY_FILE
step() { STEP=$1; }
# commas A B C: prints "A, B, C".
commas() { local out="" x; for x; do out+="${out:+, }$x"; done; printf '%s' "$out"; }
# step_done RESULT: records "$STEP RESULT", unless the step's script already wrote its line.
step_done() {
  grep -q "^$STEP " "$GLANCE_SUMMARY_FILE" || echo "$STEP $1" >>"$GLANCE_SUMMARY_FILE"
  STEP=""
}
on_exit_hooks=()
on_exit() {
  local rc=$? hook s reached=false not_run=() line out=""
  set +e
  for hook in "${on_exit_hooks[@]}"; do $hook; done
  if [ -n "$STEP" ]; then
    if ! grep -q "^$STEP " "$GLANCE_SUMMARY_FILE"; then
      case $rc in
        129 | 130 | 143) echo "$STEP INTERRUPTED (signal $((rc - 128)))" ;;
        *) echo "$STEP FAILED (exit $rc)" ;;
      esac >>"$GLANCE_SUMMARY_FILE"
    fi
    for s in "${STEPS[@]}"; do
      [ "$reached" = true ] && not_run+=("$s")
      [ "$s" = "$STEP" ] && reached=true
    done
    [ ${#not_run[@]} -eq 0 ] || echo "not run: $(commas "${not_run[@]}")" >>"$GLANCE_SUMMARY_FILE"
  elif [ "$rc" != 0 ]; then
    echo "FAILED (exit $rc)" >>"$GLANCE_SUMMARY_FILE"
  fi
  while IFS= read -r line; do out+="${out:+; }$line"; done <"$GLANCE_SUMMARY_FILE"
  rm -f "$GLANCE_SUMMARY_FILE"
  echo
  echo "summary: $out"
  exit "$rc"
}
trap on_exit EXIT
# A signal ends the run through on_exit too, with the shell's usual 128+N status.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
step setup

need_pkgs=()
dpkg -s libmariadb-dev >/dev/null 2>&1 || need_pkgs+=(libmariadb-dev)
dpkg -s libpq-dev >/dev/null 2>&1 || need_pkgs+=(libpq-dev)
dpkg -s libssl-dev >/dev/null 2>&1 || need_pkgs+=(libssl-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
command -v mysql >/dev/null 2>&1 || need_pkgs+=(mariadb-client)
command -v psql >/dev/null 2>&1 || need_pkgs+=(postgresql-client)
# The HA test runs a real HAProxy in front of two api nodes.
[ -x /usr/sbin/haproxy ] || need_pkgs+=(haproxy)
# The rbd and s3 store tests run on a real single-node Ceph (scripts/ceph.sh, docs/ceph.md); the rbd
# store links librbd/librados.
for p in ceph-mon ceph-mgr ceph-osd radosgw ceph-common librbd-dev librados-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
# The format-inspection tests build real images (tests/e2e/api_inspect.rs).
command -v qemu-img >/dev/null 2>&1 || need_pkgs+=(qemu-utils)
command -v sgdisk >/dev/null 2>&1 || need_pkgs+=(gdisk)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "== installing ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
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
on_exit_hooks+=(cleanup)
echo "== starting Keystone (scripts/keystone.sh)"
if KEYSTONE_TOKEN_EXPIRATION=20 ./scripts/keystone.sh start "$ks_state" 0 >"$ks_state.log" 2>&1; then
  export GLANCE_TEST_KEYSTONE="$ks_state/keystone.json"
else
  cat "$ks_state.log" >&2
  echo "warning: Keystone did not start; the Keystone tests will not run" >&2
fi
rm -f "$ks_state.log"
# A single-node Ceph on loopback for the rbd and s3 store tests (about 14 s to start).
ceph_state=$(mktemp -d)
stop_ceph() { ./scripts/ceph.sh stop "$ceph_state" >/dev/null 2>&1 || true; rm -rf "$ceph_state"; }
on_exit_hooks+=(stop_ceph)
echo "== starting Ceph (scripts/ceph.sh)"
if ./scripts/ceph.sh start "$ceph_state" >/dev/null; then
  export GLANCE_TEST_CEPH="$ceph_state/ceph.json"
else
  echo "warning: Ceph did not start; the rbd and s3 store tests will not run" >&2
fi
# Glance's own metadefs catalogue (the etc/metadefs files of glance 33.0.0 from PyPI), for the
# glance-manage load/export round trip (tests/e2e/manage_metadefs.rs). Fetched, never committed.
md_dir=$(mktemp -d)
remove_md() { rm -rf "$md_dir"; }
on_exit_hooks+=(remove_md)
command -v pip3 >/dev/null 2>&1 || command -v pip >/dev/null 2>&1 || need_pip=1
if [ -n "${need_pip:-}" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-pip unzip >/dev/null
fi
command -v unzip >/dev/null 2>&1 || { SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq unzip >/dev/null; }
if (cd "$md_dir" && python3 -m pip download -q --no-deps glance==33.0.0 -d . >/dev/null 2>&1 \
    && unzip -qo glance-33.0.0-*.whl 'glance-33.0.0.data/data/etc/glance/metadefs/*'); then
  export GLANCE_TEST_METADEFS_DIR="$md_dir/glance-33.0.0.data/data/etc/glance/metadefs"
else
  echo "warning: could not fetch glance 33.0.0 from PyPI; the metadefs catalogue test will not run" >&2
fi
missing=()
[ -n "${GLANCE_TEST_MYSQL_URL:-}" ] || missing+=(mariadb)
[ -n "${GLANCE_TEST_POSTGRES_URL:-}" ] || missing+=(postgresql)
[ -n "${GLANCE_TEST_KEYSTONE:-}" ] || missing+=(keystone)
[ -n "${GLANCE_TEST_CEPH:-}" ] || missing+=(ceph)
[ -n "${GLANCE_TEST_METADEFS_DIR:-}" ] || missing+=(glance-metadefs)
step_done "ok${missing[*]:+ (not reachable, their tests skipped: $(commas "${missing[@]}"))}"

step fmt
echo "== cargo fmt --check"
cargo fmt --all --check
step_done ok
step clippy
echo "== cargo clippy"
cargo clippy --workspace --all-targets --features glance-registry/sqlite,glance-registry/mysql,glance-registry/postgres -- -D warnings
step_done ok
step "sqlite-only build"
echo "== SQLite-only build"
cargo check -p glance-registry --no-default-features --features sqlite
step_done ok
step rust
echo "== cargo test"
log=$(mktemp)
remove_log() { rm -f "$log"; }
on_exit_hooks+=(remove_log)
set +e
cargo test --workspace --all-targets 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run, summed over every test binary.
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "${passed} passed, ${failed} failed"
if [ "$status" = 0 ]; then
  step_done "$passed passed $failed failed"
else
  echo "$STEP $passed passed $failed failed, FAILED (cargo test exit $status)" >>"$GLANCE_SUMMARY_FILE"
  exit "$status"
fi

# The benchmark itself must keep working: a short run of every section on SQLite (and on
# MariaDB when reachable), failing on any failed request. Its figures are printed, never
# checked: speed is judged from full runs of scripts/bench.sh on a quiet machine.
step "bench smoke"
echo "== benchmark smoke run (glance-bench --quick; figures not checked)"
bench_db=()
[ -n "${GLANCE_TEST_MYSQL_URL:-}" ] && bench_db=(--mysql-url "mysql://root@$MYSQL_HOST:3306")
cargo build --workspace --bins
./target/debug/glance-bench --quick --fail-on-errors "${bench_db[@]}"
step_done "ok (sqlite${bench_db[*]:+, mariadb})"

echo "== interop: the real openstack, glance and openstacksdk clients (scripts/interop.sh)"
step interop
./scripts/interop.sh
step_done ok

echo "== fuzz: schemathesis against every route of glance-api, SQLite, MariaDB and PostgreSQL (scripts/fuzz.sh)"
step fuzz
GLANCE_FUZZ_POSTGRES_URL="postgresql://$pg_user@$PG_HOST:5432/glance_fuzz" ./scripts/fuzz.sh
step_done ok

echo "== systemd units (systemd-analyze verify, readiness probe)"
step systemd
./scripts/check-systemd.sh
step_done ok
