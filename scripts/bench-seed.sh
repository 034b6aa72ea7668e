#!/usr/bin/env bash
# Seeds a database with N images shaped exactly as glance-bench seeds them through the API
# (public, queued, `glance-bench-<i>` with os_distro + prop_1…prop_9 and two tags), in SQL,
# each image's properties and tags side by side as one create writes them,
# so a large catalogue (200,000 images) takes a minute instead of an hour of API creates.
# glance-bench then uses it with --sqlite-file FILE or --mysql-url SERVER --mysql-db NAME.
#   scripts/bench-seed.sh sqlite /var/tmp/seed-200k.sqlite 200000
#   scripts/bench-seed.sh mysql mysql://root@127.0.0.1:3306/glance_seed_200k 200000
#   scripts/bench-seed.sh postgres postgresql://postgres@127.0.0.1:5432/glance_seed_200k 200000
# The schema comes from `glance-manage db_sync` (target/release, or GLANCE_MANAGE); an
# existing file or database is replaced. Creation times are 20 ms apart in seeding order,
# as the API would write them (whole seconds on MariaDB, whose DATETIME has no fraction).
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:?usage: bench-seed.sh sqlite FILE N | mysql mysql://USER@HOST:PORT/DB N | postgres postgresql://USER@HOST:PORT/DB N}
target=${2:?missing FILE or URL}
n=${3:?missing the number of images}
manage=${GLANCE_MANAGE:-./target/release/glance-manage}
conf=$(mktemp --suffix=.conf)
trap 'rm -f "$conf"' EXIT

# The nine prop_p values are `value-<i mod 7p>`; os_distro cycles through ten names.
distros="(0,'ubuntu'),(1,'debian'),(2,'centos'),(3,'rhel'),(4,'fedora'),(5,'cirros'),(6,'alpine'),(7,'arch'),(8,'suse'),(9,'windows')"

case $backend in
sqlite)
  rm -f "$target" "$target-wal" "$target-shm"
  printf '[database]\nconnection = sqlite:///%s\n' "$(realpath -m "$target")" >"$conf"
  "$manage" --config-file "$conf" db_sync >&2
  sqlite3 "$target" <<SQL
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TEMP TABLE seq AS
  WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < $n - 1) SELECT i FROM s;
CREATE TEMP TABLE seeded AS SELECT i,
  lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2)
    || '-' || substr('89ab', 1 + abs(random()) % 4, 1) || substr(hex(randomblob(2)), 2) || '-'
    || hex(randomblob(6))) AS id,
  datetime('2026-12-01', '+' || (i / 50) || ' seconds') || '.' || printf('%06d', (i % 50) * 20000) AS at
  FROM seq;
INSERT INTO images (id, name, size, status, created_at, updated_at, deleted, disk_format,
    container_format, owner, min_disk, min_ram, protected, visibility, os_hidden)
  SELECT id, printf('glance-bench-%05d', i), NULL, 'queued', at, at, 0, 'qcow2', 'bare', NULL,
    0, 0, 0, 'public', 0 FROM seeded ORDER BY i;
INSERT INTO image_properties (image_id, name, value, created_at, updated_at, deleted)
  SELECT image_id, name, value, at, at, 0 FROM (
    SELECT s.i AS i, 0 AS k, s.id AS image_id, 'os_distro' AS name, d.column2 AS value, s.at AS at
    FROM seeded s JOIN (VALUES $distros) d ON d.column1 = s.i % 10
    UNION ALL SELECT s.i, p.i, s.id, 'prop_' || p.i, 'value-' || (s.i % (p.i * 7)), s.at
    FROM seeded s JOIN seq p ON p.i BETWEEN 1 AND 9)
  ORDER BY i, k;
INSERT INTO image_tags (image_id, value, created_at, updated_at, deleted)
  SELECT image_id, value, at, at, 0 FROM (
    SELECT i, 0 AS k, id AS image_id, 'glance-bench' AS value, at FROM seeded
    UNION ALL SELECT i, 1, id, 'tag-' || (i % 20), at FROM seeded)
  ORDER BY i, k;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
  ;;
