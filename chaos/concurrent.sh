#!/usr/bin/env bash
# Many `bistro tick` at once over one state dir, under an instance-wide limit: each
# either schedules or exits 75; never more than the limit alive, nothing twice.
# Usage: chaos/concurrent.sh [--smoke]
SCENARIO=concurrent
source "$(dirname "$0")/common.sh" "$@"
if [ "$SMOKE" = 1 ]; then NODES=12 WAVES=5 PER_WAVE=4; else NODES=100 WAVES=150 PER_WAVE=4; fi
LIMIT=3
dir="$WORK/concurrent"
state="$dir/state"
mkdir -p "$dir"
probe_task "$dir" 0.2
config "$NODES" "$LIMIT" >"$dir/config.json"
"$BISTRO" --state-dir "$state" init --config "$dir/config.json" 2>/dev/null
"$BISTRO" --state-dir "$state" tick --quiet --worker-command "$dir/task.sh"
ticks=0 locked=0 other=0
wave=0
deadline=$((SECONDS + 600))
while [ $wave -lt $WAVES ] || ! all_done "$state"; do
    [ $SECONDS -lt $deadline ] || fail "tasks never finished"
    pids=()
    for _ in $(seq "$PER_WAVE"); do
        "$BISTRO" --state-dir "$state" tick --quiet 2>/dev/null &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        code=0
        wait "$pid" || code=$?
        ticks=$((ticks + 1))
        case $code in
            0) ;;
            75) locked=$((locked + 1)) ;;
            *) other=$((other + 1)) ;;
        esac
    done
    wave=$((wave + 1))
done
[ $other -eq 0 ] || fail "$other ticks exited with neither 0 nor 75"
figures="$(check_invariants "$state" "$dir" "$LIMIT" "$NODES")"
echo "chaos concurrent: $ticks ticks in waves of $PER_WAVE ($locked exited 75) over $NODES tasks, limit $LIMIT; $figures; integrity ok; no process left"
