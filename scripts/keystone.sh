#!/usr/bin/env bash
# A real OpenStack Keystone (keystone 30.x from PyPI) on loopback, for end-to-end auth tests.
#
#   scripts/keystone.sh start  STATE_DIR [PORT]     PORT: default 5000; 0 or "auto" picks a free one
#   scripts/keystone.sh stop   STATE_DIR
#   scripts/keystone.sh status STATE_DIR
#   scripts/keystone.sh token  STATE_DIR USER [PROJECT]   prints a token id (PROJECT: the user's own
#                                                         by default, "system" or "unscoped" also work)
#   scripts/keystone.sh selftest STATE_DIR         checks tokens, roles, revocation (and expiry when
#                                                   KEYSTONE_TOKEN_EXPIRATION <= 10) against the server
#
# start makes (or reuses) a venv with the exact pins of scripts/keystone/requirements-keystone.txt,
# cached under target/keystone-venv/<hash of the pins and the interpreter>; writes
# STATE_DIR/keystone.conf (SQLite STATE_DIR/keystone.db, fernet tokens, key repositories in
# STATE_DIR); runs keystone-manage db_sync, fernet_setup, credential_setup and bootstrap (user admin on
# project admin, roles admin > manager > member > reader and service, region RegionOne, identity
# endpoints http://127.0.0.1:PORT/v3); serves keystone.wsgi.api:application with gunicorn, one sync
# worker, on 127.0.0.1:PORT in the background (pid in STATE_DIR/keystone.pid, logs in STATE_DIR/*.log);
# waits for GET /v3; then, idempotently: project service with user glance (admin on it), projects
# alpha and beta with users <project>-admin, <project>-member, <project>-reader holding that role,
# and the image service "glance" with public/internal/admin endpoints in RegionOne. Last it writes
# STATE_DIR/keystone.env (shell-sourceable) and STATE_DIR/keystone.json, and prints the env file's path.
# A STATE_DIR may be started again after stop: the database, keys and ids are kept.
#
# Environment (all optional):
#   KEYSTONE_TOKEN_EXPIRATION  token lifetime in seconds                        (3600)
#   KEYSTONE_ADMIN_PASSWORD    password of user admin                           (admin-pass)
#   KEYSTONE_SERVICE_PASSWORD  password of user glance                          (glance-pass)
#   KEYSTONE_USER_PASSWORD     password of the alpha-*/beta-* users             (secret)
#   KEYSTONE_GLANCE_ENDPOINT   image endpoint URL; set it empty to register none (http://127.0.0.1:9292)
#   KEYSTONE_START_TIMEOUT     seconds to wait for the server to answer        (180)
#   KEYSTONE_DEBUG             1: debug logging in keystone.log                 (0)
#   KEYSTONE_CACHE             0: no in-process dogpile cache (slower)           (1)
#   KEYSTONE_PYTHON            interpreter for the venv (>= 3.11)                (python3.11, else python3)
#   KEYSTONE_VENV_DIR          venv directory                                   (target/keystone-venv/<key>)
#   KEYSTONE_PIP_ARGS          extra pip install arguments                      (none)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
KDIR=$HERE/keystone
REQS=$KDIR/requirements-keystone.txt
HOST=127.0.0.1

say() { echo "keystone.sh: $*" >&2; }
die() {
  echo "keystone.sh: error: $*" >&2
  exit 1
}
usage() {
  sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------- processes

# Children of a pid, from /proc (procps may be missing on a minimal Debian).
child_pids() {
  local f
  if [ -r "/proc/$1/task/$1/children" ]; then
    cat "/proc/$1/task/$1/children"
    return
  fi
  for f in /proc/[0-9]*/status; do
    awk -v p="$1" '$1 == "PPid:" && $2 == p { split(FILENAME, a, "/"); print a[3] }' "$f" 2>/dev/null || true
  done
}

# True if the pid is alive and is the gunicorn serving this state dir.
is_our_server() {
  local pid=$1 state=$2
  local cmd
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *gunicorn*" --chdir $state "* ]]
}

