#!/usr/bin/env bash
# `bistro status --json` (and with --tasks) over 300 hosts x 1,000 dbs x 5 jobs, every
# task with a stored status: 1.5M tasks.
# Usage: bench/status.sh [--smoke] [--runs N]
source "$(dirname "$0")/common.sh"

HOSTS=300
DBS=1000
[ "$SMOKE" = 1 ] && HOSTS=3
state="$WORK/state"
bench_config "$HOSTS" "$DBS" 5 16 2 >"$WORK/config.json"
"$BISTRO" --state-dir "$state" init --config "$WORK/config.json" >/dev/null 2>&1
seed_done "$state" "$HOSTS" "$DBS" 5 1
# A real tick (every task is done, so it starts nothing) stores the nodes, as the
# state of a working scheduler has them.
"$BISTRO" --state-dir "$state" tick --quiet --worker-command /bin/true >/dev/null 2>&1 || true

: >"$WORK/plain"; : >"$WORK/tasks"
for _ in $(seq "$RUNS"); do
    measure "$WORK/plain" "$BISTRO" --state-dir "$state" status --json >/dev/null
    measure "$WORK/tasks" "$BISTRO" --state-dir "$state" status --json --tasks >/dev/null
done
echo "status over $((HOSTS * DBS * 5)) tasks, wall s: --json $(stats "$WORK/plain" 1); --json --tasks $(stats "$WORK/tasks" 1); peak RSS MiB $(python3 -c "print(round($(median "$WORK/plain" 2) / 1024))") / $(python3 -c "print(round($(median "$WORK/tasks" 2) / 1024))")"