mysql)
  server=${target%/*}
  name=${target##*/}
  mysql_args=()
  hostport=${server#mysql://}
  user=${hostport%@*}
  hostport=${hostport#*@}
  mysql_args+=(-u"$user" -h"${hostport%:*}" -P"${hostport##*:}")
  mysql "${mysql_args[@]}" -e "DROP DATABASE IF EXISTS $name; CREATE DATABASE $name CHARACTER SET utf8mb4"
  printf '[database]\nconnection = %s\n' "$target" >"$conf"
  "$manage" --config-file "$conf" db_sync >&2
  mysql "${mysql_args[@]}" "$name" <<SQL
SET FOREIGN_KEY_CHECKS = 0;
CREATE TABLE bench_seq (i INT PRIMARY KEY) SELECT seq AS i FROM seq_0_to_$((n - 1));
CREATE TABLE bench_seeded (i INT PRIMARY KEY, id CHAR(36), at DATETIME)
  SELECT i,
    LOWER(CONCAT(LPAD(HEX(FLOOR(RAND() * 4294967296)), 8, '0'), '-',
      LPAD(HEX(FLOOR(RAND() * 65536)), 4, '0'), '-4', LPAD(HEX(FLOOR(RAND() * 4096)), 3, '0'), '-',
      ELT(1 + FLOOR(RAND() * 4), '8', '9', 'a', 'b'), LPAD(HEX(FLOOR(RAND() * 4096)), 3, '0'), '-',
      LPAD(HEX(FLOOR(RAND() * 16777216)), 6, '0'), LPAD(HEX(FLOOR(RAND() * 16777216)), 6, '0'))) AS id,
    TIMESTAMP('2026-12-01') + INTERVAL (i DIV 50) SECOND AS at
  FROM bench_seq;
CREATE TABLE bench_distros (k INT PRIMARY KEY, d VARCHAR(16));
INSERT INTO bench_distros VALUES $distros;
INSERT INTO images (id, name, size, status, created_at, updated_at, deleted, disk_format,
    container_format, owner, min_disk, min_ram, protected, visibility, os_hidden)
  SELECT id, CONCAT('glance-bench-', LPAD(i, 5, '0')), NULL, 'queued', at, at, 0, 'qcow2', 'bare',
    NULL, 0, 0, 0, 'public', 0 FROM bench_seeded ORDER BY i;
INSERT INTO image_properties (image_id, name, value, created_at, updated_at, deleted)
  SELECT image_id, name, value, at, at, 0 FROM (
    SELECT s.i AS i, 0 AS k, s.id AS image_id, 'os_distro' AS name, d.d AS value, s.at AS at
    FROM bench_seeded s JOIN bench_distros d ON d.k = s.i % 10
    UNION ALL SELECT s.i, p.i, s.id, CONCAT('prop_', p.i), CONCAT('value-', s.i % (p.i * 7)), s.at
    FROM bench_seeded s JOIN bench_seq p ON p.i BETWEEN 1 AND 9) AS props
  ORDER BY i, k;
INSERT INTO image_tags (image_id, value, created_at, updated_at, deleted)
  SELECT image_id, value, at, at, 0 FROM (
    SELECT i, 0 AS k, id AS image_id, 'glance-bench' AS value, at FROM bench_seeded
    UNION ALL SELECT i, 1, id, CONCAT('tag-', i % 20), at FROM bench_seeded) AS tags
  ORDER BY i, k;
DROP TABLE bench_seq, bench_seeded, bench_distros;
ANALYZE TABLE images, image_properties, image_tags;
SQL
  ;;
postgres)
  # For EXPLAIN ANALYZE of the registry's queries (glance-bench runs SQLite and MariaDB).
  server=${target%/*}
  name=${target##*/}
  psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name"
  printf '[database]\nconnection = %s\n' "$target" >"$conf"
  "$manage" --config-file "$conf" db_sync >&2
  psql "$target" -q <<SQL
CREATE TEMP TABLE seeded AS SELECT i, gen_random_uuid()::text AS id,
  TIMESTAMP '2026-12-01' + (i / 50) * INTERVAL '1 second' + (i % 50) * INTERVAL '20 milliseconds' AS at
  FROM generate_series(0, $n - 1) AS i;
INSERT INTO images (id, name, size, status, created_at, updated_at, deleted, disk_format,
    container_format, owner, min_disk, min_ram, protected, visibility, os_hidden)
  SELECT id, 'glance-bench-' || lpad(i::text, 5, '0'), NULL, 'queued', at, at, false, 'qcow2', 'bare',
    NULL, 0, 0, false, 'public', false FROM seeded ORDER BY i;
INSERT INTO image_properties (image_id, name, value, created_at, updated_at, deleted)
  SELECT image_id, name, value, at, at, false FROM (
    SELECT s.i AS i, 0 AS k, s.id AS image_id, 'os_distro' AS name, d.d AS value, s.at AS at
    FROM seeded s JOIN (VALUES $distros) AS d(k, d) ON d.k = s.i % 10
    UNION ALL SELECT s.i, p, s.id, 'prop_' || p, 'value-' || (s.i % (p * 7)), s.at
    FROM seeded s CROSS JOIN generate_series(1, 9) AS p) AS props
  ORDER BY i, k;
INSERT INTO image_tags (image_id, value, created_at, updated_at, deleted)
  SELECT image_id, value, at, at, false FROM (
    SELECT i, 0 AS k, id AS image_id, 'glance-bench' AS value, at FROM seeded
    UNION ALL SELECT i, 1, id, 'tag-' || (i % 20), at FROM seeded) AS tags
  ORDER BY i, k;
ANALYZE;
SQL
  ;;
*)
  echo "unknown backend $backend: sqlite, mysql or postgres" >&2
  exit 2
  ;;
esac
echo "seeded $n images into $target" >&2