stop_server() {
  local state=$1 pid kids i
  pid=$(cat "$state/keystone.pid" 2>/dev/null || true)
  if ! is_our_server "$pid" "$state"; then
    rm -f "$state/keystone.pid" "$state/gunicorn.pid"
    return 0
  fi
  kids=$(child_pids "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "gunicorn $pid did not stop on TERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  for i in $kids; do
    if kill -0 "$i" 2>/dev/null; then kill -KILL "$i" 2>/dev/null || true; fi
  done
  rm -f "$state/keystone.pid" "$state/gunicorn.pid"
  say "stopped Keystone (pid $pid)"
}

# ---------------------------------------------------------------- python and venv

python_ok() { # usable for a venv: CPython >= 3.11 with venv and ensurepip
  "$1" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

pick_python() {
  local c
  if [ -n "${KEYSTONE_PYTHON:-}" ]; then
    python_ok "$KEYSTONE_PYTHON" || die "KEYSTONE_PYTHON=$KEYSTONE_PYTHON is not a Python >= 3.11 with venv/ensurepip"
    PY=$KEYSTONE_PYTHON
    return
  fi
  for c in python3.11 python3 /usr/bin/python3.11 /usr/bin/python3; do
    if command -v "$c" >/dev/null 2>&1 && python_ok "$c"; then
      PY=$(command -v "$c")
      return
    fi
  done
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "no Python >= 3.11 with venv found; installing python3 python3-venv with apt-get"
    apt-get update -qq >&2 || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2 ||
      die "apt-get install python3 python3-venv failed"
    for c in /usr/bin/python3.11 /usr/bin/python3; do
      if python_ok "$c"; then
        PY=$c
        return
      fi
    done
  fi
  die "need CPython >= 3.11 with the venv module (Debian: apt-get install python3 python3-venv)"
}

ensure_venv() {
  local key
  pick_python
  key=$({
    cat "$REQS"
    "$PY" -c 'import sys; print(sys.executable, sys.version)'
  } | sha256sum | cut -c1-16)
  VENV=${KEYSTONE_VENV_DIR:-$REPO/target/keystone-venv/$key}
  mkdir -p "$(dirname "$VENV")"
  # One builder at a time: concurrent starts share the cached venv.
  exec 9>"$VENV.lock"
  flock -w 1200 9 || die "timed out waiting for the lock on $VENV"
  if [ "$(cat "$VENV/.keystone-venv-complete" 2>/dev/null || true)" != "$key" ]; then
    say "creating venv $VENV with $PY ($("$PY" -V 2>&1))"
    if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ] && [ -n "$(ls -A "$VENV" 2>/dev/null)" ]; then
      die "$VENV exists and is not a venv; not removing it"
    fi
    rm -rf "$VENV"
    if ! "$PY" -m venv "$VENV" >"$VENV.pip.log" 2>&1; then
      cat "$VENV.pip.log" >&2
      die "python -m venv failed"
    fi
    # shellcheck disable=SC2086 # KEYSTONE_PIP_ARGS is a word list on purpose
    if ! PIP_DEFAULT_TIMEOUT=${PIP_DEFAULT_TIMEOUT:-60} "$VENV/bin/pip" install \
      --disable-pip-version-check --no-input --only-binary=:all: ${KEYSTONE_PIP_ARGS:-} \
      -r "$REQS" >>"$VENV.pip.log" 2>&1; then
      tail -n 60 "$VENV.pip.log" >&2
      rm -rf "$VENV"
      die "pip install -r $REQS failed (log: $VENV.pip.log)"
    fi
    echo "$key" >"$VENV/.keystone-venv-complete"
  fi
  flock -u 9
  exec 9>&-
}

# ---------------------------------------------------------------- start

free_port() {
  "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

port_free() {
  "$VENV/bin/python" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does: TIME_WAIT is fine
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
' "$1"
}

http_ok() { # GET URL answers 200
  "$VENV/bin/python" -c '
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
' "$1"
}

dump_logs() {
  local f
  for f in keystone-manage.log keystone-manage-fernet_setup.log keystone-manage-credential_setup.log gunicorn.out gunicorn.log keystone.log provision.log; do
    if [ -s "$STATE/$f" ]; then
      echo "----- last lines of $STATE/$f -----" >&2
      grep -v -i -e eventlet -e 'recommend migrating' -e 'strongly recommend' -e 'framework.  For more' -e '^[[:space:]]*$' "$STATE/$f" |
        tail -n 40 >&2 || true
    fi
  done
}

on_start_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    say "start failed (exit $rc); logs follow"
    dump_logs
    stop_server "$STATE"
  fi
}

manage() {
  say "keystone-manage $1 (${SECONDS}s)"
  echo "+ keystone-manage $1" >>"$STATE/keystone-manage.log"
  if ! "$VENV/bin/keystone-manage" --config-file "$STATE/keystone.conf" "$@" >>"$STATE/keystone-manage.log" 2>&1; then
    die "keystone-manage $1 failed"
  fi
}

BG=()
manage_bg() { # keystone-manage in the background, with its own log; wait_bg collects it
  say "keystone-manage $1 in the background (${SECONDS}s)"
  "$VENV/bin/keystone-manage" --config-file "$STATE/keystone.conf" "$@" >"$STATE/keystone-manage-$1.log" 2>&1 &
  BG+=("$!:$1")
}

wait_bg() {
  local e
  for e in ${BG[@]+"${BG[@]}"}; do
    wait "${e%%:*}" || die "keystone-manage ${e#*:} failed"
  done
  BG=()
}

write_conf() {
  local debug=false cache=true
  [ "${KEYSTONE_DEBUG:-0}" = 1 ] && debug=true
  [ "${KEYSTONE_CACHE:-1}" = 0 ] && cache=false
  cat >"$STATE/keystone.conf" <<EOF
# Written by scripts/keystone.sh start; rewritten on every start.
[DEFAULT]
debug = $debug
log_file = $STATE/keystone.log
use_stderr = false

[database]
connection = sqlite:///$STATE/keystone.db

[token]
provider = fernet
expiration = $EXPIRATION

[fernet_tokens]
key_repository = $STATE/fernet-keys
max_active_keys = 3

[fernet_receipts]
key_repository = $STATE/fernet-keys

[credential]
key_repository = $STATE/credential-keys

[identity]
# The bcrypt minimum: these are throw-away test users, and 2 busy cores are slow.
password_hash_rounds = 4

[cache]
# In-process cache: coherent with one worker, and it cuts a token validation from
# ~100 SQL queries to a handful. KEYSTONE_CACHE=0 turns it off.
enabled = $cache
backend = dogpile.cache.memory

[oslo_policy]
# Policy defaults only; never pick up an /etc/keystone/policy.yaml.
policy_file = $STATE/policy.yaml
EOF
}

cmd_start() {
  if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
  local port pid i deadline timeout user group
  SECONDS=0
  mkdir -p "$1"
  STATE=$(cd "$1" && pwd)
  port=${2:-5000}
  EXPIRATION=${KEYSTONE_TOKEN_EXPIRATION:-3600}
  case "$EXPIRATION" in '' | *[!0-9]*) die "KEYSTONE_TOKEN_EXPIRATION must be a number of seconds" ;; esac
  timeout=${KEYSTONE_START_TIMEOUT:-180}

  pid=$(cat "$STATE/keystone.pid" 2>/dev/null || true)
  if is_our_server "$pid" "$STATE"; then
    die "Keystone is already running for $STATE (pid $pid); run: $0 stop $STATE"
  fi
  rm -f "$STATE/keystone.pid" "$STATE/gunicorn.pid" "$STATE/keystone.env" "$STATE/keystone.json"

  ensure_venv

  case "$port" in
    0 | auto) port=$(free_port) ;;
    *[!0-9]*) die "bad port: $port" ;;
    *) port_free "$port" || die "port $port on $HOST is already in use" ;;
  esac
  local url="http://$HOST:$port"

  # From here on a failure prints the logs and leaves no server behind.
  trap on_start_exit EXIT

  : >"$STATE/keystone-manage.log"
  write_conf
  # The key repositories do not touch the database: make them while db_sync runs.
  user=$(id -un)
  group=$(id -gn)
  BG=()
  [ -f "$STATE/fernet-keys/0" ] || manage_bg fernet_setup --keystone-user "$user" --keystone-group "$group"
  [ -f "$STATE/credential-keys/0" ] || manage_bg credential_setup --keystone-user "$user" --keystone-group "$group"
  manage db_sync
  wait_bg
  manage bootstrap \
    --bootstrap-username admin \
    --bootstrap-password "${KEYSTONE_ADMIN_PASSWORD:-admin-pass}" \
    --bootstrap-project-name admin \
    --bootstrap-role-name admin \
    --bootstrap-service-name keystone \
    --bootstrap-region-id RegionOne \
    --bootstrap-admin-url "$url/v3" \
    --bootstrap-internal-url "$url/v3" \
    --bootstrap-public-url "$url/v3"

  say "serving on $url with gunicorn (state $STATE) (${SECONDS}s)"
  # PYTHONDONTWRITEBYTECODE: no __pycache__ in scripts/keystone from importing keystone_wsgi.
  PYTHONDONTWRITEBYTECODE=1 OS_KEYSTONE_CONFIG_FILES="$STATE/keystone.conf" nohup "$VENV/bin/gunicorn" \
    --chdir "$STATE" \
    --bind "$HOST:$port" \
    --workers 1 --worker-class sync --timeout 120 --graceful-timeout 10 \
    --no-control-socket \
    --pythonpath "$KDIR" \
    --pid "$STATE/gunicorn.pid" \
    --access-logfile "$STATE/access.log" \
    --error-logfile "$STATE/gunicorn.log" \
    keystone_wsgi:application </dev/null >"$STATE/gunicorn.out" 2>&1 &
  pid=$!
  echo "$pid" >"$STATE/keystone.pid"

  deadline=$(($(date +%s) + timeout))
  until http_ok "$url/v3"; do
    kill -0 "$pid" 2>/dev/null || die "gunicorn exited before Keystone answered"
    [ "$(date +%s)" -lt "$deadline" ] || die "Keystone did not answer GET $url/v3 within ${timeout}s"
    sleep 0.5
  done
  # A worker that cannot load the app is restarted by gunicorn; make sure it is still up.
  for i in 1 2 3; do
    http_ok "$url/v3" || die "Keystone stopped answering GET $url/v3"
  done

  say "answering; provisioning projects, users, roles, image endpoints (${SECONDS}s)"
  if ! KS_STATE_DIR="$STATE" KS_URL="$url" KS_HOST="$HOST" KS_PORT="$port" KS_PID="$pid" \
    KS_VENV="$VENV" KS_TOKEN_EXPIRATION="$EXPIRATION" \
    KS_ADMIN_PASSWORD="${KEYSTONE_ADMIN_PASSWORD:-admin-pass}" \
    KS_SERVICE_PASSWORD="${KEYSTONE_SERVICE_PASSWORD:-glance-pass}" \
    KS_USER_PASSWORD="${KEYSTONE_USER_PASSWORD:-secret}" \
    KS_GLANCE_ENDPOINT="${KEYSTONE_GLANCE_ENDPOINT-http://127.0.0.1:9292}" \
    "$VENV/bin/python" "$KDIR/ks_provision.py" >"$STATE/provision.log" 2>&1; then
    die "provisioning users and projects failed"
  fi
  trap - EXIT
  say "Keystone up at $url/v3 (pid $pid) in ${SECONDS}s; source $STATE/keystone.env"
  echo "$STATE/keystone.env"
}

