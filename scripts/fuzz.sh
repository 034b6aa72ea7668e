#!/usr/bin/env bash
# Property-based fuzz of every route glance-api describes in GET /v2/openapi.json: schemathesis
# (pinned in tests/fuzz/requirements.txt) against a real glance-registry + glance-api, once per
# database backend, with a fixed seed and a bounded number of examples per operation.
# See docs/fuzz.md.
#
# A run passes when: no answer is a 5xx; no request ends in a connection reset (or any other
# network error); and after every image left behind has been deleted through the API, no live
# row remains in images, image_properties, image_tags, image_members or image_locations and the
# image directory holds no file (no .partial either). The closing line gives the requests sent.
#
#   scripts/fuzz.sh                    every backend
#   scripts/fuzz.sh --max-failures 1   extra arguments go to `schemathesis run`
#
# Environment:
#   GLANCE_FUZZ_BACKENDS   default "sqlite mysql postgres" (PostgreSQL refuses values the other
#                          two store, so it finds what they cannot: see docs/fuzz.md)
#   GLANCE_FUZZ_EXAMPLES   examples per operation and phase (default 100)
#   GLANCE_FUZZ_SEED       the seed (default 26); the same seed and versions send the same requests
#   GLANCE_FUZZ_PHASES     schemathesis phases (default examples,coverage,fuzzing,stateful)
#   GLANCE_FUZZ_MYSQL_URL  default mysql://root@127.0.0.1:3306/glance_fuzz; dropped and created
#                          anew for each run
#   GLANCE_FUZZ_POSTGRES_URL  default postgresql://postgres@127.0.0.1:5432/glance_fuzz; the same
#   FUZZ_VENV              venv directory, default target/fuzz-venv
#   CI=true                an unreachable MariaDB fails the run instead of skipping it
#   GLANCE_SUMMARY_FILE    when set (scripts/test.sh does), one line is appended to it:
#                          "fuzz N requests (sqlite N ok, mysql N ok, postgres N ok)"
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

BACKENDS=${GLANCE_FUZZ_BACKENDS:-sqlite mysql postgres}
EXAMPLES=${GLANCE_FUZZ_EXAMPLES:-100}
SEED=${GLANCE_FUZZ_SEED:-26}
PHASES=${GLANCE_FUZZ_PHASES:-examples,coverage,fuzzing,stateful}
MYSQL_URL=${GLANCE_FUZZ_MYSQL_URL:-mysql://root@127.0.0.1:3306/glance_fuzz}
PG_URL=${GLANCE_FUZZ_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/glance_fuzz}
VENV=${FUZZ_VENV:-$ROOT/target/fuzz-venv}
REQS=$ROOT/tests/fuzz/requirements.txt
OUT=$ROOT/target/fuzz
CI=${CI:-false}
for b in $BACKENDS; do
  case $b in sqlite|mysql|mariadb|postgres) ;; *) echo "unknown backend $b (use sqlite, mysql or postgres)" >&2; exit 2 ;; esac
done

# shellcheck source=lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"

# --- 1. tools: the venv (rebuilt when requirements.txt changes), the database clients, curl ----
ensure_venv "$VENV" "$REQS" schemathesis
"$VENV/bin/schemathesis" --version
need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
command -v mysql >/dev/null 2>&1 || need+=(mariadb-client)
[[ " $BACKENDS " == *" postgres "* ]] && ! command -v psql >/dev/null 2>&1 && need+=(postgresql-client libpq-dev)
dpkg -s libmariadb-dev >/dev/null 2>&1 || dpkg -s default-libmysqlclient-dev >/dev/null 2>&1 \
  || need+=(libmariadb-dev pkg-config)
if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi

# --- 2. the daemons, with every database backend compiled in -----------------------------------
echo "== cargo build (glance-registry with sqlite, mysql and postgres, glance-api)"
cargo build -q -p glance-registry -p glance-api \
  --features glance-registry/sqlite,glance-registry/mysql,glance-registry/postgres --bins
BIN=$ROOT/target/debug

# --- 3. one run per backend ---------------------------------------------------------------------
PIDS=()
stop_daemons() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
trap stop_daemons EXIT

free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_up() { # url, pid, log
  for _ in $(seq 1 150); do
    curl -fs -o /dev/null "$1" && return 0
    kill -0 "$2" 2>/dev/null || { echo "daemon exited; its log:" >&2; tail -n 30 "$3" >&2; return 1; }
    sleep 0.2
  done
  echo "$1 did not answer in 30 s; log:" >&2; tail -n 30 "$3" >&2; return 1
}

