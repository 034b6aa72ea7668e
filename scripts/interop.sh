#!/usr/bin/env bash
# Interoperability suite: the real python-openstackclient, python-glanceclient and openstacksdk
# (pinned in tests/interop/requirements.txt) against our glance-registry + glance-api, once per
# run of the matrix: database backend x auth mode. See docs/interop.md.
#
#   scripts/interop.sh                 the default matrix (below)
#   scripts/interop.sh -k members -x   extra arguments go to pytest
#
# Environment:
#   GLANCE_INTEROP_RUNS       the runs, as backend:auth words (backend sqlite or mysql, auth none
#                             or keystone); default "sqlite:none mysql:none sqlite:keystone" (about
#                             4 minutes each on 2 busy cores); "all" adds mysql:keystone
#   GLANCE_INTEROP_BACKENDS   or: backends (default "sqlite mysql") ...
#   GLANCE_INTEROP_AUTH       ... times auth modes (default "none keystone"): when either is set,
#                             the runs are every backend with every mode, modes outermost
#                             (GLANCE_INTEROP_AUTH=keystone: both keystone runs)
#   GLANCE_INTEROP_MYSQL_URL  default mysql+pymysql://root@127.0.0.1:3306/glance_interop; the
#                             database is dropped and created anew for each run
#   GLANCE_INTEROP_KEYSTONE   keystone.json of a running Keystone (scripts/keystone.sh) to use;
#                             by default one is started in target/interop/keystone for the keystone
#                             runs (once for all of them, tokens living 3600 s) and stopped at the end
#   INTEROP_VENV              venv directory, default target/interop-venv
#   CI=true                   an unreachable MariaDB or a Keystone that cannot be started fails
#                             the run instead of being skipped
#   GLANCE_SUMMARY_FILE       when set (scripts/test.sh does), one line is appended to it:
#                             "interop 3/3 runs ok (N passed, N failed, N skipped tests)", with
#                             each run that did not pass named after the count
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ "${GLANCE_INTEROP_RUNS:-}" = all ]; then
  RUNS="sqlite:none mysql:none sqlite:keystone mysql:keystone"
elif [ -n "${GLANCE_INTEROP_RUNS:-}" ]; then
  RUNS=$GLANCE_INTEROP_RUNS
elif [ -n "${GLANCE_INTEROP_BACKENDS:-}${GLANCE_INTEROP_AUTH:-}" ]; then
  RUNS=""
  for auth in ${GLANCE_INTEROP_AUTH:-none keystone}; do
    for backend in ${GLANCE_INTEROP_BACKENDS:-sqlite mysql}; do RUNS+=" $backend:$auth"; done
  done
else
  # MariaDB with Keystone adds little to these three (the database is behind the registry, auth
  # in front of both daemons) and would take the whole run past 15 minutes: GLANCE_INTEROP_RUNS=all.
  RUNS="sqlite:none mysql:none sqlite:keystone"
fi
for run in $RUNS; do
  case $run in
    sqlite:none|sqlite:keystone|mysql:none|mysql:keystone|mariadb:none|mariadb:keystone) ;;
    *) echo "unknown run $run (use sqlite|mysql : none|keystone)" >&2; exit 2 ;;
  esac
