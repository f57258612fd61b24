#!/usr/bin/env bash
# Run the write-model benchmark (command round trip, aggregate loads with and without snapshots)
# in the event store benchmark's virtualenv, .venv-bench, created on first use exactly as
# benchmarks/run.sh creates it (cronica editable, eventsourcing 9.5), so the project's .venv
# never changes.
#
#   bash benchmarks/run_write_model.sh            # full run, JSON in benchmarks/results/
#   bash benchmarks/run_write_model.sh --quick    # smoke test; any option goes to bench_write_model.py
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${BENCH_VENV:-$root/.venv-bench}"
python="${PYTHON:-python3}"
stamp="$venv/.installed"

if [[ ! -f "$stamp" || "$root/pyproject.toml" -nt "$stamp" ]]; then
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -e "$root[postgres]" 'eventsourcing[postgres]==9.5.*'
    touch "$stamp"
fi

# Results go to benchmarks/results/write-model-latest.json, unless the caller passes --json; a
# --quick run writes write-model-quick.json.tmp instead (ignored by git).
json=(--json "$root/benchmarks/results/write-model-latest.json")
for arg in "$@"; do
    case "$arg" in
        --json | --json=*) json=() ;;
        --quick) [[ ${#json[@]} -gt 0 ]] && json=(--json "$root/benchmarks/results/write-model-quick.json.tmp") ;;
    esac
done

exec "$venv/bin/python" "$root/benchmarks/bench_write_model.py" --backend all "${json[@]}" "$@"
