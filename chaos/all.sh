#!/usr/bin/env bash
# Every chaos scenario, one after the other, then the parsers' property tests at 100
# times their usual case count. Each scenario prints one line of figures and exits
# non-zero on the first broken invariant (RELIABILITY.md says which).
# Usage: chaos/all.sh [--smoke]
#   --smoke: small sizes, debug build, the property tests at their usual count (CI).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, kernel $(uname -r); commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
for scenario in kill9 concurrent disk_full hostile http remote; do
    bash "chaos/$scenario.sh" "$@"
done
if [ "${1:-}" = --smoke ]; then
    echo "chaos fuzz: the parsers' property tests run at their usual count in cargo test"
else
    result="$(BISTRO_FUZZ_SCALE=100 cargo test --release --quiet --lib -- fuzz properties 2>&1 \
        | grep -E '^test result')"
    echo "chaos fuzz x100: the parsers' property tests at 100x their cases: $result"
fi
