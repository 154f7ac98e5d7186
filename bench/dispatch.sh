#!/usr/bin/env bash
# Dispatch: the seed's task script (examples/demo_bistro_task.sh) over 5,000 nodes at
# concurrency 16, run by `bistro daemon --exit-when-done` (statuses and logs stored),
# by `xargs -P16` and by GNU `parallel -j16`, side by side, each run RUNS times.
# Usage: bench/dispatch.sh [--smoke] [--runs N]
source "$(dirname "$0")/common.sh"
need_commands parallel:parallel

TASK="$ROOT/examples/demo_bistro_task.sh"
HOSTS=50
DBS=100
[ "$SMOKE" = 1 ] && HOSTS=2 DBS=10
N=$((HOSTS * DBS))
JSON='{"id":"job0"}'

# Bistro: one job, an instance limit of 16, no host limit; a short working_wait so
# the daemon looks for finished tasks every 10 ms (Bistro's default is 500 ms).
bench_config "$HOSTS" "$DBS" 1 16 "$N" '"working_wait": 0.01,' >"$WORK/config.json"
seq -f "n%g" "$N" >"$WORK/nodes"
# Each run keeps its own directories until the end ($WORK is removed on exit): see
# NO_DELETIONS in common.sh.

: >"$WORK/bistro"; : >"$WORK/xargs"; : >"$WORK/parallel"
for run in $(seq "$RUNS"); do
    state="$WORK/state-$run"
    "$BISTRO" --state-dir "$state" init --config "$WORK/config.json" >/dev/null 2>&1
    measure "$WORK/bistro" "$BISTRO" --state-dir "$state" daemon --exit-when-done \
        --worker-command "$TASK"
    done_count=$("$BISTRO" --state-dir "$state" status --json | python3 -c \
        'import json, sys; print(json.load(sys.stdin)["jobs"][0]["counts"]["done"])')
    [ "$done_count" = "$N" ] || { echo "bistro: only $done_count of $N done" >&2; exit 1; }

    x="$WORK/x-$run"
    mkdir -p "$x"
    measure "$WORK/xargs" sh -c "xargs -P16 -I{} '$TASK' {} '$x/{}' '$JSON' <'$WORK/nodes' >'$x.out' 2>&1"

    p="$WORK/p-$run"
    mkdir -p "$p"
    measure "$WORK/parallel" sh -c "parallel -j16 '$TASK' {} '$p/{}' \"'$JSON'\" <'$WORK/nodes' >'$p.out' 2>&1"
done

echo "dispatch runs, in order (bistro, xargs): $(paste -d, <(cut -d" " -f1 "$WORK/bistro") <(cut -d" " -f1 "$WORK/xargs") | tr "\n" " ")"
b=$(median "$WORK/bistro" 1); x=$(median "$WORK/xargs" 1); p=$(median "$WORK/parallel" 1)
echo "dispatch, $N tasks at concurrency 16, wall s: bistro daemon $(stats "$WORK/bistro" 1); xargs -P16 $(stats "$WORK/xargs" 1); parallel -j16 $(stats "$WORK/parallel" 1)"
echo "dispatch ratios (medians): bistro/xargs $(ratio "$b" "$x"); bistro/parallel $(ratio "$b" "$p"); parallel/xargs $(ratio "$p" "$x")"
