#!/usr/bin/env bash
# A throwaway single-node Ceph on loopback for the rbd and s3 store tests (Debian's packages,
# Ceph 16 "Pacific" on bookworm): one monitor, one manager, one OSD and one RADOS Gateway, run as
# plain processes whose every file lives under STATE_DIR.
#
#   scripts/ceph.sh start STATE_DIR     bring a cluster up (STATE_DIR must not hold one yet)
#   scripts/ceph.sh stop  STATE_DIR     stop exactly the daemons this script started there
#   scripts/ceph.sh status STATE_DIR    exit 0 if the monitor of STATE_DIR answers
#
# start creates the rbd pool "images", the cephx user client.glance (rbd profile on that pool),
# an S3 user for the gateway, and writes STATE_DIR/ceph.json and STATE_DIR/ceph.env with the
# config file path, fsid, keyring, users, pool and the S3 endpoint and keys. Tests find the cluster
# through GLANCE_TEST_CEPH=STATE_DIR/ceph.json. Every client must be handed STATE_DIR/ceph.conf
# explicitly: without a config file librados looks the monitors up in DNS.
#
# Environment (all optional):
#   CEPH_MON_PORT   monitor port (msgr2)                       (0: a free port)
#   CEPH_RGW_PORT   RADOS Gateway HTTP port                    (0: a free port)
#   CEPH_OSD_STORE  memstore (data in the OSD's RAM, ~1.75x)  or bluestore (sparse file)  (memstore)
#   CEPH_MEMSTORE_BYTES  memstore capacity; writes block when it is 95% full   (4 GiB)
#   CEPH_WITH_RGW   0: no gateway (rbd only, starts faster)    (1)
set -Eeuo pipefail

say() { echo "ceph.sh: $*" >&2; }
usage() {
  sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
case "$cmd" in start | stop | status) ;; *) usage ;; esac
mkdir -p "$2"
S=$(cd "$2" && pwd)

# ---------------------------------------------------------------- stop

# Signals the daemons named by the pid files in S/run, in three rounds: the gateway first (it
# hangs on shutdown once the OSD is gone), then OSD and manager, the monitor last (an OSD whose
# monitor is gone waits 5 s). A pid is signalled only while /proc says it still is a Ceph daemon,
# so a reused pid is never hit. Each round waits up to 10 s, then SIGKILLs what is left.
stop_daemons() {
  local round pat f pid pids left i
  for round in "client.rgw.*" "osd.* mgr.*" "mon.*"; do
    pids=()
    for pat in $round; do
      for f in "$S"/run/$pat.pid; do
        [ -e "$f" ] || continue
        pid=$(cat "$f")
        rm -f "$f"
        case "$(cat "/proc/$pid/comm" 2>/dev/null)" in ceph-mon | ceph-mgr | ceph-osd | radosgw) ;; *) continue ;; esac
        kill "$pid" 2>/dev/null && pids+=("$pid")
      done
    done
    for i in $(seq 100); do
      left=0
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
      [ $left = 0 ] && break
      sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  done
}

if [ "$cmd" = stop ]; then
  stop_daemons
  exit 0
fi
if [ "$cmd" = status ]; then
  [ -e "$S/ceph.conf" ] || exit 1
  timeout 10 ceph -c "$S/ceph.conf" --connect-timeout 5 mon stat >/dev/null 2>&1
  exit $?
fi

# ---------------------------------------------------------------- start

for bin in ceph-mon ceph-mgr ceph-osd radosgw radosgw-admin ceph rbd ceph-authtool monmaptool; do
  command -v "$bin" >/dev/null || {
    say "error: $bin not found (apt-get install ceph-mon ceph-mgr ceph-osd radosgw ceph-common)"
    exit 1
  }
done
[ ! -e "$S/ceph.conf" ] || {
  say "error: $S already holds a cluster: stop it and remove the directory first"
  exit 1
}

fail() {
  trap - ERR
  say "error: $*; daemon logs are in $S/log"
  stop_daemons
  exit 1
}
trap 'fail "a command failed at line $LINENO"' ERR

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid_gone() { [ -e "$S/run/$1.pid" ] && ! kill -0 "$(cat "$S/run/$1.pid")" 2>/dev/null; }

MON_PORT=${CEPH_MON_PORT:-0}
RGW_PORT=${CEPH_RGW_PORT:-0}
WITH_RGW=${CEPH_WITH_RGW:-1}
OSD_STORE=${CEPH_OSD_STORE:-memstore}
[ "$MON_PORT" != 0 ] || MON_PORT=$(free_port)
[ "$RGW_PORT" != 0 ] || RGW_PORT=$(free_port)
for p in "$MON_PORT" "$RGW_PORT"; do
  if port_busy "$p"; then
    trap - ERR
    say "error: 127.0.0.1:$p is already in use"
    exit 1
  fi
done
case "$OSD_STORE" in
  memstore) store_conf="memstore device bytes = ${CEPH_MEMSTORE_BYTES:-4294967296}" ;;
  # The block file must sit outside the OSD's data directory (mkfs links it there).
  bluestore) store_conf="bluestore block path = $S/osd-block.img
bluestore block create = true
bluestore block size = 10737418240
osd memory target = 1073741824" ;;
  *) fail "CEPH_OSD_STORE must be memstore or bluestore, not $OSD_STORE" ;;