# mysql client arguments and database name from $MYSQL_URL.
IFS='|' read -r MY_HOST MY_PORT MY_USER MY_PASS MY_DB <<<"$("${PYTHON:-python3}" - "$MYSQL_URL" <<'EOF'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print("|".join(map(str, (p.hostname or "127.0.0.1", p.port or 3306, u.unquote(p.username or "root"),
                          u.unquote(p.password or ""), p.path.lstrip("/").split("?")[0] or "glance_fuzz"))))
EOF
)"
MYSQL_ARGS=(-h "$MY_HOST" -P "$MY_PORT" -u "$MY_USER")
[ -n "$MY_PASS" ] && MYSQL_ARGS+=("-p$MY_PASS")

# Runs one SQL statement against the run's database; prints the bare result.
sql() {
  case $backend in
    sqlite) sqlite3 "$DIR/glance.sqlite" "$1" ;;
    postgres) psql "$PG_URL" -tAq -c "$1" ;;
    *) mysql "${MYSQL_ARGS[@]}" -N -B "$MY_DB" -e "$1" ;;
  esac
}

CHILD_TABLES="image_properties image_tags image_members image_locations"
declare -A RESULT REQUESTS SECS
overall=0
total_requests=0

for backend in $BACKENDS; do
  echo
  echo "======== fuzz: $backend (seed $SEED, $EXAMPLES examples per operation, phases $PHASES) ========"
  start=$(date +%s)
  DIR=$OUT/$backend
  rm -rf "$DIR"
  mkdir -p "$DIR/images" "$DIR/report"
  case $backend in
    sqlite) db_url="sqlite:///$DIR/glance.sqlite" ;;
    postgres)
      pg_db=${PG_URL##*/}; pg_db=${pg_db%%\?*}
      if ! psql "${PG_URL%/*}/postgres" -qc "DROP DATABASE IF EXISTS \"$pg_db\"" -c "CREATE DATABASE \"$pg_db\"" 2>"$DIR/psql.err"; then
        cat "$DIR/psql.err" >&2
        echo "error: PostgreSQL at $PG_URL is not reachable" >&2
        RESULT[$backend]=FAILED; overall=1; REQUESTS[$backend]=0; SECS[$backend]=0
        continue
      fi
      db_url=$PG_URL ;;
    *)
      if ! mysql "${MYSQL_ARGS[@]}" -e "DROP DATABASE IF EXISTS \`$MY_DB\`; CREATE DATABASE \`$MY_DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci" 2>"$DIR/mysql.err"; then
        cat "$DIR/mysql.err" >&2
        if [ "$CI" = true ]; then
          echo "error: MariaDB at $MY_HOST:$MY_PORT is not reachable; the $backend run fails (CI=true)" >&2
          RESULT[$backend]=FAILED; overall=1
        else
          echo "warning: MariaDB at $MY_HOST:$MY_PORT is not reachable; skipping the $backend run" >&2
          RESULT[$backend]=SKIPPED
        fi
        REQUESTS[$backend]=0; SECS[$backend]=0
        continue
      fi
      db_url="mysql://$MY_USER${MY_PASS:+:$MY_PASS}@$MY_HOST:$MY_PORT/$MY_DB" ;;
  esac
  rport=$(free_port)
  aport=$(free_port)
  cat >"$DIR/glance-registry.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $rport
[database]
connection = $db_url
CONF
  cat >"$DIR/glance-api.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $aport
