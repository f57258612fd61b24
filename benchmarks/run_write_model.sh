#!/usr/bin/env bash
# Run the write-model benchmark (command round trip, aggregate loads with and without snapshots):
# benchmarks/run.sh write-model, in the same virtualenv.
#
#   bash benchmarks/run_write_model.sh            # full run, JSON in benchmarks/results/
#   bash benchmarks/run_write_model.sh --quick    # smoke test; any option goes to bench_write_model.py
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/run.sh" write-model "$@"
