#!/usr/bin/env bash
# Checks the systemd units in systemd/ with `systemd-analyze verify`, the way systemd will
# load them on a host where the binaries are installed in /usr/bin:
#   - installs the Debian package `systemd` when systemd-analyze is missing;
#   - builds glance-api and glance-registry (debug) and points copies of the units at
#     target/debug/ instead of /usr/bin/ (verify insists every Exec path exists);
#   - creates the system user/group `glance` the units run as, when missing;
#   - fails on any line verify prints about our units, and prints the offline
#     `systemd-analyze security` exposure score of each;
#   - runs each unit's ExecStartPost= readiness probe (as systemd would hand it to bash)
#     against a real glance-registry: it must succeed once the port answers, and give up at
#     once when the main process is gone.
# Needs root for apt-get and useradd (as in the project's Debian containers).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
UNITS=(openstack-glance-registry.service openstack-glance-api.service)
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "== installing systemd (for systemd-analyze)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq systemd >/dev/null
fi
echo "== $(systemd-analyze --version | head -1)"

if ! getent passwd glance >/dev/null; then
  echo "== creating system user glance"
  getent group glance >/dev/null || $SUDO groupadd --system glance
  $SUDO useradd --system --gid glance --home /var/lib/glance --shell /usr/sbin/nologin glance
fi

dpkg -s libmariadb-dev >/dev/null 2>&1 && dpkg -s libpq-dev >/dev/null 2>&1 && dpkg -s libssl-dev >/dev/null 2>&1 || {
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libmariadb-dev libpq-dev libssl-dev pkg-config >/dev/null
}
echo "== cargo build -p glance-api -p glance-registry"
(cd "$ROOT" && cargo build -q -p glance-api -p glance-registry)
BIN="$ROOT/target/debug"

TMP="$(mktemp -d)"
REG_PID=""
cleanup() {
  if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

fail=0
for unit in "${UNITS[@]}"; do
  src="$ROOT/systemd/$unit"
  [ -f "$src" ] || { echo "FAIL: $src is missing"; fail=1; continue; }
  sed -e "s#/usr/bin/glance-api#$BIN/glance-api#g" \
      -e "s#/usr/bin/glance-registry#$BIN/glance-registry#g" \
      -e "s#/usr/bin/glance-manage#$BIN/glance-manage#g" \
      "$src" > "$TMP/$unit"
  # Every absolute executable the unit runs must exist (verify checks this too).
  for exe in $(grep -E '^Exec[A-Za-z]*=' "$TMP/$unit" | sed -E 's/^[^=]*=[-@:+!]*([^ ]+).*/\1/'); do
    [ -x "$exe" ] || { echo "FAIL: $unit: $exe is not an executable"; fail=1; }
  done
  for key in 'Type=exec' 'User=glance' 'Group=glance' 'Restart=on-failure' 'ProtectSystem=strict' \
             'ReadWritePaths=/var/lib/glance /var/log/glance' 'PrivateTmp=true' \
             'NoNewPrivileges=true' 'ProtectHome=true'; do
    grep -qxF "$key" "$src" || { echo "FAIL: $unit lacks '$key'"; fail=1; }
  done
  grep -q '^ExecStartPost=' "$src" || { echo "FAIL: $unit has no ExecStartPost= readiness probe"; fail=1; }
done

echo "== systemd-analyze verify ${UNITS[*]}"
out="$(cd "$TMP" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "${UNITS[@]/#/$TMP/}" 2>&1)" && rc=0 || rc=$?
# In a container verify may also complain about unrelated system units; only lines naming
# our units (or their temporary copies) count.
ours="$(printf '%s\n' "$out" | grep -E 'openstack-glance-(api|registry)\.service' || true)"
if [ -n "$ours" ]; then
  printf '%s\n' "$ours"
  echo "FAIL: systemd-analyze verify reported the lines above"
  fail=1
elif [ "$rc" != 0 ]; then
  echo "note: verify exited $rc, with nothing about our units:"
  printf '%s\n' "$out" | sed 's/^/  | /'
fi

for unit in "${UNITS[@]}"; do
  score="$(systemd-analyze security --offline=true --no-pager "$TMP/$unit" 2>/dev/null | grep -E 'Overall exposure level' || true)"
  echo "   $unit: ${score:-security score unavailable}"
done

echo "== readiness probes against a running glance-registry"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 19191)"
cat > "$TMP/registry.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $port
[database]
connection = sqlite:///$TMP/glance.sqlite
CONF
(cd "$ROOT" && cargo build -q -p glance-registry --bin glance-manage)
"$BIN/glance-manage" --config-file "$TMP/registry.conf" db_sync >/dev/null
"$BIN/glance-registry" --config-file "$TMP/registry.conf" >"$TMP/registry.log" 2>&1 &
REG_PID=$!
for unit in "${UNITS[@]}"; do
  # The probe as systemd passes it to bash: "$$" in the unit file is a literal "$".
  probe="$(sed -n "s/^ExecStartPost=\/bin\/bash -c '\(.*\)'$/\1/p" "$ROOT/systemd/$unit" | sed 's/\$\$/$/g')"
  [ -n "$probe" ] || { echo "FAIL: $unit: cannot read its ExecStartPost=/bin/bash -c '…' probe"; fail=1; continue; }
  start=$SECONDS
  if GLANCE_READY_HOST=127.0.0.1 GLANCE_READY_PORT=$port MAINPID=$REG_PID bash -c "$probe"; then
    echo "   $unit: probe succeeded after $((SECONDS - start)) s once port $port answered"
  else
    echo "FAIL: $unit: probe failed although port $port is served"; sed 's/^/  | /' "$TMP/registry.log"; fail=1
  fi
  sleep 0 & dead=$!; wait "$dead"
  start=$SECONDS
  if GLANCE_READY_HOST=127.0.0.1 GLANCE_READY_PORT=1 MAINPID=$dead bash -c "$probe" 2>/dev/null; then
    echo "FAIL: $unit: probe succeeded with nothing listening"; fail=1
  elif [ $((SECONDS - start)) -gt 5 ]; then
    echo "FAIL: $unit: probe took $((SECONDS - start)) s to notice the daemon had exited"; fail=1
  else
    echo "   $unit: probe gives up at once when the daemon has exited"
  fi
done

if [ "$fail" != 0 ]; then
  echo "check-systemd: FAILED"
  exit 1
fi
echo "check-systemd: OK (${UNITS[*]})"