registry_host = 127.0.0.1
registry_port = $rport
[glance_store]
stores = file,http
default_store = file
filesystem_store_datadir = $DIR/images/
CONF
  "$BIN/glance-manage" --config-file "$DIR/glance-registry.conf" db_sync >"$DIR/db_sync.log" 2>&1 \
    || { cat "$DIR/db_sync.log" >&2; exit 1; }
  RUST_LOG=${RUST_LOG:-info} "$BIN/glance-registry" --config-file "$DIR/glance-registry.conf" >"$DIR/registry.log" 2>&1 &
  PIDS+=($!)
  wait_up "http://127.0.0.1:$rport/healthcheck" "$!" "$DIR/registry.log"
  RUST_LOG=${RUST_LOG:-info} "$BIN/glance-api" --config-file "$DIR/glance-api.conf" >"$DIR/api.log" 2>&1 &
  PIDS+=($!)
  API=http://127.0.0.1:$aport
  wait_up "$API/healthcheck" "$!" "$DIR/api.log"

  problems=()
  set +e
  # Run from the run's directory: schemathesis keeps a cache (.schemathesis/) in the working one.
  (cd "$DIR" && FUZZ_NETWORK_ERRORS=$DIR/report/network-errors.jsonl SCHEMATHESIS_HOOKS=$ROOT/tests/fuzz/hooks.py \
    "$VENV/bin/schemathesis" run "$API/v2/openapi.json" \
    --checks not_a_server_error --mode all --phases "$PHASES" \
    --max-examples "$EXAMPLES" --seed "$SEED" --generation-database none \
    --workers 2 --request-timeout 30 --request-retries 0 --continue-on-failure --no-color \
    --suppress-health-check all \
    --report junit,har,ndjson --report-junit-path "$DIR/report/junit.xml" \
    --report-har-path "$DIR/report/requests.har" --report-ndjson-path "$DIR/report/events.ndjson" \
    "$@" >"$DIR/schemathesis.log" 2>&1)
  st_rc=$?
  set -e
  tail -n 40 "$DIR/schemathesis.log"
  [ $st_rc -eq 0 ] || problems+=("schemathesis failed (exit $st_rc): see $DIR/schemathesis.log")

  # Requests sent, 5xx answers and network errors (resets), from the run's HAR and event logs.
  verdict=$("$VENV/bin/python" tests/fuzz/verdict.py "$DIR/report") \
    || { problems+=("no readable report in $DIR/report"); verdict="0 0 0"; }
  read -r sent fivexx neterr <<<"$verdict"
  [ "$fivexx" = 0 ] || problems+=("$fivexx answers were 5xx")
  [ "$neterr" = 0 ] || problems+=("$neterr events mention a connection reset or network error (see $DIR/report/network-errors.jsonl)")
  logged=$(grep -c 'glance_api::access' "$DIR/api.log" || true)

  # Delete, through the API, every image the run left behind (unprotecting it first).
  left=$(sql "SELECT id FROM images WHERE NOT deleted")
  n_left=$(printf '%s' "$left" | grep -c . || true)
  echo "-- cleanup: $n_left images left by the run; deleting them through the API"
  for id in $left; do
    code=$(curl -s -o "$DIR/delete.out" -w '%{http_code}' -X DELETE "$API/v2/images/$id")
    if [ "$code" = 403 ]; then
      curl -s -o /dev/null -X PATCH -H 'Content-Type: application/openstack-images-v2.1-json-patch' \
        --data '[{"op": "replace", "path": "/protected", "value": false}]' "$API/v2/images/$id"
      code=$(curl -s -o "$DIR/delete.out" -w '%{http_code}' -X DELETE "$API/v2/images/$id")
    fi
    [ "$code" = 204 ] || problems+=("DELETE /v2/images/$id answered $code: $(head -c 300 "$DIR/delete.out")")
  done
  for t in images $CHILD_TABLES; do
    live=$(sql "SELECT COUNT(*) FROM $t WHERE NOT deleted")
    [ "$live" = 0 ] || problems+=("$live live rows left in $t")
  done
  files=$(find "$DIR/images" -mindepth 1 | head -20)
  [ -z "$files" ] || problems+=("files left in the image directory: $(echo "$files" | tr '\n' ' ')")
  # The daemons must have survived the run.
  for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || problems+=("a daemon (pid $pid) died during the run"); done
  stop_daemons

  SECS[$backend]=$(( $(date +%s) - start ))
  REQUESTS[$backend]=$sent
  total_requests=$(( total_requests + sent ))
  if [ ${#problems[@]} -eq 0 ]; then
    RESULT[$backend]=PASSED
  else
    RESULT[$backend]=FAILED; overall=1
    printf '  problem: %s\n' "${problems[@]}" >&2
    echo "  logs: $DIR/{api,registry,schemathesis}.log, reports: $DIR/report" >&2
  fi
  echo "-------- $backend: ${RESULT[$backend]}, $sent requests sent ($logged in glance-api's access log), $n_left images cleaned up, ${SECS[$backend]}s"
done

echo
echo "======== fuzz summary ========"
for backend in $BACKENDS; do
  printf '  %-8s %-8s %7s requests %5ss\n' "$backend" "${RESULT[$backend]:-?}" "${REQUESTS[$backend]:-0}" "${SECS[$backend]:-0}"
done
echo "fuzz: $total_requests requests sent (seed $SEED, $EXAMPLES examples per operation), ${SECONDS}s in all"
if [ -n "${GLANCE_SUMMARY_FILE:-}" ]; then
  per=""
  for backend in $BACKENDS; do
    r=${RESULT[$backend]:-NOT RUN}; [ "$r" = PASSED ] && r=ok
    per+="${per:+, }$backend ${REQUESTS[$backend]:-0} $r"
  done
  echo "fuzz $total_requests requests ($per)" >>"$GLANCE_SUMMARY_FILE"
fi
exit $overall
