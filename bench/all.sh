#!/usr/bin/env bash
# Every benchmark, one after the other (never two heavy ones at once): the in-memory
# pass (cargo bench), then the whole-process scenarios side by side with their peers.
# Usage: bench/all.sh [--smoke] [--runs N]
#   --smoke: tiny sizes, one run, debug build: checks that the benchmarks still work.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), kernel $(uname -r)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ "${1:-}" = --smoke ]; then
    BISTRO_BENCH_SMOKE=1 cargo test --quiet --bench scheduling
else
    cargo bench --quiet --bench scheduling 2>&1 | grep -E '^(pass|parse_status)|time:'
fi
for scenario in tick status dispatch throughput simulated http slurm; do
    bash "bench/$scenario.sh" "$@"
done