# ---------------------------------------------------------------- other commands

cmd_stop() {
  [ $# -eq 1 ] || usage
  [ -d "$1" ] || die "no such state dir: $1"
  stop_server "$(cd "$1" && pwd)"
}

cmd_status() {
  [ $# -eq 1 ] || usage
  local state pid
  state=$(cd "$1" 2>/dev/null && pwd) || die "no such state dir: $1"
  pid=$(cat "$state/keystone.pid" 2>/dev/null || true)
  if is_our_server "$pid" "$state"; then
    echo "running: pid $pid, $(grep '^export KEYSTONE_AUTH_URL=' "$state/keystone.env" 2>/dev/null | cut -d= -f2-)"
  else
    echo "not running"
    return 1
  fi
}

stdlib_python() { # the helpers below need nothing but the standard library
  if [ -n "${KEYSTONE_PYTHON:-}" ]; then echo "$KEYSTONE_PYTHON"; else command -v python3 || echo python3; fi
}

cmd_token() {
  if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
  "$(stdlib_python)" "$KDIR/ks_token.py" "$@"
}

cmd_selftest() {
  [ $# -eq 1 ] || usage
  "$(stdlib_python)" "$KDIR/ks_selftest.py" "$1"
}

[ $# -ge 1 ] || usage
sub=$1
shift
case "$sub" in
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  status) cmd_status "$@" ;;
  token) cmd_token "$@" ;;
  selftest) cmd_selftest "$@" ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
