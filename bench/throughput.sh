#!/usr/bin/env bash
# Normalized throughput (the Bistro paper's metric: ideal makespan / actual): 2,000
# tasks that each sleep 0.5 s, at concurrency 64, under `bistro daemon
# --exit-when-done`; ideal = 2000 x 0.5 s / 64. Also xargs -P64 for comparison.
# Usage: bench/throughput.sh [--smoke] [--runs N]
source "$(dirname "$0")/common.sh"

HOSTS=20
DBS=100
[ "$SMOKE" = 1 ] && HOSTS=1 DBS=64
N=$((HOSTS * DBS))
SLEEP=0.5
IDEAL=$(python3 -c "import math; print($N * $SLEEP / 64 if $N >= 64 else $SLEEP)")

cat >"$WORK/task.sh" <<'SH'
#!/bin/sh
sleep 0.5
echo done > "$2"
SH
chmod +x "$WORK/task.sh"
bench_config "$HOSTS" "$DBS" 1 64 "$N" '"working_wait": 0.01,' >"$WORK/config.json"
seq -f "n%g" "$N" >"$WORK/nodes"
# Each run keeps its own directories until the end: see NO_DELETIONS in common.sh.

: >"$WORK/bistro"; : >"$WORK/xargs"
for run in $(seq "$RUNS"); do
    state="$WORK/state-$run"
    "$BISTRO" --state-dir "$state" init --config "$WORK/config.json" >/dev/null 2>&1
    measure "$WORK/bistro" "$BISTRO" --state-dir "$state" daemon --exit-when-done \
        --worker-command "$WORK/task.sh"
    x="$WORK/x-$run"
    mkdir -p "$x"
    measure "$WORK/xargs" sh -c "xargs -P64 -I{} '$WORK/task.sh' {} '$x/{}' x <'$WORK/nodes'"
done
b=$(median "$WORK/bistro" 1); x=$(median "$WORK/xargs" 1)
echo "throughput, $N tasks of ${SLEEP} s at concurrency 64 (ideal ${IDEAL} s), wall s: bistro daemon $(stats "$WORK/bistro" 1); xargs -P64 $(stats "$WORK/xargs" 1)"
echo "normalized throughput (ideal / median wall): bistro $(ratio "$IDEAL" "$b"); xargs $(ratio "$IDEAL" "$x")"
