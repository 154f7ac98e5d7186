#!/usr/bin/env bash
# The getting-started demo, translated to our CLI: builds bistro, creates a state dir
# with the seed's config, ticks (as cron would) until every task is done, then shows
# the status and the logs of one task.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/bistro"
bistro() { "$BIN" --state-dir "${STATE:-demo-state}" "$@"; }
rm -rf "${STATE:-demo-state}"
bistro init --config examples/configs/simple.json
until bistro status --check; do
    code=$?
    if [ "$code" -ne 3 ]; then
        echo "demo: tasks failed (status --check exited $code)" >&2
        bistro status --tasks
        exit 1
    fi
    bistro tick --worker-command "$PWD/examples/demo_bistro_task.sh" --instance-node-name scheduler
    sleep 0.5
done
bistro status --tasks
bistro logs --node node11
