#!/usr/bin/env bash
# Run a benchmark (all backends) in its own virtualenv, .venv-bench, created on first use with
# cronica (editable) and eventsourcing 9.5, so the project's .venv never changes.
#
#   bash benchmarks/run.sh                      # the event store: full run, JSON in results/
#   bash benchmarks/run.sh --quick              # smoke test; any option goes to bench_store.py
#   bash benchmarks/run.sh write-model [...]    # the write model (bench_write_model.py)
#   bash benchmarks/run.sh read-side [...]      # projections: rebuild, lag (bench_read_side.py)
#   bash benchmarks/run.sh http [...]           # the HTTP service under load (bench_http.py)
#   bash benchmarks/run.sh relay [...]          # the relay into Redis Streams (bench_relay.py)
#   bash benchmarks/run.sh sagas [...]          # transfers through the saga (bench_sagas.py)
#   bash benchmarks/run.sh privacy [...]        # crypto-shredding: appends, reads (bench_privacy.py)
#   bash benchmarks/run.sh archive [...]        # archive and restore throughput (bench_archive.py)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${BENCH_VENV:-$root/.venv-bench}"
python="${PYTHON:-python3}"
stamp="$venv/.installed"

if [[ ! -f "$stamp" || "$root/pyproject.toml" -nt "$stamp" || "${BASH_SOURCE[0]}" -nt "$stamp" ]]; then
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -e "$root[postgres,server,redis,archive]" 'eventsourcing[postgres]==9.5.*' \
        'aiohttp>=3.9'
    touch "$stamp"
fi

bench=store
if [[ "${1:-}" == "store" || "${1:-}" == "write-model" || "${1:-}" == "read-side" || "${1:-}" == "http" || "${1:-}" == "relay" || "${1:-}" == "sagas" || "${1:-}" == "privacy" || "${1:-}" == "archive" ]]; then
    bench="$1"
    shift
fi
script="$root/benchmarks/bench_${bench//-/_}.py"

# Results go to benchmarks/results/<bench>-latest.json, unless the caller passes --json; a
# --quick run writes <bench>-quick.json.tmp instead (ignored by git).
json=(--json "$root/benchmarks/results/$bench-latest.json")
for arg in "$@"; do
    case "$arg" in
        --json | --json=*) json=() ;;
        --quick) [[ ${#json[@]} -gt 0 ]] && json=(--json "$root/benchmarks/results/$bench-quick.json.tmp") ;;
    esac
done

exec "$venv/bin/python" "$script" --backend all "${json[@]}" "$@"
