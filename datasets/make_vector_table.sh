#!/usr/bin/env bash
# Makes the reader benchmark's table: ROWS rows (default 500,000) of vector(DIM) (default 768)
# plus a few scalars, in the database URL given as $1.
#   datasets/make_vector_table.sh postgres://postgres:pw@127.0.0.1:5432/postgres [ROWS] [DIM]
# Vectors are generated in SQL (seeded), which is what the read path cares about: the bytes on
# the wire are the same as for real embeddings of the same dimension.
set -euo pipefail
url="$1"; rows="${2:-500000}"; dim="${3:-768}"
psql_bin="$(bash "$(dirname "$0")/../scripts/pg-test-server" bin)/psql"
"$psql_bin" -q "$url" <<SQL
SELECT setseed(0.42);
DROP TABLE IF EXISTS bench_items;
CREATE TABLE bench_items (id bigint PRIMARY KEY, title text, category int, price numeric(10,2), embedding vector($dim));
INSERT INTO bench_items
SELECT i, 'item ' || i, i % 50, (i % 1000) / 10.0,
       (SELECT array_agg(random()::real) FROM generate_series(1, $dim) WHERE i > 0)::vector
FROM generate_series(1, $rows) i;
VACUUM ANALYZE bench_items;
SQL
echo "bench_items: $rows rows of vector($dim)" >&2