esac

mkdir -p "$S"/{mon,mgr,osd,rgw,run,log,crash}
FSID=$(cat /proc/sys/kernel/random/uuid)
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
POOL=images
CONF=$S/ceph.conf
KEYRING=$S/keyring

# Every path is under S and every socket on 127.0.0.1. One OSD means pools of size 1, few PGs per
# pool (the gateway alone makes seven pools) and no redundancy warning; the disk-space thresholds
# are lowered because the monitor exits when its disk is 95% full, common on CI runners.
cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $KEYRING
run dir = $S/run
pid file = $S/run/\$name.pid
admin socket = $S/run/\$name.asok
log file = $S/log/\$name.log
crash dir = $S/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 2
mon data avail crit = 1
[mon]
mon data = $S/mon
mon cluster log file = $S/log/\$cluster.\$channel.log
[mgr]
mgr data = $S/mgr
[osd]
osd data = $S/osd
osd objectstore = $OSD_STORE
$store_conf
[client.rgw.gw]
rgw data = $S/rgw
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw thread pool size = 32
rgw gc obj min wait = 30
rgw gc processor period = 30
EOF
C=(-c "$CONF")

# One keyring holds every entity with its caps; the monitor's mkfs imports them all at once.
addkey() { ceph-authtool "$KEYRING" --gen-key -n "$@" >/dev/null; }
ceph-authtool --create-keyring "$KEYRING" --gen-key -n mon. --cap mon 'allow *' >/dev/null
addkey client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *'
addkey osd.0 --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *'
addkey mgr.x --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *'
addkey client.rgw.gw --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw'
addkey client.glance --cap mon 'profile rbd' --cap osd "profile rbd pool=$POOL" --cap mgr "profile rbd pool=$POOL"
chmod 600 "$KEYRING"

# The daemons fork and write S/run/<name>.pid themselves; stop_daemons reads those.
run_daemon() { "$@" "${C[@]}" </dev/null >>"$S/log/daemons.out" 2>&1; }

monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$S/monmap" >/dev/null
ceph-mon "${C[@]}" -i a --mkfs --monmap "$S/monmap" --keyring "$KEYRING"
run_daemon ceph-mon -i a
run_daemon ceph-mgr -i x

ceph "${C[@]}" osd new "$OSD_UUID" 0 >/dev/null
ceph-osd "${C[@]}" -i 0 --mkfs --osd-uuid "$OSD_UUID" >>"$S/log/daemons.out" 2>&1
run_daemon ceph-osd -i 0
for i in $(seq 120); do
  ceph "${C[@]}" osd dump 2>/dev/null | grep -q '^osd.0 up' && break
  if pid_gone osd.0 || [ "$i" = 120 ]; then fail "osd.0 did not come up within 60 s"; fi
  sleep 0.5
done

precreate=""
if [ "$WITH_RGW" = 1 ]; then
  run_daemon radosgw -n client.rgw.gw
  # The gateway makes its bucket pools on first use, ~2 s per request; make them now, meanwhile.
  (
    for p in index data non-ec; do
      ceph "${C[@]}" osd pool create "default.rgw.buckets.$p" >/dev/null 2>&1
      ceph "${C[@]}" osd pool application enable "default.rgw.buckets.$p" rgw >/dev/null 2>&1
    done
  ) &
  precreate=$!
fi
ceph "${C[@]}" osd pool create "$POOL" >/dev/null 2>>"$S/log/daemons.out"
timeout 60 rbd "${C[@]}" pool init "$POOL"

S3_ACCESS=glance-test-access S3_SECRET=glance-test-secret
if [ "$WITH_RGW" = 1 ]; then
  for i in $(seq 240); do
    port_busy "$RGW_PORT" && break
    if pid_gone client.rgw.gw || [ "$i" = 240 ]; then fail "radosgw did not listen on $RGW_PORT within 120 s"; fi
    sleep 0.5
  done
  radosgw-admin "${C[@]}" user create --uid=glance --display-name=glance \
    --access-key="$S3_ACCESS" --secret-key="$S3_SECRET" >/dev/null
  wait "$precreate" || true
fi

s3_endpoint=""
[ "$WITH_RGW" = 1 ] && s3_endpoint="http://127.0.0.1:$RGW_PORT"
cat >"$S/ceph.json" <<EOF
{
  "conf": "$CONF",
  "fsid": "$FSID",
  "keyring": "$KEYRING",
  "pool": "$POOL",
  "user": "glance",
  "admin_user": "admin",
  "mon_port": $MON_PORT,
  "s3_endpoint": "$s3_endpoint",
  "s3_access_key": "$S3_ACCESS",
  "s3_secret_key": "$S3_SECRET",
  "s3_region": "default"
}
EOF
cat >"$S/ceph.env" <<EOF
export CEPH_CONF=$CONF
export GLANCE_TEST_CEPH=$S/ceph.json
export S3_ENDPOINT=$s3_endpoint S3_ACCESS_KEY=$S3_ACCESS S3_SECRET_KEY=$S3_SECRET S3_REGION=default
EOF
trap - ERR
say "up: fsid $FSID, mon 127.0.0.1:$MON_PORT${s3_endpoint:+, s3 $s3_endpoint}"
echo "$S/ceph.env"