done
MYSQL_URL=${GLANCE_INTEROP_MYSQL_URL:-mysql+pymysql://root@127.0.0.1:3306/glance_interop}
VENV=${INTEROP_VENV:-$ROOT/target/interop-venv}
REQS=$ROOT/tests/interop/requirements.txt
OUT=$ROOT/target/interop
CI=${CI:-false}

# shellcheck source=lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"

# --- 1. the venv, rebuilt only when requirements.txt changes -------------------------------
ensure_venv "$VENV" "$REQS" openstack
"$VENV/bin/openstack" --version
"$VENV/bin/glance" --version

# --- 2. the daemons, with every database backend compiled in --------------------------------
if ! dpkg -s libmariadb-dev >/dev/null 2>&1 && ! dpkg -s default-libmysqlclient-dev >/dev/null 2>&1; then
  command -v dpkg >/dev/null && apt_install libmariadb-dev pkg-config
fi
echo "== cargo build (glance-registry with sqlite, mysql and postgres, glance-api)"
cargo build -p glance-registry -p glance-api \
  --features glance-registry/sqlite,glance-registry/mysql,glance-registry/postgres --bins
export GLANCE_BIN_DIR=$ROOT/target/debug

# --- 3. Keystone, once for every keystone run ------------------------------------------------
mkdir -p "$OUT"
# No OS_* variable of the caller's may steer the clients.
for v in $(env | grep -o '^OS_[A-Za-z0-9_]*' || true); do unset "$v"; done
export INTEROP_VENV_BIN=$VENV/bin

declare -A RESULT COUNTS SECS
overall=0

KS_STATE=$OUT/keystone
KS_STARTED=false
KS_ERROR=""
stop_keystone() {
  if [ "$KS_STARTED" = true ]; then
    scripts/keystone.sh stop "$KS_STATE" || true
    KS_STARTED=false
  fi
}
trap stop_keystone EXIT
if [[ " $RUNS " == *:keystone* ]]; then
  if [ -n "${GLANCE_INTEROP_KEYSTONE:-}" ]; then
    echo "== using the Keystone of $GLANCE_INTEROP_KEYSTONE"
    [ -r "$GLANCE_INTEROP_KEYSTONE" ] || KS_ERROR="GLANCE_INTEROP_KEYSTONE=$GLANCE_INTEROP_KEYSTONE is not readable"
  else
    echo "== starting Keystone in $KS_STATE (scripts/keystone.sh)"
    ks_start=$(date +%s)
    scripts/keystone.sh stop "$KS_STATE" >/dev/null 2>&1 || true
    # Tokens must outlive the run (a caller's KEYSTONE_TOKEN_EXPIRATION may be 20 s for the e2e
    # tests); the catalog's image endpoint is pointed at each run's glance-api by the fixtures.
    if KEYSTONE_TOKEN_EXPIRATION=3600 scripts/keystone.sh start "$KS_STATE" 0 >"$OUT/keystone-start.log" 2>&1; then
      KS_STARTED=true
      export GLANCE_INTEROP_KEYSTONE=$KS_STATE/keystone.json
      echo "   up in $(( $(date +%s) - ks_start ))s: $(grep -o '"auth_url": "[^"]*"' "$GLANCE_INTEROP_KEYSTONE")"
    else
      tail -n 30 "$OUT/keystone-start.log" >&2
      KS_ERROR="Keystone could not be started (log: $OUT/keystone-start.log)"
    fi
  fi
fi

# --- 4. pytest once per run --------------------------------------------------------------------

mysql_prepare() {
  # Parses the URL, checks the server answers, drops and creates the database.
  local parts host port user pass db
  parts=$("$VENV/bin/python" - "$MYSQL_URL" <<'EOF'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print("|".join(map(str, (p.hostname or "127.0.0.1", p.port or 3306, u.unquote(p.username or "root"),
                          u.unquote(p.password or ""), p.path.lstrip("/").split("?")[0]))))
EOF
  )
  IFS='|' read -r host port user pass db <<<"$parts"
  if ! command -v mysql >/dev/null 2>&1; then
    apt_install mariadb-client || return 1
  fi
  local args=(-h "$host" -P "$port" -u "$user")
  [ -n "$pass" ] && args+=("-p$pass")
  mysql "${args[@]}" -e 'SELECT 1' >/dev/null 2>&1 || return 1
  mysql "${args[@]}" -e "DROP DATABASE IF EXISTS \`$db\`; CREATE DATABASE \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
}

not_run() { # run, what is missing
  if [ "$CI" = true ]; then
    echo "error: $2; the $1 run fails (CI=true)" >&2
    RESULT[$1]=FAILED; overall=1
  else
    echo "warning: $2; skipping the $1 run" >&2
    RESULT[$1]=SKIPPED
  fi
  COUNTS[$1]=$3; SECS[$1]=0
}

for run in $RUNS; do
  backend=${run%%:*}
  auth=${run#*:}
  name=$backend-$auth
  echo
  echo "======== interop: $backend, auth $auth ========"
  unset GLANCE_INTEROP_DB_URL
  if [ "$auth" = keystone ] && [ -n "$KS_ERROR" ]; then
    not_run "$run" "$KS_ERROR" "keystone unavailable"
    continue
  fi
  case $backend in
    sqlite) ;;
    mysql|mariadb)
      if ! mysql_prepare; then
        not_run "$run" "MariaDB at $MYSQL_URL is not reachable" "database unreachable"
        continue
      fi
      export GLANCE_INTEROP_DB_URL=$MYSQL_URL ;;
  esac
  rm -rf "${OUT:?}/$name"
  start=$(date +%s)
  set +e
  (cd tests/interop && GLANCE_INTEROP_AUTH=$auth "$VENV/bin/python" -m pytest -q -rfEs \
      --basetemp="$OUT/$name" --junitxml="$OUT/$name.xml" "$@")
  rc=$?
  set -e
  SECS[$run]=$(( $(date +%s) - start ))
  COUNTS[$run]=$("$VENV/bin/python" - "$OUT/$name.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    r = ET.parse(sys.argv[1]).getroot()
    s = r if r.tag == "testsuite" else r.find("testsuite")
    t, f, e, k = (int(s.get(x, 0)) for x in ("tests", "failures", "errors", "skipped"))
    print(f"{t - f - e - k} passed, {f + e} failed, {k} skipped")
except Exception as ex:
    print(f"no report ({ex.__class__.__name__})")
EOF
  )
  if [ $rc -eq 0 ]; then RESULT[$run]=PASSED; else RESULT[$run]=FAILED; overall=1; fi
  [ $rc -ne 0 ] && echo "daemon logs for $run: $(find "$OUT/$name" -maxdepth 2 -name logs -type d | head -1)"
  echo "-------- $run: ${RESULT[$run]}, ${COUNTS[$run]}, ${SECS[$run]}s"
done
stop_keystone

# --- 5. summary -------------------------------------------------------------------------------
echo
echo "======== interop summary ========"
tp=0; tf=0; ts=0; total=0; declare -A BY=()
for run in $RUNS; do
  BY[${RESULT[$run]:-?}]=$(( ${BY[${RESULT[$run]:-?}]:-0} + 1 ))
  printf '  %-8s %-9s %-8s %-40s %4ss\n' "${run%%:*}" "${run#*:}" "${RESULT[$run]:-?}" "${COUNTS[$run]:-}" "${SECS[$run]:-0}"
  total=$((total + ${SECS[$run]:-0}))
  read -r p _ f _ s _ <<<"${COUNTS[$run]:-}" || true
  if [[ ${p:-} =~ ^[0-9]+$ ]]; then
    tp=$((tp + p)); tf=$((tf + f)); ts=$((ts + s))
  elif [ "${RESULT[$run]:-}" = FAILED ]; then
    tf=$((tf + 1))
  fi
done
echo "  reports: $OUT/<backend>-<auth>.xml, daemon logs: $OUT/<backend>-<auth>/cloud0/logs/"
echo
runs=""
for r in PASSED FAILED SKIPPED; do [ -n "${BY[$r]:-}" ] && runs+="${runs:+, }${BY[$r]} ${r,,}"; done
echo "interop: ${tp} passed, ${tf} failed, ${ts} skipped (runs: ${runs}; ${total}s in pytest, ${SECONDS}s in all)"
if [ -n "${GLANCE_SUMMARY_FILE:-}" ]; then
  n_runs=0; not_ok=""
  for run in $RUNS; do
    n_runs=$((n_runs + 1))
    [ "${RESULT[$run]:-?}" = PASSED ] || not_ok+=", $run ${RESULT[$run]:-NOT RUN}"
  done
  echo "interop ${BY[PASSED]:-0}/$n_runs runs ok$not_ok (${tp} passed, ${tf} failed, ${ts} skipped tests)" >>"$GLANCE_SUMMARY_FILE"
fi
exit $overall
