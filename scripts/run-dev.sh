#!/usr/bin/env bash
# Runs the service on this machine: glance-registry on 127.0.0.1:9191 over an embedded SQLite
# database in ./.data, and glance-api on 127.0.0.1:9292 storing images in ./.data/images
# (both created on first run). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
dpkg -s libmariadb-dev >/dev/null 2>&1 && dpkg -s libpq-dev >/dev/null 2>&1 && dpkg -s libssl-dev >/dev/null 2>&1 || {
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libmariadb-dev libpq-dev libssl-dev pkg-config >/dev/null
}
cargo build --release -p glance-registry -p glance-api
DATA=$PWD/.data
mkdir -p "$DATA/images"
cat > "$DATA/glance-registry.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = 9191
[database]
connection = sqlite:///$DATA/glance.sqlite
CONF
cat > "$DATA/glance-api.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = 9292
registry_host = 127.0.0.1
registry_port = 9191
[glance_store]
stores = file,http
default_store = file
filesystem_store_datadir = $DATA/images/
CONF
./target/release/glance-manage --config-file "$DATA/glance-registry.conf" db_sync
./target/release/glance-registry --config-file "$DATA/glance-registry.conf" &
REGISTRY=$!
trap 'kill $REGISTRY 2>/dev/null; wait $REGISTRY 2>/dev/null' EXIT INT TERM
./target/release/glance-api --config-file "$DATA/glance-api.conf"
