#!/usr/bin/env bash
# Runs the service on this machine until stopped: glance-registry over an embedded SQLite
# database and glance-api storing images on disk, both on 127.0.0.1, with no authentication.
# The first run builds both daemons in release mode (10 CPU-minutes: 5 to 10 minutes on two idle
# cores, more on a busy machine; see README.md).
#
# Environment (default in brackets):
#   GLANCE_DATA_DIR        the database, the images and the generated config files
#                          [.data in the checkout]; a relative path is taken from where you are
#   GLANCE_API_PORT        glance-api's port [9292]
#   GLANCE_REGISTRY_PORT   glance-registry's port [9191]
#   CARGO_TARGET_DIR       where cargo builds, and so where the daemons are run from [target]
#
# Stopping: Ctrl-C, or SIGTERM or SIGHUP to this script's pid (`kill PID`), stops both daemons
# (or the build, if it is still running) and waits for them to exit. When either daemon exits on
# its own, the other is stopped and the script exits with the first one's status. Only SIGKILL
# (`kill -9`), which no script can catch, leaves the daemons running.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."

port_ok() { [[ $1 =~ ^[0-9]{1,5}$ ]] && ((10#$1 >= 1 && 10#$1 <= 65535)); }
API_PORT=${GLANCE_API_PORT:-9292}
REGISTRY_PORT=${GLANCE_REGISTRY_PORT:-9191}
for p in "GLANCE_API_PORT=$API_PORT" "GLANCE_REGISTRY_PORT=$REGISTRY_PORT"; do
  port_ok "${p#*=}" || { echo "run-dev: ${p%%=*} must be a port number (1-65535), not '${p#*=}'" >&2; exit 2; }
done
[ "$((10#$API_PORT))" != "$((10#$REGISTRY_PORT))" ] \
  || { echo "run-dev: GLANCE_API_PORT and GLANCE_REGISTRY_PORT are both $API_PORT" >&2; exit 2; }
DATA=${GLANCE_DATA_DIR:-$PWD/.data}
[[ $DATA == /* ]] || DATA=$caller/$DATA

# The rbd store (on by default) links librbd and librados.
build_pkgs=(libmariadb-dev libpq-dev libssl-dev pkg-config librbd-dev librados-dev)
dpkg -s "${build_pkgs[@]}" >/dev/null 2>&1 || {
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${build_pkgs[@]}" >/dev/null
}

# Every child runs in the background in a process group of its own (job control), and the
# script only ever waits for them with the `wait` builtin: bash runs a trap only between
# commands, so a child in the foreground would hold back the TERM trap until it exited, which
# is how a `kill PID` used to leave both daemons running. Their own groups also keep a
# terminal's Ctrl-C to this script, which stops each group (cargo with its rustc jobs) once.
set -m
PIDS=()
stop_children() {
  trap '' INT TERM HUP
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
trap stop_children EXIT
trap 'echo "run-dev: interrupted; stopping" >&2; exit 130' INT
trap 'echo "run-dev: terminated; stopping" >&2; exit 143' TERM
# The daemons themselves take SIGHUP as "reopen the log file", so they get a TERM for it.
trap 'echo "run-dev: hangup; stopping" >&2; exit 129' HUP

cargo build --release -p glance-registry -p glance-api &
PIDS=($!)
wait "${PIDS[0]}"
PIDS=()

mkdir -p "$DATA/images"
DATA=$(cd "$DATA" && pwd -P)
cat > "$DATA/glance-registry.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $REGISTRY_PORT
[database]
connection = sqlite:///$DATA/glance.sqlite
CONF
cat > "$DATA/glance-api.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $API_PORT
registry_host = 127.0.0.1
registry_port = $REGISTRY_PORT
[glance_store]
stores = file,http
default_store = file
filesystem_store_datadir = $DATA/images/
CONF
BIN=${CARGO_TARGET_DIR:-target}/release
"$BIN/glance-manage" --config-file "$DATA/glance-registry.conf" db_sync
"$BIN/glance-registry" --config-file "$DATA/glance-registry.conf" &
PIDS+=($!)
"$BIN/glance-api" --config-file "$DATA/glance-api.conf" &
PIDS+=($!)
echo "run-dev: glance-api on http://127.0.0.1:$API_PORT, glance-registry on http://127.0.0.1:$REGISTRY_PORT," \
  "data in $DATA; Ctrl-C or 'kill $$' stops both" >&2
set +e
wait -n
rc=$?
echo "run-dev: a daemon exited with status $rc; stopping the other" >&2
exit "$rc"
