#!/usr/bin/env bash
# Builds the release daemons and the benchmark, then runs it; every argument goes to
# glance-bench (see docs/benchmarks.md). Examples:
#   scripts/bench.sh                 # full run on SQLite: 1 GiB and 4 GiB, 10,000 images, 3 runs
#   scripts/bench.sh --quick         # small sizes, 1 s runs: a smoke test
#   scripts/bench.sh --mysql-url mysql://root@127.0.0.1:3306 --json bench.json
#   scripts/bench.sh --endpoint http://127.0.0.1:9292 --only read,crud
# The table goes to stdout, progress to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
dpkg -s libmariadb-dev >/dev/null 2>&1 && dpkg -s libpq-dev >/dev/null 2>&1 && dpkg -s libssl-dev >/dev/null 2>&1 || {
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libmariadb-dev libpq-dev libssl-dev pkg-config >/dev/null
}
cargo build --release -p glance-registry -p glance-api -p glance-bench \
  --bin glance-registry --bin glance-manage --bin glance-api --bin glance-bench >&2
exec ./target/release/glance-bench "$@"
