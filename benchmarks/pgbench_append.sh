#!/usr/bin/env bash
# The server-side cost of one single-event append on PostgreSQL, without Python: pgbench runs
# cronica's append function (cronica_append_one: the stream's row and the event) and a raw INSERT
# into a table of the same shape and indexes, one client, synchronous_commit off (to measure CPU,
# not the WAL flush), 3 alternating runs of 10 s each; prints the median latency of each and the
# ratio raw / cronica, the ceiling of "cronica A / raw A" before any client code runs.
#
#   bash benchmarks/pgbench_append.sh [postgresql://postgres@127.0.0.1:5432/test]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
url="${1:-postgresql://postgres@127.0.0.1:5432/test}"
python="${PYTHON:-$root/.venv/bin/python}"
seconds="${PGBENCH_SECONDS:-10}"
work="$(mktemp -d)"
trap 'psql -q "$url" -c "DROP SCHEMA IF EXISTS pgb_cronica CASCADE; DROP SCHEMA IF EXISTS pgb_raw CASCADE" >/dev/null 2>&1; rm -rf "$work"' EXIT

PGOPTIONS="-c client_min_messages=warning" psql -q "$url" -c "DROP SCHEMA IF EXISTS pgb_cronica CASCADE; DROP SCHEMA IF EXISTS pgb_raw CASCADE"
"$python" - "$url" <<'PY'
import sys
import cronica
with cronica.connect(sys.argv[1] + "?schema=pgb_cronica") as store:
    store.append("s-1", [cronica.NewEvent("AccountCreated", {})], aggregate_type="Account")
PY
psql -q "$url" <<'SQL'
CREATE SCHEMA pgb_raw;
CREATE TABLE pgb_raw.events (
    event_id UUID PRIMARY KEY, aggregate_id VARCHAR(255) NOT NULL,
    aggregate_type VARCHAR(100) NOT NULL, event_type VARCHAR(100) NOT NULL,
    event_version INT NOT NULL, event_data JSONB NOT NULL, metadata JSONB,
    timestamp TIMESTAMPTZ NOT NULL DEFAULT NOW(), position BIGSERIAL UNIQUE,
    CONSTRAINT unique_version UNIQUE (aggregate_id, event_version));
CREATE INDEX idx_aggregate ON pgb_raw.events (aggregate_id, event_version);
CREATE INDEX idx_timestamp ON pgb_raw.events (timestamp);
CREATE SEQUENCE pgb_raw.versions;
SQL
echo "SELECT * FROM cronica_append_one('s-1', NULL, -1, gen_random_uuid(), 'DepositMade', '{\"amount\": \"1.00\"}', '{}');" > "$work/cronica.sql"
echo "INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, event_version, event_data, metadata) VALUES (gen_random_uuid(), 's-1', 'Account', 'DepositMade', nextval('versions'), '{\"amount\": \"1.00\"}', '{}');" > "$work/raw.sql"

latency() {  # schema script -> average latency in µs
    PGOPTIONS="-c synchronous_commit=off -c search_path=$1" \
        pgbench -n -M prepared -c 1 -T "$seconds" -f "$2" "$url" 2>/dev/null |
        awk '/latency average/ {print $4 * 1000}'
}
declare -a cronica raw
for run in 1 2 3; do
    cronica+=("$(latency pgb_cronica "$work/cronica.sql")")
    raw+=("$(latency pgb_raw "$work/raw.sql")")
    echo "run $run: cronica_append_one ${cronica[-1]} µs, raw INSERT ${raw[-1]} µs"
done
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
c="$(median "${cronica[@]}")"
r="$(median "${raw[@]}")"
echo "median: cronica_append_one $c µs, raw INSERT $r µs; raw / cronica = $(awk "BEGIN {printf \"%.2f\", $r / $c}")"
