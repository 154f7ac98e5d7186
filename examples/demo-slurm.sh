#!/usr/bin/env bash
# The getting-started demo on Slurm: builds bistro, starts a throwaway single-node
# Slurm cluster (examples/slurm/start.sh; needs slurmctld, slurmd, slurm-client and
# munge), ticks as cron would with `--runner slurm` until every task is done, shows the
# status and one task's logs, then stops the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/bistro"
STATE="${STATE:-demo-slurm-state}"
CLUSTER="$(mktemp -d "${TMPDIR:-/tmp}/bistro-slurm.XXXXXX")"
trap 'bash examples/slurm/stop.sh "$CLUSTER"; rm -rf "$CLUSTER"' EXIT
eval "$(bash examples/slurm/start.sh "$CLUSTER")"
echo "demo: Slurm cluster up: SLURM_CONF=$SLURM_CONF"
bistro() { "$BIN" --state-dir "$STATE" "$@"; }
rm -rf "$STATE"
bistro init --config examples/configs/simple.json
# The first tick names the runner and command; later ticks (a cron line) remember them.
bistro tick --runner slurm --worker-command "$PWD/examples/demo_bistro_task.sh" \
    --instance-node-name scheduler
until bistro status --check; do
    code=$?
    if [ "$code" -ne 3 ]; then
        echo "demo: tasks failed (status --check exited $code)" >&2
        bistro status --tasks
        exit 1
    fi
    squeue -h -o '  Slurm job %i %T %j' || true
    sleep 0.5
    bistro tick
done
bistro status --tasks
bistro logs --node node11
