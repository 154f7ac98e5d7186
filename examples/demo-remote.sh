#!/usr/bin/env bash
# The getting-started demo as the seed runs it: a scheduler and a separate worker
# process it commands. Builds bistro, starts `bistro daemon` (remote mode) and one
# `bistro worker`, waits until every task is done, then shows the status (with the
# worker) and stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/bistro"
SCHED="${SCHED:-demo-remote-scheduler}"
WORKER="${WORKER:-demo-remote-worker}"
PORT="${PORT:-6790}"
rm -rf "$SCHED" "$WORKER"
"$BIN" --state-dir "$SCHED" init --config examples/configs/simple.json
"$BIN" --state-dir "$SCHED" daemon --http "127.0.0.1:$PORT" \
    --caution-startup-wait-for-workers 1 --instance-node-name scheduler &
scheduler=$!
trap 'kill $scheduler ${worker:-} 2>/dev/null || true' EXIT
until [ -s "$SCHED/worker.token" ]; do sleep 0.1; done
"$BIN" --state-dir "$WORKER" worker --scheduler "http://127.0.0.1:$PORT" \
    --token-file "$SCHED/worker.token" --worker-command "$PWD/examples/demo_bistro_task.sh" &
worker=$!
for _ in $(seq 600); do
    if "$BIN" --state-dir "$SCHED" status --check 2>/dev/null; then break; fi
    sleep 0.2
done
"$BIN" --state-dir "$SCHED" status
"$BIN" --state-dir "$SCHED" status --check
